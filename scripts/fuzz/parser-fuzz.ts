/**
 * Fuzzing of the client-protocol parser.
 *
 * The input generator (fuzzInputs) is independent of the target: it yields byte streams already
 * cut into chunks, so a whole client connection over an in-memory socket can be fed the same
 * inputs. runParserFuzz drives the bare parser and checks, for every input:
 *  - no exception escapes parse();
 *  - the callbacks for the chunked input (with random pause/resume in callbacks and between
 *    chunks) equal those for the input in one piece;
 *  - those equal what an independent whole-buffer reference model of the grammar produces, and,
 *    for unmutated valid streams, the events the generator meant;
 *  - at most one onError, nothing after it, nothing buffered after it;
 *  - `buffered` never exceeds maxControlLine + maxPayload + a small constant.
 */
import { Parser, type ProtocolErrorKind, type ProtocolHandler } from '../../src/nats/parser.js';

/** sfc32: small, fast, seedable; the fuzzer must not depend on Math.random. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  /** Uniform uint32. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 4294967296) * n);
  }

  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Input generation

/** Control-line limits the generator aims long lines at (the parser target uses these). */
export const FUZZ_CONTROL_LINES: readonly number[] = [32, 128, 4096];
export const FUZZ_MAX_PAYLOADS: readonly number[] = [64, 4096, 1024 * 1024];

/** An event as the recording handler writes it: a tag followed by its fields. */
type Event = string | number;

interface GeneratedCase {
  bytes: Buffer;
  /** Events an unmutated valid stream must produce with generous limits, else null. */
  expected: Event[] | null;
}

const SUBJECT_TOKENS = ['foo', 'bar', 'a', 'b1', '*', '>', '_INBOX', '$JS', 'API', 'x-y', 'temp', 'é', '温度', 'Z'];

function genSubject(rng: Prng): string {
  const n = rng.range(1, 4);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(rng.pick(SUBJECT_TOKENS));
  return parts.join('.');
}

function genSid(rng: Prng): string {
  return rng.chance(0.8) ? String(rng.range(1, 100000)) : rng.pick(['abc', 'S1', 'x.y', '0', '007']);
}

function genSpace(rng: Prng): string {
  if (rng.chance(0.8)) return ' ';
  let s = '';
  const n = rng.range(1, 3);
  for (let i = 0; i < n; i++) s += rng.chance(0.5) ? ' ' : '\t';
  return s;
}

function genEol(rng: Prng): string {
  return rng.chance(0.9) ? '\r\n' : '\n';
}

/** The op name in random letter case. */
function genOpName(rng: Prng, name: string): string {
  if (rng.chance(0.7)) return name;
  let s = '';
  for (const ch of name) s += rng.chance(0.5) ? ch.toLowerCase() : ch.toUpperCase();
  return s;
}

function genPayload(rng: Prng): Buffer {
  const r = rng.next() % 100;
  let n: number;
  if (r < 15) n = 0;
  else if (r < 80) n = rng.range(1, 64);
  else if (r < 97) n = rng.range(65, 5000);
  else n = rng.range(60000, 140000);
  const b = Buffer.allocUnsafe(n);
  if (n > 0 && rng.chance(0.3)) {
    // Protocol-looking payloads must be taken as opaque bytes.
    const text = Buffer.from('PING\r\nPUB foo 1\r\n\r\n-ERR x\r\n\n\r');
    for (let i = 0; i < n; i++) b[i] = text[i % text.length]!;
  } else {
    for (let i = 0; i < n; i++) b[i] = rng.next() & 0xff;
  }
  return b;
}

/** Byte view of a string as the wire carries it (UTF-8). */
function utf8(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/** One valid frame: its bytes and the events it must produce. */
function genFrame(rng: Prng, parts: Buffer[], events: Event[]): void {
  const r = rng.next() % 100;
  if (r < 35) {
    const subject = genSubject(rng);
    const reply = rng.chance(0.3) ? '_INBOX.' + rng.range(1, 999) : '';
    const payload = genPayload(rng);
    const sizeToken = (rng.chance(0.1) ? '00' : '') + String(payload.length);
    let line = genOpName(rng, 'PUB') + genSpace(rng) + subject + genSpace(rng);
    if (reply) line += reply + genSpace(rng);
    line += sizeToken + (rng.chance(0.1) ? genSpace(rng) : '') + genEol(rng);
    parts.push(utf8(line), payload, Buffer.from('\r\n'));
    events.push('pub', subject, reply, -1, payload.toString('latin1'));
  } else if (r < 50) {
    const subject = genSubject(rng);
    const reply = rng.chance(0.3) ? '_INBOX.' + rng.range(1, 999) : '';
    const hdrLen = rng.chance(0.1) ? 0 : rng.range(12, 40);
    const headers = Buffer.alloc(hdrLen, 'h');
    if (hdrLen >= 12) {
      headers.write('NATS/1.0\r\n', 0, 'latin1');
      headers.write('\r\n', hdrLen - 2, 'latin1');
    }
    const data = Buffer.concat([headers, genPayload(rng)]);
    let line = genOpName(rng, 'HPUB') + genSpace(rng) + subject + genSpace(rng);
    if (reply) line += reply + genSpace(rng);
    line += hdrLen + genSpace(rng) + data.length + genEol(rng);
    parts.push(utf8(line), data, Buffer.from('\r\n'));
    events.push('pub', subject, reply, hdrLen, data.toString('latin1'));
  } else if (r < 62) {
    const subject = genSubject(rng);
    const queue = rng.chance(0.3) ? rng.pick(['q', 'workers', 'g1']) : '';
    const sid = genSid(rng);
    let line = genOpName(rng, 'SUB') + genSpace(rng) + subject + genSpace(rng);
    if (queue) line += queue + genSpace(rng);
    line += sid + genEol(rng);
    parts.push(utf8(line));
    events.push('sub', subject, queue, sid);
  } else if (r < 70) {
    const sid = genSid(rng);
    const max = rng.chance(0.5) ? rng.range(1, 1000) : 0;
    const line = genOpName(rng, 'UNSUB') + genSpace(rng) + sid + (max ? genSpace(rng) + max : '') + genEol(rng);
    parts.push(utf8(line));
    events.push('unsub', sid, max);
  } else if (r < 78) {
    const json = JSON.stringify({
      verbose: rng.chance(0.5),
      pedantic: false,
      headers: true,
      name: rng.pick(['', 'svc', 'ñame', 'a b']),
      lang: 'nats.js',
      version: '3.0.0',
      protocol: 1,
    });
    const sep = rng.chance(0.8) ? genSpace(rng) : '';
    parts.push(utf8(genOpName(rng, 'CONNECT') + sep + json + genEol(rng)));
    events.push('connect', json);
  } else if (r < 81) {
    parts.push(utf8(genOpName(rng, 'INFO') + genSpace(rng) + rng.pick(['{}', '{"port":4222}', 'null', '{} ']) + genEol(rng)));
    events.push('info');
  } else {
    const op = rng.pick(['PING', 'PING', 'PONG', '+OK']);
    const junk = rng.chance(0.1) ? rng.pick(['X', ' foo', '\t\r', ' \r ']) : '';
    parts.push(utf8(genOpName(rng, op) + junk + genEol(rng)));
    events.push(op === 'PING' ? 'ping' : op === 'PONG' ? 'pong' : 'ok');
  }
}

function genValidStream(rng: Prng): GeneratedCase {
  const parts: Buffer[] = [];
  const events: Event[] = [];
  const frames = rng.range(1, 8);
  for (let i = 0; i < frames; i++) genFrame(rng, parts, events);
  if (rng.chance(0.05)) {
    parts.push(Buffer.from("-ERR 'Unknown Protocol Operation'\r\n"));
    events.push('error', 'client-err');
  }
  return { bytes: Buffer.concat(parts), expected: events };
}

const INTERESTING_BYTES = [0x0d, 0x0a, 0x20, 0x09, 0x30, 0x39, 0x2d, 0x2b, 0x00, 0xff, 0x7f, 0x80, 0x2e, 0x2a, 0x3e];
const INTERESTING_TOKENS = [
  ' ', '\t', '\r', '\n', '\r\n', '\n\n', '  \t ', '0', '1', '-1', '+5', '9999999999', '999999999', '1000000000',
  '4294967296', '18446744073709551616', '1e3', '0x10', '00000000001', 'PUB ', 'HPUB ', 'HMSG ', 'MSG ', 'SUB ',
  'UNSUB ', 'CONNECT ', 'CONNECT\r\n', 'CONNECT', 'INFO ', 'INFO\r\n', 'PING\r\n', 'PONG', '+OK', '-ERR ', 'RS+ ', 'LMSG ', '{}', 'null', '[]', 'é', '\u00ff',
];

function longRun(rng: Prng): Buffer {
  const byte = rng.pick([0x78, 0x78, 0x20, 0x09, 0x0d, 0x31]);
  const len = rng.chance(0.8) ? rng.pick(FUZZ_CONTROL_LINES) + rng.range(-3, 3) : rng.range(1, 10000);
  return Buffer.alloc(Math.max(1, len), byte);
}

function mutate(rng: Prng, input: Buffer): Buffer {
  let b = input;
  const count = rng.range(1, 4);
  for (let m = 0; m < count; m++) {
    const pos = rng.int(b.length + 1);
    switch (rng.int(10)) {
      case 0: // bit flip
        if (b.length > 0) {
          b = Buffer.from(b);
          const p = rng.int(b.length);
          b[p] = b[p]! ^ (1 << rng.int(8));
        }
        break;
      case 1: // interesting byte
        if (b.length > 0) {
          b = Buffer.from(b);
          b[rng.int(b.length)] = rng.pick(INTERESTING_BYTES);
        }
        break;
      case 2: // insert a token
        b = Buffer.concat([b.subarray(0, pos), Buffer.from(rng.pick(INTERESTING_TOKENS), 'utf8'), b.subarray(pos)]);
        break;
      case 3: { // delete a segment
        const end = Math.min(b.length, pos + rng.range(1, 16));
        b = Buffer.concat([b.subarray(0, pos), b.subarray(end)]);
        break;
      }
      case 4: { // duplicate a segment somewhere
        const s = rng.int(b.length + 1);
        const seg = b.subarray(s, Math.min(b.length, s + rng.range(1, 64)));
        b = Buffer.concat([b.subarray(0, pos), seg, b.subarray(pos)]);
        break;
      }
      case 5: { // splice with another stream
        const other = genValidStream(rng).bytes;
        b = Buffer.concat([b.subarray(0, pos), other.subarray(rng.int(other.length + 1))]);
        break;
      }
      case 6: // truncate
        b = b.subarray(0, pos);
        break;
      case 7: // long line
        b = Buffer.concat([b.subarray(0, pos), longRun(rng), b.subarray(pos)]);
        break;
      default: { // replace a digit run with a hostile number
        let d = pos;
        while (d < b.length && (b[d]! < 0x30 || b[d]! > 0x39)) d++;
        if (d < b.length) {
          let e = d;
          while (e < b.length && b[e]! >= 0x30 && b[e]! <= 0x39) e++;
          const num = rng.pick(['-1', '9999999999', '999999999', '4294967297', '0', '', '1a', '12 34']);
          b = Buffer.concat([b.subarray(0, d), Buffer.from(num), b.subarray(e)]);
        }
      }
    }
  }
  return b;
}

const PROTOCOL_ALPHABET = Buffer.from('PUBSINGHMCOTEFRKLA+- \t\r\n\r\n0123456789.{}"*>');

function genRandomBytes(rng: Prng): Buffer {
  const n = rng.range(0, 200);
  const b = Buffer.allocUnsafe(n);
  const protocolish = rng.chance(0.7);
  for (let i = 0; i < n; i++) b[i] = protocolish ? PROTOCOL_ALPHABET[rng.int(PROTOCOL_ALPHABET.length)]! : rng.next() & 0xff;
  return b;
}

function genCase(rng: Prng): GeneratedCase {
  const r = rng.next() % 100;
  if (r < 35) return genValidStream(rng);
  if (r < 90) return { bytes: mutate(rng, genValidStream(rng).bytes), expected: null };
  return { bytes: genRandomBytes(rng), expected: null };
}

/** Cuts the input at random points: whole, a few cuts, many cuts, fixed small chunks, or every byte. */
function split(rng: Prng, input: Buffer): Buffer[] {
  const n = input.length;
  if (n === 0) return [input];
  const r = rng.next() % 100;
  let cuts: number[];
  if (r < 10) {
    cuts = [];
  } else if (r < 50) {
    cuts = [];
    const k = rng.range(1, 3);
    for (let i = 0; i < k; i++) cuts.push(rng.int(n + 1));
  } else if (r < 80) {
    cuts = [];
    const k = rng.range(4, 30);
    for (let i = 0; i < k; i++) cuts.push(rng.int(n + 1));
  } else if (r < 95 || n > 4000) {
    // tiny chunks for small inputs; big payloads in chunks that still cut them many times
    const size = n > 4000 ? rng.range(256, 8192) : rng.range(1, 16);
    cuts = [];
    for (let p = size; p < n; p += size) cuts.push(p);
  } else {
    cuts = [];
    for (let p = 1; p < n; p++) cuts.push(p);
  }
  cuts.sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    if (c > prev) chunks.push(input.subarray(prev, c));
    prev = Math.max(prev, c);
  }
  chunks.push(input.subarray(prev));
  return chunks;
}

/**
 * The fuzz inputs, each a byte stream cut into chunks: valid streams, mutated valid streams
 * (bit flips, truncations, duplicated and spliced segments, hostile numbers, long lines) and
 * random bytes. Deterministic for a seed. Chunks are views of one Buffer per input.
 */
export function* fuzzInputs(seed: number, n: number): Generator<Buffer[]> {
  const rng = new Prng(seed);
  for (let i = 0; i < n; i++) yield split(rng, genCase(rng).bytes);
}

// ---------------------------------------------------------------------------------------------
// Reference model: the grammar written the plain way, on the whole input at once.

interface Limits {
  maxControlLine: number;
  maxPayload: number;
  headers: boolean;
  awaitingAuth: boolean;
}

const REF_NAMES = ['PUB', 'HPUB', 'SUB', 'UNSUB', 'CONNECT', 'INFO', 'PING', 'PONG', '+OK', '-ERR', 'HMSG'];
const SIZE_RE = /^[0-9]{1,9}$/;

function latin1ToUtf8(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
}

export function referenceParse(input: Buffer, limits: Limits): Event[] {
  const s = input.toString('latin1');
  const n = s.length;
  const out: Event[] = [];
  const error = (kind: ProtocolErrorKind): Event[] => {
    out.push('error', kind);
    return out;
  };
  let p = 0;
  for (;;) {
    if (p >= n) return out;
    if (limits.awaitingAuth && s[p] !== 'C' && s[p] !== 'c') return error('auth-violation');
    // Op name: the candidate names the upper-cased input is a prefix of.
    let op = '';
    let len = 0;
    for (;;) {
      if (p + len >= n) return out; // unfinished name (a known prefix so far)
      len++;
      const prefix = s.slice(p, p + len).toUpperCase();
      const candidates = REF_NAMES.filter((name) => name.startsWith(prefix));
      if (candidates.length === 0) return error('unknown-op');
      const exact = candidates.find((name) => name === prefix);
      if (exact !== undefined) {
        op = exact;
        break;
      }
    }
    p += len;
    if (op === 'PING' || op === 'PONG' || op === '+OK') {
      const nl = s.indexOf('\n', p);
      if (nl < 0) return out;
      out.push(op === 'PING' ? 'ping' : op === 'PONG' ? 'pong' : 'ok');
      p = nl + 1;
      continue;
    }
    if (op !== 'CONNECT' && op !== 'INFO') {
      if (p >= n) return out;
      if (s[p] !== ' ' && s[p] !== '\t') return error('unknown-op');
    }
    while (p < n && (s[p] === ' ' || s[p] === '\t')) p++;
    if (p >= n) return out;
    const argStart = p;
    const nl = s.indexOf('\n', argStart + 1);
    // nats-server drops the last byte before LF when the arguments (after their first byte) hold a CR.
    if (nl < 0) {
      let partial = n - argStart;
      if (partial >= 2 && s.slice(argStart + 1).includes('\r')) partial--;
      return partial > limits.maxControlLine ? error('control-line') : out;
    }
    let argEnd = nl;
    if (argEnd - argStart >= 2 && s.slice(argStart + 1, nl).includes('\r')) argEnd--;
    if (argEnd - argStart > limits.maxControlLine) return error('control-line');
    const arg = s.slice(argStart, argEnd);
    p = nl + 1;
    if (op === 'PUB' || op === 'HPUB') {
      if (op === 'HPUB' && !limits.headers) return error('bad-args');
      const args = arg.split(/[ \t]+/).filter((a) => a.length > 0);
      const lo = op === 'PUB' ? 2 : 3;
      if (args.length < lo || args.length > lo + 1) return error('bad-args');
      const sizeTok = args[args.length - 1]!;
      const hdrTok = op === 'HPUB' ? args[args.length - 2]! : '0';
      if (!SIZE_RE.test(hdrTok) || !SIZE_RE.test(sizeTok)) return error('bad-args');
      const size = Number(sizeTok);
      const hdr = op === 'HPUB' ? Number(hdrTok) : -1;
      if (hdr > size) return error('bad-args');
      if (size > limits.maxPayload) return error('max-payload');
      if (n - p < size) return out;
      if (p + size < n && s[p + size] !== '\r') return error('unknown-op');
      if (p + size + 1 < n && s[p + size + 1] !== '\n') return error('unknown-op');
      if (p + size + 2 > n) return out;
      out.push('pub', latin1ToUtf8(args[0]!), args.length === lo + 1 ? latin1ToUtf8(args[1]!) : '', hdr, s.slice(p, p + size));
      p += size + 2;
    } else if (op === 'SUB') {
      const args = arg.split(/[ \t\r\n]+/).filter((a) => a.length > 0);
      if (args.length !== 2 && args.length !== 3) return error('bad-args');
      out.push('sub', latin1ToUtf8(args[0]!), args.length === 3 ? latin1ToUtf8(args[1]!) : '', args[args.length - 1]!);
    } else if (op === 'UNSUB') {
      const args = arg.split(/[ \t\r\n]+/).filter((a) => a.length > 0);
      if (args.length !== 1 && args.length !== 2) return error('bad-args');
      out.push('unsub', args[0]!, args.length === 2 && SIZE_RE.test(args[1]!) ? Number(args[1]) : 0);
    } else if (op === 'CONNECT') {
      out.push('connect', latin1ToUtf8(arg));
    } else if (op === 'INFO') {
      let ok = true;
      try {
        const v: unknown = JSON.parse(latin1ToUtf8(arg));
        ok = v === null || (typeof v === 'object' && !Array.isArray(v));
      } catch {
        ok = false;
      }
      if (!ok) return error('bad-args');
      out.push('info');
    } else if (op === '-ERR') {
      return error('client-err');
    } else {
      return error('unknown-op'); // HMSG
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Driving the parser

/** Records callbacks as flat events; optionally pauses at random inside callbacks. */
class Recorder implements ProtocolHandler {
  events: Event[] = [];
  errors = 0;
  afterError = 0;
  parser: Parser | null = null;
  rng: Prng | null = null;
  pauseChance = 0;
  /** Resume synchronously inside the same callback sometimes (exercises that path). */
  resumeInside = false;

  private seen(): void {
    if (this.errors > 0) this.afterError++;
    if (this.rng !== null && this.parser !== null && this.rng.chance(this.pauseChance)) {
      this.parser.pause();
      if (this.resumeInside && this.rng.chance(0.3)) this.parser.resume();
    }
  }

  onConnect(json: string): void {
    this.seen();
    this.events.push('connect', json);
  }
  onInfo(): void {
    this.seen();
    this.events.push('info');
  }
  onPub(subject: string, reply: string, hdrLen: number, data: Buffer): void {
    this.seen();
    this.events.push('pub', subject, reply, hdrLen, data.toString('latin1'));
  }
  onSub(subject: string, queue: string, sid: string): void {
    this.seen();
    this.events.push('sub', subject, queue, sid);
  }
  onUnsub(sid: string, max: number): void {
    this.seen();
    this.events.push('unsub', sid, max);
  }
  onPing(): void {
    this.seen();
    this.events.push('ping');
  }
  onPong(): void {
    this.seen();
    this.events.push('pong');
  }
  onOk(): void {
    this.seen();
    this.events.push('ok');
  }
  onError(kind: ProtocolErrorKind): void {
    if (this.errors > 0) this.afterError++;
    this.errors++;
    this.events.push('error', kind);
  }
}

function sameEvents(a: Event[], b: Event[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describe(events: Event[]): string {
  const s = JSON.stringify(events);
  return s.length > 400 ? s.slice(0, 400) + '...' : s;
}

export interface FuzzFailure {
  iteration: number;
  message: string;
  /** The input, hex, for reproduction (long inputs are cut). */
  input: string;
  chunkSizes: number[];
}

export interface FuzzResult {
  iterations: number;
  bytes: number;
  chunks: number;
  events: number;
  /** Inputs that ended without an error, and per error kind. */
  outcomes: Record<string, number>;
  failures: FuzzFailure[];
}

export interface FuzzOptions {
  seed: number;
  iterations: number;
  /** Stop after this many failures (default 5). */
  maxFailures?: number;
  progress?: (done: number) => void;
}

/** Runs the parser over fuzzInputs' cases and reports every broken check. */
export function runParserFuzz(options: FuzzOptions): FuzzResult {
  const { seed, iterations } = options;
  const maxFailures = options.maxFailures ?? 5;
  const rng = new Prng(seed);
  // Driver randomness (limits, pauses) comes from its own stream, so the inputs for a seed are
  // the same as fuzzInputs(seed, n) yields.
  const driver = new Prng(seed ^ 0x5bd1e995);
  const result: FuzzResult = { iterations: 0, bytes: 0, chunks: 0, events: 0, outcomes: {}, failures: [] };

  for (let it = 0; it < iterations; it++) {
    const gen = genCase(rng);
    const chunks = split(rng, gen.bytes);
    const input = gen.bytes;
    const limits: Limits = {
      maxControlLine: driver.pick(FUZZ_CONTROL_LINES),
      maxPayload: driver.pick(FUZZ_MAX_PAYLOADS),
      headers: driver.chance(0.9),
      awaitingAuth: driver.chance(0.05),
    };
    const fail = (message: string): void => {
      result.failures.push({
        iteration: it,
        message,
        input: input.subarray(0, 2000).toString('hex'),
        chunkSizes: chunks.map((c) => c.length),
      });
    };

    const whole = feed([input], limits, null, fail);
    const pieces = feed(chunks, limits, driver, fail);
    const reference = referenceParse(input, limits);

    if (whole !== null && pieces !== null) {
      if (!sameEvents(whole, pieces)) fail(`chunked input differs from whole input:\n  whole   ${describe(whole)}\n  chunked ${describe(pieces)}`);
      if (!sameEvents(whole, reference)) fail(`parser differs from reference model:\n  parser    ${describe(whole)}\n  reference ${describe(reference)}`);
      if (gen.expected !== null && limits.maxControlLine >= 4096 && limits.maxPayload >= 1024 * 1024 && limits.headers && !limits.awaitingAuth) {
        if (!sameEvents(whole, gen.expected)) fail(`valid stream gave unexpected events:\n  parser   ${describe(whole)}\n  expected ${describe(gen.expected)}`);
      }
      const errAt = whole.indexOf('error');
      const kind = errAt >= 0 && errAt === whole.length - 2 ? String(whole[errAt + 1]) : 'none';
      result.outcomes[kind] = (result.outcomes[kind] ?? 0) + 1;
      result.events += whole.length;
    }

    result.iterations++;
    result.bytes += input.length;
    result.chunks += chunks.length;
    if (result.failures.length >= maxFailures) break;
    if (options.progress !== undefined && (it + 1) % 100000 === 0) options.progress(it + 1);
  }
  return result;
}

/**
 * Feeds chunks to a fresh parser. With a driver PRNG: pauses at random in callbacks, resumes
 * at random between chunks (so parse() is also called while paused) and at the end.
 */
function feed(chunks: Buffer[], limits: Limits, driver: Prng | null, fail: (m: string) => void): Event[] | null {
  const rec = new Recorder();
  const parser = new Parser(rec, { maxControlLine: limits.maxControlLine, maxPayload: limits.maxPayload });
  parser.headers = limits.headers;
  parser.awaitingAuth = limits.awaitingAuth;
  let paused = false;
  if (driver !== null && driver.chance(0.3)) {
    rec.parser = parser;
    rec.rng = driver;
    rec.pauseChance = 0.3;
    rec.resumeInside = driver.chance(0.5);
  }
  const bound = limits.maxControlLine + limits.maxPayload + 16;
  const originalPause = parser.pause.bind(parser);
  parser.pause = (): void => {
    paused = true;
    originalPause();
  };
  const originalResume = parser.resume.bind(parser);
  parser.resume = (): void => {
    paused = false;
    originalResume();
  };
  try {
    for (const chunk of chunks) {
      if (paused && driver !== null && driver.chance(0.5)) parser.resume();
      parser.parse(chunk);
      if (!paused && parser.buffered > bound) {
        fail(`buffered ${parser.buffered} > ${bound}`);
        return null;
      }
    }
    let guard = 0;
    while (paused) {
      parser.resume();
      if (++guard > 1_000_000) {
        fail('resume loop does not end');
        return null;
      }
    }
  } catch (err) {
    fail(`exception escaped parse(): ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    return null;
  }
  if (rec.errors > 1) fail(`${rec.errors} onError calls`);
  if (rec.afterError > 0) fail(`${rec.afterError} callbacks after onError`);
  if (rec.errors > 0 && parser.buffered !== 0) fail(`buffered ${parser.buffered} after onError`);
  if (rec.errors === 0 && !paused && parser.buffered > bound) fail(`buffered ${parser.buffered} > ${bound} at end`);
  return rec.events;
}
