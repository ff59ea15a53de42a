import { describe, expect, it } from 'vitest';
import { LeafParser, LeafProtocolError, MAX_CONTROL_LINE, type LeafProtocolHandler } from '../../src/leaf/parser.js';

/** One handler call, payloads copied (the parser hands out views into its chunk). */
type Event =
  | ['info', string]
  | ['ping']
  | ['pong']
  | ['err', string]
  | ['sub', string, string, number]
  | ['unsub', string, string]
  | ['msg', string, string, string[] | null, number, string];

class Recorder implements LeafProtocolHandler {
  readonly events: Event[] = [];
  info(json: string): void {
    this.events.push(['info', json]);
  }
  ping(): void {
    this.events.push(['ping']);
  }
  pong(): void {
    this.events.push(['pong']);
  }
  err(text: string): void {
    this.events.push(['err', text]);
  }
  subscribe(subject: string, queue: string, weight: number): void {
    this.events.push(['sub', subject, queue, weight]);
  }
  unsubscribe(subject: string, queue: string): void {
    this.events.push(['unsub', subject, queue]);
  }
  message(subject: string, reply: string, queues: string[] | null, hdrLen: number, data: Uint8Array): void {
    // latin1 keeps every byte value and copies out of the parser's chunk
    this.events.push(['msg', subject, reply, queues === null ? null : [...queues], hdrLen, Buffer.from(data).toString('latin1')]);
  }
}

const DEFAULT_MAX = 1024 * 1024;

function parseWhole(input: Buffer | string, maxPayload = DEFAULT_MAX): Event[] {
  const r = new Recorder();
  new LeafParser(r, maxPayload).feed(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
  return r.events;
}

function parseChunks(chunks: readonly Buffer[], maxPayload = DEFAULT_MAX): Event[] {
  const r = new Recorder();
  const p = new LeafParser(r, maxPayload);
  for (const c of chunks) p.feed(c);
  return r.events;
}

function splitAt(buf: Buffer, ...cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    out.push(buf.subarray(from, c));
    from = c;
  }
  out.push(buf.subarray(from));
  return out;
}

function thrown(fn: () => void): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

function protocolError(input: Buffer | string, maxPayload = DEFAULT_MAX): LeafProtocolError {
  const e = thrown(() => parseWhole(input, maxPayload));
  expect(e).toBeInstanceOf(LeafProtocolError);
  return e as LeafProtocolError;
}

/** mulberry32: small, seeded, good enough to drive a generator. */
class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}

describe('LeafParser: each verb', () => {
  it('INFO hands over the JSON; PING, PONG; +OK is silent; -ERR text is unquoted', () => {
    const info = '{"server_id":"NABC","version":"2.9.10","headers":true,"max_payload":1048576}';
    expect(parseWhole(`INFO ${info}\r\nPING\r\nPONG\r\n+OK\r\n-ERR 'Maximum Payload Violation'\r\n`)).toEqual([
      ['info', info],
      ['ping'],
      ['pong'],
      ['err', 'Maximum Payload Violation'],
    ]);
    // quotes inside the text stay; only the enclosing pair goes
    expect(parseWhole(`-ERR 'Permissions Violation for Subscription to "a.b"'\r\n`)).toEqual([
      ['err', 'Permissions Violation for Subscription to "a.b"'],
    ]);
  });

  it('LS+ plain, LS+ queue with weight, LS- plain and queue', () => {
    expect(parseWhole('LS+ foo.bar\r\nLS+ foo.* grp 3\r\nLS+ s.> q 1\r\nLS- foo.bar\r\nLS- foo.* grp\r\n')).toEqual([
      ['sub', 'foo.bar', '', 1],
      ['sub', 'foo.*', 'grp', 3],
      ['sub', 's.>', 'q', 1],
      ['unsub', 'foo.bar', ''],
      ['unsub', 'foo.*', 'grp'],
    ]);
    // weights are absolute and may be large
    expect(parseWhole('LS+ a q 12345\r\n')).toEqual([['sub', 'a', 'q', 12345]]);
  });

  it('LMSG with 2 and 3 tokens, "+ reply q1 q2", "| q1 q2"', () => {
    expect(
      parseWhole(
        'LMSG a.b 5\r\nhello\r\n' +
          'LMSG a.b _INBOX.x 2\r\nhi\r\n' +
          'LMSG w.q + rep.x grp1 grp2 3\r\nabc\r\n' +
          'LMSG w.q | grp1 grp2 1\r\nz\r\n' +
          'LMSG w.q | g 1\r\ny\r\n',
      ),
    ).toEqual([
      ['msg', 'a.b', '', null, -1, 'hello'],
      ['msg', 'a.b', '_INBOX.x', null, -1, 'hi'],
      ['msg', 'w.q', 'rep.x', ['grp1', 'grp2'], -1, 'abc'],
      ['msg', 'w.q', '', ['grp1', 'grp2'], -1, 'z'],
      ['msg', 'w.q', '', ['g'], -1, 'y'],
    ]);
  });

  it('HMSG plain, with reply, "+ reply q", "| q"; hdrLen counts the header block', () => {
    const h = 'NATS/1.0\r\nA: 1\r\n\r\n';
    const m = h + 'body';
    const hl = h.length;
    const tl = m.length;
    expect(
      parseWhole(
        `HMSG a ${hl} ${tl}\r\n${m}\r\n` +
          `HMSG a r ${hl} ${tl}\r\n${m}\r\n` +
          `HMSG a + r q1 q2 ${hl} ${tl}\r\n${m}\r\n` +
          `HMSG a | q1 ${hl} ${tl}\r\n${m}\r\n` +
          `HMSG a ${hl} ${hl}\r\n${h}\r\n`,
      ),
    ).toEqual([
      ['msg', 'a', '', null, hl, m],
      ['msg', 'a', 'r', null, hl, m],
      ['msg', 'a', 'r', ['q1', 'q2'], hl, m],
      ['msg', 'a', '', ['q1'], hl, m],
      ['msg', 'a', '', null, hl, h],
    ]);
  });

  it('a JetStream delivery reply with @ passes through as one token', () => {
    expect(parseWhole('LMSG _INBOX.e.1 $JS.ACK.S.C.1.1.1.1795757592037409337.0@s.x 5\r\nhello\r\n')).toEqual([
      ['msg', '_INBOX.e.1', '$JS.ACK.S.C.1.1.1.1795757592037409337.0@s.x', null, -1, 'hello'],
    ]);
  });

  it('verbs are case-insensitive', () => {
    expect(
      parseWhole("ping\r\nPoNg\r\ninfo {}\r\n+ok\r\n-err 'x'\r\nls+ a\r\nLs+ a q 2\r\nls- a\r\nlmsg a 1\r\nX\r\nhmsg a 3 4\r\nH\r\nY\r\n"),
    ).toEqual([
      ['ping'],
      ['pong'],
      ['info', '{}'],
      ['err', 'x'],
      ['sub', 'a', '', 1],
      ['sub', 'a', 'q', 2],
      ['unsub', 'a', ''],
      ['msg', 'a', '', null, -1, 'X'],
      ['msg', 'a', '', null, 3, 'H\r\nY'],
    ]);
  });

  it('UTF-8 subjects, replies and queue names come out decoded', () => {
    const payload = Buffer.from('ünï', 'utf8');
    const input = Buffer.concat([
      Buffer.from('LS+ ü.日本\r\nLS+ ü.日本 grüppe 2\r\n', 'utf8'),
      Buffer.from(`LMSG ü.日本 + antwört grüppe ${payload.length}\r\n`, 'utf8'),
      payload,
      Buffer.from('\r\nLS- ü.日本 grüppe\r\n', 'utf8'),
    ]);
    const expected: Event[] = [
      ['sub', 'ü.日本', '', 1],
      ['sub', 'ü.日本', 'grüppe', 2],
      ['msg', 'ü.日本', 'antwört', ['grüppe'], -1, payload.toString('latin1')],
      ['unsub', 'ü.日本', 'grüppe'],
    ];
    expect(parseWhole(input)).toEqual(expected);
    // split inside a multi-byte character of the subject and inside the payload
    const cut = input.indexOf(0xe6); // first byte of 日
    expect(parseChunks(splitAt(input, cut + 1, cut + 2, input.indexOf(payload) + 1))).toEqual(expected);
  });

  it('empty payloads and CRLF inside payloads', () => {
    expect(parseWhole('LMSG a 0\r\n\r\nLMSG b r 0\r\n\r\nLMSG c 6\r\n\r\nab\r\n\r\nLMSG d 2\r\n\r\n\r\nPING\r\n')).toEqual([
      ['msg', 'a', '', null, -1, ''],
      ['msg', 'b', 'r', null, -1, ''],
      ['msg', 'c', '', null, -1, '\r\nab\r\n'],
      ['msg', 'd', '', null, -1, '\r\n'],
      ['ping'],
    ]);
    // a payload that looks like protocol is payload
    expect(parseWhole('LMSG a 6\r\nPING\r\n\r\n')).toEqual([['msg', 'a', '', null, -1, 'PING\r\n']]);
  });

  it('the payload handed out is the payload bytes (binary, every byte value)', () => {
    const bin = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) bin[i] = i;
    const input = Buffer.concat([Buffer.from('LMSG bin 256\r\n'), bin, Buffer.from('\r\n')]);
    const out = parseWhole(input);
    expect(out).toEqual([['msg', 'bin', '', null, -1, bin.toString('latin1')]]);
  });

  it('blank lines and bare-LF line ends are tolerated', () => {
    expect(parseWhole('\r\nPING\nLS+ a\n\r\nPONG\r\n')).toEqual([['ping'], ['sub', 'a', '', 1], ['pong']]);
  });
});

describe('LeafParser: sizes and framing errors', () => {
  it('a payload exactly at max_payload is fine; one byte over is Maximum Payload Violation', () => {
    const max = 1000;
    const at = 'x'.repeat(max);
    expect(parseWhole(`LMSG a ${max}\r\n${at}\r\n`, max)).toEqual([['msg', 'a', '', null, -1, at]]);
    expect(protocolError(`LMSG a ${max + 1}\r\n${at}x\r\n`, max).message).toMatch(/Maximum Payload Violation/);
    // HMSG: total (headers + payload) is what counts
    const h = 'NATS/1.0\r\n\r\n';
    const body = h + 'y'.repeat(max - h.length);
    expect(parseWhole(`HMSG a ${h.length} ${max}\r\n${body}\r\n`, max)).toEqual([['msg', 'a', '', null, h.length, body]]);
    expect(protocolError(`HMSG a ${h.length} ${max + 1}\r\n${body}y\r\n`, max).message).toMatch(/Maximum Payload Violation/);
  });

  it('the size check happens on the control line, before any payload arrives', () => {
    const p = new LeafParser(new Recorder(), 10);
    expect(() => p.feed(Buffer.from('LMSG a 11\r\n'))).toThrow(LeafProtocolError);
  });

  it('setMaxPayload moves the limit', () => {
    const r = new Recorder();
    const p = new LeafParser(r, 4);
    expect(() => p.feed(Buffer.from('LMSG a 5\r\n'))).toThrow(/Maximum Payload Violation/);
    const q = new LeafParser(r, 4);
    q.setMaxPayload(5);
    q.feed(Buffer.from('LMSG a 5\r\nhello\r\n'));
    expect(r.events).toEqual([['msg', 'a', '', null, -1, 'hello']]);
  });

  it('a wrong size (payload not followed by CRLF) is a LeafProtocolError', () => {
    // announced too short
    expect(protocolError('LMSG a 3\r\nhello\r\n').message).toMatch(/CRLF/);
    // announced too long: the CRLF position falls inside the next line
    expect(protocolError('LMSG a 7\r\nhello\r\nPING\r\n').message).toMatch(/CRLF/);
    // HMSG likewise
    expect(protocolError('HMSG a 12 14\r\nNATS/1.0\r\n\r\nabc\r\n')).toBeInstanceOf(LeafProtocolError);
    // and chunked: the error comes once the bytes where CRLF belongs have arrived
    const r = new Recorder();
    const p = new LeafParser(r, DEFAULT_MAX);
    p.feed(Buffer.from('LMSG a 3\r\nhe'));
    expect(r.events).toEqual([]);
    expect(() => p.feed(Buffer.from('llo\r\n'))).toThrow(LeafProtocolError);
  });

  it('an announced size waits for its bytes: no event and no error until they come', () => {
    const r = new Recorder();
    const p = new LeafParser(r, DEFAULT_MAX);
    p.feed(Buffer.from('LMSG a 5\r\nhel'));
    p.feed(Buffer.from('lo'));
    expect(r.events).toEqual([]);
    p.feed(Buffer.from('\r'));
    expect(r.events).toEqual([]);
    p.feed(Buffer.from('\nPING\r\n'));
    expect(r.events).toEqual([['msg', 'a', '', null, -1, 'hello'], ['ping']]);
  });

  it('an unknown verb is an error (client and route verbs included)', () => {
    for (const line of ['FOO bar', 'MSG a 1 1', 'RMSG $G a 1', 'SUB a 1', 'PUB a 1', 'CONNECT {}', 'LS* a', 'PINGX']) {
      const e = protocolError(`${line}\r\n`);
      expect(e.message, line).toMatch(/Unknown Protocol Operation/);
    }
  });

  it('malformed arguments are errors', () => {
    for (const line of [
      'LMSG',
      'LMSG a',
      'LMSG a x',
      'LMSG a -1',
      'LMSG a 1x',
      'LMSG a b c 5', // token 2 must be + or |
      'LMSG a ++ r q 5',
      'HMSG a 5',
      'HMSG a 10 5', // headers longer than the total
      'HMSG a x 5',
      'HMSG a b c 1 5',
      'LS+',
      'LS+ a q x',
      'LS+ a q -1',
      'LS+ a b c d',
      'LS-',
      'LS- a b c d',
      'LMSG a 99999999999', // more digits than any size
    ]) {
      expect(thrown(() => parseWhole(`${line}\r\n`)), line).toBeInstanceOf(LeafProtocolError);
    }
  });

  it('an over-long control line is an error, whether or not its newline has come', () => {
    const subject = 'a'.repeat(MAX_CONTROL_LINE);
    expect(protocolError(`LS+ ${subject}\r\n`).message).toMatch(/Maximum Control Line/);
    // no newline yet: the parser must not buffer without bound
    const p = new LeafParser(new Recorder(), DEFAULT_MAX);
    const e = thrown(() => {
      for (let i = 0; i < 100; i++) p.feed(Buffer.from('LS+ ' + 'b'.repeat(100)));
    });
    expect(e).toBeInstanceOf(LeafProtocolError);
    expect((e as Error).message).toMatch(/Maximum Control Line/);
  });

  it(`a control line of exactly MAX_CONTROL_LINE (${MAX_CONTROL_LINE}) bytes is accepted, however it is split`, () => {
    const line = 'LS+ ' + 'a'.repeat(MAX_CONTROL_LINE - 4);
    expect(line.length).toBe(MAX_CONTROL_LINE);
    const input = Buffer.from(`${line}\r\nPING\r\n`);
    const expected: Event[] = [['sub', 'a'.repeat(MAX_CONTROL_LINE - 4), '', 1], ['ping']];
    expect(parseWhole(input)).toEqual(expected);
    // every split inside and around the line end must give the same result
    for (let cut = MAX_CONTROL_LINE - 2; cut <= MAX_CONTROL_LINE + 3; cut++) {
      let got: Event[] = [];
      let outcome = 'ok';
      try {
        got = parseChunks(splitAt(input, cut));
      } catch (e) {
        outcome = String(e);
      }
      expect(outcome, `split at ${cut}`).toBe('ok');
      expect(got, `split at ${cut}`).toEqual(expected);
    }
  });

  it('a long INFO line (URL lists, permissions) is fine, whole and chunked', () => {
    const urls = Array.from({ length: 4000 }, (_, i) => `"nats://10.0.${i >> 8}.${i & 255}:7422"`).join(',');
    const info = `{"server_id":"N","leafnode_urls":[${urls}]}`;
    expect(info.length).toBeGreaterThan(10 * MAX_CONTROL_LINE);
    const input = Buffer.from(`INFO ${info}\r\nPING\r\n`);
    expect(parseWhole(input)).toEqual([['info', info], ['ping']]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 1000) chunks.push(input.subarray(i, i + 1000));
    expect(parseChunks(chunks)).toEqual([['info', info], ['ping']]);
    // lower case too, and split before the verb is complete
    const lower = Buffer.from(`info ${info}\r\n`);
    expect(parseChunks(splitAt(lower, 2, 3000))).toEqual([['info', info]]);
  });
});

// ---- generated streams ---------------------------------------------------------------------

const SUBJECT_TOKENS = ['a', 'foo', 'bar', 'ü', '日本', 'x_y', '$JS', 'ACK', 'ñandú', '*', 'q-1', '🙂'];
const QUEUES = ['q', 'grp', 'grüppe', 'workers', 'Q_2'];

function subject(rng: Prng): string {
  const n = rng.int(1, 4);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(rng.pick(SUBJECT_TOKENS));
  if (rng.next() < 0.1) parts.push('>');
  return parts.join('.');
}

function caseOf(rng: Prng, verb: string): string {
  const r = rng.next();
  if (r < 0.8) return verb;
  if (r < 0.9) return verb.toLowerCase();
  let out = '';
  for (const c of verb) out += rng.next() < 0.5 ? c.toLowerCase() : c;
  return out;
}

function payload(rng: Prng, maxLen: number): Buffer {
  const r = rng.next();
  const len = r < 0.1 ? 0 : r < 0.9 ? rng.int(1, Math.min(64, maxLen)) : rng.int(1, maxLen);
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) {
    // CR and LF often, so that payloads look like protocol
    const k = rng.next();
    b[i] = k < 0.1 ? 0x0d : k < 0.2 ? 0x0a : rng.int(0, 255);
  }
  return b;
}

/** One valid frame and the event it must produce (null for +OK). */
function frame(rng: Prng, maxPayloadLen: number): { bytes: Buffer; event: Event | null } {
  const kind = rng.int(0, 9);
  switch (kind) {
    case 0: {
      const json = JSON.stringify({ server_id: 'N' + rng.int(0, 1e6), connect_urls: ['nats://h:' + rng.int(1, 65535)] });
      return { bytes: Buffer.from(`${caseOf(rng, 'INFO')} ${json}\r\n`), event: ['info', json] };
    }
    case 1:
      return { bytes: Buffer.from(`${caseOf(rng, 'PING')}\r\n`), event: ['ping'] };
    case 2:
      return { bytes: Buffer.from(`${caseOf(rng, 'PONG')}\r\n`), event: ['pong'] };
    case 3: {
      if (rng.next() < 0.5) return { bytes: Buffer.from(`${caseOf(rng, '+OK')}\r\n`), event: null };
      const text = `Permissions Violation for Subscription to "${subject(rng)}"`;
      return { bytes: Buffer.from(`${caseOf(rng, '-ERR')} '${text}'\r\n`, 'utf8'), event: ['err', text] };
    }
    case 4: {
      const s = subject(rng);
      if (rng.next() < 0.5) return { bytes: Buffer.from(`${caseOf(rng, 'LS+')} ${s}\r\n`), event: ['sub', s, '', 1] };
      const q = rng.pick(QUEUES);
      const w = rng.int(1, 500);
      return { bytes: Buffer.from(`${caseOf(rng, 'LS+')} ${s} ${q} ${w}\r\n`), event: ['sub', s, q, w] };
    }
    case 5: {
      const s = subject(rng);
      if (rng.next() < 0.5) return { bytes: Buffer.from(`${caseOf(rng, 'LS-')} ${s}\r\n`), event: ['unsub', s, ''] };
      const q = rng.pick(QUEUES);
      return { bytes: Buffer.from(`${caseOf(rng, 'LS-')} ${s} ${q}\r\n`), event: ['unsub', s, q] };
    }
    default: {
      const headers = rng.next() < 0.4;
      const s = subject(rng);
      const form = rng.int(0, 3);
      const reply = form === 1 || form === 2 ? '_INBOX.' + rng.pick(SUBJECT_TOKENS) + '.' + rng.int(0, 999) : '';
      const queues = form >= 2 ? Array.from({ length: rng.int(1, 3) }, () => rng.pick(QUEUES)) : null;
      let mid = '';
      if (form === 1) mid = ` ${reply}`;
      else if (form === 2) mid = ` + ${reply} ${queues!.join(' ')}`;
      else if (form === 3) mid = ` | ${queues!.join(' ')}`;
      let body = payload(rng, maxPayloadLen);
      let hdrLen = -1;
      if (headers) {
        const h = Buffer.from(`NATS/1.0\r\nK-${rng.int(0, 9)}: v\r\n\r\n`);
        body = Buffer.concat([h, body]);
        hdrLen = h.length;
      }
      const sizes = headers ? `${hdrLen} ${body.length}` : `${body.length}`;
      const line = Buffer.from(`${caseOf(rng, headers ? 'HMSG' : 'LMSG')} ${s}${mid} ${sizes}\r\n`, 'utf8');
      return {
        bytes: Buffer.concat([line, body, Buffer.from('\r\n')]),
        event: ['msg', s, reply, queues, hdrLen, body.toString('latin1')],
      };
    }
  }
}

function stream(seed: number, frames: number, maxPayloadLen: number): { bytes: Buffer; events: Event[] } {
  const rng = new Prng(seed);
  const parts: Buffer[] = [];
  const events: Event[] = [];
  for (let i = 0; i < frames; i++) {
    const f = frame(rng, maxPayloadLen);
    parts.push(f.bytes);
    if (f.event !== null) events.push(f.event);
  }
  return { bytes: Buffer.concat(parts), events };
}

function randomChunks(rng: Prng, bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const r = rng.next();
    const n = r < 0.5 ? rng.int(1, 8) : r < 0.85 ? rng.int(9, 200) : rng.int(201, 5000);
    out.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

describe('LeafParser: split anywhere', () => {
  it('a generated stream of 3000 frames parses to the events it was built from', () => {
    const { bytes, events } = stream(1, 3000, 2000);
    expect(events.length).toBeGreaterThan(2500);
    expect(parseWhole(bytes)).toEqual(events);
  });

  it('random chunk sizes (1 byte upward) give exactly the events of the whole stream', () => {
    for (const seed of [2, 3, 4]) {
      const { bytes, events } = stream(seed, 3000, 2000);
      const whole = parseWhole(bytes);
      expect(whole).toEqual(events);
      const rng = new Prng(seed * 7919);
      for (let round = 0; round < 3; round++) {
        const chunks = randomChunks(rng, bytes);
        expect(chunks.length).toBeGreaterThan(100);
        expect(parseChunks(chunks), `seed ${seed} round ${round}`).toEqual(whole);
      }
    }
  });

  it('one byte at a time gives the same events', () => {
    const { bytes, events } = stream(5, 400, 300);
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i++) chunks.push(bytes.subarray(i, i + 1));
    expect(parseChunks(chunks)).toEqual(events);
  });

  it('every single split point of a short stream gives the same events', () => {
    const { bytes, events } = stream(6, 60, 120);
    expect(parseWhole(bytes)).toEqual(events);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(parseChunks(splitAt(bytes, cut)), `cut ${cut}`).toEqual(events);
    }
  });

  it('chunks may be views into a larger buffer that is reused after feed() returns', () => {
    // a socket may hand out slices of a pool; whatever the parser keeps must be its own copy
    const { bytes, events } = stream(8, 500, 500);
    const rng = new Prng(99);
    const r = new Recorder();
    const p = new LeafParser(r, DEFAULT_MAX);
    const pool = Buffer.alloc(8192);
    let pos = 0;
    while (pos < bytes.length) {
      const n = Math.min(rng.int(1, 3000), bytes.length - pos);
      bytes.copy(pool, 0, pos, pos + n);
      p.feed(pool.subarray(0, n));
      pool.fill(0x58); // scribble over what was fed
      pos += n;
    }
    expect(r.events).toEqual(events);
  });
});

describe('LeafParser: garbage', () => {
  /** Feed `chunks`; the only acceptable failure is LeafProtocolError. */
  function survive(chunks: readonly Buffer[], maxPayload: number): 'ok' | 'protocol-error' {
    const p = new LeafParser(new Recorder(), maxPayload);
    try {
      for (const c of chunks) p.feed(c);
      return 'ok';
    } catch (e) {
      if (e instanceof LeafProtocolError) return 'protocol-error';
      throw e;
    }
  }

  it('random bytes only ever raise LeafProtocolError', () => {
    const rng = new Prng(1234);
    const alphabet = Buffer.from('LMSGHINFOPONGLS+-ERRK|+ \t\r\n0123456789abcq.*>\'"{}\xff\x00ü', 'utf8');
    const outcomes = { ok: 0, 'protocol-error': 0 };
    for (let i = 0; i < 20_000; i++) {
      const len = rng.int(1, 300);
      const b = Buffer.allocUnsafe(len);
      const biased = rng.next() < 0.7;
      for (let k = 0; k < len; k++) b[k] = biased ? alphabet[rng.int(0, alphabet.length - 1)]! : rng.int(0, 255);
      outcomes[survive(randomChunks(rng, b), rng.pick([0, 1, 16, 1024]))]++;
    }
    expect(outcomes['protocol-error']).toBeGreaterThan(1000);
    expect(outcomes.ok).toBeGreaterThan(100);
  });

  it('mutated valid streams only ever raise LeafProtocolError', () => {
    const rng = new Prng(4321);
    const outcomes = { ok: 0, 'protocol-error': 0 };
    for (let i = 0; i < 3000; i++) {
      const { bytes } = stream(10_000 + i, rng.int(1, 12), 200);
      const b = Buffer.from(bytes);
      const edits = rng.int(1, 4);
      for (let k = 0; k < edits && b.length > 0; k++) {
        const at = rng.int(0, b.length - 1);
        b[at] = rng.pick([0x20, 0x0d, 0x0a, 0x2b, 0x7c, 0x30, 0x39, 0x2d, rng.int(0, 255)]);
      }
      const cut = rng.next() < 0.3 ? b.subarray(0, rng.int(0, b.length)) : b;
      outcomes[survive(randomChunks(rng, cut), rng.pick([0, 64, 1024, DEFAULT_MAX]))]++;
    }
    expect(outcomes['protocol-error']).toBeGreaterThan(300);
    expect(outcomes.ok).toBeGreaterThan(300);
  });

  it('huge announced sizes and numbers are errors, not RangeErrors or waits', () => {
    for (const line of ['LMSG a 4294967296', 'LMSG a 9999999999', 'HMSG a 9999999999 9999999999', 'LS+ a q 99999999999']) {
      const e = thrown(() => parseWhole(`${line}\r\n`));
      expect(e, line).toBeInstanceOf(LeafProtocolError);
    }
  });
});
