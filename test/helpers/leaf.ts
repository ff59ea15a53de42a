/**
 * Leafnode test helpers: a Debian nats-server hub with a leafnode port (restartable on the same
 * ports, so a leaf can find it again), a leaf of either kind dialing it, and waits on the hub's
 * /leafz for the link and for interest to cross. The hub is always nats-server: it is the real
 * peer a leaf must work against.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInbox, RequestError, type NatsConnection } from '@nats-io/transport-node';
import {
  freePort,
  makeTempDir,
  monitor,
  probeAccept,
  probeInfo,
  startServer,
  stopAllServers,
  within,
  type RunningServer,
  type ServerKind,
} from './servers.js';

const HOST = '127.0.0.1';
const NATS_SERVER_BIN = process.env['NATS_SERVER_BIN'] ?? 'nats-server';
const LOG_LIMIT = 1 << 20;

/** One entry of the hub's /leafz `leafs` (the fields nats-server 2.9 has). */
export interface LeafzLeaf {
  account: string;
  ip: string;
  port: number;
  rtt: string;
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
  subscriptions: number;
  subscriptions_list?: string[];
  name?: string;
}

export interface Leafz {
  server_id: string;
  now: string;
  leafnodes: number;
  leafs: LeafzLeaf[];
}

export interface HubOptions {
  /** Extra lines inside the hub's `leafnodes { }` block (e.g. an `authorization { }`). */
  leafnodes?: string;
  /** JetStream on the hub (store dir in the hub's temp dir); `domain` sets its JetStream domain. */
  jetstream?: boolean | { domain?: string };
  /** Extra top-level config text. */
  config?: string;
  readyTimeoutMs?: number;
}

/** A running hub; after `restart` it listens on the very same client, monitoring and leaf ports. */
export interface Hub extends RunningServer {
  readonly leafPort: number;
  /** Kills the hub (SIGKILL unless told) and starts it again with the same config and ports. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped hub again with the same config and ports; resolves once it answers. */
  start(): Promise<void>;
}

const hubs = new Set<HubProcess>();

process.once('exit', () => {
  for (const h of hubs) h.killNow();
});

class HubProcess implements Hub {
  readonly kind: ServerKind = 'nats-server';
  readonly url: string;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);
  private alive = false;
  private output = '';

  constructor(
    readonly port: number,
    readonly httpPort: number,
    readonly leafPort: number,
    readonly dir: string,
    private readonly configFile: string,
  ) {
    this.url = `nats://${HOST}:${port}`;
  }

  get pid(): number {
    return this.child?.pid ?? 0;
  }

  get running(): boolean {
    return this.alive;
  }

  spawn(): void {
    const args = ['-c', this.configFile, '-a', HOST, '-p', String(this.port), '-m', String(this.httpPort)];
    const child = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
    const append = (chunk: Buffer): void => {
      this.output += chunk.toString('utf8');
      if (this.output.length > LOG_LIMIT) this.output = this.output.slice(-LOG_LIMIT);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.child = child;
    this.alive = true;
    this.exited = new Promise((resolveExit) => {
      child.once('exit', (code) => {
        this.alive = false;
        resolveExit(code);
      });
      child.once('error', (err) => {
        append(Buffer.from(`spawn error: ${err.message}\n`));
        this.alive = false;
        resolveExit(null);
      });
    });
  }

  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let delay = 10;
    while (Date.now() < deadline) {
      if (!this.alive) {
        throw new Error(`hub nats-server exited before it was ready (code ${String(await this.exited)}):\n${this.output}`);
      }
      // nats-server opens its leafnode listener before the client one, so an INFO on the client
      // port means the leaf port listens too; probing the leaf port would log a bogus leaf link.
      const ok = (await probeInfo(this.port, Math.max(50, Math.min(1000, deadline - Date.now())))) && (await probeAccept(this.httpPort));
      if (ok) return;
      // Readiness has no event to await: a short growing backoff between probes.
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 200);
    }
    throw new Error(`hub nats-server not ready within ${timeoutMs} ms:\n${this.output}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.child;
    if (child === undefined || !this.alive) return this.exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.stop(signal);
    await this.start();
  }

  async start(): Promise<void> {
    if (this.alive) throw new Error('hub is already running');
    this.output += '--- hub started again ---\n';
    // The ports were just released by our own process; Go listens with SO_REUSEADDR, so rebinding
    // them at once works. A stranger grabbing one in between would fail waitReady loudly.
    this.spawn();
    await this.waitReady(15000);
  }

  killNow(): void {
    if (this.alive) this.child?.kill('SIGKILL');
  }

  logs(): string {
    return this.output;
  }

  rss(): number {
    return 0;
  }
}


/**
 * Starts a nats-server hub on free client, monitoring and leafnode ports (all on 127.0.0.1, so
 * the `leafnode_urls` it advertises stay on loopback).
 */
export async function startHub(opts: HubOptions = {}): Promise<Hub> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const [port, httpPort, leafPort] = [await freePort(), await freePort(), await freePort()];
    const dir = makeTempDir('nats-edge-hub-');
    const lines = [`server_name: hub`, `leafnodes {`, `  host: "${HOST}"`, `  port: ${leafPort}`];
    if (opts.leafnodes !== undefined) lines.push(opts.leafnodes);
    lines.push('}');
    if (opts.jetstream !== undefined && opts.jetstream !== false) {
      const domain = typeof opts.jetstream === 'object' ? opts.jetstream.domain : undefined;
      lines.push(`jetstream { store_dir: "${join(dir, 'js')}"${domain !== undefined ? `, domain: ${domain}` : ''} }`);
    }
    if (opts.config !== undefined) lines.push(opts.config);
    const configFile = join(dir, 'hub.conf');
    writeFileSync(configFile, lines.join('\n') + '\n');
    const hub = new HubProcess(port, httpPort, leafPort, dir, configFile);
    hubs.add(hub);
    hub.spawn();
    try {
      await hub.waitReady(opts.readyTimeoutMs ?? 15000);
      return hub;
    } catch (err) {
      lastError = err;
      await hub.stop('SIGKILL');
      hubs.delete(hub);
      if (!/address already in use/i.test(hub.logs())) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

export interface LeafStartOptions {
  /** Userinfo for the remote URL, e.g. `a:b` (no `@`). */
  userinfo?: string;
  /** Extra fields inside the remote's `{ }` (e.g. `deny_exports: ["x"]`). */
  remote?: string;
  /** Extra top-level config text (e.g. a `jetstream { }` block). */
  config?: string;
  /** Server name of the leaf. */
  name?: string;
}

/** Starts a leaf of `kind` whose single remote dials the hub's leafnode port. */
export function startLeaf(kind: ServerKind, hubLeafPort: number, opts: LeafStartOptions = {}): Promise<RunningServer> {
  const auth = opts.userinfo !== undefined ? `${opts.userinfo}@` : '';
  const config = [
    `server_name: ${opts.name ?? 'leaf'}`,
    'leafnodes {',
    '  remotes: [',
    `    { url: "nats-leaf://${auth}${HOST}:${hubLeafPort}"${opts.remote !== undefined ? `, ${opts.remote}` : ''} }`,
    '  ]',
    '}',
    opts.config ?? '',
  ].join('\n');
  return startServer(kind, { config });
}

/** Stops every hub and every server started through servers.ts, then removes the temp dirs. */
export async function stopLeafTestServers(): Promise<void> {
  await Promise.all([...hubs].map((h) => h.stop('SIGKILL')));
  hubs.clear();
  await stopAllServers();
}

/** The hub's /leafz, with subscription lists when `subs`. */
export function hubLeafz(hub: RunningServer, subs = false): Promise<Leafz> {
  return monitor<Leafz>(hub, subs ? '/leafz?subs=1' : '/leafz');
}

/** Polls `read` until `done` or the deadline; then throws `message()` (reads no more). */
async function pollOrThrow<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number, message: (last: T | undefined) => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  let last: T | undefined;
  for (;;) {
    try {
      last = await read();
      if (done(last)) return last;
    } catch {
      // The monitoring port may be down for a moment (hub restarting): keep polling.
    }
    if (Date.now() >= deadline) throw new Error(message(last));
    // Monitoring has no event to await; a short growing backoff keeps the poll cheap.
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}

/** Resolves with the hub's single leaf connection once /leafz shows exactly `count` (default 1) leafs. */
export async function waitForLeafLink(hub: RunningServer, timeoutMs = 10000, count = 1): Promise<LeafzLeaf> {
  const z = await pollOrThrow(
    () => hubLeafz(hub),
    (v) => v.leafnodes === count && v.leafs.length === count,
    timeoutMs,
    (last) => `no leafnode link on the hub within ${timeoutMs} ms (hub /leafz leafnodes=${String(last?.leafnodes)}); hub log tail:\n${tail(hub.logs())}`,
  );
  const leaf = z.leafs[0];
  if (leaf === undefined) throw new Error('hub /leafz lists no leaf');
  return leaf;
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function hasSub(z: Leafz, subject: string): boolean {
  return z.leafs.some((l) => (l.subscriptions_list ?? []).includes(subject));
}

/** Waits until the hub learned `subject` (exact string, wildcards as written) from a leaf. */
export async function waitForHubInterest(hub: RunningServer, subject: string, timeoutMs = 10000): Promise<void> {
  await pollOrThrow(
    () => hubLeafz(hub, true),
    (z) => hasSub(z, subject),
    timeoutMs,
    (last) => `hub /leafz?subs=1 never listed "${subject}" within ${timeoutMs} ms; leafs: ${JSON.stringify(last?.leafs.map((l) => l.subscriptions_list ?? []))}`,
  );
}

/** Waits until no leaf of the hub has interest in `subject` any more. */
export async function waitForNoHubInterest(hub: RunningServer, subject: string, timeoutMs = 10000): Promise<void> {
  await pollOrThrow(
    () => hubLeafz(hub, true),
    (z) => z.leafs.length > 0 && !hasSub(z, subject),
    timeoutMs,
    (last) => `hub /leafz?subs=1 still lists "${subject}" after ${timeoutMs} ms; leafs: ${JSON.stringify(last?.leafs.map((l) => l.subscriptions_list ?? []))}`,
  );
}

/**
 * Waits until the leaf has applied every interest change the hub sent so far. `hubNc` must be the
 * hub connection whose subscriptions matter. A fresh hub subscription is made after them; the hub
 * sends its LS+ on the same ordered link after theirs, so once a leaf publish on it arrives, the
 * earlier interest is in place too. Probes repeat until one arrives; then the helper waits for the
 * last probe sent, so no probe is still in flight to disturb /leafz counters read afterwards.
 */
export async function waitForLeafSawHubInterest(hubNc: NatsConnection, leafNc: NatsConnection, timeoutMs = 10000): Promise<void> {
  const subject = `barrier.${createInbox('').replace(/\W/g, '')}`;
  let lastSeen = -1;
  let wake: (() => void) | undefined;
  const sub = hubNc.subscribe(subject, {
    callback: (err, m) => {
      if (err !== null) return;
      lastSeen = Number(m.string());
      wake?.();
    },
  });
  const seen = (n: number): Promise<void> =>
    new Promise<void>((resolveSeen) => {
      const check = (): void => {
        if (lastSeen >= n) resolveSeen();
        else wake = check;
      };
      check();
    });
  try {
    await hubNc.flush();
    const deadline = Date.now() + timeoutMs;
    let sent = 0;
    let delay = 10;
    for (;;) {
      leafNc.publish(subject, String(sent++));
      await leafNc.flush();
      const first = seen(0);
      await Promise.race([first, new Promise((r) => setTimeout(r, delay))]);
      if (lastSeen >= 0) break;
      if (Date.now() >= deadline) {
        throw new Error(`leaf publishes on ${subject} never reached a hub subscriber within ${timeoutMs} ms: hub interest did not cross to the leaf`);
      }
      delay = Math.min(delay * 2, 200);
    }
    // Interest was in place before the last probe was sent, so it crosses; everything before it did.
    await within(seen(sent - 1), timeoutMs, `barrier probe ${sent - 1} on ${subject} (last seen ${lastSeen})`);
  } finally {
    sub.unsubscribe();
    await hubNc.flush().catch(() => undefined);
  }
}

function isNoResponders(err: unknown): boolean {
  if (err instanceof RequestError) return err.isNoResponders();
  // JetStream wraps it (JetStreamNotEnabled with the RequestError as its cause).
  return err instanceof Error && err.cause !== undefined && isNoResponders(err.cause);
}

/**
 * Calls `fn` until it stops failing with "no responders" (interest not across yet) or the time is
 * up. For services whose interest has several subjects (JetStream's API), where waiting for one
 * particular LS+ would tie the test to one way of advertising it.
 */
export async function untilAnswered<T>(fn: () => Promise<T>, what: string, timeoutMs = 10000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isNoResponders(err)) throw err;
      if (Date.now() >= deadline) throw new Error(`${what}: still no responders after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
}

/** Timestamps (ms since the epoch, local time) of the nats-server log lines matching `re`. */
export function logTimes(log: string, re: RegExp): number[] {
  const out: number[] = [];
  for (const line of log.split('\n')) {
    if (!re.test(line)) continue;
    const m = /(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3})/.exec(line);
    if (m === null) continue;
    const n = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
    out.push(new Date(n[0], n[1] - 1, n[2], n[3], n[4], n[5], n[6]).getTime());
  }
  return out;
}
