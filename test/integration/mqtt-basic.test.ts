/**
 * MQTT broker of the bundle with real peers: mqtt.js (3.1.1 and 5.0) and the nats.js client.
 * Topics are NATS subjects; QoS 1, retained messages and persistent sessions survive restarts;
 * wills fire on abnormal disconnects; refused credentials get the right CONNACK code.
 */
import { afterAll, describe, expect, it } from 'vitest';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, makeTempDir, startServer, stopAllServers, type RunningServer } from '../helpers/servers.js';

const clients: MqttClient[] = [];
const ncs: NatsConnection[] = [];

afterAll(async () => {
  for (const c of clients) c.end(true);
  await Promise.all(ncs.map((nc) => (nc.isClosed() ? undefined : nc.close().catch(() => undefined))));
  await stopAllServers();
});

async function edge(store: string, mqttPort: number, extra = ''): Promise<RunningServer> {
  return startServer('nats-edge', {
    config: `server_name: edge1\njetstream { store_dir: "${store}" }\nmqtt { port: ${mqttPort} }\n${extra}\n`,
  });
}

/** Connects; `attach` runs before CONNACK is read (queued messages may follow it in the same read). */
function open(port: number, opts: IClientOptions = {}, attach?: (c: MqttClient) => void): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    clients.push(c);
    attach?.(c);
    c.once('connect', () => resolve(c));
    c.once('error', (err) => reject(err));
  });
}

interface Got {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  props: unknown;
}

/** Collects messages; `next(n)` resolves once n messages arrived. */
function collect(c: MqttClient): { got: Got[]; next(n: number): Promise<Got[]> } {
  const got: Got[] = [];
  const waiters: { n: number; resolve: (g: Got[]) => void }[] = [];
  c.on('message', (topic, payload, packet) => {
    got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, props: packet.properties });
    for (const w of [...waiters]) {
      if (got.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(got.slice(0, w.n));
      }
    }
  });
  return {
    got,
    next(n: number): Promise<Got[]> {
      if (got.length >= n) return Promise.resolve(got.slice(0, n));
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
}

async function nats(srv: RunningServer): Promise<NatsConnection> {
  const nc = await connect({ servers: srv.url, reconnect: false });
  ncs.push(nc);
  return nc;
}

describe('MQTT broker (nats-edge bundle)', () => {
  it('bridges both ways with the NATS client, QoS 1 round trip, v4 and v5', async () => {
    const port = await freePort();
    const srv = await edge(makeTempDir('mqtt-basic-'), port);
    const nc = await nats(srv);

    // MQTT -> NATS: subject mapped, Nmqtt-Pub header as nats-server adds it.
    const sub = nc.subscribe('sensors.room1.temp', { max: 1 });
    await nc.flush();
    const pub = await open(port, { protocolVersion: 4, clientId: 'pub1' });
    await pub.publishAsync('sensors/room1/temp', '21.5', { qos: 1 });
    for await (const m of sub) {
      expect(m.subject).toBe('sensors.room1.temp');
      expect(m.string()).toBe('21.5');
      expect(m.headers?.get('Nmqtt-Pub')).toBe('1');
    }

    // NATS -> MQTT (v4 and v5): topic mapped back, QoS 0.
    const s4 = await open(port, { protocolVersion: 4, clientId: 'sub4' });
    const s5 = await open(port, { protocolVersion: 5, clientId: 'sub5' });
    const c4 = collect(s4);
    const c5 = collect(s5);
    expect((await s4.subscribeAsync('cmd/#', { qos: 1 }))[0]?.qos).toBe(1);
    expect((await s5.subscribeAsync('cmd/+/set', { qos: 1 }))[0]?.qos).toBe(1);
    nc.publish('cmd.valve.set', 'open');
    nc.publish('cmd', 'parent');
    const [a] = await c5.next(1);
    expect(a).toMatchObject({ topic: 'cmd/valve/set', payload: 'open', qos: 0 });
    const two = await c4.next(2);
    expect(two.map((g) => g.topic).sort()).toEqual(['cmd', 'cmd/valve/set']);

    // MQTT -> MQTT QoS 1 with v5 properties.
    const sq = await open(port, { protocolVersion: 5, clientId: 'subq' });
    const cq = collect(sq);
    await sq.subscribeAsync('q/one', { qos: 1 });
    const pq = await open(port, { protocolVersion: 5, clientId: 'pubq' });
    await pq.publishAsync('q/one', 'hello', { qos: 1, properties: { userProperties: { k: 'v' }, contentType: 'text/plain' } });
    const [q] = await cq.next(1);
    expect(q).toMatchObject({ topic: 'q/one', payload: 'hello', qos: 1, retain: false });
    expect(q?.props).toMatchObject({ userProperties: { k: 'v' }, contentType: 'text/plain' });

    // /connz shows MQTT clients.
    const connz = (await (await fetch(`http://127.0.0.1:${srv.httpPort}/connz`)).json()) as { connections: { type?: string; mqtt_client?: string }[] };
    expect(connz.connections.filter((c) => c.mqtt_client === 'subq')).toHaveLength(1);
    const varz = (await (await fetch(`http://127.0.0.1:${srv.httpPort}/varz`)).json()) as { mqtt: { port: number } };
    expect(varz.mqtt.port).toBe(port);
  });

  it('retained messages on subscribe and after a restart; persistent session queues across a restart', async () => {
    const port = await freePort();
    const store = makeTempDir('mqtt-persist-');
    let srv = await edge(store, port);
    const pub = await open(port, { protocolVersion: 4, clientId: 'rpub' });
    await pub.publishAsync('state/door', 'closed', { qos: 1, retain: true });
    await pub.publishAsync('state/gone', 'x', { qos: 1, retain: true });
    await pub.publishAsync('state/gone', '', { qos: 1, retain: true });

    const s1 = await open(port, { protocolVersion: 5, clientId: 'r1' });
    const c1 = collect(s1);
    await s1.subscribeAsync('state/#', { qos: 1 });
    const [r] = await c1.next(1);
    expect(r).toMatchObject({ topic: 'state/door', payload: 'closed', retain: true, qos: 1 });

    // Persistent session: subscribe, go offline, messages queue.
    const ps = await open(port, { protocolVersion: 4, clientId: 'persist1', clean: false });
    await ps.subscribeAsync('jobs/+', { qos: 1 });
    await ps.endAsync();
    await pub.publishAsync('jobs/a', 'j1', { qos: 1 });
    await pub.publishAsync('jobs/b', 'j2', { qos: 1 });
    let cb!: ReturnType<typeof collect>;
    const back = await open(port, { protocolVersion: 4, clientId: 'persist1', clean: false }, (c) => (cb = collect(c)));
    const two = await cb.next(2);
    expect(two.map((g) => g.payload)).toEqual(['j1', 'j2']);
    await back.endAsync();
    await pub.publishAsync('jobs/c', 'j3', { qos: 1 });
    await pub.endAsync();

    expect(await srv.stop('SIGTERM')).toBe(0);
    srv = await edge(store, port);

    const s2 = await open(port, { protocolVersion: 4, clientId: 'r2' });
    const c2 = collect(s2);
    await s2.subscribeAsync('state/+', { qos: 0 });
    const [r2] = await c2.next(1);
    expect(r2).toMatchObject({ topic: 'state/door', payload: 'closed', retain: true, qos: 0 });

    let cc!: ReturnType<typeof collect>;
    const again = new Promise<{ present: boolean; c: MqttClient }>((resolve, reject) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, clientId: 'persist1', clean: false, reconnectPeriod: 0 });
      clients.push(c);
      cc = collect(c);
      c.once('connect', (ack) => resolve({ present: ack.sessionPresent, c }));
      c.once('error', reject);
    });
    const { present } = await again;
    expect(present).toBe(true);
    const [j3] = await cc.next(1);
    expect(j3).toMatchObject({ topic: 'jobs/c', payload: 'j3', qos: 1 });
    // The restored subscription works without a new SUBSCRIBE.
    const nc = await nats(srv);
    nc.publish('jobs.d', 'from-nats');
    const second = await cc.next(2);
    expect(second[1]).toMatchObject({ topic: 'jobs/d', payload: 'from-nats', qos: 0 });
  });

  it('QoS 1 and QoS 2 publishes a stream captures are acknowledged after the commit', async () => {
    const port = await freePort();
    const srv = await edge(makeTempDir('mqtt-js-'), port);
    const nc = await nats(srv);
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'SENSORS', subjects: ['sensors.>'] });
    const pub = await open(port, { protocolVersion: 5, clientId: 'jsp' });
    await pub.publishAsync('sensors/a', 'one', { qos: 1 });
    await pub.publishAsync('sensors/b', 'two', { qos: 2 });
    // The acks above came after the commit: the stream holds both now.
    const info = await jsm.streams.info('SENSORS');
    expect(info.state.messages).toBe(2);
    const m = await jsm.streams.getMessage('SENSORS', { seq: 2 });
    expect(m?.subject).toBe('sensors.b');
    expect(m?.header.get('Nmqtt-Pub')).toBe('2');
  });

  it('publishes the will on an abnormal disconnect, not on DISCONNECT', async () => {
    const port = await freePort();
    const srv = await edge(makeTempDir('mqtt-will-'), port);
    const nc = await nats(srv);
    const sub = nc.subscribe('status.>');
    await nc.flush();
    const w1 = await open(port, { protocolVersion: 4, clientId: 'w1', will: { topic: 'status/w1', payload: Buffer.from('gone-1'), qos: 1, retain: false } });
    await w1.endAsync();
    const w2 = await open(port, { protocolVersion: 5, clientId: 'w2', will: { topic: 'status/w2', payload: Buffer.from('gone-2'), qos: 0, retain: false } });
    w2.stream.destroy();
    for await (const m of sub) {
      expect(m.subject).toBe('status.w2');
      expect(m.string()).toBe('gone-2');
      break;
    }
  });

  it('refuses bad credentials with CONNACK 5 (3.1.1) and 0x87 (5.0)', async () => {
    const port = await freePort();
    const srv = await edge(makeTempDir('mqtt-auth-'), port, 'authorization { users: [ { user: dev, password: s3cret } ] }');
    const bad4 = open(port, { protocolVersion: 4, clientId: 'a4', username: 'dev', password: 'nope' });
    await expect(bad4).rejects.toMatchObject({ code: 5 });
    const bad5 = open(port, { protocolVersion: 5, clientId: 'a5', username: 'dev', password: 'nope' });
    await expect(bad5).rejects.toMatchObject({ code: 0x87 });
    const ok = await open(port, { protocolVersion: 5, clientId: 'a6', username: 'dev', password: 's3cret' });
    expect(ok.connected).toBe(true);
    expect(srv.logs()).toContain('authentication error');
  });
});
