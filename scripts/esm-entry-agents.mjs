// Writes dist/agents/index.mjs: the ESM face of `capstan/agents` over its CJS build (as
// scripts/esm-entry.mjs does for the root), so ESM and CJS users share one capstan engine.
// The names are listed, not read from the build: loading it loads @livekit/agents, an
// optional peer that need not be installed where capstan is built.
import { readFileSync, writeFileSync } from 'node:fs'

const NAMES = ['CapstanAudioOutput', 'CapstanAudioInput']
const built = readFileSync(new URL('../dist/agents/index.js', import.meta.url), 'utf8')
for (const n of NAMES) {
  if (!built.includes(`exports, "${n}"`) && !built.includes(`exports.${n} =`)) throw new Error(`dist/agents/index.js does not export ${n}`)
}
const lines = ["import cjs from './index.js'", ...NAMES.map((n) => `export const ${n} = cjs.${n}`), 'export default cjs', '']
writeFileSync(new URL('../dist/agents/index.mjs', import.meta.url), lines.join('\n'))
writeFileSync(new URL('../dist/agents/index.d.mts', import.meta.url), "export * from './index.js'\n")
console.log(`dist/agents/index.mjs: ${NAMES.length} named exports`)
