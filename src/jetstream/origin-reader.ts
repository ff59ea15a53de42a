/**
 * Reads one origin of a mirror or a source the way nats-server does: through an ephemeral push
 * consumer created on the origin's API prefix (`$JS.API` when local, `$JS.<domain>.API` or any
 * external prefix otherwise, so the same path works across a leafnode), with flow control, idle
 * heartbeats and `direct: true` (a nats-server origin then does not list it).
 *
 * Exactly once, across crashes: a copied message is queued into the stream's next transaction
 * and the origin position (the stream's last_seq for a mirror, a row per source) is written in
 * that same transaction. Flow control is answered only once everything received before the
 * request is committed, so the origin never runs more than its window ahead of the disk. A gap
 * in the consumer sequence, missed heartbeats, an unanswered create or a failed commit start a
 * new consumer at the first origin sequence not yet committed (or queued), after a backoff when
 * something failed; each change of health is logged once.
 */
import { randomBytes } from 'node:crypto';
import type { Message } from '../core/message.js';
import type { Subscriber, Subscription } from '../core/subscription.js';
import { headerStatus, headerValue } from './headers.js';
import { withStreamSource, type OriginSpec } from './stream-origin.js';
import type { ApiError, JetStreamRuntime } from './types.js';

/** nats-server's heartbeat for these consumers; three missed ones mean the consumer is gone. */
export const ORIGIN_HEARTBEAT_MS = 1000;
const STALL_MS = 3 * ORIGIN_HEARTBEAT_MS;
/** How long a consumer create may go unanswered (and without deliveries) before trying again. */
const CREATE_TIMEOUT_MS = 5000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;
const MIN_SESSION_MS = 1000;
/** The ack_wait nats-server gives these consumers (ack_policy none: never used). */
const ACK_WAIT_NS = 22 * 3600 * 1_000_000_000;

/** What a reader needs of the stream it copies into. */
export interface OriginSink {
  readonly name: string;
  /** Queue a copied message (our own buffer) for the stream's next transaction. */
  ingestOrigin(subject: string, hdrLen: number, raw: Buffer, tag: OriginTag): void;
}

/** Marks a queued message as copied from an origin: where it came from and when it was stored there. */
export class OriginTag {
  constructor(
    readonly reader: OriginReader,
    /** The reader's epoch when queued: a rewind makes everything queued before it stale. */
    readonly epoch: number,
    readonly seq: number,
    /** Store time at the origin, µs. */
    readonly tsUs: number,
    /** Arrival counter of the reader (flow control answers wait for commits up to it). */
    readonly n: number,
  ) {}

  get stale(): boolean {
    return this.reader.epoch !== this.epoch;
  }
}

/** Refusals that may clear up (room freed, resources back): wait and ask again from that message. */
function retryable(e: ApiError): boolean {
  return e.err_code === 10077 || e.err_code === 10023 || e.err_code === 10047 || e.err_code === 10028 || e.err_code === 10109;
}

// ---- delivery reply subjects ------------------------------------------------------------------

/** One parsed delivery reply (reused: no allocation per message). */
const ACK = { sseq: 0, dseq: 0, tsUs: 0, pending: 0, consumerStart: 0, consumerEnd: 0 };
const DOTS = new Int32Array(16);

function digits(s: string, from: number, to: number): number {
  if (to <= from || to - from > 16) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/**
 * Reads `$JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>` or the 2.10+ form with
 * domain and account hash (11 or 12 tokens) into ACK; false for anything else.
 */
function parseDeliveryReply(reply: string): boolean {
  if (!reply.startsWith('$JS.ACK.')) return false;
  let dots = 0;
  for (let i = 0; i < reply.length; i++) {
    if (reply.charCodeAt(i) !== 46) continue;
    if (dots >= DOTS.length) return false;
    DOTS[dots++] = i;
  }
  const tokens = dots + 1;
  // Index of the consumer token; sseq, dseq, ts and pending follow the delivery count.
  let c: number;
  if (tokens === 9) c = 3;
  else if (tokens === 11 || tokens === 12) c = 5;
  else return false;
  const end = (t: number): number => (t < dots ? DOTS[t]! : reply.length);
  const start = (t: number): number => DOTS[t - 1]! + 1;
  const sseq = digits(reply, start(c + 2), end(c + 2));
  const dseq = digits(reply, start(c + 3), end(c + 3));
  const tsStart = start(c + 4);
  const tsEnd = end(c + 4);
  const pending = digits(reply, start(c + 5), end(c + 5));
  if (sseq < 1 || dseq < 1 || pending < 0) return false;
  ACK.sseq = sseq;
  ACK.dseq = dseq;
  // ns since the epoch: drop the last three digits rather than go through a float.
  ACK.tsUs = tsEnd - tsStart > 3 ? digits(reply, tsStart, tsEnd - 3) : 0;
  if (ACK.tsUs < 0) ACK.tsUs = 0;
  ACK.pending = pending;
  ACK.consumerStart = start(c);
  ACK.consumerEnd = end(c);
  return true;
}

function token(): string {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const b = randomBytes(8);
  let s = '';
  for (let i = 0; i < 8; i++) s += alphabet[b[i]! % 62];
  return s;
}

type Phase = 'stopped' | 'waiting' | 'session';

export class OriginReader implements Subscriber {
  readonly kind = 'internal' as const;
  readonly echo = true;
  readonly cid: number;

  /** Bumped by every rewind: queued messages of an older epoch are dropped unstored. */
  epoch = 0;
  /** Last origin seq whose copy is committed (0 = none yet). */
  private committed: number;
  /** Last origin seq handled in the open transaction. */
  private processed: number;
  private committedN = 0;
  private processedN = 0;
  /** Next origin seq to ask for (0 = none copied yet: the configured start). */
  private next: number;
  /** Set inside a transaction when a message could not be stored: ask again from it once it ends. */
  private rewindTo = 0;
  private rewindReason = '';
  /** Arrival counter. */
  private n = 0;

  private phase: Phase = 'stopped';
  private deliverSub: Subscription | null = null;
  private replySub: Subscription | null = null;
  private consumer = '';
  private dseq = 0;
  private responded = false;
  private sessionStart = 0;
  private lastHeard = 0;
  /** Flow control subjects to answer once arrivals up to `n` are committed. */
  private fc: { n: number; reply: string }[] = [];

  private timer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_MIN_MS;
  /** '' when healthy; the reason of the current trouble otherwise (logged once per change). */
  private trouble = '';
  private everStarted = false;

  /** For stream info. */
  private lastActive = 0;
  private lag = 0;
  private error: ApiError | null = null;

  private readonly onTimer = (): void => {
    this.timer = null;
    this.tick();
  };

  constructor(
    private readonly rt: JetStreamRuntime & { nextCid(): number },
    private readonly sink: OriginSink,
    readonly spec: OriginSpec,
    /** Last origin seq already committed (0 = nothing copied yet). */
    position: number,
  ) {
    this.cid = rt.nextCid();
    this.committed = position;
    this.processed = position;
    this.next = position > 0 ? position + 1 : 0;
  }

  /** The committed position (what a restart resumes after). */
  get position(): number {
    return this.committed;
  }

  /** The position within the open transaction (written beside the messages). */
  get pendingPosition(): number {
    return this.processed;
  }

  private get what(): string {
    const via = this.spec.external ? ` via ${this.spec.api}` : '';
    return `JetStream stream '${this.sink.name}': ${this.spec.kind} '${this.spec.name}'${via}`;
  }

  /** Start reading on the next turn: after the API answers (server start) and outside the caller's work. */
  start(): void {
    if (this.phase !== 'stopped') return;
    this.phase = 'waiting';
    this.arm(0);
  }

  /** Stop reading; the origin's consumer is deleted (it would also go away unbound). */
  stop(): void {
    this.phase = 'stopped';
    this.clearTimer();
    this.closeSession();
    this.epoch++;
  }

  // ---- sessions (one consumer each) --------------------------------------------------------------

  private openSession(): void {
    const tok = token();
    const prefix = this.spec.deliverPrefix !== '' ? this.spec.deliverPrefix : '$JS';
    const deliver = `${prefix}.${this.spec.kind === 'mirror' ? 'M' : 'S'}.${tok}`;
    const reply = `$JSC.R.${tok}`;
    this.phase = 'session';
    this.consumer = '';
    this.dseq = 0;
    this.responded = false;
    this.fc = [];
    this.sessionStart = Date.now();
    this.lastHeard = 0;
    this.deliverSub = { subject: deliver, queue: '', sid: `${this.spec.key}#d`, owner: this, msgs: 0, max: 0 };
    this.replySub = { subject: reply, queue: '', sid: `${this.spec.key}#r`, owner: this, msgs: 0, max: 0 };
    // Subscribed before asking: the origin may deliver before it answers.
    this.rt.router.subscribe(this.deliverSub);
    this.rt.router.subscribe(this.replySub);
    this.arm(ORIGIN_HEARTBEAT_MS);
    const config: Record<string, unknown> = {};
    if (this.next > 0) {
      config['deliver_policy'] = 'by_start_sequence';
      config['opt_start_seq'] = this.next;
    } else if (this.spec.optStartSeq > 0) {
      config['deliver_policy'] = 'by_start_sequence';
      config['opt_start_seq'] = this.spec.optStartSeq;
    } else if (this.spec.optStartTime !== '') {
      config['deliver_policy'] = 'by_start_time';
      config['opt_start_time'] = this.spec.optStartTime;
    } else {
      config['deliver_policy'] = 'all';
    }
    config['ack_policy'] = 'none';
    config['ack_wait'] = ACK_WAIT_NS;
    config['max_deliver'] = 1;
    if (this.spec.filter !== '') config['filter_subject'] = this.spec.filter;
    config['replay_policy'] = 'instant';
    config['idle_heartbeat'] = ORIGIN_HEARTBEAT_MS * 1_000_000;
    config['flow_control'] = true;
    config['deliver_subject'] = deliver;
    config['num_replicas'] = 0;
    config['direct'] = true;
    const body = Buffer.from(JSON.stringify({ stream_name: this.spec.name, config }));
    const subject = `${this.spec.api}.CONSUMER.CREATE.${this.spec.name}`;
    // Nobody subscribed to that API (no JetStream there, leaf link down): no need to wait for an answer.
    const heard = this.rt.router.publish({ subject, reply, hdrLen: -1, data: body }, null);
    if (heard === 0 && this.phase === 'session' && this.replySub !== null && !this.responded) {
      this.restart(`no JetStream answers on ${this.spec.api}`, true);
    }
  }

  private closeSession(): void {
    const subs: Subscription[] = [];
    if (this.deliverSub !== null) subs.push(this.deliverSub);
    if (this.replySub !== null) subs.push(this.replySub);
    this.deliverSub = null;
    this.replySub = null;
    if (subs.length > 0) this.rt.router.unsubscribeAll(subs);
    if (this.consumer !== '') {
      // Fire and forget: an unbound ephemeral goes away on its own if this is lost.
      this.rt.publish(`${this.spec.api}.CONSUMER.DELETE.${this.spec.name}.${this.consumer}`, '', 0, Buffer.alloc(0));
      this.consumer = '';
    }
    this.fc = [];
  }

  /** Drop this consumer and start another at the first origin seq not yet queued. */
  private restart(reason: string, failed: boolean): void {
    if (this.phase === 'stopped') return;
    this.closeSession();
    this.phase = 'waiting';
    this.note(reason);
    // A routine restart (a gap) is immediate, unless sessions keep ending young.
    if (Date.now() - this.sessionStart < MIN_SESSION_MS) failed = true;
    let delay = 0;
    if (failed) {
      delay = Math.round(this.retryMs * (0.8 + Math.random() * 0.4));
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    }
    this.arm(delay);
  }

  private tick(): void {
    if (this.phase === 'waiting') {
      this.openSession();
      return;
    }
    if (this.phase !== 'session') return;
    const now = Date.now();
    if (!this.responded && this.lastHeard === 0) {
      if (now - this.sessionStart >= CREATE_TIMEOUT_MS) return this.restart(`no response from ${this.spec.api}`, true);
    } else if (now - Math.max(this.lastHeard, this.sessionStart) >= STALL_MS) {
      return this.restart('no heartbeats from the origin', true);
    } else if (now - this.sessionStart >= 2 * STALL_MS) {
      // A session that lasts is a working link: the next trouble starts with short retries.
      this.retryMs = RETRY_MIN_MS;
    }
    this.arm(ORIGIN_HEARTBEAT_MS);
  }

  private arm(ms: number): void {
    this.clearTimer();
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Log a change of health once: a new trouble, or the end of one ('' = a routine restart). */
  private note(reason: string): void {
    if (reason === '' || reason === this.trouble) return;
    this.trouble = reason;
    if (reason !== '') this.rt.log.warn(`${this.what}: ${reason}; retrying`);
  }

  private healthy(): void {
    this.error = null;
    if (this.trouble !== '') {
      this.trouble = '';
      this.rt.log.info(`${this.what}: reading again from origin seq ${this.next > 0 ? this.next : 'start'}`);
    } else if (!this.everStarted) {
      this.rt.log.debug(`${this.what}: reading from origin seq ${this.next > 0 ? this.next : 'start'}`);
    }
    this.everStarted = true;
  }

  // ---- Subscriber ------------------------------------------------------------------------------

  deliver(sub: Subscription, msg: Message): void {
    if (this.phase !== 'session') return;
    if (sub === this.deliverSub) this.onDeliver(msg);
    else if (sub === this.replySub) this.onCreated(msg);
  }

  private onCreated(msg: Message): void {
    if (this.replySub !== null) {
      this.rt.router.unsubscribe(this.replySub);
      this.replySub = null;
    }
    const data = msg.hdrLen > 0 ? msg.data.subarray(msg.hdrLen) : msg.data;
    let res: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
      res = typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
    } catch {
      res = {};
    }
    const err = res['error'] as ApiError | undefined;
    if (err !== undefined && typeof err === 'object') {
      this.error = { code: Number(err.code), err_code: Number(err.err_code), description: String(err.description) };
      return this.restart(this.error.description, true);
    }
    if (typeof res['name'] !== 'string') {
      // A no-responders status or something that is no consumer info: nobody serves that API.
      return this.restart(`no JetStream answers on ${this.spec.api}`, true);
    }
    this.responded = true;
    this.consumer = res['name'];
    this.lastHeard = Date.now();
    this.lastActive = this.lastHeard;
    if (typeof res['num_pending'] === 'number' && this.dseq === 0) this.lag = res['num_pending'];
    this.healthy();
  }

  private onDeliver(msg: Message): void {
    const data = msg.data;
    const hdrLen = msg.hdrLen > 0 ? msg.hdrLen : 0;
    // A status (`NATS/1.0 100 ...`): a space where a plain header block has its line end.
    if (hdrLen >= 12 && data[8] === 32) return this.onStatus(msg);
    let subject = msg.subject;
    let reply = msg.reply;
    // Across a leafnode a delivery may still carry `<ack reply>@<subject>` (jetstream-api.md §8).
    const at = reply.indexOf('@');
    if (at > 0) {
      subject = reply.slice(at + 1);
      reply = reply.slice(0, at);
    }
    if (!parseDeliveryReply(reply)) return;
    const now = Date.now();
    this.lastHeard = now;
    this.lastActive = now;
    if (this.consumer === '') this.consumer = reply.slice(ACK.consumerStart, ACK.consumerEnd);
    if (ACK.dseq !== this.dseq + 1) return this.restart('', false); // a gap: start over from what we hold
    this.dseq = ACK.dseq;
    this.lag = ACK.pending;
    if (!this.responded && this.dseq === 1) this.healthy();
    const seq = ACK.sseq;
    // Already queued or stored (a new consumer may start before what we hold).
    if (this.next > 0 && seq < this.next) return;
    const src = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let raw: Buffer;
    let hl = hdrLen;
    if (this.spec.kind === 'source') {
      const out = withStreamSource(src, hdrLen, this.spec.iname, seq);
      raw = out.raw;
      hl = out.hdrLen;
    } else {
      // The router's buffer is only ours during this call.
      raw = Buffer.allocUnsafe(src.length);
      src.copy(raw);
    }
    this.next = seq + 1;
    this.sink.ingestOrigin(subject, hl, raw, new OriginTag(this, this.epoch, seq, ACK.tsUs, ++this.n));
  }

  private onStatus(msg: Message): void {
    const st = headerStatus(msg.data, msg.hdrLen);
    if (st.code !== 100) return;
    const now = Date.now();
    this.lastHeard = now;
    this.lastActive = now;
    if (st.description.startsWith('FlowControl')) {
      if (msg.reply !== '') this.answerWhenCommitted(msg.reply);
      return;
    }
    // Idle heartbeat: the consumer tells what it delivered last; more than we saw is a gap.
    const last = headerValue(msg.data, msg.hdrLen, 'Nats-Last-Consumer');
    if (last !== null && Number(last) > this.dseq) return this.restart('', false);
    const stalled = headerValue(msg.data, msg.hdrLen, 'Nats-Consumer-Stalled');
    if (stalled !== null && stalled !== '' && !this.fc.some((f) => f.reply === stalled)) this.answerWhenCommitted(stalled);
  }

  private answerWhenCommitted(reply: string): void {
    this.fc.push({ n: this.n, reply });
    this.flushFlowControl();
  }

  private flushFlowControl(): void {
    while (this.fc.length > 0 && this.fc[0]!.n <= this.committedN) {
      const f = this.fc.shift()!;
      this.rt.publish(f.reply, '', 0, Buffer.alloc(0));
    }
  }

  // ---- the stream's transaction -------------------------------------------------------------------

  /**
   * The stream handled a copied message inside its open transaction: stored (or a duplicate,
   * or refused for good: the position moves on), or refused for now: everything queued after it
   * is dropped and it is asked for again once the transaction ended.
   */
  processedMsg(tag: OriginTag, refusal: ApiError | null): void {
    if (tag.stale) return;
    if (refusal !== null && retryable(refusal)) {
      this.epoch++;
      this.rewindTo = tag.seq;
      this.rewindReason = `can not store origin seq ${tag.seq}: ${refusal.description}`;
      return;
    }
    if (refusal !== null) this.rt.log.warn(`${this.what}: origin seq ${tag.seq} skipped: ${refusal.description}`);
    if (tag.seq > this.processed) this.processed = tag.seq;
    this.processedN = tag.n;
  }

  /** The stream's transaction ended (`err` null = committed). */
  committedTx(err: Error | null): void {
    if (err !== null) {
      // Only a reader with arrivals not yet committed can have lost some in it.
      if (this.n <= this.committedN && this.rewindTo === 0) return;
      // Nothing of it is stored: back to the committed position.
      this.processed = this.committed;
      this.processedN = this.committedN;
      this.epoch++;
      this.rewindTo = 0;
      this.next = this.committed > 0 ? this.committed + 1 : 0;
      if (this.phase !== 'stopped') this.restart(`store failed: ${err.message}`, true);
      return;
    }
    this.committed = this.processed;
    this.committedN = this.processedN;
    if (this.rewindTo > 0) {
      this.next = this.rewindTo;
      this.rewindTo = 0;
      if (this.phase !== 'stopped') this.restart(this.rewindReason, true);
      return;
    }
    this.flushFlowControl();
  }

  // ---- stream info ----------------------------------------------------------------------------------

  /** The `mirror` / `sources[]` entry of stream info, as nats-server writes it. */
  info(external: { api: string; deliver?: string } | undefined): Record<string, unknown> {
    const o: Record<string, unknown> = { name: this.spec.name };
    if (this.spec.filter !== '') o['filter_subject'] = this.spec.filter;
    if (external !== undefined) o['external'] = { api: external.api, deliver: external.deliver ?? '' };
    o['lag'] = this.lag;
    o['active'] = this.lastActive > 0 ? (Date.now() - this.lastActive) * 1_000_000 : -1;
    if (this.error !== null) o['error'] = this.error;
    return o;
  }
}
