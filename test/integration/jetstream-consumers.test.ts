/**
 * JetStream consumers of the bundle, driven by the real nats.js 3.x clients (@nats-io/jetstream,
 * @nats-io/kv): pull (fetch, next, consume), acks of every kind, redelivery, push consumers seen
 * by a raw core subscriber, ordered consumers, KV watch/keys/history, restart and retention.
 * The case-by-case comparison with nats-server is the consumers table next to this file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInbox, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { pollUntil, stopAllServers, within } from '../helpers/servers.js';
import { apiRequest, collect, JsServer, ns } from '../helpers/js.js';

describe('jetstream consumers (nats-edge bundle, nats.js 3.x)', () => {
  let server: JsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;

  beforeAll(async () => {
    server = await JsServer.start('nats-edge');
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
  });

  afterAll(async () => {
    await server?.closeConnections();
    await stopAllServers();
  });

  async function stream(name: string, subjects: string[], n = 0, subject = subjects[0]!.replace('>', 'x')): Promise<void> {
    await jsm.streams.add({ name, subjects });
    for (let i = 1; i <= n; i++) await js.publish(subject, `m${i}`);
  }

  function infoWhen(s: string, c: string, done: (ci: ConsumerInfo) => boolean): Promise<ConsumerInfo> {
    return pollUntil(() => jsm.consumers.info(s, c), done, 3000);
  }

  async function fetchAll(s: string, c: string, max: number, expires = 1000): Promise<JsMsg[]> {
    const consumer = await js.consumers.get(s, c);
    const out: JsMsg[] = [];
    for await (const m of await consumer.fetch({ max_messages: max, expires })) out.push(m);
    return out;
  }

  it('consumers.add / info / list / names / update / delete', async () => {
    await stream('MGMT', ['mgmt.>'], 3);
    const ci = await jsm.consumers.add('MGMT', { durable_name: 'D1', ack_policy: AckPolicy.Explicit, filter_subject: 'mgmt.x' });
    expect(ci.name).toBe('D1');
    expect(ci.num_pending).toBe(3);
    expect(ci.config).toMatchObject({ durable_name: 'D1', ack_policy: 'explicit', ack_wait: ns(30_000), max_deliver: -1, max_waiting: 512, max_ack_pending: 1000 });
    // idempotent
    expect((await jsm.consumers.add('MGMT', { durable_name: 'D1', ack_policy: AckPolicy.Explicit, filter_subject: 'mgmt.x' })).created).toBe(ci.created);
    await jsm.consumers.add('MGMT', { name: 'eph', ack_policy: AckPolicy.None });
    const names: string[] = [];
    for await (const n of jsm.consumers.list('MGMT')) names.push(n.name);
    expect(names.sort()).toEqual(['D1', 'eph']);
    const up = await jsm.consumers.update('MGMT', 'D1', { max_deliver: 4, description: 'updated' });
    expect(up.config).toMatchObject({ max_deliver: 4, description: 'updated' });
    // nats.js reads the consumer before updating it; the server's own answer is 10149.
    await expect(jsm.consumers.update('MGMT', 'nope', { max_deliver: 4 })).rejects.toThrow(/consumer not found/);
    const missing = await apiRequest(nc, '$JS.API.CONSUMER.CREATE.MGMT.nope', { stream_name: 'MGMT', config: { durable_name: 'nope' }, action: 'update' });
    expect(missing.error).toEqual({ code: 400, err_code: 10149, description: 'consumer does not exist' });
    expect(await jsm.consumers.delete('MGMT', 'D1')).toBe(true);
    await expect(jsm.consumers.info('MGMT', 'D1')).rejects.toThrow(/consumer not found/);
  });

  it('fetch, next and consume with acks; info follows', async () => {
    await stream('PULL', ['pull.>'], 6);
    await jsm.consumers.add('PULL', { durable_name: 'C', ack_policy: AckPolicy.Explicit });
    const c = await js.consumers.get('PULL', 'C');
    const got: string[] = [];
    for await (const m of await c.fetch({ max_messages: 2, expires: 2000 })) {
      got.push(`${m.string()}:${m.info.pending}`);
      m.ack();
    }
    expect(got).toEqual(['m1:5', 'm2:4']);
    const m3 = await c.next({ expires: 1000 });
    expect(m3?.string()).toBe('m3');
    expect(await m3!.ackAck()).toBe(true);
    const info = await infoWhen('PULL', 'C', (i) => i.ack_floor.stream_seq === 3);
    expect(info.delivered).toMatchObject({ consumer_seq: 3, stream_seq: 3 });
    expect([info.num_pending, info.num_ack_pending]).toEqual([3, 0]);

    const seen: string[] = [];
    const msgs = await c.consume({ max_messages: 10 });
    const done = (async () => {
      for await (const m of msgs) {
        seen.push(m.string());
        m.ack();
        if (seen.length === 4) break;
      }
    })();
    await js.publish('pull.x', 'm7');
    await within(done, 5000, 'consume 4 messages');
    expect(seen).toEqual(['m4', 'm5', 'm6', 'm7']);
    const after = await infoWhen('PULL', 'C', (i) => i.ack_floor.stream_seq === 7);
    expect(after.num_ack_pending).toBe(0);
  });

  it('nak comes back with a higher delivery count, term never, working defers the redelivery', async () => {
    await stream('NAK', ['nak.>'], 3);
    await jsm.consumers.add('NAK', { durable_name: 'C', ack_policy: AckPolicy.Explicit, ack_wait: ns(1500) });
    const [m1, m2, m3] = await fetchAll('NAK', 'C', 3);
    expect([m1!.info.deliveryCount, m2!.info.deliveryCount]).toEqual([1, 1]);
    m1!.term('not wanted');
    m2!.nak();
    m3!.working();
    const again = await fetchAll('NAK', 'C', 1);
    expect(again.map((m) => [m.string(), m.info.deliveryCount, m.info.streamSequence])).toEqual([['m2', 2, 2]]);
    again[0]!.ack();
    m3!.ack();
    const info = await infoWhen('NAK', 'C', (i) => i.num_ack_pending === 0);
    expect(info.ack_floor.stream_seq).toBe(3);
    expect(info.num_redelivered).toBe(0);
  });

  it('redelivers after ack_wait, nak with delay, and stops at max_deliver', async () => {
    await stream('REDO', ['redo.>'], 1);
    await jsm.consumers.add('REDO', { durable_name: 'C', ack_policy: AckPolicy.Explicit, ack_wait: ns(300), max_deliver: 3 });
    const c = await js.consumers.get('REDO', 'C');
    const deliveries: Array<[number, number]> = [];
    const t0 = Date.now();
    const msgs = await c.consume({ max_messages: 5, expires: 1000 });
    const done = (async () => {
      for await (const m of msgs) {
        deliveries.push([m.info.deliveryCount, Date.now() - t0]);
        if (m.info.deliveryCount === 2) m.nak(400);
        if (deliveries.length === 3) break;
      }
    })();
    await within(done, 5000, 'three deliveries');
    expect(deliveries.map((d) => d[0])).toEqual([1, 2, 3]);
    expect(deliveries[1]![1] - deliveries[0]![1]).toBeGreaterThanOrEqual(280);
    expect(deliveries[2]![1] - deliveries[1]![1]).toBeGreaterThanOrEqual(380);
    // Past max_deliver the message leaves pending at the next redelivery attempt (nats-server 2.9.10).
    await fetchAll('REDO', 'C', 1, 1000);
    const info = await jsm.consumers.info('REDO', 'C');
    expect([info.num_ack_pending, info.num_redelivered, info.delivered.consumer_seq]).toEqual([0, 1, 3]);
  });

  it('a push consumer delivers to a raw core subscriber with the stored subject and ack subject', async () => {
    await stream('PUSH', ['push.>'], 2);
    const deliver = createInbox();
    await jsm.consumers.add('PUSH', { durable_name: 'P', deliver_subject: deliver, ack_policy: AckPolicy.Explicit });
    const { sub, c } = collect(nc, deliver);
    const msgs = await c.until(2);
    expect(msgs.map((m) => [m.subject, m.string()])).toEqual([
      ['push.x', 'm1'],
      ['push.x', 'm2'],
    ]);
    expect(msgs[0]!.reply).toMatch(/^\$JS\.ACK\.PUSH\.P\.1\.1\.1\.\d{19}\.1$/);
    expect((await jsm.consumers.info('PUSH', 'P')).push_bound).toBe(true);
    for (const m of msgs) m.respond();
    const info = await infoWhen('PUSH', 'P', (i) => i.ack_floor.stream_seq === 2);
    expect(info.num_ack_pending).toBe(0);
    await js.publish('push.y', 'm3');
    const three = await c.until(3);
    expect(three[2]!.subject).toBe('push.y');
    sub.unsubscribe();
  });

  it('push idle heartbeats and flow control as nats.js reads them', async () => {
    await stream('HB', ['hb.>']);
    const deliver = createInbox();
    await jsm.consumers.add('HB', { name: 'hb', deliver_subject: deliver, idle_heartbeat: ns(200), flow_control: true });
    const { sub, c } = collect(nc, deliver);
    const [hb] = await c.until(1, 2000);
    expect(hb!.headers?.code).toBe(100);
    expect(hb!.headers?.description).toBe('Idle Heartbeat');
    expect(hb!.headers?.get('Nats-Last-Consumer')).toBe('0');
    expect(hb!.reply ?? '').toBe('');
    sub.unsubscribe();
  });

  it('ordered consumer: js.consumers.get(stream) without a name', async () => {
    await stream('ORD', ['ord.>'], 3);
    const oc = await js.consumers.get('ORD');
    const got: Array<[string, number, number]> = [];
    let third!: () => void;
    const sawThree = new Promise<void>((r) => (third = r));
    const msgs = await oc.consume();
    const done = (async () => {
      for await (const m of msgs) {
        got.push([m.string(), m.info.deliverySequence, m.info.pending]);
        if (got.length === 3) third();
        if (got.length === 4) break;
      }
    })();
    await within(sawThree, 5000, 'the stored messages');
    await js.publish('ord.x', 'm4');
    await within(done, 5000, 'ordered consumer');
    expect(got).toEqual([
      ['m1', 1, 2],
      ['m2', 2, 1],
      ['m3', 3, 0],
      ['m4', 4, 0],
    ]);
    const info = await oc.info(true);
    expect(info.config).toMatchObject({ ack_policy: 'none', deliver_policy: 'by_start_sequence', opt_start_seq: 1, mem_storage: true });
  });

  it('an ordered consumer whose server consumer vanished is recreated from the next stream seq', async () => {
    await stream('REORD', ['reord.>'], 3);
    const oc = await js.consumers.get('REORD');
    const first = (await oc.info(true)).name;
    const got: string[] = [];
    let third!: () => void;
    const sawThree = new Promise<void>((r) => (third = r));
    // expires 2 s: heartbeats every 1 s, so two missed ones (after the delete) trigger the reset.
    const msgs = await oc.consume({ expires: 2000 });
    const done = (async () => {
      for await (const m of msgs) {
        got.push(`${m.string()}@${m.info.streamSequence}/${m.info.deliverySequence}`);
        if (got.length === 3) third();
        if (got.length === 4) break;
      }
    })();
    await within(sawThree, 5000, 'first three');
    expect((await apiRequest(nc, `$JS.API.CONSUMER.DELETE.REORD.${first}`)).success).toBe(true);
    await js.publish('reord.x', 'm4');
    await within(done, 10_000, 'delivery after the ordered consumer was recreated');
    expect(got).toEqual(['m1@1/1', 'm2@2/2', 'm3@3/3', 'm4@4/1']);
    const now = await oc.info(true);
    expect(now.name).not.toBe(first);
    expect(now.config).toMatchObject({ deliver_policy: 'by_start_sequence', opt_start_seq: 4, ack_policy: 'none' });
  });

  it('KV: watch (initial values, then updates), keys, history', async () => {
    const kv = await new Kvm(nc).create('cfg', { history: 5 });
    await kv.put('a.b', 'v1');
    await kv.put('a.c', 'v2');
    await kv.put('a.b', 'v3');
    await kv.delete('a.c');
    expect((await kv.get('a.b'))?.string()).toBe('v3');
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    expect(keys).toEqual(['a.b']);
    const history: string[] = [];
    for await (const e of await kv.history({ key: 'a.b' })) history.push(`${e.revision}:${e.string()}`);
    expect(history).toEqual(['1:v1', '3:v3']);

    const w = await kv.watch();
    const seen: string[] = [];
    const done = (async () => {
      for await (const e of w) {
        seen.push(`${e.key}=${e.string()}:${e.operation}`);
        if (seen.length === 3) break;
      }
    })();
    await kv.put('a.d', 'v4');
    await within(done, 5000, 'KV watch');
    expect(seen).toEqual(['a.b=v3:PUT', 'a.c=:DEL', 'a.d=v4:PUT']);
  });

  it('KV watch on an empty bucket reports caught up at once and sees later puts', async () => {
    const kv = await new Kvm(nc).create('empty');
    const w = await kv.watch();
    const seen: string[] = [];
    const done = (async () => {
      for await (const e of w) {
        seen.push(`${e.key}=${e.string()}`);
        if (seen.length === 2) break;
      }
    })();
    await kv.put('x', '1');
    await kv.put('y', '2');
    await within(done, 5000, 'KV watch updates');
    expect(seen).toEqual(['x=1', 'y=2']);
  });

  it('a workqueue stream loses each message once acked', async () => {
    await jsm.streams.add({ name: 'WQ', subjects: ['wq.>'], retention: RetentionPolicy.Workqueue });
    for (let i = 1; i <= 3; i++) await js.publish('wq.x', `m${i}`);
    await jsm.consumers.add('WQ', { durable_name: 'W', ack_policy: AckPolicy.Explicit });
    const msgs = await fetchAll('WQ', 'W', 2);
    for (const m of msgs) await m.ackAck();
    const si = await pollUntil(() => jsm.streams.info('WQ'), (s) => s.state.messages === 1);
    expect(si.state.messages).toBe(1);
    expect(si.state.first_seq).toBe(3);
  });

  it('an ephemeral consumer nobody uses goes away after inactive_threshold', async () => {
    await stream('EPH', ['eph.>']);
    await jsm.consumers.add('EPH', { name: 'gone', ack_policy: AckPolicy.Explicit, inactive_threshold: ns(300) });
    const names = await pollUntil(
      async () => {
        const out: string[] = [];
        for await (const n of jsm.consumers.list('EPH')) out.push(n.name);
        return out;
      },
      (n) => n.length === 0,
      3000,
    );
    expect(names).toEqual([]);
  });

  it('a waiting fetch ends when its consumer is deleted (409 Consumer Deleted)', async () => {
    await stream('DEL', ['del.>']);
    await jsm.consumers.add('DEL', { durable_name: 'D', ack_policy: AckPolicy.Explicit });
    const inbox = createInbox();
    const { sub, c } = collect(nc, inbox);
    nc.publish('$JS.API.CONSUMER.MSG.NEXT.DEL.D', JSON.stringify({ batch: 5, expires: ns(5000) }), { reply: inbox });
    await nc.flush();
    expect((await apiRequest(nc, '$JS.API.CONSUMER.DELETE.DEL.D')).success).toBe(true);
    const [status] = await c.until(1);
    expect(status!.headers?.code).toBe(409);
    expect(status!.headers?.description).toBe('Consumer Deleted');
    sub.unsubscribe();
  });

  it('a durable consumer resumes at its ack floor after SIGKILL; unacked ones come again', async () => {
    await stream('DUR', ['dur.>'], 4);
    await jsm.consumers.add('DUR', { durable_name: 'D', ack_policy: AckPolicy.Explicit, ack_wait: ns(1000) });
    const msgs = await fetchAll('DUR', 'D', 3);
    await msgs[0]!.ackAck();
    await msgs[2]!.ackAck();
    // Unacked deliveries reach the disk once older than the write delay (100 ms): an empty pull
    // that ends with its 408 after 1 s takes us past it. A stored publish then commits after them.
    await jsm.consumers.add('DUR', { name: 'idle', filter_subject: 'dur.none', ack_policy: AckPolicy.Explicit });
    expect(await fetchAll('DUR', 'idle', 1, 1000)).toEqual([]);
    await js.publish('dur.x', 'm5');
    await server.restart('SIGKILL');
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    const info = await jsm.consumers.info('DUR', 'D');
    expect(info.delivered).toMatchObject({ consumer_seq: 3, stream_seq: 3 });
    expect(info.ack_floor).toMatchObject({ consumer_seq: 1, stream_seq: 1 });
    expect([info.num_ack_pending, info.num_pending]).toEqual([1, 2]);
    const again = await fetchAll('DUR', 'D', 3, 3000);
    expect(again.map((m) => [m.string(), m.info.deliveryCount]).sort()).toEqual([
      ['m2', 2],
      ['m4', 1],
      ['m5', 1],
    ]);
  });

  it('deliver policies last_per_subject and by_start_time through nats.js', async () => {
    await jsm.streams.add({ name: 'POL', subjects: ['pol.>'] });
    await js.publish('pol.a', 'a1');
    await js.publish('pol.b', 'b1');
    await js.publish('pol.a', 'a2');
    // a2's own store time (RFC 3339 with the server's precision): it starts there, b1 is older.
    const got = await apiRequest(nc, '$JS.API.STREAM.MSG.GET.POL', { seq: 3 });
    const mid = (got['message'] as { time: string }).time;
    await jsm.consumers.add('POL', { name: 'lps', deliver_policy: DeliverPolicy.LastPerSubject, filter_subject: 'pol.>' });
    expect((await fetchAll('POL', 'lps', 5)).map((m) => m.string())).toEqual(['b1', 'a2']);
    await jsm.consumers.add('POL', { name: 'time', deliver_policy: DeliverPolicy.StartTime, opt_start_time: mid });
    expect((await fetchAll('POL', 'time', 5)).map((m) => m.string())).toEqual(['a2']);
  });
});
