/**
 * Pull requests (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`, jetstream-api.md §8): the
 * request body, the waiting request, and the header-only status replies, byte for byte as
 * nats-server 2.9.10 writes them.
 */

export interface PullOptions {
  /** Messages wanted; at least 1. */
  batch: number;
  /** Request lifetime in ns; 0 = until served. Negative: already expired. */
  expiresNs: number;
  noWait: boolean;
  /** Byte budget; 0 = none. */
  maxBytes: number;
  /** Idle heartbeat in ns; 0 = none. */
  heartbeatNs: number;
}

/** A body nats-server answers with `400 Bad Request - <text>`. */
export interface PullBadRequest {
  bad: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intField(o: Record<string, unknown>, k: string): number | string {
  const v = o[k];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) return `json: cannot unmarshal ${typeof v === 'string' ? 'string' : 'value'} into field ${k}`;
  return v;
}

/**
 * Read a pull request body: empty = batch 1 with no expiry; `{...}` = JSON; anything else is a
 * batch count, and what does not read as one counts as batch 1 (as nats-server does).
 */
export function parsePullRequest(data: Uint8Array): PullOptions | PullBadRequest {
  const opts: PullOptions = { batch: 1, expiresNs: 0, noWait: false, maxBytes: 0, heartbeatNs: 0 };
  let i = 0;
  while (i < data.length && (data[i] === 0x20 || data[i] === 0x09 || data[i] === 0x0d || data[i] === 0x0a)) i++;
  if (i === data.length) return opts;
  const text = Buffer.from(data.buffer, data.byteOffset + i, data.byteLength - i).toString('utf8');
  if (data[i] !== 0x7b) {
    const n = Number.parseInt(text, 10);
    if (Number.isInteger(n) && n > 0) opts.batch = n;
    return opts;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { bad: err instanceof Error ? err.message : 'invalid JSON' };
  }
  if (!isObj(v)) return { bad: 'invalid JSON' };
  const batch = intField(v, 'batch');
  const expires = intField(v, 'expires');
  const maxBytes = intField(v, 'max_bytes');
  const hb = intField(v, 'idle_heartbeat');
  for (const f of [batch, expires, maxBytes, hb]) if (typeof f === 'string') return { bad: f };
  const noWait = v['no_wait'];
  if (noWait !== undefined && noWait !== null && typeof noWait !== 'boolean') return { bad: 'json: cannot unmarshal value into field no_wait' };
  opts.batch = (batch as number) > 0 ? (batch as number) : 1;
  opts.expiresNs = expires as number;
  opts.maxBytes = (maxBytes as number) > 0 ? (maxBytes as number) : 0;
  opts.heartbeatNs = (hb as number) > 0 ? (hb as number) : 0;
  opts.noWait = noWait === true;
  if (opts.heartbeatNs > 0 && (opts.expiresNs <= 0 || opts.heartbeatNs * 2 > opts.expiresNs)) {
    return { bad: 'heartbeat value too large' };
  }
  return opts;
}

/** One queued pull request. Times in ms. */
export interface WaitingRequest {
  readonly reply: string;
  /** Messages still wanted. */
  batch: number;
  /** Bytes still allowed; meaningful only when `hasMaxBytes`. */
  bytesLeft: number;
  readonly hasMaxBytes: boolean;
  /** 0 = never expires. */
  readonly expiresAt: number;
  readonly noWait: boolean;
  readonly hbMs: number;
  /** Next heartbeat due; 0 = none. */
  hbAt: number;
  /** Messages already sent to it. */
  delivered: number;
  /** Pump pass in which its reply subject was last seen to have interest. */
  checkedPass: number;
}

export function newWaitingRequest(reply: string, o: PullOptions, nowMs: number): WaitingRequest {
  const hbMs = o.heartbeatNs > 0 ? Math.max(1, Math.floor(o.heartbeatNs / 1e6)) : 0;
  let expiresAt = 0;
  if (o.expiresNs < 0) expiresAt = nowMs;
  else if (o.expiresNs > 0) expiresAt = nowMs + Math.max(1, Math.floor(o.expiresNs / 1e6));
  return {
    reply,
    batch: o.batch,
    bytesLeft: o.maxBytes,
    hasMaxBytes: o.maxBytes > 0,
    expiresAt,
    noWait: o.noWait,
    hbMs,
    hbAt: hbMs > 0 ? nowMs + hbMs : 0,
    delivered: 0,
    checkedPass: -1,
  };
}

// ---- status replies --------------------------------------------------------------------------

function status(line: string): Buffer {
  return Buffer.from(`NATS/1.0 ${line}\r\n\r\n`, 'latin1');
}

function withPending(line: string, msgs: number, bytes: number): Buffer {
  return Buffer.from(`NATS/1.0 ${line}\r\nNats-Pending-Messages: ${msgs}\r\nNats-Pending-Bytes: ${bytes}\r\n\r\n`, 'latin1');
}

export const STATUS_NO_MESSAGES = status('404 No Messages');
export const STATUS_CONSUMER_DELETED = status('409 Consumer Deleted');
export const STATUS_PUSH_BASED = status('409 Consumer is push based');
export const STATUS_MAX_WAITING = status('409 Exceeded MaxWaiting');
export const STATUS_FLOW_CONTROL = status('100 FlowControl Request');

export function statusRequestTimeout(msgs: number, bytes: number): Buffer {
  return withPending('408 Request Timeout', msgs, bytes);
}

export function statusSizeExceeded(msgs: number, bytes: number): Buffer {
  return withPending('409 Message Size Exceeds MaxBytes', msgs, bytes);
}

export function statusBatchCompleted(msgs: number, bytes: number): Buffer {
  return withPending('409 Batch Completed', msgs, bytes);
}

export function statusBadRequest(text: string): Buffer {
  return status(`400 Bad Request - ${text}`);
}

export function statusExceededBatch(max: number): Buffer {
  return status(`409 Exceeded MaxRequestBatch of ${max}`);
}

export function statusExceededExpires(maxNs: number): Buffer {
  return status(`409 Exceeded MaxRequestExpires of ${formatGoDuration(maxNs)}`);
}

export function statusExceededMaxBytes(max: number): Buffer {
  return status(`409 Exceeded MaxRequestMaxBytes of ${max}`);
}

/** `100 Idle Heartbeat`; push consumers add the flow control subject they wait on. */
export function statusHeartbeat(lastConsumer: number, lastStream: number, stalled = ''): Buffer {
  return Buffer.from(
    `NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: ${lastConsumer}\r\nNats-Last-Stream: ${lastStream}\r\n` +
      (stalled === '' ? '' : `Nats-Consumer-Stalled: ${stalled}\r\n`) +
      '\r\n',
    'latin1',
  );
}

function trimFraction(n: number, digits: number): string {
  let s = n.toFixed(digits);
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s;
}

/** Go's time.Duration.String(): `5s`, `1m30s`, `1h0m0s`, `1.5s`, `500ms`, `0s`. */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let u = Math.abs(ns);
  let out: string;
  if (u < 1e3) out = `${u}ns`;
  else if (u < 1e6) out = `${trimFraction(u / 1e3, 3)}µs`;
  else if (u < 1e9) out = `${trimFraction(u / 1e6, 6)}ms`;
  else {
    const h = Math.floor(u / 3600e9);
    u -= h * 3600e9;
    const m = Math.floor(u / 60e9);
    u -= m * 60e9;
    const s = trimFraction(u / 1e9, 9);
    out = h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
  }
  return neg ? '-' + out : out;
}
