// Writes an ESM face over each CJS entry point (dist/<entry>.mjs + .d.mts), so ESM and CJS
// users share a single instance of the native engine (no dual-package hazard).
import { createRequire } from 'node:module'
import { writeFileSync } from 'node:fs'

const require = createRequire(import.meta.url)
/** The package's entry points (package.json `exports`), by their CJS build. */
const ENTRIES = ['index', 'livekit/index', 'ops/index']
for (const entry of ENTRIES) {
  const names = Object.keys(require(`../dist/${entry}.js`)).filter((n) => n !== 'default' && n !== '__esModule')
  const base = entry.split('/').pop()
  const lines = [`import cjs from './${base}.js'`, ...names.map((n) => `export const ${n} = cjs.${n}`), 'export default cjs', '']
  writeFileSync(new URL(`../dist/${entry}.mjs`, import.meta.url), lines.join('\n'))
  writeFileSync(new URL(`../dist/${entry}.d.mts`, import.meta.url), `export * from './${base}.js'\n`)
  console.log(`dist/${entry}.mjs: ${names.length} named exports`)
}
