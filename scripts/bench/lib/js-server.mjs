// Starts a server of either kind with JetStream on a file store: `-js -sd DIR -p PORT -m HTTPPORT`.
// lib/server.mjs starts servers without extra flags; this is the same life cycle with the store.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, freePort, serverCommand, spawnNatsServer } from './server.mjs';

/**
 * Spawns `kind` with JetStream on `opts.storeDir` and waits until it answers PING.
 * opts.port / opts.httpPort reuse fixed ports (a restart on the same store); opts.nodeArgs are
 * node flags for nats-edge. Returns the same shape as lib/server.mjs startServer plus
 * `storeDir`; `stop(graceMs, signal)` waits 10 s by default before SIGKILL.
 */
export async function startJsServer(kind, opts) {
  if (opts?.storeDir === undefined) throw new Error('startJsServer needs opts.storeDir');
  const port = opts.port ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const flags = ['-js', '-sd', opts.storeDir, '-p', String(port), '-m', String(httpPort)];
  const { cmd, args } = serverCommand(kind, flags, { nodeArgs: opts.nodeArgs });
  const server = await spawnNatsServer({
    kind, cmd, args, cwd: opts.cwd ?? REPO_ROOT, port, httpPort, readyTimeoutMs: opts.readyTimeoutMs ?? 30_000, graceMs: 10_000,
  });
  return { ...server, storeDir: opts.storeDir };
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
