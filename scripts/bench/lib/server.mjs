// Starts and stops the servers under test: Debian's nats-server and our bundle, same flags.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RawConn } from './wire.mjs';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const EDGE_BUNDLE = join(REPO_ROOT, 'build', 'nats-edge.js');
export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? 'nats-server';
export const KINDS = ['nats-server', 'nats-edge'];

const LOG_LIMIT = 256 * 1024;

/** A port that was free a moment ago (bind 0, read, close). */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** True once a client gets INFO, sends CONNECT+PING and gets PONG. */
export async function answersPing(port, timeoutMs = 2000) {
  let conn;
  try {
    conn = await RawConn.open(port, { timeoutMs });
    let timer;
    const timeout = new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error('no PONG')), timeoutMs);
    });
    await Promise.race([conn.flush(), timeout]);
    clearTimeout(timer);
    return true;
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

/**
 * Spawns `kind` with `-p PORT -m HTTPPORT` (no config) and waits until it answers PING.
 * opts.nodeArgs: extra node flags for nats-edge (e.g. --cpu-prof).
 */
export async function startServer(kind, opts = {}) {
  const port = opts.port ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const flags = ['-p', String(port), '-m', String(httpPort)];
  let cmd;
  let args;
  if (kind === 'nats-server') {
    cmd = NATS_SERVER_BIN;
    args = flags;
  } else if (kind === 'nats-edge') {
    if (!existsSync(EDGE_BUNDLE)) throw new Error(`${EDGE_BUNDLE} is missing: run node scripts/build.mjs`);
    cmd = process.execPath;
    args = [...(opts.nodeArgs ?? []), EDGE_BUNDLE, ...flags];
  } else {
    throw new Error(`unknown server kind ${kind}`);
  }
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd ?? REPO_ROOT });
  let log = '';
  const keep = (d) => {
    log += d.toString();
    if (log.length > LOG_LIMIT) log = log.slice(-LOG_LIMIT);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exit = null;
  const exited = new Promise((res) => {
    proc.once('exit', (code, signal) => {
      exit = { code, signal };
      res(exit);
    });
    proc.once('error', (err) => {
      exit = { code: null, signal: null, error: err.message };
      res(exit);
    });
  });

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (exit !== null) throw new Error(`${kind} exited during start (${describeExit(exit)}):\n${tail(log)}`);
    if (await answersPing(port, 1000)) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${kind} did not answer PING on port ${port}:\n${tail(log)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    kind,
    port,
    httpPort,
    pid: proc.pid,
    command: [cmd, ...args].join(' '),
    alive: () => exit === null,
    exitInfo: () => exit,
    logs: () => log,
    /** SIGTERM, then SIGKILL after `graceMs`; resolves to the exit record. */
    async stop(graceMs = 5000) {
      if (exit !== null) return exit;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

export function describeExit(e) {
  if (e === null) return 'running';
  if (e.error) return `spawn error: ${e.error}`;
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
}

export function tail(text, lines = 20) {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
