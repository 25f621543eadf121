#!/usr/bin/env node
// @ts-check
// Encoder benchmarks (issue 8): capstan's Ogg Opus encoder side by side with @discordjs/opus
// and opusscript. Every scenario runs in its own child process, one after another, and the
// orchestrator prints markdown tables and writes benchmark/results/encode-<timestamp>.json.
//
//   npm run bench:encode                    # everything (several minutes)
//   node benchmark/encode.mjs --smoke       # every scenario, tiny sizes (~1 min)
//   node benchmark/encode.mjs --help
//
// Scenarios:
//   push      JS-thread cost of one push of 60 ms / 500 ms of 48 kHz mono speech-like audio:
//             capstan `AudioEncoder.push` (copies, engine threads encode; a reader drains the
//             output) vs `OpusEncoder.encode` of @discordjs/opus and `encode` of opusscript
//             (synchronous on the JS thread: the push's 20 ms frames one after another).
//             A 5 ms setInterval records the event loop's timer gaps meanwhile.
//   latency   push 20 ms into an AudioEncoder (frameMs 20, pageMs 20) whose reader is parked
//             in next(): time until the reader holds the first audio page (headers skipped).
//   capacity  N real-time AudioSources, each `source.encode({ format: 'ogg-opus' })` read by a
//             draining reader and fed by `while (!stop) await source.captureFrame(frame20ms)`:
//             RTF from the encoder's encodedSamples, timer gaps, CPU.
//
// Requires a built dist/ (`npm run build`) and the devDependencies @discordjs/opus, opusscript.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import {
  RESULT_PREFIX,
  SAMPLE_RATE,
  chunked,
  emit,
  loadLib,
  mainThreadCpuUs,
  minAvg,
  num,
  parseArgs,
  processCpuUs,
  rssMb,
  sleep,
  str,
  systemBusyUs,
} from './common.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const require = createRequire(import.meta.url)

const USAGE = `usage: node benchmark/encode.mjs [options]

  --smoke               every scenario with tiny sizes
  --scenarios LIST      push,latency,capacity (default: all)
  --libs LIST           push scenario libraries: capstan,discordjs,opusscript (default: all)
  --push-ms LIST        push lengths in ms (default 60,500)
  --pushes K            timed pushes per run (default 2000; 100 more untimed warm-up)
  --complexity C        Opus complexity for the push scenario, all libraries (default 10)
  --trials T            latency trials per mode (default 200)
  --n LIST              capacity N list (default 100,200,300,500,700)
  --cap-complexity LIST capacity complexities; 'default' = libopus's (default: default,5)
  --frame-ms F          capacity frame length of each captureFrame (default 20)
  --seconds S           capacity run length, warm-up included (default 10)
  --warmup W            capacity warm-up excluded from measurement (default 2)
  --out FILE            results JSON (default benchmark/results/encode-<timestamp>.json; .md beside it)
`

// ---- speech-like audio ----------------------------------------------------------------------
/**
 * `ms` of a speech-like mix at 48 kHz mono: partials at 200/450/1200/2800 Hz with a 4 Hz
 * syllable envelope and light noise (deterministic), so the encoder never sees a pure tone.
 * @param {number} ms @param {number} [offset] samples into the signal
 */
function speechLike(ms, offset = 0) {
  const n = (SAMPLE_RATE * ms) / 1000
  const a = new Int16Array(n)
  let s = 0x2545f491 ^ offset
  for (let i = 0; i < n; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    const t = (i + offset) / SAMPLE_RATE
    const tau = 2 * Math.PI
    const env = 0.55 + 0.45 * Math.sin(tau * 4 * t)
    const v =
      0.45 * Math.sin(tau * 200 * t) + 0.25 * Math.sin(tau * 450 * t) + 0.15 * Math.sin(tau * 1200 * t) + 0.08 * Math.sin(tau * 2800 * t)
    const noise = ((s >>> 0) % 801) - 400
    a[i] = Math.round(v * env * 12000 + noise)
  }
  return a
}

/** Exact percentile of a sorted array. @param {Float64Array} sorted @param {number} p */
function pct(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}
/** @param {number[] | Float64Array} xs */
function stats(xs) {
  const s = Float64Array.from(xs).sort()
  let sum = 0
  for (const x of s) sum += x
  return { p50: pct(s, 50), p99: pct(s, 99), max: s.length ? s[s.length - 1] : NaN, mean: s.length ? sum / s.length : NaN, count: s.length }
}

/** Timer gaps of a 5 ms setInterval, in ms (every gap kept). */
function timerGaps() {
  /** @type {number[]} */
  const gaps = []
  let last = performance.now()
  let on = true
  const h = setInterval(() => {
    const now = performance.now()
    if (on) gaps.push(now - last)
    last = now
  }, 5)
  return {
    reset() {
      gaps.length = 0
      last = performance.now()
    },
    stop() {
      on = false
      clearInterval(h)
      return stats(gaps)
    },
  }
}

const immediate = () => new Promise((r) => setImmediate(r))

// ---- child: push ------------------------------------------------------------------------------
async function childPush(/** @type {Record<string, string | true>} */ args) {
  const lib = str(args, 'lib', 'capstan')
  const pushMs = num(args, 'push-ms', 60)
  const pushes = num(args, 'pushes', 2000)
  const warm = num(args, 'warm', 100)
  const complexity = num(args, 'complexity', 10)
  const K = 16 // distinct push buffers, cycled
  const bufs = Array.from({ length: K }, (_, k) => speechLike(pushMs, k * 48000 * 7))
  const frameSamples = 960 // 20 ms
  const framesPerPush = (SAMPLE_RATE * pushMs) / 1000 / frameSamples
  const durNs = new Float64Array(pushes)
  let bytesOut = 0
  /** @type {Record<string, number>} */
  const statuses = {}
  const cpu0 = processCpuUs()
  const main0 = mainThreadCpuUs()
  const sys0 = systemBusyUs()
  const gaps = timerGaps()
  const t0 = performance.now()
  /** @type {any} */
  let extra = {}

  if (lib === 'capstan') {
    const mod = /** @type {any} */ (await loadLib('capstan'))
    const inputQueueMs = 10_000
    const highWaterMs = 4_000
    const enc = new mod.AudioEncoder({ sampleRate: SAMPLE_RATE, channels: 1, format: 'ogg-opus', complexity, application: 'voip', inputQueueMs })
    const reader = (async () => {
      for await (const b of enc) bytesOut += b.length
    })()
    let waits = 0
    for (let i = -warm; i < pushes; i++) {
      const data = bufs[(i + warm) % K]
      const a = process.hrtime.bigint()
      const o = enc.push(data)
      const b = process.hrtime.bigint()
      if (i >= 0) {
        durNs[i] = Number(b - a)
        statuses[o.status] = (statuses[o.status] ?? 0) + 1
      }
      if (i === -1) gaps.reset()
      await immediate()
      // Keep the input queue from filling (the engine encodes ~tens of times faster than
      // real time, the loop pushes hundreds of times faster): every push must be accepted.
      if (o.queuedMs > highWaterMs) {
        waits++
        while (enc.metrics().input.queuedMs > highWaterMs / 2) await sleep(2)
      }
    }
    const tEnd = performance.now()
    await enc.finish()
    await reader
    const m = enc.metrics()
    extra = {
      inputQueueMs,
      highWaterMs,
      throttleWaits: waits,
      pushLoopS: (tEnd - t0) / 1000,
      callerEncodes: m.callerEncodes,
      encodedSamples: m.encodedSamples,
      droppedBytes: m.droppedBytes,
      inputDropped: m.input.dropped ?? null,
      encodeUs: m.encodeUs,
      pieces: m.pieces,
    }
  } else if (lib === 'discordjs' || lib === 'opusscript') {
    /** @type {(buf: Buffer) => number} */
    let encodeFrame
    if (lib === 'discordjs') {
      const { OpusEncoder } = require('@discordjs/opus')
      const e = new OpusEncoder(SAMPLE_RATE, 1)
      e.applyEncoderCTL(4000, 2048) // OPUS_SET_APPLICATION(VOIP), before the first frame
      e.applyEncoderCTL(4010, complexity) // OPUS_SET_COMPLEXITY
      encodeFrame = (buf) => e.encode(buf).length
    } else {
      const OpusScript = require('opusscript')
      const e = new OpusScript(SAMPLE_RATE, 1, OpusScript.Application.VOIP)
      e.encoderCTL(4010, complexity)
      encodeFrame = (buf) => e.encode(buf, frameSamples).length
    }
    // 20 ms Buffer views of each push buffer, made before timing.
    const views = bufs.map((a) =>
      Array.from({ length: framesPerPush }, (_, f) => Buffer.from(a.buffer, a.byteOffset + f * frameSamples * 2, frameSamples * 2)),
    )
    for (let i = -warm; i < pushes; i++) {
      const frames = views[(i + warm) % K]
      const a = process.hrtime.bigint()
      for (let f = 0; f < framesPerPush; f++) bytesOut += encodeFrame(frames[f])
      const b = process.hrtime.bigint()
      if (i >= 0) {
        durNs[i] = Number(b - a)
        statuses.encoded = (statuses.encoded ?? 0) + 1
      }
      if (i === -1) gaps.reset()
      await immediate()
    }
    extra = { pushLoopS: (performance.now() - t0) / 1000 }
  } else throw new Error(`unknown --lib ${lib}`)

  const gapStats = gaps.stop()
  const cpu1 = processCpuUs()
  const main1 = mainThreadCpuUs()
  const sys1 = systemBusyUs()
  const wallS = (performance.now() - t0) / 1000
  const us = stats(Array.from(durNs, (ns) => ns / 1000))
  emit({
    scenario: 'push',
    lib,
    pushMs,
    pushes,
    warm,
    complexity,
    pushUs: us,
    statuses,
    bytesOut,
    gapsMs: gapStats,
    cpuCores: (cpu1 - cpu0) / 1e6 / wallS,
    mainThreadCores: main0 !== null && main1 !== null ? (main1 - main0) / 1e6 / wallS : null,
    otherProcessesCores: sys0 !== null && sys1 !== null ? Math.max(0, (sys1 - sys0 - (cpu1 - cpu0)) / 1e6 / wallS) : null,
    wallS,
    ...extra,
  })
}

// ---- child: first-page latency ----------------------------------------------------------------
/** Ogg pages in `bytes`: serial and whether the payload is an Opus header. @param {Uint8Array} bytes */
function oggPages(bytes) {
  /** @type {{ serial: number, header: boolean }[]} */
  const out = []
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let p = 0
  while (p + 27 <= bytes.length) {
    if (dv.getUint32(p) !== 0x4f676753) throw new Error(`not an Ogg page at ${p}`)
    const serial = dv.getUint32(p + 14, true)
    const nseg = bytes[p + 26]
    let len = 0
    for (let i = 0; i < nseg; i++) len += bytes[p + 27 + i]
    const body = p + 27 + nseg
    const magic = String.fromCharCode(...bytes.subarray(body, body + 8))
    out.push({ serial, header: magic === 'OpusHead' || magic === 'OpusTags' })
    p = body + len
  }
  return out
}

async function childLatency(/** @type {Record<string, string | true>} */ args) {
  const mode = str(args, 'mode', 'new') // 'new': a new encoder per trial; 'segment': one encoder, segment() between trials
  const trials = num(args, 'trials', 200)
  const mod = /** @type {any} */ (await loadLib('capstan'))
  const data = speechLike(20)
  const opts = { sampleRate: SAMPLE_RATE, channels: 1, format: 'ogg-opus', frameMs: 20, pageMs: 20 }
  /** @type {number[]} */
  const lat = []
  /** @type {number[]} */
  const firstPieceMs = []
  const sys0 = systemBusyUs()
  const cpu0 = processCpuUs()
  const tAll = performance.now()

  /** @type {{ serial: number | null, t0: bigint, done: ((t: bigint) => void) | null }} */
  const trial = { serial: null, t0: 0n, done: null }
  /** @param {any} enc */
  const startReader = (enc) =>
    (async () => {
      for await (const bytes of enc) {
        const t = process.hrtime.bigint()
        if (!trial.done) continue
        for (const pg of oggPages(bytes)) {
          if (pg.header) {
            trial.serial = pg.serial
          } else if (pg.serial === trial.serial && trial.done) {
            const d = trial.done
            trial.done = null
            d(t)
          }
        }
      }
    })()

  /** @param {any} enc */
  const once = async (enc) => {
    trial.serial = null
    const got = new Promise((r) => (trial.done = r))
    await sleep(5) // the reader is parked in next()
    trial.t0 = process.hrtime.bigint()
    const o = enc.push(data)
    if (o.status !== 'accepted') throw new Error(`push ${o.status}`)
    const t1 = /** @type {bigint} */ (await got)
    lat.push(Number(t1 - trial.t0) / 1e6)
  }

  if (mode === 'new' || mode === 'new-warm') {
    // 'new-warm': an idle AudioEncoder stays open, so the engine's clock threads keep running
    // between trials ('new' alone closes the last source each trial, which stops them).
    const keeper = mode === 'new-warm' ? new mod.AudioEncoder(opts) : null
    for (let i = 0; i < trials; i++) {
      const enc = new mod.AudioEncoder(opts)
      const reader = startReader(enc)
      await once(enc)
      const seg = await enc.finish()
      if (seg.firstPieceMs != null) firstPieceMs.push(seg.firstPieceMs)
      await reader
    }
    await keeper?.close()
  } else {
    const enc = new mod.AudioEncoder(opts)
    const reader = startReader(enc)
    for (let i = 0; i < trials; i++) {
      await once(enc)
      const seg = await enc.segment()
      if (seg.firstPieceMs != null) firstPieceMs.push(seg.firstPieceMs)
    }
    await enc.finish()
    await reader
  }
  const wallS = (performance.now() - tAll) / 1000
  const cpu1 = processCpuUs()
  const sys1 = systemBusyUs()
  emit({
    scenario: 'latency',
    mode,
    trials,
    latencyMs: stats(lat),
    firstPieceMs: stats(firstPieceMs),
    otherProcessesCores: sys0 !== null && sys1 !== null ? Math.max(0, (sys1 - sys0 - (cpu1 - cpu0)) / 1e6 / wallS) : null,
  })
}

// ---- child: capacity --------------------------------------------------------------------------
async function childCapacity(/** @type {Record<string, string | true>} */ args) {
  const N = num(args, 'n', 100)
  const frameMs = num(args, 'frame-ms', 20)
  const seconds = num(args, 'seconds', 10)
  const warmup = num(args, 'warmup', 2)
  const cx = str(args, 'complexity', 'default')
  const mod = /** @type {any} */ (await loadLib('capstan'))
  const frame = new mod.AudioFrame(speechLike(frameMs), SAMPLE_RATE, 1)
  /** @type {any} */
  const encodeOpts = { format: 'ogg-opus' }
  if (cx !== 'default') encodeOpts.complexity = Number(cx)
  const phase = (/** @type {string} */ what) => process.stderr.write(`[capacity N=${N} c=${cx}] ${(performance.now() / 1000).toFixed(2)} s: ${what}\n`)

  /** @type {any[]} */
  const sources = []
  /** @type {any[]} */
  const streams = []
  let bytesRead = 0
  for (let i = 0; i < N; i++) {
    const s = new mod.AudioSource({ sampleRate: SAMPLE_RATE, channels: 1, consumer: 'realtime', queueMs: 1000, overflow: 'wait', deadlineMs: 5000 })
    sources.push(s)
    streams.push(s.encode(encodeOpts))
  }
  const readers = streams.map((st) =>
    (async () => {
      for await (const b of st) bytesRead += b.length
    })(),
  )
  let stop = false
  let errors = 0
  /** @type {string | undefined} */
  let firstError
  /** @type {Record<string, number>} */
  const statuses = {}
  const producer = async (/** @type {any} */ s) => {
    while (!stop) {
      try {
        const o = await s.captureFrame(frame)
        statuses[o.status] = (statuses[o.status] ?? 0) + 1
        if (o.status === 'closed') return
      } catch (e) {
        errors++
        firstError ??= String(e)
        if (stop) return
        await sleep(10)
      }
    }
  }
  const gaps = timerGaps()
  const tStart = performance.now()
  for (const s of sources) void producer(s)
  phase(`${N} sources + encoders + readers started`)
  await sleep(warmup * 1000)

  // Window start: per-stream encodedSamples with its own timestamp.
  const e0 = new Float64Array(N)
  const d0 = new Float64Array(N)
  const t0s = new Float64Array(N)
  await chunked(N, (i) => {
    e0[i] = streams[i].metrics().encodedSamples
    d0[i] = sources[i].metrics().delivered
    t0s[i] = performance.now()
  })
  const u0 = sources.reduce((a, s) => a + s.metrics().underruns, 0)
  gaps.reset()
  const cpu0 = processCpuUs()
  const main0 = mainThreadCpuUs()
  const sys0 = systemBusyUs()
  const tw0 = performance.now()
  const windowMs = (seconds - warmup) * 1000
  let collapsed = false
  while (performance.now() - tw0 < windowMs) {
    await sleep(Math.min(1000, windowMs - (performance.now() - tw0)))
    const el = performance.now() - tw0
    if (el >= 2000) {
      // Stop a run that clearly cannot keep up (average RTF < 0.5 after 2 s).
      let sum = 0
      for (let i = 0; i < N; i += Math.max(1, Math.floor(N / 50))) sum += (streams[i].metrics().encodedSamples - e0[i]) / SAMPLE_RATE / ((performance.now() - t0s[i]) / 1000)
      if (sum / Math.ceil(N / Math.max(1, Math.floor(N / 50))) < 0.5) {
        collapsed = true
        break
      }
    }
  }
  const tw1 = performance.now()
  const cpu1 = processCpuUs()
  const main1 = mainThreadCpuUs()
  const sys1 = systemBusyUs()
  const gapStats = gaps.stop()
  const rtf = new Float64Array(N)
  const drtf = new Float64Array(N)
  let droppedBytes = 0
  let encodeP99Max = 0
  let callerEncodes = 0
  await chunked(N, (i) => {
    const m = streams[i].metrics()
    const d = sources[i].metrics().delivered
    const el = (performance.now() - t0s[i]) / 1000
    rtf[i] = (m.encodedSamples - e0[i]) / SAMPLE_RATE / el
    drtf[i] = (d - d0[i]) / SAMPLE_RATE / el
    droppedBytes += m.droppedBytes
    callerEncodes += m.callerEncodes
    if (m.encodeUs.p99 > encodeP99Max) encodeP99Max = m.encodeUs.p99
  })
  const underruns = sources.reduce((a, s) => a + s.metrics().underruns, 0) - u0
  const windowS = (tw1 - tw0) / 1000
  stop = true
  phase(`window ${windowS.toFixed(2)} s${collapsed ? ' (collapsed)' : ''}, closing`)
  await Promise.all(sources.map((s) => s.close()))
  await Promise.race([Promise.all(readers), sleep(5000)])
  const r = minAvg(Array.from(rtf))
  const dr = minAvg(Array.from(drtf))
  emit({
    scenario: 'capacity',
    n: N,
    frameMs,
    complexity: cx,
    seconds,
    warmup,
    windowS,
    collapsed,
    rtfMin: r.min,
    rtfAvg: r.avg,
    rtfMethod: 'EncodedStream.metrics().encodedSamples delta per source / 48000 / per-source window',
    deliveredRtfMin: dr.min,
    deliveredRtfAvg: dr.avg,
    underruns,
    gapsMs: gapStats,
    cpuCores: (cpu1 - cpu0) / 1e6 / windowS,
    mainThreadCores: main0 !== null && main1 !== null ? (main1 - main0) / 1e6 / windowS : null,
    otherProcessesCores: sys0 !== null && sys1 !== null ? Math.max(0, (sys1 - sys0 - (cpu1 - cpu0)) / 1e6 / windowS) : null,
    encodeUsP99WorstStream: encodeP99Max,
    droppedBytes,
    callerEncodes,
    bytesRead,
    statuses,
    errors,
    firstError,
    wallS: (performance.now() - tStart) / 1000,
    rssMb: rssMb(),
  })
  process.exit(0)
}

// ---- orchestrator -----------------------------------------------------------------------------
/** @param {string[]} argv @param {number} timeoutMs @returns {Promise<any>} */
function runChild(argv, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const line = out.split('\n').find((l) => l.startsWith(RESULT_PREFIX))
      if (line) resolve(JSON.parse(line.slice(RESULT_PREFIX.length)))
      else resolve({ failed: true, code, signal, stderrTail: err.split('\n').slice(-15).join('\n') })
    })
  })
}

const f1 = (/** @type {number} */ x) => (Number.isFinite(x) ? x.toFixed(1) : '–')
const f2 = (/** @type {number} */ x) => (Number.isFinite(x) ? x.toFixed(2) : '–')
const f3 = (/** @type {number} */ x) => (Number.isFinite(x) ? x.toFixed(3) : '–')

async function main() {
  const args = parseArgs(process.argv.slice(2))
  if (args.help || args.h) {
    process.stdout.write(USAGE)
    return
  }
  if (typeof args.child === 'string') {
    if (args.child === 'push') return childPush(args)
    if (args.child === 'latency') return childLatency(args)
    if (args.child === 'capacity') return childCapacity(args)
    throw new Error(`unknown --child ${args.child}`)
  }
  if (!existsSync(path.join(ROOT, 'dist', 'index.mjs'))) {
    console.error('dist/index.mjs not found: run `npm run build` first')
    process.exit(2)
  }
  const smoke = !!args.smoke
  const list = (/** @type {string} */ name, /** @type {string} */ dflt) => (typeof args[name] === 'string' ? /** @type {string} */ (args[name]) : dflt).split(',').map((x) => x.trim())
  const scenarios = list('scenarios', 'push,latency,capacity')
  const libs = list('libs', 'capstan,discordjs,opusscript')
  const pushMsList = list('push-ms', '60,500').map(Number)
  const pushes = num(args, 'pushes', smoke ? 100 : 2000)
  const complexity = num(args, 'complexity', 10)
  const trials = num(args, 'trials', smoke ? 20 : 200)
  const ns = list('n', smoke ? '20' : '100,200,300,500,700').map(Number)
  const capCx = list('cap-complexity', smoke ? 'default' : 'default,5')
  const frameMs = num(args, 'frame-ms', 20)
  const seconds = num(args, 'seconds', smoke ? 3 : 10)
  const warmup = num(args, 'warmup', smoke ? 1 : 2)

  const cpuModel = os.cpus()[0]?.model ?? 'unknown'
  const meta = {
    date: new Date().toISOString(),
    command: `node benchmark/encode.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    nproc: os.availableParallelism(),
    cpuModel,
    node: process.version,
    loadavg: os.loadavg(),
  }
  console.log(`# capstan encoders: ${meta.date}\n\n${meta.nproc} cores (${cpuModel}), Node ${meta.node}, loadavg at start ${meta.loadavg.map((x) => x.toFixed(2)).join(' ')}\n`)
  /** @type {any[]} */
  const results = []
  /** @type {string[]} */
  const md = []
  const out = (/** @type {string} */ s) => {
    md.push(s)
    console.log(s)
  }

  if (scenarios.includes('push')) {
    out(`## push: JS-thread cost per push (complexity ${complexity}, ${pushes} timed pushes + 100 warm-up)\n`)
    out('| push | library | p50 µs | p99 µs | max µs | timer gap p99 / max ms | JS-thread cores | process cores | other procs cores | notes |')
    out('|---|---|---:|---:|---:|---:|---:|---:|---:|---|')
    for (const pushMs of pushMsList) {
      /** @type {Record<string, any>} */
      const row = {}
      for (const lib of libs) {
        const r = await runChild(['--child', 'push', '--lib', lib, '--push-ms', `${pushMs}`, '--pushes', `${pushes}`, '--complexity', `${complexity}`], 600_000)
        results.push({ key: `push/${pushMs}/${lib}`, ...r })
        row[lib] = r
        if (r.failed) {
          out(`| ${pushMs} ms | ${lib} | failed (${r.code ?? r.signal}) | | | | | | | ${JSON.stringify(r.stderrTail).slice(0, 200)} |`)
          continue
        }
        const notes =
          lib === 'capstan'
            ? `${r.statuses.accepted ?? 0}/${pushes} accepted; callerEncodes ${r.callerEncodes}; engine encodeUs p99 ${f1(r.encodeUs?.p99)}`
            : `${(SAMPLE_RATE * pushMs) / 1000 / 960} frames of 20 ms per push`
        out(
          `| ${pushMs} ms | ${lib} | ${f1(r.pushUs.p50)} | ${f1(r.pushUs.p99)} | ${f1(r.pushUs.max)} | ${f1(r.gapsMs.p99)} / ${f1(r.gapsMs.max)} | ${f2(r.mainThreadCores)} | ${f2(r.cpuCores)} | ${f2(r.otherProcessesCores)} | ${notes} |`,
        )
      }
      const c = row.capstan
      if (c && !c.failed) {
        for (const lib of libs.filter((l) => l !== 'capstan' && row[l] && !row[l].failed)) {
          out(`|  | ratio ${lib}/capstan | ${f1(row[lib].pushUs.p50 / c.pushUs.p50)}× | ${f1(row[lib].pushUs.p99 / c.pushUs.p99)}× | ${f1(row[lib].pushUs.max / c.pushUs.max)}× | | | | | |`)
        }
      }
    }
    out('')
  }

  if (scenarios.includes('latency')) {
    out(`## latency: push 20 ms → first audio page in the reader (frameMs 20, pageMs 20, ${trials} trials)\n`)
    out('| mode | p50 ms | p99 ms | max ms | encoder firstPieceMs p50 / p99 | other procs cores |')
    out('|---|---:|---:|---:|---:|---:|')
    for (const mode of ['new', 'new-warm', 'segment']) {
      const r = await runChild(['--child', 'latency', '--mode', mode, '--trials', `${trials}`], 600_000)
      results.push({ key: `latency/${mode}`, ...r })
      const label = {
        new: 'new AudioEncoder per trial (engine idle between trials)',
        'new-warm': 'new AudioEncoder per trial (another encoder keeps the engine running)',
        segment: 'one AudioEncoder, segment() per trial',
      }[mode]
      if (r.failed) out(`| ${label} | failed (${r.code ?? r.signal}) | | | | ${JSON.stringify(r.stderrTail).slice(0, 200)} |`)
      else out(`| ${label} | ${f2(r.latencyMs.p50)} | ${f2(r.latencyMs.p99)} | ${f2(r.latencyMs.max)} | ${f2(r.firstPieceMs.p50)} / ${f2(r.firstPieceMs.p99)} | ${f2(r.otherProcessesCores)} |`)
    }
    out('')
  }

  if (scenarios.includes('capacity')) {
    out(`## capacity: N real-time sources, each encode({ format: 'ogg-opus' }) + a draining reader, ${frameMs} ms captureFrame loops, ${seconds} s (${warmup} s warm-up)\n`)
    out('| complexity | N | RTF min / avg (encoded) | delivered RTF min / avg | timer gap p50 / p99 / max ms | underruns | process cores | JS-thread cores | other procs cores | engine encodeUs p99 (worst stream) | pass |')
    out('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|')
    for (const cx of capCx) {
      let failedOnce = false
      for (const n of ns) {
        if (failedOnce) {
          out(`| ${cx} | ${n} | skipped (a smaller N already failed) | | | | | | | | |`)
          continue
        }
        const r = await runChild(
          ['--child', 'capacity', '--n', `${n}`, '--complexity', cx, '--frame-ms', `${frameMs}`, '--seconds', `${seconds}`, '--warmup', `${warmup}`],
          (seconds + 60) * 1000 + n * 20,
        )
        results.push({ key: `capacity/${cx}/${n}`, ...r })
        if (r.failed) {
          out(`| ${cx} | ${n} | failed (${r.code ?? r.signal}) | | | | | | | | ${JSON.stringify(r.stderrTail).slice(0, 200)} |`)
          failedOnce = true
          continue
        }
        const pass = r.rtfMin >= 0.99 && r.gapsMs.p99 <= 20 && !r.collapsed
        if (!pass) failedOnce = true
        out(
          `| ${cx} | ${n} | ${f3(r.rtfMin)} / ${f3(r.rtfAvg)}${r.collapsed ? ' (collapsed)' : ''} | ${f3(r.deliveredRtfMin)} / ${f3(r.deliveredRtfAvg)} | ${f1(r.gapsMs.p50)} / ${f1(r.gapsMs.p99)} / ${f1(r.gapsMs.max)} | ${r.underruns} | ${f2(r.cpuCores)} | ${f2(r.mainThreadCores)} | ${f2(r.otherProcessesCores)} | ${f1(r.encodeUsP99WorstStream)} | ${pass ? 'yes' : 'no'} |`,
        )
      }
    }
    out('')
  }

  const file =
    typeof args.out === 'string' ? path.resolve(args.out) : path.join(HERE, 'results', `encode-${meta.date.replace(/[:.]/g, '-')}.json`)
  mkdirSync(path.dirname(file), { recursive: true })
  writeFileSync(file, JSON.stringify({ meta, results }, null, 2))
  writeFileSync(file.replace(/\.json$/, '.md'), md.join('\n') + '\n')
  console.log(`results: ${path.relative(ROOT, file)} (+ .md)`)
}

await main()
