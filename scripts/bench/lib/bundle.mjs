// The nats-edge bundle a benchmark measures: built when stale, and copied away from build/
// so that every round runs the same code while others rebuild the tree.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { EDGE_BUNDLE, REPO_ROOT } from './server.mjs';

/** Runs `node scripts/build.mjs --if-stale`; throws with its output when it fails. */
export function ensureBuild() {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.mjs'), '--if-stale'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node scripts/build.mjs --if-stale failed:\n${r.stdout}${r.stderr}`);
}

/** Size and build time of a bundle, to say in the report which code was measured. */
export function bundleFacts(path) {
  const st = statSync(path);
  return { path, bytes: st.size, mtime: st.mtime.toISOString() };
}

/**
 * The bundle to measure: `given` (--edge-bundle) as is, else build/nats-edge.js (rebuilt first
 * when `build`) copied with its source map into a fresh `prefix`* directory. Returns
 * { path, facts, dispose() }; dispose removes the copy (never a given bundle).
 */
export function prepareEdgeBundle({ given, build, prefix }) {
  if (given !== undefined) {
    if (!existsSync(given)) throw new Error(`--edge-bundle ${given} does not exist`);
    return { path: given, facts: bundleFacts(given), dispose: () => {} };
  }
  if (build) ensureBuild();
  if (!existsSync(EDGE_BUNDLE)) throw new Error(`${EDGE_BUNDLE} is missing: run node scripts/build.mjs`);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const path = join(dir, 'nats-edge.js');
  copyFileSync(EDGE_BUNDLE, path);
  if (existsSync(`${EDGE_BUNDLE}.map`)) copyFileSync(`${EDGE_BUNDLE}.map`, `${path}.map`);
  // better-sqlite3 stays external to the bundle and is resolved beside it.
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // The copy must start as the bundle does in build/ and in a release (lib/package.json):
  // without a "type": "module" beside it, Node 20 first compiles the 0.5 MB file as CommonJS,
  // fails on `import`, and compiles it again as ESM (+4.5 MiB RSS, tens of ms).
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  return { path, facts: bundleFacts(path), dispose: () => rmSync(dirname(path), { recursive: true, force: true }) };
}
