// clearQueue, waitForPlayout, queuedMs / playoutPosition, the realtime and unpaced consumers,
// frames() readers, close and async dispose.
import { afterEach, describe, expect, it } from 'vitest'

import { AudioSource, CapstanError } from '../../dist/index.js'
import { arr, concat, expectInvariant, ramp, readFrames, settleTicks, track, tracker, waitUntil, within } from '../helpers'

const t = tracker()
afterEach(() => t.closeAll())

const C = 480

describe('clearQueue', () => {
  it('discards queued audio and the carried remainder; metrics().cleared counts it', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 100 })
    s.tryCaptureFrame(ramp(3 * C + 240, 0))
    expect(s.queuedMs).toBe(35)
    s.clearQueue()
    expect(s.queuedMs).toBe(0)
    let m = s.metrics()
    expect(m).toMatchObject({ captured: 3 * C + 240, cleared: 3 * C + 240, queued: 0, queuedMs: 0, delivered: 0 })
    expectInvariant(m)
    // The carried half chunk is gone too: the next frame starts fresh.
    s.tryCaptureFrame(ramp(C, 1000))
    const [f] = await readFrames(s.frames(), 1)
    expect(arr(f.data)).toEqual(arr(ramp(C, 1000)))
    s.clearQueue() // nothing queued: a no-op
    m = s.metrics()
    expect(m).toMatchObject({ cleared: 3 * C + 240, delivered: C, queued: 0 })
    expectInvariant(m)
  })

  it('resolves a pending waitForPlayout (the queued audio is gone)', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    s.tryCaptureFrame(ramp(4 * C))
    const p = track(s.waitForPlayout())
    await settleTicks(30)
    expect(p.settled).toBe(false)
    s.clearQueue()
    await within(p.promise, 1000, 'waitForPlayout after clearQueue')
  })
})

describe('waitForPlayout', () => {
  it('pull: resolves only once every queued frame has been read', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    s.tryCaptureFrame(ramp(3 * C))
    const p = track(s.waitForPlayout())
    const it = s.frames()
    await readFrames(it, 2)
    await settleTicks(50)
    expect(p.settled).toBe(false)
    // Audio captured after the call is not part of what it waits for.
    s.tryCaptureFrame(ramp(2 * C))
    await readFrames(it, 1)
    await within(p.promise, 1000, 'waitForPlayout')
    expect(s.playoutPosition).toBe(3 * C)
    expect(s.metrics().queued).toBe(2 * C)
  })

  it('resolves at once when nothing is queued', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    await within(s.waitForPlayout(), 50, 'waitForPlayout on an empty source')
    s.tryCaptureFrame(ramp(C))
    await readFrames(s.frames(), 1)
    await within(s.waitForPlayout(), 50, 'waitForPlayout once everything was read')
  })

  it('rejects with the signal reason when aborted (and when already aborted)', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    s.tryCaptureFrame(ramp(2 * C))
    const ac = new AbortController()
    const reason = new Error('stop waiting')
    const p = s.waitForPlayout({ signal: ac.signal })
    const st = track(p)
    await settleTicks(30)
    expect(st.settled).toBe(false)
    ac.abort(reason)
    await expect(within(p, 1000)).rejects.toBe(reason)
    await expect(s.waitForPlayout({ signal: AbortSignal.abort('already') })).rejects.toBe('already')
    // Aborting did not disturb the audio or a later playout wait.
    const q = s.waitForPlayout()
    const frames = await readFrames(s.frames(), 2)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(ramp(2 * C)))
    await within(q, 1000)
  })

  it('resolves when the source is closed', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    s.tryCaptureFrame(ramp(2 * C))
    const p = track(s.waitForPlayout())
    await settleTicks(30)
    expect(p.settled).toBe(false)
    await s.close()
    await within(p.promise, 1000, 'waitForPlayout after close')
  })
})

describe('queuedMs and playoutPosition are native state', () => {
  it('pull: depth includes the carried remainder, position counts samples per channel', async () => {
    const s = t.make({ sampleRate: 48000, channels: 2, consumer: 'pull' })
    expect(s.queuedMs).toBe(0)
    expect(s.playoutPosition).toBe(0)
    s.tryCaptureFrame(ramp(2 * 1000))
    expect(s.queuedMs).toBeCloseTo(1000 / 48, 9)
    const it = s.frames()
    await readFrames(it, 2)
    expect(s.playoutPosition).toBe(960)
    expect(s.queuedMs).toBeCloseTo(40 / 48, 9)
    expect(s.metrics()).toMatchObject({ playoutPosition: 960, delivered: 960, queued: 40 })
  })
})

describe('realtime consumer', () => {
  // Not faster than real time (a loaded machine only makes it slower); the upper bound on
  // the pace is in load/pace.test.ts, run alone.
  it('plays 500 ms of audio out in 10 ms steps, never faster than real time', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, queueMs: 1000 })
    const t0 = performance.now()
    expect(s.tryCaptureFrame(ramp(50 * C))).toMatchObject({ status: 'accepted', acceptedSamples: 24000 })
    const positions: number[] = []
    const poll = setInterval(() => positions.push(s.playoutPosition), 20)
    try {
      await within(s.waitForPlayout(), 15_000, 'realtime playout')
    } finally {
      clearInterval(poll)
    }
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350)
    expect(s.playoutPosition).toBe(24000)
    // The position advanced in whole 10 ms steps, never backwards, never in one jump.
    for (const p of positions) expect(p % C).toBe(0)
    for (let i = 1; i < positions.length; i++) expect(positions[i]).toBeGreaterThanOrEqual(positions[i - 1])
    expect(positions.some((p) => p > 0 && p < 24000)).toBe(true)
    const m = s.metrics()
    expect(m).toMatchObject({ delivered: 24000, queued: 0, playoutPosition: 24000 })
    expectInvariant(m)
  })

  it('a frames() reader on a realtime source gets the audio, then silence on underrun', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, queueMs: 200, readerBufferMs: 100 })
    const it = s.frames()
    const first = track(it.next()) // attaches the reader before audio flows
    await settleTicks(20)
    s.tryCaptureFrame(ramp(5 * C, 3))
    const r0 = await within(first.promise, 2000)
    const rest = await readFrames(it, 4)
    expect(arr(concat([r0.value!.data, ...rest.map((f) => f.data)]))).toEqual(arr(ramp(5 * C, 3)))
    const [silence] = await readFrames(it, 1)
    expect(arr(silence.data)).toEqual(new Array(C).fill(0))
    expect(s.metrics().underruns).toBeGreaterThanOrEqual(1)
    expect(s.metrics().delivered).toBe(5 * C)
  })
})

describe('unpaced consumer', () => {
  // How fast is bounded in load/pace.test.ts, run alone.
  it('delivers everything without a clock: no underruns', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'unpaced', queueMs: 2000 })
    s.tryCaptureFrame(ramp(150 * C)) // 1.5 s of audio
    await within(s.waitForPlayout(), 15_000, 'unpaced playout')
    expect(s.metrics()).toMatchObject({ delivered: 150 * C, queued: 0, underruns: 0 })
  })
})

describe('frames() and close', () => {
  it('a pending reader ends when the source closes; reading a closed source ends at once', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    const it = s.frames()
    const p = track(it.next())
    await settleTicks(30)
    expect(p.settled).toBe(false)
    await s.close()
    const r = await within(p.promise, 1000, 'reader after close')
    expect(r.done).toBe(true)
    const again = await within(s.frames().next(), 1000)
    expect(again.done).toBe(true)
  })

  it('for await stops at close and sees every frame queued before', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    const seen: number[] = []
    const loop = (async () => {
      for await (const f of s.frames()) seen.push(f.data[0])
    })()
    for (let i = 0; i < 5; i++) {
      s.tryCaptureFrame(new Int16Array(C).fill(i + 1))
      await settleTicks(15)
    }
    await waitUntil(() => seen.length === 5, 2000, 'all frames read')
    await s.close()
    await within(loop, 1000, 'for-await loop end')
    expect(seen).toEqual([1, 2, 3, 4, 5])
  })

  it('only one reader at a time (ERR_INVALID_STATE), another may follow once it ends', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    s.tryCaptureFrame(ramp(2 * C))
    const a = s.frames()
    await readFrames(a, 1)
    const b = s.frames()
    await expect(b.next()).rejects.toSatisfy((e: unknown) => e instanceof CapstanError && e.code === 'ERR_INVALID_STATE')
    await a.return!(undefined)
    const [f] = await readFrames(s.frames(), 1)
    expect(arr(f.data)).toEqual(arr(ramp(C, C)))
  })

  it('close counts queued audio as cleared and keeps the invariant; close is idempotent', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    s.tryCaptureFrame(ramp(3 * C + 10))
    await readFrames(s.frames(), 1)
    await s.close()
    await s.close()
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 3 * C + 10, delivered: C, cleared: 2 * C + 10, queued: 0 })
    expectInvariant(m)
    expect(s.queuedMs).toBe(0)
  })

  it('Symbol.asyncDispose closes the source', async () => {
    const s = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 10, deadlineMs: 10_000 })
    s.tryCaptureFrame(ramp(C))
    const p = s.captureFrame(ramp(C))
    const dispose = (s as unknown as Record<symbol, () => Promise<void>>)[Symbol.asyncDispose]
    expect(typeof dispose).toBe('function')
    await dispose.call(s)
    expect(s.closed).toBe(true)
    expect((await within(p, 1000)).status).toBe('closed')
  })

  it('many sources open and close without leaking waiters or playouts', async () => {
    const sources = Array.from({ length: 50 }, (_, i) =>
      new AudioSource({ sampleRate: 16000, channels: 1, consumer: i % 2 ? 'pull' : 'realtime', queueMs: 20, deadlineMs: 10_000 }),
    )
    const waits = sources.map((s) => {
      s.tryCaptureFrame(new Int16Array(320))
      return s.captureFrame(new Int16Array(1600))
    })
    const plays = sources.map((s) => s.waitForPlayout())
    await Promise.all(sources.map((s) => s.close()))
    const outs = await within(Promise.all(waits), 2000)
    await within(Promise.all(plays), 2000)
    for (const o of outs) expect(['closed', 'accepted']).toContain(o.status)
    expect(outs.filter((o) => o.status === 'closed').length).toBeGreaterThanOrEqual(25)
    for (const s of sources) {
      expectInvariant(s.metrics())
      expect(s.metrics().waitingCaptures).toBe(0)
    }
  })
})

describe('frames({ frameMs })', () => {
  it('joins 10 ms chunks into frames of exactly frameMs, in order; a bad frameMs is ERR_INVALID_OPTION', async () => {
    const s = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 200 })
    try {
      const input = Int16Array.from({ length: 480 * 6 }, (_, i) => i - 1000)
      expect((await s.captureFrame(input)).status).toBe('accepted')
      const it = s.frames({ frameMs: 30 })[Symbol.asyncIterator]()
      const a = (await it.next()).value!
      const b = (await it.next()).value!
      expect([a.samplesPerChannel, b.samplesPerChannel]).toEqual([1440, 1440])
      expect(Array.from(a.data).concat(Array.from(b.data))).toEqual(Array.from(input))
      await it.return?.()
      await expect(s.frames({ frameMs: 15 }).next()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
    } finally {
      await s.close()
    }
  })
})
