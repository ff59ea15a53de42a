/**
 * Publish / subscribe permissions of one authenticated connection, as nats-server 2.9 applies
 * them, plus the texts of the permission -ERRs.
 *
 * Nothing here knows about a protocol: NATS connections, MQTT sessions and leaf links all ask the
 * same questions (may this subject be published, subscribed, delivered; may this reply be sent).
 *
 * One instance per connection: it keeps per-connection state (the allow_responses grants and
 * small result caches). Compiling is cheap (a few string splits), so the Authenticator builds a
 * fresh one for every connection from the user's `Permissions`.
 */
import type { Permissions, ResponsePermission } from '../config/options.js';
import { subjectHasWildcard, subjectIsSubsetOf, subjectMatches } from '../core/subject.js';

/** A subscribe entry restricted to one queue group (or a wildcard pattern of queue names). */
interface QueueEntry {
  readonly subject: string;
  readonly queue: string;
}

/** Subscribe entries split the way nats-server stores them: plain ones and "subject queue" ones. */
interface SubscribeRules {
  readonly plain: readonly string[];
  readonly queued: readonly QueueEntry[];
}

/** A reply subject this connection may answer although publish permissions deny it. */
interface ResponseGrant {
  /** When the request carrying this reply was delivered (ms). */
  readonly at: number;
  /** Responses sent so far. */
  sent: number;
}

/** Publish / deliver results are remembered per subject; bounded so unique subjects cannot grow it. */
const RESULT_CACHE_MAX = 256;

/**
 * allow_responses grants kept per connection. nats-server has no such cap (with `expires` off,
 * a responder that never answers grows its map forever); here a grant is dropped once this many
 * newer requests arrived after it.
 */
export const DEFAULT_MAX_RESPONSE_GRANTS = 8192;

export interface PermissionLimits {
  /** Cap on outstanding allow_responses grants (default DEFAULT_MAX_RESPONSE_GRANTS). */
  maxResponseGrants?: number;
}

export class CompiledPermissions {
  /** null: no allow list, everything not denied may be published. */
  private readonly pubAllow: readonly string[] | null;
  private readonly pubDeny: readonly string[];
  /** null: no allow list, everything not denied may be subscribed. */
  private readonly subAllow: SubscribeRules | null;
  private readonly subDeny: SubscribeRules;
  private readonly responses: ResponsePermission | null;
  private readonly maxGrants: number;

  private readonly pubCache = new Map<string, boolean>();
  private readonly deliverCache = new Map<string, boolean>();
  /** Live allow_responses grants by reply subject. */
  private readonly grants = new Map<string, ResponseGrant>();
  /**
   * Every grant handed out, oldest first, in a ring of maxGrants slots: pruning and eviction
   * pop from its head in O(1). (Taking the oldest key of a Map instead gets slow under churn:
   * V8 skips every deleted slot to find it.) A slot is stale once its grant was used up or
   * renewed, i.e. when `grants` no longer maps its reply to that very object.
   */
  private readonly ringReply: string[] = [];
  private readonly ringGrant: (ResponseGrant | undefined)[] = [];
  private ringHead = 0;
  private ringCount = 0;

  /** false: canPublish is always true and needs no call. */
  readonly restrictsPublish: boolean;
  /** false: canDeliver is always true and needs no call. */
  readonly filtersDelivery: boolean;
  /** true: the connection answers requests under allow_responses; call noteRequest on deliveries. */
  readonly tracksResponses: boolean;

  constructor(p: Permissions, limits: PermissionLimits = {}) {
    this.responses = p.allowResponses ?? null;
    this.tracksResponses = this.responses !== null;
    this.maxGrants = Math.max(1, limits.maxResponseGrants ?? DEFAULT_MAX_RESPONSE_GRANTS);

    const pubAllow = p.publish?.allow ?? [];
    // nats-server: allow_responses without a publish allow list turns the blanket allow off, so
    // such a user may publish nothing but responses.
    this.pubAllow = pubAllow.length > 0 || this.tracksResponses ? pubAllow.slice() : null;
    this.pubDeny = (p.publish?.deny ?? []).slice();
    this.restrictsPublish = this.pubAllow !== null || this.pubDeny.length > 0;

    const subAllow = p.subscribe?.allow ?? [];
    this.subAllow = subAllow.length > 0 ? splitSubscribeEntries(subAllow) : null;
    this.subDeny = splitSubscribeEntries(p.subscribe?.deny ?? []);
    // Queue-qualified deny entries only refuse queue subscriptions; they never filter delivery.
    this.filtersDelivery = this.subDeny.plain.length > 0;
  }

  /**
   * May the connection publish to `subject`? Allowed when the allow list is empty or has an
   * entry matching it, and no deny entry matches it (deny wins).
   *
   * With `now` (the PUB path), a subject the rules deny is still allowed when it is the reply
   * subject of a request this connection received under allow_responses: that consumes one of
   * the request's responses. Without `now` the check has no side effect.
   */
  canPublish(subject: string, now?: number): boolean {
    if (!this.restrictsPublish) return true;
    let allowed = this.pubCache.get(subject);
    if (allowed === undefined) {
      allowed = this.checkPublish(subject);
      remember(this.pubCache, subject, allowed);
    }
    if (allowed || now === undefined || !this.tracksResponses) return allowed;
    return this.consumeResponse(subject, now);
  }

  /**
   * May the connection subscribe to `subject` (possibly with wildcards), in queue group `queue`
   * ('' = plain subscription)?
   *
   * - Allow list: a plain entry must cover the whole subscription (subset: `foo.*` allows
   *   `foo.bar` and `foo.*`, not `foo.>`). Entries "subject queue" admit only that queue (a
   *   wildcard queue pattern admits matching names); when such entries cover the subject, a
   *   queue subscription must match one of them even if a plain entry covers the subject too:
   *   allow ["foo", "foo v1"] = plain subs on foo, queue subs on foo only in v1.
   * - Deny list: a plain entry matching the subscription refuses it (`foo.*` refuses `foo.bar`
   *   and `foo.*`); a deny entry narrower than a wildcard subscription (deny `foo.bar`, SUB
   *   `foo.*`) does not refuse it, canDeliver filters those messages instead. "subject queue"
   *   deny entries refuse that queue only.
   */
  canSubscribe(subject: string, queue = ''): boolean {
    const allow = this.subAllow;
    if (allow !== null) {
      let allowed = false;
      for (const entry of allow.plain) {
        if (subjectIsSubsetOf(subject, entry)) {
          allowed = true;
          break;
        }
      }
      if (queue !== '') {
        const result = queueVerdict(allow.queued, subject, queue, true);
        if (result !== undefined) allowed = result;
      }
      if (!allowed) return false;
    }
    const deny = this.subDeny;
    for (const entry of deny.plain) {
      if (subjectMatches(entry, subject)) return false;
    }
    // nats-server lets a matching queue deny entry *override* a plain deny (deny ["foo", "foo q1"]
    // admits SUB foo q2); here queue entries can only add refusals.
    if (queue !== '' && queueVerdict(deny.queued, subject, queue, false) === true) return false;
    return true;
  }

  /**
   * May a message on `subject` be delivered to this connection? False when the subject matches a
   * subscribe deny entry: this is what keeps `foo.bar` (denied) from reaching an allowed `foo.*`
   * subscription. nats-server only applies this filter once some wildcard subscription contains a
   * deny entry; here it always applies, which also catches overlaps nats-server lets through
   * (deny `x.*.baz`, SUB `*.bar.*`, message `x.bar.baz`).
   */
  canDeliver(subject: string): boolean {
    if (!this.filtersDelivery) return true;
    const cached = this.deliverCache.get(subject);
    if (cached !== undefined) return cached;
    let allowed = true;
    for (const entry of this.subDeny.plain) {
      if (subjectMatches(entry, subject)) {
        allowed = false;
        break;
      }
    }
    remember(this.deliverCache, subject, allowed);
    return allowed;
  }

  /**
   * allow_responses: the connection was just handed a message with reply subject `reply`, so it
   * may answer it (max responses, within expires). Receiving the same reply again renews the
   * grant, as nats-server does. No-op without allow_responses.
   */
  noteRequest(reply: string, now: number): void {
    if (this.responses === null || reply === '') return;
    this.pruneGrants(now);
    // A new object even on renewal: the ring slot of the previous one becomes stale.
    const grant: ResponseGrant = { at: now, sent: 0 };
    this.grants.set(reply, grant);
    if (this.ringCount === this.maxGrants) this.popRing();
    const slot = (this.ringHead + this.ringCount) % this.maxGrants;
    this.ringReply[slot] = reply;
    this.ringGrant[slot] = grant;
    this.ringCount++;
  }

  /** Outstanding allow_responses grants (for tests and monitoring). */
  get pendingResponses(): number {
    return this.grants.size;
  }

  private checkPublish(subject: string): boolean {
    const allow = this.pubAllow;
    if (allow !== null) {
      let allowed = false;
      for (const entry of allow) {
        if (subjectMatches(entry, subject)) {
          allowed = true;
          break;
        }
      }
      if (!allowed) return false;
    }
    for (const entry of this.pubDeny) {
      if (subjectMatches(entry, subject)) return false;
    }
    return true;
  }

  /** Use one response of the grant for `subject`, if there is a live one. */
  private consumeResponse(subject: string, now: number): boolean {
    const rp = this.responses;
    const grant = this.grants.get(subject);
    if (rp === null || grant === undefined) return false;
    // Go's time.Since(t) > expires: a grant is still good at exactly `expires`.
    if (rp.expiresMs > 0 && now - grant.at > rp.expiresMs) {
      this.grants.delete(subject);
      return false;
    }
    grant.sent++;
    // max <= 0: no count limit (nats-server treats a negative max as infinite).
    if (rp.max > 0 && grant.sent >= rp.max) this.grants.delete(subject);
    return true;
  }

  /** Drop stale and expired slots from the old end of the ring. */
  private pruneGrants(now: number): void {
    const expires = this.responses?.expiresMs ?? 0;
    while (this.ringCount > 0) {
      const grant = this.ringGrant[this.ringHead]!;
      const live = this.grants.get(this.ringReply[this.ringHead]!) === grant;
      if (live && (expires <= 0 || now - grant.at <= expires)) return;
      this.popRing();
    }
  }

  /** Remove the oldest ring slot, and its grant if that is still live. */
  private popRing(): void {
    const head = this.ringHead;
    const reply = this.ringReply[head]!;
    if (this.grants.get(reply) === this.ringGrant[head]) this.grants.delete(reply);
    this.ringReply[head] = '';
    this.ringGrant[head] = undefined;
    this.ringHead = (head + 1) % this.maxGrants;
    this.ringCount--;
  }
}

/**
 * Split "subject" / "subject queue" entries. An entry with more than two fields is ignored, as
 * nats-server ignores it (its config validation refuses it anyway).
 */
function splitSubscribeEntries(entries: readonly string[]): SubscribeRules {
  const plain: string[] = [];
  const queued: QueueEntry[] = [];
  for (const raw of entries) {
    const fields = raw.trim().split(/\s+/);
    if (fields.length === 1 && fields[0] !== '') plain.push(fields[0]!);
    else if (fields.length === 2) queued.push({ subject: fields[0]!, queue: fields[1]! });
  }
  return { plain, queued };
}

/**
 * Among the queue entries that concern `subject`, does one name `queue`? undefined when no queue
 * entry concerns the subject at all. For allow entries "concerns" means covers the subscription;
 * for deny entries, matches it (as the plain entries of each list).
 */
function queueVerdict(
  entries: readonly QueueEntry[],
  subject: string,
  queue: string,
  isAllow: boolean,
): boolean | undefined {
  let concerned = false;
  for (const e of entries) {
    const hit = isAllow ? subjectIsSubsetOf(subject, e.subject) : subjectMatches(e.subject, subject);
    if (!hit) continue;
    concerned = true;
    if (queueNameMatches(e.queue, queue)) return true;
  }
  return concerned ? false : undefined;
}

/** Queue names in permissions may be patterns: `v1.*` admits `v1.a` (and the literal `v1.*`). */
function queueNameMatches(pattern: string, queue: string): boolean {
  return pattern === queue || (subjectHasWildcard(pattern) && subjectIsSubsetOf(queue, pattern));
}

/** Full cache: start over. Answers are cheap to recompute, and a cleared Map stays fast (see ring). */
function remember(cache: Map<string, boolean>, key: string, value: boolean): void {
  if (cache.size >= RESULT_CACHE_MAX) cache.clear();
  cache.set(key, value);
}

// ---- reserved replies and queues ---------------------------------------------------------------

/**
 * Reply subjects a client may not put on a PUB: they belong to the server's own routing (service
 * import replies `_R_.`, gateway replies `_GR_.`, JetStream acks `$JS.ACK.`). Checked against
 * nats-server 2.9.10: `_R_.` alone is refused, `$JS.ACK.` and `_GR_.` need at least one byte more;
 * case matters (`_r_.x` passes). The check comes after the publish permission check.
 */
export function isReservedReply(reply: string): boolean {
  if (reply.startsWith('_R_.')) return true;
  if (reply.length > 8 && reply.startsWith('$JS.ACK.')) return true;
  return reply.length > 5 && reply.startsWith('_GR_.');
}

/**
 * The queue group nats-server keeps for itself: `SUB x _sys_` is a subscribe permission violation
 * for every client, with or without permissions.
 */
export function isReservedQueue(queue: string): boolean {
  return queue === '_sys_';
}

// ---- -ERR texts --------------------------------------------------------------------------------

export function permissionViolationPublish(subject: string | Uint8Array): string {
  return `Permissions Violation for Publish to ${goQuote(subject)}`;
}

export function permissionViolationSubscribe(subject: string | Uint8Array, queue: string | Uint8Array = ''): string {
  const base = `Permissions Violation for Subscription to ${goQuote(subject)}`;
  return queue.length > 0 ? `${base} using queue ${goQuote(queue)}` : base;
}

export function permissionViolationReply(reply: string | Uint8Array): string {
  return `Permissions Violation for Publish with Reply of ${goQuote(reply)}`;
}

// ---- Go %q -------------------------------------------------------------------------------------

const HEX = '0123456789abcdef';

/**
 * Go's strconv.Quote (fmt %q), which nats-server uses in its -ERR texts: double quotes; `"` and
 * `\` escaped; \a \b \f \n \r \t \v; other controls as \xNN; characters Go does not consider
 * printable as \uNNNN / \UNNNNNNNN; printable Unicode kept as is.
 *
 * Give it the raw bytes to get Go's output for invalid UTF-8 (each bad byte becomes \xNN); a JS
 * string can no longer tell which bytes were invalid. Printability follows the Unicode tables of
 * this Node build, which may be newer than Go 1.19's for characters assigned since.
 */
export function goQuote(s: string | Uint8Array): string {
  let out = '"';
  if (typeof s === 'string') {
    for (const ch of s) out += quoteRune(ch.codePointAt(0)!, ch);
  } else {
    let i = 0;
    while (i < s.length) {
      const b = s[i]!;
      if (b < 0x80) {
        out += quoteRune(b, String.fromCharCode(b));
        i++;
        continue;
      }
      const width = utf8SequenceLength(s, i);
      if (width === 0) {
        out += '\\x' + hex(b, 2);
        i++;
        continue;
      }
      const cp = decodeUtf8(s, i, width);
      out += quoteRune(cp, String.fromCodePoint(cp));
      i += width;
    }
  }
  return out + '"';
}

function quoteRune(cp: number, ch: string): string {
  if (cp === 0x22) return '\\"';
  if (cp === 0x5c) return '\\\\';
  if (cp >= 0x20 && cp < 0x7f) return ch;
  if (cp > 0x7f && isGoPrintable(cp, ch)) return ch;
  switch (cp) {
    case 0x07:
      return '\\a';
    case 0x08:
      return '\\b';
    case 0x0c:
      return '\\f';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    case 0x0b:
      return '\\v';
  }
  if (cp < 0x20 || cp === 0x7f) return '\\x' + hex(cp, 2);
  // A lone surrogate is no valid rune: Go prints U+FFFD escaped in its place.
  if (cp >= 0xd800 && cp <= 0xdfff) return '\\ufffd';
  return cp < 0x10000 ? '\\u' + hex(cp, 4) : '\\U' + hex(cp, 8);
}

/** Go's unicode.IsPrint beyond ASCII: letters, marks, numbers, punctuation, symbols. */
const GO_GRAPHIC = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

function isGoPrintable(cp: number, ch: string): boolean {
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return GO_GRAPHIC.test(ch);
}

function hex(n: number, width: number): string {
  let s = '';
  for (let i = width - 1; i >= 0; i--) s += HEX[(n >>> (i * 4)) & 0xf];
  return s;
}

/** Length of the valid UTF-8 sequence at s[i] (lead byte >= 0x80), 0 when invalid (as Go decodes). */
function utf8SequenceLength(s: Uint8Array, i: number): number {
  const b0 = s[i]!;
  let width: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) width = 2;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    width = 3;
    if (b0 === 0xe0) lo = 0xa0; // overlong
    else if (b0 === 0xed) hi = 0x9f; // surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    width = 4;
    if (b0 === 0xf0) lo = 0x90; // overlong
    else if (b0 === 0xf4) hi = 0x8f; // beyond U+10FFFF
  } else {
    return 0;
  }
  if (i + width > s.length) return 0;
  const b1 = s[i + 1]!;
  if (b1 < lo || b1 > hi) return 0;
  for (let k = 2; k < width; k++) {
    const b = s[i + k]!;
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return width;
}

function decodeUtf8(s: Uint8Array, i: number, width: number): number {
  const b0 = s[i]!;
  if (width === 2) return ((b0 & 0x1f) << 6) | (s[i + 1]! & 0x3f);
  if (width === 3) return ((b0 & 0x0f) << 12) | ((s[i + 1]! & 0x3f) << 6) | (s[i + 2]! & 0x3f);
  return ((b0 & 0x07) << 18) | ((s[i + 1]! & 0x3f) << 12) | ((s[i + 2]! & 0x3f) << 6) | (s[i + 3]! & 0x3f);
}
