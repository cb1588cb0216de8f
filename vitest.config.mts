import { defineConfig } from 'vitest/config';

// Temporal's native worker bridge crashes under worker threads: every test file runs in a forked process.
export default defineConfig({
  test: {
    pool: 'forks',
    // The harnesses register the secret scan through the global hooks (test/rig/secret-scan.ts).
    globals: true,
    globalSetup: ['test/rig/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
