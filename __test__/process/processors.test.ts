// Native processors on AudioSource: exact DSP where it is exact (gain), measured bounds
// where it is not (high-pass, resampler, denoiser), VAD events, chain metrics, enabling
// and disabling, option validation, and processing on engine threads (never on JS).
import { readdirSync, readFileSync } from 'node:fs'

import { afterEach, describe, expect, it } from 'vitest'

import { AudioSource, CapstanError, processors, type AudioFrame, type AudioSourceOptions } from '../../dist/index.js'
import { arr, concat, expectInvariant, ramp, readFrames, sleep, tracker, waitUntil } from '../helpers'

const t = tracker()
afterEach(() => t.closeAll())

// +6.0206 dB is the factor 2.00000002: every sample that fits doubles exactly (|x| <= 16383).
const DOUBLE_DB = 6.0206

/** Deterministic PRNG (xorshift32) in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 4294967296
  }
}

/** `n` frames of a sine per channel (`hz[c]`, `amp[c]`), interleaved int16. */
function tone(rate: number, n: number, hz: number[], amp: number[]): Int16Array {
  const ch = hz.length
  const a = new Int16Array(n * ch)
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < ch; c++) a[i * ch + c] = Math.round(amp[c] * Math.sin((2 * Math.PI * hz[c] * i) / rate))
  }
  return a
}

/** Channel `c` of interleaved samples. */
function channel(a: Int16Array, ch: number, c: number): Int16Array {
  const out = new Int16Array(a.length / ch)
  for (let i = 0; i < out.length; i++) out[i] = a[i * ch + c]
  return out
}

function rms(a: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * a[i]
  return Math.sqrt(s / a.length)
}

const db = (ratio: number): number => 20 * Math.log10(ratio)

/** Sign changes (negative <-> non-negative). */
function zeroCrossings(a: ArrayLike<number>): number {
  let n = 0
  for (let i = 1; i < a.length; i++) if (a[i - 1] < 0 !== a[i] < 0) n++
  return n
}

const clamp16 = (x: number): number => Math.max(-32768, Math.min(32767, x))

const expectCode = (f: () => unknown, code: string): void => {
  let err: unknown
  try {
    f()
  } catch (e) {
    err = e
  }
  expect(err, `expected ${code}`).toBeInstanceOf(CapstanError)
  expect((err as CapstanError).code).toBe(code)
}

/** Engine clock threads alive in this process (Linux: thread names under /proc). */
function clockThreads(): number {
  return readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').startsWith('capstan-clock')
    } catch {
      return false // the thread ended while we looked
    }
  }).length
}

/**
 * A pull source with processors; `input` is captured whole (the queue holds it), then
 * exactly `frames` frames are read. Returns the frames and the source (left open).
 */
async function pullThrough(
  opts: Partial<AudioSourceOptions> & Pick<AudioSourceOptions, 'sampleRate' | 'channels'>,
  input: Int16Array,
  frames: number,
): Promise<{ s: AudioSource; out: AudioFrame[] }> {
  const perCh = input.length / opts.channels
  const ms = Math.ceil((perCh / opts.sampleRate) * 100) * 10
  const s = t.make({ consumer: 'pull', queueMs: Math.max(200, ms), readerBufferMs: 1000, ...opts })
  const o = await s.captureFrame(input)
  expect(o).toMatchObject({ status: 'accepted', acceptedSamples: perCh, droppedSamples: 0 })
  const out = await readFrames(s.frames(), frames)
  return { s, out }
}

describe('gain', () => {
  it('+6.0206 dB doubles every sample exactly, saturating at 32767 / -32768, in exact 10 ms frames', async () => {
    // ramp(4800) sweeps the whole int16 range in steps of 7 (both signs, both extremes).
    const input = ramp(4800)
    expect(Math.max(...input)).toBeGreaterThan(16384)
    expect(Math.min(...input)).toBeLessThan(-16384)
    const s = t.make({
      sampleRate: 48000,
      channels: 1,
      consumer: 'pull',
      queueMs: 200,
      readerBufferMs: 200,
      processors: [processors.gain({ db: DOUBLE_DB })],
    })
    // Odd capture lengths: the engine still cuts exact 480-sample chunks.
    let at = 0
    for (const n of [1, 479, 1000, 7, 2313, 1000]) {
      expect((await s.captureFrame(input.subarray(at, at + n))).status).toBe('accepted')
      at += n
    }
    expect(at).toBe(4800)
    const frames = await readFrames(s.frames(), 10)
    for (const f of frames) {
      expect(f.data).toBeInstanceOf(Int16Array)
      expect(f.data.length).toBe(480)
      expect(f.sampleRate).toBe(48000)
      expect(f.channels).toBe(1)
    }
    const out = concat(frames.map((f) => f.data))
    const expected = Array.from(input, (x) => clamp16(2 * x))
    expect(arr(out)).toEqual(expected)
    // The saturation is really exercised on both sides.
    expect(out.filter((x) => x === 32767).length).toBeGreaterThan(100)
    expect(out.filter((x) => x === -32768).length).toBeGreaterThan(100)
    // 16383 doubles to 32766; 16384 (32768 - 0.45) saturates; -16384 gives -32768.
    const edge = await pullThrough(
      { sampleRate: 8000, channels: 1, processors: [processors.gain({ db: DOUBLE_DB })] },
      Int16Array.from({ length: 80 }, (_, i) => [16383, 16384, -16383, -16384, -16385, 1, -1, 0][i % 8]),
      1,
    )
    expect(arr(edge.out[0].data.subarray(0, 8))).toEqual([32766, 32767, -32766, -32768, -32768, 2, -2, 0])
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 4800, delivered: 4800, queued: 0, dropped: 0, cleared: 0 })
    expect(m.processors).toHaveLength(1)
    expect(m.processors[0]).toMatchObject({ name: 'gain', calls: 10, failures: 0 })
    expectInvariant(m)
  })

  it('0 dB is bit-exact over the full int16 range', async () => {
    const input = concat([ramp(9600, 3), Int16Array.from([32767, -32768, 0, 1, -1, 32766, -32767, 12345])])
    const n = input.length - (input.length % 480)
    const { s, out } = await pullThrough(
      { sampleRate: 48000, channels: 1, processors: [processors.gain({ db: 0 })] },
      input.subarray(0, n),
      n / 480,
    )
    for (const f of out) expect(f.data.length).toBe(480)
    expect(arr(concat(out.map((f) => f.data)))).toEqual(arr(input.subarray(0, n)))
    const m = s.metrics()
    expect(m).toMatchObject({ captured: n, delivered: n, queued: 0 })
    expect(m.processors[0].calls).toBe(n / 480)
    expectInvariant(m)
  })
})

describe('highPass', () => {
  it('80 Hz: a 20 Hz tone loses >= 20 dB, a 1 kHz tone stays within ±0.5 dB (steady state)', async () => {
    const measured: Record<number, number> = {}
    for (const hz of [20, 1000]) {
      const input = tone(48000, 48000, [hz], [10000])
      const { s, out } = await pullThrough(
        { sampleRate: 48000, channels: 1, processors: [processors.highPass({ hz: 80 })] },
        input,
        100,
      )
      for (const f of out) expect(f.data.length).toBe(480)
      const y = concat(out.map((f) => f.data))
      // Skip the first 100 ms; 900 ms is a whole number of periods of both tones.
      measured[hz] = db(rms(y.subarray(4800)) / rms(input.subarray(4800)))
      const m = s.metrics()
      expect(m).toMatchObject({ captured: 48000, delivered: 48000, queued: 0 })
      expect(m.processors[0]).toMatchObject({ name: 'high-pass', calls: 100, failures: 0, bypassed: false })
      expectInvariant(m)
      await s.close()
    }
    console.log(`highPass 80 Hz: 20 Hz ${measured[20].toFixed(2)} dB, 1 kHz ${measured[1000].toFixed(3)} dB`)
    expect(measured[20]).toBeLessThanOrEqual(-20)
    expect(Math.abs(measured[1000])).toBeLessThanOrEqual(0.5)
  })
})

describe('resample', () => {
  it('48 kHz -> 16 kHz mono: 160-sample frames at 16000, 440 Hz keeps its frequency and level', async () => {
    const input = tone(48000, 48000, [440], [10000])
    const { s, out } = await pullThrough(
      { sampleRate: 48000, channels: 1, processors: [processors.resample({ toRate: 16000 })] },
      input,
      100,
    )
    expect(s.sampleRate).toBe(48000)
    expect(s.outputSampleRate).toBe(16000)
    for (const f of out) {
      expect(f.sampleRate).toBe(16000)
      expect(f.channels).toBe(1)
      expect(f.data.length).toBe(160)
      expect(f.samplesPerChannel).toBe(160)
    }
    const y = concat(out.map((f) => f.data)).subarray(1600) // steady state: skip 100 ms
    const zc = zeroCrossings(y)
    const expectedZc = 2 * 440 * (y.length / 16000) // 792
    const level = db(rms(y) / (10000 / Math.SQRT2))
    console.log(`resample 48k->16k: ${zc} zero crossings (expected ${expectedZc}), level ${level.toFixed(4)} dB`)
    expect(Math.abs(zc - expectedZc)).toBeLessThanOrEqual(expectedZc * 0.02)
    expect(Math.abs(level)).toBeLessThanOrEqual(0.5)
    // Accounting stays in input samples.
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 48000, delivered: 48000, queued: 0, dropped: 0, cleared: 0 })
    expect(s.playoutPosition).toBe(48000)
    expect(m.processors[0]).toMatchObject({ name: 'resample', calls: 100, failures: 0 })
    expectInvariant(m)
  })

  it('48 kHz -> 16 kHz stereo: 320 interleaved samples per frame, channels kept apart', async () => {
    const input = tone(48000, 48000, [440, 1000], [10000, 5000])
    const { s, out } = await pullThrough(
      { sampleRate: 48000, channels: 2, processors: [processors.resample({ toRate: 16000 })] },
      input,
      100,
    )
    expect(s.outputSampleRate).toBe(16000)
    for (const f of out) {
      expect(f.sampleRate).toBe(16000)
      expect(f.channels).toBe(2)
      expect(f.data.length).toBe(320)
      expect(f.samplesPerChannel).toBe(160)
    }
    const y = concat(out.map((f) => f.data)).subarray(3200)
    for (const [c, hz, amp] of [
      [0, 440, 10000],
      [1, 1000, 5000],
    ]) {
      const ch = channel(y, 2, c)
      const expectedZc = 2 * hz * (ch.length / 16000)
      const level = db(rms(ch) / (amp / Math.SQRT2))
      console.log(`resample stereo ch${c}: ${zeroCrossings(ch)} zero crossings (expected ${expectedZc}), level ${level.toFixed(4)} dB`)
      expect(Math.abs(zeroCrossings(ch) - expectedZc)).toBeLessThanOrEqual(expectedZc * 0.02)
      expect(Math.abs(level)).toBeLessThanOrEqual(0.5)
    }
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 48000, delivered: 48000, queued: 0 })
    expectInvariant(m)
  })

  it('44.1 kHz -> 48 kHz: 480-sample frames at 48000', async () => {
    const input = tone(44100, 22050, [440], [10000]) // 500 ms
    const { s, out } = await pullThrough(
      { sampleRate: 44100, channels: 1, processors: [processors.resample({ toRate: 48000 })] },
      input,
      50,
    )
    expect(s.outputSampleRate).toBe(48000)
    for (const f of out) {
      expect(f.sampleRate).toBe(48000)
      expect(f.data.length).toBe(480)
    }
    const y = concat(out.map((f) => f.data)).subarray(4800)
    const expectedZc = 2 * 440 * (y.length / 48000)
    const level = db(rms(y) / (10000 / Math.SQRT2))
    console.log(`resample 44.1k->48k: ${zeroCrossings(y)} zero crossings (expected ${expectedZc}), level ${level.toFixed(4)} dB`)
    expect(Math.abs(zeroCrossings(y) - expectedZc)).toBeLessThanOrEqual(expectedZc * 0.02)
    expect(Math.abs(level)).toBeLessThanOrEqual(0.5)
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 22050, delivered: 22050, queued: 0 })
    expectInvariant(m)
  })
})

describe('denoise', () => {
  it('steady brown noise at 48 kHz loses >= 15 dB after the first 200 ms', async () => {
    const n = 96000 // 2 s
    const r = rng(12345)
    const w = new Float64Array(n)
    let y = 0
    for (let i = 0; i < n; i++) w[i] = y = 0.998 * y + (r() * 2 - 1) // (leaky) integrated white noise
    let mean = 0
    for (const v of w) mean += v
    mean /= n
    let peak = 0
    for (let i = 0; i < n; i++) peak = Math.max(peak, Math.abs((w[i] -= mean)))
    const input = Int16Array.from(w, (v) => Math.round((v / peak) * 12000))
    const { s, out } = await pullThrough(
      { sampleRate: 48000, channels: 1, processors: [processors.denoise()] },
      input,
      200,
    )
    for (const f of out) {
      expect(f.data.length).toBe(480)
      expect(f.sampleRate).toBe(48000)
    }
    const yOut = concat(out.map((f) => f.data))
    const loss = db(rms(yOut.subarray(9600)) / rms(input.subarray(9600)))
    console.log(`denoise brown noise: ${loss.toFixed(2)} dB after 200 ms (input RMS ${rms(input).toFixed(0)})`)
    expect(rms(input.subarray(9600))).toBeGreaterThan(1000)
    expect(loss).toBeLessThanOrEqual(-15)
    const m = s.metrics()
    expect(m).toMatchObject({ captured: n, delivered: n, queued: 0 })
    expect(m.processors[0]).toMatchObject({ name: 'denoise', calls: 200, failures: 0, bypassed: false })
    expectInvariant(m)
  })
})

describe('vad', () => {
  it("emits 'vad' speaking true after a loud burst following silence, false after the burst + hangover", async () => {
    const s = t.make({
      sampleRate: 48000,
      channels: 1,
      consumer: 'pull',
      queueMs: 1200,
      readerBufferMs: 1000,
      processors: [processors.vad({ thresholdDb: -30, hangoverMs: 100 })],
    })
    const events: { speaking: boolean; at: number; positionMs: number }[] = []
    s.on('vad', (e) => events.push(e))
    const before = Date.now()
    // 300 ms silence, 300 ms at about -9 dBFS, 500 ms silence.
    const input = concat([new Int16Array(14400), tone(48000, 14400, [1000], [16000]), new Int16Array(24000)])
    expect((await s.captureFrame(input)).status).toBe('accepted')
    const frames = await readFrames(s.frames(), 110)
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(input)) // the VAD passes audio untouched
    await waitUntil(() => events.length >= 2, 2000, "two 'vad' events")
    await sleep(30)
    console.log(`vad events: ${JSON.stringify(events.map(({ speaking, positionMs }) => ({ speaking, positionMs })))}`)
    expect(events).toHaveLength(2)
    // Attack 20 ms (default): the second loud chunk (starting at 310 ms) flips it on.
    expect(events[0]).toMatchObject({ speaking: true, positionMs: 310 })
    // The burst ends at 600 ms; hangover 100 ms = 10 quiet chunks, the last starting at 690 ms.
    expect(events[1]).toMatchObject({ speaking: false, positionMs: 690 })
    for (const e of events) {
      expect(e.at).toBeGreaterThanOrEqual(before - 1)
      expect(e.at).toBeLessThanOrEqual(Date.now())
    }
    expect(events[1].at).toBeGreaterThanOrEqual(events[0].at)
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 52800, delivered: 52800, queued: 0 })
    expect(m.processors[0]).toMatchObject({ name: 'vad', calls: 110, failures: 0 })
    expectInvariant(m)
  })

  it("events arrive asynchronously, never from inside the call that processed the audio", async () => {
    const s = t.make({
      sampleRate: 16000,
      channels: 1,
      consumer: 'pull',
      processors: [processors.vad({ thresholdDb: -30, hangoverMs: 100 })],
    })
    let got: { speaking: boolean; positionMs: number } | undefined
    s.on('vad', (e) => (got ??= e))
    const it = s.frames()
    const loud = tone(16000, 320, [500], [20000]) // 20 ms: exactly the attack
    expect(s.tryCaptureFrame(loud).status).toBe('accepted')
    expect(got).toBeUndefined()
    await readFrames(it, 2)
    await waitUntil(() => got !== undefined, 2000, "the 'vad' event")
    expect(got).toMatchObject({ speaking: true, positionMs: 10 })
  })
})

describe('chain', () => {
  it('[gain +6.0206 dB, gain -6.0206 dB] restores samples within ±1 LSB; metrics list both processors', async () => {
    const r = rng(7)
    const input = Int16Array.from({ length: 9600 }, () => Math.round((r() * 2 - 1) * 16383))
    const a = processors.gain({ db: DOUBLE_DB })
    const b = processors.gain({ db: -DOUBLE_DB })
    const { s, out } = await pullThrough({ sampleRate: 48000, channels: 1, processors: [a, b] }, input, 20)
    const y = concat(out.map((f) => f.data))
    expect(y.length).toBe(9600)
    let maxErr = 0
    for (let i = 0; i < y.length; i++) maxErr = Math.max(maxErr, Math.abs(y[i] - input[i]))
    console.log(`gain round trip: max error ${maxErr} LSB`)
    expect(maxErr).toBeLessThanOrEqual(1)
    const m = s.metrics()
    expect(m.processors).toHaveLength(2)
    for (const p of m.processors) {
      expect(p).toMatchObject({ name: 'gain', enabled: true, bypassed: false, calls: 20, failures: 0, consecutiveFailures: 0 })
      for (const k of ['p50', 'p90', 'p99', 'max'] as const) {
        expect(typeof p.timeUs[k]).toBe('number')
        expect(p.timeUs[k]).toBeGreaterThanOrEqual(0)
      }
      expect(p.timeUs.p50).toBeLessThanOrEqual(p.timeUs.p99)
      expect(p.timeUs.p99).toBeLessThanOrEqual(p.timeUs.max)
    }
    expect(m).toMatchObject({ captured: 9600, delivered: 9600, queued: 0, dropped: 0, cleared: 0 })
    expectInvariant(m)
  })

  it('order matters: [gain -6.0206, gain +6.0206] loses the odd LSB, the other order does not', async () => {
    const input = Int16Array.from({ length: 480 }, (_, i) => (i % 2 === 0 ? 1001 : -1001))
    const first = await pullThrough(
      { sampleRate: 48000, channels: 1, processors: [processors.gain({ db: DOUBLE_DB }), processors.gain({ db: -DOUBLE_DB })] },
      input,
      1,
    )
    expect(arr(first.out[0].data)).toEqual(arr(input))
    const second = await pullThrough(
      { sampleRate: 48000, channels: 1, processors: [processors.gain({ db: -DOUBLE_DB }), processors.gain({ db: DOUBLE_DB })] },
      input,
      1,
    )
    // 1001 x 0.49999999 = 500.4999995 -> 500 -> 1000; -1001 -> -500 -> -1000.
    expect(arr(second.out[0].data)).toEqual(arr(Int16Array.from({ length: 480 }, (_, i) => (i % 2 === 0 ? 1000 : -1000))))
  })
})

describe('enabling, ownership and validation', () => {
  it('setEnabled(false) passes audio unchanged from the next chunk on; setEnabled(true) restores the gain', async () => {
    const p = processors.gain({ db: DOUBLE_DB })
    // Not attached yet: enabled, but cannot be switched.
    expect(p.isEnabled()).toBe(true)
    expectCode(() => p.setEnabled(false), 'ERR_INVALID_STATE')
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', processors: [p] })
    const it = s.frames()
    const chunk = (k: number) => Int16Array.from({ length: 480 }, (_, i) => ((i * 13 + k) % 2000) - 1000)
    const doubled = (a: Int16Array) => Array.from(a, (x) => 2 * x)

    expect(s.tryCaptureFrame(chunk(1)).status).toBe('accepted')
    expect(arr((await readFrames(it, 1))[0].data)).toEqual(doubled(chunk(1)))
    expect(p.isEnabled()).toBe(true)

    p.setEnabled(false)
    expect(p.isEnabled()).toBe(false)
    expect(s.metrics().processors[0]).toMatchObject({ enabled: false, bypassed: false, calls: 1 })
    expect(s.tryCaptureFrame(chunk(2)).status).toBe('accepted')
    expect(s.tryCaptureFrame(chunk(3)).status).toBe('accepted')
    const off = await readFrames(it, 2)
    expect(arr(off[0].data)).toEqual(arr(chunk(2)))
    expect(arr(off[1].data)).toEqual(arr(chunk(3)))
    expect(s.metrics().processors[0].calls).toBe(1) // a disabled processor is not called

    p.setEnabled(true)
    expect(p.isEnabled()).toBe(true)
    expect(s.tryCaptureFrame(chunk(4)).status).toBe('accepted')
    expect(arr((await readFrames(it, 1))[0].data)).toEqual(doubled(chunk(4)))
    const m = s.metrics()
    expect(m.processors[0]).toMatchObject({ enabled: true, bypassed: false, calls: 2, failures: 0 })
    expect(m).toMatchObject({ captured: 1920, delivered: 1920, queued: 0 })
    expectInvariant(m)
  })

  // Runs before any other test that refuses a processor (a leaked source keeps the clock).
  it('a refused source leaves nothing running: no engine clock threads once every source is closed', async () => {
    const p = processors.gain({ db: 1 })
    const a = t.make({ sampleRate: 48000, channels: 1, processors: [p] })
    await waitUntil(() => clockThreads() > 0, 1000, 'clock threads to start')
    await a.close()
    // The last source out stops the clock threads (they finish their pass; the JS thread
    // does not wait for them).
    await waitUntil(() => clockThreads() === 0, 1000, 'clock threads to stop')
    // A constructor that throws must not leave a native source on the engine clock.
    // (Clock threads name themselves once running: give them a moment to show up.)
    expectCode(
      () => new AudioSource({ sampleRate: 48000, channels: 1, processors: [processors.highPass({ hz: 24000 })] }),
      'ERR_INVALID_OPTION',
    )
    await sleep(50)
    expect(clockThreads(), 'clock threads after a source refused natively').toBe(0)
    expectCode(() => new AudioSource({ sampleRate: 48000, channels: 1, processors: [p] }), 'ERR_INVALID_STATE')
    await sleep(50)
    expect(clockThreads(), 'clock threads after a source refused for reusing an owned processor').toBe(0)
    const q = processors.gain({ db: 1 })
    expectCode(() => new AudioSource({ sampleRate: 48000, channels: 1, processors: [q, q] }), 'ERR_INVALID_STATE')
    await sleep(50)
    expect(clockThreads(), 'clock threads after a source refused for listing a processor twice').toBe(0)
  })

  it('a processor belongs to one source: reusing it throws ERR_INVALID_STATE', async () => {
    const p = processors.highPass({ hz: 100 })
    const a = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', processors: [p] })
    expectCode(() => t.make({ sampleRate: 48000, channels: 1, processors: [p] }), 'ERR_INVALID_STATE')
    // The first owner is unaffected.
    expect(p.isEnabled()).toBe(true)
    expect(a.metrics().processors).toHaveLength(1)
    await a.close()
    // Still owned after its source closed; the same processor twice in one list is reuse too.
    expectCode(() => t.make({ sampleRate: 48000, channels: 1, processors: [p] }), 'ERR_INVALID_STATE')
    const q = processors.gain({ db: 1 })
    expectCode(() => t.make({ sampleRate: 48000, channels: 1, processors: [q, q] }), 'ERR_INVALID_STATE')
  })

  it('invalid options: unknown or non-number option, hz >= Nyquist, toRate 22050, plain objects', () => {
    const base = { sampleRate: 48000, channels: 1, consumer: 'pull' as const }
    // Checked by the factories.
    expectCode(() => processors.gain({ db: 3, gain: 2 } as never), 'ERR_INVALID_OPTION')
    expectCode(() => processors.vad({ threshold: -30 } as never), 'ERR_INVALID_OPTION')
    expectCode(() => processors.gain({ db: '6' } as never), 'ERR_INVALID_OPTION')
    expectCode(() => processors.highPass({ hz: null } as never), 'ERR_INVALID_OPTION')
    expectCode(() => processors.vad({ hangoverMs: '100' } as never), 'ERR_INVALID_OPTION')
    // Checked natively at AudioSource construction, against the format the processor gets.
    const hp = processors.highPass({ hz: 24000 }) // the factory does not know the rate
    expectCode(() => t.make({ ...base, processors: [hp] }), 'ERR_INVALID_OPTION')
    expectCode(() => t.make({ ...base, processors: [processors.highPass({ hz: 30000 })] }), 'ERR_INVALID_OPTION')
    expectCode(() => t.make({ ...base, sampleRate: 16000, processors: [processors.highPass({ hz: 8000 })] }), 'ERR_INVALID_OPTION')
    // After a 16 kHz resampler the high-pass sees 16 kHz: 9 kHz is above its Nyquist.
    expectCode(
      () => t.make({ ...base, processors: [processors.resample({ toRate: 16000 }), processors.highPass({ hz: 9000 })] }),
      'ERR_INVALID_OPTION',
    )
    expectCode(() => t.make({ ...base, processors: [processors.resample({ toRate: 22050 })] }), 'ERR_INVALID_OPTION')
    expectCode(() => t.make({ ...base, processors: [processors.gain({ db: 61 })] }), 'ERR_INVALID_OPTION')
    expectCode(() => t.make({ ...base, processors: [processors.gain({} as never)] }), 'ERR_INVALID_OPTION')
    // Not a processor at all (no isEnabled/setEnabled/close).
    expectCode(() => t.make({ ...base, processors: [{ process() {} } as never] }), 'ERR_INVALID_OPTION')
    // A JS processor listed before a native one: that order cannot be honoured.
    const js = { isEnabled: () => true, setEnabled() {}, process: (f: unknown) => f, close() {} }
    expectCode(() => t.make({ ...base, processors: [js as never, processors.gain({ db: 1 })] }), 'ERR_INVALID_OPTION')
    expectCode(() => t.make({ ...base, processors: processors.gain({ db: 1 }) as never }), 'ERR_INVALID_OPTION')
    // Valid edge values are accepted.
    const ok = t.make({ ...base, processors: [processors.highPass({ hz: 23999 }), processors.resample({ toRate: 8000 })] })
    expect(ok.outputSampleRate).toBe(8000)
  })
})

describe('engine threads', () => {
  it('realtime + denoise, no reader: audio keeps being delivered and processed while JS is blocked', async () => {
    const r = rng(99)
    const input = Int16Array.from({ length: 48000 }, () => Math.round((r() * 2 - 1) * 3000))
    const s = t.make({ sampleRate: 48000, channels: 1, queueMs: 1000, processors: [processors.denoise()] })
    expect(s.tryCaptureFrame(input).status).toBe('accepted')
    await waitUntil(() => s.playoutPosition > 0, 1000, 'playout to start')
    const m0 = s.metrics()
    const t0 = performance.now()
    while (performance.now() - t0 < 300) {
      // busy: the JS thread never yields
    }
    const m1 = s.metrics()
    const elapsed = performance.now() - t0
    const grew = m1.playoutPosition - m0.playoutPosition
    const calls = m1.processors[0].calls - m0.processors[0].calls
    console.log(
      `blocked ${elapsed.toFixed(0)} ms: playout +${grew} samples (${(grew / 48).toFixed(0)} ms), denoise calls +${calls}, p50 ${m1.processors[0].timeUs.p50} us`,
    )
    // About real time: 300 ms is 14400 samples (generous bounds for a loaded machine).
    expect(grew).toBeGreaterThanOrEqual(elapsed * 48 * 0.6)
    expect(grew).toBeLessThanOrEqual(elapsed * 48 * 1.1 + 5 * 480)
    expect(calls).toBeGreaterThanOrEqual(18)
    // Every delivered chunk went through the denoiser, and only those.
    for (const m of [m0, m1]) {
      expect(m.processors[0].calls * 480).toBe(m.delivered)
      expect(m.processors[0].failures).toBe(0)
      expectInvariant(m)
    }
  })

  it('unpaced + frames() reader drains 1 s of processed audio well under 1 s, in exact frames', async () => {
    const input = Int16Array.from({ length: 48000 }, (_, i) => ((i * 31) % 16000) - 8000)
    const s = t.make({
      sampleRate: 48000,
      channels: 1,
      consumer: 'unpaced',
      deadlineMs: 5000,
      processors: [processors.gain({ db: DOUBLE_DB }), processors.highPass({ hz: 20 })],
    })
    const it = s.frames()
    const first = it.next() // starts the reader before any audio is delivered
    const t0 = performance.now()
    const cap = s.captureFrame(input) // 1 s into a 200 ms queue: waits as the engine drains
    const frames = [(await first).value as AudioFrame, ...(await readFrames(it, 99))]
    const elapsed = performance.now() - t0
    console.log(`unpaced: 100 frames (1 s) read in ${elapsed.toFixed(0)} ms`)
    expect(await cap).toMatchObject({ status: 'accepted', acceptedSamples: 48000, droppedSamples: 0 })
    for (const f of frames) {
      expect(f.data.length).toBe(480)
      expect(f.sampleRate).toBe(48000)
    }
    expect(elapsed).toBeLessThan(600)
    const m = s.metrics()
    expect(m).toMatchObject({ captured: 48000, delivered: 48000, queued: 0, dropped: 0, cleared: 0 })
    expect(m.processors.map((p) => [p.name, p.calls, p.failures])).toEqual([
      ['gain', 100, 0],
      ['high-pass', 100, 0],
    ])
    expectInvariant(m)
  })
})
