/**
 * MQTT 3.1.1 / 5.0 behaviour shared with the reference broker: every case runs against
 * Debian's mosquitto first and then against nats-edge, with mqtt.js (v4 and v5), the
 * mosquitto_pub / mosquitto_sub tools and raw sockets. Where mosquitto departs from the MQTT
 * spec (keepalive sweep, missing DISCONNECT before close) the per-broker bounds say so.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IPublishPacket } from 'mqtt';
import {
  RawMqtt,
  closeAllClients,
  connectMqtt,
  connectPacket,
  dropMqtt,
  endMqtt,
  hex,
  mosquittoPub,
  MosquittoSub,
  mqttBrokerKinds,
  startMqttBroker,
  stopAllMqtt,
  subscribe,
  uniqueId,
  type MqttBroker,
  type MqttBrokerKind,
} from '../helpers/mqtt.js';
import { makeTempDir } from '../helpers/servers.js';

/** Window in which a silent keepalive-1 s client must be closed (ms after CONNECT). */
const KEEPALIVE_CLOSE: Record<MqttBrokerKind, [number, number]> = {
  // mosquitto 2.0 sweeps keepalives every 5 s (spec sheet 5.2).
  mosquitto: [900, 7500],
  // 1.5 x keepalive, as the MQTT spec says.
  'nats-edge': [1400, 2700],
  'nats-server': [900, 2700],
};

/** Window in which a will with Will Delay Interval 1 s arrives after the socket drop (ms). */
const WILL_DELAY: Record<MqttBrokerKind, [number, number]> = {
  mosquitto: [900, 8000],
  'nats-edge': [900, 3000],
  'nats-server': [900, 3000],
};

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const BINARY = Buffer.concat([ALL_BYTES, Buffer.from('\r\n\0 end'), ALL_BYTES.subarray().reverse()]);

/** MQTT filter matching as the spec states it (4.7), including the `$` rule (4.7.2). */
function matches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

let seq = 0;
/** A topic root no other case uses. */
function root(name: string): string {
  seq++;
  return `it${seq}-${name}`;
}

const payloadDir = makeTempDir('mqtt-interop-');

afterAll(async () => {
  await stopAllMqtt();
});

describe.each(mqttBrokerKinds())('MQTT interop against %s', (kind) => {
  let broker: MqttBroker;
  let port: number;

  beforeAll(async () => {
    broker = await startMqttBroker(kind);
    port = broker.mqttPort;
  });

  afterEach(async () => {
    await closeAllClients();
  });

  afterAll(async () => {
    await broker.stop();
  });

  // -------------------------------------------------------------------------------------------
  describe('CONNECT / CONNACK', () => {
    it('protocol level 9 gets CONNACK return code 1 (3.1.1 format) and the connection is closed', async () => {
      const raw = await RawMqtt.open(port, 4);
      // "MQTT", level 9, clean session, keepalive 60, client id "lvl9"
      raw.send(hex('10 10 0004 4d515454 09 02 003c 0004 6c766c39'));
      const ack = await raw.next('connack');
      expect(ack).toMatchObject({ cmd: 'connack', returnCode: 1, sessionPresent: false });
      await raw.waitClosed();
    });

    it('3.1.1: empty client id with clean session 0 gets CONNACK 2 and close', async () => {
      const raw = await RawMqtt.open(port, 4);
      raw.send(hex('100c00044d5154540400001e0000'));
      const ack = await raw.next('connack');
      expect(ack).toMatchObject({ cmd: 'connack', returnCode: 2 });
      await raw.waitClosed();
    });

    it('3.1.1: empty client id with clean session 1 is accepted', async () => {
      const raw = await RawMqtt.open(port, 4);
      raw.send(hex('100c00044d5154540402001e0000'));
      const ack = await raw.next('connack');
      expect(ack).toMatchObject({ cmd: 'connack', returnCode: 0, sessionPresent: false });
      await raw.ping();
      raw.destroy();
    });

    it('v5: empty client id gets an Assigned Client Identifier', async () => {
      const { connack } = await connectMqtt(port, { protocolVersion: 5, clientId: '' });
      expect(connack.reasonCode).toBe(0);
      const assigned = connack.properties?.assignedClientIdentifier;
      expect(typeof assigned).toBe('string');
      expect((assigned ?? '').length).toBeGreaterThan(0);
    });

    it('v5 CONNACK is a v5 packet with reason code 0 and session present 0 on clean start', async () => {
      const raw = await RawMqtt.open(port, 5);
      raw.send(connectPacket(5));
      const ack = await raw.next('connack');
      expect(ack).toMatchObject({ cmd: 'connack', reasonCode: 0, sessionPresent: false });
      raw.destroy();
    });

    it('MQTT 3.1 (MQIsdp) clients can connect and publish (mosquitto_pub -V mqttv31)', async () => {
      const r = root('v31');
      const { inbox, client } = await connectMqtt(port);
      await subscribe(client, `${r}/t`);
      const res = await mosquittoPub(port, ['-V', 'mqttv31', '-t', `${r}/t`, '-m', 'from 3.1', '-q', '1']);
      expect(res.code, res.stderr).toBe(0);
      const m = await inbox.waitFor((x) => x.topic === `${r}/t`);
      expect(m.payload.toString()).toBe('from 3.1');
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('QoS 0/1/2 round trips, exact bytes', () => {
    for (const pubV of [4, 5] as const) {
      for (const subV of [4, 5] as const) {
        it(`mqtt.js v${pubV} publisher -> mqtt.js v${subV} subscriber at QoS 0, 1, 2`, async () => {
          const r = root(`qos${pubV}${subV}`);
          const sub = await connectMqtt(port, { protocolVersion: subV });
          expect(await subscribe(sub.client, `${r}/#`, { qos: 2 })).toEqual([2]);
          const pub = await connectMqtt(port, { protocolVersion: pubV });
          for (const qos of [0, 1, 2] as const) {
            await pub.client.publishAsync(`${r}/q${qos}`, BINARY, { qos });
          }
          const got = await sub.inbox.count(3);
          expect(got.map((m) => [m.topic, m.packet.qos, m.packet.retain])).toEqual([
            [`${r}/q0`, 0, false],
            [`${r}/q1`, 1, false],
            [`${r}/q2`, 2, false],
          ]);
          for (const m of got) expect(m.payload.equals(BINARY)).toBe(true);
        });
      }
    }

    it('delivery QoS is min(publish QoS, granted QoS)', async () => {
      const r = root('minqos');
      const sub0 = await connectMqtt(port);
      const sub1 = await connectMqtt(port, { protocolVersion: 5 });
      expect(await subscribe(sub0.client, `${r}/t`, { qos: 0 })).toEqual([0]);
      expect(await subscribe(sub1.client, `${r}/t`, { qos: 1 })).toEqual([1]);
      const pub = await connectMqtt(port);
      await pub.client.publishAsync(`${r}/t`, 'two', { qos: 2 });
      await pub.client.publishAsync(`${r}/t`, 'zero', { qos: 0 });
      expect((await sub0.inbox.count(2)).map((m) => [m.payload.toString(), m.packet.qos])).toEqual([
        ['two', 0],
        ['zero', 0],
      ]);
      expect((await sub1.inbox.count(2)).map((m) => [m.payload.toString(), m.packet.qos])).toEqual([
        ['two', 1],
        ['zero', 0],
      ]);
    });

    for (const v of ['mqttv311', 'mqttv5'] as const) {
      it(`mosquitto_pub -V ${v} (binary file, QoS 0/1/2) -> mqtt.js`, async () => {
        const r = root(`pub-${v}`);
        const file = join(payloadDir, `${r}.bin`);
        writeFileSync(file, BINARY);
        const sub = await connectMqtt(port, { protocolVersion: v === 'mqttv5' ? 5 : 4 });
        await subscribe(sub.client, `${r}/#`, { qos: 2 });
        for (const q of [0, 1, 2]) {
          const res = await mosquittoPub(port, ['-V', v, '-t', `${r}/q${q}`, '-f', file, '-q', String(q)]);
          expect(res.code, res.stderr).toBe(0);
        }
        const got = await sub.inbox.count(3);
        expect(got.map((m) => [m.topic, m.packet.qos])).toEqual([
          [`${r}/q0`, 0],
          [`${r}/q1`, 1],
          [`${r}/q2`, 2],
        ]);
        for (const m of got) expect(m.payload.equals(BINARY)).toBe(true);
      });

      it(`mqtt.js -> mosquitto_sub -V ${v} at QoS 2`, async () => {
        const r = root(`sub-${v}`);
        const sub = new MosquittoSub(port, ['-V', v, '-t', `${r}/#`, '-q', '2', '-C', '3']);
        await sub.subscribed();
        const pub = await connectMqtt(port, { protocolVersion: 5 });
        for (const qos of [0, 1, 2] as const) await pub.client.publishAsync(`${r}/q${qos}`, BINARY, { qos });
        const lines = await sub.count(3);
        expect(lines.map((l) => [l.topic, l.qos, l.retain])).toEqual([
          [`${r}/q0`, 0, false],
          [`${r}/q1`, 1, false],
          [`${r}/q2`, 2, false],
        ]);
        for (const l of lines) expect(l.payload.equals(BINARY)).toBe(true);
        expect(await sub.exit()).toBe(0);
      });
    }

    it('empty payload and a 100 kB payload round trip', async () => {
      const r = root('sizes');
      const sub = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(sub.client, `${r}/#`, { qos: 1 });
      const pub = await connectMqtt(port);
      const big = Buffer.alloc(100_000, 0xa5);
      big.write('start', 0);
      await pub.client.publishAsync(`${r}/empty`, Buffer.alloc(0), { qos: 1 });
      await pub.client.publishAsync(`${r}/big`, big, { qos: 1 });
      const got = await sub.inbox.count(2);
      expect(got[0]?.payload.length).toBe(0);
      expect(got[1]?.payload.equals(big)).toBe(true);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('retained messages', () => {
    it('set with mosquitto_pub -r, delivered on subscribe with RETAIN=1 at min(stored, granted) QoS', async () => {
      const r = root('ret');
      const res = await mosquittoPub(port, ['-t', `${r}/t`, '-m', 'kept', '-r', '-q', '1']);
      expect(res.code, res.stderr).toBe(0);
      const s1 = await connectMqtt(port);
      await subscribe(s1.client, `${r}/t`, { qos: 1 });
      const m1 = await s1.inbox.waitFor((m) => m.topic === `${r}/t`);
      expect([m1.payload.toString(), m1.packet.retain, m1.packet.qos]).toEqual(['kept', true, 1]);
      const s0 = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(s0.client, `${r}/+`, { qos: 0 });
      const m0 = await s0.inbox.waitFor((m) => m.topic === `${r}/t`);
      expect([m0.payload.toString(), m0.packet.retain, m0.packet.qos]).toEqual(['kept', true, 0]);
      // mosquitto_sub sees the retain flag too
      const ms = new MosquittoSub(port, ['-t', `${r}/t`, '-C', '1']);
      const [line] = await ms.count(1);
      expect([line?.payload.toString(), line?.retain]).toEqual(['kept', true]);
    });

    it('a live subscriber gets a retained publish with RETAIN=0; a newer retained message replaces the old', async () => {
      const r = root('ret-live');
      const live = await connectMqtt(port);
      await subscribe(live.client, `${r}/t`, { qos: 1 });
      const pub = await connectMqtt(port);
      await pub.client.publishAsync(`${r}/t`, 'first', { qos: 1, retain: true });
      await pub.client.publishAsync(`${r}/t`, 'second', { qos: 1, retain: true });
      const got = await live.inbox.count(2);
      expect(got.map((m) => [m.payload.toString(), m.packet.retain])).toEqual([
        ['first', false],
        ['second', false],
      ]);
      const late = await connectMqtt(port);
      await subscribe(late.client, [`${r}/t`, `${r}/mark`], { qos: 1 });
      await pub.client.publishAsync(`${r}/mark`, 'm', { qos: 1 });
      const before = await late.inbox.until(`${r}/mark`);
      expect(before.map((m) => [m.payload.toString(), m.packet.retain])).toEqual([['second', true]]);
    });

    it('an empty retained payload clears it (and is forwarded live as an empty message)', async () => {
      const r = root('ret-clear');
      expect((await mosquittoPub(port, ['-t', `${r}/t`, '-m', 'x', '-r', '-q', '1'])).code).toBe(0);
      const live = await connectMqtt(port);
      await subscribe(live.client, `${r}/t`, { qos: 1 });
      await live.inbox.waitFor((m) => m.packet.retain && m.payload.toString() === 'x');
      expect((await mosquittoPub(port, ['-t', `${r}/t`, '-n', '-r', '-q', '1'])).code).toBe(0);
      const cleared = await live.inbox.waitFor((m) => m.payload.length === 0);
      expect(cleared.packet.retain).toBe(false);
      const late = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(late.client, [`${r}/#`], { qos: 1 });
      const pub = await connectMqtt(port);
      await pub.client.publishAsync(`${r}/mark`, 'm', { qos: 1 });
      expect((await late.inbox.until(`${r}/mark`)).map((m) => m.topic)).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('wildcards and UNSUBSCRIBE', () => {
    it('+ and # match whole levels; # includes the parent; $ topics are not matched by leading wildcards', async () => {
      const r = root('wc');
      const cases: Array<[string, string[], string[]]> = [
        // filter, topics delivered, topics not delivered
        [`${r}/#`, [r, `${r}/a`, `${r}/a/b`, `${r}/`, `${r}//x`], [`${r}x`, `x/${r}`]],
        [`${r}/+`, [`${r}/a`, `${r}/`], [r, `${r}/a/b`, `${r}x/a`]],
        [`${r}/+/c`, [`${r}/a/c`, `${r}//c`], [`${r}/a/b/c`, `${r}/a/c/d`, `${r}/c`]],
        [`+/${r}/+`, [`a/${r}/b`, `/${r}/b`], [`${r}/b`, `a/${r}`, `$x/${r}/b`]],
        [`$${r}/#`, [`$${r}/a`, `$${r}`], [`${r}/a`]],
      ];
      const all = [...new Set(cases.flatMap(([, yes, no]) => [...yes, ...no]))];
      const subs = [];
      for (const [filter] of cases) {
        const c = await connectMqtt(port, { protocolVersion: 5 });
        expect(await subscribe(c.client, [filter, `mark/${r}`], { qos: 0 })).toEqual([0, 0]);
        subs.push(c);
      }
      const hash = await connectMqtt(port);
      await subscribe(hash.client, ['#', `mark/${r}`], { qos: 0 });
      const pub = await connectMqtt(port);
      for (const t of all) await pub.client.publishAsync(t, t, { qos: 1 });
      await pub.client.publishAsync(`mark/${r}`, '', { qos: 1 });
      for (const [i, [filter, yes]] of cases.entries()) {
        const got = await subs[i]!.inbox.until(`mark/${r}`);
        const expected = all.filter((t) => matches(filter, t));
        // the table's own examples agree with the matcher
        for (const t of yes) expect(expected).toContain(t);
        for (const t of cases[i]![2]) expect(expected).not.toContain(t);
        expect({ filter, topics: got.map((m) => m.topic).sort() }).toEqual({ filter, topics: expected.sort() });
        for (const m of got) expect(m.payload.toString()).toBe(m.topic);
      }
      const seenByHash = (await hash.inbox.until(`mark/${r}`)).filter((m) => !m.packet.retain).map((m) => m.topic);
      expect(seenByHash.sort()).toEqual(all.filter((t) => !t.startsWith('$')).sort());
    });

    it('UNSUBSCRIBE stops delivery, only for that filter', async () => {
      const r = root('unsub');
      for (const v of [4, 5] as const) {
        const c = await connectMqtt(port, { protocolVersion: v });
        await subscribe(c.client, [`${r}/a`, `${r}/b`], { qos: 1 });
        const pub = await connectMqtt(port);
        await pub.client.publishAsync(`${r}/a`, '1', { qos: 1 });
        await c.inbox.waitFor((m) => m.payload.toString() === '1');
        const ack = await c.client.unsubscribeAsync(`${r}/a`);
        expect(ack?.cmd).toBe('unsuback');
        c.inbox.clear();
        await pub.client.publishAsync(`${r}/a`, '2', { qos: 1 });
        await pub.client.publishAsync(`${r}/b`, 'mark', { qos: 1 });
        expect((await c.inbox.until(`${r}/b`)).map((m) => m.payload.toString())).toEqual([]);
      }
    });

    it('v5 UNSUBACK: 0x00 for an existing subscription, 0x11 for none', async () => {
      const r = root('unsub5');
      const raw = await RawMqtt.connected(port, 5);
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${r}/a`, qos: 0 }] });
      await raw.next('suback');
      raw.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`${r}/a`, `${r}/none`] });
      const ack = await raw.next('unsuback');
      expect(ack).toMatchObject({ messageId: 2, granted: [0x00, 0x11] });
      raw.destroy();
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('keepalive, takeover, will', () => {
    it('a client that goes silent after CONNECT with keepalive 1 is closed at 1.5 x keepalive and its will is sent', async () => {
      const r = root('ka');
      const watcher = await connectMqtt(port);
      await subscribe(watcher.client, `${r}/will`, { qos: 1 });
      const raw = await RawMqtt.open(port, 4);
      raw.send(connectPacket(4, { keepalive: 1, will: { topic: `${r}/will`, payload: Buffer.from('gone'), qos: 1, retain: false } }));
      await raw.next('connack');
      const closedAt = await raw.waitClosed(10_000);
      const [lo, hi] = KEEPALIVE_CLOSE[kind];
      expect(closedAt).toBeGreaterThanOrEqual(lo);
      expect(closedAt).toBeLessThanOrEqual(hi);
      const will = await watcher.inbox.waitFor((m) => m.topic === `${r}/will`);
      expect(will.payload.toString()).toBe('gone');
    });

    for (const v of [4, 5] as const) {
      it(`v${v}: a second connection with the same client id takes over; the first is closed`, async () => {
        const id = uniqueId('take');
        const first = await connectMqtt(port, { protocolVersion: v, clientId: id });
        const disconnects: number[] = [];
        first.client.on('disconnect', (p) => disconnects.push(p.reasonCode ?? 0));
        const firstClosed = new Promise<void>((r) => first.client.once('close', () => r()));
        const second = await connectMqtt(port, { protocolVersion: v, clientId: id });
        await firstClosed;
        // v5: a DISCONNECT before the close is optional; if sent it must say 0x8E Session taken over.
        for (const code of disconnects) expect(code).toBe(0x8e);
        const r = root('take');
        await subscribe(second.client, `${r}/t`, { qos: 1 });
        await second.client.publishAsync(`${r}/t`, 'still here', { qos: 1 });
        expect((await second.inbox.waitFor((m) => m.topic === `${r}/t`)).payload.toString()).toBe('still here');
        expect(second.client.connected).toBe(true);
      });
    }

    for (const v of [4, 5] as const) {
      it(`v${v}: will is published on an abnormal disconnect, not after a clean DISCONNECT`, async () => {
        const r = root('will');
        const watcher = await connectMqtt(port);
        await subscribe(watcher.client, `${r}/#`, { qos: 1 });
        const willPayload = Buffer.from([0, 1, 2, 255, 10, 13]);
        const dying = await connectMqtt(port, {
          protocolVersion: v,
          will: { topic: `${r}/will/dying`, payload: willPayload, qos: 1, retain: false },
        });
        await dropMqtt(dying.client);
        const will = await watcher.inbox.waitFor((m) => m.topic === `${r}/will/dying`);
        expect(will.payload.equals(willPayload)).toBe(true);
        expect(will.packet.qos).toBe(1);

        const polite = await connectMqtt(port, {
          protocolVersion: v,
          will: { topic: `${r}/will/polite`, payload: Buffer.from('should not appear'), qos: 1, retain: false },
        });
        await endMqtt(polite.client);
        const pub = await connectMqtt(port);
        await pub.client.publishAsync(`${r}/mark`, 'm', { qos: 1 });
        const before = await watcher.inbox.until(`${r}/mark`);
        expect(before.map((m) => m.topic)).toEqual([`${r}/will/dying`]);
      });
    }

    it('a will with the retain flag is stored as a retained message', async () => {
      const r = root('will-ret');
      const watcher = await connectMqtt(port);
      await subscribe(watcher.client, `${r}/status`, { qos: 1 });
      const dying = await connectMqtt(port, {
        will: { topic: `${r}/status`, payload: Buffer.from('offline'), qos: 1, retain: true },
      });
      await dropMqtt(dying.client);
      const live = await watcher.inbox.waitFor((x) => x.topic === `${r}/status`);
      expect(live.payload.toString()).toBe('offline');
      const late = await connectMqtt(port);
      await subscribe(late.client, `${r}/status`, { qos: 1 });
      const kept = await late.inbox.waitFor((x) => x.topic === `${r}/status`);
      expect([kept.payload.toString(), kept.packet.retain]).toEqual(['offline', true]);
    });

    it('v5 will delay: the will arrives after the delay, not at once', async () => {
      const r = root('will-delay');
      const watcher = await connectMqtt(port);
      await subscribe(watcher.client, `${r}/#`, { qos: 1 });
      const dying = await connectMqtt(port, {
        protocolVersion: 5,
        clean: false,
        clientId: uniqueId('wd'),
        properties: { sessionExpiryInterval: 30 },
        will: { topic: `${r}/will`, payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
      });
      const t0 = Date.now();
      await dropMqtt(dying.client);
      const will = await watcher.inbox.waitFor((m) => m.topic === `${r}/will`, 10_000);
      const after = Date.now() - t0;
      const [lo, hi] = WILL_DELAY[kind];
      expect(will.payload.toString()).toBe('late');
      expect(after).toBeGreaterThanOrEqual(lo);
      expect(after).toBeLessThanOrEqual(hi);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('persistent sessions', () => {
    it('3.1.1 clean=0: subscriptions kept, QoS 1 messages published while offline delivered on reconnect', async () => {
      const r = root('sess4');
      const id = uniqueId('s4');
      const a = await connectMqtt(port, { clientId: id, clean: false });
      expect(a.connack.sessionPresent).toBe(false);
      await subscribe(a.client, `${r}/t`, { qos: 1 });
      await endMqtt(a.client);
      const pub = await connectMqtt(port);
      for (const p of ['one', 'two', 'three']) await pub.client.publishAsync(`${r}/t`, p, { qos: 1 });
      const b = await connectMqtt(port, { clientId: id, clean: false });
      expect(b.connack.sessionPresent).toBe(true);
      const got = await b.inbox.count(3);
      expect(got.map((m) => [m.topic, m.payload.toString(), m.packet.qos])).toEqual([
        [`${r}/t`, 'one', 1],
        [`${r}/t`, 'two', 1],
        [`${r}/t`, 'three', 1],
      ]);
      // live delivery continues without a new SUBSCRIBE
      await pub.client.publishAsync(`${r}/t`, 'live', { qos: 1 });
      await b.inbox.waitFor((m) => m.payload.toString() === 'live');
      await endMqtt(b.client);
      // clean=1 discards the session
      const c = await connectMqtt(port, { clientId: id, clean: true });
      expect(c.connack.sessionPresent).toBe(false);
    });

    it('v5 clean start 0 + session expiry: queued QoS 1 messages delivered; clean start 1 discards them', async () => {
      const r = root('sess5');
      const id = uniqueId('s5');
      const opts = { protocolVersion: 5 as const, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } };
      const a = await connectMqtt(port, opts);
      expect(a.connack.sessionPresent).toBe(false);
      await subscribe(a.client, `${r}/#`, { qos: 2 });
      await endMqtt(a.client);
      const pub = await connectMqtt(port, { protocolVersion: 5 });
      await pub.client.publishAsync(`${r}/a`, 'q1', { qos: 1 });
      await pub.client.publishAsync(`${r}/b`, 'q2', { qos: 2 });
      const b = await connectMqtt(port, opts);
      expect(b.connack.sessionPresent).toBe(true);
      expect((await b.inbox.count(2)).map((m) => [m.topic, m.payload.toString(), m.packet.qos])).toEqual([
        [`${r}/a`, 'q1', 1],
        [`${r}/b`, 'q2', 2],
      ]);
      await endMqtt(b.client);
      await pub.client.publishAsync(`${r}/a`, 'lost', { qos: 1 });
      const c = await connectMqtt(port, { ...opts, clean: true });
      expect(c.connack.sessionPresent).toBe(false);
      await subscribe(c.client, `${r}/mark`, { qos: 1 });
      await pub.client.publishAsync(`${r}/mark`, 'm', { qos: 1 });
      expect((await c.inbox.until(`${r}/mark`)).map((m) => m.payload.toString())).toEqual([]);
    });

    it('v5 session expiry interval 0 (default): nothing kept after disconnect', async () => {
      const id = uniqueId('s0');
      const a = await connectMqtt(port, { protocolVersion: 5, clientId: id, clean: false });
      await subscribe(a.client, `${root('s0')}/t`, { qos: 1 });
      await endMqtt(a.client);
      const b = await connectMqtt(port, { protocolVersion: 5, clientId: id, clean: false });
      expect(b.connack.sessionPresent).toBe(false);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('QoS flows and flow control (raw packets)', () => {
    for (const v of [4, 5] as const) {
      it(`v${v}: inbound QoS 2 PUBLISH resent with DUP=1 before PUBREL is delivered once`, async () => {
        const r = root('q2dup');
        const sub = await connectMqtt(port, { protocolVersion: 5 });
        await subscribe(sub.client, `${r}/#`, { qos: 2 });
        const raw = await RawMqtt.connected(port, v);
        const publish = { cmd: 'publish', topic: `${r}/t`, payload: Buffer.from('once'), qos: 2, messageId: 7, retain: false } as const;
        raw.send({ ...publish, dup: false });
        expect(await raw.next('pubrec')).toMatchObject({ messageId: 7 });
        raw.send({ ...publish, dup: true });
        expect(await raw.next('pubrec')).toMatchObject({ messageId: 7 });
        raw.send({ cmd: 'pubrel', messageId: 7 });
        expect(await raw.next('pubcomp')).toMatchObject({ messageId: 7 });
        // the packet id is free again: a new message with it is a new message
        raw.send({ ...publish, payload: Buffer.from('twice'), dup: false });
        await raw.next('pubrec');
        raw.send({ cmd: 'pubrel', messageId: 7 });
        await raw.next('pubcomp');
        // the marker goes the same QoS 2 way, so it cannot overtake the messages before it
        raw.send({ cmd: 'publish', topic: `${r}/mark`, payload: Buffer.alloc(0), qos: 2, messageId: 8, dup: false, retain: false });
        await raw.next('pubrec');
        raw.send({ cmd: 'pubrel', messageId: 8 });
        await raw.next('pubcomp');
        const got = await sub.inbox.until(`${r}/mark`);
        expect(got.map((m) => [m.payload.toString(), m.packet.qos])).toEqual([
          ['once', 2],
          ['twice', 2],
        ]);
        raw.destroy();
      });
    }

    it('outbound QoS 2: PUBLISH -> PUBREC -> PUBREL -> PUBCOMP with the same packet id', async () => {
      const r = root('q2out');
      const raw = await RawMqtt.connected(port, 4);
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${r}/t`, qos: 2 }] });
      expect(await raw.next('suback')).toMatchObject({ granted: [2] });
      const pub = await connectMqtt(port);
      await pub.client.publishAsync(`${r}/t`, 'exactly once', { qos: 2 });
      const p = await raw.next('publish');
      expect(p).toMatchObject({ qos: 2, topic: `${r}/t`, dup: false });
      const id = p.messageId;
      raw.send({ cmd: 'pubrec', messageId: id });
      expect(await raw.next('pubrel')).toMatchObject({ messageId: id });
      raw.send({ cmd: 'pubcomp', messageId: id });
      await raw.ping();
      raw.destroy();
    });

    it('an unacknowledged QoS 1 delivery is sent again with DUP=1 when the session resumes', async () => {
      const r = root('resend');
      const id = uniqueId('resend');
      const raw = await RawMqtt.connected(port, 4, { clientId: id, clean: false });
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${r}/t`, qos: 1 }] });
      await raw.next('suback');
      const pub = await connectMqtt(port);
      await pub.client.publishAsync(`${r}/t`, 'ack me', { qos: 1 });
      const first = await raw.next('publish');
      expect(first).toMatchObject({ qos: 1, dup: false, topic: `${r}/t` });
      raw.destroy(); // no PUBACK
      await raw.waitClosed();
      const again = await RawMqtt.open(port, 4);
      again.send(connectPacket(4, { clientId: id, clean: false }));
      expect(await again.next('connack')).toMatchObject({ returnCode: 0, sessionPresent: true });
      const second = await again.next('publish');
      expect(second).toMatchObject({ qos: 1, topic: `${r}/t`, dup: true });
      if (second.cmd === 'publish') expect(second.payload.toString()).toBe('ack me');
      again.send({ cmd: 'puback', messageId: second.messageId });
      await again.ping();
      again.destroy();
    });

    it('v5 Receive Maximum: at most that many unacknowledged QoS 1 deliveries; a PUBACK frees a slot', async () => {
      const r = root('recvmax');
      const raw = await RawMqtt.connected(port, 5, { properties: { receiveMaximum: 2 } });
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${r}/#`, qos: 1, nl: false, rap: false, rh: 0 }] });
      await raw.next('suback');
      const pub = await connectMqtt(port, { protocolVersion: 5 });
      for (let i = 0; i < 5; i++) await pub.client.publishAsync(`${r}/t`, String(i), { qos: 1 });
      // QoS 0 is not counted against Receive Maximum: it overtakes the held QoS 1 messages
      await pub.client.publishAsync(`${r}/mark`, 'm', { qos: 0 });
      const publishes = (): Array<{ payload: string; id: number | undefined }> =>
        raw.all('publish').map((p) => (p.cmd === 'publish' ? { payload: p.payload.toString(), id: p.messageId } : { payload: '', id: undefined }));
      await raw.next('publish');
      await raw.next('publish');
      const markArrived = await raw.next('publish');
      expect(markArrived.cmd === 'publish' ? markArrived.topic : '').toBe(`${r}/mark`);
      await raw.ping();
      expect(publishes().map((p) => p.payload)).toEqual(['0', '1', 'm']);
      raw.send({ cmd: 'puback', messageId: publishes()[0]?.id });
      const third = await raw.next('publish');
      expect(third.cmd === 'publish' ? third.payload.toString() : '').toBe('2');
      await raw.ping();
      // mosquitto 2.0.11 releases two messages for the one PUBACK (3 in flight against a
      // Receive Maximum of 2); the spec allows one.
      const expected = kind === 'mosquitto' ? ['0', '1', 'm', '2', '3'] : ['0', '1', 'm', '2'];
      expect(publishes().map((p) => p.payload)).toEqual(expected);
      raw.destroy();
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('MQTT 5 properties and subscription options', () => {
    it('user properties (order, repeated keys), content type, payload format, response topic and correlation data are forwarded', async () => {
      const r = root('props');
      const sub = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(sub.client, `${r}/t`, { qos: 1 });
      const pub = await connectMqtt(port, { protocolVersion: 5 });
      const correlation = Buffer.from([0, 1, 2, 0xfe, 0xff]);
      await pub.client.publishAsync(`${r}/t`, '{"t":21.5}', {
        qos: 1,
        properties: {
          userProperties: { unit: 'C', tag: ['a', 'b'], 'ü key': 'wert ß' },
          contentType: 'application/json',
          payloadFormatIndicator: true,
          responseTopic: `${r}/reply`,
          correlationData: correlation,
        },
      });
      const m = await sub.inbox.waitFor((x) => x.topic === `${r}/t`);
      const p = m.packet.properties ?? {};
      expect(p.userProperties).toEqual({ unit: 'C', tag: ['a', 'b'], 'ü key': 'wert ß' });
      expect(Object.keys(p.userProperties ?? {})).toEqual(['unit', 'tag', 'ü key']);
      expect(p.contentType).toBe('application/json');
      expect(p.payloadFormatIndicator).toBe(true);
      expect(p.responseTopic).toBe(`${r}/reply`);
      expect(Buffer.from(p.correlationData ?? Buffer.alloc(0)).equals(correlation)).toBe(true);
      expect(p.topicAlias).toBeUndefined();
    });

    it('mosquitto_pub -V 5 properties reach mqtt.js; mqtt.js properties reach mosquitto_sub -V 5', async () => {
      const r = root('props-tool');
      const sub = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(sub.client, `${r}/t`, { qos: 1 });
      const res = await mosquittoPub(port, [
        '-V', 'mqttv5', '-t', `${r}/t`, '-m', 'hi', '-q', '1',
        '-D', 'publish', 'user-property', 'k1', 'v1',
        '-D', 'publish', 'content-type', 'text/plain',
        '-D', 'publish', 'response-topic', `${r}/resp`,
      ]);
      expect(res.code, res.stderr).toBe(0);
      const m = await sub.inbox.waitFor((x) => x.topic === `${r}/t`);
      expect(m.packet.properties).toMatchObject({ userProperties: { k1: 'v1' }, contentType: 'text/plain', responseTopic: `${r}/resp` });

      const ms = new MosquittoSub(port, ['-V', 'mqttv5', '-t', `${r}/u`, '-C', '1']);
      await ms.subscribed();
      await sub.client.publishAsync(`${r}/u`, 'x', { qos: 1, properties: { userProperties: { kk: 'vv' }, contentType: 'ct/1' } });
      const [line] = await ms.count(1);
      expect(line?.userProps).toBe('kk:vv');
      expect(line?.contentType).toBe('ct/1');
    });

    it('message expiry: forwarded as remaining lifetime; expired retained and queued messages are not delivered', async () => {
      const r = root('expiry');
      const live = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(live.client, `${r}/live`, { qos: 1 });
      const pub = await connectMqtt(port, { protocolVersion: 5 });
      await pub.client.publishAsync(`${r}/live`, 'x', { qos: 1, properties: { messageExpiryInterval: 60 } });
      const lm = await live.inbox.waitFor((m) => m.topic === `${r}/live`);
      const left = lm.packet.properties?.messageExpiryInterval ?? -1;
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(60);

      const id = uniqueId('exp');
      const opts = { protocolVersion: 5 as const, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } };
      const off = await connectMqtt(port, opts);
      await subscribe(off.client, `${r}/q/#`, { qos: 1 });
      await endMqtt(off.client);
      await pub.client.publishAsync(`${r}/q/short`, 'expires', { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub.client.publishAsync(`${r}/q/long`, 'stays', { qos: 1, properties: { messageExpiryInterval: 100 } });
      await pub.client.publishAsync(`${r}/r/short`, 'expires', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
      await pub.client.publishAsync(`${r}/r/long`, 'stays', { qos: 1, retain: true, properties: { messageExpiryInterval: 100 } });
      // Expiry is about wall-clock time: let the 1 s lifetimes run out.
      await new Promise((res) => setTimeout(res, 2200));
      const back = await connectMqtt(port, opts);
      expect(back.connack.sessionPresent).toBe(true);
      await subscribe(back.client, `${r}/mark`, { qos: 1 });
      const fresh = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(fresh.client, [`${r}/r/+`, `${r}/mark`], { qos: 1 });
      await pub.client.publishAsync(`${r}/mark`, 'm', { qos: 1 });
      const queued = await back.inbox.until(`${r}/mark`);
      expect(queued.map((m) => m.topic)).toEqual([`${r}/q/long`]);
      const qLeft = queued[0]?.packet.properties?.messageExpiryInterval ?? -1;
      expect(qLeft).toBeGreaterThan(90);
      expect(qLeft).toBeLessThanOrEqual(98);
      const retained = await fresh.inbox.until(`${r}/mark`);
      expect(retained.map((m) => [m.topic, m.packet.retain])).toEqual([[`${r}/r/long`, true]]);
      const rLeft = retained[0]?.packet.properties?.messageExpiryInterval ?? -1;
      expect(rLeft).toBeGreaterThan(90);
      expect(rLeft).toBeLessThanOrEqual(98);
    });

    it('no local: a client does not get its own publishes on a no-local subscription', async () => {
      const r = root('nl');
      const me = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(me.client, `${r}/t`, { qos: 1, nl: true });
      await subscribe(me.client, `${r}/mark`, { qos: 1 });
      const other = await connectMqtt(port, { protocolVersion: 5 });
      await other.client.publishAsync(`${r}/t`, 'other', { qos: 1 });
      await me.client.publishAsync(`${r}/t`, 'mine', { qos: 1 });
      await me.client.publishAsync(`${r}/mark`, 'm', { qos: 1 });
      expect((await me.inbox.until(`${r}/mark`)).map((m) => m.payload.toString())).toEqual(['other']);
    });

    it('retain as published: RETAIN kept for rap=1, cleared for rap=0 on live delivery', async () => {
      const r = root('rap');
      const keep = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(keep.client, `${r}/t`, { qos: 1, rap: true });
      const clear = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(clear.client, `${r}/t`, { qos: 1, rap: false });
      const pub = await connectMqtt(port, { protocolVersion: 5 });
      await pub.client.publishAsync(`${r}/t`, 'r', { qos: 1, retain: true });
      await pub.client.publishAsync(`${r}/t`, 'n', { qos: 1, retain: false });
      expect((await keep.inbox.count(2)).map((m) => [m.payload.toString(), m.packet.retain])).toEqual([
        ['r', true],
        ['n', false],
      ]);
      expect((await clear.inbox.count(2)).map((m) => [m.payload.toString(), m.packet.retain])).toEqual([
        ['r', false],
        ['n', false],
      ]);
    });

    it('retain handling 0 (always), 1 (only for a new subscription), 2 (never)', async () => {
      const r = root('rh');
      const pub = await connectMqtt(port, { protocolVersion: 5 });
      await pub.client.publishAsync(`${r}/t`, 'kept', { qos: 1, retain: true });
      // What a client received since its previous marker, up to a new marker.
      const seen = new Map<unknown, number>();
      let n = 0;
      const mark = async (c: Awaited<ReturnType<typeof connectMqtt>>): Promise<string[]> => {
        const from = seen.get(c) ?? 0;
        const tag = `${r}/mark`;
        const id = String(++n);
        await pub.client.publishAsync(tag, id, { qos: 1 });
        const marker = await c.inbox.waitFor((m) => m.topic === tag && m.payload.toString() === id, 5000, from);
        const upTo = c.inbox.messages.indexOf(marker);
        seen.set(c, upTo + 1);
        return c.inbox.messages.slice(from, upTo).map((m) => `${m.payload.toString()}:${m.packet.retain ? 1 : 0}`);
      };
      const a = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(a.client, `${r}/mark`, { qos: 1 });
      await subscribe(a.client, `${r}/t`, { qos: 1, rh: 0 });
      expect(await mark(a)).toEqual(['kept:1']);
      await subscribe(a.client, `${r}/t`, { qos: 1, rh: 0 });
      expect(await mark(a)).toEqual(['kept:1']);
      await subscribe(a.client, `${r}/t`, { qos: 1, rh: 1 });
      expect(await mark(a)).toEqual([]);
      const b = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(b.client, `${r}/mark`, { qos: 1 });
      await subscribe(b.client, `${r}/t`, { qos: 1, rh: 1 });
      expect(await mark(b)).toEqual(['kept:1']);
      const c = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(c.client, `${r}/mark`, { qos: 1 });
      await subscribe(c.client, `${r}/t`, { qos: 1, rh: 2 });
      expect(await mark(c)).toEqual([]);
      // rh=2 still gets live messages
      await pub.client.publishAsync(`${r}/t`, 'live', { qos: 1 });
      expect(await mark(c)).toEqual(['live:0']);
    });

    it('subscription identifiers are attached per matching subscription', async () => {
      const r = root('subid');
      const c = await connectMqtt(port, { protocolVersion: 5 });
      expect(c.connack.properties?.subscriptionIdentifiersAvailable ?? true).toBe(true);
      await subscribe(c.client, `${r}/a`, { qos: 1, properties: { subscriptionIdentifier: 7 } });
      await subscribe(c.client, `${r}/#`, { qos: 1, properties: { subscriptionIdentifier: 900_000 } });
      await subscribe(c.client, `mark/${r}`, { qos: 1 });
      const pub = await connectMqtt(port, { protocolVersion: 5 });
      await pub.client.publishAsync(`${r}/a`, 'a', { qos: 1 });
      await pub.client.publishAsync(`${r}/b`, 'b', { qos: 1 });
      await pub.client.publishAsync(`mark/${r}`, 'm', { qos: 1 });
      const got = await c.inbox.until(`mark/${r}`);
      const ids = (m: { packet: IPublishPacket }): number[] => {
        const s = m.packet.properties?.subscriptionIdentifier;
        return s === undefined ? [] : Array.isArray(s) ? s : [s];
      };
      // One copy per matching subscription (mosquitto) or one copy carrying both ids: both are MQTT 5.
      const forA = got.filter((m) => m.payload.toString() === 'a').flatMap(ids).sort((x, y) => x - y);
      const forB = got.filter((m) => m.payload.toString() === 'b').flatMap(ids);
      expect(forA).toEqual([7, 900_000]);
      expect(forB).toEqual([900_000]);
      const marker = c.inbox.messages.find((m) => m.topic === `mark/${r}`);
      expect(marker === undefined ? [] : ids(marker)).toEqual([]);
    });

    it('shared subscriptions: each message goes to exactly one member; no retained messages on $share', async () => {
      const r = root('share');
      const pub = await connectMqtt(port, { protocolVersion: 5 });
      await pub.client.publishAsync(`${r}/t`, 'retained', { qos: 1, retain: true });
      const members = [];
      for (let i = 0; i < 2; i++) {
        const m = await connectMqtt(port, { protocolVersion: 5 });
        expect(m.connack.properties?.sharedSubscriptionAvailable ?? true).toBe(true);
        expect(await subscribe(m.client, `$share/g1/${r}/t`, { qos: 1 })).toEqual([1]);
        await subscribe(m.client, `${r}/done`, { qos: 1 });
        members.push(m);
      }
      const N = 30;
      for (let i = 0; i < N; i++) await pub.client.publishAsync(`${r}/t`, String(i), { qos: 1 });
      await pub.client.publishAsync(`${r}/done`, '', { qos: 1 });
      const received = await Promise.all(members.map((m) => m.inbox.until(`${r}/done`)));
      // MQTT 5 (4.8.2): no retained messages for a new shared subscription. mosquitto 2.0.11 sends them anyway.
      const got = received.map((g) => (kind === 'mosquitto' ? g.filter((m) => !m.packet.retain) : g));
      if (kind !== 'mosquitto') for (const g of received) expect(g.filter((m) => m.packet.retain)).toEqual([]);
      const all = got.flat();
      for (const m of all) expect(m.topic).toBe(`${r}/t`);
      expect(all.map((m) => m.payload.toString()).sort((a, b) => Number(a) - Number(b))).toEqual(
        Array.from({ length: N }, (_, i) => String(i)),
      );
      for (const g of got) expect(g.length).toBeGreaterThan(0);
      await pub.client.publishAsync(`${r}/t`, '', { qos: 1, retain: true });
    });

    it('topic alias from client to server: alias set with a topic, then used with an empty topic', async () => {
      const r = root('alias');
      const sub = await connectMqtt(port, { protocolVersion: 5 });
      await subscribe(sub.client, `${r}/#`, { qos: 1 });
      const raw = await RawMqtt.open(port, 5);
      raw.send(connectPacket(5));
      const ack = await raw.next('connack');
      const max = ack.cmd === 'connack' ? (ack.properties?.topicAliasMaximum ?? 0) : 0;
      expect(max).toBeGreaterThanOrEqual(1);
      raw.send({ cmd: 'publish', topic: `${r}/long/topic/name`, payload: Buffer.from('first'), qos: 1, messageId: 1, dup: false, retain: false, properties: { topicAlias: 1 } });
      raw.send({ cmd: 'publish', topic: '', payload: Buffer.from('second'), qos: 1, messageId: 2, dup: false, retain: false, properties: { topicAlias: 1 } });
      raw.send({ cmd: 'publish', topic: `${r}/other`, payload: Buffer.from('third'), qos: 1, messageId: 3, dup: false, retain: false, properties: { topicAlias: 1 } });
      raw.send({ cmd: 'publish', topic: '', payload: Buffer.from('fourth'), qos: 1, messageId: 4, dup: false, retain: false, properties: { topicAlias: 1 } });
      await raw.next('puback');
      const got = await sub.inbox.count(4);
      expect(got.map((m) => [m.topic, m.payload.toString()])).toEqual([
        [`${r}/long/topic/name`, 'first'],
        [`${r}/long/topic/name`, 'second'],
        [`${r}/other`, 'third'],
        [`${r}/other`, 'fourth'],
      ]);
      for (const m of got) expect(m.packet.properties?.topicAlias).toBeUndefined();
      raw.destroy();
    });
  });
});
