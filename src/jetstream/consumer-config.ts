/**
 * Consumer create requests: decoding (types checked as Go's encoding/json would, so bad input
 * gets nats-server's `invalid JSON`), the name rules of each subject form, the config checks
 * with nats-server's err_codes, defaults, which fields an update may change, and the config
 * object as CONSUMER.INFO echoes it (jetstream-api.md §7.1–7.2, verified on nats-server 2.9.10).
 */
import { randomBytes } from 'node:crypto';
import { isValidSubject, subjectHasWildcard, subjectIsSubsetOf, subjectMatches, subjectsOverlap } from '../core/subject.js';
import { JsErrors as E } from './errors.js';
import { parseTimeToUs } from './consumer-time.js';
import type { AckPolicy, ApiError, ConsumerConfig, DeliverPolicy, ReplayPolicy, StreamConfig } from './types.js';

declare module './types.js' {
  interface ConsumerConfig {
    /**
     * nats-server's flag for the push consumers that feed a mirror or source: an ephemeral that
     * CONSUMER.NAMES / LIST, consumer_count and max_consumers leave out. (Declared here, where it
     * is decoded and checked; types.ts keeps the public wire fields.)
     */
    direct?: boolean;
  }
}

export type ConsumerAction = '' | 'create' | 'update';

export interface CreateRequest {
  stream_name: string;
  config: Partial<ConsumerConfig>;
  action: ConsumerAction;
}

/** Durations and counts nats-server fills in. */
export const DEFAULT_ACK_WAIT_NS = 30_000_000_000;
export const DEFAULT_MAX_WAITING = 512;
export const DEFAULT_MAX_ACK_PENDING = 1000;
export const DEFAULT_INACTIVE_THRESHOLD_NS = 5_000_000_000;
const MIN_HEARTBEAT_NS = 100_000_000;
const MIN_MAX_EXPIRES_NS = 1_000_000;
const MAX_NAME_LEN = 255;
const MAX_DESCRIPTION_LEN = 4096;

export function isApiError(v: unknown): v is ApiError {
  return typeof v === 'object' && v !== null && 'err_code' in v;
}

// ---- decoding ------------------------------------------------------------------------------

/** Thrown inside the decoder when a field has a type Go would refuse. */
class BadJson extends Error {}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: Obj, k: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new BadJson(k);
  return v;
}

function optBool(o: Obj, k: string): boolean | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new BadJson(k);
  return v;
}

function optInt(o: Obj, k: string, unsigned = false): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || (unsigned && v < 0)) throw new BadJson(k);
  return v;
}

function optEnum<T extends string>(o: Obj, k: string, allowed: readonly T[]): T | undefined {
  const v = optString(o, k);
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new BadJson(k);
  return v as T;
}

function optIntArray(o: Obj, k: string): number[] | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new BadJson(k);
  for (const x of v) if (typeof x !== 'number' || !Number.isInteger(x)) throw new BadJson(k);
  return v as number[];
}

function optStringArray(o: Obj, k: string): string[] | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new BadJson(k);
  for (const x of v) if (typeof x !== 'string') throw new BadJson(k);
  return v as string[];
}

function optStringMap(o: Obj, k: string): Record<string, string> | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw new BadJson(k);
  for (const x of Object.values(v)) if (typeof x !== 'string') throw new BadJson(k);
  return v as Record<string, string>;
}

const DELIVER_POLICIES: readonly DeliverPolicy[] = ['all', 'last', 'new', 'by_start_sequence', 'by_start_time', 'last_per_subject'];
const ACK_POLICIES: readonly AckPolicy[] = ['none', 'all', 'explicit'];
const REPLAY_POLICIES: readonly ReplayPolicy[] = ['instant', 'original'];
const ACTIONS: readonly ConsumerAction[] = ['', 'create', 'update'];

/** Sets `k` on `out` only when present, so absent fields stay absent. */
function put<K extends keyof ConsumerConfig>(out: Partial<ConsumerConfig>, k: K, v: ConsumerConfig[K] | undefined): void {
  if (v !== undefined) out[k] = v;
}

function decodeConfig(o: Obj): Partial<ConsumerConfig> {
  const c: Partial<ConsumerConfig> = {};
  put(c, 'durable_name', optString(o, 'durable_name'));
  put(c, 'name', optString(o, 'name'));
  put(c, 'description', optString(o, 'description'));
  put(c, 'deliver_policy', optEnum(o, 'deliver_policy', DELIVER_POLICIES));
  put(c, 'opt_start_seq', optInt(o, 'opt_start_seq', true));
  const t = optString(o, 'opt_start_time');
  if (t !== undefined) {
    if (parseTimeToUs(t) === null) throw new BadJson('opt_start_time');
    c.opt_start_time = t;
  }
  put(c, 'ack_policy', optEnum(o, 'ack_policy', ACK_POLICIES));
  put(c, 'ack_wait', optInt(o, 'ack_wait'));
  put(c, 'max_deliver', optInt(o, 'max_deliver'));
  put(c, 'backoff', optIntArray(o, 'backoff'));
  put(c, 'filter_subject', optString(o, 'filter_subject'));
  put(c, 'filter_subjects', optStringArray(o, 'filter_subjects'));
  put(c, 'replay_policy', optEnum(o, 'replay_policy', REPLAY_POLICIES));
  put(c, 'rate_limit_bps', optInt(o, 'rate_limit_bps', true));
  put(c, 'sample_freq', optString(o, 'sample_freq'));
  put(c, 'max_waiting', optInt(o, 'max_waiting'));
  put(c, 'max_ack_pending', optInt(o, 'max_ack_pending'));
  put(c, 'flow_control', optBool(o, 'flow_control'));
  put(c, 'idle_heartbeat', optInt(o, 'idle_heartbeat'));
  put(c, 'headers_only', optBool(o, 'headers_only'));
  put(c, 'max_batch', optInt(o, 'max_batch'));
  put(c, 'max_expires', optInt(o, 'max_expires'));
  put(c, 'max_bytes', optInt(o, 'max_bytes'));
  put(c, 'deliver_subject', optString(o, 'deliver_subject'));
  put(c, 'deliver_group', optString(o, 'deliver_group'));
  put(c, 'inactive_threshold', optInt(o, 'inactive_threshold'));
  put(c, 'num_replicas', optInt(o, 'num_replicas'));
  put(c, 'mem_storage', optBool(o, 'mem_storage'));
  put(c, 'direct', optBool(o, 'direct'));
  put(c, 'metadata', optStringMap(o, 'metadata'));
  return c;
}

/** Decode a CONSUMER.CREATE / DURABLE.CREATE body; any JSON or type error is 10025. */
export function parseCreateRequest(data: Uint8Array): CreateRequest | ApiError {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    return E.invalidJson();
  }
  if (!isObj(v)) return E.invalidJson();
  try {
    const cfg = v['config'];
    if (cfg !== undefined && cfg !== null && !isObj(cfg)) return E.invalidJson();
    return {
      stream_name: optString(v, 'stream_name') ?? '',
      config: isObj(cfg) ? decodeConfig(cfg) : {},
      action: optEnum(v, 'action', ACTIONS) ?? '',
    };
  } catch (err) {
    if (err instanceof BadJson) return E.invalidJson();
    throw err;
  }
}

// ---- names per subject form ------------------------------------------------------------------

export interface CreateTarget {
  /** Consumer name; null = generate one (unnamed ephemeral). */
  name: string | null;
  durable: boolean;
}

/** nats-server refuses '.', '*', '>' and whitespace in any consumer name with 10103. */
export function isValidConsumerName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 46 || c === 42 || c === 62 || c === 32 || c === 9 || c === 10 || c === 13 || c === 12) return false;
  }
  return true;
}

/**
 * Which consumer a create request names, from its subject form (tokens after `$JS.API.`):
 * `CONSUMER.CREATE.<s>`, `CONSUMER.CREATE.<s>.<name>[.<filter...>]`,
 * `CONSUMER.DURABLE.CREATE.<s>.<durable>`. null: the subject matches no endpoint (nats-server
 * then answers nothing). Also checks the filter in the subject against the body (10131).
 */
export function resolveCreateTarget(tokens: readonly string[], cfg: Partial<ConsumerConfig>): CreateTarget | ApiError | null {
  const durableName = cfg.durable_name ?? '';
  const cfgName = cfg.name ?? '';
  let name: string | null;
  if (tokens[1] === 'DURABLE') {
    if (tokens.length !== 5) return null;
    const subjName = tokens[4]!;
    if (durableName === '') return E.consumerDurableNotSet();
    if (durableName !== subjName) return E.consumerDurableSubjectMismatch();
    if (cfgName !== '' && cfgName !== durableName) return E.consumerDurableNameMismatch();
    name = subjName;
  } else if (tokens.length === 3) {
    if (durableName !== '') return E.consumerEphemeralWithDurable();
    name = cfgName === '' ? null : cfgName;
  } else if (tokens.length >= 4) {
    const subjName = tokens[3]!;
    if (durableName !== '' && durableName !== subjName) return E.consumerDurableSubjectMismatch();
    if (tokens.length > 4) {
      if (cfg.filter_subjects !== undefined && cfg.filter_subjects.length > 0) return E.consumerFiltersOnSubjectApi();
      const filter = tokens.slice(4).join('.');
      if ((cfg.filter_subject ?? '') !== filter) return E.consumerFilterMismatch();
    }
    // nats-server 2.9.10 takes the subject's name when config.name differs (later ones refuse).
    name = subjName;
  } else {
    return null;
  }
  if (name !== null) {
    if (!isValidConsumerName(name)) return E.consumerBadDurableName();
    if (name.length > MAX_NAME_LEN) return E.consumerNameTooLong();
  }
  return { name, durable: durableName !== '' };
}

const NAME_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** An 8-character name for an unnamed ephemeral, like nats-server's. */
export function randomConsumerName(): string {
  const b = randomBytes(8);
  let s = '';
  for (let i = 0; i < 8; i++) s += NAME_ALPHABET[b[i]! % NAME_ALPHABET.length];
  return s;
}

// ---- defaults and checks ---------------------------------------------------------------------

/** The filters a consumer delivers: [] means every subject of the stream. */
export function consumerFilters(c: ConsumerConfig): string[] {
  if (c.filter_subjects !== undefined && c.filter_subjects.length > 0) return c.filter_subjects.slice();
  if (c.filter_subject !== undefined && c.filter_subject !== '' && c.filter_subject !== '>') return [c.filter_subject];
  return [];
}

export function isPushConfig(c: Partial<ConsumerConfig>): boolean {
  return c.deliver_subject !== undefined && c.deliver_subject !== '';
}

/** The refusals of `direct` consumers (2.9.10's codes and texts; not in errors.ts's catalogue). */
export const DirectErrors = {
  requiresPush: (): ApiError => ({ code: 400, err_code: 10090, description: 'consumer direct requires a push based consumer' }),
  requiresEphemeral: (): ApiError => ({ code: 400, err_code: 10091, description: 'consumer direct requires an ephemeral consumer' }),
} as const;

/** What a stream without `interest` subjects given lets filters select: its own subjects, or anything. */
function ownSubjects(stream: StreamConfig): readonly string[] | null {
  const s = stream.subjects ?? [];
  return s.length > 0 ? s : null;
}

/**
 * The config with nats-server's defaults filled in, or the first check it fails, in 2.9.10's
 * order (replicas, backoff, description, push or pull rules, direct, filters, deliver policy).
 * `name` is the consumer's final name; `durable` whether durable_name was given. `interest`:
 * the subjects a filter may select (the stream's own and its origins', see interestSubjects),
 * null for anything; the stream's own subjects when not given.
 */
export function buildConsumerConfig(
  raw: Partial<ConsumerConfig>,
  name: string,
  durable: boolean,
  stream: StreamConfig,
  interest: readonly string[] | null = ownSubjects(stream),
): ConsumerConfig | ApiError {
  const push = isPushConfig(raw);
  const ackPolicy: AckPolicy = raw.ack_policy ?? 'none';
  const hb = raw.idle_heartbeat ?? 0;
  const backoff = raw.backoff ?? [];
  const maxDeliver = (raw.max_deliver ?? 0) === 0 ? -1 : raw.max_deliver!;
  const maxExpires = raw.max_expires ?? 0;

  if ((raw.num_replicas ?? 0) > 1) return E.replicasNotSupported();
  if (backoff.length > 0 && maxDeliver !== -1 && maxDeliver <= backoff.length) return E.consumerMaxDeliverBackoff();
  if ((raw.description ?? '').length > MAX_DESCRIPTION_LEN) return E.consumerDescriptionTooLong();
  if (push) {
    const ds = raw.deliver_subject!;
    if (!isValidSubject(ds)) return E.consumerDeliverInvalid();
    if (subjectHasWildcard(ds)) return E.consumerDeliverSubjectWildcards();
    if ((raw.max_waiting ?? 0) !== 0) return E.consumerPushMaxWaiting();
    if (deliverFormsCycle(ds, stream)) return E.consumerDeliverCycle();
    if (ackPolicy === 'none' && (raw.max_ack_pending ?? 0) > 0) return E.consumerPushMaxAckPendingNeedsAck();
    if (hb > 0 && hb < MIN_HEARTBEAT_NS) return E.consumerSmallHeartbeat();
  } else {
    if (hb > 0) return E.consumerHeartbeatRequiresPush();
    if (raw.flow_control === true) return E.consumerFlowControlRequiresPush();
    if ((raw.max_waiting ?? 0) < 0) return E.consumerMaxWaitingNegative();
    if ((raw.max_batch ?? 0) < 0) return E.consumerMaxBatchNegative();
    if (maxExpires !== 0 && maxExpires < MIN_MAX_EXPIRES_NS) return E.consumerMaxExpiresTooSmall();
  }
  if (raw.direct === true) {
    if (!push) return DirectErrors.requiresPush();
    if (durable) return DirectErrors.requiresEphemeral();
  }
  const filterErr = checkFilters(raw, interest);
  if (filterErr !== null) return filterErr;
  const policyErr = checkDeliverPolicy(raw);
  if (policyErr !== null) return policyErr;
  if (push && raw.flow_control === true && hb <= 0) return E.consumerFcNeedsHeartbeat();

  const c: ConsumerConfig = {
    deliver_policy: raw.deliver_policy ?? 'all',
    ack_policy: ackPolicy,
    max_deliver: maxDeliver,
    replay_policy: raw.replay_policy ?? 'instant',
    num_replicas: raw.num_replicas ?? 0,
  };
  if (durable) c.durable_name = raw.durable_name!;
  c.name = name;
  copyIfSet(c, raw, 'description');
  copyIfSet(c, raw, 'opt_start_seq');
  copyIfSet(c, raw, 'opt_start_time');
  if (ackPolicy !== 'none') c.ack_wait = raw.ack_wait !== undefined && raw.ack_wait !== 0 ? raw.ack_wait : DEFAULT_ACK_WAIT_NS;
  else if (raw.ack_wait !== undefined && raw.ack_wait !== 0) c.ack_wait = raw.ack_wait;
  if (backoff.length > 0) {
    c.backoff = backoff.slice();
    c.ack_wait = backoff[0]!;
  }
  copyIfSet(c, raw, 'filter_subject');
  if (raw.filter_subjects !== undefined && raw.filter_subjects.length > 0) c.filter_subjects = raw.filter_subjects.slice();
  copyIfSet(c, raw, 'rate_limit_bps');
  copyIfSet(c, raw, 'sample_freq');
  if (!push) c.max_waiting = raw.max_waiting !== undefined && raw.max_waiting > 0 ? raw.max_waiting : DEFAULT_MAX_WAITING;
  const limits = stream.consumer_limits;
  if (raw.max_ack_pending !== undefined && raw.max_ack_pending !== 0) c.max_ack_pending = raw.max_ack_pending;
  else if (ackPolicy !== 'none') c.max_ack_pending = limits?.max_ack_pending ?? DEFAULT_MAX_ACK_PENDING;
  if (hb > 0) c.idle_heartbeat = hb;
  if (raw.flow_control === true) c.flow_control = true;
  if (raw.headers_only === true) c.headers_only = true;
  // Pull checks only: a push consumer keeps whatever it was given (2.9.10 echoes max_batch -1).
  if ((raw.max_batch ?? 0) !== 0) c.max_batch = raw.max_batch!;
  if (maxExpires !== 0) c.max_expires = maxExpires;
  if ((raw.max_bytes ?? 0) > 0) c.max_bytes = raw.max_bytes!;
  if (push) c.deliver_subject = raw.deliver_subject!;
  copyIfSet(c, raw, 'deliver_group');
  const threshold = raw.inactive_threshold ?? 0;
  if (threshold > 0) c.inactive_threshold = threshold;
  else if (!durable) c.inactive_threshold = limits?.inactive_threshold ?? DEFAULT_INACTIVE_THRESHOLD_NS;
  if (raw.mem_storage === true) c.mem_storage = true;
  if (raw.direct === true) c.direct = true;
  if (raw.metadata !== undefined && Object.keys(raw.metadata).length > 0) c.metadata = { ...raw.metadata };
  return c;
}

function copyIfSet<K extends keyof ConsumerConfig>(to: ConsumerConfig, from: Partial<ConsumerConfig>, k: K): void {
  const v = from[k];
  if (v !== undefined && v !== '' && v !== 0) to[k] = v as ConsumerConfig[K];
}

const POLICY_TEXT: Record<DeliverPolicy, string> = {
  all: 'deliver all',
  last: 'deliver last',
  new: 'deliver new',
  by_start_sequence: 'deliver by start sequence',
  by_start_time: 'deliver by start time',
  last_per_subject: 'deliver last per subject',
};

function checkDeliverPolicy(raw: Partial<ConsumerConfig>): ApiError | null {
  const p = raw.deliver_policy ?? 'all';
  const hasSeq = (raw.opt_start_seq ?? 0) > 0;
  const hasTime = raw.opt_start_time !== undefined;
  const lead = `consumer delivery policy is ${POLICY_TEXT[p]}, but`;
  switch (p) {
    case 'by_start_sequence':
      if (!hasSeq) return E.consumerDeliverPolicy(`${lead} optional start sequence is not set`);
      if (hasTime) return E.consumerDeliverPolicy(`${lead} optional start time is also set`);
      return null;
    case 'by_start_time':
      if (!hasTime) return E.consumerDeliverPolicy(`${lead} optional start time is not set`);
      if (hasSeq) return E.consumerDeliverPolicy(`${lead} optional start sequence is also set`);
      return null;
    default:
      if (hasSeq) return E.consumerDeliverPolicy(`${lead} optional start sequence is also set`);
      if (hasTime) return E.consumerDeliverPolicy(`${lead} optional start time is also set`);
      if (p === 'last_per_subject' && consumerFilterList(raw).length === 0) {
        return E.consumerDeliverPolicy(`${lead} optional filter subject is not set`);
      }
      return null;
  }
}

function consumerFilterList(raw: Partial<ConsumerConfig>): string[] {
  if (raw.filter_subjects !== undefined && raw.filter_subjects.length > 0) return raw.filter_subjects;
  if (raw.filter_subject !== undefined && raw.filter_subject !== '') return [raw.filter_subject];
  return [];
}

/**
 * A filter must be covered by an interest subject or cover one (nats-server 2.9.10 refuses filters
 * that only partly overlap, `f.*.b` against `f.a.*`). `allowed` null: anything may arrive (an
 * external origin), so any valid filter fits.
 */
function filterFits(filter: string, allowed: readonly string[] | null): boolean {
  if (!isValidSubject(filter)) return false;
  if (allowed === null) return true;
  for (const s of allowed) if (subjectIsSubsetOf(filter, s) || subjectIsSubsetOf(s, filter)) return true;
  return false;
}

function checkFilters(raw: Partial<ConsumerConfig>, allowed: readonly string[] | null): ApiError | null {
  const many = raw.filter_subjects ?? [];
  if (many.length > 0) {
    if ((raw.filter_subject ?? '') !== '') return E.consumerFilterBoth();
    for (const f of many) if (f === '') return E.consumerFilterEmpty();
    for (let i = 0; i < many.length; i++) {
      for (let j = 0; j < many.length; j++) {
        if (i !== j && subjectIsSubsetOf(many[i]!, many[j]!)) return E.consumerFilterOverlap();
      }
    }
    for (const f of many) if (!filterFits(f, allowed)) return E.consumerFilterNotSubset();
    return null;
  }
  const one = raw.filter_subject ?? '';
  if (one !== '' && !filterFits(one, allowed)) return E.consumerFilterNotSubset();
  return null;
}

/** A push consumer whose deliver subject the stream itself captures would feed itself. */
function deliverFormsCycle(deliver: string, stream: StreamConfig): boolean {
  for (const s of stream.subjects ?? []) if (subjectMatches(s, deliver)) return true;
  return false;
}

/** What another consumer on the stream looks like to the workqueue checks. */
export interface PeerConsumer {
  readonly name: string;
  readonly config: ConsumerConfig;
}

/**
 * Checks that depend on the stream and its other consumers: workqueue rules (10084, 10098,
 * 10099, 10100) and max_consumers (10026, new consumers only). `consumerCount` leaves direct
 * consumers out. A direct consumer skips the workqueue rules (a source of a workqueue stream
 * reads it without acks) but is still a peer to the others' checks, and is still refused at
 * max_consumers, as in nats-server 2.9.10.
 */
export function checkAgainstStream(c: ConsumerConfig, stream: StreamConfig, peers: Iterable<PeerConsumer>, isNew: boolean, consumerCount: number): ApiError | null {
  if (stream.retention === 'workqueue' && c.direct !== true) {
    if (!isPushConfig(c) && c.ack_policy === 'none') return E.consumerWqPullNeedsAck();
    if (c.ack_policy !== 'explicit') return E.consumerWqExplicitAck();
    const mine = consumerFilters(c);
    for (const p of peers) {
      if (p.name === c.name) continue;
      const theirs = consumerFilters(p.config);
      if (mine.length === 0) return theirs.length === 0 ? E.consumerWqMultipleUnfiltered() : E.consumerWqNotUnique();
      if (theirs.length === 0) return E.consumerWqNotUnique();
      for (const a of mine) for (const b of theirs) if (subjectsOverlap(a, b)) return E.consumerWqNotUnique();
    }
  }
  if (isNew && stream.max_consumers > 0 && consumerCount >= stream.max_consumers) return E.maxConsumers();
  return null;
}

/**
 * Why an existing consumer may not take `next` (nats-server's 10012 texts, in its order), or
 * null. The deliver subject may change only while nobody listens on the old one (10013).
 */
export function checkUpdate(old: ConsumerConfig, next: ConsumerConfig, oldDeliverActive: boolean): ApiError | null {
  if (old.deliver_policy !== next.deliver_policy) return E.consumerCreate('deliver policy can not be updated');
  if ((old.opt_start_seq ?? 0) !== (next.opt_start_seq ?? 0)) return E.consumerCreate('start sequence can not be updated');
  if ((old.opt_start_time ?? '') !== (next.opt_start_time ?? '')) return E.consumerCreate('start time can not be updated');
  if (old.ack_policy !== next.ack_policy) return E.consumerCreate('ack policy can not be updated');
  if (old.replay_policy !== next.replay_policy) return E.consumerCreate('replay policy can not be updated');
  if ((old.idle_heartbeat ?? 0) !== (next.idle_heartbeat ?? 0)) return E.consumerCreate('heart beats can not be updated');
  if ((old.flow_control ?? false) !== (next.flow_control ?? false)) return E.consumerCreate('flow control can not be updated');
  if ((old.max_waiting ?? 0) !== (next.max_waiting ?? 0)) return E.consumerCreate('max waiting can not be updated');
  const od = old.deliver_subject ?? '';
  const nd = next.deliver_subject ?? '';
  if (od !== nd) {
    if (od === '') return E.consumerCreate('can not update pull consumer to push based');
    if (nd === '') return E.consumerCreate('can not update push consumer to pull based');
    if (oldDeliverActive) return E.consumerNameExists();
  }
  return null;
}

// ---- echo ------------------------------------------------------------------------------------

/** Go's field order for ConsumerConfig, as nats-server marshals it. */
const ECHO_ORDER: readonly (keyof ConsumerConfig)[] = [
  'durable_name',
  'name',
  'description',
  'deliver_policy',
  'opt_start_seq',
  'opt_start_time',
  'ack_policy',
  'ack_wait',
  'max_deliver',
  'backoff',
  'filter_subject',
  'filter_subjects',
  'replay_policy',
  'rate_limit_bps',
  'sample_freq',
  'max_waiting',
  'max_ack_pending',
  'idle_heartbeat',
  'flow_control',
  'headers_only',
  'max_batch',
  'max_expires',
  'max_bytes',
  'deliver_subject',
  'deliver_group',
  'inactive_threshold',
  'num_replicas',
  'mem_storage',
  'direct',
  'metadata',
];

/** The config object of ConsumerInfo: set fields only, in nats-server's order. */
export function configJson(c: ConsumerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ECHO_ORDER) {
    const v = c[k];
    if (v === undefined) continue;
    if (k === 'num_replicas' || k === 'deliver_policy' || k === 'ack_policy' || k === 'replay_policy' || k === 'max_deliver') {
      out[k] = v;
      continue;
    }
    if (v === '' || v === 0 || v === false) continue;
    out[k] = v;
  }
  return out;
}

/** Same config after defaults (idempotent create): compared on the echoed form. */
export function sameConfig(a: ConsumerConfig, b: ConsumerConfig): boolean {
  return JSON.stringify(configJson(a)) === JSON.stringify(configJson(b));
}
