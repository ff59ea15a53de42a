/**
 * Malformed and hostile MQTT input over raw sockets, v3.1.1 and v5, against mosquitto first and
 * then nats-edge. Each case checks that the broker closes (v5: with the DISCONNECT reason code
 * the MQTT 5 spec names) or answers a failure code, and then that a well-behaved pair of
 * mqtt.js clients on the same broker still completes a publish/subscribe round trip.
 *
 * mosquitto 2.0.11 sometimes closes a v5 connection without the DISCONNECT the spec asks for
 * (bad varint, second CONNECT, duplicate property); those cases list it in `silent`, and
 * nats-edge is held to the spec there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqttPacket, { type Packet } from 'mqtt-packet';
import {
  RawMqtt,
  connectMqtt,
  connectPacket,
  hex,
  mqttBrokerKinds,
  rawPublish,
  startMqttBroker,
  stopAllMqtt,
  subscribe,
  summarize,
  uniqueId,
  varint,
  type MqttBroker,
  type MqttBrokerKind,
  type MqttConn,
  type MqttVersion,
} from '../helpers/mqtt.js';

/** Packet-size limit given to both brokers: mosquitto's max_packet_size, nats-edge's max_payload. */
const LIMIT = 65536;

interface Ctx {
  /** Topic Alias Maximum from this connection's CONNACK (v5), 0 when absent. */
  aliasMax: number;
  /** Maximum Packet Size from this connection's CONNACK (v5), 0 when absent. */
  maxPacket: number;
}

type Outcome =
  /** The broker closes the connection. */
  | 'close'
  /** SUBSCRIBE with a valid filter first and an invalid one second: failure code or close, never granted. */
  | 'filter'
  /** The packet is accepted: the connection answers a PINGREQ afterwards. */
  | 'accept';

interface BadCase {
  name: string;
  versions: MqttVersion[];
  /** Send CONNECT and await CONNACK 0 before the bad bytes (false: the bad bytes come first). */
  connected: boolean;
  send: (v: MqttVersion, ctx: Ctx) => Buffer[];
  outcome: Outcome;
  /** v5: reason codes allowed in the broker's DISCONNECT (or CONNACK for pre-CONNECT cases). */
  v5Codes: number[];
  /** Brokers known to close a v5 connection here without sending a DISCONNECT first. */
  silent?: MqttBrokerKind[];
  /** Brokers this case does not apply to, with why. */
  skip?: Partial<Record<MqttBrokerKind, string>>;
}

/** Body bytes -> fixed header byte + remaining length + body. */
function frame(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first]), varint(body.length), body]);
}

/** Property-length prefix for v5 (empty properties), nothing for v3.1.1. */
function noProps(v: MqttVersion): Buffer {
  return v === 5 ? Buffer.from([0]) : Buffer.alloc(0);
}

function str(s: string | Buffer): Buffer {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

function subscribeBytes(v: MqttVersion, filters: Array<[string | Buffer, number]>, packetId = 1): Buffer {
  return frame(
    0x82,
    Buffer.concat([Buffer.from([packetId >> 8, packetId & 0xff]), noProps(v), ...filters.map(([f, o]) => Buffer.concat([str(f), Buffer.from([o])]))]),
  );
}

/** A v5 QoS 0 PUBLISH with hand-made property bytes. */
function publish5(topic: string, props: Buffer, payload = 'x'): Buffer {
  return frame(0x30, Buffer.concat([str(topic), varint(props.length), props, Buffer.from(payload)]));
}

/** A v5 QoS 0 PUBLISH on `big` whose whole encoded size (fixed header included) is `total` bytes. */
function publishOfSize(total: number): Buffer {
  if (total <= 0) throw new Error('the broker announced no Maximum Packet Size in CONNACK');
  const fixed = 2 + 3 + 1; // topic length + "big" + empty properties
  for (let lenBytes = 1; lenBytes <= 4; lenBytes++) {
    const remaining = total - 1 - lenBytes;
    if (varint(remaining).length === lenBytes) {
      const buf = frame(0x30, Buffer.concat([str('big'), Buffer.from([0]), Buffer.alloc(remaining - fixed, 0x61)]));
      if (buf.length !== total) throw new Error(`built ${buf.length} bytes, wanted ${total}`);
      return buf;
    }
  }
  throw new Error(`no PUBLISH of ${total} bytes`);
}

/** A packet generated for protocol version `v`. */
function gen(v: MqttVersion, p: Packet): Buffer {
  return mqttPacket.generate(p, { protocolVersion: v });
}

const BOTH: MqttVersion[] = [4, 5];

const INVALID_FILTERS = ['a/#/b', 'a/b+', 'a+/b', '#/a', 'a/#b', 'a/+b/c'];

const CASES: BadCase[] = [
  // ---- framing -----------------------------------------------------------------------------
  {
    name: 'remaining length varint of 5 bytes',
    versions: BOTH,
    connected: true,
    send: () => [hex('30 ff ff ff ff 01')],
    outcome: 'close',
    v5Codes: [0x81],
    silent: ['mosquitto'],
  },
  {
    name: 'PUBLISH whose topic length runs past the packet',
    versions: BOTH,
    connected: true,
    send: () => [hex('30 05 0010 616263')],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'SUBSCRIBE whose filter length runs past the packet',
    versions: BOTH,
    connected: true,
    send: (v) => [frame(0x82, Buffer.concat([hex('0001'), noProps(v), hex('0020 6162')]))],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'CONNECT whose client id length runs past the packet',
    versions: BOTH,
    connected: false,
    send: (v) => [hex(`10 0c 0004 4d515454 0${v} 02 003c 00ff`)],
    outcome: 'close',
    v5Codes: [],
  },
  {
    name: 'PUBLISH with QoS 3',
    versions: BOTH,
    connected: true,
    send: (v) => [frame(0x36, Buffer.concat([str('a'), hex('0001'), noProps(v), Buffer.from('x')]))],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'SUBSCRIBE with fixed-header flags 0000',
    versions: BOTH,
    connected: true,
    send: (v) => [frame(0x80, Buffer.concat([hex('0001'), noProps(v), str('a'), hex('00')]))],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'UNSUBSCRIBE with fixed-header flags 0000',
    versions: BOTH,
    connected: true,
    send: (v) => [frame(0xa0, Buffer.concat([hex('0001'), noProps(v), str('a')]))],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'reserved packet type 0',
    versions: BOTH,
    connected: true,
    send: () => [hex('00 00')],
    outcome: 'close',
    v5Codes: [0x81, 0x82],
  },
  {
    name: 'reserved packet type 15 (3.1.1; AUTH in v5)',
    versions: [4],
    connected: true,
    send: () => [hex('f0 00')],
    outcome: 'close',
    v5Codes: [],
  },
  {
    name: 'PUBLISH far over the packet size limit',
    versions: BOTH,
    connected: true,
    send: (v) => [gen(v, { cmd: 'publish', topic: 'big', payload: Buffer.alloc(3 * LIMIT, 0x61), qos: 0, dup: false, retain: false })],
    outcome: 'close',
    v5Codes: [0x95],
  },
  {
    name: 'PUBLISH one byte over the CONNACK Maximum Packet Size',
    versions: [5],
    connected: true,
    send: (_v, ctx) => [publishOfSize(ctx.maxPacket + 1)],
    outcome: 'close',
    v5Codes: [0x95],
    skip: { mosquitto: 'mosquitto 2.0.11 compares the remaining length, not the whole packet (spec sheet 5.2)' },
  },
  {
    name: 'PUBLISH of exactly the CONNACK Maximum Packet Size is accepted',
    versions: [5],
    connected: true,
    send: (_v, ctx) => [publishOfSize(ctx.maxPacket)],
    outcome: 'accept',
    v5Codes: [],
  },
  {
    name: 'PUBLISH just under the packet size limit is accepted',
    versions: BOTH,
    connected: true,
    send: (v) => [gen(v, { cmd: 'publish', topic: 'big', payload: Buffer.alloc(60_000, 0x61), qos: 1, messageId: 9, dup: false, retain: false })],
    outcome: 'accept',
    v5Codes: [],
  },
  // ---- session rules -----------------------------------------------------------------------
  {
    name: 'PUBLISH before CONNECT',
    versions: BOTH,
    connected: false,
    send: () => [hex('30 04 0001 61 78')],
    outcome: 'close',
    v5Codes: [],
  },
  {
    name: 'HTTP request instead of CONNECT',
    versions: BOTH,
    connected: false,
    send: () => [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    outcome: 'close',
    v5Codes: [],
  },
  {
    name: 'protocol name MQXX',
    versions: BOTH,
    connected: false,
    send: (v) => [hex(`10 0c 0004 4d515858 0${v} 02 003c 0000`)],
    outcome: 'close',
    v5Codes: [],
  },
  {
    name: 'CONNECT with the reserved flag bit set',
    versions: BOTH,
    connected: false,
    send: (v) => [hex(`10 0c 0004 4d515454 0${v} 03 003c 0000`)],
    outcome: 'close',
    v5Codes: [],
  },
  {
    name: 'will topic with a wildcard',
    versions: BOTH,
    connected: false,
    send: (v) => [gen(v, { ...connectPacket(v), will: { topic: 'a/#', payload: Buffer.from('x'), qos: 0, retain: false } } as Packet)],
    outcome: 'close',
    v5Codes: [0x90, 0x82, 0x81],
  },
  {
    name: 'v5 CONNECT with Receive Maximum 0',
    versions: [5],
    connected: false,
    send: () => [gen(5, { ...connectPacket(5), properties: { receiveMaximum: 0 } } as Packet)],
    outcome: 'close',
    v5Codes: [0x82],
  },
  {
    name: 'a second CONNECT',
    versions: BOTH,
    connected: true,
    send: (v) => [gen(v, connectPacket(v))],
    outcome: 'close',
    v5Codes: [0x82],
    silent: ['mosquitto'],
  },
  // ---- topics and filters ------------------------------------------------------------------
  {
    name: 'PUBLISH to a + wildcard topic (QoS 0)',
    versions: BOTH,
    connected: true,
    send: (v) => [gen(v, { cmd: 'publish', topic: 'a/+', payload: Buffer.from('x'), qos: 0, dup: false, retain: false })],
    outcome: 'close',
    // 0x90 Topic Name invalid is the spec's code; mosquitto says 0x82 Protocol Error.
    v5Codes: [0x90, 0x82],
  },
  {
    name: 'PUBLISH to a # wildcard topic (QoS 1)',
    versions: BOTH,
    connected: true,
    send: (v) => [gen(v, { cmd: 'publish', topic: 'a/#', payload: Buffer.from('x'), qos: 1, messageId: 3, dup: false, retain: false })],
    outcome: 'close',
    v5Codes: [0x90, 0x82],
  },
  {
    name: 'PUBLISH with an empty topic and no alias',
    versions: BOTH,
    connected: true,
    send: (v) => [rawPublish(Buffer.alloc(0), Buffer.from('x'), v)],
    outcome: 'close',
    v5Codes: [0x82],
  },
  {
    name: 'invalid UTF-8 in a PUBLISH topic',
    versions: BOTH,
    connected: true,
    send: (v) => [rawPublish(hex('61 c3 28'), Buffer.from('x'), v)],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'U+0000 in a PUBLISH topic',
    versions: BOTH,
    connected: true,
    send: (v) => [rawPublish(hex('61 00 62'), Buffer.from('x'), v)],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'UTF-16 surrogate (ED A0 80) in a PUBLISH topic',
    versions: BOTH,
    connected: true,
    send: (v) => [rawPublish(hex('ed a0 80'), Buffer.from('x'), v)],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'invalid UTF-8 in a SUBSCRIBE filter',
    versions: BOTH,
    connected: true,
    send: (v) => [subscribeBytes(v, [[hex('61 ff 62'), 0]])],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'QoS 1 PUBLISH with packet id 0',
    versions: BOTH,
    connected: true,
    send: (v) => [frame(0x32, Buffer.concat([str('a'), hex('0000'), noProps(v), Buffer.from('x')]))],
    outcome: 'close',
    v5Codes: [0x82, 0x81],
  },
  {
    name: 'SUBSCRIBE with no filter',
    versions: BOTH,
    connected: true,
    send: (v) => [frame(0x82, Buffer.concat([hex('0001'), noProps(v)]))],
    outcome: 'close',
    v5Codes: [0x82, 0x81],
  },
  {
    name: 'SUBSCRIBE with an empty filter',
    versions: BOTH,
    connected: true,
    send: (v) => [subscribeBytes(v, [['', 0]])],
    outcome: 'close',
    v5Codes: [0x82, 0x81, 0x8f],
  },
  ...INVALID_FILTERS.map(
    (f): BadCase => ({
      name: `SUBSCRIBE [ok/x, ${f}]`,
      versions: BOTH,
      connected: true,
      send: (v) => [subscribeBytes(v, [['ok/x', 1], [f, 0]])],
      outcome: 'filter',
      v5Codes: [0x81, 0x82, 0x8f],
    }),
  ),
  // ---- MQTT 5 only -------------------------------------------------------------------------
  {
    name: 'duplicate Content Type property',
    versions: [5],
    connected: true,
    send: () => [publish5('a', hex('030001 78 030001 79'))],
    outcome: 'close',
    v5Codes: [0x82, 0x81],
    silent: ['mosquitto'],
  },
  {
    // User Property (0x26): name "k", value "a<U+0000>b".
    name: 'U+0000 in a user property value',
    versions: [5],
    connected: true,
    send: () => [publish5('a', hex('26 0001 6b 0003 610062'))],
    outcome: 'close',
    v5Codes: [0x81, 0x82],
    silent: ['mosquitto'],
  },
  {
    name: 'invalid UTF-8 (FF) in a user property name',
    versions: [5],
    connected: true,
    send: () => [publish5('a', hex('26 0002 ff6b 0001 76'))],
    outcome: 'close',
    v5Codes: [0x81, 0x82],
    silent: ['mosquitto'],
  },
  {
    // Content Type (0x03) "a<U+0000>".
    name: 'U+0000 in a Content Type',
    versions: [5],
    connected: true,
    send: () => [publish5('a', hex('03 0002 6100'))],
    outcome: 'close',
    v5Codes: [0x81, 0x82],
    silent: ['mosquitto'],
  },
  {
    name: 'unknown property id 0x7f',
    versions: [5],
    connected: true,
    send: () => [publish5('a', hex('7f 00'))],
    outcome: 'close',
    v5Codes: [0x81],
  },
  {
    name: 'Subscription Identifier 0',
    versions: [5],
    connected: true,
    send: () => [frame(0x82, Buffer.concat([hex('0001 02 0b00'), str('a'), hex('00')]))],
    outcome: 'close',
    v5Codes: [0x82, 0x81],
  },
  {
    name: 'Retain Handling 3',
    versions: [5],
    connected: true,
    send: () => [subscribeBytes(5, [['a', 0x30]])],
    outcome: 'close',
    v5Codes: [0x81, 0x82],
  },
  {
    name: 'Topic Alias 0',
    versions: [5],
    connected: true,
    send: () => [publish5('a', hex('23 0000'))],
    outcome: 'close',
    // 4.13: 0x94 Topic Alias invalid; mosquitto says 0x81.
    v5Codes: [0x94, 0x82, 0x81],
  },
  {
    name: 'Topic Alias above the Topic Alias Maximum',
    versions: [5],
    connected: true,
    send: (_v, ctx) => [publish5('a', Buffer.from([0x23, (ctx.aliasMax + 1) >> 8, (ctx.aliasMax + 1) & 0xff]))],
    outcome: 'close',
    v5Codes: [0x94],
  },
  {
    name: 'empty topic with a Topic Alias never set',
    versions: [5],
    connected: true,
    send: () => [publish5('', hex('23 0001'))],
    outcome: 'close',
    // With aliases unsupported (maximum 0) the alias itself is invalid: 0x94.
    v5Codes: [0x82, 0x94],
  },
  {
    name: 'No Local on a shared subscription',
    versions: [5],
    connected: true,
    send: () => [subscribeBytes(5, [['$share/g/a', 0x04]])],
    outcome: 'close',
    v5Codes: [0x82],
    skip: { mosquitto: 'mosquitto 2.0.11 grants it (spec: Protocol Error)' },
  },
  {
    name: 'shared subscription with a wildcard in the share name',
    versions: [5],
    connected: true,
    send: () => [subscribeBytes(5, [['ok/x', 1], ['$share/g+/a', 0]])],
    outcome: 'filter',
    v5Codes: [0x81, 0x82, 0x8f],
  },
];

afterAll(async () => {
  await stopAllMqtt();
});

describe.each(mqttBrokerKinds())('MQTT bad input against %s', (kind) => {
  let broker: MqttBroker;
  let port: number;
  let watch: MqttConn;
  let pub: MqttConn;
  let round = 0;

  beforeAll(async () => {
    broker = await startMqttBroker(kind, {
      extraConfig: kind === 'mosquitto' ? `max_packet_size ${LIMIT}` : `max_payload: ${LIMIT}`,
    });
    port = broker.mqttPort;
    watch = await connectMqtt(port, { protocolVersion: 5 });
    await subscribe(watch.client, 'health/#', { qos: 1 });
    pub = await connectMqtt(port, { protocolVersion: 4 });
  });

  afterAll(async () => {
    await broker.stop();
  });

  /** The well-behaved pair still completes a QoS 1 round trip, and a new client can connect. */
  async function stillHealthy(): Promise<void> {
    const n = ++round;
    await pub.client.publishAsync(`health/${n}`, `ok ${n}`, { qos: 1 });
    const m = await watch.inbox.waitFor((x) => x.topic === `health/${n}`);
    expect(m.payload.toString()).toBe(`ok ${n}`);
    const fresh = await RawMqtt.connected(port, 4);
    await fresh.ping();
    fresh.destroy();
  }

  for (const c of CASES) {
    for (const v of c.versions) {
      const skipWhy = c.skip?.[kind];
      it.skipIf(skipWhy !== undefined)(`v${v}: ${c.name}${skipWhy !== undefined ? ` (skipped: ${skipWhy})` : ''}`, async () => {
        let raw: RawMqtt;
        const ctx: Ctx = { aliasMax: 0, maxPacket: 0 };
        if (c.connected) {
          raw = await RawMqtt.open(port, v);
          raw.send(connectPacket(v));
          const ack = await raw.next('connack');
          expect(ack.cmd === 'connack' ? (ack.reasonCode ?? ack.returnCode) : -1).toBe(0);
          if (ack.cmd === 'connack') {
            ctx.aliasMax = ack.properties?.topicAliasMaximum ?? 0;
            ctx.maxPacket = ack.properties?.maximumPacketSize ?? 0;
          }
        } else {
          raw = await RawMqtt.open(port, v);
        }
        for (const b of c.send(v, ctx)) raw.send(b);

        if (c.outcome === 'accept') {
          const state = await raw.pingOrClose();
          expect(state, raw.describe()).toBe('alive');
          const acks = raw.all('puback');
          for (const a of acks) if (a.cmd === 'puback') expect(a.reasonCode ?? 0).toBeLessThan(0x80);
          raw.destroy();
        } else if (c.outcome === 'close') {
          await raw.waitClosed(5000);
          checkClosePackets(raw, c, v, kind);
        } else {
          await checkFilterRejected(raw, v);
        }
        await stillHealthy();
      });
    }
  }

  it('after a second CONNECT closed the connection, the same client id connects again at once', async () => {
    const id = uniqueId('again');
    const raw = await RawMqtt.connected(port, 4, { clientId: id });
    raw.send(connectPacket(4, { clientId: id }));
    await raw.waitClosed();
    const again = await RawMqtt.connected(port, 4, { clientId: id });
    await again.ping();
    again.destroy();
  });

  it('a burst of garbage on many connections at once harms nobody else', async () => {
    const junk = [hex('30 ff ff ff ff 01'), hex('10 ff ff ff 7f 00'), Buffer.from('\x00\x00\x00\x00'), Buffer.alloc(64, 0xff), hex('82 02 0000')];
    const raws = await Promise.all(junk.map(() => RawMqtt.open(port, 4)));
    raws.forEach((r, i) => r.send(junk[i] ?? Buffer.alloc(0)));
    await Promise.all(raws.map((r) => r.waitClosed(5000)));
    await stillHealthy();
  });

  it.skipIf(kind === 'mosquitto')('v5 reason strings: a protocol-error DISCONNECT explains itself; none on SUBACK when Request Problem Information is 0', async () => {
    // mosquitto 2.0.11 sends no reason strings anywhere, so this is nats-edge only.
    const raw = await RawMqtt.connected(port, 5);
    raw.send(gen(5, { cmd: 'publish', topic: 'a/+', payload: Buffer.from('x'), qos: 0, dup: false, retain: false }));
    const d = await raw.next('disconnect');
    const reason = d.cmd === 'disconnect' ? d.properties?.reasonString : undefined;
    expect(typeof reason).toBe('string');
    expect((reason ?? '').length).toBeGreaterThan(0);
    await raw.waitClosed();

    const quiet = await RawMqtt.connected(port, 5, { properties: { requestProblemInformation: false } });
    quiet.send(subscribeBytes(5, [['ok/x', 1], ['a/#/b', 0]]));
    const first = await Promise.race([quiet.next('suback').catch(() => undefined), quiet.waitClosed().then(() => undefined)]);
    if (first !== undefined && first.cmd === 'suback') expect(first.properties?.reasonString).toBeUndefined();
    quiet.destroy();
  });
});

/** Close expectations: v3.1.1 gets no DISCONNECT; v5 gets one with an allowed code (or CONNACK >= 0x80 before CONNECT). */
function checkClosePackets(raw: RawMqtt, c: BadCase, v: MqttVersion, kind: MqttBrokerKind): void {
  const what = `${kind} v${v} ${c.name}: ${raw.describe()}`;
  const disconnects = raw.all('disconnect');
  if (!c.connected) {
    // Nothing but (optionally) a failing CONNACK may come back before the close.
    const connacks = raw.all('connack');
    for (const p of connacks) {
      const code = p.cmd === 'connack' ? (p.reasonCode ?? p.returnCode ?? 0) : 0;
      expect(code, what).not.toBe(0);
      if (v === 5) expect(c.v5Codes, what).toContain(code);
    }
    expect(disconnects, what).toEqual([]);
    return;
  }
  if (v !== 5) {
    expect(disconnects.map(summarize), what).toEqual([]);
    return;
  }
  for (const d of disconnects) {
    expect(c.v5Codes, what).toContain(d.cmd === 'disconnect' ? d.reasonCode : -1);
  }
  const mayBeSilent = c.silent?.includes(kind) ?? false;
  if (!mayBeSilent && c.v5Codes.length > 0) expect(disconnects.length, `${what}: a v5 close should come with DISCONNECT`).toBe(1);
}

/**
 * SUBSCRIBE [valid, invalid]: either a SUBACK granting the first and failing the second
 * (0x80 in 3.1.1, 0x8F Topic Filter invalid in v5) with the connection kept, or a close
 * (mosquitto's choice). Never a grant of the invalid filter.
 */
async function checkFilterRejected(raw: RawMqtt, v: MqttVersion): Promise<void> {
  const first = await Promise.race([
    raw.next('suback', 5000).catch(() => undefined),
    raw.waitClosed(5000).then(() => undefined),
  ]);
  if (first !== undefined && first.cmd === 'suback') {
    const granted = first.granted as number[];
    expect(granted[0], raw.describe()).toBe(1);
    if (v === 5) expect(granted[1], raw.describe()).toBe(0x8f);
    else expect(granted[1], raw.describe()).toBe(0x80);
    expect(await raw.pingOrClose()).toBe('alive');
    raw.destroy();
    return;
  }
  await raw.waitClosed(5000);
  expect(raw.all('suback').map(summarize), raw.describe()).toEqual([]);
  if (v === 5) {
    for (const d of raw.all('disconnect')) expect([0x81, 0x82, 0x8f], raw.describe()).toContain(d.cmd === 'disconnect' ? d.reasonCode : -1);
  } else {
    expect(raw.all('disconnect')).toEqual([]);
  }
}
