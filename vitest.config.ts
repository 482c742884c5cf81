import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests share PostgreSQL and Redis; each file gets its own database schema,
    // but two CPU cores are all we have, so keep file-level parallelism modest.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default', './packages/server/test/support/summary-reporter.ts'],
    globalSetup: ['packages/server/test/support/global-setup.ts'],
  },
});
