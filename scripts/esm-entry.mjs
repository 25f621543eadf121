// Writes dist/index.mjs: an ESM face over the one CJS build, so ESM and CJS users share
// a single instance of the native engine (no dual-package hazard).
import { createRequire } from 'node:module'
import { writeFileSync } from 'node:fs'

const require = createRequire(import.meta.url)
const names = Object.keys(require('../dist/index.js')).filter((n) => n !== 'default' && n !== '__esModule')
const lines = [
  "import cjs from './index.js'",
  ...names.map((n) => `export const ${n} = cjs.${n}`),
  'export default cjs',
  '',
]
writeFileSync(new URL('../dist/index.mjs', import.meta.url), lines.join('\n'))
writeFileSync(new URL('../dist/index.d.mts', import.meta.url), "export * from './index.js'\n")
console.log(`dist/index.mjs: ${names.length} named exports`)
