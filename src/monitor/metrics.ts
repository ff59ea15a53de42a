/**
 * /metrics: the server's counters in Prometheus text exposition format 0.0.4, so a device can
 * be scraped without an exporter beside it. Names start with `nats_edge_`; counters end in
 * `_total`, sizes in `_bytes`, durations in `_seconds`. Families without samples (JetStream
 * off, no leaf remotes) are left out whole.
 */
import v8 from 'node:v8';
import type { LeafLinkView } from '../leaf/types.js';
import { withoutUserinfo } from './leafz.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** One leafnode remote, as the `remote`-labelled leaf families show it. */
export interface LeafRemoteMetrics {
  /** The remote's URL without userinfo: the `remote` label. */
  remote: string;
  connected: boolean;
  /** Last PING/PONG round trip, ms; negative until measured (the sample is then left out). */
  rttMs: number;
  /** Times the link came up. */
  connects: number;
  inMsgs: number;
  outMsgs: number;
  inBytes: number;
  outBytes: number;
  /** Store-and-forward queue, when the remote has a buffer block. */
  buffer?: {
    msgs: number;
    bytes: number;
    /** Age of the oldest queued message, ms; 0 when empty. */
    oldestAgeMs: number;
    droppedMsgs: number;
    droppedBytes: number;
    replayed: number;
  };
}

/** A snapshot of plain numbers the server fills at each scrape. */
export interface MetricsSource {
  info: {
    /** The nats-server level advertised in INFO. */
    version: string;
    /** nats-edge's own version. */
    edgeVersion: string;
    serverId: string;
    serverName: string;
    /** Firmware profile in force, null for none. */
    profile: string | null;
  };
  uptimeSeconds: number;
  /** Open connections by kind. */
  connections: { client: number; websocket: number; mqtt: number; leaf: number };
  /** Connections accepted since start (/varz total_connections). */
  totalConnections: number;
  inMsgs: number;
  outMsgs: number;
  inBytes: number;
  outBytes: number;
  slowConsumers: number;
  subscriptions: number;
  memory: {
    rssBytes: number;
    heapUsedBytes: number;
    /** V8's heap_size_limit: shows whether the profile's Node flags took effect. */
    heapLimitBytes: number;
    /** memory_budget (profile or config). */
    memoryBudgetBytes: number;
    /** Bytes queued for readers, charged to the budget, and its cap (max_pending_total). */
    pendingBytes: number;
    pendingLimitBytes: number;
    publisherPauses: number;
    /** The profile's rssCeiling (systemd MemoryMax); null without a profile. */
    rssCeilingBytes: number | null;
  };
  jetstream: null | {
    streams: number;
    consumers: number;
    messages: number;
    bytes: number;
    /** File storage in use, and max_file_store. */
    storeBytes: number;
    storeMaxBytes: number;
    memoryBytes: number;
    memoryMaxBytes: number;
    apiRequests: number;
    apiErrors: number;
  };
  mqtt: null | {
    sessions: number;
    retained: number;
    droppedQueued: number;
    droppedQos0: number;
  };
  leaf: null | {
    /** Live messages dropped on congested links, over all remotes. */
    droppedLive: number;
    remotes: readonly LeafRemoteMetrics[];
  };
}

type Labels = Readonly<Record<string, string>>;
type Sample = readonly [labels: Labels | null, value: number];

function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c));
}

function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Labels | null): string {
  if (labels === null) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) parts.push(`${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

class Exposition {
  private readonly lines: string[] = [];

  gauge(name: string, help: string, samples: number | readonly Sample[]): void {
    this.family(name, 'gauge', help, samples);
  }

  counter(name: string, help: string, samples: number | readonly Sample[]): void {
    this.family(name, 'counter', help, samples);
  }

  text(): string {
    return this.lines.length === 0 ? '' : this.lines.join('\n') + '\n';
  }

  private family(name: string, type: 'gauge' | 'counter', help: string, samples: number | readonly Sample[]): void {
    const list: readonly Sample[] = typeof samples === 'number' ? [[null, samples]] : samples;
    if (list.length === 0) return;
    this.lines.push(`# HELP nats_edge_${name} ${escapeHelp(help)}`, `# TYPE nats_edge_${name} ${type}`);
    for (const [labels, value] of list) this.lines.push(`nats_edge_${name}${formatLabels(labels)} ${formatValue(value)}`);
  }
}

/** Two remotes with the same URL would be one series twice: number the repeats. */
function remoteLabels(remotes: readonly LeafRemoteMetrics[]): Labels[] {
  const seen = new Map<string, number>();
  return remotes.map((r) => {
    const url = withoutUserinfo(r.remote);
    const n = (seen.get(url) ?? 0) + 1;
    seen.set(url, n);
    return { remote: n === 1 ? url : `${url} #${n}` };
  });
}

function leafFamilies(m: Exposition, leaf: NonNullable<MetricsSource['leaf']>): void {
  const rs = leaf.remotes;
  const labels = remoteLabels(rs);
  const per = (f: (r: LeafRemoteMetrics) => number | undefined): Sample[] => {
    const out: Sample[] = [];
    rs.forEach((r, i) => {
      const v = f(r);
      if (v !== undefined) out.push([labels[i]!, v]);
    });
    return out;
  };
  m.gauge('leaf_connected', 'Whether the leafnode link to the remote is up (1) or not (0).', per((r) => (r.connected ? 1 : 0)));
  m.gauge('leaf_rtt_seconds', 'Last measured PING/PONG round trip on the leafnode link.', per((r) => (r.rttMs >= 0 ? r.rttMs / 1000 : undefined)));
  m.counter('leaf_connects_total', 'Times the leafnode link came up.', per((r) => r.connects));
  m.counter('leaf_in_messages_total', 'Messages received from the remote.', per((r) => r.inMsgs));
  m.counter('leaf_out_messages_total', 'Messages sent to the remote.', per((r) => r.outMsgs));
  m.counter('leaf_in_bytes_total', 'Payload bytes received from the remote.', per((r) => r.inBytes));
  m.counter('leaf_out_bytes_total', 'Payload bytes sent to the remote.', per((r) => r.outBytes));
  m.gauge('leaf_buffer_messages', 'Messages waiting in the store-and-forward queue.', per((r) => r.buffer?.msgs));
  m.gauge('leaf_buffer_bytes', 'Bytes waiting in the store-and-forward queue.', per((r) => r.buffer?.bytes));
  m.gauge('leaf_buffer_oldest_age_seconds', 'Age of the oldest message in the store-and-forward queue (0 when empty).', per((r) => (r.buffer === undefined ? undefined : r.buffer.oldestAgeMs / 1000)));
  m.counter('leaf_buffer_dropped_messages_total', 'Messages dropped from the store-and-forward queue by its limits.', per((r) => r.buffer?.droppedMsgs));
  m.counter('leaf_buffer_dropped_bytes_total', 'Bytes dropped from the store-and-forward queue by its limits.', per((r) => r.buffer?.droppedBytes));
  m.counter('leaf_buffer_replayed_messages_total', 'Messages replayed from the store-and-forward queue to the remote.', per((r) => r.buffer?.replayed));
  m.counter('leaf_dropped_live_messages_total', 'Live messages dropped because an uplink could not keep up, over all remotes.', leaf.droppedLive);
}

/** GET /metrics. */
export function metrics(src: MetricsSource): { status: 200; contentType: string; body: string } {
  const m = new Exposition();
  const info: Record<string, string> = {
    version: src.info.version,
    edge_version: src.info.edgeVersion,
    server_id: src.info.serverId,
    server_name: src.info.serverName,
  };
  if (src.info.profile !== null) info['profile'] = src.info.profile;
  m.gauge('info', 'Server identity; the value is always 1.', [[info, 1]]);
  m.gauge('uptime_seconds', 'Seconds since the server started.', src.uptimeSeconds);

  const c = src.connections;
  m.gauge('connections', 'Open connections by kind.', [
    [{ kind: 'client' }, c.client],
    [{ kind: 'websocket' }, c.websocket],
    [{ kind: 'mqtt' }, c.mqtt],
    [{ kind: 'leaf' }, c.leaf],
  ]);
  m.counter('connections_accepted_total', 'Client connections accepted since start (/varz total_connections).', src.totalConnections);
  m.counter('in_messages_total', 'Messages received from clients.', src.inMsgs);
  m.counter('out_messages_total', 'Messages delivered to clients.', src.outMsgs);
  m.counter('in_bytes_total', 'Message bytes received from clients (/varz in_bytes).', src.inBytes);
  m.counter('out_bytes_total', 'Message bytes delivered to clients (/varz out_bytes).', src.outBytes);
  m.counter('slow_consumers_total', 'Connections closed or dropped as slow consumers.', src.slowConsumers);
  m.gauge('subscriptions', 'Subscriptions in the subject index.', src.subscriptions);

  const mem = src.memory;
  m.gauge('memory_rss_bytes', 'Resident set size of the process.', mem.rssBytes);
  m.gauge('memory_heap_used_bytes', 'V8 heap in use.', mem.heapUsedBytes);
  m.gauge('memory_heap_limit_bytes', 'V8 heap size limit (set by the profile\'s Node flags).', mem.heapLimitBytes);
  if (mem.rssCeilingBytes !== null) {
    m.gauge('memory_rss_ceiling_bytes', 'RSS the firmware profile must stay under (systemd MemoryMax).', mem.rssCeilingBytes);
  }
  m.gauge('memory_budget_bytes', 'Memory budget of the broker (memory_budget, from the profile or the config).', mem.memoryBudgetBytes);
  m.gauge('pending_bytes', 'Bytes queued for readers across all connections, charged to the memory budget.', mem.pendingBytes);
  m.gauge('pending_limit_bytes', 'Cap on bytes queued for readers across all connections (max_pending_total).', mem.pendingLimitBytes);
  m.counter('publisher_pauses_total', 'Times publishers were paused because queued bytes reached the cap.', mem.publisherPauses);

  const js = src.jetstream;
  if (js !== null) {
    m.gauge('jetstream_streams', 'JetStream streams.', js.streams);
    m.gauge('jetstream_consumers', 'JetStream consumers.', js.consumers);
    m.gauge('jetstream_messages', 'Messages stored in all streams.', js.messages);
    m.gauge('jetstream_bytes', 'Bytes of the messages stored in all streams.', js.bytes);
    m.gauge('jetstream_store_bytes', 'File storage in use (counted as nats-server counts it).', js.storeBytes);
    m.gauge('jetstream_store_max_bytes', 'File storage limit (max_file_store).', js.storeMaxBytes);
    m.gauge('jetstream_memory_bytes', 'Memory storage in use.', js.memoryBytes);
    m.gauge('jetstream_memory_max_bytes', 'Memory storage limit (max_memory_store).', js.memoryMaxBytes);
    m.counter('jetstream_api_requests_total', 'JetStream API requests.', js.apiRequests);
    m.counter('jetstream_api_errors_total', 'JetStream API requests answered with an error.', js.apiErrors);
  }

  const mq = src.mqtt;
  if (mq !== null) {
    m.gauge('mqtt_sessions', 'MQTT sessions, connected or persisted.', mq.sessions);
    m.gauge('mqtt_retained_messages', 'MQTT retained messages.', mq.retained);
    m.counter('mqtt_dropped_queued_total', 'MQTT messages dropped because a session queue was full.', mq.droppedQueued);
    m.counter('mqtt_dropped_qos0_total', 'MQTT QoS 0 messages dropped for slow subscribers.', mq.droppedQos0);
  }

  if (src.leaf !== null) leafFamilies(m, src.leaf);
  return { status: 200, contentType: METRICS_CONTENT_TYPE, body: m.text() };
}

/** The process figures of MetricsSource.memory. */
export function processMemory(): { rssBytes: number; heapUsedBytes: number; heapLimitBytes: number } {
  const u = process.memoryUsage();
  return { rssBytes: u.rss, heapUsedBytes: u.heapUsed, heapLimitBytes: v8.getHeapStatistics().heap_size_limit };
}

/** MetricsSource.leaf.remotes from the leafnode views. */
export function leafRemoteMetrics(views: readonly LeafLinkView[], nowMs: number): LeafRemoteMetrics[] {
  return views.map((v) => {
    const r: LeafRemoteMetrics = {
      remote: v.url,
      connected: v.state === 'connected',
      rttMs: v.rttMs,
      connects: v.connects,
      inMsgs: v.inMsgs,
      outMsgs: v.outMsgs,
      inBytes: v.inBytes,
      outBytes: v.outBytes,
    };
    const b = v.buffer;
    if (b !== undefined) {
      r.buffer = {
        msgs: b.msgs,
        bytes: b.bytes,
        oldestAgeMs: b.msgs === 0 || b.oldestTs <= 0 ? 0 : Math.max(0, nowMs - b.oldestTs),
        droppedMsgs: b.droppedMsgs,
        droppedBytes: b.droppedBytes,
        replayed: b.replayed,
      };
    }
    return r;
  });
}
