import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBudget } from '../../src/core/budget.js';
import { LinkWriter, type LinkSocket, type PingTag } from '../../src/leaf/writer.js';

// The writer's limits (writer.ts), as the tests expect them to behave.
/** What LinkWriter keeps in the socket beyond what it has written. */
const HIGH_WATER = 128 * 1024;
/** A marker PING once this much data went out since the last one. */
const MARK_EVERY = 64 * 1024;
const MIN_WINDOW = 256 * 1024;
const MAX_WINDOW = 8 * 1024 * 1024;
/** A slab chunk is at most this long: how far one hand-over may overshoot a limit with small frames. */
const SLAB = 64 * 1024;

const CRLF = Buffer.from('\r\n');

/** One thing the hub read, at the data offset (frame bytes read before it) where it read it. */
type Read = { kind: 'frame'; at: number; bytes: Buffer } | { kind: 'ping'; at: number } | { kind: 'line'; at: number; line: string };

/**
 * Reads the leaf protocol the way the hub does: control lines (PING, PONG, LS+, LS-) and
 * LMSG frames, whose payload is skipped by its size. A marker PING inside a frame breaks the
 * frame's CRLF or the next line, and reading throws.
 */
class StreamReader {
  /** Frame bytes read so far: the writer's data offset as the reader sees it. */
  dataRead = 0;
  /** Data offset at each PING read, in order. */
  readonly pingAt: number[] = [];
  /** Control lines other than PING, in order. */
  readonly lines: string[] = [];
  /** Everything read, in order (only when keeping). */
  readonly log: Read[] = [];
  private rest: Buffer | null = null;

  constructor(private readonly keep: boolean) {}

  read(chunk: Buffer): void {
    const buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    let pos = 0;
    for (;;) {
      const eol = buf.indexOf(CRLF, pos);
      if (eol < 0) break;
      const line = buf.toString('latin1', pos, eol);
      if (line.startsWith('LMSG ')) {
        const size = Number(line.slice(line.lastIndexOf(' ') + 1));
        if (!Number.isInteger(size) || size < 0) throw new Error(`bad LMSG size at data offset ${this.dataRead}: ${line}`);
        const end = eol + 2 + size + 2;
        if (end > buf.length) break;
        if (buf[end - 2] !== 0x0d || buf[end - 1] !== 0x0a) throw new Error(`frame at data offset ${this.dataRead} does not end in CRLF`);
        if (this.keep) this.log.push({ kind: 'frame', at: this.dataRead, bytes: buf.subarray(pos, end) });
        this.dataRead += end - pos;
        pos = end;
        continue;
      }
      if (line === 'PING') {
        this.pingAt.push(this.dataRead);
        if (this.keep) this.log.push({ kind: 'ping', at: this.dataRead });
      } else if (/^(PONG|LS[+-] \S+)/.test(line)) {
        this.lines.push(line);
        if (this.keep) this.log.push({ kind: 'line', at: this.dataRead, line });
      } else {
        throw new Error(`not a protocol line at data offset ${this.dataRead}: ${JSON.stringify(line.slice(0, 60))}`);
      }
      pos = eol + 2;
    }
    this.rest = pos === buf.length ? null : Buffer.from(buf.subarray(pos));
  }

  /** The frames read, back to back: the data lane without markers and control lines. */
  data(): Buffer {
    const frames: Buffer[] = [];
    for (const r of this.log) if (r.kind === 'frame') frames.push(r.bytes);
    return Buffer.concat(frames);
  }
}

/** The hub's side: reads what the socket wrote and answers the PINGs read when the test says so. */
class Hub extends StreamReader {
  answered = 0;

  get unanswered(): number {
    return this.pingAt.length - this.answered;
  }

  /** PONG up to `max` of the PINGs read and not yet answered, oldest first; returns the writer's tags. */
  answer(w: LinkWriter, max = Infinity): PingTag[] {
    const tags: PingTag[] = [];
    while (this.answered < this.pingAt.length && tags.length < max) {
      const at = this.pingAt[this.answered++]!;
      const before = w.confirmedOffset;
      const tag = w.pong();
      if (tag === null) throw new Error(`pong() had no PING outstanding for the PING the hub read at data offset ${at}`);
      tags.push(tag);
      // A PONG confirms exactly the data the hub had read before that PING.
      expect(w.confirmedOffset).toBe(at);
      expect(w.confirmedOffset).toBeGreaterThanOrEqual(before);
    }
    return tags;
  }
}

interface Write {
  /** The chunk as handed over (a view: LinkWriter promises not to change it until written). */
  chunk: Uint8Array | string;
  cb: ((err?: Error | null) => void) | undefined;
  /** Copy taken when the "kernel" takes the bytes, i.e. at complete() (only when keeping). */
  wire: Buffer | null;
  done: boolean;
  corked: boolean;
}

function bytesOf(c: Uint8Array | string): Buffer {
  return typeof c === 'string' ? Buffer.from(c, 'latin1') : Buffer.from(c.buffer, c.byteOffset, c.length);
}

/**
 * An in-memory LinkSocket: writes queue up until the test completes them in order, as the
 * kernel would take them; writableLength is the bytes of unfinished writes. What is handed
 * over is parsed at once (`handed`), what is completed is read by the hub (`hub`).
 */
class FakeSocket implements LinkSocket {
  readonly writes: Write[] = [];
  readonly hub: Hub;
  /** Everything handed to the socket, written or not. */
  readonly handed = new StreamReader(false);
  private done = 0;
  private unwritten = 0;
  corks = 0;
  uncorks = 0;

  constructor(private readonly keep = true) {
    this.hub = new Hub(keep);
  }

  get writableLength(): number {
    return this.unwritten;
  }

  write(chunk: Uint8Array | string, cb?: (err?: Error | null) => void): boolean {
    this.handed.read(bytesOf(chunk));
    this.unwritten += bytesOf(chunk).length;
    this.writes.push({ chunk, cb, wire: null, done: false, corked: this.corks > this.uncorks });
    return this.unwritten < 16 * 1024;
  }

  cork(): void {
    this.corks++;
  }

  uncork(): void {
    this.uncorks++;
  }

  /** Writes not yet completed. */
  get unfinished(): number {
    return this.writes.length - this.done;
  }

  /** Complete up to `n` of the writes made so far, in order (all of them by default). */
  complete(n = Infinity): void {
    const end = this.writes.length; // writes made by the callbacks below wait for the next call
    let k = 0;
    while (k < n && this.done < end) {
      const w = this.writes[this.done++]!;
      const bytes = this.keep ? Buffer.from(bytesOf(w.chunk)) : bytesOf(w.chunk);
      if (this.keep) w.wire = bytes;
      w.done = true;
      this.unwritten -= bytes.length;
      this.hub.read(bytes);
      k++;
      w.cb?.(null);
    }
  }

  /** Everything taken so far, control and data, in order. */
  wire(): Buffer {
    return Buffer.concat(this.writes.filter((w) => w.wire !== null).map((w) => w.wire!));
  }

  /** Data bytes handed over (written or not). */
  dataHanded(): number {
    return this.handed.dataRead;
  }
}

function isMarker(w: Write): boolean {
  return typeof w.chunk === 'string' ? w.chunk === 'PING\r\n' : bytesOf(w.chunk).toString('latin1') === 'PING\r\n';
}

/** The writer flushes on setImmediate; this resolves after one already queued. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Complete writes, answer PINGs and let scheduled flushes run until nothing is left anywhere. */
async function drain(sock: FakeSocket, w: LinkWriter): Promise<PingTag[]> {
  const tags: PingTag[] = [];
  for (let i = 0; i < 10_000; i++) {
    await turn();
    sock.complete();
    tags.push(...sock.hub.answer(w));
    if (sock.unfinished === 0 && w.pending === 0 && sock.hub.unanswered === 0) {
      // the last marker of a burst gets every byte confirmed
      expect(w.confirmedOffset).toBe(w.queuedOffset);
      return tags;
    }
  }
  throw new Error(`did not drain: pending ${w.pending}, unfinished writes ${sock.unfinished}, unanswered PINGs ${sock.hub.unanswered}`);
}

/**
 * Let the socket write whatever it is handed, answering no PING, until the writer hands over
 * nothing more; returns the data handed over but unconfirmed.
 */
async function fill(sock: FakeSocket, w: LinkWriter): Promise<number> {
  let last = -1;
  for (let i = 0; i < 10_000; i++) {
    await turn();
    sock.complete();
    const handed = sock.dataHanded();
    if (handed === last && sock.unfinished === 0) return handed - w.confirmedOffset;
    last = handed;
  }
  throw new Error('the writer never stopped handing data over');
}

/**
 * A saturated uplink carrying `rate` bytes per ms: the hub reads without pause, so each PONG
 * comes when the data before its PING has been read at that rate. Runs until `bytes` more are
 * confirmed; returns the data unconfirmed each time the writer stopped handing over.
 */
async function uplink(sock: FakeSocket, w: LinkWriter, clock: { advance(ms: number): void }, rate: number, bytes: number): Promise<number[]> {
  const held: number[] = [];
  const until = w.confirmedOffset + bytes;
  while (w.confirmedOffset < until) {
    held.push(await fill(sock, w));
    const at = sock.hub.pingAt[sock.hub.answered];
    if (at === undefined) throw new Error('no PING to answer');
    clock.advance((at - w.confirmedOffset) / rate);
    sock.hub.answer(w, 1);
  }
  return held;
}

/**
 * An LMSG frame of exactly `total` bytes (at least 12), payload bytes depending on `i`: the
 * data lane carries whole frames, so the hub can find markers and control lines between them.
 */
function frame(i: number, total: number): Buffer {
  for (const subject of ['s', 'ss']) {
    for (let digits = 1; digits < 10; digits++) {
      const size = total - (`LMSG ${subject} `.length + digits + 4);
      if (size < 0 || String(size).length !== digits) continue;
      const b = Buffer.allocUnsafe(total);
      let p = b.write(`LMSG ${subject} ${size}\r\n`, 0, 'latin1');
      for (let k = 0; k < size; k++) b[p++] = (i * 31 + k) & 0xff;
      b.write('\r\n', p, 'latin1');
      return b;
    }
  }
  throw new Error(`no frame of ${total} bytes`);
}

/** A frame the way LeafLink writes small messages: reserve, write at cursor, commit. */
function writeFramed(w: LinkWriter, bytes: Uint8Array): void {
  const buf = w.reserve(bytes.length);
  buf.set(bytes, w.cursor);
  w.commitData(bytes.length);
}

function setup(limit = 64 * 1024 * 1024, keep = true): { sock: FakeSocket; budget: MemoryBudget; w: LinkWriter } {
  const sock = new FakeSocket(keep);
  const budget = new MemoryBudget(limit);
  const w = new LinkWriter(sock, budget, () => Date.now());
  return { sock, budget, w };
}

/** The writer measures the confirmed rate with Date.now(): stop it, move it by hand. */
function useClock(): { advance(ms: number): void } {
  let now = 1_700_000_000_000;
  vi.spyOn(Date, 'now').mockImplementation(() => now);
  return {
    advance(ms: number): void {
      now += ms;
    },
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('LinkWriter: control ahead of data', () => {
  it('a control line queued after data goes out before the data still waiting', async () => {
    const { sock, budget, w } = setup();
    const sent: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      const m = frame(i, 1024);
      sent.push(m);
      w.dataBytes(m);
    }
    await turn();
    const handedFirst = sock.dataHanded();
    expect(handedFirst).toBeGreaterThan(0);
    expect(handedFirst).toBeLessThan(400 * 1024);
    const writesFirst = sock.writes.length;
    w.controlLine('PONG\r\n');
    w.controlLine('LS+ foo\r\n');
    await turn();
    // the control lines were written right away, nothing but them after the first batch
    expect(sock.writes.length).toBe(writesFirst + 1);
    expect(sock.writes[writesFirst]!.chunk).toBe('PONG\r\nLS+ foo\r\n');
    await drain(sock, w);
    // data intact and in order, the control lines read where they were written
    expect(sock.hub.data().equals(Buffer.concat(sent))).toBe(true);
    expect(sock.hub.lines).toEqual(['PONG', 'LS+ foo']);
    const pong = sock.hub.log.find((r) => r.kind === 'line' && r.line === 'PONG');
    expect(pong?.at).toBe(handedFirst);
    expect(budget.bytes).toBe(0);
  });

  it('control lines alone are written on the next turn, in order, without charging the budget', async () => {
    const { sock, budget, w } = setup();
    w.controlLine('PONG\r\n');
    w.ping('keepalive');
    w.controlLine('LS+ a\r\n');
    expect(sock.writes.length).toBe(0);
    expect(budget.bytes).toBe(0);
    await turn();
    expect(sock.writes.map((x) => x.chunk)).toEqual(['PONG\r\nPING\r\nLS+ a\r\n']);
    expect(w.queuedOffset).toBe(0);
    expect(w.pending).toBe(0);
    sock.complete();
    expect(sock.hub.answer(w)).toEqual(['keepalive']);
    expect(w.confirmedOffset).toBe(0);
  });

  it('flush() writes control at once when called directly', () => {
    const { sock, w } = setup();
    w.controlLine('PONG\r\n');
    w.flush();
    expect(sock.writes.map((x) => x.chunk)).toEqual(['PONG\r\n']);
  });
});

describe('LinkWriter: the socket high-water mark', () => {
  it('hands data over only while writableLength is under the mark; the rest follows as callbacks fire', async () => {
    useClock();
    const { sock, w } = setup();
    const sent: Buffer[] = [];
    for (let i = 0; i < 1024; i++) {
      const m = frame(i, 1024);
      sent.push(m);
      writeFramed(w, m);
    }
    expect(w.queuedOffset).toBe(1024 * 1024);
    expect(sock.writes.length).toBe(0); // nothing before the writer's turn
    await turn();
    const first = sock.dataHanded();
    expect(first).toBeGreaterThanOrEqual(HIGH_WATER);
    // it may finish the chunk that crossed the mark, never more (chunks are at most one 64 KiB slab)
    expect(first).toBeLessThan(HIGH_WATER + SLAB);
    // nothing more on further turns while the socket has not written
    await turn();
    await turn();
    expect(sock.dataHanded()).toBe(first);
    expect(w.flushedOffset).toBe(0);
    // each completed batch (its PINGs answered) lets the next one through, never beyond the mark plus one chunk
    let rounds = 0;
    while (w.pending > 0) {
      sock.complete();
      sock.hub.answer(w);
      await turn();
      expect(sock.writableLength).toBeLessThan(HIGH_WATER + SLAB);
      rounds++;
      expect(rounds).toBeLessThan(100);
    }
    expect(rounds).toBeGreaterThanOrEqual(7);
    await drain(sock, w);
    expect(sock.hub.data().equals(Buffer.concat(sent))).toBe(true);
  });

  it('while the socket is at the mark, data waits even across many turns', async () => {
    const { sock, w } = setup();
    w.dataBytes(frame(0, HIGH_WATER)); // one big chunk fills the socket
    await turn();
    expect(sock.dataHanded()).toBe(HIGH_WATER);
    const tail = frame(1, 16);
    w.dataBytes(tail);
    for (let i = 0; i < 5; i++) await turn();
    expect(sock.dataHanded()).toBe(HIGH_WATER);
    sock.complete();
    await turn();
    sock.complete();
    expect(sock.dataHanded()).toBe(HIGH_WATER + 16);
    expect(w.pending).toBe(0);
  });

  it('several chunks in one hand-over are corked together with their marker and share one callback', async () => {
    const { sock, w } = setup();
    w.dataBytes(frame(0, 20));
    w.dataBytes(frame(1, 8192));
    w.dataBytes(frame(2, 30));
    await turn();
    const writes = sock.writes;
    expect(writes.length).toBe(4);
    expect(writes.slice(0, 3).map((x) => bytesOf(x.chunk).length)).toEqual([20, 8192, 30]);
    expect(isMarker(writes[3]!)).toBe(true);
    expect(writes.every((x) => x.corked)).toBe(true);
    expect(sock.corks).toBe(1);
    expect(sock.uncorks).toBe(1);
    expect(writes.filter((x) => x.cb !== undefined).length).toBe(1);
    expect(writes[2]!.cb).toBeDefined();
  });

  it('data queued after control lines that filled the socket still goes out once the socket has written them', async () => {
    // Interest sync at link-up (thousands of LS+) followed by replayed messages: the control
    // lines fill the socket, so the data cannot be handed over on this turn. Those writes carry
    // no callback, so the writer must learn another way that the socket has room again.
    const { sock, w } = setup();
    for (let i = 0; i < 8000; i++) w.controlLine(`LS+ subject.number.${i}\r\n`);
    w.ping('sync');
    w.dataBytes(Buffer.from('LMSG replayed 2\r\nhi\r\n'));
    await turn();
    expect(sock.writableLength).toBeGreaterThanOrEqual(HIGH_WATER);
    sock.complete(); // the kernel takes everything handed over so far
    for (let i = 0; i < 5; i++) {
      await turn();
      sock.complete();
    }
    expect(sock.hub.data().toString()).toBe('LMSG replayed 2\r\nhi\r\n');
    expect(sock.hub.lines.length).toBe(8000);
    expect(sock.hub.answer(w)).toEqual(['sync', 'data']);
    expect(w.confirmedOffset).toBe(w.queuedOffset);
  });

  it('data does not stall when control lines written after a batch keep the socket above the mark at its callback', async () => {
    const { sock, w } = setup();
    w.dataBytes(frame(0, HIGH_WATER));
    await turn();
    expect(sock.dataHanded()).toBe(HIGH_WATER);
    for (let i = 0; i < 8000; i++) w.controlLine(`LS+ subject.number.${i}\r\n`);
    w.dataBytes(frame(1, 14));
    await turn();
    sock.complete(1); // the data batch: its callback sees the marker and the control lines still queued
    sock.complete(); // then those, which have no callback
    for (let i = 0; i < 5; i++) {
      await turn();
      sock.complete();
    }
    expect(sock.dataHanded()).toBe(HIGH_WATER + 14);
    expect(w.flushedOffset).toBe(HIGH_WATER + 14);
  });
});

describe('LinkWriter: marker PINGs', () => {
  it('a burst of less than 64 KiB gets one marker, after its last frame', async () => {
    const { sock, w } = setup();
    const sent = [frame(0, 100), frame(1, 5000), frame(2, 300)];
    for (const m of sent) w.dataBytes(m);
    await turn();
    expect(isMarker(sock.writes[sock.writes.length - 1]!)).toBe(true);
    expect(sock.writes.filter(isMarker).length).toBe(1);
    sock.complete();
    expect(sock.hub.log.map((r) => r.kind)).toEqual(['frame', 'frame', 'frame', 'ping']);
    expect(sock.hub.pingAt).toEqual([5400]);
    // nothing more: no marker without new data
    for (let i = 0; i < 3; i++) await turn();
    sock.hub.answer(w);
    await turn();
    expect(sock.writes.filter(isMarker).length).toBe(1);
    expect(w.confirmedOffset).toBe(5400);
  });

  it('no marker after a hand-over while less than 64 KiB went out since the last one and more is waiting; one once 64 KiB did', async () => {
    const { sock, w } = setup();
    w.dataBytes(frame(0, 100 * 1024));
    await turn();
    expect(sock.writes.length).toBe(2); // the frame and the end-of-burst marker
    expect(isMarker(sock.writes[1]!)).toBe(true);
    // 8 KiB frames by reference, one chunk each: the socket has room for about 28 KiB of them
    for (let i = 1; i <= 100; i++) w.dataBytes(frame(i, 8192));
    await turn();
    const since = sock.dataHanded() - 100 * 1024;
    expect(since).toBeGreaterThan(0);
    expect(since).toBeLessThan(MARK_EVERY);
    expect(w.pending).toBeGreaterThan(since);
    expect(sock.writes.slice(2).some(isMarker)).toBe(false);
    // the big frame is written: its callback hands the next batch, which crosses 64 KiB
    sock.complete(2);
    const writes = sock.writes.length;
    expect(writes).toBeGreaterThan(2 + since / 8192);
    expect(sock.dataHanded() - 100 * 1024).toBeGreaterThanOrEqual(MARK_EVERY);
    expect(isMarker(sock.writes[writes - 1]!)).toBe(true);
    expect(sock.writes.slice(2, writes - 1).some(isMarker)).toBe(false);
    await drain(sock, w);
  });

  it('a long burst gets a marker after each stretch of at least 64 KiB and one at its end, never one inside a frame', async () => {
    useClock();
    const { sock, w } = setup();
    const sent: Buffer[] = [];
    for (let i = 0; i < 1500; i++) {
      const m = frame(i, 300 + ((i * 97) % 1500));
      sent.push(m);
      writeFramed(w, m);
    }
    const total = w.queuedOffset;
    await drain(sock, w);
    expect(sock.hub.data().equals(Buffer.concat(sent))).toBe(true);
    const at = sock.hub.pingAt;
    expect(at.length).toBeGreaterThanOrEqual(Math.floor(total / (MARK_EVERY + HIGH_WATER + SLAB)));
    expect(at[at.length - 1]).toBe(total);
    let prev = 0;
    for (let k = 0; k < at.length; k++) {
      const gap = at[k]! - prev;
      if (k < at.length - 1) expect(gap).toBeGreaterThanOrEqual(MARK_EVERY);
      else expect(gap).toBeGreaterThan(0);
      // one hand-over per marker: what was left unmarked plus at most the mark and one chunk
      expect(gap).toBeLessThan(MARK_EVERY + HIGH_WATER + SLAB);
      prev = at[k]!;
    }
  });
});

describe('LinkWriter: the window of unconfirmed data', () => {
  it('data beyond the window is held until a PONG confirms earlier data; control still goes out at once', async () => {
    useClock(); // no rate samples: the window stays at its floor
    const { sock, budget, w } = setup();
    const sent: Buffer[] = [];
    for (let i = 0; i < 1024; i++) {
      const m = frame(i, 1024);
      sent.push(m);
      writeFramed(w, m);
    }
    const held = await fill(sock, w);
    expect(held).toBeGreaterThanOrEqual(MIN_WINDOW);
    expect(held).toBeLessThan(MIN_WINDOW + SLAB);
    const handed = sock.dataHanded();
    // the socket wrote everything it was given; the rest waits here, still charged
    expect(w.flushedOffset).toBe(handed);
    expect(w.confirmedOffset).toBe(0);
    expect(w.pending).toBe(1024 * 1024 - handed);
    expect(budget.bytes).toBe(w.pending);
    for (let i = 0; i < 5; i++) {
      await turn();
      sock.complete();
    }
    expect(sock.dataHanded()).toBe(handed);
    // control goes out at once, right behind the data handed over, not behind the data held
    w.controlLine('LS+ urgent\r\n');
    w.ping('keepalive');
    await turn();
    sock.complete();
    expect(sock.dataHanded()).toBe(handed);
    const urgent = sock.hub.log.find((r) => r.kind === 'line' && r.line === 'LS+ urgent');
    expect(urgent?.at).toBe(handed);
    // one PONG at a time: each lets more through, never more than the window unconfirmed
    const tags: PingTag[] = [];
    for (let i = 0; w.pending > 0; i++) {
      expect(i).toBeLessThan(1000);
      const before = sock.dataHanded();
      const got = sock.hub.answer(w, 1);
      expect(got.length).toBe(1);
      tags.push(...got);
      const unconfirmed = await fill(sock, w);
      expect(unconfirmed).toBeLessThan(MIN_WINDOW + SLAB);
      if (got[0] === 'data' && w.pending > 0) expect(sock.dataHanded()).toBeGreaterThan(before);
    }
    tags.push(...sock.hub.answer(w));
    expect(tags.filter((t) => t === 'keepalive').length).toBe(1);
    expect(tags.filter((t) => t !== 'data' && t !== 'keepalive')).toEqual([]);
    await drain(sock, w);
    expect(sock.hub.data().equals(Buffer.concat(sent))).toBe(true);
    expect(sock.hub.lines).toEqual(['LS+ urgent']);
  });

  it('the window follows the confirmed rate: half a second of it, at least 256 KiB, at most 8 MiB', async () => {
    const clock = useClock();
    const { sock, budget, w } = setup(512 * 1024 * 1024, false);
    const big = frame(0, 64 * 1024); // by reference: the same bytes again and again
    for (let i = 0; i < 640; i++) w.dataBytes(big); // 40 MiB
    expect(await fill(sock, w)).toBeLessThan(MIN_WINDOW + SLAB);
    // PONGs less than 200 ms after the first one are no rate sample: the window stays put
    sock.hub.answer(w);
    expect(await fill(sock, w)).toBeLessThan(MIN_WINDOW + SLAB);
    clock.advance(199);
    sock.hub.answer(w);
    expect(await fill(sock, w)).toBeLessThan(MIN_WINDOW + SLAB);

    // 2 MB/s: the window grows to what half a second carries
    let held = await uplink(sock, w, clock, 2048, 6 * 1024 * 1024);
    expect(Math.min(...held)).toBeGreaterThanOrEqual(MIN_WINDOW);
    let last = held.slice(-10);
    expect(Math.min(...last)).toBeGreaterThanOrEqual(2048 * 500);
    expect(Math.max(...last)).toBeLessThan(2048 * 500 + SLAB);
    // 64 MB/s: no more than 8 MiB
    held = await uplink(sock, w, clock, 65536, 20 * 1024 * 1024);
    expect(Math.max(...held)).toBeLessThan(MAX_WINDOW + SLAB);
    last = held.slice(-10);
    expect(Math.min(...last)).toBeGreaterThanOrEqual(MAX_WINDOW);
    // 100 kB/s: down to the floor, not below
    held = await uplink(sock, w, clock, 100, 9 * 1024 * 1024);
    expect(Math.min(...held)).toBeGreaterThanOrEqual(MIN_WINDOW);
    last = held.slice(-10);
    expect(Math.max(...last)).toBeLessThan(MIN_WINDOW + SLAB);
    expect(w.pending).toBeGreaterThan(0); // the window held data back all along
    w.close();
    expect(budget.bytes).toBe(0);
  });

  it('an idle link, whose keepalives confirm nothing, keeps a window of 256 KiB, not none', async () => {
    const clock = useClock();
    const { sock, w } = setup();
    for (let i = 0; i < 3; i++) {
      w.ping('keepalive');
      await turn();
      sock.complete();
      clock.advance(1000);
      expect(sock.hub.answer(w)).toEqual(['keepalive']);
    }
    for (let i = 0; i < 1000; i++) writeFramed(w, frame(i, 1000));
    const h = await fill(sock, w);
    expect(h).toBeGreaterThanOrEqual(MIN_WINDOW);
    expect(h).toBeLessThan(MIN_WINDOW + SLAB);
    await drain(sock, w);
  });

  it('when every window is confirmed within 100 ms, the window grows round after round up to 8 MiB', async () => {
    const clock = useClock();
    const { sock, budget, w } = setup(512 * 1024 * 1024, false);
    const big = frame(0, 64 * 1024);
    for (let i = 0; i < 768; i++) w.dataBytes(big); // 48 MiB
    // each round the writer fills its window; 100 ms later the hub has read it all and its PONGs arrive together
    const seen: number[] = [];
    for (let r = 0; r < 10; r++) {
      seen.push(await fill(sock, w));
      expect(w.pending).toBeGreaterThan(0); // held by the window, not out of data
      clock.advance(100);
      sock.hub.answer(w);
    }
    expect(seen[0]).toBeGreaterThanOrEqual(MIN_WINDOW);
    expect(seen[0]).toBeLessThan(MIN_WINDOW + SLAB);
    for (let r = 1; r < seen.length; r++) expect(seen[r]).toBeGreaterThanOrEqual(seen[r - 1]!);
    expect(seen[4]).toBeGreaterThanOrEqual(4 * MIN_WINDOW);
    expect(Math.max(...seen)).toBeLessThan(MAX_WINDOW + SLAB);
    expect(seen[seen.length - 1]).toBeGreaterThanOrEqual(MAX_WINDOW);
    w.close();
    expect(budget.bytes).toBe(0);
  });
});

describe('LinkWriter: pong()', () => {
  it('returns what each PING was for, oldest first, control-lane PINGs in their place among the markers', async () => {
    const { sock, w } = setup();
    const progress: number[] = [];
    w.onProgress = () => progress.push(w.confirmedOffset);
    w.dataBytes(frame(1, 3000));
    await turn(); // frame, marker
    w.ping('keepalive');
    await turn(); // PING
    w.dataBytes(frame(2, 5000));
    w.ping('sync'); // queued after the frame, but control goes first
    await turn(); // PING, frame, marker
    w.dataBytes(frame(3, 700));
    await turn(); // frame, marker
    w.ping('keepalive');
    await turn(); // PING
    sock.complete();
    progress.length = 0; // the socket's own progress calls
    expect(sock.hub.pingAt).toEqual([3000, 3000, 3000, 8000, 8700, 8700]);
    const tags: PingTag[] = [];
    const confirmed: number[] = [];
    for (let i = 0; i < 6; i++) {
      tags.push(...sock.hub.answer(w, 1));
      confirmed.push(w.confirmedOffset);
    }
    expect(tags).toEqual(['data', 'keepalive', 'sync', 'data', 'data', 'keepalive']);
    expect(confirmed).toEqual([3000, 3000, 3000, 8000, 8700, 8700]);
    // each PONG calls onProgress, after confirmedOffset moved
    expect(progress).toEqual([3000, 3000, 3000, 8000, 8700, 8700]);
    expect(w.pong()).toBeNull();
  });

  it('a keepalive PING sent while data is held by the window confirms only the data before it', async () => {
    useClock();
    const { sock, w } = setup();
    for (let i = 0; i < 600; i++) writeFramed(w, frame(i, 1024));
    await fill(sock, w);
    const handed = sock.dataHanded();
    const markers = sock.hub.pingAt.length;
    w.ping('keepalive');
    await turn();
    sock.complete();
    expect(sock.hub.pingAt.length).toBe(markers + 1);
    expect(sock.hub.pingAt[markers]).toBe(handed);
    const tags = sock.hub.answer(w, markers + 1);
    expect(tags.slice(0, markers).every((t) => t === 'data')).toBe(true);
    expect(tags[markers]).toBe('keepalive');
    expect(w.confirmedOffset).toBe(handed);
    await drain(sock, w);
  });

  it('with no PING outstanding returns null and changes nothing', async () => {
    const clock = useClock();
    const { sock, budget, w } = setup();
    let progress = 0;
    w.onProgress = () => progress++;
    // a fresh writer
    expect(w.pong()).toBeNull();
    expect(w.confirmedOffset).toBe(0);
    expect(progress).toBe(0);
    // a PING still queued here has not been sent: no PONG can answer it yet
    w.ping('keepalive');
    expect(w.pong()).toBeNull();
    await turn();
    sock.complete();
    expect(sock.hub.answer(w)).toEqual(['keepalive']);
    expect(progress).toBe(1);
    // after a burst, all answered: an unasked PONG, even much later, is ignored
    for (let i = 0; i < 600; i++) writeFramed(w, frame(i, 1024));
    await drain(sock, w);
    const state = (): number[] => [w.queuedOffset, w.flushedOffset, w.confirmedOffset, w.pending, budget.bytes, sock.writes.length];
    const before = state();
    progress = 0;
    clock.advance(10_000);
    expect(w.pong()).toBeNull();
    expect(w.pong()).toBeNull();
    await turn();
    expect(state()).toEqual(before);
    expect(progress).toBe(0);
    // and the next PINGs are still matched to their PONGs
    w.dataBytes(frame(1, 5000));
    w.ping('sync');
    await turn();
    sock.complete();
    expect(sock.hub.answer(w)).toEqual(['sync', 'data']);
    expect(w.confirmedOffset).toBe(600 * 1024 + 5000);
    expect(w.pong()).toBeNull();
  });

  it('after close() it returns null: the PINGs on the wire are forgotten', async () => {
    const { sock, w } = setup();
    w.dataBytes(frame(0, 5000));
    w.ping('keepalive');
    await turn();
    sock.complete();
    expect(sock.hub.unanswered).toBe(2);
    w.close();
    let progress = 0;
    w.onProgress = () => progress++;
    expect(w.pong()).toBeNull();
    expect(w.pong()).toBeNull();
    expect(w.confirmedOffset).toBe(0);
    expect(progress).toBe(0);
  });
});

describe('LinkWriter: offsets, progress and the budget', () => {
  it('queuedOffset moves at once, flushedOffset when the socket has written, pending between them', async () => {
    const { sock, budget, w } = setup();
    let progress = 0;
    const seen: number[] = [];
    w.onProgress = () => {
      progress++;
      seen.push(w.flushedOffset);
    };
    writeFramed(w, Buffer.from('LMSG a 1\r\nx\r\n'));
    expect(w.queuedOffset).toBe(13);
    expect(w.flushedOffset).toBe(0);
    expect(w.pending).toBe(13);
    expect(budget.bytes).toBe(13);
    w.dataBytes(frame(1, 5000));
    expect(w.queuedOffset).toBe(5013);
    expect(budget.bytes).toBe(5013);
    await turn();
    expect(w.flushedOffset).toBe(0); // handed over is not written
    expect(progress).toBe(0);
    sock.complete();
    expect(w.flushedOffset).toBe(5013);
    expect(w.confirmedOffset).toBe(0); // written is not read by the hub
    expect(w.pending).toBe(0);
    expect(budget.bytes).toBe(0);
    expect(progress).toBe(1);
    writeFramed(w, frame(2, 16));
    expect(w.queuedOffset).toBe(5029);
    await turn();
    sock.complete();
    expect(w.flushedOffset).toBe(5029);
    expect(seen).toEqual([5013, 5029]);
  });

  it('flushedOffset never passes queuedOffset and only grows, across many partial completions', async () => {
    const { sock, budget, w } = setup();
    let lastFlushed = 0;
    let lastConfirmed = 0;
    let calls = 0;
    w.onProgress = () => {
      calls++;
      // each call follows a move: the socket wrote more, or the hub confirmed more
      expect(w.flushedOffset > lastFlushed || w.confirmedOffset > lastConfirmed).toBe(true);
      expect(w.flushedOffset).toBeGreaterThanOrEqual(lastFlushed);
      expect(w.confirmedOffset).toBeGreaterThanOrEqual(lastConfirmed);
      expect(w.confirmedOffset).toBeLessThanOrEqual(w.flushedOffset);
      expect(w.flushedOffset).toBeLessThanOrEqual(w.queuedOffset);
      lastFlushed = w.flushedOffset;
      lastConfirmed = w.confirmedOffset;
    };
    for (let i = 0; i < 3000; i++) writeFramed(w, frame(i, 300));
    await turn();
    for (let i = 0; w.pending > 0; i++) {
      expect(i).toBeLessThan(20_000);
      sock.complete(1);
      expect(budget.bytes).toBe(w.pending);
      sock.hub.answer(w); // the hub reads what was written and answers its PINGs
      await turn();
    }
    expect(lastFlushed).toBe(3000 * 300);
    await drain(sock, w);
    expect(lastConfirmed).toBe(3000 * 300);
    expect(calls).toBeGreaterThan(10);
  });

  it('confirmedOffset only grows and never passes the data handed over', async () => {
    useClock();
    const { sock, w } = setup();
    let seed = 7;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    let last = 0;
    const check = (): void => {
      expect(w.confirmedOffset).toBeGreaterThanOrEqual(last);
      expect(w.confirmedOffset).toBeLessThanOrEqual(sock.dataHanded());
      expect(w.confirmedOffset).toBeLessThanOrEqual(w.flushedOffset);
      last = w.confirmedOffset;
    };
    w.onProgress = check;
    for (let step = 0; step < 2000; step++) {
      const r = rnd();
      if (r < 0.5) writeFramed(w, frame(step, 12 + Math.floor(rnd() * 3000)));
      else if (r < 0.6) w.dataBytes(frame(step, 4096 + Math.floor(rnd() * 100_000)));
      else if (r < 0.65) w.ping(rnd() < 0.5 ? 'keepalive' : 'sync');
      else if (r < 0.8) await turn();
      else if (r < 0.9) sock.complete(Math.floor(rnd() * 5));
      else sock.hub.answer(w, Math.floor(rnd() * 4));
      check();
    }
    await drain(sock, w);
    check();
    expect(last).toBe(w.queuedOffset);
  });

  it('close() releases the whole charge: waiting data and data handed over but not written', async () => {
    const { sock, budget, w } = setup();
    let progress = 0;
    w.onProgress = () => progress++;
    for (let i = 0; i < 300; i++) w.dataBytes(frame(i, 1024));
    w.dataBytes(frame(300, 70_000));
    expect(budget.bytes).toBe(300 * 1024 + 70_000);
    await turn();
    expect(sock.dataHanded()).toBeGreaterThan(0);
    w.close();
    expect(budget.bytes).toBe(0);
    // late callbacks from the socket and PONGs from the hub change nothing
    sock.complete();
    expect(sock.hub.unanswered).toBeGreaterThan(0);
    expect(w.pong()).toBeNull();
    expect(budget.bytes).toBe(0);
    expect(progress).toBe(0);
    // and nothing more is queued or written
    const writes = sock.writes.length;
    w.controlLine('PONG\r\n');
    w.ping('keepalive');
    w.dataBytes(Buffer.from('x'));
    w.commitData(1);
    await turn();
    expect(sock.writes.length).toBe(writes);
    expect(budget.bytes).toBe(0);
    w.close(); // twice is harmless
    expect(budget.bytes).toBe(0);
  });

  it('close() while the window holds data releases it too', async () => {
    useClock();
    const { sock, budget, w } = setup();
    for (let i = 0; i < 1000; i++) writeFramed(w, frame(i, 1000));
    await fill(sock, w);
    expect(w.pending).toBeGreaterThan(0);
    expect(budget.bytes).toBe(w.pending);
    w.close();
    expect(budget.bytes).toBe(0);
  });

  it('close() after a partial completion releases exactly the rest', async () => {
    const { sock, budget, w } = setup();
    for (let i = 0; i < 500; i++) writeFramed(w, frame(i, 1000));
    await turn();
    sock.complete(1);
    await turn();
    expect(budget.bytes).toBe(w.pending);
    expect(budget.bytes).toBeGreaterThan(0);
    w.close();
    expect(budget.bytes).toBe(0);
  });

  it('the budget pauses and resumes publishers as the writer charges and drains', async () => {
    const { sock, budget, w } = setup(100_000);
    let paused = 0;
    let resumed = 0;
    const pub = { pauseReading: () => paused++, resumeReading: () => resumed++ };
    for (let i = 0; i < 100; i++) w.dataBytes(frame(i, 1000));
    expect(budget.exhausted).toBe(true);
    budget.hold(pub);
    expect(paused).toBe(1);
    await drain(sock, w);
    expect(budget.bytes).toBe(0);
    expect(resumed).toBe(1);
  });
});

describe('LinkWriter: payload bytes', () => {
  it('payloads of 4 KiB and more go by reference, smaller ones are copied', async () => {
    const { sock, w } = setup();
    const small = frame(0, 4095);
    const edge = frame(1, 4096);
    const big = frame(2, 5000);
    const huge = frame(3, 200 * 1024);
    w.dataBytes(small);
    w.dataBytes(edge);
    w.dataBytes(big);
    w.dataBytes(huge);
    await turn();
    const data = sock.writes.filter((x) => typeof x.chunk !== 'string').map((x) => x.chunk as Uint8Array);
    const sameMemory = (a: Uint8Array, b: Uint8Array): boolean => a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
    expect(data.some((c) => sameMemory(c, small))).toBe(false);
    expect(data.some((c) => sameMemory(c, edge))).toBe(true);
    expect(data.some((c) => sameMemory(c, big))).toBe(true);
    expect(data.some((c) => sameMemory(c, huge))).toBe(true);
    await drain(sock, w);
    expect(sock.hub.data().equals(Buffer.concat([small, edge, big, huge]))).toBe(true);
  });

  it('a view into a larger buffer is sent as exactly that view', async () => {
    const { sock, w } = setup();
    const backing = Buffer.alloc(100_000);
    for (let i = 0; i < backing.length; i++) backing[i] = i & 0xff;
    const view = backing.subarray(1234, 1234 + 70_000);
    frame(7, 70_000).copy(view);
    const open = frame(8, 12);
    const close = frame(9, 13);
    w.dataBytes(open);
    w.dataBytes(view);
    w.dataBytes(close);
    await drain(sock, w);
    expect(sock.hub.data().equals(Buffer.concat([open, view, close]))).toBe(true);
  });

  it('small payloads are copied: changing the caller buffer afterwards changes nothing', async () => {
    const { sock, w } = setup();
    const b = Buffer.from('LMSG s 11\r\nhello world\r\n');
    w.dataBytes(b);
    b.fill(0x21, 11, 22);
    await drain(sock, w);
    expect(sock.hub.data().toString()).toBe('LMSG s 11\r\nhello world\r\n');
  });

  it('an empty payload is nothing at all', async () => {
    const { sock, budget, w } = setup();
    w.dataBytes(Buffer.alloc(0));
    expect(w.queuedOffset).toBe(0);
    expect(budget.bytes).toBe(0);
    await turn();
    expect(sock.writes.length).toBe(0);
  });

  it('frames written while earlier slab bytes are still in the socket do not overwrite them', async () => {
    // The slab is reused after a hand-over; bytes already handed must stay as they were until
    // the socket has written them. The fake socket copies only at complete().
    const { sock, w } = setup();
    const sent: Buffer[] = [];
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 20; i++) {
        const m = frame(round * 100 + i, 37 + ((round * 13 + i * 7) % 900));
        sent.push(m);
        writeFramed(w, m);
      }
      await turn(); // hand over, the socket does not write yet
      if (round % 3 === 2) {
        sock.complete();
        sock.hub.answer(w);
      }
    }
    await drain(sock, w);
    expect(sock.hub.data().equals(Buffer.concat(sent))).toBe(true);
  });

  it('random mix of framed writes, large payloads, control lines, PINGs, PONGs and completions: bytes arrive in order and intact', async () => {
    useClock(); // the window stays at its floor, so its bound can be checked
    let seed = 42;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    const { sock, budget, w } = setup();
    const sent: Buffer[] = [];
    const controls: string[] = [];
    const pinged: PingTag[] = [];
    const ponged: PingTag[] = [];
    let progressCalls = 0;
    w.onProgress = () => progressCalls++;
    for (let step = 0; step < 3000; step++) {
      const r = rnd();
      if (r < 0.5) {
        const m = frame(step, 12 + Math.floor(rnd() * 2000));
        sent.push(m);
        writeFramed(w, m);
      } else if (r < 0.6) {
        const m = frame(step, 4096 + Math.floor(rnd() * 150_000));
        sent.push(m);
        w.dataBytes(m);
      } else if (r < 0.68) {
        const m = frame(step, 12 + Math.floor(rnd() * 4084));
        sent.push(m);
        w.dataBytes(m);
      } else if (r < 0.74) {
        const line = `LS+ s.${step}`;
        controls.push(line);
        w.controlLine(`${line}\r\n`);
      } else if (r < 0.76) {
        const tag: PingTag = rnd() < 0.5 ? 'keepalive' : 'sync';
        pinged.push(tag);
        w.ping(tag);
      } else if (r < 0.86) {
        await turn();
      } else if (r < 0.94) {
        sock.complete(Math.floor(rnd() * 4));
      } else {
        ponged.push(...sock.hub.answer(w, Math.floor(rnd() * 3)));
      }
      expect(budget.bytes).toBe(w.pending);
      // data out of the writer's hands but unconfirmed: the window, plus the chunk that crossed it
      expect(sock.dataHanded() - w.confirmedOffset).toBeLessThan(MIN_WINDOW + 160 * 1024);
    }
    ponged.push(...(await drain(sock, w)));
    const expected = Buffer.concat(sent);
    expect(w.queuedOffset).toBe(expected.length);
    expect(w.flushedOffset).toBe(expected.length);
    expect(w.confirmedOffset).toBe(expected.length);
    expect(sock.hub.data().equals(expected)).toBe(true);
    expect(sock.hub.lines).toEqual(controls);
    expect(budget.bytes).toBe(0);
    expect(progressCalls).toBeGreaterThan(10);
    // every PING answered once; the control-lane ones come back in the order they were sent
    expect(ponged.length).toBe(sock.hub.pingAt.length);
    expect(ponged.filter((t) => t !== 'data')).toEqual(pinged);
    expect(w.pong()).toBeNull();
  });
});
