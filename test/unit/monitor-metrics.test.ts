import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultOptions } from '../../src/config/load.js';
import { Router } from '../../src/core/router.js';
import type { LeafLinkView } from '../../src/leaf/types.js';
import { MonitorServer } from '../../src/monitor/http-server.js';
import {
  leafRemoteMetrics,
  METRICS_CONTENT_TYPE,
  metrics,
  type MetricsSource,
  processMemory,
} from '../../src/monitor/metrics.js';
import type { MonitorSource } from '../../src/monitor/source.js';

function full(): MetricsSource {
  return {
    info: { version: '2.10.0', edgeVersion: '0.3.1', serverId: 'NABC', serverName: 'edge-1', profile: 'rpi-4' },
    uptimeSeconds: 3725.5,
    connections: { client: 3, websocket: 1, mqtt: 2, leaf: 1 },
    totalConnections: 40,
    inMsgs: 1000,
    outMsgs: 2500,
    inBytes: 64000,
    outBytes: 160000,
    slowConsumers: 2,
    subscriptions: 17,
    memory: {
      rssBytes: 52_428_800,
      heapUsedBytes: 6_291_456,
      heapLimitBytes: 427_819_008,
      memoryBudgetBytes: 629_145_600,
      pendingBytes: 4096,
      pendingLimitBytes: 67_108_864,
      publisherPauses: 1,
      rssCeilingBytes: 805_306_368,
    },
    jetstream: {
      streams: 2,
      consumers: 3,
      messages: 120,
      bytes: 9000,
      storeBytes: 12_000,
      storeMaxBytes: 8_589_934_592,
      memoryBytes: 0,
      memoryMaxBytes: 629_145_600,
      apiRequests: 55,
      apiErrors: 4,
    },
    mqtt: { sessions: 5, retained: 7, droppedQueued: 8, droppedQos0: 9 },
    leaf: {
      droppedLive: 6,
      remotes: [
        {
          remote: 'nats-leaf://hub.example:7422',
          connected: true,
          rttMs: 12.5,
          connects: 3,
          inMsgs: 10,
          outMsgs: 20,
          inBytes: 100,
          outBytes: 200,
          buffer: { msgs: 4, bytes: 400, oldestAgeMs: 1500, droppedMsgs: 1, droppedBytes: 50, replayed: 30 },
        },
        {
          remote: 'tls://user:secret@backup.example:7422',
          connected: false,
          rttMs: -1,
          connects: 0,
          inMsgs: 0,
          outMsgs: 0,
          inBytes: 0,
          outBytes: 0,
        },
      ],
    },
  };
}

const FULL_BODY = `# HELP nats_edge_info Server identity; the value is always 1.
# TYPE nats_edge_info gauge
nats_edge_info{version="2.10.0",edge_version="0.3.1",server_id="NABC",server_name="edge-1",profile="rpi-4"} 1
# HELP nats_edge_uptime_seconds Seconds since the server started.
# TYPE nats_edge_uptime_seconds gauge
nats_edge_uptime_seconds 3725.5
# HELP nats_edge_connections Open connections by kind.
# TYPE nats_edge_connections gauge
nats_edge_connections{kind="client"} 3
nats_edge_connections{kind="websocket"} 1
nats_edge_connections{kind="mqtt"} 2
nats_edge_connections{kind="leaf"} 1
# HELP nats_edge_connections_accepted_total Client connections accepted since start (/varz total_connections).
# TYPE nats_edge_connections_accepted_total counter
nats_edge_connections_accepted_total 40
# HELP nats_edge_in_messages_total Messages received from clients.
# TYPE nats_edge_in_messages_total counter
nats_edge_in_messages_total 1000
# HELP nats_edge_out_messages_total Messages delivered to clients.
# TYPE nats_edge_out_messages_total counter
nats_edge_out_messages_total 2500
# HELP nats_edge_in_bytes_total Message bytes received from clients (/varz in_bytes).
# TYPE nats_edge_in_bytes_total counter
nats_edge_in_bytes_total 64000
# HELP nats_edge_out_bytes_total Message bytes delivered to clients (/varz out_bytes).
# TYPE nats_edge_out_bytes_total counter
nats_edge_out_bytes_total 160000
# HELP nats_edge_slow_consumers_total Connections closed or dropped as slow consumers.
# TYPE nats_edge_slow_consumers_total counter
nats_edge_slow_consumers_total 2
# HELP nats_edge_subscriptions Subscriptions in the subject index.
# TYPE nats_edge_subscriptions gauge
nats_edge_subscriptions 17
# HELP nats_edge_memory_rss_bytes Resident set size of the process.
# TYPE nats_edge_memory_rss_bytes gauge
nats_edge_memory_rss_bytes 52428800
# HELP nats_edge_memory_heap_used_bytes V8 heap in use.
# TYPE nats_edge_memory_heap_used_bytes gauge
nats_edge_memory_heap_used_bytes 6291456
# HELP nats_edge_memory_heap_limit_bytes V8 heap size limit (set by the profile's Node flags).
# TYPE nats_edge_memory_heap_limit_bytes gauge
nats_edge_memory_heap_limit_bytes 427819008
# HELP nats_edge_memory_rss_ceiling_bytes RSS the firmware profile must stay under (systemd MemoryMax).
# TYPE nats_edge_memory_rss_ceiling_bytes gauge
nats_edge_memory_rss_ceiling_bytes 805306368
# HELP nats_edge_memory_budget_bytes Memory budget of the broker (memory_budget, from the profile or the config).
# TYPE nats_edge_memory_budget_bytes gauge
nats_edge_memory_budget_bytes 629145600
# HELP nats_edge_pending_bytes Bytes queued for readers across all connections, charged to the memory budget.
# TYPE nats_edge_pending_bytes gauge
nats_edge_pending_bytes 4096
# HELP nats_edge_pending_limit_bytes Cap on bytes queued for readers across all connections (max_pending_total).
# TYPE nats_edge_pending_limit_bytes gauge
nats_edge_pending_limit_bytes 67108864
# HELP nats_edge_publisher_pauses_total Times publishers were paused because queued bytes reached the cap.
# TYPE nats_edge_publisher_pauses_total counter
nats_edge_publisher_pauses_total 1
# HELP nats_edge_jetstream_streams JetStream streams.
# TYPE nats_edge_jetstream_streams gauge
nats_edge_jetstream_streams 2
# HELP nats_edge_jetstream_consumers JetStream consumers.
# TYPE nats_edge_jetstream_consumers gauge
nats_edge_jetstream_consumers 3
# HELP nats_edge_jetstream_messages Messages stored in all streams.
# TYPE nats_edge_jetstream_messages gauge
nats_edge_jetstream_messages 120
# HELP nats_edge_jetstream_bytes Bytes of the messages stored in all streams.
# TYPE nats_edge_jetstream_bytes gauge
nats_edge_jetstream_bytes 9000
# HELP nats_edge_jetstream_store_bytes File storage in use (counted as nats-server counts it).
# TYPE nats_edge_jetstream_store_bytes gauge
nats_edge_jetstream_store_bytes 12000
# HELP nats_edge_jetstream_store_max_bytes File storage limit (max_file_store).
# TYPE nats_edge_jetstream_store_max_bytes gauge
nats_edge_jetstream_store_max_bytes 8589934592
# HELP nats_edge_jetstream_memory_bytes Memory storage in use.
# TYPE nats_edge_jetstream_memory_bytes gauge
nats_edge_jetstream_memory_bytes 0
# HELP nats_edge_jetstream_memory_max_bytes Memory storage limit (max_memory_store).
# TYPE nats_edge_jetstream_memory_max_bytes gauge
nats_edge_jetstream_memory_max_bytes 629145600
# HELP nats_edge_jetstream_api_requests_total JetStream API requests.
# TYPE nats_edge_jetstream_api_requests_total counter
nats_edge_jetstream_api_requests_total 55
# HELP nats_edge_jetstream_api_errors_total JetStream API requests answered with an error.
# TYPE nats_edge_jetstream_api_errors_total counter
nats_edge_jetstream_api_errors_total 4
# HELP nats_edge_mqtt_sessions MQTT sessions, connected or persisted.
# TYPE nats_edge_mqtt_sessions gauge
nats_edge_mqtt_sessions 5
# HELP nats_edge_mqtt_retained_messages MQTT retained messages.
# TYPE nats_edge_mqtt_retained_messages gauge
nats_edge_mqtt_retained_messages 7
# HELP nats_edge_mqtt_dropped_queued_total MQTT messages dropped because a session queue was full.
# TYPE nats_edge_mqtt_dropped_queued_total counter
nats_edge_mqtt_dropped_queued_total 8
# HELP nats_edge_mqtt_dropped_qos0_total MQTT QoS 0 messages dropped for slow subscribers.
# TYPE nats_edge_mqtt_dropped_qos0_total counter
nats_edge_mqtt_dropped_qos0_total 9
# HELP nats_edge_leaf_connected Whether the leafnode link to the remote is up (1) or not (0).
# TYPE nats_edge_leaf_connected gauge
nats_edge_leaf_connected{remote="nats-leaf://hub.example:7422"} 1
nats_edge_leaf_connected{remote="tls://backup.example:7422"} 0
# HELP nats_edge_leaf_rtt_seconds Last measured PING/PONG round trip on the leafnode link.
# TYPE nats_edge_leaf_rtt_seconds gauge
nats_edge_leaf_rtt_seconds{remote="nats-leaf://hub.example:7422"} 0.0125
# HELP nats_edge_leaf_connects_total Times the leafnode link came up.
# TYPE nats_edge_leaf_connects_total counter
nats_edge_leaf_connects_total{remote="nats-leaf://hub.example:7422"} 3
nats_edge_leaf_connects_total{remote="tls://backup.example:7422"} 0
# HELP nats_edge_leaf_in_messages_total Messages received from the remote.
# TYPE nats_edge_leaf_in_messages_total counter
nats_edge_leaf_in_messages_total{remote="nats-leaf://hub.example:7422"} 10
nats_edge_leaf_in_messages_total{remote="tls://backup.example:7422"} 0
# HELP nats_edge_leaf_out_messages_total Messages sent to the remote.
# TYPE nats_edge_leaf_out_messages_total counter
nats_edge_leaf_out_messages_total{remote="nats-leaf://hub.example:7422"} 20
nats_edge_leaf_out_messages_total{remote="tls://backup.example:7422"} 0
# HELP nats_edge_leaf_in_bytes_total Payload bytes received from the remote.
# TYPE nats_edge_leaf_in_bytes_total counter
nats_edge_leaf_in_bytes_total{remote="nats-leaf://hub.example:7422"} 100
nats_edge_leaf_in_bytes_total{remote="tls://backup.example:7422"} 0
# HELP nats_edge_leaf_out_bytes_total Payload bytes sent to the remote.
# TYPE nats_edge_leaf_out_bytes_total counter
nats_edge_leaf_out_bytes_total{remote="nats-leaf://hub.example:7422"} 200
nats_edge_leaf_out_bytes_total{remote="tls://backup.example:7422"} 0
# HELP nats_edge_leaf_buffer_messages Messages waiting in the store-and-forward queue.
# TYPE nats_edge_leaf_buffer_messages gauge
nats_edge_leaf_buffer_messages{remote="nats-leaf://hub.example:7422"} 4
# HELP nats_edge_leaf_buffer_bytes Bytes waiting in the store-and-forward queue.
# TYPE nats_edge_leaf_buffer_bytes gauge
nats_edge_leaf_buffer_bytes{remote="nats-leaf://hub.example:7422"} 400
# HELP nats_edge_leaf_buffer_oldest_age_seconds Age of the oldest message in the store-and-forward queue (0 when empty).
# TYPE nats_edge_leaf_buffer_oldest_age_seconds gauge
nats_edge_leaf_buffer_oldest_age_seconds{remote="nats-leaf://hub.example:7422"} 1.5
# HELP nats_edge_leaf_buffer_dropped_messages_total Messages dropped from the store-and-forward queue by its limits.
# TYPE nats_edge_leaf_buffer_dropped_messages_total counter
nats_edge_leaf_buffer_dropped_messages_total{remote="nats-leaf://hub.example:7422"} 1
# HELP nats_edge_leaf_buffer_dropped_bytes_total Bytes dropped from the store-and-forward queue by its limits.
# TYPE nats_edge_leaf_buffer_dropped_bytes_total counter
nats_edge_leaf_buffer_dropped_bytes_total{remote="nats-leaf://hub.example:7422"} 50
# HELP nats_edge_leaf_buffer_replayed_messages_total Messages replayed from the store-and-forward queue to the remote.
# TYPE nats_edge_leaf_buffer_replayed_messages_total counter
nats_edge_leaf_buffer_replayed_messages_total{remote="nats-leaf://hub.example:7422"} 30
# HELP nats_edge_leaf_dropped_live_messages_total Live messages dropped because an uplink could not keep up, over all remotes.
# TYPE nats_edge_leaf_dropped_live_messages_total counter
nats_edge_leaf_dropped_live_messages_total 6
`;

function minimal(): MetricsSource {
  const s = full();
  s.info.profile = null;
  s.memory.rssCeilingBytes = null;
  s.jetstream = null;
  s.mqtt = null;
  s.leaf = null;
  return s;
}

// ---- the text format 0.0.4 grammar, written from its specification ----------------------------

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*=${LABEL_VALUE}`;
const VALUE = '(?:[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?|NaN|[+-]Inf)';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})? ${VALUE}(?: -?\\d+)?$`);
const HELP = new RegExp(`^# HELP (${NAME}) (?:[^\\\\\\n]|\\\\[\\\\n])*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** Checks the exposition rules the scrapers enforce; returns the families in order. */
function checkExposition(body: string): { name: string; type: string; samples: string[] }[] {
  expect(body.endsWith('\n')).toBe(true);
  const families: { name: string; type: string; samples: string[] }[] = [];
  const helps = new Set<string>();
  const types = new Set<string>();
  const seen = new Set<string>();
  let current: (typeof families)[number] | undefined;
  for (const line of body.slice(0, -1).split('\n')) {
    const help = HELP.exec(line);
    if (help !== null) {
      const name = help[1]!;
      expect(helps.has(name), `HELP twice for ${name}`).toBe(false);
      helps.add(name);
      continue;
    }
    const type = TYPE.exec(line);
    if (type !== null) {
      const name = type[1]!;
      expect(types.has(name), `TYPE twice for ${name}`).toBe(false);
      expect(helps.has(name), `TYPE before HELP for ${name}`).toBe(true);
      types.add(name);
      current = { name, type: type[2]!, samples: [] };
      families.push(current);
      continue;
    }
    const sample = SAMPLE.exec(line);
    expect(sample, `not a sample line: ${line}`).not.toBeNull();
    expect(current?.name, `sample outside its family: ${line}`).toBe(sample![1]);
    const series = line.slice(0, line.lastIndexOf(' '));
    expect(seen.has(series), `series twice: ${series}`).toBe(false);
    seen.add(series);
    current!.samples.push(line);
  }
  expect([...helps].sort()).toEqual([...types].sort());
  for (const f of families) {
    expect(f.name.startsWith('nats_edge_')).toBe(true);
    expect(f.samples.length).toBeGreaterThan(0);
    if (f.type === 'counter') expect(f.name.endsWith('_total'), f.name).toBe(true);
    else expect(f.name.endsWith('_total'), f.name).toBe(false);
  }
  return families;
}

describe('metrics', () => {
  it('renders a full snapshot', () => {
    const r = metrics(full());
    expect(r.status).toBe(200);
    expect(r.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.contentType).toBe(METRICS_CONTENT_TYPE);
    expect(r.body).toBe(FULL_BODY);
  });

  it('follows the exposition grammar, HELP and TYPE once per family', () => {
    const families = checkExposition(metrics(full()).body);
    expect(families.length).toBe(46);
    checkExposition(metrics(minimal()).body);
  });

  it('has a checker that rejects broken exposition text', () => {
    const ok = '# HELP nats_edge_x X.\n# TYPE nats_edge_x gauge\nnats_edge_x 1\n';
    expect(() => checkExposition(ok)).not.toThrow();
    expect(() => checkExposition(ok + ok)).toThrow(/HELP twice/);
    expect(() => checkExposition(ok.replace('x 1', 'x{a="b\\q"} 1'))).toThrow(/not a sample line/);
    expect(() => checkExposition(ok.replace('x 1', 'y 1'))).toThrow(/outside its family/);
    expect(() => checkExposition(ok.replace(/gauge/, 'counter').replace(/_x/g, '_x_total'))).not.toThrow();
    expect(() => checkExposition(ok.replace(/_x/g, '_x_total'))).toThrow();
  });

  it('leaves out what is not running', () => {
    const body = metrics(minimal()).body;
    expect(body).toContain(
      'nats_edge_info{version="2.10.0",edge_version="0.3.1",server_id="NABC",server_name="edge-1"} 1\n',
    );
    expect(body).not.toContain('memory_rss_ceiling_bytes');
    expect(body).not.toContain('nats_edge_jetstream_');
    expect(body).not.toContain('nats_edge_mqtt_');
    expect(body).not.toContain('nats_edge_leaf_');
    expect(body.split('\n').filter((l) => l.startsWith('# TYPE')).length).toBe(17);
  });

  it('escapes label values and help text', () => {
    const s = minimal();
    s.info.serverName = 'a\\b "quoted"\nnext';
    const body = metrics(s).body;
    expect(body).toContain('server_name="a\\\\b \\"quoted\\"\\nnext"} 1\n');
    checkExposition(body);
  });

  it('writes NaN and infinities as the format spells them', () => {
    const s = minimal();
    s.uptimeSeconds = Number.NaN;
    s.memory.heapLimitBytes = Infinity;
    s.memory.pendingBytes = -Infinity;
    const body = metrics(s).body;
    expect(body).toContain('\nnats_edge_uptime_seconds NaN\n');
    expect(body).toContain('\nnats_edge_memory_heap_limit_bytes +Inf\n');
    expect(body).toContain('\nnats_edge_pending_bytes -Inf\n');
    checkExposition(body);
  });

  it('keeps two remotes with the same URL apart', () => {
    const s = full();
    const first = s.leaf!.remotes[0]!;
    s.leaf = { droppedLive: 0, remotes: [first, { ...first, connected: false }] };
    const body = metrics(s).body;
    expect(body).toContain('nats_edge_leaf_connected{remote="nats-leaf://hub.example:7422"} 1\n');
    expect(body).toContain('nats_edge_leaf_connected{remote="nats-leaf://hub.example:7422 #2"} 0\n');
    checkExposition(body);
  });
});

describe('leafRemoteMetrics and processMemory', () => {
  const NOW = Date.parse('2026-11-27T06:00:00.000Z');
  const view = (over: Partial<LeafLinkView>): LeafLinkView => ({
    name: 'hub',
    url: 'nats-leaf://hub.example:7422',
    state: 'connected',
    since: new Date(NOW - 60_000),
    account: '$G',
    remoteAccount: '',
    ip: '127.0.0.1',
    port: 7422,
    rttMs: 3,
    inMsgs: 1,
    outMsgs: 2,
    inBytes: 3,
    outBytes: 4,
    subscriptions: () => [],
    connects: 1,
    lastError: '',
    ...over,
  });

  it('turns leaf views into remotes, with the age of the oldest buffered message', () => {
    const buffer = { msgs: 2, bytes: 20, oldestTs: NOW - 2500, droppedMsgs: 1, droppedBytes: 10, appended: 3, replaying: false, replayed: 5 };
    const out = leafRemoteMetrics(
      [view({ buffer }), view({ url: 'nats://h2:7422', state: 'connecting', rttMs: -1, buffer: { ...buffer, msgs: 0, oldestTs: 0 } }), view({ state: 'disconnected' })],
      NOW,
    );
    expect(out).toEqual([
      {
        remote: 'nats-leaf://hub.example:7422',
        connected: true,
        rttMs: 3,
        connects: 1,
        inMsgs: 1,
        outMsgs: 2,
        inBytes: 3,
        outBytes: 4,
        buffer: { msgs: 2, bytes: 20, oldestAgeMs: 2500, droppedMsgs: 1, droppedBytes: 10, replayed: 5 },
      },
      {
        remote: 'nats://h2:7422',
        connected: false,
        rttMs: -1,
        connects: 1,
        inMsgs: 1,
        outMsgs: 2,
        inBytes: 3,
        outBytes: 4,
        buffer: { msgs: 0, bytes: 20, oldestAgeMs: 0, droppedMsgs: 1, droppedBytes: 10, replayed: 5 },
      },
      { remote: 'nats-leaf://hub.example:7422', connected: false, rttMs: 3, connects: 1, inMsgs: 1, outMsgs: 2, inBytes: 3, outBytes: 4 },
    ]);
  });

  it('reads the process memory', () => {
    const m = processMemory();
    expect(m.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(m.heapUsedBytes).toBeGreaterThan(0);
    expect(m.heapLimitBytes).toBeGreaterThan(m.heapUsedBytes);
  });
});

// ---- over HTTP, as a scraper gets it ----------------------------------------------------------

describe('/metrics on the monitoring server', () => {
  const router = new Router();
  const source: MonitorSource = {
    serverId: 'NABC',
    serverName: 'edge-1',
    version: '2.10.0',
    start: new Date(),
    configLoadTime: new Date(),
    options: () => defaultOptions(),
    clientPort: () => 4222,
    httpPort: () => 0,
    stats: () => ({ inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0, slowConsumers: 0, pendingBytes: 0, pendingLimit: 0, publisherPauses: 0, totalConnections: 0 }),
    openConnections: () => [],
    closedConnections: () => [],
    subjectIndex: () => router.index,
    healthError: () => null,
  };
  const monitor = new MonitorServer(source, { host: '127.0.0.1', port: 0, basePath: '' });
  monitor.route('/metrics', () => metrics(full()));
  let port = 0;
  beforeAll(async () => {
    port = await monitor.listen();
  });
  afterAll(() => monitor.close());

  function get(path: string): Promise<{ status: number; type: string; body: string }> {
    return new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
        })
        .on('error', reject);
    });
  }

  it('serves the text format with its content type', async () => {
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.body).toBe(FULL_BODY);
  });

  it('lists /metrics on the index page', async () => {
    const r = await get('/');
    expect(r.body).toContain('<a href="/metrics">Metrics (Prometheus)</a>');
  });
});

// ---- promtool, Prometheus' own checker, when the machine has it -------------------------------

function findPromtool(): string | null {
  const env = process.env['PROMTOOL'];
  if (env !== undefined && env !== '' && existsSync(env)) return env;
  const which = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  const path = which.stdout.trim();
  return which.status === 0 && path !== '' ? path : null;
}

const promtool = findPromtool();

// Debian ships promtool only inside the full `prometheus` package (a server, 96 MB); the test
// runs where someone put promtool on PATH or in $PROMTOOL and is skipped elsewhere.
describe.skipIf(promtool === null)('promtool check metrics', () => {
  for (const [name, src] of [
    ['full', full()],
    ['minimal', minimal()],
  ] as const) {
    it(`accepts the ${name} snapshot`, () => {
      const r = spawnSync(promtool!, ['check', 'metrics'], { input: metrics(src).body, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('is strict enough to fail (a raw newline in a label value)', () => {
    const bad = '# HELP nats_edge_x X.\n# TYPE nats_edge_x gauge\nnats_edge_x{a="b\nc"} 1\n';
    const r = spawnSync(promtool!, ['check', 'metrics'], { input: bad, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
  });
});
