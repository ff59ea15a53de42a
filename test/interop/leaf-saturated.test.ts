/**
 * A saturated uplink: the leaf reaches its nats-server hub through a throttling TCP proxy that
 * carries leaf→hub traffic at a fixed rate with a bounded buffer (so the leaf's socket really
 * backs up, as on a slow cellular uplink) and hub→leaf traffic at full speed. A leaf client
 * floods the hub with 1 KiB messages; meanwhile
 *  (i)  the link must stay up: PINGs run every second on both sides with two allowed
 *       outstanding, so a PING or PONG stuck behind queued data would kill the link in seconds;
 *  (ii) an interest update (LS+) from the leaf must overtake the queued data, so a new leaf
 *       subscriber gets hub messages within a few seconds.
 * nats-server as the leaf is known to fall over here (nats-server issue #7615: its PINGs queue
 * behind data); its run is reported, not held to nats-edge's bar.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { serverKinds, within, type RunningServer, type ServerKind } from '../helpers/servers.js';
import { hubLeafz, startHub, startLeaf, stopLeafTestServers, waitForLeafLink, waitForLeafSawHubInterest } from '../helpers/leaf.js';

const HOST = '127.0.0.1';
const MiB = 1024 * 1024;
/** At most this much is held in the proxy before it stops reading from the leaf. */
const PROXY_BUFFER_BYTES = 256 * 1024;
const TICK_MS = 10;
/** The probe subscribes this long into the flood, once every queue on the way is full. */
const PROBE_AFTER_MS = 5_000;
const PROBE_LIMIT_MS = 3_000;
const PAYLOAD = new Uint8Array(1024).fill(0x61);

/**
 * The uplinks flooded. Below any user-space queue, the leaf's kernel send buffer autotunes up to
 * tcp_wmem's maximum (4 MiB by default; loopback's 64 KiB segments get it there fast) and the
 * proxy's receive buffer holds ~0.7 MiB more: ~4.8 MB ahead of every PING, PONG and LS+ unless
 * the leaf stops handing the kernel data it cannot send. At 2 MB/s that is ~2.4 s, more than
 * ping_max × ping_interval allows; at 8 MB/s ~0.6 s, so that case checks the leaf's own queueing
 * alone.
 */
const UPLINKS = [
  { mbps: 2, floodMs: 15_000 },
  { mbps: 8, floodMs: 10_000 },
] as const;

/**
 * nats-server 2.9 as the leaf writes its PINGs behind queued data (issue #7615), so on a
 * saturated uplink its link may be declared stale and redialed in a loop. Its run is printed and
 * checked only for what holds either way; nats-edge must keep the link and pass the probe.
 */
function mayDropWhenSaturated(kind: ServerKind): boolean {
  return kind === 'nats-server';
}

/** One leaf↔hub connection through the proxy. */
class ProxiedPair {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private paused = false;
  private lastTick = Date.now();
  private readonly ticker: NodeJS.Timeout;

  constructor(
    private readonly proxy: ThrottlingProxy,
    private readonly bytesPerSec: number,
    private readonly leaf: Socket,
    private readonly hub: Socket,
  ) {
    leaf.on('data', (chunk: Buffer) => this.fromLeaf(chunk));
    hub.on('data', (chunk: Buffer) => {
      // hub→leaf at full speed; only the leaf's own reading limits it.
      if (!leaf.write(chunk)) hub.pause();
    });
    leaf.on('drain', () => hub.resume());
    const close = (): void => this.close();
    for (const s of [leaf, hub]) {
      s.on('error', close);
      s.on('close', close);
    }
    // A token bucket refilled from the clock, so a late tick sends what it owes.
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  private fromLeaf(chunk: Buffer): void {
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.proxy.maxQueued = Math.max(this.proxy.maxQueued, this.queued);
    if (this.queued >= PROXY_BUFFER_BYTES && !this.paused) {
      // Stop reading: the leaf's socket now backs up for real.
      this.paused = true;
      this.proxy.pauses++;
      this.leaf.pause();
    }
  }

  private tick(): void {
    const now = Date.now();
    let budget = Math.floor(((now - this.lastTick) * this.bytesPerSec) / 1000);
    if (budget <= 0) return;
    this.lastTick = now;
    while (budget > 0 && this.queue.length > 0) {
      const head = this.queue[0]!;
      const part = head.length <= budget ? head : head.subarray(0, budget);
      if (part === head) this.queue.shift();
      else this.queue[0] = head.subarray(budget);
      this.hub.write(part);
      budget -= part.length;
      this.queued -= part.length;
      this.proxy.upBytes += part.length;
    }
    if (this.paused && this.queued < PROXY_BUFFER_BYTES / 2) {
      this.paused = false;
      this.leaf.resume();
    }
  }

  close(): void {
    clearInterval(this.ticker);
    this.leaf.destroy();
    this.hub.destroy();
  }
}

/** A TCP proxy in front of the hub's leaf port whose leaf→hub direction is a slow uplink. */
class ThrottlingProxy {
  /** Connections the leaf opened: more than one means it redialed. */
  connections = 0;
  upBytes = 0;
  /** Times the proxy buffer was full and it stopped reading from the leaf. */
  pauses = 0;
  maxQueued = 0;
  private readonly pairs = new Set<ProxiedPair>();
  private readonly server: Server;

  /** The hub's leaf port; set once the hub runs (it advertises the proxy, so the proxy comes first). */
  hubPort = 0;

  constructor(readonly bytesPerSec: number) {
    this.server = createServer((leaf) => {
      this.connections++;
      const hub = tcpConnect({ host: HOST, port: this.hubPort });
      const pair = new ProxiedPair(this, bytesPerSec, leaf, hub);
      this.pairs.add(pair);
      leaf.once('close', () => this.pairs.delete(pair));
    });
  }

  listen(): Promise<number> {
    return new Promise((resolveListen, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, HOST, () => {
        const addr = this.server.address();
        if (addr === null || typeof addr === 'string') reject(new Error('proxy has no port'));
        else resolveListen(addr.port);
      });
    });
  }

  close(): Promise<void> {
    for (const p of this.pairs) p.close();
    this.pairs.clear();
    return new Promise((resolveClose) => this.server.close(() => resolveClose()));
  }
}

interface Sample {
  atMs: number;
  leafnodes: number;
  port: number;
}

/** Link creations and closes as the leaf logs them. */
function linkEvents(kind: ServerKind, log: string): { created: number; closed: string[] } {
  const lines = log.split('\n');
  const created = lines.filter((l) => /Leafnode connection created/.test(l)).length;
  const closedRe = kind === 'nats-server' ? /Leafnode connection closed|Stale|Slow Consumer/i : /Leafnode connection to .* closed|Stale|protocol error/i;
  return { created, closed: lines.filter((l) => closedRe.test(l)) };
}

interface FloodReport {
  kind: ServerKind;
  uplinkMBps: number;
  floodSeconds: number;
  published: number;
  deliveredOnHub: number;
  /** Measured leaf→hub rate through the proxy. */
  forwardedMBps: number;
  proxyConnections: number;
  proxyPauses: number;
  proxyMaxQueued: number;
  hubLeafPortsSeen: number[];
  samples: number;
  samplesNotOneLeaf: number;
  leafLinkCreated: number;
  leafCloseLines: string[];
  /** Subscribe on the leaf → first hub message delivered there; -1 = never during the flood. */
  probeLatencyMs: number;
  hubStaleLines: string[];
}

describe.each(serverKinds())('leafnode on a saturated uplink: leaf is %s, hub is nats-server', (kind: ServerKind) => {
  const open: NatsConnection[] = [];
  let proxy: ThrottlingProxy | null = null;

  afterEach(async () => {
    await Promise.all(open.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close().catch(() => undefined))));
    await proxy?.close();
    proxy = null;
    await stopLeafTestServers();
  });

  async function client(srv: RunningServer): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.url, reconnect: false });
    open.push(nc);
    return nc;
  }

  /** Hub, proxy and leaf; floods for `floodMs`, probes interest halfway, reports what happened. */
  async function flood(mbps: number, floodMs: number): Promise<{ report: FloodReport; samples: Sample[]; linkedPort: number; forwardedBytes: number; pauses: number }> {
    // nats-server applies the top-level ping settings to leaf connections too (a hub closed leaf
    // links as "Stale Connection" within seconds here). A hub pings a leaf unconditionally until
    // its first PONG, then only while the link is quiet; a leaf pings its hub unconditionally.
    const pings = 'ping_interval: "1s"\nping_max: 2';
    const p = new ThrottlingProxy(mbps * MiB);
    proxy = p;
    const proxyPort = await p.listen();
    // The hub advertises the proxy as its leafnode URL: a leaf that redials must come through it
    // again rather than find the hub's real port in INFO's leafnode_urls.
    const hub = await startHub({ config: pings, leafnodes: `  advertise: "${HOST}:${proxyPort}"` });
    p.hubPort = hub.leafPort;
    const leaf = await startLeaf(kind, proxyPort, { config: pings });
    const linked = await waitForLeafLink(hub, 10000);

    const hubNc = await client(hub);
    const leafNc = await client(leaf);
    let floodMsgs = 0;
    hubNc.subscribe('flood.x', {
      callback: () => {
        floodMsgs++;
      },
    });
    await waitForLeafSawHubInterest(hubNc, leafNc);

    const samples: Sample[] = [];
    const start = Date.now();
    let flooding = true;
    // The hub publishes probe.y every 100 ms all along; nobody on the leaf wants it until the probe subscribes.
    const probeTicker = setInterval(() => {
      if (!hubNc.isClosed()) hubNc.publish('probe.y', 'probe');
    }, 100);
    let published = 0;
    let probeLatencyMs = -1;
    let floodEnd = start;
    try {
      // Which leaf connection (by its port) the hub has, sampled all along.
      const sampler = (async (): Promise<void> => {
        while (flooding) {
          try {
            const z = await hubLeafz(hub);
            samples.push({ atMs: Date.now() - start, leafnodes: z.leafnodes, port: z.leafs[0]?.port ?? 0 });
          } catch {
            samples.push({ atMs: Date.now() - start, leafnodes: -1, port: 0 });
          }
          // A sampling period, not a wait for an event.
          await new Promise((r) => setTimeout(r, 250));
        }
      })();

      const probe = (async (): Promise<void> => {
        // The probe starts once the queues are full: a point in the deliberate load window.
        await new Promise((r) => setTimeout(r, PROBE_AFTER_MS));
        // Each step has a deadline: a leaf that stalls its clients leaves probeLatencyMs at -1.
        const probeNc = await within(client(leaf), PROBE_LIMIT_MS * 2, 'probe client connects to the leaf').catch(() => null);
        if (probeNc === null) return;
        const first = new Promise<number>((resolveFirst) => {
          probeNc.subscribe('probe.y', { max: 1, callback: () => resolveFirst(Date.now()) });
        });
        if (!(await within(probeNc.flush(), PROBE_LIMIT_MS * 2, 'probe SUB flushed').then(() => true, () => false))) return;
        const subscribedAt = Date.now();
        const end = new Promise<number>((r) => setTimeout(() => r(-1), Math.max(floodMs - PROBE_AFTER_MS, PROBE_LIMIT_MS + 500)));
        const at = await Promise.race([first, end]);
        probeLatencyMs = at < 0 ? -1 : at - subscribedAt;
      })();

      // The flood: as fast as the leaf takes it, in batches so the test's own timers still run.
      // A leaf that stalls its clients (nats-server does while it redials a stale link) must not
      // hold the run past the flood: a flush still pending a second after it ends stops the loop.
      const floodDeadline = start + floodMs;
      while (Date.now() < floodDeadline) {
        for (let i = 0; i < 256; i++) leafNc.publish('flood.x', PAYLOAD);
        published += 256;
        const flushed = await within(leafNc.flush(), floodDeadline + 1000 - Date.now(), 'flood flush').then(
          () => true,
          () => false,
        );
        if (!flushed) break;
      }
      floodEnd = Date.now();
      await probe;
      flooding = false;
      await sampler;
    } finally {
      flooding = false;
      clearInterval(probeTicker);
    }

    const events = linkEvents(kind, leaf.logs());
    const seconds = (floodEnd - start) / 1000;
    const report: FloodReport = {
      kind,
      uplinkMBps: mbps,
      floodSeconds: seconds,
      published,
      deliveredOnHub: floodMsgs,
      forwardedMBps: +(p.upBytes / seconds / MiB).toFixed(2),
      proxyConnections: p.connections,
      proxyPauses: p.pauses,
      proxyMaxQueued: p.maxQueued,
      hubLeafPortsSeen: [...new Set(samples.map((s) => s.port))],
      samples: samples.length,
      samplesNotOneLeaf: samples.filter((s) => s.leafnodes !== 1).length,
      leafLinkCreated: events.created,
      leafCloseLines: events.closed.slice(0, 6),
      probeLatencyMs,
      hubStaleLines: hub.logs().split('\n').filter((l) => /Stale|Slow Consumer/i.test(l)).slice(0, 4),
    };
    console.log(`saturated uplink, leaf ${kind}: ${JSON.stringify(report, null, 2)}`);
    return { report, samples, linkedPort: linked.port, forwardedBytes: p.upBytes, pauses: p.pauses };
  }

  for (const { mbps, floodMs } of UPLINKS) {
    const title = `a ${floodMs / 1000} s flood over a ${mbps} MB/s uplink: the link stays up and a new subscription crosses within ${PROBE_LIMIT_MS / 1000} s`;
    it(title, { timeout: floodMs + 30000 }, async () => {
      const { report, samples, linkedPort, forwardedBytes, pauses } = await flood(mbps, floodMs);

      // The uplink really was saturated and data crossed, whatever the leaf kind.
      expect(pauses).toBeGreaterThan(0);
      expect(report.deliveredOnHub).toBeGreaterThan(0);

      if (mayDropWhenSaturated(kind)) {
        // Printed above, not held to the bar (a leaf that redials in a loop also forwards less);
        // a link that did drop must have said so in its log.
        if (report.proxyConnections > 1) expect(report.leafCloseLines.length).toBeGreaterThan(0);
        return;
      }
      // The uplink was used: at least half its rate crossed.
      expect(forwardedBytes).toBeGreaterThan(0.5 * mbps * MiB * (floodMs / 1000));
      // (i) one link all along: one proxied connection, the same leaf port in every hub sample.
      expect(report.leafCloseLines).toEqual([]);
      expect(report.proxyConnections).toBe(1);
      expect(report.leafLinkCreated).toBe(1);
      expect(samples.length).toBeGreaterThan((floodMs / 250) * 0.5);
      expect(samples.filter((s) => s.leafnodes !== 1 || s.port !== linkedPort)).toEqual([]);
      // (ii) the LS+ overtook the queued data.
      expect(report.probeLatencyMs).toBeGreaterThanOrEqual(0);
      expect(report.probeLatencyMs).toBeLessThan(PROBE_LIMIT_MS);
    });
  }
});
