// Events: overflow (coalesced), deadline, health transitions, underrun, closed.
import { afterEach, describe, expect, it } from 'vitest'

import type { DeadlineEvent, HealthEvent, OverflowEvent, UnderrunEvent } from '../../dist/index.js'
import { expectInvariant, ramp, readFrames, settleTicks, sleep, track, tracker, waitUntil, within } from '../helpers'

const t = tracker()
afterEach(() => t.closeAll())

const C = 480

describe("'overflow'", () => {
  it('a storm of dropped captures in one tick gives one event with the summed droppedSamples', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'reject' })
    const events: OverflowEvent[] = []
    s.on('overflow', (e) => events.push(e))
    s.tryCaptureFrame(ramp(C))
    for (let i = 0; i < 200; i++) expect(s.tryCaptureFrame(ramp(C + i)).status).toBe('dropped')
    const expected = 200 * C + (199 * 200) / 2
    await waitUntil(() => events.length > 0, 2000, 'overflow event')
    await settleTicks(50)
    expect(events.length).toBe(1)
    expect(events[0]).toEqual({ droppedSamples: expected, policy: 'reject' })
    expect(s.metrics().dropped).toBe(expected)
    // A later storm is reported separately, again coalesced.
    for (let i = 0; i < 50; i++) s.tryCaptureFrame(ramp(C))
    await waitUntil(() => events.length > 1, 2000, 'second overflow event')
    await settleTicks(50)
    expect(events.length).toBe(2)
    expect(events[1]).toEqual({ droppedSamples: 50 * C, policy: 'reject' })
  })

  it('reports the policy and what each policy lost (drop-newest tail, drop-oldest evictions, wait refusals)', async () => {
    const cases = [
      { overflow: 'drop-newest' as const, expectDropped: 2 * C + 3 * C },
      { overflow: 'drop-oldest' as const, expectDropped: 2 * C + 3 * C },
      { overflow: 'wait' as const, expectDropped: 4 * C + 3 * C },
    ]
    for (const c of cases) {
      const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 30, overflow: c.overflow })
      const events: OverflowEvent[] = []
      s.on('overflow', (e) => events.push(e))
      s.tryCaptureFrame(ramp(C))
      s.tryCaptureFrame(ramp(4 * C)) // 2 fit: drop-newest drops 2, drop-oldest evicts 2, wait refuses all 4
      s.tryCaptureFrame(ramp(3 * C)) // full: 3 more lost either way
      await waitUntil(() => events.length > 0, 2000, `${c.overflow} overflow event`)
      await settleTicks(30)
      expect(events).toEqual([{ droppedSamples: c.expectDropped, policy: c.overflow }])
      expect(s.metrics().dropped).toBe(c.expectDropped)
      expectInvariant(s.metrics())
    }
  })
})

describe("'deadline'", () => {
  it('captures that hit their deadline are reported with waitedMs, droppedSamples and count', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait', deadlineMs: 60 })
    const events: DeadlineEvent[] = []
    s.on('deadline', (e) => events.push(e))
    s.tryCaptureFrame(ramp(C))
    const ps = [s.captureFrame(ramp(C)), s.captureFrame(ramp(2 * C)), s.captureFrame(ramp(3 * C))]
    const outs = await within(Promise.all(ps), 3000)
    expect(outs.map((o) => o.status)).toEqual(['timeout', 'timeout', 'timeout'])
    await waitUntil(() => events.reduce((a, e) => a + e.count, 0) >= 3, 2000, 'deadline events')
    expect(events.length).toBeGreaterThanOrEqual(1)
    expect(events.length).toBeLessThanOrEqual(3)
    expect(events.reduce((a, e) => a + e.count, 0)).toBe(3)
    expect(events.reduce((a, e) => a + e.droppedSamples, 0)).toBe(6 * C)
    for (const e of events) {
      expect(e.waitedMs).toBeGreaterThanOrEqual(55)
      expect(e.waitedMs).toBeLessThan(60 + 700)
    }
    expect(s.metrics().dropped).toBe(6 * C)
  })

  it('a per-call deadline of 0 is reported too', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, overflow: 'wait' })
    const events: DeadlineEvent[] = []
    s.on('deadline', (e) => events.push(e))
    s.tryCaptureFrame(ramp(C))
    expect((await s.captureFrame(ramp(C), { deadlineMs: 0 })).status).toBe('timeout')
    await waitUntil(() => events.length > 0, 2000, 'deadline event')
    expect(events[0]).toMatchObject({ count: 1, droppedSamples: C, waitedMs: 0 })
  })
})

describe("'health'", () => {
  function chain(events: HealthEvent[], from = 'healthy'): void {
    let prev = from
    for (const e of events) {
      expect(e.previous).toBe(prev)
      expect(e.state).not.toBe(e.previous)
      prev = e.state
    }
  }

  it('healthy → lagging → stalled when a pull consumer stops reading, then recovered → healthy', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 100, stallAfterMs: 100 })
    const events: HealthEvent[] = []
    s.on('health', (e) => events.push(e))
    expect(s.health).toBe('healthy')
    const it = s.frames()
    // Reading keeps it healthy.
    s.tryCaptureFrame(ramp(C))
    await readFrames(it, 1)
    await sleep(200)
    expect(events).toEqual([])
    // Audio waits, nobody reads.
    const t0 = Date.now()
    s.tryCaptureFrame(ramp(3 * C))
    await waitUntil(() => events.some((e) => e.state === 'stalled'), 3000, 'stalled')
    expect(s.health).toBe('stalled')
    expect(s.metrics().health).toBe('stalled')
    expect(s.metrics().stalls).toBe(1)
    const states = events.map((e) => e.state)
    // A late clock may skip the short 'lagging' step; whatever happened is a consistent chain.
    expect(['lagging,stalled', 'stalled']).toContain(states.join(','))
    chain(events)
    const stalled = events.find((e) => e.state === 'stalled')!
    expect(stalled.sinceMs).toBeGreaterThanOrEqual(100)
    expect(stalled.queuedMs).toBe(30)
    expect(stalled.at).toBeGreaterThanOrEqual(t0 + 90)
    expect(stalled.at).toBeLessThanOrEqual(Date.now())
    const lag = events.find((e) => e.state === 'lagging')
    if (lag) {
      expect(lag.sinceMs).toBeGreaterThanOrEqual(50)
      expect(lag.sinceMs).toBeLessThan(100)
      expect(lag.queuedMs).toBe(30)
    }
    // Stays stalled while nobody reads.
    await sleep(150)
    expect(s.health).toBe('stalled')
    const n = events.length
    // Reading resumes: recovered, then healthy on its own.
    await readFrames(it, 3)
    await waitUntil(() => events.some((e) => e.state === 'healthy'), 3000, 'healthy again')
    const after = events.slice(n)
    expect(after.map((e) => e.state)).toEqual(['recovered', 'healthy'])
    chain(events)
    const rec = after[0]
    expect(rec.previous).toBe('stalled')
    expect(rec.sinceMs).toBeGreaterThanOrEqual(250) // how long the stall lasted
    expect(rec.queuedMs).toBe(20) // measured right after the first chunk was read
    expect(after[1].previous).toBe('recovered')
    expect(after[1].at).toBeGreaterThanOrEqual(rec.at)
    expect(s.health).toBe('healthy')
    expect(s.metrics().stalls).toBe(1)
    expectInvariant(s.metrics())
  })

  it('an idle consumer with nothing queued stays healthy', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', stallAfterMs: 40 })
    const events: HealthEvent[] = []
    s.on('health', (e) => events.push(e))
    s.tryCaptureFrame(ramp(C))
    await readFrames(s.frames(), 1)
    await sleep(300)
    expect(events).toEqual([])
    expect(s.health).toBe('healthy')
  })
})

describe("'underrun'", () => {
  it('a realtime source that runs dry reports underruns (coalesced) and counts them', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, queueMs: 100 })
    const events: UnderrunEvent[] = []
    s.on('underrun', (e) => events.push(e))
    // Before any audio there is nothing to underrun.
    await sleep(100)
    expect(s.metrics().underruns).toBe(0)
    s.tryCaptureFrame(ramp(3 * C))
    await waitUntil(() => events.length > 0, 3000, 'underrun event')
    await sleep(100)
    expect(events.length).toBe(1) // one report per dry spell, not one per tick
    expect(events[0].ticks).toBeGreaterThanOrEqual(1)
    const m = s.metrics()
    expect(m.delivered).toBe(3 * C)
    expect(m.underruns).toBeGreaterThanOrEqual(5)
    expectInvariant(m)
    // Audio again, then dry again: a second report carrying the ticks since the first.
    s.tryCaptureFrame(ramp(C))
    await waitUntil(() => events.length > 1, 3000, 'second underrun event')
    expect(events[1].ticks).toBeGreaterThanOrEqual(2)
    expect(events.reduce((a, e) => a + e.ticks, 0)).toBeLessThanOrEqual(s.metrics().underruns)
  })
})

describe("'closed'", () => {
  it('close emits closed once; close is idempotent', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1 })
    let closed = 0
    s.on('closed', (e) => {
      expect(e).toEqual({})
      closed++
    })
    const p = s.close()
    expect(p).toBeInstanceOf(Promise)
    await p
    await s.close()
    await settleTicks(30)
    expect(closed).toBe(1)
    expect(s.closed).toBe(true)
  })

  it('events are delivered even when waiting captures hold nothing else alive', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, deadlineMs: 50 })
    s.tryCaptureFrame(ramp(C))
    const p = track(s.captureFrame(ramp(C)))
    const o = await within(p.promise, 2000)
    expect(o.status).toBe('timeout')
  })
})
