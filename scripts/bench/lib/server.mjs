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
 * The command line that runs server `kind` with `flags`: nats-server as is, nats-edge as
 * `node [nodeArgs] BUNDLE flags` (nodeArgs: extra node flags such as --cpu-prof).
 */
export function serverCommand(kind, flags, { nodeArgs = [], bundle = EDGE_BUNDLE } = {}) {
  if (kind === 'nats-server') return { cmd: NATS_SERVER_BIN, args: flags };
  if (kind === 'nats-edge') {
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run node scripts/build.mjs`);
    return { cmd: process.execPath, args: [...nodeArgs, bundle, ...flags] };
  }
  throw new Error(`unknown server kind ${kind}`);
}

/**
 * Spawns `cmd args` in `cwd`, keeps the tail of its output and polls `ready()` every `pollMs`
 * until it resolves true: the life cycle every server under test shares. Throws when the
 * process exits first or `readyTimeoutMs` passes (it is killed then; `notReady` says what it
 * did not do). Returns { kind, pid, command, alive(), exitInfo(), logs(), stop(graceMs, signal) };
 * stop sends `signal` (SIGTERM), then SIGKILL after `graceMs`, and resolves to the exit record.
 */
export async function spawnServer({ kind, cmd, args, cwd, ready, notReady, readyTimeoutMs = 15_000, pollMs = 50, graceMs = 5000 }) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
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

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exit !== null) throw new Error(`${kind} exited during start (${describeExit(exit)}):\n${tail(log)}`);
    if (await ready()) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await exited;
      throw new Error(`${kind} ${notReady}:\n${tail(log)}`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }

  return {
    kind,
    pid: proc.pid,
    command: [cmd, ...args].join(' '),
    alive: () => exit === null,
    exitInfo: () => exit,
    logs: () => log,
    async stop(stopGraceMs = graceMs, signal = 'SIGTERM') {
      if (exit !== null) return exit;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), stopGraceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** spawnServer for a NATS server: ready once its client `port` answers PING; the handle carries `port` and `httpPort`. */
export async function spawnNatsServer({ port, httpPort, ...opts }) {
  const server = await spawnServer({ ...opts, ready: () => answersPing(port, 1000), notReady: `did not answer PING on port ${port}` });
  return { ...server, port, httpPort };
}

/**
 * Spawns `kind` with `-p PORT -m HTTPPORT` (no config) and waits until it answers PING.
 * opts.nodeArgs: extra node flags for nats-edge (e.g. --cpu-prof).
 */
export async function startServer(kind, opts = {}) {
  const port = opts.port ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const { cmd, args } = serverCommand(kind, ['-p', String(port), '-m', String(httpPort)], { nodeArgs: opts.nodeArgs });
  return spawnNatsServer({ kind, cmd, args, cwd: opts.cwd ?? REPO_ROOT, port, httpPort, readyTimeoutMs: opts.readyTimeoutMs });
}

/** The lines of `server`'s log that explain odd figures: warnings, errors, slow consumers. */
export function logNotes(server, max = 20) {
  return server.logs().split('\n').filter((l) => /\[(WRN|ERR|FTL)\]|Slow Consumer/.test(l)).slice(0, max);
}

export function describeExit(e) {
  if (e === null) return 'running';
  if (e.error) return `spawn error: ${e.error}`;
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
}

export function tail(text, lines = 20) {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
