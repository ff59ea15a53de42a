/**
 * Mirrors and sources as configuration (jetstream-api.md §12a): what each `mirror` / `sources`
 * entry of a StreamConfig means for the reader that copies it, the checks nats-server makes on
 * them, and the `Nats-Stream-Source` header a sourced message carries.
 *
 * Checks follow nats-server 2.9.10 where it is sound, later servers where 2.9.10 is wrong: invalid
 * or missing origin names (10141 / 10142), duplicate sources (10140) and a mirror with first_seq
 * (10143) are refused as 2.10 does; 2.9.10's false "detected cycle" for a stream reaching the same
 * origin twice (a diamond) is not copied: only a path back to the stream itself is a cycle.
 */
import { createHash } from 'node:crypto';
import { isValidSubject, subjectHasWildcard, subjectIsSubsetOf, subjectsOverlap } from '../core/subject.js';
import { ApiErrorException, JsErrors } from './errors.js';
import { headerValue, withAddedHeaders } from './headers.js';
import type { ApiError, StreamConfig, StreamSource } from './types.js';

/** The local API prefix: a mirror or source without `external` reads its origin here. */
export const LOCAL_API = '$JS.API';
export const HDR_STREAM_SOURCE = 'Nats-Stream-Source';

// ---- errors (nats-server's codes and texts) ----------------------------------------------

function e(code: number, err_code: number, description: string): ApiError {
  return { code, err_code, description };
}

export const OriginErrors = {
  mirrorWithSources: (): ApiError => e(400, 10031, 'stream mirrors can not also contain other sources'),
  mirrorWithFirstSeq: (): ApiError => e(400, 10143, 'stream mirrors can not have first sequence configured'),
  mirrorInvalidName: (): ApiError => e(400, 10142, 'mirrored stream name is invalid'),
  sourceInvalidName: (): ApiError => e(400, 10141, 'sourced stream name is invalid'),
  sourceDuplicate: (): ApiError => e(400, 10140, 'duplicate source configuration detected'),
  mirrorNotUpdatable: (): ApiError => e(400, 10055, 'stream mirror configuration can not be updated'),
  externalApiInvalid: (api: string): ApiError => e(500, 10052, `stream external api prefix ${JSON.stringify(api)} must be a valid subject without wildcards`),
  externalApiOverlap: (api: string): ApiError => e(400, 10021, `stream external api prefix ${api} must not overlap with ${LOCAL_API}`),
  externalDeliverWildcards: (deliver: string): ApiError => e(400, 10024, `stream external delivery prefix ${deliver} must not contain wildcards`),
  cycle: (): ApiError => e(500, 10052, 'detected cycle'),
  filterNoOverlap: (kind: 'mirror' | 'source', name: string, filter: string): ApiError =>
    e(500, 10052, `${kind} '${name}' filter subject '${filter}' does not overlap with any origin stream subject`),
  mirrorMaxMsgSize: (): ApiError => e(400, 10030, 'stream mirror must have max message size >= source'),
  sourceMaxMsgSize: (): ApiError => e(400, 10046, 'stream source must have max message size >= target'),
} as const;

function refuse(err: ApiError): never {
  throw new ApiErrorException(err);
}

// ---- what an entry means -------------------------------------------------------------------

/** One origin a stream copies from, as its reader needs it. */
export interface OriginSpec {
  readonly kind: 'mirror' | 'source';
  /** The origin stream's name. */
  readonly name: string;
  /** Origin subjects to copy ('' = all). */
  readonly filter: string;
  readonly optStartSeq: number;
  /** RFC 3339 ('' = none). */
  readonly optStartTime: string;
  /** API prefix the origin's consumer is created through (`$JS.API` when local). */
  readonly api: string;
  /** Prefix of the deliver subject ('' = `$JS`). */
  readonly deliverPrefix: string;
  readonly external: boolean;
  /**
   * nats-server's index name: the origin token of `Nats-Stream-Source` and the name stream info
   * shows: `<name>`, or `<name>:<hash of the API prefix>` when external.
   */
  readonly iname: string;
  /** Identity of the entry among a stream's sources (the key its position is stored under). */
  readonly key: string;
}

/** nats-server's short hash: the first 8 bytes of SHA-256, each mapped into a base-62 digit. */
export function shortHash(s: string): string {
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const sum = createHash('sha256').update(s).digest();
  let out = '';
  for (let i = 0; i < 8; i++) out += digits[sum[i]! % 62];
  return out;
}

export function originSpec(kind: 'mirror' | 'source', s: StreamSource): OriginSpec {
  const ext = s.external;
  const api = ext === undefined || ext.api === '' ? LOCAL_API : ext.api;
  const iname = ext === undefined ? s.name : `${s.name}:${shortHash(ext.api)}`;
  const filter = s.filter_subject ?? '';
  return {
    kind,
    name: s.name,
    filter,
    optStartSeq: s.opt_start_seq ?? 0,
    optStartTime: s.opt_start_time ?? '',
    api,
    deliverPrefix: ext?.deliver ?? '',
    external: ext !== undefined,
    iname,
    key: filter === '' ? iname : `${iname} ${filter}`,
  };
}

/** The origins of a stream config: its mirror, or its sources, in config order. */
export function originSpecs(cfg: StreamConfig): OriginSpec[] {
  if (cfg.mirror !== undefined) return [originSpec('mirror', cfg.mirror)];
  return (cfg.sources ?? []).map((s) => originSpec('source', s));
}

// ---- checks on the config alone ------------------------------------------------------------

/** Stream names as nats-server's isValidName and path rules take them. */
function isValidStreamName(name: string): boolean {
  return name !== '' && !/[\s.*>/\\]/.test(name);
}

function checkExternal(s: StreamSource): void {
  const ext = s.external;
  if (ext === undefined) return;
  if (ext.api !== '') {
    if (!isValidSubject(ext.api) || subjectHasWildcard(ext.api)) refuse(OriginErrors.externalApiInvalid(ext.api));
    if (subjectIsSubsetOf(ext.api, LOCAL_API)) refuse(OriginErrors.externalApiOverlap(ext.api));
  }
  const deliver = ext.deliver ?? '';
  if (deliver !== '' && subjectHasWildcard(deliver)) refuse(OriginErrors.externalDeliverWildcards(deliver));
}

/**
 * The checks on `mirror` / `sources` that need no other stream, in nats-server's order; throws
 * ApiErrorException. `subjects` and `first_seq` are the config's own.
 */
export function checkOriginConfig(mirror: StreamSource | undefined, sources: readonly StreamSource[], subjects: readonly string[], firstSeq: number | undefined): void {
  if (mirror !== undefined) {
    if (subjects.length > 0) refuse(JsErrors.mirrorWithSubjects());
    if (sources.length > 0) refuse(OriginErrors.mirrorWithSources());
    if (firstSeq !== undefined && firstSeq > 0) refuse(OriginErrors.mirrorWithFirstSeq());
    // (2.10 skips this for external mirrors; the name still ends up in API subjects we publish.)
    if (!isValidStreamName(mirror.name)) refuse(OriginErrors.mirrorInvalidName());
    checkExternal(mirror);
  }
  const seen = new Set<string>();
  for (const s of sources) {
    if (!isValidStreamName(s.name)) refuse(OriginErrors.sourceInvalidName());
    checkExternal(s);
    const key = originSpec('source', s).key;
    if (seen.has(key)) refuse(OriginErrors.sourceDuplicate());
    seen.add(key);
  }
}

// ---- checks against the other streams ------------------------------------------------------

/** What the checks read of the other streams. */
export interface StreamLookup {
  get(name: string): { config(): StreamConfig } | undefined;
}

function localOrigins(cfg: StreamConfig): string[] {
  const out: string[] = [];
  if (cfg.mirror !== undefined && cfg.mirror.external === undefined) out.push(cfg.mirror.name);
  for (const s of cfg.sources ?? []) if (s.external === undefined) out.push(s.name);
  return out;
}

/**
 * Whether `cfg` (created, or replacing the stream of that name) would copy from itself through
 * local mirrors and sources. Reaching one origin along two paths is not a cycle.
 */
function formsCycle(cfg: StreamConfig, streams: StreamLookup): boolean {
  const visited = new Set<string>();
  const todo = localOrigins(cfg);
  while (todo.length > 0) {
    const name = todo.pop()!;
    if (name === cfg.name) return true;
    if (visited.has(name)) continue;
    visited.add(name);
    const other = streams.get(name);
    if (other !== undefined) for (const next of localOrigins(other.config())) todo.push(next);
  }
  return false;
}

/**
 * The checks that read the local origins: cycles, filters that match nothing of the origin,
 * and max_msg_size. Null when the config may be applied. External origins are not looked at
 * (2.9.10 checks a local stream of the same name, which is not the origin).
 */
export function checkOriginsAgainst(cfg: StreamConfig, streams: StreamLookup): ApiError | null {
  if (cfg.mirror === undefined && (cfg.sources ?? []).length === 0) return null;
  if (formsCycle(cfg, streams)) return OriginErrors.cycle();
  for (const spec of originSpecs(cfg)) {
    if (spec.external) continue;
    const origin = streams.get(spec.name)?.config();
    if (origin === undefined) continue;
    // An origin without subjects of its own (a mirror, an aggregate of sources) can hold anything.
    const subjects = origin.subjects ?? [];
    if (spec.filter !== '' && subjects.length > 0 && !subjects.some((s) => subjectsOverlap(s, spec.filter))) {
      return OriginErrors.filterNoOverlap(spec.kind, spec.name, spec.filter);
    }
    if (cfg.max_msg_size > 0 && origin.max_msg_size > 0 && cfg.max_msg_size < origin.max_msg_size) {
      return spec.kind === 'mirror' ? OriginErrors.mirrorMaxMsgSize() : OriginErrors.sourceMaxMsgSize();
    }
  }
  return null;
}

/**
 * The subjects a consumer filter on `cfg`'s stream may select, as nats-server checks them: the
 * stream's own subjects and those of its local origins, followed through their own mirrors and
 * sources. Null when anything may arrive (an external origin, or a local one not known yet).
 */
export function interestSubjects(cfg: StreamConfig, streams: StreamLookup): string[] | null {
  const out = new Set<string>(cfg.subjects ?? []);
  const visited = new Set<string>([cfg.name]);
  const todo: StreamConfig[] = [cfg];
  while (todo.length > 0) {
    const c = todo.pop()!;
    const entries = c.mirror !== undefined ? [c.mirror] : (c.sources ?? []);
    for (const s of entries) {
      if (s.external !== undefined) return null;
      if (visited.has(s.name)) continue;
      visited.add(s.name);
      const origin = streams.get(s.name)?.config();
      if (origin === undefined) return null;
      for (const subject of origin.subjects ?? []) out.add(subject);
      todo.push(origin);
    }
  }
  return [...out];
}

/** A mirror is fixed at creation: update may neither add, remove nor change it. */
export function checkMirrorUpdate(old: StreamConfig, next: StreamConfig): void {
  if (old.mirror === undefined && next.mirror === undefined) return;
  if (JSON.stringify(old.mirror ?? null) !== JSON.stringify(next.mirror ?? null)) refuse(OriginErrors.mirrorNotUpdatable());
}

// ---- opt_start_time as Go reads and writes it ----------------------------------------------

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * An RFC 3339 time as Go echoes it (fraction without trailing zeros), or null when Go's decoder
 * would refuse it (the config is then `invalid JSON`).
 */
export function normalizeRfc3339(s: string): string | null {
  const m = RFC3339.exec(s);
  if (m === null || Number.isNaN(Date.parse(s))) return null;
  let frac = m[2] ?? '';
  if (frac.length > 10) return null;
  frac = frac.replace(/0+$/, '');
  if (frac === '.') frac = '';
  return m[1]! + frac + m[3]!;
}

// ---- the header of a sourced message ---------------------------------------------------------

/**
 * `raw` (header block of `hdrLen` bytes, then payload) with `Nats-Stream-Source: <iname> <seq>`
 * set: added last, or replacing the one a message sourced further upstream carries (as
 * nats-server 2.9 does). Returns a new buffer and its header length.
 */
export function withStreamSource(raw: Buffer, hdrLen: number, iname: string, seq: number): { raw: Buffer; hdrLen: number } {
  const value = `${iname} ${seq}`;
  if (hdrLen <= 0 || headerValue(raw, hdrLen, HDR_STREAM_SOURCE) === null) return withAddedHeaders(raw, hdrLen, [[HDR_STREAM_SOURCE, value]]);
  // Rare: rewrite the block line by line (latin1 keeps every byte as it was).
  const lines = raw.toString('latin1', 0, hdrLen).split('\r\n');
  const kept: string[] = [lines[0]!];
  const line = `${HDR_STREAM_SOURCE}: ${Buffer.from(value, 'utf8').toString('latin1')}`;
  let replaced = false;
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    if (l === '') continue;
    const colon = l.indexOf(':');
    if (colon > 0 && l.slice(0, colon).trim() === HDR_STREAM_SOURCE) {
      if (!replaced) kept.push(line);
      replaced = true;
    } else {
      kept.push(l);
    }
  }
  const head = Buffer.from(kept.join('\r\n') + '\r\n\r\n', 'latin1');
  const out = Buffer.allocUnsafe(head.length + raw.length - hdrLen);
  head.copy(out, 0);
  raw.copy(out, head.length, hdrLen);
  return { raw: out, hdrLen: head.length };
}
