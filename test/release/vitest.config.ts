// The release test's own vitest config: `npm test` (test/**/*.test.ts) never picks up the
// *.release.ts files, which need a built release and run it under emulation (minutes).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/release/**/*.release.ts'],
    pool: 'forks',
    // One release at a time: an emulated Node takes a core on its own.
    maxWorkers: 1,
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
