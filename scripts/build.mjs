#!/usr/bin/env node
// Bundles src/main.ts into build/nats-edge.js: one file for Node 20. better-sqlite3 stays
// external because its native addon must ship beside the bundle, built for the target runtime.
// --if-stale: build only when a source file is newer than the bundle (npm start / npm test).
import { build } from 'esbuild';
import { readdirSync, statSync, existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinModules, createRequire } from 'node:module';

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

// mqtt-packet keeps a connection's unparsed bytes in `bl()`, a BufferListStream: a whole Duplex
// stream (two stream states, an event emitter) per MQTT connection, of which the parser uses only
// the BufferList methods. Inside the bundle `bl()` returns the plain BufferList of the same bl
// package (about 2 KB less per idle connection).
const req = createRequire(import.meta.url);
const mqttPacketDir = dirname(req.resolve('mqtt-packet'));
const bufferListPath = createRequire(join(mqttPacketDir, 'parser.js')).resolve('bl/BufferList.js');
const plainBufferList = {
  name: 'plain-buffer-list',
  setup(b) {
    b.onResolve({ filter: /^bl$/ }, (args) => (args.importer.startsWith(mqttPacketDir) ? { path: 'bl-plain', namespace: 'nats-edge' } : undefined));
    b.onLoad({ filter: /^bl-plain$/, namespace: 'nats-edge' }, () => ({
      contents: `const BufferList = require(${JSON.stringify(bufferListPath)}); module.exports = function bl() { return new BufferList(); };`,
      loader: 'js',
      resolveDir: dirname(bufferListPath),
    }));
  },
};
// Node's built-ins through require(): an ESM import of a built-in builds a namespace of all its
// exports, which runs their lazy getters (Node 24's node:http then loads undici, http2,
// worker_threads and more: ~13 MiB of idle RSS for nothing). require() leaves them lazy.
const builtinsViaRequire = {
  name: 'builtins-via-require',
  setup(b) {
    const names = builtinModules.filter((m) => !m.startsWith('_')).map((m) => m.replace(/[/]/g, '\\/'));
    b.onResolve({ filter: new RegExp(`^(node:.*|${names.join('|')})$`) }, (args) =>
      args.namespace === 'builtin' ? { path: args.path, external: true } : { path: args.path, namespace: 'builtin' },
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};
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
  // mqtt-packet's `debug` calls cost CPU per packet even when off: they compile to nothing here.
  alias: { debug: join(root, 'scripts', 'lib', 'debug-off.cjs') },
  plugins: [plainBufferList, builtinsViaRequire],
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0;
console.log(`built ${out} (${(bytes / 1024).toFixed(1)} KiB)`);
