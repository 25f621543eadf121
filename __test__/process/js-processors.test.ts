// JS frame processors (LiveKit `FrameProcessor<AudioFrame>` shape, a real `@livekit/rtc-node`
// subclass included) in `AudioStream` and in `AudioSource.frames()`: exact processed samples,
// the engine ledger's rules (failures, consecutive, bypass, setEnabled(true) brings it back,
// time budget), lifecycle order (stream info, credentials, close() once after the last
// process()), autoClose, and AudioStream's bounded drop-oldest queue and end of input.
import {
  AudioFrame as RtcAudioFrame,
  FrameProcessor as RtcFrameProcessor,
  type FrameProcessorCredentials as RtcCredentials,
  type FrameProcessorStreamInfo as RtcStreamInfo,
} from '@livekit/rtc-node'
import { afterEach, describe, expect, it } from 'vitest'

import {
  AudioFrame,
  AudioStream,
  CapstanError,
  processors,
  type AudioFrameLike,
  type AudioStreamOptions,
  type FrameProcessor,
  type FrameProcessorCredentials,
  type FrameProcessorStreamInfo,
  type ProcessorErrorEvent,
} from '../../dist/index.js'
import { arr, concat, expectInvariant, readFrames, sleep, tracker, waitUntil, within } from '../helpers'

const t = tracker()
const streams: AudioStream[] = []
afterEach(async () => {
  const all = streams.splice(0)
  await Promise.all(all.map((s) => s.close()))
  await t.closeAll()
})

/** An AudioStream closed after the test whatever happens. */
function stream(input: AsyncIterable<AudioFrameLike> | Iterable<AudioFrameLike>, opts: AudioStreamOptions): AudioStream {
  const s = new AudioStream(input, opts)
  streams.push(s)
  return s
}

// +6.0206 dB is the factor 2.00000002: every |x| <= 16383 doubles exactly.
const DOUBLE_DB = 6.0206

/** Deterministic samples in [-16000, 16000] (doubling never saturates). */
function signal(n: number, start = 0): Int16Array {
  const a = new Int16Array(n)
  for (let i = 0; i < n; i++) a[i] = (((start + i) * 37) % 32001) - 16000
  return a
}

const map = (a: ArrayLike<number>, f: (x: number) => number): number[] => Array.from(a, f)

const INFO_A: FrameProcessorStreamInfo = { roomName: 'room-a', participantIdentity: 'alice', publicationSid: 'TR_a' }
const INFO_B: FrameProcessorStreamInfo = { roomName: 'room-b', participantIdentity: 'bob', publicationSid: 'TR_b' }
const CREDS: FrameProcessorCredentials = { token: 'tok-1', url: 'wss://lk.example' }

/** A plain-object-shaped JS processor that records every call into `log`. */
class Recorder implements FrameProcessor<AudioFrame> {
  enabled = true
  calls = 0
  closes = 0
  readonly setEnabledCalls: boolean[] = []
  constructor(
    readonly log: string[] = [],
    readonly fn: (x: number) => number = (x) => x,
  ) {}
  isEnabled(): boolean {
    return this.enabled
  }
  setEnabled(b: boolean): void {
    this.setEnabledCalls.push(b)
    this.enabled = b
  }
  process(frame: AudioFrame): AudioFrame {
    this.calls++
    this.log.push('process')
    return new AudioFrame(Int16Array.from(frame.data as Int16Array, this.fn), frame.sampleRate, frame.channels)
  }
  close(): void {
    this.closes++
    this.log.push('close')
  }
  onStreamInfoUpdated(info: FrameProcessorStreamInfo): void {
    this.log.push(`info:${info.roomName}/${info.participantIdentity}/${info.publicationSid}`)
  }
  onStreamInfoCleared(): void {
    this.log.push('info-cleared')
  }
  onCredentialsUpdated(c: FrameProcessorCredentials): void {
    this.log.push(`creds:${c.token}@${c.url}`)
  }
  onCredentialsCleared(): void {
    this.log.push('creds-cleared')
  }
}

/** The log must end with exactly one close(), after the last process(). */
function expectClosedOnceAfterLastProcess(log: string[]): void {
  expect(log.filter((e) => e === 'close')).toHaveLength(1)
  expect(log.lastIndexOf('process')).toBeLessThan(log.indexOf('close'))
  expect(log.slice(log.indexOf('close'))).toEqual(['close'])
}

function collectErrors(e: { on(n: 'processor-error', f: (ev: ProcessorErrorEvent) => void): unknown }): ProcessorErrorEvent[] {
  const out: ProcessorErrorEvent[] = []
  e.on('processor-error', (ev) => out.push(ev))
  return out
}

describe('an @livekit/rtc-node FrameProcessor subclass in AudioStream', () => {
  class RtcDoubler extends RtcFrameProcessor<RtcAudioFrame> {
    #enabled = true
    constructor(readonly log: string[]) {
      super()
    }
    isEnabled(): boolean {
      return this.#enabled
    }
    setEnabled(enabled: boolean): void {
      this.#enabled = enabled
    }
    process(frame: RtcAudioFrame): RtcAudioFrame {
      this.log.push('process')
      const d = new Int16Array(frame.data.length)
      for (let i = 0; i < d.length; i++) d[i] = frame.data[i] * 2
      return new RtcAudioFrame(d, frame.sampleRate, frame.channels, frame.samplesPerChannel)
    }
    override onStreamInfoUpdated(info: RtcStreamInfo): void {
      this.log.push(`info:${info.roomName}/${info.participantIdentity}/${info.publicationSid}`)
    }
    override onStreamInfoCleared(): void {
      this.log.push('info-cleared')
    }
    override onCredentialsUpdated(c: RtcCredentials): void {
      this.log.push(`creds:${c.token}@${c.url}`)
    }
    override onCredentialsCleared(): void {
      this.log.push('creds-cleared')
    }
    close(): void {
      this.log.push('close')
    }
  }

  it('works unchanged: exact 10 ms doubled frames, lifecycle in order, close() once after the last process()', async () => {
    const lengths = [317, 1001, 59, 480, 777, 2023, 1, 443, 961, 5]
    const inputs: Int16Array[] = []
    let off = 0
    for (const n of lengths) {
      inputs.push(signal(n, off))
      off += n
    }
    const all = concat(inputs)
    const total = all.length // 6067
    const out480 = Math.ceil(total / 480) * 480 // 6240
    const nFrames = out480 / 480 // 13

    async function* input(): AsyncGenerator<RtcAudioFrame> {
      for (let k = 0; k < inputs.length; k++) {
        if (k % 3 === 1) await sleep(1)
        yield new RtcAudioFrame(inputs[k], 48000, 1, inputs[k].length)
      }
    }

    const log: string[] = []
    const proc = new RtcDoubler(log)
    const s = stream(input(), { sampleRate: 48000, channels: 1, processors: [proc] })
    expect(s.sampleRate).toBe(48000)
    const errors = collectErrors(s)
    s.setStreamInfo(INFO_A)
    s.setCredentials(CREDS)

    const frames: Int16Array[] = []
    let read = 0
    await within(
      (async () => {
        for await (const f of s) {
          expect(f).toBeInstanceOf(AudioFrame)
          expect(f.sampleRate).toBe(48000)
          expect(f.channels).toBe(1)
          expect(f.data).toBeInstanceOf(Int16Array)
          expect(f.data.length).toBe(480)
          expect(f.samplesPerChannel).toBe(480)
          frames.push(f.data as Int16Array)
          read++
          if (read === 3) s.setStreamInfo(null)
          if (read === 5) s.setStreamInfo(INFO_B)
          const m = s.metrics()
          expectInvariant(m)
        }
      })(),
      5000,
      'the stream iteration',
    )

    expect(frames).toHaveLength(nFrames)
    const got = concat(frames)
    const want = new Int16Array(out480)
    want.set(all.map((x) => x * 2))
    expect(arr(got)).toEqual(arr(want))

    const P = (n: number): string[] => Array(n).fill('process')
    const ending = log.slice(log.length - 3)
    expect(log.slice(0, log.length - 3)).toEqual([
      'info:room-a/alice/TR_a',
      'creds:tok-1@wss://lk.example',
      ...P(3),
      'info-cleared',
      ...P(2),
      'info:room-b/bob/TR_b',
      ...P(nFrames - 5),
    ])
    // What was still set (info B, the credentials) is cleared, then close() once.
    expect(ending.slice(0, 2).sort()).toEqual(['creds-cleared', 'info-cleared'])
    expectClosedOnceAfterLastProcess(log)
    expect(errors).toEqual([])

    const m = s.metrics()
    expect(m).toMatchObject({ captured: out480, delivered: out480, queued: 0, dropped: 0, cleared: 0, padded: out480 - total })
    expectInvariant(m)
    expect(m.processors).toHaveLength(1)
    expect(m.processors[0]).toMatchObject({ calls: nFrames, failures: 0, consecutiveFailures: 0, bypassed: false })
  })
})

describe('failures, bypass and the ledger', () => {
  /** Adds 100 while healthy; throws from its `failFrom`-th call while `failing`. */
  class Flaky extends Recorder {
    failing = true
    constructor(readonly failFrom: number) {
      super([], (x) => x + 100)
    }
    override process(frame: AudioFrame): AudioFrame {
      const n = this.calls + 1
      if (this.failing && n >= this.failFrom) {
        this.calls++
        this.log.push('process')
        throw new Error(`boom ${n}`)
      }
      return super.process(frame)
    }
  }

  it('a processor throwing from its 3rd frame: pass-through, consecutive 1..N, bypass, setEnabled(false), back on setEnabled(true)', async () => {
    const p = new Flaky(3)
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'pull', processors: [p], processorBypassAfter: 3 })
    const errors = collectErrors(s)
    const it = s.frames()
    const inputs = Array.from({ length: 14 }, (_, k) => signal(160, k * 160))
    const feed = (k: number) => expect(s.tryCaptureFrame(inputs[k]).status).toBe('accepted')

    // Frames 1..8.
    for (let k = 0; k < 8; k++) feed(k)
    const first = await readFrames(it, 8)
    expect(arr(first[0].data)).toEqual(map(inputs[0], (x) => x + 100))
    expect(arr(first[1].data)).toEqual(map(inputs[1], (x) => x + 100))
    for (let k = 2; k < 8; k++) expect(arr(first[k].data), `frame ${k + 1} passes through`).toEqual(arr(inputs[k]))
    // Called for frames 1..5 only: bypassed after the 3rd consecutive failure (frame 5).
    expect(p.calls).toBe(5)
    expect(p.setEnabledCalls).toEqual([false])
    expect(p.isEnabled()).toBe(false)
    const name = s.metrics().processors[0].name
    expect(typeof name).toBe('string')
    expect(errors).toEqual([
      { processor: name, message: 'boom 3', consecutive: 1, bypassed: false },
      { processor: name, message: 'boom 4', consecutive: 2, bypassed: false },
      { processor: name, message: 'boom 5', consecutive: 3, bypassed: true },
    ])
    let m = s.metrics()
    expect(m.processors).toHaveLength(1)
    expect(m.processors[0]).toMatchObject({ calls: 5, failures: 3, consecutiveFailures: 3, bypassed: true })
    expectInvariant(m)

    // The user re-enables it: called again, consecutive starts over (still failing).
    p.setEnabled(true)
    feed(8)
    feed(9)
    const again = await readFrames(it, 2)
    expect(arr(again[0].data)).toEqual(arr(inputs[8]))
    expect(arr(again[1].data)).toEqual(arr(inputs[9]))
    expect(p.calls).toBe(7)
    expect(errors.slice(3)).toEqual([
      { processor: name, message: 'boom 6', consecutive: 1, bypassed: false },
      { processor: name, message: 'boom 7', consecutive: 2, bypassed: false },
    ])
    m = s.metrics()
    expect(m.processors[0]).toMatchObject({ calls: 7, failures: 5, consecutiveFailures: 2, bypassed: false })

    // Healthy again: processed, consecutive back to 0.
    p.failing = false
    feed(10)
    const [ok] = await readFrames(it, 1)
    expect(arr(ok.data)).toEqual(map(inputs[10], (x) => x + 100))
    expect(errors).toHaveLength(5)
    m = s.metrics()
    expect(m.processors[0]).toMatchObject({ calls: 8, failures: 5, consecutiveFailures: 0, bypassed: false })
    expect(m).toMatchObject({ captured: 11 * 160, delivered: 11 * 160, queued: 0, dropped: 0 })
    expectInvariant(m)
    expect(p.setEnabledCalls).toEqual([false, true])
    await s.close()
    expect((await within(it.next(), 2000, 'the reader to end')).done).toBe(true)
    expect(p.closes).toBe(1)
    expect(p.log.slice(p.log.indexOf('close'))).toEqual(['close'])
  })

  it('output of the wrong length, format or type is a failure and the frame passes through unchanged', async () => {
    const bad: Array<(f: AudioFrame) => unknown> = [
      (f) => new AudioFrame(new Int16Array(100), f.sampleRate, f.channels), // too short
      (f) => new AudioFrame(new Int16Array(f.data.length + 1), f.sampleRate, f.channels), // too long
      () => null,
      () => undefined,
      (f) => new Int16Array(f.data.length), // a bare array, not a frame
      (f) => new AudioFrame(new Int16Array(f.data.length), 48000, f.channels), // wrong rate
      (f) => ({ data: new Float32Array(f.data.length), sampleRate: f.sampleRate, channels: f.channels }),
    ]
    let call = 0
    const p = new Recorder()
    p.process = (f: AudioFrame): AudioFrame => {
      const b = bad[call++]
      if (b) return b(f) as AudioFrame
      // Any frame-shaped object of the right format and length is fine.
      return { data: Int16Array.from(f.data as Int16Array, (x) => -x), sampleRate: f.sampleRate, channels: f.channels } as AudioFrame
    }
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'pull', processors: [p], processorBypassAfter: 10 })
    const errors = collectErrors(s)
    const it = s.frames()
    const inputs = Array.from({ length: bad.length + 1 }, (_, k) => signal(160, 1000 + k * 160))
    for (const x of inputs) expect(s.tryCaptureFrame(x).status).toBe('accepted')
    const out = await readFrames(it, inputs.length)
    for (let k = 0; k < bad.length; k++) expect(arr(out[k].data), `bad output ${k} passes through`).toEqual(arr(inputs[k]))
    expect(arr(out[bad.length].data)).toEqual(map(inputs[bad.length], (x) => -x))
    expect(call).toBe(bad.length + 1)
    expect(errors.map((e) => [e.consecutive, e.bypassed])).toEqual(bad.map((_, k) => [k + 1, false]))
    for (const e of errors) expect(e.message.length).toBeGreaterThan(0)
    const m = s.metrics()
    expect(m.processors[0]).toMatchObject({ calls: bad.length + 1, failures: bad.length, consecutiveFailures: 0, bypassed: false })
    expect(m).toMatchObject({ captured: inputs.length * 160, delivered: inputs.length * 160, dropped: 0 })
    expectInvariant(m)
  })

  it("a slow processor over processorBudgetMs emits 'processor-slow' (count increasing), overBudget counts, audio passes", async () => {
    const busy = (ms: number) => {
      const end = performance.now() + ms
      while (performance.now() < end) {
        /* busy */
      }
    }
    const p = new Recorder()
    const plain = p.process.bind(p)
    p.process = (f) => {
      busy(3)
      return plain(f)
    }
    const inputs = Array.from({ length: 8 }, (_, k) => new AudioFrame(signal(160, 50 + k * 160), 16000, 1))
    const s = stream(inputs, { sampleRate: 16000, channels: 1, processors: [p], processorBudgetMs: 1 })
    const slow: Array<{ processor: string; elapsedUs: number; budgetUs: number; count: number }> = []
    s.on('processor-slow', (e) => slow.push(e))
    const errors = collectErrors(s)
    const out: Int16Array[] = []
    await within(
      (async () => {
        for await (const f of s) out.push(f.data as Int16Array)
      })(),
      5000,
      'the stream iteration',
    )
    expect(arr(concat(out))).toEqual(arr(concat(inputs.map((f) => f.data as Int16Array))))
    expect(slow.map((e) => e.count)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    const m = s.metrics()
    for (const e of slow) {
      expect(e.processor).toBe(m.processors[0].name)
      expect(e.budgetUs).toBe(1000)
      expect(e.elapsedUs).toBeGreaterThan(2900)
    }
    expect(errors).toEqual([])
    expect(m.processors[0]).toMatchObject({ calls: 8, overBudget: 8, failures: 0, bypassed: false })
    expect(m.processors[0].timeUs.max).toBeGreaterThan(2500) // 1-significant-digit histogram
    expect(m).toMatchObject({ captured: 8 * 160, delivered: 8 * 160, dropped: 0 })
    expectInvariant(m)
  })

  it('an onStreamInfoUpdated that throws is reported and does not break the stream', async () => {
    const p = new Recorder([], (x) => x + 5)
    p.onStreamInfoUpdated = () => {
      p.log.push('info-threw')
      throw new Error('bad info')
    }
    p.onStreamInfoCleared = () => {
      p.log.push('cleared-threw')
      throw new Error('bad clear')
    }
    const inputs = Array.from({ length: 6 }, (_, k) => new AudioFrame(signal(160, 3000 + k * 160), 16000, 1))
    const s = stream(inputs, { sampleRate: 16000, channels: 1, processors: [p] })
    const errors = collectErrors(s)
    expect(() => s.setStreamInfo(INFO_A)).not.toThrow()
    expect(errors).toEqual([{ processor: 'lifecycle', message: 'bad info', consecutive: 0, bypassed: false }])
    const out: Int16Array[] = []
    await within(
      (async () => {
        for await (const f of s) {
          out.push(f.data as Int16Array)
          if (out.length === 2) expect(() => s.setStreamInfo(INFO_B)).not.toThrow()
        }
      })(),
      5000,
      'the stream iteration',
    )
    expect(out).toHaveLength(6)
    expect(arr(concat(out))).toEqual(map(concat(inputs.map((f) => f.data as Int16Array)), (x) => x + 5))
    // The throwing clear at the end is reported too, and close() still comes, once.
    expect(errors).toEqual([
      { processor: 'lifecycle', message: 'bad info', consecutive: 0, bypassed: false },
      { processor: 'lifecycle', message: 'bad info', consecutive: 0, bypassed: false },
      { processor: 'lifecycle', message: 'bad clear', consecutive: 0, bypassed: false },
    ])
    expect(p.log.filter((e) => e !== 'process')).toEqual(['info-threw', 'info-threw', 'cleared-threw', 'close'])
    expectClosedOnceAfterLastProcess(p.log)
    const m = s.metrics()
    expect(m.processors[0]).toMatchObject({ calls: 6, failures: 0, consecutiveFailures: 0, bypassed: false })
    expectInvariant(m)
  })
})

describe('autoClose', () => {
  it('a processor shared by two streams with autoClose: false is never closed; a default one is closed once', async () => {
    const shared = new Recorder([], (x) => -x)
    const ownLog: string[] = []
    const own = new Recorder(ownLog, (x) => x + 1)
    const mk = (k0: number, n: number) => Array.from({ length: n }, (_, k) => new AudioFrame(signal(160, (k0 + k) * 160), 16000, 1))
    const inA = mk(0, 6)
    const inB = mk(100, 7)
    const inC = mk(200, 5)
    async function* slowly(frames: AudioFrame[]): AsyncGenerator<AudioFrame> {
      for (const f of frames) {
        await sleep(1)
        yield f
      }
    }
    const a = stream(slowly(inA), { sampleRate: 16000, channels: 1, processors: [shared], autoClose: false })
    const b = stream(slowly(inB), { sampleRate: 16000, channels: 1, processors: [shared], autoClose: false })
    const c = stream(slowly(inC), { sampleRate: 16000, channels: 1, processors: [own] })
    const drain = async (s: AudioStream): Promise<Int16Array> => {
      const out: Int16Array[] = []
      for await (const f of s) out.push(f.data as Int16Array)
      return concat(out)
    }
    const [outA, outB, outC] = await within(Promise.all([drain(a), drain(b), drain(c)]), 5000, 'three streams')
    const data = (fs: AudioFrame[]) => concat(fs.map((f) => f.data as Int16Array))
    expect(arr(outA)).toEqual(map(data(inA), (x) => -x))
    expect(arr(outB)).toEqual(map(data(inB), (x) => -x))
    expect(arr(outC)).toEqual(map(data(inC), (x) => x + 1))
    expect(shared.calls).toBe(13)
    expect(shared.closes).toBe(0)
    expect(own.calls).toBe(5)
    expect(own.closes).toBe(1)
    expectClosedOnceAfterLastProcess(ownLog)
    // Closing again changes nothing.
    await Promise.all([a.close(), b.close(), c.close()])
    expect(shared.closes).toBe(0)
    expect(own.closes).toBe(1)
    for (const s of [a, b, c]) expectInvariant(s.metrics())
  })
})

describe('AudioSource (pull) with native then JS processors', () => {
  it('gain runs first, then JS (2x+1 exactly); stream info and credentials reach the JS processor; close() once', async () => {
    const log: string[] = []
    const p = new Recorder(log, (x) => x + 1)
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'pull', processors: [processors.gain({ db: DOUBLE_DB }), p] })
    s.setStreamInfo(INFO_A)
    s.setCredentials(CREDS)
    expect(log).toEqual(['info:room-a/alice/TR_a', 'creds:tok-1@wss://lk.example'])
    const inputs = Array.from({ length: 6 }, (_, k) => signal(160, 7 + k * 160))
    for (const x of inputs) expect(s.tryCaptureFrame(x).status).toBe('accepted')
    const it = s.frames()
    const out = await readFrames(it, 6)
    for (let k = 0; k < 6; k++) {
      expect(out[k].sampleRate).toBe(16000)
      expect(out[k].data.length).toBe(160)
      expect(arr(out[k].data), `frame ${k + 1}`).toEqual(map(inputs[k], (x) => 2 * x + 1))
    }
    expect(p.calls).toBe(6)
    let m = s.metrics()
    expect(m.processors.map((x) => x.calls)).toEqual([6, 6])
    expect(m.processors[0].name).toBe('gain')
    expect(m).toMatchObject({ captured: 960, delivered: 960, queued: 0, dropped: 0 })
    expectInvariant(m)

    s.setStreamInfo(null)
    s.setCredentials(null)
    s.setCredentials({ token: 'tok-2', url: 'wss://other' })
    await s.close()
    const r = await within(it.next(), 2000, 'the reader to end')
    expect(r.done).toBe(true)
    expect(log.slice(2)).toEqual([
      ...Array(6).fill('process'),
      'info-cleared',
      'creds-cleared',
      'creds:tok-2@wss://other',
      'creds-cleared', // still set at close: cleared before close()
      'close',
    ])
    await s.close()
    expect(p.closes).toBe(1)
    m = s.metrics()
    expectInvariant(m)
  })

  it('close() while processed frames are still buffered: the JS processor is closed after its last process()', async () => {
    const log: string[] = []
    const p = new Recorder(log, (x) => x + 1)
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'pull', processors: [processors.gain({ db: DOUBLE_DB }), p] })
    const inputs = Array.from({ length: 10 }, (_, k) => signal(160, 11 + k * 160))
    for (const x of inputs) expect(s.tryCaptureFrame(x).status).toBe('accepted')
    // The engine fills the reader buffer (readerBufferMs 50: five chunks) through the gain.
    await waitUntil(() => s.metrics().processors[0].calls >= 5, 2000, 'the reader buffer to fill')
    const it = s.frames()
    const out = await readFrames(it, 2)
    expect(arr(out[0].data)).toEqual(map(inputs[0], (x) => 2 * x + 1))
    await s.close()
    const after: AudioFrame[] = []
    for (;;) {
      const r = await within(it.next(), 2000, 'the reader to end')
      if (r.done) break
      after.push(r.value)
    }
    expectInvariant(s.metrics())
    expect(p.closes).toBe(1)
    // Contract: "close() of a processor is called only after its last process() returned".
    expect(log.slice(log.indexOf('close')), `frames yielded after close: ${after.length}`).toEqual(['close'])
  })

  it('AudioStream with a native processor before the JS one: all audio out (2x+1), close() after the last process()', async () => {
    const log: string[] = []
    const p = new Recorder(log, (x) => x + 1)
    const inputs = Array.from({ length: 10 }, (_, k) => new AudioFrame(signal(160, 13 + k * 160), 16000, 1))
    const s = stream(inputs, { sampleRate: 16000, channels: 1, processors: [processors.gain({ db: DOUBLE_DB }), p] })
    const out: Int16Array[] = []
    await within(
      (async () => {
        for await (const f of s) {
          out.push(f.data as Int16Array)
          await sleep(2)
        }
      })(),
      5000,
      'the stream iteration',
    )
    expect(arr(concat(out))).toEqual(map(concat(inputs.map((f) => f.data as Int16Array)), (x) => 2 * x + 1))
    expect(p.calls).toBe(10)
    expectInvariant(s.metrics())
    expectClosedOnceAfterLastProcess(log)
  })
})

describe('AudioStream queue and end of input', () => {
  it('a reader slower than the input: the oldest frames drop (counted), order kept, the newest kept', async () => {
    // The reader takes 25 ms per 10 ms frame: slower than real time, so the pump's wait
    // for room runs out and the oldest audio goes (a real-time reader would lose nothing).
    const N = 100
    const input = Array.from({ length: N }, (_, k) => new AudioFrame(new Int16Array(160).fill(k + 1), 16000, 1))
    const s = stream(input, { sampleRate: 16000, channels: 1, queueFrames: 5 })
    const overflows: Array<{ droppedSamples: number; policy: string }> = []
    s.on('overflow', (e) => overflows.push(e))
    const seq: number[] = []
    await within(
      (async () => {
        for await (const f of s) {
          expect(f.data.length).toBe(160)
          const v = f.data[0]
          expect(arr(f.data), 'a frame is one input frame, whole').toEqual(Array(160).fill(v))
          seq.push(v)
          expectInvariant(s.metrics())
          await sleep(25)
        }
      })(),
      8000,
      'the stream iteration',
    )
    const m = s.metrics()
    expectInvariant(m)
    expect(m.dropped).toBeGreaterThan(0)
    expect(m.captured).toBe(N * 160)
    expect(m.padded).toBe(0)
    expect(m.delivered).toBe(seq.length * 160)
    expect(m.dropped + m.cleared).toBe((N - seq.length) * 160)
    expect(m.queued).toBe(0)
    // In input order, no repeats.
    for (let i = 1; i < seq.length; i++) expect(seq[i]).toBeGreaterThan(seq[i - 1])
    // Drop-oldest keeps the newest: the last queueFrames input frames are all read.
    expect(seq.slice(-5)).toEqual([N - 4, N - 3, N - 2, N - 1, N])
    expect(seq.length).toBeLessThan(N)
    expect(overflows.length).toBeGreaterThan(0)
    expect(overflows.every((e) => e.policy === 'drop-oldest' && e.droppedSamples > 0)).toBe(true)
  })

  it('all audio comes out at the end of the input (remainder padded), and the iteration ends by itself', async () => {
    const lengths = [479, 1, 1000, 333, 481, 7]
    const inputs: Int16Array[] = []
    let off = 0
    for (const n of lengths) {
      inputs.push(signal(n, off))
      off += n
    }
    const all = concat(inputs)
    const total = all.length // 2301
    const padded = Math.ceil(total / 480) * 480 // 2400
    async function* input(): AsyncGenerator<AudioFrame> {
      for (const x of inputs) {
        await sleep(1)
        yield new AudioFrame(x, 48000, 1)
      }
    }
    const s = stream(input(), { sampleRate: 48000, channels: 1 })
    const out: Int16Array[] = []
    await within(
      (async () => {
        for await (const f of s) {
          expect(f.data.length).toBe(480)
          out.push(f.data as Int16Array)
        }
      })(),
      3000,
      'the iteration to end by itself',
    )
    const got = concat(out)
    expect(got.length).toBe(padded)
    const want = new Int16Array(padded)
    want.set(all)
    expect(arr(got)).toEqual(arr(want))
    const m = s.metrics()
    expect(m).toMatchObject({ captured: padded, delivered: padded, padded: padded - total, queued: 0, dropped: 0, cleared: 0 })
    expectInvariant(m)

    // An AudioStream is iterated once.
    let err: unknown
    try {
      for await (const _ of s) {
        /* never */
      }
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(CapstanError)
    expect((err as CapstanError).code).toBe('ERR_INVALID_STATE')
  })

  it('iterating while another iteration is running throws ERR_INVALID_STATE', async () => {
    async function* input(): AsyncGenerator<AudioFrame> {
      for (let k = 0; k < 3; k++) {
        await sleep(2)
        yield new AudioFrame(signal(160, k * 160), 16000, 1)
      }
    }
    const s = stream(input(), { sampleRate: 16000, channels: 1 })
    const first = s[Symbol.asyncIterator]()
    const r1 = await within(first.next(), 2000, 'first frame')
    expect(r1.done).toBe(false)
    const second = s[Symbol.asyncIterator]()
    await expect(second.next()).rejects.toMatchObject({ name: 'CapstanError', code: 'ERR_INVALID_STATE' })
    await first.return?.(undefined)
  })

  it('input frames of the wrong rate make the iteration throw ERR_FORMAT_MISMATCH', async () => {
    const p = new Recorder()
    async function* input(): AsyncGenerator<AudioFrame> {
      yield new AudioFrame(signal(160), 16000, 1)
      yield new AudioFrame(signal(160, 160), 16000, 1)
      await sleep(1)
      yield new AudioFrame(signal(480), 48000, 1)
      yield new AudioFrame(signal(160, 320), 16000, 1)
    }
    const s = stream(input(), { sampleRate: 16000, channels: 1, processors: [p] })
    let err: unknown
    let n = 0
    try {
      await within(
        (async () => {
          for await (const f of s) {
            expect(f.data.length).toBe(160)
            n++
          }
        })(),
        3000,
        'the iteration',
      )
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(CapstanError)
    expect((err as CapstanError).code).toBe('ERR_FORMAT_MISMATCH')
    expect(n).toBeLessThanOrEqual(2)
    expect(p.closes).toBe(1)
    expectInvariant(s.metrics())
  })

  it('breaking out early closes the stream and stops pulling the input (its finally runs)', async () => {
    let pulled = 0
    let finallyRan = false
    async function* endless(): AsyncGenerator<AudioFrame> {
      try {
        for (let k = 0; ; k++) {
          await sleep(2)
          pulled++
          yield new AudioFrame(new Int16Array(160).fill(k + 1), 16000, 1)
        }
      } finally {
        finallyRan = true
      }
    }
    const log: string[] = []
    const p = new Recorder(log)
    const s = stream(endless(), { sampleRate: 16000, channels: 1, processors: [p] })
    let closedEvents = 0
    s.on('closed', () => closedEvents++)
    const seq: number[] = []
    await within(
      (async () => {
        for await (const f of s) {
          seq.push(f.data[0])
          if (seq.length === 3) break
        }
      })(),
      3000,
      'the break',
    )
    expect(seq).toEqual([1, 2, 3])
    // The break does not wait for the input: a pull already under way finishes, then the
    // pump stops and the input generator's finally runs; nothing more is pulled.
    const pulledAtBreak = pulled
    await sleep(30)
    expect(finallyRan).toBe(true)
    expect(pulled).toBeLessThanOrEqual(pulledAtBreak + 1)
    const pulledAfter = pulled
    await sleep(30)
    expect(pulled).toBe(pulledAfter)
    expect(closedEvents).toBe(1)
    expect(p.calls).toBe(3)
    expectClosedOnceAfterLastProcess(log)
    expectInvariant(s.metrics())
  })
})

describe('AudioStream break with an idle input', () => {
  it('returns at once even when the input will not yield for a long time', async () => {
    let release: () => void = () => {}
    async function* idle(): AsyncGenerator<AudioFrame> {
      for (let k = 0; k < 3; k++) yield new AudioFrame(new Int16Array(160).fill(k + 1), 16000, 1)
      await new Promise<void>((r) => (release = r)) // a muted track: nothing for a long time
      yield new AudioFrame(new Int16Array(160).fill(9), 16000, 1)
    }
    const s = stream(idle(), { sampleRate: 16000, channels: 1 })
    const seq: number[] = []
    const t0 = performance.now()
    for await (const f of s) {
      seq.push(f.data[0])
      if (seq.length === 3) break
    }
    expect(performance.now() - t0).toBeLessThan(300)
    expect(seq).toEqual([1, 2, 3])
    release()
  })
})

describe('close() while the reader is suspended between next() calls (issue 10, defect 1)', () => {
  /** A LiveKit-shaped processor holding a resource (a model, a connection) that close() frees. */
  class RtcModel extends RtcFrameProcessor<RtcAudioFrame> {
    #enabled = true
    open = true
    closes = 0
    readonly log: string[] = []
    /** Called inside process(), before it returns (to act while a process() is in flight). */
    during: (() => void) | undefined
    isEnabled(): boolean {
      return this.#enabled
    }
    setEnabled(enabled: boolean): void {
      this.#enabled = enabled
    }
    process(frame: RtcAudioFrame): RtcAudioFrame {
      if (!this.open) throw new Error('process() after close()')
      this.log.push('process')
      this.during?.()
      this.log.push('process-returned')
      return new RtcAudioFrame(Int16Array.from(frame.data, (x) => -x), frame.sampleRate, frame.channels, frame.samplesPerChannel)
    }
    calls(): number {
      return this.log.filter((e) => e === 'process').length
    }
    close(): void {
      this.closes++
      this.open = false
      this.log.push('close')
    }
  }

  /** A pull source with `p`, ten frames queued, and a reader that has taken two and holds. */
  async function suspendedReader(p: RtcModel, opts: { autoClose?: boolean } = {}) {
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'pull', processors: [p], ...opts })
    const inputs = Array.from({ length: 10 }, (_, k) => signal(160, k * 160))
    for (const x of inputs) expect(s.tryCaptureFrame(x).status).toBe('accepted')
    const it = s.frames()
    const got = await readFrames(it, 2)
    expect(arr(got[1].data)).toEqual(map(inputs[1], (x) => -x))
    expect(p.calls()).toBe(2)
    return { s, it }
  }

  it('source.close(): processor.close() once, at once; the reader coming back ends cleanly with no process() after close()', async () => {
    const p = new RtcModel()
    const { s, it } = await suspendedReader(p)
    // The reader is elsewhere (holding its frame, awaiting something else).
    await s.close()
    expect(p.closes).toBe(1)
    expect(p.log.at(-1)).toBe('close')
    const r = await within(it.next(), 2000, 'the reader to end')
    expect(r.done).toBe(true)
    expect((await it.next()).done).toBe(true)
    await s.close()
    expect(p.closes).toBe(1)
    expect(p.log).toEqual(['process', 'process-returned', 'process', 'process-returned', 'close'])
    expectInvariant(s.metrics())
  })

  it('source.close() with a reader that never comes back: close() is still called, once', async () => {
    const p = new RtcModel()
    const { s } = await suspendedReader(p)
    await s.close()
    await sleep(20)
    expect(p.closes).toBe(1)
    expect(p.log.slice(p.log.indexOf('close'))).toEqual(['close'])
  })

  it('autoClose: false: never closed by capstan, whether or not the reader comes back', async () => {
    const p = new RtcModel()
    const { s, it } = await suspendedReader(p, { autoClose: false })
    await s.close()
    expect(p.closes).toBe(0)
    expect((await within(it.next(), 2000, 'the reader to end')).done).toBe(true)
    expect(p.closes).toBe(0)
    expect(p.calls()).toBe(2)
  })

  it('close() from inside process() (a process() in flight) waits for it to return, then closes once', async () => {
    const p = new RtcModel()
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'pull', processors: [p] })
    for (let k = 0; k < 4; k++) s.tryCaptureFrame(signal(160, k * 160))
    p.during = () => {
      p.during = undefined
      void s.close()
      // Not yet: this process() has not returned.
      expect(p.closes).toBe(0)
    }
    const it = s.frames()
    const r = await within(it.next(), 2000, 'the first frame')
    expect(r.done).toBe(false)
    expect(p.closes).toBe(1)
    expect((await within(it.next(), 2000, 'the reader to end')).done).toBe(true)
    expect(p.log).toEqual(['process', 'process-returned', 'close'])
  })

  it("close() from a 'processor-error' listener while a later processor is still to run: close() after the chain's last process()", async () => {
    const log: string[] = []
    const failing = new Recorder(log)
    failing.process = () => {
      log.push('fail')
      throw new Error('boom')
    }
    const after = new Recorder(log)
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'pull', processors: [failing, after] })
    s.on('processor-error', () => void s.close())
    s.tryCaptureFrame(signal(160))
    s.tryCaptureFrame(signal(160, 160))
    const it = s.frames()
    expect((await within(it.next(), 2000, 'the first frame')).done).toBe(false)
    expect((await within(it.next(), 2000, 'the reader to end')).done).toBe(true)
    expect(log).toEqual(['fail', 'process', 'close', 'close'])
    expect([failing.closes, after.closes]).toEqual([1, 1])
  })

  it('a realtime source with a frames() sink: the same', async () => {
    const p = new RtcModel()
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'realtime', processors: [p] })
    for (let k = 0; k < 10; k++) s.tryCaptureFrame(signal(160, k * 160))
    const it = s.frames()
    await readFrames(it, 2)
    await s.close()
    expect(p.closes).toBe(1)
    expect((await within(it.next(), 2000, 'the reader to end')).done).toBe(true)
    expect(p.log.slice(p.log.indexOf('close'))).toEqual(['close'])
  })

  it('AudioStream.close() with the reader suspended in its loop body: close() once, at once; the loop then ends', async () => {
    const p = new RtcModel()
    let pulled = 0
    async function* input(): AsyncGenerator<AudioFrame> {
      for (let k = 0; ; k++) {
        pulled++
        if (k % 4 === 3) await sleep(1)
        yield new AudioFrame(signal(160, k * 160), 16000, 1)
      }
    }
    const s = stream(input(), { sampleRate: 16000, channels: 1, processors: [p] })
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    let frames = 0
    let closesSeenInLoop = -1
    const loop = (async () => {
      for await (const f of s) {
        expect(f.data.length).toBe(160)
        frames++
        if (frames === 3) {
          // Suspended between next() calls: the stream is closed meanwhile.
          await held
          closesSeenInLoop = p.closes
        }
      }
    })()
    await waitUntil(() => frames === 3, 2000, 'three frames')
    await s.close()
    expect(p.closes).toBe(1)
    release()
    await within(loop, 2000, 'the loop to end')
    expect(closesSeenInLoop).toBe(1)
    expect(frames).toBe(3)
    expect(p.closes).toBe(1)
    expect(p.log.slice(p.log.indexOf('close'))).toEqual(['close'])
    expect(pulled).toBeGreaterThan(0)
    expectInvariant(s.metrics())
  })

  it('AudioStream.close() with a reader that never comes back: close() is still called, once', async () => {
    const p = new RtcModel()
    async function* input(): AsyncGenerator<AudioFrame> {
      for (let k = 0; ; k++) {
        await sleep(1)
        yield new AudioFrame(signal(160, k * 160), 16000, 1)
      }
    }
    const s = stream(input(), { sampleRate: 16000, channels: 1, processors: [p] })
    const it = s[Symbol.asyncIterator]()
    expect((await within(it.next(), 2000, 'a frame')).done).toBe(false)
    await s.close()
    await sleep(20)
    expect(p.closes).toBe(1)
    expect(p.log.slice(p.log.indexOf('close'))).toEqual(['close'])
  })
})
