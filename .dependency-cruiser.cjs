// The layering of lib/ (docs/DESIGN.md, "Where things live"), checked in `npm test`
// (`npm run check:layers`): no cycles; internal/ imports only internal/; the core path
// (everything but the integrations and the CLI) never imports livekit/, ops/ or cli/.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'internal-imports-only-internal',
      comment: 'internal/ is the floor every stage stands on: it knows no stage.',
      severity: 'error',
      from: { path: '^lib/internal/' },
      to: { path: '^lib/', pathNot: '^lib/internal/' },
    },
    {
      name: 'core-not-integrations',
      comment: 'Importing capstan loads no integration: the core path imports none of them.',
      severity: 'error',
      // lib/index.ts: the deprecated root re-exports load their entry point lazily, on first
      // call (a test checks that importing capstan loads neither); they go in 0.2.
      from: { path: '^lib/', pathNot: ['^lib/(livekit|ops|cli|agents)/', '^lib/index\\.ts$'] },
      to: { path: '^lib/(livekit|ops|cli|agents)/' },
    },
    {
      name: 'stages-flow-forward',
      comment: 'A stage imports the stages before it, never after: source, process, encode, transport.',
      severity: 'error',
      from: { path: '^lib/(source|process)/' },
      to: { path: '^lib/(transport|livekit|ops|cli|agents)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // The napi-rs loader at the root is outside lib/; its types come from index.d.ts.
    exclude: { path: '^index\\.(js|d\\.ts)$' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
}
