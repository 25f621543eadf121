// @ts-check
// Soak: N real-time sources for M minutes, each fed by a plain `await captureFrame` loop
// (20 ms frames) and read by a JS "transport" (`frames()`), with the transport hung for
// a while once a minute. Every 30 s it prints RSS, heap, health states, transitions,
// captures issued vs settled and the accounting invariant; at the end, whether RSS stayed
// flat after warm-up. Not part of `npm test`.
//
//   npm run soak -- [--sources 1000] [--minutes 10] [--stall-ms 2000]
import { parseArgs, num, sleep } from './common.mjs'

const args = parseArgs(process.argv.slice(2))
const N = num(args, 'sources', 1000)
const minutes = num(args, 'minutes', 10)
const stallMs = num(args, 'stall-ms', 2000)
const REPORT_MS = 30_000
const RATE = 48000
const FRAME_MS = 20

const { AudioSource } = /** @type {any} */ (await import('../dist/index.mjs'))

const sources = Array.from(
  { length: N },
  () => new AudioSource({ sampleRate: RATE, channels: 1, queueMs: 200, overflow: 'wait', deadlineMs: 400, stallAfterMs: 250 }),
)
/** @type {Record<string, number>} */
const transitions = {}
for (const s of sources) {
  s.on('health', (/** @type {{ previous: string, state: string }} */ e) => {
    const k = `${e.previous}→${e.state}`
    transitions[k] = (transitions[k] ?? 0) + 1
  })
}

let stop = false
let hung = false
let resumed = Promise.resolve()
let resume = () => {}
let issued = 0
let settled = 0
/** @type {Record<string, number>} */
const statuses = {}
const frame = new Int16Array((RATE * FRAME_MS) / 1000)
for (let i = 0; i < frame.length; i++) frame[i] = Math.round(8000 * Math.sin((2 * Math.PI * 220 * i) / RATE))

const producers = sources.map(async (s) => {
  while (!stop) {
    issued++
    const o = await s.captureFrame(frame)
    settled++
    statuses[o.status] = (statuses[o.status] ?? 0) + 1
    if (o.status !== 'accepted') await sleep(FRAME_MS)
  }
})
const transports = sources.map(async (s) => {
  for await (const _ of s.frames()) {
    if (hung) await resumed
    if (stop) break
  }
})

const t0 = performance.now()
const at = () => ((performance.now() - t0) / 1000).toFixed(0).padStart(4)
const mb = (/** @type {number} */ b) => Math.round(b / 1048576)
/** @type {number[]} */
const rss = []
const report = () => {
  const m = process.memoryUsage()
  rss.push(mb(m.rss))
  /** @type {Record<string, number>} */
  const health = {}
  let invariant = true
  for (const s of sources) {
    const x = s.metrics()
    health[x.health] = (health[x.health] ?? 0) + 1
    if (x.captured !== x.delivered + x.queued + x.dropped + x.cleared) invariant = false
  }
  console.log(
    `[${at()} s] rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)} MB | health ${JSON.stringify(health)} | ` +
      `transitions ${JSON.stringify(transitions)} | issued ${issued}, settled ${settled}, in flight ${issued - settled} | ` +
      `${JSON.stringify(statuses)} | invariant ${invariant ? 'holds' : 'BROKEN'}`,
  )
  for (const k of Object.keys(transitions)) delete transitions[k]
  return invariant
}

console.log(`soak: ${N} sources, ${minutes} min, transport hung for ${stallMs} ms once a minute`)
let ok = true
const reporter = setInterval(() => (ok = report() && ok), REPORT_MS)
const staller = setInterval(() => {
  resumed = new Promise((r) => (resume = () => r(undefined)))
  hung = true
  console.log(`[${at()} s] transport hangs`)
  setTimeout(() => {
    hung = false
    resume()
    console.log(`[${at()} s] transport resumes`)
  }, stallMs)
}, 60_000)
await sleep(minutes * 60_000)
clearInterval(staller)
clearInterval(reporter)
stop = true
await Promise.all(producers)
ok = report() && ok
await Promise.all(sources.map((s) => s.close()))
await Promise.all(transports)
// Flat after warm-up: RSS of the last report within 10 % (or 20 MB) of the first report
// after the first minute.
const base = rss[Math.min(2, rss.length - 1)]
const last = rss[rss.length - 1]
const flat = last <= Math.max(base * 1.1, base + 20)
console.log(`summary: issued ${issued}, settled ${settled} (${issued === settled ? 'all settled' : 'NOT ALL SETTLED'}); rss after warm-up ${base} MB, at the end ${last} MB (${flat ? 'flat' : 'GREW'}); invariant ${ok ? 'held at every report' : 'BROKEN'}`)
process.exit(issued === settled && flat && ok ? 0 : 1)
