// @ts-check
// Shared helpers for the capstan benchmark harness (plain ESM + JSDoc types, so Node 20
// runs it as is: no build step, nothing beyond the project's devDependencies).
import { execFileSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'

/** Marker of the one result line a child process prints on stdout. */
export const RESULT_PREFIX = 'BENCH_RESULT '

export const SAMPLE_RATE = 48000

/** @type {{ dist: string | null, native: string | null } | null} */
let loadedBuild = null

/** Prints the child's result (one JSON line) for the orchestrator. @param {object} result */
export function emit(result) {
  process.stdout.write(RESULT_PREFIX + JSON.stringify({ ...result, capstanBuild: loadedBuild }) + '\n')
}

/**
 * Minimal `--flag value` / `--flag` parser.
 * @param {string[]} argv
 * @returns {Record<string, string | true>}
 */
export function parseArgs(argv) {
  /** @type {Record<string, string | true>} */
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`)
    const eq = a.indexOf('=')
    if (eq > 0) {
      out[a.slice(2, eq)] = a.slice(eq + 1)
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      out[a.slice(2)] = argv[++i]
    } else {
      out[a.slice(2)] = true
    }
  }
  return out
}

/**
 * @param {Record<string, string | true>} args
 * @param {string} name
 * @param {number} dflt
 */
export function num(args, name, dflt) {
  const v = args[name]
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} needs a non-negative number, got ${v}`)
  return n
}

/**
 * @param {Record<string, string | true>} args
 * @param {string} name
 * @param {string} dflt
 */
export function str(args, name, dflt) {
  const v = args[name]
  return typeof v === 'string' ? v : dflt
}

/** A 440 Hz tone at -10 dBFS, `frameMs` long, mono 48 kHz. @param {number} frameMs */
export function toneFrame(frameMs) {
  const n = (SAMPLE_RATE * frameMs) / 1000
  const a = new Int16Array(n)
  for (let i = 0; i < n; i++) a[i] = Math.round(Math.sin((2 * Math.PI * 440 * i) / SAMPLE_RATE) * 10362)
  return a
}

export const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms))
export const tick = () => new Promise((r) => setImmediate(r))

/**
 * A log-linear histogram (HDR style, 32 sub-buckets per power of two, ~3 % precision) of
 * durations in milliseconds, recorded in units of 0.1 µs. Cheap enough to call on every
 * capture (no allocation, a clz32 and an array increment).
 */
export class Hist {
  constructor() {
    this.counts = new Float64Array(64 + 25 * 32)
    this.n = 0
    this.sum = 0
    this.max = 0
  }

  /** @param {number} ms */
  record(ms) {
    let v = Math.round(ms * 1e4)
    if (v < 0) v = 0
    else if (v > 0x7fffffff) v = 0x7fffffff
    let idx
    if (v < 64) idx = v
    else {
      const shift = 26 - Math.clz32(v) // = log2(v) - 5
      idx = 64 + (shift - 1) * 32 + ((v >>> shift) - 32)
    }
    this.counts[idx]++
    this.n++
    this.sum += ms
    if (ms > this.max) this.max = ms
  }

  reset() {
    this.counts.fill(0)
    this.n = 0
    this.sum = 0
    this.max = 0
  }

  /** @param {number} p percentile 0..100 @returns {number} ms (bucket midpoint, capped at max) */
  percentile(p) {
    if (this.n === 0) return NaN
    const target = Math.max(1, Math.ceil((p / 100) * this.n))
    let acc = 0
    for (let i = 0; i < this.counts.length; i++) {
      acc += this.counts[i]
      if (acc >= target) {
        let lo, width
        if (i < 64) {
          lo = i
          width = 1
        } else {
          const shift = ((i - 64) >> 5) + 1
          lo = (32 + ((i - 64) & 31)) * 2 ** shift
          width = 2 ** shift
        }
        return Math.min((lo + width / 2) / 1e4, this.max)
      }
    }
    return this.max
  }

  /** @returns {{ p50: number, p99: number, max: number, mean: number, count: number }} in ms */
  summary() {
    return {
      p50: this.percentile(50),
      p99: this.percentile(99),
      max: this.n ? this.max : NaN,
      mean: this.n ? this.sum / this.n : NaN,
      count: this.n,
    }
  }
}

/**
 * Event-loop delay monitor (perf_hooks, 1 ms resolution). Note that Node records the whole
 * interval between two samples, so an idle loop reads ~1 ms, not 0.
 */
export function eventLoopMonitor() {
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  return {
    reset: () => h.reset(),
    /** @returns {{ p50: number, p99: number, max: number, mean: number, count: number }} in ms */
    summary() {
      const ms = (/** @type {number} */ ns) => ns / 1e6
      return {
        p50: ms(h.percentile(50)),
        p99: ms(h.percentile(99)),
        max: ms(h.max),
        mean: ms(h.mean),
        count: h.count,
      }
    },
    stop: () => h.disable(),
  }
}

let clkTck = 0
function clockTicks() {
  if (clkTck) return clkTck
  try {
    clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    clkTck = 100
  }
  return clkTck
}

/**
 * CPU time (µs) of the main JavaScript thread only, from /proc (Linux; null elsewhere).
 * Resolution is one clock tick (10 ms), fine over windows of seconds.
 * @returns {number | null}
 */
export function mainThreadCpuUs() {
  try {
    const s = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    // f[0] is field 3 (state); utime is field 14, stime field 15.
    return ((Number(f[11]) + Number(f[12])) * 1e6) / clockTicks()
  } catch {
    return null
  }
}
clockTicks()

/** Process CPU (user + system, all threads) in µs. */
export function processCpuUs() {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** Loads the library under test. @param {'capstan' | 'livekit'} lib */
export async function loadLib(lib) {
  if (lib === 'capstan') {
    loadedBuild = capstanBuild()
    return await import('../dist/index.mjs')
  }
  return await import('@livekit/rtc-node')
}

/** @param {number[]} xs */
export function minAvg(xs) {
  if (xs.length === 0) return { min: NaN, avg: NaN }
  let min = Infinity
  let sum = 0
  for (const x of xs) {
    if (x < min) min = x
    sum += x
  }
  return { min, avg: sum / xs.length }
}

/** Runs `fn(i)` for i in [0, n) in slices, yielding to the event loop between slices. */
export async function chunked(/** @type {number} */ n, /** @type {(i: number) => void} */ fn, slice = 500) {
  for (let i = 0; i < n; i++) {
    fn(i)
    if ((i + 1) % slice === 0) await tick()
  }
}

export const rssMb = () => Math.round(process.memoryUsage().rss / 1048576)

/**
 * Busy CPU time of the whole machine in µs (all processes, /proc/stat; null elsewhere).
 * Subtracting this process's CPU gives the load other processes put on the machine during
 * a measurement (a disturbed run is flagged).
 * @returns {number | null}
 */
export function systemBusyUs() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
    const v = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal ...
    const busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] || 0)
    return (busy * 1e6) / clockTicks()
  } catch {
    return null
  }
}

/**
 * When the capstan build under test was made (mtime of dist/index.js and of the native
 * binary the loader picks), read when the library is loaded: dist/ may be rebuilt while a
 * long benchmark runs, and each run records which build it measured.
 */
export function capstanBuild() {
  const at = (/** @type {string} */ rel) => {
    try {
      return statSync(new URL(rel, import.meta.url)).mtime.toISOString()
    } catch {
      return null
    }
  }
  return { dist: at('../dist/index.js'), native: at(`../capstan.${process.platform}-${process.arch}-gnu.node`) }
}
