/**
 * The console's picture of the server at one moment: exactly the fields the page shows, each
 * copied by name from the server's counters and views. Nothing here is spread from an options
 * object or a config block, so a password, token, seed or creds path has no way into it; URLs
 * are the views' (userinfo already removed) and error texts are scrubbed once more.
 */
import type { LeafLinkView, ReplayProgress } from '../../leaf/types.js';
import { withoutUserinfo } from '../leafz.js';
import type { MetricsSource } from '../metrics.js';
import type { ConnectionView } from '../source.js';
import type { RateSeries, RecentGrowth } from './rates.js';

export type UplinkState = 'up' | 'down' | 'connecting';
export type TalkerKind = 'nats' | 'websocket' | 'mqtt' | 'leaf';

/** Top talkers listed. */
export const TALKERS = 5;

export interface Talker {
  kind: TalkerKind;
  /** Client name, MQTT client id, or the hub's name for a leaf link ('' when none given). */
  name: string;
  /** ip:port of the peer. */
  address: string;
  inMsgs: number;
  outMsgs: number;
  inBytes: number;
  outBytes: number;
}

export interface ConsoleStream {
  name: string;
  storage: 'file' | 'memory';
  messages: number;
  bytes: number;
  /** max_bytes; -1 = unlimited. */
  maxBytes: number;
  /** discard policy: 'new' refuses publishes at the limit, 'old' removes the oldest. */
  discard: 'old' | 'new';
  consumers: number;
}

export interface UplinkBuffer {
  msgs: number;
  bytes: number;
  /** Age of the oldest buffered message, ms; -1 when empty. */
  oldestAgeMs: number;
  /** Dropped (max_bytes / max_msgs / max_age) since start, and in the recent window. */
  droppedMsgs: number;
  droppedBytes: number;
  droppedMsgsRecent: number;
  droppedBytesRecent: number;
  replaying: boolean;
  /** Messages replayed since start. */
  replayed: number;
  progress: ReplayProgress | null;
}

export interface Uplink {
  /** The URL in use or tried, without userinfo. */
  url: string;
  /** The hub's server name once known, else ''. */
  hub: string;
  state: UplinkState;
  /** ms since the link last came up or went down. */
  sinceMs: number;
  /** Last PING round trip, ms; -1 unknown. */
  rttMs: number;
  /** Why the last dial or link failed ('' when none). */
  lastError: string;
  connects: number;
  inMsgs: number;
  outMsgs: number;
  buffer: UplinkBuffer | null;
}

export interface ConsoleSnapshot {
  /** When it was taken, ms since the epoch. */
  at: number;
  server: { name: string; id: string; version: string; edgeVersion: string; profile: string | null; uptimeSeconds: number };
  traffic: {
    totals: { inMsgs: number; outMsgs: number; inBytes: number; outBytes: number };
    /** Rates of the last second. */
    rate: { inMsgs: number; outMsgs: number; inBytes: number; outBytes: number };
    /** Per-second rates, oldest first (all five minutes in a stream's first event, the last few after). */
    history: RateSeries;
  };
  connections: { nats: number; websocket: number; mqtt: number; leaf: number; totalAccepted: number };
  talkers: Talker[];
  memory: {
    rss: number;
    heapUsed: number;
    heapLimit: number;
    /** memory_budget (profile or configured). */
    budget: number;
    /** The profile's RSS ceiling; null without a profile. */
    ceiling: number | null;
    /** Bytes queued for readers, and max_pending_total. */
    pending: number;
    pendingLimit: number;
    publisherPauses: number;
    publisherPausesRecent: number;
    slowConsumers: number;
    slowConsumersRecent: number;
  };
  jetstream: null | {
    streams: number;
    consumers: number;
    messages: number;
    /** File store in use and max_file_store (-1 = unlimited). */
    store: number;
    storeMax: number;
    /** Usage at which the database file was found full; -1 = never. */
    storeFullAt: number;
    /** The filesystem holding the store (null when it cannot be read): the SD card fills before a 1 TiB default cap does. */
    disk: DiskUsage | null;
    memory: number;
    memoryMax: number;
    /** The largest streams first (at most STREAMS_LISTED). */
    list: ConsoleStream[];
  };
  mqtt: null | { clients: number; sessions: number; retained: number };
  /** Configured leafnode remotes (empty: none). */
  uplinks: Uplink[];
  /** Live messages dropped on congested uplinks, since start and in the recent window. */
  liveDrops: { total: number; recent: number };
  /** Length of the "recent" window, seconds. */
  recentSeconds: number;
  /** Problems in words (see problems.ts). */
  problems: string[];
}

/** What the snapshot reads from the running server. */
/** Bytes free (to an unprivileged writer) and in all on a filesystem. */
export interface DiskUsage {
  free: number;
  size: number;
}

export interface SnapshotInputs {
  metrics: MetricsSource;
  connections: Iterable<ConnectionView>;
  leafLinks: readonly LeafLinkView[];
  streams: ConsoleStream[];
  storeFullAt: number;
  disk: DiskUsage | null;
  history: RateSeries;
  recent: RecentGrowth;
  recentSeconds: number;
}

/** The growth counters the snapshot asks RecentGrowth about, from the same inputs. */
export function growthCounters(m: MetricsSource, links: readonly LeafLinkView[]): Map<string, number> {
  const out = new Map<string, number>();
  out.set('slow', m.slowConsumers);
  out.set('pauses', m.memory.publisherPauses);
  out.set('live', m.leaf?.droppedLive ?? 0);
  links.forEach((l, i) => {
    if (l.buffer === undefined) return;
    out.set(`drop-msgs:${i}`, l.buffer.droppedMsgs);
    out.set(`drop-bytes:${i}`, l.buffer.droppedBytes);
  });
  return out;
}

/**
 * The console state of a link: 'connecting' only while the very first dial is on its way;
 * once it has been up or a dial failed, anything but up is 'down' (the redials in between
 * would otherwise make it flicker).
 */
export function uplinkState(v: LeafLinkView): UplinkState {
  if (v.state === 'connected') return 'up';
  return v.connects === 0 && (v.failedDials ?? 0) === 0 ? 'connecting' : 'down';
}

/** `scheme://user:pass@` anywhere in a text. */
const USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/?#@]*@/g;

function scrub(text: string): string {
  return text.includes('@') ? text.replace(USERINFO, '$1') : text;
}

function address(ip: string, port: number): string {
  if (ip === '') return '';
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Keeps the TALKERS busiest in `top` (sorted, busiest first) without sorting everything. */
function offer(top: Talker[], t: Talker): void {
  const load = t.inMsgs + t.outMsgs;
  if (top.length === TALKERS && load <= top[TALKERS - 1]!.inMsgs + top[TALKERS - 1]!.outMsgs) return;
  let i = top.length;
  while (i > 0 && top[i - 1]!.inMsgs + top[i - 1]!.outMsgs < load) i--;
  top.splice(i, 0, t);
  if (top.length > TALKERS) top.pop();
}

function talkers(conns: Iterable<ConnectionView>, links: readonly LeafLinkView[]): Talker[] {
  const top: Talker[] = [];
  for (const c of conns) {
    if (top.length === TALKERS && c.inMsgs + c.outMsgs <= top[TALKERS - 1]!.inMsgs + top[TALKERS - 1]!.outMsgs) continue;
    offer(top, {
      kind: c.type,
      name: c.type === 'mqtt' ? (c.mqttClient ?? c.name) : c.name,
      address: address(c.ip, c.port),
      inMsgs: c.inMsgs,
      outMsgs: c.outMsgs,
      inBytes: c.inBytes,
      outBytes: c.outBytes,
    });
  }
  for (const l of links) {
    if (l.state !== 'connected') continue;
    offer(top, {
      kind: 'leaf',
      name: l.name !== '' ? l.name : withoutUserinfo(l.url),
      address: address(l.ip, l.port),
      inMsgs: l.inMsgs,
      outMsgs: l.outMsgs,
      inBytes: l.inBytes,
      outBytes: l.outBytes,
    });
  }
  return top;
}

function uplink(v: LeafLinkView, i: number, now: number, recent: RecentGrowth): Uplink {
  const b = v.buffer;
  return {
    url: withoutUserinfo(v.url),
    hub: v.name,
    state: uplinkState(v),
    sinceMs: Math.max(0, now - (v.upDownSince ?? v.since).getTime()),
    rttMs: v.state === 'connected' ? v.rttMs : -1,
    lastError: scrub(v.lastError),
    connects: v.connects,
    inMsgs: v.inMsgs,
    outMsgs: v.outMsgs,
    buffer:
      b === undefined
        ? null
        : {
            msgs: b.msgs,
            bytes: b.bytes,
            oldestAgeMs: b.msgs === 0 || b.oldestTs <= 0 ? -1 : Math.max(0, now - b.oldestTs),
            droppedMsgs: b.droppedMsgs,
            droppedBytes: b.droppedBytes,
            droppedMsgsRecent: recent.growth(`drop-msgs:${i}`, b.droppedMsgs),
            droppedBytesRecent: recent.growth(`drop-bytes:${i}`, b.droppedBytes),
            replaying: b.replaying,
            replayed: b.replayed,
            progress:
              b.progress === undefined || b.progress === null
                ? null
                : { done: b.progress.done, total: b.progress.total, ratePerSec: Math.round(b.progress.ratePerSec), secondsLeft: b.progress.secondsLeft },
          },
  };
}

/** The snapshot without its problems (problems.ts reads it to say them). */
export function buildSnapshot(x: SnapshotInputs, now: number): ConsoleSnapshot {
  const m = x.metrics;
  const h = x.history;
  const last = (a: number[]): number => (a.length > 0 ? a[a.length - 1]! : 0);
  const js = m.jetstream;
  return {
    at: now,
    server: {
      name: m.info.serverName,
      id: m.info.serverId,
      version: m.info.version,
      edgeVersion: m.info.edgeVersion,
      profile: m.info.profile,
      uptimeSeconds: Math.floor(m.uptimeSeconds),
    },
    traffic: {
      totals: { inMsgs: m.inMsgs, outMsgs: m.outMsgs, inBytes: m.inBytes, outBytes: m.outBytes },
      rate: { inMsgs: last(h.inMsgs), outMsgs: last(h.outMsgs), inBytes: last(h.inBytes), outBytes: last(h.outBytes) },
      history: h,
    },
    connections: {
      nats: m.connections.client,
      websocket: m.connections.websocket,
      mqtt: m.connections.mqtt,
      leaf: m.connections.leaf,
      totalAccepted: m.totalConnections,
    },
    talkers: talkers(x.connections, x.leafLinks),
    memory: {
      rss: m.memory.rssBytes,
      heapUsed: m.memory.heapUsedBytes,
      heapLimit: m.memory.heapLimitBytes,
      budget: m.memory.memoryBudgetBytes,
      ceiling: m.memory.rssCeilingBytes !== null && m.memory.rssCeilingBytes > 0 ? m.memory.rssCeilingBytes : null,
      pending: m.memory.pendingBytes,
      pendingLimit: m.memory.pendingLimitBytes,
      publisherPauses: m.memory.publisherPauses,
      publisherPausesRecent: x.recent.growth('pauses', m.memory.publisherPauses),
      slowConsumers: m.slowConsumers,
      slowConsumersRecent: x.recent.growth('slow', m.slowConsumers),
    },
    jetstream:
      js === null
        ? null
        : {
            streams: js.streams,
            consumers: js.consumers,
            messages: js.messages,
            store: js.storeBytes,
            storeMax: js.storeMaxBytes > 0 ? js.storeMaxBytes : -1,
            storeFullAt: x.storeFullAt,
            disk: x.disk,
            memory: js.memoryBytes,
            memoryMax: js.memoryMaxBytes > 0 ? js.memoryMaxBytes : -1,
            list: x.streams,
          },
    mqtt: m.mqtt === null ? null : { clients: m.connections.mqtt, sessions: m.mqtt.sessions, retained: m.mqtt.retained },
    uplinks: x.leafLinks.map((v, i) => uplink(v, i, now, x.recent)),
    liveDrops: { total: m.leaf?.droppedLive ?? 0, recent: x.recent.growth('live', m.leaf?.droppedLive ?? 0) },
    recentSeconds: x.recentSeconds,
    problems: [],
  };
}
