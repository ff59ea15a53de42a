/**
 * Leafnode remotes against a real nats-server hub: one table, run with nats-server as the leaf
 * (every case proven there first) and with nats-edge as the leaf. The hub is always Debian's
 * nats-server on free ports; /leafz on the hub is the referee for what crossed the link.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  connect,
  createInbox,
  headers,
  NoRespondersError,
  RequestError,
  type Msg,
  type NatsConnection,
  type Subscription,
  type SubscriptionOptions,
} from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { makeTempDir, serverKinds, within, type RunningServer, type ServerKind } from '../helpers/servers.js';
import {
  hubLeafz,
  logTimes,
  startHub,
  startLeaf,
  stopLeafTestServers,
  waitForHubInterest,
  waitForLeafLink,
  waitForLeafSawHubInterest,
  waitForNoHubInterest,
  type Hub,
  type HubOptions,
  type LeafStartOptions,
  type LeafzLeaf,
  untilAnswered,
} from '../helpers/leaf.js';

/** Messages of one callback subscription, with a way to await a count. */
class Collector {
  readonly msgs: Msg[] = [];
  private waiters: Array<{ n: number; wake: () => void }> = [];

  readonly callback = (err: Error | null, m: Msg): void => {
    if (err !== null) return;
    this.msgs.push(m);
    this.waiters = this.waiters.filter((w) => {
      if (this.msgs.length < w.n) return true;
      w.wake();
      return false;
    });
  };

  /** Resolves once at least n messages arrived. */
  until(n: number, ms = 5000, what = ''): Promise<Msg[]> {
    if (this.msgs.length >= n) return Promise.resolve(this.msgs);
    const reached = new Promise<Msg[]>((wake) => this.waiters.push({ n, wake: () => wake(this.msgs) }));
    return within(reached, ms, `${n} messages ${what}(have ${this.msgs.length}: ${JSON.stringify(this.subjects().slice(-5))})`);
  }

  strings(): string[] {
    return this.msgs.map((m) => m.string());
  }

  subjects(): string[] {
    return this.msgs.map((m) => m.subject);
  }
}

function collect(nc: NatsConnection, subject: string, opts: SubscriptionOptions = {}): { sub: Subscription; c: Collector } {
  const c = new Collector();
  const sub = nc.subscribe(subject, { ...opts, callback: c.callback });
  return { sub, c };
}

/** Every byte value, with CRLF and a fake protocol line inside, so framing mistakes show. */
function binaryPayload(): Uint8Array {
  const b = new Uint8Array(256 + 16);
  for (let i = 0; i < 256; i++) b[i] = i;
  b.set(new TextEncoder().encode('\r\nMSG x 1 2\r\n'), 256);
  return b;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
}

function delta(after: LeafzLeaf, before: LeafzLeaf): { in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number } {
  return {
    in_msgs: after.in_msgs - before.in_msgs,
    out_msgs: after.out_msgs - before.out_msgs,
    in_bytes: after.in_bytes - before.in_bytes,
    out_bytes: after.out_bytes - before.out_bytes,
  };
}

async function onlyLeaf(hub: RunningServer): Promise<LeafzLeaf> {
  const z = await hubLeafz(hub);
  expect(z.leafnodes).toBe(1);
  const l = z.leafs[0];
  if (l === undefined) throw new Error('hub /leafz lists no leaf');
  return l;
}

describe.each(serverKinds())('leafnode: leaf is %s, hub is nats-server', (kind: ServerKind) => {
  const open: NatsConnection[] = [];

  async function client(srv: RunningServer): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.url, reconnect: false });
    open.push(nc);
    return nc;
  }

  interface Linked {
    hub: Hub;
    leaf: RunningServer;
    hubNc: NatsConnection;
    leafNc: NatsConnection;
  }

  /** A hub, a leaf linked to it, and one client on each. */
  async function linked(hubOpts: HubOptions = {}, leafOpts: LeafStartOptions = {}): Promise<Linked> {
    const hub = await startHub(hubOpts);
    const leaf = await startLeaf(kind, hub.leafPort, leafOpts);
    await waitForLeafLink(hub, 10000);
    const [hubNc, leafNc] = await Promise.all([client(hub), client(leaf)]);
    return { hub, leaf, hubNc, leafNc };
  }

  afterEach(async () => {
    await Promise.all(open.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close().catch(() => undefined))));
    await stopLeafTestServers();
  });

  it('pub/sub both ways with * and > wildcards, headers and exact payload bytes', { timeout: 30000 }, async () => {
    const { hub, hubNc, leafNc } = await linked();
    const payload = binaryPayload();

    // hub → leaf
    const dStar = collect(leafNc, 'down.*');
    const dGt = collect(leafNc, 'down.>');
    await leafNc.flush();
    await waitForHubInterest(hub, 'down.*');
    await waitForHubInterest(hub, 'down.>');
    const h = headers();
    h.append('X-Test', 'one');
    h.append('X-Test', 'two');
    h.set('Other', 'v');

    /** Publishes on `from` under `prefix` and checks what the `*` and `>` collectors got. */
    async function crosses(from: NatsConnection, to: NatsConnection, prefix: string, star: Collector, gt: Collector, reply: string): Promise<void> {
      from.publish(prefix, 'not matched');
      from.publish(`${prefix}.a`, payload);
      from.publish(`${prefix}.a.b`, 'deep');
      from.publish(`${prefix}x.a`, 'not matched');
      from.publish(`${prefix}.h`, payload, { headers: h, reply });
      await gt.until(3, 5000, `on ${prefix}.> `);
      await star.until(2, 5000, `on ${prefix}.* `);
      await to.flush();
      expect(star.subjects()).toEqual([`${prefix}.a`, `${prefix}.h`]);
      expect(gt.subjects()).toEqual([`${prefix}.a`, `${prefix}.a.b`, `${prefix}.h`]);
      for (const c of [star, gt]) {
        const plain = c.msgs[0];
        const withHdr = c.msgs[c.msgs.length - 1];
        expect(Buffer.from(plain?.data ?? [])).toEqual(Buffer.from(payload));
        expect(plain?.headers).toBeUndefined();
        expect(Buffer.from(withHdr?.data ?? [])).toEqual(Buffer.from(payload));
        expect(withHdr?.headers?.values('X-Test')).toEqual(['one', 'two']);
        expect(withHdr?.headers?.get('Other')).toBe('v');
        expect(withHdr?.reply).toBe(reply);
      }
      expect(gt.msgs[1]?.string()).toBe('deep');
    }

    await crosses(hubNc, leafNc, 'down', dStar.c, dGt.c, 'my.reply');

    // leaf → hub
    const uStar = collect(hubNc, 'up.*');
    const uGt = collect(hubNc, 'up.>');
    await waitForLeafSawHubInterest(hubNc, leafNc);
    await crosses(leafNc, hubNc, 'up', uStar.c, uGt.c, 'your.reply');
  });

  it('only wanted messages cross: /leafz in_msgs and out_msgs move by exactly 1', { timeout: 30000 }, async () => {
    const { hub, hubNc, leafNc } = await linked();
    const down = collect(leafNc, 'want.down');
    const up = collect(hubNc, 'want.up');
    await leafNc.flush();
    await waitForHubInterest(hub, 'want.down');
    await waitForLeafSawHubInterest(hubNc, leafNc);
    // Local subscribers on the unwanted subjects: the messages have somewhere to go, just not across.
    const leafLocal = collect(leafNc, 'nobody.up.*');
    const hubLocal = collect(hubNc, 'nobody.down.*');
    await Promise.all([leafNc.flush(), hubNc.flush()]);
    const before = await onlyLeaf(hub);

    for (let i = 0; i < 200; i++) leafNc.publish(`nobody.up.${i}`, 'x'.repeat(10));
    leafNc.publish('want.up', 'u');
    for (let i = 0; i < 200; i++) hubNc.publish(`nobody.down.${i}`, 'y'.repeat(10));
    hubNc.publish('want.down', 'd');
    await up.c.until(1, 5000, 'on want.up ');
    await down.c.until(1, 5000, 'on want.down ');
    await leafLocal.c.until(200);
    await hubLocal.c.until(200);
    await Promise.all([leafNc.flush(), hubNc.flush()]);

    const d = delta(await onlyLeaf(hub), before);
    expect(d.in_msgs).toBe(1);
    expect(d.out_msgs).toBe(1);
    expect(d.in_bytes).toBeLessThan(100);
    expect(d.out_bytes).toBeLessThan(100);
    expect(up.c.strings()).toEqual(['u']);
    expect(down.c.strings()).toEqual(['d']);
  });

  it('request/reply both ways, and no responders from a leaf client', { timeout: 30000 }, async () => {
    const { hub, hubNc, leafNc } = await linked();
    const onLeaf = leafNc.subscribe('svc.leaf', {
      callback: (_err, m) => {
        m.respond(`leaf:${m.string()}`);
      },
    });
    const onHub = hubNc.subscribe('svc.hub', {
      callback: (_err, m) => {
        m.respond(`hub:${m.string()}`);
      },
    });
    await Promise.all([leafNc.flush(), hubNc.flush()]);
    await waitForHubInterest(hub, 'svc.leaf');
    await waitForLeafSawHubInterest(hubNc, leafNc);

    const fromHub = await Promise.all(Array.from({ length: 20 }, (_, i) => hubNc.request('svc.leaf', `h${i}`, { timeout: 5000 })));
    expect(fromHub.map((m) => m.string())).toEqual(Array.from({ length: 20 }, (_, i) => `leaf:h${i}`));
    const fromLeaf = await Promise.all(Array.from({ length: 20 }, (_, i) => leafNc.request('svc.hub', `l${i}`, { timeout: 5000 })));
    expect(fromLeaf.map((m) => m.string())).toEqual(Array.from({ length: 20 }, (_, i) => `hub:l${i}`));

    // Nobody serves this anywhere: the leaf answers 503 at once (it has no interest from the hub).
    for (const nc of [leafNc, hubNc]) {
      const t0 = Date.now();
      const err = await rejection(nc.request('nobody.anywhere', 'x', { timeout: 5000 }));
      expect(err).toBeInstanceOf(RequestError);
      expect((err as RequestError).isNoResponders()).toBe(true);
      expect((err as RequestError).cause).toBeInstanceOf(NoRespondersError);
      expect(Date.now() - t0).toBeLessThan(2000);
    }

    // Once the responders are gone on the far side, requests across fail with no responders too.
    onLeaf.unsubscribe();
    await leafNc.flush();
    await waitForNoHubInterest(hub, 'svc.leaf');
    const errHub = await rejection(hubNc.request('svc.leaf', 'x', { timeout: 5000 }));
    expect((errHub as RequestError).isNoResponders?.()).toBe(true);
    onHub.unsubscribe();
    await hubNc.flush();
    const probe = collect(hubNc, 'probe.after');
    await waitForLeafSawHubInterest(hubNc, leafNc);
    probe.sub.unsubscribe();
    const t0 = Date.now();
    const errLeaf = await rejection(leafNc.request('svc.hub', 'x', { timeout: 5000 }));
    expect((errLeaf as RequestError).isNoResponders?.()).toBe(true);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a queue group spanning the link gets each message exactly once; all go to the leaf when the hub member leaves', { timeout: 30000 }, async () => {
    const { hub, leaf, hubNc, leafNc } = await linked();
    const hubMemberNc = await client(hub);
    const leafMember = collect(leafNc, 'work', { queue: 'grp' });
    const hubMember = collect(hubMemberNc, 'work', { queue: 'grp' });
    await Promise.all([leafNc.flush(), hubMemberNc.flush()]);
    await waitForHubInterest(hub, 'work');
    await waitForLeafSawHubInterest(hubMemberNc, leafNc);

    const N = 200;
    const leafPub = await client(leaf);
    for (let i = 0; i < N; i++) hubNc.publish('work', `h${i}`);
    for (let i = 0; i < N; i++) leafPub.publish('work', `l${i}`);
    await Promise.all([hubNc.flush(), leafPub.flush()]);
    const total = (): number => leafMember.c.msgs.length + hubMember.c.msgs.length;
    await within(
      (async () => {
        while (total() < 2 * N) await Promise.race([leafMember.c.until(leafMember.c.msgs.length + 1, 5000), hubMember.c.until(hubMember.c.msgs.length + 1, 5000)]);
      })(),
      10000,
      `queue group total ${2 * N} (leaf member ${leafMember.c.msgs.length}, hub member ${hubMember.c.msgs.length})`,
    );
    await Promise.all([leafNc.flush(), hubMemberNc.flush()]);
    const got = [...leafMember.c.strings(), ...hubMember.c.strings()];
    expect(got.length).toBe(2 * N);
    expect(new Set(got).size).toBe(2 * N);
    const want = [...Array.from({ length: N }, (_, i) => `h${i}`), ...Array.from({ length: N }, (_, i) => `l${i}`)];
    expect([...got].sort()).toEqual([...want].sort());

    // The hub member leaves: everything the hub publishes now goes across to the leaf member.
    hubMember.sub.unsubscribe();
    await hubMemberNc.flush();
    const leafBefore = leafMember.c.msgs.length;
    const hubBefore = hubMember.c.msgs.length;
    for (let i = 0; i < N; i++) hubNc.publish('work', `x${i}`);
    await hubNc.flush();
    await leafMember.c.until(leafBefore + N, 10000, 'at the leaf member ');
    await leafNc.flush();
    expect(leafMember.c.strings().slice(leafBefore)).toEqual(Array.from({ length: N }, (_, i) => `x${i}`));
    expect(hubMember.c.msgs.length).toBe(hubBefore);

    // The other way: only a hub member left, so leaf publishes must cross and reach it (a leaf
    // message crossing without the hub's queue name would reach no hub queue member).
    const hubMember2 = collect(hubMemberNc, 'work', { queue: 'grp' });
    leafMember.sub.unsubscribe();
    await leafNc.flush();
    await waitForNoHubInterest(hub, 'work');
    await waitForLeafSawHubInterest(hubMemberNc, leafNc);
    for (let i = 0; i < N; i++) leafPub.publish('work', `y${i}`);
    await leafPub.flush();
    await hubMember2.c.until(N, 10000, 'at the new hub member ');
    await hubMemberNc.flush();
    expect(hubMember2.c.strings()).toEqual(Array.from({ length: N }, (_, i) => `y${i}`));
  });

  it('an unsubscribe on the leaf stops hub publishes from crossing', { timeout: 30000 }, async () => {
    const { hub, hubNc, leafNc } = await linked();
    const gone = collect(leafNc, 'gone.x');
    const still = collect(leafNc, 'still.x');
    await leafNc.flush();
    await waitForHubInterest(hub, 'gone.x');
    await waitForHubInterest(hub, 'still.x');
    hubNc.publish('gone.x', 'first');
    await gone.c.until(1, 5000, 'on gone.x ');

    gone.sub.unsubscribe();
    await leafNc.flush();
    await waitForNoHubInterest(hub, 'gone.x');
    const before = await onlyLeaf(hub);
    for (let i = 0; i < 50; i++) hubNc.publish('gone.x', `late${i}`);
    hubNc.publish('still.x', 'fence');
    await still.c.until(1, 5000, 'on still.x ');
    await leafNc.flush();
    const d = delta(await onlyLeaf(hub), before);
    expect(d.out_msgs).toBe(1);
    expect(gone.c.strings()).toEqual(['first']);
    expect(still.c.strings()).toEqual(['fence']);
  });

  it('wrong credentials: the hub refuses repeatedly with backoff, the leaf logs it and keeps serving locally', { timeout: 40000 }, async () => {
    const hub = await startHub({ leafnodes: '  authorization { user: a, password: b }' });
    const leaf = await startLeaf(kind, hub.leafPort, { userinfo: 'a:wrong' });
    const authError = /\[ERR\] .*authentication error/;
    const deadline = Date.now() + 20000;
    while (logTimes(hub.logs(), authError).length < 3) {
      if (Date.now() > deadline) throw new Error(`hub logged ${logTimes(hub.logs(), authError).length} authentication errors in 20 s:\n${hub.logs()}`);
      // The hub's log has no event to await: poll it.
      await new Promise((r) => setTimeout(r, 100));
    }
    const times = logTimes(hub.logs(), authError);
    for (let i = 1; i < times.length; i++) expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(500);
    expect((await hubLeafz(hub)).leafnodes).toBe(0);
    // nats-server logs the hub's -ERR: "Leafnode Error 'Authorization Violation'".
    while (!/authorization violation/i.test(leaf.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(leaf.logs()).toMatch(/authorization violation/i);

    // Local service on the leaf is untouched while it keeps retrying.
    const leafNc = await client(leaf);
    const local = collect(leafNc, 'local.>');
    leafNc.subscribe('local.svc', {
      callback: (_e, m) => {
        m.respond(`ok:${m.string()}`);
      },
    });
    await leafNc.flush();
    const other = await client(leaf);
    other.publish('local.a', 'one');
    const reply = await other.request('local.svc', 'ping', { timeout: 3000 });
    expect(reply.string()).toBe('ok:ping');
    await local.c.until(2);
    expect(local.c.strings()).toEqual(['one', 'ping']);

    // The right password on the same hub links: the refusal was about the credentials.
    const good = await startLeaf(kind, hub.leafPort, { userinfo: 'a:b', name: 'leaf2' });
    await waitForLeafLink(hub, 10000);
    expect(good.logs()).not.toMatch(/authorization violation/i);
  });

  it('hub SIGKILLed and restarted on the same ports: the leaf relinks and interest is resynced', { timeout: 45000 }, async () => {
    const { hub, leaf, leafNc } = await linked();
    const before = collect(leafNc, 'before.x');
    await leafNc.flush();
    await waitForHubInterest(hub, 'before.x');

    await hub.stop('SIGKILL');
    const during = collect(leafNc, 'during.x');
    await leafNc.flush();
    // Local delivery on the leaf does not depend on the hub.
    const leafPub = await client(leaf);
    leafPub.publish('during.x', 'local');
    await during.c.until(1, 5000, 'local on during.x ');

    const t0 = Date.now();
    await hub.start();
    await waitForLeafLink(hub, 20000);
    expect(Date.now() - t0).toBeLessThan(20000);
    await waitForHubInterest(hub, 'before.x');
    await waitForHubInterest(hub, 'during.x');

    const hubNc = await client(hub);
    hubNc.publish('before.x', 'b');
    hubNc.publish('during.x', 'd');
    await before.c.until(1, 5000, 'on before.x ');
    await during.c.until(2, 5000, 'on during.x ');
    expect(before.c.strings()).toEqual(['b']);
    expect(during.c.strings()).toEqual(['local', 'd']);

    const after = collect(hubNc, 'after.x');
    await waitForLeafSawHubInterest(hubNc, leafNc);
    leafNc.publish('after.x', 'a');
    await after.c.until(1, 5000, 'on after.x ');
    expect(after.c.strings()).toEqual(['a']);
  });

  it('deny_exports and deny_imports filter the link only; local delivery on the leaf is unaffected', { timeout: 30000 }, async () => {
    const { hub, leaf, hubNc, leafNc } = await linked({}, { remote: 'deny_exports: ["private.>", "secret"], deny_imports: ["cmd.secret.>"]' });
    // leaf → hub: private.> and secret stay on the leaf.
    const hubPrivate = collect(hubNc, 'private.>');
    const hubSecret = collect(hubNc, 'secret');
    const hubPublic = collect(hubNc, 'public.x');
    const leafPrivate = collect(leafNc, 'private.>');
    const leafSecret = collect(leafNc, 'secret');
    // hub → leaf: cmd.secret.> never arrives, other cmd.> does.
    const leafCmd = collect(leafNc, 'cmd.>');
    // A literal subscription inside deny_imports is not even advertised to the hub.
    const leafCmdSecret = collect(leafNc, 'cmd.secret.x');
    const fence = collect(leafNc, 'fence.x');
    await leafNc.flush();
    await waitForHubInterest(hub, 'cmd.>');
    await waitForHubInterest(hub, 'fence.x');
    expect((await hubLeafz(hub, true)).leafs[0]?.subscriptions_list).not.toContain('cmd.secret.x');
    await waitForLeafSawHubInterest(hubNc, leafNc);
    const before = await onlyLeaf(hub);

    const leafPub = await client(leaf);
    leafPub.publish('private.a', 'p');
    leafPub.publish('secret', 's');
    leafPub.publish('public.x', 'ok');
    await hubPublic.c.until(1, 5000, 'on public.x ');
    await leafPrivate.c.until(1, 5000, 'local on private.> ');
    await leafSecret.c.until(1, 5000, 'local on secret ');

    hubNc.publish('cmd.secret.a', 'no');
    hubNc.publish('cmd.open.a', 'yes');
    await leafCmd.c.until(1, 5000, 'on cmd.> ');
    leafPub.publish('cmd.secret.b', 'local');
    await leafCmd.c.until(2, 5000, 'local on cmd.> ');
    await Promise.all([hubNc.flush(), leafNc.flush()]);

    expect(hubPrivate.c.msgs.length).toBe(0);
    expect(hubSecret.c.msgs.length).toBe(0);
    expect(hubPublic.c.strings()).toEqual(['ok']);
    expect(leafPrivate.c.strings()).toEqual(['p']);
    expect(leafSecret.c.strings()).toEqual(['s']);
    expect(leafCmd.c.subjects()).toEqual(['cmd.open.a', 'cmd.secret.b']);
    expect(leafCmdSecret.c.msgs.length).toBe(0);
    expect(fence.c.msgs.length).toBe(0);
    const d = delta(await onlyLeaf(hub), before);
    expect(d.in_msgs).toBe(1);
    expect(d.out_msgs).toBe(1);
  });

  it('JetStream across domains: leaf clients reach the hub domain, hub clients the edge domain, $JS.API stays local', { timeout: 45000 }, async () => {
    const leafStore = makeTempDir('nats-edge-leaf-js-');
    const { hub, hubNc, leafNc } = await linked(
      { jetstream: { domain: 'hub' } },
      { config: `jetstream { domain: edge, store_dir: "${leafStore}" }` },
    );
    // The hub's initial interest ($JS.hub.API.*) precedes the barrier's on the link.
    await waitForLeafSawHubInterest(hubNc, leafNc);

    // leaf client → hub JetStream
    const hubJsm = await jetstreamManager(leafNc, { domain: 'hub' });
    const hubInfo = await hubJsm.getAccountInfo();
    expect(hubInfo.domain).toBe('hub');
    await hubJsm.streams.add({ name: 'ORDERS', subjects: ['orders.>'] });
    const hubAck = await jetstream(leafNc, { domain: 'hub' }).publish('orders.1', 'o1');
    expect(hubAck.stream).toBe('ORDERS');
    expect(hubAck.domain).toBe('hub');
    expect(hubAck.seq).toBe(1);
    const onHub = await (await jetstreamManager(hubNc)).streams.info('ORDERS');
    expect(onHub.state.messages).toBe(1);

    // hub client → edge JetStream (wait for the API to answer, not for one particular LS+)
    const edgeJsm = await untilAnswered(() => jetstreamManager(hubNc, { domain: 'edge' }), 'JetStream domain edge from a hub client');
    const edgeInfo = await edgeJsm.getAccountInfo();
    expect(edgeInfo.domain).toBe('edge');
    await edgeJsm.streams.add({ name: 'EDGE', subjects: ['edge.>'] });
    const edgeAck = await jetstream(hubNc, { domain: 'edge' }).publish('edge.1', 'e1');
    expect(edgeAck.stream).toBe('EDGE');
    expect(edgeAck.domain).toBe('edge');
    const edgeLocal = await (await jetstreamManager(leafNc)).streams.info('EDGE');
    expect(edgeLocal.state.messages).toBe(1);

    // A plain $JS.API.INFO on the leaf: its own JetStream answers, exactly once, and nothing crosses.
    const leafJsm = await jetstreamManager(leafNc);
    expect((await leafJsm.getAccountInfo()).domain).toBe('edge');
    const inbox = createInbox();
    const answers = collect(leafNc, inbox);
    await leafNc.flush();
    await waitForHubInterest(hub, inbox);
    const before = await onlyLeaf(hub);
    leafNc.publish('$JS.API.INFO', '', { reply: inbox });
    const [first] = await answers.c.until(1, 5000, 'answer to $JS.API.INFO ');
    const body = JSON.parse(first?.string() ?? '{}') as { type?: string; domain?: string };
    expect(body.type).toBe('io.nats.jetstream.api.v1.account_info_response');
    expect(body.domain).toBe('edge');
    // A round trip through the hub's JetStream and back: a second answer from the hub would be ahead of it.
    expect((await hubJsm.getAccountInfo()).domain).toBe('hub');
    await leafNc.flush();
    expect(answers.c.msgs.length).toBe(1);
    const d = delta(await onlyLeaf(hub), before);
    // Only the hub-domain round trip crossed (request in, reply out).
    expect(d.in_msgs).toBe(1);
    expect(d.out_msgs).toBe(1);
  });
});
