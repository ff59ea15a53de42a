#!/usr/bin/env node
// MQTT benchmark: nats-edge against mosquitto (Debian), nats-server's MQTT listener (Debian,
// JetStream on) and aedes (npm), on this machine in one run, each broker fresh per round and
// the brokers alternating within each round. See docs/benchmarks.md "MQTT".
//
//   node scripts/bench/mqtt.mjs [--rounds N] [--only KIND[,KIND]] [--quick] [--json out.json]
//                               [--markdown out.md] [--cpu-prof DIR] [--no-build] [--edge-bundle FILE]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, describeExit, tail } from './lib/server.mjs';
import { prepareEdgeBundle } from './lib/bundle.mjs';
import { readArgs } from './lib/cli.mjs';
import { machineFacts as baseFacts } from './lib/report.mjs';
import { readPeakRss } from './lib/rss.mjs';
import { median, fmtInt, fmtFixed, textTable, markdownTable } from './lib/stats.mjs';
import { newestProfile, selfTimes } from './lib/cpuprof.mjs';
import { MQTT_KINDS, MOSQUITTO_BIN, startBroker } from './lib/mqtt-servers.mjs';
import { runIdleClients, runMqttPubSub, runSensors } from './lib/mqtt-load.mjs';

const USAGE = `usage: node scripts/bench/mqtt.mjs [options]
  --rounds N          rounds (default 3; 1 with --quick); the brokers alternate within a round
  --only KINDS        comma-separated: mosquitto, nats-server, aedes, edge (nats-edge)
  --quick             small counts, 1 round: a smoke run
  --json FILE         write every figure (per round and medians) as JSON
  --markdown FILE     write the summary and per-round tables as markdown
  --cpu-prof DIR      after the rounds, run nats-edge once under node --cpu-prof during QoS 1 1->1
                      and print the top self-time functions (profile kept in DIR)
  --cpu-prof-qos N    profile the QoS N (0 or 1) run instead (default 1)
  --no-build          do not run scripts/build.mjs --if-stale first (the current bundle is copied)
  --edge-bundle FILE  run this bundle as is (no build, no copy); it needs node_modules beside it
  --qos0 N            QoS 0 messages (default 500,000)
  --qos1 N            QoS 1 messages (default 100,000)
  --sensors N         sensors publishing once a second (default 1000)
  --seconds N         how long the sensors publish (default 10)
  --clients N         idle clients for the memory test (default 1000)
Other options are ignored with a warning (npm run bench passes its flags to every script).
`;

const args = readArgs({
  script: 'mqtt.mjs',
  usage: USAGE,
  common: ['--rounds', '--quick', '--json', '--markdown', '--cpu-prof', '--no-build', '--edge-bundle'],
  flags: {
    '--only': (o, take) => {
      o.only = take
        .str()
        .split(',')
        .map((k) => (k === 'edge' ? 'nats-edge' : k));
      for (const k of o.only) if (!MQTT_KINDS.includes(k)) throw new Error(`--only takes ${MQTT_KINDS.join(', ')} or edge, got ${k}`);
    },
    '--qos0': (o, take) => (o.qos0 = take.num()),
    '--qos1': (o, take) => (o.qos1 = take.num()),
    '--sensors': (o, take) => (o.sensors = take.num()),
    '--seconds': (o, take) => (o.seconds = take.num()),
    '--clients': (o, take) => (o.clients = take.num()),
    '--cpu-prof-qos': (o, take) => {
      o.profQos = take.num(0);
      if (o.profQos !== 0 && o.profQos !== 1) throw new Error('--cpu-prof-qos takes 0 or 1');
    },
  },
  ignoreUnknown: true,
});

const PAYLOAD = 128;
const plan = {
  rounds: args.rounds ?? (args.quick ? 1 : 3),
  qos0: args.qos0 ?? (args.quick ? 50_000 : 500_000),
  qos1: args.qos1 ?? (args.quick ? 10_000 : 100_000),
  // QoS 0: the publisher stays at most `window0` messages ahead of the subscriber's count.
  window0: 20_000,
  ackEvery0: 1_000,
  // QoS 1: at most `inflight1` PUBLISHes without PUBACK, and at most `window1` ahead of the
  // subscriber: a PUBACK only says the broker took the message, and mosquitto's default
  // max_queued_messages (1000 per subscriber) would otherwise drop QoS 1 messages silently.
  inflight1: 512,
  window1: 1_000,
  ackEvery1: 100,
  sensors: args.sensors ?? (args.quick ? 200 : 1000),
  sensorSeconds: args.seconds ?? (args.quick ? 3 : 10),
  sensorQos: 1,
  clients: args.clients ?? (args.quick ? 200 : 1000),
};
const kinds = args.only ?? MQTT_KINDS;

function version(cmd, argv) {
  try {
    const r = spawnSync(cmd, argv, { encoding: 'utf8' });
    return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown';
  } catch {
    return 'not found';
  }
}

function pkgVersion(name) {
  // Read the file itself: aedes's "exports" map does not expose package.json to require().
  try {
    return JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return 'not found';
  }
}

function machineFacts() {
  return { ...baseFacts('mqtt.mjs'), mosquitto: version(MOSQUITTO_BIN, ['-h']), aedes: pkgVersion('aedes'), mqttPacket: pkgVersion('mqtt-packet') };
}

const KB = 1024;
const MB = 1024 * 1024;

/** One broker, fresh: idle RSS and idle clients, QoS 0 1->1, QoS 1 1->1, sensors. */
async function runRound(kind, round, bundle) {
  const out = { kind, round, loadavg: loadavg()[0], errors: [] };
  const broker = await startBroker(kind, { edgeBundle: bundle });
  out.command = broker.command;
  const step = async (name, fn) => {
    if (!broker.alive()) {
      out.errors.push(`${name}: skipped, broker is gone (${describeExit(broker.exitInfo())})`);
      return;
    }
    try {
      await fn();
    } catch (err) {
      out.errors.push(`${name}: ${err.message}`);
    }
  };
  try {
    await step(`${plan.clients} idle clients`, async () => {
      out.idle = await runIdleClients({ broker, n: plan.clients });
    });
    await step('QoS 0 1->1', async () => {
      out.qos0 = await runMqttPubSub({ broker, qos: 0, total: plan.qos0, payloadSize: PAYLOAD, window: plan.window0, ackEvery: plan.ackEvery0 });
    });
    await step('QoS 1 1->1', async () => {
      out.qos1 = await runMqttPubSub({ broker, qos: 1, total: plan.qos1, payloadSize: PAYLOAD, window: plan.window1, ackEvery: plan.ackEvery1, inflight: plan.inflight1 });
    });
    await step(`${plan.sensors} sensors`, async () => {
      out.sensors = await runSensors({ broker, sensors: plan.sensors, seconds: plan.sensorSeconds, qos: plan.sensorQos, payloadSize: PAYLOAD, filter: '#' });
    });
    out.peakRss = readPeakRss(broker.pid);
  } finally {
    const alive = broker.alive();
    const exit = await broker.stop();
    if (!alive) out.errors.push(`broker died: ${describeExit(exit)}; log tail:\n${tail(broker.logs())}`);
    else if (exit?.signal === 'SIGKILL') out.errors.push('broker did not exit within 5 s of SIGTERM (killed)');
    // Warnings and errors the broker logged explain odd figures; a burst of one kind is summed up.
    const notes = broker
      .logs()
      .split('\n')
      .filter((l) => /\[(WRN|ERR|FTL)\]|Slow Consumer|[Ee]rror|[Ww]arning/.test(l));
    out.serverLogNotes = notes.length > 3 ? [...notes.slice(0, 3), `(${notes.length - 3} more such lines)`] : notes;
  }
  return out;
}

const others = kinds.filter((k) => k !== 'nats-edge');
const hasEdge = kinds.includes('nats-edge');

const METRICS = [
  {
    key: 'QoS 0 1->1 msgs/s (128 B)', get: (r) => r.qos0?.rate, fmt: fmtInt, better: 'higher',
    target: { text: '>= 2x aedes', check: (m) => (Number.isFinite(m.aedes) ? m['nats-edge'] >= 2 * m.aedes : undefined) },
  },
  {
    key: 'QoS 1 1->1 msgs/s (128 B)', get: (r) => r.qos1?.rate, fmt: fmtInt, better: 'higher',
    target: { text: 'ahead of all three', check: (m) => (others.length === 3 ? others.every((k) => m['nats-edge'] > m[k]) : undefined) },
  },
  { key: 'broker CPU cores, QoS 0', get: (r) => r.qos0?.serverCpuCores, fmt: (x) => fmtFixed(x, 2) },
  { key: 'broker CPU cores, QoS 1', get: (r) => r.qos1?.serverCpuCores, fmt: (x) => fmtFixed(x, 2) },
  { key: `sensors: received/sent % (${plan.sensors} x 1/s, QoS 1, '#')`, get: (r) => (r.sensors ? (100 * r.sensors.received) / r.sensors.sent : undefined), fmt: (x) => fmtFixed(x, 2) },
  { key: 'sensors: p50 delivery ms', get: (r) => r.sensors?.latencyUs.p50 / 1000, fmt: (x) => fmtFixed(x, 2), better: 'lower' },
  { key: 'sensors: p99 delivery ms', get: (r) => r.sensors?.latencyUs.p99 / 1000, fmt: (x) => fmtFixed(x, 2), better: 'lower' },
  { key: 'sensors: broker CPU % of a core', get: (r) => r.sensors?.serverCpuCores * 100, fmt: (x) => fmtFixed(x, 1), better: 'lower' },
  { key: `sensors: connect ${plan.sensors} ms`, get: (r) => r.sensors?.connectMs, fmt: fmtInt, better: 'lower' },
  { key: 'idle RSS MB', get: (r) => r.idle?.idleRss / MB, fmt: (x) => fmtFixed(x, 1), better: 'lower' },
  {
    key: `RSS per idle connection KB (${plan.clients} clients)`, get: (r) => r.idle?.perConnection / KB, fmt: (x) => fmtFixed(x, 1), better: 'lower',
    target: { text: '<= 20 KB', check: (m) => m['nats-edge'] <= 20 },
  },
  { key: 'peak RSS over the round MB', get: (r) => r.peakRss / MB, fmt: (x) => fmtFixed(x, 1), better: 'lower' },
];

function summarize(results) {
  const rows = [];
  const summary = {};
  for (const m of METRICS) {
    const med = {};
    for (const k of kinds) med[k] = median(results[k].map(m.get).filter((x) => x !== undefined));
    const ratios = {};
    for (const k of others) ratios[k] = hasEdge ? med['nats-edge'] / med[k] : NaN;
    let verdict = '';
    if (m.target !== undefined && hasEdge && Number.isFinite(med['nats-edge'])) {
      const ok = m.target.check(med);
      verdict = ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL';
    }
    summary[m.key] = { ...med, ratios, target: m.target?.text, verdict };
    rows.push([
      m.key,
      ...kinds.map((k) => m.fmt(med[k])),
      ...(hasEdge ? others.map((k) => (Number.isFinite(ratios[k]) ? ratios[k].toFixed(2) : '-')) : []),
      m.target ? `${m.target.text} ${verdict}`.trim() : '',
    ]);
  }
  return { rows, summary };
}

const SUMMARY_HEADER = ['metric (median of rounds)', ...kinds, ...(hasEdge ? others.map((k) => `edge/${k}`) : []), 'target'];
const PER_ROUND_HEADER = ['round broker', 'QoS0 msg/s', 'QoS1 msg/s', 'sensors rcv/sent', 'p99 ms', 'CPU %', 'idle MB', 'KB/conn'];

function perRoundRows(results) {
  const rows = [];
  for (let i = 0; i < plan.rounds; i++) {
    for (const k of kinds) {
      const r = results[k][i];
      if (r === undefined) continue;
      rows.push([
        `${r.round} ${k}`,
        r.qos0 ? fmtInt(r.qos0.rate) : 'fail',
        r.qos1 ? fmtInt(r.qos1.rate) : 'fail',
        r.sensors ? `${fmtInt(r.sensors.received)}/${fmtInt(r.sensors.sent)}` : 'fail',
        r.sensors ? fmtFixed(r.sensors.latencyUs.p99 / 1000, 2) : 'fail',
        r.sensors ? fmtFixed(r.sensors.serverCpuCores * 100, 1) : 'fail',
        r.idle ? fmtFixed(r.idle.idleRss / MB) : 'fail',
        r.idle ? fmtFixed(r.idle.perConnection / KB) : 'fail',
      ]);
    }
  }
  return rows;
}

function roundLine(r) {
  const cpu = (x) => `srv ${fmtFixed(x.serverCpuCores, 2)} (waited ${fmtFixed(x.serverRunqueueWait, 2)}) pub ${fmtFixed(x.publisherCpuCores, 2)} sub ${fmtFixed(x.subscriberCpuCores, 2)}`;
  const parts = [
    `QoS0 ${r.qos0 ? `${fmtInt(r.qos0.rate)} msg/s (cpu ${cpu(r.qos0)})` : 'failed'}`,
    `QoS1 ${r.qos1 ? `${fmtInt(r.qos1.rate)} msg/s (cpu ${cpu(r.qos1)})` : 'failed'}`,
    `sensors ${r.sensors ? `${fmtInt(r.sensors.received)}/${fmtInt(r.sensors.sent)} p50/p99 ${fmtFixed(r.sensors.latencyUs.p50 / 1000, 2)}/${fmtFixed(r.sensors.latencyUs.p99 / 1000, 2)} ms cpu ${fmtFixed(r.sensors.serverCpuCores * 100, 1)}% pubacks ${fmtInt(r.sensors.pubacks)} connect ${fmtInt(r.sensors.connectMs)} ms` : 'failed'}`,
    `idle ${r.idle ? `${fmtFixed(r.idle.idleRss / MB)} MB, ${fmtFixed(r.idle.perConnection / KB)} KB/conn` : 'failed'}`,
  ];
  return `round ${r.round} ${r.kind.padEnd(11)} (load ${fmtFixed(r.loadavg, 1)}) ${parts.join(' | ')}`;
}

const profQos = args.profQos ?? 1;

async function profileEdge(dir, bundle) {
  mkdirSync(dir, { recursive: true });
  const since = Date.now();
  const broker = await startBroker('nats-edge', { edgeBundle: bundle, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  let run;
  try {
    run =
      profQos === 0
        ? await runMqttPubSub({ broker, qos: 0, total: plan.qos0, payloadSize: PAYLOAD, window: plan.window0, ackEvery: plan.ackEvery0 })
        : await runMqttPubSub({ broker, qos: 1, total: plan.qos1, payloadSize: PAYLOAD, window: plan.window1, ackEvery: plan.ackEvery1, inflight: plan.inflight1 });
  } finally {
    await broker.stop(15_000);
  }
  const file = newestProfile(dir, since);
  if (file === null) throw new Error(`no .cpuprofile written in ${dir} (did nats-edge exit cleanly on SIGTERM?)`);
  return { run, ...selfTimes(file) };
}

async function main() {
  const facts = machineFacts();
  let bundle;
  if (hasEdge) {
    bundle = prepareEdgeBundle({ given: args.edgeBundle, build: args.build, prefix: 'bench-edge-' });
    facts.edgeBundle = bundle.facts;
  }
  console.log(`nats-edge MQTT benchmark, ${facts.date}`);
  console.log(`machine: ${facts.nproc} CPUs (${facts.cpu}), load average ${facts.loadavgAtStart.join(' ')}; node ${facts.node}`);
  console.log(`brokers: ${facts.mosquitto}; ${facts.natsServer} (JetStream on, mqtt listener); aedes ${facts.aedes}; nats-edge ${facts.edgeBundle ? `${bundle.path} (${fmtInt(facts.edgeBundle.bytes)} bytes, built ${facts.edgeBundle.mtime})` : '-'}`);
  console.log(`${plan.rounds} round(s), a fresh broker per round, the brokers alternating within each round: ${kinds.join(', ')}`);
  console.log(
    `load: raw sockets, MQTT 3.1.1 packets encoded once with mqtt-packet ${facts.mqttPacket} and written as bytes, PUBLISH counted by scanning fixed headers; ` +
      'no MQTT client library (mqtt.js would be the bottleneck); publisher and subscriber in separate processes.',
  );
  console.log(
    `tests: QoS 0 1->1 ${fmtInt(plan.qos0)} x ${PAYLOAD} B (publisher <= ${fmtInt(plan.window0)} ahead of the subscriber's count, reported every ${fmtInt(plan.ackEvery0)}); ` +
      `QoS 1 1->1 ${fmtInt(plan.qos1)} x ${PAYLOAD} B (<= ${plan.inflight1} without PUBACK, <= ${fmtInt(plan.window1)} ahead of the subscriber, which PUBACKs each); ` +
      `${plan.sensors} sensors x 1 msg/s for ${plan.sensorSeconds} s at QoS 1, one QoS 1 subscriber on '#'; ${plan.clients} idle clients (CONNECT + SUBSCRIBE), VmRSS settled.\n`,
  );

  const results = Object.fromEntries(kinds.map((k) => [k, []]));
  for (let round = 1; round <= plan.rounds; round++) {
    // Rotate the order each round so no broker always runs first on a cold machine.
    const order = kinds.map((_, i) => kinds[(i + round - 1) % kinds.length]);
    for (const kind of order) {
      let r;
      try {
        r = await runRound(kind, round, bundle?.path);
      } catch (err) {
        r = { kind, round, errors: [`start: ${err.message}`] };
      }
      results[kind].push(r);
      console.log(roundLine(r));
      for (const e of r.errors) console.log(`  ! ${kind}: ${e}`);
      for (const n of r.serverLogNotes ?? []) console.log(`  broker log: ${n}`);
    }
  }
  for (const k of kinds) results[k].sort((a, b) => a.round - b.round);

  const { rows, summary } = summarize(results);
  console.log(`\nper round:\n${textTable(PER_ROUND_HEADER, perRoundRows(results))}`);
  console.log(`\nsummary (medians over ${plan.rounds} round(s); ratio = nats-edge / other):\n${textTable(SUMMARY_HEADER, rows)}`);

  let profile;
  if (args.cpuProf !== undefined && hasEdge) {
    try {
      profile = await profileEdge(args.cpuProf, bundle.path);
      console.log(`\nnats-edge CPU profile during QoS ${profQos} 1->1 (${fmtInt(profile.run.rate)} msg/s under --cpu-prof), ${profile.file}`);
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
    const md = [`Run ${facts.date}: \`${facts.command}\``, '', markdownTable(SUMMARY_HEADER, rows), '', markdownTable(PER_ROUND_HEADER, perRoundRows(results)), ''];
    if (profile) {
      md.push(`nats-edge CPU profile during QoS ${profQos} 1->1 (${fmtInt(profile.run.rate)} msg/s under --cpu-prof), top self time:`, '');
      md.push(markdownTable(['function', 'self ms', 'share of busy'], profile.rows.slice(0, 10).map((r) => [r.fn, fmtFixed(r.ms, 0), `${(r.share * 100).toFixed(1)}%`])), '');
    }
    writeFileSync(args.markdown, md.join('\n'));
    console.log(`wrote ${args.markdown}`);
  }
  bundle?.dispose();
  const failed = kinds.some((k) => results[k].some((r) => r.errors.length > 0));
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
