/**
 * Streaming parser for the NATS client protocol, client -> server direction.
 *
 * Behaviour follows nats-server 2.9 byte for byte (verified over raw sockets against the Debian
 * build of v2.9.10, also differentially on fuzz inputs); see spec/client-protocol.md §1-§2.
 * That includes a quirk: when a CR occurs anywhere in a line's arguments, nats-server drops the
 * last byte before the LF, whatever it is (`SUB foo\rq 12\n` subscribes sid "1" in queue "q").
 * Two deliberate differences:
 *  - nats-server does that only for a line it gets in one read; for a line split across its
 *    reads it removes every CR instead. Here the one-read behaviour holds for any split, so
 *    any split of the input gives the same callbacks.
 *  - Subjects, replies and queues are decoded as UTF-8, so invalid UTF-8 becomes U+FFFD;
 *    nats-server keeps raw bytes. (sids are latin1 and round-trip exactly.)
 *
 * Hot path: the parser works in place on the caller's chunk. A payload that lies completely in
 * the chunk is handed out as a view (no copy); only a payload that spans chunks is assembled into
 * one Buffer of exactly its size. A control line that spans chunks is accumulated in a small
 * reusable buffer whose size the control-line limit bounds.
 */

export type ProtocolErrorKind =
  | 'unknown-op' // -> server sends -ERR 'Unknown Protocol Operation' and closes
  | 'bad-args' // malformed PUB/HPUB/SUB/UNSUB args (count, numbers, hdr > total), bad INFO JSON: close WITHOUT -ERR
  | 'control-line' // args longer than maxControlLine: -ERR 'maximum control line exceeded', close
  | 'max-payload' // PUB/HPUB size (total for HPUB) > maxPayload: -ERR 'Maximum Payload Violation', close
  | 'client-err' // the client sent -ERR: close (nats-server logs it as a client error)
  | 'auth-violation'; // an op other than CONNECT while awaitingAuth: -ERR 'Authorization Violation', close

export interface ProtocolHandler {
  /** Raw text after CONNECT and its whitespace, a CR before the LF dropped. */
  onConnect(json: string): void;
  /** Client INFO: accepted and ignored (the parser already closed on JSON that is not an object). */
  onInfo(): void;
  /**
   * hdrLen is -1 for PUB, the header block length for HPUB (0 allowed). data = headers + payload.
   * When the payload lay inside one chunk, data is a view of that chunk (no copy): it is valid
   * as long as the caller does not reuse the chunk, and keeping it keeps the whole chunk alive.
   */
  onPub(subject: string, reply: string, hdrLen: number, data: Buffer): void;
  /** queue is '' when none. sid is decoded as latin1, so writing it back as latin1 echoes its exact bytes. */
  onSub(subject: string, queue: string, sid: string): void;
  /** max is 0 when none (nats-server also treats a malformed or zero max as none). */
  onUnsub(sid: string, max: number): void;
  onPing(): void;
  onPong(): void;
  /** +OK from a client: ignored by the server. */
  onOk(): void;
  /** After this the parser stops for good. */
  onError(kind: ProtocolErrorKind, detail?: string): void;
}

export interface ParserLimits {
  maxControlLine: number;
  maxPayload: number;
}

const LF = 10;
const CR = 13;
const SP = 32;
const TAB = 9;

// Ops. Their index selects the rest of the op name in NAMES and the state after the name.
const OP_PUB = 0;
const OP_HPUB = 1;
const OP_SUB = 2;
const OP_UNSUB = 3;
const OP_CONNECT = 4;
const OP_INFO = 5;
const OP_PING = 6;
const OP_PONG = 7;
const OP_OK = 8;
const OP_ERR = 9;
const OP_HMSG = 10;

// States.
const ST_OP_START = 0;
const ST_OP_P = 1; // after 'P': PUB, PING or PONG
const ST_OP_H = 2; // after 'H': HPUB or HMSG
const ST_OP_NAME = 3; // matching the rest of a known op name
const ST_SEP = 4; // op name done, one SPACE/TAB required
const ST_SPC = 5; // skipping SPACE/TAB before the arguments
const ST_ARG = 6; // inside the arguments, up to LF
const ST_SKIP = 7; // PING/PONG/+OK: everything up to LF is ignored
const ST_PAYLOAD_BEGIN = 8; // control line of PUB/HPUB done, payload not started
const ST_PAYLOAD = 9; // assembling a payload that spans chunks
const ST_END_CR = 10;
const ST_END_LF = 11;

/** Lower-case op names, matched case-insensitively byte by byte. */
const NAMES: readonly Uint8Array[] = [
  'pub',
  'hpub',
  'sub',
  'unsub',
  'connect',
  'info',
  'ping',
  'pong',
  '+ok',
  '-err',
  'hmsg',
].map((s) => new Uint8Array(Buffer.from(s, 'latin1')));

// nats-server requires a separator after the ops with positional arguments; CONNECT and INFO
// take their JSON right after the name (`CONNECT{}` works), PING/PONG/+OK ignore the rest.
const AFTER_NAME: readonly number[] = [
  ST_SEP, ST_SEP, ST_SEP, ST_SEP, ST_SPC, ST_SPC, ST_SKIP, ST_SKIP, ST_SKIP, ST_SEP, ST_SEP,
];

const OP_LABEL: readonly string[] = [
  'PUB', 'HPUB', 'SUB', 'UNSUB', 'CONNECT', 'INFO', 'PING', 'PONG', '+OK', '-ERR', 'HMSG',
];

/** ASCII upper case folded to lower case; every other byte maps to itself. */
const LOWER = new Uint8Array(256);
for (let i = 0; i < 256; i++) LOWER[i] = i >= 65 && i <= 90 ? i + 32 : i;

const PAUSED = 1;
const STOPPED = 2;

/**
 * A Buffer view made the way Node makes its own (a Uint8Array subclass whose prototype is
 * Buffer.prototype): Buffer#subarray goes through the species protocol and costs about three
 * times as much, once per message.
 */
class BufferView extends Uint8Array {}
Object.setPrototypeOf(BufferView.prototype, Buffer.prototype);

function view(buf: Buffer, start: number, end: number): Buffer {
  return new BufferView(buf.buffer as ArrayBuffer, buf.byteOffset + start, end - start) as unknown as Buffer;
}

/** Longest subject kept in the one-entry subject cache. */
const SUBJECT_CACHE_BYTES = 256;

/**
 * A size token as nats-server reads it: 1 to 9 decimal digits, else -1. Ten or more digits are
 * refused even with leading zeros (nats-server caps the token length, not the value).
 */
function parseSize(buf: Buffer, s: number, e: number): number {
  const n = e - s;
  if (n === 0 || n > 9) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/**
 * Callbacks run synchronously inside parse() (or resume()). A handler may call pause(), stop()
 * or even parse() (queued behind the current chunk). An exception thrown by a handler stops the
 * parser for good and propagates out of parse().
 */
export class Parser {
  maxControlLine: number;
  maxPayload: number;
  /**
   * Whether HPUB is allowed: nats-server closes silently on HPUB from a client whose CONNECT did
   * not say `"headers":true` (checked after the control-line limit, before the arguments).
   * The connection sets it from CONNECT; true by default.
   */
  headers = true;
  /**
   * While true, an op that does not start with C/c is refused at its first byte with
   * 'auth-violation' (nats-server does this while a client that must authenticate has not sent
   * an accepted CONNECT; `XYZ` then gets Authorization Violation, `CXYZ` Unknown Protocol
   * Operation). The connection sets it when auth is required and clears it after CONNECT.
   */
  awaitingAuth = false;

  private readonly handler: ProtocolHandler;
  private state = ST_OP_START;
  private op = OP_PUB;
  private nameIdx = 0;
  private flags = 0;
  /** True while run() is on the stack: a nested parse() is queued, not run. */
  private running = false;

  // Control line that spans chunks.
  private lineBuf: Buffer = Buffer.alloc(0);
  private lineLen = 0;
  /** A CR was seen after the first byte of the buffered line. */
  private lineCR = false;

  // PUB/HPUB waiting for (the rest of) its payload.
  private subject = '';
  private reply = '';
  private hdrLen = -1;
  private size = 0;
  private payload: Buffer | null = null;
  private fill = 0;

  // Bytes kept while paused (owned copies), oldest first.
  private kept: Buffer[] = [];
  private keptBytes = 0;

  /** Token boundaries of the current control line: start, end pairs. */
  private readonly tok = new Int32Array(10);

  // One-entry subject cache: publishers mostly repeat a subject, and reusing the string keeps
  // its hash for the router's lookups.
  private readonly lastSubjectBytes = Buffer.alloc(SUBJECT_CACHE_BYTES);
  private lastSubjectLen = -1;
  private lastSubject = '';

  constructor(handler: ProtocolHandler, limits: ParserLimits) {
    this.handler = handler;
    this.maxControlLine = limits.maxControlLine;
    this.maxPayload = limits.maxPayload;
  }

  /** Bytes currently buffered inside the parser (for memory accounting). */
  get buffered(): number {
    return this.lineLen + (this.payload === null ? 0 : this.payload.length) + this.keptBytes;
  }

  parse(chunk: Buffer): void {
    if ((this.flags & STOPPED) !== 0 || chunk.length === 0) return;
    if (this.flags !== 0 || this.running || this.kept.length !== 0) {
      // The caller may reuse its buffer after we return: keep a copy.
      this.kept.push(Buffer.from(chunk));
      this.keptBytes += chunk.length;
      if (this.flags === 0 && !this.running) this.drain();
      return;
    }
    this.guardedRun(chunk, false);
    if (this.kept.length !== 0 && this.flags === 0) this.drain();
  }

  /**
   * Called from inside a handler callback: stop consuming; the rest of the current chunk is kept
   * (copied). Outside a callback it holds the parser too: parse() calls then keep their chunks
   * (copied, counted in `buffered`) until resume(), so the caller should pause its socket as well.
   */
  pause(): void {
    if ((this.flags & STOPPED) === 0) this.flags |= PAUSED;
  }

  /** Continue with the kept bytes, then further parse() calls. */
  resume(): void {
    if (this.flags !== PAUSED) return;
    this.flags = 0;
    // Inside a callback the running loop simply carries on.
    if (!this.running) this.drain();
  }

  /** Stop for good (connection closing); further parse() calls are ignored. */
  stop(): void {
    this.flags |= STOPPED;
    this.release();
  }

  private drain(): void {
    while (this.flags === 0 && this.kept.length !== 0) {
      const chunk = this.kept.shift()!;
      this.keptBytes -= chunk.length;
      this.guardedRun(chunk, true);
    }
  }

  /** A handler that throws leaves the stream at an unknown point: stop for good, then rethrow. */
  private guardedRun(chunk: Buffer, owned: boolean): void {
    this.running = true;
    try {
      this.run(chunk, 0, owned);
    } catch (err) {
      this.stop();
      throw err;
    } finally {
      this.running = false;
    }
  }

  private release(): void {
    this.kept = [];
    this.keptBytes = 0;
    this.payload = null;
    this.lineLen = 0;
  }

  private fail(kind: ProtocolErrorKind, detail: string): void {
    this.flags |= STOPPED;
    this.release();
    this.handler.onError(kind, detail);
  }

  private unknownOp(b: number): void {
    this.fail('unknown-op', `unexpected byte 0x${b.toString(16).padStart(2, '0')} (state ${this.state})`);
  }

  private run(buf: Buffer, pos: number, owned: boolean): void {
    const len = buf.length;
    while (pos < len) {
      switch (this.state) {
        case ST_OP_START: {
          const b = buf[pos];
          if (this.awaitingAuth && b !== 0x43 && b !== 0x63) {
            this.fail('auth-violation', 'an op other than CONNECT before authentication');
            break;
          }
          switch (b) {
            case 0x50: case 0x70: // P
              if (pos + 3 < len && LOWER[buf[pos + 1]] === 0x75 && LOWER[buf[pos + 2]] === 0x62) {
                const sep = buf[pos + 3];
                if (sep === SP || sep === TAB) {
                  // "PUB " all in this chunk: skip the byte-wise name states (the common case).
                  this.op = OP_PUB;
                  this.state = ST_SPC;
                  pos += 4;
                  continue;
                }
              }
              this.state = ST_OP_P;
              break;
            case 0x48: case 0x68: // H
              this.state = ST_OP_H;
              break;
            case 0x53: case 0x73: // S
              this.startName(OP_SUB, 1);
              break;
            case 0x55: case 0x75: // U
              this.startName(OP_UNSUB, 1);
              break;
            case 0x43: case 0x63: // C
              this.startName(OP_CONNECT, 1);
              break;
            case 0x49: case 0x69: // I
              this.startName(OP_INFO, 1);
              break;
            case 0x2b: // +
              this.startName(OP_OK, 1);
              break;
            case 0x2d: // -
              this.startName(OP_ERR, 1);
              break;
            default:
              // Includes MSG (refused at its first byte by nats-server), route and leaf ops,
              // leading whitespace and empty lines.
              this.unknownOp(b);
          }
          pos++;
          break;
        }

        case ST_OP_P: {
          const b = LOWER[buf[pos]];
          if (b === 0x75) this.startName(OP_PUB, 2); // u
          else if (b === 0x69) this.startName(OP_PING, 2); // i
          else if (b === 0x6f) this.startName(OP_PONG, 2); // o
          else this.unknownOp(buf[pos]);
          pos++;
          break;
        }

        case ST_OP_H: {
          const b = LOWER[buf[pos]];
          if (b === 0x70) this.startName(OP_HPUB, 2); // p
          else if (b === 0x6d) this.startName(OP_HMSG, 2); // m
          else this.unknownOp(buf[pos]);
          pos++;
          break;
        }

        case ST_OP_NAME: {
          const name = NAMES[this.op];
          let i = this.nameIdx;
          while (i < name.length && pos < len) {
            if (LOWER[buf[pos]] !== name[i]) break;
            i++;
            pos++;
          }
          if (i === name.length) this.state = AFTER_NAME[this.op];
          else if (pos < len) this.unknownOp(buf[pos]);
          else this.nameIdx = i;
          break;
        }

        case ST_SEP: {
          const b = buf[pos];
          if (b === SP || b === TAB) {
            this.state = ST_SPC;
            pos++;
          } else {
            this.unknownOp(b);
          }
          break;
        }

        case ST_SPC: {
          let b = buf[pos];
          while (b === SP || b === TAB) {
            if (++pos === len) break;
            b = buf[pos];
          }
          if (pos < len) {
            this.state = ST_ARG;
            this.lineLen = 0;
            this.lineCR = false;
          }
          break;
        }

        case ST_ARG: {
          // The first argument byte is taken whatever it is, even CR or LF: nats-server's
          // separator state consumes it as the start of the arguments (`PUB \nfoo 0` publishes
          // to "\nfoo"), so the search for the terminating LF starts after it.
          const start = pos;
          let i = this.lineLen === 0 ? pos + 1 : pos;
          while (i < len && buf[i] !== LF) i++;
          if (i === len) {
            this.holdLine(buf, start, len);
            pos = len;
            break;
          }
          pos = i + 1;
          if (this.lineLen === 0) {
            // A CR before the LF is dropped; so is any other last byte when the arguments hold a CR.
            const end = i - 1 > start && hasCR(buf, start + 1, i) ? i - 1 : i;
            if (end - start > this.maxControlLine) this.failControlLine(end - start);
            else this.processLine(buf, start, end);
          } else {
            this.finishLine(buf, start, i);
          }
          break;
        }

        case ST_SKIP: {
          let i = pos;
          while (i < len && buf[i] !== LF) i++;
          if (i === len) {
            pos = len;
            break;
          }
          pos = i + 1;
          this.state = ST_OP_START;
          if (this.op === OP_PING) this.handler.onPing();
          else if (this.op === OP_PONG) this.handler.onPong();
          else this.handler.onOk();
          break;
        }

        case ST_PAYLOAD_BEGIN: {
          const size = this.size;
          const avail = len - pos;
          if (avail >= size + 2) {
            const end = pos + size;
            if (buf[end] !== CR) {
              this.unknownOp(buf[end]);
              break;
            }
            if (buf[end + 1] !== LF) {
              this.unknownOp(buf[end + 1]);
              break;
            }
            const data = view(buf, pos, end);
            pos = end + 2;
            this.state = ST_OP_START;
            this.handler.onPub(this.subject, this.reply, this.hdrLen, data);
          } else {
            // Its own ArrayBuffer, not a pool slice: a receiver that keeps the message keeps
            // exactly these bytes alive.
            const p = Buffer.allocUnsafeSlow(size);
            const n = avail < size ? avail : size;
            buf.copy(p, 0, pos, pos + n);
            pos += n;
            this.payload = p;
            this.fill = n;
            this.state = n === size ? ST_END_CR : ST_PAYLOAD;
          }
          break;
        }

        case ST_PAYLOAD: {
          const p = this.payload!;
          const need = p.length - this.fill;
          const n = len - pos < need ? len - pos : need;
          buf.copy(p, this.fill, pos, pos + n);
          this.fill += n;
          pos += n;
          if (this.fill === p.length) this.state = ST_END_CR;
          break;
        }

        case ST_END_CR: {
          if (buf[pos] !== CR) {
            this.unknownOp(buf[pos]);
            break;
          }
          pos++;
          this.state = ST_END_LF;
          break;
        }

        case ST_END_LF: {
          if (buf[pos] !== LF) {
            this.unknownOp(buf[pos]);
            break;
          }
          pos++;
          const data = this.payload!;
          this.payload = null;
          this.state = ST_OP_START;
          this.handler.onPub(this.subject, this.reply, this.hdrLen, data);
          break;
        }
      }

      if (this.flags !== 0) {
        if (this.flags === PAUSED && pos < len) this.keepRest(buf, pos, owned);
        return;
      }
    }
  }

  private startName(op: number, matched: number): void {
    this.op = op;
    this.nameIdx = matched;
    this.state = ST_OP_NAME;
  }

  private keepRest(buf: Buffer, pos: number, owned: boolean): void {
    const rest = owned ? buf.subarray(pos) : Buffer.from(buf.subarray(pos));
    this.kept.unshift(rest);
    this.keptBytes += rest.length;
  }

  /**
   * Control line not finished in this chunk: enforce the limit now, so a line that never ends is
   * cut off after maxControlLine bytes instead of being buffered. Once the arguments hold a CR,
   * one byte will be dropped at the LF (the CR before it, or the quirk), so it does not count.
   */
  private holdLine(buf: Buffer, s: number, e: number): void {
    const cr = this.lineCR || hasCR(buf, this.lineLen === 0 ? s + 1 : s, e);
    const total = this.lineLen + (e - s);
    const effective = total >= 2 && cr ? total - 1 : total;
    if (effective > this.maxControlLine) {
      this.failControlLine(effective);
      return;
    }
    this.lineCR = cr;
    this.appendLine(buf, s, e);
  }

  /** The control line started in an earlier chunk ends at buf[e] (LF). */
  private finishLine(buf: Buffer, s: number, e: number): void {
    let segEnd = e;
    // lineLen >= 1 here, so every byte of buf[s, e) comes after the line's first byte.
    if (this.lineLen + (e - s) >= 2 && (this.lineCR || hasCR(buf, s, e))) {
      if (e > s) segEnd--;
      else this.lineLen--;
    }
    const total = this.lineLen + (segEnd - s);
    if (total > this.maxControlLine) {
      this.failControlLine(total);
      return;
    }
    this.appendLine(buf, s, segEnd);
    const n = this.lineLen;
    // Reset before the callbacks so `buffered` is right and a nested op starts clean; lineBuf's
    // bytes stay valid until the next split line, which cannot start before we return.
    this.lineLen = 0;
    this.processLine(this.lineBuf, 0, n);
  }

  private appendLine(buf: Buffer, s: number, e: number): void {
    const need = this.lineLen + (e - s);
    if (need > this.lineBuf.length) {
      let cap = this.lineBuf.length === 0 ? 256 : this.lineBuf.length * 2;
      while (cap < need) cap *= 2;
      const grown = Buffer.allocUnsafe(cap);
      this.lineBuf.copy(grown, 0, 0, this.lineLen);
      this.lineBuf = grown;
    }
    buf.copy(this.lineBuf, this.lineLen, s, e);
    this.lineLen = need;
  }

  private failControlLine(length: number): void {
    this.fail('control-line', `${OP_LABEL[this.op]} arguments of ${length} bytes > max_control_line ${this.maxControlLine}`);
  }

  /**
   * Splits [s, e) into at most max tokens (start/end pairs in this.tok); returns the count, or
   * max + 1 when there are more. nats-server separates PUB/HPUB arguments by SPACE/TAB only and
   * SUB/UNSUB arguments also by CR/LF (lineBreaks).
   */
  private tokenize(buf: Buffer, s: number, e: number, max: number, lineBreaks: boolean): number {
    const tok = this.tok;
    let n = 0;
    let i = s;
    while (i < e) {
      let b = buf[i];
      if (b === SP || b === TAB || (lineBreaks && (b === CR || b === LF))) {
        i++;
        continue;
      }
      if (n === max) return max + 1;
      tok[n * 2] = i;
      i++;
      while (i < e) {
        b = buf[i];
        if (b === SP || b === TAB || (lineBreaks && (b === CR || b === LF))) break;
        i++;
      }
      tok[n * 2 + 1] = i;
      n++;
    }
    return n;
  }

  private subjectOf(buf: Buffer, s: number, e: number): string {
    const n = e - s;
    const cache = this.lastSubjectBytes;
    if (n === this.lastSubjectLen) {
      let i = 0;
      while (i < n && cache[i] === buf[s + i]) i++;
      if (i === n) return this.lastSubject;
    }
    const subject = buf.toString('utf8', s, e);
    if (n <= SUBJECT_CACHE_BYTES) {
      for (let i = 0; i < n; i++) cache[i] = buf[s + i];
      this.lastSubjectLen = n;
      this.lastSubject = subject;
    }
    return subject;
  }

  /** A complete control line: arguments [s, e) of this.op, within the control-line limit. */
  private processLine(buf: Buffer, s: number, e: number): void {
    const tok = this.tok;
    switch (this.op) {
      case OP_PUB: {
        const n = this.tokenize(buf, s, e, 3, false);
        if (n !== 2 && n !== 3) return this.fail('bad-args', `PUB with ${n} arguments`);
        const size = parseSize(buf, tok[n * 2 - 2], tok[n * 2 - 1]);
        if (size < 0) return this.fail('bad-args', 'PUB size is not 1 to 9 decimal digits');
        if (size > this.maxPayload) return this.fail('max-payload', `PUB size ${size} > max_payload ${this.maxPayload}`);
        this.subject = this.subjectOf(buf, tok[0], tok[1]);
        this.reply = n === 3 ? buf.toString('utf8', tok[2], tok[3]) : '';
        this.hdrLen = -1;
        this.size = size;
        this.state = ST_PAYLOAD_BEGIN;
        return;
      }
      case OP_HPUB: {
        if (!this.headers) return this.fail('bad-args', 'HPUB without headers support in CONNECT');
        const n = this.tokenize(buf, s, e, 4, false);
        if (n !== 3 && n !== 4) return this.fail('bad-args', `HPUB with ${n} arguments`);
        const hdr = parseSize(buf, tok[n * 2 - 4], tok[n * 2 - 3]);
        if (hdr < 0) return this.fail('bad-args', 'HPUB header size is not 1 to 9 decimal digits');
        const size = parseSize(buf, tok[n * 2 - 2], tok[n * 2 - 1]);
        if (size < 0) return this.fail('bad-args', 'HPUB total size is not 1 to 9 decimal digits');
        if (hdr > size) return this.fail('bad-args', `HPUB header size ${hdr} > total size ${size}`);
        if (size > this.maxPayload) return this.fail('max-payload', `HPUB size ${size} > max_payload ${this.maxPayload}`);
        this.subject = this.subjectOf(buf, tok[0], tok[1]);
        this.reply = n === 4 ? buf.toString('utf8', tok[2], tok[3]) : '';
        this.hdrLen = hdr;
        this.size = size;
        this.state = ST_PAYLOAD_BEGIN;
        return;
      }
      case OP_SUB: {
        const n = this.tokenize(buf, s, e, 3, true);
        if (n !== 2 && n !== 3) return this.fail('bad-args', `SUB with ${n} arguments`);
        const subject = buf.toString('utf8', tok[0], tok[1]);
        const queue = n === 3 ? buf.toString('utf8', tok[2], tok[3]) : '';
        const sid = buf.toString('latin1', tok[n * 2 - 2], tok[n * 2 - 1]);
        this.state = ST_OP_START;
        this.handler.onSub(subject, queue, sid);
        return;
      }
      case OP_UNSUB: {
        const n = this.tokenize(buf, s, e, 2, true);
        if (n !== 1 && n !== 2) return this.fail('bad-args', `UNSUB with ${n} arguments`);
        const sid = buf.toString('latin1', tok[0], tok[1]);
        const max = n === 2 ? parseSize(buf, tok[2], tok[3]) : 0;
        this.state = ST_OP_START;
        this.handler.onUnsub(sid, max < 0 ? 0 : max);
        return;
      }
      case OP_CONNECT: {
        const json = buf.toString('utf8', s, e);
        this.state = ST_OP_START;
        this.handler.onConnect(json);
        return;
      }
      case OP_INFO: {
        // nats-server decodes a client's INFO and closes silently when that fails.
        if (!isJsonObjectOrNull(buf.toString('utf8', s, e))) return this.fail('bad-args', 'INFO is not a JSON object');
        this.state = ST_OP_START;
        this.handler.onInfo();
        return;
      }
      case OP_ERR:
        return this.fail('client-err', buf.toString('utf8', s, e));
      default:
        // HMSG: nats-server reads its arguments (and enforces the limit) before refusing it.
        return this.fail('unknown-op', 'HMSG from a client');
    }
  }
}

function hasCR(buf: Buffer, s: number, e: number): boolean {
  // Checked from the end: in the common CRLF line the CR is the last byte.
  for (let i = e - 1; i >= s; i--) if (buf[i] === CR) return true;
  return false;
}

/**
 * What nats-server's decoding of a client INFO accepts, less Go's field type checks
 * (`{"port":"x"}` closes there, passes here).
 */
function isJsonObjectOrNull(text: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  return value === null || (typeof value === 'object' && !Array.isArray(value));
}
