import { describe, expect, it } from 'vitest';
import {
  buildConsumerConfig,
  checkAgainstStream,
  checkUpdate,
  configJson,
  isApiError,
  parseCreateRequest,
  randomConsumerName,
  resolveCreateTarget,
  sameConfig,
} from '../../src/jetstream/consumer-config.js';
import type { ApiError, ConsumerConfig, StreamConfig } from '../../src/jetstream/types.js';

function stream(over: Partial<StreamConfig> = {}): StreamConfig {
  return {
    name: 'S',
    subjects: ['s.>'],
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
    sealed: false,
    deny_delete: false,
    deny_purge: false,
    allow_rollup_hdrs: false,
    allow_direct: false,
    mirror_direct: false,
    ...over,
  };
}

function req(body: unknown): ReturnType<typeof parseCreateRequest> {
  return parseCreateRequest(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
}

function errCode(v: unknown): number | null {
  return isApiError(v) ? v.err_code : null;
}

function build(raw: Partial<ConsumerConfig>, s: StreamConfig = stream(), name = 'c1', durable = false): ConsumerConfig | ApiError {
  return buildConsumerConfig(raw, name, durable, s);
}

const tokens = (subject: string): string[] => subject.split('.').slice(2);

describe('parseCreateRequest', () => {
  it('decodes a nats.js create request', () => {
    const r = req({ stream_name: 'S', config: { durable_name: 'D', ack_policy: 'explicit', filter_subject: 's.a' }, action: 'create', pedantic: false });
    expect(isApiError(r)).toBe(false);
    if (isApiError(r)) return;
    expect(r.stream_name).toBe('S');
    expect(r.action).toBe('create');
    expect(r.config).toEqual({ durable_name: 'D', ack_policy: 'explicit', filter_subject: 's.a' });
  });

  it.each([
    ['not json', 'not json'],
    ['empty body', ''],
    ['unknown ack policy', { stream_name: 'S', config: { ack_policy: 'bogus' } }],
    ['unknown deliver policy', { stream_name: 'S', config: { deliver_policy: 'bogus' } }],
    ['bad start time', { stream_name: 'S', config: { opt_start_time: 'garbage' } }],
    ['string for a number', { stream_name: 'S', config: { max_deliver: 'lots' } }],
    ['fraction for an int', { stream_name: 'S', config: { ack_wait: 1.5 } }],
    ['negative uint', { stream_name: 'S', config: { opt_start_seq: -1 } }],
    ['number for a bool', { stream_name: 'S', config: { flow_control: 1 } }],
    ['unknown action', { stream_name: 'S', config: {}, action: 'upsert' }],
    ['array body', []],
  ])('refuses %s with 10025 invalid JSON', (_, body) => {
    const r = req(body);
    expect(r).toEqual({ code: 400, err_code: 10025, description: 'invalid JSON' });
  });

  it('treats a missing config as an empty one', () => {
    const r = req({ stream_name: 'S' });
    expect(isApiError(r) ? null : r.config).toEqual({});
  });
});

describe('resolveCreateTarget (subject forms, as nats-server 2.9.10 answers)', () => {
  it.each<[string, Partial<ConsumerConfig>, unknown]>([
    ['$JS.API.CONSUMER.CREATE.S', { ack_policy: 'explicit' }, { name: null, durable: false }],
    ['$JS.API.CONSUMER.CREATE.S', { name: 'e1' }, { name: 'e1', durable: false }],
    ['$JS.API.CONSUMER.CREATE.S', { durable_name: 'd1' }, 10020],
    ['$JS.API.CONSUMER.CREATE.S.n1', { name: 'n2' }, { name: 'n1', durable: false }],
    ['$JS.API.CONSUMER.CREATE.S.n1', { durable_name: 'n2' }, 10017],
    ['$JS.API.CONSUMER.CREATE.S.n3', { name: 'n3', durable_name: 'n4' }, 10017],
    ['$JS.API.CONSUMER.CREATE.S.n5', { name: 'n5', durable_name: 'n5' }, { name: 'n5', durable: true }],
    ['$JS.API.CONSUMER.CREATE.S.n6.s.a', { name: 'n6' }, 10131],
    ['$JS.API.CONSUMER.CREATE.S.n7.s.a', { name: 'n7', filter_subject: 's.b' }, 10131],
    ['$JS.API.CONSUMER.CREATE.S.n8.s.a', { name: 'n8', filter_subject: 's.a' }, { name: 'n8', durable: false }],
    ['$JS.API.CONSUMER.CREATE.KV_b.oc_1.$KV.b.>', { name: 'oc_1', filter_subject: '$KV.b.>' }, { name: 'oc_1', durable: false }],
    ['$JS.API.CONSUMER.DURABLE.CREATE.S.dd', { ack_policy: 'explicit' }, 10018],
    ['$JS.API.CONSUMER.DURABLE.CREATE.S.dd', { durable_name: 'de' }, 10017],
    ['$JS.API.CONSUMER.DURABLE.CREATE.S.dd', { name: 'dd' }, 10018],
    ['$JS.API.CONSUMER.DURABLE.CREATE.S.dd', { durable_name: 'dd', name: 'xx' }, 10132],
    ['$JS.API.CONSUMER.DURABLE.CREATE.S.dd', { durable_name: 'dd' }, { name: 'dd', durable: true }],
    ['$JS.API.CONSUMER.CREATE.S', { name: 'a b' }, 10103],
    ['$JS.API.CONSUMER.CREATE.S.*', {}, 10103],
    ['$JS.API.CONSUMER.CREATE.S', { name: 'a/b' }, { name: 'a/b', durable: false }],
    [`$JS.API.CONSUMER.DURABLE.CREATE.S.${'n'.repeat(256)}`, { durable_name: 'n'.repeat(256) }, 10102],
  ])('%s %j', (subject, cfg, want) => {
    const got = resolveCreateTarget(tokens(subject), cfg);
    if (typeof want === 'number') expect(errCode(got)).toBe(want);
    else expect(got).toEqual(want);
  });

  it('answers nothing for a durable name split over extra tokens', () => {
    expect(resolveCreateTarget(tokens('$JS.API.CONSUMER.DURABLE.CREATE.S.d.x'), { durable_name: 'd.x' })).toBeNull();
  });

  it('makes 8-character names for unnamed ephemerals', () => {
    const a = randomConsumerName();
    expect(a).toMatch(/^[A-Za-z0-9]{8}$/);
    expect(randomConsumerName()).not.toBe(a);
  });
});

describe('buildConsumerConfig defaults (echoed as nats-server 2.9.10 does)', () => {
  it('pull, explicit ack, ephemeral', () => {
    const c = build({ ack_policy: 'explicit' });
    expect(configJson(c as ConsumerConfig)).toEqual({
      name: 'c1',
      deliver_policy: 'all',
      ack_policy: 'explicit',
      ack_wait: 30_000_000_000,
      max_deliver: -1,
      replay_policy: 'instant',
      max_waiting: 512,
      max_ack_pending: 1000,
      inactive_threshold: 5_000_000_000,
      num_replicas: 0,
    });
  });

  it('pull durable with ack none: no ack_wait, no max_ack_pending, no inactive threshold', () => {
    const c = build({ durable_name: 'D' }, stream(), 'D', true);
    expect(configJson(c as ConsumerConfig)).toEqual({
      durable_name: 'D',
      name: 'D',
      deliver_policy: 'all',
      ack_policy: 'none',
      max_deliver: -1,
      replay_policy: 'instant',
      max_waiting: 512,
      num_replicas: 0,
    });
  });

  it('push with flow control and heartbeat: no max_waiting', () => {
    const c = build({ deliver_subject: 'dl', flow_control: true, idle_heartbeat: 300_000_000 });
    expect(JSON.stringify(configJson(c as ConsumerConfig))).toBe(
      '{"name":"c1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant",' +
        '"idle_heartbeat":300000000,"flow_control":true,"deliver_subject":"dl","inactive_threshold":5000000000,"num_replicas":0}',
    );
  });

  it('backoff sets ack_wait to its first step', () => {
    const c = build({ ack_policy: 'explicit', ack_wait: 7_000_000_000, backoff: [1_000_000_000, 3_000_000_000], max_deliver: 5 }) as ConsumerConfig;
    expect(c.ack_wait).toBe(1_000_000_000);
    expect(c.backoff).toEqual([1_000_000_000, 3_000_000_000]);
  });

  it('max_deliver 0 becomes -1, max_ack_pending -1 stays, negative ephemeral threshold becomes 5s', () => {
    const c = build({ ack_policy: 'explicit', max_deliver: 0, max_ack_pending: -1, inactive_threshold: -1 }) as ConsumerConfig;
    expect(c.max_deliver).toBe(-1);
    expect(c.max_ack_pending).toBe(-1);
    expect(c.inactive_threshold).toBe(5_000_000_000);
  });

  it('stream consumer limits supply the defaults', () => {
    const c = build({ ack_policy: 'explicit' }, stream({ consumer_limits: { inactive_threshold: 9_000_000_000, max_ack_pending: 7 } })) as ConsumerConfig;
    expect(c.inactive_threshold).toBe(9_000_000_000);
    expect(c.max_ack_pending).toBe(7);
  });
});

describe('buildConsumerConfig checks (err_codes from nats-server 2.9.10)', () => {
  const fs = stream({ subjects: ['f.a.*', 'g'] });
  it.each<[string, Partial<ConsumerConfig>, number]>([
    ['heartbeat on pull', { idle_heartbeat: 1_000_000_000 }, 10088],
    ['flow control on pull', { flow_control: true }, 10089],
    ['backoff longer than max_deliver', { backoff: [1e9, 2e9], max_deliver: 2, ack_policy: 'explicit' }, 10116],
    ['backoff with max_deliver 1', { max_deliver: 1, backoff: [1e9] }, 10116],
    ['last_per_subject without filter', { deliver_policy: 'last_per_subject' }, 10094],
    ['by_start_sequence without seq', { deliver_policy: 'by_start_sequence' }, 10094],
    ['by_start_time without time', { deliver_policy: 'by_start_time' }, 10094],
    ['all with a start seq', { deliver_policy: 'all', opt_start_seq: 3 }, 10094],
    ['new with a start time', { deliver_policy: 'new', opt_start_time: '2020-01-01T00:00:00Z' }, 10094],
    ['wildcard deliver subject', { deliver_subject: 'x.*' }, 10079],
    ['invalid deliver subject', { deliver_subject: 'a..b' }, 10112],
    ['deliver subject inside the stream', { deliver_subject: 'g' }, 10081],
    ['max_waiting on push', { deliver_subject: 'dd', max_waiting: 10 }, 10080],
    ['negative max_waiting', { max_waiting: -1 }, 10087],
    ['heartbeat below 100ms', { deliver_subject: 'd1', idle_heartbeat: 50_000_000 }, 10083],
    ['flow control without heartbeat', { deliver_subject: 'x', flow_control: true }, 10108],
    ['max_ack_pending with ack none on push', { deliver_subject: 'ds', max_ack_pending: 5 }, 10082],
    ['negative max_batch', { max_batch: -2 }, 10114],
    ['max_expires below 1ms', { max_expires: 100 }, 10115],
    ['description over 4096', { description: 'x'.repeat(5000) }, 10107],
    ['replicas', { num_replicas: 3 }, 10074],
    ['filter outside the stream', { filter_subject: 'f.b' }, 10093],
    ['filter only partly overlapping', { filter_subject: 'f.*.b' }, 10093],
    ['filter below a literal stream subject', { filter_subject: 'g.>' }, 10093],
    ['invalid filter', { filter_subject: 'f..a' }, 10093],
    ['filter_subject and filter_subjects', { filter_subject: 'g', filter_subjects: ['f.a.b'] }, 10136],
    ['empty filter in filter_subjects', { filter_subjects: ['g', ''] }, 10139],
    ['overlapping filter_subjects', { filter_subjects: ['f.a.*', 'f.a.b'] }, 10138],
  ])('%s', (_, raw, code) => {
    expect(errCode(build(raw, fs))).toBe(code);
  });

  it.each(['f.>', 'f.a.b', '>', 'g', ''])('accepts filter %j on subjects f.a.*, g', (f) => {
    expect(isApiError(build({ filter_subject: f }, fs))).toBe(false);
  });

  it('accepts disjoint filter_subjects', () => {
    expect(isApiError(build({ filter_subjects: ['f.a.b', 'g'] }, fs))).toBe(false);
  });

  it('error texts match nats-server', () => {
    expect(build({ deliver_policy: 'last_per_subject' })).toEqual({
      code: 400,
      err_code: 10094,
      description: 'consumer delivery policy is deliver last per subject, but optional filter subject is not set',
    });
    expect(build({ deliver_policy: 'new', opt_start_seq: 3 })).toEqual({
      code: 400,
      err_code: 10094,
      description: 'consumer delivery policy is deliver new, but optional start sequence is also set',
    });
  });
});

describe('checkAgainstStream (workqueue, max_consumers)', () => {
  const wq = stream({ name: 'W', subjects: ['w.>'], retention: 'workqueue' });
  const cfg = (raw: Partial<ConsumerConfig>, name: string): ConsumerConfig => build(raw, wq, name) as ConsumerConfig;

  it('pull with ack none is 10084, ack all is 10098, push ack none is 10098', () => {
    expect(errCode(checkAgainstStream(cfg({}, 'w1'), wq, [], true, 0))).toBe(10084);
    expect(errCode(checkAgainstStream(cfg({ ack_policy: 'all' }, 'w2'), wq, [], true, 0))).toBe(10098);
    expect(errCode(checkAgainstStream(cfg({ deliver_subject: 'pw' }, 'w6'), wq, [], true, 0))).toBe(10098);
  });

  it('a second unfiltered consumer is 10099, overlapping filters are 10100', () => {
    const w3 = { name: 'w3', config: cfg({ ack_policy: 'explicit' }, 'w3') };
    expect(errCode(checkAgainstStream(cfg({ ack_policy: 'explicit' }, 'w4'), wq, [w3], true, 1))).toBe(10099);
    expect(errCode(checkAgainstStream(cfg({ ack_policy: 'explicit', filter_subject: 'w.a' }, 'w5'), wq, [w3], true, 1))).toBe(10100);
    const wa = { name: 'wa', config: cfg({ ack_policy: 'explicit', filter_subject: 'w.a.*' }, 'wa') };
    expect(errCode(checkAgainstStream(cfg({ ack_policy: 'explicit', filter_subject: 'w.*.b' }, 'wb'), wq, [wa], true, 1))).toBe(10100);
    expect(checkAgainstStream(cfg({ ack_policy: 'explicit', filter_subject: 'w.b' }, 'wc'), wq, [wa], true, 1)).toBeNull();
    // A consumer is not its own competitor on update.
    expect(checkAgainstStream(w3.config, wq, [w3], false, 1)).toBeNull();
  });

  it('max_consumers counts only new consumers', () => {
    const s = stream({ max_consumers: 1 });
    const c = build({}, s) as ConsumerConfig;
    expect(errCode(checkAgainstStream(c, s, [], true, 1))).toBe(10026);
    expect(checkAgainstStream(c, s, [], false, 1)).toBeNull();
  });
});

describe('checkUpdate', () => {
  const base = build({ durable_name: 'D1', ack_policy: 'explicit' }, stream(), 'D1', true) as ConsumerConfig;
  const next = (raw: Partial<ConsumerConfig>): ConsumerConfig =>
    build({ durable_name: 'D1', ack_policy: 'explicit', ...raw }, stream(), 'D1', true) as ConsumerConfig;

  it.each<[Partial<ConsumerConfig>, string]>([
    [{ ack_policy: 'all' }, 'ack policy can not be updated'],
    [{ deliver_policy: 'new' }, 'deliver policy can not be updated'],
    [{ max_waiting: 5 }, 'max waiting can not be updated'],
    // A pull consumer turned push trips over max_waiting first, as in nats-server.
    [{ deliver_subject: 'foo' }, 'max waiting can not be updated'],
    [{ replay_policy: 'original' }, 'replay policy can not be updated'],
  ])('%j → 10012 %s', (raw, text) => {
    expect(checkUpdate(base, next(raw), false)).toEqual({ code: 500, err_code: 10012, description: text });
  });

  it('allows ack_wait, max_deliver, description and filter changes', () => {
    expect(checkUpdate(base, next({ ack_wait: 2e9, max_deliver: 7, description: 'hi', filter_subject: 's.b' }), false)).toBeNull();
  });

  it('a push consumer moves its deliver subject only while nobody listens', () => {
    const p1 = build({ durable_name: 'P1', deliver_subject: 'dp1' }, stream(), 'P1', true) as ConsumerConfig;
    const p2 = build({ durable_name: 'P1', deliver_subject: 'dp2' }, stream(), 'P1', true) as ConsumerConfig;
    expect(errCode(checkUpdate(p1, p2, true))).toBe(10013);
    expect(checkUpdate(p1, p2, false)).toBeNull();
    const hb = build({ durable_name: 'P1', deliver_subject: 'dp1', idle_heartbeat: 1e9 }, stream(), 'P1', true) as ConsumerConfig;
    expect(checkUpdate(p1, hb, true)?.description).toBe('heart beats can not be updated');
  });

  it('sameConfig compares the filled-in configs', () => {
    expect(sameConfig(base, next({}))).toBe(true);
    expect(sameConfig(base, next({ max_deliver: 5 }))).toBe(false);
  });
});

describe('consumer times (RFC 3339 as nats-server writes them)', () => {
  it('formats microseconds with trailing zeros dropped', async () => {
    const { formatTimeUs } = await import('../../src/jetstream/consumer-time.js');
    expect(formatTimeUs(Date.UTC(2026, 10, 27, 5, 30, 35) * 1000 + 744664)).toBe('2026-11-27T05:30:35.744664Z');
    expect(formatTimeUs(Date.UTC(2026, 10, 27, 5, 30, 35) * 1000 + 300000)).toBe('2026-11-27T05:30:35.3Z');
    expect(formatTimeUs(Date.UTC(2026, 10, 27, 5, 30, 35) * 1000)).toBe('2026-11-27T05:30:35Z');
  });

  it('parses nanosecond and offset forms to microseconds', async () => {
    const { parseTimeToUs } = await import('../../src/jetstream/consumer-time.js');
    const base = Date.UTC(2020, 0, 1) * 1000;
    expect(parseTimeToUs('2020-01-01T00:00:00.123456789Z')).toBe(base + 123456);
    expect(parseTimeToUs('2020-01-01T01:00:00+01:00')).toBe(base);
    expect(parseTimeToUs('2020-01-01T00:00:00Z')).toBe(base);
    expect(parseTimeToUs('2020-13-01T00:00:00Z')).toBeNull();
    expect(parseTimeToUs('yesterday')).toBeNull();
  });
});
