// Starts a server of either kind with JetStream on a file store: `-js -sd DIR -p PORT -m HTTPPORT`.
// lib/server.mjs starts servers without extra flags; this is the same life cycle with the store.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { EDGE_BUNDLE, NATS_SERVER_BIN, REPO_ROOT, answersPing, describeExit, freePort, tail } from './server.mjs';

const LOG_LIMIT = 256 * 1024;

/**
 * Spawns `kind` with JetStream on `opts.storeDir` and waits until it answers PING.
 * opts.port / opts.httpPort reuse fixed ports (a restart on the same store); opts.nodeArgs are
 * node flags for nats-edge. Returns the same shape as lib/server.mjs startServer, plus
 * `stop(graceMs, signal)` taking the signal.
 */
export async function startJsServer(kind, opts) {
  if (opts?.storeDir === undefined) throw new Error('startJsServer needs opts.storeDir');
  const port = opts.port ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const flags = ['-js', '-sd', opts.storeDir, '-p', String(port), '-m', String(httpPort)];
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

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
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
    storeDir: opts.storeDir,
    command: [cmd, ...args].join(' '),
    alive: () => exit === null,
    exitInfo: () => exit,
    logs: () => log,
    /** `signal` (default SIGTERM), then SIGKILL after `graceMs`; resolves to the exit record. */
    async stop(graceMs = 10_000, signal = 'SIGTERM') {
      if (exit !== null) return exit;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/**
 * Bytes a directory tree takes: `allocated` as du counts it (st_blocks × 512) and `apparent`
 * (st_size), plus the files, so a leftover WAL after a clean stop shows up by name.
 */
export function diskUsage(dir) {
  let allocated = 0;
  let apparent = 0;
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      allocated += st.blocks * 512;
      apparent += st.size;
      if (st.isDirectory()) walk(p);
      else files.push({ path: p.slice(dir.length + 1), size: st.size, allocated: st.blocks * 512 });
    }
  };
  walk(dir);
  return { allocated, apparent, files };
}
