// Exact samples in, exact 10 ms frames out: chunking, carried remainder, flush padding,
// format conversion, byteOffset, and buffer reuse right after captureFrame returns.
import { afterEach, describe, expect, it } from 'vitest'

import { AudioFrame } from '../../dist/index.js'
import { arr, concat, expectInvariant, ramp, readFrames, tracker, track, settleTicks } from '../helpers'

const t = tracker()

/** The engine's conversion: clamp to [-1, 1], multiply in f32, round half away from zero. */
function f32ToI16(x: number): number {
  const c = Math.max(-1, Math.min(1, Math.fround(x)))
  const v = Math.fround(c * 32767)
  return (Math.sign(v) * Math.round(Math.abs(v))) | 0
}
afterEach(() => t.closeAll())

describe('chunking at 48 kHz mono (pull)', () => {
  it('odd frame lengths come back as exact 480-sample frames, bit-exact, remainder carried', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 1000 })
    const lengths = [1, 479, 481, 1000, 3, 480, 997, 2]
    const inputs: Int16Array[] = []
    let offset = 0
    for (const n of lengths) {
      const frame = ramp(n, offset)
      offset += n
      inputs.push(frame)
      const o = await s.captureFrame(frame)
      expect(o).toMatchObject({ status: 'accepted', acceptedSamples: n, droppedSamples: 0, waitedMs: 0 })
    }
    const all = concat(inputs)
    const total = all.length // 3443
    const whole = Math.floor(total / 480) // 7
    const rest = total - whole * 480 // 83
    expect(total).toBe(3443)
    expect(s.queuedMs).toBeCloseTo((total / 48000) * 1000, 9)
    let m = s.metrics()
    expect(m).toMatchObject({ captured: total, queued: total, delivered: 0, dropped: 0, cleared: 0, padded: 0 })
    expectInvariant(m)

    const it = s.frames()
    const frames = await readFrames(it, whole)
    for (const f of frames) {
      expect(f).toBeInstanceOf(AudioFrame)
      expect(f.data).toBeInstanceOf(Int16Array)
      expect(f.data.length).toBe(480)
      expect(f.samplesPerChannel).toBe(480)
      expect(f.sampleRate).toBe(48000)
      expect(f.channels).toBe(1)
    }
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(all.subarray(0, whole * 480)))
    expect(s.playoutPosition).toBe(whole * 480)
    m = s.metrics()
    expect(m).toMatchObject({ captured: total, delivered: whole * 480, queued: rest, padded: 0 })
    expect(s.queuedMs).toBeCloseTo((rest / 48000) * 1000, 9)
    expectInvariant(m)

    // Nothing else is readable: the 83 carried samples are not a frame yet.
    const pending = track(it.next())
    await settleTicks()
    expect(pending.settled).toBe(false)

    // flush() pads the remainder with zeros to one full chunk.
    const f = await s.flush()
    expect(f).toMatchObject({ status: 'accepted', acceptedSamples: 480 - rest, droppedSamples: 0 })
    const last = await pending.promise
    expect(last.done).toBe(false)
    const expected = new Int16Array(480)
    expected.set(all.subarray(whole * 480))
    expect(arr(last.value!.data)).toEqual(arr(expected))
    m = s.metrics()
    expect(m).toMatchObject({
      captured: total + (480 - rest),
      padded: 480 - rest,
      delivered: (whole + 1) * 480,
      queued: 0,
      dropped: 0,
      cleared: 0,
    })
    expectInvariant(m)

    // A flush with nothing carried pads nothing.
    expect(await s.flush()).toMatchObject({ status: 'accepted', acceptedSamples: 0, droppedSamples: 0 })
    expect(s.metrics().padded).toBe(480 - rest)
  })

  it('a single-sample frame stays carried; 480 of them make exactly one frame', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    const values: number[] = []
    for (let i = 0; i < 479; i++) {
      const v = (i * 37) % 30000
      values.push(v)
      expect(s.tryCaptureFrame(Int16Array.of(v))).toMatchObject({ status: 'accepted', acceptedSamples: 1 })
    }
    expect(s.metrics().queued).toBe(479)
    const it = s.frames()
    const pending = track(it.next())
    await settleTicks()
    expect(pending.settled).toBe(false)
    values.push(-1234)
    s.tryCaptureFrame(Int16Array.of(-1234))
    const r = await pending.promise
    expect(arr(r.value!.data)).toEqual(values)
    expect(s.metrics()).toMatchObject({ queued: 0, delivered: 480, captured: 480 })
  })
})

describe('chunking at 44.1 kHz stereo (pull)', () => {
  it('frames are 441 samples per channel (882 interleaved) and the concatenation is exact', async () => {
    const s = t.make({ sampleRate: 44100, channels: 2, consumer: 'pull', queueMs: 500 })
    // Lengths in interleaved samples (always whole stereo pairs).
    const lengths = [2, 880, 884, 882, 441 * 2 * 3, 1000, 770]
    const inputs: Int16Array[] = []
    let offset = 0
    for (const n of lengths) {
      const frame = ramp(n, 5000 + offset)
      offset += n
      inputs.push(frame)
      const o = await s.captureFrame(new AudioFrame(frame, 44100, 2))
      expect(o).toMatchObject({ status: 'accepted', acceptedSamples: n / 2, droppedSamples: 0 })
    }
    const all = concat(inputs)
    const perCh = all.length / 2
    const whole = Math.floor(perCh / 441)
    const restPerCh = perCh - whole * 441
    expect(whole).toBe(8)
    expect(restPerCh).toBe(4)
    expect(s.metrics()).toMatchObject({ captured: perCh, queued: perCh })
    expect(s.queuedMs).toBeCloseTo((perCh / 44100) * 1000, 9)

    const frames = await readFrames(s.frames(), whole)
    for (const f of frames) {
      expect(f.data.length).toBe(882)
      expect(f.samplesPerChannel).toBe(441)
      expect(f.sampleRate).toBe(44100)
      expect(f.channels).toBe(2)
    }
    expect(arr(concat(frames.map((f) => f.data)))).toEqual(arr(all.subarray(0, whole * 882)))
    expect(s.playoutPosition).toBe(whole * 441)
    const m = s.metrics()
    expect(m).toMatchObject({ delivered: whole * 441, queued: restPerCh })
    expectInvariant(m)

    const fl = await s.flush()
    expect(fl).toMatchObject({ status: 'accepted', acceptedSamples: 441 - restPerCh })
    expect(s.metrics().padded).toBe(441 - restPerCh)
    expectInvariant(s.metrics())
  })
})

describe('sample conversion and views', () => {
  it('Float32Array input is converted to int16 with clipping', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    const f = new Float32Array(480)
    const head = [0.5, -0.5, 1, -1, 2, -3, 0, 0.25, 1.5, -1.0000001, 0.999]
    f.set(head)
    for (let i = head.length; i < 480; i++) f[i] = (i % 20) / 20 - 0.5
    const o = await s.captureFrame(f)
    expect(o).toMatchObject({ status: 'accepted', acceptedSamples: 480, droppedSamples: 0 })
    const [frame] = await readFrames(s.frames(), 1)
    const expected = arr(f).map(f32ToI16)
    expect(arr(frame.data).slice(0, head.length)).toEqual([16384, -16384, 32767, -32767, 32767, -32767, 0, 8192, 32767, -32767, 32734])
    expect(arr(frame.data)).toEqual(expected)
  })

  it('Float32Array inside an AudioFrame and through tryCaptureFrame', async () => {
    const s = t.make({ sampleRate: 16000, channels: 2, consumer: 'pull' })
    const f = new Float32Array(320).fill(-0.25)
    expect(s.tryCaptureFrame(new AudioFrame(f, 16000, 2))).toMatchObject({ status: 'accepted', acceptedSamples: 160 })
    const [frame] = await readFrames(s.frames(), 1)
    expect(frame.data.length).toBe(320)
    expect(arr(frame.data)).toEqual(new Array(320).fill(-8192))
  })

  it('honours byteOffset: a subarray of a larger Int16Array is read from its offset', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    const big = ramp(3000, 100)
    const sub = big.subarray(301, 301 + 960)
    expect(sub.byteOffset).toBe(602)
    await s.captureFrame(sub)
    // A Float32 view with an offset too.
    const fbig = new Float32Array(1000).map((_, i) => (i - 500) / 1000)
    const fsub = fbig.subarray(17, 17 + 480)
    s.tryCaptureFrame(new AudioFrame(fsub, 48000, 1))
    // And an Int16Array built on a shared buffer at an offset.
    const buf = new ArrayBuffer(4000)
    const view = new Int16Array(buf, 1000, 480)
    view.set(ramp(480, 9000))
    new Int16Array(buf, 0, 500).fill(-1) // surrounding garbage
    new Int16Array(buf, 1960, 1020).fill(-2)
    s.tryCaptureFrame(view)
    const frames = await readFrames(s.frames(), 4)
    expect(arr(frames[0].data)).toEqual(arr(big.subarray(301, 781)))
    expect(arr(frames[1].data)).toEqual(arr(big.subarray(781, 1261)))
    expect(arr(frames[2].data)).toEqual(arr(fsub).map(f32ToI16))
    expect(arr(frames[3].data)).toEqual(arr(ramp(480, 9000)))
  })

  it('the caller may reuse its buffer as soon as captureFrame returns (queued and waiting parts)', async () => {
    const s = t.make({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'wait', deadlineMs: 5000 })
    const buf = ramp(480 * 3, 42)
    const original = arr(buf)
    // 2 chunks fit now, the 3rd waits for room: both parts must have been copied.
    const p = track(s.captureFrame(buf))
    buf.fill(-7)
    const fbuf = new Float32Array(480).fill(0.5)
    const p2 = track(s.captureFrame(fbuf))
    fbuf.fill(-0.5)
    await settleTicks()
    expect(p.settled).toBe(false)
    expect(s.metrics()).toMatchObject({ waitingCaptures: 2, waitingSamples: 960, queued: 960 })
    const frames = await readFrames(s.frames(), 4)
    expect(arr(concat(frames.slice(0, 3).map((f) => f.data)))).toEqual(original)
    expect(arr(frames[3].data)).toEqual(new Array(480).fill(16384))
    expect(await p.promise).toMatchObject({ status: 'accepted', acceptedSamples: 1440, droppedSamples: 0 })
    expect(await p2.promise).toMatchObject({ status: 'accepted', acceptedSamples: 480 })
    expectInvariant(s.metrics())
  })

  it('AudioFrame exposes its format and derived samplesPerChannel', () => {
    const d = new Int16Array(882)
    const f = new AudioFrame(d, 44100, 2)
    expect(f.data).toBe(d)
    expect(f.sampleRate).toBe(44100)
    expect(f.channels).toBe(2)
    expect(f.samplesPerChannel).toBe(441)
  })
})
