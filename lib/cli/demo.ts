import { AudioSource } from '../source/source'
import type { CaptureStatus, HealthEvent } from '../source/types'

export interface DemoOptions {
  sources: number
  seconds: number
  stallAtMs: number
  stallMs: number
  log: (line: string) => void
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const RATE = 48_000
const FRAME_MS = 20

/**
 * A short simulation of the problem capstan exists for: many TTS-like producers push
 * audio into real-time sources whose downstream transport hangs for a while. Nothing
 * hangs, every capture settles, health says what happens, and the sources recover by
 * themselves when the transport does.
 */
export async function runDemo(o: DemoOptions): Promise<boolean> {
  const { log } = o
  const t0 = performance.now()
  const at = () => ((performance.now() - t0) / 1000).toFixed(2).padStart(5)
  log(`capstan demo: ${o.sources} real-time sources, 48 kHz mono, ${FRAME_MS} ms frames pushed as fast as allowed`)
  log(`  queue 200 ms, overflow 'wait', deadline 400 ms, stall after 250 ms; the JS transport reading`)
  log(`  every source hangs from t=${(o.stallAtMs / 1000).toFixed(1)}s for ${(o.stallMs / 1000).toFixed(1)}s, then resumes.`)
  log('')

  const sources = Array.from(
    { length: o.sources },
    () =>
      new AudioSource({
        sampleRate: RATE,
        channels: 1,
        queueMs: 200,
        overflow: 'wait',
        deadlineMs: 400,
        stallAfterMs: 250,
        consumer: 'realtime',
      }),
  )

  // Health transitions, printed as they happen, grouped per 100 ms window.
  const window = new Map<string, number>()
  const recoveries: number[] = []
  const stalledAt = new Map<AudioSource, number>()
  const recoveredAfter: number[] = []
  let flush: NodeJS.Timeout | undefined
  const onHealth = (s: AudioSource) => (e: HealthEvent) => {
    const key = `${e.previous} → ${e.state}`
    window.set(key, (window.get(key) ?? 0) + 1)
    if (e.state === 'stalled') stalledAt.set(s, performance.now())
    if (e.state === 'recovered') recoveries.push(e.sinceMs)
    if (e.state === 'healthy' && e.previous === 'recovered' && stalledAt.has(s)) {
      recoveredAfter.push(performance.now() - (t0 + o.stallAtMs + o.stallMs))
    }
    flush ??= setTimeout(() => {
      flush = undefined
      const parts = [...window].map(([k, n]) => `${String(n).padStart(4)} × ${k}`)
      window.clear()
      log(`[${at()}s] health ${parts.join(', ')}`)
    }, 100)
  }
  for (const s of sources) s.on('health', onHealth(s))

  const outcomes: Record<CaptureStatus, number> = {
    accepted: 0,
    partial: 0,
    dropped: 0,
    timeout: 0,
    aborted: 0,
    cleared: 0,
    closed: 0,
  }
  let worstSettle = 0
  let stop = false
  let transportHung = false
  let deliveredFrames = 0

  // Producers: a TTS-like loop per source; each capture waits for room (backpressure).
  const frame = new Int16Array((RATE * FRAME_MS) / 1000)
  for (let i = 0; i < frame.length; i++) frame[i] = Math.round(8000 * Math.sin((2 * Math.PI * 220 * i) / RATE))
  const producers = sources.map(async (s) => {
    while (!stop) {
      const start = performance.now()
      const r = await s.captureFrame(frame)
      worstSettle = Math.max(worstSettle, performance.now() - start)
      outcomes[r.status]++
      if (r.status !== 'accepted') await sleep(20)
    }
  })

  // The transport: a JS reader per source that forwards frames; it hangs for a while.
  const transports = sources.map(async (s) => {
    for await (const f of s.frames()) {
      deliveredFrames += f.samplesPerChannel > 0 ? 1 : 0
      if (transportHung) await hang()
      if (stop) break
    }
  })
  let resume: () => void = () => {}
  let resumed = Promise.resolve()
  const hang = () => resumed

  await sleep(o.stallAtMs)
  resumed = new Promise<void>((r) => (resume = r))
  transportHung = true
  log(`[${at()}s] transport hangs`)
  await sleep(o.stallMs)
  transportHung = false
  resume()
  log(`[${at()}s] transport resumes`)
  await sleep(Math.max(0, o.seconds * 1000 - o.stallAtMs - o.stallMs))
  stop = true
  await Promise.all(producers)

  const metrics = sources.map((s) => s.metrics())
  const sum = (k: 'captured' | 'delivered' | 'queued' | 'dropped' | 'cleared' | 'underruns' | 'stalls') =>
    metrics.reduce((a, m) => a + m[k], 0)
  const balanced = metrics.every((m) => m.captured === m.delivered + m.queued + m.dropped + m.cleared)
  const healthy = sources.filter((s) => s.health === 'healthy').length
  for (const s of sources) await s.close()
  await Promise.all(transports)
  clearTimeout(flush)

  const ms = (samples: number) => `${((samples / RATE) * 1000).toFixed(0)} ms`
  const pct = (xs: number[], p: number) =>
    xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] : NaN
  log('')
  log('summary')
  const rows: [string, string][] = [
    ['captures settled', Object.values(outcomes).reduce((a, b) => a + b, 0).toString()],
    ...Object.entries(outcomes)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => [`  ${k}`, String(n)] as [string, string]),
    ['slowest capture to settle', `${worstSettle.toFixed(0)} ms (deadline 400 ms)`],
    ['audio captured', ms(sum('captured'))],
    ['audio delivered (per source avg)', ms(sum('delivered') / o.sources)],
    ['audio dropped at deadlines', ms(sum('dropped'))],
    ['audio still queued at the end (then closed)', ms(sum('queued'))],
    ['underrun ticks (silence sent)', String(sum('underruns'))],
    ['sources that stalled', `${metrics.filter((m) => m.stalls > 0).length} / ${o.sources}`],
    [
      'stall length (recovered.sinceMs)',
      recoveries.length
        ? `p50 ${pct(recoveries, 50).toFixed(0)} ms, max ${pct(recoveries, 100).toFixed(0)} ms`
        : 'n/a',
    ],
    [
      'back to healthy after resume',
      recoveredAfter.length
        ? `${recoveredAfter.length} sources, p50 ${pct(recoveredAfter, 50).toFixed(0)} ms, max ${pct(recoveredAfter, 100).toFixed(0)} ms`
        : 'n/a',
    ],
    ['healthy at the end', `${healthy} / ${o.sources}`],
    ['frames the transport received', String(deliveredFrames)],
    ['accounting captured = delivered + queued + dropped + cleared', balanced ? 'holds for every source' : 'BROKEN'],
  ]
  const w = Math.max(...rows.map((r) => r[0].length))
  for (const [k, v] of rows) log(`  ${k.padEnd(w)}  ${v}`)
  return balanced && healthy === o.sources
}
