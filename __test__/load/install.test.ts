// The published shape, end to end: pack the main package and npm/linux-x64-gnu, install
// them into an empty project as `npm install capstan` would (the binary arrives through
// capstan's optionalDependencies), offline, with no Rust toolchain on PATH and a fresh HOME
// and npm cache, then use the package from CJS, ESM, TypeScript and its CLI.
// In load/ because it runs npm and tsc for a while: alone, after the main suite.
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { ROOT } from '../spawn'

const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const PLATFORM = 'linux-x64-gnu'
const PLATFORM_PKG = `capstan-${PLATFORM}`
const BINARY = `capstan.${PLATFORM}.node`

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string }) | null
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

// npm's own CLI script, run with this node: the stripped PATH below may not reach npm.
function npmCli(): string {
  const candidates = [
    process.env.npm_execpath?.replace(/npx-cli\.js$/, 'npm-cli.js'),
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ]
  const found = candidates.find((c) => c && c.endsWith('npm-cli.js') && existsSync(c))
  if (!found) throw new Error(`npm-cli.js not found (tried ${candidates.join(', ')})`)
  return found
}

// PATH without any directory that holds cargo or rustc (~/.cargo/bin, a distro's /usr/bin).
const strippedPath = (process.env.PATH ?? '')
  .split(path.delimiter)
  .filter((d) => d && !['cargo', 'rustc'].some((t) => existsSync(path.join(d, t))))
  .join(path.delimiter)

interface Packed {
  filename: string
  files: { path: string }[]
}

describe('npm pack + npm install, the way a user gets capstan', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'capstan-install-'))
  const app = path.join(tmp, 'app')
  const home = path.join(tmp, 'home')
  // A new user's environment: nothing inherited from `npm test` (npm_config_local_prefix
  // would point npm at this repo), no NODE_PATH, no ~/.cargo, an empty npm cache.
  const base = (PATH: string): NodeJS.ProcessEnv => ({
    PATH,
    HOME: home,
    TMPDIR: tmp,
    LANG: 'C.UTF-8',
    npm_config_cache: path.join(tmp, 'npm-cache'),
    npm_config_update_notifier: 'false',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
  })
  const userEnv = base(strippedPath)
  // Packing happens on the developer's machine: their PATH and HOME, minus npm's run-script
  // variables.
  const devEnv: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'NODE_PATH'),
  )
  const npm = npmCli()
  let main: Packed
  let platform: Packed

  const pack = async (dir: string): Promise<Packed> => {
    const r = await run(process.execPath, [npm, 'pack', '--json', '--pack-destination', tmp], dir, devEnv, 300_000)
    expect(r.code, r.stderr).toBe(0)
    // Lifecycle scripts (prepack, or main's old prepare) may print before the JSON.
    const out = JSON.parse(r.stdout.slice(r.stdout.search(/^\[/m))) as Packed[]
    expect(out).toHaveLength(1)
    return out[0]
  }
  const node = (args: string[]) => run(process.execPath, args, app, userEnv, 60_000)

  beforeAll(async () => {
    // Packing does not build: `npm test` builds before vitest runs.
    expect(existsSync(path.join(ROOT, 'npm', PLATFORM, BINARY)), `npm/${PLATFORM}/${BINARY}: run npm run build`).toBe(true)
    mkdirSync(home)
    mkdirSync(app)
    main = await pack(ROOT)
    platform = await pack(path.join(ROOT, 'npm', PLATFORM))
    // The app depends on capstan only. The override stands in for the registry: it says
    // where capstan's own dependency edge on capstan-linux-x64-gnu is fetched from, so
    // the platform package is installed only if capstan declares it.
    writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({
        name: 'app',
        version: '1.0.0',
        private: true,
        dependencies: { capstan: `file:../${main.filename}` },
        overrides: { [PLATFORM_PKG]: `file:../${platform.filename}` },
      }),
    )
    const r = await run(process.execPath, [npm, 'install', '--offline'], app, userEnv, 180_000)
    expect(r.code, r.stdout + r.stderr).toBe(0)
  }, 300_000)

  afterAll(() => rmSync(tmp, { recursive: true, force: true }))

  it('installs with no Rust toolchain on PATH', () => {
    for (const dir of strippedPath.split(path.delimiter)) {
      expect(existsSync(path.join(dir, 'cargo')), dir).toBe(false)
      expect(existsSync(path.join(dir, 'rustc')), dir).toBe(false)
    }
  })

  it('main tarball: built JS, loader, types and CLI; no binary, no sources', () => {
    const files = main.files.map((f) => f.path)
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'index.js',
        'index.d.ts',
        'bin/capstan.js',
        'dist/index.js',
        'dist/index.mjs',
        'dist/index.d.ts',
        'dist/index.d.mts',
        'dist/cli/cli.js',
        'dist/livekit/index.js',
        'dist/livekit/index.mjs',
        'dist/livekit/index.d.ts',
        'dist/livekit/index.d.mts',
        'dist/ops/index.js',
        'dist/ops/index.mjs',
        'dist/ops/index.d.ts',
        'dist/ops/index.d.mts',
        'dist/agents/index.js',
        'dist/agents/index.mjs',
        'dist/agents/index.d.ts',
      ]),
    )
    expect(files.filter((f) => f.endsWith('.node'))).toEqual([])
    expect(files.filter((f) => /^(src|crates|lib|npm|scripts|__test__|benchmark|target)\//.test(f))).toEqual([])
  })

  it(`platform tarball: ${BINARY} at the version capstan pins`, () => {
    expect(platform.files.map((f) => f.path)).toContain(BINARY)
    const installed = JSON.parse(readFileSync(path.join(app, 'node_modules', PLATFORM_PKG, 'package.json'), 'utf8'))
    expect(installed).toMatchObject({ name: PLATFORM_PKG, version: PKG.version, os: ['linux'], cpu: ['x64'] })
  })

  it('installed package.json: optional dependency pinned to its own version, nothing that compiles on install', () => {
    const installed = JSON.parse(readFileSync(path.join(app, 'node_modules', 'capstan', 'package.json'), 'utf8'))
    expect(installed.optionalDependencies).toEqual({ [PLATFORM_PKG]: PKG.version })
    expect(installed.dependencies ?? {}).toEqual({})
    for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) expect(installed.scripts?.[s], s).toBeUndefined()
  })

  it("require('capstan') loads the platform package's binary and a capture is accepted", async () => {
    const r = await node([
      '-e',
      `const c = require('capstan')
      const s = new c.AudioSource({ sampleRate: 48000, channels: 1, consumer: 'pull' })
      const o = s.tryCaptureFrame(new c.AudioFrame(new Int16Array(480), 48000, 1))
      s.close()
      c.shutdown()
      console.log(JSON.stringify({ status: o.status, binaries: Object.keys(require.cache).filter((k) => k.endsWith('.node')) }))`,
    ])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout.trim())
    expect(out.status).toBe('accepted')
    expect(out.binaries).toEqual([path.join(app, 'node_modules', PLATFORM_PKG, BINARY)])
  })

  it("import('capstan') works from ESM and shares the CJS instance", async () => {
    const r = await node([
      '--input-type=module',
      '-e',
      `import { AudioSource, AudioFrame, shutdown } from 'capstan'
      import { createRequire } from 'node:module'
      const cjs = createRequire(process.cwd() + '/')('capstan')
      const s = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'pull' })
      const o = await s.captureFrame(new AudioFrame(new Int16Array(160), 16000, 1))
      await s.close()
      shutdown()
      console.log(JSON.stringify({ status: o.status, shared: cjs.AudioSource === AudioSource }))`,
    ])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout.trim())).toEqual({ status: 'accepted', shared: true })
  })

  it('subpath entry points capstan/livekit and capstan/prometheus: CJS and ESM, one engine instance with the root', async () => {
    const cjs = await node([
      '-e',
      `const lk = require('capstan/livekit')
      const ops = require('capstan/prometheus')
      const before = Object.keys(require.cache).filter((k) => /node_modules[\\/]capstan[\\/]dist[\\/](livekit|ops)[\\/]/.test(k)).length
      console.log(JSON.stringify({ lk: Object.keys(lk).sort(), ops: Object.keys(ops).sort(), before }))`,
    ])
    expect(cjs.stderr).toBe('')
    expect(JSON.parse(cjs.stdout.trim())).toMatchObject({ lk: ['LiveKitRemoteTrack', 'LiveKitRoom', 'LiveKitTrack', 'livekitTransport', 'publishToLiveKit'], ops: ['collectMetrics'] })
    // The native client is in the installed addon: a join to a port nothing listens on is a
    // typed refusal, settled at once, and the process exits by itself.
    const lk = await node([
      '--input-type=module',
      '-e',
      `import { LiveKitRoom } from 'capstan/livekit'
      const t0 = performance.now()
      const code = await LiveKitRoom.connect('ws://127.0.0.1:9', 'a.b.c', { connectTimeoutMs: 3000 }).then(() => 'joined', (e) => e.code)
      console.log(JSON.stringify({ code, fast: performance.now() - t0 < 3000 }))`,
    ])
    expect(lk.stderr).toBe('')
    expect(JSON.parse(lk.stdout.trim())).toEqual({ code: 'ERR_CONNECT', fast: true })
    const esm = await node([
      '--input-type=module',
      '-e',
      `import { publishToLiveKit, livekitTransport } from 'capstan/livekit'
      import { collectMetrics } from 'capstan/prometheus'
      import { createRequire } from 'node:module'
      const require = createRequire(process.cwd() + '/')
      const core = Object.keys(require.cache).filter((k) => k.endsWith('.node'))
      console.log(JSON.stringify({ fns: [typeof publishToLiveKit, typeof livekitTransport, typeof collectMetrics], same: require('capstan/livekit').publishToLiveKit === publishToLiveKit, core: core.length }))`,
    ])
    expect(esm.stderr).toBe('')
    expect(JSON.parse(esm.stdout.trim())).toEqual({ fns: ['function', 'function', 'function'], same: true, core: 1 })
    const root = await node(['-e', `require('capstan'); console.log(JSON.stringify(Object.keys(require.cache).filter((k) => /dist[\\/](livekit|ops)[\\/]/.test(k))))`])
    expect(JSON.parse(root.stdout.trim())).toEqual([])
  })

  it('TypeScript (strict, nodenext) compiles against the installed types, CJS and ESM', async () => {
    const use = `
      const source = new AudioSource({ sampleRate: 48000, channels: 1, queueMs: 200, overflow: 'wait', consumer: 'pull' })
      const status: 'accepted' | 'partial' | 'dropped' | 'timeout' | 'aborted' | 'cleared' | 'closed' =
        source.tryCaptureFrame(new AudioFrame(new Int16Array(480), 48000, 1)).status
      // Fails to compile (unused directive) if the types resolve to any.
      // @ts-expect-error sampleRate is a number
      new AudioSource({ sampleRate: '48000', channels: 1 })
      export const done: Promise<void> = source.close().then(() => { console.log(status); shutdown() })
    `
    // The subpath entry points resolve to their own types too.
    const sub = `import { publishToLiveKit, type LiveKitPublishOptions } from 'capstan/livekit'\nimport { collectMetrics } from 'capstan/prometheus'\nexport const lk: LiveKitPublishOptions = { trackName: 'a' }\nexport const fns = [publishToLiveKit, collectMetrics]\n`
    writeFileSync(path.join(app, 'esm.mts'), `import { AudioSource, AudioFrame, shutdown } from 'capstan'\n${sub}${use}`)
    writeFileSync(path.join(app, 'cjs.cts'), `import { AudioSource, AudioFrame, shutdown } from 'capstan'\n${sub}${use}`)
    writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          skipLibCheck: false, // check the shipped .d.ts files too
          // A Node service has @types/node; this repo's copy stands in for it (offline).
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['esm.mts', 'cjs.cts'],
      }),
    )
    const r = await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], app, userEnv, 120_000)
    expect(r.stdout + r.stderr).toBe('')
    expect(r.code).toBe(0)
  }, 150_000)

  it('the capstan bin runs the demo and exits 0', async () => {
    // The issue's own command: a short run fits its hang into the time it has.
    const r = await node([path.join(app, 'node_modules', '.bin', 'capstan'), 'demo', '--sources', '20', '--seconds', '2'])
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain('healthy at the end')
    expect(r.stdout).toContain('holds for every source')
    expect(r.code).toBe(0)
  }, 60_000)
})
