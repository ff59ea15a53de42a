/**
 * A consumer's delivery and ack bookkeeping, without I/O: delivery sequences, the ack floor,
 * messages pending an ack with their delivery counts, and when each is due for redelivery.
 * The floors move as nats-server moves them (jetstream-api.md §7.3): an ack advances the floor
 * only when it acknowledges the oldest outstanding delivery, and an empty pending set puts the
 * floor at the delivered cursors.
 *
 * Every change marks what persistence must rewrite (`dirty`, `headerDirty`), so the engine can
 * flush a whole batch of changes in one group commit.
 */

export interface PendingEntry {
  /** Consumer sequence of the latest delivery. */
  dseq: number;
  /** Deliveries so far. */
  dc: number;
  /** Latest delivery time, µs. */
  ts: number;
  /** When it is due for redelivery, µs (0 = queued for redelivery now). */
  due: number;
}

/** Binary min-heap of (due, sseq) pairs in two parallel arrays: no object per entry. */
class DueHeap {
  private readonly dues: number[] = [];
  private readonly seqs: number[] = [];

  get size(): number {
    return this.dues.length;
  }

  topDue(): number {
    return this.dues.length > 0 ? this.dues[0]! : Infinity;
  }

  topSeq(): number {
    return this.seqs[0]!;
  }

  push(due: number, seq: number): void {
    const d = this.dues;
    const s = this.seqs;
    let i = d.length;
    d.push(due);
    s.push(seq);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (d[p]! <= due) break;
      d[i] = d[p]!;
      s[i] = s[p]!;
      i = p;
    }
    d[i] = due;
    s[i] = seq;
  }

  pop(): void {
    const d = this.dues;
    const s = this.seqs;
    const lastDue = d.pop()!;
    const lastSeq = s.pop()!;
    const n = d.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && d[r]! < d[l]! ? r : l;
      if (d[c]! >= lastDue) break;
      d[i] = d[c]!;
      s[i] = s[c]!;
      i = c;
    }
    d[i] = lastDue;
    s[i] = lastSeq;
  }

  clear(): void {
    this.dues.length = 0;
    this.seqs.length = 0;
  }
}

export class AckState {
  /** delivered.consumer_seq: the last consumer sequence handed out. */
  dseq = 0;
  /** delivered.stream_seq: the highest stream sequence delivered (or the start - 1). */
  dsseq = 0;
  /** ack_floor.consumer_seq / ack_floor.stream_seq. */
  adflr = 0;
  asflr = 0;
  /** Delivered and not yet acknowledged, by stream seq, inserted in ascending order. */
  readonly pending = new Map<number, PendingEntry>();
  /** Delivery counts above 1 (num_redelivered), kept after max_deliver drops a message from pending. */
  readonly rdc = new Map<number, number>();
  /** Stream seqs whose rows must be rewritten at the next flush. */
  readonly dirty = new Set<number>();
  headerDirty = false;

  private readonly heap = new DueHeap();
  /** Due now, in the order they became due. */
  private readonly rdq: number[] = [];
  private rdqHead = 0;
  private readonly queued = new Set<number>();

  /** @param waitUs ack wait for a given delivery count (ack_wait, or the backoff step), µs. */
  constructor(private readonly waitUs: (dc: number) => number) {}

  get numAckPending(): number {
    return this.pending.size;
  }

  get numRedelivered(): number {
    return this.rdc.size;
  }

  /** A first delivery of `sseq` as consumer seq dseq+1; `track`: false under ack none. */
  deliverNew(sseq: number, nowUs: number, track: boolean): number {
    const dseq = ++this.dseq;
    if (sseq > this.dsseq) this.dsseq = sseq;
    if (track) {
      const due = nowUs + this.waitUs(1);
      this.pending.set(sseq, { dseq, dc: 1, ts: nowUs, due });
      this.schedule(due, sseq);
      this.dirty.add(sseq);
    } else {
      this.adflr = dseq;
      this.asflr = sseq;
    }
    this.headerDirty = true;
    return dseq;
  }

  /** Another delivery of a pending message; returns its new consumer seq. */
  redeliver(sseq: number, nowUs: number): number {
    const p = this.pending.get(sseq);
    if (p === undefined) return 0;
    const dseq = ++this.dseq;
    p.dseq = dseq;
    p.dc++;
    p.ts = nowUs;
    p.due = nowUs + this.waitUs(p.dc);
    this.schedule(p.due, sseq);
    this.rdc.set(sseq, p.dc);
    this.dirty.add(sseq);
    this.headerDirty = true;
    return dseq;
  }

  /** Explicit ack (also +TERM). false when `sseq` was not pending (already acked, unknown). */
  ack(sseq: number): boolean {
    const p = this.pending.get(sseq);
    this.rdc.delete(sseq);
    this.dirty.add(sseq);
    if (p === undefined) return false;
    this.pending.delete(sseq);
    if (this.pending.size === 0) {
      this.adflr = this.dseq;
      this.asflr = this.dsseq;
    } else if (p.dseq === this.adflr + 1) {
      this.adflr = p.dseq;
      this.asflr = sseq;
      const lowest = this.lowestPending();
      if (lowest > sseq) {
        this.adflr = this.pending.get(lowest)!.dseq - 1;
        this.asflr = lowest - 1;
      }
    }
    this.headerDirty = true;
    return true;
  }

  /**
   * ack_policy all: everything pending up to `sseq` is acknowledged. `dseq` is the consumer
   * seq the ack subject carried. Returns the stream seqs that left pending.
   */
  ackAll(sseq: number, dseq: number): number[] {
    const acked: number[] = [];
    if (dseq <= this.adflr && sseq <= this.asflr) return acked;
    for (const s of this.pending.keys()) {
      if (s > sseq) break;
      acked.push(s);
    }
    for (const s of acked) {
      this.pending.delete(s);
      this.rdc.delete(s);
      this.dirty.add(s);
    }
    if (dseq > this.adflr) this.adflr = dseq;
    if (sseq > this.asflr) this.asflr = sseq;
    if (this.pending.size === 0) {
      this.adflr = this.dseq;
      this.asflr = this.dsseq;
    }
    this.headerDirty = true;
    return acked;
  }

  /** -NAK: due again after `delayUs` (0 = now). */
  nak(sseq: number, nowUs: number, delayUs: number): void {
    const p = this.pending.get(sseq);
    if (p === undefined) return;
    if (delayUs <= 0) {
      p.due = 0;
      this.enqueue(sseq);
    } else {
      p.due = nowUs + delayUs;
      this.schedule(p.due, sseq);
    }
  }

  /** +WPI: the ack wait starts over. */
  progress(sseq: number, nowUs: number): void {
    const p = this.pending.get(sseq);
    if (p === undefined || p.due === 0) return;
    p.due = nowUs + this.waitUs(p.dc);
    this.schedule(p.due, sseq);
  }

  /** max_deliver reached: leaves pending but still counts as redelivered. */
  dropMaxDelivered(sseq: number): void {
    const p = this.pending.get(sseq);
    if (p === undefined) return;
    this.pending.delete(sseq);
    this.rdc.set(sseq, p.dc);
    this.dirty.add(sseq);
    this.headerDirty = true;
  }

  /** The message is gone from the stream: forget it as if acknowledged. */
  forget(sseq: number): void {
    if (this.pending.has(sseq)) this.ack(sseq);
    else if (this.rdc.delete(sseq)) this.dirty.add(sseq);
  }

  /** Everything below `firstSeq` left the stream (purge, limits): floors move up to it. */
  dropBelow(firstSeq: number): void {
    for (const s of this.pending.keys()) {
      if (s >= firstSeq) break;
      this.pending.delete(s);
      this.dirty.add(s);
    }
    for (const s of this.rdc.keys()) {
      if (s < firstSeq) {
        this.rdc.delete(s);
        this.dirty.add(s);
      }
    }
    if (this.asflr < firstSeq - 1) this.asflr = firstSeq - 1;
    if (this.dsseq < firstSeq - 1) this.dsseq = firstSeq - 1;
    this.headerDirty = true;
  }

  /**
   * Move every pending message whose time came into the redelivery queue, lowest stream seq
   * first within one expiry (as nats-server orders them); returns how many.
   */
  expire(nowUs: number): number {
    const heap = this.heap;
    const due: number[] = [];
    while (heap.size > 0 && heap.topDue() <= nowUs) {
      const at = heap.topDue();
      const sseq = heap.topSeq();
      heap.pop();
      const p = this.pending.get(sseq);
      // Stale heap entries (acked, re-armed by +WPI / NAK / redelivery) no longer match.
      if (p === undefined || p.due !== at) continue;
      p.due = 0;
      due.push(sseq);
    }
    if (due.length > 1) due.sort((a, b) => a - b);
    for (const sseq of due) this.enqueue(sseq);
    return due.length;
  }

  /** Earliest redelivery deadline still armed, µs; Infinity when none. */
  nextDue(): number {
    const heap = this.heap;
    while (heap.size > 0) {
      const p = this.pending.get(heap.topSeq());
      if (p !== undefined && p.due === heap.topDue()) return p.due;
      heap.pop();
    }
    return Infinity;
  }

  /** Next stream seq to redeliver, 0 when none; it stays queued until takeRedelivery(). */
  peekRedelivery(): number {
    while (this.rdqHead < this.rdq.length) {
      const sseq = this.rdq[this.rdqHead]!;
      const p = this.pending.get(sseq);
      if (p !== undefined && p.due === 0) return sseq;
      this.queued.delete(sseq);
      this.advanceQueue();
    }
    return 0;
  }

  takeRedelivery(): void {
    if (this.rdqHead < this.rdq.length) {
      this.queued.delete(this.rdq[this.rdqHead]!);
      this.advanceQueue();
    }
  }

  get hasRedeliveries(): boolean {
    return this.peekRedelivery() !== 0;
  }

  /** Pending entry restored from disk; the caller inserts in ascending sseq order. */
  restorePending(sseq: number, dseq: number, dc: number, ts: number): void {
    if (dseq === 0) {
      this.rdc.set(sseq, dc);
      return;
    }
    const due = ts + this.waitUs(dc);
    this.pending.set(sseq, { dseq, dc, ts, due });
    if (dc > 1) this.rdc.set(sseq, dc);
    this.heap.push(due, sseq);
  }

  /** Re-arm every pending message after the ack wait changed (config update). */
  rearm(): void {
    this.heap.clear();
    for (const [sseq, p] of this.pending) {
      if (p.due === 0) continue;
      p.due = p.ts + this.waitUs(p.dc);
      this.heap.push(p.due, sseq);
    }
  }

  /** Lowest stream seq pending, 0 when none. */
  lowestPending(): number {
    for (const s of this.pending.keys()) return s;
    return 0;
  }

  /** Push a deadline; acked entries stay in the heap until they surface, so rebuild when it bloats. */
  private schedule(due: number, sseq: number): void {
    this.heap.push(due, sseq);
    if (this.heap.size > 2 * this.pending.size + 1024) {
      this.heap.clear();
      for (const [s, p] of this.pending) if (p.due > 0) this.heap.push(p.due, s);
    }
  }

  private enqueue(sseq: number): void {
    if (this.queued.has(sseq)) return;
    this.queued.add(sseq);
    this.rdq.push(sseq);
  }

  private advanceQueue(): void {
    this.rdqHead++;
    if (this.rdqHead > 64 && this.rdqHead * 2 > this.rdq.length) {
      this.rdq.splice(0, this.rdqHead);
      this.rdqHead = 0;
    }
  }
}
