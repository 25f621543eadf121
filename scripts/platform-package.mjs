// Copies each built binary (capstan.<platform>.node) into its npm/<platform>/ package,
// the napi-rs optional-dependency layout the generated loader falls back to.
import { copyFileSync, existsSync, readdirSync } from 'node:fs'

for (const f of readdirSync('.')) {
  const m = /^capstan\.(.+)\.node$/.exec(f)
  if (!m) continue
  const dir = `npm/${m[1]}`
  if (!existsSync(dir)) throw new Error(`${f}: no platform package ${dir}/ (run napi create-npm-dirs)`)
  copyFileSync(f, `${dir}/${f}`)
  console.log(`${f} -> ${dir}/`)
}
