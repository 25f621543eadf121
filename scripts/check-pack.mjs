// prepack guard for the main package: it must ship a built dist/ (pack does not build) and
// pin one optional dependency per npm/<platform>/ package at its own version, which is how
// a user's `npm install capstan` gets the prebuilt binary without a Rust toolchain.
import { existsSync, readdirSync, readFileSync } from 'node:fs'

const fail = (msg) => {
  console.error(`npm pack: ${msg}`)
  process.exit(1)
}
const pkg = JSON.parse(readFileSync('package.json', 'utf8'))
for (const f of ['dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/cli/cli.js', 'dist/livekit/index.mjs', 'dist/ops/index.mjs', 'dist/agents/index.mjs', 'index.js']) {
  if (!existsSync(f)) fail(`${f} is missing: run \`npm run build\` first`)
}
const optional = pkg.optionalDependencies ?? {}
const platforms = readdirSync('npm').filter((d) => existsSync(`npm/${d}/package.json`))
for (const dir of platforms) {
  const p = JSON.parse(readFileSync(`npm/${dir}/package.json`, 'utf8'))
  if (p.version !== pkg.version) fail(`npm/${dir} is ${p.version}, ${pkg.name} is ${pkg.version}`)
  if (optional[p.name] !== pkg.version) {
    fail(`optionalDependencies["${p.name}"] must be "${pkg.version}" (is ${JSON.stringify(optional[p.name])})`)
  }
}
const extra = Object.keys(optional).filter((n) => !platforms.some((d) => n === `${pkg.name}-${d}`))
if (extra.length) fail(`optionalDependencies without an npm/<platform>/ package: ${extra.join(', ')}`)
