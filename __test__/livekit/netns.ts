// Helpers to run real LiveKit clients against a real livekit-server inside a private network
// namespace made for one run (not a test file itself). See __test__/livekit/README.md.
//
// Each call: `unshare -rn` (a new user + network namespace: works unprivileged), inside it lo
// plus a veth pair 10.231.0.1/24 <-> 10.231.0.2/24 (WebRTC wants a non-loopback interface),
// `livekit-server --dev --bind 127.0.0.1 --node-ip 127.0.0.1`, wait until it answers HTTP, run
// the client command(s), stop the server. The namespace has no route to anywhere else, so no test
// traffic can leave the machine. The work is done by fixtures/netns-run.sh (also usable from a
// shell); this module builds the server binary, spawns the runner in its own process group with
// a deadline, and collects outputs.
//
// If the server binary cannot be built or the server does not start, these functions THROW:
// a test using them fails, it never skips.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const LIVEKIT_DIR = __dirname
export const REPO_ROOT = path.resolve(__dirname, '..', '..')
export const RUNNER = path.join(__dirname, 'fixtures', 'netns-run.sh')
export const SERVER_SCRIPT = path.join(REPO_ROOT, 'scripts', 'livekit-server.sh')
/** The venv made by scripts/livekit-peers.sh; used for `.py` scripts when it exists. */
export const PEERS_VENV_PYTHON = path.join(REPO_ROOT, '.cache', 'livekit', 'venv', 'bin', 'python')
/** Addresses that may appear in the namespace (server log, ICE candidates). */
export const NETNS_ADDRESSES = ['127.0.0.1', '10.231.0.1', '10.231.0.2'] as const
export const DEV_KEY = 'devkey'
export const DEV_SECRET = 'secret'
/** Path of a file in __test__/livekit/fixtures/. */
export const fixture = (name: string): string => path.join(__dirname, 'fixtures', name)

export class LivekitNetnsError extends Error {}

let cachedBinary: string | undefined

/**
 * Path of the livekit-server binary: builds it with scripts/livekit-server.sh on first use
 * (minutes; cached in .cache/livekit/ afterwards). `LIVEKIT_SERVER_BIN` overrides. Throws if it
 * cannot be built.
 */
export function livekitServerBinary(): string {
  if (cachedBinary) return cachedBinary
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/local/go/bin` }
  const r = spawnSync('bash', [SERVER_SCRIPT], { env, encoding: 'utf8', timeout: 20 * 60_000, maxBuffer: 64 << 20 })
  const bin = (r.stdout ?? '').trim().split('\n').pop() ?? ''
  if (r.status !== 0 || !bin || !existsSync(bin)) {
    throw new LivekitNetnsError(
      `could not build livekit-server (scripts/livekit-server.sh exit ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${(r.stderr ?? '').slice(-4000)}`,
    )
  }
  cachedBinary = bin
  return bin
}

/** A client command: argv (no shell). */
export interface NetnsCommand {
  /** A label for messages (default: the basename of the script). */
  name?: string
  argv: string[]
  /** Extra environment for this command. */
  env?: Record<string, string>
}

export interface NetnsOptions {
  /** Deadline for the whole run (server start + clients); the process group is SIGKILLed then. Default 60 s. */
  timeoutMs?: number
  /** Extra environment for every client (they also get LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, LIVEKIT_NETNS_OUT). */
  env?: Record<string, string>
  cwd?: string
  /** Signal port (default 7880). Each run has its own namespace, so runs never collide. */
  port?: number
  /** Seconds to wait for the server to answer (default 30). */
  readyTimeoutS?: number
  /** Keep the temp folder (server.log, cmd-N.*) instead of removing it. Default false. */
  keep?: boolean
  /** Use this server binary instead of building/caching one (tests of the failure path use it). */
  serverBin?: string
  /** Two nodes routed through a redis-server instead of one (netns-run.sh --cluster). */
  cluster?: boolean
}

export interface NetnsProcResult {
  name: string
  /** Exit code; null when it did not finish (timeout). */
  code: number | null
  stdout: string
  stderr: string
}

export interface NetnsResult {
  /** The runner's exit code: 0 when every client exited 0; null on timeout. */
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  elapsedMs: number
  /** The single client's output (runInLivekitNetns) or the first client's (runManyInLivekitNetns). */
  stdout: string
  stderr: string
  /** Per client, in the order given. */
  procs: NetnsProcResult[]
  serverLog: string
  /** Node 2's log in a cluster run ('' otherwise). */
  serverLog2: string
  /** ms from starting livekit-server to its first HTTP 200, measured inside the namespace. */
  serverReadyMs: number | null
  /** livekit-server's pid (same pid namespace as the caller); gone when the call returns. */
  serverPid: number | null
  /** `ip -brief addr` inside the namespace. */
  netnsAddrs: string
  /** The runner's own stderr (setup errors, server start failures). */
  runnerStderr: string
  outDir: string
}

/** argv for a script by its extension: .py -> the peers venv python (or python3), .js/.mjs/.cjs -> this node. */
export function interpreterFor(script: string): string[] {
  if (script.endsWith('.py')) {
    const py = process.env.LIVEKIT_PEERS_PYTHON ?? (existsSync(PEERS_VENV_PYTHON) ? PEERS_VENV_PYTHON : 'python3')
    return [py, '-u', script]
  }
  if (/\.(mjs|cjs|js)$/.test(script)) return [process.execPath, script]
  return [script]
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

function commandLine(c: NetnsCommand): string {
  const env = Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${shq(v)}`)
  // `exec env K=V cmd`: `env K=V exec cmd` would look for a program named exec.
  return 'exec ' + (env.length ? 'env ' + env.join(' ') + ' ' : '') + c.argv.map(shq).join(' ')
}

const readOr = (p: string, dflt = ''): string => {
  try {
    return readFileSync(p, 'utf8')
  } catch {
    return dflt
  }
}

/**
 * Runs the commands concurrently inside one fresh namespace with one livekit-server up. Each
 * command's stdout/stderr are captured separately. Resolves when all have exited or the deadline
 * passed; throws (LivekitNetnsError) when the server cannot be built, the namespace cannot be
 * made, or the server does not start. Client failures are reported in the result, not thrown.
 */
export async function runManyInLivekitNetns(commands: NetnsCommand[], opts: NetnsOptions = {}): Promise<NetnsResult> {
  if (commands.length === 0) throw new LivekitNetnsError('no commands')
  const server = opts.serverBin ?? livekitServerBinary()
  const timeoutMs = opts.timeoutMs ?? 60_000
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'lk-netns-'))
  const args = [RUNNER, '--server', server, '--out', outDir]
  if (opts.port) args.push('--port', String(opts.port))
  if (opts.readyTimeoutS) args.push('--ready-timeout', String(opts.readyTimeoutS))
  if (opts.cluster) args.push('--cluster')
  for (const c of commands) args.push('--cmd', commandLine(c))
  const t0 = performance.now()
  const { code, signal, timedOut, stderr: runnerStderr } = await new Promise<{
    code: number | null
    signal: NodeJS.Signals | null
    timedOut: boolean
    stderr: string
  }>((resolve, reject) => {
    const child = spawn('bash', args, {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so the deadline kills server and clients too
    })
    let err = ''
    let timedOut = false
    child.stdout.on('data', (d) => (err += d))
    child.stderr.on('data', (d) => (err += d))
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
    }, timeoutMs)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new LivekitNetnsError(`could not spawn the netns runner: ${e.message}`))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      // Anything left in the group (a client that ignored SIGTERM) goes now.
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // none left
      }
      resolve({ code, signal, timedOut, stderr: err })
    })
  })
  const elapsedMs = performance.now() - t0
  const procs: NetnsProcResult[] = commands.map((c, i) => {
    const codeText = readOr(path.join(outDir, `cmd-${i}.code`)).trim()
    return {
      name: c.name ?? path.basename(c.argv.find((a) => /\.(mjs|cjs|js|py|sh)$/.test(a)) ?? c.argv[0]),
      code: codeText === '' ? null : Number(codeText),
      stdout: readOr(path.join(outDir, `cmd-${i}.out`)),
      stderr: readOr(path.join(outDir, `cmd-${i}.err`)),
    }
  })
  const readyText = readOr(path.join(outDir, 'server-ready-ms')).trim()
  const pidText = readOr(path.join(outDir, 'server.pid')).trim()
  const result: NetnsResult = {
    code,
    signal,
    timedOut,
    elapsedMs,
    stdout: procs[0].stdout,
    stderr: procs[0].stderr,
    procs,
    serverLog: readOr(path.join(outDir, 'server.log')),
    serverLog2: readOr(path.join(outDir, 'server2.log')),
    serverReadyMs: readyText === '' ? null : Number(readyText),
    serverPid: pidText === '' ? null : Number(pidText),
    netnsAddrs: readOr(path.join(outDir, 'netns-addr.txt')),
    runnerStderr,
    outDir,
  }
  if (!opts.keep) rmSync(outDir, { recursive: true, force: true })
  // Infrastructure failures throw: 90 namespace setup, 91 server did not start, 92 server died early.
  if (!timedOut && (code === 90 || code === 91)) {
    throw new LivekitNetnsError(`livekit netns runner failed (exit ${code}):\n${runnerStderr}\nserver log:\n${result.serverLog.slice(-4000)}`)
  }
  if (readyText === '') {
    throw new LivekitNetnsError(
      `livekit-server never became ready (exit ${code}${timedOut ? ', timed out' : ''}):\n${runnerStderr}\nserver log:\n${result.serverLog.slice(-4000)}`,
    )
  }
  return result
}

/**
 * Runs one script (`.mjs/.js/.cjs` with this node, `.py` with the peers venv) with `args`
 * inside a fresh namespace with livekit-server up. The script may spawn further clients itself:
 * its children share the namespace. See runManyInLivekitNetns for errors.
 */
export function runInLivekitNetns(script: string, args: string[] = [], opts: NetnsOptions = {}): Promise<NetnsResult> {
  return runManyInLivekitNetns([{ argv: [...interpreterFor(script), ...args] }], opts)
}

/** Every IPv4 address in `text` (dotted quads). */
export function ipv4Addresses(text: string): string[] {
  const found = new Set<string>()
  for (const m of text.matchAll(/(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])/g)) {
    if (m.slice(1, 5).every((o) => Number(o) <= 255)) found.add(m[0])
  }
  return [...found]
}

/** Addresses in `text` that are neither loopback 127.0.0.1 nor the namespace's 10.231.0.x. */
export function foreignAddresses(text: string): string[] {
  return ipv4Addresses(text).filter((a) => a !== '127.0.0.1' && !a.startsWith('10.231.0.') && a !== '0.0.0.0')
}

/**
 * A client's exit code, with one exception that is reported, not hidden: a glibc abort
 * (exit 134) inside `@livekit/rtc-node`'s own teardown, i.e. after the fixture printed its
 * result and capstan had shut down, and before the teardown finished (fixtures/lk-common.mjs
 * `finish`), counts as 0. The same abort in LiveKit's native stack without capstan is known
 * (livekit/agents#6056); one anywhere else still fails.
 */
export function clientCode(p: { name?: string; code: number | null; stdout: string; stderr: string }): number | null {
  if (p.code !== 134) return p.code
  const printed = p.stdout.split('\n').some((l) => l.startsWith('{'))
  const heap = !p.stderr.includes('TEARDOWN_OK') && /malloc|free\(\)|corrupted|double free/.test(p.stderr)
  // LiveKit's FFI (rtc-node, the Python SDK) runs a tokio runtime; capstan's addon has none. A
  // non-unwinding panic on its worker after the result is the peer's teardown (seen once in
  // the Python avatar at interpreter exit, a process that does not load capstan at all).
  const ffi = /thread 'tokio-rt-worker'[^\n]*panicked/.test(p.stderr) && /cannot unwind|non-unwinding panic/.test(p.stderr)
  if (!printed || !(heap || ffi)) return p.code
  console.warn(`${p.name ?? 'client'}: LiveKit's native client aborted in its teardown, after the result (counted as exit 0): ${p.stderr.trim().split('\n').pop()}`)
  return 0
}

/** The last line of `text` that parses as a JSON object. */
export function lastJsonLine(text: string): any {
  for (const l of text.trim().split('\n').reverse()) {
    if (!l.startsWith('{')) continue
    try {
      return JSON.parse(l)
    } catch {
      // not JSON
    }
  }
  throw new Error(`no JSON line in output:\n${text.slice(-4000)}`)
}
