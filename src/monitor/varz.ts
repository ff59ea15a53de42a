/**
 * /varz: server identity, configuration and counters in nats-server 2.9.10's field order and
 * units (durations in nanoseconds, timeouts in seconds, sizes in bytes).
 */
import os from 'node:os';
import type { ServerOptions } from '../config/options.js';
import { goUptime, rfc3339Nano } from './format.js';
import type { MonitorSource } from './source.js';

/**
 * Lets a later component fill its part of /varz (jetstream stats, mqtt and leaf blocks,
 * leafnodes count) on the object about to be sent. Existing keys keep their position when
 * overwritten; new keys go at the end.
 */
export type VarzExtension = (v: Record<string, unknown>) => void;

const NS_PER_MS = 1_000_000;
/** nats-server's default auth and TLS handshake timeouts, seconds. */
const DEFAULT_TIMEOUT_S = 2;
/** Below this interval /varz reports the previous CPU figure instead of a noisy short sample. */
const MIN_CPU_SAMPLE_MS = 500;

/**
 * nats-server reports the Go runtime here; monitoring tools only display it, so nats-edge
 * names its runtime the same way: "node20.11.1" beside Go's "go1.19.8".
 */
export const RUNTIME_VERSION = `node${process.versions.node}`;

function cores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** Process CPU percent (100 = one core busy) between successive samples. */
export class CpuSampler {
  private lastWall = 0;
  private lastCpu = 0;
  private pcpu = 0;

  sample(): number {
    const wall = performance.timeOrigin + performance.now();
    const usage = process.cpuUsage();
    const cpu = (usage.user + usage.system) / 1000;
    if (this.lastWall === 0) {
      // First request: the average since the process started.
      const upMs = process.uptime() * 1000;
      this.pcpu = upMs > 0 ? (cpu / upMs) * 100 : 0;
    } else if (wall - this.lastWall >= MIN_CPU_SAMPLE_MS) {
      this.pcpu = ((cpu - this.lastCpu) / (wall - this.lastWall)) * 100;
    } else {
      return this.pcpu;
    }
    this.lastWall = wall;
    this.lastCpu = cpu;
    this.pcpu = Math.max(0, Math.round(this.pcpu * 100) / 100);
    return this.pcpu;
  }
}

function authRequired(o: ServerOptions): boolean {
  const a = o.authorization;
  if (a === undefined) return false;
  return a.token !== undefined || a.user !== undefined || (a.users !== undefined && a.users.length > 0);
}

function jetstreamVarz(o: ServerOptions): Record<string, unknown> {
  const js = o.jetstream;
  if (js === undefined || !js.enabled) return {};
  return {
    config: {
      max_memory: js.maxMemoryStore,
      max_storage: js.maxFileStore,
      store_dir: js.storeDir || undefined,
      domain: js.domain || undefined,
    },
    // The JetStream component overwrites these through a VarzExtension.
    stats: {
      memory: 0,
      storage: 0,
      reserved_memory: 0,
      reserved_storage: 0,
      accounts: 1,
      ha_assets: 0,
      api: { total: 0, errors: 0 },
    },
  };
}

function count(items: Iterable<unknown>): number {
  let n = 0;
  for (const _ of items) n++;
  return n;
}

/** Builds /varz bodies; keeps the CPU sampling state between requests. */
export class VarzBuilder {
  readonly extensions: VarzExtension[];
  private readonly cpu = new CpuSampler();

  constructor(
    private readonly source: MonitorSource,
    /** Requests per endpoint path (as registered, without the base path). */
    private readonly requestStats: () => ReadonlyMap<string, number>,
    extensions: readonly VarzExtension[] = [],
  ) {
    this.extensions = [...extensions];
  }

  build(now: Date = new Date()): Record<string, unknown> {
    const s = this.source;
    const o = s.options();
    const st = s.stats();
    const auth = authRequired(o);
    const tlsRequired = o.tls !== undefined && !o.allowNonTls;
    const n = cores();
    const reqStats: Record<string, number> = {};
    for (const [path, hits] of [...this.requestStats()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      reqStats[path] = hits;
    }
    const v: Record<string, unknown> = {
      server_id: s.serverId,
      server_name: s.serverName,
      version: s.version,
      proto: 1,
      go: RUNTIME_VERSION,
      host: o.host,
      port: s.clientPort(),
      auth_required: auth || undefined,
      tls_required: tlsRequired || undefined,
      tls_verify: o.tls?.verify || undefined,
      max_connections: o.maxConnections,
      max_subscriptions: o.maxSubscriptions > 0 ? o.maxSubscriptions : undefined,
      ping_interval: o.pingIntervalMs * NS_PER_MS,
      ping_max: o.pingMax,
      http_host: o.httpHost,
      http_port: s.httpPort(),
      http_base_path: o.httpBasePath,
      https_port: 0,
      auth_timeout: o.authorization !== undefined ? o.authorization.timeoutMs / 1000 : DEFAULT_TIMEOUT_S,
      max_control_line: o.maxControlLine,
      max_payload: o.maxPayload,
      max_pending: o.maxPending,
      cluster: {},
      gateway: {},
      leaf: {},
      mqtt: {},
      websocket: {},
      jetstream: jetstreamVarz(o),
      tls_timeout: o.tls !== undefined ? o.tls.timeoutMs / 1000 : DEFAULT_TIMEOUT_S,
      write_deadline: o.writeDeadlineMs * NS_PER_MS,
      start: rfc3339Nano(s.start),
      now: rfc3339Nano(now),
      uptime: goUptime(now.getTime() - s.start.getTime()),
      mem: process.memoryUsage.rss(),
      cores: n,
      gomaxprocs: n,
      cpu: this.cpu.sample(),
      connections: count(s.openConnections()),
      total_connections: st.totalConnections,
      routes: 0,
      remotes: 0,
      leafnodes: 0,
      in_msgs: st.inMsgs,
      out_msgs: st.outMsgs,
      in_bytes: st.inBytes,
      out_bytes: st.outBytes,
      slow_consumers: st.slowConsumers,
      subscriptions: s.subjectIndex().count,
      http_req_stats: reqStats,
      config_load_time: rfc3339Nano(s.configLoadTime),
      tags: o.serverTags.length > 0 ? [...o.serverTags] : undefined,
      system_account: '$SYS',
      edge: {
        profile: o.profile?.name ?? null,
        memory_budget: o.memoryBudget,
        pending_bytes: st.pendingBytes,
        max_pending_total: st.pendingLimit,
        publisher_pauses: st.publisherPauses,
      },
    };
    for (const extend of this.extensions) extend(v);
    return v;
  }
}
