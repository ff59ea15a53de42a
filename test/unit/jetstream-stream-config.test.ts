import { describe, expect, it } from 'vitest';
import { ApiErrorException } from '../../src/jetstream/errors.js';
import {
  checkStreamUpdate,
  decodeStreamConfig,
  normalizeStreamConfig,
  sameStreamConfig,
  streamConfigJson,
  type RawStreamConfig,
} from '../../src/jetstream/stream-config.js';
import type { ApiError, StreamConfig } from '../../src/jetstream/types.js';

function errorOf(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiErrorException) return err.apiError;
    throw err;
  }
  throw new Error('expected an API error');
}

const cfg = (raw: RawStreamConfig): StreamConfig => normalizeStreamConfig(raw);
const reason = (raw: RawStreamConfig): string => errorOf(() => cfg(raw)).description;

describe('decodeStreamConfig', () => {
  it('refuses what Go refuses as invalid JSON (10025)', () => {
    for (const body of ['', '{not json', '[1]', '"x"', '{"subjects":"x.>"}', '{"max_msgs":"lots"}', '{"max_msgs":1.5}', '{"sealed":"yes"}', '{"storage":"floppy"}', '{"retention":"Limits"}', '{"max_age":"1s"}']) {
      expect(errorOf(() => decodeStreamConfig(body)), body).toEqual({ code: 400, err_code: 10025, description: 'invalid JSON' });
    }
  });

  it('takes null as absent, ignores unknown fields and reads discard case-insensitively', () => {
    expect(decodeStreamConfig('null')).toEqual({});
    expect(decodeStreamConfig('{"name":"X","max_msgs":null,"unknown_field":1,"discard":"New"}')).toEqual({ name: 'X', discard: 'new' });
  });
});

describe('normalizeStreamConfig: defaults as nats-server 2.9.10 echoes them', () => {
  it('fills the defaults', () => {
    const c = cfg({ name: 'S' });
    expect(streamConfigJson(c)).toEqual({
      name: 'S',
      subjects: ['S'],
      retention: 'limits',
      max_consumers: -1,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
      max_msgs_per_subject: -1,
      max_msg_size: -1,
      discard: 'old',
      storage: 'file',
      num_replicas: 1,
      duplicate_window: 120_000_000_000,
      allow_direct: false,
      mirror_direct: false,
      sealed: false,
      deny_delete: false,
      deny_purge: false,
      allow_rollup_hdrs: false,
    });
    // Key order is nats-server's.
    expect(Object.keys(streamConfigJson(cfg({ name: 'S', description: 'd', placement: { cluster: 'c' } })))).toEqual([
      'name',
      'description',
      'subjects',
      'retention',
      'max_consumers',
      'max_msgs',
      'max_bytes',
      'max_age',
      'max_msgs_per_subject',
      'max_msg_size',
      'discard',
      'storage',
      'num_replicas',
      'duplicate_window',
      'placement',
      'allow_direct',
      'mirror_direct',
      'sealed',
      'deny_delete',
      'deny_purge',
      'allow_rollup_hdrs',
    ]);
  });

  it('zero limits become -1, negative ones are kept; a short max_age shrinks the duplicate window', () => {
    const c = cfg({ name: 'S', max_consumers: -7, max_msgs: -9, max_bytes: 0, max_msgs_per_subject: 0, max_msg_size: -5 });
    expect([c.max_consumers, c.max_msgs, c.max_bytes, c.max_msgs_per_subject, c.max_msg_size]).toEqual([-7, -9, -1, -1, -5]);
    expect(cfg({ name: 'S', max_age: 200_000_000 }).duplicate_window).toBe(200_000_000);
    expect(cfg({ name: 'S', subjects: [] }).subjects).toEqual(['S']);
  });

  it('answers invalid configs with 500/10052 and nats-server reasons, in its order', () => {
    expect(errorOf(() => cfg({ name: 'A*' }))).toEqual({ code: 500, err_code: 10052, description: "stream name is required and can not contain '.', '*', '>'" });
    expect(reason({ name: '' })).toMatch(/stream name is required/);
    expect(reason({ name: 'x'.repeat(256) })).toBe('stream name is too long, maximum allowed is 255');
    expect(reason({ name: 'S', num_replicas: 6 })).toBe('maximum replicas is 5');
    expect(errorOf(() => cfg({ name: 'S', num_replicas: -1 }))).toEqual({ code: 400, err_code: 10133, description: 'replicas count cannot be negative' });
    expect(reason({ name: 'S', max_age: 1000 })).toBe('max age needs to be >= 100ms');
    // max_age below zero drags the default duplicate window negative first.
    expect(reason({ name: 'S', max_age: -5 })).toBe('duplicates window can not be negative');
    expect(reason({ name: 'S', duplicate_window: -5 })).toBe('duplicates window can not be negative');
    expect(reason({ name: 'S', max_age: 1_000_000_000, duplicate_window: 2_000_000_000 })).toBe('duplicates window can not be larger then max age');
    expect(reason({ name: 'S', duplicate_window: 1000 })).toBe('duplicates window needs to be >= 100ms');
    expect(reason({ name: 'S', deny_purge: true, allow_rollup_hdrs: true })).toBe('roll-ups require the purge permission');
    expect(reason({ name: 'S', discard_new_per_subject: true, max_msgs_per_subject: 1 })).toBe(
      'discard new per subject requires discard new policy to be set',
    );
    expect(reason({ name: 'S', discard_new_per_subject: true, discard: 'new' })).toBe('discard new per subject requires max msgs per subject > 0');
    expect(errorOf(() => cfg({ name: 'S', mirror: { name: 'O' }, subjects: ['x'] }))).toEqual({
      code: 400,
      err_code: 10034,
      description: 'stream mirrors can not contain subjects',
    });
    expect(reason({ name: 'S', subjects: ['f2', 'f2'] })).toBe('duplicate subjects detected');
    expect(reason({ name: 'S', subjects: ['f3..x', '$JS.API.>'] })).toBe('invalid subject');
    expect(reason({ name: 'S', subjects: ['$JS.API.>'] })).toBe('subjects overlap with jetstream api');
    expect(reason({ name: 'S', subjects: ['$JS.API.FOO'] })).toBe('subjects overlap with jetstream api');
    expect(reason({ name: 'S', subjects: ['foo.>.bar'] })).toBe('invalid subject');
    expect(reason({ name: 'S', subjects: ['i4 x'] })).toBe('invalid subject');
    expect(reason({ name: 'S', subjects: ['e4.*', 'e4.a'] })).toBe('subject "e4.*" overlaps with "e4.a"');
    // $JS.ACK.> is not the API: allowed.
    expect(cfg({ name: 'S', subjects: ['$JS.ACK.>'] }).subjects).toEqual(['$JS.ACK.>']);
  });
});

describe('checkStreamUpdate', () => {
  const base = cfg({ name: 'U', subjects: ['u'], retention: 'interest' });

  it('refuses what nats-server refuses', () => {
    const upd = (raw: RawStreamConfig): string => errorOf(() => checkStreamUpdate(base, cfg({ name: 'U', subjects: ['u'], retention: 'interest', ...raw }))).description;
    expect(upd({ max_consumers: 3 })).toBe('stream configuration update can not change MaxConsumers');
    expect(upd({ storage: 'memory' })).toBe('stream configuration update can not change storage type');
    expect(upd({ retention: 'limits' })).toBe('stream configuration update can not change retention policy');
  });

  it('sealing sets deny_delete, deny_purge, discard new, no rollups, no max_age; unsealing is refused', () => {
    const sealed = checkStreamUpdate(base, cfg({ name: 'U', subjects: ['u'], retention: 'interest', sealed: true, max_age: 1_000_000_000 }));
    expect(sealed).toMatchObject({ sealed: true, deny_delete: true, deny_purge: true, allow_rollup_hdrs: false, discard: 'new', max_age: 0 });
    expect(errorOf(() => checkStreamUpdate(sealed, cfg({ name: 'U', subjects: ['u'], retention: 'interest' }))).description).toBe(
      'stream configuration update can not unseal a sealed stream',
    );
    const noDel = cfg({ name: 'U', subjects: ['u'], retention: 'interest', deny_delete: true });
    expect(errorOf(() => checkStreamUpdate(noDel, base)).description).toBe('stream configuration update can not cancel deny message deletes');
  });

  it('compares configs field by field for an idempotent create', () => {
    expect(sameStreamConfig(cfg({ name: 'S', subjects: ['a'] }), cfg({ subjects: ['a'], name: 'S', max_msgs: 0 }))).toBe(true);
    expect(sameStreamConfig(cfg({ name: 'S', subjects: ['a'] }), cfg({ name: 'S', subjects: ['a'], max_msgs: 5 }))).toBe(false);
  });
});
