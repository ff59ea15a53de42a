/**
 * The leaf link's outbound side, in two lanes. Control frames (PING, PONG, LS+, LS-) are
 * written ahead of queued messages, and messages are handed to the socket only while its own
 * buffer is short, so on a saturated uplink a PONG never waits behind megabytes of data and
 * the hub does not take a busy link for a dead one (nats-server's issue #7615).
 *
 * The kernel's send buffer can hold megabytes on a slow uplink, and nothing can overtake what is
 * in it. So data is also held back once more than a window of it is unconfirmed by the hub: a
 * PING goes after every stretch of data, and its PONG (the hub answers PINGs in order, after
 * reading everything before them) confirms the bytes before it. The window follows the
 * confirmed rate: what the link carries in one round trip plus a quarter second, doubled so it
 * can grow. A PONG then waits behind about a round trip plus half a second of data, whatever
 * the uplink's speed, and a long round trip (a satellite link) still gets its full rate.
 *
 * Messages are assembled in fixed-size slabs and written once per event-loop turn. Every byte
 * of the data lane is numbered (`queuedOffset`); `flushedOffset` says how far the socket has
 * taken them and `confirmedOffset` how far the hub has read them, which is how the
 * store-and-forward replay knows a message has arrived.
 */
import type { MemoryBudget } from '../core/budget.js';

const SLAB = 64 * 1024;
/** Data handed to the socket beyond what it has written: kept small so control can overtake. */
const SOCKET_HIGH_WATER = 128 * 1024;
/** A marker PING once at least this much data was handed over since the last one. */
const MARK_EVERY = 64 * 1024;
const MIN_WINDOW = 256 * 1024;
const MAX_WINDOW = 8 * 1024 * 1024;
/** Beyond a round trip, the window holds this long at the confirmed rate (times two, to grow). */
const WINDOW_MS = 250;
const RATE_SAMPLE_MS = 200;

/** What a PING was sent for: a data marker, the link's keepalive, or the end of the interest sync. */
export type PingTag = 'data' | 'keepalive' | 'sync';

interface Marker {
  offset: number;
  tag: PingTag;
  /** When it was written (clock ms). */
  at: number;
}

export interface LinkSocket {
  write(chunk: Uint8Array | string, cb?: (err?: Error | null) => void): boolean;
  readonly writableLength: number;
  cork(): void;
  uncork(): void;
}

const PING = 'PING\r\n';

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
  /** Data bytes the hub has read (the marker of the last PONG). */
  confirmedOffset = 0;
  private window = MIN_WINDOW;
  /** PINGs on the wire, oldest first; each PONG answers the oldest. */
  private readonly markers: Marker[] = [];
  /** PINGs queued in `control` (written with it). */
  private controlPings: PingTag[] = [];
  private lastMark = 0;
  private rateAt = 0;
  private rateOffset = 0;
  /** Shortest PING round trip seen: the link's own latency, without queueing. */
  private minRtt = Infinity;
  private scheduled = false;
  private closed = false;
  private readonly afterControl = (): void => {
    if (this.waiting > 0 && !this.closed) this.flush();
  };
  /** Called when the socket took more data (flushedOffset) or a PONG arrived (confirmedOffset may move). */
  onProgress: (() => void) | null = null;

  constructor(
    private readonly socket: LinkSocket,
    private readonly budget: MemoryBudget,
    /** Monotonic milliseconds (a wall clock can step when a board without RTC gets its time). */
    private readonly clock: () => number = () => performance.now(),
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

  /** A PING on the control lane; pong() tells which PING a PONG answered. */
  ping(tag: PingTag): void {
    if (this.closed) return;
    this.control += 'PING\r\n';
    this.controlPings.push(tag);
    this.schedule();
  }

  /**
   * The hub answered the oldest PING: everything written before it has been read. Returns what
   * that PING was for (null when no PING was outstanding: a PONG the hub sent unasked).
   */
  pong(): PingTag | null {
    const m = this.markers.shift();
    if (m === undefined) return null;
    if (m.offset > this.confirmedOffset) this.confirmedOffset = m.offset;
    const now = this.clock();
    if (now - m.at < this.minRtt) this.minRtt = now - m.at;
    if (this.rateAt === 0) {
      this.rateAt = now;
      this.rateOffset = this.confirmedOffset;
    } else if (now - this.rateAt >= RATE_SAMPLE_MS) {
      const rate = (this.confirmedOffset - this.rateOffset) / (now - this.rateAt);
      const span = WINDOW_MS + (this.minRtt === Infinity ? 0 : this.minRtt);
      this.window = Math.min(MAX_WINDOW, Math.max(MIN_WINDOW, Math.round(2 * rate * span)));
      this.rateAt = now;
      this.rateOffset = this.confirmedOffset;
    }
    if (this.waiting > 0 && !this.closed) this.flush();
    this.onProgress?.();
    return m.tag;
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
      if (this.controlPings.length > 0) {
        const at = this.clock();
        for (const tag of this.controlPings) this.markers.push({ offset: this.handedOffset, tag, at });
      }
      this.controlPings = [];
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
    const unconfirmed = this.handedOffset - this.confirmedOffset;
    if (sock.writableLength >= SOCKET_HIGH_WATER || unconfirmed >= this.window) return;
    let room = Math.min(SOCKET_HIGH_WATER - sock.writableLength, this.window - unconfirmed);
    const chunks = this.chunks;
    let n = 0;
    let bytes = 0;
    while (n < chunks.length && room > 0) {
      const len = chunks[n]!.length;
      bytes += len;
      room -= len;
      n++;
    }
    if (n === 0) return;
    this.waiting -= bytes;
    this.handedOffset += bytes;
    const upTo = this.handedOffset;
    sock.cork();
    for (let i = 0; i < n - 1; i++) sock.write(chunks[i]!);
    // One callback for the batch: it fires once the socket wrote everything before it.
    sock.write(chunks[n - 1]!, () => this.written(upTo, bytes));
    // A marker after a stretch of data, and after the last of a burst, so it gets confirmed.
    if (upTo - this.lastMark >= MARK_EVERY || this.waiting === 0) {
      this.lastMark = upTo;
      this.markers.push({ offset: upTo, tag: 'data', at: this.clock() });
      sock.write(PING);
    }
    sock.uncork();
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
    this.controlPings = [];
    this.markers.length = 0;
    this.waiting = 0;
  }
}
