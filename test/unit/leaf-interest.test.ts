import { describe, expect, it } from 'vitest';
import { Router } from '../../src/core/router.js';
import type { Subscriber, SubscriberKind, Subscription } from '../../src/core/subscription.js';
import { LocalInterest } from '../../src/leaf/interest.js';

type Change = [subject: string, queue: string, weight: number];

let nextCid = 1;

function owner(kind: SubscriberKind): Subscriber {
  return { kind, cid: nextCid++, echo: true, deliver: () => {} };
}

let nextSid = 1;

function sub(o: Subscriber, subject: string, queue = ''): Subscription {
  return { subject, queue, sid: String(nextSid++), owner: o, msgs: 0, max: 0 };
}

function setup(router = new Router()): { router: Router; interest: LocalInterest; changes: Change[] } {
  const interest = new LocalInterest(router);
  const changes: Change[] = [];
  interest.listen((subject, queue, weight) => changes.push([subject, queue, weight]));
  return { router, interest, changes };
}

/** entries() in a stable order for comparison. */
function entries(interest: LocalInterest): Change[] {
  return [...interest.entries()].sort((a, b) => (a[0] + ' ' + a[1] < b[0] + ' ' + b[1] ? -1 : 1));
}

describe('LocalInterest: plain interest', () => {
  it('LS+ once for the first subscription on a subject, LS- when the last one goes', () => {
    const { router, interest, changes } = setup();
    const a = owner('client');
    const b = owner('client');
    const s1 = sub(a, 'foo.bar');
    const s2 = sub(a, 'foo.bar');
    const s3 = sub(b, 'foo.bar');
    router.subscribe(s1);
    expect(changes).toEqual([['foo.bar', '', 1]]);
    router.subscribe(s2);
    router.subscribe(s3);
    expect(changes).toEqual([['foo.bar', '', 1]]);
    expect(entries(interest)).toEqual([['foo.bar', '', 1]]);
    router.unsubscribe(s1);
    router.unsubscribe(s3);
    expect(changes).toEqual([['foo.bar', '', 1]]);
    router.unsubscribe(s2);
    expect(changes).toEqual([
      ['foo.bar', '', 1],
      ['foo.bar', '', 0],
    ]);
    expect(entries(interest)).toEqual([]);
    // and it starts over
    router.subscribe(s1);
    expect(changes.at(-1)).toEqual(['foo.bar', '', 1]);
  });

  it('subjects are counted separately, wildcards as their own subjects', () => {
    const { router, interest, changes } = setup();
    const c = owner('client');
    const subs = ['a', 'a.b', 'a.*', 'a.>', '>'].map((s) => sub(c, s));
    for (const s of subs) router.subscribe(s);
    expect(changes).toEqual([
      ['a', '', 1],
      ['a.b', '', 1],
      ['a.*', '', 1],
      ['a.>', '', 1],
      ['>', '', 1],
    ]);
    router.unsubscribe(subs[2]!);
    expect(changes.at(-1)).toEqual(['a.*', '', 0]);
    expect(entries(interest).map((e) => e[0])).toEqual(['>', 'a', 'a.>', 'a.b']);
  });

  it('UTF-8 subjects pass through unchanged', () => {
    const { router, changes } = setup();
    const s = sub(owner('client'), 'ü.日本');
    router.subscribe(s);
    router.unsubscribe(s);
    expect(changes).toEqual([
      ['ü.日本', '', 1],
      ['ü.日本', '', 0],
    ]);
  });

  it('removing a subscription the router never had changes nothing', () => {
    const { router, changes } = setup();
    const c = owner('client');
    router.subscribe(sub(c, 'x'));
    router.unsubscribe(sub(c, 'x')); // a different object on the same subject
    router.unsubscribe(sub(c, 'y'));
    expect(changes).toEqual([['x', '', 1]]);
  });
});

describe('LocalInterest: queue weights', () => {
  it('weights are absolute and re-sent at every change, 0 when the group is gone', () => {
    const { router, interest, changes } = setup();
    const members = [owner('client'), owner('client'), owner('client')].map((o) => sub(o, 'work', 'grp'));
    for (const m of members) router.subscribe(m);
    expect(changes).toEqual([
      ['work', 'grp', 1],
      ['work', 'grp', 2],
      ['work', 'grp', 3],
    ]);
    expect(interest.queueWeight('work', 'grp')).toBe(3);
    router.unsubscribe(members[0]!);
    router.unsubscribe(members[1]!);
    expect(interest.queueWeight('work', 'grp')).toBe(1);
    router.unsubscribe(members[2]!);
    expect(changes.slice(3)).toEqual([
      ['work', 'grp', 2],
      ['work', 'grp', 1],
      ['work', 'grp', 0],
    ]);
    expect(interest.queueWeight('work', 'grp')).toBe(0);
    expect(entries(interest)).toEqual([]);
  });

  it('groups are per (subject, queue); plain and queue interest on one subject are independent', () => {
    const { router, interest, changes } = setup();
    const c = owner('client');
    const p = sub(c, 'work');
    const g1 = sub(c, 'work', 'g1');
    const g2 = sub(c, 'work', 'g2');
    const g1b = sub(c, 'work', 'g1');
    const other = sub(c, 'other', 'g1');
    for (const s of [p, g1, g2, g1b, other]) router.subscribe(s);
    expect(changes).toEqual([
      ['work', '', 1],
      ['work', 'g1', 1],
      ['work', 'g2', 1],
      ['work', 'g1', 2],
      ['other', 'g1', 1],
    ]);
    expect(entries(interest)).toEqual([
      ['other', 'g1', 1],
      ['work', '', 1],
      ['work', 'g1', 2],
      ['work', 'g2', 1],
    ]);
    changes.length = 0;
    router.unsubscribe(p);
    expect(changes).toEqual([['work', '', 0]]);
    expect(interest.queueWeight('work', 'g1')).toBe(2);
    router.unsubscribe(g2);
    expect(changes).toEqual([
      ['work', '', 0],
      ['work', 'g2', 0],
    ]);
    expect(interest.queueWeight('work', 'g1')).toBe(2);
    expect(interest.queueWeight('other', 'g1')).toBe(1);
  });

  it('a group name with the same text as a subject token does not collide', () => {
    const { router, interest } = setup();
    const c = owner('client');
    router.subscribe(sub(c, 'a', 'b'));
    router.subscribe(sub(c, 'a.b', 'c'));
    expect(interest.queueWeight('a', 'b')).toBe(1);
    expect(interest.queueWeight('a.b', 'c')).toBe(1);
    expect(interest.queueWeight('a', 'b.c')).toBe(0);
  });
});

describe('LocalInterest: whose interest counts', () => {
  it('subscriptions owned by leaf links are never counted or advertised', () => {
    const { router, interest, changes } = setup();
    const leaf = owner('leaf');
    const l1 = sub(leaf, 'hub.x');
    const l2 = sub(leaf, 'hub.x', 'q');
    router.subscribe(l1);
    router.subscribe(l2);
    expect(changes).toEqual([]);
    expect(entries(interest)).toEqual([]);
    expect(interest.queueWeight('hub.x', 'q')).toBe(0);
    // a local client on the same subject is counted on its own
    const c = sub(owner('client'), 'hub.x');
    const cq = sub(owner('client'), 'hub.x', 'q');
    router.subscribe(c);
    router.subscribe(cq);
    expect(changes).toEqual([
      ['hub.x', '', 1],
      ['hub.x', 'q', 1],
    ]);
    // the leaf's subscriptions going away does not take the local interest with them
    router.unsubscribe(l1);
    router.unsubscribeAll([l2]);
    expect(changes.length).toBe(2);
    expect(entries(interest)).toEqual([
      ['hub.x', '', 1],
      ['hub.x', 'q', 1],
    ]);
    router.unsubscribe(c);
    router.unsubscribe(cq);
    expect(changes.slice(2)).toEqual([
      ['hub.x', '', 0],
      ['hub.x', 'q', 0],
    ]);
  });

  it('client, internal and mqtt subscriptions all count', () => {
    const { router, interest, changes } = setup();
    const kinds: SubscriberKind[] = ['client', 'internal', 'mqtt'];
    const subs = kinds.map((k) => sub(owner(k), 'shared'));
    for (const s of subs) router.subscribe(s);
    expect(changes).toEqual([['shared', '', 1]]);
    router.unsubscribe(subs[0]!);
    router.unsubscribe(subs[2]!);
    expect(changes).toEqual([['shared', '', 1]]);
    expect(entries(interest)).toEqual([['shared', '', 1]]);
    router.unsubscribe(subs[1]!);
    expect(changes).toEqual([
      ['shared', '', 1],
      ['shared', '', 0],
    ]);
    const iq = sub(owner('internal'), '$JS.API.>', 'api');
    router.subscribe(iq);
    expect(interest.queueWeight('$JS.API.>', 'api')).toBe(1);
  });
});

describe('LocalInterest: entries, listeners, existing subscriptions', () => {
  it('subscriptions made before LocalInterest existed are in entries() and their removal is announced', () => {
    const router = new Router();
    const c = owner('client');
    const early = sub(c, 'early');
    const earlyQ1 = sub(c, 'early', 'q');
    const earlyQ2 = sub(owner('client'), 'early', 'q');
    const leafEarly = sub(owner('leaf'), 'from.hub');
    for (const s of [early, earlyQ1, earlyQ2, leafEarly]) router.subscribe(s);
    const { interest, changes } = setup(router);
    expect(changes).toEqual([]); // nothing announced for what was already there
    expect(entries(interest)).toEqual([
      ['early', '', 1],
      ['early', 'q', 2],
    ]);
    router.unsubscribe(earlyQ1);
    router.unsubscribe(early);
    expect(changes).toEqual([
      ['early', 'q', 1],
      ['early', '', 0],
    ]);
  });

  it('entries() reports plain interest with weight 1 however many subscriptions hold it', () => {
    const { router, interest } = setup();
    for (let i = 0; i < 5; i++) router.subscribe(sub(owner('client'), 'many'));
    expect(entries(interest)).toEqual([['many', '', 1]]);
  });

  it('listen() returns a function that stops the listener; several listeners each hear every change', () => {
    const { router, interest, changes } = setup();
    const second: Change[] = [];
    const stop = interest.listen((s, q, w) => second.push([s, q, w]));
    const c = owner('client');
    const a = sub(c, 'a');
    router.subscribe(a);
    expect(second).toEqual([['a', '', 1]]);
    stop();
    router.unsubscribe(a);
    expect(second).toEqual([['a', '', 1]]);
    expect(changes).toEqual([
      ['a', '', 1],
      ['a', '', 0],
    ]);
  });

  it('router.unsubscribeAll (a connection closing) announces every interest that goes', () => {
    const { router, interest, changes } = setup();
    const closing = owner('client');
    const staying = owner('client');
    const subs = [sub(closing, 'p'), sub(closing, 'p'), sub(closing, 'solo'), sub(closing, 'w', 'g'), sub(closing, 'w', 'g'), sub(closing, 'kept')];
    for (const s of subs) router.subscribe(s);
    const keep = sub(staying, 'kept');
    const keepQ = sub(staying, 'w', 'g');
    router.subscribe(keep);
    router.subscribe(keepQ);
    changes.length = 0;
    router.unsubscribeAll(subs);
    // in the order of the list: p drops to 0 at its second subscription, kept stays held by another
    expect(changes).toEqual([
      ['p', '', 0],
      ['solo', '', 0],
      ['w', 'g', 2],
      ['w', 'g', 1],
    ]);
    expect(entries(interest)).toEqual([
      ['kept', '', 1],
      ['w', 'g', 1],
    ]);
    expect(router.index.count).toBe(2);
  });

  it('many owners, many subjects: the counts always match what the router holds', () => {
    const { router, interest, changes } = setup();
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const owners = [owner('client'), owner('client'), owner('leaf'), owner('internal'), owner('mqtt')];
    const live: Subscription[] = [];
    // the state LS+/LS- would have built on the hub, from the changes alone
    const hub = new Map<string, number>();
    interest.listen((s, q, w) => {
      if (w === 0) hub.delete(s + ' ' + q);
      else hub.set(s + ' ' + q, w);
    });
    for (let step = 0; step < 5000; step++) {
      if (live.length > 0 && rnd(3) === 0) {
        const i = rnd(live.length);
        const [s] = live.splice(i, 1);
        router.unsubscribe(s!);
      } else if (live.length > 0 && rnd(50) === 0) {
        const o = owners[rnd(owners.length)]!;
        const mine = live.filter((s) => s.owner === o);
        for (const s of mine) live.splice(live.indexOf(s), 1);
        router.unsubscribeAll(mine);
      } else {
        const s = sub(owners[rnd(owners.length)]!, `s.${rnd(8)}`, rnd(3) === 0 ? `q${rnd(2)}` : '');
        live.push(s);
        router.subscribe(s);
      }
      // what LocalInterest says is what the router holds, and what the hub was told
      const want = new Map<string, number>();
      for (const s of live) {
        if (s.owner.kind === 'leaf') continue;
        const k = s.subject + ' ' + s.queue;
        want.set(k, s.queue === '' ? 1 : (want.get(k) ?? 0) + 1);
      }
      const got = new Map<string, number>();
      for (const [s, q, w] of interest.entries()) got.set(s + ' ' + q, w);
      expect(got).toEqual(want);
      expect(hub).toEqual(want);
    }
    expect(changes.length).toBeGreaterThan(500);
  });
});
