/**
 * KV buckets through @nats-io/kv, one table run against Debian's nats-server (`-js -sd <dir>`)
 * and our bundle with the same flags: every case passes on the real server first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KvWatchEntry } from '@nats-io/kv';
import { pollUntil, serverKinds, stopAllServers, within } from '../helpers/servers.js';
import { expectApiError, JsServer, ns } from '../helpers/js.js';

/** Drains a finite iterator (history, keys) into an array. */
async function drain<T>(it: AsyncIterable<T>, ms = 5000): Promise<T[]> {
  const out: T[] = [];
  await within(
    (async () => {
      for await (const v of it) out.push(v);
    })(),
    ms,
    'iterator to end',
  );
  return out;
}

describe.each(serverKinds())('kv: %s', (kind) => {
  let server: JsServer;
  let nc: NatsConnection;
  let kvm: Kvm;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    server = await JsServer.start(kind);
    nc = await server.connect();
    kvm = new Kvm(nc);
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await server?.closeConnections();
    await stopAllServers();
  });

  it('create: the bucket is stream KV_<b> with the KV settings; status reports them', async () => {
    const kv = await kvm.create('cfg', { history: 5 });
    const si = await jsm.streams.info('KV_cfg');
    expect(si.config).toMatchObject({
      name: 'KV_cfg',
      subjects: ['$KV.cfg.>'],
      retention: 'limits',
      max_msgs_per_subject: 5,
      discard: 'new',
      allow_rollup_hdrs: true,
      allow_direct: true,
      storage: 'file',
      num_replicas: 1,
    });
    const st = await kv.status();
    expect(st.bucket).toBe('cfg');
    expect(st.history).toBe(5);
    expect(st.values).toBe(0);
    expect(st.ttl).toBe(0);
    expect(st.storage).toBe('file');
    await kv.put('a', 'x');
    expect((await kv.status()).values).toBe(1);
    // Creating again binds to the same bucket.
    const again = await kvm.create('cfg', { history: 5 });
    expect((await again.get('a'))?.string()).toBe('x');
  });

  it('put / get: revisions are stream sequences; a missing key is null', async () => {
    const kv = await kvm.create('pg', { history: 3 });
    expect(await kv.put('k.one', 'v1')).toBe(1);
    expect(await kv.put('k.two', 'v2')).toBe(2);
    expect(await kv.put('k.one', 'v3')).toBe(3);
    const e = await kv.get('k.one');
    expect(e).toMatchObject({ bucket: 'pg', key: 'k.one', revision: 3, operation: 'PUT', length: 2 });
    expect(e?.string()).toBe('v3');
    expect(e?.created.getTime()).toBeGreaterThan(Date.now() - 60_000);
    const old = await kv.get('k.one', { revision: 1 });
    expect([old?.revision, old?.string()]).toEqual([1, 'v1']);
    // A revision of another key is not this key's entry.
    expect(await kv.get('k.one', { revision: 2 })).toBeNull();
    expect(await kv.get('k.none')).toBeNull();
    // Bound without any API call (open), get goes through MSG.GET instead of DIRECT.GET.
    const bound = await kvm.open('pg');
    expect((await bound.get('k.two'))?.string()).toBe('v2');
    expect(await bound.get('k.none')).toBeNull();
  });

  it('create only when absent; update only at the given revision', async () => {
    const kv = await kvm.create('cu');
    expect(await kv.create('c', '1')).toBe(1);
    await expectApiError(kv.create('c', '2'), 10071, 400, 'wrong last sequence: 1');
    expect(await kv.update('c', '2', 1)).toBe(2);
    await expectApiError(kv.update('c', '3', 1), 10071, 400, 'wrong last sequence: 2');
    expect((await kv.get('c'))?.string()).toBe('2');
    // After a delete, create succeeds again (the client retries at the delete marker's revision).
    await kv.delete('c');
    expect(await kv.create('c', 'fresh')).toBe(4);
    expect((await kv.get('c'))?.string()).toBe('fresh');
  });

  it('delete and purge leave markers; history shows every revision', async () => {
    const kv = await kvm.create('dp', { history: 10 });
    await kv.put('x', '1');
    await kv.put('x', '2');
    await kv.put('y', 'keep');
    await kv.delete('x');
    const del = await kv.get('x');
    expect(del).toMatchObject({ operation: 'DEL', revision: 4, length: 0 });
    let hist = await drain(await kv.history({ key: 'x' }));
    expect(hist.map((e) => [e.revision, e.operation, e.string()])).toEqual([
      [1, 'PUT', '1'],
      [2, 'PUT', '2'],
      [4, 'DEL', ''],
    ]);
    await kv.put('x', '3');
    await kv.purge('x');
    hist = await drain(await kv.history({ key: 'x' }));
    expect(hist.map((e) => [e.revision, e.operation])).toEqual([[6, 'PURGE']]);
    expect((await kv.get('x'))?.operation).toBe('PURGE');
    expect((await kv.get('y'))?.string()).toBe('keep');
    const si = await jsm.streams.info('KV_dp');
    expect(si.state).toMatchObject({ messages: 2, last_seq: 6 });
  });

  it('history is bounded by the bucket history', async () => {
    const kv = await kvm.create('hb', { history: 2 });
    for (let i = 1; i <= 4; i++) await kv.put('k', String(i));
    const hist = await drain(await kv.history({ key: 'k' }));
    expect(hist.map((e) => [e.revision, e.string()])).toEqual([
      [3, '3'],
      [4, '4'],
    ]);
  });

  it('keys lists live keys only', async () => {
    const kv = await kvm.create('ks');
    await kv.put('a', '1');
    await kv.put('b.c', '2');
    await kv.put('d', '3');
    await kv.put('a', '4');
    await kv.delete('d');
    const keys = await drain(await kv.keys());
    expect([...keys].sort()).toEqual(['a', 'b.c']);
    const filtered = await drain(await kv.keys('b.>'));
    expect(filtered).toEqual(['b.c']);
    const empty = await kvm.create('ks_empty');
    expect(await drain(await empty.keys())).toEqual([]);
  });

  it('watch: the initial values (newest per key), then updates as they happen', async () => {
    const kv = await kvm.create('wt');
    await kv.put('a', 'a1');
    await kv.put('b', 'b1');
    await kv.put('a', 'a2');
    const seen: KvWatchEntry[] = [];
    const w = await kv.watch();
    const loop = (async () => {
      for await (const e of w) {
        seen.push(e);
        if (e.key === 'c') break;
      }
    })();
    await pollUntil(
      async () => seen.length >= 2,
      (v) => v,
      5000,
    );
    // isUpdate comes from the ack subject's pending token: the last initial entry (pending 0)
    // already counts as caught up.
    expect(seen.map((e) => [e.key, e.string(), e.revision, e.isUpdate])).toEqual([
      ['b', 'b1', 2, false],
      ['a', 'a2', 3, true],
    ]);
    await kv.put('b', 'b2');
    await kv.delete('a');
    await kv.put('c', 'c1');
    await within(loop, 5000, 'watch sees c');
    expect(seen.slice(2).map((e) => [e.key, e.operation, e.revision, e.isUpdate])).toEqual([
      ['b', 'PUT', 4, true],
      ['a', 'DEL', 5, true],
      ['c', 'PUT', 6, true],
    ]);
    w.stop();

    // A watch on one key sees only that key, and an empty bucket is initialized at once.
    const one = await kv.watch({ key: 'b' });
    const first = await within(
      (async () => {
        for await (const e of one) return e;
        return null;
      })(),
      5000,
      'watch on b',
    );
    expect([first?.key, first?.string()]).toEqual(['b', 'b2']);
    one.stop();
  });

  it('watch with include history replays every revision; updates-only starts with the next change', async () => {
    const kv = await kvm.create('wh', { history: 5 });
    await kv.put('a', '1');
    await kv.put('a', '2');
    await kv.put('b', '3');
    const hist: KvWatchEntry[] = [];
    const hw = await kv.watch({ include: KvWatchInclude.AllHistory });
    const histLoop = (async () => {
      for await (const e of hw) {
        hist.push(e);
        if (e.revision === 4) break;
      }
    })();
    const upd: KvWatchEntry[] = [];
    const uw = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
    const updLoop = (async () => {
      for await (const e of uw) {
        upd.push(e);
        if (e.revision === 4) break;
      }
    })();
    await pollUntil(
      async () => hist.length,
      (n) => n >= 3,
      5000,
    );
    await kv.put('a', '4');
    await within(Promise.all([histLoop, updLoop]), 5000, 'both watchers see revision 4');
    expect(hist.map((e) => [e.key, e.string(), e.revision])).toEqual([
      ['a', '1', 1],
      ['a', '2', 2],
      ['b', '3', 3],
      ['a', '4', 4],
    ]);
    expect(upd.map((e) => [e.key, e.string(), e.revision, e.isUpdate])).toEqual([['a', '4', 4, true]]);
  });

  it('a bucket ttl becomes the stream max_age; entries expire', async () => {
    const kv = await kvm.create('ttl', { ttl: 1000 });
    const st = await kv.status();
    expect(st.ttl).toBe(1000);
    expect(st.streamInfo.config.max_age).toBe(ns(1000));
    await kv.put('k', 'v');
    expect((await kv.get('k'))?.string()).toBe('v');
    const gone = await pollUntil(
      () => kv.get('k'),
      (e) => e === null,
      4000,
    );
    expect(gone).toBeNull();
  });

  it('status counts values; deleting the bucket removes its stream', async () => {
    const kv = await kvm.create('st', { history: 4 });
    await kv.put('a', '1');
    await kv.put('a', '2');
    await kv.put('b', '3');
    const st = await kv.status();
    expect(st.values).toBe(3);
    expect(st.history).toBe(4);
    expect(st.size).toBeGreaterThan(0);
    expect(st.streamInfo.config.name).toBe('KV_st');
    await kv.destroy();
    await expectApiError(jsm.streams.info('KV_st'), 10059, 404);
  });

  it('values survive a server restart on the same store; memory streams do not', async () => {
    const own = await JsServer.start(kind);
    try {
      let c = await own.connect();
      let m = new Kvm(c);
      const kv = await m.create('persist', { history: 3 });
      await kv.put('p.a', 'one');
      await kv.put('p.b', 'two');
      await kv.put('p.a', 'three');
      await kv.delete('p.b');
      const j = await jetstreamManager(c);
      await j.streams.add({ name: 'VOLATILE', subjects: ['vol'], storage: StorageType.Memory });
      await j.jetstream().publish('vol', 'gone');

      await own.restart();
      c = await own.connect();
      m = new Kvm(c);
      const back = await m.open('persist');
      const a = await back.get('p.a');
      expect([a?.revision, a?.string(), a?.operation]).toEqual([3, 'three', 'PUT']);
      expect((await back.get('p.b'))?.operation).toBe('DEL');
      const hist = await drain(await back.history({ key: 'p.a' }));
      expect(hist.map((e) => [e.revision, e.string()])).toEqual([
        [1, 'one'],
        [3, 'three'],
      ]);
      expect(await drain(await back.keys())).toEqual(['p.a']);
      const st = await back.status();
      // p.a 1 and 3, p.b 2 and its delete marker 4.
      expect(st.values).toBe(4);
      expect(st.history).toBe(3);
      // The next revision continues after the stored ones.
      expect(await back.put('p.c', 'four')).toBe(5);
      const j2 = await jetstreamManager(c);
      await expectApiError(j2.streams.info('VOLATILE'), 10059, 404);
    } finally {
      await own.stop();
    }
  });
});
