/**
 * A bare TCP client for byte-exact protocol assertions: it keeps every byte the server sent,
 * lets a test wait for a pattern, and tells whether and when the server closed the socket.
 */
import { connect as tcpConnect, type Socket } from 'node:net';

export type Matcher = RegExp | string | ((text: string) => boolean);

export interface RawConnectOptions {
  host?: string;
  /** Wait for the INFO line, parse it into `info` and drop it from the collected bytes (default true). */
  readInfo?: boolean;
  timeoutMs?: number;
}

/** The server INFO fields the tests look at; the rest stays available by name. */
export interface ServerInfo {
  server_id: string;
  version: string;
  max_payload: number;
  headers?: boolean;
  auth_required?: boolean;
  tls_required?: boolean;
  tls_verify?: boolean;
  client_id?: number;
  [key: string]: unknown;
}

/** JSON.stringify shows CR/LF and binary bytes unambiguously in failure messages. */
export function show(text: string): string {
  return JSON.stringify(text);
}

function matches(m: Matcher, text: string): boolean {
  if (typeof m === 'string') return text.includes(m);
  if (m instanceof RegExp) return m.test(text);
  return m(text);
}

function countPongs(text: string): number {
  let n = 0;
  for (let i = text.indexOf('PONG\r\n'); i !== -1; i = text.indexOf('PONG\r\n', i + 6)) {
    if (i === 0 || text[i - 1] === '\n') n++;
  }
  return n;
}

export class RawClient {
  info: ServerInfo | undefined;
  private chunks: Buffer[] = [];
  private size = 0;
  private isClosed = false;
  private readonly closedPromise: Promise<void>;
  private waiters: Array<() => void> = [];
  private lastError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.size += chunk.length;
      this.wake();
    });
    // A reset after the server closed is expected in bad-input cases; remember it, never throw.
    socket.on('error', (err) => {
      this.lastError = err;
    });
    this.closedPromise = new Promise((resolveClosed) => {
      socket.once('close', () => {
        this.isClosed = true;
        this.wake();
        resolveClosed();
      });
    });
  }

  static async connect(port: number, opts: RawConnectOptions = {}): Promise<RawClient> {
    const socket = tcpConnect({ host: opts.host ?? '127.0.0.1', port });
    socket.setNoDelay(true);
    await new Promise<void>((resolveConnect, reject) => {
      socket.once('connect', () => resolveConnect());
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    if (opts.readInfo ?? true) {
      const text = await client.waitFor(/^INFO .*\r\n/, opts.timeoutMs ?? 5000);
      const end = text.indexOf('\r\n');
      const line = text.slice(0, end);
      client.info = JSON.parse(line.slice(5).trim()) as ServerInfo;
      client.consume(end + 2);
    }
    return client;
  }

  /** Every byte received since the last clear()/consume(), as latin1 (one char per byte). */
  text(): string {
    return this.buffer().toString('latin1');
  }

  buffer(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Drops everything received so far. */
  clear(): void {
    this.chunks = [];
    this.size = 0;
  }

  /** Drops the first n received bytes. */
  consume(n: number): void {
    const rest = this.buffer().subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
  }

  get closedNow(): boolean {
    return this.isClosed;
  }

  get error(): Error | undefined {
    return this.lastError;
  }

  send(data: string | Buffer): void {
    if (this.isClosed || this.socket.destroyed) return;
    // latin1 keeps a string's char codes as bytes, matching text().
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Resolves with all collected text once it matches; rejects on timeout or if the socket closed first. */
  waitFor(m: Matcher, timeoutMs = 5000): Promise<string> {
    return new Promise((resolveWait, reject) => {
      const check = (): boolean => {
        const text = this.text();
        if (matches(m, text)) {
          finish();
          resolveWait(text);
          return true;
        }
        if (this.isClosed) {
          finish();
          reject(new Error(`socket closed before ${String(m)}; got ${show(text)}`));
          return true;
        }
        return false;
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
      };
      const waiter = (): void => {
        check();
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timeout ${timeoutMs} ms waiting for ${String(m)}; got ${show(this.text())}`));
      }, timeoutMs);
      if (!check()) this.waiters.push(waiter);
    });
  }

  /** Resolves when the server (or we) closed the socket; rejects after timeoutMs. */
  closed(timeoutMs = 5000): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolveClosed, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`socket still open after ${timeoutMs} ms; got ${show(this.text())}`)),
        timeoutMs,
      );
      void this.closedPromise.then(() => {
        clearTimeout(timer);
        resolveClosed();
      });
    });
  }

  /**
   * Sends PING and resolves with all collected text once its PONG arrived: everything the server
   * sent in answer to earlier input is then in. `pongsBefore` = PONGs owed for PINGs already
   * sent since the last clear() (they may still be in flight, so they cannot be told apart by
   * arrival time). Clears nothing.
   */
  async ping(pongsBefore = 0, timeoutMs = 5000): Promise<string> {
    this.send('PING\r\n');
    return this.waitFor((t) => t.endsWith('PONG\r\n') && countPongs(t) > pongsBefore, timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
