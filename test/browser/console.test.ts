/**
 * The gateway console (GET / on the monitoring port, live over /events) in a real browser:
 * Debian's chromium driven by playwright-core against the built bundle, which runs with MQTT,
 * JetStream and a store-and-forward leaf remote to a Debian nats-server hub. Real traffic flows
 * (two NATS clients, one MQTT client, a JetStream stream, the buffered subject); the page must
 * show what the server and the JetStream client say, then show the uplink down and its backlog
 * growing once the hub is killed. The browser's request log proves the page never reaches
 * beyond the gateway. Screenshots go to test-output/console/.
 */
import { mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type PubAck } from '@nats-io/jetstream';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, recordRequests, shown, waitForValue, waitInPage, type LoggedRequest } from '../helpers/browser.js';
import { edgeBuffer, startTeleHub } from '../helpers/leaf-hub.js';
import { stopLeafTestServers, waitForLeafLink, type Hub } from '../helpers/leaf.js';
import { closeAllClients, connectMqtt } from '../helpers/mqtt.js';
import { freePort, makeTempDir, monitor, REPO_ROOT, startServer, within, type RunningServer } from '../helpers/servers.js';

const STREAM = 'CONSOLE';
const STREAM_MAX_BYTES = 10 * 1024 * 1024;
const BUFFERED = 'tele.console';
const MQTT_TOPIC = 'tele/sensor1';
const MQTT_CLIENT_ID = 'console-sensor-1';
const NATS_NAMES = ['console-nats-1', 'console-nats-2'] as const;
/** The leaf's credentials on the hub: the page must show the remote without them. */
const LEAF_USER = 'leafu';
const LEAF_PASSWORD = 'Console-Leaf-Secret-4711';
const TICK_MS = 50;
const PAGE_LIMIT_BYTES = 100 * 1024;
const SHOT_DIR = join(REPO_ROOT, 'test-output', 'console');
/** Each wait on the page: it updates once a second, so this is many updates of slack on a busy machine. */
const UPDATE_WAIT_MS = 20_000;

const sel = (id: string): string => `[data-testid="${id}"]`;
const streamCell = (id: string): string => `${sel('stream')}[data-name="${STREAM}"] ${sel(id)}`;
const uplinkCell = (id: string): string => `${sel('uplink')} ${sel(id)}`;

/**
 * A steady trickle every TICK_MS: JetStream publishes into the edge stream (acks counted), core
 * publishes on the buffered subject, MQTT QoS 0 publishes mapped onto it too. `burst` multiplies
 * the core and MQTT part, so the page's rate must follow a change in traffic.
 */
class Trickle {
  intoStream = true;
  buffered = true;
  burst = 1;
  acked = 0;
  readonly failures: string[] = [];
  private readonly pending = new Set<Promise<PubAck | undefined>>();
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;

  constructor(
    private readonly js: JetStreamClient,
    private readonly nc2: NatsConnection,
    private readonly mqttPublish: (topic: string, payload: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Resolves once every JetStream publish sent so far has its ack (or failed). */
  async settled(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private tick(): void {
    const n = this.seq++;
    if (this.intoStream) {
      const p: Promise<PubAck | undefined> = this.js.publish(`plant.line1.temp`, `{"n":${n},"c":21.5}`).then(
        (ack) => {
          this.acked++;
          return ack;
        },
        (err: unknown) => {
          this.failures.push(String(err));
          return undefined;
        },
      );
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    }
    if (this.buffered && !this.nc2.isClosed()) {
      for (let i = 0; i < this.burst; i++) {
        this.nc2.publish(BUFFERED, `${n}.${i}`);
        this.mqttPublish(MQTT_TOPIC, `${n}.${i}`);
      }
    }
  }
}

interface Varz {
  server_name: string;
}

describe('gateway console in chromium (nats-edge with MQTT, JetStream and a buffering leaf remote to a nats-server hub)', () => {
  let hub: Hub | undefined;
  let edge: RunningServer;
  let nc1: NatsConnection | undefined;
  let nc2: NatsConnection | undefined;
  let jsm: JetStreamManager;
  let trickle: Trickle | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let storeDir = '';
  let requests: LoggedRequest[] = [];
  let origin = '';
  let mainBody: Buffer | undefined;
  let mainType = '';
  let remoteUrl = '';
  let mqttPublishAck: ((topic: string, payload: string) => Promise<unknown>) | undefined;
  const t0 = Date.now();

  beforeAll(async () => {
    // First, so a machine without chromium fails at once with the reason.
    browser = await launchChromium();

    hub = await startTeleHub({
      hub: { leafnodes: `  authorization { users: [ { user: ${LEAF_USER}, password: ${JSON.stringify(LEAF_PASSWORD)} } ] }` },
    });
    const mqttPort = await freePort();
    remoteUrl = `nats-leaf://127.0.0.1:${hub.leafPort}`;
    storeDir = makeTempDir('nats-edge-console-');
    edge = await startServer('nats-edge', {
      config: [
        'server_name: edge',
        `jetstream { store_dir: ${JSON.stringify(storeDir)}, domain: edge }`,
        `mqtt { port: ${mqttPort} }`,
        'leafnodes {',
        '  remotes: [',
        `    { url: "nats-leaf://${LEAF_USER}:${LEAF_PASSWORD}@127.0.0.1:${hub.leafPort}", buffer: { subjects: ["tele.>"], max_bytes: 64MB } }`,
        '  ]',
        '}',
      ].join('\n'),
    });
    origin = `http://127.0.0.1:${edge.httpPort}`;
    await waitForLeafLink(hub, 15_000);

    nc1 = await connect({ servers: edge.url, name: NATS_NAMES[0], reconnect: false });
    nc2 = await connect({ servers: edge.url, name: NATS_NAMES[1], reconnect: false });
    // Outbound traffic too: nc2 reads what goes into the stream.
    nc2.subscribe('plant.>', { callback: () => undefined });
    await nc2.flush();
    jsm = await jetstreamManager(nc1);
    await jsm.streams.add({ name: STREAM, subjects: ['plant.>'], max_bytes: STREAM_MAX_BYTES });
    await jsm.consumers.add(STREAM, { durable_name: 'console-reader', ack_policy: AckPolicy.Explicit });

    const { client: mc } = await connectMqtt(mqttPort, { clientId: MQTT_CLIENT_ID });
    mqttPublishAck = (topic, payload) => mc.publishAsync(topic, payload, { qos: 1 });
    trickle = new Trickle(jetstream(nc1), nc2, (topic, payload) => {
      if (mc.connected) mc.publish(topic, payload, { qos: 0 });
    });
    trickle.start();

    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    requests = recordRequests(context);
    page = await context.newPage();
    const res = await page.goto(`${origin}/`, { waitUntil: 'load', timeout: 20_000 });
    if (res === null) throw new Error(`no response for ${origin}/`);
    mainType = (await res.headerValue('content-type')) ?? '';
    mainBody = await res.body();
    expect(res.status(), `GET ${origin}/`).toBe(200);
  }, 90_000);

  afterAll(async () => {
    // Every step on its own: one failing must not leave the others running.
    trickle?.stop();
    await browser?.close().catch(() => undefined);
    await trickle?.settled().catch(() => undefined);
    for (const nc of [nc1, nc2]) if (nc !== undefined && !nc.isClosed()) await nc.close().catch(() => undefined);
    await closeAllClients().catch(() => undefined);
    await stopLeafTestServers();
    console.info(`console browser test: ${((Date.now() - t0) / 1000).toFixed(1)} s in all`);
  }, 60_000);

  it('shows the gateway live: name, version, connection counts, a moving rate, the stream count, the uplink up, no uplink problem', { timeout: 120_000 }, async () => {
    const varz = await monitor<Varz>(edge, '/varz');

    await waitForValue(page, sel('live'), { op: 'eq', value: 'live' }, UPDATE_WAIT_MS, 'live indicator');
    expect((await shown(page, sel('live'))).text).toMatch(/\blive\b/i);
    expect((await shown(page, sel('server-name'))).text).toBe(varz.server_name);
    expect(varz.server_name).toBe('edge');
    // The version a technician reads is nats-edge's own (the server's /metrics info says it),
    // not the nats-server level /varz advertises to clients.
    const identity = await serverInfo(origin);
    expect(identity['edge_version'], `nats_edge_info labels ${JSON.stringify(identity)}`).toBeDefined();
    expect((await shown(page, sel('version'))).text).toContain(identity['edge_version']);
    const profileText = (await shown(page, sel('profile'))).text ?? '';
    if (identity['profile'] !== undefined) expect(profileText).toContain(identity['profile']);
    else expect(profileText).not.toBe('');
    await waitForValue(page, sel('uptime'), { op: 'gt', value: 0 }, UPDATE_WAIT_MS, 'uptime');

    // Exactly what this test connected to the edge: two nats.js clients (one of them also the
    // JetStream client), one mqtt.js client, the one leaf link; the browser is only HTTP.
    await waitForValue(page, sel('conn-nats'), { op: 'eq', value: NATS_NAMES.length }, UPDATE_WAIT_MS, 'NATS connections');
    await waitForValue(page, sel('conn-mqtt'), { op: 'eq', value: 1 }, UPDATE_WAIT_MS, 'MQTT connections');
    await waitForValue(page, sel('conn-leaf'), { op: 'eq', value: 1 }, UPDATE_WAIT_MS, 'leaf connections');
    await waitForValue(page, sel('conn-websocket'), { op: 'eq', value: 0 }, UPDATE_WAIT_MS, 'WebSocket connections');
    await waitForValue(page, sel('mqtt-clients'), { op: 'eq', value: 1 }, UPDATE_WAIT_MS, 'MQTT clients');
    await waitForValue(page, sel('mqtt-retained'), { op: 'eq', value: 0 }, UPDATE_WAIT_MS, 'MQTT retained');

    // The top talkers name the clients that talk.
    const talkers = await waitInPage(
      page,
      (names: string[]) => {
        const rows = [...document.querySelectorAll('[data-testid="talkers"] [data-testid="talker"]')];
        const text = rows.map((r) => r.textContent ?? '').join('\n');
        return names.every((n) => text.includes(n)) ? rows.length : false;
      },
      [...NATS_NAMES, MQTT_CLIENT_ID],
      UPDATE_WAIT_MS,
      `top talkers naming ${[...NATS_NAMES, MQTT_CLIENT_ID].join(', ')}`,
      async () => `talkers show ${JSON.stringify(await page.locator(sel('talkers')).textContent())}`,
    );
    expect(talkers).toBeGreaterThanOrEqual(3);
    expect(talkers).toBeLessThanOrEqual(5);

    // A moving rate: some traffic, then six times the core and MQTT part of it.
    const before = Number(await waitForValue(page, sel('rate-in-msgs'), { op: 'gt', value: 0 }, UPDATE_WAIT_MS, 'inbound msgs/s'));
    await waitForValue(page, sel('rate-out-msgs'), { op: 'gt', value: 0 }, UPDATE_WAIT_MS, 'outbound msgs/s');
    await waitForValue(page, sel('rate-in-bytes'), { op: 'gt', value: 0 }, UPDATE_WAIT_MS, 'inbound bytes/s');
    expect(await page.locator(`svg${sel('rate-chart')}, canvas${sel('rate-chart')}`).count(), 'rate-chart is an <svg> or <canvas>').toBe(1);
    if (trickle === undefined) throw new Error('no trickle');
    trickle.burst = 6;
    const after = Number(await waitForValue(page, sel('rate-in-msgs'), { op: 'gt', value: 2 * before }, UPDATE_WAIT_MS, `inbound msgs/s after the traffic rose (was ${before})`));
    trickle.burst = 1;
    console.info(`console: rate-in-msgs ${before}/s, then ${after}/s with more traffic`);

    // The stream row says what the JetStream client says, once the publishes are acknowledged.
    trickle.intoStream = false;
    await trickle.settled();
    const info = await jsm.streams.info(STREAM);
    expect(trickle.failures).toEqual([]);
    expect(info.state.messages).toBe(trickle.acked);
    expect(info.state.messages).toBeGreaterThan(0);
    await waitForValue(page, streamCell('stream-msgs'), { op: 'eq', value: info.state.messages }, UPDATE_WAIT_MS, `stream ${STREAM} messages`);
    await waitForValue(page, streamCell('stream-bytes'), { op: 'eq', value: info.state.bytes }, UPDATE_WAIT_MS, `stream ${STREAM} bytes`);
    await waitForValue(page, streamCell('stream-max-bytes'), { op: 'eq', value: STREAM_MAX_BYTES }, UPDATE_WAIT_MS, `stream ${STREAM} max bytes`);
    await waitForValue(page, streamCell('stream-consumers'), { op: 'eq', value: info.state.consumer_count }, UPDATE_WAIT_MS, `stream ${STREAM} consumers`);
    expect(info.state.consumer_count).toBe(1);
    await waitForValue(page, sel('js-streams'), { op: 'eq', value: 1 }, UPDATE_WAIT_MS, 'JetStream streams');
    // The filesystem under the store, as statfs sees it (free space moves a little meanwhile).
    const fs = statfsSync(storeDir);
    expect(Number((await shown(page, sel('js-disk-size'))).value)).toBe(fs.blocks * fs.bsize);
    const free = Number((await shown(page, sel('js-disk-free'))).value);
    expect(Math.abs(free - fs.bavail * fs.bsize)).toBeLessThan(256 * 1024 * 1024);
    trickle.intoStream = true;

    // The uplink: named by its URL without the credentials, up, with a measured RTT.
    expect(await page.locator(sel('uplink')).count()).toBe(1);
    expect(await page.locator(sel('uplink')).getAttribute('data-name')).toBe(remoteUrl);
    await waitForValue(page, uplinkCell('uplink-state'), { op: 'eq', value: 'up' }, UPDATE_WAIT_MS, 'uplink state');
    expect((await shown(page, uplinkCell('uplink-state'))).text).toMatch(/\bup\b|connected/i);
    await waitForValue(page, uplinkCell('uplink-rtt'), { op: 'ge', value: 0 }, UPDATE_WAIT_MS, 'uplink RTT');
    await waitForValue(page, uplinkCell('uplink-backlog-msgs'), { op: 'eq', value: 0 }, UPDATE_WAIT_MS, 'uplink backlog while up');

    const problems = await page.locator(`${sel('problems')} ${sel('problem')}`).allTextContents();
    expect(problems.filter((p) => /uplink|leaf|hub/i.test(p)), `problems while the uplink is up: ${JSON.stringify(problems)}`).toEqual([]);
    if (problems.length === 0) expect(await page.locator(sel('problems')).textContent()).toMatch(/no problems/i);

    // Memory: the page's RSS is the process's (same order; both move while traffic flows).
    const rss = Number(await waitForValue(page, sel('mem-rss'), { op: 'gt', value: 0 }, UPDATE_WAIT_MS, 'RSS'));
    const procRss = edge.rss();
    expect(rss, `page RSS ${rss} vs /proc VmRSS ${procRss}`).toBeGreaterThan(procRss / 2);
    expect(rss, `page RSS ${rss} vs /proc VmRSS ${procRss}`).toBeLessThan(procRss * 2);

    const shot = join(SHOT_DIR, 'console-up.png');
    mkdirSync(SHOT_DIR, { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    console.info(`console screenshot (uplink up): ${shot}`);
  });

  it('after the hub is killed: the uplink shows down, its backlog grows, and the problems say so', { timeout: 120_000 }, async () => {
    if (hub === undefined || trickle === undefined || nc2 === undefined || mqttPublishAck === undefined) throw new Error('setup did not finish');
    trickle.buffered = true;
    const killedAt = Date.now();
    await hub.stop('SIGKILL');

    await waitForValue(page, uplinkCell('uplink-state'), { op: 'eq', value: 'down' }, UPDATE_WAIT_MS, 'uplink state after the hub died');
    expect((await shown(page, uplinkCell('uplink-state'))).text).toMatch(/down/i);
    const since = Number((await shown(page, uplinkCell('uplink-since'))).value);
    expect(since, 'ms since the uplink state changed').toBeGreaterThanOrEqual(0);
    expect(since, 'ms since the uplink state changed').toBeLessThanOrEqual(Date.now() - killedAt + 2000);

    // The backlog grows while publishes on the buffered subject go on.
    const b1 = Number(await waitForValue(page, uplinkCell('uplink-backlog-msgs'), { op: 'gt', value: 0 }, UPDATE_WAIT_MS, 'uplink backlog'));
    const b2 = Number(await waitForValue(page, uplinkCell('uplink-backlog-msgs'), { op: 'gt', value: b1 }, UPDATE_WAIT_MS, `uplink backlog growing past ${b1}`));
    await waitForValue(page, uplinkCell('uplink-backlog-oldest'), { op: 'gt', value: 0 }, UPDATE_WAIT_MS, 'age of the oldest buffered message');

    // Then the exact numbers: stop the buffered publishes; a QoS 1 publish behind them is
    // acknowledged only once stored, and the store commits in order, so /leafz is final then.
    trickle.buffered = false;
    await nc2.flush();
    await within(mqttPublishAck(MQTT_TOPIC, 'last'), 10_000, 'PUBACK of the last buffered MQTT publish');
    const buf = await edgeBuffer(edge);
    expect(buf.state).not.toBe('connected');
    await waitForValue(page, uplinkCell('uplink-backlog-msgs'), { op: 'eq', value: buf.msgs }, UPDATE_WAIT_MS, 'uplink backlog = /leafz buffer.msgs');
    await waitForValue(page, uplinkCell('uplink-backlog-bytes'), { op: 'eq', value: buf.bytes }, UPDATE_WAIT_MS, 'uplink backlog bytes = /leafz buffer.bytes');
    await waitForValue(page, uplinkCell('uplink-dropped'), { op: 'eq', value: buf.dropped_msgs }, UPDATE_WAIT_MS, 'uplink dropped = /leafz buffer.dropped_msgs');
    console.info(`console: backlog ${b1}, then ${b2}, then ${buf.msgs} messages (${buf.bytes} bytes) once publishing stopped`);

    // The problem sentence (once the uplink has been down 10 s: a quick redial is no problem)
    // names the uplink, says for how long, and how much is buffered, in words.
    const problem = await waitInPage(
      page,
      () => {
        const texts = [...document.querySelectorAll('[data-testid="problems"] [data-testid="problem"]')].map((e) => (e.textContent ?? '').trim());
        return texts.find((t) => /uplink/i.test(t) && /down/i.test(t)) ?? false;
      },
      undefined,
      UPDATE_WAIT_MS + 10_000,
      'a problem saying the uplink is down',
      async () => `problems show ${JSON.stringify(await page.locator(sel('problems')).textContent())}`,
    );
    console.info(`console problem: ${problem}`);
    const sentence = new RegExp(
      `^Uplink ${escapeRegExp(remoteUrl)} is down for (\\d+) s with ${groupThousands(buf.msgs)} messages \\(\\d+(\\.\\d+)? (B|KB|MB)\\) buffered$`,
    );
    expect(problem).toMatch(sentence);
    const downFor = Number(sentence.exec(problem)?.[1]);
    expect(downFor).toBeGreaterThanOrEqual(10);
    expect(downFor).toBeLessThanOrEqual((Date.now() - killedAt) / 1000 + 2);

    // The monitoring side is unaffected: the page is still live.
    expect((await shown(page, sel('live'))).value).toBe('live');

    const shot = join(SHOT_DIR, 'console-down.png');
    mkdirSync(SHOT_DIR, { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    console.info(`console screenshot (uplink down): ${shot}`);
  });

  it('is readable on a phone: viewport meta, no sideways scrolling at 390 px, live there too', { timeout: 60_000 }, async () => {
    if (browser === undefined) throw new Error('no browser');
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    // The phone's requests count in the same-origin check below.
    const phoneRequests = recordRequests(phone);
    try {
      const p = await phone.newPage();
      await p.goto(`${origin}/`, { waitUntil: 'load', timeout: 20_000 });
      expect(await p.locator('meta[name="viewport"]').getAttribute('content')).toMatch(/width=device-width/);
      await waitForValue(p, sel('live'), { op: 'eq', value: 'live' }, UPDATE_WAIT_MS, 'live indicator on the phone');
      await waitForValue(p, uplinkCell('uplink-state'), { op: 'eq', value: 'down' }, UPDATE_WAIT_MS, 'uplink state on the phone');
      const widths = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: window.innerWidth }));
      expect(widths.scroll, `page width ${widths.scroll} px in a ${widths.view} px viewport`).toBeLessThanOrEqual(widths.view);
      const shot = join(SHOT_DIR, 'console-phone.png');
      mkdirSync(SHOT_DIR, { recursive: true });
      await p.screenshot({ path: shot, fullPage: true });
      console.info(`console screenshot (phone, uplink down): ${shot}`);
    } finally {
      await phone.close();
      requests.push(...phoneRequests);
    }
  });

  it('is one small self-contained page: under 100 KB, every request to the gateway itself, no secrets in the page or in /events', async () => {
    expect(mainType).toMatch(/^text\/html/);
    expect(mainBody, 'main document body').toBeDefined();
    const size = mainBody?.length ?? Infinity;
    console.info(`console page: ${size} bytes; requests: ${JSON.stringify(requests.map((r) => `${r.resourceType} ${r.url}`))}`);
    expect(size).toBeLessThan(PAGE_LIMIT_BYTES);

    // data: URLs (the icon) never leave the browser; everything else must go to this gateway.
    const network = requests.filter((r) => !r.url.startsWith('data:'));
    expect(network.filter((r) => new URL(r.url).origin !== origin), 'requests outside the gateway').toEqual([]);
    // Inline CSS and JS: the document and its event stream are all the page fetches.
    expect(network.filter((r) => r.resourceType !== 'document' && r.resourceType !== 'eventsource'), 'requests other than the page and its event stream').toEqual([]);
    expect(network.filter((r) => new URL(r.url).pathname.includes('favicon')), 'favicon fetches').toEqual([]);
    expect(network.some((r) => r.resourceType === 'eventsource' && new URL(r.url).pathname === '/events')).toBe(true);

    // No credential of the remote in the page as rendered, nor in the raw event stream.
    const html = await page.content();
    expect(html).not.toContain(LEAF_PASSWORD);
    expect(html).not.toContain(`${LEAF_USER}:`);
    const snapshot = await firstEvent(`${origin}/events`);
    expect(snapshot.contentType).toMatch(/^text\/event-stream/);
    expect(() => JSON.parse(snapshot.data) as unknown).not.toThrow();
    expect(snapshot.data).not.toContain(LEAF_PASSWORD);
    expect(snapshot.data).not.toContain(`${LEAF_USER}:`);
  });

  it('says it is no longer live once the gateway is gone', { timeout: 60_000 }, async () => {
    trickle?.stop();
    await edge.stop('SIGKILL');
    await waitForValue(page, sel('live'), { op: 'eq', value: 'stale' }, UPDATE_WAIT_MS, 'live indicator after the gateway died');
    expect((await shown(page, sel('live'))).text).toMatch(/stale|disconnected/i);
  });
});

/** The labels of /metrics' nats_edge_info line (server identity: version, edge_version, profile...). */
async function serverInfo(origin: string): Promise<Record<string, string>> {
  const text = await (await fetch(`${origin}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const line = text.split('\n').find((l) => l.startsWith('nats_edge_info{'));
  if (line === undefined) throw new Error(`/metrics has no nats_edge_info line:\n${text.slice(0, 2000)}`);
  const out: Record<string, string> = {};
  for (const m of line.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1] ?? ''] = (m[2] ?? '').replace(/\\(.)/g, '$1');
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** 41000 -> "41 000", as the console writes counts. */
function groupThousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

/** Reads the first `data:` event of an SSE endpoint, then drops the stream. */
async function firstEvent(url: string): Promise<{ contentType: string; data: string }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 10_000);
  try {
    const res = await fetch(url, { signal: ac.signal, headers: { accept: 'text/event-stream' } });
    const body = res.body;
    if (body === null) throw new Error(`${url}: no body`);
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${url}: stream ended before a data event: ${JSON.stringify(text)}`);
      text += decoder.decode(value, { stream: true });
      for (const block of text.split('\n\n').slice(0, -1)) {
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (data !== '') return { contentType: res.headers.get('content-type') ?? '', data };
      }
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}
