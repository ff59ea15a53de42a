/**
 * Core NATS behaviour, one table run against Debian's nats-server and our bundle: every case
 * passes on the real server first, so a failure on nats-edge is a deviation from it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  createInbox,
  headers,
  NoRespondersError,
  RequestError,
  type ConnectionOptions,
  type Msg,
  type NatsConnection,
  type Subscription,
  type SubscriptionOptions,
} from '@nats-io/transport-node';
import {
  monitor,
  pollUntil,
  serverKinds,
  startServer,
  stopAllServers,
  within,
  type RunningServer,
} from '../helpers/servers.js';
import { RawClient } from '../helpers/raw-client.js';

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
  until(n: number, ms = 5000): Promise<Msg[]> {
    if (this.msgs.length >= n) return Promise.resolve(this.msgs);
    const reached = new Promise<Msg[]>((wake) => this.waiters.push({ n, wake: () => wake(this.msgs) }));
    return within(reached, ms, `${n} messages (have ${this.msgs.length})`);
  }

  strings(): string[] {
    return this.msgs.map((m) => m.string());
  }
}

function collect(nc: NatsConnection, subject: string, opts: SubscriptionOptions = {}): { sub: Subscription; c: Collector } {
  const c = new Collector();
  const sub = nc.subscribe(subject, { ...opts, callback: c.callback });
  return { sub, c };
}

describe.each(serverKinds())('core table: %s', (kind) => {
  let srv: RunningServer;
  const open: NatsConnection[] = [];

  async function client(opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.url, reconnect: false, ...opts });
    open.push(nc);
    return nc;
  }

  async function raw(): Promise<RawClient> {
    return RawClient.connect(srv.port);
  }

  beforeAll(async () => {
    srv = await startServer(kind);
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close())));
  });

  afterAll(async () => {
    await stopAllServers();
  });

  it('pub/sub delivers payloads in order to a subscriber on another connection', async () => {
    const sub = await client();
    const pub = await client();
    const { c } = collect(sub, 'ps.a');
    await sub.flush();
    pub.publish('ps.a', 'one');
    pub.publish('ps.a', 'two');
    pub.publish('ps.b', 'elsewhere');
    pub.publish('ps.a', 'three');
    await c.until(3);
    await sub.flush();
    expect(c.strings()).toEqual(['one', 'two', 'three']);
    expect(c.msgs.map((m) => m.subject)).toEqual(['ps.a', 'ps.a', 'ps.a']);
  });

  it('wildcards: * matches one token, > one or more', async () => {
    const sub = await client();
    const pub = await client();
    const star = collect(sub, 'wc.*');
    const gt = collect(sub, 'wc.>');
    const mid = collect(sub, 'wc.*.b');
    await sub.flush();
    for (const s of ['wc', 'wc.a', 'wc.a.b', 'wc.a.c', 'wc.x.b.c', 'wcx.a', 'wc.z']) pub.publish(s, s);
    // wc.z is last and matches * and >: once it arrived, everything before it was routed.
    await star.c.until(2);
    await gt.c.until(5);
    await sub.flush();
    expect(star.c.msgs.map((m) => m.subject)).toEqual(['wc.a', 'wc.z']);
    expect(gt.c.msgs.map((m) => m.subject)).toEqual(['wc.a', 'wc.a.b', 'wc.a.c', 'wc.x.b.c', 'wc.z']);
    expect(mid.c.msgs.map((m) => m.subject)).toEqual(['wc.a.b']);
  });

  it('queue group: each message to exactly one member, and to every plain subscriber', async () => {
    const N = 300;
    const members = await Promise.all([client(), client(), client()]);
    const groups = members.map((nc) => collect(nc, 'work.items', { queue: 'workers' }).c);
    const plainConn = await client();
    const plain = collect(plainConn, 'work.items').c;
    await Promise.all([...members, plainConn].map((nc) => nc.flush()));
    const pub = await client();
    for (let i = 0; i < N; i++) pub.publish('work.items', String(i));
    await pub.flush();
    await plain.until(N);
    await within(
      (async () => {
        while (groups.reduce((a, g) => a + g.msgs.length, 0) < N) await Promise.race(groups.map((g) => g.until(g.msgs.length + 1, 5000)));
      })(),
      10000,
      'queue group total',
    );
    // A round trip on each member: anything still in flight would now have arrived.
    await Promise.all(members.map((nc) => nc.flush()));
    await plainConn.flush();
    const counts = groups.map((g) => g.msgs.length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(N);
    for (const n of counts) expect(n).toBeGreaterThan(0);
    const seen = groups.flatMap((g) => g.strings()).map(Number).sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(plain.strings()).toEqual(Array.from({ length: N }, (_, i) => String(i)));
  });

  it('request/reply, including concurrent requests', async () => {
    const svc = await client();
    svc.subscribe('svc.upper', {
      callback: (_err, m) => {
        m.respond(m.string().toUpperCase());
      },
    });
    await svc.flush();
    const req = await client();
    const r = await req.request('svc.upper', 'hello', { timeout: 5000 });
    expect(r.string()).toBe('HELLO');
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => req.request('svc.upper', `m${i}`, { timeout: 5000 })));
    expect(many.map((m) => m.string())).toEqual(Array.from({ length: 20 }, (_, i) => `M${i}`));
  });

  it('headers round trip (names, repeated values) and the exact HMSG bytes', async () => {
    const sub = await client();
    const pub = await client();
    const { c } = collect(sub, 'hdr.x');
    const r = await raw();
    r.send('CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nSUB hdr.x 7\r\n');
    await r.ping();
    r.clear();
    await sub.flush();
    const h = headers();
    h.set('X-Foo', 'bar');
    h.append('X-Multi', 'a');
    h.append('X-Multi', 'b');
    pub.publish('hdr.x', 'payload', { headers: h });
    const [m] = await c.until(1);
    expect(m?.string()).toBe('payload');
    expect(m?.headers?.get('X-Foo')).toBe('bar');
    expect(m?.headers?.values('X-Multi')).toEqual(['a', 'b']);
    const block = 'NATS/1.0\r\nX-Foo: bar\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n';
    const expected = `HMSG hdr.x 7 ${block.length} ${block.length + 7}\r\n${block}payload\r\n`;
    await r.waitFor((t) => t.length >= expected.length);
    expect(r.text()).toBe(expected);
    r.close();
  });

  it('empty headers() go out as HPUB with a 0-byte header block and arrive as plain MSG', async () => {
    const sub = await client();
    const pub = await client();
    const { c } = collect(sub, 'hdr.empty');
    const r = await raw();
    r.send('CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nSUB hdr.empty 1\r\n');
    await r.ping();
    r.clear();
    await sub.flush();
    pub.publish('hdr.empty', 'hello', { headers: headers() });
    const [m] = await c.until(1);
    expect(m?.string()).toBe('hello');
    expect(m?.headers).toBeUndefined();
    await r.waitFor('hello\r\n');
    expect(r.text()).toBe('MSG hdr.empty 1 5\r\nhello\r\n');
    r.close();
  });

  it('raw HPUB with 0-byte headers and with a status-less block', async () => {
    const r = await raw();
    r.send('CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nSUB h0 1\r\n');
    r.send('HPUB h0 0 5\r\nhello\r\nHPUB h0 12 14\r\nNATS/1.0\r\n\r\nhi\r\n');
    const t = await r.ping();
    expect(t).toBe('MSG h0 1 5\r\nhello\r\nHMSG h0 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPONG\r\n');
    r.close();
  });

  it('no responders: the request rejects with the no-responders error, status 503', async () => {
    const nc = await client();
    const err = await nc.request('nobody.home', 'x', { timeout: 5000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).isNoResponders()).toBe(true);
    expect((err as RequestError).cause).toBeInstanceOf(NoRespondersError);

    // The status message itself, as an ordinary subscription sees it.
    const inbox = createInbox();
    const { c } = collect(nc, inbox);
    nc.publish('nobody.home', 'x', { reply: inbox });
    const [m] = await c.until(1);
    expect(m?.headers?.code).toBe(503);
    expect(m?.data.length).toBe(0);
  });

  it('no responders: exact bytes on the wire, and none without a matching reply subscription', async () => {
    const r = await raw();
    r.send('CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n');
    r.send('SUB _INBOX.abc.* 9\r\nPUB svc.none _INBOX.abc.1 2\r\nhi\r\nPUB svc.none _OTHER.1 2\r\nhi\r\n');
    const t = await r.ping();
    expect(t).toBe('HMSG _INBOX.abc.1 9 16 16\r\nNATS/1.0 503\r\n\r\n\r\nPONG\r\n');
    r.close();
  });

  it('UNSUB with max: a subscription with max 2 gets exactly 2', async () => {
    const nc = await client();
    const pub = await client();
    const { sub, c } = collect(nc, 'max.x', { max: 2 });
    await nc.flush();
    for (let i = 0; i < 5; i++) pub.publish('max.x', String(i));
    await pub.flush();
    await c.until(2);
    await within(sub.closed, 5000, 'subscription closed after max');
    await nc.flush();
    expect(c.strings()).toEqual(['0', '1']);

    const r = await raw();
    r.send('CONNECT {"verbose":false,"pedantic":false}\r\nSUB m 1\r\nUNSUB 1 2\r\n');
    r.send('PUB m 1\r\na\r\nPUB m 1\r\nb\r\nPUB m 1\r\nc\r\n');
    expect(await r.ping()).toBe('MSG m 1 1\r\na\r\nMSG m 1 1\r\nb\r\nPONG\r\n');
    r.close();
  });

  it('noEcho: own publishes are not delivered to own subscriptions', async () => {
    const quiet = await client({ noEcho: true });
    const loud = await client();
    const q = collect(quiet, 'echo.x').c;
    const l = collect(loud, 'echo.x').c;
    await Promise.all([quiet.flush(), loud.flush()]);
    quiet.publish('echo.x', 'from-quiet');
    await quiet.flush();
    loud.publish('echo.x', 'from-loud');
    await loud.flush();
    await q.until(1);
    await l.until(2);
    await quiet.flush();
    expect(q.strings()).toEqual(['from-loud']);
    expect(l.strings()).toEqual(['from-quiet', 'from-loud']);
  });

  it('drain: messages already sent are processed, then the connection closes', async () => {
    const nc = await client();
    const pub = await client();
    let seen = 0;
    nc.subscribe('drain.x', {
      callback: () => {
        seen++;
      },
    });
    await nc.flush();
    for (let i = 0; i < 200; i++) pub.publish('drain.x', String(i));
    await pub.flush();
    await within(nc.drain(), 10000, 'drain');
    expect(seen).toBe(200);
    expect(nc.isClosed()).toBe(true);
    // After the drain, the server no longer delivers to it.
    pub.publish('drain.x', 'late');
    await pub.flush();
    expect(seen).toBe(200);
  });

  it('flush round trip and rtt', async () => {
    const nc = await client();
    await within(nc.flush(), 5000, 'flush');
    const rtt = await nc.rtt();
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(rtt).toBeLessThan(5000);
  });

  it('many messages keep publish order', async () => {
    const N = 20000;
    const sub = await client();
    const pub = await client();
    const { c } = collect(sub, 'order.x');
    await sub.flush();
    for (let i = 0; i < N; i++) pub.publish('order.x', String(i));
    await pub.flush();
    await c.until(N, 20000);
    const got = c.strings();
    let firstBad = -1;
    for (let i = 0; i < N; i++) {
      if (got[i] !== String(i)) {
        firstBad = i;
        break;
      }
    }
    expect(firstBad).toBe(-1);
    expect(got.length).toBe(N);
  });

  it('a payload of exactly max_payload bytes arrives intact', async () => {
    const sub = await client();
    const pub = await client();
    const max = pub.info?.max_payload;
    expect(max).toBe(1048576);
    const { c } = collect(sub, 'big.x');
    await sub.flush();
    const data = new Uint8Array(max ?? 0);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    pub.publish('big.x', data);
    const near = data.subarray(0, data.length - 100);
    pub.publish('big.x', near);
    const [a, b] = await c.until(2, 10000);
    expect(a?.data.length).toBe(data.length);
    expect(Buffer.from(a?.data ?? []).equals(Buffer.from(data))).toBe(true);
    expect(Buffer.from(b?.data ?? []).equals(Buffer.from(near))).toBe(true);
  });

  describe('raw protocol', () => {
    it('PING before CONNECT gets PONG', async () => {
      const r = await raw();
      r.send('PING\r\n');
      await r.waitFor('PONG\r\n');
      expect(r.text()).toBe('PONG\r\n');
      expect(r.closedNow).toBe(false);
      r.close();
    });

    it('INFO line shape', async () => {
      const r = await RawClient.connect(srv.port, { readInfo: false });
      const t = await r.waitFor('\r\n');
      expect(t).toMatch(/^INFO \{.*\} \r\n$/);
      const info = JSON.parse(t.slice(5, -3)) as Record<string, unknown>;
      expect(info['proto']).toBe(1);
      expect(info['headers']).toBe(true);
      expect(info['max_payload']).toBe(1048576);
      expect(info['port']).toBe(srv.port);
      expect(typeof info['server_id']).toBe('string');
      expect(typeof info['version']).toBe('string');
      expect(info['auth_required']).toBeUndefined();
      r.close();
    });

    it('verbose mode: +OK for CONNECT, SUB, PUB, before the resulting MSG', async () => {
      const r = await raw();
      r.send('CONNECT {"verbose":true}\r\nSUB foo 1\r\nPUB foo 5\r\nhello\r\nUNSUB 1\r\nPUB foo 1\r\nx\r\n');
      expect(await r.ping()).toBe('+OK\r\n+OK\r\n+OK\r\nMSG foo 1 5\r\nhello\r\n+OK\r\n+OK\r\nPONG\r\n');
      r.close();
    });

    it('no CONNECT at all behaves as verbose', async () => {
      const r = await raw();
      r.send('SUB foo 1\r\nPUB foo 2\r\nhi\r\n');
      expect(await r.ping()).toBe('+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\nPONG\r\n');
      r.close();
    });

    it('pedantic: invalid publish subject errs but is still delivered', async () => {
      const r = await raw();
      r.send('CONNECT {"verbose":false,"pedantic":true}\r\nSUB > 1\r\nPUB foo.* 2\r\nhi\r\n');
      expect(await r.ping()).toBe("-ERR 'Invalid Publish Subject'\r\nMSG foo.* 1 2\r\nhi\r\nPONG\r\n");
      r.close();
    });

    it('not pedantic: foo..bar is accepted silently', async () => {
      const r = await raw();
      r.send('CONNECT {"verbose":false,"pedantic":false}\r\nSUB > 1\r\nPUB foo..bar 2\r\nhi\r\nPUB ok 0\r\n\r\n');
      // `>` cannot match an empty token, so only `ok` is delivered.
      expect(await r.ping()).toBe('MSG ok 1 0\r\n\r\nPONG\r\n');
      r.close();
    });

    it('CONNECT {} means verbose, pedantic and echo', async () => {
      const r = await raw();
      r.send('CONNECT {}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPUB foo.> 2\r\nhi\r\n');
      expect(await r.ping()).toBe(
        "+OK\r\n+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\n-ERR 'Invalid Publish Subject'\r\n+OK\r\nPONG\r\n",
      );
      r.close();
    });

    it('echo:false on a raw connection', async () => {
      const r = await raw();
      r.send('CONNECT {"verbose":false,"pedantic":false,"echo":false}\r\nSUB e 1\r\nPUB e 1\r\na\r\n');
      expect(await r.ping()).toBe('PONG\r\n');
      r.close();
    });

    it('ops are case-insensitive, args split on runs of spaces and tabs, a bare LF ends a line', async () => {
      const r = await raw();
      r.send('connect {"verbose":false,"pedantic":false}\r\nsub  foo\t 1\npub foo \t3\nabc\r\nPing\r\n');
      await r.waitFor('PONG\r\n');
      expect(r.text()).toBe('MSG foo 1 3\r\nabc\r\nPONG\r\n');
      r.close();
    });

    it('reused sid is ignored, UNSUB of unknown sid is fine, a second SUB still counts', async () => {
      const r = await raw();
      r.send('CONNECT {"verbose":false,"pedantic":false}\r\nSUB a 1\r\nSUB b 1\r\nUNSUB 99\r\nSUB a 2\r\n');
      r.send('PUB a 1\r\nx\r\nPUB b 1\r\ny\r\n');
      const t = await r.ping();
      // Delivery order between two subscriptions of one connection is not defined.
      const frames = t.split(/(?=MSG |PONG)/).sort();
      expect(frames).toEqual(['MSG a 1 1\r\nx\r\n', 'MSG a 2 1\r\nx\r\n', 'PONG\r\n']);
      r.close();
    });

    it('zero-length payload and reply subject echo', async () => {
      const r = await raw();
      r.send('CONNECT {"verbose":false,"pedantic":false}\r\nSUB z 1\r\nPUB z 0\r\n\r\nPUB z rep.ly 3\r\nabc\r\n');
      expect(await r.ping()).toBe('MSG z 1 0\r\n\r\nMSG z 1 rep.ly 3\r\nabc\r\nPONG\r\n');
      r.close();
    });

    it('a message split across many writes arrives whole', async () => {
      const r = await raw();
      const wire = 'CONNECT {"verbose":false,"pedantic":false}\r\nSUB s 1\r\nPUB s 11\r\nhello world\r\nPING\r\n';
      for (const ch of wire) {
        r.send(ch);
        // Separate TCP segments: wait for the write to leave before the next byte.
        await new Promise<void>((res) => setImmediate(res));
      }
      await r.waitFor('PONG\r\n');
      expect(r.text()).toBe('MSG s 1 11\r\nhello world\r\nPONG\r\n');
      r.close();
    });
  });
});

describe.each(serverKinds())('monitoring after known traffic: %s', (kind) => {
  let srv: RunningServer;
  const open: NatsConnection[] = [];

  interface Varz {
    in_msgs: number;
    out_msgs: number;
    in_bytes: number;
    out_bytes: number;
    connections: number;
  }
  interface ConnzEntry {
    cid: number;
    name?: string;
    in_msgs: number;
    out_msgs: number;
    in_bytes: number;
    out_bytes: number;
    subscriptions: number;
    subscriptions_list?: string[];
  }
  interface Connz {
    num_connections: number;
    total: number;
    offset: number;
    limit: number;
    connections: ConnzEntry[];
  }
  interface Subsz {
    num_subscriptions: number;
  }

  beforeAll(async () => {
    srv = await startServer(kind);
  });

  afterAll(async () => {
    await Promise.all(open.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close())));
    await stopAllServers();
  });

  async function client(name: string): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.url, reconnect: false, name });
    open.push(nc);
    return nc;
  }

  it('varz in/out msgs and bytes move by exactly the payload traffic', async () => {
    const before = await monitor<Varz>(srv, '/varz');
    const sub = await client('mon-sub');
    const pub = await client('mon-pub');
    const { c } = collect(sub, 'mon.x');
    await sub.flush();
    for (let i = 0; i < 5; i++) pub.publish('mon.x', 'hello');
    pub.publish('mon.nobody', 'abc');
    await pub.flush();
    await c.until(5);
    const want = {
      in_msgs: before.in_msgs + 6,
      out_msgs: before.out_msgs + 5,
      in_bytes: before.in_bytes + 28,
      out_bytes: before.out_bytes + 25,
    };
    const after = await pollUntil(
      () => monitor<Varz>(srv, '/varz'),
      (v) => v.in_msgs >= want.in_msgs && v.out_msgs >= want.out_msgs,
    );
    expect({ in_msgs: after.in_msgs, out_msgs: after.out_msgs, in_bytes: after.in_bytes, out_bytes: after.out_bytes }).toEqual(want);
    expect(after.connections).toBeGreaterThanOrEqual(2);

    const connz = await monitor<Connz>(srv, '/connz?subs=1');
    const pubEntry = connz.connections.find((e) => e.name === 'mon-pub');
    const subEntry = connz.connections.find((e) => e.name === 'mon-sub');
    expect(pubEntry).toMatchObject({ in_msgs: 6, in_bytes: 28, out_msgs: 0, out_bytes: 0, subscriptions: 0 });
    expect(subEntry).toMatchObject({ in_msgs: 0, in_bytes: 0, out_msgs: 5, out_bytes: 25, subscriptions: 1 });
    expect(subEntry?.subscriptions_list).toEqual(['mon.x']);
  });

  it('connz paging with limit and offset follows cid order', async () => {
    await Promise.all(['page-a', 'page-b', 'page-c', 'page-d'].map((n) => client(n)));
    const full = await pollUntil(
      () => monitor<Connz>(srv, '/connz'),
      (v) => v.connections.filter((e) => e.name?.startsWith('page-') === true).length === 4,
    );
    expect(full.total).toBeGreaterThanOrEqual(4);
    const cids = full.connections.map((e) => e.cid);
    expect([...cids].sort((a, b) => a - b)).toEqual(cids);
    const page = await monitor<Connz>(srv, '/connz?limit=2&offset=1');
    expect(page.limit).toBe(2);
    expect(page.offset).toBe(1);
    expect(page.total).toBe(full.total);
    expect(page.num_connections).toBe(2);
    expect(page.connections.map((e) => e.cid)).toEqual(cids.slice(1, 3));
    const beyond = await monitor<Connz>(srv, `/connz?offset=${full.total}`);
    expect(beyond.num_connections).toBe(0);
    expect(beyond.connections).toEqual([]);
  });

  it('subsz num_subscriptions moves by +1 on SUB and -1 on UNSUB', async () => {
    const nc = await client('subsz');
    await nc.flush();
    const base = (await monitor<Subsz>(srv, '/subsz')).num_subscriptions;
    const sub = nc.subscribe('subsz.x');
    await nc.flush();
    const plus = await pollUntil(
      () => monitor<Subsz>(srv, '/subsz'),
      (v) => v.num_subscriptions !== base,
    );
    expect(plus.num_subscriptions).toBe(base + 1);
    sub.unsubscribe();
    await nc.flush();
    const minus = await pollUntil(
      () => monitor<Subsz>(srv, '/subsz'),
      (v) => v.num_subscriptions !== base + 1,
    );
    expect(minus.num_subscriptions).toBe(base);
  });
});
