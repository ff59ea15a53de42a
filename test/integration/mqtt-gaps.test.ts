/**
 * The MQTT broker's former gaps, against the built bundle (and, for the store ordering, the
 * session code in process on a real SQLite database):
 *  1. a NATS answer to an MQTT v5 request carries the request's correlation data back;
 *  2. a QoS 1/2 PUBLISH queued for an offline persistent session is acknowledged only after the
 *     queue row committed (survives SIGKILL);
 *  3. ack_wait redelivery (DUP=1) on a live 3.1.1 connection;
 *  4. the will on client-id takeover (v5 per the MQTT 5 spec, 3.1.1 as nats-server);
 *  5. max_payload: PUBLISH payload limit consistent with CONNACK Maximum Packet Size.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { IPublishPacket } from 'mqtt-packet';
import { MemoryBudget } from '../../src/core/budget.js';
import type { StoreReceipt } from '../../src/core/message.js';
import { Router } from '../../src/core/router.js';
import { MqttPublication, publishHeaders } from '../../src/mqtt/publication.js';
import { MqttSession } from '../../src/mqtt/session.js';
import { SessionStore } from '../../src/mqtt/session-store.js';
import { migrateMqtt, type StoreHost } from '../../src/mqtt/store-schema.js';
import { RawMqtt, connectMqtt, endMqtt, startMqttBroker, stopAllMqtt, subscribe, uniqueId, type MqttBroker } from '../helpers/mqtt.js';
import { within } from '../helpers/servers.js';

afterAll(async () => {
  await stopAllMqtt();
});

describe('1. MQTT v5 request -> NATS responder -> answer with correlation data', () => {
  let broker: MqttBroker;
  let nc: NatsConnection;

  beforeAll(async () => {
    broker = await startMqttBroker('nats-edge');
    nc = await connect({ servers: broker.natsUrl, reconnect: false });
  });

  afterAll(async () => {
    await nc.close();
    await broker.stop();
  });

  it('the answer reaches MQTT (with correlation data) and NATS subscribers of the response subject; MQTT subscribers of the request see the original properties', async () => {
    const seenReply: string[] = [];
    const svc = nc.subscribe('rq.svc', {
      callback: (_err, m) => {
        seenReply.push(m.reply ?? '');
        m.respond(`answer:${m.string()}`);
      },
    });
    const natsWatch: string[] = [];
    const watchSub = nc.subscribe('rq.resp.me', { callback: (_err, m) => {
        natsWatch.push(m.string());
      },
    });
    await nc.flush();
    const requester = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
    await subscribe(requester.client, 'rq/resp/me', { qos: 1 });
    const observer = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
    await subscribe(observer.client, 'rq/svc', { qos: 1 });

    const corr = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    await requester.client.publishAsync('rq/svc', 'ping', { qos: 1, properties: { responseTopic: 'rq/resp/me', correlationData: corr } });
    const answer = await requester.inbox.waitFor((m) => m.topic === 'rq/resp/me');
    expect(answer.payload.toString()).toBe('answer:ping');
    expect(Buffer.from(answer.packet.properties?.correlationData ?? Buffer.alloc(0)).toString('hex')).toBe(corr.toString('hex'));

    // The request as an MQTT v5 subscriber sees it: the original response topic and correlation data.
    const req = await observer.inbox.waitFor((m) => m.topic === 'rq/svc');
    expect(req.packet.properties?.responseTopic).toBe('rq/resp/me');
    expect(Buffer.from(req.packet.properties?.correlationData ?? Buffer.alloc(0)).toString('hex')).toBe(corr.toString('hex'));
    // The NATS responder saw a broker-owned reply subject, and the answer reached NATS too.
    expect(seenReply[0]).toMatch(/^\$MQTT\.reply\.[0-9a-f]+\.\d+$/);
    await within(
      (async () => {
        while (natsWatch.length === 0) await nc.flush();
      })(),
      3000,
      'NATS subscriber of the response subject',
    );
    expect(natsWatch).toEqual(['answer:ping']);

    // One answer consumes the mapping: a second answer to the same reply subject goes nowhere.
    nc.publish(seenReply[0]!, 'late duplicate');
    nc.publish('rq.resp.me', 'marker');
    await requester.inbox.waitFor((m) => m.payload.toString() === 'marker');
    expect(requester.inbox.messages.map((m) => m.payload.toString())).toEqual(['answer:ping', 'marker']);
    svc.unsubscribe();
    watchSub.unsubscribe();
  });

  it('a v5 request with a response topic but no correlation data keeps the response subject as NATS reply', async () => {
    const replies: string[] = [];
    const svc = nc.subscribe('rq.plain', {
      callback: (_err, m) => {
        replies.push(m.reply ?? '');
        m.respond('plain answer');
      },
    });
    await nc.flush();
    const c = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
    await subscribe(c.client, 'rq/plain/resp', { qos: 0 });
    await c.client.publishAsync('rq/plain', 'x', { qos: 1, properties: { responseTopic: 'rq/plain/resp' } });
    const a = await c.inbox.waitFor((m) => m.topic === 'rq/plain/resp');
    expect([a.payload.toString(), a.packet.properties?.correlationData]).toEqual(['plain answer', undefined]);
    expect(replies).toEqual(['rq.plain.resp']);
    svc.unsubscribe();
  });
});

/** A StoreHost whose group commits run only when the test says so. */
class ManualCommitHost implements StoreHost {
  readonly db = new Database(':memory:');
  private queued: Array<{ write: (db: Database.Database) => void; done: ((err: Error | null) => void) | undefined }> = [];

  inNextCommit(write: (db: Database.Database) => void, done?: (err: Error | null) => void): void {
    this.queued.push({ write, done });
  }

  commit(): void {
    const q = this.queued;
    this.queued = [];
    this.db.exec('BEGIN');
    for (const w of q) w.write(this.db);
    this.db.exec('COMMIT');
    for (const w of q) w.done?.(null);
  }
}

describe('2. QoS 1/2 into an offline persistent session: acknowledged after the queue row committed', () => {
  it('captured() when the session queues it, stored() only after the commit (in process, real SQLite)', () => {
    const host = new ManualCommitHost();
    migrateMqtt(host.db);
    const store = new SessionStore(host, (err) => {
      throw err;
    });
    const router = new Router();
    const budget = new MemoryBudget(1 << 24);
    const session = new MqttSession('offline-1', { router, budget, store, maxQueued: () => 100, dropped: () => undefined }, 1);
    session.expiry = 0xffffffff;
    session.offlineSince = Date.now();
    session.subscribe('dur/#', '', ['dur.>', 'dur'], { qos: 1, nl: false, rap: false, rh: 0, subId: 0, wildFirst: false });
    host.commit();

    const events: string[] = [];
    const receipt: StoreReceipt = {
      captured: () => events.push('captured'),
      stored: (err) => events.push(err === null ? 'stored' : `failed ${err.message}`),
    };
    const payload = Buffer.from('reading');
    const hdr = publishHeaders(1, undefined);
    const data = Buffer.concat([Buffer.from(hdr), payload]);
    const msg = new MqttPublication('dur.x', '', Buffer.byteLength(hdr), data, 'dur/x', 1, false, data.subarray(Buffer.byteLength(hdr)), undefined, 0, null, receipt);
    router.publish(msg, null);
    expect(events).toEqual(['captured']);
    const count = (): number => (host.db.prepare('SELECT COUNT(*) AS n FROM mqtt_queue').get() as { n: number }).n;
    expect(count()).toBe(0);
    host.commit();
    expect(events).toEqual(['captured', 'stored']);
    expect(count()).toBe(1);
  });

  it('SIGKILL right after the PUBACKs: the restarted session gets every PUBACKed message', async () => {
    const broker = await startMqttBroker('nats-edge');
    try {
      const id = uniqueId('durable');
      const sub = await connectMqtt(broker.mqttPort, { clientId: id, clean: false });
      await subscribe(sub.client, 'dur/q/#', { qos: 1 });
      await endMqtt(sub.client);
      const pub = await connectMqtt(broker.mqttPort);
      const N = 200;
      // Not awaited one by one: many PUBLISHes in flight at once share commits, and each
      // PUBACK must still mean "in the queue on disk".
      const acks: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++) acks.push(pub.client.publishAsync(`dur/q/${i % 7}`, `m${i}`, { qos: i % 2 === 0 ? 1 : 2 }));
      await within(Promise.all(acks), 10_000, 'PUBACKs');
      await broker.restart('SIGKILL');
      const back = await connectMqtt(broker.mqttPort, { clientId: id, clean: false });
      expect(back.connack.sessionPresent).toBe(true);
      const got = await back.inbox.count(N, 10_000);
      expect(got.map((m) => m.payload.toString())).toEqual(Array.from({ length: N }, (_, i) => `m${i}`));
    } finally {
      await broker.stop();
    }
  });
});

describe('2b. an inbound QoS 2 PUBLISH is routed once, even when the server restarts between PUBREC and PUBREL', () => {
  it('SIGKILL after PUBREC; the client resends the PUBLISH (DUP) and then PUBREL: one delivery', async () => {
    const broker = await startMqttBroker('nats-edge');
    try {
      const nc = await connect({ servers: broker.natsUrl, reconnect: false });
      const id = uniqueId('q2pub');
      let pub = await RawMqtt.connected(broker.mqttPort, 4, { clientId: id, clean: false });
      const publish = { cmd: 'publish', topic: 'q2/x', payload: Buffer.from('once'), qos: 2, messageId: 7, retain: false, dup: false } as const;
      pub.send(publish);
      const rec = await pub.next('pubrec');
      expect(rec.messageId).toBe(7);
      await nc.close();

      await broker.restart('SIGKILL');
      const nc2 = await connect({ servers: broker.natsUrl, reconnect: false });
      const got: string[] = [];
      const sub = nc2.subscribe('q2.x');
      const reading = (async () => {
        for await (const m of sub) {
          got.push(m.string());
          if (m.string() === 'marker') break;
        }
      })();
      await nc2.flush();
      pub = await RawMqtt.connected(broker.mqttPort, 4, { clientId: id, clean: false });
      // The client never saw PUBCOMP: it resends the PUBLISH with DUP, then PUBREL.
      pub.send({ ...publish, dup: true });
      expect((await pub.next('pubrec')).messageId).toBe(7);
      pub.send({ cmd: 'pubrel', messageId: 7 });
      expect((await pub.next('pubcomp')).messageId).toBe(7);
      // The id is free again: a new QoS 2 message with it is delivered.
      pub.send({ ...publish, payload: Buffer.from('marker') });
      expect((await pub.next('pubrec')).messageId).toBe(7);
      await within(reading, 5000, 'marker on q2.x');
      expect(got).toEqual(['marker']);
      await nc2.close();
    } finally {
      await broker.stop();
    }
  });
});

/** PUBLISH packets a raw client received, as [messageId, dup, payload]. */
function publishes(raw: RawMqtt): Array<[number, boolean, string]> {
  return raw.all('publish').map((p) => {
    const pp = p as IPublishPacket;
    return [pp.messageId ?? 0, pp.dup, Buffer.from(pp.payload).toString()];
  });
}

async function rawSubscribe(raw: RawMqtt, filter: string, qos: 0 | 1 | 2): Promise<void> {
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] });
  await raw.next('suback');
}

describe('3. ack_wait redelivery on a live connection', () => {
  let broker: MqttBroker;

  beforeAll(async () => {
    broker = await startMqttBroker('nats-edge', { mqttBlock: '  ack_wait: "1s"' });
  });

  afterAll(async () => {
    await broker.stop();
  });

  it('3.1.1: an unacknowledged QoS 1 message is sent again with DUP=1 after ack_wait; an acked one is not', async () => {
    const v3 = await RawMqtt.connected(broker.mqttPort, 4);
    await rawSubscribe(v3, 'aw/#', 1);
    const v5 = await RawMqtt.connected(broker.mqttPort, 5);
    await rawSubscribe(v5, 'aw/#', 1);
    const pub = await connectMqtt(broker.mqttPort);
    const t0 = Date.now();
    await pub.client.publishAsync('aw/1', 'first', { qos: 1 });
    const first = (await v3.next('publish')) as IPublishPacket;
    expect([first.dup, first.qos, Buffer.from(first.payload).toString()]).toEqual([false, 1, 'first']);
    const again = (await v3.next('publish', 4000)) as IPublishPacket;
    const waited = Date.now() - t0;
    expect([again.dup, again.messageId, Buffer.from(again.payload).toString()]).toEqual([true, first.messageId, 'first']);
    expect(waited).toBeGreaterThanOrEqual(900);
    // MQTT 5 forbids resends on a live connection: the v5 subscriber, same age, got it once.
    await v5.ping();
    expect(publishes(v5).map((p) => p[1])).toEqual([false]);

    // Acked now: never again. A second, unacked message's redelivery proves ack_wait passed since.
    v3.send({ cmd: 'puback', messageId: first.messageId! });
    await pub.client.publishAsync('aw/2', 'second', { qos: 1 });
    await v3.next('publish');
    const second = (await v3.next('publish', 4000)) as IPublishPacket;
    expect([second.dup, Buffer.from(second.payload).toString()]).toEqual([true, 'second']);
    expect(publishes(v3).map((p) => [p[1], p[2]])).toEqual([
      [false, 'first'],
      [true, 'first'],
      [false, 'second'],
      [true, 'second'],
    ]);
    v3.destroy();
    v5.destroy();
    await endMqtt(pub.client);
  });

  it('3.1.1: QoS 2 past PUBREC gets its PUBREL again after ack_wait', async () => {
    const v3 = await RawMqtt.connected(broker.mqttPort, 4);
    await rawSubscribe(v3, 'aw2/#', 2);
    const pub = await connectMqtt(broker.mqttPort);
    await pub.client.publishAsync('aw2/x', 'q2', { qos: 2 });
    const p = (await v3.next('publish')) as IPublishPacket;
    expect(p.qos).toBe(2);
    v3.send({ cmd: 'pubrec', messageId: p.messageId! });
    const rel1 = await v3.next('pubrel');
    const rel2 = await v3.next('pubrel', 4000);
    expect([rel1.cmd === 'pubrel' ? rel1.messageId : 0, rel2.cmd === 'pubrel' ? rel2.messageId : 0]).toEqual([p.messageId, p.messageId]);
    expect(publishes(v3).length).toBe(1);
    v3.send({ cmd: 'pubcomp', messageId: p.messageId! });
    await v3.ping();
    v3.destroy();
    await endMqtt(pub.client);
  });
});

describe('4. the will on client-id takeover', () => {
  let broker: MqttBroker;

  beforeAll(async () => {
    broker = await startMqttBroker('nats-edge');
  });

  afterAll(async () => {
    await broker.stop();
  });

  /** Connects `id` with a will on will/<tag>, then takes it over; returns the wills seen before a marker. */
  async function takeover(tag: string, version: 4 | 5, willDelay: number, newClean: boolean): Promise<string[]> {
    const watch = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
    await subscribe(watch.client, `will/${tag}/#`, { qos: 1 });
    const id = uniqueId(`take-${tag}`);
    const v5props = (clean: boolean): Record<string, unknown> => (version === 5 ? { properties: { sessionExpiryInterval: clean ? 0 : 300 } } : {});
    const old = await connectMqtt(broker.mqttPort, {
      protocolVersion: version,
      clientId: id,
      clean: false,
      ...v5props(false),
      will: { topic: `will/${tag}/gone`, payload: Buffer.from('will'), qos: 1, retain: false, ...(version === 5 ? { properties: { willDelayInterval: willDelay } } : {}) },
    });
    const oldClosed = new Promise<void>((r) => old.client.once('close', () => r()));
    const fresh = await connectMqtt(broker.mqttPort, { protocolVersion: version, clientId: id, clean: newClean, ...v5props(newClean) });
    await within(oldClosed, 5000, 'old connection closed');
    await fresh.client.publishAsync(`will/${tag}/marker`, 'm', { qos: 1 });
    const before = await watch.inbox.until(`will/${tag}/marker`);
    await endMqtt(fresh.client);
    await endMqtt(watch.client);
    return before.map((m) => `${m.topic}:${m.payload.toString()}`);
  }

  it('v5, no will delay, session resumed: the will is published (MQTT 5 §3.1.4; mosquitto 2.0.11 does not)', async () => {
    expect(await takeover('a', 5, 0, false)).toEqual(['will/a/gone:will']);
  });

  it('v5, will delay, session resumed: the resumption cancels the will', async () => {
    expect(await takeover('b', 5, 30, false)).toEqual([]);
  });

  it('v5, will delay, new connection starts clean: the old session ends and its will goes at once', async () => {
    expect(await takeover('c', 5, 30, true)).toEqual(['will/c/gone:will']);
  });

  it('3.1.1: takeover drops the old will (nats-server)', async () => {
    expect(await takeover('d', 4, 0, false)).toEqual([]);
    expect(await takeover('e', 4, 0, true)).toEqual([]);
  });
});

describe('5. max_payload', () => {
  const MAX = 4096;
  let broker: MqttBroker;
  let nc: NatsConnection;

  beforeAll(async () => {
    broker = await startMqttBroker('nats-edge', { extraConfig: `max_payload: ${MAX}` });
    nc = await connect({ servers: broker.natsUrl, reconnect: false });
  });

  afterAll(async () => {
    await nc.close();
    await broker.stop();
  });

  it('v5: CONNACK Maximum Packet Size is the smallest PUBLISH carrying max_payload bytes', async () => {
    const c = await RawMqtt.connected(broker.mqttPort, 5);
    const ack = c.packets[0]!.packet;
    // 1 header byte + 2 length bytes + topic length (2) + 1-byte topic + empty properties (1) + payload
    expect(ack.cmd === 'connack' ? ack.properties?.maximumPacketSize : -1).toBe(1 + 2 + 2 + 1 + 1 + MAX);
    c.destroy();
  });

  it('a payload of max_payload bytes passes to NATS, one byte more is refused (v5 DISCONNECT 0x95, 3.1.1 close)', async () => {
    const got: number[] = [];
    const sub = nc.subscribe('p', {
      callback: (_err, m) => {
        got.push(m.data.length);
      },
    });
    await nc.flush();
    for (const v of [4, 5] as const) {
      // v5: the advertised whole-packet size fits max_payload with a 1-byte topic at QoS 0.
      const qos = v === 5 ? 0 : 1;
      const c = await RawMqtt.connected(broker.mqttPort, v);
      c.send({ cmd: 'publish', topic: 'p', payload: Buffer.alloc(MAX, 0x61), qos, ...(qos > 0 ? { messageId: 1 } : {}), dup: false, retain: false });
      await c.ping();
      c.send({ cmd: 'publish', topic: 'p', payload: Buffer.alloc(MAX + 1, 0x62), qos, ...(qos > 0 ? { messageId: 2 } : {}), dup: false, retain: false });
      await c.waitClosed();
      if (v === 5) {
        const d = c.all('disconnect');
        expect(d.map((p) => (p.cmd === 'disconnect' ? p.reasonCode : -1))).toEqual([0x95]);
      } else {
        expect(c.all('disconnect')).toEqual([]);
        expect(c.all('puback').length).toBe(1);
      }
    }
    await nc.flush();
    expect(got).toEqual([MAX, MAX]);
    sub.unsubscribe();
  });

  it('v5: a packet over the advertised size is refused even when its payload is within max_payload (the price of consistency)', async () => {
    const c = await RawMqtt.connected(broker.mqttPort, 5);
    // QoS 1 adds a 2-byte packet id: the packet is 2 bytes over Maximum Packet Size.
    c.send({ cmd: 'publish', topic: 'p', payload: Buffer.alloc(MAX, 0x61), qos: 1, messageId: 1, dup: false, retain: false });
    await c.waitClosed();
    expect(c.all('disconnect').map((p) => (p.cmd === 'disconnect' ? p.reasonCode : -1))).toEqual([0x95]);
    expect(c.all('puback')).toEqual([]);
  });

  it('3.1.1: a will over max_payload is refused; v5: CONNACK 0x95', async () => {
    const v3 = await RawMqtt.open(broker.mqttPort, 4);
    v3.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId('bigwill'), clean: true, keepalive: 60, will: { topic: 'w', payload: Buffer.alloc(MAX + 1), qos: 0, retain: false } });
    await v3.waitClosed();
    expect(v3.all('connack')).toEqual([]);
    const v5 = await RawMqtt.open(broker.mqttPort, 5);
    v5.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uniqueId('bigwill'), clean: true, keepalive: 60, will: { topic: 'w', payload: Buffer.alloc(MAX + 1), qos: 0, retain: false } });
    const ack = await v5.next('connack');
    expect(ack.cmd === 'connack' ? ack.reasonCode : -1).toBe(0x95);
    await v5.waitClosed();
  });
});
