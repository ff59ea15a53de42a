/**
 * StreamConfig as nats-server reads, defaults, checks and echoes it (jetstream-api.md §4.1,
 * checked against 2.9.10): JSON type errors are `invalid JSON`, config errors 500/10052 with
 * nats-server's reason, in its order of checks; updates follow its rules of what may change.
 */
import { isValidSubject, subjectIsSubsetOf, subjectsOverlap } from '../core/subject.js';
import { ApiErrorException, JsErrors } from './errors.js';
import { checkMirrorUpdate, checkOriginConfig, normalizeRfc3339 } from './stream-origin.js';
import type { ApiError, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamSource } from './types.js';

const NS_PER_MS = 1_000_000;
/** Default duplicate window: 2 minutes. */
export const DEFAULT_DUPLICATE_WINDOW = 120_000 * NS_PER_MS;
const MIN_AGE = 100 * NS_PER_MS;
const MAX_NAME_LEN = 255;
const MAX_DESCRIPTION_LEN = 4096;
const MAX_REPLICAS = 5;
const INT32_MAX = 2_147_483_647;
const INT32_MIN = -2_147_483_648;

// ---- JSON decoding with Go's type rules ------------------------------------------------

function invalid(): never {
  throw new ApiErrorException(JsErrors.invalidJson());
}

type Json = Record<string, unknown>;

function optStr(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') invalid();
  return v;
}

function optInt(v: unknown, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) invalid();
  return v;
}

function optUint(v: unknown): number | undefined {
  return optInt(v, 0);
}

function optBool(v: unknown): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') invalid();
  return v;
}

function optStrArray(v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) invalid();
  return v.map((x) => (x === null ? '' : typeof x === 'string' ? x : invalid()));
}

function optObject(v: unknown): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) invalid();
  return v as Json;
}

function optStrMap(v: unknown): Record<string, string> | undefined {
  const o = optObject(v);
  if (o === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(o)) out[k] = x === null ? '' : typeof x === 'string' ? x : invalid();
  return out;
}

function retention(v: unknown): RetentionPolicy | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'limits' || v === 'interest' || v === 'workqueue') return v;
  return invalid();
}

/** nats-server reads the discard policy case-insensitively (and only it). */
function discard(v: unknown): DiscardPolicy | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') invalid();
  const l = v.toLowerCase();
  if (l === 'old' || l === 'new') return l;
  return invalid();
}

function storage(v: unknown): StorageType | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'file' || v === 'memory') return v;
  return invalid();
}

function compression(v: unknown): 'none' | 's2' | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'none' || v === 's2') return v;
  return invalid();
}

function source(v: unknown): StreamSource | undefined {
  const o = optObject(v);
  if (o === undefined) return undefined;
  const s: StreamSource = { name: optStr(o['name']) ?? '' };
  const seq = optUint(o['opt_start_seq']);
  if (seq !== undefined && seq > 0) s.opt_start_seq = seq;
  const time = optStr(o['opt_start_time']);
  if (time !== undefined && time !== '') s.opt_start_time = normalizeRfc3339(time) ?? invalid();
  const filter = optStr(o['filter_subject']);
  if (filter !== undefined && filter !== '') s.filter_subject = filter;
  const ext = optObject(o['external']);
  if (ext !== undefined) {
    const api = optStr(ext['api']) ?? '';
    // Echoed with both fields, as nats-server does.
    s.external = { api, deliver: optStr(ext['deliver']) ?? '' };
  }
  return s;
}

/** A StreamConfig exactly as sent: fields absent stay undefined (defaults come later). */
export type RawStreamConfig = { -readonly [K in keyof StreamConfig]?: StreamConfig[K] } & { republish?: Json; template_owner?: string };

/**
 * Decodes a StreamConfig body. Throws ApiErrorException(10025 invalid JSON) for anything Go's
 * decoder would refuse: bad syntax, a non-object, wrong field types, unknown enum values.
 * Unknown fields are ignored.
 */
export function decodeStreamConfig(body: Buffer | string): RawStreamConfig {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    invalid();
  }
  if (v === null) return {};
  const o = optObject(v);
  if (o === undefined) invalid();
  const c: RawStreamConfig = {};
  const set = <K extends keyof RawStreamConfig>(k: K, x: RawStreamConfig[K] | undefined): void => {
    if (x !== undefined) c[k] = x;
  };
  set('name', optStr(o['name']));
  set('description', optStr(o['description']));
  set('subjects', optStrArray(o['subjects']));
  set('retention', retention(o['retention']));
  set('max_consumers', optInt(o['max_consumers']));
  set('max_msgs', optInt(o['max_msgs']));
  set('max_bytes', optInt(o['max_bytes']));
  set('max_age', optInt(o['max_age']));
  set('max_msgs_per_subject', optInt(o['max_msgs_per_subject']));
  set('max_msg_size', optInt(o['max_msg_size'], INT32_MIN, INT32_MAX));
  set('discard', discard(o['discard']));
  set('discard_new_per_subject', optBool(o['discard_new_per_subject']));
  set('storage', storage(o['storage']));
  set('num_replicas', optInt(o['num_replicas']));
  set('no_ack', optBool(o['no_ack']));
  set('template_owner', optStr(o['template_owner']));
  set('duplicate_window', optInt(o['duplicate_window']));
  const placement = optObject(o['placement']);
  if (placement !== undefined) {
    const p: { cluster?: string; tags?: string[] } = {};
    const cluster = optStr(placement['cluster']);
    if (cluster !== undefined && cluster !== '') p.cluster = cluster;
    const tags = optStrArray(placement['tags']);
    if (tags !== undefined && tags.length > 0) p.tags = tags;
    c.placement = p;
  }
  set('mirror', source(o['mirror']));
  const sources = o['sources'];
  if (sources !== undefined && sources !== null) {
    if (!Array.isArray(sources)) invalid();
    c.sources = sources.map((s) => source(s) ?? { name: '' });
  }
  const republish = optObject(o['republish']);
  if (republish !== undefined) c.republish = republish;
  set('sealed', optBool(o['sealed']));
  set('deny_delete', optBool(o['deny_delete']));
  set('deny_purge', optBool(o['deny_purge']));
  set('allow_rollup_hdrs', optBool(o['allow_rollup_hdrs']));
  set('allow_direct', optBool(o['allow_direct']));
  set('mirror_direct', optBool(o['mirror_direct']));
  set('compression', compression(o['compression']));
  set('first_seq', optUint(o['first_seq']));
  set('metadata', optStrMap(o['metadata']));
  return c;
}

// ---- defaults and checks ---------------------------------------------------------------

/** Stream and consumer names: no '.', '*', '>' or whitespace (nats-server's isValidName). */
export function isValidName(name: string): boolean {
  return name !== '' && !/[\s.*>]/.test(name);
}

export function hasPathSeparator(name: string): boolean {
  return name.includes('/') || name.includes('\\');
}

function configError(reason: string): never {
  throw new ApiErrorException(JsErrors.streamInvalidConfig(reason));
}

/**
 * Defaults and validation of a stream config, in nats-server's order (checkStreamCfg). Returns
 * the complete config or throws ApiErrorException.
 */
export function normalizeStreamConfig(raw: RawStreamConfig): StreamConfig {
  const name = raw.name ?? '';
  if (!isValidName(name)) configError("stream name is required and can not contain '.', '*', '>'");
  if (name.length > MAX_NAME_LEN) configError(`stream name is too long, maximum allowed is ${MAX_NAME_LEN}`);
  if ((raw.description ?? '').length > MAX_DESCRIPTION_LEN) {
    configError(`stream description is too long, maximum allowed is ${MAX_DESCRIPTION_LEN}`);
  }
  let replicas = raw.num_replicas ?? 0;
  if (replicas === 0) replicas = 1;
  if (replicas > MAX_REPLICAS) configError(`maximum replicas is ${MAX_REPLICAS}`);
  if (replicas < 0) throw new ApiErrorException(JsErrors.replicasNegative());
  const orMinusOne = (v: number | undefined): number => (v === undefined || v === 0 ? -1 : v);
  const maxAge = raw.max_age ?? 0;
  let dupes = raw.duplicate_window ?? 0;
  if (dupes === 0 && raw.mirror === undefined) {
    dupes = maxAge !== 0 && maxAge < DEFAULT_DUPLICATE_WINDOW ? maxAge : DEFAULT_DUPLICATE_WINDOW;
  }
  if (maxAge > 0 && maxAge < MIN_AGE) configError('max age needs to be >= 100ms');
  if (dupes < 0) configError('duplicates window can not be negative');
  if (maxAge !== 0 && dupes > maxAge) configError('duplicates window can not be larger then max age');
  if (dupes > 0 && dupes < MIN_AGE) configError('duplicates window needs to be >= 100ms');
  if (raw.deny_purge === true && raw.allow_rollup_hdrs === true) configError('roll-ups require the purge permission');
  const discardPolicy = raw.discard ?? 'old';
  const maxPerSubject = orMinusOne(raw.max_msgs_per_subject);
  if (raw.discard_new_per_subject === true) {
    if (discardPolicy !== 'new') configError('discard new per subject requires discard new policy to be set');
    if (maxPerSubject <= 0) configError('discard new per subject requires max msgs per subject > 0');
  }
  checkOriginConfig(raw.mirror, raw.sources ?? [], raw.subjects ?? [], raw.first_seq);
  const subjects = raw.subjects ?? [];
  const seen = new Set<string>();
  for (const subj of subjects) {
    if (seen.has(subj)) configError('duplicate subjects detected');
    if (subjectIsSubsetOf(subj, '$JS.API.>')) configError('subjects overlap with jetstream api');
    if (!isValidSubject(subj)) configError('invalid subject');
    seen.add(subj);
  }
  for (let i = 0; i < subjects.length; i++) {
    for (let j = i + 1; j < subjects.length; j++) {
      if (subjectsOverlap(subjects[i]!, subjects[j]!)) configError(`subject "${subjects[i]!}" overlaps with "${subjects[j]!}"`);
    }
  }
  // Features a single edge server does not have: refuse them rather than pretend.
  if (raw.republish !== undefined) configError('republish is not supported by nats-edge');

  const cfg: StreamConfig = {
    name,
    retention: raw.retention ?? 'limits',
    max_consumers: orMinusOne(raw.max_consumers),
    max_msgs: orMinusOne(raw.max_msgs),
    max_bytes: orMinusOne(raw.max_bytes),
    max_age: maxAge,
    max_msgs_per_subject: maxPerSubject,
    max_msg_size: orMinusOne(raw.max_msg_size),
    discard: discardPolicy,
    storage: raw.storage ?? 'file',
    num_replicas: replicas,
    duplicate_window: dupes,
    sealed: raw.sealed ?? false,
    deny_delete: raw.deny_delete ?? false,
    deny_purge: raw.deny_purge ?? false,
    allow_rollup_hdrs: raw.allow_rollup_hdrs ?? false,
    allow_direct: raw.allow_direct ?? false,
    mirror_direct: raw.mirror_direct ?? false,
  };
  if (raw.description !== undefined && raw.description !== '') cfg.description = raw.description;
  cfg.subjects = subjects.length > 0 ? [...subjects] : raw.mirror === undefined && (raw.sources ?? []).length === 0 ? [name] : [];
  if (raw.discard_new_per_subject === true) cfg.discard_new_per_subject = true;
  if (raw.no_ack === true) cfg.no_ack = true;
  if (raw.placement !== undefined && (raw.placement.cluster !== undefined || raw.placement.tags !== undefined)) {
    cfg.placement = raw.placement;
  }
  if (raw.compression !== undefined) cfg.compression = raw.compression;
  if (raw.first_seq !== undefined && raw.first_seq > 0) cfg.first_seq = raw.first_seq;
  if (raw.metadata !== undefined && Object.keys(raw.metadata).length > 0) cfg.metadata = raw.metadata;
  if (raw.mirror !== undefined) cfg.mirror = raw.mirror;
  if (raw.sources !== undefined && raw.sources.length > 0) cfg.sources = raw.sources;
  return cfg;
}

/**
 * What an update may change (nats-server's configUpdateCheck), and the adjustments sealing
 * makes. `next` is already normalized. Returns the config to apply or throws.
 */
export function checkStreamUpdate(old: StreamConfig, next: StreamConfig): StreamConfig {
  if (next.name !== old.name) configError('stream configuration name must match original');
  if (next.max_consumers !== old.max_consumers) configError('stream configuration update can not change MaxConsumers');
  if (next.storage !== old.storage) configError('stream configuration update can not change storage type');
  if (next.retention !== old.retention) configError('stream configuration update can not change retention policy');
  if (!next.sealed && old.sealed) configError('stream configuration update can not unseal a sealed stream');
  if (!next.deny_delete && old.deny_delete) configError('stream configuration update can not cancel deny message deletes');
  if (!next.deny_purge && old.deny_purge) configError('stream configuration update can not cancel deny purge');
  checkMirrorUpdate(old, next);
  const cfg: StreamConfig = { ...next };
  if (cfg.sealed) {
    cfg.max_age = 0;
    cfg.discard = 'new';
    cfg.deny_delete = true;
    cfg.deny_purge = true;
    cfg.allow_rollup_hdrs = false;
  }
  return cfg;
}

/** The config as nats-server echoes it: its field order, optional fields only when set. */
export function streamConfigJson(cfg: StreamConfig): Record<string, unknown> {
  const o: Record<string, unknown> = { name: cfg.name };
  if (cfg.description !== undefined) o['description'] = cfg.description;
  if (cfg.subjects !== undefined && cfg.subjects.length > 0) o['subjects'] = cfg.subjects;
  o['retention'] = cfg.retention;
  o['max_consumers'] = cfg.max_consumers;
  o['max_msgs'] = cfg.max_msgs;
  o['max_bytes'] = cfg.max_bytes;
  o['max_age'] = cfg.max_age;
  o['max_msgs_per_subject'] = cfg.max_msgs_per_subject;
  o['max_msg_size'] = cfg.max_msg_size;
  o['discard'] = cfg.discard;
  o['storage'] = cfg.storage;
  o['num_replicas'] = cfg.num_replicas;
  if (cfg.no_ack === true) o['no_ack'] = true;
  if (cfg.duplicate_window !== 0) o['duplicate_window'] = cfg.duplicate_window;
  if (cfg.placement !== undefined) o['placement'] = cfg.placement;
  if (cfg.mirror !== undefined) o['mirror'] = cfg.mirror;
  if (cfg.sources !== undefined && cfg.sources.length > 0) o['sources'] = cfg.sources;
  o['allow_direct'] = cfg.allow_direct;
  o['mirror_direct'] = cfg.mirror_direct;
  o['sealed'] = cfg.sealed;
  o['deny_delete'] = cfg.deny_delete;
  o['deny_purge'] = cfg.deny_purge;
  o['allow_rollup_hdrs'] = cfg.allow_rollup_hdrs;
  if (cfg.discard_new_per_subject === true) o['discard_new_per_subject'] = true;
  if (cfg.compression !== undefined) o['compression'] = cfg.compression;
  if (cfg.first_seq !== undefined) o['first_seq'] = cfg.first_seq;
  if (cfg.metadata !== undefined) o['metadata'] = cfg.metadata;
  return o;
}

/** Same config as far as a repeated create is concerned (field by field, order-insensitive). */
export function sameStreamConfig(a: StreamConfig, b: StreamConfig): boolean {
  return canonical(streamConfigJson(a)) === canonical(streamConfigJson(b));
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v).sort();
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonical((v as Record<string, unknown>)[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}

/** A config read back from the store (trusted: written by us after normalization). */
export function storedStreamConfig(json: string): StreamConfig {
  return JSON.parse(json) as StreamConfig;
}

/** ApiError out of an exception thrown by the functions above; rethrows anything else. */
export function apiErrorOf(err: unknown): ApiError {
  if (err instanceof ApiErrorException) return err.apiError;
  throw err;
}
