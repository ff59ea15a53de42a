#!/usr/bin/env node
// Leafnode benchmark: messages per second from a publisher on a leaf server, across the leaf
// link, to a subscriber on the hub, with Debian's nats-server as the hub and as the leaf under
// test either nats-server or our bundle, both in one run. See docs/benchmarks.md.
//
//   node scripts/bench/leaf.mjs [--rounds R] [--count N] [--size B] [--requests N]
//                               [--only nats-server|edge] [--quick] [--json out.json]
//                               [--no-build] [--edge-bundle FILE]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { KINDS, describeExit, freePort, logNotes, serverCommand, spawnNatsServer, tail } from './lib/server.mjs';
import { prepareEdgeBundle } from './lib/bundle.mjs';
import { readArgs } from './lib/cli.mjs';
import { runPubSub, runRequestReply } from './lib/loadgen.mjs';
import { RawConn } from './lib/wire.mjs';
import { machineFacts, machineLine, summarizeAgainstNatsServer } from './lib/report.mjs';
import { fmtFixed, fmtInt, textTable } from './lib/stats.mjs';

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

const args = readArgs({
  script: 'leaf.mjs',
  usage: USAGE,
  common: ['--rounds', '--only', '--quick', '--json', '--no-build', '--edge-bundle'],
  flags: {
    '--count': (o, take) => (o.count = take.num()),
    '--msgs': (o, take) => (o.count = take.num()),
    '--size': (o, take) => (o.size = take.num(0)),
    '--requests': (o, take) => (o.requests = take.num(0)),
  },
  ignoreUnknown: true,
});

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
// Extra node flags for the nats-edge leaf, e.g. EDGE_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
const EDGE_NODE_ARGS = process.env.EDGE_NODE_ARGS ? process.env.EDGE_NODE_ARGS.split(' ') : [];

// ---------------------------------------------------------------------------------------------
// Servers: a nats-server hub with a leafnode port, a leaf of either kind dialing it.

/** Spawns `kind` with config file `conf` and waits until its client port answers PING. */
async function startWithConfig(kind, role, conf, port, httpPort, bundle) {
  const { cmd, args: argv } = serverCommand(kind, ['-c', conf], { nodeArgs: EDGE_NODE_ARGS, bundle });
  return spawnNatsServer({ kind: `${kind} (${role})`, cmd, args: argv, cwd: dirname(conf), port, httpPort });
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

/** Waits until the interest of both sides' workers has crossed the link; returns the ms it took. */
async function crossBothWays(pair, tag, down, up) {
  const t0 = process.hrtime.bigint();
  await probeCrossing(pair.hub.port, pair.leaf.port, `bench.${tag}.probe.down`, down);
  await probeCrossing(pair.leaf.port, pair.hub.port, `bench.${tag}.probe.up`, up);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/**
 * Publisher (raw PUB frames) on the leaf's client port, subscriber on the hub's; the publisher
 * keeps within `window` of the subscriber's acks, which travel back hub -> leaf. Rate =
 * messages / (first publish .. subscriber has them all), one clock (CLOCK_MONOTONIC) across processes.
 */
async function runAcrossLink(pair) {
  let probeMs;
  const r = await runPubSub({
    server: pair.leaf, subPort: pair.hub.port, subs: 1, subProcs: 1, total: plan.count, payloadSize: plan.size,
    window: plan.window, ackEvery: plan.ackEvery, stallMs: plan.stallMs, watch: pairWatch(pair), what: 'leaf -> hub run',
    otherPids: { hub: pair.hub.pid },
    beforeStart: async (tag) => {
      probeMs = await crossBothWays(pair, tag, 'hub subscriber -> leaf', "leaf publisher's ack subscription -> hub");
    },
  });
  return {
    messages: r.published,
    seconds: r.seconds,
    rate: r.rate,
    probeMs,
    leafCpuCores: r.serverCpuCores,
    hubCpuCores: r.otherCpuCores.hub,
    publisherCpuCores: r.publisherCpuCores,
    subscriberCpuCores: r.subscriberCpuCores[0],
    errors: r.errors,
  };
}

/** Requester on the leaf, responder on the hub, one request outstanding; latencies in µs. */
function requestReplyAcrossLink(pair) {
  return runRequestReply({
    server: pair.leaf, responderPort: pair.hub.port, count: plan.requests, warmup: plan.warmup, concurrency: 1, payloadSize: plan.size,
    stallMs: plan.stallMs, watch: pairWatch(pair), what: 'request/reply across the link',
    beforeStart: (tag) => crossBothWays(pair, tag, 'hub responder -> leaf', "leaf requester's inbox -> hub"),
  });
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
      out.serverLogNotes = [pair.leaf, pair.hub].flatMap((s) => logNotes(s, 10).map((l) => `${s.kind}: ${l}`));
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

async function main() {
  const facts = machineFacts('leaf.mjs');
  let bundle;
  if (kinds.includes('nats-edge')) {
    bundle = prepareEdgeBundle({ given: args.edgeBundle, build: args.build, prefix: 'bench-leaf-edge-' });
    facts.edgeBundle = bundle.facts;
  }
  console.log(`nats-edge leafnode benchmark, ${facts.date}`);
  console.log(machineLine(facts));
  if (facts.edgeBundle) console.log(`bundle: ${bundle.path}, ${fmtInt(facts.edgeBundle.bytes)} bytes, built ${facts.edgeBundle.mtime}`);
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
      const r = await runRound(kind, round, bundle?.path);
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

  const { rows, summary } = summarizeAgainstNatsServer(METRICS, results, kinds);
  console.log(`\nsummary (medians over the rounds; ratio = nats-edge / nats-server):`);
  console.log(textTable(['metric (median of rounds)', 'nats-server leaf', 'nats-edge leaf', 'edge/nats-server', 'target'], rows));

  if (args.json !== undefined) {
    writeFileSync(args.json, JSON.stringify({ facts, plan, kinds, results, summary }, null, 2));
    console.log(`\nwrote ${args.json}`);
  }
  bundle?.dispose();
  const failed = kinds.some((k) => results[k].length === 0 || results[k].some((r) => r.errors.length > 0));
  if (failed) console.log('\nFAILED: see the ! lines above');
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
