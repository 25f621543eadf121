// SourceGroup: one call captures one frame for each member and settles once.
import { afterEach, describe, expect, it } from 'vitest'

import { AudioSource, CapstanError, SourceGroup } from '../../dist/index.js'
import { arr, expectInvariant, readFrames, within } from '../helpers'

const C = 480
const open: AudioSource[] = []
const groups: SourceGroup[] = []
afterEach(async () => {
  for (const g of groups.splice(0)) g.close()
  await Promise.all(open.splice(0).map((s) => s.close()))
})

function pull(n: number, queueMs = 20, deadlineMs = 10_000): AudioSource[] {
  const list = Array.from({ length: n }, () => new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs, overflow: 'wait', deadlineMs }))
  open.push(...list)
  return list
}
const group = (sources: AudioSource[]): SourceGroup => {
  const g = new SourceGroup(sources)
  groups.push(g)
  return g
}
/** One frame per member: member k's frame holds k * 1000 + sample index. */
function round(n: number, len = C): Int16Array {
  const d = new Int16Array(n * len)
  for (let k = 0; k < n; k++) for (let i = 0; i < len; i++) d[k * len + i] = k * 1000 + (i % 1000)
  return d
}

describe('SourceGroup', () => {
  it('a round with room settles at once; each member gets exactly its own slice', async () => {
    const s = pull(4)
    const g = group(s)
    expect(g.size).toBe(4)
    const o = await g.captureFrames(round(4))
    expect(o).toMatchObject({ status: 'accepted', acceptedSamples: 4 * C, droppedSamples: 0, waitedMs: 0 })
    expect(o.statuses).toEqual(['accepted', 'accepted', 'accepted', 'accepted'])
    for (let k = 0; k < 4; k++) {
      const [f] = await readFrames(s[k].frames(), 1)
      expect(arr(f.data)).toEqual(Array.from({ length: C }, (_, i) => k * 1000 + i))
      const m = s[k].metrics()
      expect(m).toMatchObject({ captured: C, delivered: C, queued: 0 })
      expect(m.outcomes.accepted).toBe(1)
      expectInvariant(m)
    }
  })

  it('a round waits for its slowest member and settles once, with that wait', async () => {
    const s = pull(3, 10)
    s[2].tryCaptureFrame(new Int16Array(C).fill(7)) // member 2's queue is full
    const g = group(s)
    let settled = false
    const p = g.captureFrames(round(3)).then((o) => ((settled = true), o))
    await new Promise((r) => setTimeout(r, 50))
    expect(settled).toBe(false)
    expect(s[2].metrics()).toMatchObject({ waitingCaptures: 1, waitingSamples: C })
    // Members 0 and 1 already hold their frames.
    expect(s[0].metrics().queued).toBe(C)
    const [first] = await readFrames(s[2].frames(), 1)
    expect(first.data[0]).toBe(7)
    const o = await within(p, 2000, 'the round')
    expect(o.status).toBe('accepted')
    expect(o.acceptedSamples).toBe(3 * C)
    expect(o.waitedMs).toBeGreaterThanOrEqual(40)
    expect(o.statuses).toEqual(['accepted', 'accepted', 'accepted'])
  })

  it('members that settle differently make a partial round with each status, and every sample is counted', async () => {
    const s = pull(3, 10, 30)
    s[1].tryCaptureFrame(new Int16Array(C).fill(7))
    await s[2].close()
    const g = group(s)
    const o = await within(g.captureFrames(round(3)), 2000, 'the round')
    expect(o.statuses).toEqual(['accepted', 'timeout', 'closed'])
    expect(o.status).toBe('partial')
    expect(o.acceptedSamples).toBe(C)
    expect(o.droppedSamples).toBe(2 * C)
    expect(o.waitedMs).toBeGreaterThanOrEqual(25)
    for (const m of s.map((x) => x.metrics())) expectInvariant(m)
    expect(s[1].metrics()).toMatchObject({ dropped: C, outcomes: { timeout: 1 } })
  })

  it("a member's own deadline override and the round's deadlineMs both apply", async () => {
    const s = pull(2, 10)
    s[0].tryCaptureFrame(new Int16Array(C))
    const g = group(s)
    const t0 = performance.now()
    const o = await within(g.captureFrames(round(2), { deadlineMs: 20 }), 2000, 'the round')
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(o.statuses).toEqual(['timeout', 'accepted'])
  })

  it('tryCaptureFrames never waits: a member without room drops its frame, counted', () => {
    const s = pull(2, 10)
    s[1].tryCaptureFrame(new Int16Array(C))
    const g = group(s)
    const o = g.tryCaptureFrames(round(2))
    expect(o.statuses).toEqual(['accepted', 'dropped'])
    expect(o).toMatchObject({ status: 'partial', acceptedSamples: C, droppedSamples: C })
    expect(s[1].metrics()).toMatchObject({ captured: 2 * C, dropped: C, queued: C })
  })

  it('Float32Array rounds are converted like captureFrame', async () => {
    const s = pull(2)
    const g = group(s)
    const d = new Float32Array(2 * C).fill(0.5)
    const o = await g.captureFrames(d)
    expect(o.status).toBe('accepted')
    const [f] = await readFrames(s[1].frames(), 1)
    expect(f.data[0]).toBe(16384)
  })

  it('bad input is a typed error: uneven data, wrong type, mixed formats, a member listed twice', async () => {
    const s = pull(2)
    const g = group(s)
    await expect(g.captureFrames(new Int16Array(2 * C + 1))).rejects.toMatchObject({ code: 'ERR_INVALID_FRAME' })
    await expect(g.captureFrames([1, 2] as never)).rejects.toMatchObject({ code: 'ERR_INVALID_FRAME' })
    expect(() => g.tryCaptureFrames(new Int16Array(3))).toThrow(CapstanError)
    await expect(g.captureFrames(round(2), { deadlineMs: '5' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
    const stereo = new AudioSource({ sampleRate: 48000, channels: 2 })
    open.push(stereo)
    expect(() => new SourceGroup([s[0], stereo])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }))
    expect(() => new SourceGroup([s[0], s[0]])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }))
    expect(() => new SourceGroup([])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }))
    expect(() => new SourceGroup([{} as never])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }))
    g.close()
    await expect(g.captureFrames(round(2))).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' })
  })

  it('closing a member settles a waiting round: closed for that member, counted as cleared', async () => {
    const s = pull(2, 10)
    s[0].tryCaptureFrame(new Int16Array(C))
    const g = group(s)
    const p = g.captureFrames(round(2))
    await new Promise((r) => setTimeout(r, 20))
    await s[0].close()
    const o = await within(p, 2000, 'the round')
    expect(o.statuses).toEqual(['closed', 'accepted'])
    expectInvariant(s[0].metrics())
  })
})
