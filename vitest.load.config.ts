import { defineConfig } from 'vitest/config'

// Load tests (event-loop fairness): one file at a time, after the main suite, so that the
// timer gaps they bound are not a neighbour's CPU load.
export default defineConfig({
  test: {
    include: ['__test__/load/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 20_000,
  },
})
