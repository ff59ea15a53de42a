/**
 * Starts a real Debian nats-server or our bundled build/nats-edge.js with the same flags, so
 * one table of integration cases can prove every assertion on the real server first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ServerKind = 'nats-server' | 'nats-edge';

export interface StartOptions {
  /** Config file text (nats-server syntax); written to a temp file and passed with -c. */
  config?: string;
  /** Extra command-line flags, appended after -c/-a/-p/-m. */
  args?: string[];
  /** Overall time to wait for the client port to answer INFO. */
  readyTimeoutMs?: number;
  /** Flags for node itself before the bundle (e.g. --max-old-space-size); nats-edge only. */
  nodeArgs?: string[];
  /** Extra environment variables for the server process. */
  env?: Record<string, string>;
}

export interface RunningServer {
  readonly kind: ServerKind;
  readonly port: number;
  readonly httpPort: number;
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly pid: number;
  /** The server's temp working directory (holds the config file); removed by stopAllServers(). */
  readonly dir: string;
  /** Sends the signal (default SIGTERM), waits for exit (SIGKILL after 5 s); resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Everything the process wrote to stdout and stderr so far. */
  logs(): string;
  /** Resident set size in bytes (VmRSS from /proc/PID/status); 0 once the process is gone. */
  rss(): number;
}

const HOST = '127.0.0.1';
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NATS_EDGE_BUNDLE = join(REPO_ROOT, 'build', 'nats-edge.js');
const NATS_SERVER_BIN = process.env['NATS_SERVER_BIN'] ?? 'nats-server';
const LOG_LIMIT = 1 << 20;

/** Kinds to run the integration tables against: both unless NATS_EDGE_ONLY=1 or NATS_SERVER_ONLY=1. */
export function serverKinds(): ServerKind[] {
  if (process.env['NATS_EDGE_ONLY'] === '1') return ['nats-edge'];
  if (process.env['NATS_SERVER_ONLY'] === '1') return ['nats-server'];
  return ['nats-server', 'nats-edge'];
}

/** A port that was free a moment ago (bind 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port from listen(0)'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolvePort(port));
    });
  });
}

const tempDirs = new Set<string>();

/** A fresh temp directory, removed by stopAllServers(). */
export function makeTempDir(prefix = 'nats-edge-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

const running = new Set<ServerProcess>();

/** Stops every server this module started and removes its temp dirs; call from afterAll. */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop('SIGKILL')));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

// A crashed test worker must not leave servers behind.
process.once('exit', () => {
  for (const s of running) s.killNow();
});

class ServerProcess implements RunningServer {
  readonly url: string;
  readonly pid: number;
  private output = '';
  private readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined = undefined;

  constructor(
    readonly kind: ServerKind,
    readonly port: number,
    readonly httpPort: number,
    readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    this.url = `nats://${HOST}:${port}`;
    if (child.pid === undefined) throw new Error(`${kind}: spawn failed`);
    this.pid = child.pid;
    const append = (chunk: Buffer): void => {
      this.output += chunk.toString('utf8');
      if (this.output.length > LOG_LIMIT) this.output = this.output.slice(-LOG_LIMIT);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.exited = new Promise((resolveExit) => {
      child.once('exit', (code) => {
        this.exitCode = code;
        running.delete(this);
        resolveExit(code);
      });
      child.once('error', (err) => {
        append(Buffer.from(`spawn error: ${err.message}\n`));
        this.exitCode = null;
        running.delete(this);
        resolveExit(null);
      });
    });
  }

  get hasExited(): boolean {
    return this.exitCode !== undefined;
  }

  whenExited(): Promise<number | null> {
    return this.exited;
  }

  logs(): string {
    return this.output;
  }

  rss(): number {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
      return m?.[1] !== undefined ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.hasExited) return this.exitCode ?? null;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  killNow(): void {
    if (!this.hasExited) this.child.kill('SIGKILL');
  }
}

function commandFor(kind: ServerKind, nodeArgs: string[]): { cmd: string; pre: string[] } {
  if (kind === 'nats-server') return { cmd: NATS_SERVER_BIN, pre: [] };
  return { cmd: process.execPath, pre: [...nodeArgs, NATS_EDGE_BUNDLE] };
}

/** Connects and reads until the INFO line is complete. */
export function probeInfo(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const sock = tcpConnect({ host: HOST, port });
    let buf = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolveProbe(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (buf.includes('\n')) done(buf.startsWith('INFO '));
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

/** True once something accepts TCP connections on `port`. */
export function probeAccept(port: number): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const sock = tcpConnect({ host: HOST, port });
    sock.once('connect', () => {
      sock.destroy();
      resolveProbe(true);
    });
    sock.once('error', () => resolveProbe(false));
  });
}

async function waitReady(srv: ServerProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  let infoSeen = false;
  while (Date.now() < deadline) {
    if (srv.hasExited) {
      throw new Error(`${srv.kind} exited before it was ready (code ${String(await srv.whenExited())}):\n${srv.logs()}`);
    }
    if (!infoSeen) infoSeen = await probeInfo(srv.port, Math.min(1000, Math.max(50, deadline - Date.now())));
    if (infoSeen && (await probeAccept(srv.httpPort))) return;
    // A retry loop with a short, growing backoff; the probe itself is the event we wait for.
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
  throw new Error(`${srv.kind} not ready within ${timeoutMs} ms (info seen: ${infoSeen}):\n${srv.logs()}`);
}

/**
 * Starts a server of the given kind on free client and monitoring ports, bound to 127.0.0.1,
 * and resolves once the client port answers INFO and the monitoring port accepts.
 */
export async function startServer(kind: ServerKind, opts: StartOptions = {}): Promise<RunningServer> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15000;
  if (kind === 'nats-edge' && !existsSync(NATS_EDGE_BUNDLE)) {
    throw new Error(`${NATS_EDGE_BUNDLE} is missing: run \`npm run build\` (or set NATS_SERVER_ONLY=1)`);
  }
  let lastError: unknown;
  // A freed port can be taken by someone else before the server binds it: try again with new ports.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const httpPort = await freePort();
    // Each server runs in its own temp dir, so whatever it writes by default stays out of the repo.
    const dir = makeTempDir('nats-edge-srv-');
    const args: string[] = [];
    if (opts.config !== undefined) {
      const file = join(dir, 'server.conf');
      writeFileSync(file, opts.config);
      args.push('-c', file);
    }
    args.push('-a', HOST, '-p', String(port), '-m', String(httpPort), ...(opts.args ?? []));
    const { cmd, pre } = commandFor(kind, opts.nodeArgs ?? []);
    const child = spawn(cmd, [...pre, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: dir,
      env: { ...process.env, ...opts.env },
    });
    const srv = new ServerProcess(kind, port, httpPort, dir, child);
    running.add(srv);
    try {
      await waitReady(srv, readyTimeoutMs);
      return srv;
    } catch (err) {
      lastError = err;
      await srv.stop('SIGKILL');
      if (!/address already in use|EADDRINUSE/i.test(srv.logs())) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** GET a monitoring endpoint and parse its JSON body. */
export async function monitor<T = Record<string, unknown>>(srv: RunningServer, path: string): Promise<T> {
  // A deadline, so a server that stops answering fails the caller's poll instead of hanging it.
  const res = await fetch(`http://${HOST}:${srv.httpPort}${path}`, { signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${body}`);
  return JSON.parse(body) as T;
}

/** Rejects with a clear message when `p` does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolveWithin, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolveWithin(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/**
 * Polls `read` (e.g. a monitoring endpoint) until `done` holds or the time is up, then returns
 * the last value; the caller asserts on it, so a miss shows the real numbers. Monitoring has no
 * event to await, so a short backoff loop is the only way to see it settle.
 */
export async function pollUntil<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() >= deadline) return v;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}
