// The seed scenario: 40 pull sources under 'wait' with deadlines; consumers read, stop for
// about a second, then resume. Every capture settles in bounded time, every source stalls
// and recovers, and what each consumer read is exactly what was accepted, in order.
import { expect, it } from 'vitest'

import { AudioSource, type CaptureOutcome, type HealthEvent } from '../../dist/index.js'
import { expectInvariant, sleep, waitUntil } from '../helpers'

const SOURCES = 40
const C = 480
const DEADLINE = 300
const SLACK = 700

/** Frame `seq` of source `s`: header (seq low/high 15 bits, source), then a keyed ramp. */
function makeFrame(s: number, seq: number): Int16Array {
  const f = new Int16Array(C)
  f[0] = seq & 0x7fff
  f[1] = seq >> 15
  f[2] = s
  for (let j = 3; j < C; j++) f[j] = ((seq * 31 + j * 7 + s * 101) & 0x7fff) - 16384
  return f
}

function frameMatches(d: Int16Array, s: number, seq: number): boolean {
  if (d.length !== C || d[0] !== (seq & 0x7fff) || d[1] !== seq >> 15 || d[2] !== s) return false
  for (let j = 3; j < C; j++) if (d[j] !== ((seq * 31 + j * 7 + s * 101) & 0x7fff) - 16384) return false
  return true
}

interface Lane {
  s: number
  src: AudioSource
  accepted: number[] // seqs accepted, in call order
  read: number[] // seqs read, in read order
  timeouts: number
  unexpected: CaptureOutcome[]
  corrupt: number
  maxElapsed: number
  health: HealthEvent[]
  resumeIndex: number
  stalledInPause: boolean
}

it('40 sources: read, stall for ~1 s, resume — bounded waits, health transitions, sample-exact delivery', async () => {
  const lanes: Lane[] = []
  for (let s = 0; s < SOURCES; s++) {
    const src = new AudioSource({
      sampleRate: 48000,
      channels: 1,
      consumer: 'pull',
      queueMs: 100,
      overflow: 'wait',
      deadlineMs: DEADLINE,
      stallAfterMs: 150,
    })
    const lane: Lane = {
      s,
      src,
      accepted: [],
      read: [],
      timeouts: 0,
      unexpected: [],
      corrupt: 0,
      maxElapsed: 0,
      health: [],
      resumeIndex: -1,
      stalledInPause: false,
    }
    src.on('health', (e) => lane.health.push(e))
    lanes.push(lane)
  }

  let producing = true
  let paused = false
  let resume: () => void = () => {}
  let resumed: Promise<void> = Promise.resolve()

  const producer = async (l: Lane): Promise<void> => {
    let seq = 0
    let next = performance.now()
    while (producing) {
      const t0 = performance.now()
      const o = await l.src.captureFrame(makeFrame(l.s, seq))
      l.maxElapsed = Math.max(l.maxElapsed, performance.now() - t0)
      if (o.status === 'accepted' && o.acceptedSamples === C && o.droppedSamples === 0) l.accepted.push(seq)
      else if (o.status === 'timeout' && o.acceptedSamples === 0 && o.droppedSamples === C) l.timeouts++
      else l.unexpected.push(o)
      seq++
      // Real-time pace; after a long wait, carry on from now instead of bursting to catch up.
      next += 10
      const now = performance.now()
      if (next < now - 30) next = now
      if (next > now) await sleep(next - now)
    }
  }

  const consumer = async (l: Lane): Promise<void> => {
    const it = l.src.frames()
    for (;;) {
      if (paused) await resumed
      const r = await it.next()
      if (r.done) return
      const d = r.value.data as Int16Array
      const seq = d[0] + d[1] * 32768
      if (!frameMatches(d, l.s, seq)) l.corrupt++
      l.read.push(seq)
    }
  }

  const t0 = performance.now()
  const producers = lanes.map(producer)
  const consumers = lanes.map(consumer)

  // Phase 1: consumers keep up.
  await sleep(1000)
  for (const l of lanes) {
    expect(l.read.length, `source ${l.s} read in phase 1`).toBeGreaterThan(20)
    expect(l.src.health).not.toBe('stalled')
  }

  // Phase 2: every consumer stops reading for ~1.1 s while producers keep pushing.
  resumed = new Promise<void>((r) => (resume = r))
  paused = true
  const pauseStart = lanes.map((l) => l.health.length)
  await sleep(1100)
  for (const l of lanes) {
    const during = l.health.slice(pauseStart[l.s])
    l.stalledInPause = during.some((e) => e.state === 'stalled')
    expect(l.stalledInPause, `source ${l.s} stalled: ${JSON.stringify(during.map((e) => e.state))}`).toBe(true)
    expect(l.src.health).toBe('stalled')
    expect(l.timeouts, `source ${l.s} timeouts while stalled`).toBeGreaterThanOrEqual(1)
    expect(l.src.metrics().stalls).toBeGreaterThanOrEqual(1)
    expect(l.src.queuedMs).toBe(100)
  }

  // Phase 3: consumers resume; every source recovers and becomes healthy by itself.
  for (const l of lanes) l.resumeIndex = l.health.length
  const readAtResume = lanes.map((l) => l.read.length)
  paused = false
  resume()
  await waitUntil(
    () =>
      lanes.every((l) => {
        const after = l.health.slice(l.resumeIndex).map((e) => e.state)
        const r = after.indexOf('recovered')
        return r >= 0 && after.indexOf('healthy', r) > r
      }),
    6000,
    'recovered → healthy on every source',
  )
  await sleep(300)
  for (const l of lanes) {
    expect(l.read.length - readAtResume[l.s], `source ${l.s} delivers again`).toBeGreaterThan(10)
    const after = l.health.slice(l.resumeIndex)
    expect(after[0].state).toBe('recovered')
    expect(after[0].previous).toBe('stalled')
    expect(after[0].sinceMs).toBeGreaterThanOrEqual(150)
  }

  // Stop producing; everything still waiting settles, consumers drain the queues.
  producing = false
  await Promise.all(producers)
  await waitUntil(() => lanes.every((l) => l.src.metrics().queued === 0), 5000, 'queues drained')
  const finalMetrics = lanes.map((l) => l.src.metrics())
  await Promise.all(lanes.map((l) => l.src.close()))
  await Promise.all(consumers)
  const total = performance.now() - t0

  for (const l of lanes) {
    const m = finalMetrics[l.s]
    expect(l.unexpected, `source ${l.s} unexpected outcomes`).toEqual([])
    expect(l.corrupt, `source ${l.s} corrupt frames`).toBe(0)
    expect(l.maxElapsed, `source ${l.s} slowest capture (ms)`).toBeLessThan(DEADLINE + SLACK)
    // Sample-exact: what was read is exactly, in order, what was accepted — no loss, no invention.
    expect(l.read.length).toBe(l.accepted.length)
    expect(l.read).toEqual(l.accepted)
    for (let i = 1; i < l.read.length; i++) expect(l.read[i]).toBeGreaterThan(l.read[i - 1])
    // Accounting.
    expectInvariant(m)
    expect(m.delivered).toBe(l.read.length * C)
    expect(m.dropped).toBe(l.timeouts * C)
    expect(m.captured).toBe((l.accepted.length + l.timeouts) * C)
    expect(m.cleared).toBe(0)
    expect(m.outcomes.timeout).toBe(l.timeouts)
    expect(m.outcomes.accepted).toBe(l.accepted.length)
    expect(m.waitingCaptures).toBe(0)
    expect(m.health).toBe('healthy')
    // Health events form one consistent chain starting from 'healthy'.
    let prev = 'healthy'
    for (const e of l.health) {
      expect(e.previous).toBe(prev)
      prev = e.state
    }
    expectInvariant(l.src.metrics())
  }
  expect(total).toBeLessThan(15_000)
}, 30_000)
