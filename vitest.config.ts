import { defineConfig } from 'vitest/config'

// Forks, not threads: native addons and threadsafe functions want a process each.
export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    // Load tests and the real-LiveKit tests run alone, after this suite (vitest.load.config.ts).
    exclude: ['__test__/load/**', '__test__/livekit/**', '**/node_modules/**'],
    pool: 'forks',
    // The built package, loaded by Node itself (not transformed): the tests, their fixtures
    // and a user all run the same dist/, as one instance of each module.
    server: { deps: { external: [/\/dist\//] } },
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
})
