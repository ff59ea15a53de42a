// Raw NATS client protocol for the load generator: pre-built frames out, a byte scanner in.
// No client library: at a million messages a second the library, not the server, would be
// what is measured. Incoming MSG frames are counted by scanning bytes; nothing is decoded
// into strings on the message path.
import { connect as tcpConnect } from 'node:net';

const LF = 10;
const CH_M = 77; // MSG
const CH_H = 72; // HMSG
const CH_P = 80; // PING / PONG
const CH_I = 73; // INFO (also the I of PING)
const CH_PLUS = 43; // +OK
const CH_MINUS = 45; // -ERR

export const CONNECT_FRAME = Buffer.from(
  'CONNECT {"verbose":false,"pedantic":false,"echo":true,"protocol":1,"lang":"bench","version":"0","name":"bench"}\r\n',
);
export const PING_FRAME = Buffer.from('PING\r\n');
export const PONG_FRAME = Buffer.from('PONG\r\n');

/** `PUB subject [reply] size\r\n payload \r\n` as one Buffer. */
export function pubFrame(subject, payload, reply) {
  const head = reply === undefined ? `PUB ${subject} ${payload.length}\r\n` : `PUB ${subject} ${reply} ${payload.length}\r\n`;
  return Buffer.concat([Buffer.from(head), payload, Buffer.from('\r\n')]);
}

/** `n` copies of one PUB frame back to back, written to the socket as one chunk. */
export function pubBatch(subject, payload, n) {
  const one = pubFrame(subject, payload);
  const out = Buffer.allocUnsafe(one.length * n);
  for (let i = 0; i < n; i++) one.copy(out, i * one.length);
  return out;
}

/** A payload of `size` printable bytes (no CR/LF, so a stray scan can never resync on it). */
export function makePayload(size) {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 97 + (i % 26);
  return b;
}

/** Decimal integer written in buf[from, to); NaN if a byte is not a digit. */
export function parseUint(buf, from, to) {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  return to > from ? n : NaN;
}

/**
 * Splits the server->client byte stream into control lines and skips payloads by their size.
 * Calls sink.onMsg(buf, lineStart, lineEnd) for every MSG/HMSG (lineEnd is the index of the
 * LF; the line is whole in buf), sink.onPing(), sink.onPong(), sink.onErr(text), sink.onInfo(text).
 * Only a control line split across two chunks is copied.
 */
export class Scanner {
  constructor(sink) {
    this.sink = sink;
    /** Payload+CRLF bytes still to skip from the next chunk(s). */
    this.skip = 0;
    /** Start of a control line the previous chunk ended inside of. */
    this.partial = null;
    this.msgs = 0;
  }

  push(chunk) {
    const len = chunk.length;
    let pos = 0;
    if (this.skip > 0) {
      if (this.skip >= len) {
        this.skip -= len;
        return;
      }
      pos = this.skip;
      this.skip = 0;
    }
    if (this.partial !== null) {
      const nl = chunk.indexOf(LF, pos);
      if (nl < 0) {
        this.partial = Buffer.concat([this.partial, chunk.subarray(pos)]);
        return;
      }
      const line = Buffer.concat([this.partial, chunk.subarray(pos, nl + 1)]);
      this.partial = null;
      this.line(line, 0, line.length - 1);
      pos = nl + 1;
      if (this.skip > 0) {
        const avail = len - pos;
        if (this.skip > avail) {
          this.skip -= avail;
          return;
        }
        pos += this.skip;
        this.skip = 0;
      }
    }
    while (pos < len) {
      const nl = chunk.indexOf(LF, pos);
      if (nl < 0) {
        this.partial = Buffer.from(chunk.subarray(pos));
        return;
      }
      this.line(chunk, pos, nl);
      pos = nl + 1;
      if (this.skip > 0) {
        const avail = len - pos;
        if (this.skip > avail) {
          this.skip -= avail;
          return;
        }
        pos += this.skip;
        this.skip = 0;
      }
    }
  }

  line(buf, start, nl) {
    const c0 = buf[start];
    if (c0 === CH_M || c0 === CH_H) {
      // The last token is the (total) size: read digits backwards from before "\r\n".
      let end = nl;
      if (buf[end - 1] === 13) end--;
      let i = end - 1;
      while (i > start && buf[i] !== 32) i--;
      const size = parseUint(buf, i + 1, end);
      if (!Number.isFinite(size)) throw new Error(`bad MSG line: ${buf.toString('latin1', start, nl)}`);
      this.skip = size + 2;
      this.msgs++;
      this.sink.onMsg(buf, start, nl);
    } else if (c0 === CH_P) {
      if (buf[start + 1] === CH_I) this.sink.onPing();
      else this.sink.onPong();
    } else if (c0 === CH_I) {
      this.sink.onInfo(buf.toString('utf8', start, nl).trim());
    } else if (c0 === CH_MINUS) {
      this.sink.onErr(buf.toString('utf8', start, nl).trim());
    } else if (c0 !== CH_PLUS) {
      throw new Error(`unexpected protocol line: ${buf.toString('latin1', start, Math.min(nl, start + 80))}`);
    }
  }
}

/**
 * One raw client connection. `handler` (optional) gets onMsg(conn, buf, lineStart, lineEnd)
 * per MSG and afterData(conn) once per socket chunk, so per-message work stays a method call.
 */
export class RawConn {
  constructor(socket, handler) {
    this.socket = socket;
    this.handler = handler ?? null;
    this.scanner = new Scanner(this);
    this.pongWaiters = [];
    this.errors = [];
    this.info = null;
    this.closed = false;
    this.infoWaiter = null;
    this.closeWaiters = [];
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      this.scanner.push(chunk);
      if (this.handler !== null && this.handler.afterData !== undefined) this.handler.afterData(this);
    });
    socket.on('error', (err) => {
      this.errors.push(err.message);
    });
    socket.on('close', () => {
      this.closed = true;
      const reason = new Error(`connection closed by server${this.errors.length ? ': ' + this.errors.join('; ') : ''}`);
      for (const w of this.pongWaiters.splice(0)) w.reject(reason);
      if (this.infoWaiter !== null) this.infoWaiter.reject(reason);
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  /** Number of MSG/HMSG frames received so far. */
  get msgs() {
    return this.scanner.msgs;
  }

  /** Connects, waits for INFO, sends CONNECT. */
  static open(port, opts = {}) {
    const host = opts.host ?? '127.0.0.1';
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ port, host });
      const conn = new RawConn(socket, opts.handler);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no INFO from ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      conn.infoWaiter = {
        resolve: () => {
          clearTimeout(timer);
          socket.write(opts.connectFrame ?? CONNECT_FRAME);
          resolve(conn);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  write(buf) {
    return this.socket.write(buf);
  }

  /** PING and wait for its PONG: everything sent before has been processed by the server. */
  flush() {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('connection closed'));
        return;
      }
      this.pongWaiters.push({ resolve, reject });
      this.socket.write(PING_FRAME);
    });
  }

  waitClosed() {
    return new Promise((resolve) => {
      if (this.closed) resolve();
      else this.closeWaiters.push(resolve);
    });
  }

  close() {
    this.socket.destroy();
  }

  // Scanner sink.
  onMsg(buf, start, nl) {
    if (this.handler !== null) this.handler.onMsg(this, buf, start, nl);
  }

  onPing() {
    this.socket.write(PONG_FRAME);
  }

  onPong() {
    const w = this.pongWaiters.shift();
    if (w !== undefined) w.resolve();
  }

  onInfo(text) {
    this.info = text;
    const w = this.infoWaiter;
    this.infoWaiter = null;
    if (w !== null) w.resolve();
  }

  onErr(text) {
    this.errors.push(text);
  }
}
