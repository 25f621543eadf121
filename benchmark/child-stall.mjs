// @ts-check
// Scenario "stall": N capstan sources with consumer 'pull' and nobody reading, producers
// pushing via tryCaptureFrame at real-time pace (one 10 ms frame per source per 10 ms from a
// single setInterval loop that catches up if it runs late), stallAfterMs 250. Every source
// goes lagging -> stalled and then overflows on every push: measures the event loop and
// CPU while those health/overflow events are delivered, and counts them.
//
//   node benchmark/child-stall.mjs [--n 3000] [--seconds 5] [--overflow drop-oldest] [--queue-ms 200]
import {
  Hist,
  SAMPLE_RATE,
  emit,
  eventLoopMonitor,
  loadLib,
  mainThreadCpuUs,
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
const N = num(args, 'n', 3000)
const seconds = num(args, 'seconds', 5)
const overflow = str(args, 'overflow', 'drop-oldest')
const queueMs = num(args, 'queue-ms', 200)
const stallAfterMs = num(args, 'stall-after', 250)
const mod = /** @type {any} */ (await loadLib('capstan'))
const data = toneFrame(10)
const frame = new mod.AudioFrame(data, SAMPLE_RATE, 1)

/** @type {Record<string, number>} */
const events = {}
const stateCount = { lagging: 0, stalled: 0 }
/** @type {Record<string, number | null>} ms after start when every source had reached the state */
const allReached = { lagging: null, stalled: null }
let tStart = 0

/** @type {any[]} */
const sources = []
const tSetup0 = performance.now()
for (let i = 0; i < N; i++) {
  const s = new mod.AudioSource({ sampleRate: SAMPLE_RATE, channels: 1, consumer: 'pull', queueMs, overflow, stallAfterMs })
  s.on('health', (/** @type {any} */ e) => {
    const k = 'health:' + e.state
    events[k] = (events[k] ?? 0) + 1
    if (e.state === 'lagging' || e.state === 'stalled') {
      if (++stateCount[/** @type {'lagging' | 'stalled'} */ (e.state)] === N) allReached[e.state] = performance.now() - tStart
    }
  })
  s.on('overflow', () => {
    events.overflow = (events.overflow ?? 0) + 1
  })
  s.on('underrun', () => {
    events.underrun = (events.underrun ?? 0) + 1
  })
  s.on('deadline', () => {
    events.deadline = (events.deadline ?? 0) + 1
  })
  sources.push(s)
}
const setupMs = performance.now() - tSetup0

const eld = eventLoopMonitor()
const tickHist = new Hist()
/** @type {Record<string, number>} */
const statuses = {}
let pushes = 0
let ticks = 0
let produced = 0 // 10 ms periods produced so far
let lateTicks = 0

eld.reset()
const cpu0 = processCpuUs()
const main0 = mainThreadCpuUs()
const sys0 = systemBusyUs()
tStart = performance.now()
const iv = setInterval(() => {
  const t0 = performance.now()
  const due = Math.floor((t0 - tStart) / 10) + 1 - produced
  const n = Math.min(due, 5) // catch up at most 5 periods per tick (like the engine clock)
  if (due > 1) lateTicks++
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < N; i++) {
      const o = sources[i].tryCaptureFrame(frame)
      if (o.status !== 'accepted') statuses[o.status] = (statuses[o.status] ?? 0) + 1
    }
    pushes += N
  }
  produced += Math.max(due, 0) // skipped periods beyond 5 are lost (counted below)
  ticks++
  tickHist.record(performance.now() - t0)
}, 10)

await sleep(seconds * 1000)
clearInterval(iv)
const tw = (performance.now() - tStart) / 1000
const cpuUs = processCpuUs() - cpu0
const main1 = mainThreadCpuUs()
const sys1 = systemBusyUs()
const eldSummary = eld.summary()
eld.stop()

/** @type {Record<string, number>} */
const healthNow = {}
let stalls = 0
let invariant = true
for (const s of sources) {
  const m = s.metrics()
  healthNow[m.health] = (healthNow[m.health] ?? 0) + 1
  stalls += m.stalls
  if (m.captured !== m.delivered + m.queued + m.dropped + m.cleared) invariant = false
}
const tClose0 = performance.now()
await Promise.all(sources.map((s) => s.close()))
const closeMs = performance.now() - tClose0

const totalEvents = Object.values(events).reduce((a, b) => a + b, 0)
emit({
  scenario: 'stall',
  lib: 'capstan',
  n: N,
  seconds: tw,
  overflow,
  queueMs,
  stallAfterMs,
  setupMs,
  closeMs,
  pushes,
  expectedPushes: Math.floor((tw * 1000) / 10) * N,
  pushStatuses: { accepted: pushes - Object.values(statuses).reduce((a, b) => a + b, 0), ...statuses },
  ticks,
  lateTicks,
  tickMs: tickHist.summary(),
  jsUsPerPush: (tickHist.sum * 1000) / Math.max(pushes, 1),
  events,
  totalEvents,
  eventsPerSec: totalEvents / tw,
  allLaggingAtMs: allReached.lagging,
  allStalledAtMs: allReached.stalled,
  healthAtEnd: healthNow,
  stalls,
  invariant,
  eld: eldSummary,
  cpuCores: cpuUs / 1e6 / tw,
  mainThreadCores: main0 !== null && main1 !== null ? (main1 - main0) / 1e6 / tw : null,
  cpuUsPerPush: cpuUs / Math.max(pushes, 1),
  otherProcessesCores: sys0 !== null && sys1 !== null ? Math.max(0, (sys1 - sys0 - cpuUs) / 1e6 / tw) : null,
  rssMb: rssMb(),
})
process.exit(0)
