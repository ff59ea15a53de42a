import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/core/message.js';
import { type MatchResult, SubjectIndex } from '../../src/core/sublist.js';
import type { Subscriber, Subscription } from '../../src/core/subscription.js';

function owner(cid: number): Subscriber {
  return { kind: 'client', cid, echo: true, deliver: (_sub: Subscription, _msg: Message) => {} };
}

const conn = owner(1);
let nextSid = 1;

function sub(subject: string, queue = '', who: Subscriber = conn): Subscription {
  return { subject, queue, sid: String(nextSid++), owner: who, msgs: 0, max: 0 };
}

function sids(list: readonly Subscription[]): string[] {
  return list.map((s) => s.sid).sort();
}

/** Queue groups as name -> sorted sids, to compare regardless of order. */
function groups(r: MatchResult): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const members of r.queues) {
    expect(members.length).toBeGreaterThan(0);
    const name = members[0]!.queue;
    expect(out[name], `group ${name} appears once`).toBeUndefined();
    for (const m of members) expect(m.queue).toBe(name);
    out[name] = sids(members);
  }
  return out;
}

/** The oracle: matching by the definition, with split(). */
function naiveMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  if (subject === '' || s.includes('')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== '*' && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}

describe('SubjectIndex matching', () => {
  // [subscription subjects, published subject, subscriptions (by index) that match]
  const table: [string[], string, number[]][] = [
    [['foo.*'], 'foo.bar', [0]],
    [['foo.*'], 'foo', []],
    [['foo.*'], 'foo.bar.baz', []],
    [['foo.>'], 'foo.bar', [0]],
    [['foo.>'], 'foo.bar.baz', [0]],
    [['foo.>'], 'foo', []],
    [['>'], 'foo', [0]],
    [['>'], 'a.b.c.d', [0]],
    [['*.*'], 'a.b', [0]],
    [['*.*'], 'a', []],
    [['*.*'], 'a.b.c', []],
    [['foo', 'foo.bar', 'foo.*', 'foo.>', '*.bar', '>', '*', 'bar.*'], 'foo.bar', [1, 2, 3, 4, 5]],
    [['foo', 'foo.bar', 'foo.*', 'foo.>', '*.bar', '>', '*', 'bar.*'], 'foo', [0, 5, 6]],
    [['a.*.c', 'a.b.*', '*.b.c', 'a.>', 'a.b.c.>'], 'a.b.c', [0, 1, 2, 3]],
    [['a.*.c', 'a.b.*', '*.b.c', 'a.>', 'a.b.c.>'], 'a.b.c.d', [3, 4]],
    // Checked against nats-server 2.9.10: a '*' or '>' token published (non-pedantic) is
    // matched by wildcards only, never by a literal token.
    [['foo.*'], 'foo.*', [0]],
    [['foo.bar'], 'foo.*', []],
    [['foo.>'], 'foo.*', [0]],
    [['foo.>', '>', 'foo.bar'], 'foo.>', [0, 1]],
    [['*'], '>', [0]],
    [['*'], '*', [0]],
    [['foo*', '*'], 'foo*', [0, 1]],
    [['fo>o'], 'fo>o', [0]],
    [['foo.>a', 'foo.*'], 'foo.>a', [0, 1]],
    // empty tokens match nothing, not even '>'
    [['>', 'foo.*.bar', 'foo.>'], 'foo..bar', []],
    [['>'], '.foo', []],
    [['>', 'foo.>', 'foo.*'], 'foo.', []],
    [['>'], '', []],
  ];

  for (const cacheSize of [1024, 0]) {
    it.each(table)(`cache ${cacheSize}: %j publish %j`, (subjects, published, expected) => {
      const idx = new SubjectIndex({ cacheSize });
      const subs = subjects.map((s) => sub(s));
      for (const s of subs) idx.insert(s);
      const want = sids(expected.map((i) => subs[i]!));
      // twice: the second answer may come from the cache
      for (let round = 0; round < 2; round++) {
        const r = idx.match(published);
        expect(sids(r.plain)).toEqual(want);
        expect(r.queues).toEqual([]);
        expect(idx.hasInterest(published)).toBe(want.length > 0);
      }
    });
  }
});

describe('queue groups', () => {
  it('groups by name across subjects, apart from plain subscriptions', () => {
    const idx = new SubjectIndex();
    const a = sub('q.*', 'grp');
    const b = sub('q.>', 'grp');
    const c = sub('q.x', 'grp');
    const d = sub('q.x', 'other');
    const e = sub('q.>', 'other', owner(2));
    const p = sub('q.x');
    const far = sub('r.x', 'grp');
    for (const s of [a, b, c, d, e, p, far]) idx.insert(s);

    const r = idx.match('q.x');
    expect(sids(r.plain)).toEqual([p.sid]);
    expect(r.queues.length).toBe(2);
    expect(groups(r)).toEqual({ grp: sids([a, b, c]), other: sids([d, e]) });

    const deep = idx.match('q.x.y');
    expect(deep.plain).toEqual([]);
    expect(groups(deep)).toEqual({ grp: [b.sid], other: [e.sid] });

    expect(groups(idx.match('r.x'))).toEqual({ grp: [far.sid] });
  });

  it('a group emptied by removal disappears from the result', () => {
    const idx = new SubjectIndex();
    const a = sub('q.*', 'g1');
    const b = sub('q.y', 'g2');
    idx.insert(a);
    idx.insert(b);
    expect(groups(idx.match('q.y'))).toEqual({ g1: [a.sid], g2: [b.sid] });
    expect(idx.remove(a)).toBe(true);
    expect(groups(idx.match('q.y'))).toEqual({ g2: [b.sid] });
    expect(idx.remove(b)).toBe(true);
    const r = idx.match('q.y');
    expect(r.queues.length).toBe(0);
    expect(r.plain.length).toBe(0);
    expect(idx.hasInterest('q.y')).toBe(false);
  });

  it('the same subject as a plain and as a queue subscription are kept apart', () => {
    const idx = new SubjectIndex();
    const p = sub('s');
    const q = sub('s', 'g');
    idx.insert(p);
    idx.insert(q);
    expect(idx.remove(sub('s', 'g'))).toBe(false); // equal fields, other object
    expect(idx.remove(p)).toBe(true);
    const r = idx.match('s');
    expect(r.plain).toEqual([]);
    expect(groups(r)).toEqual({ g: [q.sid] });
  });
});

describe('insert / remove bookkeeping', () => {
  it('counts, ignores duplicates and unknown removals, lists all()', () => {
    const idx = new SubjectIndex();
    const s1 = sub('a.b');
    const s2 = sub('a.*');
    const s3 = sub('a.>', 'q');
    idx.insert(s1);
    idx.insert(s2);
    idx.insert(s3);
    idx.insert(s1); // same object again: no second entry
    expect(idx.count).toBe(3);
    expect(sids([...idx.all()])).toEqual(sids([s1, s2, s3]));
    expect(idx.match('a.b').plain.length).toBe(2);

    expect(idx.remove(sub('a.b'))).toBe(false);
    expect(idx.remove(sub('never.seen'))).toBe(false);
    expect(idx.remove(s2)).toBe(true);
    expect(idx.remove(s2)).toBe(false);
    expect(idx.count).toBe(2);
    expect(sids([...idx.all()])).toEqual(sids([s1, s3]));
  });

  it('prunes emptied branches so interest is gone', () => {
    const idx = new SubjectIndex({ cacheSize: 0 });
    const deep = sub('a.b.c.d.e');
    const fwc = sub('a.b.>');
    idx.insert(deep);
    idx.insert(fwc);
    expect(idx.hasInterest('a.b.x')).toBe(true);
    idx.remove(fwc);
    expect(idx.hasInterest('a.b.x')).toBe(false);
    expect(idx.hasInterest('a.b.c.d.e')).toBe(true);
    expect(idx.hasInterest('a.b.c.d')).toBe(false); // inner node without subscriptions
    idx.remove(deep);
    expect(idx.hasInterest('a.b.c.d.e')).toBe(false);
    expect([...idx.all()]).toEqual([]);
    expect(idx.count).toBe(0);
  });

  it('removeBatch removes a closing connection\'s subscriptions and refreshes the cache', () => {
    const idx = new SubjectIndex();
    const other = owner(9);
    const mine = [sub('x.1'), sub('x.*'), sub('x.>', 'q'), sub('y')];
    const theirs = [sub('x.1', '', other), sub('x.>', 'q', other)];
    for (const s of [...mine, ...theirs]) idx.insert(s);
    expect(idx.match('x.1').plain.length).toBe(3);
    expect(idx.match('y').plain.length).toBe(1);
    idx.removeBatch(new Set(mine));
    expect(idx.count).toBe(2);
    const r = idx.match('x.1');
    expect(sids(r.plain)).toEqual([theirs[0]!.sid]);
    expect(groups(r)).toEqual({ q: [theirs[1]!.sid] });
    expect(idx.match('y')).toEqual({ plain: [], queues: [] });
    expect(idx.stats().numRemoves).toBe(4);
  });

  it('removeBatch with many wildcards against a full cache clears it', () => {
    const idx = new SubjectIndex({ cacheSize: 1024 });
    const wild: Subscription[] = [];
    for (let i = 0; i < 40; i++) wild.push(sub(`w.${i}.*`));
    for (const s of wild) idx.insert(s);
    const keep = sub('w.0.>');
    idx.insert(keep);
    for (let i = 0; i < 1000; i++) idx.match(`w.${i % 40}.${i}`);
    expect(idx.stats().numCache).toBe(1000);
    idx.removeBatch(wild);
    expect(idx.stats().numCache).toBe(0);
    expect(idx.count).toBe(1);
    expect(idx.match('w.0.5').plain).toEqual([keep]);
    expect(idx.match('w.1.5').plain).toEqual([]);
  });
});

describe('handed-out results', () => {
  it('are not changed by later removals, even mid-iteration', () => {
    const idx = new SubjectIndex();
    const subs = [sub('d.x'), sub('d.*'), sub('d.>'), sub('>')];
    const qa = sub('d.x', 'q');
    const qb = sub('d.*', 'q');
    for (const s of [...subs, qa, qb]) idx.insert(s);

    const r = idx.match('d.x');
    expect(idx.match('d.x')).toBe(r); // cached
    const plainBefore = [...r.plain];
    const groupBefore = [...r.queues[0]!];

    // A delivery that unsubscribes the next subscriber while the router walks the result.
    const visited: Subscription[] = [];
    for (let i = 0; i < r.plain.length; i++) {
      visited.push(r.plain[i]!);
      const next = r.plain[i + 1];
      if (next !== undefined) idx.remove(next);
      idx.remove(qa);
    }
    expect(visited).toEqual(plainBefore);
    expect(r.plain).toEqual(plainBefore);
    expect(r.queues[0]).toEqual(groupBefore);

    const after = idx.match('d.x');
    expect(after).not.toBe(r);
    expect(after.plain).toEqual([plainBefore[0]]);
    expect(groups(after)).toEqual({ q: [qb.sid] });
  });

  it('are not changed by later inserts', () => {
    const idx = new SubjectIndex();
    idx.insert(sub('e.x'));
    const r = idx.match('e.x');
    const snapshot = [...r.plain];
    idx.insert(sub('e.*'));
    idx.insert(sub('e.x', 'q'));
    expect(r.plain).toEqual(snapshot);
    expect(r.queues).toEqual([]);
    const after = idx.match('e.x');
    expect(after.plain.length).toBe(2);
    expect(after.queues.length).toBe(1);
  });
});

describe('stats', () => {
  it('counts inserts, removes, matches, cache hits and fanout', () => {
    const idx = new SubjectIndex();
    expect(idx.stats()).toEqual({
      numSubscriptions: 0,
      numCache: 0,
      numInserts: 0,
      numRemoves: 0,
      numMatches: 0,
      cacheHitRate: 0,
      maxFanout: 0,
      avgFanout: 0,
    });
    const a = sub('s.a');
    const b = sub('s.*');
    const c = sub('s.*', 'g1');
    const d = sub('s.>', 'g1');
    const e = sub('s.>', 'g2');
    for (const s of [a, b, c, d, e]) idx.insert(s);
    idx.match('s.a'); // miss: a, b, g1, g2 -> fanout 4
    idx.match('s.a'); // hit
    idx.match('s.b'); // miss: b, g1, g2 -> fanout 3
    idx.match('t'); // miss: fanout 0
    idx.match('s.a'); // hit
    idx.match('s..a'); // invalid: counted, not cached
    let st = idx.stats();
    expect(st).toEqual({
      numSubscriptions: 5,
      numCache: 3,
      numInserts: 5,
      numRemoves: 0,
      numMatches: 6,
      cacheHitRate: 2 / 6,
      maxFanout: 4,
      avgFanout: 7 / 3,
    });

    idx.remove(a); // drops the cached 's.a' only
    expect(idx.stats().numCache).toBe(2);
    idx.remove(b); // wildcard: drops 's.b' (and 's.a' is already gone)
    st = idx.stats();
    expect(st.numSubscriptions).toBe(3);
    expect(st.numRemoves).toBe(2);
    expect(st.numCache).toBe(1);
    expect(st.maxFanout).toBe(0);
  });

  it('hasInterest does not count as a match', () => {
    const idx = new SubjectIndex();
    idx.insert(sub('h'));
    expect(idx.hasInterest('h')).toBe(true);
    expect(idx.hasInterest('i')).toBe(false);
    expect(idx.stats().numMatches).toBe(0);
  });

  it('keeps the cache bounded', () => {
    const idx = new SubjectIndex({ cacheSize: 100 });
    idx.insert(sub('m.>'));
    for (let i = 0; i < 2000; i++) {
      expect(idx.match(`m.${i}`).plain.length).toBe(1);
      expect(idx.stats().numCache).toBeLessThanOrEqual(100);
    }
    expect(idx.stats().numCache).toBeGreaterThan(50);
  });

  it('cacheSize 0 disables the cache', () => {
    const idx = new SubjectIndex({ cacheSize: 0 });
    idx.insert(sub('z'));
    const r1 = idx.match('z');
    const r2 = idx.match('z');
    expect(r1).not.toBe(r2);
    expect(r2.plain.length).toBe(1);
    const st = idx.stats();
    expect(st.numCache).toBe(0);
    expect(st.cacheHitRate).toBe(0);
    expect(st.numMatches).toBe(2);
  });
});

/** mulberry32: small seeded PRNG, so a failure replays exactly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('random operations against a linear matcher', () => {
  const LITERALS = ['a', 'b', 'c', 'dd'];

  function randomFilter(r: () => number): string {
    const n = 1 + Math.floor(r() * 4);
    const tokens: string[] = [];
    for (let i = 0; i < n; i++) {
      const x = r();
      if (i === n - 1 && x < 0.15) tokens.push('>');
      else if (x < 0.35) tokens.push('*');
      else tokens.push(LITERALS[Math.floor(r() * LITERALS.length)]!);
    }
    return tokens.join('.');
  }

  function randomPublish(r: () => number): string {
    const n = 1 + Math.floor(r() * 5);
    const tokens: string[] = [];
    for (let i = 0; i < n; i++) {
      const x = r();
      if (x < 0.04) tokens.push('*'); // wildcards published literally
      else if (x < 0.07) tokens.push('>');
      else if (x < 0.09) tokens.push(''); // empty token
      else tokens.push(LITERALS[Math.floor(r() * LITERALS.length)]!);
    }
    return tokens.join('.');
  }

  const runs: [number, number][] = [
    [1, 1024],
    [2, 16],
    [3, 1],
    [4, 0],
    [5, 64],
  ];

  it.each(runs)('seed %d, cache %d', (seed, cacheSize) => {
    const r = rng(seed);
    const idx = new SubjectIndex({ cacheSize });
    const live: Subscription[] = [];
    const owners = [owner(1), owner(2), owner(3)];
    const handedOut: [MatchResult, string[], string[][]][] = [];
    let inserts = 0;
    let removes = 0;
    let matches = 0;

    for (let op = 0; op < 6000; op++) {
      const x = r();
      if (x < 0.3 || live.length === 0) {
        const q = r() < 0.3 ? (r() < 0.5 ? 'q1' : 'q2') : '';
        const s = sub(randomFilter(r), q, owners[Math.floor(r() * owners.length)]!);
        idx.insert(s);
        live.push(s);
        inserts++;
      } else if (x < 0.5) {
        const i = Math.floor(r() * live.length);
        const s = live[i]!;
        live.splice(i, 1);
        expect(idx.remove(s)).toBe(true);
        expect(idx.remove(s)).toBe(false);
        removes++;
      } else if (x < 0.52) {
        // A connection closes.
        const who = owners[Math.floor(r() * owners.length)]!;
        const gone = live.filter((s) => s.owner === who);
        idx.removeBatch(gone);
        for (const s of gone) live.splice(live.indexOf(s), 1);
        removes += gone.length;
      } else {
        const subject = randomPublish(r);
        const want = live.filter((s) => naiveMatches(s.subject, subject));
        const wantPlain = sids(want.filter((s) => s.queue === ''));
        const wantGroups: Record<string, string[]> = {};
        for (const s of want) if (s.queue !== '') (wantGroups[s.queue] ??= []).push(s.sid);
        for (const k of Object.keys(wantGroups)) wantGroups[k]!.sort();

        expect(idx.hasInterest(subject), `hasInterest ${subject} at op ${op}`).toBe(want.length > 0);
        const res = idx.match(subject);
        matches++;
        expect(sids(res.plain), `plain ${subject} at op ${op}`).toEqual(wantPlain);
        expect(groups(res), `queues ${subject} at op ${op}`).toEqual(wantGroups);
        if (op % 50 === 0) {
          handedOut.push([res, res.plain.map((s) => s.sid), res.queues.map((g) => g.map((s) => s.sid))]);
        }
      }
      expect(idx.count).toBe(live.length);
    }

    // Results handed out long ago still read exactly as they did then.
    expect(handedOut.length).toBeGreaterThan(20);
    for (const [res, plain, queues] of handedOut) {
      expect(res.plain.map((s) => s.sid)).toEqual(plain);
      expect(res.queues.map((g) => g.map((s) => s.sid))).toEqual(queues);
    }
    const st = idx.stats();
    expect(st.numInserts).toBe(inserts);
    expect(st.numRemoves).toBe(removes);
    expect(st.numMatches).toBe(matches);
    expect(st.numSubscriptions).toBe(live.length);
    expect(st.numCache).toBeLessThanOrEqual(cacheSize);
    expect(sids([...idx.all()])).toEqual(sids(live));

    // Draining everything leaves nothing behind.
    idx.removeBatch([...live]);
    expect(idx.count).toBe(0);
    expect([...idx.all()]).toEqual([]);
    expect(idx.hasInterest('a.b')).toBe(false);
  });
});
