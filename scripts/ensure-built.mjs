// Builds the addon (npm run build) when dist/ or the native binary is missing. There is no
// `prepare` script (it would compile on every user's machine), so a fresh checkout's
// `npm install && npm run demo` builds here instead.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'

const built = existsSync('dist/index.js') && readdirSync('.').some((f) => /^capstan\..+\.node$/.test(f))
if (!built) {
  console.error('capstan: dist/ or the native binary is missing, running `npm run build` first')
  const npm = process.env.npm_execpath
  const r = npm && npm.endsWith('.js')
    ? spawnSync(process.execPath, [npm, 'run', 'build'], { stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build'], { stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
