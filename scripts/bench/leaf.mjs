#!/usr/bin/env node
// Leafnode benchmark: messages per second from a publisher on a leaf server, across the leaf
// link, to a subscriber on the hub, with Debian's nats-server as the hub and as the leaf under
// test either nats-server or our bundle, both in one run. See docs/benchmarks.md.
//
//   node scripts/bench/leaf.mjs [--rounds R] [--count N] [--size B] [--requests N]
//                               [--only nats-server|edge] [--quick] [--json out.json]
//                               [--no-build] [--edge-bundle FILE]
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { EDGE_BUNDLE, KINDS, NATS_SERVER_BIN, REPO_ROOT, answersPing, describeExit, freePort, tail } from './lib/server.mjs';
import { WorkerProc, watchdog } from './lib/loadgen.mjs';
import { readCpuSeconds } from './lib/rss.mjs';
import { RawConn } from './lib/wire.mjs';
import { fmtFixed, fmtInt, median, textTable } from './lib/stats.mjs';

const USAGE = `usage: node scripts/bench/leaf.mjs [options]
  --rounds R          rounds, each kind once per round, order alternating (default 3; 1 with --quick)
  --count N           messages leaf -> hub per round (default 200,000; 50,000 with --quick)
  --size B            payload bytes (default 128)
  --requests N        sequential request/reply round trips across the link (default 10,000;
                      2,000 with --quick; 0 = skip)
  --only KIND         nats-server | edge (nats-edge): measure one kind of leaf only
  --quick             small counts, one round
  --json FILE         write every figure (per round and medians) as JSON
  --no-build          do not run scripts/build.mjs --if-stale before measuring nats-edge
  --edge-bundle FILE  run this bundle as is (no build, no copy); it needs node_modules beside it
`;

function parseArgs(argv) {
  const o = { build: true, quick: false };
  const num = (i, min = 1) => {
    const v = Number(argv[i]);
    if (!Number.isInteger(v) || v < min) throw new Error(`${argv[i - 1]} needs an integer >= ${min}, got ${argv[i]}`);
    return v;
  };
  const str = (i) => {
    if (argv[i] === undefined) throw new Error(`${argv[i - 1]} needs a value`);
    return argv[i];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') o.rounds = num(++i);
    else if (a === '--count' || a === '--msgs') o.count = num(++i);
    else if (a === '--size') o.size = num(++i, 0);
    else if (a === '--requests') o.requests = num(++i, 0);
    else if (a === '--only') {
      const k = str(++i);
      if (k === 'edge' || k === 'nats-edge') o.only = 'nats-edge';
      else if (k === 'nats-server') o.only = 'nats-server';
      else throw new Error(`--only takes nats-server or edge, got ${k}`);
    } else if (a === '--quick') o.quick = true;
    else if (a === '--json') o.json = str(++i);
    else if (a === '--no-build') o.build = false;
    else if (a === '--edge-bundle') o.edgeBundle = str(++i);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (a.startsWith('--')) {
      // run-all.mjs passes its shared flags to every script; say what is not used here.
      const takesValue = argv[i + 1] !== undefined && !argv[i + 1].startsWith('--');
      process.stderr.write(`leaf.mjs: ignoring unknown option ${a}${takesValue ? ` ${argv[i + 1]}` : ''}\n`);
      if (takesValue) i++;
    } else throw new Error(`unexpected argument ${a}\n${USAGE}`);
  }
  return o;
}

const args = (() => {
  try {
    return parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
})();

const plan = {
  rounds: args.rounds ?? (args.quick ? 1 : 3),
  count: args.count ?? (args.quick ? 50_000 : 200_000),
  size: args.size ?? 128,
  requests: args.requests ?? (args.quick ? 2_000 : 10_000),
  warmup: args.quick ? 200 : 500,
  // Pacing as core.mjs: the publisher stays at most `window` messages ahead of the subscriber,
  // which acks every `ackEvery` through the servers (here hub -> link -> leaf).
  window: 20_000,
  ackEvery: 1_000,
  // How long the leaf may take to show up in the hub's /leafz.
  linkTimeoutMs: 10_000,
  // How long the probes may take to see interest cross the link.
  probeTimeoutMs: 10_000,
  stallMs: 10_000,
};
const kinds = args.only !== undefined ? [args.only] : KINDS;
const LOG_LIMIT = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Servers: a nats-server hub with a leafnode port, a leaf of either kind dialing it.

/**
 * The bundle to measure, copied away from build/ with its source map: the tree is rebuilt by
 * others while this runs, and every round must run the same code.
 */
function edgeBundle() {
  if (args.edgeBundle !== undefined) {
    if (!existsSync(args.edgeBundle)) throw new Error(`--edge-bundle ${args.edgeBundle} does not exist`);
    return args.edgeBundle;
  }
  if (args.build) {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.mjs'), '--if-stale'], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`node scripts/build.mjs --if-stale failed:\n${r.stdout}${r.stderr}`);
  }
  if (!existsSync(EDGE_BUNDLE)) throw new Error(`${EDGE_BUNDLE} is missing: run node scripts/build.mjs`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-leaf-edge-'));
  copyFileSync(EDGE_BUNDLE, join(dir, 'nats-edge.js'));
  if (existsSync(`${EDGE_BUNDLE}.map`)) copyFileSync(`${EDGE_BUNDLE}.map`, join(dir, 'nats-edge.js.map'));
  // better-sqlite3 stays external to the bundle and is resolved beside it.
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return join(dir, 'nats-edge.js');
}

/** Spawns `kind` with config file `conf` and waits until its client port answers PING. */
async function startWithConfig(kind, role, conf, port, httpPort, bundle) {
  let cmd;
  let argv;
  if (kind === 'nats-server') {
    cmd = NATS_SERVER_BIN;
    argv = ['-c', conf];
  } else {
    cmd = process.execPath;
    argv = [...(process.env.EDGE_NODE_ARGS ? process.env.EDGE_NODE_ARGS.split(' ') : []), bundle, '-c', conf];
  }
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dirname(conf) });
  let log = '';
  const keep = (d) => {
    log += d.toString();
    if (log.length > LOG_LIMIT) log = log.slice(-LOG_LIMIT);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exit = null;
  const exited = new Promise((res) => {
    proc.once('exit', (code, signal) => res((exit = { code, signal })));
    proc.once('error', (err) => res((exit = { code: null, signal: null, error: err.message })));
  });
  const server = {
    kind: `${kind} (${role})`,
    port,
    httpPort,
    pid: proc.pid,
    command: [cmd, ...argv].join(' '),
    alive: () => exit === null,
    exitInfo: () => exit,
    logs: () => log,
    async stop(graceMs = 5000) {
      if (exit !== null) return exit;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exit !== null) throw new Error(`${server.kind} exited during start (${describeExit(exit)}):\n${tail(log)}`);
    if (await answersPing(port, 1000)) return server;
    if (Date.now() > deadline) {
      await server.stop(0);
      throw new Error(`${server.kind} did not answer PING on port ${port}:\n${tail(log)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The hub's /leafz `leafnodes` count, or -1 when it does not answer. */
async function hubLeafCount(hub) {
  try {
    const res = await fetch(`http://127.0.0.1:${hub.httpPort}/leafz`);
    const body = await res.json();
    return typeof body.leafnodes === 'number' ? body.leafnodes : -1;
  } catch {
    return -1;
  }
}

/** Thrown when the leaf never links to the hub: the kind is not retried in later rounds. */
class LinkError extends Error {}

/** A hub and a leaf of `kind` on free ports in `dir`, the link up as the hub's /leafz shows it. */
async function startPair(kind, dir, bundle) {
  const [hubPort, hubHttp, hubLeaf, leafPort, leafHttp] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const hubConf = join(dir, 'hub.conf');
  writeFileSync(
    hubConf,
    ['server_name: bench_hub', `listen: 127.0.0.1:${hubPort}`, `http: 127.0.0.1:${hubHttp}`, `leafnodes { host: 127.0.0.1, port: ${hubLeaf} }`, ''].join('\n'),
  );
  const leafConf = join(dir, 'leaf.conf');
  writeFileSync(
    leafConf,
    [
      `server_name: bench_leaf_${kind.replace('-', '_')}`,
      `listen: 127.0.0.1:${leafPort}`,
      `http: 127.0.0.1:${leafHttp}`,
      `leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:${hubLeaf}" } ] }`,
      '',
    ].join('\n'),
  );
  const hub = await startWithConfig('nats-server', 'hub', hubConf, hubPort, hubHttp);
  let leaf;
  try {
    leaf = await startWithConfig(kind, 'leaf', leafConf, leafPort, leafHttp, bundle);
    const t0 = Date.now();
    for (;;) {
      if (!leaf.alive()) throw new LinkError(`${kind} leaf exited before linking (${describeExit(leaf.exitInfo())}); log tail:\n${tail(leaf.logs())}`);
      if ((await hubLeafCount(hub)) > 0) break;
      if (Date.now() - t0 > plan.linkTimeoutMs) {
        throw new LinkError(
          `${kind} leaf: its link to the hub did not come up within ${plan.linkTimeoutMs / 1000} s ` +
            `(the hub's /leafz shows no leafnode); leaf log tail:\n${tail(leaf.logs(), 12)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return { hub, leaf, linkMs: Date.now() - t0 };
  } catch (err) {
    await leaf?.stop();
    await hub.stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Interest crossing the link

/**
 * Waits until a subscription made on `subPort` reaches publishers on `pubPort` across the link.
 * Called after the workers' own SUBs were flushed on their server: a server sends its interest
 * over the link in the order it got it, so once this later probe subject crosses, theirs have.
 */
async function probeCrossing(subPort, pubPort, subject, what) {
  let seen = 0;
  const sub = await RawConn.open(subPort, { handler: { onMsg: () => seen++ } });
  const pub = await RawConn.open(pubPort);
  try {
    sub.write(Buffer.from(`SUB ${subject} 1\r\n`));
    await sub.flush();
    const frame = Buffer.from(`PUB ${subject} 5\r\nprobe\r\n`);
    const deadline = Date.now() + plan.probeTimeoutMs;
    while (seen === 0) {
      if (Date.now() > deadline) throw new Error(`interest never crossed the link (${what}) within ${plan.probeTimeoutMs / 1000} s`);
      pub.write(frame);
      await pub.flush();
      // The publishing server has handled the probe; give the link a moment to carry it.
      for (let i = 0; i < 10 && seen === 0; i++) await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    sub.close();
    pub.close();
  }
}

/** watchdog() watches one process; the run depends on two. */
function pairWatch(pair) {
  const dead = () => (!pair.hub.alive() ? pair.hub : !pair.leaf.alive() ? pair.leaf : null);
  return {
    get kind() {
      return dead()?.kind ?? 'server';
    },
    alive: () => dead() === null,
    exitInfo: () => dead()?.exitInfo() ?? null,
    logs: () => dead()?.logs() ?? '',
  };
}

// ---------------------------------------------------------------------------------------------
// Measurements

/**
 * Publisher (raw PUB frames) on the leaf's client port, subscriber on the hub's; the publisher
 * keeps within `window` of the subscriber's acks, which travel back hub -> leaf. Rate =
 * messages / (first publish .. subscriber has them all), one clock (CLOCK_MONOTONIC) across processes.
 */
async function runAcrossLink(pair) {
  const tag = Math.random().toString(36).slice(2, 8);
  const subject = `bench.${tag}.data`;
  const ackPrefix = `bench.${tag}.ack`;
  const workers = [];
  let count = 0;
  try {
    const sub = new WorkerProc({ role: 'sub', port: pair.hub.port, subject, conns: 1, baseIndex: 0, target: plan.count, ackEvery: plan.ackEvery, ackPrefix });
    workers.push(sub);
    sub.onProgress = (m) => (count = m.counts[0]);
    await sub.next('ready');
    const pub = new WorkerProc({
      role: 'pub', port: pair.leaf.port, subject, ackPrefix, subs: 1, total: plan.count, window: plan.window, ackEvery: plan.ackEvery,
      payloadSize: plan.size, batch: 256,
    });
    workers.push(pub);
    await pub.next('ready');
    const p0 = process.hrtime.bigint();
    await probeCrossing(pair.hub.port, pair.leaf.port, `bench.${tag}.probe.down`, 'hub subscriber -> leaf');
    await probeCrossing(pair.leaf.port, pair.hub.port, `bench.${tag}.probe.up`, "leaf publisher's ack subscription -> hub");
    const probeMs = Number(process.hrtime.bigint() - p0) / 1e6;

    const dog = watchdog(() => count, plan.stallMs, pairWatch(pair), 'leaf -> hub run');
    const cpu0 = { leaf: readCpuSeconds(pair.leaf.pid), hub: readCpuSeconds(pair.hub.pid) };
    pub.send({ cmd: 'start' });
    let sent;
    let done;
    try {
      [sent, done] = await Promise.race([Promise.all([pub.next('sent'), sub.next('done')]), dog.promise]);
    } finally {
      dog.stop();
    }
    const cpu1 = { leaf: readCpuSeconds(pair.leaf.pid), hub: readCpuSeconds(pair.hub.pid) };
    sub.send({ cmd: 'finish' });
    const final = await sub.next('final');
    pub.send({ cmd: 'finish' });
    if (final.counts[0] !== plan.count) throw new Error(`wrong delivery count: expected ${plan.count}, the hub subscriber got ${final.counts[0]}`);
    const seconds = (done.tDone[0] - sent.t0) / 1e9;
    return {
      messages: plan.count,
      seconds,
      rate: plan.count / seconds,
      probeMs,
      leafCpuCores: (cpu1.leaf - cpu0.leaf) / seconds,
      hubCpuCores: (cpu1.hub - cpu0.hub) / seconds,
      publisherCpuCores: sent.cpu / ((sent.tSent - sent.t0) / 1e9),
      subscriberCpuCores: done.cpu / seconds,
      errors: final.errors,
    };
  } finally {
    for (const w of workers) w.kill();
  }
}

/** Requester on the leaf, responder on the hub, one request outstanding; latencies in µs. */
async function requestReplyAcrossLink(pair) {
  const tag = Math.random().toString(36).slice(2, 8);
  const subject = `bench.${tag}.req`;
  const inbox = `_INBOX.${tag}`;
  const workers = [];
  try {
    const responder = new WorkerProc({ role: 'responder', port: pair.hub.port, subject, payloadSize: plan.size });
    workers.push(responder);
    await responder.next('ready');
    const requester = new WorkerProc({
      role: 'requester', port: pair.leaf.port, subject, inbox, count: plan.requests, warmup: plan.warmup, concurrency: 1, payloadSize: plan.size,
    });
    workers.push(requester);
    let done = 0;
    requester.onProgress = (m) => (done = m.done);
    await requester.next('ready');
    await probeCrossing(pair.hub.port, pair.leaf.port, `bench.${tag}.probe.down`, 'hub responder -> leaf');
    await probeCrossing(pair.leaf.port, pair.hub.port, `bench.${tag}.probe.up`, "leaf requester's inbox -> hub");
    const dog = watchdog(() => done, plan.stallMs, pairWatch(pair), 'request/reply across the link');
    requester.send({ cmd: 'start' });
    let result;
    try {
      result = await Promise.race([requester.next('result'), dog.promise]);
    } finally {
      dog.stop();
    }
    responder.send({ cmd: 'finish' });
    requester.send({ cmd: 'finish' });
    await responder.next('final');
    return result;
  } finally {
    for (const w of workers) w.kill();
  }
}

async function runRound(kind, round, bundle) {
  const out = { kind, round, loadavg: loadavg()[0], errors: [] };
  const dir = mkdtempSync(join(tmpdir(), `bench-leaf-${kind}-`));
  let pair;
  try {
    try {
      pair = await startPair(kind, dir, bundle);
    } catch (err) {
      out.errors.push(err.message);
      out.linkFailed = err instanceof LinkError;
      return out;
    }
    out.linkMs = pair.linkMs;
    out.leafCommand = pair.leaf.command;
    const step = async (name, fn) => {
      if (!pair.hub.alive() || !pair.leaf.alive()) {
        out.errors.push(`${name}: skipped, a server is gone (hub ${describeExit(pair.hub.exitInfo())}, leaf ${describeExit(pair.leaf.exitInfo())})`);
        return;
      }
      try {
        await fn();
      } catch (err) {
        out.errors.push(`${name}: ${err.message}`);
      }
    };
    await step('leaf -> hub', async () => {
      out.pubsub = await runAcrossLink(pair);
    });
    if (plan.requests > 0) {
      await step('request/reply', async () => {
        out.reqrep = await requestReplyAcrossLink(pair);
      });
    }
  } finally {
    if (pair !== undefined) {
      for (const s of [pair.leaf, pair.hub]) {
        const alive = s.alive();
        const exit = await s.stop();
        if (!alive) out.errors.push(`${s.kind} died: ${describeExit(exit)}; log tail:\n${tail(s.logs())}`);
      }
      // Warnings and errors the servers logged (slow consumers, link drops) explain odd figures.
      out.serverLogNotes = [pair.leaf, pair.hub].flatMap((s) =>
        s.logs().split('\n').filter((l) => /\[(WRN|ERR|FTL)\]|Slow Consumer/.test(l)).slice(0, 10).map((l) => `${s.kind}: ${l}`),
      );
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Report

const METRICS = [
  { key: `leaf -> hub msgs/s (${plan.size} B)`, get: (r) => r.pubsub?.rate, fmt: fmtInt, target: { ratioMin: 0.5, text: '>= 50% of nats-server' } },
  { key: 'req/reply across the link p50 µs', get: (r) => r.reqrep?.latency.p50, fmt: (x) => fmtFixed(x, 1) },
  { key: 'req/reply across the link p99 µs', get: (r) => r.reqrep?.latency.p99, fmt: (x) => fmtFixed(x, 1) },
  { key: 'req/reply req/s (1 outstanding)', get: (r) => r.reqrep?.rate, fmt: fmtInt },
  { key: 'leaf CPU cores during leaf -> hub', get: (r) => r.pubsub?.leafCpuCores, fmt: (x) => fmtFixed(x, 2) },
  { key: 'hub CPU cores during leaf -> hub', get: (r) => r.pubsub?.hubCpuCores, fmt: (x) => fmtFixed(x, 2) },
];

function roundLine(r) {
  if (r.linkMs === undefined) return `round ${r.round} ${`${r.kind} leaf`.padEnd(16)} (load ${fmtFixed(r.loadavg, 1)}) not measured: no link to the hub`;
  const parts = [
    r.pubsub ? `${fmtInt(r.pubsub.rate)} msg/s (cpu: leaf ${fmtFixed(r.pubsub.leafCpuCores, 2)} hub ${fmtFixed(r.pubsub.hubCpuCores, 2)} pub ${fmtFixed(r.pubsub.publisherCpuCores, 2)} sub ${fmtFixed(r.pubsub.subscriberCpuCores, 2)})` : 'leaf -> hub failed',
    r.reqrep ? `req p50/p99 ${fmtFixed(r.reqrep.latency.p50)}/${fmtFixed(r.reqrep.latency.p99)} µs` : plan.requests > 0 ? 'req failed' : 'req skipped',
    `link up after ${r.linkMs} ms`,
  ];
  return `round ${r.round} ${`${r.kind} leaf`.padEnd(16)} (load ${fmtFixed(r.loadavg, 1)}) ${parts.join(' | ')}`;
}

function summarize(results) {
  const rows = [];
  const summary = {};
  for (const m of METRICS) {
    const med = {};
    for (const k of kinds) med[k] = median(results[k].map(m.get).filter((x) => x !== undefined));
    const ratio = kinds.length === 2 ? med['nats-edge'] / med['nats-server'] : NaN;
    let verdict = '';
    if (m.target !== undefined) verdict = Number.isFinite(ratio) ? (ratio >= m.target.ratioMin ? 'PASS' : 'FAIL') : 'n/a';
    summary[m.key] = { ...med, ratio, target: m.target?.text, verdict };
    rows.push([
      m.key,
      kinds.includes('nats-server') ? m.fmt(med['nats-server']) : '-',
      kinds.includes('nats-edge') ? m.fmt(med['nats-edge']) : '-',
      Number.isFinite(ratio) ? ratio.toFixed(2) : '-',
      m.target ? `${m.target.text} ${verdict}` : '',
    ]);
  }
  return { rows, summary };
}

function machineFacts() {
  let natsServer = 'not found';
  try {
    natsServer = execFileSync(NATS_SERVER_BIN, ['--version'], { encoding: 'utf8' }).trim();
  } catch {}
  return {
    date: new Date().toISOString(),
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    natsServer,
    loadavgAtStart: loadavg().map((x) => Number(x.toFixed(2))),
    command: `node scripts/bench/leaf.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  };
}

async function main() {
  const facts = machineFacts();
  let bundle;
  if (kinds.includes('nats-edge')) {
    bundle = edgeBundle();
    const st = statSync(bundle);
    facts.edgeBundle = { path: bundle, bytes: st.size, mtime: st.mtime.toISOString() };
  }
  console.log(`nats-edge leafnode benchmark, ${facts.date}`);
  console.log(`machine: ${facts.nproc} CPUs (${facts.cpu}), load average ${facts.loadavgAtStart.join(' ')}; node ${facts.node}; ${facts.natsServer}`);
  if (facts.edgeBundle) console.log(`bundle: ${bundle}, ${fmtInt(facts.edgeBundle.bytes)} bytes, built ${facts.edgeBundle.mtime}`);
  console.log(
    `servers: hub = nats-server (leafnodes { port }); leaf = ${kinds.join(', then ')}, each started with -c conf and ` +
      'leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:HUBLEAFPORT" } ] }; a fresh hub and leaf per measurement, ' +
      `${plan.rounds} round(s), the leaf kinds alternating within each round.`,
  );
  console.log(
    'load: raw-socket generator (pre-built PUB frames written in batches; MSG frames counted by scanning bytes), ' +
      'no client library, which would be the bottleneck; publisher on the leaf client port, subscriber on the hub client port, ' +
      `separate processes; the publisher stays at most ${fmtInt(plan.window)} messages ahead of the subscriber, which acks every ` +
      `${fmtInt(plan.ackEvery)} through hub -> link -> leaf. Before each measurement, probes wait until the subscriptions have crossed the link.`,
  );
  console.log(
    `tests: leaf -> hub ${fmtInt(plan.count)} msgs of ${plan.size} B; ` +
      (plan.requests > 0 ? `request/reply (requester on the leaf, responder on the hub) ${fmtInt(plan.requests)} sequential after ${plan.warmup} warm-up.\n` : 'request/reply skipped.\n'),
  );

  const results = Object.fromEntries(kinds.map((k) => [k, []]));
  const gaveUp = new Set();
  for (let round = 1; round <= plan.rounds; round++) {
    const order = round % 2 === 1 ? kinds : [...kinds].reverse();
    for (const kind of order) {
      if (gaveUp.has(kind)) continue;
      const r = await runRound(kind, round, bundle);
      results[kind].push(r);
      console.log(roundLine(r));
      for (const e of r.errors) console.log(`  ! ${kind}: ${e.replace(/\n/g, '\n    ')}`);
      for (const n of r.serverLogNotes ?? []) console.log(`  server log: ${n}`);
      if (r.linkFailed) {
        gaveUp.add(kind);
        console.log(`  ! ${kind}: no leafnode link, not retried in later rounds`);
      }
    }
  }

  const { rows, summary } = summarize(results);
  console.log(`\nsummary (medians over the rounds; ratio = nats-edge / nats-server):`);
  console.log(textTable(['metric (median of rounds)', 'nats-server leaf', 'nats-edge leaf', 'edge/nats-server', 'target'], rows));

  if (args.json !== undefined) {
    writeFileSync(args.json, JSON.stringify({ facts, plan, kinds, results, summary }, null, 2));
    console.log(`\nwrote ${args.json}`);
  }
  // The copy made by edgeBundle() (not a bundle given with --edge-bundle) is no longer needed.
  if (bundle !== undefined && args.edgeBundle === undefined) rmSync(dirname(bundle), { recursive: true, force: true });
  const failed = kinds.some((k) => results[k].length === 0 || results[k].some((r) => r.errors.length > 0));
  if (failed) console.log('\nFAILED: see the ! lines above');
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
