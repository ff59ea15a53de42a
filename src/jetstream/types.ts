/**
 * The seams inside JetStream: between the API dispatcher and its handlers, between a stream
 * and its consumers, and between JetStream and the server it runs in. Streams (stream*.ts,
 * store/) and consumers (consumer*.ts) are written against these interfaces only.
 */
import type { Database } from 'better-sqlite3';
import type { JetStreamOptions, ProfileLimits } from '../config/options.js';
import type { Router } from '../core/router.js';
import type { Logger } from '../log.js';

// ---- wire types (JSON as nats-server writes it; durations in ns, times RFC 3339) ----------

export type RetentionPolicy = 'limits' | 'interest' | 'workqueue';
export type DiscardPolicy = 'old' | 'new';
export type StorageType = 'file' | 'memory';

export interface ExternalStream {
  api: string;
  deliver?: string;
}

export interface StreamSource {
  name: string;
  opt_start_seq?: number;
  opt_start_time?: string;
  filter_subject?: string;
  external?: ExternalStream;
}

/** StreamConfig with nats-server's defaults filled in (jetstream-api.md §4.1). */
export interface StreamConfig {
  name: string;
  description?: string;
  subjects?: string[];
  retention: RetentionPolicy;
  max_consumers: number;
  max_msgs: number;
  max_bytes: number;
  /** ns */
  max_age: number;
  max_msgs_per_subject: number;
  max_msg_size: number;
  discard: DiscardPolicy;
  discard_new_per_subject?: boolean;
  storage: StorageType;
  num_replicas: number;
  no_ack?: boolean;
  /** ns */
  duplicate_window: number;
  mirror?: StreamSource;
  sources?: StreamSource[];
  sealed: boolean;
  deny_delete: boolean;
  deny_purge: boolean;
  allow_rollup_hdrs: boolean;
  allow_direct: boolean;
  mirror_direct: boolean;
  compression?: 'none' | 's2';
  first_seq?: number;
  metadata?: Record<string, string>;
  consumer_limits?: { inactive_threshold?: number; max_ack_pending?: number };
  /** Echoed as given (a single server places every stream here). */
  placement?: { cluster?: string; tags?: string[] };
}

export interface StreamState {
  messages: number;
  bytes: number;
  first_seq: number;
  first_ts: string;
  last_seq: number;
  last_ts: string;
  num_subjects?: number;
  num_deleted?: number;
  consumer_count: number;
}

export type DeliverPolicy = 'all' | 'last' | 'new' | 'by_start_sequence' | 'by_start_time' | 'last_per_subject';
export type AckPolicy = 'none' | 'all' | 'explicit';
export type ReplayPolicy = 'instant' | 'original';

/** ConsumerConfig with defaults filled in (jetstream-api.md §7.2). Durations in ns. */
export interface ConsumerConfig {
  durable_name?: string;
  name?: string;
  description?: string;
  deliver_policy: DeliverPolicy;
  opt_start_seq?: number;
  opt_start_time?: string;
  ack_policy: AckPolicy;
  ack_wait?: number;
  max_deliver: number;
  backoff?: number[];
  filter_subject?: string;
  filter_subjects?: string[];
  replay_policy: ReplayPolicy;
  rate_limit_bps?: number;
  sample_freq?: string;
  max_waiting?: number;
  max_ack_pending?: number;
  flow_control?: boolean;
  idle_heartbeat?: number;
  headers_only?: boolean;
  max_batch?: number;
  max_expires?: number;
  max_bytes?: number;
  deliver_subject?: string;
  deliver_group?: string;
  inactive_threshold?: number;
  num_replicas: number;
  mem_storage?: boolean;
  metadata?: Record<string, string>;
}

/** nats-server's API error object: HTTP-like code, stable err_code, text. */
export interface ApiError {
  code: number;
  err_code: number;
  description: string;
}

// ---- stored messages -------------------------------------------------------------------

/**
 * A message as a stream holds it: header block and payload in one owned Buffer (never a view
 * of a socket chunk), so a delivery hands it to the router without concatenating.
 */
export interface StoredMsg {
  readonly seq: number;
  readonly subject: string;
  /** Length of the `NATS/1.0` header block at the start of `raw`; 0 when the message has none. */
  readonly hdrLen: number;
  /** Header block followed by payload. */
  readonly raw: Buffer;
  /** Store time in microseconds since the Unix epoch (exact in a JS number until 2255). */
  readonly tsUs: number;
}

// ---- stream <-> consumer ------------------------------------------------------------------

/** What a consumer may read and tell of its stream. Reads see committed messages only. */
export interface StreamView {
  readonly name: string;
  config(): StreamConfig;
  /** Committed first/last sequence and counts (no consumer_count). */
  firstSeq(): number;
  lastSeq(): number;
  /** Up to `max` committed messages with seq >= from that match any of `filters` ([] = all), in seq order. */
  fetch(from: number, filters: readonly string[], max: number): StoredMsg[];
  /** How many committed messages with seq >= from match `filters` (num_pending). */
  countFrom(from: number, filters: readonly string[]): number;
  /** The newest seq of each distinct subject matching `filters`, ascending (deliver last_per_subject). */
  lastPerSubject(filters: readonly string[]): number[];
  /** The newest committed seq matching `filters`, 0 when none (deliver last). */
  lastMatching(filters: readonly string[]): number;
  /** First committed seq stored at or after `tsUs`; lastSeq()+1 when none (deliver by_start_time). */
  seqAtOrAfter(tsUs: number): number;
  getMsg(seq: number): StoredMsg | null;
  /**
   * Interest and workqueue retention: `consumer` acknowledged `seq`; the stream removes the
   * message once no consumer still needs it (ConsumerHandle.needs).
   */
  acked(consumer: ConsumerHandle, seq: number): void;
}

/** What a stream needs of each of its consumers. */
export interface ConsumerHandle {
  readonly name: string;
  /** Messages up to `lastSeq` were committed: deliver to waiting pulls / push subscribers. */
  onAppended(lastSeq: number): void;
  /** Messages were removed (purge, delete, limits, rollup); pending and ack state adjust. */
  onRemoved(seqs: 'all-below' | 'some', firstSeq: number): void;
  /** Interest/workqueue retention: does this consumer still need `seq` (matches its filter, not acked)? */
  needs(seq: number, subject: string): boolean;
  /** The consumer ends: deleted, its stream deleted, or server shutdown (state already persisted). */
  stop(reason: 'deleted' | 'stream-deleted' | 'shutdown'): void;
  /** The ConsumerInfo JSON object (without `type`), as CONSUMER.INFO answers it. */
  info(): Record<string, unknown>;
  /** Durable consumers are persisted; ephemerals are gone after a restart. */
  readonly durable: boolean;
}

/** A stream as JetStream's parts see it. */
export interface StreamHandle extends StreamView {
  readonly consumers: Map<string, ConsumerHandle>;
  /** The StreamInfo JSON object (without `type`). */
  info(opts?: { subjectsFilter?: string; deletedDetails?: boolean }): Record<string, unknown>;
  /** Storage this stream lives in (file streams in the file database, memory streams in an in-memory one). */
  readonly storage: StorageType;
}

// ---- API dispatch ------------------------------------------------------------------------

/** One `$JS.API.*` request. */
export interface ApiRequest {
  /** Tokens after `$JS.API.` (or `$JS.<domain>.API.`), e.g. ['STREAM', 'CREATE', 'ORDERS']. */
  readonly tokens: readonly string[];
  readonly subject: string;
  /** Where the response goes ('' = nobody asked; nats-server then answers nothing). */
  readonly reply: string;
  /** Request body (a copy, safe to keep). */
  readonly data: Buffer;
  readonly hdr: Buffer | null;
}

/** Handlers answer through `respond`; a handler may answer later (async), or never (as nats-server does for some requests). */
export type ApiHandler = (req: ApiRequest) => void;

export interface ApiRouter {
  /**
   * Register the handler for requests whose first tokens are `prefix` (e.g. ['CONSUMER', 'CREATE']).
   * The longest registered prefix wins.
   */
  register(prefix: readonly string[], handler: ApiHandler): void;
  /** Send a JSON response `{type: io.nats.jetstream.api.v1.<type>, ...body}` (type omitted when null). */
  respond(reply: string, type: string | null, body: Record<string, unknown>): void;
  /**
   * Send an error response of the given type; counts in api.errors. `extra` fields follow the
   * error object (nats-server keeps e.g. `"purged":0` or the paging fields in some error responses).
   */
  respondError(reply: string, type: string, error: ApiError, extra?: Record<string, unknown>): void;
}

// ---- the JetStream runtime the parts share -------------------------------------------------

export interface JetStreamRuntime {
  readonly router: Router;
  readonly log: Logger;
  readonly options: JetStreamOptions;
  readonly profile: ProfileLimits | undefined;
  readonly api: ApiRouter;
  readonly streams: ReadonlyMap<string, StreamHandle>;
  /** The file database (store_dir); consumers keep their durable state in it. */
  readonly db: Database;
  /**
   * Run `write` inside the next group-commit transaction of the file database, then call
   * `done` once that transaction committed (err set when it failed). Consumer ack state goes
   * through this so it shares the stream writes' fsync.
   */
  inNextCommit(write: (db: Database) => void, done?: (err: Error | null) => void): void;
  /**
   * Publish a message from the server (API responses, deliveries, acks, advisories).
   * `hdrLen` is the header block length at the start of `raw` (0 = none). `to`, when given,
   * is the subject to route by while subscribers see `subject`: a pull delivery is routed to
   * the request's inbox but shows the stored message's own subject, as nats-server does.
   */
  publish(subject: string, reply: string, hdrLen: number, raw: Buffer, to?: string): void;
  /** Current time in microseconds since the epoch (one clock for store times and timers). */
  nowUs(): number;
  /** (Added by the consumer side.) A connection id for an internal subscriber, unique across the server. */
  nextCid?(): number;
}
