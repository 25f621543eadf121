// What CapstanAudioOutput's reported positions rest on: every chunk a realtime source counts
// delivered (playoutPosition) reaches its frames() reader (the publisher), also when
// clearQueue() comes while the reader is not reading, and nothing after the clear does.
import { describe, expect, it } from 'vitest'

import { AudioSource } from '../../dist/index.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('delivered position across clearQueue (the agents output positions)', () => {
  for (const blockMs of [0, 60, 120]) {
    it(`a reader blocked ${blockMs} ms at the clear gets exactly the delivered audio`, async () => {
      const s = new AudioSource({ sampleRate: 24000, channels: 1, queueMs: 200, overflow: 'wait', consumer: 'realtime' })
      let got = 0
      let blockUntil = 0
      let stop = false
      const it = s.frames({ frameMs: 20, prerollMs: 80 })[Symbol.asyncIterator]()
      const reader = (async () => {
        for (;;) {
          const wait = blockUntil - performance.now()
          if (wait > 0) await sleep(wait)
          const r = await it.next()
          if (r.done) break
          for (const v of r.value.data) if (v !== 0) got++
        }
      })()
      const producer = (async () => {
        for (let i = 0; i < 20 && !stop; i++) await s.captureFrame(new Int16Array(2400).fill(1000))
      })()
      await sleep(400)
      blockUntil = performance.now() + blockMs
      await sleep(blockMs)
      stop = true
      s.clearQueue()
      await s.waitForPlayout()
      const at = s.playoutPosition
      await sleep(300)
      expect(at).toBeGreaterThan(0)
      expect(got).toBe(at)
      const m = s.metrics()
      expect(m.cleared).toBeGreaterThan(0)
      expect(m.captured).toBe(m.delivered + m.queued + m.dropped + m.cleared)
      await s.close()
      await producer
      await reader
    })
  }
})
