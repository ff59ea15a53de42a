/**
 * Flood test (issue: memory budget and slow consumers): a fast publisher, a subscriber that
 * stops reading, and a healthy client doing request/reply. The server must cut the slow
 * consumer, keep serving the others, and keep its RSS under the profile's ceiling throughout.
 */
import { spawn } from 'node:child_process';
import { connect as tcpConnect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { NATS_EDGE_BUNDLE, freePort } from '../helpers/servers.js';

const PROFILE = 'generic-arm64-256mb';

function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] !== undefined ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function waitReady(port: number, deadline: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1');
      s.once('data', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function varz(httpPort: number): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/varz`);
  return (await res.json()) as Record<string, unknown>;
}

describe('slow consumer under a flood', () => {
  const children: { kill(sig: NodeJS.Signals): boolean }[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  it('cuts the reader that stopped, keeps others served, stays under the RSS ceiling', async () => {
    const profile = JSON.parse(readFileSync(new URL(`../../firmware-profiles/${PROFILE}.json`, import.meta.url), 'utf8')) as {
      rssCeiling: number;
      maxOldSpaceMb: number;
      maxSemiSpaceMb: number;
      maxPending: number;
      memoryBudget: number;
      maxPendingTotal: number;
    };
    const port = await freePort();
    const httpPort = await freePort();
    // Node's heap flags come from the profile, as the systemd unit passes them.
    const child = spawn(
      process.execPath,
      [
        `--max-old-space-size=${profile.maxOldSpaceMb}`,
        `--max-semi-space-size=${profile.maxSemiSpaceMb}`,
        NATS_EDGE_BUNDLE,
        '--profile',
        PROFILE,
        '-a',
        '127.0.0.1',
        '-p',
        String(port),
        '-m',
        String(httpPort),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let logs = '';
    child.stderr.on('data', (b: Buffer) => (logs += b.toString()));
    child.stdout.on('data', (b: Buffer) => (logs += b.toString()));
    await waitReady(port, Date.now() + 10_000);
    const pid = child.pid!;

    let peakRss = rssOf(pid);
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssOf(pid))), 50);

    // The healthy side: a responder and a requester with the real client.
    const responder = await connect({ servers: `127.0.0.1:${port}` });
    responder.subscribe('svc.echo', { callback: (_err, m) => { m.respond(m.data); } });
    const requester = await connect({ servers: `127.0.0.1:${port}` });
    await responder.flush();

    // The slow readers: subscribe, then never read again. Ten of them, so that their queues
    // together exceed the process-wide pending budget and publishers must be paused too.
    const SLOW = 10;
    const slowReaders: Socket[] = [];
    for (let i = 0; i < SLOW; i++) {
      const s: Socket = tcpConnect(port, '127.0.0.1');
      s.on('error', () => {});
      await new Promise<void>((resolve) => {
        let buf = '';
        s.on('data', (b: Buffer) => {
          buf += b.toString('latin1');
          if (buf.includes('PONG\r\n')) resolve();
        });
        s.write('CONNECT {"verbose":false,"pedantic":false}\r\nSUB flood 1\r\nPING\r\n');
      });
      s.removeAllListeners('data');
      s.pause();
      slowReaders.push(s);
    }
    const closedReaders = slowReaders.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));

    // The publisher: 4 KiB messages as fast as the socket takes them, until the server cut the reader.
    const payload = Buffer.alloc(4096, 0x61);
    const frame = Buffer.concat([Buffer.from(`PUB flood ${payload.length}\r\n`), payload, Buffer.from('\r\n')]);
    const batch = Buffer.concat(Array.from({ length: 64 }, () => frame));
    const pub: Socket = tcpConnect(port, '127.0.0.1');
    pub.on('error', () => {});
    await new Promise<void>((resolve) => pub.once('connect', () => resolve()));
    pub.write('CONNECT {"verbose":false,"pedantic":false}\r\n');
    let published = 0;
    let cut = false;
    const deadline = Date.now() + 60_000;
    while (!cut && Date.now() < deadline) {
      if (!pub.write(batch)) await new Promise((r) => pub.once('drain', r));
      published += 64;
      if (published % (64 * 32) === 0) {
        const v = await varz(httpPort);
        cut = (v['slow_consumers'] as number) >= SLOW;
        // Request/reply keeps working while the flood runs.
        const r = await requester.request('svc.echo', 'ping', { timeout: 5000 });
        expect(r.string()).toBe('ping');
      }
    }
    expect(cut).toBe(true);
    // Ten stalled queues together passed max_pending_total: publishers were paused, not buffered without bound.
    const edge = (await varz(httpPort))['edge'] as { publisher_pauses: number; max_pending_total: number };
    expect(edge.max_pending_total).toBe(profile.maxPendingTotal);
    expect(edge.publisher_pauses).toBeGreaterThanOrEqual(1);
    // Others keep working after the cut, and the publisher was not disconnected.
    const after = await requester.request('svc.echo', 'after', { timeout: 5000 });
    expect(after.string()).toBe('after');
    expect(pub.destroyed).toBe(false);
    // The readers' sockets were closed by the server: reading them now ends in close.
    for (const s of slowReaders) s.resume();
    await Promise.all(closedReaders);
    const connz = (await (await fetch(`http://127.0.0.1:${httpPort}/connz?state=closed`)).json()) as {
      connections: { reason: string }[];
    };
    expect(connz.connections.filter((c) => c.reason.startsWith('Slow Consumer')).length).toBe(SLOW);

    clearInterval(sampler);
    peakRss = Math.max(peakRss, rssOf(pid));
    // The broker budget is the tighter bound (the ceiling is systemd's MemoryMax above it).
    expect(peakRss, `peak RSS ${(peakRss / 1048576).toFixed(1)} MiB, logs:\n${logs}`).toBeLessThan(profile.memoryBudget);
    console.log(`slow-consumer flood: ${published} x 4 KiB published, peak RSS ${(peakRss / 1048576).toFixed(1)} MiB (budget ${(profile.memoryBudget / 1048576).toFixed(0)} MiB)`);
    expect(published * payload.length).toBeGreaterThan(profile.maxPending);

    pub.destroy();
    await requester.close();
    await responder.close();
    child.kill('SIGTERM');
  }, 90_000);
});
