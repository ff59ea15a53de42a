/**
 * The websocket listener: MQTT on `/mqtt` (mqtt.js v3.1.1 and v5) and NATS elsewhere (the NATS
 * JS client's WebSocket transport), both bridged to TCP NATS clients; /connz types; origin
 * checks; TLS and the block's own credential; config errors. Shared behaviour runs against
 * nats-server 2.9.10 first, then against the bundle.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers, wsconnect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import mqtt, { type MqttClient } from 'mqtt';
import WebSocket from 'ws';
import { makeTestCerts, type TestCerts } from '../fixtures/certs.js';
import { makeTempDir, monitor, NATS_EDGE_BUNDLE, pollUntil, serverKinds, startServer, stopAllServers, within, type RunningServer } from '../helpers/servers.js';

const HOST = '127.0.0.1';
const DASH_ORIGIN = 'http://dash.example:8080';

afterAll(async () => {
  await stopAllServers();
});

interface Varz {
  websocket?: { port: number; host: string; no_tls?: boolean; allowed_origins?: string[] };
  mqtt?: { port: number };
}

interface ConnzEntry {
  cid: number;
  type: string;
  name?: string;
  mqtt_client?: string;
  tls_version?: string;
}

/** The NATS JS client over the `ws` package (Node 20 has no global WebSocket). */
function natsOverWs(url: string, opts: { name?: string; token?: string; ca?: string } = {}): Promise<NatsConnection> {
  return wsconnect({
    servers: url,
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    reconnect: false,
    wsFactory: (u: string) => {
      const socket = new WebSocket(u, opts.ca !== undefined ? { ca: opts.ca } : {});
      return Promise.resolve({ socket: socket as unknown as globalThis.WebSocket, encrypted: u.startsWith('wss:') });
    },
  });
}

function nextMessage(nc: NatsConnection, subject: string, ms = 5000): Promise<Msg> {
  const sub = nc.subscribe(subject, { max: 1 });
  return within(
    (async () => {
      for await (const m of sub) return m;
      throw new Error(`subscription on ${subject} ended without a message`);
    })(),
    ms,
    `NATS message on ${subject}`,
  );
}

function nextMqttMessage(client: MqttClient, topic: string, ms = 5000): Promise<{ topic: string; payload: string }> {
  return within(
    new Promise((resolve) => {
      const onMessage = (t: string, payload: Buffer): void => {
        if (t !== topic) return;
        client.off('message', onMessage);
        resolve({ topic: t, payload: payload.toString() });
      };
      client.on('message', onMessage);
    }),
    ms,
    `MQTT message on ${topic}`,
  );
}

/** Resolves to the HTTP status of a refused upgrade, or 101 when the WebSocket opened. */
function upgradeStatus(url: string, headersToSend: Record<string, string> = {}, protocols?: string[]): Promise<number> {
  return within(
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers: headersToSend });
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        ws.terminate();
      });
      ws.once('error', (err) => reject(err));
    }),
    5000,
    `upgrade of ${url}`,
  );
}

describe.each(serverKinds())('websocket listener (%s)', (kind) => {
  let srv: RunningServer;
  let wsPort = 0;
  let tcp: NatsConnection;
  const open: Array<{ close(): Promise<void> | void }> = [];

  beforeAll(async () => {
    srv = await startServer(kind, {
      config: [
        'server_name: ws-test',
        'jetstream { store_dir: "./js" }',
        'mqtt { host: 127.0.0.1, port: -1 }',
        'websocket {',
        '  host: 127.0.0.1',
        '  port: -1',
        '  no_tls: true',
        `  allowed_origins: ["${DASH_ORIGIN}"]`,
        '}',
      ].join('\n'),
    });
    const varz = await monitor<Varz>(srv, '/varz');
    wsPort = varz.websocket?.port ?? 0;
    expect(wsPort).toBeGreaterThan(0);
    expect(varz.websocket).toMatchObject({ host: HOST, no_tls: true, allowed_origins: [DASH_ORIGIN] });
    tcp = await connect({ servers: srv.url, name: 'tcp-service' });
  });

  afterAll(async () => {
    for (const c of open) await c.close();
    await tcp?.close();
  });

  async function mqttOverWs(clientId: string, protocolVersion: 4 | 5): Promise<MqttClient> {
    const client = await within(
      mqtt.connectAsync(`ws://${HOST}:${wsPort}/mqtt`, { clientId, protocolVersion, reconnectPeriod: 0, clean: true }),
      10_000,
      `mqtt.js v${protocolVersion} over WebSocket`,
    );
    open.push({ close: () => client.endAsync() });
    return client;
  }

  // nats-server 2.9 speaks MQTT 3.1.1 only.
  it.each(kind === 'nats-edge' ? ([4, 5] as const) : ([4] as const))('MQTT %i over ws://…/mqtt publishes to a NATS TCP subscriber and receives from it', async (v) => {
    const client = await mqttOverWs(`ws-sensor-v${v}`, v);
    const fromMqtt = nextMessage(tcp, `ws.sensor.v${v}`);
    await tcp.flush();
    await client.publishAsync(`ws/sensor/v${v}`, `21.5 from v${v}`, { qos: 1 });
    const m = await fromMqtt;
    expect(m.subject).toBe(`ws.sensor.v${v}`);
    expect(m.string()).toBe(`21.5 from v${v}`);

    const granted = await client.subscribeAsync(`ws/cmd/v${v}/#`, { qos: 1 });
    expect(granted[0]?.qos).toBe(1);
    const toMqtt = nextMqttMessage(client, `ws/cmd/v${v}/led`);
    tcp.publish(`ws.cmd.v${v}.led`, 'on');
    expect(await toMqtt).toEqual({ topic: `ws/cmd/v${v}/led`, payload: 'on' });
  });

  it('NATS over WebSocket: pub/sub and request/reply with a TCP client, both ways', async () => {
    const ws = await natsOverWs(`ws://${HOST}:${wsPort}`, { name: 'ws-dashboard' });
    open.push(ws);

    const atWs = nextMessage(ws, 'dash.from-tcp');
    await ws.flush();
    const h = headers();
    h.set('X-Unit', 'celsius');
    tcp.publish('dash.from-tcp', 'hello ws', { headers: h });
    const m1 = await atWs;
    expect(m1.string()).toBe('hello ws');
    expect(m1.headers?.get('X-Unit')).toBe('celsius');

    const atTcp = nextMessage(tcp, 'dash.from-ws');
    await tcp.flush();
    ws.publish('dash.from-ws', 'hello tcp');
    expect((await atTcp).string()).toBe('hello tcp');

    // A payload larger than one WebSocket frame would usually carry, in both directions.
    const big = Buffer.alloc(200_000, 0x61);
    const bigAtTcp = nextMessage(tcp, 'dash.big');
    await tcp.flush();
    ws.publish('dash.big', big);
    expect(Buffer.from((await bigAtTcp).data).equals(big)).toBe(true);

    const tcpService = tcp.subscribe('svc.tcp', { callback: (_err, msg) => void msg.respond(`tcp says ${msg.string()}`) });
    await tcp.flush();
    expect((await ws.request('svc.tcp', 'ping', { timeout: 5000 })).string()).toBe('tcp says ping');
    tcpService.unsubscribe();

    const wsService = ws.subscribe('svc.ws', { callback: (_err, msg) => void msg.respond(`ws says ${msg.string()}`) });
    await ws.flush();
    expect((await tcp.request('svc.ws', 'pong', { timeout: 5000 })).string()).toBe('ws says pong');
    wsService.unsubscribe();
  });

  it('/connz shows "websocket" for NATS over WebSocket and "mqtt" for MQTT over WebSocket', async () => {
    const ws = await natsOverWs(`ws://${HOST}:${wsPort}`, { name: 'ws-connz' });
    open.push(ws);
    await ws.flush();
    await mqttOverWs('ws-connz-mqtt', 4);
    const connz = await monitor<{ connections: ConnzEntry[] }>(srv, '/connz');
    const byName = connz.connections.find((c) => c.name === 'ws-connz');
    const byClientId = connz.connections.find((c) => c.mqtt_client === 'ws-connz-mqtt');
    const plain = connz.connections.find((c) => c.name === 'tcp-service');
    expect(byName?.type).toBe('websocket');
    expect(byClientId?.type).toBe('mqtt');
    expect(plain?.type).toBe('nats');

    // A WebSocket client that leaves is a closed connection like any other.
    await ws.close();
    const closed = await pollUntil(
      () => monitor<{ connections: Array<ConnzEntry & { reason?: string }> }>(srv, '/connz?state=closed'),
      (c) => c.connections.some((e) => e.name === 'ws-connz'),
    );
    expect(closed.connections.find((e) => e.name === 'ws-connz')).toMatchObject({ type: 'websocket', reason: 'Client Closed' });
  });

  it('allowed_origins: the listed origin upgrades, others get 403, a request without Origin passes', async () => {
    const url = `ws://${HOST}:${wsPort}/`;
    expect(await upgradeStatus(url, { Origin: DASH_ORIGIN })).toBe(101);
    expect(await upgradeStatus(url, { Origin: 'http://evil.example:8080' })).toBe(403);
    expect(await upgradeStatus(url, { Origin: 'https://dash.example:8080' })).toBe(403);
    expect(await upgradeStatus(url, { Origin: 'http://dash.example' })).toBe(403);
    expect(await upgradeStatus(`ws://${HOST}:${wsPort}/mqtt`, { Origin: 'http://evil.example' }, ['mqtt'])).toBe(403);
    expect(await upgradeStatus(url)).toBe(101);
  });

  it('plain HTTP requests are refused: 400 for GET, 405 for other methods', async () => {
    expect((await fetch(`http://${HOST}:${wsPort}/`)).status).toBe(400);
    expect((await fetch(`http://${HOST}:${wsPort}/`, { method: 'POST', body: 'x' })).status).toBe(405);
  });
});

describe.each(serverKinds())('websocket over TLS with its own token (%s)', (kind) => {
  let srv: RunningServer;
  let certs: TestCerts;
  let wsPort = 0;

  beforeAll(async () => {
    certs = makeTestCerts(makeTempDir('nats-edge-ws-certs-'));
    srv = await startServer(kind, {
      config: [
        'websocket {',
        '  host: 127.0.0.1',
        '  port: -1',
        `  tls { cert_file: "${certs.serverCert}", key_file: "${certs.serverKey}" }`,
        '  authorization { token: "dash-secret" }',
        '}',
      ].join('\n'),
    });
    wsPort = (await monitor<Varz>(srv, '/varz')).websocket?.port ?? 0;
    expect(wsPort).toBeGreaterThan(0);
  });

  it('wss:// with the token talks to a TCP client without credentials; without the token it is refused', async () => {
    const ca = (await import('node:fs')).readFileSync(certs.caFile, 'utf8');
    const ws = await natsOverWs(`wss://localhost:${wsPort}`, { name: 'wss-dash', token: 'dash-secret', ca });
    const tcp = await connect({ servers: srv.url });
    try {
      const got = nextMessage(ws, 'secure.in');
      await ws.flush();
      tcp.publish('secure.in', 'over tls');
      expect((await got).string()).toBe('over tls');
      const connz = await monitor<{ connections: ConnzEntry[] }>(srv, '/connz');
      const entry = connz.connections.find((c) => c.name === 'wss-dash');
      expect(entry?.type).toBe('websocket');
      // nats-server 2.9 leaves TLS fields out for websocket clients; nats-edge reports them.
      if (kind === 'nats-edge') expect(entry?.tls_version).toMatch(/^(TLSv)?1\.[23]$/);
    } finally {
      await ws.close();
      await tcp.close();
    }
    await expect(natsOverWs(`wss://localhost:${wsPort}`, { ca })).rejects.toThrow(/Authorization Violation|authorization/i);
  });
});

describe('websocket config errors (nats-edge exits 1, as nats-server does)', () => {
  function runEdge(config: string): { status: number | null; stderr: string; file: string } {
    const dir = makeTempDir('nats-edge-ws-conf-');
    const file = join(dir, 'server.conf');
    writeFileSync(file, config);
    const r = spawnSync(process.execPath, [NATS_EDGE_BUNDLE, '-c', file, '-p', '-1'], { encoding: 'utf8', timeout: 15_000, cwd: dir });
    return { status: r.status, stderr: r.stderr, file };
  }

  it('without no_tls and without tls: "websocket requires TLS configuration" with file:line', () => {
    const r = runEdge('port: -1\nwebsocket {\n  port: -1\n}\n');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${r.file}:2:`);
    expect(r.stderr).toContain('websocket requires TLS configuration');
    const real = spawnSync('nats-server', ['-c', r.file], { encoding: 'utf8', timeout: 15_000 });
    expect(real.status).toBe(1);
    expect(real.stderr).toContain('websocket requires TLS configuration');
  });

  it('unknown keys and a username beside the users list are refused with file:line', () => {
    const a = runEdge('websocket {\n  port: -1\n  no_tls: true\n  bogus: 1\n}\n');
    expect(a.status).toBe(1);
    expect(a.stderr).toContain(`${a.file}:4:3: unknown field "bogus"`);
    const b = runEdge('authorization { users: [ { user: a, password: b } ] }\nwebsocket {\n  port: -1\n  no_tls: true\n  authorization { user: u, password: p }\n}\n');
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/server\.conf:2:\d+: websocket authentication username not compatible with presence of users\/nkeys/);
  });

  it('/mqtt without an mqtt block answers 404 (nats-edge; nats-server 2.9 upgrades and then fails)', async () => {
    const srv = await startServer('nats-edge', { config: 'websocket { host: 127.0.0.1, port: -1, no_tls: true }' });
    const port = (await monitor<Varz>(srv, '/varz')).websocket?.port ?? 0;
    expect(await upgradeStatus(`ws://${HOST}:${port}/mqtt`, {}, ['mqtt'])).toBe(404);
    expect(await upgradeStatus(`ws://${HOST}:${port}/`)).toBe(101);
  });
});
