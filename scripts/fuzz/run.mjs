#!/usr/bin/env node
// Runs a fuzz target: bundles its TypeScript with esbuild to a temporary file and imports it.
//   node scripts/fuzz/run.mjs [--target parser|connection] [--seed N] [--iterations N]
// Exits 1 when any check failed, printing each failure with the input (hex) to reproduce it.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importTs } from '../lib/import-ts.mjs';

const TARGETS = {
  parser: { entry: 'parser-fuzz.ts', run: (mod, opts) => mod.runParserFuzz(opts) },
  // A whole client connection (parser, ops, router, outbound) over an in-memory socket.
  connection: { entry: 'connection-fuzz.ts', run: (mod, opts) => mod.runConnectionFuzz(opts) },
  mqtt: { entry: 'mqtt-fuzz.ts', run: (mod, opts) => mod.runMqttFuzz(opts).then((r) => (console.log(mod.mqttFuzzSummary(r)), r)) },
};

function parseArgs(argv) {
  const opts = { target: 'parser', seed: 1, iterations: 100000 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === '--target') opts.target = value;
    else if (arg === '--seed') opts.seed = Number(value);
    else if (arg === '--iterations') opts.iterations = Number(value);
    else {
      console.error(`unknown argument ${arg}`);
      process.exit(2);
    }
    i++;
  }
  if (!(opts.target in TARGETS) || !Number.isInteger(opts.seed) || !Number.isInteger(opts.iterations) || opts.iterations < 0) {
    console.error('usage: node scripts/fuzz/run.mjs [--target parser|connection] [--seed N] [--iterations N]');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const target = TARGETS[opts.target];
const here = dirname(fileURLToPath(import.meta.url));
{
  const mod = await importTs(join(here, target.entry));
  const started = performance.now();
  const result = await target.run(mod, {
    seed: opts.seed,
    iterations: opts.iterations,
    progress: (done) => console.log(`  ${done} inputs, ${((performance.now() - started) / 1000).toFixed(1)} s`),
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(`target ${opts.target}, seed ${opts.seed}: ${result.iterations} inputs, ${(result.bytes / 1e6).toFixed(1)} MB in ${result.chunks} chunks, ${seconds.toFixed(1)} s`);
  console.log(`outcomes: ${JSON.stringify(result.outcomes)}`);
  for (const f of result.failures) {
    console.log(`FAIL at input ${f.iteration}: ${f.message}\n  chunks ${JSON.stringify(f.chunkSizes.slice(0, 50))}\n  input ${f.input}`);
  }
  console.log(result.failures.length === 0 ? 'OK: no failures' : `${result.failures.length} failure(s)`);
  process.exitCode = result.failures.length === 0 ? 0 : 1;
}
