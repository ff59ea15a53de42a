/**
 * JetStream consumers, one table run with the real nats.js clients against Debian's nats-server
 * (`-js -sd <dir>`) and our bundle with the same flags: every case passes on the real server
 * first, so a failure on nats-edge is a deviation from it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInbox, headers, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  RetentionPolicy,
  jetstreamManager,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { pollUntil, serverKinds, stopAllServers, within } from '../helpers/servers.js';
import { apiRequest, collect, expectApiError, expectErrorBody, JsServer, ns } from '../helpers/js.js';

/** [major, minor] of the server's INFO version: filter_subjects needs 2.10 in nats.js. */
function serverMinor(nc: NatsConnection): number {
  const [maj, min] = (nc.info?.version ?? '0.0.0').split('.').map(Number);
  return (maj ?? 0) * 100 + (min ?? 0);
}

describe.each(serverKinds())('jetstream consumers: %s', (kind) => {
  let server: JsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;

  beforeAll(async () => {
    server = await JsServer.start(kind);
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
  });

  afterAll(async () => {
    await server?.closeConnections();
    await stopAllServers();
  });

  async function stream(name: string, subjects: string[], msgs: Array<[string, string]> = []): Promise<void> {
    await jsm.streams.add({ name, subjects });
    for (const [s, d] of msgs) await js.publish(s, d);
  }

  function seqMsgs(subject: string, n: number): Array<[string, string]> {
    return Array.from({ length: n }, (_, i) => [subject, `m${i + 1}`]);
  }

  /** Consumer info once `done` holds (acks are applied asynchronously by nats-server). */
  function infoWhen(s: string, c: string, done: (ci: ConsumerInfo) => boolean, ms = 3000): Promise<ConsumerInfo> {
    return pollUntil(() => jsm.consumers.info(s, c), done, ms);
  }

  /** Fetches up to `max`; returns at once when `max` arrive, else when the pull expires (nats.js: >= 1 s). */
  async function fetchAll(s: string, c: string, max: number, expiresMs = 1000): Promise<JsMsg[]> {
    const consumer = await js.consumers.get(s, c);
    const out: JsMsg[] = [];
    for await (const m of await consumer.fetch({ max_messages: max, expires: expiresMs })) out.push(m);
    return out;
  }

  it('create: the echoed config carries the pull defaults; DURABLE.CREATE and the named form', async () => {
    await stream('CDEF', ['cdef.>'], seqMsgs('cdef.a', 2));
    const res = await apiRequest(nc, '$JS.API.CONSUMER.DURABLE.CREATE.CDEF.d1', {
      stream_name: 'CDEF',
      config: { durable_name: 'd1', ack_policy: 'explicit' },
    });
    expect(res.type).toBe('io.nats.jetstream.api.v1.consumer_create_response');
    expect(res.error).toBeUndefined();
    expect(res['stream_name']).toBe('CDEF');
    expect(res['name']).toBe('d1');
    expect(res['config']).toMatchObject({
      durable_name: 'd1',
      deliver_policy: 'all',
      ack_policy: 'explicit',
      ack_wait: 30_000_000_000,
      max_deliver: -1,
      replay_policy: 'instant',
      max_waiting: 512,
      max_ack_pending: 1000,
    });
    expect(res['num_pending']).toBe(2);
    expect(res['num_ack_pending']).toBe(0);
    expect(res['delivered']).toMatchObject({ consumer_seq: 0, stream_seq: 0 });
    expect(res['ack_floor']).toMatchObject({ consumer_seq: 0, stream_seq: 0 });

    const named = await apiRequest(nc, '$JS.API.CONSUMER.CREATE.CDEF.n1.cdef.a', {
      stream_name: 'CDEF',
      config: { durable_name: 'n1', ack_policy: 'explicit', filter_subject: 'cdef.a' },
    });
    expect(named.error).toBeUndefined();
    expect(named['name']).toBe('n1');
    expect((named['config'] as Record<string, unknown>)['filter_subject']).toBe('cdef.a');
    const mismatch = await apiRequest(nc, '$JS.API.CONSUMER.CREATE.CDEF.n2.cdef.a', {
      stream_name: 'CDEF',
      config: { durable_name: 'n2', ack_policy: 'explicit', filter_subject: 'cdef.b' },
    });
    expectErrorBody(mismatch, 10131, 400);
    // The ack policy can not change on update.
    await expectApiError(jsm.consumers.update('CDEF', 'd1', { ack_policy: AckPolicy.None } as never), 10012, 500);
    await expectApiError(jsm.consumers.info('CDEF', 'n2'), 10014, 404, 'consumer not found');
  });

  it('durable pull: fetch, next and consume deliver in order with pending counts', async () => {
    await stream('PULL', ['pull.>'], seqMsgs('pull.a', 5));
    await jsm.consumers.add('PULL', { durable_name: 'p', ack_policy: AckPolicy.Explicit });
    const c = await js.consumers.get('PULL', 'p');

    const batch = await c.fetch({ max_messages: 3, expires: 2000 });
    const got: JsMsg[] = [];
    for await (const m of batch) {
      got.push(m);
      m.ack();
    }
    expect(got.map((m) => [m.seq, m.subject, m.string(), m.info.deliveryCount, m.info.pending, m.redelivered])).toEqual([
      [1, 'pull.a', 'm1', 1, 4, false],
      [2, 'pull.a', 'm2', 1, 3, false],
      [3, 'pull.a', 'm3', 1, 2, false],
    ]);
    expect(got[0]?.info.stream).toBe('PULL');
    expect(got[0]?.info.consumer).toBe('p');
    expect(got.map((m) => m.info.deliverySequence)).toEqual([1, 2, 3]);

    const n = await c.next({ expires: 2000 });
    expect([n?.seq, n?.string(), n?.info.pending]).toEqual([4, 'm4', 1]);
    await n?.ackAck();

    const seen: number[] = [];
    const messages = await c.consume({ max_messages: 10, expires: 2000 });
    const done = (async () => {
      for await (const m of messages) {
        seen.push(m.seq);
        m.ack();
        if (m.seq === 6) break;
      }
    })();
    await js.publish('pull.a', 'm6');
    await within(done, 5000, 'consume got seq 5 and 6');
    expect(seen).toEqual([5, 6]);

    const info = await infoWhen('PULL', 'p', (ci) => ci.num_ack_pending === 0 && ci.ack_floor.stream_seq === 6);
    expect(info).toMatchObject({ num_pending: 0, num_ack_pending: 0, num_redelivered: 0 });
    expect(info.delivered).toMatchObject({ consumer_seq: 6, stream_seq: 6 });
    expect(info.ack_floor).toMatchObject({ consumer_seq: 6, stream_seq: 6 });

    // Nothing left: a fetch ends empty when it expires.
    const empty = await fetchAll('PULL', 'p', 5);
    expect(empty).toHaveLength(0);
  });

  it('nak redelivers at once, nak with delay after the delay, term never again', async () => {
    // One message at a time: nats-server applies acks asynchronously, so with more pending a
    // pull may get the next message before a nak'd one is back.
    await stream('NAK', ['nak'], seqMsgs('nak', 1));
    await jsm.consumers.add('NAK', { durable_name: 'k', ack_policy: AckPolicy.Explicit, ack_wait: ns(10_000) });
    const c = await js.consumers.get('NAK', 'k');

    const m1 = await c.next({ expires: 2000 });
    expect(m1?.seq).toBe(1);
    m1?.nak();
    const again = await c.next({ expires: 2000 });
    expect([again?.seq, again?.info.deliveryCount, again?.redelivered]).toEqual([1, 2, true]);

    const nakAt = Date.now();
    again?.nak(400);
    await js.publish('nak', 'm2');
    const m2 = await c.next({ expires: 2000 });
    expect(m2?.seq).toBe(2);
    await m2?.ackAck();
    const delayed = await c.next({ expires: 3000 });
    const waited = Date.now() - nakAt;
    expect([delayed?.seq, delayed?.info.deliveryCount]).toEqual([1, 3]);
    expect(waited).toBeGreaterThanOrEqual(350);

    delayed?.term();
    expect(await c.next({ expires: 1000 })).toBeNull();
    const info = await infoWhen('NAK', 'k', (ci) => ci.num_ack_pending === 0);
    expect(info).toMatchObject({ num_ack_pending: 0, num_pending: 0 });
    expect(info.ack_floor.stream_seq).toBe(2);
  });

  it('ack_wait redelivers with a growing delivery count until max_deliver', async () => {
    await stream('AW', ['aw'], seqMsgs('aw', 1));
    await jsm.consumers.add('AW', { durable_name: 'w', ack_policy: AckPolicy.Explicit, ack_wait: ns(500), max_deliver: 3 });
    const c = await js.consumers.get('AW', 'w');
    const first = await c.next({ expires: 2000 });
    const t0 = Date.now();
    expect([first?.seq, first?.info.deliveryCount, first?.redelivered]).toEqual([1, 1, false]);
    const second = await c.next({ expires: 3000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect([second?.seq, second?.info.deliveryCount, second?.redelivered]).toEqual([1, 2, true]);
    expect(second?.info.deliverySequence).toBe(2);
    const third = await c.next({ expires: 3000 });
    expect([third?.seq, third?.info.deliveryCount]).toEqual([1, 3]);
    // max_deliver reached: no fourth delivery even after another ack_wait.
    expect(await c.next({ expires: 1200 })).toBeNull();
    const info = await jsm.consumers.info('AW', 'w');
    expect(info.delivered).toMatchObject({ consumer_seq: 3, stream_seq: 1 });
    expect(info.config.max_deliver).toBe(3);
    expect(info.config.ack_wait).toBe(ns(500));
  });

  it('working (+WPI) restarts the ack_wait timer', async () => {
    await stream('WPI', ['wpi'], seqMsgs('wpi', 1));
    await jsm.consumers.add('WPI', { durable_name: 'w', ack_policy: AckPolicy.Explicit, ack_wait: ns(800) });
    const c = await js.consumers.get('WPI', 'w');
    const m = await c.next({ expires: 2000 });
    const t0 = Date.now();
    expect(m?.seq).toBe(1);
    // Halfway through ack_wait the worker reports progress; the redelivery moves out by that much.
    await new Promise((r) => setTimeout(r, 400));
    m?.working();
    const back = await c.next({ expires: 4000 });
    expect([back?.seq, back?.info.deliveryCount]).toEqual([1, 2]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1100);
    await back?.ackAck();
  });

  it('ack_all: acking one message acks everything before it', async () => {
    await stream('AALL', ['aall'], seqMsgs('aall', 5));
    await jsm.consumers.add('AALL', { durable_name: 'a', ack_policy: AckPolicy.All, ack_wait: ns(10_000) });
    const msgs = await fetchAll('AALL', 'a', 5);
    expect(msgs.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    let info = await jsm.consumers.info('AALL', 'a');
    expect(info.num_ack_pending).toBe(5);
    await msgs[2]?.ackAck();
    info = await infoWhen('AALL', 'a', (ci) => ci.ack_floor.stream_seq === 3);
    expect(info.ack_floor).toMatchObject({ stream_seq: 3, consumer_seq: 3 });
    expect(info.num_ack_pending).toBe(2);
    await msgs[4]?.ackAck();
    info = await infoWhen('AALL', 'a', (ci) => ci.num_ack_pending === 0);
    expect(info.ack_floor.stream_seq).toBe(5);
    expect(info.config.ack_policy).toBe('all');
  });

  it('max_ack_pending caps outstanding messages; a freed slot lets the next one through', async () => {
    await stream('MAP', ['map'], seqMsgs('map', 5));
    await jsm.consumers.add('MAP', { durable_name: 'm', ack_policy: AckPolicy.Explicit, max_ack_pending: 2, ack_wait: ns(10_000) });
    const first = await fetchAll('MAP', 'm', 5);
    expect(first.map((m) => m.seq)).toEqual([1, 2]);
    let info = await jsm.consumers.info('MAP', 'm');
    expect(info).toMatchObject({ num_ack_pending: 2, num_pending: 3 });
    expect(info.config.max_ack_pending).toBe(2);
    await first[0]?.ackAck();
    const more = await fetchAll('MAP', 'm', 5);
    expect(more.map((m) => m.seq)).toEqual([3]);
    info = await jsm.consumers.info('MAP', 'm');
    expect(info).toMatchObject({ num_ack_pending: 2, num_pending: 2 });
  });

  it('deliver policies: all, last, new, by_start_sequence, by_start_time, last_per_subject', async () => {
    await stream('DP', ['dp.>'], [
      ['dp.a', '1'],
      ['dp.b', '2'],
      ['dp.a', '3'],
      ['dp.c', '4'],
      ['dp.b', '5'],
    ]);
    const third = await jsm.streams.getMessage('DP', { seq: 3 });
    expect(third).not.toBeNull();
    const add = (durable: string, extra: Record<string, unknown>): Promise<ConsumerInfo> =>
      jsm.consumers.add('DP', { durable_name: durable, ack_policy: AckPolicy.Explicit, ...extra });

    expect((await add('all', { deliver_policy: DeliverPolicy.All })).num_pending).toBe(5);
    expect((await add('last', { deliver_policy: DeliverPolicy.Last })).num_pending).toBe(1);
    expect((await add('new', { deliver_policy: DeliverPolicy.New })).num_pending).toBe(0);
    const bySeq = await add('seq', { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 4 });
    expect(bySeq.num_pending).toBe(2);
    expect(bySeq.config.opt_start_seq).toBe(4);
    const byTime = await add('time', { deliver_policy: DeliverPolicy.StartTime, opt_start_time: third?.timestamp });
    expect(byTime.num_pending).toBe(3);
    const lps = await add('lps', { deliver_policy: DeliverPolicy.LastPerSubject, filter_subject: 'dp.>' });
    expect(lps.num_pending).toBe(3);

    // Exact batch sizes: each fetch returns as soon as its batch is full.
    expect((await fetchAll('DP', 'all', 5)).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await fetchAll('DP', 'last', 1)).map((m) => m.seq)).toEqual([5]);
    expect((await fetchAll('DP', 'seq', 2)).map((m) => m.seq)).toEqual([4, 5]);
    expect((await fetchAll('DP', 'time', 3)).map((m) => m.seq)).toEqual([3, 4, 5]);
    // The newest message of each subject, in stream order.
    expect((await fetchAll('DP', 'lps', 3)).map((m) => [m.seq, m.subject])).toEqual([
      [3, 'dp.a'],
      [4, 'dp.c'],
      [5, 'dp.b'],
    ]);

    const cNew = await js.consumers.get('DP', 'new');
    const waiting = cNew.next({ expires: 3000 });
    // Publish only once the pull is registered at the server.
    await infoWhen('DP', 'new', (ci) => ci.num_waiting === 1);
    await js.publish('dp.d', '6');
    const fresh = await waiting;
    expect([fresh?.seq, fresh?.subject, fresh?.string()]).toEqual([6, 'dp.d', '6']);
    // Everything after the start goes to every consumer.
    expect((await fetchAll('DP', 'lps', 1)).map((m) => m.seq)).toEqual([6]);
    expect((await fetchAll('DP', 'last', 1)).map((m) => m.seq)).toEqual([6]);
    const seqInfo = await jsm.consumers.info('DP', 'seq');
    expect(seqInfo.num_pending).toBe(1);
  });

  it('filter_subject: only matching messages, num_pending and num_ack_pending exact', async () => {
    await stream('NP', ['np.>'], [
      ['np.a', '1'],
      ['np.b', '2'],
      ['np.a', '3'],
      ['np.a', '4'],
      ['np.b', '5'],
      ['np.a', '6'],
    ]);
    const created = await jsm.consumers.add('NP', { durable_name: 'fa', ack_policy: AckPolicy.Explicit, filter_subject: 'np.a', ack_wait: ns(10_000) });
    expect(created.config.filter_subject).toBe('np.a');
    expect(created.num_pending).toBe(4);
    const msgs = await fetchAll('NP', 'fa', 3);
    expect(msgs.map((m) => [m.seq, m.subject])).toEqual([
      [1, 'np.a'],
      [3, 'np.a'],
      [4, 'np.a'],
    ]);
    expect(msgs.map((m) => m.info.pending)).toEqual([3, 2, 1]);
    let info = await jsm.consumers.info('NP', 'fa');
    expect(info).toMatchObject({ num_pending: 1, num_ack_pending: 3, num_redelivered: 0 });
    expect(info.delivered).toMatchObject({ consumer_seq: 3, stream_seq: 4 });
    await msgs[0]?.ackAck();
    await msgs[1]?.ackAck();
    info = await infoWhen('NP', 'fa', (ci) => ci.num_ack_pending === 1);
    expect(info).toMatchObject({ num_pending: 1, num_ack_pending: 1 });
    expect(info.ack_floor).toMatchObject({ consumer_seq: 2, stream_seq: 3 });
    await js.publish('np.b', '7');
    await js.publish('np.a', '8');
    info = await jsm.consumers.info('NP', 'fa');
    expect(info.num_pending).toBe(2);
  });

  it('filter_subjects (2.10+): several filters on one consumer', async () => {
    // nats.js refuses filter_subjects below server 2.10: Debian's 2.9.10 can not prove this case.
    if (serverMinor(nc) < 210) return;
    await stream('FS', ['fs.>'], [
      ['fs.a', '1'],
      ['fs.b', '2'],
      ['fs.c', '3'],
      ['fs.a', '4'],
    ]);
    const ci = await jsm.consumers.add('FS', { durable_name: 'f', ack_policy: AckPolicy.Explicit, filter_subjects: ['fs.a', 'fs.c'] });
    expect(ci.config.filter_subjects).toEqual(['fs.a', 'fs.c']);
    expect(ci.num_pending).toBe(3);
    expect((await fetchAll('FS', 'f', 3)).map((m) => m.seq)).toEqual([1, 3, 4]);
  });

  it('ephemeral with inactive_threshold disappears when idle', async () => {
    await stream('EPH', ['eph'], seqMsgs('eph', 2));
    const ci = await jsm.consumers.add('EPH', { ack_policy: AckPolicy.Explicit, inactive_threshold: ns(500) });
    expect(ci.name).toMatch(/^[A-Za-z0-9]+$/);
    expect(ci.config.durable_name).toBeUndefined();
    expect(ci.config.inactive_threshold).toBe(ns(500));
    expect(ci.num_pending).toBe(2);
    expect((await jsm.consumers.info('EPH', ci.name)).name).toBe(ci.name);
    const gone = await pollUntil(
      async () => {
        try {
          await jsm.consumers.info('EPH', ci.name);
          return false;
        } catch {
          return true;
        }
      },
      (v) => v,
      5000,
    );
    expect(gone).toBe(true);
    await expectApiError(jsm.consumers.info('EPH', ci.name), 10014, 404, 'consumer not found');
    // nats-server drops the consumer from the stream's count a moment after it stops answering for it.
    const count = await pollUntil(async () => (await jsm.streams.info('EPH')).state.consumer_count, (n) => n === 0, 5000);
    expect(count).toBe(0);
  });

  it('ordered consumer: js.consumers.get(stream) reads everything in order, then new messages', async () => {
    await stream('ORD', ['ord.>'], [
      ['ord.a', '1'],
      ['ord.b', '2'],
      ['ord.a', '3'],
    ]);
    const c = await js.consumers.get('ORD');
    const seen: Array<[number, string, string]> = [];
    const messages = await c.consume();
    const done = (async () => {
      for await (const m of messages) {
        seen.push([m.seq, m.subject, m.string()]);
        if (m.seq === 4) break;
      }
    })();
    // The fourth message is published once the first three arrived.
    await pollUntil(
      async () => seen.length,
      (n) => n >= 3,
      5000,
    );
    await js.publish('ord.c', '4');
    await within(done, 5000, 'ordered consumer got seq 4');
    expect(seen).toEqual([
      [1, 'ord.a', '1'],
      [2, 'ord.b', '2'],
      [3, 'ord.a', '3'],
      [4, 'ord.c', '4'],
    ]);
    const filtered = await js.consumers.get('ORD', { filter_subjects: 'ord.a' });
    const fm = await filtered.fetch({ max_messages: 2, expires: 2000 });
    const fseqs: number[] = [];
    for await (const m of fm) fseqs.push(m.seq);
    expect(fseqs).toEqual([1, 3]);
  });

  it('push consumer: a core subscription on deliver_subject gets the stored subjects and acks with an empty reply', async () => {
    await stream('PUSH', ['push.>'], [
      ['push.a', '1'],
      ['push.b', '2'],
      ['push.a', '3'],
    ]);
    const sub = await server.connect();
    const { c } = collect(sub, 'deliver.push');
    await sub.flush();
    const ci = await jsm.consumers.add('PUSH', {
      durable_name: 'pd',
      ack_policy: AckPolicy.Explicit,
      deliver_subject: 'deliver.push',
      ack_wait: ns(10_000),
    });
    expect(ci.config.deliver_subject).toBe('deliver.push');
    const msgs = await c.until(3);
    expect(msgs.map((m) => [m.subject, m.string()])).toEqual([
      ['push.a', '1'],
      ['push.b', '2'],
      ['push.a', '3'],
    ]);
    expect(msgs[0]?.reply).toMatch(/^\$JS\.ACK\.PUSH\.pd\.1\.1\.1\.\d+\.2$/);
    expect(msgs[2]?.reply).toMatch(/^\$JS\.ACK\.PUSH\.pd\.1\.3\.3\.\d+\.0$/);
    await js.publish('push.c', '4');
    const [, , , fourth] = await c.until(4);
    expect([fourth?.subject, fourth?.string()]).toEqual(['push.c', '4']);
    for (const m of c.msgs) m.respond();
    await sub.flush();
    const info = await infoWhen('PUSH', 'pd', (x) => x.num_ack_pending === 0 && x.ack_floor.stream_seq === 4);
    expect(info).toMatchObject({ num_ack_pending: 0, num_pending: 0, push_bound: true });
    expect(info.ack_floor.stream_seq).toBe(4);
    expect(c.msgs).toHaveLength(4);
  });

  it('push consumer with deliver_group spreads messages over the queue members', async () => {
    await stream('PQ', ['pq']);
    const a = await server.connect();
    const b = await server.connect();
    const ca = collect(a, 'deliver.pq', 'workers').c;
    const cb = collect(b, 'deliver.pq', 'workers').c;
    await Promise.all([a.flush(), b.flush()]);
    await jsm.consumers.add('PQ', {
      durable_name: 'grp',
      ack_policy: AckPolicy.None,
      deliver_subject: 'deliver.pq',
      deliver_group: 'workers',
    });
    const N = 20;
    for (let i = 1; i <= N; i++) await js.publish('pq', String(i));
    await pollUntil(
      async () => ca.msgs.length + cb.msgs.length,
      (n) => n >= N,
      5000,
    );
    await Promise.all([a.flush(), b.flush()]);
    expect(ca.msgs.length + cb.msgs.length).toBe(N);
    expect(ca.msgs.length).toBeGreaterThan(0);
    expect(cb.msgs.length).toBeGreaterThan(0);
    const all = [...ca.msgs, ...cb.msgs].map((m) => Number(m.string())).sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    const info = await jsm.consumers.info('PQ', 'grp');
    expect(info.config.deliver_group).toBe('workers');
    expect(info.delivered.stream_seq).toBe(N);
  });

  it('deleting a consumer ends a waiting fetch; then it is 10014', async () => {
    await stream('CDEL', ['cdel']);
    await jsm.consumers.add('CDEL', { durable_name: 'gone', ack_policy: AckPolicy.Explicit });
    const c = await js.consumers.get('CDEL', 'gone');
    const started = Date.now();
    const iter = await c.fetch({ max_messages: 5, expires: 10_000 });
    const ended = (async () => {
      const got: JsMsg[] = [];
      try {
        for await (const m of iter) got.push(m);
        return { got, err: null as unknown };
      } catch (err) {
        return { got, err };
      }
    })();
    await infoWhen('CDEL', 'gone', (ci) => ci.num_waiting === 1);
    expect(await jsm.consumers.delete('CDEL', 'gone')).toBe(true);
    const r = await within(ended, 5000, 'fetch ends after the consumer is deleted');
    expect(r.got).toHaveLength(0);
    expect(Date.now() - started).toBeLessThan(9000);
    await expectApiError(jsm.consumers.info('CDEL', 'gone'), 10014, 404, 'consumer not found');
    await expectApiError(jsm.consumers.delete('CDEL', 'gone'), 10014, 404);
    expect((await jsm.streams.info('CDEL')).state.consumer_count).toBe(0);
  });

  it('raw pull requests: batch across messages, 408 with pending headers, 404 no_wait, heartbeats', async () => {
    await stream('RP', ['rp.>'], [
      ['rp.a', 'one'],
      ['rp.b', 'two'],
    ]);
    await jsm.consumers.add('RP', { durable_name: 'c', ack_policy: AckPolicy.Explicit, ack_wait: ns(10_000) });
    const inbox = createInbox();
    const { c } = collect(nc, inbox);
    await nc.flush();
    const status = (i: number): [number | undefined, string | undefined, string | undefined, string | undefined] => {
      const h = c.msgs[i]?.headers;
      return [h?.code, h?.description, h?.get('Nats-Pending-Messages') || undefined, h?.get('Nats-Last-Stream') || undefined];
    };

    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RP.c', JSON.stringify({ batch: 5, expires: ns(300) }), { reply: inbox });
    await c.until(3);
    // Deliveries show the stored subject, routed to the inbox; the ack subject has 9 tokens.
    expect(c.msgs.slice(0, 2).map((m) => [m.subject, m.string(), m.headers?.code ?? 0])).toEqual([
      ['rp.a', 'one', 0],
      ['rp.b', 'two', 0],
    ]);
    expect(c.msgs[0]?.reply).toMatch(/^\$JS\.ACK\.RP\.c\.1\.1\.1\.\d+\.1$/);
    expect(c.msgs[1]?.reply).toMatch(/^\$JS\.ACK\.RP\.c\.1\.2\.2\.\d+\.0$/);
    expect(c.msgs[2]?.subject).toBe(inbox);
    expect(c.msgs[2]?.data.length).toBe(0);
    expect(status(2)).toEqual([408, 'Request Timeout', '3', undefined]);
    expect(c.msgs[2]?.headers?.get('Nats-Pending-Bytes')).toBe('0');

    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RP.c', JSON.stringify({ batch: 5, no_wait: true }), { reply: inbox });
    await c.until(4);
    expect(status(3)).toEqual([404, 'No Messages', undefined, undefined]);

    // An empty body is one message, waiting for it.
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RP.c', '', { reply: inbox });
    await nc.flush();
    await js.publish('rp.c', 'three');
    await c.until(5);
    expect([c.msgs[4]?.subject, c.msgs[4]?.string()]).toEqual(['rp.c', 'three']);
    // A bare integer is the batch size.
    await js.publish('rp.d', 'four');
    await js.publish('rp.e', 'five');
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RP.c', '2', { reply: inbox });
    await c.until(7);
    expect(c.msgs.slice(5, 7).map((m) => m.string())).toEqual(['four', 'five']);

    // While idle, heartbeats every idle_heartbeat, then the 408 at expiry.
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RP.c', JSON.stringify({ batch: 1, expires: ns(1000), idle_heartbeat: ns(300) }), { reply: inbox });
    await within(
      (async () => {
        while (c.msgs[c.msgs.length - 1]?.headers?.code !== 408) await c.until(c.msgs.length + 1, 3000);
      })(),
      4000,
      'pull with heartbeats ends with 408',
    );
    const beats = c.msgs.slice(7, -1);
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(beats.length).toBeLessThanOrEqual(4);
    for (let i = 0; i < beats.length; i++) expect(status(7 + i)).toEqual([100, 'Idle Heartbeat', undefined, '5']);
    expect(beats[0]?.headers?.get('Nats-Last-Consumer')).toBe('5');
    expect(status(c.msgs.length - 1)).toEqual([408, 'Request Timeout', '1', undefined]);
  });

  it('a durable consumer keeps its config, ack floor and pending state across a restart', async () => {
    const own = await JsServer.start(kind);
    try {
      let c2 = await own.connect();
      let m2 = await jetstreamManager(c2);
      let j2 = jetstream(c2);
      await m2.streams.add({ name: 'DUR', subjects: ['dur.>'] });
      for (let i = 1; i <= 5; i++) await j2.publish('dur.x', `d${i}`);
      await m2.consumers.add('DUR', { durable_name: 'keep', ack_policy: AckPolicy.Explicit, filter_subject: 'dur.x', ack_wait: ns(1000) });
      const cons = await j2.consumers.get('DUR', 'keep');
      const got: JsMsg[] = [];
      for await (const m of await cons.fetch({ max_messages: 3, expires: 2000 })) got.push(m);
      expect(got.map((m) => m.seq)).toEqual([1, 2, 3]);
      await got[0]?.ackAck();
      await got[1]?.ackAck();
      await pollUntil(
        () => m2.consumers.info('DUR', 'keep'),
        (ci) => ci.ack_floor.stream_seq === 2,
        3000,
      );

      await own.restart();
      c2 = await own.connect();
      m2 = await jetstreamManager(c2);
      j2 = jetstream(c2);
      const info = await m2.consumers.info('DUR', 'keep');
      expect(info.config).toMatchObject({ durable_name: 'keep', filter_subject: 'dur.x', ack_wait: ns(1000), ack_policy: 'explicit' });
      expect(info.ack_floor.stream_seq).toBe(2);
      expect(info.num_pending).toBe(2);
      expect((await m2.streams.info('DUR')).state).toMatchObject({ messages: 5, last_seq: 5, consumer_count: 1 });
      // The unacked seq 3 comes back (redelivered or as pending), then 4 and 5; 1 and 2 never.
      const after = await j2.consumers.get('DUR', 'keep');
      const seqs: number[] = [];
      for await (const m of await after.fetch({ max_messages: 3, expires: 5000 })) {
        seqs.push(m.seq);
        m.ack();
      }
      expect(seqs.sort((x, y) => x - y)).toEqual([3, 4, 5]);
      expect((await j2.publish('dur.x', 'd6')).seq).toBe(6);
    } finally {
      await own.stop();
    }
  });

  it('consumer create errors: exact codes and texts', async () => {
    await stream('CE', ['ce.>']);
    const create = (subj: string, config: Record<string, unknown>, streamName = 'CE') =>
      apiRequest(nc, `$JS.API.${subj}`, { stream_name: streamName, config });
    expectErrorBody(
      await create('CONSUMER.CREATE.CE', { durable_name: 'zz', ack_policy: 'explicit' }),
      10020,
      400,
      'consumer expected to be ephemeral but a durable name was set in request',
    );
    expectErrorBody(
      await create('CONSUMER.DURABLE.CREATE.CE.aa', { durable_name: 'bb', ack_policy: 'explicit' }),
      10017,
      400,
      'consumer name in subject does not match durable name in request',
    );
    expectErrorBody(
      await create('CONSUMER.DURABLE.CREATE.CE.aa', { ack_policy: 'explicit' }),
      10018,
      400,
      'consumer expected to be durable but a durable name was not set',
    );
    expectErrorBody(
      await create('CONSUMER.DURABLE.CREATE.CE.w', { durable_name: 'w', ack_policy: 'explicit', deliver_subject: 'd.*' }),
      10079,
      400,
      'consumer deliver subject has wildcards',
    );
    expectErrorBody(
      await create('CONSUMER.DURABLE.CREATE.CE.b', { durable_name: 'b', ack_policy: 'explicit', backoff: [ns(200), ns(500)], max_deliver: 2 }),
      10116,
      400,
      'max deliver is required to be > length of backoff values',
    );
    expectErrorBody(
      await create('CONSUMER.DURABLE.CREATE.CE.h', { durable_name: 'h', ack_policy: 'explicit', idle_heartbeat: ns(1000) }),
      10088,
      400,
      'consumer idle heartbeat requires a push based consumer',
    );
    expectErrorBody(
      await create('CONSUMER.DURABLE.CREATE.CE.h', { durable_name: 'h', ack_policy: 'explicit', flow_control: true }),
      10089,
      400,
      'consumer flow control requires a push based consumer',
    );
    const names = await apiRequest(nc, '$JS.API.CONSUMER.NAMES.CE', { offset: 0 });
    expect(names['total']).toBe(0);
  });

  it('backoff sets ack_wait to its first step; an update changes description and max_deliver', async () => {
    await stream('BO', ['bo']);
    const created = await apiRequest(nc, '$JS.API.CONSUMER.DURABLE.CREATE.BO.b', {
      stream_name: 'BO',
      config: { durable_name: 'b', ack_policy: 'explicit', backoff: [ns(200), ns(500)], max_deliver: 3 },
    });
    expect(created['config']).toMatchObject({ ack_wait: ns(200), max_deliver: 3, backoff: [ns(200), ns(500)] });
    const updated = await apiRequest(nc, '$JS.API.CONSUMER.DURABLE.CREATE.BO.b', {
      stream_name: 'BO',
      config: { durable_name: 'b', ack_policy: 'explicit', backoff: [ns(200), ns(500)], max_deliver: 5, description: 'hello' },
    });
    expect(updated.error).toBeUndefined();
    expect(updated['config']).toMatchObject({ description: 'hello', max_deliver: 5, ack_wait: ns(200) });
    expect((await jsm.consumers.info('BO', 'b')).config.description).toBe('hello');
  });

  it('workqueue consumers: pull needs an ack policy (10084), filters must not overlap (10100)', async () => {
    await jsm.streams.add({ name: 'WQC', subjects: ['wqc.>'], retention: RetentionPolicy.Workqueue });
    const create = (d: string, config: Record<string, unknown>) =>
      apiRequest(nc, `$JS.API.CONSUMER.DURABLE.CREATE.WQC.${d}`, { stream_name: 'WQC', config: { durable_name: d, ...config } });
    // The sheet's text is `... requires explicit ack policy on workqueue stream`; 2.9.10 says this.
    expectErrorBody(await create('n', { ack_policy: 'none' }), 10084, 400, 'consumer in pull mode requires ack policy');
    expect((await create('f1', { ack_policy: 'explicit', filter_subject: 'wqc.a' })).error).toBeUndefined();
    expectErrorBody(
      await create('f2', { ack_policy: 'explicit', filter_subject: 'wqc.*' }),
      10100,
      400,
      'filtered consumer not unique on workqueue stream',
    );
    expect((await create('f3', { ack_policy: 'explicit', filter_subject: 'wqc.b' })).error).toBeUndefined();
    expect((await jsm.streams.info('WQC')).state.consumer_count).toBe(2);
  });

  it('raw pull statuses: push based 409, Consumer Deleted 409, Exceeded MaxWaiting 409, MaxBytes 409', async () => {
    await stream('RS', ['rs.>'], [
      ['rs.a', 'hello'],
      ['rs.b', 'plain'],
    ]);
    const inbox = createInbox();
    const { c } = collect(nc, inbox);
    await nc.flush();
    const last = (): [number | undefined, string | undefined] => [c.msgs[c.msgs.length - 1]?.headers?.code, c.msgs[c.msgs.length - 1]?.headers?.description];

    await jsm.consumers.add('RS', { durable_name: 'push', ack_policy: AckPolicy.Explicit, deliver_subject: createInbox() });
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RS.push', JSON.stringify({ batch: 1, expires: ns(500) }), { reply: inbox });
    await c.until(1);
    expect(last()).toEqual([409, 'Consumer is push based']);

    await jsm.consumers.add('RS', { durable_name: 'del', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New });
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RS.del', JSON.stringify({ batch: 1, expires: ns(3000) }), { reply: inbox });
    await infoWhen('RS', 'del', (ci) => ci.num_waiting === 1);
    await jsm.consumers.delete('RS', 'del');
    await c.until(2);
    expect(last()).toEqual([409, 'Consumer Deleted']);

    await jsm.consumers.add('RS', { durable_name: 'mw', ack_policy: AckPolicy.Explicit, max_waiting: 1, deliver_policy: DeliverPolicy.New });
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RS.mw', JSON.stringify({ batch: 1, expires: ns(1000) }), { reply: inbox });
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RS.mw', JSON.stringify({ batch: 1, expires: ns(1000) }), { reply: inbox });
    await c.until(3);
    expect(last()).toEqual([409, 'Exceeded MaxWaiting']);
    await c.until(4, 3000);
    expect(last()).toEqual([408, 'Request Timeout']);

    await jsm.consumers.add('RS', { durable_name: 'mb', ack_policy: AckPolicy.Explicit });
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.RS.mb', JSON.stringify({ batch: 5, max_bytes: 10, expires: ns(1000) }), { reply: inbox });
    await c.until(5);
    expect(last()).toEqual([409, 'Message Size Exceeds MaxBytes']);
    expect(c.msgs[4]?.headers?.get('Nats-Pending-Messages')).toBe('5');
    expect(c.msgs[4]?.headers?.get('Nats-Pending-Bytes')).toBe('10');
  });

  it('headers reach pull and push deliveries; headers_only sends Nats-Msg-Size and no payload; +NXT acks and pulls', async () => {
    await jsm.streams.add({ name: 'HD', subjects: ['hd.>'] });
    const h = headers();
    h.set('X-A', '1');
    await js.publish('hd.a', 'hello', { headers: h, msgID: 'abc' });
    await js.publish('hd.b', 'plain');

    const ho = await jsm.consumers.add('HD', { durable_name: 'ho', ack_policy: AckPolicy.Explicit, headers_only: true });
    expect(ho.config.headers_only).toBe(true);
    const hoMsgs = await fetchAll('HD', 'ho', 2);
    expect(hoMsgs.map((m) => [m.subject, m.data.length, m.headers?.get('Nats-Msg-Size'), m.headers?.get('X-A') ?? ''])).toEqual([
      ['hd.a', 0, '5', '1'],
      ['hd.b', 0, '5', ''],
    ]);

    await jsm.consumers.add('HD', { durable_name: 'n', ack_policy: AckPolicy.Explicit });
    const full = await fetchAll('HD', 'n', 1);
    expect(full[0]?.string()).toBe('hello');
    expect(full[0]?.headers?.get('X-A')).toBe('1');
    expect(full[0]?.headers?.get('Nats-Msg-Id')).toBe('abc');

    // +NXT on the first delivery acks it and sends the next message to the ack's reply subject.
    await jsm.consumers.add('HD', { durable_name: 'nxt', ack_policy: AckPolicy.Explicit });
    const first = await nc.request('$JS.API.CONSUMER.MSG.NEXT.HD.nxt', JSON.stringify({ batch: 1 }), { timeout: 2000, noMux: true });
    expect(first.subject).toBe('hd.a');
    const inbox = createInbox();
    const { c } = collect(nc, inbox);
    await nc.flush();
    nc.publish(first.reply ?? '', '+NXT', { reply: inbox });
    const [next] = await c.until(1);
    expect([next?.subject, next?.string()]).toEqual(['hd.b', 'plain']);
    expect(next?.reply).toMatch(/^\$JS\.ACK\.HD\.nxt\.1\.2\.2\.\d+\.0$/);
    const info = await infoWhen('HD', 'nxt', (ci) => ci.ack_floor.stream_seq === 1);
    expect(info).toMatchObject({ num_ack_pending: 1 });
  });

  it('push consumer idle heartbeats: 100 Idle Heartbeat to the deliver subject with the last sequences', async () => {
    await stream('PH', ['ph'], seqMsgs('ph', 2));
    const deliver = createInbox();
    const { c } = collect(nc, deliver);
    await nc.flush();
    await jsm.consumers.add('PH', { durable_name: 'ph', ack_policy: AckPolicy.None, deliver_subject: deliver, idle_heartbeat: ns(300), flow_control: true });
    await c.until(4, 3000);
    expect(c.msgs.slice(0, 2).map((m) => [m.subject, m.string()])).toEqual([
      ['ph', 'm1'],
      ['ph', 'm2'],
    ]);
    for (const hb of c.msgs.slice(2, 4)) {
      expect(hb.subject).toBe(deliver);
      expect(hb.reply ?? '').toBe('');
      expect(hb.data.length).toBe(0);
      expect([hb.headers?.code, hb.headers?.description]).toEqual([100, 'Idle Heartbeat']);
      expect(hb.headers?.get('Nats-Last-Consumer')).toBe('2');
      expect(hb.headers?.get('Nats-Last-Stream')).toBe('2');
    }
  });

  it('consumer info, names and list', async () => {
    await stream('CL', ['cl.>'], seqMsgs('cl.x', 3));
    for (const d of ['c3', 'c1', 'c2']) await jsm.consumers.add('CL', { durable_name: d, ack_policy: AckPolicy.Explicit });
    const names = await apiRequest(nc, '$JS.API.CONSUMER.NAMES.CL', { offset: 0 });
    expect(names.type).toBe('io.nats.jetstream.api.v1.consumer_names_response');
    expect(names['total']).toBe(3);
    expect(names['offset']).toBe(0);
    expect(names['limit']).toBe(1024);
    expect([...(names['consumers'] as string[])].sort()).toEqual(['c1', 'c2', 'c3']);

    const listed: ConsumerInfo[] = [];
    for await (const ci of jsm.consumers.list('CL')) listed.push(ci);
    expect(listed.map((ci) => ci.name).sort()).toEqual(['c1', 'c2', 'c3']);
    for (const ci of listed) {
      expect(ci.stream_name).toBe('CL');
      expect(ci.config.durable_name).toBe(ci.name);
      expect(ci.num_pending).toBe(3);
    }
    const list = await apiRequest(nc, '$JS.API.CONSUMER.LIST.CL', { offset: 1 });
    expect(list.type).toBe('io.nats.jetstream.api.v1.consumer_list_response');
    expect(list['total']).toBe(3);
    expect(list['offset']).toBe(1);
    expect(list['limit']).toBe(256);
    expect(list['consumers']).toHaveLength(2);

    const info = await apiRequest(nc, '$JS.API.CONSUMER.INFO.CL.c2');
    expect(info.type).toBe('io.nats.jetstream.api.v1.consumer_info_response');
    expect(info).toMatchObject({ stream_name: 'CL', name: 'c2', num_pending: 3, num_ack_pending: 0, num_waiting: 0, num_redelivered: 0 });
    expect(Date.parse(info['created'] as string)).toBeGreaterThan(Date.now() - 60_000);
    expect((await jsm.streams.info('CL')).state.consumer_count).toBe(3);
    const deleted = await apiRequest(nc, '$JS.API.CONSUMER.DELETE.CL.c2');
    expect(deleted).toEqual({ type: 'io.nats.jetstream.api.v1.consumer_delete_response', success: true });
    expect((await jsm.streams.info('CL')).state.consumer_count).toBe(2);
  });
});
