#!/usr/bin/env node
// JetStream benchmark: Debian's nats-server against our bundle, both with `-js -sd DIR` on the
// same disk, alternating per round. Per server and round, on a fresh store: acked publish of
// COUNT x 128 B into a file stream, a pull consumer draining it with an ack per message, then a
// clean stop and the store's bytes on disk per message. See docs/benchmarks.md "JetStream".
//
//   node scripts/bench/jetstream.mjs [--rounds N] [--only nats-server|edge] [--quick] [--count N]
//                                    [--window N] [--batch N] [--json out.json] [--markdown out.md]
//                                    [--dir PARENT] [--no-build]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { EDGE_BUNDLE, KINDS, describeExit, tail } from './lib/server.mjs';
import { bundleFacts, ensureBuild } from './lib/bundle.mjs';
import { readArgs } from './lib/cli.mjs';
import { machineFacts, machineLine, summarizeAgainstNatsServer } from './lib/report.mjs';
import { readCpuSeconds, readPeakRss } from './lib/rss.mjs';
import { median, fmtInt, fmtFixed, textTable, markdownTable } from './lib/stats.mjs';
import { startJsServer, diskUsage } from './lib/js-server.mjs';
import { runAckedPublish, runPullDrain } from './lib/js-load.mjs';

const USAGE = `usage: node scripts/bench/jetstream.mjs [options]
  --rounds N        rounds of A/B (default 3; 1 with --quick)
  --only KIND       nats-server | edge (nats-edge): run one server only
  --quick           10,000 messages, 1 round: a smoke run of seconds
  --count N         messages per round (default 100,000)
  --window N        PubAcks outstanding at most (default 1,000)
  --batch N         messages per pull request (default 1,000)
  --json FILE       write every figure (per round and medians) as JSON
  --markdown FILE   write the summary and per-round tables as markdown
  --dir PARENT      where the temporary store directories go (default: the OS temp dir)
  --no-build        do not run scripts/build.mjs --if-stale before measuring nats-edge
`;

const args = readArgs({
  script: 'jetstream.mjs',
  usage: USAGE,
  common: ['--rounds', '--only', '--quick', '--json', '--markdown', '--no-build'],
  flags: {
    '--count': (o, take) => (o.count = take.num()),
    '--window': (o, take) => (o.window = take.num()),
    '--batch': (o, take) => (o.batch = take.num()),
    '--dir': (o, take) => (o.dir = take.str()),
  },
});

const STREAM = 'BENCH';
const SUBJECT = 'bench.js';
const CONSUMER = 'DRAIN';
const PAYLOAD = 128;
const plan = {
  rounds: args.rounds ?? (args.quick ? 1 : 3),
  count: args.count ?? (args.quick ? 10_000 : 100_000),
  window: args.window ?? 1_000,
  batch: args.batch ?? 1_000,
  payload: PAYLOAD,
  subject: SUBJECT,
};
/** What the store holds per message before any overhead: subject + payload bytes. */
const RAW_PER_MSG = Buffer.byteLength(SUBJECT) + PAYLOAD;
const kinds = args.only !== undefined ? [args.only] : KINDS;
const MB = 1024 * 1024;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A JetStream API request; throws on an `error` in the response. */
async function api(nc, subject, body) {
  const m = await nc.request(subject, body === undefined ? new Uint8Array(0) : enc.encode(JSON.stringify(body)), { timeout: 10_000 });
  const text = dec.decode(m.data);
  let r;
  try {
    r = JSON.parse(text);
  } catch {
    throw new Error(`${subject}: not JSON: ${text.slice(0, 200)}`);
  }
  if (r.error !== undefined) throw new Error(`${subject}: ${JSON.stringify(r.error)}`);
  return r;
}

async function pollJson(read, done, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() >= deadline) return v;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}

/** One server, fresh store: acked publish, pull drain, clean stop, bytes on disk. */
async function runRound(kind, round) {
  const out = { kind, round, loadavg: loadavg()[0], errors: [] };
  const storeDir = mkdtempSync(join(args.dir ?? tmpdir(), `js-bench-${kind}-`));
  let server;
  try {
    server = await startJsServer(kind, { storeDir });
  } catch (err) {
    rmSync(storeDir, { recursive: true, force: true });
    throw err;
  }
  out.command = server.command;
  let nc;
  const step = async (name, fn) => {
    if (!server.alive()) {
      out.errors.push(`${name}: skipped, server is gone (${describeExit(server.exitInfo())})`);
      return false;
    }
    try {
      await fn();
      return true;
    } catch (err) {
      out.errors.push(`${name}: ${err.message}`);
      return false;
    }
  };
  try {
    const ready = await step('setup', async () => {
      nc = await connect({ servers: `nats://127.0.0.1:${server.port}`, reconnect: false });
      const info = await api(nc, '$JS.API.INFO');
      if (info.type !== 'io.nats.jetstream.api.v1.account_info_response') throw new Error(`$JS.API.INFO answered ${JSON.stringify(info).slice(0, 200)}`);
      await api(nc, `$JS.API.STREAM.CREATE.${STREAM}`, {
        name: STREAM,
        subjects: [SUBJECT],
        retention: 'limits',
        storage: 'file',
        discard: 'old',
        max_consumers: -1,
        max_msgs: -1,
        max_bytes: -1,
        max_age: 0,
        max_msgs_per_subject: -1,
        max_msg_size: -1,
        num_replicas: 1,
        duplicate_window: 120_000_000_000,
      });
    });
    if (ready) {
      await step('acked publish', async () => {
        const cpu0 = readCpuSeconds(server.pid);
        out.publish = await runAckedPublish({ port: server.port, subject: SUBJECT, count: plan.count, payloadSize: PAYLOAD, window: plan.window });
        out.publish.serverCpuCores = (readCpuSeconds(server.pid) - cpu0) / out.publish.seconds;
        const si = await api(nc, `$JS.API.STREAM.INFO.${STREAM}`);
        out.streamState = si.state;
        if (out.publish.errorAcks > 0) throw new Error(`${out.publish.errorAcks} PubAcks carried an error`);
        if (si.state.messages !== plan.count || si.state.last_seq !== plan.count) {
          throw new Error(`stream holds ${si.state.messages} messages (last seq ${si.state.last_seq}) after ${plan.count} PubAcks`);
        }
      });
      await step('pull drain', async () => {
        await api(nc, `$JS.API.CONSUMER.CREATE.${STREAM}.${CONSUMER}`, {
          stream_name: STREAM,
          config: {
            durable_name: CONSUMER,
            name: CONSUMER,
            ack_policy: 'explicit',
            deliver_policy: 'all',
            replay_policy: 'instant',
            ack_wait: 30_000_000_000,
            max_deliver: -1,
            max_ack_pending: 4 * plan.batch,
            max_waiting: 512,
          },
          action: 'create',
        });
        const cpu0 = readCpuSeconds(server.pid);
        out.drain = await runPullDrain({ port: server.port, stream: STREAM, consumer: CONSUMER, count: plan.count, batch: plan.batch });
        out.drain.serverCpuCores = (readCpuSeconds(server.pid) - cpu0) / out.drain.seconds;
        // Acks are applied asynchronously by nats-server: wait for the floor, and say how long it took.
        const t0 = Date.now();
        const ci = await pollJson(
          () => api(nc, `$JS.API.CONSUMER.INFO.${STREAM}.${CONSUMER}`),
          (c) => c.ack_floor?.stream_seq === plan.count && c.num_ack_pending === 0,
          10_000,
        );
        out.drain.ackFloorSettleMs = Date.now() - t0;
        out.consumerState = { delivered: ci.delivered, ack_floor: ci.ack_floor, num_ack_pending: ci.num_ack_pending, num_redelivered: ci.num_redelivered };
        if (ci.ack_floor?.stream_seq !== plan.count || ci.num_ack_pending !== 0) {
          throw new Error(`consumer did not settle: ack floor ${JSON.stringify(ci.ack_floor)}, ${ci.num_ack_pending} ack pending`);
        }
      });
    }
    out.peakRss = readPeakRss(server.pid);
  } finally {
    await nc?.close().catch(() => {});
    const alive = server.alive();
    // A clean stop (the service manager's SIGTERM): nats-edge checkpoints its WAL on the way out.
    const exit = await server.stop(15_000);
    if (!alive) out.errors.push(`server died: ${describeExit(exit)}; log tail:\n${tail(server.logs())}`);
    else if (exit.signal === 'SIGKILL') out.errors.push('server did not exit within 15 s of SIGTERM (killed)');
    out.exit = describeExit(exit);
    out.serverLogNotes = server.logs().split('\n').filter((l) => /\[(WRN|ERR|FTL)\]/.test(l)).slice(0, 20);
    const du = diskUsage(storeDir);
    out.store = {
      allocated: du.allocated,
      apparent: du.apparent,
      perMsg: du.allocated / plan.count,
      perMsgApparent: du.apparent / plan.count,
      largest: du.files.sort((a, b) => b.allocated - a.allocated).slice(0, 6),
    };
    rmSync(storeDir, { recursive: true, force: true });
  }
  return out;
}

const METRICS = [
  { key: `acked publish msgs/s (${PAYLOAD} B)`, get: (r) => r.publish?.rate, fmt: fmtInt, target: { ratioMin: 0.5, text: '>= 50% of nats-server' } },
  { key: 'pull drain msgs/s (acked)', get: (r) => r.drain?.rate, fmt: fmtInt },
  { key: 'ack floor settled after drain ms', get: (r) => r.drain?.ackFloorSettleMs, fmt: (x) => fmtFixed(x, 0) },
  { key: 'store bytes/msg on disk (du)', get: (r) => r.store?.perMsg, fmt: (x) => fmtFixed(x, 1), target: { edgeMax: 1.5 * RAW_PER_MSG, text: `nats-edge <= 1.5x raw (${fmtFixed(1.5 * RAW_PER_MSG, 0)} B)` } },
  { key: 'store bytes/msg apparent size', get: (r) => r.store?.perMsgApparent, fmt: (x) => fmtFixed(x, 1) },
  { key: 'server CPU cores during publish', get: (r) => r.publish?.serverCpuCores, fmt: (x) => fmtFixed(x, 2) },
  { key: 'server CPU cores during drain', get: (r) => r.drain?.serverCpuCores, fmt: (x) => fmtFixed(x, 2) },
  { key: 'peak RSS MB', get: (r) => r.peakRss / MB, fmt: (x) => fmtFixed(x, 1) },
];

function summarize(results) {
  const { rows, summary } = summarizeAgainstNatsServer(METRICS, results, kinds);
  // Space against the raw bytes, per server.
  const raw = {};
  for (const k of kinds) raw[k] = median(results[k].map((r) => r.store?.perMsg)) / RAW_PER_MSG;
  rows.push([
    `store / raw (subject+payload = ${RAW_PER_MSG} B)`,
    kinds.includes('nats-server') ? `${fmtFixed(raw['nats-server'], 2)}x` : '-',
    kinds.includes('nats-edge') ? `${fmtFixed(raw['nats-edge'], 2)}x` : '-',
    '',
    '',
  ]);
  summary.storeOverRaw = raw;
  return { rows, summary };
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
        r.publish ? fmtInt(r.publish.rate) : 'fail',
        r.drain ? fmtInt(r.drain.rate) : 'fail',
        r.store ? fmtFixed(r.store.perMsg, 1) : 'n/a',
        r.store ? fmtFixed(r.store.allocated / MB, 1) : 'n/a',
        Number.isFinite(r.peakRss) ? fmtFixed(r.peakRss / MB, 1) : 'n/a',
      ]);
    }
  }
  return rows;
}

const PER_ROUND_HEADER = ['round server', 'publish msg/s', 'drain msg/s', 'B/msg on disk', 'store MB', 'peak RSS MB'];
const SUMMARY_HEADER = ['metric (median of rounds)', 'nats-server', 'nats-edge', 'edge/nats-server', 'target'];

function roundLine(r) {
  const parts = [
    `publish ${r.publish ? `${fmtInt(r.publish.rate)} msg/s (${fmtFixed(r.publish.seconds, 2)} s, srv cpu ${fmtFixed(r.publish.serverCpuCores, 2)})` : 'failed'}`,
    `drain ${r.drain ? `${fmtInt(r.drain.rate)} msg/s (${fmtFixed(r.drain.seconds, 2)} s, srv cpu ${fmtFixed(r.drain.serverCpuCores, 2)}, floor settled +${r.drain.ackFloorSettleMs} ms)` : 'failed'}`,
    `store ${r.store ? `${fmtFixed(r.store.perMsg, 1)} B/msg (${fmtFixed(r.store.allocated / MB, 1)} MB du, ${fmtFixed(r.store.apparent / MB, 1)} MB apparent)` : 'n/a'}`,
  ];
  return `round ${r.round} ${r.kind.padEnd(11)} (load ${fmtFixed(r.loadavg, 1)}) ${parts.join(' | ')}`;
}

async function main() {
  const facts = machineFacts('jetstream.mjs');
  if (kinds.includes('nats-edge')) {
    if (args.build) ensureBuild();
    const { bytes, mtime } = bundleFacts(EDGE_BUNDLE);
    facts.edgeBundle = { bytes, mtime };
  }
  console.log(`nats-edge JetStream benchmark, ${facts.date}`);
  console.log(machineLine(facts));
  if (facts.edgeBundle) console.log(`bundle: build/nats-edge.js, ${fmtInt(facts.edgeBundle.bytes)} bytes, built ${facts.edgeBundle.mtime}`);
  console.log(
    `servers: ${kinds.join(', ')}, started as "-js -sd DIR -p PORT -m HTTPPORT" on a fresh store in ${args.dir ?? tmpdir()}; ` +
      `${plan.rounds} round(s), servers alternating within each round`,
  );
  console.log(
    `load: raw sockets, no client library. Publish: ${fmtInt(plan.count)} x ${PAYLOAD} B to "${SUBJECT}" (file stream ${STREAM}), ` +
      `each PUB with a reply subject, at most ${fmtInt(plan.window)} PubAcks outstanding; rate = count / (first PUB .. last PubAck). ` +
      `Drain: durable pull consumer (explicit ack), requests of ${fmtInt(plan.batch)} (two outstanding), every delivery acked; ` +
      `rate = count / (first request .. PONG after the last ack). Store: du of the store dir after a clean stop (SIGTERM) / count.\n`,
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

  const { rows, summary } = summarize(results);
  console.log(`\nper round:\n${textTable(PER_ROUND_HEADER, perRoundRows(results))}`);
  console.log(`\nsummary (medians over ${plan.rounds} round(s); ratio = nats-edge / nats-server):\n${textTable(SUMMARY_HEADER, rows)}`);
  for (const k of kinds) {
    const last = results[k].findLast((r) => r.store !== undefined);
    if (last) console.log(`\n${k} store files after the last round's clean stop: ${last.store.largest.map((f) => `${f.path} ${fmtInt(f.allocated)} B`).join(', ')}`);
  }

  if (args.json !== undefined) {
    writeFileSync(args.json, JSON.stringify({ facts, plan, rawPerMsg: RAW_PER_MSG, kinds, results, summary }, null, 2));
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
