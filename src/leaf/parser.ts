/**
 * The leafnode protocol as the hub speaks it to its leaf (leafnode.md §5): INFO, LS+, LS-,
 * LMSG, HMSG, PING, PONG, +OK, -ERR. Streaming: feed() takes socket chunks as they come;
 * payloads are handed out as views into the chunk when a message lies in one chunk, so the
 * handler must copy what it keeps past its call (as Message says).
 */

export interface LeafProtocolHandler {
  info(json: string): void;
  ping(): void;
  pong(): void;
  err(text: string): void;
  /** LS+ subject [queue weight]: queue '' for plain interest. */
  subscribe(subject: string, queue: string, weight: number): void;
  /** LS- subject [queue]. */
  unsubscribe(subject: string, queue: string): void;
  /**
   * LMSG / HMSG. `queues` is null without a queue list (deliver to plain interest only) and
   * the list of groups to deliver one copy each otherwise. hdrLen -1 for LMSG.
   */
  message(subject: string, reply: string, queues: string[] | null, hdrLen: number, data: Uint8Array): void;
}

export class LeafProtocolError extends Error {}

const CR = 0x0d;
const LF = 0x0a;

/** Longest control line accepted (nats-server's max_control_line default). */
export const MAX_CONTROL_LINE = 4096;
/** INFO lines carry URL lists and permissions; allow them more room. */
const MAX_INFO_LINE = 1 << 20;

interface PendingMessage {
  subject: string;
  reply: string;
  queues: string[] | null;
  hdrLen: number;
  /** Bytes of payload (headers included) plus the closing CRLF. */
  need: number;
}

export class LeafParser {
  /** Unconsumed bytes of a line or payload that spans chunks. */
  private carry: Buffer | null = null;
  private msg: PendingMessage | null = null;
  /** The pieces of an incomplete payload (carry first), and their total length. */
  private parts: Buffer[] = [];
  private partsLen = 0;

  constructor(
    private readonly handler: LeafProtocolHandler,
    private maxPayload: number,
  ) {}

  setMaxPayload(n: number): void {
    this.maxPayload = n;
  }

  /** Parse a chunk; throws LeafProtocolError on a framing error (the link must be closed). */
  feed(chunk: Buffer): void {
    let buf = chunk;
    const m0 = this.msg;
    if (m0 !== null && this.carry !== null) {
      // A payload arriving in pieces: keep the pieces and join them once, when it is complete.
      this.parts.push(Buffer.from(chunk));
      this.partsLen += chunk.length;
      if (this.partsLen < m0.need) return;
      buf = Buffer.concat(this.parts, this.partsLen);
      this.parts = [];
      this.partsLen = 0;
      this.carry = null;
    } else if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    let pos = 0;
    const len = buf.length;
    while (pos < len) {
      const m = this.msg;
      if (m !== null) {
        if (len - pos < m.need) break;
        const end = pos + m.need - 2;
        if (buf[end] !== CR || buf[end + 1] !== LF) throw new LeafProtocolError('payload not followed by CRLF');
        this.msg = null;
        this.handler.message(m.subject, m.reply, m.queues, m.hdrLen, buf.subarray(pos, end));
        pos = end + 2;
        continue;
      }
      const nl = buf.indexOf(LF, pos);
      if (nl < 0) {
        const limit = startsWithInfo(buf, pos) ? MAX_INFO_LINE : MAX_CONTROL_LINE;
        // A CR at the end may be the line's own: it does not count towards the limit.
        if (len - pos - (buf[len - 1] === CR ? 1 : 0) > limit) throw new LeafProtocolError('Maximum Control Line Exceeded');
        break;
      }
      const lineEnd = nl > pos && buf[nl - 1] === CR ? nl - 1 : nl;
      if (lineEnd - pos > MAX_CONTROL_LINE && !startsWithInfo(buf, pos)) throw new LeafProtocolError('Maximum Control Line Exceeded');
      const line = buf.toString('latin1', pos, lineEnd);
      pos = nl + 1;
      this.line(line);
    }
    if (pos < len) {
      this.carry = Buffer.from(buf.subarray(pos));
      if (this.msg !== null) {
        this.parts = [this.carry];
        this.partsLen = this.carry.length;
      }
    }
  }

  private line(raw: string): void {
    // Subjects may hold UTF-8; decode the line as UTF-8 only when it has non-ASCII bytes.
    const line = /[\x80-\xff]/.test(raw) ? Buffer.from(raw, 'latin1').toString('utf8') : raw;
    const sp = line.indexOf(' ');
    const op = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const rest = sp < 0 ? '' : line.slice(sp + 1);
    switch (op) {
      case 'LMSG':
        return this.msgLine(rest, false);
      case 'HMSG':
        return this.msgLine(rest, true);
      case 'LS+':
        return this.lsPlus(rest);
      case 'LS-':
        return this.lsMinus(rest);
      case 'PING':
        return this.handler.ping();
      case 'PONG':
        return this.handler.pong();
      case 'INFO':
        return this.handler.info(rest.trim());
      case '+OK':
        return;
      case '-ERR':
        return this.handler.err(unquote(rest.trim()));
      case '':
        return;
      default:
        throw new LeafProtocolError(`Unknown Protocol Operation: ${op.slice(0, 32)}`);
    }
  }

  private msgLine(rest: string, headers: boolean): void {
    const t = tokens(rest);
    const sizes = headers ? 2 : 1;
    if (t.length < 1 + sizes) throw new LeafProtocolError(`malformed ${headers ? 'HMSG' : 'LMSG'}`);
    const subject = t[0]!;
    const total = toSize(t[t.length - 1]!);
    const hdrLen = headers ? toSize(t[t.length - 2]!) : -1;
    if (total < 0 || (headers && (hdrLen < 0 || hdrLen > total))) throw new LeafProtocolError('bad message size');
    if (total > this.maxPayload) throw new LeafProtocolError('Maximum Payload Violation');
    const middle = t.length - 1 - sizes; // tokens between subject and sizes
    let reply = '';
    let queues: string[] | null = null;
    if (middle === 1) {
      reply = t[1]!;
    } else if (middle > 1) {
      const mark = t[1]!;
      if (mark === '+') {
        reply = t[2]!;
        queues = t.slice(3, t.length - sizes);
      } else if (mark === '|') {
        queues = t.slice(2, t.length - sizes);
      } else throw new LeafProtocolError('malformed queue list');
      if (queues.length === 0) queues = null;
    }
    this.msg = { subject, reply, queues, hdrLen, need: total + 2 };
  }

  private lsPlus(rest: string): void {
    const t = tokens(rest);
    if (t.length === 1) return this.handler.subscribe(t[0]!, '', 1);
    if (t.length === 2 || t.length === 3) {
      // nats-server sends the weight; an older peer may omit it.
      const weight = t.length === 3 ? toSize(t[2]!) : 1;
      if (weight < 0) throw new LeafProtocolError('bad queue weight');
      return this.handler.subscribe(t[0]!, t[1]!, Math.max(1, weight));
    }
    throw new LeafProtocolError('malformed LS+');
  }

  private lsMinus(rest: string): void {
    const t = tokens(rest);
    if (t.length === 1) return this.handler.unsubscribe(t[0]!, '');
    if (t.length === 2 || t.length === 3) return this.handler.unsubscribe(t[0]!, t[1]!);
    throw new LeafProtocolError('malformed LS-');
  }
}

function startsWithInfo(buf: Buffer, pos: number): boolean {
  return buf.length - pos >= 4 && (buf[pos]! | 0x20) === 0x69 && (buf[pos + 1]! | 0x20) === 0x6e && (buf[pos + 2]! | 0x20) === 0x66 && (buf[pos + 3]! | 0x20) === 0x6f;
}

function tokens(s: string): string[] {
  const out: string[] = [];
  for (const t of s.split(/[ \t]+/)) if (t !== '') out.push(t);
  return out;
}

/** A non-negative decimal size; -1 when it is not one. */
function toSize(s: string): number {
  if (s.length === 0 || s.length > 10) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

function unquote(s: string): string {
  return s.length >= 2 && s.startsWith("'") && s.endsWith("'") ? s.slice(1, -1) : s;
}
