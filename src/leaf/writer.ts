/**
 * The leaf link's outbound side, in two lanes. Control frames (PING, PONG, LS+, LS-) are
 * written ahead of queued messages, and messages are handed to the socket only while its own
 * buffer is short, so on a saturated uplink a PONG never waits behind megabytes of data and
 * the hub does not take a busy link for a dead one (nats-server's issue #7615).
 *
 * Messages are assembled in fixed-size slabs and written once per event-loop turn. Every byte
 * of the data lane is numbered (`queuedOffset`); `flushedOffset` says how far the socket has
 * taken them, which is how the store-and-forward replay knows a message has left.
 */
import type { MemoryBudget } from '../core/budget.js';

const SLAB = 64 * 1024;
/** Data handed to the socket beyond what it has written: kept small so control can overtake. */
const SOCKET_HIGH_WATER = 128 * 1024;

export interface LinkSocket {
  write(chunk: Uint8Array | string, cb?: (err?: Error | null) => void): boolean;
  readonly writableLength: number;
  cork(): void;
  uncork(): void;
}

export class LinkWriter {
  private control = '';
  private readonly chunks: Buffer[] = [];
  private slab: Buffer | null = null;
  private slabPos = 0;
  private slabMark = 0;
  /** Data bytes queued here, not yet handed to the socket. */
  private waiting = 0;
  /** Total data bytes ever queued / written by the socket. */
  queuedOffset = 0;
  flushedOffset = 0;
  private handedOffset = 0;
  private scheduled = false;
  private closed = false;
  private readonly afterControl = (): void => {
    if (this.waiting > 0 && !this.closed) this.flush();
  };
  /** Called after the socket took more data (flushedOffset moved). */
  onProgress: (() => void) | null = null;

  constructor(
    private readonly socket: LinkSocket,
    private readonly budget: MemoryBudget,
  ) {}

  /** Data bytes not yet written by the socket (queued here or inside it). */
  get pending(): number {
    return this.queuedOffset - this.flushedOffset;
  }

  /** A control line (with its CRLF); goes out before any queued data. */
  controlLine(line: string): void {
    if (this.closed) return;
    this.control += line;
    this.schedule();
  }

  /** Reserve `n` bytes of the data lane (n <= 64 KiB); write at `cursor`, then commitData(written). */
  reserve(n: number): Buffer {
    let slab = this.slab;
    if (slab !== null && SLAB - this.slabPos >= n) return slab;
    if (slab !== null && this.slabPos > this.slabMark) this.chunks.push(slab.subarray(this.slabMark, this.slabPos));
    slab = Buffer.allocUnsafe(Math.max(SLAB, n));
    this.slab = slab;
    this.slabPos = 0;
    this.slabMark = 0;
    return slab;
  }

  get cursor(): number {
    return this.slabPos;
  }

  commitData(n: number): void {
    if (this.closed) return;
    this.slabPos += n;
    this.account(n);
  }

  /** Queue bytes by reference (large payloads): the caller must not change them afterwards. */
  dataBytes(b: Uint8Array): void {
    if (this.closed || b.length === 0) return;
    if (b.length < 4096) {
      const slab = this.reserve(b.length);
      slab.set(b, this.slabPos);
      this.commitData(b.length);
      return;
    }
    if (this.slab !== null && this.slabPos > this.slabMark) {
      this.chunks.push(this.slab.subarray(this.slabMark, this.slabPos));
      this.slabMark = this.slabPos;
    }
    this.chunks.push(Buffer.from(b.buffer, b.byteOffset, b.length));
    this.account(b.length);
  }

  private account(n: number): void {
    this.waiting += n;
    this.queuedOffset += n;
    this.budget.charge(n);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Write control, then as much data as the socket's short buffer allows. */
  flush(): void {
    if (this.closed) return;
    const sock = this.socket;
    if (this.control !== '') {
      // Control lines may fill the socket themselves: when they leave, data waiting here goes next.
      sock.write(this.control, this.afterControl);
      this.control = '';
    }
    if (this.waiting === 0) return;
    if (this.slab !== null && this.slabPos > this.slabMark) {
      this.chunks.push(this.slab.subarray(this.slabMark, this.slabPos));
      this.slabMark = this.slabPos;
      // The rest of the slab is reused for later frames; chunks already pushed keep their views.
      if (SLAB - this.slabPos < 4096) this.slab = null;
    }
    if (sock.writableLength >= SOCKET_HIGH_WATER) return;
    let room = SOCKET_HIGH_WATER - sock.writableLength;
    const chunks = this.chunks;
    let n = 0;
    let bytes = 0;
    while (n < chunks.length && room > 0) {
      const len = chunks[n]!.length;
      bytes += len;
      room -= len;
      n++;
    }
    this.waiting -= bytes;
    this.handedOffset += bytes;
    const upTo = this.handedOffset;
    if (n > 1) sock.cork();
    for (let i = 0; i < n - 1; i++) sock.write(chunks[i]!);
    // One callback for the batch: it fires once the socket wrote everything before it.
    sock.write(chunks[n - 1]!, () => this.written(upTo, bytes));
    if (n > 1) sock.uncork();
    chunks.splice(0, n);
  }

  private written(upTo: number, bytes: number): void {
    if (this.closed) return;
    this.budget.release(bytes);
    if (upTo > this.flushedOffset) this.flushedOffset = upTo;
    if (this.waiting > 0) this.flush();
    this.onProgress?.();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.release(this.queuedOffset - this.flushedOffset);
    this.chunks.length = 0;
    this.slab = null;
    this.control = '';
    this.waiting = 0;
  }
}
