#!/usr/bin/env node
// Runs every benchmark script of scripts/bench (core, jetstream, sublist, parser), one after
// the other so they never compete for the CPU, passing the command-line arguments through.
// `--json FILE` becomes FILE with the script's name inserted (out.json -> out.core.json), so
// the scripts do not overwrite each other's results.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPTS = ['core.mjs', 'jetstream.mjs', 'sublist.mjs', 'parser.mjs', 'mqtt.mjs', 'leaf.mjs', 'startup.mjs'];
// Flags each script understands (with whether they take a value); others are not passed to it.
const SHARED = { '--rounds': true, '--only': true, '--quick': false, '--json': true, '--markdown': true, '--no-build': false };

/** The subset of argv a script accepts: core.mjs takes everything, the others the shared flags. */
function accepted(script, argv) {
  if (script === 'core.mjs') return argv.slice();
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    const takesValue = SHARED[argv[i]];
    if (takesValue === undefined) {
      if (argv[i].startsWith('--') && argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) i++;
      continue;
    }
    out.push(argv[i]);
    if (takesValue && i + 1 < argv.length) out.push(argv[++i]);
  }
  return out;
}

function argsFor(script, argv) {
  const out = accepted(script, argv);
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
