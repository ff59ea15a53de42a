/**
 * Store-and-forward test helpers: a nats-server hub with JetStream and the `TELE` stream (made
 * by the real JetStream client), a nats-edge leaf whose remote buffers `tele.>` in its SQLite
 * store (restartable on the same store dir), the buffer counters of nats-edge's /leafz, and a
 * read-back of a hub stream with an ordered consumer.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { startHub, type Hub, type HubOptions } from './leaf.js';
import { monitor, startServer, type RunningServer } from './servers.js';

export const TELE_STREAM = 'TELE';
/** The stream's de-duplication window: long enough to cover every replay of a test. */
const DUPLICATE_WINDOW_NS = 2 * 60 * 1_000_000_000;

/** A hub connection that fails at once if the hub dies (a test restarts it deliberately). */
export function hubClient(hub: RunningServer): Promise<NatsConnection> {
  return connect({ servers: hub.url, reconnect: false });
}

/**
 * A hub with JetStream and, unless `stream` is false, the file-stored `TELE` stream on `tele.>`
 * with a 2 minute duplicate window. The stream lives in the hub's store dir, so it is back when
 * the hub is started again.
 */
export async function startTeleHub(opts: { stream?: boolean; hub?: HubOptions } = {}): Promise<Hub> {
  const hub = await startHub({ jetstream: true, ...opts.hub });
  if (opts.stream !== false) {
    const nc = await hubClient(hub);
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({
        name: TELE_STREAM,
        subjects: ['tele.>'],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        duplicate_window: DUPLICATE_WINDOW_NS,
      });
    } finally {
      await nc.close();
    }
  }
  return hub;
}

export interface EdgeLeafOptions {
  hubLeafPort: number;
  /** nats-edge's JetStream store dir: it holds the buffer, so a restart on it finds the queue. */
  storeDir: string;
  /** `max_bytes` of the buffer block as written in the config (default 64MB). */
  maxBytes?: string;
  /** Buffered subjects (default `tele.>`). */
  subjects?: string[];
  replayRate?: number;
  /** Adds an `mqtt { port }` listener. */
  mqttPort?: number;
}

/** The config text of a nats-edge leaf whose one remote buffers while its uplink is down. */
export function edgeLeafConfig(o: EdgeLeafOptions): string {
  const subjects = JSON.stringify(o.subjects ?? ['tele.>']);
  return [
    'server_name: edge',
    `jetstream { store_dir: ${JSON.stringify(o.storeDir)}, domain: edge }`,
    'leafnodes {',
    // A short base delay: the hub is down for seconds in these tests and comes back on its own.
    '  reconnect: "100ms"',
    '  remotes: [',
    `    { url: "nats-leaf://127.0.0.1:${o.hubLeafPort}", buffer: { subjects: ${subjects}, max_bytes: ${o.maxBytes ?? '64MB'}, replay_rate: ${o.replayRate ?? 0} } }`,
    '  ]',
    '}',
    o.mqttPort !== undefined ? `mqtt { port: ${o.mqttPort} }` : '',
  ].join('\n');
}

/** Starts nats-edge as a buffering leaf (new client and monitoring ports each time). */
export function startEdgeLeaf(o: EdgeLeafOptions): Promise<RunningServer> {
  return startServer('nats-edge', { config: edgeLeafConfig(o) });
}

/** The `buffer` member of one `edge_remotes` entry of nats-edge's /leafz. */
export interface EdgeBuffer {
  msgs: number;
  bytes: number;
  dropped_msgs: number;
  dropped_bytes: number;
  appended: number;
  replaying: boolean;
  replayed: number;
}

export interface EdgeRemote {
  url: string;
  state: string;
  connects: number;
  last_error: string;
  buffer?: EdgeBuffer;
}

/** The first remote's buffer counters from nats-edge's /leafz. */
export async function edgeBuffer(edge: RunningServer): Promise<EdgeBuffer & { state: string }> {
  const z = await monitor<{ edge_remotes?: EdgeRemote[] }>(edge, '/leafz');
  const r = z.edge_remotes?.[0];
  if (r?.buffer === undefined) throw new Error(`/leafz has no edge_remotes[0].buffer: ${JSON.stringify(z)}`);
  return { ...r.buffer, state: r.state };
}

/**
 * Polls `read` until `done` holds; throws with the last value and `what` at the deadline.
 * Monitoring and stream state have no event to await: a short backoff loop watches them settle.
 */
export async function waitFor<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number, what: string, pollMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await read();
      if (done(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not reached within ${timeoutMs} ms; last seen ${JSON.stringify(last)}${lastErr !== undefined ? ` (last error: ${String(lastErr)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, pollMs);
  }
}

/** Messages in a hub stream now. */
export async function streamMessages(nc: NatsConnection, stream = TELE_STREAM): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(stream)).state.messages;
}

/** One message read back from a stream. */
export interface StoredMsg {
  seq: number;
  subject: string;
  data: Uint8Array;
  msgId: string;
}

/**
 * Reads the first `n` messages of a stream with an ordered consumer (in stream order), then
 * checks nothing follows them within the stream's current state.
 */
export async function readStream(nc: NatsConnection, n: number, stream = TELE_STREAM, timeoutMs = 30000): Promise<StoredMsg[]> {
  const js = jetstream(nc);
  const c = await js.consumers.get(stream);
  const out: StoredMsg[] = [];
  if (n === 0) return out;
  const iter = await c.consume({ max_messages: 1000 });
  const timer = setTimeout(() => iter.stop(), timeoutMs);
  try {
    for await (const m of iter) {
      out.push({ seq: m.seq, subject: m.subject, data: m.data, msgId: m.headers?.get('Nats-Msg-Id') ?? '' });
      if (out.length >= n) break;
    }
  } finally {
    clearTimeout(timer);
    await iter.close().catch(() => undefined);
  }
  if (out.length < n) throw new Error(`ordered consumer on ${stream}: ${out.length} of ${n} messages within ${timeoutMs} ms`);
  return out;
}

/** The decimal index each payload carries. */
export function indexes(msgs: readonly StoredMsg[]): number[] {
  return msgs.map((m) => Number(Buffer.from(m.data).toString('latin1')));
}

/**
 * Publishes `count` messages on `subject` with payloads from..from+count-1 (decimal), flushing
 * every `flushEvery`; resolves to the last index a flush confirmed. Stops (without throwing)
 * when the connection closes: nats.js leaves a flush pending forever when its server dies.
 */
export async function publishIndexes(
  nc: NatsConnection,
  subject: string,
  from: number,
  count: number,
  flushEvery = 500,
  onFlushed?: (lastIndex: number) => void,
): Promise<number> {
  const closed = nc.closed().then(() => false);
  let flushed = -1;
  for (let i = from; i < from + count; i++) {
    if (nc.isClosed()) break;
    nc.publish(subject, String(i));
    if ((i - from + 1) % flushEvery === 0 || i === from + count - 1) {
      const ok = await Promise.race([nc.flush().then(() => true, () => false), closed]);
      if (!ok) break;
      flushed = i;
      onFlushed?.(i);
    }
  }
  return flushed;
}
