// Imports a TypeScript module of the project from a plain Node script (benchmarks, fuzzers):
// bundles it with esbuild into a temporary file, imports it, removes the file.
import { build } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export async function importTs(entry) {
  const dir = mkdtempSync(join(tmpdir(), 'nats-edge-ts-'));
  const outfile = join(dir, 'module.mjs');
  try {
    await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      logLevel: 'warning',
      // Bundled CommonJS dependencies (bcryptjs) need require() inside the ESM output.
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    return await import(pathToFileURL(outfile).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
