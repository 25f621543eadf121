// Overflow policies under sustained pressure, and FIFO service of concurrent captures.
import { afterEach, describe, expect, it } from 'vitest'

import type { CaptureOutcome, OverflowPolicy } from '../../dist/index.js'
import { arr, concat, expectInvariant, ramp, readFrames, settleTicks, track, tracker, within } from '../helpers'

const t = tracker()
afterEach(() => t.closeAll())

const C = 480

const filled = (n: number, v: number): Int16Array => new Int16Array(n).fill(v)

describe('concurrent captures on one source are served FIFO', () => {
  it('pending captures settle in call order and their samples come out in call order', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(filled(2 * C, 1))
    const order: number[] = []
    const pending = Array.from({ length: 6 }, (_, k) => {
      const p = s.captureFrame(filled(C, 100 + k))
      void p.then(() => order.push(k))
      return track(p)
    })
    await settleTicks(30)
    expect(pending.some((p) => p.settled)).toBe(false)
    expect(s.metrics()).toMatchObject({ waitingCaptures: 6, waitingSamples: 6 * C })
    const it = s.frames()
    const seen: number[] = []
    for (let i = 0; i < 8; i++) {
      const [f] = await readFrames(it, 1)
      // Every frame is uniform: one capture's samples, never interleaved with another's.
      expect(new Set(f.data).size).toBe(1)
      seen.push(f.data[0])
    }
    const outcomes = await within(Promise.all(pending.map((p) => p.promise)), 2000)
    expect(seen).toEqual([1, 1, 100, 101, 102, 103, 104, 105])
    expect(order).toEqual([0, 1, 2, 3, 4, 5])
    for (const o of outcomes) expect(o).toMatchObject({ status: 'accepted', acceptedSamples: C, droppedSamples: 0 })
    // Later callers waited at least as long as earlier ones.
    for (let k = 1; k < outcomes.length; k++) expect(outcomes[k].waitedMs).toBeGreaterThanOrEqual(outcomes[k - 1].waitedMs - 1)
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 8 * C, delivered: 8 * C, queued: 0, waitingCaptures: 0 })
    expectInvariant(m)
  })

  it('a small capture never jumps ahead of a large one waiting before it', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(filled(2 * C, 1))
    const big = track(s.captureFrame(filled(3 * C, 2)))
    const small = track(s.captureFrame(filled(C, 3)))
    const it = s.frames()
    await readFrames(it, 1) // one chunk of room: it goes to the big capture, not the small one
    await settleTicks(30)
    expect(big.settled).toBe(false)
    expect(small.settled).toBe(false)
    expect(s.metrics()).toMatchObject({ waitingCaptures: 2, waitingSamples: 3 * C, queued: 2 * C })
    // tryCaptureFrame does not jump the waiters either, even when room appears.
    await readFrames(it, 1)
    expect(s.tryCaptureFrame(filled(C, 9))).toMatchObject({ status: 'dropped', droppedSamples: C })
    const rest = await readFrames(it, 4)
    const oBig = await within(big.promise, 2000)
    const oSmall = await within(small.promise, 2000)
    expect(oBig).toMatchObject({ status: 'accepted', acceptedSamples: 3 * C })
    expect(oSmall).toMatchObject({ status: 'accepted', acceptedSamples: C })
    expect(rest.map((f) => f.data[0])).toEqual([2, 2, 2, 3])
    expectInvariant(s.metrics())
  })

  it('a new captureFrame queues behind waiters instead of taking free room', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 30, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(filled(3 * C, 1))
    const a = track(s.captureFrame(filled(2 * C, 2)))
    const it = s.frames()
    await readFrames(it, 1) // 1 chunk of room goes to `a` (partially)
    const b = track(s.captureFrame(filled(C, 3)))
    await settleTicks(30)
    expect(a.settled).toBe(false)
    expect(b.settled).toBe(false)
    const frames = await readFrames(it, 5)
    expect(frames.map((f) => f.data[0])).toEqual([1, 1, 2, 2, 3])
    expect(await within(a.promise, 2000)).toMatchObject({ status: 'accepted', acceptedSamples: 2 * C })
    expect(await within(b.promise, 2000)).toMatchObject({ status: 'accepted', acceptedSamples: C })
  })

  it('a timed-out waiter in the middle does not reorder the others', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 10_000 })
    s.tryCaptureFrame(filled(C, 1))
    const a = track(s.captureFrame(filled(C, 2)))
    const b = track(s.captureFrame(filled(C, 3), { deadlineMs: 40 }))
    const c = track(s.captureFrame(filled(C, 4)))
    expect(await within(b.promise, 2000)).toMatchObject({ status: 'timeout', acceptedSamples: 0, droppedSamples: C })
    expect(a.settled || c.settled).toBe(false)
    const frames = await readFrames(s.frames(), 3)
    expect(frames.map((f) => f.data[0])).toEqual([1, 2, 4])
    expect(await a.promise).toMatchObject({ status: 'accepted' })
    expect(await c.promise).toMatchObject({ status: 'accepted' })
    const m = s.metrics()
    expect(m).toMatchObject({ dropped: C, delivered: 3 * C, queued: 0 })
    expectInvariant(m)
  })
})

describe('policies under sustained pressure keep exact accounting', () => {
  const policies: OverflowPolicy[] = ['drop-oldest', 'drop-newest', 'reject', 'wait']
  for (const overflow of policies) {
    it(`${overflow}: 200 odd-sized tryCaptureFrame calls, then exact content and invariant`, async () => {
      const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 100, overflow })
      const outcomes: CaptureOutcome[] = []
      let offset = 0
      const input: Int16Array[] = []
      for (let i = 0; i < 200; i++) {
        const n = 97 + ((i * 131) % 700)
        const f = ramp(n, offset)
        offset += n
        input.push(f)
        outcomes.push(s.tryCaptureFrame(f))
        expectInvariant(s.metrics())
      }
      const total = offset
      const m = s.metrics()
      expect(m.captured).toBe(total)
      expect(m.queued).toBeLessThanOrEqual(10 * C + C - 1)
      const accepted = outcomes.reduce((a, o) => a + o.acceptedSamples, 0)
      const counted = Object.values(m.outcomes).reduce((a, b) => a + b, 0)
      expect(counted).toBe(200)
      if (overflow === 'drop-oldest') {
        // Every call's own samples are kept unless a later chunk evicted them; dropped = evicted.
        expect(outcomes.reduce((a, o) => a + o.droppedSamples, 0)).toBe(m.dropped)
        // The queue holds the newest audio: the tail of the input, chunk-aligned to the stream.
        const all = concat(input)
        const whole = Math.floor(total / C)
        const frames = await readFrames(s.frames(), 10)
        expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(all.subarray((whole - 10) * C, whole * C)))
      } else {
        // Nothing is lost silently: what was not accepted was dropped, by that very call.
        expect(accepted + outcomes.reduce((a, o) => a + o.droppedSamples, 0)).toBe(total)
        expect(m.dropped).toBe(total - accepted)
        for (const o of outcomes) expect(['accepted', 'partial', 'dropped']).toContain(o.status)
        if (overflow !== 'drop-newest') for (const o of outcomes) expect(o.status).not.toBe('partial')
        // What is queued is exactly the accepted parts, in order.
        const kept: number[] = []
        input.forEach((f, i) => kept.push(...arr(f.subarray(0, outcomes[i].acceptedSamples))))
        const whole = Math.floor(kept.length / C)
        const frames = await readFrames(s.frames(), whole)
        expect(arr(concat(frames.map((f) => f.data)))).toEqual(kept.slice(0, whole * C))
      }
      expectInvariant(s.metrics())
    })
  }
})
