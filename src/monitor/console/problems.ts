/**
 * What is wrong with the gateway, in sentences a field technician reads at a glance: an
 * uplink down with data piling up, a store or stream near its cap, memory near the ceiling,
 * slow readers being cut. A pure function of the snapshot, so every threshold is unit-tested.
 */
import { formatBytes, formatCount, formatDuration } from './format.js';
import type { ConsoleSnapshot, Uplink } from './snapshot.js';

/** An uplink not up for this long is a problem (a quick redial is not). */
export const UPLINK_DOWN_AFTER_MS = 10_000;
/** The JetStream store (max_file_store) or a stream (max_bytes) this full is a problem. */
export const STORE_FULL_RATIO = 0.9;
export const STREAM_FULL_RATIO = 0.9;
/** The filesystem under the store this full (SQLite then fails to grow the file). */
export const DISK_FULL_RATIO = 0.9;
/** RSS this close to the profile's ceiling. */
export const RSS_NEAR_RATIO = 0.85;
/** Bytes queued for readers this close to max_pending_total (publishers are paused at it). */
export const PENDING_NEAR_RATIO = 0.8;

function plural(n: number, one: string, many: string): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

function percent(part: number, whole: number): string {
  return `${Math.floor((part * 100) / whole)} %`;
}

function uplinkProblems(u: Uplink, recent: string, out: string[]): void {
  const b = u.buffer;
  if (u.state !== 'up' && u.sinceMs >= UPLINK_DOWN_AFTER_MS) {
    const backlog = b !== null && b.msgs > 0 ? ` with ${plural(b.msgs, 'message', 'messages')} (${formatBytes(b.bytes)}) buffered` : '';
    const what = u.state === 'connecting' ? 'is still connecting after' : 'is down for';
    out.push(`Uplink ${u.url} ${what} ${formatDuration(u.sinceMs)}${backlog}`);
  }
  if (b !== null && b.droppedMsgsRecent > 0) {
    out.push(`Uplink ${u.url} dropped ${plural(b.droppedMsgsRecent, 'buffered message', 'buffered messages')} (${formatBytes(b.droppedBytesRecent)}) in the last ${recent}: its buffer is full or they expired`);
  }
}

export function problems(s: ConsoleSnapshot): string[] {
  const out: string[] = [];
  const recent = formatDuration(s.recentSeconds * 1000);

  for (const u of s.uplinks) uplinkProblems(u, recent, out);
  if (s.liveDrops.recent > 0) {
    out.push(`${plural(s.liveDrops.recent, 'live message', 'live messages')} to uplinks dropped in the last ${recent}: the link could not keep up`);
  }

  const js = s.jetstream;
  if (js !== null) {
    if (js.storeFullAt >= 0 && js.store >= js.storeFullAt) {
      out.push(`Store is full at ${formatBytes(js.store)} (the disk file could not grow): JetStream refuses new messages`);
    } else if (js.storeMax > 0 && js.store >= js.storeMax) {
      out.push(`Store is full (${formatBytes(js.store)} of ${formatBytes(js.storeMax)}): JetStream refuses new messages`);
    } else if (js.storeMax > 0 && js.store >= js.storeMax * STORE_FULL_RATIO) {
      out.push(`Store ${percent(js.store, js.storeMax)} full (${formatBytes(js.store)} of ${formatBytes(js.storeMax)})`);
    }
    const d = js.disk;
    if (d !== null && d.size > 0 && d.size - d.free >= d.size * DISK_FULL_RATIO) {
      out.push(`Disk holding the store is ${percent(d.size - d.free, d.size)} full (${formatBytes(d.free)} free of ${formatBytes(d.size)})`);
    }
    for (const st of js.list) {
      if (st.maxBytes <= 0 || st.bytes < st.maxBytes * STREAM_FULL_RATIO) continue;
      const then = st.discard === 'new' ? 'new messages are refused at the limit' : 'the oldest messages are removed to make room';
      out.push(`Stream ${st.name} is ${percent(st.bytes, st.maxBytes)} full (${formatBytes(st.bytes)} of ${formatBytes(st.maxBytes)}): ${then}`);
    }
  }

  const mem = s.memory;
  if (mem.ceiling !== null && mem.rss >= mem.ceiling * RSS_NEAR_RATIO) {
    out.push(`RSS ${formatBytes(mem.rss)} is near the ceiling of ${formatBytes(mem.ceiling)}`);
  }
  if (mem.pendingLimit > 0 && mem.pending >= mem.pendingLimit * PENDING_NEAR_RATIO) {
    out.push(`${formatBytes(mem.pending)} queued for slow readers, near the limit of ${formatBytes(mem.pendingLimit)}: publishers get paused`);
  }
  if (mem.publisherPausesRecent > 0) {
    out.push(`Publishers were paused ${plural(mem.publisherPausesRecent, 'time', 'times')} in the last ${recent} because readers fell behind`);
  }
  if (mem.slowConsumersRecent > 0) {
    out.push(`${plural(mem.slowConsumersRecent, 'slow consumer', 'slow consumers')} cut in the last ${recent}`);
  }
  return out;
}
