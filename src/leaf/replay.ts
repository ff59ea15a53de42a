/**
 * Store-and-forward for one remote: while the uplink is down (or a backlog is still being
 * sent, or the link is congested) locally published messages on the buffered subjects go to
 * the SQLite queue instead of the link; once the link is up again they are replayed in order,
 * each with a Nats-Msg-Id so a hub JetStream stream stores it once however often it is sent.
 *
 * A buffered message leaves the queue only when the hub has it:
 *  - sent as a JetStream publish (reply = our ack inbox): on the hub's PubAck;
 *  - to a subject the hub has no stream for (learned when a message's PubAck never came),
 *    once the socket wrote it, as nothing more can be known of a core message;
 *  - nobody on the hub wants the subject: dropped from the queue, as nats-server drops it.
 * On a PubAck error or a lost link the replay rewinds to the oldest message still queued;
 * the ones resent are de-duplicated by the hub stream through their Nats-Msg-Id.
 */
import type { Message } from '../core/message.js';
import type { Router } from '../core/router.js';
import type { Subscriber, Subscription } from '../core/subscription.js';
import type { Logger } from '../log.js';
import type { LeafBufferStore } from './buffer-store.js';
import type { BufferedMessage, BufferStats, LeafBufferOptions, ReplayProgress } from './types.js';

/** What the replay needs of the link it sends through. */
export interface ReplaySender {
  /** The hub's interest in `subject` (null: none, or the link is not up). */
  hubInterest(subject: string): { plain: boolean; queues: string[] } | null;
  readonly headers: boolean;
  /** Data bytes queued on the link and not yet written by its socket. */
  readonly pendingBytes: number;
  /** Data-lane offset the hub has read up to (confirmed by a PONG). */
  readonly flushedOffset: number;
  send(subject: string, reply: string, queues: readonly string[], hdrLen: number, data: Uint8Array): number;
}

/** PubAcks outstanding at once. */
const WINDOW = 128;
const READ_BATCH = 256;
/** Link data queued beyond this: wait for the socket before sending more of the backlog. */
const SEND_HIGH_WATER = 512 * 1024;
/** A PubAck not back by then on a subject never acknowledged: the hub has no stream for it. */
const PROBE_TIMEOUT_MS = 2000;
/** A PubAck not back by then on a subject a stream acknowledged before: resend from there. */
const ACK_TIMEOUT_MS = 10_000;
const RETRY_AFTER_ERROR_MS = 1000;
const TICK_MS = 250;
const PROGRESS_LOG_MS = 10_000;
const MAX_MODES = 10_000;

type SubjectMode = 'jetstream' | 'core';

interface InFlight {
  readonly subject: string;
  readonly sentAt: number;
  /** Data-lane offset after the message: the hub has read it once flushedOffset passes this. */
  readonly end: number;
}

export class Replayer implements Subscriber {
  readonly kind = 'internal' as const;
  readonly echo = true;
  readonly cid: number;
  private sender: ReplaySender | null = null;
  private readonly ackPrefix: string;
  private readonly ackSub: Subscription;
  private cursor = 0;
  private batch: BufferedMessage[] = [];
  private batchAt = 0;
  private readonly inflight = new Map<number, InFlight>();
  /** Core messages sent, removed once the socket wrote them (in send order). */
  private readonly flushWait: { id: number; end: number }[] = [];
  private readonly modes = new Map<string, SubjectMode>();
  private replaying = false;
  private pausedUntil = 0;
  private tokens = 0;
  private lastRefill = 0;
  private timer: NodeJS.Timeout | null = null;
  private expireTimer: NodeJS.Timeout | null = null;
  private replayed = 0;
  private discarded = 0;
  private backlogAtStart = 0;
  /** `replayed` when the running replay started: its rate counts only its own messages. */
  private replayedAtStart = 0;
  private startedAt = 0;
  private lastProgressLog = 0;
  private lastErrorLog = 0;

  constructor(
    private readonly store: LeafBufferStore,
    private readonly opts: LeafBufferOptions,
    private readonly router: Router,
    private readonly log: Logger,
    private readonly label: string,
    cid: number,
    inbox: string,
  ) {
    this.cid = cid;
    this.ackPrefix = `${inbox}.`;
    this.ackSub = { subject: `${inbox}.*`, queue: '', sid: 'ack', owner: this, msgs: 0, max: 0 };
    router.subscribe(this.ackSub);
    if (opts.maxAgeMs > 0) {
      this.expireTimer = setInterval(() => this.expire(), Math.min(60_000, Math.max(1000, opts.maxAgeMs / 10)));
      this.expireTimer.unref();
    }
    const st = store.stats();
    if (st.msgs > 0) this.log.info(`Leafnode ${label}: ${st.msgs} buffered message(s) (${st.bytes} bytes) waiting for the uplink`);
  }

  /** True when a live message on a buffered subject must go into the queue (order and durability). */
  takes(): boolean {
    return this.sender === null || this.replaying || !this.store.empty || this.sender.pendingBytes > SEND_HIGH_WATER;
  }

  append(msg: Message): void {
    const receipt = msg.receipt;
    receipt?.captured();
    this.store.append(msg.to ?? msg.subject, msg.reply, msg.hdrLen, msg.data, Date.now(), (err) => {
      receipt?.stored(err);
      if (err === null && this.sender !== null) this.kick();
    });
    if (this.sender !== null) this.replaying = true;
  }

  linkUp(sender: ReplaySender): void {
    this.sender = sender;
    this.rewind();
    this.pausedUntil = 0;
    this.tokens = this.opts.replayRate > 0 ? Math.min(this.opts.replayRate, WINDOW) : 0;
    this.lastRefill = Date.now();
    const st = this.store.stats();
    if (st.msgs > 0) {
      this.replaying = true;
      this.backlogAtStart = st.msgs;
      this.replayedAtStart = this.replayed;
      this.startedAt = Date.now();
      this.lastProgressLog = this.startedAt;
      this.log.info(`Leafnode ${this.label}: replaying ${st.msgs} buffered message(s) (${st.bytes} bytes)${this.opts.replayRate > 0 ? ` at up to ${this.opts.replayRate} msgs/s` : ''}`);
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.pump();
  }

  linkDown(): void {
    this.sender = null;
    this.rewind();
    this.flushWait.length = 0;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    // The hub's streams may change while it is away.
    this.modes.clear();
    this.replaying = false;
  }

  /** The link's socket wrote more: core messages it carried are delivered. */
  progress(): void {
    const s = this.sender;
    if (s === null) return;
    const flushed = s.flushedOffset;
    let n = 0;
    while (n < this.flushWait.length && this.flushWait[n]!.end <= flushed) {
      this.store.remove(this.flushWait[n]!.id);
      this.replayed++;
      n++;
    }
    if (n > 0) this.flushWait.splice(0, n);
    this.pump();
  }

  close(): void {
    this.linkDown();
    if (this.expireTimer !== null) clearInterval(this.expireTimer);
    this.router.unsubscribe(this.ackSub);
  }

  // ---- PubAcks --------------------------------------------------------------------------

  deliver(_sub: Subscription, msg: Message): void {
    if (!msg.subject.startsWith(this.ackPrefix)) return;
    const id = Number(msg.subject.slice(this.ackPrefix.length));
    const f = this.inflight.get(id);
    if (f === undefined) return;
    const body = msg.hdrLen > 0 ? msg.data.subarray(msg.hdrLen) : msg.data;
    const ack = parseAck(body);
    if (ack === null) {
      // A 503 no-responders status or a reply from something that is not a stream: not a PubAck.
      return;
    }
    if (ack.error !== undefined) {
      const now = Date.now();
      if (now - this.lastErrorLog > 60_000) {
        this.lastErrorLog = now;
        this.log.warn(`Leafnode ${this.label}: the hub refused a buffered message on "${f.subject}": ${ack.error.description ?? 'error'} (code ${ack.error.code ?? 0}); retrying`);
      }
      this.rewind();
      this.pausedUntil = now + RETRY_AFTER_ERROR_MS;
      return;
    }
    this.inflight.delete(id);
    this.setMode(f.subject, 'jetstream');
    this.store.remove(id);
    this.replayed++;
    this.pump();
  }

  // ---- sending --------------------------------------------------------------------------

  private kick(): void {
    if (this.inflight.size < WINDOW) this.pump();
  }

  private pump(): void {
    const s = this.sender;
    if (s === null) return;
    const now = Date.now();
    if (now < this.pausedUntil) return;
    const rate = this.opts.replayRate;
    if (rate > 0) {
      this.tokens = Math.min(rate, this.tokens + ((now - this.lastRefill) * rate) / 1000);
      this.lastRefill = now;
    }
    while (this.inflight.size < WINDOW && s.pendingBytes < SEND_HIGH_WATER) {
      if (rate > 0 && this.tokens < 1) break;
      const row = this.nextRow();
      if (row === null) break;
      const want = s.hubInterest(row.subject);
      if (want === null) {
        this.store.remove(row.id);
        this.discarded++;
        continue;
      }
      if (rate > 0) this.tokens--;
      const mode = this.modes.get(row.subject);
      const { hdrLen, data } = withMsgId(row, `${this.store.storeId}-${row.id}`, s.headers);
      if (mode === 'core') {
        const end = s.send(row.subject, row.reply, want.queues, hdrLen, data);
        this.flushWait.push({ id: row.id, end });
      } else {
        const end = s.send(row.subject, this.ackPrefix + row.id, want.queues, hdrLen, data);
        this.inflight.set(row.id, { subject: row.subject, sentAt: now, end });
      }
    }
    this.checkDone();
  }

  private nextRow(): BufferedMessage | null {
    while (true) {
      if (this.batchAt < this.batch.length) {
        const row = this.batch[this.batchAt++]!;
        this.cursor = row.id;
        if (this.inflight.has(row.id)) continue;
        return row;
      }
      this.batch = this.store.readAfter(this.cursor, READ_BATCH);
      this.batchAt = 0;
      if (this.batch.length === 0) return null;
    }
  }

  /** Start again from the oldest message still queued (unacknowledged ones are resent). */
  private rewind(): void {
    this.inflight.clear();
    this.cursor = 0;
    this.batch = [];
    this.batchAt = 0;
    // Core messages already handed to the socket are not re-read: skip up to the last of them.
    const last = this.flushWait[this.flushWait.length - 1];
    if (last !== undefined) this.cursor = last.id;
  }

  private tick(): void {
    const s = this.sender;
    if (s === null) return;
    const now = Date.now();
    let rewound = false;
    for (const [id, f] of this.inflight) {
      const mode = this.modes.get(f.subject);
      const age = now - f.sentAt;
      if (mode !== 'jetstream' && age >= PROBE_TIMEOUT_MS && s.flushedOffset >= f.end) {
        // Written to the hub and never acknowledged: nothing there stores this subject.
        this.setMode(f.subject, 'core');
        this.inflight.delete(id);
        this.store.remove(id);
        this.replayed++;
      } else if (mode === 'jetstream' && age >= ACK_TIMEOUT_MS && !rewound) {
        rewound = true;
      }
    }
    if (rewound) this.rewind();
    this.pump();
    if (this.replaying && now - this.lastProgressLog >= PROGRESS_LOG_MS) {
      this.lastProgressLog = now;
      const p = this.replayProgress(now);
      if (p !== null) {
        const queued = this.store.stats().msgs;
        this.log.info(`Leafnode ${this.label}: replay ${p.done}/${p.total} done, ${Math.round(p.ratePerSec)} msgs/s, ${queued} queued${p.secondsLeft >= 0 ? `, about ${p.secondsLeft}s left` : ''}`);
      }
    }
  }

  /** The running replay's progress (null when none runs), for the progress log line and the link's view. */
  replayProgress(now: number): ReplayProgress | null {
    if (!this.replaying || this.backlogAtStart === 0) return null;
    const queued = this.store.stats().msgs;
    const rate = (this.replayed - this.replayedAtStart) / Math.max(1, (now - this.startedAt) / 1000);
    return {
      done: this.backlogAtStart - Math.min(queued, this.backlogAtStart),
      total: this.backlogAtStart,
      ratePerSec: rate,
      secondsLeft: rate > 0 ? Math.round(queued / rate) : -1,
    };
  }

  private checkDone(): void {
    if (!this.replaying) return;
    if (!this.store.empty || this.inflight.size > 0 || this.flushWait.length > 0) return;
    this.replaying = false;
    if (this.backlogAtStart > 0) {
      const secs = (Date.now() - this.startedAt) / 1000;
      this.log.info(`Leafnode ${this.label}: replay finished: ${this.replayed} message(s) delivered in ${secs.toFixed(1)}s${this.discarded > 0 ? `, ${this.discarded} dropped (no interest on the hub)` : ''}`);
      this.backlogAtStart = 0;
    }
  }

  private setMode(subject: string, mode: SubjectMode): void {
    if (this.modes.size >= MAX_MODES && !this.modes.has(subject)) this.modes.clear();
    this.modes.set(subject, mode);
  }

  private expire(): void {
    const n = this.store.expire(Date.now());
    if (n > 0) this.log.warn(`Leafnode ${this.label}: dropped ${n} buffered message(s) older than max_age`);
  }

  view(): BufferStats & { replaying: boolean; replayed: number; progress: ReplayProgress | null } {
    return { ...this.store.stats(), replaying: this.replaying, replayed: this.replayed, progress: this.replayProgress(Date.now()) };
  }
}

interface PubAck {
  stream?: string;
  error?: { code?: number; description?: string };
}

/** A PubAck or a JetStream error; null for anything else (a 503 status, some other reply). */
function parseAck(body: Uint8Array): PubAck | null {
  try {
    const v: unknown = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8'));
    if (v === null || typeof v !== 'object') return null;
    const a = v as PubAck;
    return typeof a.stream === 'string' || (typeof a.error === 'object' && a.error !== null) ? a : null;
  } catch {
    return null;
  }
}

const MSG_ID = 'Nats-Msg-Id';

/**
 * The message with a Nats-Msg-Id header added (kept when the publisher gave its own), or as
 * it is when the hub takes no headers.
 */
function withMsgId(row: BufferedMessage, id: string, headers: boolean): { hdrLen: number; data: Uint8Array } {
  if (!headers) return { hdrLen: row.hdrLen, data: row.data };
  if (row.hdrLen <= 0) {
    const head = Buffer.from(`NATS/1.0\r\n${MSG_ID}: ${id}\r\n\r\n`);
    return { hdrLen: head.length, data: Buffer.concat([head, row.data]) };
  }
  const block = row.data.subarray(0, row.hdrLen).toString('latin1');
  if (/\r\nnats-msg-id:/i.test(block)) return { hdrLen: row.hdrLen, data: row.data };
  // Insert before the blank line that ends the block.
  const head = Buffer.from(block.slice(0, block.length - 2) + `${MSG_ID}: ${id}\r\n\r\n`, 'latin1');
  return { hdrLen: head.length, data: Buffer.concat([head, row.data.subarray(row.hdrLen)]) };
}
