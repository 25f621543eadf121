// @ts-check
// Scenario "N real-time sources", one library and one N per process (run by bench.mjs).
//
//   node benchmark/child-realtime.mjs --lib capstan|livekit --n 1000 --frame-ms 10 \
//        --seconds 10 --warmup 2 [--collapse-stop 0.5] [--group]
//
// Each source runs a TTS-like loop `while (!stop) await source.captureFrame(frame)` of
// 48 kHz mono frames. With --group (capstan), one loop feeds every source instead:
// `while (!stop) await group.captureFrames(frames)` on a SourceGroup of all N. Measured from t = warmup to t = seconds (or earlier if the run
// collapses). Prints one `BENCH_RESULT {json}` line.
import {
  Hist,
  SAMPLE_RATE,
  chunked,
  emit,
  eventLoopMonitor,
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
  toneFrame,
} from './common.mjs'

const args = parseArgs(process.argv.slice(2))
const lib = /** @type {'capstan' | 'livekit'} */ (str(args, 'lib', 'capstan'))
const N = num(args, 'n', 100)
const frameMs = num(args, 'frame-ms', 10)
const seconds = num(args, 'seconds', 10)
const warmup = num(args, 'warmup', 2)
const collapseBelow = num(args, 'collapse-stop', 0.5)
const queueMs = num(args, 'queue-ms', 1000)
const grouped = args.group === true
if (grouped && lib !== 'capstan') throw new Error('--group is a capstan API')
// The warm-up is extended (up to this many extra seconds) until the queues are in steady
// state: full (average accepted audio per source >= time since its first accepted frame +
// queue length - one frame - 50 ms), or clearly not filling because the producers are
// slower than real time (accepted rate over the last 500 ms < 0.98x). Otherwise a library
// whose queues are still filling at t = warmup looks faster than real time.
const maxExtraWarmup = num(args, 'max-extra-warmup', 10)
if (lib !== 'capstan' && lib !== 'livekit') throw new Error(`unknown --lib ${lib}`)
if (!(seconds > warmup)) throw new Error('--seconds must be greater than --warmup')

const frameSamples = (SAMPLE_RATE * frameMs) / 1000
const frameSec = frameMs / 1000
const mod = /** @type {any} */ (await loadLib(lib))
const data = toneFrame(frameMs)

/** @type {any[]} */
const sources = []
const tSetup0 = performance.now()
/** @type {any} */
let frame
if (lib === 'capstan') {
  frame = new mod.AudioFrame(data, SAMPLE_RATE, 1)
  for (let i = 0; i < N; i++) {
    sources.push(
      new mod.AudioSource({
        sampleRate: SAMPLE_RATE,
        channels: 1,
        consumer: 'realtime',
        queueMs,
        overflow: 'wait',
        deadlineMs: 5000,
      }),
    )
  }
} else {
  frame = new mod.AudioFrame(data, SAMPLE_RATE, 1, frameSamples)
  for (let i = 0; i < N; i++) sources.push(new mod.AudioSource(SAMPLE_RATE, 1, queueMs))
}
const setupMs = performance.now() - tSetup0
/** Progress on stderr (the orchestrator shows its tail when a run fails). @param {string} what */
const phase = (what) => process.stderr.write(`[${lib} N=${N} ${frameMs}ms] ${(performance.now() / 1000).toFixed(2)} s: ${what}\n`)
phase(`${N} sources created in ${setupMs.toFixed(0)} ms`)

// ---- the producers ------------------------------------------------------------------
let stop = false
let measuring = false
const accepted = new Uint32Array(N) // frames that settled 'accepted' inside the window, per source
const lat = new Hist()
let framesInWindow = 0
let acceptedAll = 0 // frames accepted since the start (steady-state probe)
let firstSum = 0 // sum over sources of the time of their first accepted frame
let firstCount = 0
const hasFirst = new Uint8Array(N)
/** @type {Record<string, number>} */
const nonAccepted = {}
let errors = 0
/** @type {string | undefined} */
let firstError

// Timer gaps: a 5 ms interval records the time between its ticks over the whole run,
// start-up included. No guard of any kind: if the producers' loops kept the event loop
// from turning, this is where it shows (and the run fails).
const TIMER_MS = 5
const gapsAll = new Hist()
const gapsWindow = new Hist()
let lastBeat = performance.now()
const beat = setInterval(() => {
  const now = performance.now()
  gapsAll.record(now - lastBeat)
  if (measuring) gapsWindow.record(now - lastBeat)
  lastBeat = now
}, TIMER_MS)
/** Sources that reported each health state at least once (capstan). @type {Record<string, Set<number>>} */
const reported = {}

/** @param {number} i */
async function producer(i) {
  const s = sources[i]
  while (!stop) {
    const t0 = performance.now()
    let status
    try {
      const o = await s.captureFrame(frame)
      // livekit resolves with undefined once its queue took the frame
      status = o === undefined ? 'accepted' : o.status
    } catch (e) {
      status = 'error'
      errors++
      firstError ??= String(e)
      if (stop) return
      await sleep(10) // do not spin on a broken source
    }
    if (status === 'accepted') {
      acceptedAll++
      if (hasFirst[i] === 0) {
        hasFirst[i] = 1
        firstSum += performance.now()
        firstCount++
      }
    }
    if (measuring) {
      lat.record(performance.now() - t0)
      framesInWindow++
      if (status === 'accepted') accepted[i]++
      else nonAccepted[status] = (nonAccepted[status] ?? 0) + 1
    }
    if (status === 'closed') return
  }
}

if (lib === 'capstan') {
  sources.forEach((s, i) =>
    s.on('health', (/** @type {{ state: string }} */ e) => (reported[e.state] ??= new Set()).add(i)),
  )
}
const eld = eventLoopMonitor()
const tStart = performance.now()
/** The one loop of --group: a round captures one frame for every source. */
async function groupProducer() {
  const group = new mod.SourceGroup(sources)
  const all = new Int16Array(N * frameSamples)
  for (let i = 0; i < N; i++) all.set(data, i * frameSamples)
  while (!stop) {
    const t0 = performance.now()
    /** @type {{ statuses: string[] }} */
    let o
    try {
      o = await group.captureFrames(all)
    } catch (e) {
      errors++
      firstError ??= String(e)
      if (stop) return
      await sleep(10)
      continue
    }
    for (let i = 0; i < N; i++) {
      const status = o.statuses[i]
      if (status === 'accepted') {
        acceptedAll++
        if (hasFirst[i] === 0) {
          hasFirst[i] = 1
          firstSum += performance.now()
          firstCount++
        }
      }
      if (measuring) {
        if (status === 'accepted') accepted[i]++
        else nonAccepted[status] = (nonAccepted[status] ?? 0) + 1
      }
    }
    if (measuring) {
      lat.record(performance.now() - t0)
      framesInWindow += N
    }
  }
  group.close()
}

// The producers start in one synchronous loop, as a service would start them: each first
// capture runs before the loop ends (its time is part of the whole-run timer gaps).
const tLoop0 = performance.now()
if (grouped) void groupProducer()
else for (let i = 0; i < N; i++) void producer(i)
const startLoopMs = performance.now() - tLoop0

await sleep(warmup * 1000 - (performance.now() - tStart))
// Steady-state probe (see --max-extra-warmup).
/**
 * Average queued audio per source, in seconds. capstan: native truth (`queuedMs` of up to 200
 * sources spread over the set). livekit: estimated as accepted audio minus the time since the
 * source's first accepted frame (it has no queue depth; underruns make this an underestimate).
 */
const queuedNow = () => {
  if (lib === 'capstan') {
    const step = Math.max(1, Math.floor(N / 200))
    let sum = 0
    let k = 0
    for (let i = 0; i < N; i += step, k++) sum += sources[i].queuedMs
    return sum / k / 1000
  }
  return firstCount < N ? -Infinity : (acceptedAll / N) * frameSec - (performance.now() - firstSum / N) / 1000
}
// The accepted rate is measured over at least 20 frames, so that frame quantization stays < 5 %.
const probeSpanMs = Math.max(500, 20 * frameMs)
let probeRate = NaN
let probeFull = false
/** @type {[number, number][]} */
const hist = [[performance.now(), acceptedAll]]
for (;;) {
  await sleep(250)
  const now = performance.now()
  hist.push([now, acceptedAll])
  while (hist.length > 2 && now - hist[1][0] >= probeSpanMs) hist.shift()
  const [h0, a0] = hist[0]
  if (now - h0 >= probeSpanMs) probeRate = ((acceptedAll - a0) / N) * frameSec / ((now - h0) / 1000)
  // livekit's queue depth is only an estimate: also require that it stopped filling.
  probeFull = queuedNow() >= queueMs / 1000 - frameSec - 0.05 && (lib === 'capstan' || probeRate <= 1.02)
  if (probeFull || probeRate < 0.9 || now - tStart > (warmup + maxExtraWarmup) * 1000) break
}
const queuedAtWindowStartS = queuedNow()
const warmupUsedS = (performance.now() - tStart) / 1000
phase(
  `warm-up done after ${warmupUsedS.toFixed(2)} s (accepted rate ${probeRate.toFixed(3)}x, ${lib === 'capstan' ? '' : 'est. '}queued ${(queuedAtWindowStartS * 1000).toFixed(0)} ms)`,
)

// ---- window start ------------------------------------------------------------------------
// capstan: per-source snapshot of metrics().delivered with its own timestamp; taken in slices
// (yielding between them) so that it does not stall the producers, and before the CPU /
// event-loop window opens.
const d0 = new Float64Array(N)
const u0 = new Float64Array(N)
let queuedStartSum = 0 // capstan: metrics().queuedMs summed over sources at window start
const t0s = new Float64Array(N)
if (lib === 'capstan') {
  await chunked(N, (i) => {
    const m = sources[i].metrics()
    t0s[i] = performance.now()
    d0[i] = m.delivered
    u0[i] = m.underruns
    queuedStartSum += m.queuedMs
  })
  await sleep(2)
}
phase('window start')
eld.reset()
lat.reset()
const cpu0 = processCpuUs()
const main0 = mainThreadCpuUs()
const sys0 = systemBusyUs()
const tw0 = performance.now()
measuring = true

// ---- window --------------------------------------------------------------------------------
const windowTargetMs = (seconds - warmup) * 1000
let collapsed = false
/** Accepted-audio real-time factor averaged over sources, so far in the window. */
const acceptedRtfSoFar = () => {
  let sum = 0
  for (let i = 0; i < N; i++) sum += accepted[i]
  return (sum / N) * frameSec / ((performance.now() - tw0) / 1000)
}
/** How late the timer that ends the window fired, ms (the stop signal of a service). */
let stopLateMs = 0
for (;;) {
  const left = windowTargetMs - (performance.now() - tw0)
  if (left <= 0) break
  const want = performance.now() + Math.min(left, 1000)
  await sleep(Math.min(left, 1000))
  stopLateMs = Math.max(stopLateMs, performance.now() - want)
  const elapsed = performance.now() - tw0
  // Stop a run that clearly cannot keep up (after at least 2 s of window, or at its end).
  if (collapseBelow > 0 && (elapsed >= 2000 || elapsed >= windowTargetMs) && acceptedRtfSoFar() < collapseBelow) {
    collapsed = true
    break
  }
}

// ---- window end ----------------------------------------------------------------------------
measuring = false
const tw1 = performance.now()
const cpu1 = processCpuUs()
const main1 = mainThreadCpuUs()
const sys1 = systemBusyUs()
const eldSummary = eld.summary()
eld.stop()
const windowS = (tw1 - tw0) / 1000
phase(`window end after ${windowS.toFixed(2)} s${collapsed ? ' (collapsed)' : ''}`)

const acceptedRtf = Array.from(accepted, (a) => (a * frameSec) / windowS)
/** @type {number[]} */
let deliveredRtf = []
let underruns = 0
let queuedEndSum = 0
if (lib === 'capstan') {
  const d1 = new Float64Array(N)
  const t1s = new Float64Array(N)
  await chunked(N, (i) => {
    const m = sources[i].metrics()
    t1s[i] = performance.now()
    d1[i] = m.delivered
    underruns += m.underruns - u0[i]
    queuedEndSum += m.queuedMs
  })
  deliveredRtf = Array.from(d1, (d, i) => (d - d0[i]) / SAMPLE_RATE / ((t1s[i] - t0s[i]) / 1000))
}

phase('delivered snapshot taken, closing')
stop = true
clearInterval(beat)
const gapsWholeRun = gapsAll.summary()
const tClose0 = performance.now()
await Promise.all(sources.map((s) => s.close()))
if (lib === 'livekit') {
  try {
    await mod.dispose()
  } catch {
    // best effort
  }
}
const closeMs = performance.now() - tClose0
phase(`closed in ${closeMs.toFixed(0)} ms`)

const rtf = lib === 'capstan' ? minAvg(deliveredRtf) : minAvg(acceptedRtf)
const acc = minAvg(acceptedRtf)
const cpuUs = cpu1 - cpu0
emit({
  scenario: 'realtime',
  lib,
  grouped,
  n: N,
  frameMs,
  seconds,
  warmup,
  warmupUsedS,
  steadyAtWindowStart: probeFull || probeRate < 0.9,
  probeRate,
  queuedAtWindowStartS,
  queuedMethod: lib === 'capstan' ? 'native queuedMs' : 'estimate: accepted audio - time since first accept',
  queuedMsWindowStartAvg: lib === 'capstan' ? queuedStartSum / N : null,
  queuedMsWindowEndAvg: lib === 'capstan' ? queuedEndSum / N : null,
  queueMs,
  windowS,
  setupMs,
  closeMs,
  collapsed,
  rtfMethod:
    lib === 'capstan'
      ? 'metrics().delivered delta per source / 48000 / per-source window'
      : 'frames accepted by captureFrame in window x frame duration / window (queue full in steady state: accepts what it plays out)',
  rtfMin: rtf.min,
  rtfAvg: rtf.avg,
  acceptedRtfMin: acc.min,
  acceptedRtfAvg: acc.avg,
  underruns: lib === 'capstan' ? underruns : null,
  frames: framesInWindow,
  framesPerSec: framesInWindow / windowS,
  cpuUsPerFrame: framesInWindow ? cpuUs / framesInWindow : NaN,
  cpuCores: cpuUs / 1e6 / windowS,
  mainThreadUsPerFrame: main0 !== null && main1 !== null && framesInWindow ? (main1 - main0) / framesInWindow : null,
  mainThreadCores: main0 !== null && main1 !== null ? (main1 - main0) / 1e6 / windowS : null,
  eld: eldSummary,
  capture: lat.summary(),
  timerMs: TIMER_MS,
  gaps: gapsWholeRun,
  gapsWindow: gapsWindow.summary(),
  stopLateMs,
  startLoopMs,
  loopStalled: gapsWholeRun.max > 100 || stopLateMs > 100,
  healthReported: Object.fromEntries(Object.entries(reported).map(([k, v]) => [k, v.size])),
  nonAccepted: Object.values(nonAccepted).reduce((a, b) => a + b, 0) + 0,
  nonAcceptedByStatus: nonAccepted,
  errors,
  firstError,
  otherProcessesCores: sys0 !== null && sys1 !== null ? Math.max(0, (sys1 - sys0 - cpuUs) / 1e6 / windowS) : null,
  rssMb: rssMb(),
})
process.exit(0)
