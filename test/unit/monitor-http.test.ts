import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ServerOptions } from '../../src/config/options.js';
import { subjectMatches } from '../../src/core/subject.js';
import type { SublistStats } from '../../src/core/sublist.js';
import type { Subscriber, Subscription } from '../../src/core/subscription.js';
import { connz } from '../../src/monitor/connz.js';
import { MonitorServer, normalizeBasePath } from '../../src/monitor/http-server.js';
import type { ConnectionView, MonitorSource, ServerStats } from '../../src/monitor/source.js';
import { subsz } from '../../src/monitor/subsz.js';

// ---------------------------------------------------------------------------------------------
// A MonitorSource from plain data (our own interface; no peer is imitated).

function options(over: Partial<ServerOptions> = {}): ServerOptions {
  return {
    serverName: 'edge1',
    host: '127.0.0.1',
    port: 4222,
    httpHost: '127.0.0.1',
    httpPort: 8222,
    httpBasePath: '',
    maxPayload: 1048576,
    maxControlLine: 4096,
    maxPending: 67108864,
    maxConnections: 65536,
    maxSubscriptions: 0,
    maxSubTokens: 0,
    pingIntervalMs: 120_000,
    pingMax: 2,
    writeDeadlineMs: 10_000,
    noHeaderSupport: false,
    lameDuckDurationMs: 120_000,
    lameDuckGracePeriodMs: 10_000,
    maxClosedClients: 10_000,
    serverTags: [],
    memoryBudget: 64 * 1024 * 1024,
    maxPendingTotal: 64 * 1024 * 1024,
    allowNonTls: false,
    logging: { debug: false, trace: false, logtime: true, logtimeUtc: false },
    blocks: {},
    ...over,
  };
}

function owner(cid: number): Subscriber {
  return { kind: 'client', cid, echo: true, deliver: () => {} };
}

function sub(cid: number, subject: string, sid: string, extra: Partial<Subscription> = {}): Subscription {
  return { subject, queue: '', sid, owner: owner(cid), msgs: 0, max: 0, ...extra };
}

type ConnData = Omit<ConnectionView, 'subscriptions'> & { subs: Subscription[] };

function conn(d: Partial<ConnData> & { cid: number; start: Date }): ConnectionView {
  const subs = d.subs ?? [];
  return {
    type: 'nats',
    ip: '127.0.0.1',
    port: 50000 + d.cid,
    lastActivity: d.start,
    rttMs: undefined,
    pendingBytes: 0,
    inMsgs: 0,
    outMsgs: 0,
    inBytes: 0,
    outBytes: 0,
    name: '',
    lang: '',
    version: '',
    ...d,
    subscriptions: () => subs,
  };
}

const NOW = new Date('2026-11-27T06:00:00.000Z');
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);

interface Fixture {
  source: MonitorSource;
  open: ConnectionView[];
  closed: ConnectionView[];
  health: { error: string | null };
  opts: ServerOptions;
  stats: ServerStats;
}

function fixture(optsOver: Partial<ServerOptions> = {}): Fixture {
  const c1subs = [
    sub(1, 'foo', '1', { msgs: 2 }),
    sub(1, 'bar', '2', { queue: 'q' }),
    sub(1, 'baz', '3', { max: 5 }),
  ];
  const open = [
    conn({
      cid: 1,
      start: ago(3_723_400),
      lastActivity: ago(10_200),
      rttMs: 1.988976,
      outMsgs: 2,
      outBytes: 10,
      name: 'c1',
      lang: 'node',
      version: '3.0.0',
      authorizedUser: 'alice',
      subs: c1subs,
    }),
    conn({
      cid: 2,
      start: ago(60_000),
      lastActivity: ago(100),
      rttMs: 0.3634,
      inMsgs: 2,
      outMsgs: 2,
      inBytes: 10,
      outBytes: 10,
      pendingBytes: 35,
      authorizedUser: 'bob',
      subs: [sub(2, 'foo', '7', { msgs: 2 }), sub(2, 'foo.*', '8')],
    }),
    conn({
      cid: 4,
      type: 'mqtt',
      start: ago(5_000),
      lastActivity: ago(5_000),
      mqttClient: 'sensor-1',
      tlsVersion: '1.3',
      tlsCipher: 'TLS_AES_128_GCM_SHA256',
      subs: [sub(4, 'sensors.>', '1', { queue: 'g' })],
    }),
  ];
  // Closed ring is in closing order, not cid order.
  const closed = [
    conn({
      cid: 5,
      start: ago(30_000),
      lastActivity: ago(29_000),
      stop: ago(20_000),
      reason: 'Protocol Violation',
      pendingBytes: 3,
      name: 'bad',
      authorizedUser: 'bob',
    }),
    conn({
      cid: 3,
      start: ago(40_000),
      lastActivity: ago(39_500),
      stop: ago(10_000),
      reason: 'Client Closed',
      rttMs: 5.5,
      name: 'gone',
      subs: [sub(3, 'x', '1')],
    }),
  ];
  const all = (): Subscription[] => open.flatMap((c) => [...c.subscriptions()]);
  const sublistStats: SublistStats = {
    numSubscriptions: 6,
    numCache: 2,
    numInserts: 7,
    numRemoves: 1,
    numMatches: 8,
    cacheHitRate: 0.25,
    maxFanout: 3,
    avgFanout: 0.75,
  };
  const health = { error: null as string | null };
  const opts = options(optsOver);
  const stats: ServerStats = {
    inMsgs: 6,
    outMsgs: 5,
    inBytes: 28,
    outBytes: 25,
    slowConsumers: 1,
    totalConnections: 5,
    pendingBytes: 300,
    pendingLimit: 8 * 1024 * 1024,
    publisherPauses: 2,
  };
  const source: MonitorSource = {
    serverId: 'NTESTSERVERID',
    serverName: 'edge1',
    version: '2.9.10',
    start: new Date('2026-11-27T05:31:45.356Z'),
    configLoadTime: new Date('2026-11-27T05:31:45.400Z'),
    options: () => opts,
    clientPort: () => 14222,
    httpPort: () => 18222,
    stats: () => stats,
    openConnections: () => open,
    closedConnections: () => closed,
    subjectIndex: () => ({
      count: all().length,
      stats: () => ({ ...sublistStats }),
      all: () => all()[Symbol.iterator](),
      match: (subject: string) => {
        const hits = all().filter((s) => subjectMatches(s.subject, subject));
        const groups = new Map<string, Subscription[]>();
        for (const s of hits.filter((h) => h.queue !== '')) {
          groups.set(s.queue, [...(groups.get(s.queue) ?? []), s]);
        }
        return { plain: hits.filter((h) => h.queue === ''), queues: [...groups.values()] };
      },
    }),
    healthError: () => health.error,
  };
  return { source, open, closed, health, opts, stats };
}

function body(r: { body: unknown }): Record<string, unknown> {
  return r.body as Record<string, unknown>;
}

function cids(r: { body: unknown }): number[] {
  return (body(r).connections as { cid: number }[]).map((c) => c.cid);
}

function badRequest(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a 400');
}

const q = (s: string): URLSearchParams => new URLSearchParams(s);

// ---------------------------------------------------------------------------------------------

describe('connz', () => {
  it('answers the nats-server shape for open connections, in ConnInfo field order', () => {
    const { source } = fixture();
    const r = connz(source, q('subs=1'), NOW);
    expect(r.status).toBe(200);
    const b = body(r);
    expect(Object.keys(b)).toEqual(['server_id', 'now', 'num_connections', 'total', 'offset', 'limit', 'connections']);
    expect(b).toMatchObject({ server_id: 'NTESTSERVERID', now: '2026-11-27T06:00:00Z', num_connections: 3, total: 3, offset: 0, limit: 1024 });
    const [c1, c2, c4] = b.connections as Record<string, unknown>[];
    expect(c1).toEqual({
      cid: 1,
      kind: 'Client',
      type: 'nats',
      ip: '127.0.0.1',
      port: 50001,
      start: '2026-11-27T04:57:56.6Z',
      last_activity: '2026-11-27T05:59:49.8Z',
      stop: undefined,
      reason: undefined,
      rtt: '1.988976ms',
      uptime: '1h2m3s',
      idle: '10s',
      pending_bytes: 0,
      in_msgs: 0,
      out_msgs: 2,
      in_bytes: 0,
      out_bytes: 10,
      subscriptions: 3,
      name: 'c1',
      lang: 'node',
      version: '3.0.0',
      tls_version: undefined,
      tls_cipher_suite: undefined,
      authorized_user: undefined,
      subscriptions_list: ['foo', 'bar', 'baz'],
      subscriptions_list_detail: undefined,
      mqtt_client: undefined,
    });
    const defined = (o: Record<string, unknown>): string[] => Object.keys(o).filter((k) => o[k] !== undefined);
    expect(defined(c1)).toEqual([
      'cid', 'kind', 'type', 'ip', 'port', 'start', 'last_activity', 'rtt', 'uptime', 'idle',
      'pending_bytes', 'in_msgs', 'out_msgs', 'in_bytes', 'out_bytes', 'subscriptions',
      'name', 'lang', 'version', 'subscriptions_list',
    ]);
    expect(c2.rtt).toBe('363µs');
    expect(c2.name).toBeUndefined();
    expect(c4).toMatchObject({ type: 'mqtt', rtt: '0s', mqtt_client: 'sensor-1', tls_version: '1.3', tls_cipher_suite: 'TLS_AES_128_GCM_SHA256' });
  });

  it('lists closed connections with stop and reason, uptime and idle up to the stop', () => {
    const { source } = fixture();
    const r = connz(source, q('state=closed&subs=detail'), NOW);
    expect(cids(r)).toEqual([3, 5]);
    const [c3, c5] = body(r).connections as Record<string, unknown>[];
    expect(c3).toMatchObject({
      stop: '2026-11-27T05:59:50Z',
      reason: 'Client Closed',
      rtt: '5.5ms',
      uptime: '30s',
      idle: '29s',
      subscriptions: 1,
      subscriptions_list_detail: [{ account: '$G', subject: 'x', sid: '1', msgs: 0, cid: 3 }],
    });
    expect(c5).toMatchObject({ reason: 'Protocol Violation', pending_bytes: 3, subscriptions: 0 });
    expect(c5.subscriptions_list_detail).toBeUndefined();
    expect(body(r).total).toBe(2);
  });

  it('gives sub details with qgroup and max, no account for open connections', () => {
    const { source } = fixture();
    const r = connz(source, q('subs=DETAIL&cid=1'), NOW);
    const [c1] = body(r).connections as Record<string, unknown>[];
    expect(c1.subscriptions_list).toBeUndefined();
    expect(c1.subscriptions_list_detail).toEqual([
      { account: undefined, subject: 'foo', qgroup: undefined, sid: '1', msgs: 2, max: undefined, cid: 1 },
      { account: undefined, subject: 'bar', qgroup: 'q', sid: '2', msgs: 0, max: undefined, cid: 1 },
      { account: undefined, subject: 'baz', qgroup: undefined, sid: '3', msgs: 0, max: 5, cid: 1 },
    ]);
  });

  it('state any/all merges open and closed in cid order; state is case-insensitive', () => {
    const { source } = fixture();
    expect(cids(connz(source, q('state=all'), NOW))).toEqual([1, 2, 3, 4, 5]);
    expect(cids(connz(source, q('state=Any'), NOW))).toEqual([1, 2, 3, 4, 5]);
    expect(cids(connz(source, q('state=CLOSED'), NOW))).toEqual([3, 5]);
    expect(body(connz(source, q('state=all'), NOW)).total).toBe(5);
  });

  it.each([
    ['cid', 'all', [1, 2, 3, 4, 5]],
    ['start', 'all', [1, 2, 3, 4, 5]],
    ['subs', 'all', [1, 2, 3, 4, 5]],
    ['pending', 'all', [2, 5, 1, 3, 4]],
    ['msgs_to', 'all', [1, 2, 3, 4, 5]],
    ['msgs_from', 'all', [2, 1, 3, 4, 5]],
    ['bytes_to', 'all', [1, 2, 3, 4, 5]],
    ['bytes_from', 'all', [2, 1, 3, 4, 5]],
    ['last', 'all', [2, 4, 1, 5, 3]],
    ['idle', 'open', [1, 4, 2]],
    ['rtt', 'all', [3, 1, 2, 4, 5]],
    ['uptime', 'open', [4, 2, 1]],
    ['uptime', 'all', [4, 5, 3, 2, 1]],
    ['stop', 'closed', [3, 5]],
    ['reason', 'closed', [3, 5]],
  ])('sort=%s state=%s', (sort, state, expected) => {
    const { source } = fixture();
    expect(cids(connz(source, q(`sort=${sort}&state=${state}`), NOW))).toEqual(expected);
  });

  it('sorts descending on counters with cid order for ties', () => {
    const f = fixture();
    (f.open[2] as { outMsgs: number }).outMsgs = 9;
    expect(cids(connz(f.source, q('sort=msgs_to'), NOW))).toEqual([4, 1, 2]);
    expect(cids(connz(f.source, q('sort=subs'), NOW))).toEqual([1, 2, 4]);
  });

  it('pages with offset and limit; num_connections counts the page, total all', () => {
    const { source } = fixture();
    const r = connz(source, q('state=all&limit=2&offset=1'), NOW);
    expect(cids(r)).toEqual([2, 3]);
    expect(body(r)).toMatchObject({ num_connections: 2, total: 5, offset: 1, limit: 2 });
    const past = connz(source, q('offset=10'), NOW);
    expect(body(past)).toMatchObject({ num_connections: 0, total: 3, offset: 10, connections: [] });
    expect(body(connz(source, q('offset=-1&limit=0'), NOW))).toMatchObject({ offset: 0, limit: 1024 });
  });

  it('cid selects one connection with limit 1 and total of the state', () => {
    const { source } = fixture();
    const r = connz(source, q('cid=2'), NOW);
    expect(cids(r)).toEqual([2]);
    expect(body(r)).toMatchObject({ num_connections: 1, total: 3, limit: 1 });
    expect(cids(connz(source, q('cid=3'), NOW))).toEqual([]);
    expect(cids(connz(source, q('cid=3&state=closed'), NOW))).toEqual([3]);
    expect(cids(connz(source, q('cid=2&state=all'), NOW))).toEqual([2]);
    expect(cids(connz(source, q('cid=2&offset=1'), NOW))).toEqual([]);
  });

  it('auth adds authorized_user; user filters (total stays the state count, as nats-server)', () => {
    const { source } = fixture();
    const withAuth = connz(source, q('auth=true'), NOW);
    expect((body(withAuth).connections as Record<string, unknown>[]).map((c) => c.authorized_user)).toEqual([
      'alice',
      'bob',
      undefined,
    ]);
    const r = connz(source, q('user=bob&state=all'), NOW);
    expect(cids(r)).toEqual([2, 5]);
    expect(body(r)).toMatchObject({ num_connections: 2, total: 5 });
    expect((body(r).connections as Record<string, unknown>[])[0]?.authorized_user).toBeUndefined();
  });

  it('filters by mqtt_client and by account', () => {
    const { source } = fixture();
    expect(cids(connz(source, q('mqtt_client=sensor-1'), NOW))).toEqual([4]);
    expect(cids(connz(source, q('acc=$G'), NOW))).toEqual([1, 2, 4]);
    expect(body(connz(source, q('acc=OTHER'), NOW))).toMatchObject({ total: 0, connections: [] });
  });

  it('refuses bad queries with nats-server texts', () => {
    const { source } = fixture();
    const bad = (s: string): string => badRequest(() => connz(source, q(s), NOW));
    expect(bad('sort=bogus')).toBe('invalid sorting option: bogus');
    expect(bad('sort=CID')).toBe('invalid sorting option: CID');
    expect(bad('sort=stop')).toBe('sort by stop only valid on closed connections');
    expect(bad('sort=reason&state=all')).toBe('sort by reason only valid on closed connections');
    expect(bad('state=x')).toBe('Error decoding state for x');
    expect(bad('subs=maybe')).toBe(`Error decoding boolean for 'subs': strconv.ParseBool: parsing "maybe": invalid syntax`);
    expect(bad('auth=yes')).toBe(`Error decoding boolean for 'auth': strconv.ParseBool: parsing "yes": invalid syntax`);
    expect(bad('offset=x')).toBe(`Error decoding int for 'offset': strconv.Atoi: parsing "x": invalid syntax`);
    expect(bad('cid=-1')).toBe(`Error decoding uint64 for 'cid': strconv.ParseUint: parsing "-1": invalid syntax`);
    // Decoding errors come before the sort check, as in nats-server.
    expect(bad('sort=bogus&state=x')).toBe('Error decoding state for x');
  });
});

describe('subsz', () => {
  it('answers the statistics alone by default', () => {
    const { source } = fixture();
    const r = subsz(source, q(''), NOW);
    expect(r.body).toEqual({
      num_subscriptions: 6,
      num_cache: 2,
      num_inserts: 7,
      num_removes: 1,
      num_matches: 8,
      cache_hit_rate: 0.25,
      max_fanout: 3,
      avg_fanout: 0.75,
    });
  });

  it('lists subscriptions with subs=1, paged', () => {
    const { source } = fixture();
    const r = subsz(source, q('subs=1&limit=2&offset=1'), NOW);
    const b = body(r);
    expect(Object.keys(b)).toEqual([
      'server_id', 'now', 'num_subscriptions', 'num_cache', 'num_inserts', 'num_removes', 'num_matches',
      'cache_hit_rate', 'max_fanout', 'avg_fanout', 'total', 'offset', 'limit', 'subscriptions_list',
    ]);
    expect(b).toMatchObject({ server_id: 'NTESTSERVERID', now: '2026-11-27T06:00:00Z', total: 6, offset: 1, limit: 2 });
    expect(b.subscriptions_list).toEqual([
      { account: '$G', subject: 'bar', qgroup: 'q', sid: '2', msgs: 0, max: undefined, cid: 1 },
      { account: '$G', subject: 'baz', qgroup: undefined, sid: '3', msgs: 0, max: 5, cid: 1 },
    ]);
  });

  it('test= keeps only subscriptions a publish on that subject reaches', () => {
    const { source } = fixture();
    const b = body(subsz(source, q('subs=1&test=foo.bar'), NOW));
    expect(b.total).toBe(1);
    expect(b.subscriptions_list).toEqual([
      { account: '$G', subject: 'foo.*', qgroup: undefined, sid: '8', msgs: 0, max: undefined, cid: 2 },
    ]);
    const foo = body(subsz(source, q('subs=true&test=foo'), NOW));
    expect((foo.subscriptions_list as { sid: string }[]).map((s) => s.sid)).toEqual(['1', '7']);
    const queued = body(subsz(source, q('subs=1&test=sensors.a.b'), NOW));
    expect(queued.subscriptions_list).toEqual([
      { account: '$G', subject: 'sensors.>', qgroup: 'g', sid: '1', msgs: 0, max: undefined, cid: 4 },
    ]);
  });

  it('falls back to the statistics alone when the page is empty', () => {
    const { source } = fixture();
    expect(Object.keys(body(subsz(source, q('subs=1&test=nobody'), NOW)))).not.toContain('server_id');
    expect(Object.keys(body(subsz(source, q('subs=1&offset=99'), NOW)))).not.toContain('total');
    expect(Object.keys(body(subsz(source, q('subs=0&test=foo'), NOW)))).not.toContain('total');
  });

  it('refuses a test subject with wildcards and bad booleans', () => {
    const { source } = fixture();
    expect(badRequest(() => subsz(source, q('test=foo.*'), NOW))).toBe(
      'invalid test subject, must be valid publish subject: foo.*',
    );
    expect(badRequest(() => subsz(source, q('subs=maybe'), NOW))).toBe(
      `Error decoding boolean for 'subs': strconv.ParseBool: parsing "maybe": invalid syntax`,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Over HTTP

const servers: MonitorServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(f: Fixture, basePath = ''): Promise<{ m: MonitorServer; url: string }> {
  const m = new MonitorServer(f.source, { host: '127.0.0.1', port: 0, basePath });
  servers.push(m);
  const port = await m.listen();
  expect(port).toBeGreaterThan(0);
  return { m, url: `http://127.0.0.1:${port}` };
}

describe('MonitorServer over HTTP', () => {
  it('answers pretty JSON without trailing newline, application/json', async () => {
    const f = fixture();
    const { url } = await start(f);
    const res = await fetch(`${url}/subsz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const text = await res.text();
    expect(text.startsWith('{\n  "num_subscriptions": 6,\n')).toBe(true);
    expect(text.endsWith('\n}')).toBe(true);
    expect(JSON.parse(text)).toMatchObject({ avg_fanout: 0.75 });
  });

  it('wraps JSONP with ?callback as application/javascript', async () => {
    const { url } = await start(fixture());
    const res = await fetch(`${url}/healthz?callback=cb`);
    expect(res.headers.get('content-type')).toBe('application/javascript');
    expect(await res.text()).toBe('cb({"status":"ok"})');
    const bad = await fetch(`${url}/varz?callback=${encodeURIComponent('alert(1);x')}`);
    expect(bad.status).toBe(400);
  });

  it('healthz: compact ok, 503 unavailable with the source error, validates its booleans', async () => {
    const f = fixture();
    const { url } = await start(f);
    let res = await fetch(`${url}/healthz?js-enabled-only=true&js-server-only=1`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"status":"ok"}');
    f.health.error = 'JetStream is not enabled';
    res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('{"status":"unavailable","error":"JetStream is not enabled"}');
    res = await fetch(`${url}/healthz?js-enabled-only=maybe`);
    expect(res.status).toBe(400);
    expect(await res.text()).toBe(
      `Error decoding boolean for 'js-enabled-only': strconv.ParseBool: parsing "maybe": invalid syntax`,
    );
  });

  it('404s unknown paths with Go text; 400s with plain text', async () => {
    const { url } = await start(fixture());
    let res = await fetch(`${url}/nope`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await res.text()).toBe('404 page not found\n');
    res = await fetch(`${url}/varz/`);
    expect(res.status).toBe(404);
    res = await fetch(`${url}/connz?sort=bogus`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await res.text()).toBe('invalid sorting option: bogus');
  });

  it('answers any method; HEAD without a body', async () => {
    const { url } = await start(fixture());
    const post = await fetch(`${url}/healthz`, { method: 'POST', body: 'ignored' });
    expect(post.status).toBe(200);
    expect(await post.text()).toBe('{"status":"ok"}');
    const head = await fetch(`${url}/varz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('serves /varz in the 2.9.10 field order and counts every request per path', async () => {
    const f = fixture({ serverTags: ['region:eu'], profile: undefined });
    const { url } = await start(f);
    await fetch(`${url}/healthz`);
    await fetch(`${url}/subscriptionsz`);
    await fetch(`${url}/connz?sort=bogus`);
    await fetch(`${url}/`);
    await fetch(`${url}/nope`);
    const res = await fetch(`${url}/varz`);
    const v = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(v)).toEqual([
      'server_id', 'server_name', 'version', 'proto', 'go', 'host', 'port', 'max_connections',
      'ping_interval', 'ping_max', 'http_host', 'http_port', 'http_base_path', 'https_port',
      'auth_timeout', 'max_control_line', 'max_payload', 'max_pending', 'cluster', 'gateway', 'leaf',
      'mqtt', 'websocket', 'jetstream', 'tls_timeout', 'write_deadline', 'start', 'now', 'uptime',
      'mem', 'cores', 'gomaxprocs', 'cpu', 'connections', 'total_connections', 'routes', 'remotes',
      'leafnodes', 'in_msgs', 'out_msgs', 'in_bytes', 'out_bytes', 'slow_consumers', 'subscriptions',
      'http_req_stats', 'config_load_time', 'tags', 'system_account', 'edge',
    ]);
    expect(v).toMatchObject({
      server_id: 'NTESTSERVERID',
      server_name: 'edge1',
      version: '2.9.10',
      proto: 1,
      host: '127.0.0.1',
      port: 14222,
      max_connections: 65536,
      ping_interval: 120_000_000_000,
      ping_max: 2,
      http_host: '127.0.0.1',
      http_port: 18222,
      http_base_path: '',
      https_port: 0,
      auth_timeout: 2,
      max_control_line: 4096,
      max_payload: 1048576,
      max_pending: 67108864,
      cluster: {},
      jetstream: {},
      tls_timeout: 2,
      write_deadline: 10_000_000_000,
      start: '2026-11-27T05:31:45.356Z',
      connections: 3,
      total_connections: 5,
      in_msgs: 6,
      out_msgs: 5,
      in_bytes: 28,
      out_bytes: 25,
      slow_consumers: 1,
      subscriptions: 6,
      http_req_stats: { '/': 1, '/connz': 1, '/healthz': 1, '/subsz': 1, '/varz': 1 },
      config_load_time: '2026-11-27T05:31:45.4Z',
      tags: ['region:eu'],
      system_account: '$SYS',
      edge: { profile: null, memory_budget: 64 * 1024 * 1024, pending_bytes: 300, max_pending_total: 8 * 1024 * 1024, publisher_pauses: 2 },
    });
    expect(v.go).toBe(`node${process.versions.node}`);
    expect(v.gomaxprocs).toBe(v.cores);
    expect(v.mem as number).toBeGreaterThan(1_000_000);
    expect(typeof v.cpu).toBe('number');
    expect(v.now as string).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(v.uptime as string).toMatch(/^(\d+[ydhm])*\d+s$/);
    expect(Object.keys(v.http_req_stats as object)).toEqual(['/', '/connz', '/healthz', '/subsz', '/varz']);
  });

  it('varz shows auth/tls flags only when true, the JetStream config, the profile, and extensions', async () => {
    const f = fixture({
      authorization: { user: 'a', password: 'b', timeoutMs: 1500 },
      tls: { certFile: 'c', keyFile: 'k', verify: true, timeoutMs: 3000, handshakeFirst: false },
      maxSubscriptions: 100,
      jetstream: { enabled: true, storeDir: '/data/js', maxMemoryStore: 1000, maxFileStore: 2000, syncInterval: 'always' },
      profile: {
        name: 'pi-zero-2w', description: '', memoryBudget: 1, rssCeiling: 1, maxOldSpaceMb: 1, maxSemiSpaceMb: 1,
        maxConnections: 1, maxPending: 1, maxPayload: 1, maxFileStore: 1, sqliteCacheSize: 1, syncInterval: 'always', walMaxBytes: 1,
      },
    });
    const m = new MonitorServer(f.source, {
      host: '127.0.0.1',
      port: 0,
      basePath: '',
      varzExtensions: [(v) => { v.leafnodes = 2; }],
    });
    servers.push(m);
    m.addVarzExtension((v) => {
      (v.jetstream as { stats: { storage: number } }).stats.storage = 36;
      v.extra = 'last';
    });
    const port = await m.listen();
    const v = (await (await fetch(`http://127.0.0.1:${port}/varz`)).json()) as Record<string, unknown>;
    expect(v).toMatchObject({
      auth_required: true,
      tls_required: true,
      tls_verify: true,
      max_subscriptions: 100,
      auth_timeout: 1.5,
      tls_timeout: 3,
      leafnodes: 2,
      jetstream: {
        config: { max_memory: 1000, max_storage: 2000, store_dir: '/data/js' },
        stats: { memory: 0, storage: 36, reserved_memory: 0, reserved_storage: 0, accounts: 1, ha_assets: 0, api: { total: 0, errors: 0 } },
      },
      edge: { profile: 'pi-zero-2w' },
    });
    const keys = Object.keys(v);
    expect(keys.indexOf('auth_required')).toBe(keys.indexOf('port') + 1);
    expect(keys.indexOf('leafnodes')).toBe(keys.indexOf('remotes') + 1);
    expect(keys.at(-1)).toBe('extra');
  });

  it('honours http_base_path; the index sits at the base; stats keys stay unprefixed', async () => {
    const f = fixture();
    const { m, url } = await start(f, 'mon/');
    expect((await fetch(`${url}/varz`)).status).toBe(404);
    expect((await fetch(`${url}/`)).status).toBe(404);
    expect((await fetch(`${url}/mon/connz`)).status).toBe(200);
    expect((await fetch(`${url}/mon/subscriptionsz`)).status).toBe(200);
    const index = await fetch(`${url}/mon`);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await index.text();
    for (const p of ['varz', 'connz', 'subsz', 'healthz']) expect(html).toContain(`href="/mon/${p}"`);
    expect(Object.fromEntries(m.requestCounts())).toEqual({ '/connz': 1, '/subsz': 1, '/': 1 });
  });

  it('route() adds endpoints, sync or async, listed on the index page', async () => {
    const { m, url } = await start(fixture());
    m.route('/jsz', (query) => ({ status: 200, body: { acc: query.get('acc'), big: 18446744073709551615n } }));
    m.route('/metrics', async () => ({ status: 200, body: 'nats_up 1\n', contentType: 'text/plain; version=0.0.4' }));
    const jsz = await fetch(`${url}/jsz?acc=A`);
    expect(await jsz.text()).toBe('{\n  "acc": "A",\n  "big": 18446744073709551615\n}');
    const metrics = await fetch(`${url}/metrics?callback=x`);
    expect(metrics.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    expect(await metrics.text()).toBe('nats_up 1\n');
    expect(await (await fetch(`${url}/`)).text()).toContain('href="/jsz"');
    expect(m.requestCounts().get('/jsz')).toBe(1);
  });

  it('a throwing endpoint gives 500 and the server keeps answering', async () => {
    const { m, url } = await start(fixture());
    m.route('/boom', () => {
      throw new Error('kaput');
    });
    const res = await fetch(`${url}/boom`);
    expect(res.status).toBe(500);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('normalizes the base path as nats-server does', () => {
    expect(normalizeBasePath('')).toBe('/');
    expect(normalizeBasePath('/')).toBe('/');
    expect(normalizeBasePath('mon')).toBe('/mon');
    expect(normalizeBasePath('/mon/')).toBe('/mon');
    expect(normalizeBasePath('//a//b/../c/')).toBe('/a/c');
  });

  it('close() releases the port and can be called twice', async () => {
    const { m, url } = await start(fixture());
    await m.close();
    await m.close();
    await expect(fetch(`${url}/varz`)).rejects.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// Cross-check against the real nats-server (Debian 2.9.10): same questions, same field names
// in the same order, same error texts.

const natsServerVersion = ((): string | undefined => {
  const r = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
})();

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A raw NATS client: sends `lines`, then PING, and resolves once the server's PONG came back. */
async function rawClient(port: number, lines: string[]): Promise<net.Socket> {
  const sock = net.connect(port, '127.0.0.1');
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('PONG\r\n')) resolve();
    });
    sock.write([...lines, 'PING', ''].join('\r\n'));
  });
  return sock;
}

/** Keys of a JSON object in order, leaving out those undefined (as Go's omitempty would). */
function keysOf(o: unknown): string[] {
  const rec = o as Record<string, unknown>;
  return Object.keys(rec).filter((k) => rec[k] !== undefined);
}

describe.skipIf(natsServerVersion === undefined)('same shapes and texts as the real nats-server', () => {
  let proc: ChildProcess | undefined;
  const sockets: net.Socket[] = [];
  let real = '';
  let ours = '';
  let monitor: MonitorServer | undefined;

  beforeAll(async () => {
    const [port, mport] = [await freePort(), await freePort()];
    proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-m', String(mport), '-n', 'edge1']);
    await new Promise<void>((resolve, reject) => {
      let log = '';
      proc?.stderr?.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('Server is ready')) resolve();
      });
      proc?.once('exit', (code) => reject(new Error(`nats-server exited ${code}: ${log}`)));
    });
    real = `http://127.0.0.1:${mport}`;
    sockets.push(
      await rawClient(port, [
        'CONNECT {"name":"c1","lang":"node","version":"3.0.0","verbose":false}',
        'SUB foo 1', 'SUB bar q 2', 'SUB baz 3', 'UNSUB 3 5',
      ]),
    );
    const gone = await rawClient(port, ['CONNECT {"name":"gone","verbose":false}', 'SUB x 1']);
    gone.end();
    // The close is processed asynchronously by the server: ask until it lists it.
    for (;;) {
      const c = (await (await fetch(`${real}/connz?state=closed`)).json()) as { total: number };
      if (c.total === 1) break;
      await new Promise((r) => setImmediate(r));
    }
    monitor = new MonitorServer(fixture().source, { host: '127.0.0.1', port: 0, basePath: '' });
    ours = `http://127.0.0.1:${await monitor.listen()}`;
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    proc?.kill();
    await monitor?.close();
  });

  const both = async (path: string): Promise<[Response, Response]> =>
    Promise.all([fetch(real + path), fetch(ours + path)]);

  it('varz: same fields in the same order (ours adds "edge")', async () => {
    const [r, o] = await both('/varz');
    const theirs = keysOf(await r.json());
    const mine = keysOf(await o.json()).filter((k) => k !== 'edge' && k !== 'tags');
    expect(mine).toEqual(theirs);
  });

  it('connz: same top-level fields, entry fields for open and closed, sub details', async () => {
    for (const query of ['/connz?subs=1&cid=1', '/connz?subs=1&state=closed', '/connz?subs=detail&cid=1']) {
      const realPath = query.replace('cid=1', 'cid=' + String(await realCid()));
      const [r, o] = await Promise.all([fetch(real + realPath), fetch(ours + query)]);
      const rb = (await r.json()) as { connections: Record<string, unknown>[] };
      const ob = (await o.json()) as { connections: Record<string, unknown>[] };
      expect(keysOf(ob)).toEqual(keysOf(rb));
      const rc = rb.connections[0];
      const oc = ob.connections.find((c) => c.name === rc?.name);
      expect(keysOf(oc)).toEqual(keysOf(rc));
      const detail = (c: Record<string, unknown> | undefined): string[][] =>
        ((c?.subscriptions_list_detail ?? []) as { sid: string }[])
          .slice()
          .sort((a, b) => a.sid.localeCompare(b.sid))
          .map(keysOf);
      expect(detail(oc)).toEqual(detail(rc));
    }
  });

  async function realCid(): Promise<number> {
    const c = (await (await fetch(`${real}/connz`)).json()) as { connections: { cid: number }[] };
    return c.connections[0]?.cid ?? 0;
  }

  it('subsz: same fields with and without the list', async () => {
    const [r, o] = await both('/subsz');
    expect(keysOf(await o.json())).toEqual(keysOf(await r.json()));
    const [rl, ol] = await both('/subsz?subs=1&test=foo');
    const rb = (await rl.json()) as { subscriptions_list: unknown[] };
    const ob = (await ol.json()) as { subscriptions_list: unknown[] };
    expect(keysOf(ob)).toEqual(keysOf(rb));
    expect(keysOf(ob.subscriptions_list[0])).toEqual(keysOf(rb.subscriptions_list[0]));
  });

  it.each([
    '/connz?sort=bogus',
    '/connz?sort=stop',
    '/connz?sort=reason&state=open',
    '/connz?state=x',
    '/connz?subs=maybe',
    '/connz?auth=yes',
    '/connz?offset=x',
    '/connz?limit=1.5',
    '/connz?offset=99999999999999999999',
    '/connz?cid=-1',
    '/subsz?subs=maybe',
    '/subsz?limit=x',
    '/subsz?test=foo.*',
    '/healthz?js-enabled-only=maybe',
    '/nope',
  ])('%s: same status, content type and body', async (path) => {
    const [r, o] = await both(path);
    expect(o.status).toBe(r.status);
    expect(o.headers.get('content-type')).toBe(r.headers.get('content-type'));
    expect(await o.text()).toBe(await r.text());
  });

  it('healthz and JSONP: same bytes and content types', async () => {
    for (const path of ['/healthz', '/healthz?callback=cb', '/healthz?js-server-only=1']) {
      const [r, o] = await both(path);
      expect(o.status).toBe(r.status);
      expect(o.headers.get('content-type')).toBe(r.headers.get('content-type'));
      expect(await o.text()).toBe(await r.text());
    }
    const [r, o] = await both('/subsz?callback=x');
    const [rt, ot] = [await r.text(), await o.text()];
    expect(o.headers.get('content-type')).toBe(r.headers.get('content-type'));
    expect(ot.slice(0, 24)).toBe(rt.slice(0, 24)); // 'x({\n  "num_subscriptions": '
    expect(rt.endsWith('\n})')).toBe(true);
    expect(ot.endsWith('\n})')).toBe(true);
  });
});
