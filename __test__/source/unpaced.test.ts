// An unpaced consumer drains as fast as the CPU allows: a producer that has to wait for
// room wakes the engine at once instead of waiting for the next 10 ms tick.
import { describe, expect, it } from 'vitest'

import { AudioSource } from '../../dist/index.js'

describe('unpaced consumer', () => {
  it('moves 30 s of audio through a 200 ms queue, the producer waiting for room', async () => {
    const s = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'unpaced', queueMs: 200 })
    const frame = new Int16Array(480).fill(3)
    const t0 = performance.now()
    let waited = 0
    for (let i = 0; i < 3000; i++) {
      const o = await s.captureFrame(frame)
      expect(o.status).toBe('accepted')
      if (o.waitedMs > 0) waited++
    }
    await s.waitForPlayout()
    const ms = performance.now() - t0
    const m = s.metrics()
    await s.close()
    expect(m.delivered).toBe(3000 * 480)
    expect(m.captured).toBe(m.delivered + m.queued + m.dropped + m.cleared)
    expect(waited).toBeGreaterThan(100) // the queue was full: the producer really waited
    // How fast (woken drains, not one queue per tick) is bounded in load/pace.test.ts, run
    // alone; here, on a machine shared with the parallel suite, only that it got through.
    expect(ms).toBeLessThan(15_000)
  })
})
