#!/usr/bin/env node
// Core NATS benchmarks: Debian's nats-server against our bundle on this machine, one run,
// alternating A/B per round because the machine is shared and noisy. See docs/benchmarks.md.
//
//   node scripts/bench/core.mjs [--rounds N] [--only nats-server|edge] [--quick]
//                               [--json out.json] [--markdown out.md] [--cpu-prof DIR] [--no-build]
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { EDGE_BUNDLE, KINDS, startServer, describeExit, logNotes, tail } from './lib/server.mjs';
import { bundleFacts, ensureBuild } from './lib/bundle.mjs';
import { readArgs } from './lib/cli.mjs';
import { machineFacts, machineLine, summarizeAgainstNatsServer } from './lib/report.mjs';
import { readPeakRss, settledRss } from './lib/rss.mjs';
import { openIdleClients, closeAll, countClosed } from './lib/idle.mjs';
import { runPubSub, runRequestReply } from './lib/loadgen.mjs';
import { fmtInt, fmtFixed, textTable, markdownTable } from './lib/stats.mjs';
import { newestProfile, selfTimes } from './lib/cpuprof.mjs';

const USAGE = `usage: node scripts/bench/core.mjs [options]
  --rounds N        rounds of A/B (default 3; 1 with --quick)
  --only KIND       nats-server | edge (nats-edge): run one server only
  --quick           small counts, a smoke run of seconds
  --json FILE       write every figure (per round and medians) as JSON
  --markdown FILE   write the summary and per-round tables as markdown
  --cpu-prof DIR    after the rounds, run nats-edge once under node --cpu-prof during the
                    1->1 test and print the top self-time functions (profile kept in DIR)
  --no-build        do not run scripts/build.mjs --if-stale before measuring nats-edge
  --msgs N          1->1 messages (default 2,000,000)
  --requests N      sequential request/reply count (default 20,000)
  --clients N       idle clients for the RSS test (default 1000)
`;

const args = readArgs({
  script: 'core.mjs',
  usage: USAGE,
  common: ['--rounds', '--only', '--quick', '--json', '--markdown', '--cpu-prof', '--no-build'],
  flags: {
    '--msgs': (o, take) => (o.msgs = take.num()),
    '--requests': (o, take) => (o.requests = take.num()),
    '--clients': (o, take) => (o.clients = take.num()),
  },
});

const PAYLOAD = 128;
const plan = {
  rounds: args.rounds ?? (args.quick ? 1 : 3),
  msgs: args.msgs ?? (args.quick ? 100_000 : 2_000_000),
  fanoutMsgs: args.msgs !== undefined ? Math.ceil(args.msgs / 4) : args.quick ? 25_000 : 500_000,
  fanoutSubs: 4,
  requests: args.requests ?? (args.quick ? 2_000 : 20_000),
  warmup: args.quick ? 200 : 1_000,
  concurrency: 16,
  concurrentRequests: args.quick ? 5_000 : 50_000,
  clients: args.clients ?? (args.quick ? 200 : 1000),
  window: 20_000,
  ackEvery: 1_000,
};
const kinds = args.only !== undefined ? [args.only] : KINDS;

const MB = 1024 * 1024;

/** One server, fresh: idle RSS, RSS with idle clients, 1->1, 1->N, request/reply. */
async function runRound(kind, round, nodeArgs) {
  const out = { kind, round, loadavg: loadavg()[0], errors: [] };
  const server = await startServer(kind, { nodeArgs });
  out.command = server.command;
  const step = async (name, fn) => {
    if (!server.alive()) {
      out.errors.push(`${name}: skipped, server is gone (${describeExit(server.exitInfo())})`);
      return;
    }
    try {
      await fn();
    } catch (err) {
      out.errors.push(`${name}: ${err.message}`);
    }
  };
  try {
    await step('idle RSS', async () => {
      const s = await settledRss(server.pid);
      out.idleRss = s.rss;
      out.idleRssStable = s.stable;
    });
    await step(`${plan.clients} idle clients`, async () => {
      const conns = await openIdleClients(server.port, plan.clients);
      try {
        const s = await settledRss(server.pid);
        out.clientsRss = s.rss;
        out.clientsRssStable = s.stable;
        out.clientsDelta = s.rss - out.idleRss;
        const closed = countClosed(conns);
        if (closed > 0) throw new Error(`server closed ${closed} of ${plan.clients} idle clients`);
      } finally {
        closeAll(conns);
      }
    });
    await step('1->1', async () => {
      out.pubsub1 = await runPubSub({ server, subs: 1, subProcs: 1, total: plan.msgs, payloadSize: PAYLOAD, window: plan.window, ackEvery: plan.ackEvery });
    });
    await step(`1->${plan.fanoutSubs}`, async () => {
      out.fanout = await runPubSub({ server, subs: plan.fanoutSubs, subProcs: 2, total: plan.fanoutMsgs, payloadSize: PAYLOAD, window: plan.window, ackEvery: plan.ackEvery });
    });
    await step('request/reply', async () => {
      out.reqrep = await runRequestReply({ server, count: plan.requests, warmup: plan.warmup, concurrency: 1, payloadSize: PAYLOAD });
    });
    await step(`request/reply x${plan.concurrency}`, async () => {
      out.reqrepConc = await runRequestReply({ server, count: plan.concurrentRequests, warmup: plan.warmup, concurrency: plan.concurrency, payloadSize: PAYLOAD });
    });
    out.peakRss = readPeakRss(server.pid);
  } finally {
    const alive = server.alive();
    const exit = await server.stop();
    if (!alive) out.errors.push(`server died: ${describeExit(exit)}; log tail:\n${tail(server.logs())}`);
    else if (exit.signal === 'SIGKILL') out.errors.push('server did not exit within 5 s of SIGTERM (killed)');
    // Warnings and errors the server logged (slow consumers, parse errors) explain odd figures.
    out.serverLogNotes = logNotes(server);
  }
  return out;
}

const METRICS = [
  { key: '1->1 msgs/s (128 B)', get: (r) => r.pubsub1?.rate, fmt: fmtInt, better: 'higher', target: { ratioMin: 0.4, text: '>= 40% of nats-server' } },
  { key: `1->4 deliveries/s (128 B)`, get: (r) => r.fanout?.rate, fmt: fmtInt, better: 'higher', target: { ratioMin: 0.4, text: '>= 40% of nats-server' } },
  { key: 'req/reply p50 µs (1 outstanding)', get: (r) => r.reqrep?.latency.p50, fmt: (x) => fmtFixed(x, 1), better: 'lower' },
  { key: 'req/reply p99 µs (1 outstanding)', get: (r) => r.reqrep?.latency.p99, fmt: (x) => fmtFixed(x, 1), better: 'lower', target: { ratioMax: 2, text: '<= 2x nats-server' } },
  { key: 'req/reply req/s (1 outstanding)', get: (r) => r.reqrep?.rate, fmt: fmtInt, better: 'higher' },
  { key: 'req/reply req/s (16 outstanding)', get: (r) => r.reqrepConc?.rate, fmt: fmtInt, better: 'higher' },
  { key: 'req/reply p99 µs (16 outstanding)', get: (r) => r.reqrepConc?.latency.p99, fmt: (x) => fmtFixed(x, 1), better: 'lower' },
  { key: 'idle RSS MB', get: (r) => r.idleRss / MB, fmt: (x) => fmtFixed(x, 1), better: 'lower' },
  { key: `RSS added by ${plan.clients} idle clients MB`, get: (r) => r.clientsDelta / MB, fmt: (x) => fmtFixed(x, 1), better: 'lower', target: plan.clients === 1000 ? { edgeMax: 20, text: '<= 20 MB' } : undefined },
  { key: 'peak RSS over the round MB', get: (r) => r.peakRss / MB, fmt: (x) => fmtFixed(x, 1), better: 'lower' },
  { key: 'server CPU cores during 1->1', get: (r) => r.pubsub1?.serverCpuCores, fmt: (x) => fmtFixed(x, 2) },
  { key: 'server wait for a CPU during 1->1 (s/s)', get: (r) => r.pubsub1?.serverRunqueueWait, fmt: (x) => fmtFixed(x, 2) },
];

function roundLine(r) {
  const p = (x) => (x === undefined ? 'n/a' : x);
  const parts = [
    `1->1 ${r.pubsub1 ? `${fmtInt(r.pubsub1.rate)} msg/s (cpu: srv ${fmtFixed(r.pubsub1.serverCpuCores, 2)} (waited ${fmtFixed(r.pubsub1.serverRunqueueWait, 2)}) pub ${fmtFixed(r.pubsub1.publisherCpuCores, 2)} sub ${fmtFixed(r.pubsub1.subscriberCpuCores[0], 2)})` : 'failed'}`,
    `1->4 ${r.fanout ? `${fmtInt(r.fanout.rate)} dlv/s` : 'failed'}`,
    `req p50/p99 ${r.reqrep ? `${fmtFixed(r.reqrep.latency.p50)}/${fmtFixed(r.reqrep.latency.p99)} µs` : 'failed'}`,
    `x16 ${r.reqrepConc ? `${fmtInt(r.reqrepConc.rate)} req/s p99 ${fmtFixed(r.reqrepConc.latency.p99)} µs` : 'failed'}`,
    `idle ${p(fmtFixed(r.idleRss / MB))} MB`,
    `+${plan.clients} clients ${fmtFixed(r.clientsDelta / MB)} MB`,
  ];
  return `round ${r.round} ${r.kind.padEnd(11)} (load ${fmtFixed(r.loadavg, 1)}) ${parts.join(' | ')}`;
}

function perRoundRows(results) {
  const rows = [];
  const maxRounds = Math.max(...kinds.map((k) => results[k].length));
  for (let i = 0; i < maxRounds; i++) {
    for (const k of kinds) {
      const r = results[k][i];
      if (r === undefined) continue;
      rows.push([
        `${r.round} ${k}`,
        r.pubsub1 ? fmtInt(r.pubsub1.rate) : 'fail',
        r.fanout ? fmtInt(r.fanout.rate) : 'fail',
        r.reqrep ? fmtFixed(r.reqrep.latency.p50) : 'fail',
        r.reqrep ? fmtFixed(r.reqrep.latency.p99) : 'fail',
        r.reqrepConc ? fmtInt(r.reqrepConc.rate) : 'fail',
        fmtFixed(r.idleRss / MB),
        fmtFixed(r.clientsDelta / MB),
      ]);
    }
  }
  return rows;
}

const PER_ROUND_HEADER = ['round server', '1->1 msg/s', '1->4 dlv/s', 'req p50 µs', 'req p99 µs', 'x16 req/s', 'idle MB', `+${plan.clients} cl. MB`];
const SUMMARY_HEADER = ['metric (median of rounds)', 'nats-server', 'nats-edge', 'edge/nats-server', 'target'];

async function profileEdge(dir) {
  mkdirSync(dir, { recursive: true });
  const since = Date.now();
  const server = await startServer('nats-edge', { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  let run;
  try {
    run = await runPubSub({ server, subs: 1, subProcs: 1, total: plan.msgs, payloadSize: PAYLOAD, window: plan.window, ackEvery: plan.ackEvery });
  } finally {
    await server.stop(15_000);
  }
  const file = newestProfile(dir, since);
  if (file === null) throw new Error(`no .cpuprofile written in ${dir} (did the server exit cleanly on SIGTERM?)`);
  return { run, ...selfTimes(file) };
}

async function main() {
  const facts = machineFacts('core.mjs');
  if (kinds.includes('nats-edge')) {
    if (args.build) ensureBuild();
    // The tree changes under active development: say which bundle was measured.
    const { bytes, mtime } = bundleFacts(EDGE_BUNDLE);
    facts.edgeBundle = { bytes, mtime };
  }
  console.log(`nats-edge core benchmark, ${facts.date}`);
  console.log(machineLine(facts));
  if (facts.edgeBundle) console.log(`bundle: build/nats-edge.js, ${fmtInt(facts.edgeBundle.bytes)} bytes, built ${facts.edgeBundle.mtime}`);
  console.log(`servers: ${kinds.join(', ')}, started as "-p PORT -m HTTPPORT" (no config); ${plan.rounds} round(s), servers alternating within each round`);
  console.log(
    'load: raw-socket generator (pre-built PUB frames written in batches; MSG frames counted by scanning bytes), ' +
      'no client library, which would be the bottleneck; publisher and subscribers in separate processes; ' +
      `the publisher stays at most ${fmtInt(plan.window)} messages ahead of the slowest subscriber (subscribers ack every ${fmtInt(plan.ackEvery)} through the server).`,
  );
  console.log(
    `tests: 1->1 ${fmtInt(plan.msgs)} msgs; 1->${plan.fanoutSubs} ${fmtInt(plan.fanoutMsgs)} msgs (${fmtInt(plan.fanoutMsgs * plan.fanoutSubs)} deliveries); ` +
      `${PAYLOAD} B payloads; request/reply ${PAYLOAD} B each way, ${fmtInt(plan.requests)} sequential + ${fmtInt(plan.concurrentRequests)} with ${plan.concurrency} outstanding (after ${plan.warmup} warm-up); ` +
      `RSS idle and with ${plan.clients} idle clients (CONNECT+SUB+PING/PONG), VmRSS polled until stable.\n`,
  );

  const results = Object.fromEntries(kinds.map((k) => [k, []]));
  for (let round = 1; round <= plan.rounds; round++) {
    for (const kind of kinds) {
      let r;
      try {
        r = await runRound(kind, round);
      } catch (err) {
        r = { kind, round, errors: [`start: ${err.message}`] };
      }
      results[kind].push(r);
      console.log(roundLine(r));
      for (const e of r.errors) console.log(`  ! ${kind}: ${e}`);
      for (const n of r.serverLogNotes ?? []) console.log(`  server log: ${n}`);
    }
  }

  const { rows, summary } = summarizeAgainstNatsServer(METRICS, results, kinds);
  console.log(`\nper round:\n${textTable(PER_ROUND_HEADER, perRoundRows(results))}`);
  console.log(`\nsummary (medians over ${plan.rounds} round(s); ratio = nats-edge / nats-server):\n${textTable(SUMMARY_HEADER, rows)}`);

  let profile;
  if (args.cpuProf !== undefined) {
    try {
      profile = await profileEdge(args.cpuProf);
      console.log(`\nnats-edge CPU profile during 1->1 (${fmtInt(profile.run.rate)} msg/s under --cpu-prof), ${profile.file}`);
      console.log(`${fmtFixed(profile.totalMs / 1000, 2)} s sampled, ${fmtFixed(profile.idleMs / 1000, 2)} s of it idle; top self time (share of busy time):`);
      console.log(textTable(['function', 'self ms', 'share'], profile.rows.slice(0, 15).map((r) => [r.fn, fmtFixed(r.ms, 0), `${(r.share * 100).toFixed(1)}%`])));
    } catch (err) {
      console.log(`\ncpu profile failed: ${err.message}`);
    }
  }

  if (args.json !== undefined) {
    writeFileSync(args.json, JSON.stringify({ facts, plan, kinds, results, summary, profile: profile && { ...profile, rows: profile.rows.slice(0, 50) } }, null, 2));
    console.log(`\nwrote ${args.json}`);
  }
  if (args.markdown !== undefined) {
    const md = [
      `Run ${facts.date}: \`${facts.command}\``,
      '',
      markdownTable(SUMMARY_HEADER, rows),
      '',
      markdownTable(PER_ROUND_HEADER, perRoundRows(results)),
      '',
    ].join('\n');
    writeFileSync(args.markdown, md);
    console.log(`wrote ${args.markdown}`);
  }
  const failed = kinds.some((k) => results[k].some((r) => r.errors.length > 0));
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
