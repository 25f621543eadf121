// A realtime pre-roll (`prerollMs`, and `frames({ prerollMs })`): delivery waits until that
// much audio is queued, or that long, or a flush; samples and counts stay exact.
import { afterEach, describe, expect, it } from 'vitest'

import { AudioSource, CapstanError } from '../../dist/index.js'
import { expectInvariant, ramp, sleep, tracker, within } from '../helpers'

const t = tracker()
afterEach(() => t.closeAll())

describe('prerollMs', () => {
  it('holds the first audio until the pre-roll is queued, then delivers every sample in order', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, queueMs: 1000, prerollMs: 200, fillSilence: false })
    const it = s.frames()[Symbol.asyncIterator]()
    const first = it.next()
    expect((await s.captureFrame(ramp(960))).status).toBe('accepted') // 20 ms of 200
    await sleep(60)
    // 60 ms later nothing was delivered: the pre-roll holds it (a wide margin below 200 ms).
    expect(s.metrics().delivered).toBe(0)
    expect(s.health).toBe('healthy')
    expect((await s.captureFrame(ramp(9600 - 960, 960))).status).toBe('accepted')
    const f = await within(first, 2000, 'first frame')
    expect(Array.from(f.value!.data as Int16Array)).toEqual(Array.from(ramp(480)))
    let got = 480
    while (got < 9600) got += (await within(it.next(), 2000)).value!.data.length
    expect(got).toBe(9600)
    await it.return?.()
    expectInvariant(s.metrics())
  })

  it('flush() releases a short utterance at once; frames({ prerollMs }) sets it per reader; bad values are ERR_INVALID_OPTION', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, queueMs: 1000, fillSilence: false })
    const it = s.frames({ prerollMs: 200 })[Symbol.asyncIterator]()
    const first = it.next()
    await s.captureFrame(ramp(720)) // 15 ms
    await sleep(50)
    expect(s.metrics().delivered).toBe(0)
    await s.flush()
    // (That flush() releases it at once, not the pre-roll's own bound, is pinned by the
    // engine's tests with a hand-driven clock: crates/capstan-core/tests/preroll.rs.)
    const f = await within(first, 2000, 'released')
    expect(Array.from(f.value!.data as Int16Array)).toEqual(Array.from(ramp(480)))
    await it.return?.()
    await expect(s.frames({ prerollMs: 15 }).next()).rejects.toThrow(CapstanError)
    expect(() => t.make({ sampleRate: 48000, channels: 1, prerollMs: 300 })).toThrow(/prerollMs/)
  })
})
