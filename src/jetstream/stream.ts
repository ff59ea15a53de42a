/**
 * One stream: captures the messages published on its subjects (an internal subscriber of the
 * router), stores them through the group commit in nats-server's order of checks
 * (jetstream-api.md §5.1), answers the PubAck only once the batch committed, enforces its
 * limits and retention, and serves reads to the API and to its consumers.
 *
 * All state changes happen inside a transaction (commitWrite, or transact() for API
 * operations); in-memory state that a failed transaction changed is reloaded from the table.
 */
import type { Database as Db, Statement } from 'better-sqlite3';
import type { Message, StoreReceipt } from '../core/message.js';
import { subjectHasWildcard, subjectMatches } from '../core/subject.js';
import type { Subscriber, Subscription } from '../core/subscription.js';
import type { CommitParticipant, GroupCommit } from '../store/group-commit.js';
import { isStoreFull } from '../store/database.js';
import { MessageTable, type RowMeta } from '../store/message-table.js';
import { publicConsumerCount } from './consumer-engine.js';
import { formatTimeUs, ZERO_TIME } from './consumer-time.js';
import { JsErrors } from './errors.js';
import { parsePublishHeaders, parseSeqHeader } from './headers.js';
import { streamConfigJson } from './stream-config.js';
import { DedupeWindow, StoreUsage, SubjectState, storedSize } from './stream-state.js';
import type { OriginSink, OriginTag } from './origin-reader.js';
import { StreamOrigins } from './origins.js';
import type { ApiError, ConsumerHandle, JetStreamRuntime, StorageType, StoredMsg, StreamConfig, StreamHandle } from './types.js';

/** What a stream needs of the JetStream it lives in, beyond the shared runtime. */
export interface StreamContext extends JetStreamRuntime {
  readonly commit: GroupCommit;
  readonly usage: StoreUsage;
  readonly domain: string | undefined;
  nextCid(): number;
}

/** A stream's row in `js_streams` (see jetstream.ts for the schema). */
export interface StreamRow {
  id: number;
  name: string;
  config: string;
  created: string;
  last_seq: number;
  last_ts: number;
}

/** A publish waiting for the next transaction; the data is our own copy. */
class PendingPub {
  /** The PubAck (or error ack) JSON, set when processed; null = answer nothing. */
  ack: string | null = null;
  /** Why it was refused, when it was (a mirror or source decides from it whether to ask again). */
  refusal: ApiError | null = null;
  constructor(
    readonly subject: string,
    readonly reply: string,
    readonly hdrLen: number,
    readonly raw: Buffer,
    /** The publisher's receipt (MQTT QoS 1/2): told once this publish committed or failed. */
    readonly receipt?: StoreReceipt,
    /** Set when copied from a mirror's or source's origin rather than published. */
    readonly origin: OriginTag | null = null,
  ) {}
}

/** The consumers of a stream; deleting one lets interest retention release what nobody needs. */
class ConsumerMap extends Map<string, ConsumerHandle> {
  onDelete: (() => void) | null = null;

  override delete(key: string): boolean {
    const had = super.delete(key);
    if (had) this.onDelete?.();
    return had;
  }
}

/** Placeholder ack of a publish whose batch failed before it was looked at: replaced in commitDone. */
const FAILED = '';
const SCAN_CHUNK = 512;
/** Up to this many distinct subjects a wildcard filter is served from the subject index. */
const INDEXED_SUBJECTS = 64;
/** Beyond this many distinct subjects, matching the filter against each one costs more than a scan. */
const SUBJECT_MAP_SCAN_LIMIT = 10_000;
/** Rows removed per statement when a limit or purge drops many. */
const REMOVE_CHUNK = 1000;

export type PurgeRequest = { filter?: string; seq?: number; keep?: number };

export class Stream implements StreamHandle, CommitParticipant, Subscriber, OriginSink {
  readonly kind = 'internal' as const;
  readonly echo = true;
  readonly cid: number;
  readonly name: string;
  readonly storage: StorageType;
  readonly consumers: Map<string, ConsumerHandle>;
  readonly id: number;
  readonly created: string;
  private cfg: StreamConfig;
  private readonly table: MessageTable;
  private readonly schema: string;
  private readonly saveState: Statement;
  private readonly readState: Statement;
  private readonly db: Db;
  /** The readers of its mirror or sources (null when it has none). */
  private origins: StreamOrigins | null = null;

  // ---- state (committed once a transaction ends) -------------------------------------
  private last = 0;
  private lastTs = 0;
  private msgs = 0;
  private bytes = 0;
  private firstCache = -1;
  private firstTsCache = 0;
  private lastMsgId = '';
  private readonly subjects = new Map<string, SubjectState>();
  private readonly dedupe = new DedupeWindow();
  /** last_seq / last_ts as js_streams holds them (persistState). */
  private savedLast = 0;
  private savedTs = 0;

  // ---- pending work -------------------------------------------------------------------
  private pubs: PendingPub[] = [];
  private pubHead = 0;
  private processed: PendingPub[] = [];
  /** When "store full" was last logged (ms). */
  private lastFullLog = 0;
  private ackedSeqs: number[] = [];
  private expireDue = false;
  private sweepFrom = 0;
  /** Removals in the current transaction: 'front' only, or also interior ('some'). */
  private removed: 'none' | 'front' | 'some' = 'none';
  private appended = false;
  private subjectsToRecount = new Set<string>();

  private subs: Subscription[] = [];
  private ageTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly ackPrefix: string;
  private readonly ackErrorSuffix: string;

  constructor(
    private readonly ctx: StreamContext,
    row: StreamRow,
    cfg: StreamConfig,
    db: Db,
  ) {
    this.cid = ctx.nextCid();
    this.id = row.id;
    this.name = row.name;
    this.cfg = cfg;
    this.storage = cfg.storage;
    this.created = row.created;
    this.schema = cfg.storage === 'memory' ? 'mem' : 'main';
    this.table = new MessageTable(db, this.schema, row.id);
    this.saveState = db.prepare(`UPDATE ${this.schema}.js_streams SET last_seq = ?, last_ts = ? WHERE id = ?`);
    this.readState = db.prepare(`SELECT last_seq, last_ts FROM ${this.schema}.js_streams WHERE id = ?`);
    const consumers = new ConsumerMap();
    consumers.onDelete = () => this.consumerDeleted();
    this.consumers = consumers;
    const nameJson = JSON.stringify(row.name);
    this.ackPrefix = `{"stream":${nameJson}, ` + (ctx.domain !== undefined ? `"domain":${JSON.stringify(ctx.domain)}, ` : '');
    this.ackErrorSuffix = `,"stream":${nameJson},"seq":0}`;
    this.db = db;
    this.loadState(row.last_seq, row.last_ts);
    this.configureOrigins(cfg);
  }

  // ---- lifecycle ----------------------------------------------------------------------

  /** Start capturing the stream's subjects and its age timer. */
  start(): void {
    this.subscribe();
    this.scheduleAgeCheck();
    this.origins?.start();
  }

  /** Stop capturing and timers (stream deleted or server shutdown). Pending publishes get no ack. */
  stop(): void {
    this.closed = true;
    this.origins?.stop();
    this.unsubscribe();
    if (this.ageTimer !== null) clearTimeout(this.ageTimer);
    this.ageTimer = null;
  }

  config(): StreamConfig {
    return this.cfg;
  }

  /** Replace the config (an update already checked) and resubscribe when the subjects moved. */
  private setConfig(cfg: StreamConfig): void {
    const subjectsChanged = JSON.stringify(cfg.subjects) !== JSON.stringify(this.cfg.subjects);
    this.cfg = cfg;
    if (subjectsChanged) {
      this.unsubscribe();
      this.subscribe();
    }
  }

  /** Read what the config's mirror or sources name (origins.ts). */
  private configureOrigins(cfg: StreamConfig): void {
    if (this.origins === null) {
      if (cfg.mirror === undefined && (cfg.sources ?? []).length === 0) return;
      this.origins = new StreamOrigins(this.ctx, this, this.db, this.schema === 'mem' ? 'mem' : 'main', this.id);
    }
    this.origins.configure(cfg, this.last);
  }

  private subscribe(): void {
    let sid = 0;
    for (const subject of this.cfg.subjects ?? []) {
      const sub: Subscription = { subject, queue: '', sid: String(++sid), owner: this, msgs: 0, max: 0 };
      this.subs.push(sub);
      this.ctx.router.subscribe(sub);
    }
  }

  private unsubscribe(): void {
    if (this.subs.length > 0) this.ctx.router.unsubscribeAll(this.subs);
    this.subs = [];
  }

  // ---- capture (Subscriber) -----------------------------------------------------------

  deliver(_sub: Subscription, msg: Message): void {
    if (this.closed) return;
    // msg.data is only valid during this call: keep our own copy until the commit.
    const data = msg.data;
    const raw = Buffer.allocUnsafe(data.length);
    raw.set(data);
    this.pubs.push(new PendingPub(msg.subject, msg.reply, msg.hdrLen > 0 ? msg.hdrLen : 0, raw, msg.receipt));
    msg.receipt?.captured();
    this.ctx.commit.enlist(this, msg.reply !== '' || msg.receipt !== undefined);
  }

  /** OriginSink: a message copied from an origin, stored like a publish in the next transaction. */
  ingestOrigin(subject: string, hdrLen: number, raw: Buffer, tag: OriginTag): void {
    if (this.closed) return;
    this.pubs.push(new PendingPub(subject, '', hdrLen, raw, undefined, tag));
    this.ctx.commit.enlist(this);
  }

  // ---- CommitParticipant --------------------------------------------------------------

  commitWrite(budget: number): number {
    if (this.closed) {
      // Deleted (its table is gone) or shutting down: nothing more is stored.
      for (let k = this.pubHead; k < this.pubs.length; k++) this.pubs[k]!.receipt?.stored(new Error('stream closed'));
      this.pubs = [];
      this.pubHead = 0;
      this.ackedSeqs = [];
      return 0;
    }
    let rows = 0;
    let bytes = 0;
    // Removals asked for by consumers' acks (interest / workqueue retention).
    if (this.ackedSeqs.length > 0) {
      const seqs = this.ackedSeqs;
      this.ackedSeqs = [];
      for (const seq of seqs) if (this.releaseIfUnneeded(seq)) rows++;
    }
    if (this.expireDue) {
      rows += this.expire(budget);
    }
    if (this.sweepFrom > 0) rows += this.sweep(budget);
    const pubs = this.pubs;
    const start = this.pubHead;
    const end = Math.min(pubs.length, start + Math.max(1, budget - rows));
    let i = start;
    try {
      for (; i < end; i++) {
        const p = pubs[i]!;
        this.processPub(p);
        this.processed.push(p);
        if (p.origin !== null) this.origins?.processed(p.origin, p.refusal);
        bytes += p.raw.length;
      }
    } catch (err) {
      // The batch is rolled back as a whole: every publish in it is answered with the failure
      // (commitDone), including those not reached yet.
      for (let k = i; k < end; k++) {
        const p = pubs[k]!;
        p.ack = FAILED;
        this.processed.push(p);
      }
      this.advance(end);
      throw err;
    }
    rows += end - start;
    this.advance(end);
    // Source positions move in the transaction that stores what they copied.
    this.origins?.persist();
    this.persistState();
    this.ctx.commit.wrote(bytes);
    return rows;
  }

  /** Publishes before `end` are taken; keep the rest for the next transaction. */
  private advance(end: number): void {
    if (end >= this.pubs.length) {
      this.pubs = [];
      this.pubHead = 0;
    } else {
      this.pubHead = end;
      this.ctx.commit.enlist(this);
    }
  }

  commitDone(err: Error | null): void {
    const processed = this.processed;
    this.processed = [];
    if (err !== null) {
      const full = isStoreFull(err);
      if (full) this.ctx.usage.fileFull();
      const now = Date.now();
      // A full store fails every batch until space is freed: say so once in a while, not per batch.
      if (!full || now - this.lastFullLog > 10_000) {
        this.lastFullLog = full ? now : this.lastFullLog;
        this.ctx.log.error(`JetStream stream '${this.name}': ${full ? 'store full (max_file_store), publishes refused with "insufficient resources"' : `store failed: ${err.message}`}`);
      }
      const failure = full ? JsErrors.insufficientResources() : JsErrors.storeFailed(err.message);
      const ack = this.errorAck(failure);
      for (const p of processed) if (p.ack !== null) p.ack = ack;
      this.reload();
    }
    for (const p of processed) p.receipt?.stored(err ?? (p.ack !== null && p.ack.startsWith('{"error"') ? new Error(p.ack) : null));
    if (!this.cfg.no_ack) {
      for (const p of processed) {
        if (p.reply !== '' && p.ack !== null) this.ctx.publish(p.reply, '', 0, Buffer.from(p.ack));
      }
    }
    if (err === null) this.notifyConsumers();
    else this.resetPendingFlags();
    this.origins?.committed(err);
  }

  // ---- the publish path ---------------------------------------------------------------

  private errorAck(e: ApiError): string {
    return `{"error":${JSON.stringify(e)}${this.ackErrorSuffix}`;
  }

  private fail(p: PendingPub, e: ApiError): void {
    p.ack = this.errorAck(e);
    p.refusal = e;
  }

  /** nats-server's processJetStreamMsg, in its order of checks. */
  private processPub(p: PendingPub): void {
    const cfg = this.cfg;
    const origin = p.origin;
    // Its reader asked again from an earlier message: this copy is not stored.
    if (origin !== null && origin.stale) return;
    if (cfg.sealed) return this.fail(p, JsErrors.streamSealed());
    const now = this.ctx.nowUs();
    let msgId: string | null = null;
    let rollup: 'sub' | 'all' | null = null;
    if (p.hdrLen > 0) {
      const h = parsePublishHeaders(p.raw, p.hdrLen);
      if (h !== null && origin !== null) {
        // A copy: its expectations were checked by the origin. A mirror keeps every message; a
        // source dedupes ids like a publish. Rollups apply where this stream allows them.
        if ((h.rollup === 'sub' || h.rollup === 'all') && cfg.allow_rollup_hdrs && !cfg.deny_purge) rollup = h.rollup;
        if (cfg.mirror === undefined && h.msgId !== null) {
          msgId = h.msgId;
          const dup = this.dedupe.find(msgId, now, cfg.duplicate_window / 1000);
          if (dup > 0) return;
        }
      } else if (h !== null) {
        if (h.expectedStream !== null && h.expectedStream !== cfg.name) return this.fail(p, JsErrors.expectedStreamMismatch());
        msgId = h.msgId;
        if (msgId !== null) {
          const dup = this.dedupe.find(msgId, now, cfg.duplicate_window / 1000);
          if (dup > 0) {
            p.ack = `${this.ackPrefix}"seq":${dup},"duplicate": true}`;
            return;
          }
        }
        if (h.expectedLastSeq !== null && parseSeqHeader(h.expectedLastSeq) !== this.last) {
          return this.fail(p, JsErrors.wrongLastSequence(this.last));
        }
        if (h.expectedLastMsgId !== null && h.expectedLastMsgId !== this.lastMsgId) {
          return this.fail(p, JsErrors.wrongLastMsgId(this.lastMsgId));
        }
        if (h.expectedLastSubjSeq !== null) {
          const current = this.subjects.get(p.subject)?.last ?? 0;
          if (parseSeqHeader(h.expectedLastSubjSeq) !== current) return this.fail(p, JsErrors.wrongLastSequence(current));
        }
        if (h.rollup !== null) {
          if (!cfg.allow_rollup_hdrs || cfg.deny_purge) return this.fail(p, JsErrors.rollupNotPermitted());
          if (h.rollup === 'sub' || h.rollup === 'all') rollup = h.rollup;
          else return; // nats-server drops a publish with an unknown rollup value without a word
        }
      }
    }
    if (cfg.max_msg_size >= 0 && p.raw.length > cfg.max_msg_size) return this.fail(p, JsErrors.messageTooBig());
    if (this.ctx.usage.exceeded(this.storage)) return this.fail(p, JsErrors.insufficientResources());

    let seq = this.last + 1;
    let ts = now > this.lastTs ? now : this.lastTs;
    if (origin !== null && cfg.mirror !== undefined) {
      // A mirror keeps the origin's sequences (skipping those it does not get) and store times.
      if (origin.seq < seq) return;
      if (origin.seq > seq) {
        seq = origin.seq;
        this.last = seq - 1;
      }
      if (origin.tsUs > 0) ts = origin.tsUs > this.lastTs ? origin.tsUs : this.lastTs;
    }
    if (cfg.retention === 'interest' && !this.anyConsumerNeeds(seq, p.subject)) {
      // Nobody would ever read it: the sequence is used, nothing is stored.
      this.last = seq;
      this.lastTs = ts;
      if (msgId !== null) this.dedupe.add(msgId, seq, ts);
      p.ack = `${this.ackPrefix}"seq":${seq}}`;
      return;
    }
    const refusal = this.discardNewRefusal(p);
    if (refusal !== null) return this.fail(p, JsErrors.storeFailed(refusal));

    const slen = Buffer.byteLength(p.subject);
    this.table.insert(seq, ts, p.subject, p.hdrLen, msgId, p.raw);
    const size = storedSize(this.storage, slen, p.hdrLen, p.raw.length);
    if (this.msgs === 0) {
      this.firstCache = seq;
      this.firstTsCache = ts;
    }
    this.last = seq;
    this.lastTs = ts;
    this.msgs++;
    this.bytes += size;
    this.ctx.usage.add(this.storage, size);
    this.appended = true;
    const st = this.subjects.get(p.subject);
    if (st === undefined) this.subjects.set(p.subject, new SubjectState(1, seq));
    else {
      st.n++;
      st.last = seq;
    }
    this.lastMsgId = msgId ?? '';
    if (msgId !== null) this.dedupe.add(msgId, seq, ts);

    this.enforceLimits(p.subject);
    if (rollup === 'sub') this.removeSubjectBelow(p.subject, seq);
    else if (rollup === 'all') this.removeAllBelow(seq);
    p.ack = `${this.ackPrefix}"seq":${seq}}`;
  }

  /** discard:new refusals, as nats-server's store checks them before storing; null = store it. */
  private discardNewRefusal(p: PendingPub): string | null {
    const cfg = this.cfg;
    if (cfg.discard !== 'new') return null;
    let atSubjectLimit = false;
    if (cfg.max_msgs_per_subject > 0) {
      const n = this.subjects.get(p.subject)?.n ?? 0;
      if (n >= cfg.max_msgs_per_subject) {
        if (cfg.discard_new_per_subject === true) return 'maximum messages per subject exceeded';
        // The subject's oldest goes instead, so the stream does not grow.
        atSubjectLimit = true;
      }
    }
    if (cfg.max_msgs > 0 && this.msgs >= cfg.max_msgs && !atSubjectLimit) return 'maximum messages exceeded';
    if (cfg.max_bytes > 0 && this.bytes + p.raw.length >= cfg.max_bytes) {
      if (!atSubjectLimit) return 'maximum bytes exceeded';
      const oldest = this.table.firstOfSubject(p.subject);
      if (oldest === null || this.sizeOf(oldest) <= p.raw.length) return 'maximum bytes exceeded';
    }
    return null;
  }

  private anyConsumerNeeds(seq: number, subject: string): boolean {
    for (const c of this.consumers.values()) if (c.needs(seq, subject)) return true;
    return false;
  }

  // ---- limits and removal -------------------------------------------------------------

  private sizeOf(m: RowMeta): number {
    return storedSize(this.storage, m.slen, m.hdr_len, m.rlen);
  }

  /** Account for a row about to be deleted (the caller deletes it). */
  private forget(m: RowMeta): void {
    const size = this.sizeOf(m);
    this.msgs--;
    this.bytes -= size;
    this.ctx.usage.add(this.storage, -size);
    const st = this.subjects.get(m.subject);
    if (st !== undefined) {
      st.n--;
      if (st.n <= 0) {
        this.subjects.delete(m.subject);
        this.subjectsToRecount.delete(m.subject);
      } else if (st.last === m.seq) {
        this.subjectsToRecount.add(m.subject);
      }
    }
    this.firstCache = -1;
  }

  /** Recompute the last seq of subjects whose newest message went (after the deletes ran). */
  private recountSubjects(): void {
    if (this.subjectsToRecount.size === 0) return;
    for (const subject of this.subjectsToRecount) {
      const st = this.subjects.get(subject);
      if (st !== undefined) st.last = this.table.lastOfSubject(subject);
    }
    this.subjectsToRecount.clear();
  }

  private noteRemoved(kind: 'front' | 'some'): void {
    if (kind === 'some' || this.removed === 'none') this.removed = kind;
  }

  /** Delete rows that are consecutive in stored order (a range from the front). */
  private removeFrontRows(rows: RowMeta[]): number {
    if (rows.length === 0) return 0;
    for (const m of rows) this.forget(m);
    this.table.deleteRows(rows);
    this.noteRemoved('front');
    this.recountSubjects();
    return rows.length;
  }

  private removeRows(rows: RowMeta[]): number {
    for (const m of rows) {
      this.forget(m);
      this.table.deleteSeq(m.seq, m.subject);
    }
    if (rows.length > 0) this.noteRemoved('some');
    this.recountSubjects();
    return rows.length;
  }

  /** Drop the oldest `n` messages. */
  private removeOldest(n: number): number {
    let removed = 0;
    while (removed < n) {
      const rows = this.table.metaFrom(0, Math.min(REMOVE_CHUNK, n - removed));
      if (rows.length === 0) break;
      removed += this.removeFrontRows(rows);
    }
    return removed;
  }

  /** Drop the oldest messages until the stream holds at most `max` bytes. */
  private removeOldestBytes(max: number): void {
    while (this.bytes > max && this.msgs > 0) {
      const rows = this.table.metaFrom(0, 64);
      if (rows.length === 0) break;
      const take: RowMeta[] = [];
      let bytes = this.bytes;
      for (const m of rows) {
        if (bytes <= max) break;
        bytes -= this.sizeOf(m);
        take.push(m);
      }
      this.removeFrontRows(take);
    }
  }

  /** Discard-old limits after a store (`subject` = the one just stored, null = all, after an update). */
  private enforceLimits(subject: string | null): void {
    const cfg = this.cfg;
    if (subject !== null && cfg.max_msgs_per_subject > 0) {
      const st = this.subjects.get(subject);
      if (st !== undefined && st.n > cfg.max_msgs_per_subject) {
        this.removeRows(this.table.metaOfSubject(subject, st.n - cfg.max_msgs_per_subject));
      }
    }
    if (cfg.max_msgs > 0 && this.msgs > cfg.max_msgs) this.removeOldest(this.msgs - cfg.max_msgs);
    if (cfg.max_bytes > 0 && this.bytes > cfg.max_bytes) this.removeOldestBytes(cfg.max_bytes);
  }

  private removeSubjectBelow(subject: string, below: number): number {
    let removed = 0;
    for (;;) {
      const rows = this.table.metaOfSubjectBelow(subject, below, REMOVE_CHUNK);
      if (rows.length === 0) return removed;
      removed += this.removeRows(rows);
    }
  }

  private removeAllBelow(below: number): number {
    let removed = 0;
    for (;;) {
      const rows = this.table.metaBelow(below, REMOVE_CHUNK);
      if (rows.length === 0) return removed;
      removed += this.removeFrontRows(rows);
    }
  }

  /** max_age: drop what is older than the limit, a budget at a time. */
  private expire(budget: number): number {
    this.expireDue = false;
    const maxAgeUs = this.cfg.max_age / 1000;
    if (maxAgeUs <= 0 || this.msgs === 0) return 0;
    const cutoff = this.ctx.nowUs() - maxAgeUs;
    const rows = this.table.metaOlderThan(0, cutoff, Math.max(1, budget));
    const n = this.removeFrontRows(rows);
    if (rows.length >= budget) {
      this.expireDue = true;
      this.ctx.commit.enlist(this);
    }
    return n;
  }

  private scheduleAgeCheck(): void {
    if (this.ageTimer !== null) clearTimeout(this.ageTimer);
    this.ageTimer = null;
    if (this.closed || this.cfg.max_age <= 0 || this.msgs === 0) return;
    const firstTs = this.firstTs();
    const dueUs = firstTs + this.cfg.max_age / 1000 - this.ctx.nowUs();
    const ms = Math.min(Math.max(Math.ceil(dueUs / 1000), 1), 2_000_000_000);
    this.ageTimer = setTimeout(() => {
      this.ageTimer = null;
      this.expireDue = true;
      this.ctx.commit.enlist(this);
    }, ms);
    this.ageTimer.unref();
  }

  /** Interest / workqueue retention: drop `seq` once no consumer still needs it. */
  private releaseIfUnneeded(seq: number): boolean {
    const m = this.table.metaOne(seq);
    if (m === null) return false;
    if (this.anyConsumerNeeds(seq, m.subject)) return false;
    this.removeRows([m]);
    return true;
  }

  private consumerDeleted(): void {
    // Interest retention keeps a message only while a consumer needs it: a consumer gone may
    // release messages nobody else wants. Workqueue messages wait for the next consumer.
    if (this.cfg.retention !== 'interest' || this.msgs === 0 || this.closed) return;
    this.sweepFrom = 1;
    this.ctx.commit.enlist(this);
  }

  private sweep(budget: number): number {
    const rows = this.table.metaFrom(this.sweepFrom, Math.max(1, budget));
    const drop: RowMeta[] = [];
    for (const m of rows) if (!this.anyConsumerNeeds(m.seq, m.subject)) drop.push(m);
    this.removeRows(drop);
    if (rows.length >= budget && rows.length > 0) {
      this.sweepFrom = rows[rows.length - 1]!.seq + 1;
      this.ctx.commit.enlist(this);
    } else {
      this.sweepFrom = 0;
    }
    return rows.length;
  }

  // ---- after a commit ------------------------------------------------------------------

  private resetPendingFlags(): void {
    this.removed = 'none';
    this.appended = false;
  }

  /** Tell consumers what the committed transaction changed: removals first, then new messages. */
  private notifyConsumers(): void {
    const removed = this.removed;
    const appended = this.appended;
    this.resetPendingFlags();
    if (removed !== 'none') {
      const first = this.firstSeq();
      for (const c of this.consumers.values()) c.onRemoved(removed === 'front' ? 'all-below' : 'some', first);
      this.scheduleAgeCheck();
    }
    if (appended) {
      const last = this.last;
      for (const c of this.consumers.values()) c.onAppended(last);
    }
    if (this.ageTimer === null) this.scheduleAgeCheck();
  }

  /**
   * Run an API operation on this stream in its own transaction, after everything pending was
   * committed; consumers hear of the changes once it committed.
   */
  private transact<T>(fn: () => T): T {
    let result: T;
    try {
      result = this.ctx.commit.transact(() => {
        const r = fn();
        this.persistState();
        return r;
      });
    } catch (err) {
      this.reload();
      this.resetPendingFlags();
      throw err;
    }
    this.notifyConsumers();
    return result;
  }

  // ---- API operations -------------------------------------------------------------------

  /** PURGE: everything, or by subject filter, below a sequence, or keeping the newest N. Returns how many went. */
  purge(req: PurgeRequest): number {
    return this.transact(() => {
      const { filter, seq, keep } = req;
      const hasFilter = filter !== undefined && filter !== '' && filter !== '>';
      if (!hasFilter) {
        if (seq !== undefined && seq > 0) {
          const n = this.removeAllBelow(seq);
          // Compacting past the end moves the sequence on, as nats-server does.
          if (seq > this.last + 1) this.last = seq - 1;
          return n;
        }
        if (keep !== undefined && keep > 0) {
          if (this.msgs <= keep) return 0;
          return this.removeOldest(this.msgs - keep);
        }
        const n = this.msgs;
        if (n === 0) return 0;
        this.ctx.usage.add(this.storage, -this.bytes);
        this.subjects.clear();
        this.msgs = 0;
        this.bytes = 0;
        this.firstCache = -1;
        this.table.deleteAll();
        this.noteRemoved('front');
        return n;
      }
      // Filtered: matching subjects, below seq or keeping the newest `keep` of them.
      let removed = 0;
      const matching = [...this.subjects.keys()].filter((s) => subjectMatches(filter, s));
      if (keep !== undefined && keep > 0) {
        const seqs: RowMeta[] = [];
        for (const subject of matching) for (const m of this.table.metaOfSubject(subject, Number.MAX_SAFE_INTEGER)) seqs.push(m);
        seqs.sort((a, b) => a.seq - b.seq);
        if (seqs.length > keep) removed += this.removeRows(seqs.slice(0, seqs.length - keep));
        return removed;
      }
      const below = seq !== undefined && seq > 0 ? seq : this.last + 1;
      for (const subject of matching) removed += this.removeSubjectBelow(subject, below);
      return removed;
    });
  }

  /** MSG.DELETE: the message at `seq`; null when done, else nats-server's reason. */
  deleteMsg(seq: number): string | null {
    return this.transact(() => {
      if (seq > this.last) return 'stream store EOF';
      const m = seq > 0 ? this.table.metaOne(seq) : null;
      if (m === null) return 'no message found';
      if (seq === this.firstSeq()) this.removeFrontRows([m]);
      else this.removeRows([m]);
      return null;
    });
  }

  /** UPDATE: the new config (checked) is stored and its limits applied at once. */
  update(cfg: StreamConfig, persist: (cfg: StreamConfig) => void): void {
    const old = this.cfg;
    try {
      this.transact(() => {
        persist(cfg);
        this.setConfig(cfg);
        this.enforceLimits(null);
      });
    } catch (err) {
      this.setConfig(old);
      throw err;
    } finally {
      this.scheduleAgeCheck();
    }
    this.configureOrigins(cfg);
  }

  // ---- StreamView (reads see committed messages only) -----------------------------------

  messages(): number {
    return this.msgs;
  }

  storedBytes(): number {
    return this.bytes;
  }

  firstSeq(): number {
    // Empty: the next sequence (0 for a stream that never stored), whatever moved `last`.
    if (this.msgs === 0) return this.last === 0 ? 0 : this.last + 1;
    if (this.firstCache < 0) {
      const f = this.table.first();
      if (f !== null) {
        this.firstCache = f.seq;
        this.firstTsCache = f.ts;
      } else {
        this.firstCache = this.last === 0 ? 0 : this.last + 1;
        this.firstTsCache = 0;
      }
    }
    return this.firstCache;
  }

  private firstTs(): number {
    this.firstSeq();
    return this.firstTsCache;
  }

  lastSeq(): number {
    return this.last;
  }

  getMsg(seq: number): StoredMsg | null {
    if (seq <= 0 || seq > this.last) return null;
    return this.table.get(seq);
  }

  fetch(from: number, filters: readonly string[], max: number): StoredMsg[] {
    if (max <= 0 || this.msgs === 0) return [];
    const start = Math.max(from, this.firstSeq(), 1);
    if (start > this.last) return [];
    if (isAll(filters)) return this.table.from(start, max);
    if (filters.length === 1 && !subjectHasWildcard(filters[0]!)) return this.table.subjectFrom(filters[0]!, start, max);
    const subjects = this.matchingSubjects(filters, INDEXED_SUBJECTS);
    if (subjects !== null) {
      const out: StoredMsg[] = [];
      for (const s of subjects) for (const m of this.table.subjectFrom(s, start, max)) out.push(m);
      out.sort((a, b) => a.seq - b.seq);
      return out.length > max ? out.slice(0, max) : out;
    }
    const seqs = this.scanMatching(start, filters, max);
    const out: StoredMsg[] = [];
    for (const seq of seqs) {
      const m = this.table.get(seq);
      if (m !== null) out.push(m);
    }
    return out;
  }

  countFrom(from: number, filters: readonly string[]): number {
    if (this.msgs === 0 || from > this.last) return 0;
    const first = this.firstSeq();
    const all = isAll(filters);
    if (from <= first) {
      if (all) return this.msgs;
      const subjects = this.matchingSubjects(filters, SUBJECT_MAP_SCAN_LIMIT);
      if (subjects !== null) {
        let n = 0;
        for (const s of subjects) n += this.subjects.get(s)?.n ?? 0;
        return n;
      }
      return this.scanCount(first, filters);
    }
    if (all) {
      // Without interior gaps the count is arithmetic.
      if (this.last - first + 1 === this.msgs) return this.last - from + 1;
      return this.table.countFrom(from);
    }
    const subjects = this.matchingSubjects(filters, INDEXED_SUBJECTS);
    if (subjects !== null) {
      let n = 0;
      for (const s of subjects) n += this.table.countSubjectFrom(s, from);
      return n;
    }
    return this.scanCount(from, filters);
  }

  lastPerSubject(filters: readonly string[]): number[] {
    const out: number[] = [];
    const all = isAll(filters);
    for (const [subject, st] of this.subjects) if (all || matchesAny(filters, subject)) out.push(st.last);
    out.sort((a, b) => a - b);
    return out;
  }

  lastMatching(filters: readonly string[]): number {
    if (this.msgs === 0) return 0;
    if (isAll(filters)) return this.table.last()?.seq ?? 0;
    let best = 0;
    if (filters.length === 1 && !subjectHasWildcard(filters[0]!)) return this.subjects.get(filters[0]!)?.last ?? 0;
    for (const [subject, st] of this.subjects) if (st.last > best && matchesAny(filters, subject)) best = st.last;
    return best;
  }

  seqAtOrAfter(tsUs: number): number {
    if (this.msgs === 0) return this.last + 1;
    const seq = this.table.seqAtOrAfterTime(tsUs, this.firstSeq(), this.last);
    return seq > 0 ? seq : this.last + 1;
  }

  acked(_consumer: ConsumerHandle, seq: number): void {
    if (this.cfg.retention === 'limits' || this.closed) return;
    this.ackedSeqs.push(seq);
    this.ctx.commit.enlist(this);
  }

  /** The newest message on a subject (wildcards allowed), or null. */
  lastBySubject(subject: string): StoredMsg | null {
    if (!subjectHasWildcard(subject)) {
      const st = this.subjects.get(subject);
      return st === undefined ? null : this.table.get(st.last);
    }
    const seq = this.lastMatching([subject]);
    return seq > 0 ? this.table.get(seq) : null;
  }

  /** The first message at or after `from` on `subject` (wildcards allowed), or null. */
  nextBySubject(subject: string, from: number): StoredMsg | null {
    return this.fetch(Math.max(from, 1), [subject], 1)[0] ?? null;
  }

  /** Subjects with stored messages that match `filter`, with their counts. */
  subjectCounts(filter: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const [subject, st] of this.subjects) if (filter === '>' || subjectMatches(filter, subject)) out.set(subject, st.n);
    return out;
  }

  /** The interior gaps between first and last (deleted_details). */
  deletedSeqs(): number[] {
    const out: number[] = [];
    if (this.msgs === 0) return out;
    let expect = this.firstSeq();
    for (const seq of this.table.allSeqs()) {
      for (let s = expect; s < seq; s++) out.push(s);
      expect = seq + 1;
    }
    for (let s = expect; s <= this.last; s++) out.push(s);
    return out;
  }

  info(opts: { subjectsFilter?: string; deletedDetails?: boolean } = {}): Record<string, unknown> {
    const first = this.firstSeq();
    const state: Record<string, unknown> = {
      messages: this.msgs,
      bytes: this.bytes,
      first_seq: first,
      first_ts: this.msgs > 0 ? formatTimeUs(this.firstTs()) : ZERO_TIME,
      last_seq: this.last,
      last_ts: this.lastTs > 0 ? formatTimeUs(this.lastTs) : ZERO_TIME,
    };
    if (this.subjects.size > 0) state['num_subjects'] = this.subjects.size;
    if (opts.subjectsFilter !== undefined && opts.subjectsFilter !== '') {
      const counts = this.subjectCounts(opts.subjectsFilter);
      if (counts.size > 0) state['subjects'] = Object.fromEntries(counts);
    }
    const deleted = this.msgs > 0 ? this.last - first + 1 - this.msgs : 0;
    if (deleted > 0) {
      state['num_deleted'] = deleted;
      if (opts.deletedDetails === true) state['deleted'] = this.deletedSeqs();
    }
    state['consumer_count'] = publicConsumerCount(this.consumers.values());
    const info: Record<string, unknown> = { config: streamConfigJson(this.cfg), created: this.created, state };
    return this.origins === null ? info : { ...info, ...this.origins.info() };
  }

  // ---- helpers ----------------------------------------------------------------------------

  /** Distinct stored subjects matching the filters, or null when more than `limit` (or too many to look at). */
  private matchingSubjects(filters: readonly string[], limit: number): string[] | null {
    if (this.subjects.size > SUBJECT_MAP_SCAN_LIMIT) return null;
    const out: string[] = [];
    for (const subject of this.subjects.keys()) {
      if (!matchesAny(filters, subject)) continue;
      out.push(subject);
      if (out.length > limit) return null;
    }
    return out;
  }

  private scanMatching(from: number, filters: readonly string[], max: number): number[] {
    const out: number[] = [];
    let cursor = from;
    while (out.length < max) {
      const rows = this.table.seqSubjectFrom(cursor, SCAN_CHUNK);
      for (const r of rows) {
        if (matchesAny(filters, r.subject)) {
          out.push(r.seq);
          if (out.length >= max) break;
        }
      }
      if (rows.length < SCAN_CHUNK) break;
      cursor = rows[rows.length - 1]!.seq + 1;
    }
    return out;
  }

  private scanCount(from: number, filters: readonly string[]): number {
    let n = 0;
    let cursor = from;
    for (;;) {
      const rows = this.table.seqSubjectFrom(cursor, SCAN_CHUNK);
      for (const r of rows) if (matchesAny(filters, r.subject)) n++;
      if (rows.length < SCAN_CHUNK) return n;
      cursor = rows[rows.length - 1]!.seq + 1;
    }
  }

  /** (Re)build in-memory state from the table (startup, or after a failed transaction). */
  private loadState(lastSeq: number, lastTs: number): void {
    const prevBytes = this.bytes;
    const st = this.table.stats();
    this.msgs = st.n;
    this.bytes = st.n * (this.storage === 'memory' ? 16 : 30) + st.b + (this.storage === 'memory' ? 0 : 4 * st.h);
    this.ctx.usage.add(this.storage, this.bytes - prevBytes);
    this.subjects.clear();
    for (const row of this.table.subjectCounts()) this.subjects.set(row.subject, new SubjectState(row.n, row.last));
    const lastRow = this.table.last();
    this.last = Math.max(lastSeq, lastRow?.seq ?? 0);
    // js_streams may be behind the table (persistState): the newest row then says both.
    this.lastTs = lastRow !== null && lastRow.seq === this.last ? Math.max(lastTs, lastRow.ts) : lastTs;
    this.savedLast = lastSeq;
    this.savedTs = lastTs;
    this.lastMsgId = lastRow?.msgId ?? '';
    this.firstCache = -1;
    this.subjectsToRecount.clear();
    this.dedupe.clear();
    const windowUs = this.cfg.duplicate_window / 1000;
    if (windowUs > 0 && this.msgs > 0) {
      const from = this.table.seqAtOrAfterTime(this.ctx.nowUs() - windowUs, this.firstSeq(), this.last);
      if (from > 0) for (const r of this.table.msgIdsFrom(from)) this.dedupe.add(r.msgId, r.seq, r.ts);
    }
  }

  /**
   * Makes js_streams' last_seq / last_ts right for what this transaction leaves, writing the row
   * only when the table cannot say it: while the newest stored row is `last` (every plain
   * append), loadState derives both from that row, so a commit does not rewrite the state row's
   * page on top of the messages' own pages. After removals at the end, skipped sequences
   * (interest retention, mirrors, compaction past the end) or an emptied stream it is written.
   */
  private persistState(): void {
    if (this.savedLast === this.last && this.savedTs === this.lastTs) return;
    if (this.last > 0 && this.table.has(this.last)) return;
    this.saveState.run(this.last, this.lastTs, this.id);
    this.savedLast = this.last;
    this.savedTs = this.lastTs;
  }

  private reload(): void {
    const row = this.readState.get(this.id) as { last_seq: number; last_ts: number } | undefined;
    // The in-memory part of the subject index may hold rows the failed transaction took back.
    this.table.reloadTail();
    this.loadState(row?.last_seq ?? 0, row?.last_ts ?? 0);
  }
}

function isAll(filters: readonly string[]): boolean {
  if (filters.length === 0) return true;
  for (const f of filters) if (f === '>') return true;
  return false;
}

function matchesAny(filters: readonly string[], subject: string): boolean {
  for (const f of filters) if (subjectMatches(f, subject)) return true;
  return false;
}
