import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LeafLinkView } from '../../src/leaf/types.js';
import { goJson } from '../../src/monitor/format.js';
import { leafz, type LeafzSource, withoutUserinfo } from '../../src/monitor/leafz.js';
import { QueryError } from '../../src/monitor/query.js';

// ---------------------------------------------------------------------------------------------
// LeafLinkView snapshots from plain data (our own interface; no peer is imitated).

type ViewData = Omit<LeafLinkView, 'subscriptions'> & { subs: string[] };

const NOW = new Date('2026-11-27T10:00:00.123Z');

function view(over: Partial<ViewData> = {}): LeafLinkView {
  const d: ViewData = {
    name: 'hub1',
    url: 'nats-leaf://hub.example:7422',
    state: 'connected',
    since: new Date('2026-11-27T09:59:00Z'),
    account: '$G',
    remoteAccount: 'APP',
    ip: '10.0.0.5',
    port: 7422,
    rttMs: 1.5,
    inMsgs: 10,
    outMsgs: 20,
    inBytes: 1000,
    outBytes: 2000,
    connects: 1,
    lastError: '',
    subs: [],
    ...over,
  };
  const { subs, ...rest } = d;
  return { ...rest, subscriptions: () => subs.slice() };
}

function source(links: LeafLinkView[]): LeafzSource {
  return { serverId: 'NEDGE123', leafLinks: () => links };
}

interface Body {
  server_id: string;
  now: string;
  leafnodes: number;
  leafs: Array<Record<string, unknown>> | null;
  edge_remotes: Array<Record<string, unknown>>;
}

function call(links: LeafLinkView[], q = ''): Body {
  const r = leafz(source(links), new URLSearchParams(q), NOW);
  expect(r.status).toBe(200);
  // Through the monitor's encoder, as the HTTP server sends it (undefined members dropped).
  return JSON.parse(goJson(r.body)) as Body;
}

type BufferView = NonNullable<LeafLinkView['buffer']>;

function buffer(over: Partial<BufferView> = {}): BufferView {
  return {
    msgs: 0,
    bytes: 0,
    oldestTs: 0,
    droppedMsgs: 0,
    droppedBytes: 0,
    appended: 0,
    replaying: false,
    replayed: 0,
    ...over,
  };
}

describe('/leafz', () => {
  it('answers in nats-server shape for one connected link', () => {
    const b = call([view({ subs: ['a.b', 'q.s grp'] })]);
    expect(Object.keys(b)).toEqual(['server_id', 'now', 'leafnodes', 'leafs', 'edge_remotes']);
    expect(b.server_id).toBe('NEDGE123');
    expect(b.now).toBe('2026-11-27T10:00:00.123Z');
    expect(b.leafnodes).toBe(1);
    const leaf = b.leafs?.[0];
    expect(leaf).toEqual({
      name: 'hub1',
      is_spoke: true,
      account: '$G',
      ip: '10.0.0.5',
      port: 7422,
      rtt: '1.5ms',
      in_msgs: 10,
      out_msgs: 20,
      in_bytes: 1000,
      out_bytes: 2000,
      subscriptions: 2,
      compression: 'off',
      edge: {
        url: 'nats-leaf://hub.example:7422',
        state: 'connected',
        since: '2026-11-27T09:59:00Z',
        connects: 1,
        last_error: '',
        remote_account: 'APP',
      },
    });
    // Field order as nats-server 2.10 writes LeafInfo, with our extra last.
    expect(Object.keys(leaf ?? {})).toEqual([
      'name', 'is_spoke', 'account', 'ip', 'port', 'rtt', 'in_msgs', 'out_msgs', 'in_bytes', 'out_bytes',
      'subscriptions', 'compression', 'edge',
    ]);
  });

  it('rtt is "0s" before the first PONG and a Go duration after', () => {
    expect(call([view({ rttMs: -1 })]).leafs?.[0]?.rtt).toBe('0s');
    expect(call([view({ rttMs: 0.32 })]).leafs?.[0]?.rtt).toBe('320µs');
    expect(call([view({ rttMs: 2500 })]).leafs?.[0]?.rtt).toBe('2.5s');
  });

  it('lists subjects only with subs=1 or subs=true, one per subscription', () => {
    const links = [view({ subs: ['a.b', 'q.s grp', 'q.s other'] })];
    expect(call(links).leafs?.[0]?.subscriptions_list).toBeUndefined();
    expect(call(links, 'subs=0').leafs?.[0]?.subscriptions_list).toBeUndefined();
    expect(call(links, 'subs=1').leafs?.[0]?.subscriptions_list).toEqual(['a.b', 'q.s', 'q.s']);
    expect(call(links, 'subs=true').leafs?.[0]?.subscriptions_list).toEqual(['a.b', 'q.s', 'q.s']);
    expect(call(links, 'subs=1').leafs?.[0]?.subscriptions).toBe(3);
    // No subscriptions: the list is left out, as nats-server's omitempty does.
    expect(call([view()], 'subs=1').leafs?.[0]).not.toHaveProperty('subscriptions_list');
  });

  it('rejects a bad subs value with nats-server\'s 400 text', () => {
    expect(() => leafz(source([view()]), new URLSearchParams('subs=yes'), NOW)).toThrow(QueryError);
    expect(() => leafz(source([view()]), new URLSearchParams('subs=yes'), NOW)).toThrow(
      `Error decoding boolean for 'subs': strconv.ParseBool: parsing "yes": invalid syntax`,
    );
  });

  it('counts and lists connected links only; edge_remotes has every remote', () => {
    const links = [
      view({ name: 'hubA', url: 'nats-leaf://a:7422' }),
      view({
        name: '',
        url: 'nats-leaf://b:7422',
        state: 'disconnected',
        since: new Date('2026-11-27T09:58:00.5Z'),
        connects: 3,
        lastError: 'dial tcp b:7422: connection refused',
        remoteAccount: '',
        rttMs: -1,
      }),
      view({ name: '', url: 'nats-leaf://c:7422', state: 'connecting', connects: 0, remoteAccount: '' }),
    ];
    const b = call(links);
    expect(b.leafnodes).toBe(1);
    expect(b.leafs?.map((l) => l.name)).toEqual(['hubA']);
    expect(b.edge_remotes.map((r) => [r.url, r.state])).toEqual([
      ['nats-leaf://a:7422', 'connected'],
      ['nats-leaf://b:7422', 'disconnected'],
      ['nats-leaf://c:7422', 'connecting'],
    ]);
    expect(b.edge_remotes[1]).toEqual({
      url: 'nats-leaf://b:7422',
      state: 'disconnected',
      since: '2026-11-27T09:58:00.5Z',
      connects: 3,
      last_error: 'dial tcp b:7422: connection refused',
    });
  });

  it('writes leafs as null when no link is up, as nats-server does', () => {
    const b = call([view({ state: 'disconnected' })]);
    expect(b.leafnodes).toBe(0);
    expect(b.leafs).toBeNull();
    expect(b.edge_remotes).toHaveLength(1);
    expect(call([]).leafs).toBeNull();
    expect(call([]).edge_remotes).toEqual([]);
  });

  it('filters by account with acc', () => {
    const links = [view({ url: 'nats-leaf://a:1' }), view({ url: 'nats-leaf://b:1', account: 'OTHER' })];
    const g = call(links, 'acc=$G');
    expect(g.leafnodes).toBe(1);
    expect(g.leafs?.[0]?.account).toBe('$G');
    expect(g.edge_remotes.map((r) => r.url)).toEqual(['nats-leaf://a:1']);
    const none = call(links, 'acc=NOPE');
    expect(none.leafnodes).toBe(0);
    expect(none.leafs).toBeNull();
    expect(none.edge_remotes).toEqual([]);
    expect(call(links).leafnodes).toBe(2);
  });

  it('shows the store-and-forward queue', () => {
    const oldest = NOW.getTime() - 90_000;
    const b = call([
      view({
        state: 'disconnected',
        buffer: buffer({ msgs: 5, bytes: 640, oldestTs: oldest, droppedMsgs: 2, droppedBytes: 256, appended: 7 }),
      }),
      view({ url: 'nats-leaf://x:1', buffer: buffer({ appended: 9, replaying: true, replayed: 9 }) }),
    ]);
    expect(b.edge_remotes[0]?.buffer).toEqual({
      msgs: 5,
      bytes: 640,
      oldest: '2026-11-27T09:58:30.123Z',
      oldest_age_ms: 90_000,
      dropped_msgs: 2,
      dropped_bytes: 256,
      appended: 7,
      replaying: false,
      replayed: 0,
    });
    // Empty queue: no `oldest`, age 0.
    const empty = b.edge_remotes[1]?.buffer as Record<string, unknown>;
    expect(empty).not.toHaveProperty('oldest');
    expect(empty.oldest_age_ms).toBe(0);
    expect(empty.replaying).toBe(true);
    expect(empty.replayed).toBe(9);
    // The connected link carries the same under `edge`.
    expect((b.leafs?.[0]?.edge as Record<string, unknown>).buffer).toEqual(empty);
  });

  it('never shows userinfo, even when a view carries it', () => {
    const links = [
      view({ url: 'nats-leaf://alice:s3cret@hub.example:7422', lastError: 'dial nats-leaf://alice:s3cret@hub.example:7422: timeout' }),
      view({ url: 'tls://token-xyz@hub2:7422/x?y=1', state: 'disconnected' }),
    ];
    const r = leafz(source(links), new URLSearchParams('subs=1'), NOW);
    const text = goJson(r.body);
    expect(text).not.toContain('s3cret');
    expect(text).not.toContain('alice');
    expect(text).not.toContain('token-xyz');
    const b = JSON.parse(text) as Body;
    expect(b.edge_remotes.map((x) => x.url)).toEqual(['nats-leaf://hub.example:7422', 'tls://hub2:7422/x?y=1']);
    expect(b.edge_remotes[0]?.last_error).toBe('dial nats-leaf://hub.example:7422: timeout');
  });

  it('withoutUserinfo keeps URLs without userinfo and strips it from odd ones', () => {
    expect(withoutUserinfo('nats://h:4222')).toBe('nats://h:4222');
    expect(withoutUserinfo('nats://u:p@h:4222')).toBe('nats://h:4222');
    expect(withoutUserinfo('nats://u:p@ss@h:4222')).toBe('nats://h:4222');
    expect(withoutUserinfo('u:p@h:4222')).toBe('h:4222');
    expect(withoutUserinfo('nats://h:4222/a@b')).toBe('nats://h:4222/a@b');
  });
});

// ---------------------------------------------------------------------------------------------
// Field names against the real nats-server: a Debian nats-server leaf dialing a nats-server hub
// shows its link in /leafz; every field it writes must be ours too, in the same order.

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const procs: ChildProcess[] = [];
const dirs: string[] = [];

afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function startNatsServer(conf: string): ChildProcess {
  const p = spawn('nats-server', ['-c', conf], { stdio: 'ignore' });
  procs.push(p);
  return p;
}

/** Polls /leafz (an HTTP poll of a server we started; no timing assumption) until a link shows. */
async function leafzWithLink(httpPort: number, deadlineMs: number): Promise<Body> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/leafz?subs=1`);
      const b = (await res.json()) as Body;
      if (b.leafnodes > 0) return b;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('the nats-server leaf never showed its link in /leafz');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('/leafz against nats-server 2.9.10', () => {
  it('has every field nats-server writes, in its order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leafz-test-'));
    dirs.push(dir);
    const [hubClient, hubLeaf, leafClient, leafHttp] = [await freePort(), await freePort(), await freePort(), await freePort()];
    writeFileSync(join(dir, 'hub.conf'), `listen: 127.0.0.1:${hubClient}\nleafnodes { listen: 127.0.0.1:${hubLeaf} }\n`);
    writeFileSync(
      join(dir, 'leaf.conf'),
      `listen: 127.0.0.1:${leafClient}\nhttp: 127.0.0.1:${leafHttp}\nleafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:${hubLeaf}" } ] }\n`,
    );
    startNatsServer(join(dir, 'hub.conf'));
    startNatsServer(join(dir, 'leaf.conf'));
    const theirs = await leafzWithLink(leafHttp, 15_000);

    const ours = call([view({ subs: ['a.b'] })], 'subs=1');
    const ourTop = Object.keys(ours);
    const theirTop = Object.keys(theirs);
    expect(ourTop.slice(0, theirTop.length)).toEqual(theirTop);

    const theirLeaf = Object.keys(theirs.leafs?.[0] ?? {});
    const ourLeaf = Object.keys(ours.leafs?.[0] ?? {});
    expect(theirLeaf).toContain('subscriptions_list');
    expect(ourLeaf.filter((k) => theirLeaf.includes(k))).toEqual(theirLeaf);
    // Same value types as theirs.
    const ourEntry = ours.leafs?.[0] ?? {};
    for (const k of theirLeaf) expect([k, typeof ourEntry[k]]).toEqual([k, typeof theirs.leafs?.[0]?.[k]]);
  }, 30_000);
});
