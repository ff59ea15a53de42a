#!/usr/bin/env node
// Footprint benchmark: what nats-edge costs a device before and while it stores, against
// Debian's nats-server in the same run. Cold start to the first INFO, the size of what ships,
// idle RSS, and the bytes a stored message costs on disk and in writes (SD-card wear).
// See docs/benchmarks.md "Start, size, idle memory, disk writes".
//
//   node scripts/bench/startup.mjs [--rounds R] [--count N] [--only nats-server|edge] [--quick]
//                                  [--json out.json] [--markdown out.md] [--dir PARENT]
//                                  [--no-build] [--edge-bundle FILE] [--node BIN] [--compile-cache DIR]
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { KINDS, NATS_SERVER_BIN, REPO_ROOT, describeExit, freePort, logNotes, serverCommand, spawnServer, tail } from './lib/server.mjs';
import { prepareEdgeBundle } from './lib/bundle.mjs';
import { readArgs } from './lib/cli.mjs';
import { diskUsage } from './lib/js-server.mjs';
import { machineFacts, machineLine } from './lib/report.mjs';
import { settledRss } from './lib/rss.mjs';
import { fmtFixed, fmtInt, markdownTable, median, textTable } from './lib/stats.mjs';
import { runAckedPublish } from './lib/js-load.mjs';

const USAGE = `usage: node scripts/bench/startup.mjs [options]
  --rounds R          rounds, each kind once per round, order alternating (default 5; 1 with --quick)
  --count N           acked messages stored per round for the disk figures (default 50,000;
                      10,000 with --quick)
  --only KIND         nats-server | edge (nats-edge): measure one server only
  --quick             one round, 10,000 messages: a smoke run of seconds
  --json FILE         write every figure (per round and summaries) as JSON
  --markdown FILE     write the summary table as markdown
  --dir PARENT        where the store directories go (default: the OS temp dir); put it on the
                      device's SD card to measure that card
  --no-build          do not run scripts/build.mjs --if-stale before measuring nats-edge
  --edge-bundle FILE  run this bundle as is (no build, no copy); it needs node_modules beside it
  --node BIN          run nats-edge and the bare-node floor with this Node runtime (e.g. a release's
                      node/bin/node; better-sqlite3 beside the bundle must be built for it)
  --compile-cache DIR start nats-edge with NODE_COMPILE_CACHE=DIR, as the release's launcher does
                      under systemd (Node >= 22.1; the first start fills it)
`;

const args = readArgs({
  script: 'startup.mjs',
  usage: USAGE,
  common: ['--rounds', '--only', '--quick', '--json', '--markdown', '--no-build', '--edge-bundle'],
  flags: {
    '--count': (o, take) => (o.count = take.num()),
    '--dir': (o, take) => (o.dir = take.str()),
    '--node': (o, take) => (o.node = take.str()),
    '--compile-cache': (o, take) => (o.compileCache = take.str()),
  },
});

const MiB = 1024 * 1024;
const STREAM = 'DISK';
const SUBJECT_COUNT = 16;
const SUBJECTS = Array.from({ length: SUBJECT_COUNT }, (_, k) => `d.${k}`);
const PAYLOAD = 128;
const plan = {
  rounds: args.rounds ?? (args.quick ? 1 : 5),
  count: args.count ?? (args.quick ? 10_000 : 50_000),
  payload: PAYLOAD,
  subjects: `d.<i % ${SUBJECT_COUNT}>`,
  // PubAcks outstanding at most, and PUB frames per socket write (a multiple of SUBJECT_COUNT,
  // so every full batch starts again at d.0).
  window: 1_000,
  perWrite: 64,
  // Readiness: a connect attempt every millisecond, not a sleep.
  pollMs: 1,
  readyTimeoutMs: 30_000,
  // Writes have stopped once wchar and write_bytes stay put this many readings this far apart.
  quietSamples: 5,
  quietIntervalMs: 100,
  quietMaxMs: 15_000,
  storeParent: args.dir ?? tmpdir(),
};
const kinds = args.only !== undefined ? [args.only] : KINDS;
/** Subject + payload bytes of the messages published: what a message is before any overhead. */
const RAW_BYTES = (() => {
  let total = 0;
  for (let i = 0; i < plan.count; i++) total += SUBJECTS[i % SUBJECT_COUNT].length + PAYLOAD;
  return total;
})();
const ADDON = join(REPO_ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
const TARGETS = {
  readyMs: { edgeMax: 300, text: '< 300 ms' },
  rss: { edgeMax: 50 * MiB, text: '< 50 MiB' },
  bundle: { edgeMax: MiB, text: '< 1 MiB' },
};

// ---------------------------------------------------------------------------------------------
// Readiness and /proc figures

/**
 * One connect attempt on `port`: true once the first bytes are `INFO `. A refused connect fails
 * at once; a connected socket waits for its INFO (a Node server accepts from the backlog only
 * when its event loop gets there).
 */
function infoArrives(port, timeoutMs = 5_000) {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host: '127.0.0.1' });
    let head = '';
    let settled = false;
    const done = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('data', (d) => {
      head += d.toString('latin1');
      if (head.length >= 5) done(head.startsWith('INFO '));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

/**
 * Spawns `cmd args` and polls the client port every plan.pollMs until an INFO arrives.
 * readyMs runs from just before spawn() to that INFO: process start, runtime start, config,
 * store open, listen, accept.
 */
async function coldStart(kind, cmd, argv, port, cwd) {
  let readyAt = 0n;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const server = await spawnServer({
    kind, cmd, args: argv, cwd, pollMs: plan.pollMs, readyTimeoutMs: plan.readyTimeoutMs, graceMs: 10_000,
    ready: async () => {
      const ok = await infoArrives(port);
      if (ok) readyAt = process.hrtime.bigint();
      return ok;
    },
    notReady: `sent no INFO on port ${port}`,
  });
  // spawnServer returns as soon as ready() said true: these are the thread times at that INFO.
  const threads = threadTimes(server.pid);
  // The connect loop's own CPU: on 2 cores it competes with the start it measures.
  const poll = process.cpuUsage(cpu0);
  return { server, readyMs: Number(readyAt - t0) / 1e6, ...threads, pollerCpuMs: (poll.user + poll.system) / 1000 };
}

/**
 * CPU time of all threads of `pid` so far and the time they were runnable but waiting for a CPU
 * (/proc/PID/task/TID/schedstat, ns): on a shared machine the start's wall time is mostly the
 * second when the CPUs are busy, so its CPU time is the figure that carries to another machine.
 */
function threadTimes(pid) {
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return { cpuMs: NaN, waitMs: NaN };
  }
  let cpu = 0;
  let wait = 0;
  for (const t of tasks) {
    try {
      const f = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ');
      cpu += Number(f[0]);
      wait += Number(f[1]);
    } catch {
      // thread ended between readdir and read
    }
  }
  return { cpuMs: cpu / 1e6, waitMs: wait / 1e6 };
}

/** /proc/PID/io as numbers (rchar, wchar, syscw, write_bytes, cancelled_write_bytes, ...); null once gone. */
function readIo(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch {
    return null;
  }
  const io = {};
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)$/.exec(line);
    if (m !== null) io[m[1]] = Number(m[2]);
  }
  return io;
}

/**
 * Waits until the process has stopped writing: wchar and write_bytes unchanged over
 * plan.quietSamples readings. A server may ack before it writes (nats-server buffers message
 * blocks and flushes them from a goroutine), so the publish phase ends here, not at the last ack.
 */
async function quietIo(pid) {
  const start = Date.now();
  let last = readIo(pid);
  let same = 0;
  while (last !== null && same < plan.quietSamples - 1 && Date.now() - start < plan.quietMaxMs) {
    await new Promise((r) => setTimeout(r, plan.quietIntervalMs));
    const now = readIo(pid);
    if (now === null) break;
    same = now.wchar === last.wchar && now.write_bytes === last.write_bytes ? same + 1 : 0;
    last = now;
  }
  return { io: last, quietAfterMs: Date.now() - start, quiet: same >= plan.quietSamples - 1 };
}

/**
 * settledRss, then how that RSS splits: RssFile is mostly the executable's pages (node's 99 MB
 * binary), shared with every other process that maps it and droppable under memory pressure;
 * RssAnon is the process's own heap and stacks.
 */
async function idleRss(pid) {
  const settled = await settledRss(pid);
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone: the fields stay NaN
  }
  const field = (name) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return m === null ? NaN : Number(m[1]) * 1024;
  };
  return { ...settled, anon: field('RssAnon'), file: field('RssFile') };
}

function ioDelta(a, b) {
  const d = {};
  for (const k of Object.keys(b)) d[k] = b[k] - (a[k] ?? 0);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Stored messages

/** Runs `fn(jsm)` on a nats.js connection to `port`, closed afterwards. */
async function withJsm(port, fn) {
  const nc = await connect({ servers: `127.0.0.1:${port}`, reconnect: false, timeout: 10_000 });
  try {
    return await fn(await jetstreamManager(nc, { timeout: 10_000 }));
  } finally {
    await nc.close();
  }
}

/** The stream's message count and last seq, failing unless they are plan.count. */
async function checkStored(port, when) {
  const si = await withJsm(port, (jsm) => jsm.streams.info(STREAM));
  const { messages, last_seq: lastSeq } = si.state;
  if (messages !== plan.count || lastSeq !== plan.count) {
    throw new Error(`${when}: STREAM.INFO shows ${messages} messages, last seq ${lastSeq}, expected ${plan.count}`);
  }
  return { messages, lastSeq };
}

/**
 * stopChecked while reading /proc/PID/io every millisecond: the last reading before the process
 * is gone includes what it wrote while stopping (nats-edge's final checkpoint), all but its
 * last millisecond or so.
 */
async function stopReadingIo(server, out, what) {
  let last = readIo(server.pid);
  const timer = setInterval(() => {
    const io = readIo(server.pid);
    if (io !== null) last = io;
  }, 1);
  try {
    await stopChecked(server, out, what);
  } finally {
    clearInterval(timer);
  }
  return last;
}

// ---------------------------------------------------------------------------------------------
// One round of one server

function serverFlags(port, storeDir) {
  return storeDir === undefined ? ['-p', String(port)] : ['-js', '-sd', storeDir, '-p', String(port)];
}

/** nats-server 2.9 exits with code 1 after a SIGTERM it handled: its log says so. */
function stoppedCleanly(server, exit) {
  if (exit.code === 0) return true;
  return server.kind === 'nats-server' && exit.code === 1 && /\[INF\] Server Exiting/.test(server.logs());
}

/** Stops `server`; an exit other than the stop's own (or a clean exit code) is an error. */
async function stopChecked(server, out, what) {
  const alive = server.alive();
  const exit = await server.stop();
  if (!alive) out.errors.push(`${what}: ${server.kind} died before its stop: ${describeExit(exit)}; log tail:\n${tail(server.logs())}`);
  else if (!stoppedCleanly(server, exit)) out.errors.push(`${what}: ${server.kind} did not stop cleanly: ${describeExit(exit)}`);
  for (const l of logNotes(server, 5)) out.serverLogNotes.push(`${what}: ${l}`);
  return exit;
}

/** NODE: the runtime that runs nats-edge and the floors (--node), else this process's own. */
const NODE = args.node ?? process.execPath;

/**
 * nats-edge under --node and --compile-cache: `env NODE_COMPILE_CACHE=DIR node ...` (env execs
 * node in the same process, so the pid and its /proc figures are node's).
 */
function edgeRuntime(kind, c) {
  if (kind !== 'nats-edge') return c;
  if (args.compileCache === undefined) return { cmd: NODE, args: c.args };
  return { cmd: 'env', args: [`NODE_COMPILE_CACHE=${args.compileCache}`, NODE, ...c.args] };
}

async function runRound(kind, round, bundle) {
  const out = { kind, round, loadavg: loadavg()[0], errors: [], serverLogNotes: [] };
  const command = (port, storeDir) => edgeRuntime(kind, serverCommand(kind, serverFlags(port, storeDir), { bundle }));
  const step = async (name, fn) => {
    try {
      await fn();
    } catch (err) {
      out.errors.push(`${name}: ${err.message}`);
    }
  };

  // 1. Core only: spawn to INFO, then idle RSS.
  await step('core start', async () => {
    const port = await freePort();
    const { cmd, args: argv } = command(port);
    const { server, readyMs, cpuMs, waitMs, pollerCpuMs } = await coldStart(kind, cmd, argv, port, REPO_ROOT);
    try {
      out.core = { command: server.command, readyMs, cpuMs, waitMs, pollerCpuMs, rss: await idleRss(server.pid) };
    } finally {
      await stopChecked(server, out, 'core');
    }
  });

  // 2. JetStream on a fresh store: spawn to INFO, idle RSS, then plan.count acked messages with
  //    the process's writes counted around them, a clean stop and the store's size.
  const storeDir = mkdtempSync(join(plan.storeParent, `bench-startup-${kind}-`));
  try {
    let stored = false;
    let ioBefore = null;
    await step('JetStream start', async () => {
      const port = await freePort();
      const { cmd, args: argv } = command(port, storeDir);
      const { server, readyMs, cpuMs, waitMs, pollerCpuMs } = await coldStart(kind, cmd, argv, port, REPO_ROOT);
      try {
        out.js = { command: server.command, readyMs, cpuMs, waitMs, pollerCpuMs, rss: await idleRss(server.pid) };
        await withJsm(port, (jsm) => jsm.streams.add({ name: STREAM, subjects: ['d.*'], storage: StorageType.File }));
        ioBefore = (await quietIo(server.pid)).io;
        // Raw socket (lib/js-load.mjs): nats.js's promise per message would be the bottleneck.
        const pub = await runAckedPublish({ port, subject: SUBJECTS, count: plan.count, payloadSize: PAYLOAD, window: plan.window, chunk: plan.perWrite });
        const after = await quietIo(server.pid);
        if (ioBefore === null || after.io === null) throw new Error(`/proc/${server.pid}/io is not readable`);
        const d = ioDelta(ioBefore, after.io);
        out.disk = {
          rate: pub.rate,
          errorAcks: pub.errorAcks,
          io: d,
          socketBytesToClient: pub.socketBytesToClient,
          // wchar counts every write() (sockets and log pipes too); the PubAcks are the socket part.
          fileWchar: d.wchar - pub.socketBytesToClient,
          quietAfterMs: after.quietAfterMs,
          quiet: after.quiet,
        };
        if (pub.errorAcks > 0) out.errors.push(`publish: ${pub.errorAcks} PubAcks carried an error`);
        out.disk.stored = await checkStored(port, 'after publish');
        stored = true;
      } finally {
        const last = await stopReadingIo(server, out, 'JetStream');
        if (out.disk !== undefined && ioBefore !== null && last !== null) out.disk.ioThroughStop = ioDelta(ioBefore, last);
      }
      if (stored) out.disk.store = diskUsage(storeDir);
    });

    // 3. JetStream again on that store: the start of a device that already holds messages.
    if (stored) {
      await step('JetStream restart', async () => {
        const port = await freePort();
        const { cmd, args: argv } = command(port, storeDir);
        const { server, readyMs, cpuMs, waitMs, pollerCpuMs } = await coldStart(kind, cmd, argv, port, REPO_ROOT);
        try {
          out.restart = { readyMs, cpuMs, waitMs, pollerCpuMs, rss: await idleRss(server.pid) };
          out.restart.stored = await checkStored(port, 'after restart');
        } finally {
          await stopChecked(server, out, 'restart');
        }
      });
    }
  } finally {
    rmSync(storeDir, { recursive: true, force: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Floors: what Node itself costs on this machine

const NODE_LISTEN_SRC = "require('net').createServer((s)=>s.end('INFO {}\\r\\n')).listen(+process.argv[1],'127.0.0.1')";

async function runFloor(round) {
  const out = { round, errors: [] };
  try {
    const port = await freePort();
    const { server, readyMs, cpuMs, waitMs } = await coldStart('bare node', NODE, ['-e', NODE_LISTEN_SRC, String(port)], port, REPO_ROOT);
    await server.stop();
    out.nodeListenReadyMs = readyMs;
    out.nodeListenCpuMs = cpuMs;
    out.nodeListenWaitMs = waitMs;
    const idle = await spawnServer({
      kind: 'bare node', cmd: NODE, args: ['-e', 'setInterval(()=>{},1000)'], cwd: REPO_ROOT, ready: async () => true, notReady: '',
    });
    out.nodeIdleRss = await idleRss(idle.pid);
    await idle.stop();
  } catch (err) {
    out.errors.push(err.message);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sizes

function fileSize(path) {
  try {
    return statSync(path).size;
  } catch {
    return NaN;
  }
}

function whichPath(bin) {
  const r = spawnSync('sh', ['-c', `command -v "${bin}"`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The addon as `strip` leaves it (a release would ship it stripped); NaN without strip. */
function strippedSize(path) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-startup-strip-'));
  try {
    const copy = join(dir, 'addon.node');
    copyFileSync(path, copy);
    const r = spawnSync('strip', ['--strip-unneeded', copy]);
    return r.status === 0 ? fileSize(copy) : NaN;
  } catch {
    return NaN;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function sizes(bundlePath) {
  const natsServerPath = whichPath(NATS_SERVER_BIN);
  const out = {
    addonPath: ADDON,
    addonBytes: fileSize(ADDON),
    addonStrippedBytes: strippedSize(ADDON),
    nodeRuntimeBytes: fileSize(NODE),
    natsServerPath,
    natsServerBytes: natsServerPath === undefined ? NaN : fileSize(natsServerPath),
  };
  if (bundlePath !== undefined) {
    const text = readFileSync(bundlePath);
    out.bundlePath = bundlePath;
    out.bundleBytes = text.length;
    out.bundleGzipBytes = gzipSync(text, { level: 9 }).length;
  }
  return out;
}

function filesystemOf(dir) {
  try {
    return execFileSync('df', ['--output=source,fstype,target', dir], { encoding: 'utf8' }).trim().split('\n').pop().trim().split(/\s+/).join(' ');
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const fmtMiB = (b) => (Number.isFinite(b) ? `${(b / MiB).toFixed(1)} MiB` : 'n/a');
const fmtMs = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const fmtB = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const fmtBytes = (x) => (Number.isFinite(x) ? `${fmtInt(x)} B` : 'n/a');
const maxOf = (xs) => {
  const v = xs.filter(Number.isFinite);
  return v.length === 0 ? NaN : Math.max(...v);
};
const perMsg = (x) => (Number.isFinite(x) ? x / plan.count : NaN);

/**
 * Rows of the summary: { key, get(round), agg: median | maxOf, fmt, target? }. A target is met
 * when nats-edge's figure is at most target.edgeMax.
 */
const METRICS = [
  { key: 'start to first INFO, core (-p), p50 ms', get: (r) => r.core?.readyMs, agg: median, fmt: fmtMs, target: TARGETS.readyMs },
  { key: 'start to first INFO, core (-p), max ms', get: (r) => r.core?.readyMs, agg: maxOf, fmt: fmtMs, target: TARGETS.readyMs },
  { key: 'start to first INFO, -js fresh store, p50 ms', get: (r) => r.js?.readyMs, agg: median, fmt: fmtMs, target: TARGETS.readyMs },
  { key: 'start to first INFO, -js fresh store, max ms', get: (r) => r.js?.readyMs, agg: maxOf, fmt: fmtMs, target: TARGETS.readyMs },
  { key: `start to first INFO, -js ${fmtInt(plan.count)}-msg store, p50 ms`, get: (r) => r.restart?.readyMs, agg: median, fmt: fmtMs, target: TARGETS.readyMs },
  { key: `start to first INFO, -js ${fmtInt(plan.count)}-msg store, max ms`, get: (r) => r.restart?.readyMs, agg: maxOf, fmt: fmtMs, target: TARGETS.readyMs },
  { key: 'CPU time until first INFO, core, p50 ms (all threads)', get: (r) => r.core?.cpuMs, agg: median, fmt: fmtMs },
  { key: 'CPU time until first INFO, -js fresh store, p50 ms', get: (r) => r.js?.cpuMs, agg: median, fmt: fmtMs },
  { key: 'waiting for a CPU until first INFO, core, p50 ms (summed over threads)', get: (r) => r.core?.waitMs, agg: median, fmt: fmtMs },
  { key: "the bench's connect loop CPU during that start, core, p50 ms", get: (r) => r.core?.pollerCpuMs, agg: median, fmt: fmtMs },
  { key: 'idle RSS after start, core', get: (r) => r.core?.rss.rss, agg: median, fmt: fmtMiB, target: TARGETS.rss },
  { key: 'idle RSS after start, -js fresh store', get: (r) => r.js?.rss.rss, agg: median, fmt: fmtMiB, target: TARGETS.rss },
  { key: `idle RSS after start, -js ${fmtInt(plan.count)}-msg store`, get: (r) => r.restart?.rss.rss, agg: median, fmt: fmtMiB, target: TARGETS.rss },
  { key: '  of which RssAnon (own heap, stacks), -js fresh store', get: (r) => r.js?.rss.anon, agg: median, fmt: fmtMiB },
  { key: '  of which RssFile (mapped binary, shared), -js fresh store', get: (r) => r.js?.rss.file, agg: median, fmt: fmtMiB },
  { key: `acked publish msgs/s (${PAYLOAD} B, ${fmtInt(plan.window)} outstanding)`, get: (r) => r.disk?.rate, agg: median, fmt: fmtInt },
  { key: 'store on disk after clean stop, B/msg (du)', get: (r) => perMsg(r.disk?.store?.allocated), agg: median, fmt: fmtB },
  { key: 'store, apparent size, B/msg', get: (r) => perMsg(r.disk?.store?.apparent), agg: median, fmt: fmtB },
  { key: 'written to block layer during publish, B/msg (write_bytes)', get: (r) => perMsg(r.disk?.io.write_bytes), agg: median, fmt: fmtB },
  { key: 'of which cancelled (truncated before writeback), B/msg', get: (r) => perMsg(r.disk?.io.cancelled_write_bytes), agg: median, fmt: fmtB },
  { key: 'write_bytes, publish through the clean stop, B/msg', get: (r) => perMsg(r.disk?.ioThroughStop?.write_bytes), agg: median, fmt: fmtB },
  { key: 'write() to files during publish, B/msg (wchar - socket)', get: (r) => perMsg(r.disk?.fileWchar), agg: median, fmt: fmtB },
];

function summarize(results) {
  const rows = [];
  const summary = {};
  for (const m of METRICS) {
    const v = {};
    for (const k of kinds) v[k] = m.agg(results[k].map(m.get).filter((x) => x !== undefined));
    const ratio = kinds.length === 2 ? v['nats-edge'] / v['nats-server'] : NaN;
    let verdict = '';
    if (m.target !== undefined && kinds.includes('nats-edge')) {
      verdict = Number.isFinite(v['nats-edge']) ? (v['nats-edge'] < m.target.edgeMax ? 'PASS' : 'FAIL') : 'n/a';
    }
    summary[m.key] = { ...v, ratio, target: m.target?.text, verdict };
    rows.push([
      m.key,
      kinds.includes('nats-server') ? m.fmt(v['nats-server']) : '-',
      kinds.includes('nats-edge') ? m.fmt(v['nats-edge']) : '-',
      Number.isFinite(ratio) ? ratio.toFixed(2) : '-',
      m.target !== undefined && verdict !== '' ? `${m.target.text} ${verdict}` : '',
    ]);
  }
  return { rows, summary };
}

/** Rows for what ships: one figure per server, not per round. */
function sizeRows(s) {
  const edgeOn = kinds.includes('nats-edge');
  const nsOn = kinds.includes('nats-server');
  const e = (x) => (edgeOn ? fmtBytes(x) : '-');
  const bundleVerdict = Number.isFinite(s.bundleBytes) ? (s.bundleBytes < TARGETS.bundle.edgeMax ? 'PASS' : 'FAIL') : 'n/a';
  const shipped = s.bundleBytes + s.addonStrippedBytes;
  const ratio = edgeOn && nsOn && Number.isFinite(shipped / s.natsServerBytes) ? (shipped / s.natsServerBytes).toFixed(2) : '-';
  return [
    ['bundle build/nats-edge.js (minified, no addon)', '-', e(s.bundleBytes), '-', edgeOn ? `${TARGETS.bundle.text} ${bundleVerdict}` : ''],
    ['bundle, gzip -9', '-', e(s.bundleGzipBytes), '-', ''],
    ['better_sqlite3.node addon, as built', '-', e(s.addonBytes), '-', ''],
    ['better_sqlite3.node addon, stripped', '-', e(s.addonStrippedBytes), '-', ''],
    ['executable: nats-server binary | bundle + stripped addon', nsOn ? fmtBytes(s.natsServerBytes) : '-', e(shipped), ratio, ''],
    ['node runtime binary (nats-edge needs it, not counted above)', '-', e(s.nodeRuntimeBytes), '-', ''],
  ];
}

function roundLine(r) {
  const parts = [
    r.core ? `core ready ${fmtMs(r.core.readyMs)} ms (cpu ${fmtMs(r.core.cpuMs)}, wait ${fmtMs(r.core.waitMs)}), RSS ${fmtMiB(r.core.rss.rss)}` : 'core failed',
    r.js ? `-js ready ${fmtMs(r.js.readyMs)} ms (cpu ${fmtMs(r.js.cpuMs)}, wait ${fmtMs(r.js.waitMs)}), RSS ${fmtMiB(r.js.rss.rss)}` : '-js failed',
    r.disk
      ? `publish ${fmtInt(r.disk.rate)} msg/s; per msg: write_bytes ${fmtB(perMsg(r.disk.io.write_bytes))} B, file write() ${fmtB(perMsg(r.disk.fileWchar))} B, ` +
        `wchar ${fmtB(perMsg(r.disk.io.wchar))} B, store ${fmtB(perMsg(r.disk.store?.allocated))} B`
      : 'disk failed',
    r.disk && !r.disk.quiet ? `writes did not stop within ${plan.quietMaxMs / 1000} s of the last PubAck` : '',
    r.restart ? `restart ready ${fmtMs(r.restart.readyMs)} ms, RSS ${fmtMiB(r.restart.rss.rss)}` : 'restart failed',
  ];
  return `round ${r.round} ${r.kind.padEnd(11)} (load ${fmtFixed(r.loadavg, 1)}) ${parts.filter((p) => p !== '').join(' | ')}`;
}

async function main() {
  const facts = machineFacts('startup.mjs');
  let bundle;
  if (kinds.includes('nats-edge')) {
    bundle = prepareEdgeBundle({ given: args.edgeBundle, build: args.build, prefix: 'bench-startup-edge-' });
    facts.edgeBundle = bundle.facts;
  }
  facts.storeParent = plan.storeParent;
  facts.storeFilesystem = filesystemOf(plan.storeParent);
  const size = sizes(bundle?.path);

  console.log(`nats-edge start, size, idle memory and disk-write benchmark, ${facts.date}`);
  console.log(machineLine(facts));
  if (facts.edgeBundle) console.log(`bundle: ${bundle.path}, ${fmtInt(facts.edgeBundle.bytes)} bytes, built ${facts.edgeBundle.mtime}`);
  if (args.node !== undefined || args.compileCache !== undefined) {
    facts.edgeNode = { path: NODE, version: execFileSync(NODE, ['--version'], { encoding: 'utf8' }).trim(), compileCache: args.compileCache ?? null };
    console.log(`nats-edge and the floors run on ${facts.edgeNode.path} ${facts.edgeNode.version}${args.compileCache !== undefined ? `, NODE_COMPILE_CACHE=${args.compileCache}` : ''}`);
  }
  console.log(`store directories under ${plan.storeParent} (${facts.storeFilesystem})`);
  console.log(
    `servers: ${kinds.join(' and ')}, each as \`-p PORT\`, then \`-js -sd DIR -p PORT\` on a fresh store, then again on that store; ` +
      `${plan.rounds} round(s), the kinds alternating within each round, a fresh process every time.`,
  );
  console.log(
    `ready: from just before spawn() to the first INFO on the client port, a connect attempt every ${plan.pollMs} ms; ` +
      'idle RSS: VmRSS once 5 readings 100 ms apart agree.',
  );
  console.log(
    `disk: stream ${STREAM} (file, subjects d.*), ${fmtInt(plan.count)} acked PUBs of ${PAYLOAD} B on ${plan.subjects} ` +
      `(raw subject + payload ${fmtB(RAW_BYTES / plan.count)} B/msg); /proc/PID/io read before the first PUB and once the ` +
      `server's writes stopped after the last PubAck; store = du after a clean stop (SIGTERM).\n`,
  );

  const floors = [];
  const results = Object.fromEntries(kinds.map((k) => [k, []]));
  for (let round = 1; round <= plan.rounds; round++) {
    const f = await runFloor(round);
    floors.push(f);
    console.log(
      `round ${round} bare node   listen ready ${fmtMs(f.nodeListenReadyMs)} ms (cpu ${fmtMs(f.nodeListenCpuMs)}, wait ${fmtMs(f.nodeListenWaitMs)}) | ` +
        `idle RSS ${fmtMiB(f.nodeIdleRss?.rss)}`,
    );
    for (const e of f.errors) console.log(`  ! bare node: ${e}`);
    const order = round % 2 === 1 ? kinds : [...kinds].reverse();
    for (const kind of order) {
      const r = await runRound(kind, round, bundle?.path);
      results[kind].push(r);
      console.log(roundLine(r));
      for (const e of r.errors) console.log(`  ! ${kind}: ${e.replace(/\n/g, '\n    ')}`);
      for (const n of r.serverLogNotes) console.log(`  server log: ${n}`);
    }
  }

  const { rows, summary } = summarize(results);
  const allRows = [...rows, ...sizeRows(size)];
  const floor = {
    nodeListenReadyMsP50: median(floors.map((f) => f.nodeListenReadyMs)),
    nodeListenReadyMsMax: maxOf(floors.map((f) => f.nodeListenReadyMs)),
    nodeListenCpuMsP50: median(floors.map((f) => f.nodeListenCpuMs)),
    nodeIdleRss: median(floors.map((f) => f.nodeIdleRss?.rss)),
    nodeIdleRssAnon: median(floors.map((f) => f.nodeIdleRss?.anon)),
    nodeIdleRssFile: median(floors.map((f) => f.nodeIdleRss?.file)),
  };
  const header = ['metric', 'nats-server', 'nats-edge', 'edge/nats-server', 'target'];
  console.log(`\nsummary (p50 = median of ${plan.rounds} round(s), max = worst round; ratio = nats-edge / nats-server):`);
  console.log(textTable(header, allRows));
  const floorText =
    `floor on this machine: a bare \`node -e\` TCP server sends its first INFO ${fmtMs(floor.nodeListenReadyMsP50)} ms ` +
    `after spawn (p50; max ${fmtMs(floor.nodeListenReadyMsMax)}; CPU ${fmtMs(floor.nodeListenCpuMsP50)} ms); a bare \`node -e "setInterval(()=>{},1000)"\` idles at ${fmtMiB(floor.nodeIdleRss)} RSS ` +
    `(RssAnon ${fmtMiB(floor.nodeIdleRssAnon)}, RssFile ${fmtMiB(floor.nodeIdleRssFile)}).`;
  console.log(`\n${floorText}`);
  console.log(`raw message: subject + payload = ${fmtB(RAW_BYTES / plan.count)} B/msg.`);
  const amplification = (key) => kinds.map((k) => `${k} ${fmtFixed(summary[key][k] / (RAW_BYTES / plan.count), 2)}x`).join(', ');
  console.log(
    `write amplification (write_bytes / raw): during publish ${amplification('written to block layer during publish, B/msg (write_bytes)')}; ` +
      `through the clean stop ${amplification('write_bytes, publish through the clean stop, B/msg')}.`,
  );

  if (args.markdown !== undefined) {
    writeFileSync(args.markdown, `${markdownTable(header, allRows)}\n\n${floorText}\n`);
    console.log(`wrote ${args.markdown}`);
  }
  if (args.json !== undefined) {
    writeFileSync(args.json, JSON.stringify({ facts, plan, rawBytesPerMsg: RAW_BYTES / plan.count, kinds, sizes: size, floor, floors, results, summary }, null, 2));
    console.log(`wrote ${args.json}`);
  }
  bundle?.dispose();
  const failed = floors.some((f) => f.errors.length > 0) || kinds.some((k) => results[k].some((r) => r.errors.length > 0));
  if (failed) console.log('\nFAILED: see the ! lines above');
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
