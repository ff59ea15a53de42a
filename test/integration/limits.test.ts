/**
 * Server limits, run against Debian's nats-server and our bundle: max_connections,
 * max_subscriptions, the ping timer (stale connections), max_payload with a size suffix, the
 * close reasons /connz?state=closed lists for them, and a slow consumer cut. Every expectation
 * was measured on nats-server 2.9.10 first.
 * (Exactly max_payload over raw PUB/HPUB and with nats.js is in bad-input and core-table.)
 */
import { once } from 'node:events';
import { connect as tcpConnect, type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { monitor, pollUntil, serverKinds, startServer, stopAllServers, within, type RunningServer } from '../helpers/servers.js';
import { RawClient, show } from '../helpers/raw-client.js';

const PLAIN = 'CONNECT {"verbose":false,"pedantic":false}\r\n';

interface Varz {
  connections: number;
  slow_consumers: number;
  max_connections: number;
}

interface ClosedConn {
  cid: number;
  reason?: string;
}

interface Connz {
  connections: ClosedConn[];
}

/** A raw client past CONNECT: its PONG proves the server took the CONNECT. */
async function rawReady(port: number): Promise<RawClient> {
  const r = await RawClient.connect(port);
  r.send(PLAIN);
  expect(await r.ping()).toBe('PONG\r\n');
  r.clear();
  return r;
}

function cidOf(r: RawClient): number {
  const cid = r.info?.client_id;
  if (cid === undefined) throw new Error('INFO without client_id');
  return cid;
}

/** The closed-connection entry for `cid`, once the server lists it (undefined if it never does). */
async function closedEntry(srv: RunningServer, cid: number): Promise<ClosedConn | undefined> {
  const connz = await pollUntil(
    () => monitor<Connz>(srv, '/connz?state=closed'),
    (v) => v.connections.some((c) => c.cid === cid),
    3000,
  );
  return connz.connections.find((c) => c.cid === cid);
}

/** Waits until the server counts exactly `n` client connections (closes are noticed asynchronously). */
async function connectionsSettle(srv: RunningServer, n: number): Promise<void> {
  const v = await pollUntil(
    () => monitor<Varz>(srv, '/varz'),
    (x) => x.connections === n,
  );
  expect(v.connections).toBe(n);
}

/** Collects what a plain socket receives, with an await for a condition on it. */
function tap(socket: Socket): { text(): string; until(done: (t: string) => boolean, ms: number, what: string): Promise<string> } {
  let text = '';
  let waiters: Array<() => void> = [];
  socket.on('data', (b: Buffer) => {
    text += b.toString('latin1');
    for (const w of [...waiters]) w();
  });
  return {
    text: () => text,
    until(done, ms, what) {
      const reached = new Promise<string>((resolve) => {
        const check = (): void => {
          if (!done(text)) return;
          waiters = waiters.filter((w) => w !== check);
          resolve(text);
        };
        waiters.push(check);
        check();
      });
      return within(reached, ms, `${what}; got ${show(text.slice(0, 200))}`);
    },
  };
}

function countOf(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe.each(serverKinds())('limits: %s', (kind) => {
  const raws: RawClient[] = [];
  const open: NatsConnection[] = [];
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const r of raws.splice(0)) r.close();
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.allSettled(open.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close())));
    await stopAllServers();
  });

  afterAll(async () => {
    await stopAllServers();
  });

  async function raw(srv: RunningServer): Promise<RawClient> {
    const r = await rawReady(srv.port);
    raws.push(r);
    return r;
  }

  async function client(srv: RunningServer): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.url, reconnect: false });
    open.push(nc);
    return nc;
  }

  it('max_connections 2: the third gets INFO, then the -ERR and a close; a freed slot is taken again', async () => {
    const srv = await startServer(kind, { config: 'max_connections: 2\n' });
    // The readiness probes of startServer must be gone before the two slots are counted.
    await connectionsSettle(srv, 0);
    const first = await raw(srv);
    await raw(srv);

    const third = await RawClient.connect(srv.port);
    raws.push(third);
    expect(third.info?.max_payload).toBe(1048576);
    await third.closed();
    expect(third.text()).toBe("-ERR 'maximum connections exceeded'\r\n");
    expect((await monitor<Varz>(srv, '/varz')).max_connections).toBe(2);

    first.close();
    await connectionsSettle(srv, 1);
    const fourth = await raw(srv);
    expect(fourth.closedNow).toBe(false);
    expect((await closedEntry(srv, cidOf(first)))?.reason).toBe('Client Closed');

    // nats-server keeps the refused connection among the closed ones, with its own reason.
    const refused = await closedEntry(srv, cidOf(third));
    expect(refused?.reason).toBe('Maximum Connections Exceeded');
  });

  it('max_subscriptions 2: the third SUB gets the -ERR, the connection stays and keeps its two', async () => {
    const srv = await startServer(kind, { config: 'max_subscriptions: 2\n' });
    const r = await raw(srv);
    r.send('SUB a 1\r\nSUB b 2\r\nSUB c 3\r\n');
    expect(await r.ping()).toBe("-ERR 'maximum subscriptions exceeded'\r\nPONG\r\n");
    r.clear();
    r.send('PUB c 1\r\nz\r\nPUB a 1\r\nx\r\nPUB b 1\r\ny\r\n');
    expect(await r.ping()).toBe('MSG a 1 1\r\nx\r\nMSG b 2 1\r\ny\r\nPONG\r\n');
    expect(r.closedNow).toBe(false);
  });

  it('ping_interval 1s, ping_max 1: silent client gets PING then Stale Connection; a PONG-answering one stays', async () => {
    const srv = await startServer(kind, { config: 'ping_interval: "1s"\nping_max: 1\n' });
    const silent = await RawClient.connect(srv.port);
    raws.push(silent);
    silent.send(PLAIN);
    const answering = await RawClient.connect(srv.port);
    raws.push(answering);
    answering.send(PLAIN);

    // Answer every PING until three came in: three intervals survived.
    const survived = (async (): Promise<void> => {
      for (let answered = 0; answered < 3; answered++) {
        await answering.waitFor((t) => countOf(t, 'PING\r\n') > answered, 5000);
        answering.send('PONG\r\n');
      }
    })();

    await silent.closed(6000);
    expect(silent.text()).toBe("PING\r\n-ERR 'Stale Connection'\r\n");
    expect((await closedEntry(srv, cidOf(silent)))?.reason).toBe('Stale Connection');

    await within(survived, 8000, 'three PINGs answered');
    expect(answering.closedNow).toBe(false);
    const t = await answering.ping(0);
    expect(t.replace(/PING\r\n/g, '')).toBe('PONG\r\n');
    expect(answering.closedNow).toBe(false);
  });

  it('max_payload with a size suffix (2KB) is advertised to nats.js, and a 2048-byte message arrives', async () => {
    const srv = await startServer(kind, { config: 'max_payload: 2KB\n' });
    const sub = await client(srv);
    const pub = await client(srv);
    expect(pub.info?.max_payload).toBe(2048);
    const got = new Promise<Uint8Array>((resolve) => {
      sub.subscribe('mp.x', { max: 1, callback: (_e, m) => resolve(m.data) });
    });
    await sub.flush();
    const data = new Uint8Array(2048).map((_, i) => i & 0xff);
    pub.publish('mp.x', data);
    const recv = await within(got, 5000, 'max_payload message');
    expect(Buffer.from(recv).equals(Buffer.from(data))).toBe(true);
    const r = await raw(srv);
    expect(r.info?.max_payload).toBe(2048);
  });

  it('slow consumer: the stalled reader is cut, counted in /varz, others keep working', async () => {
    // nats-server refuses max_payload above max_pending, so the payload limit comes down too.
    const srv = await startServer(kind, {
      config: 'max_payload: 64KB\nmax_pending: 512KB\nwrite_deadline: "2s"\n',
    });
    expect((await monitor<Varz>(srv, '/varz')).slow_consumers).toBe(0);

    const responder = await client(srv);
    responder.subscribe('svc.echo', { callback: (_e, m) => void m.respond(m.data) });
    await responder.flush();
    const requester = await client(srv);

    // The slow reader: subscribes, then stops reading its socket.
    const reader = tcpConnect({ host: '127.0.0.1', port: srv.port });
    sockets.push(reader);
    reader.on('error', () => {});
    const readerClosed = once(reader, 'close');
    const readerTap = tap(reader);
    reader.write(`${PLAIN}SUB flood 1\r\nPING\r\n`);
    const hello = await readerTap.until((t) => t.includes('PONG\r\n'), 5000, 'reader PONG');
    const readerCid = (JSON.parse(hello.slice(5, hello.indexOf('\r\n'))) as { client_id: number }).client_id;
    // From here on the reader takes nothing off its socket: the server's writes back up.
    reader.pause();

    const pub = tcpConnect({ host: '127.0.0.1', port: srv.port });
    sockets.push(pub);
    pub.on('error', () => {});
    const pubTap = tap(pub);
    await once(pub, 'connect');
    pub.write(PLAIN);

    let cut = false;
    const cutSeen = pollUntil(
      () => monitor<Varz>(srv, '/varz'),
      (v) => v.slow_consumers > 0,
      20000,
    ).then((v) => {
      cut = true;
      return v;
    });
    const payload = Buffer.alloc(4096, 0x61);
    const frame = Buffer.concat([Buffer.from(`PUB flood ${payload.length}\r\n`), payload, Buffer.from('\r\n')]);
    const batch = Buffer.concat(Array.from({ length: 32 }, () => frame));
    let published = 0;
    let midFloodReply = '';
    while (!cut) {
      published += 32;
      // nats-server stalls a publisher while the reader's flush blocks: stop waiting once cut.
      if (!pub.write(batch)) await Promise.race([once(pub, 'drain'), cutSeen]);
      if (published === 32 * 64) midFloodReply = (await requester.request('svc.echo', 'mid', { timeout: 5000 })).string();
    }
    const varz = await cutSeen;
    expect(varz.slow_consumers).toBe(1);
    expect(published * payload.length).toBeGreaterThan(512 * 1024);
    if (published > 32 * 64) expect(midFloodReply).toBe('mid');

    // The reader was closed by the server: reading on shows the end of the stream.
    reader.resume();
    await within(readerClosed, 10000, 'slow reader closed');
    const entry = await closedEntry(srv, readerCid);
    expect(entry?.reason, show(JSON.stringify(entry))).toMatch(/^Slow Consumer \((Pending Bytes|Write Deadline)\)$/);

    // The publisher was stalled at most, never cut; after the backlog it answers PING.
    expect(pub.destroyed).toBe(false);
    pub.write('PING\r\n');
    const pubSaw = await pubTap.until((t) => t.includes('PONG\r\n'), 15000, 'publisher PONG');
    // INFO, then nothing but the PONG (and the server's own first PING): no -ERR for the publisher.
    expect(pubSaw.replace(/PING\r\n/g, '')).toMatch(/^INFO \{[^\r\n]*\} \r\nPONG\r\n$/);
    const after = await requester.request('svc.echo', 'after', { timeout: 5000 });
    expect(after.string()).toBe('after');
    expect((await monitor<Varz>(srv, '/varz')).slow_consumers).toBe(1);
  });
});
