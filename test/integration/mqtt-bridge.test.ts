/**
 * MQTT <-> NATS: one subject space. The topic <-> subject mapping is nats-server's, so every
 * row nats-server 2.9.10 can express is proved against its own MQTT listener first and then
 * run against nats-edge; rows that follow the 2.10+ rules (the `.` escape) and the MQTT 5
 * mappings (headers, response topic <-> reply) run against nats-edge only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  RawMqtt,
  closeAllClients,
  connectMqtt,
  connectPacket,
  endMqtt,
  mosquittoPub,
  MosquittoSub,
  natsMqttKinds,
  startMqttBroker,
  stopAllMqtt,
  subscribe,
  uniqueId,
  type MqttBroker,
} from '../helpers/mqtt.js';
import { within } from '../helpers/servers.js';

afterAll(async () => {
  await stopAllMqtt();
});

/** Server-internal traffic a NATS `>` subscriber also sees (JetStream API, advisories, MQTT state). */
const INTERNAL = /^(\$MQTT\.|\$JS\.|\$SYS\.|_INBOX\.|\$KV\.)/;

/** Collects NATS messages on `subject`, skipping server-internal traffic. */
class NatsInbox {
  readonly msgs: Msg[] = [];
  private waiters: Array<() => void> = [];
  readonly sub: Subscription;

  constructor(nc: NatsConnection, subject: string) {
    this.sub = nc.subscribe(subject, {
      callback: (err, m) => {
        if (err !== null || INTERNAL.test(m.subject)) return;
        this.msgs.push(m);
        const ws = this.waiters;
        this.waiters = [];
        for (const w of ws) w();
      },
    });
  }

  async waitFor(pred: (m: Msg) => boolean, ms = 5000): Promise<Msg> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.msgs.find(pred);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`NATS: timeout after ${ms} ms; got ${JSON.stringify(this.msgs.map((m) => [m.subject, m.string()]))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Messages before the first one on `subject` (the marker). */
  async until(subject: string, ms = 5000): Promise<Msg[]> {
    const marker = await this.waitFor((m) => m.subject === subject, ms);
    return this.msgs.slice(0, this.msgs.indexOf(marker));
  }
}

interface TopicRow {
  topic: string;
  subject: string;
  /** Expressible in nats-server 2.9.10 (no `.` inside a level). */
  in29: boolean;
}

/** Spec sheet 1.5: MQTT topic name -> NATS subject. */
const TOPIC_TO_SUBJECT: TopicRow[] = [
  { topic: 'foo', subject: 'foo', in29: true },
  { topic: 'foo/bar', subject: 'foo.bar', in29: true },
  { topic: 'a/b/c', subject: 'a.b.c', in29: true },
  { topic: '/foo', subject: '/.foo', in29: true },
  { topic: 'foo/', subject: 'foo./', in29: true },
  { topic: '/', subject: '/./', in29: true },
  { topic: '//', subject: '/././', in29: true },
  { topic: 'foo//bar', subject: 'foo./.bar', in29: true },
  { topic: '/foo/bar/', subject: '/.foo.bar./', in29: true },
  { topic: 'über/straße', subject: 'über.straße', in29: true },
  { topic: '$foo/bar', subject: '$foo.bar', in29: true },
  { topic: 'foo/*', subject: 'foo.*', in29: true },
  { topic: 'foo/>', subject: 'foo.>', in29: true },
  { topic: '///foo//', subject: '/././.foo././', in29: true },
  { topic: 'a//b//', subject: 'a./.b././', in29: true },
  { topic: 'foo.bar', subject: 'foo//bar', in29: false },
  { topic: 'spBv1.0/plant1', subject: 'spBv1//0.plant1', in29: false },
  { topic: '.', subject: '//', in29: false },
  { topic: './', subject: '//./', in29: false },
  { topic: './/.', subject: '//././/', in29: false },
  { topic: 'foo../bar/.', subject: 'foo////.bar.//', in29: false },
];

/** Spec sheet 1.6: NATS subject published by a NATS client -> topic an MQTT `#` subscriber sees. */
const SUBJECT_TO_TOPIC: TopicRow[] = [
  { subject: 'foo', topic: 'foo', in29: true },
  { subject: 'foo.bar', topic: 'foo/bar', in29: true },
  { subject: '/.foo', topic: '/foo', in29: true },
  { subject: 'foo./', topic: 'foo/', in29: true },
  { subject: '/./', topic: '/', in29: true },
  { subject: 'foo./.bar', topic: 'foo//bar', in29: true },
  { subject: 'a./', topic: 'a/', in29: true },
  { subject: 'x*y', topic: 'x*y', in29: true },
  { subject: 'foo//bar', topic: 'foo.bar', in29: false },
  { subject: 'spBv1//0.plant1', topic: 'spBv1.0/plant1', in29: false },
  { subject: 'a/b', topic: 'ab', in29: false },
  { subject: 'a.//.b', topic: 'a/./b', in29: false },
];

interface FilterRow {
  filter: string;
  /** NATS subjects published, with the MQTT topic each must arrive as. */
  delivered: Array<[string, string]>;
  notDelivered: string[];
  in29: boolean;
}

/** Spec sheet 1.7: MQTT filter -> which NATS publishes reach it. */
const FILTERS: FilterRow[] = [
  { filter: 'foo/#', delivered: [['foo', 'foo'], ['foo.bar', 'foo/bar'], ['foo.bar.baz', 'foo/bar/baz']], notDelivered: ['foobar'], in29: true },
  { filter: 'foo/+', delivered: [['foo.bar', 'foo/bar'], ['foo./', 'foo/']], notDelivered: ['foo', 'foo.bar.baz'], in29: true },
  { filter: '+', delivered: [['foo', 'foo']], notDelivered: ['foo.bar', '/./'], in29: true },
  { filter: '/+', delivered: [['/.foo', '/foo']], notDelivered: ['foo'], in29: true },
  { filter: 'foo/+/baz', delivered: [['foo.bar.baz', 'foo/bar/baz']], notDelivered: ['foo.x.y'], in29: true },
  { filter: '+/+', delivered: [['/.foo', '/foo'], ['a.b', 'a/b']], notDelivered: ['a.b.c'], in29: true },
  { filter: 'foo//#', delivered: [['foo./.bar', 'foo//bar']], notDelivered: ['foo.bar'], in29: true },
  { filter: 'foo/*', delivered: [['foo.bar', 'foo/bar']], notDelivered: ['foo.bar.baz'], in29: true },
  // `foo/>` becomes `foo.>`, which ends in `.>`: it gets the extra "level up" subscription on `foo` too
  { filter: 'foo/>', delivered: [['foo', 'foo'], ['foo.bar.baz', 'foo/bar/baz']], notDelivered: ['foobar'], in29: true },
  { filter: '$foo/#', delivered: [['$foo.bar', '$foo/bar']], notDelivered: ['foo.bar'], in29: true },
  // 2.9.10 delivers `$foo.bar` to `+/bar` (fixed in 2.9.15, MQTT-4.7.2-1)
  { filter: '+/bar', delivered: [['x.bar', 'x/bar']], notDelivered: ['$foo.bar'], in29: false },
  { filter: 'a.b/#', delivered: [['a//b', 'a.b'], ['a//b.c', 'a.b/c']], notDelivered: ['a.b.c'], in29: false },
];

describe.each(natsMqttKinds())('MQTT <-> NATS against %s', (kind) => {
  const edgeOnly = kind !== 'nats-edge';
  let broker: MqttBroker;
  let nc: NatsConnection;

  beforeAll(async () => {
    broker = await startMqttBroker(kind);
    nc = await connect({ servers: broker.natsUrl, reconnect: false });
  });

  afterEach(async () => {
    await closeAllClients();
  });

  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    await broker.stop();
  });

  describe('basic bridging', () => {
    it('an MQTT publish on sensors/room1/temp reaches NATS subscribers of the subject, sensors.> and sensors.*.temp', async () => {
      const exact = new NatsInbox(nc, 'sensors.room1.temp');
      const all = new NatsInbox(nc, 'sensors.>');
      const star = new NatsInbox(nc, 'sensors.*.temp');
      await nc.flush();
      const sensor = await connectMqtt(broker.mqttPort);
      const payload = Buffer.from([0x32, 0x31, 0x2e, 0x35, 0x00, 0xff]);
      await sensor.client.publishAsync('sensors/room1/temp', payload, { qos: 0 });
      await sensor.client.publishAsync('sensors/room1/temp', payload, { qos: 1 });
      for (const inbox of [exact, all, star]) {
        await inbox.waitFor(() => inbox.msgs.length >= 2);
        for (const m of inbox.msgs.slice(0, 2)) {
          expect(m.subject).toBe('sensors.room1.temp');
          expect(Buffer.from(m.data).equals(payload)).toBe(true);
          expect(m.reply ?? '').toBe('');
        }
      }
      for (const s of [exact, all, star]) s.sub.unsubscribe();
    });

    it('mosquitto_pub (a sensor) reaches a NATS subscriber; a NATS publish reaches mosquitto_sub -t sensors/#', async () => {
      const inbox = new NatsInbox(nc, 'sensors.>');
      await nc.flush();
      const res = await mosquittoPub(broker.mqttPort, ['-t', 'sensors/kitchen/temp', '-m', '22.5', '-q', '1']);
      expect(res.code, res.stderr).toBe(0);
      const m = await inbox.waitFor((x) => x.subject === 'sensors.kitchen.temp');
      expect(m.string()).toBe('22.5');
      inbox.sub.unsubscribe();

      const sub = new MosquittoSub(broker.mqttPort, ['-t', 'sensors/#', '-q', '1', '-C', '1']);
      await sub.subscribed();
      nc.publish('sensors.kitchen.setpoint', 'set 21');
      const [line] = await sub.count(1);
      expect([line?.topic, line?.payload.toString(), line?.retain]).toEqual(['sensors/kitchen/setpoint', 'set 21', false]);
    });

    for (const v of [4, 5] as const) {
      it.skipIf(v === 5 && edgeOnly)(`a NATS publish reaches an mqtt.js v${v} subscriber of sensors/# with exact bytes and RETAIN 0`, async () => {
        const c = await connectMqtt(broker.mqttPort, { protocolVersion: v });
        await subscribe(c.client, 'sensors/#', { qos: 1 });
        const payload = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
        nc.publish('sensors.room2.hum', payload);
        nc.publish('sensors', 'parent level');
        const got = await c.inbox.count(2);
        expect(got.map((m) => [m.topic, m.packet.retain])).toEqual([
          ['sensors/room2/hum', false],
          ['sensors', false],
        ]);
        expect(got[0]?.payload.equals(payload)).toBe(true);
        // NATS-originated messages are delivered at QoS 0 or within the granted QoS
        for (const m of got) expect(m.packet.qos).toBeLessThanOrEqual(1);
      });
    }

    it('an MQTT publish carries the Nmqtt-Pub header with its QoS, as nats-server sets it', async () => {
      const inbox = new NatsInbox(nc, 'hdr.>');
      await nc.flush();
      const c = await connectMqtt(broker.mqttPort);
      await c.client.publishAsync('hdr/q1', 'x', { qos: 1 });
      const m = await inbox.waitFor((x) => x.subject === 'hdr.q1');
      expect(m.headers?.get('Nmqtt-Pub')).toBe('1');
      inbox.sub.unsubscribe();
    });
  });

  describe('topic <-> subject mapping (spec sheet 1.5 - 1.7)', () => {
    it('MQTT topic names map to NATS subjects', async () => {
      const rows = TOPIC_TO_SUBJECT.filter((r) => kind === 'nats-edge' || r.in29);
      const inbox = new NatsInbox(nc, '>');
      await nc.flush();
      const c = await connectMqtt(broker.mqttPort);
      for (const [i, row] of rows.entries()) await c.client.publishAsync(row.topic, String(i), { qos: 1 });
      await c.client.publishAsync('zz/mark', '', { qos: 1 });
      const got = await inbox.until('zz.mark');
      inbox.sub.unsubscribe();
      const seen = got.map((m) => [m.string(), m.subject]);
      expect(seen).toEqual(rows.map((r, i) => [String(i), r.subject]));
    });

    it('a PUBLISH to a topic with a wildcard or a space is refused (connection closed)', async () => {
      for (const topic of ['foo/+', 'foo/#', 'foo bar']) {
        const raw = await RawMqtt.connected(broker.mqttPort, 4);
        raw.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
        await raw.waitClosed();
      }
    });

    it('NATS subjects map back to MQTT topics for a # subscriber', async () => {
      const rows = SUBJECT_TO_TOPIC.filter((r) => kind === 'nats-edge' || r.in29);
      const c = await connectMqtt(broker.mqttPort);
      await subscribe(c.client, ['#'], { qos: 0 });
      for (const [i, row] of rows.entries()) nc.publish(row.subject, String(i));
      nc.publish('zz.mark', '');
      const got = (await c.inbox.until('zz/mark')).filter((m) => !m.packet.retain && !m.topic.startsWith('$'));
      expect(got.map((m) => [m.payload.toString(), m.topic])).toEqual(rows.map((r, i) => [String(i), r.topic]));
    });

    for (const row of FILTERS) {
      it.skipIf(!row.in29 && edgeOnly)(`MQTT filter ${row.filter} gets ${row.delivered.map((d) => d[0]).join(', ')} but not ${row.notDelivered.join(', ')}`, async () => {
        const c = await connectMqtt(broker.mqttPort);
        expect(await subscribe(c.client, [row.filter, 'zz/mark'], { qos: 0 })).toEqual([0, 0]);
        for (const s of row.notDelivered) nc.publish(s, 'no');
        for (const [s] of row.delivered) nc.publish(s, 'yes');
        nc.publish('zz.mark', '');
        const got = (await c.inbox.until('zz/mark')).filter((m) => !m.packet.retain);
        expect(got.map((m) => [m.topic, m.payload.toString()])).toEqual(row.delivered.map(([, t]) => [t, 'yes']));
      });
    }

    it('MQTT -> MQTT keeps the publisher topic string exactly', async () => {
      const sub = await connectMqtt(broker.mqttPort);
      await subscribe(sub.client, ['x/#', '/#', 'zz/mark'], { qos: 0 });
      const pub = await connectMqtt(broker.mqttPort);
      const topics = ['x/a', 'x//b', '/lead', 'x/ü/é', 'x/'];
      for (const t of topics) await pub.client.publishAsync(t, t, { qos: 1 });
      await pub.client.publishAsync('zz/mark', '', { qos: 1 });
      const got = await sub.inbox.until('zz/mark');
      expect(got.map((m) => m.topic)).toEqual(topics);
    });
  });

  describe.skipIf(edgeOnly)('MQTT 5 <-> NATS headers and replies (nats-edge only: nats-server has no MQTT 5)', () => {
    it('NATS headers arrive as v5 user properties', async () => {
      const c = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
      await subscribe(c.client, 'h5/#', { qos: 0 });
      const h = headers();
      h.set('unit', 'C');
      h.append('tag', 'a');
      h.append('tag', 'b');
      nc.publish('h5.t', 'x', { headers: h });
      const m = await c.inbox.waitFor((x) => x.topic === 'h5/t');
      const up = m.packet.properties?.userProperties ?? {};
      expect(up['unit']).toBe('C');
      expect(up['tag']).toEqual(['a', 'b']);
    });

    it('v5 user properties arrive as NATS headers', async () => {
      const inbox = new NatsInbox(nc, 'h5.>');
      await nc.flush();
      const c = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
      await c.client.publishAsync('h5/u', 'x', { qos: 1, properties: { userProperties: { unit: 'C', tag: ['a', 'b'] } } });
      const m = await inbox.waitFor((x) => x.subject === 'h5.u');
      expect(m.headers?.get('unit')).toBe('C');
      expect(m.headers?.values('tag')).toEqual(['a', 'b']);
      inbox.sub.unsubscribe();
    });

    it('a NATS service answers an MQTT v5 request (response topic -> NATS reply)', async () => {
      const svc = nc.subscribe('svc.echo', {
        callback: (_err, m) => {
          m.respond(`echo:${m.string()}`);
        },
      });
      await nc.flush();
      const c = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
      await subscribe(c.client, 'resp/me', { qos: 1 });
      await c.client.publishAsync('svc/echo', 'hello', { qos: 1, properties: { responseTopic: 'resp/me', correlationData: Buffer.from('c-1') } });
      const answer = await c.inbox.waitFor((m) => m.topic === 'resp/me');
      expect(answer.payload.toString()).toBe('echo:hello');
      svc.unsubscribe();
    });

    // The NATS reply is a broker-owned subject that maps back to topic + correlation data.
    it('the NATS answer to an MQTT v5 request carries the request correlation data back', async () => {
      const svc = nc.subscribe('svc.echo2', {
        callback: (_err, m) => {
          m.respond('ok');
        },
      });
      await nc.flush();
      const c = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
      await subscribe(c.client, 'resp/me2', { qos: 1 });
      const corr = Buffer.from([1, 2, 3, 0, 255]);
      await c.client.publishAsync('svc/echo2', 'q', { qos: 1, properties: { responseTopic: 'resp/me2', correlationData: corr } });
      const answer = await c.inbox.waitFor((m) => m.topic === 'resp/me2');
      const got = answer.packet.properties?.correlationData;
      expect(got === undefined ? 'no correlation data' : Buffer.from(got).toString('hex')).toBe(corr.toString('hex'));
      svc.unsubscribe();
    });

    it('an MQTT v5 responder answers a NATS request (NATS reply -> response topic)', async () => {
      const responder = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
      await subscribe(responder.client, 'svc/mqtt/#', { qos: 0 });
      responder.client.on('message', (_topic, payload, packet) => {
        const rt = packet.properties?.responseTopic;
        if (rt === undefined) return;
        responder.client.publish(rt, `answer:${payload.toString()}`, {
          qos: 0,
          properties: packet.properties?.correlationData !== undefined ? { correlationData: packet.properties.correlationData } : {},
        });
      });
      const reply = await within(nc.request('svc.mqtt.time', 'now', { timeout: 4000 }), 5000, 'NATS request answered over MQTT');
      expect(reply.string()).toBe('answer:now');
    });
  });

  describe('JetStream and restarts', () => {
    it('a stream on sensors.> captures every PUBACKed MQTT QoS 1 publish, even across a SIGKILL', async () => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'SENSORS', subjects: ['sensors.>'] });
      const sensor = await connectMqtt(broker.mqttPort);
      const N = 50;
      for (let i = 0; i < N; i++) await sensor.client.publishAsync(`sensors/js/${i % 5}`, `reading ${i}`, { qos: 1 });
      // Every PUBACK above means "stored": kill at once and count after the restart.
      await endMqtt(sensor.client).catch(() => undefined);
      await nc.close();
      await restartBroker(broker, 'SIGKILL');
      nc = await connect({ servers: broker.natsUrl, reconnect: false });
      const jsm2 = await jetstreamManager(nc);
      const info = await jsm2.streams.info('SENSORS');
      expect(info.state.messages).toBe(N);
      const last = await jsm2.streams.getMessage('SENSORS', { seq: N });
      expect([last?.subject, last?.string()]).toEqual([`sensors.js.${(N - 1) % 5}`, `reading ${N - 1}`]);
      await jsm2.streams.delete('SENSORS');
    });

    it('persistent sessions (with messages queued while offline) and retained messages survive a restart', async () => {
      const id = uniqueId('persist');
      const a = await connectMqtt(broker.mqttPort, { clientId: id, clean: false });
      await subscribe(a.client, 'keep/q/#', { qos: 1 });
      await endMqtt(a.client);
      const pub = await connectMqtt(broker.mqttPort);
      await pub.client.publishAsync('keep/status', 'online', { qos: 1, retain: true });
      await pub.client.publishAsync('keep/q/1', 'queued 1', { qos: 1 });
      await pub.client.publishAsync('keep/q/2', 'queued 2', { qos: 1 });
      await endMqtt(pub.client);
      await nc.close();
      await restartBroker(broker, 'SIGTERM');
      nc = await connect({ servers: broker.natsUrl, reconnect: false });

      const b = await connectMqtt(broker.mqttPort, { clientId: id, clean: false });
      expect(b.connack.sessionPresent).toBe(true);
      const queued = await b.inbox.count(2);
      expect(queued.map((m) => [m.topic, m.payload.toString(), m.packet.qos])).toEqual([
        ['keep/q/1', 'queued 1', 1],
        ['keep/q/2', 'queued 2', 1],
      ]);
      // the restored subscription is live without a new SUBSCRIBE
      nc.publish('keep.q.3', 'live after restart');
      await b.inbox.waitFor((m) => m.topic === 'keep/q/3');

      const fresh = await connectMqtt(broker.mqttPort);
      await subscribe(fresh.client, 'keep/status', { qos: 1 });
      const r = await fresh.inbox.waitFor((m) => m.topic === 'keep/status');
      expect([r.payload.toString(), r.packet.retain, r.packet.qos]).toEqual(['online', true, 1]);
    });

    it.skipIf(edgeOnly)('v5 sessions with session expiry survive a restart', async () => {
      const id = uniqueId('persist5');
      const opts = { protocolVersion: 5 as const, clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } };
      const a = await connectMqtt(broker.mqttPort, opts);
      await subscribe(a.client, 'keep5/#', { qos: 1 });
      await endMqtt(a.client);
      const pub = await connectMqtt(broker.mqttPort, { protocolVersion: 5 });
      await pub.client.publishAsync('keep5/x', 'while away', { qos: 1, properties: { userProperties: { k: 'v' } } });
      await endMqtt(pub.client);
      await nc.close();
      await restartBroker(broker, 'SIGTERM');
      nc = await connect({ servers: broker.natsUrl, reconnect: false });
      const b = await connectMqtt(broker.mqttPort, opts);
      expect(b.connack.sessionPresent).toBe(true);
      const [m] = await b.inbox.count(1);
      expect([m?.topic, m?.payload.toString(), m?.packet.properties?.userProperties]).toEqual(['keep5/x', 'while away', { k: 'v' }]);
    });
  });

  it('a raw v3.1.1 CONNECT to the MQTT port gets CONNACK 0', async () => {
    const raw = await RawMqtt.open(broker.mqttPort, 4);
    raw.send(connectPacket(4));
    const ack = await raw.next('connack');
    expect(ack).toMatchObject({ returnCode: 0 });
    raw.destroy();
  });
});

/** Stops the broker with `signal` and starts it again on the same store dir. */
async function restartBroker(broker: MqttBroker, signal: NodeJS.Signals): Promise<void> {
  await closeAllClients();
  await broker.restart(signal);
}
