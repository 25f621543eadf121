// Every CaptureOutcome status, with exact accepted/dropped counts (samples per channel),
// the accounting invariant, and what actually ends up in the queue.
import { getEventListeners } from 'node:events'

import { afterEach, describe, expect, it } from 'vitest'

import { AudioFrame, type CaptureOutcome } from '../../dist/index.js'
import { arr, concat, expectInvariant, ramp, readFrames, settleTicks, sleep, track, tracker, within } from '../helpers'

const t = tracker()
afterEach(() => t.closeAll())

const C = 480 // one 10 ms chunk at 48 kHz mono

describe("'accepted'", () => {
  it('a frame that fits is accepted at once, with its queue depth', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 50 })
    const o = await s.captureFrame(ramp(C))
    expect(o).toEqual({ status: 'accepted', acceptedSamples: C, droppedSamples: 0, queuedMs: 10, waitedMs: 0 })
    const o2 = s.tryCaptureFrame(ramp(100))
    expect(o2).toEqual({ status: 'accepted', acceptedSamples: 100, droppedSamples: 0, queuedMs: (580 / 48000) * 1000, waitedMs: 0 })
    const m = s.metrics()
    expect(m.outcomes.accepted).toBe(2)
    expect(m).toMatchObject({ captured: 580, queued: 580 })
    expectInvariant(m)
  })

  it('stereo counts are per channel', async () => {
    const s = t.make({ sampleRate: 48000, channels: 2, consumer: 'pull' })
    expect(await s.captureFrame(new AudioFrame(ramp(1920), 48000, 2))).toMatchObject({ status: 'accepted', acceptedSamples: 960, droppedSamples: 0, queuedMs: 20 })
    expect(s.metrics()).toMatchObject({ captured: 960, queued: 960 })
  })

  it('a waiting capture that gets room settles accepted with waitedMs > 0', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 5000 })
    s.tryCaptureFrame(ramp(C, 0))
    const p = track(s.captureFrame(ramp(C, C)))
    await sleep(40)
    expect(p.settled).toBe(false)
    const frames = await readFrames(s.frames(), 2)
    const o = await within(p.promise, 2000)
    expect(o).toMatchObject({ status: 'accepted', acceptedSamples: C, droppedSamples: 0 })
    expect(o.waitedMs).toBeGreaterThanOrEqual(30)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(ramp(2 * C, 0)))
  })
})

describe("'partial'", () => {
  it('drop-newest keeps what fits and drops the rest of the frame', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 50, overflow: 'drop-newest' })
    expect(await s.captureFrame(ramp(3 * C, 0))).toMatchObject({ status: 'accepted', acceptedSamples: 3 * C })
    const o = await s.captureFrame(ramp(4 * C, 10_000))
    expect(o).toEqual({ status: 'partial', acceptedSamples: 2 * C, droppedSamples: 2 * C, queuedMs: 50, waitedMs: 0 })
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 7 * C, queued: 5 * C, dropped: 2 * C })
    expect(m.outcomes.partial).toBe(1)
    expectInvariant(m)
    const frames = await readFrames(s.frames(), 5)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(concat([ramp(3 * C, 0), ramp(2 * C, 10_000)])))
  })

  it('drop-newest with a carried remainder: whole chunks that fit plus the carried tail', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'drop-newest' })
    s.tryCaptureFrame(ramp(C + 100, 0)) // 1 chunk queued + 100 carried
    // 1 chunk of room: completes the carried 100 with 380 samples, the other 1000 do not fit.
    const o = s.tryCaptureFrame(ramp(1380, 50_000))
    expect(o).toMatchObject({ status: 'partial', acceptedSamples: 380, droppedSamples: 1000 })
    const m = s.metrics()
    expect(m).toMatchObject({ captured: C + 100 + 1380, queued: 2 * C, dropped: 1000 })
    expectInvariant(m)
    const frames = await readFrames(s.frames(), 2)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(concat([ramp(C + 100, 0), ramp(380, 50_000)])))
  })

  it('drop-oldest with a frame larger than the queue evicts its own head (partial)', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 50, overflow: 'drop-oldest' })
    const frame = ramp(8 * C, 777)
    const o = await s.captureFrame(frame)
    expect(o).toEqual({ status: 'partial', acceptedSamples: 5 * C, droppedSamples: 3 * C, queuedMs: 50, waitedMs: 0 })
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 8 * C, queued: 5 * C, dropped: 3 * C })
    expectInvariant(m)
    const frames = await readFrames(s.frames(), 5)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(frame.subarray(3 * C)))
  })

  it('drop-oldest evicting only older audio is accepted, and reports what it evicted', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 30, overflow: 'drop-oldest' })
    s.tryCaptureFrame(ramp(2 * C, 0))
    const o = s.tryCaptureFrame(ramp(2 * C, 20_000))
    expect(o).toMatchObject({ status: 'accepted', acceptedSamples: 2 * C, droppedSamples: C, queuedMs: 30 })
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 4 * C, queued: 3 * C, dropped: C })
    expectInvariant(m)
    const frames = await readFrames(s.frames(), 3)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(concat([ramp(C, C), ramp(2 * C, 20_000)])))
  })

  it("a 'wait' capture that only partly fits before its deadline: timeout with the queued part counted", async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'wait' })
    s.tryCaptureFrame(ramp(C, 0))
    const t0 = performance.now()
    const o = await within(s.captureFrame(ramp(3 * C, 3000), { deadlineMs: 60 }), 3000)
    const elapsed = performance.now() - t0
    expect(o).toMatchObject({ status: 'timeout', acceptedSamples: C, droppedSamples: 2 * C })
    expect(o.waitedMs).toBeGreaterThanOrEqual(55)
    expect(elapsed).toBeGreaterThanOrEqual(55)
    expect(elapsed).toBeLessThan(60 + 1000)
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 4 * C, queued: 2 * C, dropped: 2 * C, waitingCaptures: 0 })
    expectInvariant(m)
    const frames = await readFrames(s.frames(), 2)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(concat([ramp(C, 0), ramp(C, 3000)])))
  })
})

describe("'dropped'", () => {
  it('reject refuses a frame that does not fit whole, and accepts one that does', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 50, overflow: 'reject' })
    expect(await s.captureFrame(ramp(4 * C, 0))).toMatchObject({ status: 'accepted', acceptedSamples: 4 * C })
    expect(await s.captureFrame(ramp(2 * C, 9))).toEqual({ status: 'dropped', acceptedSamples: 0, droppedSamples: 2 * C, queuedMs: 40, waitedMs: 0 })
    // C + 1 samples need only one chunk of room (the extra sample is carried): accepted.
    expect(s.tryCaptureFrame(ramp(C + 1, 5000))).toMatchObject({ status: 'accepted', acceptedSamples: C + 1 })
    // Now full with 1 carried sample: 479 more would complete a chunk there is no room for.
    expect(s.tryCaptureFrame(ramp(C, 9))).toMatchObject({ status: 'dropped', acceptedSamples: 0, droppedSamples: C })
    expect(s.tryCaptureFrame(ramp(479, 9))).toMatchObject({ status: 'dropped', acceptedSamples: 0, droppedSamples: 479 })
    // 478 more stay carried (479 < one chunk): accepted.
    expect(s.tryCaptureFrame(ramp(478, 6000))).toMatchObject({ status: 'accepted', acceptedSamples: 478 })
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 4 * C + 2 * C + C + 1 + C + 479 + 478, queued: 5 * C + 479, dropped: 3 * C + 479 })
    expect(m.outcomes).toMatchObject({ accepted: 3, dropped: 3 })
    expectInvariant(m)
    const frames = await readFrames(s.frames(), 5)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(concat([ramp(4 * C, 0), ramp(C, 5000)])))
    const f = await s.flush()
    expect(f).toMatchObject({ status: 'accepted', acceptedSamples: 1 })
  })

  it('drop-newest with a full queue drops the whole frame', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'drop-newest' })
    s.tryCaptureFrame(ramp(C))
    expect(await s.captureFrame(ramp(C))).toMatchObject({ status: 'dropped', acceptedSamples: 0, droppedSamples: C })
    expectInvariant(s.metrics())
  })

  it("tryCaptureFrame under 'wait' never waits: a full queue drops the frame whole", async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'wait', deadlineMs: 5000 })
    expect(s.tryCaptureFrame(ramp(C))).toMatchObject({ status: 'accepted' })
    // 2 chunks do not fit in the 1 free chunk: refused whole, nothing partially queued.
    expect(s.tryCaptureFrame(ramp(2 * C))).toEqual({ status: 'dropped', acceptedSamples: 0, droppedSamples: 2 * C, queuedMs: 10, waitedMs: 0 })
    expect(s.tryCaptureFrame(ramp(C))).toMatchObject({ status: 'accepted' })
    expect(s.tryCaptureFrame(ramp(C))).toMatchObject({ status: 'dropped', droppedSamples: C })
    const m = s.metrics()
    expect(m).toMatchObject({ queued: 2 * C, dropped: 3 * C, waitingCaptures: 0 })
    expectInvariant(m)
  })
})

describe("'timeout'", () => {
  it("a 'wait' capture with no room settles timeout at the source deadline", async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'wait', deadlineMs: 80 })
    s.tryCaptureFrame(ramp(2 * C))
    const t0 = performance.now()
    const o = await within(s.captureFrame(ramp(C)), 3000)
    const elapsed = performance.now() - t0
    expect(o).toMatchObject({ status: 'timeout', acceptedSamples: 0, droppedSamples: C })
    expect(o.waitedMs).toBeGreaterThanOrEqual(75)
    expect(o.waitedMs).toBeLessThan(80 + 700)
    expect(elapsed).toBeGreaterThanOrEqual(75)
    expect(elapsed).toBeLessThan(80 + 1000)
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 3 * C, queued: 2 * C, dropped: C })
    expect(m.outcomes.timeout).toBe(1)
    expectInvariant(m)
  })

  it('the per-call deadlineMs overrides the source deadline; 0 means do not wait', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 60_000 })
    s.tryCaptureFrame(ramp(C))
    const t0 = performance.now()
    const o = await within(s.captureFrame(ramp(C), { deadlineMs: 50 }), 3000)
    expect(o).toMatchObject({ status: 'timeout', acceptedSamples: 0, droppedSamples: C })
    expect(performance.now() - t0).toBeLessThan(50 + 1000)
    const z = await within(s.captureFrame(ramp(2 * C), { deadlineMs: 0 }), 100)
    expect(z).toEqual({ status: 'timeout', acceptedSamples: 0, droppedSamples: 2 * C, queuedMs: 10, waitedMs: 0 })
    const m = s.metrics()
    expect(m).toMatchObject({ dropped: 3 * C, waitingCaptures: 0 })
    expect(m.outcomes.timeout).toBe(2)
    expectInvariant(m)
  })
})

describe("'aborted'", () => {
  it('an AbortSignal firing while the capture waits settles it aborted', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(C, 0))
    const ac = new AbortController()
    const p = track(s.captureFrame(ramp(3 * C, 100), { signal: ac.signal }))
    await sleep(40)
    expect(p.settled).toBe(false)
    expect(s.metrics()).toMatchObject({ waitingCaptures: 1, waitingSamples: 2 * C })
    ac.abort()
    const o = await within(p.promise, 1000)
    expect(o.status).toBe('aborted')
    expect(o).toMatchObject({ acceptedSamples: C, droppedSamples: 2 * C })
    expect(o.waitedMs).toBeGreaterThanOrEqual(30)
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 4 * C, queued: 2 * C, dropped: 2 * C, waitingCaptures: 0 })
    expect(m.outcomes.aborted).toBe(1)
    expectInvariant(m)
  })

  it('aborting the head waiter lets the next waiter move up', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(C, 0))
    const ac = new AbortController()
    const a = track(s.captureFrame(ramp(C, 1000), { signal: ac.signal }))
    const b = track(s.captureFrame(ramp(C, 2000)))
    ac.abort()
    expect(await a.promise).toMatchObject({ status: 'aborted', acceptedSamples: 0, droppedSamples: C })
    const frames = await readFrames(s.frames(), 2)
    expect(await within(b.promise, 2000)).toMatchObject({ status: 'accepted', acceptedSamples: C })
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(concat([ramp(C, 0), ramp(C, 2000)])))
    expectInvariant(s.metrics())
  })

  it('a signal already aborted settles aborted without touching the queue', async () => {
    const s = t.make({ sampleRate: 48000, channels: 2, consumer: 'pull', queueMs: 20, overflow: 'wait' })
    const o = await s.captureFrame(ramp(960), { signal: AbortSignal.abort() })
    expect(o).toMatchObject({ status: 'aborted', acceptedSamples: 0, droppedSamples: 480, waitedMs: 0 })
    expect(s.metrics()).toMatchObject({ captured: 0, queued: 0, dropped: 0 })
    expect(s.metrics().outcomes.aborted).toBe(1)
    expect(s.queuedMs).toBe(0)
  })

  it('every aborted capture is settled by the engine: one already aborted, one aborted while waiting', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(C + 7, 0))
    const pre = await s.captureFrame(ramp(C), { signal: AbortSignal.abort() })
    // queuedMs is the engine's depth at settlement, as for any outcome.
    expect(pre).toMatchObject({ status: 'aborted', acceptedSamples: 0, droppedSamples: C, waitedMs: 0 })
    expect(pre.queuedMs).toBeCloseTo((C + 7) / 48, 9)
    const ac = new AbortController()
    const waiting = track(s.captureFrame(ramp(2 * C), { signal: ac.signal }))
    await settleTicks(20)
    expect(waiting.settled).toBe(false)
    ac.abort()
    expect(await within(waiting.promise, 1000)).toMatchObject({ status: 'aborted', acceptedSamples: 0, droppedSamples: 2 * C })
    const m = s.metrics()
    expect(m.outcomes.aborted).toBe(2)
    expect(m).toMatchObject({ captured: 3 * C + 7, queued: C + 7, dropped: 2 * C, waitingCaptures: 0 })
    expectInvariant(m)
  })

  it('aborting after the capture settled changes nothing', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    const ac = new AbortController()
    const o = await s.captureFrame(ramp(C), { signal: ac.signal })
    ac.abort()
    await settleTicks(30)
    expect(o.status).toBe('accepted')
    expect(s.metrics()).toMatchObject({ captured: C, queued: C, dropped: 0 })
    expect(s.metrics().outcomes.aborted).toBe(0)
  })
})

describe("'cleared'", () => {
  it('clearQueue settles every waiting capture cleared and counts everything it discarded', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(2 * C + 7, 0)) // 2 chunks + 7 carried
    const a = track(s.captureFrame(ramp(C, 1)))
    const b = track(s.captureFrame(ramp(2 * C, 2)))
    await settleTicks(30)
    expect(a.settled || b.settled).toBe(false)
    // Completing the carried 7 samples needs a chunk of room, so nothing of either waiter is queued.
    expect(s.metrics()).toMatchObject({ waitingCaptures: 2, waitingSamples: 3 * C, queued: 2 * C + 7 })
    s.clearQueue()
    const [oa, ob] = await within(Promise.all([a.promise, b.promise]), 1000)
    expect(oa).toMatchObject({ status: 'cleared', acceptedSamples: 0, droppedSamples: C })
    expect(ob).toMatchObject({ status: 'cleared', acceptedSamples: 0, droppedSamples: 2 * C })
    const m = s.metrics()
    expect(m).toMatchObject({ queued: 0, queuedMs: 0, waitingCaptures: 0, captured: 5 * C + 7, cleared: 5 * C + 7, delivered: 0, dropped: 0 })
    expect(m.outcomes.cleared).toBe(2)
    expect(s.queuedMs).toBe(0)
    expectInvariant(m)
    // The source keeps working with fresh audio only.
    expect(s.tryCaptureFrame(ramp(C, 4242))).toMatchObject({ status: 'accepted' })
    const [f] = await readFrames(s.frames(), 1)
    expect(arr(f.data)).toEqual(arr(ramp(C, 4242)))
  })
})

describe("'closed'", () => {
  it('close settles waiting captures closed; captures after close are closed', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(C))
    const p = track(s.captureFrame(ramp(2 * C)))
    await settleTicks(30)
    expect(p.settled).toBe(false)
    await s.close()
    expect(await within(p.promise, 1000)).toMatchObject({ status: 'closed', acceptedSamples: 0, droppedSamples: 2 * C })
    const after: CaptureOutcome = await within(s.captureFrame(ramp(C)), 1000)
    expect(after).toMatchObject({ status: 'closed', acceptedSamples: 0, droppedSamples: C })
    expect(s.tryCaptureFrame(ramp(3 * C))).toMatchObject({ status: 'closed', acceptedSamples: 0, droppedSamples: 3 * C })
    const m = s.metrics()
    expect(m).toMatchObject({ queued: 0, cleared: 3 * C, captured: 3 * C, waitingCaptures: 0 })
    expect(m.outcomes.closed).toBe(3)
    expectInvariant(m)
    expect(s.closed).toBe(true)
  })
})

describe('one AbortSignal shared by many waiting calls (issue 10, defect 2)', () => {
  const listeners = (sig: AbortSignal): number => getEventListeners(sig, 'abort').length

  /** Collects process warnings (MaxListenersExceededWarning) while `f` runs. */
  async function warningsDuring(f: () => Promise<void>): Promise<string[]> {
    const seen: string[] = []
    const on = (w: Error) => seen.push(`${w.name}: ${w.message}`)
    process.on('warning', on)
    try {
      await f()
      // Warnings are emitted on the next tick.
      await sleep(10)
    } finally {
      process.off('warning', on)
    }
    return seen
  }

  it('50 waiting captures on one source: one listener, no warning; abort settles all 50 aborted, counted; listener gone', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(C, 0))
    const ac = new AbortController()
    let ps: Array<ReturnType<typeof track<CaptureOutcome>>> = []
    const warnings = await warningsDuring(async () => {
      ps = Array.from({ length: 50 }, (_, k) => track(s.captureFrame(ramp(C, k * C), { signal: ac.signal })))
      await sleep(20)
    })
    expect(warnings).toEqual([])
    expect(listeners(ac.signal)).toBe(1)
    expect(ps.every((p) => !p.settled)).toBe(true)
    expect(s.metrics()).toMatchObject({ waitingCaptures: 50, waitingSamples: 50 * C })
    ac.abort()
    const outs = await within(Promise.all(ps.map((p) => p.promise)), 2000, 'the 50 captures')
    for (const o of outs) expect(o).toMatchObject({ status: 'aborted', acceptedSamples: 0, droppedSamples: C })
    expect(listeners(ac.signal)).toBe(0)
    const m = s.metrics()
    // An aborted wait's samples are taken into custody and counted dropped (as for one capture).
    expect(m).toMatchObject({ captured: 51 * C, queued: C, dropped: 50 * C, waitingCaptures: 0, waitingSamples: 0 })
    expect(m.outcomes.aborted).toBe(50)
    expectInvariant(m)
  })

  it('the listener is removed once the last of them settles another way (cleared), and the signal may be reused', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(C, 0))
    const ac = new AbortController()
    const ps = Array.from({ length: 20 }, (_, k) => s.captureFrame(ramp(C, k * C), { signal: ac.signal }))
    const f = s.flush({ signal: ac.signal })
    expect(listeners(ac.signal)).toBe(1)
    s.clearQueue()
    const outs = await within(Promise.all([...ps, f]), 2000, 'the cleared captures')
    expect(outs.slice(0, 20).every((o) => o.status === 'cleared')).toBe(true)
    expect(listeners(ac.signal)).toBe(0)
    expect(s.metrics().outcomes.cleared).toBe(20)
    // A later wait on the same signal gets its own listener again, and aborting settles it.
    s.tryCaptureFrame(ramp(C, 0))
    const again = s.captureFrame(ramp(C, 5), { signal: ac.signal })
    expect(listeners(ac.signal)).toBe(1)
    ac.abort()
    expect(await within(again, 1000)).toMatchObject({ status: 'aborted' })
    expect(listeners(ac.signal)).toBe(0)
    expectInvariant(s.metrics())
  })

  it('waitForPlayout({ signal }) x 30 plus 30 captures on one signal: one listener; abort rejects every playout with the reason', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(C, 0))
    const ac = new AbortController()
    const warnings = await warningsDuring(async () => {
      const plays = Array.from({ length: 30 }, () => s.waitForPlayout({ signal: ac.signal }).then(() => 'resolved', (e: unknown) => e))
      const caps = Array.from({ length: 30 }, (_, k) => s.captureFrame(ramp(C, k), { signal: ac.signal }))
      expect(listeners(ac.signal)).toBe(1)
      ac.abort('stop')
      expect(await within(Promise.all(plays), 2000, 'the playouts')).toEqual(Array(30).fill('stop'))
      const outs = await within(Promise.all(caps), 2000, 'the captures')
      expect(outs.map((o) => o.status)).toEqual(Array(30).fill('aborted'))
    })
    expect(warnings).toEqual([])
    expect(listeners(ac.signal)).toBe(0)
    expect(s.metrics().outcomes.aborted).toBe(30)
    // The playouts were cancelled natively: reading the chunk later resolves nothing twice.
    await readFrames(s.frames(), 1)
    expectInvariant(s.metrics())
  })

  it('two sources sharing one signal: one listener each, each removed when its own waits settle', async () => {
    const mk = () => t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 10_000 })
    const a = mk()
    const b = mk()
    a.tryCaptureFrame(ramp(C))
    b.tryCaptureFrame(ramp(C))
    const ac = new AbortController()
    const pa = Array.from({ length: 15 }, () => a.captureFrame(ramp(C), { signal: ac.signal }))
    const pb = Array.from({ length: 15 }, () => b.captureFrame(ramp(C), { signal: ac.signal }))
    expect(listeners(ac.signal)).toBe(2)
    await a.close()
    expect((await Promise.all(pa)).every((o) => o.status === 'closed')).toBe(true)
    expect(listeners(ac.signal)).toBe(1)
    ac.abort()
    expect((await within(Promise.all(pb), 1000)).every((o) => o.status === 'aborted')).toBe(true)
    expect(listeners(ac.signal)).toBe(0)
  })
})
