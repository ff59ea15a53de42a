import { describe, expect, it } from 'vitest';
import { MemoryBudget } from '../../src/core/budget.js';
import { LinkWriter, type LinkSocket } from '../../src/leaf/writer.js';

/** What LinkWriter keeps in the socket beyond what it has written (writer.ts SOCKET_HIGH_WATER). */
const HIGH_WATER = 128 * 1024;

interface Write {
  /** The chunk as handed over (a view: LinkWriter promises not to change it until written). */
  chunk: Uint8Array | string;
  cb: ((err?: Error | null) => void) | undefined;
  /** Copy taken when the "kernel" takes the bytes, i.e. at complete(). */
  wire: Buffer | null;
  corked: boolean;
}

/**
 * An in-memory LinkSocket: writes queue up until the test completes them in order, as the
 * kernel would take them; writableLength is the bytes of unfinished writes.
 */
class FakeSocket implements LinkSocket {
  readonly writes: Write[] = [];
  private done = 0;
  corks = 0;
  uncorks = 0;

  get writableLength(): number {
    let n = 0;
    for (let i = this.done; i < this.writes.length; i++) n += byteLength(this.writes[i]!.chunk);
    return n;
  }

  write(chunk: Uint8Array | string, cb?: (err?: Error | null) => void): boolean {
    this.writes.push({ chunk, cb, wire: null, corked: this.corks > this.uncorks });
    return this.writableLength < 16 * 1024;
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
      w.wire = typeof w.chunk === 'string' ? Buffer.from(w.chunk, 'utf8') : Buffer.from(w.chunk);
      k++;
      w.cb?.(null);
    }
  }

  /** Everything taken so far, control and data, in order. */
  wire(): Buffer {
    return Buffer.concat(this.writes.filter((w) => w.wire !== null).map((w) => w.wire!));
  }

  /** Data-lane bytes taken so far (LinkWriter writes control lines as strings, data as bytes). */
  dataWire(): Buffer {
    return Buffer.concat(this.writes.filter((w) => w.wire !== null && typeof w.chunk !== 'string').map((w) => w.wire!));
  }

  /** Control lines as written, in order. */
  controlWrites(): string[] {
    return this.writes.filter((w) => typeof w.chunk === 'string').map((w) => w.chunk as string);
  }

  /** Data bytes handed over (written or not). */
  dataHanded(): number {
    let n = 0;
    for (const w of this.writes) if (typeof w.chunk !== 'string') n += w.chunk.length;
    return n;
  }
}

function byteLength(c: Uint8Array | string): number {
  return typeof c === 'string' ? Buffer.byteLength(c) : c.length;
}

/** The writer flushes on setImmediate; this resolves after one already queued. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Complete writes and let scheduled flushes run until nothing is left anywhere. */
async function drain(sock: FakeSocket, w: LinkWriter): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    await turn();
    if (sock.unfinished === 0 && w.pending === 0) return;
    sock.complete();
  }
  throw new Error(`did not drain: pending ${w.pending}, unfinished writes ${sock.unfinished}`);
}

function message(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

/** A frame the way LeafLink writes small messages: reserve, write at cursor, commit. */
function writeFramed(w: LinkWriter, bytes: Uint8Array): void {
  const buf = w.reserve(bytes.length);
  buf.set(bytes, w.cursor);
  w.commitData(bytes.length);
}

function setup(limit = 64 * 1024 * 1024): { sock: FakeSocket; budget: MemoryBudget; w: LinkWriter } {
  const sock = new FakeSocket();
  const budget = new MemoryBudget(limit);
  const w = new LinkWriter(sock, budget);
  return { sock, budget, w };
}

describe('LinkWriter: control ahead of data', () => {
  it('a control line queued after data goes out before the data still waiting', async () => {
    const { sock, budget, w } = setup();
    const sent: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      const m = message(i, 1024);
      sent.push(m);
      w.dataBytes(m);
    }
    await turn();
    const handedFirst = sock.dataHanded();
    expect(handedFirst).toBeGreaterThan(0);
    expect(handedFirst).toBeLessThan(400 * 1024);
    w.controlLine('PONG\r\n');
    w.controlLine('LS+ foo\r\n');
    await turn();
    // the control lines were written right away, with no data between them and the first batch
    const idx = sock.writes.findIndex((x) => x.chunk === 'PONG\r\nLS+ foo\r\n' || x.chunk === 'PONG\r\n');
    expect(idx).toBeGreaterThan(0);
    expect(sock.writes.slice(0, idx).reduce((n, x) => n + byteLength(x.chunk), 0)).toBe(handedFirst);
    expect(sock.controlWrites().join('')).toBe('PONG\r\nLS+ foo\r\n');
    await drain(sock, w);
    // data intact and in order, the control lines in between at the place they were written
    expect(sock.dataWire().equals(Buffer.concat(sent))).toBe(true);
    const wire = sock.wire();
    expect(wire.subarray(handedFirst, handedFirst + 15).toString()).toBe('PONG\r\nLS+ foo\r\n');
    expect(budget.bytes).toBe(0);
  });

  it('control lines alone are written on the next turn, in order, without charging the budget', async () => {
    const { sock, budget, w } = setup();
    w.controlLine('PING\r\n');
    w.controlLine('LS+ a\r\n');
    expect(sock.writes.length).toBe(0);
    expect(budget.bytes).toBe(0);
    await turn();
    expect(sock.controlWrites().join('')).toBe('PING\r\nLS+ a\r\n');
    expect(w.queuedOffset).toBe(0);
    expect(w.pending).toBe(0);
  });

  it('flush() writes control at once when called directly', () => {
    const { sock, w } = setup();
    w.controlLine('PONG\r\n');
    w.flush();
    expect(sock.controlWrites()).toEqual(['PONG\r\n']);
  });
});

describe('LinkWriter: the socket high-water mark', () => {
  it('hands data over only while writableLength is under the mark; the rest follows as callbacks fire', async () => {
    const { sock, w } = setup();
    const sent: Buffer[] = [];
    for (let i = 0; i < 1024; i++) {
      const m = message(i, 1024);
      sent.push(m);
      writeFramed(w, m);
    }
    expect(w.queuedOffset).toBe(1024 * 1024);
    expect(sock.writes.length).toBe(0); // nothing before the writer's turn
    await turn();
    const first = sock.dataHanded();
    expect(first).toBeGreaterThanOrEqual(HIGH_WATER);
    // it may finish the chunk that crossed the mark, never more (chunks are at most one 64 KiB slab)
    expect(first).toBeLessThan(HIGH_WATER + 64 * 1024);
    // nothing more on further turns while the socket has not written
    await turn();
    await turn();
    expect(sock.dataHanded()).toBe(first);
    expect(w.flushedOffset).toBe(0);
    // each completed batch lets the next one through, never beyond the mark plus one chunk
    let rounds = 0;
    while (w.pending > 0) {
      sock.complete();
      await turn();
      expect(sock.writableLength).toBeLessThan(HIGH_WATER + 64 * 1024);
      rounds++;
      expect(rounds).toBeLessThan(100);
    }
    expect(rounds).toBeGreaterThanOrEqual(7);
    expect(sock.dataWire().equals(Buffer.concat(sent))).toBe(true);
  });

  it('while the socket is at the mark, data waits even across many turns', async () => {
    const { sock, w } = setup();
    w.dataBytes(Buffer.alloc(HIGH_WATER, 1)); // one big chunk fills the socket
    await turn();
    expect(sock.dataHanded()).toBe(HIGH_WATER);
    w.dataBytes(Buffer.from('tail'));
    for (let i = 0; i < 5; i++) await turn();
    expect(sock.dataHanded()).toBe(HIGH_WATER);
    sock.complete();
    await turn();
    sock.complete();
    expect(sock.dataHanded()).toBe(HIGH_WATER + 4);
    expect(w.pending).toBe(0);
  });

  it('several chunks in one hand-over are corked together and share one callback', async () => {
    const { sock, w } = setup();
    w.dataBytes(Buffer.from('head '));
    w.dataBytes(Buffer.alloc(8192, 0x62));
    w.dataBytes(Buffer.from(' tail'));
    await turn();
    const data = sock.writes.filter((x) => typeof x.chunk !== 'string');
    expect(data.length).toBe(3);
    expect(data.every((x) => x.corked)).toBe(true);
    expect(sock.corks).toBe(1);
    expect(sock.uncorks).toBe(1);
    expect(data.filter((x) => x.cb !== undefined).length).toBe(1);
    expect(data[2]!.cb).toBeDefined();
  });

  it('data queued after control lines that filled the socket still goes out once the socket has written them', async () => {
    // Interest sync at link-up (thousands of LS+) followed by replayed messages: the control
    // lines fill the socket, so the data cannot be handed over on this turn. Those writes carry
    // no callback, so the writer must learn another way that the socket has room again.
    const { sock, w } = setup();
    for (let i = 0; i < 8000; i++) w.controlLine(`LS+ subject.number.${i}\r\n`);
    w.dataBytes(Buffer.from('LMSG replayed 2\r\nhi\r\n'));
    await turn();
    expect(sock.writableLength).toBeGreaterThanOrEqual(HIGH_WATER);
    sock.complete(); // the kernel takes everything handed over so far
    for (let i = 0; i < 5; i++) {
      await turn();
      sock.complete();
    }
    expect(sock.dataWire().toString()).toBe('LMSG replayed 2\r\nhi\r\n');
  });

  it('data does not stall when control lines written after a batch keep the socket above the mark at its callback', async () => {
    const { sock, w } = setup();
    w.dataBytes(Buffer.alloc(HIGH_WATER, 0x61));
    await turn();
    expect(sock.dataHanded()).toBe(HIGH_WATER);
    for (let i = 0; i < 8000; i++) w.controlLine(`LS+ subject.number.${i}\r\n`);
    w.dataBytes(Buffer.from('last'));
    await turn();
    sock.complete(1); // the data batch: its callback sees the control lines still queued
    sock.complete(); // then the control lines, which have no callback
    for (let i = 0; i < 5; i++) {
      await turn();
      sock.complete();
    }
    expect(sock.dataHanded()).toBe(HIGH_WATER + 4);
    expect(w.flushedOffset).toBe(HIGH_WATER + 4);
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
    w.dataBytes(Buffer.alloc(5000, 0x7a));
    expect(w.queuedOffset).toBe(5013);
    expect(budget.bytes).toBe(5013);
    await turn();
    expect(w.flushedOffset).toBe(0); // handed over is not written
    expect(progress).toBe(0);
    sock.complete();
    expect(w.flushedOffset).toBe(5013);
    expect(w.pending).toBe(0);
    expect(budget.bytes).toBe(0);
    expect(progress).toBe(1);
    writeFramed(w, Buffer.from('more'));
    expect(w.queuedOffset).toBe(5017);
    await turn();
    sock.complete();
    expect(w.flushedOffset).toBe(5017);
    expect(seen).toEqual([5013, 5017]);
  });

  it('flushedOffset never passes queuedOffset and only grows, across many partial completions', async () => {
    const { sock, budget, w } = setup();
    let last = 0;
    w.onProgress = () => {
      expect(w.flushedOffset).toBeGreaterThan(last);
      expect(w.flushedOffset).toBeLessThanOrEqual(w.queuedOffset);
      last = w.flushedOffset;
    };
    for (let i = 0; i < 3000; i++) writeFramed(w, message(i, 300));
    await turn();
    while (w.pending > 0) {
      sock.complete(1);
      expect(budget.bytes).toBe(w.pending);
      await turn();
    }
    expect(last).toBe(3000 * 300);
  });

  it('close() releases the whole charge: waiting data and data handed over but not written', async () => {
    const { sock, budget, w } = setup();
    let progress = 0;
    w.onProgress = () => progress++;
    for (let i = 0; i < 300; i++) w.dataBytes(message(i, 1024));
    w.dataBytes(Buffer.alloc(70_000));
    expect(budget.bytes).toBe(300 * 1024 + 70_000);
    await turn();
    expect(sock.dataHanded()).toBeGreaterThan(0);
    w.close();
    expect(budget.bytes).toBe(0);
    // late callbacks from the socket change nothing
    sock.complete();
    expect(budget.bytes).toBe(0);
    expect(progress).toBe(0);
    // and nothing more is queued or written
    const writes = sock.writes.length;
    w.controlLine('PING\r\n');
    w.dataBytes(Buffer.from('x'));
    w.commitData(1);
    await turn();
    expect(sock.writes.length).toBe(writes);
    expect(budget.bytes).toBe(0);
    w.close(); // twice is harmless
    expect(budget.bytes).toBe(0);
  });

  it('close() after a partial completion releases exactly the rest', async () => {
    const { sock, budget, w } = setup();
    for (let i = 0; i < 500; i++) writeFramed(w, message(i, 1000));
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
    for (let i = 0; i < 100; i++) w.dataBytes(message(i, 1000));
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
    const small = Buffer.alloc(4095, 0x73);
    const edge = Buffer.alloc(4096, 0x65);
    const big = Buffer.alloc(5000, 0x62);
    const huge = Buffer.alloc(200 * 1024, 0x68);
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
    expect(sock.dataWire().equals(Buffer.concat([small, edge, big, huge]))).toBe(true);
  });

  it('a view into a larger buffer is sent as exactly that view', async () => {
    const { sock, w } = setup();
    const backing = Buffer.alloc(100_000);
    for (let i = 0; i < backing.length; i++) backing[i] = i & 0xff;
    const view = backing.subarray(1234, 1234 + 70_000);
    w.dataBytes(Buffer.from('<'));
    w.dataBytes(view);
    w.dataBytes(Buffer.from('>'));
    await drain(sock, w);
    expect(sock.dataWire().equals(Buffer.concat([Buffer.from('<'), view, Buffer.from('>')]))).toBe(true);
  });

  it('small payloads are copied: changing the caller buffer afterwards changes nothing', async () => {
    const { sock, w } = setup();
    const b = Buffer.from('hello world');
    w.dataBytes(b);
    b.fill(0x21);
    await drain(sock, w);
    expect(sock.dataWire().toString()).toBe('hello world');
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
        const m = message(round * 100 + i, 37 + ((round * 13 + i * 7) % 900));
        sent.push(m);
        writeFramed(w, m);
      }
      await turn(); // hand over, the socket does not write yet
      if (round % 3 === 2) sock.complete();
    }
    await drain(sock, w);
    expect(sock.dataWire().equals(Buffer.concat(sent))).toBe(true);
  });

  it('random mix of framed writes, large payloads, control lines and completions: bytes arrive in order and intact', async () => {
    let seed = 42;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    const { sock, budget, w } = setup();
    const sent: Buffer[] = [];
    const controls: string[] = [];
    let progressCalls = 0;
    w.onProgress = () => progressCalls++;
    for (let step = 0; step < 3000; step++) {
      const r = rnd();
      if (r < 0.55) {
        const m = message(step, 1 + Math.floor(rnd() * 2000));
        sent.push(m);
        writeFramed(w, m);
      } else if (r < 0.65) {
        const m = message(step, 4096 + Math.floor(rnd() * 150_000));
        sent.push(m);
        w.dataBytes(m);
      } else if (r < 0.75) {
        const m = message(step, 1 + Math.floor(rnd() * 4095));
        sent.push(m);
        w.dataBytes(m);
      } else if (r < 0.82) {
        const line = `LS+ s.${step}\r\n`;
        controls.push(line);
        w.controlLine(line);
      } else if (r < 0.92) {
        await turn();
      } else {
        sock.complete(Math.floor(rnd() * 4));
      }
      expect(budget.bytes).toBe(w.pending);
    }
    await drain(sock, w);
    const expected = Buffer.concat(sent);
    expect(w.queuedOffset).toBe(expected.length);
    expect(w.flushedOffset).toBe(expected.length);
    expect(sock.dataWire().equals(expected)).toBe(true);
    expect(sock.controlWrites().join('')).toBe(controls.join(''));
    expect(budget.bytes).toBe(0);
    expect(progressCalls).toBeGreaterThan(10);
  });
});
