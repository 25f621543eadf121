// Wall-clock pace of the consumers. Run alone (vitest.load.config.ts), so the bounds measure
// capstan and not a neighbour's CPU load; the main suite checks the same behaviour without them.
import { afterEach, describe, expect, it } from 'vitest'

import { ramp, tracker, within } from '../helpers'

const t = tracker()
afterEach(() => t.closeAll())

const C = 480

describe('pace', () => {
  it('realtime: 500 ms of audio plays out at real-time pace', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, queueMs: 1000 })
    const t0 = performance.now()
    expect(s.tryCaptureFrame(ramp(50 * C))).toMatchObject({ status: 'accepted' })
    await within(s.waitForPlayout(), 5000, 'realtime playout')
    const elapsed = performance.now() - t0
    expect(elapsed).toBeGreaterThanOrEqual(350)
    expect(elapsed).toBeLessThan(1500)
  })

  it('unpaced: 1.5 s of audio is delivered far faster than real time', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'unpaced', queueMs: 2000 })
    const t0 = performance.now()
    s.tryCaptureFrame(ramp(150 * C))
    await within(s.waitForPlayout(), 3000, 'unpaced playout')
    expect(performance.now() - t0).toBeLessThan(1000)
  })

  it('unpaced: a producer waiting for room wakes the engine at once (30 s through a 200 ms queue)', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'unpaced', queueMs: 200 })
    const frame = new Int16Array(C).fill(3)
    const t0 = performance.now()
    for (let i = 0; i < 3000; i++) expect((await s.captureFrame(frame)).status).toBe('accepted')
    await s.waitForPlayout()
    // Draining one 200 ms queue per 10 ms tick would take 1.5 s; woken drains take ~0.1 s.
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(s.metrics().delivered).toBe(3000 * C)
  })
})
