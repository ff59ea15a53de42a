/**
 * The subject index (nats-server calls it the sublist): every subscription of every kind of
 * connection, in a token trie, so that insert, remove and match cost O(tokens), not O(subs).
 *
 * Match results are cached per published subject. A cached result is never changed after it
 * was handed out (a caller may still be iterating it while a delivery unsubscribes); a change
 * of subscriptions instead drops the cached entries it affects, and the next match rebuilds them.
 */
import type { Subscription } from './subscription.js';
import { subjectHasWildcard, subjectMatches } from './subject.js';

/** Subscriptions interested in one published subject. Callers must not modify it. */
export interface MatchResult {
  /** Plain subscriptions: each gets a copy. */
  readonly plain: readonly Subscription[];
  /**
   * One array per queue group name (groups span subjects: `q.*` and `q.>` in group `grp` form
   * one group for `q.x`), holding the members that match; one member of each gets the message.
   */
  readonly queues: readonly (readonly Subscription[])[];
}

/** What /subsz reports for the index (nats-server's field names, camel-cased). */
export interface SublistStats {
  numSubscriptions: number;
  numCache: number;
  numInserts: number;
  numRemoves: number;
  numMatches: number;
  /** Cache hits over matches, 0..1. */
  cacheHitRate: number;
  /** Largest fanout (plain subscriptions + queue groups) among the cached results. */
  maxFanout: number;
  /** Mean fanout over the cached results. */
  avgFanout: number;
}

export interface SubjectIndexOptions {
  /** Published subjects whose match result is kept; 0 disables the cache. Default 1024. */
  cacheSize?: number;
}

const DEFAULT_CACHE_SIZE = 1024;
/**
 * removeBatch: above this many (wildcard subscription x cached subject) comparisons, clearing
 * the whole cache is cheaper than finding the entries each removal affects.
 */
const BATCH_SCAN_BUDGET = 16384;

const NO_SUBS: readonly Subscription[] = Object.freeze([]);
const NO_GROUPS: readonly (readonly Subscription[])[] = Object.freeze([]);
const EMPTY_RESULT: MatchResult = Object.freeze({ plain: NO_SUBS, queues: NO_GROUPS });

/**
 * One trie position: reached by the tokens so far, holding the subscriptions whose subject
 * ends here and the children for the next token.
 */
class Node {
  literal: Map<string, Node> | null = null;
  /** Child for a '*' token. */
  pwc: Node | null = null;
  /** Child for a '>' token ('>' is last, so this node never has children). */
  fwc: Node | null = null;
  plain: Set<Subscription> | null = null;
  queues: Map<string, Set<Subscription>> | null = null;

  isEmpty(): boolean {
    return (
      this.plain === null &&
      this.queues === null &&
      this.pwc === null &&
      this.fwc === null &&
      (this.literal === null || this.literal.size === 0)
    );
  }
}

const PWC_TOKEN = '*';
const FWC_TOKEN = '>';

export class SubjectIndex {
  private readonly root = new Node();
  private readonly cacheSize: number;
  private cache: Map<string, MatchResult> | null;

  private numSubs = 0;
  private inserts = 0;
  private removes = 0;
  private matches = 0;
  private cacheHits = 0;
  private gen = 0;

  // Scratch space reused by every match: match() is synchronous and never re-entered.
  private readonly scratchPlain: Subscription[] = [];
  private readonly scratchQueues = new Map<string, Subscription[]>();
  // Path walked by remove(), kept to prune emptied nodes.
  private readonly pathNodes: Node[] = [];
  private readonly pathTokens: string[] = [];

  constructor(opts: SubjectIndexOptions = {}) {
    const size = opts.cacheSize ?? DEFAULT_CACHE_SIZE;
    this.cacheSize = size > 0 ? Math.floor(size) : 0;
    this.cache = this.cacheSize > 0 ? new Map() : null;
  }

  /** Number of subscriptions held. */
  get count(): number {
    return this.numSubs;
  }

  /**
   * Moves on every insert and remove: a holder of its own per-connection result cache
   * (as nats-server clients keep) knows its entries are stale when this changed.
   */
  get generation(): number {
    return this.gen;
  }

  /** Add a subscription; its subject must be a valid subscription subject. */
  insert(sub: Subscription): void {
    const subject = sub.subject;
    let node = this.root;
    let start = 0;
    const len = subject.length;
    for (;;) {
      let end = subject.indexOf('.', start);
      if (end < 0) end = len;
      node = childFor(node, start === 0 && end === len ? subject : subject.substring(start, end));
      if (end === len) break;
      start = end + 1;
    }
    if (sub.queue === '') {
      if (node.plain === null) node.plain = new Set();
      else if (node.plain.has(sub)) return;
      node.plain.add(sub);
    } else {
      if (node.queues === null) node.queues = new Map();
      let members = node.queues.get(sub.queue);
      if (members === undefined) {
        members = new Set();
        node.queues.set(sub.queue, members);
      } else if (members.has(sub)) {
        return;
      }
      members.add(sub);
    }
    this.numSubs++;
    this.inserts++;
    this.gen++;
    this.invalidate(sub.subject);
  }

  /** Remove a subscription; false when it was not in the index. */
  remove(sub: Subscription): boolean {
    if (!this.removeFromTrie(sub)) return false;
    this.invalidate(sub.subject);
    return true;
  }

  /** Remove many subscriptions at once (a connection closing). */
  removeBatch(subs: Iterable<Subscription>): void {
    const cache = this.cache;
    const literals: string[] = [];
    const wildSubjects: string[] = [];
    for (const sub of subs) {
      if (!this.removeFromTrie(sub)) continue;
      if (cache === null || cache.size === 0) continue;
      if (subjectHasWildcard(sub.subject)) wildSubjects.push(sub.subject);
      else literals.push(sub.subject);
    }
    if (cache === null || cache.size === 0) return;
    if (wildSubjects.length * cache.size > BATCH_SCAN_BUDGET) {
      cache.clear();
      return;
    }
    for (let i = 0; i < literals.length; i++) cache.delete(literals[i]!);
    for (let i = 0; i < wildSubjects.length; i++) this.dropMatching(wildSubjects[i]!);
  }

  /** Subscriptions interested in the published subject `subject`. */
  match(subject: string): MatchResult {
    this.matches++;
    const cache = this.cache;
    if (cache !== null) {
      const hit = cache.get(subject);
      if (hit !== undefined) {
        this.cacheHits++;
        return hit;
      }
    }
    // A subject with an empty token matches nothing, and is not worth a cache entry.
    if (!hasNoEmptyToken(subject)) return EMPTY_RESULT;

    this.collect(this.root, subject, 0);
    const result = this.takeResult();
    if (cache !== null) {
      if (cache.size >= this.cacheSize) this.evict(cache);
      cache.set(subject, result);
    }
    return result;
  }

  /** Does any subscription match the published subject? Allocates nothing. */
  hasInterest(subject: string): boolean {
    const cache = this.cache;
    if (cache !== null) {
      const hit = cache.get(subject);
      if (hit !== undefined) return hit.plain.length > 0 || hit.queues.length > 0;
    }
    if (!hasNoEmptyToken(subject)) return false;
    return anyInterest(this.root, subject, 0);
  }

  stats(): SublistStats {
    let maxFanout = 0;
    let total = 0;
    const cache = this.cache;
    const numCache = cache === null ? 0 : cache.size;
    if (cache !== null) {
      for (const r of cache.values()) {
        const fanout = r.plain.length + r.queues.length;
        total += fanout;
        if (fanout > maxFanout) maxFanout = fanout;
      }
    }
    return {
      numSubscriptions: this.numSubs,
      numCache,
      numInserts: this.inserts,
      numRemoves: this.removes,
      numMatches: this.matches,
      cacheHitRate: this.matches > 0 ? this.cacheHits / this.matches : 0,
      maxFanout,
      avgFanout: numCache > 0 ? total / numCache : 0,
    };
  }

  /** Every subscription held (for /subsz and /connz listings). */
  all(): IterableIterator<Subscription> {
    return walk(this.root);
  }

  private removeFromTrie(sub: Subscription): boolean {
    const subject = sub.subject;
    const len = subject.length;
    if (len === 0) return false;
    const nodes = this.pathNodes;
    const tokens = this.pathTokens;
    nodes.length = 0;
    tokens.length = 0;
    let node: Node | null | undefined = this.root;
    let start = 0;
    for (;;) {
      let end = subject.indexOf('.', start);
      if (end < 0) end = len;
      const token = start === 0 && end === len ? subject : subject.substring(start, end);
      nodes.push(node);
      tokens.push(token);
      node = childOf(node, token);
      if (node === undefined || node === null) return false;
      if (end === len) break;
      start = end + 1;
    }

    if (sub.queue === '') {
      const plain = node.plain;
      if (plain === null || !plain.delete(sub)) return false;
      if (plain.size === 0) node.plain = null;
    } else {
      const queues = node.queues;
      const members = queues === null ? undefined : queues.get(sub.queue);
      if (members === undefined || !members.delete(sub)) return false;
      if (members.size === 0) {
        queues!.delete(sub.queue);
        if (queues!.size === 0) node.queues = null;
      }
    }
    this.numSubs--;
    this.removes++;
    this.gen++;

    // Prune nodes left with neither subscriptions nor children, deepest first.
    for (let i = nodes.length - 1; i >= 0 && node.isEmpty(); i--) {
      const parent = nodes[i]!;
      dropChild(parent, tokens[i]!);
      node = parent;
    }
    nodes.length = 0;
    tokens.length = 0;
    return true;
  }

  /** Drop the cached results that a subscription on `filter` belongs in. */
  private invalidate(filter: string): void {
    const cache = this.cache;
    if (cache === null || cache.size === 0) return;
    // A literal subscription matches exactly one published subject: itself.
    if (!subjectHasWildcard(filter)) cache.delete(filter);
    else this.dropMatching(filter);
  }

  private dropMatching(filter: string): void {
    const cache = this.cache!;
    // Only subjects starting with the filter's literal tokens can match: a native startsWith
    // rejects most cached subjects before the token-by-token comparison.
    const prefix = filter.substring(0, literalPrefixLength(filter));
    // Deleting the current entry while iterating a Map is well defined.
    for (const key of cache.keys()) {
      if (key.startsWith(prefix) && subjectMatches(filter, key)) cache.delete(key);
    }
  }

  /** Drop the oldest quarter of the cache: one sweep per many misses, not one per miss. */
  private evict(cache: Map<string, MatchResult>): void {
    let n = Math.max(1, this.cacheSize >> 2);
    for (const key of cache.keys()) {
      cache.delete(key);
      if (--n === 0) break;
    }
  }

  /** Gather into the scratch space every subscription under `node` matching subject[start..]. */
  private collect(node: Node, subject: string, start: number): void {
    const len = subject.length;
    let end = subject.indexOf('.', start);
    if (end < 0) end = len;
    const last = end === len;
    if (node.fwc !== null) this.gather(node.fwc);
    const pwc = node.pwc;
    if (pwc !== null) {
      if (last) this.gather(pwc);
      else this.collect(pwc, subject, end + 1);
    }
    const literal = node.literal;
    if (literal !== null) {
      const child = literal.get(start === 0 && last ? subject : subject.substring(start, end));
      if (child !== undefined) {
        if (last) this.gather(child);
        else this.collect(child, subject, end + 1);
      }
    }
  }

  private gather(node: Node): void {
    const plain = node.plain;
    if (plain !== null) {
      const out = this.scratchPlain;
      for (const sub of plain) out.push(sub);
    }
    const queues = node.queues;
    if (queues !== null) {
      const groups = this.scratchQueues;
      for (const [name, members] of queues) {
        let out = groups.get(name);
        if (out === undefined) {
          out = [];
          groups.set(name, out);
        }
        for (const sub of members) out.push(sub);
      }
    }
  }

  /** Turn the scratch space into a fresh result and reset it. */
  private takeResult(): MatchResult {
    const scratchPlain = this.scratchPlain;
    const groups = this.scratchQueues;
    if (scratchPlain.length === 0 && groups.size === 0) return EMPTY_RESULT;
    const plain = scratchPlain.length === 0 ? NO_SUBS : scratchPlain.slice();
    scratchPlain.length = 0;
    let queues = NO_GROUPS;
    if (groups.size > 0) {
      // The group arrays were made for this match alone, so they become the result.
      queues = Array.from(groups.values());
      groups.clear();
    }
    return { plain, queues };
  }
}

function childFor(node: Node, token: string): Node {
  if (token === PWC_TOKEN) return (node.pwc ??= new Node());
  if (token === FWC_TOKEN) return (node.fwc ??= new Node());
  const literal = (node.literal ??= new Map());
  let child = literal.get(token);
  if (child === undefined) {
    child = new Node();
    literal.set(token, child);
  }
  return child;
}

function childOf(node: Node, token: string): Node | null | undefined {
  if (token === PWC_TOKEN) return node.pwc;
  if (token === FWC_TOKEN) return node.fwc;
  return node.literal === null ? undefined : node.literal.get(token);
}

function dropChild(node: Node, token: string): void {
  if (token === PWC_TOKEN) node.pwc = null;
  else if (token === FWC_TOKEN) node.fwc = null;
  else if (node.literal !== null) {
    node.literal.delete(token);
    if (node.literal.size === 0) node.literal = null;
  }
}

function anyInterest(node: Node, subject: string, start: number): boolean {
  if (node.fwc !== null) return true; // nodes without subscriptions are pruned
  const len = subject.length;
  let end = subject.indexOf('.', start);
  if (end < 0) end = len;
  const last = end === len;
  const pwc = node.pwc;
  if (pwc !== null) {
    if (last ? hasSubs(pwc) : anyInterest(pwc, subject, end + 1)) return true;
  }
  const literal = node.literal;
  if (literal !== null) {
    const child = literal.get(start === 0 && last ? subject : subject.substring(start, end));
    if (child !== undefined) return last ? hasSubs(child) : anyInterest(child, subject, end + 1);
  }
  return false;
}

function hasSubs(node: Node): boolean {
  return node.plain !== null || node.queues !== null;
}

/** Length of the literal tokens (with their dots) before the first wildcard token. */
function literalPrefixLength(filter: string): number {
  let start = 0;
  for (;;) {
    let end = filter.indexOf('.', start);
    if (end < 0) end = filter.length;
    if (end - start === 1) {
      const c = filter.charCodeAt(start);
      if (c === 42 || c === 62) return start; // '*' or '>'
    }
    if (end === filter.length) return end;
    start = end + 1;
  }
}

/** Non-empty, and no leading, trailing or double '.'. */
function hasNoEmptyToken(subject: string): boolean {
  const len = subject.length;
  if (len === 0) return false;
  let prevDot = true;
  for (let i = 0; i < len; i++) {
    const isDot = subject.charCodeAt(i) === 46;
    if (isDot && prevDot) return false;
    prevDot = isDot;
  }
  return !prevDot;
}

function* walk(node: Node): IterableIterator<Subscription> {
  if (node.plain !== null) yield* node.plain;
  if (node.queues !== null) for (const members of node.queues.values()) yield* members;
  if (node.literal !== null) for (const child of node.literal.values()) yield* walk(child);
  if (node.pwc !== null) yield* walk(node.pwc);
  if (node.fwc !== null) yield* walk(node.fwc);
}
