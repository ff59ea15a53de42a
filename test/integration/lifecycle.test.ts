/**
 * Process lifecycle against Debian's nats-server and our bundle: SIGTERM and SIGINT shutdown,
 * lame duck mode (SIGUSR2), config reload (SIGHUP and `--signal reload=<pid>`), and a client
 * drain. Each expectation was measured on nats-server 2.9.10; where nats-edge does something
 * else on purpose, the case says so per kind.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import {
  NATS_EDGE_BUNDLE,
  pollUntil,
  serverKinds,
  startServer,
  stopAllServers,
  within,
  type RunningServer,
  type ServerKind,
} from '../helpers/servers.js';
import { RawClient } from '../helpers/raw-client.js';

const LDM_INFO = /^INFO \{[^\r\n]*"ldm":true[^\r\n]*\} \r\n$/;

/** A protocol-1 raw client that did its first PING/PONG, which is what earns it async INFOs. */
async function proto1(port: number, creds: Record<string, string> = {}): Promise<RawClient> {
  const r = await RawClient.connect(port);
  r.send(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, protocol: 1, ...creds })}\r\n`);
  expect(await r.ping()).toBe('PONG\r\n');
  r.clear();
  return r;
}

/** Whether a TCP connect to the port is accepted (false: refused). */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Runs the server binary of `kind` with `args` (e.g. --signal) to completion. */
function runBinary(kind: ServerKind, args: string[]): Promise<{ code: number | null; output: string }> {
  const [cmd, pre] =
    kind === 'nats-server' ? [process.env['NATS_SERVER_BIN'] ?? 'nats-server', []] : [process.execPath, [NATS_EDGE_BUNDLE]];
  return within(
    new Promise((resolve) => {
      const child = spawn(cmd, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (b: Buffer) => (output += b.toString()));
      child.stderr.on('data', (b: Buffer) => (output += b.toString()));
      child.once('exit', (code) => resolve({ code, output }));
    }),
    10000,
    `${kind} ${args.join(' ')}`,
  );
}

function countOf(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/** A reload has no event a client could await: its log line is the signal that it is done. */
async function logged(srv: RunningServer, needle: string, times: number): Promise<void> {
  const logs = await pollUntil(
    async () => srv.logs(),
    (l) => countOf(l, needle) >= times,
  );
  expect(countOf(logs, needle), logs).toBeGreaterThanOrEqual(times);
}

/** nats.js status events of one connection, as they come. */
function watchStatus(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status()) seen.push(s.type);
  })();
  return seen;
}

describe.each(serverKinds())('lifecycle: %s', (kind) => {
  const open: NatsConnection[] = [];
  const raws: RawClient[] = [];

  afterEach(async () => {
    for (const r of raws.splice(0)) r.close();
    await Promise.allSettled(open.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close())));
    await stopAllServers();
  });

  afterAll(async () => {
    await stopAllServers();
  });

  async function client(srv: RunningServer, opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.url, reconnect: false, ...opts });
    open.push(nc);
    return nc;
  }

  async function raw(srv: RunningServer, creds: Record<string, string> = {}): Promise<RawClient> {
    const r = await proto1(srv.port, creds);
    raws.push(r);
    return r;
  }

  // nats-server 2.9.10 exits 1 on SIGTERM (0 on SIGINT) and sends nothing before the close;
  // nats-edge exits 0 and first tells protocol-1 clients to go elsewhere (INFO ldm).
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: connections are closed and the process exits promptly`, async () => {
      const srv = await startServer(kind);
      const nc = await client(srv);
      const statuses = watchStatus(nc);
      await nc.flush();
      const r = await raw(srv);

      const t0 = Date.now();
      const code = await srv.stop(signal);
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeLessThan(5000);
      const expectedCode = kind === 'nats-server' && signal === 'SIGTERM' ? 1 : 0;
      expect(code, srv.logs()).toBe(expectedCode);

      await r.closed(2000);
      await within(nc.closed(), 3000, 'nats.js sees the close');
      expect(nc.isClosed()).toBe(true);
      expect(srv.logs()).toMatch(/Initiating Shutdown/);
      if (kind === 'nats-server') {
        expect(r.text()).toBe('');
        expect(statuses).not.toContain('ldm');
      } else {
        expect(r.text()).toMatch(LDM_INFO);
        expect(statuses).toContain('ldm');
      }
    });
  }

  it('SIGUSR2 lame duck: listener closes at once, INFO ldm, clients closed after the grace, exit 0', async () => {
    const srv = await startServer(kind, {
      config: 'lame_duck_grace_period: "1s"\nlame_duck_duration: "30s"\n',
    });
    const nc = await client(srv);
    const statuses = watchStatus(nc);
    await nc.flush();
    const r1 = await raw(srv);
    // Protocol 0 has no async INFO.
    const r0 = await RawClient.connect(srv.port);
    raws.push(r0);
    r0.send('CONNECT {"verbose":false,"pedantic":false}\r\n');
    expect(await r0.ping()).toBe('PONG\r\n');
    r0.clear();

    const t0 = Date.now();
    // stop() sends the signal and awaits the exit (SIGKILL and null after 5 s).
    const exited = srv.stop('SIGUSR2');
    // The listener goes first: a new connection is refused well before the grace ends.
    await within(
      pollUntil(() => accepts(srv.port), (ok) => !ok, 900),
      1000,
      'listener closed',
    );
    expect(await accepts(srv.port)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(900);

    // Soft: a missing INFO must not hide whether the rest of lame duck mode works.
    const ldm = await r1.waitFor('\r\n', 900).catch((e: unknown) => String(e));
    expect.soft(ldm).toMatch(LDM_INFO);
    if (LDM_INFO.test(ldm)) {
      const info = JSON.parse(ldm.slice(5, -3)) as Record<string, unknown>;
      expect(info['server_id']).toBe(r1.info?.server_id);
    }

    await r1.closed(4000);
    const closedAfter = Date.now() - t0;
    // Closed after the 1 s grace, not at once.
    expect(closedAfter).toBeGreaterThanOrEqual(900);
    await r0.closed(4000);
    await within(nc.closed(), 4000, 'nats.js closed');
    expect.soft(statuses).toContain('ldm');
    // Nothing but (if the close came late) the server's first keep-alive PING.
    expect(r0.text().replace(/PING\r\n/g, '')).toBe('');
    expect(await exited, srv.logs()).toBe(0);
    expect(srv.logs()).toMatch(/Entering lame duck mode/);
  });

  const reloadConfig = (o: { bobPass: string; alicePub: string; maxPayload: number }): string =>
    [
      `max_payload: ${o.maxPayload}`,
      'authorization {',
      '  users: [',
      `    { user: alice, password: apw, permissions: { publish: ${o.alicePub}, subscribe: ">" } }`,
      `    { user: bob, password: ${o.bobPass} }`,
      '  ]',
      '}',
      '',
    ].join('\n');
  const ALICE = { user: 'alice', pass: 'apw' };
  const v1 = { bobPass: 'bob1', alicePub: '["a.>", "b.>"]', maxPayload: 4096 };

  async function refused(port: number, creds: Record<string, string>): Promise<string> {
    const r = await RawClient.connect(port);
    raws.push(r);
    r.send(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...creds })}\r\nPING\r\n`);
    await r.closed();
    return r.text();
  }

  it('SIGHUP: new permissions apply to an open connection, which stays; a changed password applies to new ones', async () => {
    const srv = await startServer(kind, { config: reloadConfig(v1) });
    const alice = await raw(srv, ALICE);
    alice.send('SUB a.> 1\r\nSUB b.> 2\r\nPUB b.x 2\r\nhi\r\n');
    expect(await alice.ping()).toBe('MSG b.x 2 2\r\nhi\r\nPONG\r\n');
    alice.clear();
    const aliceJs = await client(srv, ALICE);
    const echoes: string[] = [];
    aliceJs.subscribe('a.echo', { callback: (_e, m) => void echoes.push(m.string()) });
    await aliceJs.flush();

    writeFileSync(join(srv.dir, 'server.conf'), reloadConfig({ ...v1, bobPass: 'bob2', alicePub: '["a.>"]' }));
    process.kill(srv.pid, 'SIGHUP');
    await logged(srv, 'Reloaded server configuration', 1);

    alice.send('PUB b.x 2\r\nhi\r\nPUB a.x 2\r\nok\r\n');
    expect(await alice.ping()).toBe(`-ERR 'Permissions Violation for Publish to "b.x"'\r\nMSG a.x 1 2\r\nok\r\nPONG\r\n`);
    expect(alice.closedNow).toBe(false);
    aliceJs.publish('a.echo', 'still here');
    await aliceJs.flush();
    expect(echoes).toEqual(['still here']);
    expect(aliceJs.isClosed()).toBe(false);

    await raw(srv, { user: 'bob', pass: 'bob2' });
    expect(await refused(srv.port, { user: 'bob', pass: 'bob1' })).toBe("-ERR 'Authorization Violation'\r\n");
  });

  it('SIGHUP: an open connection whose password changed is closed with Authorization Violation', async () => {
    const srv = await startServer(kind, { config: reloadConfig(v1) });
    const bob = await raw(srv, { user: 'bob', pass: 'bob1' });
    const alice = await raw(srv, ALICE);
    writeFileSync(join(srv.dir, 'server.conf'), reloadConfig({ ...v1, bobPass: 'bob2' }));
    process.kill(srv.pid, 'SIGHUP');
    await logged(srv, 'Reloaded server configuration', 1);
    await bob.closed(3000);
    expect(bob.text()).toBe("-ERR 'Authorization Violation'\r\n");
    // Alice's credentials did not change: she stays.
    expect(await alice.ping()).toBe('PONG\r\n');
  });

  it('--signal reload=<pid>: a new max_payload shows in INFO of new connections', async () => {
    const srv = await startServer(kind, { config: reloadConfig(v1) });
    const before = await raw(srv, ALICE);
    expect(before.info?.max_payload).toBe(4096);
    writeFileSync(join(srv.dir, 'server.conf'), reloadConfig({ ...v1, maxPayload: 2048 }));
    const sent = await runBinary(kind, ['--signal', `reload=${srv.pid}`]);
    expect(sent.code, sent.output).toBe(0);
    await logged(srv, 'Reloaded server configuration', 1);
    const after = await raw(srv, ALICE);
    expect(after.info?.max_payload).toBe(2048);
    const nc = await client(srv, ALICE);
    expect(nc.info?.max_payload).toBe(2048);
    expect(await before.ping()).toBe('PONG\r\n');
  });

  it('SIGHUP with a broken config: the error is logged and the old config keeps serving', async () => {
    const srv = await startServer(kind, { config: reloadConfig(v1) });
    const alice = await raw(srv, ALICE);
    // Line 9 opens a map that never closes.
    writeFileSync(join(srv.dir, 'server.conf'), `${reloadConfig({ ...v1, bobPass: 'bob3', maxPayload: 1024 })}\nbroken: {\n`);
    process.kill(srv.pid, 'SIGHUP');
    await logged(srv, 'Failed to reload server configuration', 1);
    const logs = srv.logs();
    expect(logs).toMatch(/line 10|:10:\d+/);
    expect(logs).toMatch(/Unexpected EOF/);
    expect(countOf(logs, 'Reloaded server configuration')).toBe(0);

    const bob = await raw(srv, { user: 'bob', pass: 'bob1' });
    expect(bob.info?.max_payload).toBe(4096);
    expect(await refused(srv.port, { user: 'bob', pass: 'bob3' })).toBe("-ERR 'Authorization Violation'\r\n");
    alice.send('SUB b.> 1\r\nPUB b.y 1\r\nx\r\n');
    expect(await alice.ping()).toBe('MSG b.y 1 1\r\nx\r\nPONG\r\n');
    expect(srv.logs()).not.toMatch(/Exiting/);
  });

  it('drain with messages in flight: everything published before the drain is received', async () => {
    const srv = await startServer(kind);
    const N = 5000;
    const payload = new Uint8Array(512).fill(0x62);

    // Subscriber side: the server has routed all N (publisher flushed), many still on the wire.
    const sub = await client(srv);
    let seen = 0;
    sub.subscribe('drain.in', { callback: () => void seen++ });
    await sub.flush();
    const pub = await client(srv);
    for (let i = 0; i < N; i++) pub.publish('drain.in', payload);
    await pub.flush();
    await within(sub.drain(), 10000, 'subscriber drain');
    expect(seen).toBe(N);
    expect(sub.isClosed()).toBe(true);

    // Publisher side: drain right after publishing, nothing flushed yet; drain sends it all.
    const watcher = await client(srv);
    const got: number[] = [];
    let wake: () => void = () => {};
    const all = new Promise<void>((resolve) => (wake = resolve));
    watcher.subscribe('drain.out', {
      callback: (_e, m) => {
        got.push(Number(m.string()));
        if (got.length === N) wake();
      },
    });
    await watcher.flush();
    const pub2 = await client(srv);
    for (let i = 0; i < N; i++) pub2.publish('drain.out', String(i));
    await within(pub2.drain(), 10000, 'publisher drain');
    expect(pub2.isClosed()).toBe(true);
    await within(all, 10000, `all ${N} after the publisher drained (have ${got.length})`);
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i));
  });
});
