#!/usr/bin/env node
// @ts-check
// capstan benchmark harness: runs every scenario in separate child processes (one per
// library per N, sequentially, so one run cannot disturb another), prints markdown tables
// and writes the raw results to benchmark/results/<timestamp>.json (+ .md).
//
//   npm run bench                      # everything, defaults (several minutes)
//   npm run bench:smoke                # every scenario, tiny N, ~2 s each (< 60 s)
//   node benchmark/bench.mjs --help
//
// Requires a built dist/ (`npm run build`) and the devDependency @livekit/rtc-node@1.1.0.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { RESULT_PREFIX, num, parseArgs, sleep, systemBusyUs } from './common.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')

const USAGE = `usage: node benchmark/bench.mjs [options]

  --smoke                 every scenario for ~1-2 s with 20 sources (both libraries)
  --scenarios LIST        realtime,burst,try,stall (default: all)
  --libs LIST             capstan,livekit (default: both)
  --frame-ms LIST         realtime frame lengths in ms (default: 10,100)
  --n LIST                realtime N list for every library (overrides the defaults below)
  --n-capstan LIST        default: 100,1000,3000,10000 @10 ms; 100,1000,10000 @100 ms
  --n-livekit LIST        default: 100,200,400 @10 ms; 100,500,1000 @100 ms
  (also: capstan fed by one SourceGroup loop: 3000 and 10000 @10 ms, 10000 @100 ms; smoke 20 @10 ms)
  --seconds T             realtime run length, warm-up included (default 10)
  --warmup W              realtime warm-up excluded from measurement (default 2)
  --max-extra-warmup S    extend the warm-up until queues are steady, at most S s (default 10)
  --collapse-stop X       stop a realtime run early when its RTF is < X after >= 2 s (default 0.5; 0: never)
  --burst-s S             burst: seconds of audio (default 10)
  --burst-reps R          burst: repetitions per variant (default 5)
  --try-s S               tryCaptureFrame hot loop: seconds per variant (default 3)
  --stall-n N             stall: sources (default 3000)
  --stall-s S             stall: seconds (default 5)
  --quiet-wait S          before each run, wait up to S s for other processes to use < 0.25 cores (default 60; smoke 0)
  --disturbed-retries K   rerun a run (at most K times) when other processes used > 0.25 cores during it (default 2; smoke 0)
  --out FILE              results JSON path (default benchmark/results/<timestamp>.json; .md beside it)
`

const args = parseArgs(process.argv.slice(2))
if (args.help || args.h) {
  process.stdout.write(USAGE)
  process.exit(0)
}
const smoke = !!args.smoke

/** @param {string} name @param {number[]} dflt */
const list = (name, dflt) => {
  const v = args[name]
  if (typeof v !== 'string') return dflt
  return v.split(',').map((x) => {
    const n = Number(x)
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: bad number ${x}`)
    return n
  })
}
/** @param {string} name @param {string[]} dflt @param {string[]} allowed */
const words = (name, dflt, allowed) => {
  const v = args[name]
  const out = typeof v === 'string' ? v.split(',').map((x) => x.trim()) : dflt
  for (const w of out) if (!allowed.includes(w)) throw new Error(`--${name}: unknown ${w} (one of ${allowed.join(', ')})`)
  return out
}

const scenarios = words('scenarios', ['realtime', 'burst', 'try', 'stall'], ['realtime', 'burst', 'try', 'stall'])
const libs = words('libs', ['capstan', 'livekit'], ['capstan', 'livekit'])
const frameMsList = list('frame-ms', [10, 100])
const seconds = num(args, 'seconds', smoke ? 2 : 10)
const warmup = num(args, 'warmup', smoke ? 0.5 : 2)
const maxExtraWarmup = num(args, 'max-extra-warmup', smoke ? 1 : 10)
const collapseStop = num(args, 'collapse-stop', 0.5)
const burstS = num(args, 'burst-s', 10)
const burstReps = num(args, 'burst-reps', smoke ? 1 : 5)
const tryS = num(args, 'try-s', smoke ? 0.5 : 3)
const stallN = num(args, 'stall-n', smoke ? 20 : 3000)
const stallS = num(args, 'stall-s', smoke ? 1.5 : 5)
const quietWait = num(args, 'quiet-wait', smoke ? 0 : 60)
const disturbedRetries = num(args, 'disturbed-retries', smoke ? 0 : 2)

/** @type {Record<string, Record<number, number[]>>} */
const DEFAULT_N = {
  capstan: { 10: [100, 1000, 3000, 10000], 100: [100, 1000, 10000] },
  livekit: { 10: [100, 200, 400], 100: [100, 500, 1000] },
}
/** @param {string} lib @param {number} frameMs */
function nList(lib, frameMs) {
  if (smoke) return list(`n-${lib}`, list('n', [20]))
  return list(`n-${lib}`, list('n', DEFAULT_N[lib][frameMs] ?? [100, 1000]))
}

if (!existsSync(path.join(ROOT, 'dist', 'index.mjs')) && libs.includes('capstan')) {
  console.error('dist/index.mjs not found: run `npm run build` first')
  process.exit(2)
}

// ---- the plan ---------------------------------------------------------------------------------
/** @typedef {{ key: string, scenario: string, lib: string, script: string, argv: string[], timeoutMs: number, label: string }} Job */
/** @type {Job[]} */
const jobs = []
// The machine's floor (child-floor.mjs), first and last, so every table of this run can be
// read as multiples of it and a drift in the machine during the run shows.
const floorN = smoke ? 200 : 1000
/** @param {string} when @returns {Job} */
const floorJob = (when) => ({
  key: `floor/${when}`,
  scenario: 'floor',
  lib: 'floor',
  script: 'child-floor.mjs',
  argv: ['--n', `${floorN}`, '--seconds', smoke ? '2' : '6'],
  timeoutMs: 60_000,
  label: `floor (${floorN} plain JS loops, one copy and one shared 10 ms timer promise per frame), ${when}`,
})
jobs.push(floorJob('start'))
if (scenarios.includes('realtime')) {
  for (const frameMs of frameMsList) {
    const ns = [...new Set(libs.flatMap((l) => nList(l, frameMs)))].sort((a, b) => a - b)
    for (const n of ns) {
      for (const lib of libs) {
        if (!nList(lib, frameMs).includes(n)) continue
        jobs.push({
          key: `realtime/${frameMs}/${n}/${lib}`,
          scenario: 'realtime',
          lib,
          script: 'child-realtime.mjs',
          argv: ['--lib', lib, '--n', `${n}`, '--frame-ms', `${frameMs}`, '--seconds', `${seconds}`, '--warmup', `${warmup}`,
            '--max-extra-warmup', `${maxExtraWarmup}`, '--collapse-stop', `${collapseStop}`],
          timeoutMs: (seconds + maxExtraWarmup + 40) * 1000 + n * 5,
          label: `realtime ${lib} N=${n} ${frameMs} ms frames`,
        })
      }
    }
  }
}
if (scenarios.includes('realtime') && libs.includes('capstan')) {
  const groupRuns = smoke ? [[10, 20]] : [[10, 3000], [10, 10000], [100, 10000]]
  for (const [frameMs, n] of groupRuns.filter(([ms]) => frameMsList.includes(ms))) {
    jobs.push({
      key: `realtime/${frameMs}/${n}/capstan-group`,
      scenario: 'realtime',
      lib: 'capstan',
      script: 'child-realtime.mjs',
      argv: ['--lib', 'capstan', '--n', `${n}`, '--frame-ms', `${frameMs}`, '--seconds', `${seconds}`, '--warmup', `${warmup}`,
        '--max-extra-warmup', `${maxExtraWarmup}`, '--collapse-stop', `${collapseStop}`, '--group'],
      timeoutMs: (seconds + maxExtraWarmup + 40) * 1000 + n * 5,
      label: `realtime capstan SourceGroup N=${n} ${frameMs} ms frames`,
    })
  }
}
if (scenarios.includes('burst')) {
  const common = ['--audio-s', `${burstS}`, '--reps', `${burstReps}`]
  const burst = (/** @type {string} */ lib, /** @type {string} */ key, /** @type {string[]} */ extra, /** @type {string} */ label) =>
    jobs.push({ key: `burst/${key}`, scenario: 'burst', lib, script: 'child-burst.mjs', argv: ['--lib', lib, ...extra, ...common], timeoutMs: 180_000, label })
  if (libs.includes('capstan')) {
    burst('capstan', 'capstan-unpaced-200', ['--mode', 'unpaced', '--queue-ms', '200'], 'burst capstan unpaced queueMs 200')
    burst('capstan', 'capstan-unpaced-full', ['--mode', 'unpaced', '--queue-ms', 'full'], 'burst capstan unpaced queueMs = burst')
    burst('capstan', 'capstan-realtime-full', ['--mode', 'realtime'], 'burst capstan realtime queueMs = burst')
  }
  if (libs.includes('livekit')) burst('livekit', 'livekit', [], 'burst livekit queue = burst')
}
if (scenarios.includes('try') && libs.includes('capstan')) {
  jobs.push({ key: 'try', scenario: 'try', lib: 'capstan', script: 'child-try.mjs', argv: ['--seconds', `${tryS}`], timeoutMs: tryS * 3000 + 60_000, label: 'tryCaptureFrame hot loop' })
}
if (scenarios.includes('stall') && libs.includes('capstan')) {
  jobs.push({
    key: 'stall',
    scenario: 'stall',
    lib: 'capstan',
    script: 'child-stall.mjs',
    argv: ['--n', `${stallN}`, '--seconds', `${stallS}`],
    timeoutMs: stallS * 1000 + 60_000 + stallN * 5,
    label: `stall capstan N=${stallN}`,
  })
}

jobs.push(floorJob('end'))

/** CPU cores used by the rest of the machine over the next `ms` (this process is idle meanwhile). */
async function machineLoad(ms = 1000) {
  const a = systemBusyUs()
  const t = performance.now()
  await sleep(ms)
  const b = systemBusyUs()
  return a === null || b === null ? 0 : (b - a) / 1e6 / ((performance.now() - t) / 1000)
}

/** Waits (at most `quietWait` s) for the machine to be quiet. Returns the last load seen. */
async function waitQuiet() {
  if (quietWait <= 0) return null
  const end = performance.now() + quietWait * 1000
  let load = await machineLoad()
  let warned = false
  while (load > 0.25 && performance.now() < end) {
    if (!warned) process.stdout.write(`(machine busy: ${load.toFixed(2)} cores used by other processes, waiting up to ${quietWait} s) `)
    warned = true
    load = await machineLoad(2000)
  }
  return load
}

// ---- running ------------------------------------------------------------------------------------
/**
 * @param {Job} job
 * @returns {Promise<{ ok: true, result: any, ms: number } | { ok: false, error: string, ms: number }>}
 */
function runChild(job) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, [path.join(HERE, job.script), ...job.argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, job.timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const ms = performance.now() - t0
      const line = out.split('\n').find((l) => l.startsWith(RESULT_PREFIX))
      if (line && code === 0) {
        try {
          resolve({ ok: true, result: JSON.parse(line.slice(RESULT_PREFIX.length)), ms })
          return
        } catch {
          // fall through
        }
      }
      const why = timedOut ? `timed out after ${job.timeoutMs} ms` : `exit code ${code}${signal ? ` signal ${signal}` : ''}`
      resolve({ ok: false, error: `${why}; stderr: ${err.trim().split('\n').slice(-5).join(' | ').slice(0, 600)}`, ms })
    })
  })
}

const tBench0 = performance.now()
const startedAt = new Date()
/** @type {Record<string, any>} */
const results = {}
console.log(`capstan bench${smoke ? ' (smoke)' : ''}: ${jobs.length} runs, one child process each`)
/** CPU cores other processes used during a run's measurement (the worst of its parts). */
const otherLoad = (/** @type {any} */ res) =>
  Math.max(res.otherProcessesCores ?? 0, ...(Array.isArray(res.results) ? res.results.map((/** @type {any} */ x) => x.otherProcessesCores ?? 0) : [0]))

for (const job of jobs) {
  process.stdout.write(`- ${job.label} ... `)
  /** @type {any} */
  let best
  let attempts = 0
  for (let retry = 0; ; retry++) {
    const loadBefore = await waitQuiet()
    let r = await runChild(job)
    attempts++
    if (!r.ok) {
      // dist/ may be rebuilt under us (the library is being worked on): retry once.
      process.stdout.write(`failed (${r.error.slice(0, 200)}), retrying ... `)
      await sleep(3000)
      r = await runChild(job)
      attempts++
    }
    if (!r.ok) {
      best ??= { scenario: job.scenario, lib: job.lib, failed: true, error: r.error, argv: job.argv, runMs: r.ms }
      break
    }
    const res = { ...r.result, runMs: r.ms, loadBefore }
    if (!best || best.failed || otherLoad(res) < otherLoad(best)) best = res
    if (otherLoad(res) <= 0.25 || retry >= disturbedRetries) break
    process.stdout.write(`disturbed (other processes used ${otherLoad(res).toFixed(2)} cores), rerunning ... `)
  }
  best.attempts = attempts
  results[job.key] = best
  if (best.failed) console.log(`FAILED: ${best.error}`)
  else {
    const other = otherLoad(best)
    console.log(
      `done in ${(best.runMs / 1000).toFixed(1)} s${best.collapsed ? ' (collapsed)' : ''}${other > 0.1 ? ` (disturbed: other processes used ${other.toFixed(2)} cores)` : ''}`,
    )
  }
}
const totalS = (performance.now() - tBench0) / 1000
/** Distinct capstan builds measured (dist/ may be rebuilt while the bench runs). */
/** @param {any} r */
const buildIndex = (r) => builds.findIndex((b) => JSON.stringify(b) === JSON.stringify(r.capstanBuild))
const builds = [...new Set(Object.values(results).filter((r) => r.capstanBuild).map((r) => JSON.stringify(r.capstanBuild)))].map((b) => JSON.parse(b))

// ---- reporting -------------------------------------------------------------------------------------
/** @param {unknown} x @param {number} [d] */
function f(x, d = 2) {
  if (x === null || x === undefined || typeof x !== 'number' || !Number.isFinite(x)) return '—'
  if (Math.abs(x) >= 1e6) return x.toExponential(2)
  return x.toFixed(d)
}
/** @param {any} h @param {number} [d] */
const triple = (h, d = 2) => (h ? `${f(h.p50, d)} / ${f(h.p99, d)} / ${f(h.max, d)}` : '—')
/** @param {number} a @param {number} b */
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${f(a / b, 3)}` : '—')

const md = []
md.push(`## capstan benchmark${smoke ? ' (smoke)' : ''}`)
md.push('')
const gitRev = (() => {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' }).trim() !== ''
    return `${rev}${dirty ? ' (dirty)' : ''}`
  } catch {
    return 'unknown'
  }
})()
const lkVersion = (() => {
  try {
    return JSON.parse(readFileSync(path.join(ROOT, 'node_modules/@livekit/rtc-node/package.json'), 'utf8')).version
  } catch {
    return 'not installed'
  }
})()
const distBuilt = (() => {
  try {
    return statSync(path.join(ROOT, 'dist', 'index.js')).mtime.toISOString()
  } catch {
    return 'missing'
  }
})()
const meta = {
  startedAt: startedAt.toISOString(),
  totalSeconds: totalS,
  command: `node benchmark/bench.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.availableParallelism?.() ?? os.cpus().length,
  memGB: Math.round(os.totalmem() / 2 ** 30),
  git: gitRev,
  distBuiltAt: distBuilt,
  capstanBuildsMeasured: builds,
  livekitRtcNode: lkVersion,
  settings: { seconds, warmup, maxExtraWarmup, collapseStop, frameMsList, burstS, burstReps, tryS, stallN, stallS, quietWait, disturbedRetries },
}
const floors = ['start', 'end'].map((w) => results[`floor/${w}`]).filter((r) => r && !r.failed)
/** The floor of this run: the lower of its two measurements (the quieter machine). */
const floorUs = floors.length ? Math.min(...floors.map((r) => r.cpuUsPerFrame)) : NaN
/** @param {number} us */
const xFloor = (us) => (Number.isFinite(us) && Number.isFinite(floorUs) ? `${f(us / floorUs, 1)}x` : '—')
md.push(
  `${meta.startedAt} · node ${meta.node} · ${meta.platform} · ${meta.cores} cores (${meta.cpu}) · capstan git ${meta.git}, dist built ${meta.distBuiltAt} · @livekit/rtc-node ${meta.livekitRtcNode} · total ${totalS.toFixed(0)} s`,
)
md.push('')
md.push(
  `**This machine's floor**: ${floors.map((r) => `${f(r.cpuUsPerFrame, 2)} µs/frame`).join(' at the start, ')}${floors.length > 1 ? ' at the end' : ''} of CPU for ${floorN} plain JavaScript loops that each copy a 10 ms frame and await one shared 10 ms timer's promise (\`benchmark/child-floor.mjs\`). "× floor" columns divide by the lower figure; two machines of the same name can differ by 2x, so compare ratios, not microseconds.`,
)
md.push('')
md.push(`Command: \`${meta.command}\``)
if (builds.length > 1) {
  md.push('')
  md.push(
    `**Note: dist/ was rebuilt during this bench; ${builds.length} capstan builds were measured** (native binary mtimes: ${builds.map((b) => b.native).join(', ')}; each run's build is in the JSON as \`capstanBuild\`).`,
  )
}

const rt = Object.values(results).filter((r) => r.scenario === 'realtime')
if (rt.length) {
  md.push('')
  md.push(`### N real-time sources (48 kHz mono, \`while (!stop) await source.captureFrame(frame)\` per source, ${seconds} s run, ${warmup} s warm-up excluded)`)
  md.push('')
  md.push("capstan: `consumer: 'realtime', queueMs: 1000, overflow: 'wait', deadlineMs: 5000`. livekit: `new AudioSource(48000, 1, 1000)`, no room.")
  for (const frameMs of frameMsList) {
    const rows = Object.entries(results)
      .filter(([k]) => k.startsWith(`realtime/${frameMs}/`))
      .map(([, r]) => r)
    if (!rows.length) continue
    md.push('')
    md.push(`#### ${frameMs} ms frames`)
    md.push('')
    md.push('| N | library | RTF min | RTF avg | accepted RTF avg | underrun ticks | CPU µs/frame | × floor | JS-thread µs/frame | CPU cores | timer gap p99 / max ms (whole run) | stop timer late ms | event-loop delay p50 / p99 / max ms | capture latency p50 / p99 / max ms | non-accepted | CPU/frame ratio capstan/livekit | notes |')
    md.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|---:|---:|---|')
    for (const r of rows) {
      const n = r.n ?? Number(r.argv?.[3])
      if (r.failed) {
        md.push(`| ${n} | ${r.lib} | — | — | — | — | — | — | — | — | — | — | — | — | — | — | FAILED: ${String(r.error).replace(/\|/g, '/').slice(0, 160)} |`)
        continue
      }
      const other = results[`realtime/${frameMs}/${n}/${r.lib === 'capstan' ? 'livekit' : 'capstan'}`]
      const cap = r.lib === 'capstan' ? r : other
      const lk = r.lib === 'livekit' ? r : other
      const rat = r.lib === 'capstan' && lk && !lk.failed ? ratio(cap.cpuUsPerFrame, lk.cpuUsPerFrame) : ''
      const notes = []
      if (r.collapsed) notes.push(`**collapsed** (stopped after ${f(r.windowS, 1)} s of window)`)
      if (r.warmupUsedS > warmup + 0.4) notes.push(`warm-up extended to ${f(r.warmupUsedS, 1)} s`)
      if (!r.steadyAtWindowStart) notes.push(`not steady at window start (accepted rate ${f(r.probeRate)}x, queued ${f(r.queuedAtWindowStartS * 1000, 0)} ms)`)
      if (r.loopStalled) notes.push(`**event loop stalled** (longest timer gap ${f(r.gaps.max, 0)} ms, stop timer ${f(r.stopLateMs, 0)} ms late)`)
      if (r.startLoopMs > 20) notes.push(`the synchronous loop starting the producers took ${f(r.startLoopMs, 0)} ms`)
      if (r.lib === 'capstan' && r.healthReported && Object.keys(r.healthReported).length) {
        notes.push(`health reported: ${Object.entries(r.healthReported).map(([k, v]) => `${k} ${v}`).join(', ')} sources`)
      }
      if (r.lib === 'capstan' && Math.abs(r.queuedMsWindowEndAvg - r.queuedMsWindowStartAvg) > Math.max(50, 1.5 * r.frameMs)) {
        notes.push(`queue ${f(r.queuedMsWindowStartAvg, 0)} → ${f(r.queuedMsWindowEndAvg, 0)} ms over the window`)
      }
      if (builds.length > 1 && r.capstanBuild) notes.push(`build #${buildIndex(r) + 1}`)
      if (r.otherProcessesCores > 0.1) notes.push(`**disturbed**: other processes used ${f(r.otherProcessesCores)} cores`)
      if (r.errors) notes.push(`${r.errors} errors: ${String(r.firstError).slice(0, 80)}`)
      md.push(
        `| ${n} | ${r.lib}${r.grouped ? ' (one SourceGroup loop)' : ''} | ${f(r.rtfMin, 3)} | ${f(r.rtfAvg, 3)} | ${f(r.acceptedRtfAvg, 3)} | ${r.underruns ?? '—'} | ${f(r.cpuUsPerFrame, 1)} | ${xFloor(r.cpuUsPerFrame)} | ${f(r.mainThreadUsPerFrame, 1)} | ${f(r.cpuCores)} | ${f(r.gaps?.p99, 1)} / ${f(r.gaps?.max, 1)} | ${f(r.stopLateMs, 1)} | ${triple(r.eld, 1)} | ${triple(r.capture, 2)} | ${r.nonAccepted} | ${rat} | ${notes.join('; ')} |`,
      )
    }
  }
  // capstan / livekit where both ran
  /** @type {string[]} */
  const cmp = []
  for (const frameMs of frameMsList) {
    for (const [k, c] of Object.entries(results)) {
      if (!k.startsWith(`realtime/${frameMs}/`) || c.lib !== 'capstan' || c.failed) continue
      const l = results[`realtime/${frameMs}/${c.n}/livekit`]
      if (!l || l.failed) continue
      cmp.push(
        `| ${frameMs} | ${c.n} | ${f(c.rtfAvg, 3)} | ${f(l.rtfAvg, 3)} | ${ratio(c.rtfAvg, l.rtfAvg)} | ${f(c.cpuUsPerFrame, 1)} (${xFloor(c.cpuUsPerFrame)}) | ${f(l.cpuUsPerFrame, 1)} (${xFloor(l.cpuUsPerFrame)}) | ${ratio(c.cpuUsPerFrame, l.cpuUsPerFrame)} | ${f(c.eld.p99, 1)} | ${f(l.eld.p99, 1)} | ${ratio(c.eld.p99, l.eld.p99)} |`,
      )
    }
  }
  if (cmp.length) {
    md.push('')
    md.push('#### capstan / livekit at the same N')
    md.push('')
    md.push('| frame ms | N | RTF avg capstan | RTF avg livekit | ratio | CPU µs/frame capstan (× floor) | CPU µs/frame livekit (× floor) | ratio | ELD p99 ms capstan | ELD p99 ms livekit | ratio |')
    md.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    md.push(...cmp)
  }
  md.push('')
  md.push('- RTF (real-time factor per source, min and average over sources). capstan: `metrics().delivered` (samples delivered by the engine clock) over the window / 48000 / seconds, per source with its own timestamps. livekit has no delivered counter: frames accepted by `captureFrame` in the window × frame duration / window seconds; its queue is full in steady state, so it accepts exactly what it plays out.')
  md.push('- accepted RTF: the same accepted-frames measure for both libraries (for capstan a cross-check: delivered RTF can stay at 1.0 while a slow producer drains the 1 s queue; then accepted RTF < 1 and underruns appear).')
  md.push(`- The warm-up is extended (at most ${maxExtraWarmup} s) until the queues are steady: full (average queued ≥ queue length − one frame − 50 ms; capstan: native \`queuedMs\` of up to 200 sources; livekit: estimated as accepted audio − time since the first accepted frame, and its accepted rate ≤ 1.02x) or clearly not filling (accepted rate over max(500 ms, 20 frames) < 0.9x). A queue still filling during the window would inflate the accepted RTF.`)
  md.push('- A run is stopped early and marked collapsed when its accepted RTF is < 0.5 after ≥ 2 s of window (applies to both libraries); its numbers cover the shortened window.')
  md.push('- CPU µs/frame: `process.cpuUsage()` user+system (all threads, native ones included) over the window / frames captured in the window. JS-thread µs/frame: CPU of the main thread alone (/proc/self/task/<pid>/stat, 10 ms ticks); it includes the harness loop itself (two `performance.now()` and a histogram record per capture).')
  md.push('- Event-loop delay: `monitorEventLoopDelay({ resolution: 1 })`, reset at window start; Node records the whole sampling interval, so an idle loop reads ≈ 1 ms.')
  md.push('- Capture latency: from calling `captureFrame` to its promise resolving. With a full queue it is dominated, by design, by the wait for room (≈ one frame length).')
  md.push(`- disturbed: CPU used by other processes on the machine during the window (/proc/stat minus this process) above 0.1 cores; such numbers understate both libraries. Before each run the harness waits (at most ${quietWait} s) for the machine to be quiet, and reruns a run disturbed by > 0.25 cores (at most ${disturbedRetries} times), keeping the least disturbed.`)
  md.push('- timer gap: a `setInterval(…, 5)` in the same process records the time between its ticks over the whole run, start-up (queue fill) included; no producer is ever made to yield by the harness. stop timer late: how late the timers that end the window fired. A run whose longest gap or stop lateness exceeds 100 ms is marked **event loop stalled** and fails the target, whatever its RTF.')
  md.push('- queue at window start/end (capstan, native `queuedMs`, average over sources; shown when it moved by more than 1.5 frames): accepted RTF − RTF ≈ (queued at end − queued at start) / window. A frame counts as accepted when its promise resolves, so accepted RTF is exact to ± one frame per source per window (±1.25 % for 100 ms frames over 8 s).')
  md.push('- non-accepted: capstan outcomes whose status is not `accepted` (livekit: rejected promises).')
}

const bursts = Object.values(results).filter((r) => r.scenario === 'burst')
if (bursts.length) {
  md.push('')
  md.push(`### Burst: one source, ${burstS} s of audio (10 ms frames, ${f(burstS * 0.096, 2)} MB) pushed with \`await captureFrame\` as fast as allowed, median of ${burstReps}`)
  md.push('')
  md.push('| library | consumer | queueMs | wall until all accepted ms (median / best) | MB/s accepted | wall until played out ms | MB/s played out | x real time | CPU µs/frame | longest call ms | non-accepted | other processes (cores) |')
  md.push('|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of bursts) {
    if (r.failed) {
      md.push(`| ${r.lib} | ${r.argv.join(' ')} | — | FAILED: ${String(r.error).replace(/\|/g, '/').slice(0, 160)} | | | | | | | | |`)
      continue
    }
    md.push(
      `| ${r.lib} | ${r.lib === 'livekit' ? '(native queue)' : r.mode} | ${r.queueMs} | ${f(r.acceptedMsMedian, 1)} / ${f(r.acceptedMsBest, 1)} | ${f(r.acceptedMBpsMedian, 1)} | ${f(r.playoutMsMedian, 1)} | ${f(r.playoutMBpsMedian, 1)} | ${f(r.realtimeX, 0)} | ${f(r.cpuUsPerFrame, 1)} | ${f(r.maxCallMs, 2)} | ${r.nonAccepted} | ${f(r.otherProcessesCores)} |`,
    )
  }
  md.push('')
  md.push('- x real time: audio length / wall time (until played out for capstan unpaced, until all accepted otherwise). Played out = `waitForPlayout()` resolved, checked against `metrics().delivered`.')
}

const tr = results.try
if (tr) {
  md.push('')
  md.push(`### tryCaptureFrame hot loop (capstan, 10 ms frames, overflow 'drop-oldest', ${tryS} s per row)`)
  md.push('')
  if (tr.failed) md.push(`FAILED: ${tr.error}`)
  else {
    md.push('| call | calls/s | ns/call (wall) | CPU ns/call | JS-thread ns/call | outcomes | invariant | other processes (cores) |')
    md.push('|---|---:|---:|---:|---:|---|---|---:|')
    for (const r of tr.results) {
      md.push(`| \`${r.name}\` | ${f(r.callsPerSec, 0)} | ${f(r.nsPerCall, 0)} | ${f(r.cpuNsPerCall, 0)} | ${f(r.mainThreadNsPerCall, 0)} | ${Object.entries(r.statuses).map(([k, v]) => `${k} ${v}`).join(', ')} | ${r.invariant ? 'holds' : '**broken**'} | ${f(r.otherProcessesCores)} |`)
    }
  }
}

const st = results.stall
if (st) {
  md.push('')
  md.push(`### Stall: ${stallN} capstan sources, consumer 'pull', nobody reading, tryCaptureFrame at real-time pace from one setInterval, stallAfterMs 250, ${stallS} s`)
  md.push('')
  if (st.failed) md.push(`FAILED: ${st.error}`)
  else {
    md.push('| N | overflow | pushes (expected) | JS µs/push | tick ms p50 / p99 / max | events received | events/s | all lagging at ms | all stalled at ms | health at end | event-loop delay p50 / p99 / max ms | CPU cores | JS-thread cores | other processes (cores) |')
    md.push('|---:|---|---|---:|---|---|---:|---:|---:|---|---|---:|---:|---:|')
    md.push(
      `| ${st.n} | ${st.overflow} | ${st.pushes} (${st.expectedPushes}) | ${f(st.jsUsPerPush, 2)} | ${triple(st.tickMs, 1)} | ${Object.entries(st.events).map(([k, v]) => `${k} ${v}`).join(', ')} | ${f(st.eventsPerSec, 0)} | ${f(st.allLaggingAtMs, 0)} | ${f(st.allStalledAtMs, 0)} | ${Object.entries(st.healthAtEnd).map(([k, v]) => `${k} ${v}`).join(', ')} | ${triple(st.eld, 1)} | ${f(st.cpuCores)} | ${f(st.mainThreadCores)} | ${f(st.otherProcessesCores)} |`,
    )
  }
}

// ---- targets ------------------------------------------------------------------------------------
/** @type {string[]} */
const targets = []
if (rt.length && !smoke) {
  /** @param {number} frameMs @param {number} wantN @param {boolean} [grouped] one SourceGroup loop */
  const check = (frameMs, wantN, grouped = false) => {
    const runs = rt.filter((r) => r.lib === 'capstan' && r.frameMs === frameMs && !r.failed && !!r.grouped === grouped).sort((a, b) => a.n - b.n)
    if (!runs.length) return
    const pass = (/** @type {any} */ r) =>
      !r.collapsed && r.rtfMin >= 0.99 && r.acceptedRtfAvg >= 0.99 && r.gaps.p99 <= 20 && r.gaps.max <= 100 && !r.loopStalled && r.nonAccepted === 0
    const ok = runs.filter(pass).map((r) => r.n)
    const best = ok.length ? Math.max(...ok) : 0
    const detail = runs.map((r) => `N=${r.n}: RTF min ${f(r.rtfMin, 3)}, accepted ${f(r.acceptedRtfAvg, 3)}, timer gap p99 ${f(r.gaps.p99, 1)} / max ${f(r.gaps.max, 1)} ms${pass(r) ? ' ✓' : ' ✗'}`).join('; ')
    targets.push(`- ≥ ${wantN} sources @${frameMs} ms${grouped ? ' through one SourceGroup loop' : ', plain loops,'} at ≥ 0.99x with timer-gap p99 ≤ 20 ms and max ≤ 100 ms: ${best >= wantN ? '**met**' : '**not met**'} (largest passing N measured: ${best || 'none'}). ${detail}`)
  }
  check(10, 3000)
  check(100, 10000)
  check(10, 10000, true)
  check(100, 10000, true)
}
if (tr && !tr.failed) {
  const t = tr.results[0]
  targets.push(`- ≤ 2 µs JS time per capture: \`tryCaptureFrame\` ${f(t.nsPerCall / 1000, 3)} µs/call (JS thread ${f((t.mainThreadNsPerCall ?? NaN) / 1000, 3)} µs) ${t.nsPerCall <= 2000 ? '**met**' : '**not met**'}; \`await captureFrame\` (never waits) ${f(tr.results[2].nsPerCall / 1000, 3)} µs/call.`)
}
if (targets.length) {
  md.push('')
  md.push('### Targets')
  md.push('')
  md.push(...targets)
}

const mdText = md.join('\n') + '\n'
console.log('')
console.log(mdText)

const stamp = startedAt.toISOString().replace(/[:.]/g, '-')
const outFile = typeof args.out === 'string' ? path.resolve(args.out) : path.join(HERE, 'results', `${smoke ? 'smoke-' : ''}${stamp}.json`)
mkdirSync(path.dirname(outFile), { recursive: true })
writeFileSync(outFile, JSON.stringify({ meta, results }, null, 2) + '\n')
writeFileSync(outFile.replace(/\.json$/, '') + '.md', mdText)
console.log(`results: ${path.relative(process.cwd(), outFile)} (+ .md)`)
const failed = Object.values(results).filter((r) => r.failed).length
if (failed) {
  console.log(`${failed} run(s) failed`)
  process.exit(1)
}
