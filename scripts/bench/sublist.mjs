#!/usr/bin/env node
// Micro-benchmark of the subject index (src/core/sublist.ts) at 100 000 subscriptions.
// Not a test: it prints rates. Usage: node scripts/bench/sublist.mjs [numSubs]
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { importTs } from '../lib/import-ts.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// The first argument that is not a --flag (run-all.mjs passes its flags through).
// The subscription count is the first bare number; run-all's shared flags (--json FILE...) are not it.
const N = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 100_000);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');

const { SubjectIndex } = await importTs(join(root, 'src/core/sublist.ts'));

// Seeded PRNG so every run measures the same workload.
let seed = 0x5eed;
function rand() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (n) => Math.floor(rand() * n);

const SITES = 200;
const DEVS = 100;
const METRICS = ['temp', 'hum', 'co2', 'pres'];
const owner = { kind: 'client', cid: 1, echo: true, deliver() {} };

/** Realistic gateway shapes: 70% literal, 20% '*', 10% '>', 5% in a queue group. */
function makeSubs(n) {
  const subs = new Array(n);
  for (let i = 0; i < n; i++) {
    const x = rand();
    let subject;
    if (x < 0.7) subject = `sensors.s${pick(SITES)}.d${pick(DEVS)}.${METRICS[pick(4)]}`;
    else if (x < 0.89) subject = `ctl.s${pick(SITES)}.d${pick(DEVS)}.*`;
    else if (x < 0.9) subject = `sensors.s${pick(SITES)}.*.${METRICS[pick(4)]}`;
    else if (x < 0.99) subject = `ev.s${pick(SITES)}.d${pick(DEVS)}.>`;
    else subject = `sensors.s${pick(SITES)}.>`;
    const queue = rand() < 0.05 ? 'workers' : '';
    subs[i] = { subject, queue, sid: String(i + 1), owner, msgs: 0, max: 0 };
  }
  return subs;
}

function publishSubject() {
  const x = rand();
  const site = `s${pick(SITES)}`;
  const dev = `d${pick(DEVS)}`;
  if (x < 0.6) return `sensors.${site}.${dev}.${METRICS[pick(4)]}`;
  if (x < 0.8) return `ctl.${site}.${dev}.reboot`;
  if (x < 0.95) return `ev.${site}.${dev}.door.open`;
  return `other.${site}.${dev}`; // no interest
}

const rows = [];
function measure(name, ops, fn) {
  const t0 = process.hrtime.bigint();
  const extra = fn();
  const ns = Number(process.hrtime.bigint() - t0);
  rows.push({ name, ops, ns, extra: extra ?? '' });
}

function heapUsed() {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function run(n, record) {
  const subs = makeSubs(n);
  const hot = Array.from({ length: 500 }, publishSubject);
  const cold = Array.from({ length: 200_000 }, publishSubject);
  const order = subs.slice();
  for (let i = order.length - 1; i > 0; i--) {
    const j = pick(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const wild = makeSubs(20_000).filter((s) => s.subject.includes('*') || s.subject.endsWith('>'));

  const m = record ? measure : (_name, _ops, fn) => fn();
  const base = record ? heapUsed() : 0;
  const idx = new SubjectIndex();
  const bare = new SubjectIndex({ cacheSize: 0 });

  m('insert', n, () => {
    for (let i = 0; i < n; i++) idx.insert(subs[i]);
  });
  if (record) rows.push({ name: 'heap used by index', ops: 0, ns: 0, extra: `${((heapUsed() - base) / 1048576).toFixed(1)} MiB (${Math.round((heapUsed() - base) / n)} B/sub)` });
  for (let i = 0; i < n; i++) bare.insert(subs[i]);

  let fan = 0;
  for (let i = 0; i < hot.length; i++) idx.match(hot[i]); // fill the cache
  const hitOps = 2_000_000;
  m('match, cache hit', hitOps, () => {
    for (let i = 0; i < hitOps; i++) {
      const r = idx.match(hot[i % hot.length]);
      fan += r.plain.length + r.queues.length;
    }
    return `avg fanout ${(fan / hitOps).toFixed(2)}`;
  });
  const missOps = cold.length;
  m('match, cache miss (cache 1024, evicting)', missOps, () => {
    const before = idx.stats();
    const hitsBefore = before.cacheHitRate * before.numMatches;
    for (let i = 0; i < missOps; i++) idx.match(cold[i]);
    const st = idx.stats();
    const hits = st.cacheHitRate * st.numMatches - hitsBefore;
    return `hit rate in this phase ${((hits / missOps) * 100).toFixed(1)}%`;
  });
  m('match, no cache (cacheSize 0)', missOps, () => {
    for (let i = 0; i < missOps; i++) bare.match(cold[i]);
  });
  m('hasInterest, no cache', missOps, () => {
    let k = 0;
    for (let i = 0; i < missOps; i++) if (bare.hasInterest(cold[i])) k++;
    return `${((k / missOps) * 100).toFixed(0)}% with interest`;
  });

  // Subscription churn while the cache is full: a wildcard change scans the cached subjects.
  for (let i = 0; i < 1024; i++) idx.match(cold[i]);
  m('insert+remove of a wildcard sub, cache full', wild.length, () => {
    for (let i = 0; i < wild.length; i++) {
      idx.insert(wild[i]);
      idx.remove(wild[i]);
      if ((i & 15) === 0) idx.match(cold[i]); // keep the cache full
    }
    return `cache ${idx.stats().numCache} entries at end`;
  });
  m('insert+remove of a wildcard sub, no cache', wild.length, () => {
    for (let i = 0; i < wild.length; i++) {
      bare.insert(wild[i]);
      bare.remove(wild[i]);
    }
  });

  for (let i = 0; i < 1024; i++) idx.match(cold[i]);
  m('remove one by one (random order, cache full)', n, () => {
    for (let i = 0; i < n; i++) idx.remove(order[i]);
    return `left ${idx.count}`;
  });
  m('removeBatch (all at once)', n, () => {
    bare.removeBatch(order);
    return `left ${bare.count}`;
  });
}

run(Math.min(N, 20_000), false); // warm up the JIT on a smaller index
run(N, true);

const fmtRate = (r) => (r.ops === 0 ? '' : Math.round(r.ops / (r.ns / 1e9)).toLocaleString('en-US'));
const fmtNs = (r) => (r.ops === 0 ? '' : (r.ns / r.ops).toFixed(0));
console.log(`subject index, ${N.toLocaleString('en-US')} subscriptions, node ${process.version}`);
const w = [48, 14, 8];
console.log(`${'operation'.padEnd(w[0])}${'ops/s'.padStart(w[1])}${'ns/op'.padStart(w[2])}  notes`);
for (const r of rows) {
  console.log(`${r.name.padEnd(w[0])}${fmtRate(r).padStart(w[1])}${fmtNs(r).padStart(w[2])}  ${r.extra}`);
}
