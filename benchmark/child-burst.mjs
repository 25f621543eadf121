// @ts-check
// Scenario "burst": one source, `--audio-s` seconds of audio pushed as fast as allowed
// (`for (...) await source.captureFrame(frame)`), repeated `--reps` times on fresh sources.
//
//   node benchmark/child-burst.mjs --lib capstan --mode unpaced|realtime [--audio-s 10] [--frame-ms 10] [--reps 5]
//   node benchmark/child-burst.mjs --lib livekit [--audio-s 10] ...
//
// capstan unpaced (queueMs 200 or --queue-ms, overflow 'wait'): measures the engine; the wall time is until
//   every capture settled, and (playout) until waitForPlayout() resolved (all delivered).
// capstan realtime with queueMs = audio length: shows the whole burst is accepted at once.
// livekit: AudioSource(48000, 1, audio length in ms), same push loop.
import { SAMPLE_RATE, emit, loadLib, mainThreadCpuUs, num, parseArgs, processCpuUs, str, systemBusyUs, toneFrame } from './common.mjs'

const args = parseArgs(process.argv.slice(2))
const lib = str(args, 'lib', 'capstan')
const mode = lib === 'livekit' ? 'queue' : str(args, 'mode', 'unpaced')
const audioS = num(args, 'audio-s', 10)
const frameMs = num(args, 'frame-ms', 10)
const reps = Math.max(1, Math.round(num(args, 'reps', 5)))
const frames = Math.round((audioS * 1000) / frameMs)
const frameSamples = (SAMPLE_RATE * frameMs) / 1000
const bytes = frames * frameSamples * 2
const audioMs = audioS * 1000
// The queue holds the whole burst (rounded up to a multiple of 10 ms).
const bigQueueMs = Math.ceil(audioMs / 10) * 10
// capstan unpaced: queue capacity (default 200 ms, capstan's default; 'full' = the burst length).
const unpacedQueueMs = str(args, 'queue-ms', '200') === 'full' ? bigQueueMs : num(args, 'queue-ms', 200)

const mod = /** @type {any} */ (await loadLib(/** @type {'capstan' | 'livekit'} */ (lib)))
const data = toneFrame(frameMs)
const frame = lib === 'capstan' ? new mod.AudioFrame(data, SAMPLE_RATE, 1) : new mod.AudioFrame(data, SAMPLE_RATE, 1, frameSamples)

function makeSource() {
  if (lib === 'livekit') return new mod.AudioSource(SAMPLE_RATE, 1, bigQueueMs)
  if (mode === 'unpaced') {
    return new mod.AudioSource({ sampleRate: SAMPLE_RATE, channels: 1, consumer: 'unpaced', queueMs: unpacedQueueMs, overflow: 'wait', deadlineMs: 5000 })
  }
  return new mod.AudioSource({
    sampleRate: SAMPLE_RATE,
    channels: 1,
    consumer: 'realtime',
    queueMs: bigQueueMs,
    overflow: 'wait',
    deadlineMs: 5000,
  })
}

/** @type {{ acceptedMs: number, playoutMs: number | null, nonAccepted: number, maxCallMs: number }[]} */
const runs = []
const cpu0 = processCpuUs()
const main0 = mainThreadCpuUs()
const sys0 = systemBusyUs()
const tAll0 = performance.now()
let acceptedTotalMs = 0
for (let r = 0; r < reps; r++) {
  const s = makeSource()
  let nonAccepted = 0
  let maxCallMs = 0
  const t0 = performance.now()
  for (let k = 0; k < frames; k++) {
    const c0 = performance.now()
    const o = await s.captureFrame(frame)
    const c = performance.now() - c0
    if (c > maxCallMs) maxCallMs = c
    if (o !== undefined && o.status !== 'accepted') nonAccepted++
  }
  const acceptedMs = performance.now() - t0
  acceptedTotalMs += acceptedMs
  /** @type {number | null} */
  let playoutMs = null
  if (lib === 'capstan' && mode === 'unpaced') {
    await s.waitForPlayout()
    playoutMs = performance.now() - t0
    const m = s.metrics()
    if (m.delivered !== frames * frameSamples) throw new Error(`delivered ${m.delivered}, expected ${frames * frameSamples}`)
  }
  await s.close()
  runs.push({ acceptedMs, playoutMs, nonAccepted, maxCallMs })
}
const cpuUs = processCpuUs() - cpu0
const main1 = mainThreadCpuUs()
const sys1 = systemBusyUs()
const allS = (performance.now() - tAll0) / 1000
if (lib === 'livekit') await mod.dispose().catch(() => {})

/** @param {number[]} xs */
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const acc = runs.map((r) => r.acceptedMs)
const play = runs.map((r) => r.playoutMs).filter((x) => x !== null)
const mbps = (/** @type {number} */ ms) => bytes / 1e6 / (ms / 1000)
emit({
  scenario: 'burst',
  lib,
  mode,
  queueMs: lib === 'capstan' && mode === 'unpaced' ? unpacedQueueMs : bigQueueMs,
  audioS,
  frameMs,
  frames,
  bytes,
  reps,
  acceptedMsMedian: median(acc),
  acceptedMsBest: Math.min(...acc),
  acceptedMBpsMedian: mbps(median(acc)),
  playoutMsMedian: play.length ? median(/** @type {number[]} */ (play)) : null,
  playoutMBpsMedian: play.length ? mbps(median(/** @type {number[]} */ (play))) : null,
  realtimeX: audioMs / median(play.length ? /** @type {number[]} */ (play) : acc),
  usPerFrame: (median(acc) * 1000) / frames,
  cpuUsPerFrame: cpuUs / (frames * reps),
  mainThreadUsPerFrame: main0 !== null && main1 !== null ? (main1 - main0) / (frames * reps) : null,
  maxCallMs: Math.max(...runs.map((r) => r.maxCallMs)),
  nonAccepted: runs.reduce((a, r) => a + r.nonAccepted, 0),
  runs,
  acceptedTotalMs,
  otherProcessesCores: sys0 !== null && sys1 !== null ? Math.max(0, (sys1 - sys0 - cpuUs) / 1e6 / allS) : null,
})
process.exit(0)
