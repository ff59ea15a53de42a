/**
 * The ack protocol (jetstream-api.md §9): the reply subject every delivery carries,
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts ns>.<pending>`, and the bodies
 * clients publish to it. Both are parsed in place: an ack is one message per delivery.
 */

export const ACK_PREFIX = '$JS.ACK.';

/** `$JS.ACK.<stream>.<consumer>.`: built once per consumer, the numbers appended per delivery. */
export function ackPrefix(stream: string, consumer: string): string {
  return `${ACK_PREFIX}${stream}.${consumer}.`;
}

/**
 * The reply subject of one delivery. The timestamp is the message's store time in ns,
 * written from microseconds as digits (ns since the epoch exceed 2^53: no float on the way).
 */
export function ackSubject(prefix: string, delivered: number, sseq: number, dseq: number, tsUs: number, pending: number): string {
  return `${prefix}${delivered}.${sseq}.${dseq}.${tsUs === 0 ? '0' : tsUs + '000'}.${pending}`;
}

export interface AckTarget {
  stream: string;
  consumer: string;
  /** Delivery count of the acknowledged delivery. */
  delivered: number;
  sseq: number;
  dseq: number;
}

/** Unsigned decimal in s[from, to); -1 if empty or not digits. */
function decimal(s: string, from: number, to: number): number {
  if (to <= from || to - from > 16) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** Decode a 9-token ack subject; null for anything else (then nobody acks). */
export function parseAckSubject(subject: string): AckTarget | null {
  if (!subject.startsWith(ACK_PREFIX)) return null;
  const start = ACK_PREFIX.length;
  const e0 = subject.indexOf('.', start); // end of stream
  const e1 = e0 < 0 ? -1 : subject.indexOf('.', e0 + 1); // consumer
  const e2 = e1 < 0 ? -1 : subject.indexOf('.', e1 + 1); // delivered
  const e3 = e2 < 0 ? -1 : subject.indexOf('.', e2 + 1); // sseq
  const e4 = e3 < 0 ? -1 : subject.indexOf('.', e3 + 1); // dseq
  const e5 = e4 < 0 ? -1 : subject.indexOf('.', e4 + 1); // ts; pending follows
  if (e5 < 0 || subject.indexOf('.', e5 + 1) >= 0) return null;
  const delivered = decimal(subject, e1 + 1, e2);
  const sseq = decimal(subject, e2 + 1, e3);
  const dseq = decimal(subject, e3 + 1, e4);
  if (e0 === start || e1 === e0 + 1 || delivered < 1 || sseq < 1 || dseq < 1) return null;
  return { stream: subject.slice(start, e0), consumer: subject.slice(e0 + 1, e1), delivered, sseq, dseq };
}

export const enum AckKind {
  Ack = 0,
  Nak = 1,
  Progress = 2,
  Next = 3,
  Term = 4,
}

export interface AckBody {
  kind: AckKind;
  /** -NAK: redeliver after this many ns (0 = at once). */
  delayNs: number;
  /** +NXT: the pull request that follows it (empty = batch 1). */
  next: Uint8Array | null;
}

function startsWith(data: Uint8Array, word: string): boolean {
  if (data.length < word.length) return false;
  for (let i = 0; i < word.length; i++) if (data[i] !== word.charCodeAt(i)) return false;
  return true;
}

/** The bytes after `word` and one optional space. */
function argAfter(data: Uint8Array, word: string): Uint8Array {
  let i = word.length;
  while (i < data.length && (data[i] === 0x20 || data[i] === 0x09)) i++;
  return data.subarray(i);
}

function isExactly(data: Uint8Array, word: string): boolean {
  return data.length === word.length && startsWith(data, word);
}

/**
 * What an ack body asks for; null for bodies nats-server ignores. `+TERM <reason>` and
 * `-NAK <delay>` carry arguments; `+ACK`, `+OK`, `+WPI` must be exact.
 */
export function parseAckBody(data: Uint8Array): AckBody | null {
  if (data.length === 0 || isExactly(data, '+ACK') || isExactly(data, '+OK')) return { kind: AckKind.Ack, delayNs: 0, next: null };
  if (isExactly(data, '+WPI')) return { kind: AckKind.Progress, delayNs: 0, next: null };
  if (startsWith(data, '-NAK')) {
    const arg = argAfter(data, '-NAK');
    return { kind: AckKind.Nak, delayNs: arg.length === 0 ? 0 : parseNakDelay(arg), next: null };
  }
  if (startsWith(data, '+NXT')) return { kind: AckKind.Next, delayNs: 0, next: argAfter(data, '+NXT') };
  if (startsWith(data, '+TERM')) return { kind: AckKind.Term, delayNs: 0, next: null };
  return null;
}

/** `-NAK {"delay":ns}` or `-NAK 5s`; an unreadable delay means redeliver at once. */
function parseNakDelay(arg: Uint8Array): number {
  const text = Buffer.from(arg.buffer, arg.byteOffset, arg.byteLength).toString('utf8').trim();
  if (text.startsWith('{')) {
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v === 'object' && v !== null && 'delay' in v) {
        const d = (v as { delay: unknown }).delay;
        if (typeof d === 'number' && Number.isFinite(d) && d > 0) return Math.floor(d);
      }
    } catch {
      return 0;
    }
    return 0;
  }
  const d = parseGoDuration(text);
  return d !== null && d > 0 ? d : 0;
}

// Micro signs escaped: one non-Latin-1 character makes V8 hold the whole bundle's source as UTF-16 (+0.5 MiB).
const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, '\u00b5s': 1e3, '\u03bcs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/** Go's time.ParseDuration (`300ms`, `1m30s`, `1.5h`), in ns; null when malformed. */
export function parseGoDuration(s: string): number | null {
  let i = 0;
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    sign = s[0] === '-' ? -1 : 1;
    i = 1;
  }
  if (s.slice(i) === '0') return 0;
  if (i >= s.length) return null;
  let total = 0;
  DURATION_PART.lastIndex = i;
  while (DURATION_PART.lastIndex < s.length) {
    const m = DURATION_PART.exec(s);
    if (m === null) return null;
    total += Number(m[1]) * UNIT_NS[m[2]!]!;
  }
  return sign * Math.round(total);
}
