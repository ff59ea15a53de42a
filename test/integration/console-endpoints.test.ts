/**
 * The gateway console against the built bundle: `/` is one self-contained page, `/events`
 * streams snapshots whose numbers are the server's (real nats.js and mqtt.js clients, a real
 * nats-server hub for the uplink), no configured secret ever shows, and http_base_path works.
 * nats-edge only: nats-server has no console (its `/` is a list of links).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createUser } from '@nats-io/nkeys';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SnapshotStreams } from '../../src/monitor/console/events.js';
import { formatBytes, formatCount, formatDuration, formatShort } from '../../src/monitor/console/format.js';
import type { ConsoleSnapshot } from '../../src/monitor/console/snapshot.js';
import type { ResponseSink } from '../../src/monitor/http-server.js';
import { credsText } from '../helpers/creds.js';
import { startHub, stopLeafTestServers, type Hub } from '../helpers/leaf.js';
import { closeAllClients, connectMqtt } from '../helpers/mqtt.js';
import { freePort, makeTempDir, monitor, pollUntil, startServer, within, type RunningServer } from '../helpers/servers.js';

const HOST = '127.0.0.1';
const TOKEN = 'T0ken-Top-Secret-42';
const MQTT_USER = 'mquser';
const MQTT_PASS = 'Mq-Passw0rd-Secret-7';
const HUB_USER = 'hubuser';
const HUB_PASS = 'Hub-Pa55w0rd-Secret';
const FAKE_JWT = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQ09OU09MRVRFU1QifQ.c2lnbmF0dXJlLW5vdC1jaGVja2Vk';

/** Every data-testid of the console contract (static in the page or made by its script). */
const TEST_IDS = [
  'server-name', 'version', 'profile', 'uptime', 'live', 'problems', 'problem',
  'rate-in-msgs', 'rate-out-msgs', 'rate-in-bytes', 'rate-out-bytes', 'rate-chart',
  'conn-nats', 'conn-mqtt', 'conn-websocket', 'conn-leaf', 'talkers', 'talker',
  'mem-rss', 'mem-heap', 'mem-budget', 'mem-ceiling', 'mem-pending', 'slow-consumers',
  'js-streams', 'js-store', 'js-store-max', 'streams', 'stream', 'stream-msgs', 'stream-bytes', 'stream-max-bytes', 'stream-consumers',
  'mqtt-sessions', 'mqtt-retained', 'mqtt-clients',
  'uplinks', 'uplink', 'uplink-state', 'uplink-rtt', 'uplink-since', 'uplink-backlog-msgs', 'uplink-backlog-bytes', 'uplink-backlog-oldest',
  'uplink-replay', 'uplink-dropped',
];
/** nats-edge has no /mqttz (nor has nats-server 2.9): the footer links the endpoints that exist. */
const FOOTER = ['varz', 'connz', 'subsz', 'jsz', 'leafz', 'metrics', 'healthz'];

async function get(srv: RunningServer, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://${HOST}:${srv.httpPort}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

function once(srv: RunningServer, base = ''): Promise<ConsoleSnapshot> {
  return monitor<ConsoleSnapshot>(srv, `${base}/events?once=1`);
}

/** An open /events stream: frames in arrival order, raw text kept for the secrets check. */
interface EventStream {
  readonly contentType: string;
  /** The next `data:` frame (waits for it). */
  next(): Promise<ConsoleSnapshot>;
  raw(): string;
  close(): void;
}

async function openEvents(url: string): Promise<EventStream> {
  const abort = new AbortController();
  const res = await fetch(url, { signal: abort.signal, headers: { accept: 'text/event-stream' } });
  if (res.status !== 200 || res.body === null) throw new Error(`${url}: HTTP ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let buf = '';
  const frames: ConsoleSnapshot[] = [];
  const waiting: ((s: ConsoleSnapshot) => void)[] = [];
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        const chunk = decoder.decode(value, { stream: true });
        text += chunk;
        buf += chunk;
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          for (const line of frame.split('\n')) {
            if (!line.startsWith('data: ')) continue;
            const snap = JSON.parse(line.slice(6)) as ConsoleSnapshot;
            const w = waiting.shift();
            if (w !== undefined) w(snap);
            else frames.push(snap);
          }
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    contentType: res.headers.get('content-type') ?? '',
    next: () => {
      const f = frames.shift();
      return within(f !== undefined ? Promise.resolve(f) : new Promise<ConsoleSnapshot>((r) => waiting.push(r)), 5000, `next event from ${url}`);
    },
    raw: () => text,
    close: () => abort.abort(),
  };
}

describe('gateway console (nats-edge bundle)', () => {
  let hub: Hub;
  let edge: RunningServer;
  let mqttPort = 0;
  let deadPort = 0;
  let seed = '';
  const clients: NatsConnection[] = [];

  beforeAll(async () => {
    hub = await startHub({ leafnodes: `authorization { user: ${HUB_USER}, password: "${HUB_PASS}" }` });
    const dir = makeTempDir('nats-edge-console-');
    const user = createUser();
    seed = new TextDecoder().decode(user.getSeed());
    const creds = join(dir, 'edge.creds');
    writeFileSync(creds, credsText(FAKE_JWT, seed));
    mqttPort = await freePort();
    // Nothing listens here: this remote stays down and buffers.
    deadPort = await freePort();
    edge = await startServer('nats-edge', {
      config: [
        'server_name: edge-console',
        `authorization { token: "${TOKEN}" }`,
        `jetstream { store_dir: ${JSON.stringify(join(dir, 'js'))}, max_file_store: 1GB }`,
        `mqtt { port: ${mqttPort}, authorization { username: ${MQTT_USER}, password: "${MQTT_PASS}" } }`,
        'leafnodes {',
        '  reconnect: "200ms"',
        '  remotes: [',
        `    { url: "nats-leaf://${HUB_USER}:${HUB_PASS}@${HOST}:${hub.leafPort}" }`,
        `    { url: "nats-leaf://${HOST}:${deadPort}", credentials: ${JSON.stringify(creds)}, buffer: { subjects: ["telemetry.>"], max_bytes: 10MB } }`,
        '  ]',
        '}',
      ].join('\n'),
    });
  });

  afterAll(async () => {
    await Promise.all(clients.map((nc) => nc.close().catch(() => undefined)));
    await closeAllClients();
    await stopLeafTestServers();
  });

  async function nats(name: string): Promise<NatsConnection> {
    const nc = await connect({ servers: edge.url, token: TOKEN, name, reconnect: false });
    clients.push(nc);
    return nc;
  }

  it('GET / is the console: html under 100 KB, nothing outside the gateway, every contract id, the links in the footer', async () => {
    const r = await get(edge, '/');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/html; charset=utf-8');
    const size = Buffer.byteLength(r.body);
    expect(size).toBeGreaterThan(5000);
    expect(size).toBeLessThan(100 * 1024);
    // No URL of any kind: no scheme, no protocol-relative reference, no CSS url(), no script src.
    expect(r.body).not.toContain('://');
    expect(r.body).not.toContain('//');
    expect(r.body).not.toMatch(/url\(/i);
    expect(r.body).not.toMatch(/<script[^>]*\ssrc=/i);
    const refs = [...r.body.matchAll(/\s(?:src|href|action)\s*=\s*["']([^"']*)["']/gi)].map((m) => m[1]!);
    expect(refs).toContain('data:,');
    for (const ref of refs) expect(ref === 'data:,' || /^[a-z]+$/.test(ref), ref).toBe(true);
    for (const id of TEST_IDS) expect(r.body, id).toMatch(new RegExp(`["']${id}["']`));
    for (const p of FOOTER) expect(r.body).toContain(`href="${p}"`);
    expect(r.body).toContain('<meta name="viewport"');
    // The script parses, and its formatters (from the minified bundle) say numbers as format.ts does.
    const script = /<script>([\s\S]*)<\/script>/.exec(r.body)?.[1] ?? '';
    expect(() => new vm.Script(script)).not.toThrow();
    const lines = script.split('\n').filter((l) => /^var format(Count|Short|Bytes|Duration) = \(/.test(l));
    expect(lines.length).toBe(4);
    const ctx = vm.createContext({});
    vm.runInContext(lines.join('\n'), ctx);
    const samples = [0, 999, 1536, 41_000, 12_897_485, 11_560_000, -3];
    const fns = { formatCount, formatShort, formatBytes, formatDuration };
    for (const [name, f] of Object.entries(fns)) {
      const shipped = vm.runInContext(name, ctx) as (n: number) => string;
      expect(samples.map(shipped), name).toEqual(samples.map(f));
    }
  });

  it('/events: a snapshot at once, then one a second; 2 NATS clients, 1 MQTT client and the uplink are counted', async () => {
    const a = await nats('console-a');
    await nats('console-b');
    await connectMqtt(mqttPort, { username: MQTT_USER, password: MQTT_PASS, clientId: 'console-mqtt-1' });
    a.publish('warm.up', 'x');
    await a.flush();

    const s = await pollUntil(() => once(edge), (v) => v.connections.nats === 2 && v.connections.mqtt === 1 && v.connections.leaf === 1, 15_000);
    expect(s.connections).toMatchObject({ nats: 2, mqtt: 1, websocket: 0, leaf: 1 });
    expect(s.mqtt).toEqual({ clients: 1, sessions: expect.any(Number) as number, retained: 0 });
    expect(s.server).toMatchObject({ name: 'edge-console', profile: null });
    const names = s.talkers.map((t) => `${t.kind}:${t.name}`);
    expect(names).toEqual(expect.arrayContaining(['nats:console-a', 'nats:console-b', 'mqtt:console-mqtt-1', 'leaf:hub']));
    expect(s.talkers.find((t) => t.name === 'console-a')?.inMsgs).toBeGreaterThanOrEqual(1);
    expect(s.uplinks.map((u) => u.url)).toEqual([`nats-leaf://${HOST}:${hub.leafPort}`, `nats-leaf://${HOST}:${deadPort}`]);
    expect(s.uplinks[0]).toMatchObject({ state: 'up', hub: 'hub', buffer: null });
    expect(s.uplinks[0]!.rttMs).toBeGreaterThanOrEqual(0);
    expect(s.uplinks[1]!.state).not.toBe('up');
    expect(s.uplinks[1]!.buffer).toMatchObject({ msgs: expect.any(Number) as number, replaying: false, progress: null });

    const ev = await openEvents(`http://${HOST}:${edge.httpPort}/events`);
    try {
      expect(ev.contentType).toBe('text/event-stream; charset=utf-8');
      const first = await ev.next();
      const second = await ev.next();
      const third = await ev.next();
      // The first carries the whole history so far; the next ones only the last few seconds.
      expect(first.traffic.history.inMsgs.length).toBe(Math.min(300, first.traffic.history.end + 1));
      expect(third.traffic.history.inMsgs.length).toBeLessThanOrEqual(10);
      expect(third.traffic.history.end).toBeGreaterThan(first.traffic.history.end);
      const gap = third.at - second.at;
      expect(gap).toBeGreaterThan(700);
      expect(gap).toBeLessThan(1800);
      expect(second.connections).toMatchObject({ nats: 2, mqtt: 1, leaf: 1 });
    } finally {
      ev.close();
    }
  });

  it('publishing moves the rates; a stream shows its count against max_bytes', async () => {
    const nc = await nats('console-pub');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'CONSOLE', subjects: ['console.>'], max_bytes: 1024 * 1024 });
    const js = jetstream(nc);
    for (let i = 0; i < 10; i++) await js.publish('console.x', `m${i}`);

    const before = await once(edge);
    let sent = 0;
    const timer = setInterval(() => {
      for (let i = 0; i < 50; i++) nc.publish('rate.test', 'payload-0123456789');
      sent += 50;
    }, 20);
    let s: ConsoleSnapshot;
    try {
      s = await pollUntil(() => once(edge), (v) => v.traffic.rate.inMsgs >= 100, 10_000);
    } finally {
      clearInterval(timer);
    }
    await nc.flush();
    expect(s.traffic.rate.inMsgs).toBeGreaterThanOrEqual(100);
    expect(s.traffic.rate.inBytes).toBeGreaterThanOrEqual(100 * 'payload-0123456789'.length);
    expect(Math.max(...s.traffic.history.inMsgs)).toBeGreaterThanOrEqual(100);
    expect(s.traffic.totals.inMsgs - before.traffic.totals.inMsgs).toBeGreaterThanOrEqual(100);
    expect(sent).toBeGreaterThan(0);

    const st = s.jetstream?.list.find((x) => x.name === 'CONSOLE');
    expect(st).toEqual({ name: 'CONSOLE', storage: 'file', messages: 10, bytes: expect.any(Number) as number, maxBytes: 1024 * 1024, discard: 'old', consumers: 0 });
    expect(st!.bytes).toBeGreaterThan(0);
    expect(s.jetstream?.streams).toBeGreaterThanOrEqual(1);
    expect(s.jetstream?.storeMax).toBe(1024 * 1024 * 1024);
    // Idle again: the rate falls back to 0.
    const idle = await pollUntil(() => once(edge), (v) => v.traffic.rate.inMsgs === 0, 10_000);
    expect(idle.traffic.rate.inMsgs).toBe(0);
  });

  it('an uplink down with a backlog is said in words, with the backlog counted', async () => {
    const nc = await nats('console-telemetry');
    for (let i = 0; i < 5; i++) nc.publish('telemetry.t1', `reading-${i}`);
    await nc.flush();
    const dead = `nats-leaf://${HOST}:${deadPort}`;
    const s = await pollUntil(() => once(edge), (v) => v.problems.some((p) => p.startsWith(`Uplink ${dead} is down`)), 25_000);
    const u = s.uplinks.find((x) => x.url === dead)!;
    expect(u.state).toBe('down');
    expect(u.sinceMs).toBeGreaterThanOrEqual(10_000);
    expect(u.buffer).toMatchObject({ msgs: 5, droppedMsgs: 0 });
    expect(u.buffer!.oldestAgeMs).toBeGreaterThanOrEqual(0);
    expect(u.lastError).not.toBe('');
    const sentence = s.problems.find((p) => p.startsWith(`Uplink ${dead}`));
    expect(sentence).toMatch(new RegExp(`^Uplink ${dead.replace(/[.]/g, '\\.')} is down for \\d+ s with 5 messages \\(${u.buffer!.bytes} B\\) buffered$`));
    // The uplink to the hub is up: not a problem.
    expect(s.problems.some((p) => p.includes(`:${hub.leafPort}`))).toBe(false);
  });

  it('no password, token, userinfo, seed or creds content in / or /events', async () => {
    const secrets = [TOKEN, MQTT_PASS, HUB_PASS, `${HUB_USER}:`, `${HUB_USER}@`, seed, FAKE_JWT, seed.slice(2, 20)];
    const page = (await get(edge, '/')).body;
    const json = (await get(edge, '/events?once=1')).body;
    const ev = await openEvents(`http://${HOST}:${edge.httpPort}/events`);
    try {
      await ev.next();
      await ev.next();
    } finally {
      ev.close();
    }
    // The check must be able to fail: the secrets are really in the config the server runs.
    expect(seed).toMatch(/^SU[A-Z2-7]{50,}$/);
    for (const text of [page, json, ev.raw()]) {
      for (const secret of secrets) expect(text.includes(secret), `"${secret}" leaked`).toBe(false);
    }
    expect(json).toContain(`nats-leaf://${HOST}:${hub.leafPort}`);
  });

  it('/varz http_req_stats counts the page and the events', async () => {
    const v = await monitor<{ http_req_stats: Record<string, number> }>(edge, '/varz');
    expect(v.http_req_stats['/']).toBeGreaterThanOrEqual(2);
    expect(v.http_req_stats['/events']).toBeGreaterThanOrEqual(5);
  });
});

describe('gateway console under http_base_path', () => {
  let srv: RunningServer;

  beforeAll(async () => {
    srv = await startServer('nats-edge', { config: 'server_name: based\nhttp_base_path: "/gw"\n' });
  });

  afterAll(async () => {
    await stopLeafTestServers();
  });

  it('the page sits at the base, its links and events resolve under it, the root is not found', async () => {
    const bare = await get(srv, '/gw');
    expect(bare.status).toBe(200);
    expect(bare.type).toBe('text/html; charset=utf-8');
    expect(bare.body).toContain('<base href="gw/">');
    const slash = await get(srv, '/gw/');
    expect(slash.status).toBe(200);
    expect(slash.body).not.toContain('<base');
    expect(slash.body).toContain('href="varz"');
    // Relative references as the browser resolves them from either URL.
    const origin = `http://${HOST}:${srv.httpPort}`;
    expect(new URL('events', new URL('gw/', `${origin}/gw`)).pathname).toBe('/gw/events');
    expect(new URL('varz', `${origin}/gw/`).pathname).toBe('/gw/varz');
    expect((await get(srv, '/gw/varz')).status).toBe(200);

    const s = await once(srv, '/gw');
    expect(s.server.name).toBe('based');
    expect(s.jetstream).toBeNull();
    expect(s.mqtt).toBeNull();
    expect(s.uplinks).toEqual([]);
    const ev = await openEvents(`${origin}/gw/events`);
    try {
      expect((await ev.next()).server.name).toBe('based');
    } finally {
      ev.close();
    }
    expect((await get(srv, '/events')).status).toBe(404);
    expect((await get(srv, '/')).status).toBe(404);
    const v = await monitor<{ http_req_stats: Record<string, number> }>(srv, '/gw/varz');
    expect(v.http_req_stats).toMatchObject({ '/': 2, '/events': 2 });
  });
});

describe('console event streams (in process)', () => {
  function sink(): ResponseSink & { frames: string[]; close(): void } {
    const closers: (() => void)[] = [];
    const frames: string[] = [];
    return {
      frames,
      queued: 0,
      write: (chunk) => (frames.push(chunk), true),
      onClose: (fn) => closers.push(fn),
      close: () => closers.forEach((fn) => fn()),
    };
  }

  it('the 1 s timer runs only while a stream is open; a closed stream is forgotten', () => {
    vi.useFakeTimers();
    try {
      let built = 0;
      const snap = (): ConsoleSnapshot => {
        built++;
        return { at: built } as unknown as ConsoleSnapshot;
      };
      const streams = new SnapshotStreams(snap);
      expect(vi.getTimerCount()).toBe(0);
      const r = streams.handler(new URLSearchParams());
      if (!('open' in r)) throw new Error('expected a stream');
      const a = sink();
      r.open(a);
      expect(a.frames).toEqual(['retry: 2000\ndata: {"at":1}\n\n']);
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(3000);
      expect(a.frames.length).toBe(4);
      expect(streams.open).toBe(1);
      a.close();
      expect(streams.open).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(5000);
      expect(built).toBe(4);
      expect(a.frames.length).toBe(4);
      // ?once=1 is a plain JSON answer, no timer.
      const one = streams.handler(new URLSearchParams('once=1'));
      expect(one).toMatchObject({ status: 200, body: { at: 5 } });
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
