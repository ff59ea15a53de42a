import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Permissions } from '../../src/config/options.js';
import {
  CompiledPermissions,
  DEFAULT_MAX_RESPONSE_GRANTS,
  goQuote,
  isReservedQueue,
  isReservedReply,
  permissionViolationPublish,
  permissionViolationReply,
  permissionViolationSubscribe,
} from '../../src/nats/permissions.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer, stopAllServers, type RunningServer } from '../helpers/servers.js';

function perms(p: {
  pub?: [allow: string[], deny: string[]];
  sub?: [allow: string[], deny: string[]];
  resp?: [max: number, expiresMs: number];
}): Permissions {
  const out: Permissions = {};
  if (p.pub) out.publish = { allow: p.pub[0], deny: p.pub[1] };
  if (p.sub) out.subscribe = { allow: p.sub[0], deny: p.sub[1] };
  if (p.resp) out.allowResponses = { max: p.resp[0], expiresMs: p.resp[1] };
  return out;
}

/** The same permissions as a nats-server config map (its parser takes JSON). */
function toConf(p: Permissions): string {
  const o: Record<string, unknown> = {};
  if (p.publish) o['publish'] = p.publish;
  if (p.subscribe) o['subscribe'] = p.subscribe;
  if (p.allowResponses) o['allow_responses'] = { max: p.allowResponses.max, expires: `${p.allowResponses.expiresMs}ms` };
  return JSON.stringify(o);
}

function cacheSize(p: CompiledPermissions, field: 'pubCache' | 'deliverCache'): number {
  return (p as unknown as Record<typeof field, Map<string, boolean>>)[field].size;
}

// ---- publish -----------------------------------------------------------------------------------

describe('canPublish', () => {
  const table: [string, Permissions, [string, boolean][]][] = [
    ['no publish rules', perms({}), [['anything', true], ['foo.bar', true], ['$SYS.x', true]]],
    [
      'allow + deny (deny wins)',
      perms({ pub: [['foo.*', 'x.>'], ['foo.bar']] }),
      [
        ['foo.baz', true],
        ['foo.bar', false],
        ['foo', false],
        ['foo.a.b', false],
        ['x.a', true],
        ['x.a.b.c', true],
        ['x', false],
        // a literal '*' token is matched by the '*' of an allow entry, as in nats-server
        ['foo.*', true],
        ['other', false],
      ],
    ],
    [
      'deny only',
      perms({ pub: [[], ['a.*', 'secret']] }),
      [
        ['a.b', false],
        ['a', true],
        ['a.b.c', true],
        ['secret', false],
        ['secret.x', true],
      ],
    ],
    ['deny everything', perms({ pub: [[], ['>']] }), [['a', false], ['a.b', false]]],
    ['allow everything', perms({ pub: [['>'], []] }), [['a', true], ['a.b', true]]],
    // nats-server: allow_responses without an allow list turns the blanket allow off
    ['allow_responses alone', perms({ resp: [1, 120_000] }), [['foo', false], ['_INBOX.x', false]]],
    ['allow_responses + deny', perms({ pub: [[], ['nope']], resp: [1, 120_000] }), [['other', false], ['nope', false]]],
    ['allow_responses + allow', perms({ pub: [['ok'], []], resp: [1, 120_000] }), [['ok', true], ['other', false]]],
  ];
  for (const [name, p, cases] of table) {
    it(name, () => {
      const cp = new CompiledPermissions(p);
      for (const [subject, want] of cases) {
        expect([subject, cp.canPublish(subject)]).toEqual([subject, want]);
        // cached answer is the same
        expect([subject, cp.canPublish(subject)]).toEqual([subject, want]);
      }
    });
  }

  it('flags say when no check is needed', () => {
    expect(new CompiledPermissions(perms({})).restrictsPublish).toBe(false);
    expect(new CompiledPermissions(perms({ sub: [['a'], []] })).restrictsPublish).toBe(false);
    expect(new CompiledPermissions(perms({ pub: [[], ['a']] })).restrictsPublish).toBe(true);
    expect(new CompiledPermissions(perms({ resp: [1, 0] })).restrictsPublish).toBe(true);
  });

  it('the result cache stays bounded and correct past its size', () => {
    const cp = new CompiledPermissions(perms({ pub: [['ok.*'], ['ok.bad']] }));
    for (let i = 0; i < 5000; i++) {
      expect(cp.canPublish(`ok.${i}`)).toBe(true);
      expect(cp.canPublish(`no.${i}`)).toBe(false);
    }
    expect(cp.canPublish('ok.bad')).toBe(false);
    expect(cacheSize(cp, 'pubCache')).toBeLessThanOrEqual(256);
  });
});

// ---- subscribe ---------------------------------------------------------------------------------

/** Shared with the live check below: every `false` here is proven against nats-server. */
const SUB_PERMS = perms({
  sub: [
    ['foo.*', 'grp.x q1', 'both', 'both q1', 'wq q.*', 'dq', 'bar.>', 'star.*'],
    ['foo.bar', 'dq q9', 'bar.secret.*'],
  ],
});
const SUB_CASES: [subject: string, queue: string, allowed: boolean][] = [
  ['foo.baz', '', true],
  ['foo.*', '', true],
  ['foo.bar', '', false], // denied literally
  ['foo', '', false],
  ['foo.a.b', '', false],
  ['foo.baz', 'anyq', true], // plain allow entry, no queue entry for the subject: any queue
  ['grp.x', '', false], // only queue entries: no plain sub
  ['grp.x', 'q1', true],
  ['grp.x', 'q2', false],
  ['both', '', true],
  ['both', 'q1', true],
  ['both', 'q2', false], // queue entries for the subject restrict queues even with a plain entry
  ['wq', 'q.1', true], // wildcard queue pattern
  ['wq', 'q.*', true],
  ['wq', 'q', false],
  ['wq', '', false],
  ['dq', '', true],
  ['dq', 'q8', true],
  ['dq', 'q9', false], // queue deny
  ['bar.>', '', true],
  ['bar.x.y', '', true],
  ['bar.secret.x', '', false], // deny matches
  ['bar.secret.*', '', false], // deny '*' matches a literal '*' token
  ['bar.secret.>', '', false], // deny '*' matches the '>' token too (nats-server: same)
  ['bar.secret', '', true],
  ['bar.*', '', true], // allowed; bar.secret.* does not concern bar.* (2 tokens)
  ['bar.*.*', '', true], // deny entry narrower than the sub: allowed, filtered at delivery
  ['>', '', false],
  ['*', '', false],
];

describe('canSubscribe', () => {
  it('table', () => {
    const cp = new CompiledPermissions(SUB_PERMS);
    for (const [subject, queue, want] of SUB_CASES) {
      expect([subject, queue, cp.canSubscribe(subject, queue)]).toEqual([subject, queue, want]);
    }
  });

  it('a wildcard SUB needs an allow entry that covers it (stricter than nats-server for "*" vs ">")', () => {
    const cp = new CompiledPermissions(SUB_PERMS);
    // nats-server 2.9.10 admits `SUB star.>` under allow `star.*` (see the live test); we do not.
    expect(cp.canSubscribe('star.>', '')).toBe(false);
    expect(cp.canSubscribe('star.x', '')).toBe(true);
    expect(new CompiledPermissions(perms({ sub: [['*.*'], []] })).canSubscribe('a.>', '')).toBe(false);
  });

  it('deny wins over queue entries (stricter than nats-server)', () => {
    // nats-server 2.9.10 admits `SUB foo q2` with deny ["foo", "foo q1"] (see the live test).
    const cp = new CompiledPermissions(perms({ sub: [[], ['foo', 'foo q1']] }));
    expect(cp.canSubscribe('foo', 'q2')).toBe(false);
    expect(cp.canSubscribe('foo', 'q1')).toBe(false);
    expect(cp.canSubscribe('foo', '')).toBe(false);
    expect(cp.canSubscribe('foo.x', 'q1')).toBe(true);
  });

  it('deny with a wildcard refuses a broader wildcard SUB it matches', () => {
    const cp = new CompiledPermissions(perms({ sub: [[], ['foo.*']] }));
    expect(cp.canSubscribe('foo.>', '')).toBe(false); // as nats-server: '*' matches the '>' token
    expect(cp.canSubscribe('>', '')).toBe(true);
    expect(cp.canDeliver('foo.x')).toBe(false);
    expect(cp.canDeliver('foo.x.y')).toBe(true);
  });

  it('no rules: everything, queue defaults to plain', () => {
    const cp = new CompiledPermissions(perms({ pub: [['x'], []] }));
    expect(cp.canSubscribe('>')).toBe(true);
    expect(cp.canSubscribe('a.b', 'q')).toBe(true);
    expect(cp.filtersDelivery).toBe(false);
  });

  it('malformed entries (more than subject and queue) are ignored', () => {
    const cp = new CompiledPermissions(perms({ sub: [['a b c', 'ok'], []] }));
    expect(cp.canSubscribe('a', 'b')).toBe(false);
    expect(cp.canSubscribe('ok')).toBe(true);
  });
});

describe('canDeliver', () => {
  it('applies plain subscribe deny entries to every delivered subject', () => {
    const cp = new CompiledPermissions(perms({ sub: [[], ['foo.bar', 'x.*.baz', 'dq q9']] }));
    expect(cp.filtersDelivery).toBe(true);
    const cases: [string, boolean][] = [
      ['foo.bar', false],
      ['foo.baz', true],
      ['x.bar.baz', false], // nats-server lets this through to `*.bar.*` (see live test); we do not
      ['x.bar.bar', true],
      ['dq', true], // queue deny entries never filter delivery
    ];
    for (const [s, want] of cases) {
      expect([s, cp.canDeliver(s)]).toEqual([s, want]);
      expect([s, cp.canDeliver(s)]).toEqual([s, want]);
    }
  });

  it('only queue deny entries: no delivery filter', () => {
    const cp = new CompiledPermissions(perms({ sub: [[], ['dq q9']] }));
    expect(cp.filtersDelivery).toBe(false);
    expect(cp.canDeliver('dq')).toBe(true);
  });

  it('cache is bounded', () => {
    const cp = new CompiledPermissions(perms({ sub: [[], ['no.*']] }));
    for (let i = 0; i < 3000; i++) expect(cp.canDeliver(`s.${i}`)).toBe(true);
    expect(cp.canDeliver('no.1')).toBe(false);
    expect(cacheSize(cp, 'deliverCache')).toBeLessThanOrEqual(256);
  });
});

// ---- allow_responses ---------------------------------------------------------------------------

describe('allow_responses', () => {
  it('max 1: one response per request received', () => {
    const cp = new CompiledPermissions(perms({ pub: [[], ['>']], resp: [1, 120_000] }));
    expect(cp.tracksResponses).toBe(true);
    expect(cp.canPublish('_INBOX.a', 0)).toBe(false); // no request seen
    cp.noteRequest('_INBOX.a', 0);
    expect(cp.pendingResponses).toBe(1);
    expect(cp.canPublish('_INBOX.a')).toBe(false); // without `now`: rules only, nothing consumed
    expect(cp.canPublish('_INBOX.a', 10)).toBe(true);
    expect(cp.canPublish('_INBOX.a', 11)).toBe(false);
    expect(cp.pendingResponses).toBe(0);
    expect(cp.canPublish('_INBOX.b', 12)).toBe(false);
  });

  it('max 3 and renewal by a new request on the same reply', () => {
    const cp = new CompiledPermissions(perms({ resp: [3, 120_000] }));
    cp.noteRequest('r', 0);
    expect([1, 2, 3, 4].map((t) => cp.canPublish('r', t))).toEqual([true, true, true, false]);
    cp.noteRequest('r', 5);
    cp.noteRequest('r', 6); // renewed: count starts again
    expect([7, 8, 9, 10].map((t) => cp.canPublish('r', t))).toEqual([true, true, true, false]);
  });

  it('max <= 0 is unlimited; expiry is exclusive of the limit', () => {
    const cp = new CompiledPermissions(perms({ resp: [-1, 1000] }));
    cp.noteRequest('r', 0);
    for (let i = 0; i < 100; i++) expect(cp.canPublish('r', i)).toBe(true);
    expect(cp.canPublish('r', 1000)).toBe(true);
    expect(cp.canPublish('r', 1001)).toBe(false);
    expect(cp.pendingResponses).toBe(0);
  });

  it('expires 0 = no time limit', () => {
    const cp = new CompiledPermissions(perms({ resp: [1, 0] }));
    cp.noteRequest('r', 0);
    expect(cp.canPublish('r', 1e12)).toBe(true);
    expect(cp.canPublish('r', 1e12)).toBe(false);
  });

  it('publishing an allowed subject does not use a grant', () => {
    const cp = new CompiledPermissions(perms({ pub: [['ok.>'], []], resp: [1, 120_000] }));
    cp.noteRequest('ok.reply', 0);
    expect(cp.canPublish('ok.reply', 1)).toBe(true);
    expect(cp.pendingResponses).toBe(1);
  });

  it('without allow_responses, noteRequest keeps nothing', () => {
    const cp = new CompiledPermissions(perms({ pub: [[], ['>']] }));
    expect(cp.tracksResponses).toBe(false);
    for (let i = 0; i < 100; i++) cp.noteRequest(`r.${i}`, i);
    expect(cp.pendingResponses).toBe(0);
    expect(cp.canPublish('r.1', 200)).toBe(false);
  });

  it('expired grants are pruned as new requests arrive', () => {
    const cp = new CompiledPermissions(perms({ resp: [1, 1000] }));
    for (let i = 0; i < 1000; i++) cp.noteRequest(`r.${i}`, i);
    expect(cp.pendingResponses).toBe(1000);
    cp.noteRequest('late', 1500); // r.0 .. r.499 expired (age > 1000)
    expect(cp.pendingResponses).toBe(501);
    cp.noteRequest('later', 5000);
    expect(cp.pendingResponses).toBe(1);
    expect(cp.canPublish('r.999', 5000)).toBe(false);
    expect(cp.canPublish('later', 5000)).toBe(true);
  });

  it('a responder that never answers cannot grow the grants past the cap', () => {
    const cp = new CompiledPermissions(perms({ resp: [1, 0] }), { maxResponseGrants: 100 });
    for (let i = 0; i < 1000; i++) cp.noteRequest(`r.${i}`, i);
    expect(cp.pendingResponses).toBe(100);
    expect(cp.canPublish('r.899', 2000)).toBe(false); // evicted
    expect(cp.canPublish('r.900', 2000)).toBe(true);
    expect(cp.canPublish('r.999', 2000)).toBe(true);
  });

  it('a million unanswered requests with the default cap', () => {
    const cp = new CompiledPermissions(perms({ resp: [1, 0] }));
    for (let i = 0; i < 1_000_000; i++) cp.noteRequest(`r.${i}`, i);
    expect(cp.pendingResponses).toBe(DEFAULT_MAX_RESPONSE_GRANTS);
  });
});

// ---- reserved ----------------------------------------------------------------------------------

describe('isReservedReply / isReservedQueue', () => {
  // Every row checked against nats-server 2.9.10 in the live test below.
  const table: [string, boolean][] = [
    ['_R_.', true],
    ['_R_.x', true],
    ['_R_', false],
    ['$JS.ACK.', false],
    ['$JS.ACK.x', true],
    ['_GR_.', false],
    ['_GR_.x', true],
    ['_r_.x', false],
    ['_INBOX.x', false],
    ['$JS.API.x', false],
  ];
  it('reply prefixes', () => {
    for (const [reply, want] of table) expect([reply, isReservedReply(reply)]).toEqual([reply, want]);
  });
  it('_sys_ queue', () => {
    expect(isReservedQueue('_sys_')).toBe(true);
    expect(isReservedQueue('_SYS_')).toBe(false);
    expect(isReservedQueue('q')).toBe(false);
  });
});

// ---- texts -------------------------------------------------------------------------------------

describe('goQuote', () => {
  const strings: [string, string][] = [
    ['foo.bar', '"foo.bar"'],
    ['', '""'],
    ['a"b', '"a\\"b"'],
    ['a\\b', '"a\\\\b"'],
    ['\x07\x08\x0c\n\r\t\x0b', '"\\a\\b\\f\\n\\r\\t\\v"'],
    ['\x00\x01\x1b\x7f', '"\\x00\\x01\\x1b\\x7f"'],
    ['\u0080', '"\\u0080"'],
    ['é', '"é"'],
    ['\u00a0x', '"\\u00a0x"'],
    ['\u00ad', '"\\u00ad"'],
    ['\u200b', '"\\u200b"'],
    ['\u0345', '"\u0345"'],
    ['日本', '"日本"'],
    ['\u{1F600}', '"\u{1F600}"'],
    ['\ue000', '"\\ue000"'],
    ['\u{10FFFF}', '"\\U0010ffff"'],
    ['\ufffd', '"\ufffd"'],
    ['a\ud800b', '"a\\ufffdb"'],
  ];
  it('strings', () => {
    for (const [s, want] of strings) expect([s, goQuote(s)]).toEqual([s, want]);
  });
  const bytes: [number[], string][] = [
    [[0x61, 0xff, 0x62], '"a\\xffb"'],
    [[0xc0, 0xaf], '"\\xc0\\xaf"'], // overlong
    [[0xed, 0xa0, 0x80], '"\\xed\\xa0\\x80"'], // surrogate
    [[0xe2, 0x82], '"\\xe2\\x82"'], // truncated
    [[0xe2, 0x41], '"\\xe2A"'],
    [[0xf4, 0x90, 0x80, 0x80], '"\\xf4\\x90\\x80\\x80"'], // beyond U+10FFFF
    [[0xc3, 0xa9], '"é"'],
    [[0xef, 0xbf, 0xbd], '"\ufffd"'],
    [[0xf0, 0x9f, 0x98, 0x80], '"\u{1F600}"'],
    [[0x22, 0x5c, 0x0a], '"\\"\\\\\\n"'],
  ];
  it('bytes, with invalid UTF-8 as Go prints it', () => {
    for (const [b, want] of bytes) expect([b, goQuote(Uint8Array.from(b))]).toEqual([b, want]);
  });
});

describe('violation texts', () => {
  it('formats', () => {
    expect(permissionViolationPublish('foo.bar')).toBe('Permissions Violation for Publish to "foo.bar"');
    expect(permissionViolationSubscribe('foo.>', '')).toBe('Permissions Violation for Subscription to "foo.>"');
    expect(permissionViolationSubscribe('foo', 'q1')).toBe(
      'Permissions Violation for Subscription to "foo" using queue "q1"',
    );
    expect(permissionViolationReply('_R_.x')).toBe('Permissions Violation for Publish with Reply of "_R_.x"');
    expect(permissionViolationPublish('a"b')).toBe('Permissions Violation for Publish to "a\\"b"');
  });
});

// ---- against the real nats-server ---------------------------------------------------------------

/** The -ERR lines of a text, in order. */
function errLines(text: string): string[] {
  return text.split('\r\n').filter((l) => l.startsWith('-ERR '));
}

function err(text: string): string {
  return `-ERR '${text}'`;
}

const RESPONDER = perms({ pub: [[], ['>']], resp: [1, 120_000] });
const RESPONDER2 = perms({ pub: [['ok'], []], resp: [2, 120_000] });
const PUBLISHER = perms({ pub: [['foo.*', 'x.>', 'other'], ['foo.bar']] });
const DENY_ONLY = perms({ sub: [[], ['foo.bar', 'x.*.baz', 'foo q1', 'foo']] });
const QUOTING = perms({ sub: [['ok'], []] });

describe('live: nats-server 2.9.10 gives the same answers', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    const users: [string, Permissions | undefined][] = [
      ['sub', SUB_PERMS],
      ['resp', RESPONDER],
      ['resp2', RESPONDER2],
      ['pub', PUBLISHER],
      ['deny', DENY_ONLY],
      ['quote', QUOTING],
      ['plain', undefined],
    ];
    const list = users
      .map(([u, p]) => `{ user: ${u}, password: pw${p ? `, permissions: ${toConf(p)}` : ''} }`)
      .join('\n');
    srv = await startServer('nats-server', { config: `authorization { users: [\n${list}\n] }\n` });
  });
  afterAll(async () => {
    await stopAllServers();
  });

  async function login(user: string): Promise<RawClient> {
    const c = await RawClient.connect(srv.port);
    c.send(`CONNECT {"verbose":false,"pedantic":false,"user":"${user}","pass":"pw"}\r\n`);
    await c.ping();
    c.clear();
    return c;
  }

  it('SUB: same refusals, same texts', async () => {
    const c = await login('sub');
    SUB_CASES.forEach(([subject, queue], i) => c.send(`SUB ${subject} ${queue ? queue + ' ' : ''}${i + 1}\r\n`));
    const text = await c.ping();
    const cp = new CompiledPermissions(SUB_PERMS);
    const want = SUB_CASES.filter(([s, q]) => !cp.canSubscribe(s, q)).map(([s, q]) => err(permissionViolationSubscribe(s, q)));
    expect(errLines(text)).toEqual(want);
    c.close();
  });

  it('documented deviations are real nats-server behaviour', async () => {
    const c = await login('sub');
    c.send('SUB star.> 1\r\n'); // nats-server admits it under allow star.*, we refuse
    expect(errLines(await c.ping())).toEqual([]);
    c.close();
    const d = await login('deny');
    d.send('SUB foo q2 1\r\n'); // nats-server admits it despite deny "foo", we refuse
    d.send('SUB *.bar.* 2\r\n');
    expect(errLines(await d.ping())).toEqual([]);
    d.clear();
    const p = await login('plain');
    p.send('PUB x.bar.baz 0\r\n\r\nPUB foo 0\r\n\r\n');
    await p.ping();
    // nats-server delivers both (x.*.baz is not inside *.bar.*; foo to the queue sub); we deliver neither
    const got = await d.waitFor((t) => t.includes('MSG foo 1'));
    expect(got).toContain('MSG x.bar.baz 2 0');
    const cp = new CompiledPermissions(DENY_ONLY);
    expect(cp.canSubscribe('foo', 'q2')).toBe(false);
    expect(cp.canDeliver('x.bar.baz')).toBe(false);
    d.close();
    p.close();
  });

  it('subscribe deny is applied at delivery to a wider wildcard subscription', async () => {
    const d = await login('deny');
    d.send('SUB foo.* 1\r\nSUB > 2\r\n');
    expect(errLines(await d.ping())).toEqual([]);
    d.clear();
    const p = await login('plain');
    const subjects = ['foo.bar', 'foo.baz', 'x.bar.baz', 'x.bar.bar', 'foo'];
    for (const s of subjects) p.send(`PUB ${s} 0\r\n\r\n`);
    p.send('PUB done 0\r\n\r\n');
    await p.ping();
    const text = await d.waitFor('MSG done 2 0\r\n');
    const delivered = [...new Set([...text.matchAll(/MSG (\S+) /g)].map((m) => m[1]))].filter((s) => s !== 'done');
    const cp = new CompiledPermissions(DENY_ONLY);
    expect(delivered).toEqual(subjects.filter((s) => cp.canDeliver(s)));
    expect(delivered).toEqual(['foo.baz', 'x.bar.bar']);
    d.close();
    p.close();
  });

  it('PUB: publish permission first, then reserved replies; same texts', async () => {
    const c = await login('pub');
    const pubs: [string, string][] = [
      ['foo.baz', ''],
      ['foo.bar', ''],
      ['foo', ''],
      ['foo.*', ''],
      ['x.a.b', ''],
      ['nope', '_R_.x'], // both wrong: the publish violation is reported
      ...[
        '_R_.',
        '_R_.x',
        '_R_',
        '$JS.ACK.',
        '$JS.ACK.x',
        '_GR_.',
        '_GR_.x',
        '_r_.x',
        '_INBOX.x',
        '$JS.API.x',
      ].map((r): [string, string] => ['other', r]),
    ];
    for (const [s, r] of pubs) c.send(`PUB ${s} ${r ? r + ' ' : ''}0\r\n\r\n`);
    const text = await c.ping();
    const cp = new CompiledPermissions(PUBLISHER);
    const want: string[] = [];
    for (const [s, r] of pubs) {
      if (!cp.canPublish(s, 0)) want.push(err(permissionViolationPublish(s)));
      else if (r !== '' && isReservedReply(r)) want.push(err(permissionViolationReply(r)));
    }
    expect(errLines(text)).toEqual(want);
    c.close();
  });

  it('_sys_ queue is refused for a user without permissions', async () => {
    const c = await login('plain');
    c.send('SUB foo _sys_ 1\r\n');
    expect(errLines(await c.ping())).toEqual([err(permissionViolationSubscribe('foo', '_sys_'))]);
    expect(isReservedQueue('_sys_')).toBe(true);
    c.close();
  });

  it('quoting of odd bytes is byte-identical to Go %q', async () => {
    const c = await login('quote');
    const subjects: number[][] = [
      [0x61, 0x22, 0x62, 0x5c, 0x63],
      [0x61, 0xff, 0x62],
      [0xc2, 0xa0, 0x78],
      [0xe2, 0x80, 0x8b],
      [0xf0, 0x9f, 0x98, 0x80],
      [0xee, 0x80, 0x80],
      [0xf4, 0x8f, 0xbf, 0xbf],
      [0xef, 0xbf, 0xbd],
      [0xed, 0xa0, 0x80],
      [0xc0, 0xaf],
      [0x61, 0x07, 0x08, 0x1b, 0x7f],
      [0xc3, 0xa9],
      [0xcd, 0x85],
      [0xc2, 0x80],
    ];
    for (const s of subjects) c.send(Buffer.concat([Buffer.from('SUB '), Buffer.from(s), Buffer.from(' 1\r\n')]));
    const text = await c.ping();
    const want = subjects.map((s) => Buffer.from(err(permissionViolationSubscribe(Uint8Array.from(s))), 'utf8').toString('latin1'));
    expect(errLines(text)).toEqual(want);
    c.close();
  });

  it('allow_responses: the responder may answer each request max times', async () => {
    for (const [user, p] of [
      ['resp', RESPONDER],
      ['resp2', RESPONDER2],
    ] as const) {
      const svc = await login(user);
      const cli = await login('plain');
      svc.send('SUB svc 1\r\n');
      cli.send('SUB _INBOX.> 1\r\n');
      await svc.ping();
      await cli.ping();
      cli.send('PUB svc _INBOX.r1 0\r\n\r\nPUB svc _INBOX.r2 0\r\n\r\n');
      await cli.ping();
      await svc.waitFor('MSG svc 1 _INBOX.r2 0\r\n');
      // Our model of the same sequence.
      const cp = new CompiledPermissions(p);
      cp.noteRequest('_INBOX.r1', 0);
      cp.noteRequest('_INBOX.r2', 0);
      const replies = ['_INBOX.r1', '_INBOX.r1', '_INBOX.r1', 'other', '_INBOX.r2', '_INBOX.nope'];
      svc.clear();
      replies.forEach((r, i) => svc.send(`PUB ${r} 1\r\n${i}\r\n`));
      const text = await svc.ping();
      const want = replies.filter((r) => !cp.canPublish(r, 1)).map((r) => err(permissionViolationPublish(r)));
      expect(errLines(text)).toEqual(want);
      expect(want.length).toBe(user === 'resp' ? 4 : 3);
      svc.close();
      cli.close();
    }
  });
});
