import { defineConfig } from 'vitest/config'

// Load tests (event-loop fairness) and the tests against a real LiveKit server: one file at
// a time, after the main suite, so that the timer gaps and real-time rates they bound are
// not a neighbour's CPU load. The LiveKit files build the server on a fresh machine first
// (their setup hook allows for it).
export default defineConfig({
  test: {
    include: ['__test__/load/**/*.test.ts', '__test__/livekit/**/*.test.ts'],
    pool: 'forks',
    // The built package, loaded by Node itself (not transformed): the tests, their fixtures
    // and a user all run the same dist/, as one instance of each module.
    server: { deps: { external: [/\/dist\//] } },
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 20 * 60_000,
  },
})
