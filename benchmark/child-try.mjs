// @ts-check
// Scenario "tryCaptureFrame hot loop": 10 ms frames into a capstan source with overflow
// 'drop-oldest' (so it never fills and every call does the full work), for `--seconds`.
// Also, for reference, the same loop with a bare Int16Array and with `await captureFrame()`.
//
//   node benchmark/child-try.mjs [--seconds 3] [--frame-ms 10]
import { SAMPLE_RATE, emit, loadLib, mainThreadCpuUs, num, parseArgs, processCpuUs, systemBusyUs, toneFrame } from './common.mjs'

const args = parseArgs(process.argv.slice(2))
const seconds = num(args, 'seconds', 3)
const frameMs = num(args, 'frame-ms', 10)
const mod = /** @type {any} */ (await loadLib('capstan'))
const data = toneFrame(frameMs)
const frame = new mod.AudioFrame(data, SAMPLE_RATE, 1)

const newSource = () =>
  new mod.AudioSource({ sampleRate: SAMPLE_RATE, channels: 1, consumer: 'realtime', queueMs: 200, overflow: 'drop-oldest' })

/**
 * @param {string} name
 * @param {any} source
 * @param {(s: any) => any} call one call; returns the outcome (or a promise of it)
 * @param {boolean} isAsync
 */
async function loop(name, source, call, isAsync) {
  /** @type {Record<string, number>} */
  const statuses = {}
  let calls = 0
  let accepted = 0
  const limit = seconds * 1000
  const cpu0 = processCpuUs()
  const main0 = mainThreadCpuUs()
  const sys0 = systemBusyUs()
  const t0 = performance.now()
  let el = 0
  while (el < limit) {
    for (let k = 0; k < 1000; k++) {
      const o = isAsync ? await call(source) : call(source)
      if (o.status === 'accepted') accepted++
      else statuses[o.status] = (statuses[o.status] ?? 0) + 1
    }
    calls += 1000
    el = performance.now() - t0
  }
  const cpu = processCpuUs() - cpu0
  const main1 = mainThreadCpuUs()
  const sys1 = systemBusyUs()
  const m = source.metrics()
  await source.close()
  return {
    name,
    calls,
    seconds: el / 1000,
    callsPerSec: calls / (el / 1000),
    nsPerCall: (el * 1e6) / calls,
    cpuNsPerCall: (cpu * 1000) / calls,
    mainThreadNsPerCall: main0 !== null && main1 !== null ? ((main1 - main0) * 1000) / calls : null,
    statuses: { accepted, ...statuses },
    invariant: m.captured === m.delivered + m.queued + m.dropped + m.cleared,
    dropped: m.dropped,
    otherProcessesCores: sys0 !== null && sys1 !== null ? Math.max(0, (sys1 - sys0 - cpu) / 1e6 / (el / 1000)) : null,
  }
}

const results = []
results.push(await loop('tryCaptureFrame(AudioFrame)', newSource(), (s) => s.tryCaptureFrame(frame), false))
results.push(await loop('tryCaptureFrame(Int16Array)', newSource(), (s) => s.tryCaptureFrame(data), false))
results.push(await loop('await captureFrame(AudioFrame)', newSource(), (s) => s.captureFrame(frame), true))

emit({ scenario: 'try', lib: 'capstan', frameMs, seconds, overflow: 'drop-oldest', results })
process.exit(0)
