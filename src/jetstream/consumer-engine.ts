/**
 * One JetStream consumer: picks the next message of its stream (redeliveries first), hands it
 * to a waiting pull request or to its push deliver subject with the ack reply subject, keeps
 * the ack state, runs its timers, and persists itself when durable.
 *
 * Timers: one Node timer per consumer, armed for the earliest of its deadlines (redelivery,
 * pull expiry and heartbeats, push heartbeat, inactivity, replay); never one per message.
 * Deliveries run in a loop bounded per turn, so a large backlog yields to I/O between turns.
 */
import type { Database } from 'better-sqlite3';
import { subjectMatches } from '../core/subject.js';
import { AckKind, ackPrefix, ackSubject } from './ack.js';
import type { AckBody, AckTarget } from './ack.js';
import { configJson, consumerFilters, isPushConfig } from './consumer-config.js';
import { AckState } from './consumer-state.js';
import { deletePending, eraseConsumer, savePending, saveConsumer } from './consumer-store.js';
import type { ConsumerRow, PendingRow } from './consumer-store.js';
import { formatTimeUs, parseTimeToUs } from './consumer-time.js';
import {
  STATUS_CONSUMER_DELETED,
  STATUS_FLOW_CONTROL,
  STATUS_MAX_WAITING,
  STATUS_NO_MESSAGES,
  STATUS_PUSH_BASED,
  newWaitingRequest,
  parsePullRequest,
  statusBadRequest,
  statusBatchCompleted,
  statusExceededBatch,
  statusExceededExpires,
  statusExceededMaxBytes,
  statusHeartbeat,
  statusRequestTimeout,
  statusSizeExceeded,
} from './pull.js';
import type { WaitingRequest } from './pull.js';
import type { ConsumerConfig, ConsumerHandle, JetStreamRuntime, StoredMsg, StreamHandle } from './types.js';

/** What a consumer needs from the component that owns all consumers of a runtime. */
export interface ConsumerHost {
  readonly rt: JetStreamRuntime;
  /** A push consumer starts or stops listening for interest on its deliver subject. */
  watchDeliverSubject(c: Consumer, on: boolean): void;
  /** A consumer starts or stops taking acks and flow control responses on its own subjects. */
  watchAckSubjects(c: Consumer, on: boolean): void;
  /** Publish `$JS.EVENT.ADVISORY.CONSUMER.<kind>.<stream>.<consumer>` if anyone listens. */
  advisory(kind: string, c: Consumer, body: Record<string, unknown>): void;
}

/** State read back from the file database at startup. */
export interface RestoredConsumer {
  row: ConsumerRow;
  pending: PendingRow[];
}

/** Messages read from the stream per fetch. */
const READ_AHEAD = 64;
/** Deliveries per turn before yielding to the event loop. */
const TURN_BUDGET = 256;
/** Flow control: ask for a response after this many unconfirmed bytes, stop delivering at twice it. */
const FC_REQUEST_BYTES = 1 << 20;
const FC_STALL_BYTES = 2 << 20;
/** How often waiting pulls without expiry are checked for a vanished requester. */
const INTEREST_SWEEP_MS = 1000;
/** A delivery acked within this time never reaches the database (see flush). */
const PENDING_WRITE_DELAY_US = 100_000;
const EMPTY = Buffer.alloc(0);
const MSG_SIZE_HDR = 'Nats-Msg-Size: ';

type StopReason = 'deleted' | 'stream-deleted' | 'shutdown';

export class Consumer implements ConsumerHandle {
  readonly name: string;
  readonly durable: boolean;
  readonly stream: StreamHandle;
  readonly created: number;
  config: ConsumerConfig;
  readonly state: AckState;

  private readonly rt: JetStreamRuntime;
  private readonly ackPrefix: string;
  /** Durable consumers of file streams keep their state in the file database. */
  private readonly persistent: boolean;
  private filters: string[] = [];
  private isPush = false;
  private ackNone = false;
  private maxDeliver = -1;
  private maxAckPending = 0;
  private retentionAcks = false;

  // ---- where new messages come from
  /** Next stream seq not yet read from the stream. */
  private sseq = 1;
  /** Read-ahead: matching messages with seq < sseq not yet delivered, from bufPos on. */
  private buf: StoredMsg[] = [];
  private bufPos = 0;
  /** last_per_subject: the initial pass (each subject's newest message), then sseq = lpsEnd + 1. */
  private lps: number[] | null = null;
  private lpsPos = 0;
  private lpsEnd = 0;
  /** Matching messages with seq >= sseq, counted through stream seq tailUpTo (-1 = unknown). */
  private tail = 0;
  private tailUpTo = -1;

  // ---- the message chosen for the next delivery
  private staged: StoredMsg | null = null;
  private stagedRedelivery = false;

  // ---- pull
  private readonly waiting: WaitingRequest[] = [];
  private pass = 0;

  // ---- push
  pushBound = false;
  private fcPending = 0;
  private fcReply = '';
  private fcBytesAtRequest = 0;
  private pushHbAt = 0;

  // ---- timing (ms unless noted)
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private lastActive: number;
  private lastDeliveredUs = 0;
  private lastAckUs = 0;
  private replayTs = 0;
  private replayWall = 0;
  private replayAt = 0;

  private pumping = false;
  private again = false;
  private yieldQueued = false;
  private stopped = false;
  /** Its rows were deleted: nothing may write them again. */
  private erased = false;
  private flushQueued = false;
  private configDirty = true;
  /** Pending rows the database holds (to skip deletes of rows never written). */
  private readonly persisted = new Set<number>();
  /** next_seq as last written. */
  private savedNextSeq = -1;
  /** When deferred pending rows are due to be written, ms (0 = none). */
  private flushAt = 0;

  private readonly boundTimer = (): void => this.onTimer();
  private readonly boundYield = (): void => {
    this.yieldQueued = false;
    this.pump();
  };
  private readonly boundFlush = (db: Database): void => this.flush(db);

  constructor(
    private readonly host: ConsumerHost,
    stream: StreamHandle,
    name: string,
    config: ConsumerConfig,
    restored: RestoredConsumer | null,
  ) {
    this.rt = host.rt;
    this.stream = stream;
    this.name = name;
    this.config = config;
    this.durable = config.durable_name !== undefined && config.durable_name !== '';
    this.persistent = this.durable && stream.storage === 'file';
    this.ackPrefix = ackPrefix(stream.name, name);
    this.state = new AckState((dc) => this.ackWaitUs(dc));
    this.applyConfig(config);
    const nowUs = this.rt.nowUs();
    this.lastActive = Math.floor(nowUs / 1000);
    if (restored === null) {
      this.created = nowUs;
      this.startPosition();
    } else {
      this.created = restored.row.created;
      this.restore(restored);
      this.configDirty = false;
    }
  }

  // ---- setup -----------------------------------------------------------------------------

  private applyConfig(c: ConsumerConfig): void {
    this.filters = consumerFilters(c);
    this.isPush = isPushConfig(c);
    this.ackNone = c.ack_policy === 'none';
    this.maxDeliver = c.max_deliver;
    this.maxAckPending = this.ackNone ? 0 : (c.max_ack_pending ?? 0);
    this.retentionAcks = this.stream.config().retention !== 'limits';
  }

  private ackWaitUs(dc: number): number {
    const bo = this.config.backoff;
    if (bo !== undefined && bo.length > 0) return Math.floor(bo[Math.min(dc - 1, bo.length - 1)]! / 1000);
    return Math.floor((this.config.ack_wait ?? 30_000_000_000) / 1000);
  }

  /** Where a new consumer starts, by deliver policy (verified against nats-server 2.9.10). */
  private startPosition(): void {
    const s = this.stream;
    const first = Math.max(s.firstSeq(), 1);
    const last = s.lastSeq();
    const c = this.config;
    let start = first;
    switch (c.deliver_policy) {
      case 'all':
        break;
      case 'last': {
        const m = s.lastMatching(this.filters);
        start = m > 0 ? m : last + 1;
        break;
      }
      case 'new':
        start = last + 1;
        break;
      case 'by_start_sequence':
        start = Math.min(Math.max(c.opt_start_seq ?? 1, first), last + 1);
        break;
      case 'by_start_time': {
        const us = parseTimeToUs(c.opt_start_time ?? '') ?? 0;
        start = Math.min(Math.max(s.seqAtOrAfter(us), first), last + 1);
        break;
      }
      case 'last_per_subject': {
        const seqs = s.lastPerSubject(this.filters);
        this.lps = seqs;
        this.lpsEnd = last;
        start = last + 1;
        this.state.dsseq = seqs.length > 0 ? seqs[0]! - 1 : last;
        this.sseq = start;
        return;
      }
    }
    this.sseq = start;
    this.state.dsseq = start - 1;
  }

  private restore(r: RestoredConsumer): void {
    const row = r.row;
    const st = this.state;
    st.dseq = row.dseq;
    st.dsseq = row.dsseq;
    st.adflr = row.adflr;
    st.asflr = row.asflr;
    this.sseq = Math.max(row.next_seq, 1);
    if (row.lps_end > 0) {
      this.lpsEnd = row.lps_end;
      const next = row.next_seq;
      this.lps = this.stream.lastPerSubject(this.filters).filter((s) => s >= next && s <= row.lps_end);
      this.sseq = row.lps_end + 1;
    }
    for (const p of r.pending) {
      st.restorePending(p.sseq, p.dseq, p.dc, p.ts);
      this.persisted.add(p.sseq);
    }
  }

  /**
   * Begin work: push consumers look for interest and timers arm. Deliveries start with kick(),
   * so that a client hears of a new consumer (the create response) before its first message.
   */
  start(): void {
    this.host.watchAckSubjects(this, true);
    if (this.isPush) {
      this.host.watchDeliverSubject(this, true);
      this.pushBound = this.rt.router.index.hasInterest(this.config.deliver_subject!);
      const hb = this.heartbeatMs();
      if (hb > 0) this.pushHbAt = this.nowMs() + hb;
    }
    this.armNext();
  }

  /** Deliver whatever is due, on the next turn. */
  kick(): void {
    if (this.isPush) this.schedulePump();
  }

  // ---- ConsumerHandle ----------------------------------------------------------------------

  onAppended(_lastSeq: number): void {
    if (this.stopped) return;
    if (this.isPush ? this.pushBound : this.waiting.length > 0) this.pump();
  }

  onRemoved(_seqs: 'all-below' | 'some', firstSeq: number): void {
    if (this.stopped) return;
    const resume = this.resumeSeq();
    this.buf = [];
    this.bufPos = 0;
    this.staged = null;
    this.sseq = Math.max(this.lps === null ? resume : this.sseq, firstSeq);
    if (this.lps !== null) this.lps = this.lps.filter((s, i) => i >= this.lpsPos && s >= firstSeq);
    this.lpsPos = 0;
    this.tailUpTo = -1;
    this.state.dropBelow(firstSeq);
    this.requestFlush();
  }

  needs(seq: number, subject: string): boolean {
    if (!this.matches(subject)) return false;
    const st = this.state;
    if (st.pending.has(seq) || st.rdc.has(seq)) return true;
    if (this.lps !== null) {
      if (seq > this.lpsEnd) return true;
      for (let i = this.lpsPos; i < this.lps.length; i++) if (this.lps[i] === seq) return true;
      return false;
    }
    return seq >= this.resumeSeq();
  }

  stop(reason: StopReason): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.host.watchAckSubjects(this, false);
    if (this.isPush) this.host.watchDeliverSubject(this, false);
    if (reason === 'shutdown') {
      this.requestFlush();
      return;
    }
    for (const req of this.waiting) this.sendStatus(req.reply, STATUS_CONSUMER_DELETED);
    this.waiting.length = 0;
    this.erased = true;
    if (this.persistent) {
      const stream = this.stream.name;
      const name = this.name;
      this.rt.inNextCommit((db) => eraseConsumer(db, stream, name));
    }
    this.host.advisory('DELETED', this, { action: 'delete' });
  }

  info(): Record<string, unknown> {
    const st = this.state;
    const delivered: Record<string, unknown> = { consumer_seq: st.dseq, stream_seq: st.dsseq };
    if (this.lastDeliveredUs > 0) delivered['last_active'] = formatTimeUs(this.lastDeliveredUs);
    const ackFloor: Record<string, unknown> = { consumer_seq: st.adflr, stream_seq: st.asflr };
    if (this.lastAckUs > 0) ackFloor['last_active'] = formatTimeUs(this.lastAckUs);
    const out: Record<string, unknown> = {
      stream_name: this.stream.name,
      name: this.name,
      created: formatTimeUs(this.created),
      config: configJson(this.config),
      delivered,
      ack_floor: ackFloor,
      num_ack_pending: st.numAckPending,
      num_redelivered: st.numRedelivered,
      num_waiting: this.numWaiting(),
      num_pending: this.stopped ? 0 : this.numPending(),
    };
    if (this.isPush && this.pushBound) out['push_bound'] = true;
    out['ts'] = formatTimeUs(this.rt.nowUs());
    return out;
  }

  // ---- config update -------------------------------------------------------------------------

  /** Take a new config that passed checkUpdate(). */
  update(next: ConsumerConfig): void {
    const oldFilters = this.filters.join('\n');
    const oldDeliver = this.config.deliver_subject;
    const oldWait = JSON.stringify([this.config.ack_wait, this.config.backoff]);
    this.config = next;
    this.applyConfig(next);
    if (this.filters.join('\n') !== oldFilters) {
      const resume = this.resumeSeq();
      this.buf = [];
      this.bufPos = 0;
      this.staged = null;
      if (this.lps === null) this.sseq = resume;
      this.tailUpTo = -1;
    }
    if (JSON.stringify([next.ack_wait, next.backoff]) !== oldWait) this.state.rearm();
    if (this.isPush && oldDeliver !== next.deliver_subject) {
      this.host.watchDeliverSubject(this, false);
      this.host.watchDeliverSubject(this, true);
      this.pushBound = this.rt.router.index.hasInterest(next.deliver_subject!);
    }
    this.configDirty = true;
    this.state.headerDirty = true;
    this.requestFlush();
    this.armNext();
    this.pump();
  }

  // ---- acks ------------------------------------------------------------------------------------

  /** One message on `$JS.ACK.<stream>.<consumer>.…` (the body is only valid during this call). */
  processAck(t: AckTarget, body: AckBody, reply: string): void {
    if (this.stopped) return;
    const nowUs = this.rt.nowUs();
    this.lastActive = Math.floor(nowUs / 1000);
    const st = this.state;
    switch (body.kind) {
      case AckKind.Ack:
      case AckKind.Next:
        this.ack(t, nowUs);
        break;
      case AckKind.Term:
        if (!this.ackNone && st.pending.has(t.sseq)) {
          const dc = st.pending.get(t.sseq)!.dc;
          this.ackOne(t.sseq, nowUs);
          this.host.advisory('MSG_TERMINATED', this, {
            consumer_seq: t.dseq,
            stream_seq: t.sseq,
            deliveries: dc,
            reason: 'Message terminated by client',
          });
        }
        break;
      case AckKind.Nak:
        if (!this.ackNone) {
          st.nak(t.sseq, nowUs, Math.floor(body.delayNs / 1000));
          if (body.delayNs > 0) this.arm(this.nowMs() + Math.ceil(body.delayNs / 1e6));
        }
        break;
      case AckKind.Progress:
        if (!this.ackNone) {
          st.progress(t.sseq, nowUs);
          const p = st.pending.get(t.sseq);
          if (p !== undefined && p.due > 0) this.arm(Math.ceil(p.due / 1000));
        }
        break;
    }
    this.requestFlush();
    if (body.kind === AckKind.Next) {
      if (reply !== '') this.processPull(reply, body.next ?? EMPTY);
      return;
    }
    if (reply !== '') this.rt.publish(reply, '', 0, EMPTY);
    if (this.isPush || this.waiting.length > 0) this.pump();
  }

  private ack(t: AckTarget, nowUs: number): void {
    if (this.ackNone) return;
    if (this.config.ack_policy === 'all') {
      const acked = this.state.ackAll(t.sseq, t.dseq);
      this.lastAckUs = nowUs;
      if (this.retentionAcks) for (const s of acked) this.stream.acked(this, s);
      return;
    }
    this.ackOne(t.sseq, nowUs);
  }

  private ackOne(sseq: number, nowUs: number): void {
    if (this.state.ack(sseq)) {
      this.lastAckUs = nowUs;
      if (this.retentionAcks) this.stream.acked(this, sseq);
    }
  }

  /** A response on `$JS.FC.<stream>.<consumer>.<id>`: the client caught up to that request. */
  processFlowControl(subject: string): void {
    if (this.stopped || subject !== this.fcReply) return;
    this.fcPending = Math.max(0, this.fcPending - this.fcBytesAtRequest);
    this.fcReply = '';
    this.fcBytesAtRequest = 0;
    this.pump();
  }

  /** Interest on the deliver subject may have changed. */
  interestChanged(): void {
    if (this.stopped) return;
    const bound = this.rt.router.index.hasInterest(this.config.deliver_subject!);
    if (bound === this.pushBound) return;
    this.pushBound = bound;
    if (bound) {
      // Flow control restarts with the new subscriber.
      this.fcPending = 0;
      this.fcReply = '';
      this.schedulePump();
    } else {
      this.lastActive = this.nowMs();
      this.armNext();
    }
  }

  // ---- pull requests ---------------------------------------------------------------------------

  processPull(reply: string, data: Uint8Array): void {
    if (this.stopped || reply === '') return;
    if (this.isPush) {
      this.sendStatus(reply, STATUS_PUSH_BASED);
      return;
    }
    const o = parsePullRequest(data);
    if ('bad' in o) {
      this.sendStatus(reply, statusBadRequest(o.bad));
      return;
    }
    const c = this.config;
    if (c.max_batch !== undefined && c.max_batch > 0 && o.batch > c.max_batch) {
      this.sendStatus(reply, statusExceededBatch(c.max_batch));
      return;
    }
    if (c.max_expires !== undefined && c.max_expires > 0) {
      if (o.expiresNs > c.max_expires) {
        this.sendStatus(reply, statusExceededExpires(c.max_expires));
        return;
      }
      if (o.expiresNs === 0 && !o.noWait) o.expiresNs = c.max_expires;
    }
    if (c.max_bytes !== undefined && c.max_bytes > 0 && o.maxBytes > c.max_bytes) {
      this.sendStatus(reply, statusExceededMaxBytes(c.max_bytes));
      return;
    }
    const now = this.nowMs();
    this.lastActive = now;
    const maxWaiting = c.max_waiting ?? 512;
    if (this.waiting.length >= maxWaiting) {
      this.sweepWaiting(now, true);
      if (this.waiting.length >= maxWaiting) {
        this.sendStatus(reply, STATUS_MAX_WAITING);
        return;
      }
    }
    const req = newWaitingRequest(reply, o, now);
    this.waiting.push(req);
    if (req.expiresAt > 0) this.arm(req.expiresAt);
    if (req.hbAt > 0) this.arm(req.hbAt);
    if (req.expiresAt === 0) this.arm(now + INTEREST_SWEEP_MS);
    this.pump();
    if (req.noWait && req.expiresAt === 0) {
      const i = this.waiting.indexOf(req);
      if (i >= 0) {
        this.waiting.splice(i, 1);
        this.sendStatus(reply, req.delivered > 0 ? statusRequestTimeout(req.batch, req.bytesLeft) : STATUS_NO_MESSAGES);
      }
    }
  }

  private numWaiting(): number {
    const now = this.nowMs();
    let n = 0;
    for (const r of this.waiting) if (r.expiresAt === 0 || r.expiresAt > now) n++;
    return n;
  }

  /** Drop requests that expired (408) or whose requester is gone; `interest` also checks interest. */
  private sweepWaiting(now: number, interest: boolean): void {
    const index = this.rt.router.index;
    for (let i = 0; i < this.waiting.length; ) {
      const r = this.waiting[i]!;
      if (r.expiresAt > 0 && r.expiresAt <= now) {
        this.waiting.splice(i, 1);
        this.sendStatus(r.reply, statusRequestTimeout(r.batch, r.hasMaxBytes ? r.bytesLeft : 0));
        continue;
      }
      if (interest && !index.hasInterest(r.reply)) {
        this.waiting.splice(i, 1);
        continue;
      }
      i++;
    }
    if (this.waiting.length === 0) this.lastActive = Math.max(this.lastActive, now);
  }

  // ---- delivery -------------------------------------------------------------------------------

  private schedulePump(): void {
    if (this.yieldQueued || this.stopped) return;
    this.yieldQueued = true;
    setImmediate(this.boundYield);
  }

  /** Deliver what can be delivered now, up to the turn budget; re-entry runs another round. */
  pump(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    let budget = TURN_BUDGET;
    try {
      do {
        this.again = false;
        this.pass++;
        budget = this.isPush ? this.pushSome(budget) : this.pullSome(budget);
      } while (this.again && budget > 0 && !this.stopped);
    } finally {
      this.pumping = false;
    }
    if (budget <= 0 && !this.stopped) this.schedulePump();
    // Out of budget means more to deliver next turn; otherwise whatever is left is blocked.
    else this.releaseBuffer();
    if (this.persistent && (this.state.headerDirty || this.state.dirty.size > 0)) this.requestFlush();
  }

  private pullSome(budget: number): number {
    const index = this.rt.router.index;
    const nowUs = this.rt.nowUs();
    const now = Math.floor(nowUs / 1000);
    while (budget > 0 && this.waiting.length > 0 && !this.stopped) {
      const req = this.waiting[0]!;
      if (req.expiresAt > 0 && req.expiresAt <= now) {
        this.waiting.shift();
        this.sendStatus(req.reply, statusRequestTimeout(req.batch, req.hasMaxBytes ? req.bytesLeft : 0));
        continue;
      }
      if (req.checkedPass !== this.pass) {
        if (!index.hasInterest(req.reply)) {
          this.waiting.shift();
          continue;
        }
        req.checkedPass = this.pass;
      }
      if (!this.stageNext(nowUs)) break;
      const msg = this.staged!;
      const reply = this.stagedReply();
      const size = msg.subject.length + reply.length + msg.raw.length;
      if (req.hasMaxBytes && size > req.bytesLeft) {
        this.waiting.shift();
        this.sendStatus(req.reply, statusSizeExceeded(req.batch, req.bytesLeft));
        continue;
      }
      this.deliverStaged(reply, req.reply, nowUs);
      budget--;
      req.batch--;
      req.delivered++;
      if (req.hbMs > 0) req.hbAt = now + req.hbMs;
      if (req.hasMaxBytes) req.bytesLeft -= size;
      if (req.batch <= 0) {
        this.waiting.shift();
      } else if (req.hasMaxBytes && req.bytesLeft <= 0) {
        this.waiting.shift();
        this.sendStatus(req.reply, statusBatchCompleted(req.batch, 0));
      }
    }
    if (this.waiting.length === 0) this.lastActive = now;
    return budget;
  }

  private pushSome(budget: number): number {
    if (!this.pushBound) return budget;
    const fc = this.config.flow_control === true;
    const nowUs = this.rt.nowUs();
    const deliver = this.config.deliver_subject!;
    // pushBound is re-read each round: a delivery can close a slow subscriber's connection.
    while (budget > 0 && !this.stopped && this.pushBound) {
      if (fc && this.fcPending >= FC_STALL_BYTES) break;
      if (!this.stageNext(nowUs)) break;
      const msg = this.staged!;
      const reply = this.stagedReply();
      const size = msg.subject.length + reply.length + msg.raw.length;
      this.deliverStaged(reply, deliver, nowUs);
      budget--;
      if (fc) {
        this.fcPending += size;
        if (this.fcReply === '' && this.fcPending >= FC_REQUEST_BYTES) this.sendFlowControl();
      }
    }
    // Heartbeats are for idle periods: any delivery pushes the next one back.
    const hb = this.heartbeatMs();
    if (hb > 0 && this.lastDeliveredUs >= nowUs) this.pushHbAt = Math.floor(nowUs / 1000) + hb;
    return budget;
  }

  private sendFlowControl(): void {
    this.fcReply = `$JS.FC.${this.stream.name}.${this.name}.${randomToken()}`;
    this.fcBytesAtRequest = this.fcPending;
    this.rt.publish(this.config.deliver_subject!, this.fcReply, STATUS_FLOW_CONTROL.length, STATUS_FLOW_CONTROL);
  }

  /**
   * Choose the next message: a redelivery that is due, else the next new message (within
   * max_ack_pending and replay timing). It stays staged until delivered.
   */
  private stageNext(nowUs: number): boolean {
    if (this.staged !== null) return true;
    const st = this.state;
    for (;;) {
      const sseq = st.peekRedelivery();
      if (sseq === 0) break;
      const p = st.pending.get(sseq)!;
      if (this.maxDeliver > 0 && p.dc >= this.maxDeliver) {
        st.takeRedelivery();
        st.dropMaxDelivered(sseq);
        this.host.advisory('MAX_DELIVERIES', this, { stream_seq: sseq, deliveries: p.dc });
        continue;
      }
      const msg = this.stream.getMsg(sseq);
      if (msg === null) {
        st.takeRedelivery();
        st.forget(sseq);
        continue;
      }
      this.staged = msg;
      this.stagedRedelivery = true;
      return true;
    }
    if (this.maxAckPending > 0 && st.pending.size >= this.maxAckPending) return false;
    const msg = this.peekNew();
    if (msg === null) return false;
    if (this.config.replay_policy === 'original' && this.replayTs > 0) {
      const dueMs = this.replayWall + Math.max(0, Math.floor((msg.tsUs - this.replayTs) / 1000));
      if (dueMs > Math.floor(nowUs / 1000)) {
        this.replayAt = dueMs;
        this.arm(dueMs);
        return false;
      }
    }
    this.staged = msg;
    this.stagedRedelivery = false;
    return true;
  }

  /** The next message never delivered, without taking it. */
  private peekNew(): StoredMsg | null {
    const s = this.stream;
    if (this.lps !== null) {
      while (this.lpsPos < this.lps.length) {
        const m = s.getMsg(this.lps[this.lpsPos]!);
        if (m !== null) return m;
        this.lpsPos++;
      }
      this.lps = null;
      this.lpsPos = 0;
      this.lpsEnd = 0;
      this.state.headerDirty = true;
    }
    if (this.bufPos < this.buf.length) return this.buf[this.bufPos]!;
    const last = s.lastSeq();
    if (this.sseq > last) return null;
    const want = this.readAhead();
    const got = s.fetch(this.sseq, this.filters, want);
    // Those read were counted in `tail` if they were at or below tailUpTo.
    if (this.tailUpTo >= 0) {
      for (const m of got) if (m.seq <= this.tailUpTo) this.tail--;
    }
    this.buf = got;
    this.bufPos = 0;
    this.sseq = got.length < want ? last + 1 : got[got.length - 1]!.seq + 1;
    if (this.tailUpTo >= 0 && this.sseq > this.tailUpTo) {
      this.tail = 0;
      this.tailUpTo = this.sseq - 1;
    }
    return got.length > 0 ? got[0]! : null;
  }

  /** How many messages to read ahead: what waiting pulls still want, up to READ_AHEAD. */
  private readAhead(): number {
    if (this.isPush) return READ_AHEAD;
    let want = 0;
    for (let i = 0; i < this.waiting.length && want < READ_AHEAD; i++) want += this.waiting[i]!.batch;
    return Math.min(Math.max(want, 1), READ_AHEAD);
  }

  /**
   * Give back read-ahead messages nobody is about to take (no waiting pull, push unbound,
   * flow control or max_ack_pending reached): an idle consumer holds no message bodies.
   * They are read again when needed.
   */
  private releaseBuffer(): void {
    // A staged redelivery stays queued in the ack state; a staged new message is buf[bufPos].
    this.staged = null;
    if (this.bufPos >= this.buf.length) {
      if (this.buf.length > 0) {
        this.buf = [];
        this.bufPos = 0;
      }
      return;
    }
    const left = this.buf.length - this.bufPos;
    const head = this.buf[this.bufPos]!.seq;
    if (this.tailUpTo >= 0) this.tail += left;
    this.sseq = head;
    this.buf = [];
    this.bufPos = 0;
  }

  /** Messages matching the filter not yet delivered (num_pending). */
  private numPending(): number {
    const s = this.stream;
    const last = s.lastSeq();
    if (this.tailUpTo < 0) {
      this.tail = this.sseq > last ? 0 : s.countFrom(this.sseq, this.filters);
      this.tailUpTo = last;
    } else if (last > this.tailUpTo) {
      const from = Math.max(this.tailUpTo + 1, this.sseq);
      if (from <= last) this.tail += s.countFrom(from, this.filters);
      this.tailUpTo = last;
    }
    const lpsLeft = this.lps === null ? 0 : this.lps.length - this.lpsPos;
    return lpsLeft + (this.buf.length - this.bufPos) + this.tail;
  }

  /** The ack reply the staged message will carry. */
  private stagedReply(): string {
    const msg = this.staged!;
    const st = this.state;
    if (this.stagedRedelivery) {
      const p = st.pending.get(msg.seq)!;
      return ackSubject(this.ackPrefix, p.dc + 1, msg.seq, st.dseq + 1, msg.tsUs, this.numPending());
    }
    return ackSubject(this.ackPrefix, 1, msg.seq, st.dseq + 1, msg.tsUs, this.numPending() - 1);
  }

  private deliverStaged(reply: string, to: string, nowUs: number): void {
    const msg = this.staged!;
    this.staged = null;
    const st = this.state;
    if (this.stagedRedelivery) {
      st.takeRedelivery();
      st.redeliver(msg.seq, nowUs);
    } else {
      if (this.lps !== null) this.lpsPos++;
      else this.bufPos++;
      st.deliverNew(msg.seq, nowUs, !this.ackNone);
      if (this.config.replay_policy === 'original') {
        this.replayTs = msg.tsUs;
        this.replayWall = Math.floor(nowUs / 1000);
      }
    }
    if (!this.ackNone) {
      const p = st.pending.get(msg.seq);
      if (p !== undefined) this.arm(Math.ceil(p.due / 1000));
    }
    this.lastDeliveredUs = nowUs;
    this.lastActive = Math.floor(nowUs / 1000);
    if (this.config.headers_only === true) {
      const hdr = headersOnly(msg);
      this.rt.publish(msg.subject, reply, hdr.length, hdr, to);
    } else {
      this.rt.publish(msg.subject, reply, msg.hdrLen, msg.raw, to);
    }
    if (this.ackNone && this.retentionAcks && !this.stagedRedelivery) this.stream.acked(this, msg.seq);
  }

  private sendStatus(reply: string, status: Buffer): void {
    this.rt.publish(reply, '', status.length, status);
  }

  // ---- timers -----------------------------------------------------------------------------------

  private nowMs(): number {
    return Math.floor(this.rt.nowUs() / 1000);
  }

  private heartbeatMs(): number {
    const hb = this.config.idle_heartbeat ?? 0;
    return hb > 0 ? Math.max(1, Math.floor(hb / 1e6)) : 0;
  }

  private inactiveMs(): number {
    const t = this.config.inactive_threshold ?? 0;
    return t > 0 ? Math.max(1, Math.floor(t / 1e6)) : 0;
  }

  private isActive(): boolean {
    return this.isPush ? this.pushBound : this.waiting.length > 0;
  }

  /** Make sure the timer fires no later than `atMs`. */
  private arm(atMs: number): void {
    if (this.stopped || atMs >= this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = atMs;
    this.timer = setTimeout(this.boundTimer, Math.max(0, atMs - this.nowMs()));
    this.timer.unref();
  }

  /** Arm for the earliest deadline still ahead. */
  private armNext(): void {
    let at = Infinity;
    const due = this.state.nextDue();
    if (due !== Infinity) at = Math.ceil(due / 1000);
    for (const r of this.waiting) {
      if (r.expiresAt > 0 && r.expiresAt < at) at = r.expiresAt;
      if (r.hbAt > 0 && r.hbAt < at) at = r.hbAt;
    }
    if (this.waiting.length > 0) at = Math.min(at, this.nowMs() + INTEREST_SWEEP_MS);
    if (this.isPush && this.pushHbAt > 0) at = Math.min(at, this.pushHbAt);
    const inactive = this.inactiveMs();
    if (inactive > 0 && !this.isActive()) at = Math.min(at, this.lastActive + inactive);
    if (this.replayAt > 0) at = Math.min(at, this.replayAt);
    if (this.flushAt > 0) at = Math.min(at, this.flushAt);
    if (at !== Infinity) this.arm(at);
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.stopped) return;
    const nowUs = this.rt.nowUs();
    const now = Math.floor(nowUs / 1000);
    // A message past max_deliver leaves pending when its redelivery is next attempted (a pull
    // or a bound push consumer), as in nats-server 2.9.10, not when its ack wait ends.
    let work = this.state.expire(nowUs) > 0;
    if (this.replayAt > 0 && this.replayAt <= now) {
      this.replayAt = 0;
      work = true;
    }
    if (this.flushAt > 0 && this.flushAt <= now) {
      this.flushAt = 0;
      this.requestFlush();
    }
    if (this.waiting.length > 0) {
      this.sweepWaiting(now, true);
      for (const r of this.waiting) {
        if (r.hbAt > 0 && r.hbAt <= now) {
          r.hbAt = now + r.hbMs;
          this.sendStatus(r.reply, statusHeartbeat(this.state.dseq, this.state.dsseq));
        }
      }
    }
    if (this.isPush) {
      const hb = this.heartbeatMs();
      if (hb > 0 && this.pushHbAt > 0 && this.pushHbAt <= now) {
        this.pushHbAt = now + hb;
        if (this.pushBound) {
          const stalled = this.fcReply !== '' && this.fcPending >= FC_STALL_BYTES ? this.fcReply : '';
          const status = statusHeartbeat(this.state.dseq, this.state.dsseq, stalled);
          this.rt.publish(this.config.deliver_subject!, '', status.length, status);
        }
      }
    }
    const inactive = this.inactiveMs();
    if (inactive > 0 && !this.isActive() && now >= this.lastActive + inactive) {
      this.remove();
      return;
    }
    if (work) this.pump();
    this.armNext();
  }

  /**
   * Delete this consumer from its stream (API delete or inactivity). Removing it from
   * stream.consumers is what tells an interest stream to release what nobody needs.
   */
  remove(): void {
    if (this.stopped) return;
    if (this.stream.consumers.get(this.name) === this) this.stream.consumers.delete(this.name);
    this.stop('deleted');
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  // ---- persistence ------------------------------------------------------------------------------

  private resumeSeq(): number {
    if (this.lps !== null) return this.lpsPos < this.lps.length ? this.lps[this.lpsPos]! : this.lpsEnd + 1;
    return this.bufPos < this.buf.length ? this.buf[this.bufPos]!.seq : this.sseq;
  }

  /** Queue this consumer's changes for the next group commit (once per commit). */
  requestFlush(done?: (err: Error | null) => void): void {
    if (!this.persistent) {
      done?.(null);
      return;
    }
    if (done !== undefined) {
      // A caller waiting for durability (create, update) gets its own slot in the commit.
      this.rt.inNextCommit(this.boundFlush, done);
      return;
    }
    if (this.flushQueued) return;
    this.flushQueued = true;
    this.rt.inNextCommit(this.boundFlush);
  }

  private flush(db: Database): void {
    this.flushQueued = false;
    if (this.erased) return;
    const st = this.state;
    const stream = this.stream.name;
    const nowUs = this.rt.nowUs();
    // Deliveries younger than PENDING_WRITE_DELAY_US wait: most are acked before they would be
    // written, sparing the card an insert and a delete each. Until they are written, the saved
    // resume point stays at the oldest of them, so a crash redelivers rather than loses them.
    let deferred: number[] | null = null;
    let minDeferred = Infinity;
    let oldestDeferredTs = Infinity;
    try {
      for (const sseq of st.dirty) {
        const p = st.pending.get(sseq);
        if (p !== undefined) {
          if (!this.stopped && !this.persisted.has(sseq) && nowUs - p.ts < PENDING_WRITE_DELAY_US) {
            (deferred ??= []).push(sseq);
            if (sseq < minDeferred) minDeferred = sseq;
            if (p.ts < oldestDeferredTs) oldestDeferredTs = p.ts;
            continue;
          }
          savePending(db, stream, this.name, sseq, p.dseq, p.dc, p.ts);
          this.persisted.add(sseq);
        } else if (st.rdc.has(sseq)) {
          savePending(db, stream, this.name, sseq, 0, st.rdc.get(sseq)!, 0);
          this.persisted.add(sseq);
        } else if (this.persisted.delete(sseq)) {
          deletePending(db, stream, this.name, sseq);
        }
      }
      st.dirty.clear();
      if (deferred !== null) for (const sseq of deferred) st.dirty.add(sseq);
      const nextSeq = Math.min(this.resumeSeq(), minDeferred);
      if (st.headerDirty || this.configDirty || nextSeq !== this.savedNextSeq) {
        saveConsumer(db, {
          stream,
          name: this.name,
          config: JSON.stringify(configJson(this.config)),
          created: this.created,
          dseq: st.dseq,
          dsseq: st.dsseq,
          adflr: st.adflr,
          asflr: st.asflr,
          next_seq: nextSeq,
          lps_end: this.lps === null ? 0 : this.lpsEnd,
        });
        this.savedNextSeq = nextSeq;
        st.headerDirty = false;
        this.configDirty = false;
      }
    } catch (err) {
      // A failing consumer write must not fail the stream writes sharing the transaction.
      this.rt.log.error(`JetStream consumer '${this.stream.name} > ${this.name}': saving state failed: ${(err as Error).message}`);
    }
    if (deferred !== null) {
      this.flushAt = Math.ceil((oldestDeferredTs + PENDING_WRITE_DELAY_US) / 1000);
      this.arm(this.flushAt);
    }
  }

  private matches(subject: string): boolean {
    const f = this.filters;
    if (f.length === 0) return true;
    for (let i = 0; i < f.length; i++) if (subjectMatches(f[i]!, subject)) return true;
    return false;
  }
}

/**
 * A `direct` consumer (one that feeds a mirror or source): CONSUMER.NAMES / LIST, consumer_count,
 * /jsz and max_consumers leave it out, as nats-server does; $JS.API.INFO still counts it.
 */
export function isDirectConsumer(c: ConsumerHandle): boolean {
  return c instanceof Consumer && c.config.direct === true;
}

/** The consumers a stream shows: all but the direct ones. */
export function publicConsumerCount(consumers: Iterable<ConsumerHandle>): number {
  let n = 0;
  for (const c of consumers) if (!isDirectConsumer(c)) n++;
  return n;
}

/** The header block a headers_only delivery carries: the stored headers plus Nats-Msg-Size. */
function headersOnly(msg: StoredMsg): Buffer {
  const size = msg.raw.length - msg.hdrLen;
  if (msg.hdrLen === 0) return Buffer.from(`NATS/1.0\r\n${MSG_SIZE_HDR}${size}\r\n\r\n`, 'latin1');
  // Drop the blank line that ends the stored block, append the header, end the block again.
  const head = msg.raw.subarray(0, msg.hdrLen - 2);
  return Buffer.concat([head, Buffer.from(`${MSG_SIZE_HDR}${size}\r\n\r\n`, 'latin1')]);
}

const TOKEN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomToken(): string {
  let s = '';
  for (let i = 0; i < 4; i++) s += TOKEN_ALPHABET[Math.floor(Math.random() * TOKEN_ALPHABET.length)];
  return s;
}
