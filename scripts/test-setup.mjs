#!/usr/bin/env node
// What the test suites need beyond `npm install`, installed or built here so that
// `npm install && npm test` passes on a fresh machine with nothing done by hand:
//
//   decoders        opusdec/opusinfo, ffmpeg/ffprobe, mpg123 check the encoders' files
//                   (Debian packages opus-tools, ffmpeg, mpg123; apt-get as root or sudo),
//                   and redis-server for the two-node LiveKit cluster test
//   livekit-server  built from the Go module proxy by scripts/livekit-server.sh
//   interop peers   @livekit/agents (npm) and livekit-agents (PyPI, a venv) by
//                   scripts/livekit-peers.sh
//
// Each step prints one line; what is already there is kept (the server binary and the peers
// are cached under .cache/, the peers by a stamp of their manifests). A step that cannot be
// done here ends with one clear line naming what to install, and exit code 1.
//
//   node scripts/test-setup.mjs [decoders|livekit|peers ...]     (default: all three)
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const CACHE = join(ROOT, '.cache')
const say = (m) => console.error(`test setup: ${m}`)

class SetupError extends Error {}

/** The absolute path of `cmd` on PATH, or null. */
function which(cmd, path = process.env.PATH ?? '') {
  for (const d of path.split(delimiter)) {
    if (d && existsSync(join(d, cmd))) return join(d, cmd)
  }
  return null
}

/** Runs a command with its output kept for the error message; throws SetupError on failure. */
function run(what, cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts })
  if (r.error) throw new SetupError(`${what}: ${r.error.message}`)
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-15).join('\n')
    throw new SetupError(`${what} failed (exit ${r.status})${tail ? `:\n${tail}` : ''}`)
  }
  return r
}

const DECODERS = [
  // [command, Debian package]
  ['opusdec', 'opus-tools'],
  ['opusinfo', 'opus-tools'],
  ['ffmpeg', 'ffmpeg'],
  ['ffprobe', 'ffmpeg'],
  ['mpg123', 'mpg123'],
  // Not a decoder: the Redis the two-node LiveKit cluster test routes through.
  ['redis-server', 'redis-server'],
]

function decoders() {
  const missing = DECODERS.filter(([c]) => !which(c))
  if (missing.length === 0) {
    say(`decoders: ${DECODERS.map(([c]) => c).join(', ')} found`)
    return
  }
  const pkgs = [...new Set(missing.map(([, p]) => p))]
  const names = missing.map(([c]) => c).join(', ')
  const root = process.getuid?.() === 0
  const sudo = !root && which('sudo') && spawnSync('sudo', ['-n', 'true']).status === 0
  if (!which('apt-get') || (!root && !sudo)) {
    throw new SetupError(
      `decoders: ${names} not on PATH, and installing them needs root: install the packages ${pkgs.join(' ')} ` +
        `(Debian/Ubuntu: sudo apt-get install ${pkgs.join(' ')}), then run the tests again`,
    )
  }
  // As root apt-get itself; otherwise through a sudo that needs no password.
  const apt = (args) => (root ? ['apt-get', args] : ['sudo', ['-n', 'apt-get', ...args]])
  say(`decoders: ${names} missing, installing ${pkgs.join(' ')} with apt-get (a minute or two, once)`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const t0 = Date.now()
  run('apt-get update', ...apt(['update', '-qq']), { env })
  run(`apt-get install ${pkgs.join(' ')}`, ...apt(['install', '-y', '-qq', '--no-install-recommends', ...pkgs]), { env })
  const still = DECODERS.filter(([c]) => !which(c)).map(([c]) => c)
  if (still.length) throw new SetupError(`decoders: installed ${pkgs.join(' ')} but ${still.join(', ')} still not on PATH`)
  say(`decoders: installed in ${Math.round((Date.now() - t0) / 1000)} s`)
}

function livekit() {
  const path = `${process.env.PATH ?? ''}${delimiter}/usr/local/go/bin`
  const bin = join(CACHE, 'livekit', 'livekit-server-v1.13.5')
  if (!process.env.LIVEKIT_SERVER_BIN && !existsSync(bin) && !which('go', path)) {
    throw new SetupError('livekit-server: needs Go (>= 1.24, https://go.dev/dl or the golang package) to build from the Go module proxy; none on PATH or in /usr/local/go/bin')
  }
  const cached = existsSync(bin)
  if (!cached) say('livekit-server: building v1.13.5 from the Go module proxy into .cache/livekit (a few minutes, once)')
  const t0 = Date.now()
  const r = run('livekit-server build (scripts/livekit-server.sh)', 'bash', [join(ROOT, 'scripts/livekit-server.sh')], {
    env: { ...process.env, PATH: path },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const out = r.stdout.trim().split('\n').pop()
  say(cached ? `livekit-server: ${out} (cached)` : `livekit-server: built ${out} in ${Math.round((Date.now() - t0) / 1000)} s`)
}

/** A hash of what the peers are installed from: a change reinstalls them. */
function peersStamp() {
  const h = createHash('sha256')
  for (const f of ['agents-js/package.json', 'agents-js/package-lock.json', 'agents-py/requirements.txt']) {
    const p = join(ROOT, '__test__/livekit/peers', f)
    h.update(f).update(existsSync(p) ? readFileSync(p) : '')
  }
  return h.digest('hex')
}

function peers() {
  const stampFile = join(CACHE, 'livekit', 'peers.stamp')
  const want = peersStamp()
  const installed = [join(ROOT, '__test__/livekit/peers/agents-js/node_modules/@livekit/agents'), join(CACHE, 'livekit/venv/bin/python')]
  if (installed.every((p) => existsSync(p)) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === want) {
    say('interop peers: @livekit/agents (npm) and livekit-agents (venv) installed (cached)')
    return
  }
  const py = process.env.LIVEKIT_PEERS_PYTHON_BIN ?? 'python3'
  if (!which(py)) throw new SetupError(`interop peers: livekit-agents needs Python >= 3.10 (${py} not on PATH; set LIVEKIT_PEERS_PYTHON_BIN)`)
  const v = run(`${py} --version`, py, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])']).stdout.trim()
  const [maj, min] = v.split('.').map(Number)
  if (maj < 3 || (maj === 3 && min < 10)) throw new SetupError(`interop peers: livekit-agents needs Python >= 3.10, ${py} is ${v} (set LIVEKIT_PEERS_PYTHON_BIN)`)
  const venvOk = spawnSync(py, ['-c', 'import venv, ensurepip'], { stdio: 'ignore' }).status === 0
  if (!venvOk) throw new SetupError(`interop peers: ${py} has no venv/ensurepip module (Debian: apt-get install python3-venv)`)
  say('interop peers: installing @livekit/agents (npm) and livekit-agents (PyPI, .cache/livekit/venv) (a minute or two, once)')
  const t0 = Date.now()
  run('interop peers (scripts/livekit-peers.sh)', 'bash', [join(ROOT, 'scripts/livekit-peers.sh')], { stdio: ['ignore', 'pipe', 'pipe'] })
  mkdirSync(dirname(stampFile), { recursive: true })
  writeFileSync(stampFile, `${want}\n`)
  say(`interop peers: installed and checked in ${Math.round((Date.now() - t0) / 1000)} s`)
}

const STEPS = { decoders, livekit, peers }
const asked = process.argv.slice(2)
for (const a of asked) {
  if (!(a in STEPS)) {
    console.error(`test setup: unknown step ${a} (steps: ${Object.keys(STEPS).join(', ')})`)
    process.exit(2)
  }
}
try {
  for (const name of asked.length ? asked : Object.keys(STEPS)) STEPS[name]()
} catch (e) {
  if (!(e instanceof SetupError)) throw e
  console.error(`test setup: ${e.message}`)
  process.exit(1)
}
