/**
 * Load generators and meters for the per-profile fault runs (profiles.test.ts): raw-socket
 * flood publishers with pre-built frames, stalled readers, a crowd of connections, a JetStream
 * publisher that counts its PubAcks, and samplers for RSS and the store's size on disk.
 * Everything is raw sockets and callbacks, so the generator stays cheap next to the broker on a
 * 2-core machine.
 */
import { readFileSync, readdirSync, lstatSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/servers.js';

const HOST = '127.0.0.1';
const PLAIN_CONNECT = 'CONNECT {"verbose":false,"pedantic":false}\r\n';
export const MAX_CONN_ERR = "-ERR 'maximum connections exceeded'";

/** The fields of a firmware profile (firmware-profiles/*.json) the fault run checks against. */
export interface ProfileLimits {
  name: string;
  memoryBudget: number;
  rssCeiling: number;
  maxOldSpaceMb: number;
  maxSemiSpaceMb: number;
  maxConnections: number;
  maxPending: number;
  maxPendingTotal: number;
  maxPayload: number;
  maxFileStore: number;
}

export function readProfile(name: string): ProfileLimits {
  const raw = JSON.parse(readFileSync(join(REPO_ROOT, 'firmware-profiles', `${name}.json`), 'utf8')) as Record<string, unknown>;
  const num = (k: string): number => {
    const v = raw[k];
    if (typeof v !== 'number') throw new Error(`profile ${name}: ${k} is not a number`);
    return v;
  };
  return {
    name,
    memoryBudget: num('memoryBudget'),
    rssCeiling: num('rssCeiling'),
    maxOldSpaceMb: num('maxOldSpaceMb'),
    maxSemiSpaceMb: num('maxSemiSpaceMb'),
    maxConnections: num('maxConnections'),
    maxPending: num('maxPending'),
    maxPendingTotal: num('maxPendingTotal'),
    maxPayload: num('maxPayload'),
    maxFileStore: num('maxFileStore'),
  };
}

export const MiB = 1024 * 1024;
export function mib(n: number): string {
  return (n / MiB).toFixed(1);
}

// ---- meters ---------------------------------------------------------------------------------

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] !== undefined ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** VmRSS every `everyMs` from /proc/PID/status, with the timeline kept as evidence. */
export class RssSampler {
  peak = 0;
  peakAtMs = 0;
  readonly timeline: Array<[number, number]> = [];
  private readonly t0 = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    everyMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): number {
    const rss = statusField(this.pid, 'VmRSS');
    const t = Date.now() - this.t0;
    this.timeline.push([t, rss]);
    if (rss > this.peak) {
      this.peak = rss;
      this.peakAtMs = t;
    }
    return rss;
  }

  /** The kernel's own high-water mark of the resident set, over the process's whole life. */
  hwm(): number {
    return statusField(this.pid, 'VmHWM');
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** One line per second, MiB: evidence for a report. */
  summary(): string {
    const out: string[] = [];
    let next = 0;
    for (const [t, rss] of this.timeline) {
      if (t < next) continue;
      out.push(`${(t / 1000).toFixed(1)}s:${mib(rss)}`);
      next = t + 1000;
    }
    return out.join(' ');
  }
}

/** Bytes a directory tree holds: apparent size and allocated blocks (what du reports). */
export function dirUsage(dir: string): { apparent: number; allocated: number } {
  let apparent = 0;
  let allocated = 0;
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      try {
        const st = lstatSync(p);
        if (st.isDirectory()) walk(p);
        else {
          apparent += st.size;
          allocated += st.blocks * 512;
        }
      } catch {
        // A WAL file can vanish between readdir and stat.
      }
    }
  };
  walk(dir);
  return { apparent, allocated };
}

/** The store directory's size, sampled during the run: the cap must hold throughout. */
export class StoreSampler {
  peak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly dir: string,
    everyMs = 500,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): number {
    const u = dirUsage(this.dir);
    const size = Math.max(u.apparent, u.allocated);
    if (size > this.peak) this.peak = size;
    return size;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}

// ---- raw clients ----------------------------------------------------------------------------

/** Connects, sends `hello` + PING, resolves with the socket once PONG came back. */
export function rawHandshake(port: number, hello: string, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = tcpConnect({ host: HOST, port });
    sock.setNoDelay(true);
    let text = '';
    const timer = setTimeout(() => fail(new Error(`no PONG within ${timeoutMs} ms: ${JSON.stringify(text.slice(0, 300))}`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    const onData = (b: Buffer): void => {
      text += b.toString('latin1');
      if (text.includes('-ERR')) fail(new Error(`refused: ${JSON.stringify(text.slice(0, 300))}`));
      else if (text.includes('PONG\r\n')) {
        clearTimeout(timer);
        sock.off('data', onData);
        sock.off('error', fail);
        sock.off('close', onClose);
        sock.on('error', () => {});
        resolve(sock);
      }
    };
    const onClose = (): void => fail(new Error(`closed before PONG: ${JSON.stringify(text.slice(0, 300))}`));
    sock.on('data', onData);
    sock.once('error', fail);
    sock.once('close', onClose);
    sock.once('connect', () => sock.write(`${hello}PING\r\n`));
  });
}

/**
 * A subscriber that stops reading right after its SUB was confirmed: the server's queue for
 * it can only grow, until the server cuts it as a slow consumer.
 */
export async function stalledReader(port: number, name: string, subject: string): Promise<Socket> {
  const sock = await rawHandshake(port, `CONNECT {"verbose":false,"pedantic":false,"name":"${name}"}\r\nSUB ${subject} 1\r\n`);
  sock.pause();
  return sock;
}

/** `count` PUB frames of 1-4 KiB (sizes cycle), concatenated: one write per batch. */
export function pubBatch(subject: string, count: number, reply = ''): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const size = 1024 + ((i * 1021) % 3073);
    const head = reply === '' ? `PUB ${subject} ${size}\r\n` : `PUB ${subject} ${reply} ${size}\r\n`;
    parts.push(Buffer.from(head, 'latin1'), Buffer.alloc(size, 0x61 + (i % 26)), Buffer.from('\r\n', 'latin1'));
  }
  return Buffer.concat(parts);
}

/** Frames in one batch; each pubBatch of this size is about 160 KiB. */
export const BATCH_FRAMES = 64;

/** Payload bytes in a pubBatch(_, BATCH_FRAMES). */
export function batchPayloadBytes(count = BATCH_FRAMES): number {
  let n = 0;
  for (let i = 0; i < count; i++) n += 1024 + ((i * 1021) % 3073);
  return n;
}

/**
 * Writes pre-built batches as fast as the socket takes them (one batch per 'drain'). The
 * target is picked per batch by `next()`, so a caller can move a flood from subject to subject.
 * What the server sends back (PINGs, an -ERR) is kept for the report.
 */
export class FloodPublisher {
  batches = 0;
  bytes = 0;
  received = '';
  closed = false;
  private stopped = false;

  private constructor(
    private readonly sock: Socket,
    private readonly next: () => Buffer | null,
  ) {
    sock.on('data', (b: Buffer) => {
      if (this.received.length < 4096) this.received += b.toString('latin1');
      // Answer the server's keep-alive so a paused-then-resumed publisher is never stale.
      if (b.includes('PING\r\n')) sock.write('PONG\r\n');
    });
    sock.on('close', () => (this.closed = true));
    sock.on('drain', () => this.pump());
  }

  static async open(port: number, name: string, next: () => Buffer | null): Promise<FloodPublisher> {
    const sock = await rawHandshake(port, `CONNECT {"verbose":false,"pedantic":false,"name":"${name}"}\r\n`);
    return new FloodPublisher(sock, next);
  }

  start(): void {
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && !this.closed) {
      const batch = this.next();
      if (batch === null) return;
      this.batches++;
      this.bytes += batch.length;
      if (!this.sock.write(batch)) return;
    }
  }

  stop(): void {
    this.stopped = true;
    this.sock.destroy();
  }
}

/**
 * JetStream publishes with a reply subject, `window` outstanding, counting the PubAcks: stored,
 * refused by err_code, anything else. Parses only the MSG frames of its own reply subject.
 */
export class AckPublisher {
  ok = 0;
  readonly errors = new Map<number, number>();
  firstError = '';
  lastAck = '';
  other = 0;
  sent = 0;
  private outstanding = 0;
  private stopped = false;
  private buf: Buffer = Buffer.alloc(0);
  private readonly frame: Buffer;

  private constructor(
    private readonly sock: Socket,
    subject: string,
    private readonly window: number,
  ) {
    this.frame = Buffer.concat([Buffer.from(`PUB ${subject} acks.inbox 2048\r\n`), Buffer.alloc(2048, 0x6b), Buffer.from('\r\n')]);
    sock.on('data', (b: Buffer) => this.onData(b));
  }

  static async open(port: number, subject: string, window = 16): Promise<AckPublisher> {
    const sock = await rawHandshake(port, `${PLAIN_CONNECT}SUB acks.inbox 1\r\n`);
    return new AckPublisher(sock, subject, window);
  }

  get refused(): number {
    let n = 0;
    for (const v of this.errors.values()) n += v;
    return n;
  }

  start(): void {
    this.fill();
  }

  stop(): void {
    this.stopped = true;
    this.sock.destroy();
  }

  private fill(): void {
    while (!this.stopped && this.outstanding < this.window) {
      this.outstanding++;
      this.sent++;
      this.sock.write(this.frame);
    }
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buf.toString('latin1', 0, eol);
      if (line.startsWith('MSG ')) {
        const size = Number(line.slice(line.lastIndexOf(' ') + 1));
        if (this.buf.length < eol + 2 + size + 2) return;
        this.onAck(this.buf.toString('utf8', eol + 2, eol + 2 + size));
        this.buf = this.buf.subarray(eol + 2 + size + 2);
      } else {
        if (line === 'PING') this.sock.write('PONG\r\n');
        this.buf = this.buf.subarray(eol + 2);
      }
    }
  }

  private onAck(json: string): void {
    this.outstanding--;
    this.lastAck = json;
    let ack: { error?: { err_code?: number }; seq?: number };
    try {
      ack = JSON.parse(json) as typeof ack;
    } catch {
      this.other++;
      return;
    }
    const code = ack.error?.err_code;
    if (code !== undefined) {
      this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
      if (this.firstError === '') this.firstError = json;
    } else if (typeof ack.seq === 'number') this.ok++;
    else this.other++;
    this.fill();
  }
}

export interface CrowdResult {
  accepted: Socket[];
  refused: number;
  /** Closed or failed with neither PONG nor the max-connections -ERR: what they saw. */
  other: string[];
  ms: number;
}

/**
 * Opens `n` connections, `concurrency` handshakes at a time, each CONNECT + SUB + PING. A
 * connection is accepted on PONG (and kept open), refused on nats-server's max-connections
 * -ERR; anything else is reported.
 */
export function openCrowd(port: number, n: number, concurrency = 200, timeoutMs = 20_000): Promise<CrowdResult> {
  const t0 = Date.now();
  const accepted: Socket[] = [];
  const other: string[] = [];
  let refused = 0;
  let started = 0;
  let settled = 0;
  return new Promise((resolve) => {
    const launch = (): void => {
      while (started < n && started - settled < concurrency) one(started++);
      if (settled === n) resolve({ accepted, refused, other, ms: Date.now() - t0 });
    };
    const one = (i: number): void => {
      const sock = tcpConnect({ host: HOST, port });
      let text = '';
      let done = false;
      const settle = (how: 'ok' | 'refused' | string): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.removeAllListeners('data');
        if (how === 'ok') {
          accepted.push(sock);
          // Keep reading (server PINGs) so an accepted member never turns into a slow consumer.
          sock.on('data', (b: Buffer) => {
            if (b.includes('PING\r\n')) sock.write('PONG\r\n');
          });
        } else {
          if (how === 'refused') refused++;
          else other.push(how);
          sock.destroy();
        }
        settled++;
        launch();
      };
      const timer = setTimeout(() => settle(`#${i} timeout: ${JSON.stringify(text.slice(-200))}`), timeoutMs);
      sock.on('error', (err) => settle(`#${i} ${err.message}: ${JSON.stringify(text.slice(-200))}`));
      sock.on('close', () => settle(`#${i} closed: ${JSON.stringify(text.slice(-200))}`));
      sock.on('data', (b: Buffer) => {
        text += b.toString('latin1');
        if (text.includes(MAX_CONN_ERR)) settle('refused');
        else if (text.includes('PONG\r\n')) settle('ok');
      });
      sock.once('connect', () => sock.write(`${PLAIN_CONNECT}SUB crowd.${i} 1\r\nPING\r\n`));
    };
    launch();
  });
}

/** Resumes a stalled reader and resolves once the server's close reaches it (or after `ms`). */
export function drainUntilClosed(sock: Socket, ms: number): Promise<boolean> {
  if (sock.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, ms);
    sock.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    sock.on('data', () => {});
    sock.resume();
  });
}
