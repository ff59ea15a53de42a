#!/usr/bin/env node
// Bundles src/main.ts into build/nats-edge.js: one file for Node 20. better-sqlite3 stays
// external because its native addon must ship beside the bundle, built for the target runtime.
// --if-stale: build only when a source file is newer than the bundle (npm start / npm test).
import { build } from 'esbuild';
import { readdirSync, statSync, existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'nats-edge.js');
const inputs = ['src', 'firmware-profiles', 'scripts/build.mjs', 'package.json'];

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

if (process.argv.includes('--if-stale') && existsSync(out)) {
  const built = statSync(out).mtimeMs;
  const stale = inputs.some((p) => existsSync(join(root, p)) && newestMtime(join(root, p)) > built);
  if (!stale) process.exit(0);
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const result = await build({
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile: out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: !process.argv.includes('--no-minify'),
  sourcemap: 'linked',
  external: ['better-sqlite3'],
  define: { NATS_EDGE_VERSION_DEFINE: JSON.stringify(pkg.version) },
  // ESM output has no require(); bundled CommonJS dependencies (bcryptjs) may still call it.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0;
console.log(`built ${out} (${(bytes / 1024).toFixed(1)} KiB)`);
