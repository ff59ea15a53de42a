import type { MemoryBudget } from './budget.js';

/**
 * Outbound frames for one connection, assembled in pooled fixed-size slabs and written once
 * per event-loop turn (DESIGN.md: pooled and coalesced writes). Every queued byte is charged
 * to the connection (pending) and to the process-wide budget until the socket took it.
 */

export const SLAB_SIZE = 64 * 1024;
/**
 * A connection that was idle starts with a small slab: most writes of an idle connection are
 * one small frame (PONG, CONNACK, PINGRESP), and a thousand clients answered in the same turn
 * would otherwise take a thousand 64 KiB slabs at once (64 MB, measured as RSS that stays).
 * A connection that fills its small slab within one turn goes on with full-size ones.
 */
const SMALL_SLAB_SIZE = 2 * 1024;
/** A payload this big is queued by reference instead of copied into a slab. */
const REFERENCE_THRESHOLD = SLAB_SIZE;
/** A slab with less room than this is retired at flush time instead of being kept for reuse. */
const SLAB_RETIRE_ROOM = 4 * 1024;
const SMALL_RETIRE_ROOM = 256;
const POOL_MAX_FREE = 32;
const SMALL_POOL_MAX_FREE = 256;

const freeSlabs: Buffer[] = [];
const freeSmallSlabs: Buffer[] = [];

function takeSlab(): Buffer {
  return freeSlabs.pop() ?? Buffer.allocUnsafeSlow(SLAB_SIZE);
}

function takeSmallSlab(): Buffer {
  return freeSmallSlabs.pop() ?? Buffer.allocUnsafeSlow(SMALL_SLAB_SIZE);
}

function returnSlab(b: Buffer): void {
  if (b.length === SMALL_SLAB_SIZE) {
    if (freeSmallSlabs.length < SMALL_POOL_MAX_FREE) freeSmallSlabs.push(b);
  } else if (freeSlabs.length < POOL_MAX_FREE) freeSlabs.push(b);
}

/** The part of a socket an Outbound writes to. */
export interface WritableSink {
  cork(): void;
  uncork(): void;
  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): boolean;
}

const dirty = new Set<Outbound>();
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  for (const o of dirty) o.flush();
  dirty.clear();
}

export class Outbound {
  private slab: Buffer | null = null;
  private pos = 0;
  /** Start of the bytes in `slab` not yet handed to the socket. */
  private mark = 0;
  private segments: Uint8Array[] = [];
  private retired: Buffer[] = [];
  private closed = false;
  /** Bytes queued here and not yet given to the socket. */
  queued = 0;
  /** Bytes given to socket.write whose callback has not fired (kernel has not taken them). */
  inflight = 0;
  /** Time (ms) of the last write progress while data was in flight (write_deadline). */
  lastProgress = 0;
  /** Total bytes written (for statistics). */
  written = 0;

  constructor(
    private readonly sink: WritableSink,
    private readonly budget: MemoryBudget,
  ) {}

  get pending(): number {
    return this.queued + this.inflight;
  }

  /** Room in the current slab, taking a new one when fewer than `n` bytes are free. */
  private room(n: number): Buffer {
    let slab = this.slab;
    if (slab !== null && slab.length - this.pos >= n) return slab;
    if (slab !== null) {
      if (this.pos > this.mark) this.segments.push(slab.subarray(this.mark, this.pos));
      this.retired.push(slab);
    }
    // After a slab filled up this connection is busy: full-size slabs from here on.
    slab = slab === null && this.queued === 0 && this.inflight === 0 && n <= SMALL_SLAB_SIZE ? takeSmallSlab() : takeSlab();
    this.slab = slab;
    this.pos = 0;
    this.mark = 0;
    return slab;
  }

  /**
   * Direct access for encoders on the hot path: make sure `n` bytes are free in the current
   * slab (n <= SLAB_SIZE) and return it; write at `cursor`, then call advance() with the count.
   */
  reserve(n: number): Buffer {
    return this.room(n);
  }

  get cursor(): number {
    return this.pos;
  }

  advance(n: number): void {
    if (this.closed) return;
    this.pos += n;
    this.account(n);
  }

  /** Append an ASCII/UTF-8 string (protocol lines). */
  writeString(s: string): void {
    if (this.closed) return;
    // utf8 can take up to 3 bytes per UTF-16 unit.
    const max = s.length * 3;
    if (max > SLAB_SIZE) {
      this.writeBytes(Buffer.from(s, 'utf8'));
      return;
    }
    const slab = this.room(max);
    const n = slab.write(s, this.pos, 'utf8');
    this.pos += n;
    this.account(n);
  }

  /** Append bytes (payloads); copied into the slab unless large. */
  writeBytes(b: Uint8Array): void {
    if (this.closed) return;
    const n = b.length;
    if (n === 0) return;
    if (n >= REFERENCE_THRESHOLD) {
      // Large payloads are referenced: the bytes are immutable once read from the socket.
      if (this.slab !== null && this.pos > this.mark) {
        this.segments.push(this.slab.subarray(this.mark, this.pos));
        this.mark = this.pos;
      }
      this.segments.push(b);
    } else {
      const slab = this.room(n);
      slab.set(b, this.pos);
      this.pos += n;
    }
    this.account(n);
  }

  private account(n: number): void {
    this.queued += n;
    this.budget.charge(n);
    if (!dirty.has(this)) {
      dirty.add(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
    }
  }

  /** Hand everything queued to the socket in one corked batch. */
  flush(): void {
    if (this.closed || this.queued === 0) return;
    const slab = this.slab;
    if (slab !== null && this.pos > this.mark) {
      this.segments.push(slab.subarray(this.mark, this.pos));
      this.mark = this.pos;
      if (slab.length - this.pos < (slab.length === SMALL_SLAB_SIZE ? SMALL_RETIRE_ROOM : SLAB_RETIRE_ROOM)) {
        this.retired.push(slab);
        this.slab = null;
      }
    }
    const segments = this.segments;
    const retired = this.retired;
    const bytes = this.queued;
    this.segments = [];
    this.retired = [];
    this.queued = 0;
    if (this.inflight === 0) this.lastProgress = Date.now();
    this.inflight += bytes;
    const sink = this.sink;
    const last = segments.length - 1;
    const done = (): void => this.written_(bytes, retired);
    if (last > 0) sink.cork();
    for (let i = 0; i < last; i++) sink.write(segments[i]!);
    sink.write(segments[last]!, done);
    if (last > 0) sink.uncork();
  }

  private written_(bytes: number, retired: Buffer[]): void {
    if (this.closed) return;
    this.inflight -= bytes;
    this.written += bytes;
    this.lastProgress = Date.now();
    this.budget.release(bytes);
    for (let i = 0; i < retired.length; i++) returnSlab(retired[i]!);
    // Idle now: nothing references the current slab any more, so an idle connection holds none.
    if (this.inflight === 0 && this.queued === 0 && this.slab !== null) {
      returnSlab(this.slab);
      this.slab = null;
    }
  }

  /** Write what is queued now (used just before closing with an -ERR). */
  flushNow(): void {
    dirty.delete(this);
    this.flush();
  }

  /** Drop everything and give the budget back; the socket is going away. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    dirty.delete(this);
    this.budget.release(this.queued + this.inflight);
    this.queued = 0;
    this.inflight = 0;
    this.segments = [];
    // Slabs may still be referenced by writes the socket has not finished: let GC take them.
    this.retired = [];
    this.slab = null;
  }
}
