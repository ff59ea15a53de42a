#!/usr/bin/env node
// Runs every benchmark script of scripts/bench that exists (core, sublist, parser), one after
// the other so they never compete for the CPU, passing the command-line arguments through.
// `--json FILE` becomes FILE with the script's name inserted (out.json -> out.core.json), so
// the scripts do not overwrite each other's results.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPTS = ['core.mjs', 'sublist.mjs', 'parser.mjs'];

function argsFor(script, argv) {
  const out = argv.slice();
  for (const flag of ['--json', '--markdown']) {
    const i = out.indexOf(flag);
    if (i >= 0 && i + 1 < out.length) {
      const file = out[i + 1];
      const name = script.replace(/\.mjs$/, '');
      const dot = file.lastIndexOf('.');
      out[i + 1] = dot > file.lastIndexOf('/') ? `${file.slice(0, dot)}.${name}${file.slice(dot)}` : `${file}.${name}`;
    }
  }
  return out;
}

const argv = process.argv.slice(2);
const results = [];
for (const script of SCRIPTS) {
  const path = join(here, script);
  if (!existsSync(path)) continue;
  console.log(`\n=== ${script} ${argsFor(script, argv).join(' ')}`.trimEnd());
  const r = spawnSync(process.execPath, [path, ...argsFor(script, argv)], { stdio: 'inherit' });
  results.push({ script, status: r.status ?? 1, signal: r.signal });
}
console.log('\n=== summary');
for (const r of results) console.log(`${r.script}: ${r.status === 0 ? 'ok' : `failed (${r.signal ?? `exit ${r.status}`})`}`);
process.exitCode = results.some((r) => r.status !== 0) ? 1 : 0;
