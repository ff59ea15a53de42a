// What every benchmark report says the same way: the machine it ran on and the table of
// medians of nats-edge against nats-server with the verdicts on the targets.
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { NATS_SERVER_BIN } from './server.mjs';
import { median } from './stats.mjs';

/** The machine, the nats-server version and the command line of `script` (e.g. 'core.mjs'). */
export function machineFacts(script) {
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
    command: `node scripts/bench/${script} ${process.argv.slice(2).join(' ')}`.trim(),
  };
}

/** The report's `machine:` line. */
export function machineLine(facts) {
  return `machine: ${facts.nproc} CPUs (${facts.cpu}), load average ${facts.loadavgAtStart.join(' ')}; node ${facts.node}; ${facts.natsServer}`;
}

/** PASS / FAIL against a target { ratioMin | ratioMax (nats-edge / nats-server) | edgeMax (nats-edge's median) }, n/a without figures. */
function verdict(target, med, ratio) {
  const judge = (x, ok) => (Number.isFinite(x) ? (ok(x) ? 'PASS' : 'FAIL') : 'n/a');
  if (target.ratioMin !== undefined) return judge(ratio, (r) => r >= target.ratioMin);
  if (target.ratioMax !== undefined) return judge(ratio, (r) => r <= target.ratioMax);
  if (target.edgeMax !== undefined) return judge(med['nats-edge'], (e) => e <= target.edgeMax);
  return '';
}

/**
 * Medians over the rounds of each metric { key, get(round), fmt, target? } for nats-server and
 * nats-edge, their ratio and the verdict on the target: `rows` for a five-column table
 * (metric, nats-server, nats-edge, ratio, target) and `summary` with the same figures for the JSON.
 */
export function summarizeAgainstNatsServer(metrics, results, kinds) {
  const rows = [];
  const summary = {};
  for (const m of metrics) {
    const med = {};
    for (const k of kinds) med[k] = median(results[k].map(m.get).filter((x) => x !== undefined));
    const ratio = kinds.length === 2 ? med['nats-edge'] / med['nats-server'] : NaN;
    const v = m.target !== undefined ? verdict(m.target, med, ratio) : '';
    summary[m.key] = { ...med, ratio, target: m.target?.text, verdict: v };
    rows.push([
      m.key,
      kinds.includes('nats-server') ? m.fmt(med['nats-server']) : '-',
      kinds.includes('nats-edge') ? m.fmt(med['nats-edge']) : '-',
      Number.isFinite(ratio) ? ratio.toFixed(2) : '-',
      m.target ? `${m.target.text} ${v}` : '',
    ]);
  }
  return { rows, summary };
}
