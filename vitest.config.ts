import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration files start real server processes; a separate process per file keeps a
    // crashed or hung server from taking other files down with it.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The machine has 2 cores and each file may run two servers plus clients.
    maxWorkers: 2,
  },
});
