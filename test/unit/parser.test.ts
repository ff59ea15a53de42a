import { describe, expect, it } from 'vitest';
import { Parser, type ProtocolErrorKind, type ProtocolHandler } from '../../src/nats/parser.js';

// Expected behaviour comes from nats-server 2.9.10 observed over raw sockets (see
// spec/client-protocol.md §1-§2 and the live probes noted next to the less obvious cases).

type Ev =
  | ['connect', string]
  | ['info']
  | ['pub', string, string, number, string]
  | ['sub', string, string, string]
  | ['unsub', string, number]
  | ['ping']
  | ['pong']
  | ['ok']
  | ['error', ProtocolErrorKind];

class Rec implements ProtocolHandler {
  events: Ev[] = [];
  details: (string | undefined)[] = [];
  datas: Buffer[] = [];
  /** Called after each event is recorded. */
  hook: ((ev: Ev) => void) | null = null;

  private add(ev: Ev): void {
    this.events.push(ev);
    if (this.hook !== null) this.hook(ev);
  }
  onConnect(json: string): void {
    this.add(['connect', json]);
  }
  onInfo(): void {
    this.add(['info']);
  }
  onPub(subject: string, reply: string, hdrLen: number, data: Buffer): void {
    this.datas.push(data);
    this.add(['pub', subject, reply, hdrLen, data.toString('latin1')]);
  }
  onSub(subject: string, queue: string, sid: string): void {
    this.add(['sub', subject, queue, sid]);
  }
  onUnsub(sid: string, max: number): void {
    this.add(['unsub', sid, max]);
  }
  onPing(): void {
    this.add(['ping']);
  }
  onPong(): void {
    this.add(['pong']);
  }
  onOk(): void {
    this.add(['ok']);
  }
  onError(kind: ProtocolErrorKind, detail?: string): void {
    this.details.push(detail);
    this.add(['error', kind]);
  }
}

interface Opts {
  maxControlLine?: number;
  maxPayload?: number;
  headers?: boolean;
}

function make(opts: Opts = {}): { p: Parser; r: Rec } {
  const r = new Rec();
  const p = new Parser(r, { maxControlLine: opts.maxControlLine ?? 4096, maxPayload: opts.maxPayload ?? 1024 * 1024 });
  if (opts.headers !== undefined) p.headers = opts.headers;
  return { p, r };
}

function b(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Events for the input given in one chunk. */
function run(input: string | Buffer, opts: Opts = {}): Ev[] {
  const { p, r } = make(opts);
  p.parse(typeof input === 'string' ? b(input) : input);
  return r.events;
}

/** Events for the input given as the listed chunks. */
function runChunks(chunks: (string | Buffer)[], opts: Opts = {}): Ev[] {
  const { p, r } = make(opts);
  for (const c of chunks) p.parse(typeof c === 'string' ? b(c) : c);
  return r.events;
}

const ERR = (kind: ProtocolErrorKind): Ev => ['error', kind];

describe('PING, PONG, +OK', () => {
  it.each([
    ['PING\r\n', [['ping']]],
    ['ping\n', [['ping']]],
    ['pInG\r\n', [['ping']]],
    ['PINGX\r\n', [['ping']]], // live: PONG
    ['PING foo\r\n', [['ping']]],
    ['PONG\r\n', [['pong']]],
    ['PONGX\r\n', [['pong']]],
    ['+OK\r\n', [['ok']]],
    ['+ok junk\r\n', [['ok']]],
    ['PING\r\nPONG\r\n+OK\r\nPING\n', [['ping'], ['pong'], ['ok'], ['ping']]],
  ] as [string, Ev[]][])('%j', (input, expected) => {
    expect(run(input)).toEqual(expected);
  });

  it('waits for the LF: PING without it gives nothing yet', () => {
    expect(run('PING\r')).toEqual([]);
    expect(runChunks(['PING\r', '\n'])).toEqual([['ping']]);
  });

  it('ignores any length of junk after PING (no control-line limit there)', () => {
    expect(run('PING ' + 'x'.repeat(100000) + '\r\nPING\r\n', { maxControlLine: 64 })).toEqual([['ping'], ['ping']]);
  });

  it('an empty line after PING is an unknown op', () => {
    expect(run('PING\n\n')).toEqual([['ping'], ERR('unknown-op')]); // live: PONG, then -ERR
  });
});

describe('unknown operations', () => {
  it.each([
    'PIN\r\n', ' PING\r\n', '\tPING\r\n', '\r\n', '\n', 'X', 'PO\r\n', 'POX\r\n', '+O\r\n', '+X', '-E\r\n', '-X',
    'PUBfoo 0\r\n\r\n', 'PUB\r\n', 'SUB\r\n', 'SUB\n', 'UNSUB\r\n', 'UNSUBX', 'HX', 'HPUX', 'HPUBfoo 0 0\r\n',
    'HMSGX', 'HMSG\r\n', 'HMS\r\n', 'CONNEC\r\n', 'INF\r\n', '-ERR\r\n', '-ERRx\r\n',
    // MSG is refused at its first byte, route and leaf ops too
    'M', 'MSG foo 1 5\r\nhello\r\n', 'R', 'RS+ foo\r\n', 'RMSG', 'L', 'LS+ foo\r\n', 'LMSG', 'A', 'A+ foo\r\n',
    '\x00\xde\xad\xbe\xef',
  ])('%j', (input) => {
    expect(run(input)).toEqual([ERR('unknown-op')]);
  });

  it('is detected at the offending byte, without waiting for a line end', () => {
    expect(run('PUBX')).toEqual([ERR('unknown-op')]);
    expect(run('M')).toEqual([ERR('unknown-op')]);
    expect(run('PU')).toEqual([]);
    expect(run('HMSG x')).toEqual([]); // live: still open
  });

  it('HMSG is read up to its line end, then refused', () => {
    expect(run('HMSG foo 1 2 2\r\nhi\r\n')).toEqual([ERR('unknown-op')]);
    // the control-line limit applies first (live: maximum control line exceeded)
    expect(run('HMSG ' + 'x'.repeat(100) + '\r\n', { maxControlLine: 64 })).toEqual([ERR('control-line')]);
  });

  it('earlier ops in the chunk are delivered before the error', () => {
    expect(run('PING\r\nSUB foo 1\r\nXYZ\r\nPING\r\n')).toEqual([['ping'], ['sub', 'foo', '', '1'], ERR('unknown-op')]);
  });
});

describe('CONNECT and INFO', () => {
  it.each([
    ['CONNECT {"verbose":false}\r\n', '{"verbose":false}'],
    ['connect {}\n', '{}'],
    ['CONNECT{"a":1}\r\n', '{"a":1}'], // live: no separator needed
    ['CONNECT \t {"a":1}  \r\n', '{"a":1}  '],
    ['CONNECT\n{"a":1}\r\n', '\n{"a":1}'], // live: the LF right after the name does not end the line
    ['CONNECT\r\n', '\r'], // live: closed silently (not JSON)
    ['CONNECTX\r\n', 'X'],
    ['CONNECT {"name":"ñ温"}\r\n', '{"name":"ñ温"}'],
  ])('%j -> onConnect(%j)', (input, json) => {
    expect(run(Buffer.from(input, 'utf8'))).toEqual([['connect', json]]);
  });

  it.each(['INFO {}\r\n', 'INFO{}\r\n', 'INFO null\r\n', 'INFO {"zz":1}\r\n', 'INFO {}  \r\n'])('%j is accepted', (input) => {
    expect(run(input + 'PING\r\n')).toEqual([['info'], ['ping']]);
  });

  it.each(['INFO\r\n', 'INFO garbage\r\n', 'INFO []\r\n', 'INFO {} x\r\n', 'INFO 5\r\n'])('%j closes silently', (input) => {
    expect(run(input + 'PING\r\n')).toEqual([ERR('bad-args')]);
  });

  it('CONNECT, INFO and -ERR obey the control-line limit', () => {
    const long = '{"name":"' + 'x'.repeat(100) + '"}';
    expect(run(`CONNECT ${long}\r\n`, { maxControlLine: 64 })).toEqual([ERR('control-line')]);
    expect(run(`INFO ${long}\r\n`, { maxControlLine: 64 })).toEqual([ERR('control-line')]);
    expect(run(`-ERR ${long}\r\n`, { maxControlLine: 64 })).toEqual([ERR('control-line')]);
  });
});

describe('before authentication', () => {
  it('refuses any op but CONNECT at its first byte (live, server with --user/--pass)', () => {
    const auth = (input: string): Ev[] => {
      const { p, r } = make();
      p.awaitingAuth = true;
      p.parse(b(input));
      return r.events;
    };
    expect(auth('PING\r\n')).toEqual([ERR('auth-violation')]);
    expect(auth('P')).toEqual([ERR('auth-violation')]);
    expect(auth('XYZ')).toEqual([ERR('auth-violation')]);
    expect(auth('\r\n')).toEqual([ERR('auth-violation')]);
    expect(auth('CXYZ')).toEqual([ERR('unknown-op')]);
    expect(auth('C')).toEqual([]);
    expect(auth('connect {}\r\nPING\r\n')).toEqual([['connect', '{}'], ERR('auth-violation')]);
  });

  it('the connection clears the flag after an accepted CONNECT (pausing while it checks)', () => {
    const { p, r } = make();
    p.awaitingAuth = true;
    r.hook = (ev) => {
      if (ev[0] === 'connect') p.pause();
    };
    p.parse(b('CONNECT {"user":"a"}\r\nPING\r\nSUB x 1\r\n'));
    p.awaitingAuth = false;
    p.resume();
    expect(r.events).toEqual([['connect', '{"user":"a"}'], ['ping'], ['sub', 'x', '', '1']]);
  });
});

describe('-ERR from the client', () => {
  it('closes with the text as detail', () => {
    const { p, r } = make();
    p.parse(b("-ERR 'Unknown Protocol Operation'\r\nPING\r\n"));
    expect(r.events).toEqual([ERR('client-err')]);
    expect(r.details).toEqual(["'Unknown Protocol Operation'"]);
  });

  it('takes a tab and waits for the line end', () => {
    expect(run("-err\t'x'\n")).toEqual([ERR('client-err')]);
    expect(run('-ERR x')).toEqual([]);
  });
});

describe('PUB', () => {
  it.each([
    ['PUB foo 5\r\nhello\r\n', ['pub', 'foo', '', -1, 'hello']],
    ['PUB foo bar 5\r\nhello\r\n', ['pub', 'foo', 'bar', -1, 'hello']],
    ['pUb\tfoo\t\t 2 \r\nhi\r\n', ['pub', 'foo', '', -1, 'hi']],
    ['PUB  foo \t r  2\r\nhi\r\n', ['pub', 'foo', 'r', -1, 'hi']],
    ['PUB foo 0\r\n\r\n', ['pub', 'foo', '', -1, '']],
    ['PUB foo 0005\r\nhello\r\n', ['pub', 'foo', '', -1, 'hello']], // live: leading zeros accepted
    ['PUB foo 2\nhi\r\n', ['pub', 'foo', '', -1, 'hi']], // bare LF ends the control line
    ['PUB foo 4\r\n\r\n\r\n\r\n', ['pub', 'foo', '', -1, '\r\n\r\n']],
    ['PUB \nfoo 0\r\n\r\n', ['pub', '\nfoo', '', -1, '']], // live: MSG "\nfoo"
    ['PUB foo\rx 2\r\nhi\r\n', ['pub', 'foo\rx', '', -1, 'hi']], // live: CR is no PUB separator
  ] as [string, Ev][])('%j', (input, ev) => {
    expect(run(input + 'PING\r\n')).toEqual([ev, ['ping']]);
  });

  it('decodes subjects as UTF-8', () => {
    expect(run(Buffer.from('PUB temp.温度 _INBOX.é 1\r\nx\r\n', 'utf8'))).toEqual([['pub', 'temp.温度', '_INBOX.é', -1, 'x']]);
  });

  it.each([
    'PUB foo\r\n', 'PUB foo bar baz 0\r\n', 'PUB foo -1\r\n', 'PUB foo +1\r\nx\r\n', 'PUB foo 1e3\r\n', 'PUB foo 0x10\r\n',
    'PUB foo 1234567890\r\n', 'PUB foo 0000000001\r\n', 'PUB \r\n', 'PUB  \t \r\n',
  ])('%j closes silently', (input) => {
    expect(run(input + 'PING\r\n')).toEqual([ERR('bad-args')]);
  });

  it('a CR in the arguments makes the last byte before LF drop, as nats-server does in one read', () => {
    // live: `PUB foo\rx 2\n` closes silently (arguments "foo\rx "), `SUB foo\rx 12\n` gets sid "1"
    expect(run('PUB foo\rx 2\nhi\r\n')).toEqual([ERR('bad-args')]);
    expect(run('SUB foo\rx 12\n')).toEqual([['sub', 'foo', 'x', '1']]);
    expect(run('UNSUB 5\r 10\n')).toEqual([['unsub', '5', 1]]);
    // the first argument byte is not part of it (nats-server's separator state takes it)
    expect(run('SUB \rfoo 12\n')).toEqual([['sub', 'foo', '', '12']]);
    // and the same whatever the split (nats-server itself differs there)
    for (let i = 0; i <= 10; i++) {
      expect(runChunks(['SUB foo\rx 12\n'.slice(0, i), 'SUB foo\rx 12\n'.slice(i)])).toEqual([['sub', 'foo', 'x', '1']]);
    }
    // the control-line limit counts what is left (live, max_control_line 128: `SUB a\r` + 127 x
    // subscribes sid x*126, + 128 x is refused, also while unfinished)
    expect(run(`SUB a\r${'x'.repeat(63)}\n`, { maxControlLine: 64 })).toEqual([['sub', 'a', '', 'x'.repeat(62)]]);
    expect(run(`SUB a\r${'x'.repeat(64)}\n`, { maxControlLine: 64 })).toEqual([ERR('control-line')]);
    expect(run(`SUB a\r${'x'.repeat(63)}`, { maxControlLine: 64 })).toEqual([]);
    expect(run(`SUB a\r${'x'.repeat(64)}`, { maxControlLine: 64 })).toEqual([ERR('control-line')]);
  });

  it('refuses sizes over max_payload before reading the payload', () => {
    expect(run('PUB foo 999999999\r\n')).toEqual([ERR('max-payload')]);
    expect(run('PUB foo 11\r\n', { maxPayload: 10 })).toEqual([ERR('max-payload')]);
    expect(run('PUB foo 10\r\n0123456789\r\n', { maxPayload: 10 })).toEqual([['pub', 'foo', '', -1, '0123456789']]);
  });

  it.each([
    'PUB foo 3\r\nhello\r\n', // payload longer than declared
    'PUB foo 2\r\nhi\nPING\r\n',
    'PUB foo 2\r\nhi\r\rPING\r\n',
    'PUB foo 2\r\nhix',
    'PUB foo 2\r\nhi\rx',
    'PUB foo 1\r\n\r\n\r\n',
    'PUB foo 0\r\n\n',
  ])('%j: no CRLF right after the payload', (input) => {
    expect(run(input)).toEqual([ERR('unknown-op')]);
  });

  it('waits for the payload and its CRLF', () => {
    expect(run('PUB foo 5\r\nhel\r\n')).toEqual([]); // live: still open
    expect(run('PUB foo 2\r\nhi\r')).toEqual([]);
    expect(runChunks(['PUB foo 2\r\nhi\r', '\n'])).toEqual([['pub', 'foo', '', -1, 'hi']]);
  });

  it('follows limit changes (config reload)', () => {
    const { p, r } = make({ maxPayload: 100 });
    p.parse(b('PUB foo 50\r\n' + 'x'.repeat(50) + '\r\n'));
    p.maxPayload = 10;
    p.parse(b('PUB foo 50\r\n'));
    expect(r.events.map((e) => e[0])).toEqual(['pub', 'error']);
    expect(r.events[1]).toEqual(ERR('max-payload'));
  });
});

describe('HPUB', () => {
  it.each([
    ['HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n', ['pub', 'foo', '', 12, 'NATS/1.0\r\n\r\nhi']],
    ['HPUB foo r 2 4\r\nhiyo\r\n', ['pub', 'foo', 'r', 2, 'hiyo']],
    ['hpub\tfoo  0 0 \r\n\r\n', ['pub', 'foo', '', 0, '']], // KV puts use a 0-byte header block
    ['HPUB foo 0 2\r\nhi\r\n', ['pub', 'foo', '', 0, 'hi']],
    ['HPUB foo 000000002 000000002\r\nhi\r\n', ['pub', 'foo', '', 2, 'hi']],
  ] as [string, Ev][])('%j', (input, ev) => {
    expect(run(input + 'PING\r\n')).toEqual([ev, ['ping']]);
  });

  it.each([
    'HPUB foo 3\r\n', 'HPUB foo a b c d e\r\n', 'HPUB foo 5 3\r\nabc\r\n', 'HPUB foo -1 3\r\n', 'HPUB foo 1 x\r\n',
    'HPUB foo 1234567890 1\r\n', 'HPUB foo 2 1234567890\r\n', 'HPUB \r\n',
  ])('%j closes silently', (input) => {
    expect(run(input + 'PING\r\n')).toEqual([ERR('bad-args')]);
  });

  it('refuses a total over max_payload, after the header/total check', () => {
    expect(run('HPUB foo 2 999999999\r\n')).toEqual([ERR('max-payload')]);
    expect(run('HPUB foo 999999999 999999999\r\n')).toEqual([ERR('max-payload')]);
    expect(run('HPUB foo 20 11\r\n', { maxPayload: 10 })).toEqual([ERR('bad-args')]);
  });

  it('without headers support: silent close, after the control-line limit (live)', () => {
    expect(run('HPUB foo 0 0\r\n\r\n', { headers: false })).toEqual([ERR('bad-args')]);
    expect(run('HPUB foo 999999999 999999999\r\n', { headers: false })).toEqual([ERR('bad-args')]);
    expect(run('HPUB foo 0 0', { headers: false })).toEqual([]); // live: still open
    expect(run('HPUB ' + 'x'.repeat(100) + '\r\n', { headers: false, maxControlLine: 64 })).toEqual([ERR('control-line')]);
  });
});

describe('SUB and UNSUB', () => {
  it.each([
    ['SUB foo 1\r\n', ['sub', 'foo', '', '1']],
    ['sub foo q 1\r\n', ['sub', 'foo', 'q', '1']],
    ['SUB  foo \t q \t 1 \r\n', ['sub', 'foo', 'q', '1']],
    ['SUB foo.* 99\n', ['sub', 'foo.*', '', '99']],
    ['SUB \nfoo 1\r\n', ['sub', 'foo', '', '1']], // live: subscribed to foo
    // nats-server splits SUB arguments at CR too (for CRLF-terminated lines, live)
    ['SUB foo\rx 12\r\n', ['sub', 'foo', 'x', '12']],
    ['SUB foo \xe9\xff\r\n', ['sub', 'foo', '', '\xe9\xff']], // sid bytes kept as latin1
    ['UNSUB 1\r\n', ['unsub', '1', 0]],
    ['unsub\t1 \t 5\r\n', ['unsub', '1', 5]],
    ['UNSUB 1 abc\r\n', ['unsub', '1', 0]], // live: accepted, removes at once
    ['UNSUB 1 -5\r\n', ['unsub', '1', 0]],
    ['UNSUB 1 1234567890\r\n', ['unsub', '1', 0]],
    ['UNSUB 1 0\r\n', ['unsub', '1', 0]],
  ] as [string, Ev][])('%j', (input, ev) => {
    expect(run(input + 'PING\r\n')).toEqual([ev, ['ping']]);
  });

  it.each(['SUB foo\r\n', 'SUB foo q 1 2\r\n', 'SUB \r\n', 'SUB \t\r\n', 'UNSUB \r\n', 'UNSUB 1 2 3\r\n', 'SUB \n\n'])(
    '%j closes silently',
    (input) => {
      expect(run(input + 'PING\r\n')).toEqual([ERR('bad-args')]);
    },
  );
});

describe('control-line limit', () => {
  const mcl = 64;
  const subj = (n: number): string => 'x'.repeat(n);

  it('counts the arguments, not the op name, its separators or the CR', () => {
    // 62 + " 0" = 64 bytes of arguments
    expect(run(`PUB   ${subj(62)} 0\r\n\r\n`, { maxControlLine: mcl })).toEqual([['pub', subj(62), '', -1, '']]);
    expect(run(`PUB ${subj(63)} 0\r\n\r\n`, { maxControlLine: mcl })).toEqual([ERR('control-line')]);
    // trailing whitespace counts
    expect(run(`PUB ${subj(61)} 0 \r\n\r\n`, { maxControlLine: mcl })).toEqual([['pub', subj(61), '', -1, '']]);
    expect(run(`PUB ${subj(61)} 0  \r\n\r\n`, { maxControlLine: mcl })).toEqual([ERR('control-line')]);
  });

  it('wins over bad arguments and max_payload', () => {
    expect(run(`PUB ${subj(70)}\r\n`, { maxControlLine: mcl })).toEqual([ERR('control-line')]);
    expect(run(`PUB ${subj(60)} 999999999\r\n`, { maxControlLine: mcl })).toEqual([ERR('control-line')]);
    expect(run(`SUB ${subj(70)}\r\n`, { maxControlLine: mcl })).toEqual([ERR('control-line')]);
    expect(run(`UNSUB ${subj(70)}\r\n`, { maxControlLine: mcl })).toEqual([ERR('control-line')]);
  });

  it('is enforced on an unfinished line (live: 4096 bytes keep the connection, 4097 close it)', () => {
    expect(run(`PUB ${subj(mcl)}`, { maxControlLine: mcl })).toEqual([]);
    expect(run(`PUB ${subj(mcl + 1)}`, { maxControlLine: mcl })).toEqual([ERR('control-line')]);
    expect(run(`PUB ${subj(mcl)}\r`, { maxControlLine: mcl })).toEqual([]); // the CR may be the terminator's
    expect(run(`PUB    ${subj(mcl)}`, { maxControlLine: mcl })).toEqual([]);
    expect(runChunks([`PUB ${subj(mcl)}`, '\r\n'], { maxControlLine: mcl })).toEqual([ERR('bad-args')]);
    expect(runChunks([`PUB ${subj(mcl)}\r`, '\n'], { maxControlLine: mcl })).toEqual([ERR('bad-args')]);
    expect(runChunks([`PUB ${subj(mcl)}\r`, 'x'], { maxControlLine: mcl })).toEqual([ERR('control-line')]);
  });

  it('cuts off a line that never ends without buffering it', () => {
    const { p, r } = make({ maxControlLine: mcl });
    p.parse(b('SUB '));
    let fed = 0;
    while (r.events.length === 0 && fed < 10000) {
      p.parse(b('y'.repeat(7)));
      fed += 7;
      expect(p.buffered).toBeLessThanOrEqual(mcl + 1);
    }
    expect(r.events).toEqual([ERR('control-line')]);
    expect(fed).toBe(70); // the chunk that pushed it past 64 bytes
    expect(p.buffered).toBe(0);
    // a big chunk with no line end is refused as a whole, not copied
    expect(run(`PUB ${'z'.repeat(1 << 20)}`, { maxControlLine: mcl })).toEqual([ERR('control-line')]);
  });

  it('buffers a split control line and reports its size', () => {
    const { p, r } = make();
    p.parse(b('PUB foo.b'));
    expect(p.buffered).toBe(5);
    p.parse(b('ar rep'));
    expect(p.buffered).toBe(11);
    p.parse(b('ly 3\r\nab'));
    expect(p.buffered).toBe(3); // the payload buffer, allocated at its full size
    p.parse(b('c\r\n'));
    expect(p.buffered).toBe(0);
    expect(r.events).toEqual([['pub', 'foo.bar', 'reply', -1, 'abc']]);
  });

  it('follows limit changes', () => {
    const { p, r } = make({ maxControlLine: 100 });
    p.parse(b(`SUB ${subj(80)} 1\r\n`));
    p.maxControlLine = 50;
    p.parse(b(`SUB ${subj(80)} 1\r\n`));
    expect(r.events).toEqual([['sub', subj(80), '', '1'], ERR('control-line')]);
  });
});

// A stream with every op, payloads holding protocol text and CRLFs, split lines, odd spacing.
const STREAM = Buffer.concat([
  b('CONNECT {"verbose":false,"headers":true,"name":"x y"}\r\n'),
  b('PING\r\n'),
  b('SUB foo.* 1\r\nsub  bar\tq 22\n'),
  b('PUB foo.a 5\r\nhello\r\n'),
  b('PUB foo.a _INBOX.x 12\r\nPING\r\nPUB x\r\r\n'),
  b('HPUB foo.b 12 16\r\nNATS/1.0\r\n\r\nbody\r\n'),
  b('hpub foo.b r 0 0\r\n\r\n'),
  Buffer.from('PUB temp.温度 3\r\n°C\r\n', 'utf8'),
  b('INFO {}\r\n+OK\r\nPONG x\r\n'),
  b('UNSUB 1 10\r\nUNSUB 22\r\n'),
  b('PUB foo 0\r\n\r\n'),
  b('PINGjunk\r\n'),
]);
const STREAM_EVENTS: Ev[] = [
  ['connect', '{"verbose":false,"headers":true,"name":"x y"}'],
  ['ping'],
  ['sub', 'foo.*', '', '1'],
  ['sub', 'bar', 'q', '22'],
  ['pub', 'foo.a', '', -1, 'hello'],
  ['pub', 'foo.a', '_INBOX.x', -1, 'PING\r\nPUB x\r'],
  ['pub', 'foo.b', '', 12, 'NATS/1.0\r\n\r\nbody'],
  ['pub', 'foo.b', 'r', 0, ''],
  ['pub', 'temp.温度', '', -1, Buffer.from('°C', 'utf8').toString('latin1')],
  ['info'],
  ['ok'],
  ['pong'],
  ['unsub', '1', 10],
  ['unsub', '22', 0],
  ['pub', 'foo', '', -1, ''],
  ['ping'],
];

/** Tiny seeded PRNG for the random splits (tests must be repeatable). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

describe('split equivalence', () => {
  it('the whole stream gives the expected events', () => {
    expect(run(STREAM)).toEqual(STREAM_EVENTS);
  });

  it('a split at every byte position gives the same events', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      expect(runChunks([STREAM.subarray(0, i), STREAM.subarray(i)]), `split at ${i}`).toEqual(STREAM_EVENTS);
    }
  });

  it('every pair of split positions gives the same events', () => {
    const head = STREAM.subarray(0, 160);
    const expected = run(head);
    expect(expected.length).toBeGreaterThan(5);
    for (let i = 0; i <= head.length; i++) {
      for (let j = i; j <= head.length; j++) {
        const ev = runChunks([head.subarray(0, i), head.subarray(i, j), head.subarray(j)]);
        if (JSON.stringify(ev) !== JSON.stringify(expected)) expect(ev, `splits at ${i}, ${j}`).toEqual(expected);
      }
    }
  });

  it('one byte per chunk gives the same events', () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < STREAM.length; i++) chunks.push(STREAM.subarray(i, i + 1));
    expect(runChunks(chunks)).toEqual(STREAM_EVENTS);
  });

  it('random multi-splits give the same events, also for error streams', () => {
    const rnd = lcg(42);
    const streams: [Buffer, Ev[]][] = [
      [STREAM, STREAM_EVENTS],
      [Buffer.concat([STREAM, b('PUB foo 3\r\nabcd\r\n')]), [...STREAM_EVENTS, ERR('unknown-op')]],
      [Buffer.concat([STREAM, b(`SUB ${'q'.repeat(5000)} 1\r\n`)]), [...STREAM_EVENTS, ERR('control-line')]],
    ];
    for (const [stream, expected] of streams) {
      for (let round = 0; round < 500; round++) {
        const cuts = Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => Math.floor(rnd() * (stream.length + 1))).sort((x, y) => x - y);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const c of [...cuts, stream.length]) {
          chunks.push(stream.subarray(prev, c));
          prev = c;
        }
        expect(runChunks(chunks), `cuts ${cuts.join(',')}`).toEqual(expected);
      }
    }
  });
});

describe('payload buffers', () => {
  it('a payload inside the chunk is a view of it, not a copy', () => {
    const { p, r } = make();
    const chunk = b('PUB a 3\r\nabc\r\nPUB b 2\r\nxy\r\n');
    p.parse(chunk);
    expect(r.events.length).toBe(2);
    for (const d of r.datas) expect(d.buffer).toBe(chunk.buffer);
    expect(r.datas[0]!.byteOffset).toBe(chunk.byteOffset + 9);
  });

  it('a payload across chunks is assembled into one Buffer of exactly its size', () => {
    const size = 1024 * 1024;
    const payload = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 31) & 0xff;
    const stream = Buffer.concat([b(`PUB big ${size}\r\n`), payload, b('\r\nPING\r\n')]);
    for (const chunkSize of [65536, 1000, 7]) {
      const { p, r } = make();
      let maxBuffered = 0;
      for (let i = 0; i < stream.length; i += chunkSize) {
        p.parse(stream.subarray(i, i + chunkSize));
        maxBuffered = Math.max(maxBuffered, p.buffered);
      }
      expect(r.events.map((e) => e[0])).toEqual(['pub', 'ping']);
      const data = r.datas[0]!;
      expect(data.length).toBe(size);
      expect(data.buffer.byteLength).toBe(size);
      expect(data.equals(payload)).toBe(true);
      expect(maxBuffered).toBe(size);
      expect(p.buffered).toBe(0);
    }
  });

  it('many payloads over a chunk boundary', () => {
    const frames: Buffer[] = [];
    const expected: Ev[] = [];
    for (let i = 0; i < 200; i++) {
      const data = 'd'.repeat(i * 37 % 300);
      frames.push(b(`PUB s.${i} ${data.length}\r\n${data}\r\n`));
      expected.push(['pub', `s.${i}`, '', -1, data]);
    }
    const stream = Buffer.concat(frames);
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 1013) chunks.push(stream.subarray(i, i + 1013));
    expect(runChunks(chunks)).toEqual(expected);
  });

  it('subject strings repeat from the cache correctly when the subject changes', () => {
    expect(run('PUB a.b 0\r\n\r\nPUB a.b 0\r\n\r\nPUB a.c 0\r\n\r\nPUB a.b 0\r\n\r\nPUB a.bb 0\r\n\r\n').map((e) => e[1])).toEqual([
      'a.b', 'a.b', 'a.c', 'a.b', 'a.bb',
    ]);
  });
});

describe('pause and resume', () => {
  it('pause inside onConnect keeps the rest of the chunk (copied) until resume', () => {
    const { p, r } = make();
    r.hook = (ev) => {
      if (ev[0] === 'connect') p.pause();
    };
    const chunk = b('CONNECT {}\r\nPING\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPUB ba');
    p.parse(chunk);
    expect(r.events).toEqual([['connect', '{}']]);
    expect(p.buffered).toBe(chunk.length - 'CONNECT {}\r\n'.length);
    chunk.fill(0x21); // the caller may reuse its buffer
    p.parse(b('r 1\r\nx\r\n')); // arrives while paused: kept too
    expect(r.events.length).toBe(1);
    p.resume();
    expect(r.events).toEqual([
      ['connect', '{}'],
      ['ping'],
      ['sub', 'foo', '', '1'],
      ['pub', 'foo', '', -1, 'hi'],
      ['pub', 'bar', '', -1, 'x'],
    ]);
    expect(p.buffered).toBe(0);
  });

  it('pause in every callback, resume after each: same events', () => {
    const { p, r } = make();
    r.hook = () => p.pause();
    p.parse(STREAM);
    let guard = 0;
    while (r.events.length < STREAM_EVENTS.length && guard++ < 100) p.resume();
    expect(r.events).toEqual(STREAM_EVENTS);
  });

  it('resume from inside the same callback carries on', () => {
    const { p, r } = make();
    r.hook = () => {
      p.pause();
      p.resume();
    };
    p.parse(STREAM);
    expect(r.events).toEqual(STREAM_EVENTS);
  });

  it('a payload view handed out before the pause stays valid', () => {
    const { p, r } = make();
    r.hook = () => p.pause();
    p.parse(b('PUB a 3\r\nabc\r\nPUB b 3\r\ndef\r\n'));
    expect(r.datas[0]!.toString()).toBe('abc');
    p.resume();
    expect(r.datas.map((d) => d.toString())).toEqual(['abc', 'def']);
  });

  it('parse() from inside a callback is queued after the rest of the chunk', () => {
    const { p, r } = make();
    let once = true;
    r.hook = () => {
      if (once) {
        once = false;
        p.parse(b('PONG\r\n'));
      }
    };
    p.parse(b('PING\r\n+OK\r\n'));
    expect(r.events).toEqual([['ping'], ['ok'], ['pong']]);
  });
});

describe('stop and errors', () => {
  it('stop inside a callback ends all callbacks and later parses', () => {
    const { p, r } = make();
    r.hook = (ev) => {
      if (ev[0] === 'sub') p.stop();
    };
    p.parse(b('PING\r\nSUB a 1\r\nPING\r\nPUB a 1'));
    p.parse(b('\r\nx\r\n'));
    expect(r.events).toEqual([['ping'], ['sub', 'a', '', '1']]);
    expect(p.buffered).toBe(0);
  });

  it('stop while paused drops what was kept', () => {
    const { p, r } = make();
    r.hook = () => p.pause();
    p.parse(b('PING\r\nPING\r\nPING\r\n'));
    expect(p.buffered).toBe(12);
    p.stop();
    expect(p.buffered).toBe(0);
    p.resume();
    p.parse(b('PING\r\n'));
    expect(r.events).toEqual([['ping']]);
  });

  it('a handler that throws stops the parser and the exception propagates', () => {
    const { p, r } = make();
    r.hook = (ev) => {
      if (ev[0] === 'ping') throw new Error('handler bug');
    };
    expect(() => p.parse(b('+OK\r\nPING\r\nPONG\r\nPUB a 5\r\nab'))).toThrow('handler bug');
    expect(p.buffered).toBe(0);
    p.parse(b('PONG\r\n'));
    expect(r.events).toEqual([['ok'], ['ping']]);
  });

  it('after onError nothing more is reported and nothing is buffered', () => {
    const { p, r } = make();
    p.parse(b('PUB foo 2\r\nhix\r\nPING\r\n'));
    p.parse(b('PING\r\n'));
    expect(r.events).toEqual([ERR('unknown-op')]);
    expect(p.buffered).toBe(0);
  });
});
