// Every bad input in docs/API.md's table "Bad input, and what it gets", one case per row
// (same label), run against the real library: the typed error it throws or rejects with,
// or the outcome it settles with and what the source counted. A last test parses the
// table and checks that its rows and these cases are the same list, so neither can drift.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { afterEach, describe, expect, it } from 'vitest'

import {
  AudioFrame,
  AudioSource,
  AudioStream,
  ByteStreamAudioReceiver,
  CapstanError,
  SourceGroup,
  memoryTransports,
  processors,
  type AudioSourceOptions,
  type CapstanErrorCode,
  type CaptureOutcome,
  type FrameProcessor,
  type SourceMetrics,
} from '../../dist/index.js'
import { expectInvariant, readFrames, within } from '../helpers'

const C = 480 // one 10 ms chunk at 48 kHz mono
const BASE: AudioSourceOptions = { sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20 }

const open: AudioSource[] = []
const streams: AudioStream[] = []
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()))
  await Promise.all(open.splice(0).map((s) => s.close()))
})

/** What a case may use: sources closed after it, and the last one made (for its counts). */
class Ctx {
  readonly sources: AudioSource[] = []
  source(o: Partial<AudioSourceOptions> = {}): AudioSource {
    const s = new AudioSource({ ...BASE, ...o } as AudioSourceOptions)
    open.push(s)
    this.sources.push(s)
    return s
  }
  stream(input: Iterable<unknown> | AsyncIterable<unknown>, o: object = { sampleRate: 48000, channels: 1 }): AudioStream {
    const s = new AudioStream(input as Iterable<AudioFrame>, o as never)
    streams.push(s)
    return s
  }
  get last(): AudioSource {
    return this.sources[this.sources.length - 1]
  }
}

type Counts = Partial<Pick<SourceMetrics, 'captured' | 'delivered' | 'queued' | 'dropped' | 'cleared'>> & {
  /** Calls settled (the sum of `metrics().outcomes`). */
  settled?: number
}

/** Nothing taken, nothing settled: a refused programmer error. */
const NOTHING: Counts = { captured: 0, dropped: 0, queued: 0, settled: 0 }

/** `counts` are checked on the last source the case made, or on all of them. */
type Checked = { counts?: Counts; countsOf?: 'last' | 'all' }

type Expectation = Checked &
  (
    | /** Throws this code synchronously. */ { throws: CapstanErrorCode }
    | /** Returns a promise (no synchronous throw) rejected with this code. */ { rejects: CapstanErrorCode }
    | /** Returns (or resolves to) a value matching `value`. */ {
        value: unknown
        /** More checks, after `counts`. */
        then?: (c: Ctx) => void | Promise<void>
      }
  )

interface Case {
  row: string
  act: (c: Ctx) => unknown
  expect: Expectation
}

const opt = (o: unknown) => () => new AudioSource(o as AudioSourceOptions)
const withBase = (o: object) => opt({ ...BASE, ...o })
const ramp = (n: number) => Int16Array.from({ length: n }, (_, i) => (i * 7) % 1000)
const huge = () => ramp(5 * 2 * C) // five times the 20 ms queue
const jsProc = (): FrameProcessor<AudioFrame> & { closes: number } => ({
  closes: 0,
  isEnabled: () => true,
  setEnabled() {},
  process: (f: AudioFrame) => f,
  close() {
    this.closes++
  },
})
const detached = (): Int16Array => {
  const a = new Int16Array(C)
  structuredClone(a.buffer, { transfer: [a.buffer] })
  return a
}
const floats = (x: number) => Float32Array.from({ length: C }, (_, i) => (i === 3 ? x : 0.25))
const settledCount = (m: SourceMetrics) => Object.values(m.outcomes).reduce((a, b) => a + b, 0)
const outcome = (status: CaptureOutcome['status'], acceptedSamples: number, droppedSamples: number) => ({
  status,
  acceptedSamples,
  droppedSamples,
})

const cases: Case[] = [
  // Options
  { row: 'options not an object (`null`)', act: opt(null), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`sampleRate` missing', act: opt({ channels: 1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`sampleRate` a string', act: opt({ sampleRate: '48000', channels: 1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`sampleRate` 7999 (below 8000)', act: opt({ sampleRate: 7999, channels: 1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`sampleRate` 192001 (above 192000)', act: opt({ sampleRate: 192001, channels: 1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`sampleRate` 44100.5 (not an integer)', act: opt({ sampleRate: 44100.5, channels: 1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`sampleRate` 22050 (no whole 10 ms chunk)', act: opt({ sampleRate: 22050, channels: 1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`sampleRate` NaN', act: opt({ sampleRate: NaN, channels: 1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`channels` missing', act: opt({ sampleRate: 48000 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`channels` 0', act: opt({ sampleRate: 48000, channels: 0 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`channels` 9', act: opt({ sampleRate: 48000, channels: 9 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`channels` 1.5', act: opt({ sampleRate: 48000, channels: 1.5 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`queueMs` 0', act: withBase({ queueMs: 0 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`queueMs` 15 (not a multiple of 10)', act: withBase({ queueMs: 15 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`queueMs` 600010 (above 600000)', act: withBase({ queueMs: 600010 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`queueMs` a string', act: withBase({ queueMs: '200' }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: "`overflow` 'bogus'", act: withBase({ overflow: 'bogus' }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`overflow` a number', act: withBase({ overflow: 1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`deadlineMs` -1', act: withBase({ deadlineMs: -1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`deadlineMs` 3600001 (above one hour)', act: withBase({ deadlineMs: 3_600_001 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`stallAfterMs` 19 (below 20)', act: withBase({ stallAfterMs: 19 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: "`consumer` 'push'", act: withBase({ consumer: 'push' }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: "`fillSilence` 'yes'", act: withBase({ fillSilence: 'yes' }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`prerollMs` 15 (not a multiple of 10)', act: withBase({ prerollMs: 15 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`prerollMs` 210 (over 200)', act: withBase({ prerollMs: 210 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: "`prerollMs` 20 with `consumer: 'unpaced'`", act: withBase({ prerollMs: 20, consumer: 'unpaced' }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`readerBufferMs` 0', act: withBase({ readerBufferMs: 0 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`readerBufferMs` 15 (not a multiple of 10)', act: withBase({ readerBufferMs: 15 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`processors` not an array', act: withBase({ processors: {} }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`processors` holding a number', act: withBase({ processors: [1] }), expect: { throws: 'ERR_INVALID_OPTION' } },
  {
    row: '`processors`: a JS processor before a native one',
    act: withBase({ processors: [jsProc(), processors.gain({ db: 1 })] }),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  { row: '`processors.gain()` without `db`', act: withBase({ processors: [processors.gain()] }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`processors.gain({ db: 61 })`', act: withBase({ processors: [processors.gain({ db: 61 })] }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: "`processors.gain({ db: '3' })`", act: () => processors.gain({ db: '3' as never }), expect: { throws: 'ERR_INVALID_OPTION' } },
  {
    row: '`processors.highPass({ hz })` at Nyquist',
    act: withBase({ processors: [processors.highPass({ hz: 24000 })] }),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  {
    row: '`processors.resample({ toRate: 44100.5 })`',
    act: withBase({ processors: [processors.resample({ toRate: 44100.5 })] }),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  {
    row: '`processors.vad({ attackMs: -1 })`',
    act: withBase({ processors: [processors.vad({ attackMs: -1 })] }),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  { row: '`processorBypassAfter` 0 (no processors)', act: withBase({ processorBypassAfter: 0 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`processorBypassAfter` 2.5', act: withBase({ processorBypassAfter: 2.5 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`processorBudgetMs` -1', act: withBase({ processorBudgetMs: -1 }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: "`autoClose` 'no'", act: withBase({ autoClose: 'no' }), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: 'an unknown option (`queueMS`, a typo)', act: withBase({ queueMS: 10 } as never), expect: { throws: 'ERR_INVALID_OPTION' } },
  { row: '`AudioStream` without options', act: () => new AudioStream([]), expect: { throws: 'ERR_INVALID_OPTION' } },
  {
    row: '`AudioStream` `queueFrames` 0',
    act: () => new AudioStream([], { sampleRate: 48000, channels: 1, queueFrames: 0 }),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  {
    row: '`AudioStream` input not iterable',
    act: () => new AudioStream(5 as never, { sampleRate: 48000, channels: 1 }),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  ...(
    [
      ['`queueMs` NaN', { queueMs: Number.NaN }],
      ['`queueMs` 15 (not a multiple of 10)', { queueMs: 15 }],
      ['`idleTimeoutMs` -1', { idleTimeoutMs: -1 }],
      ['`rpcAttempts` 0', { rpcAttempts: 0 }],
      ['`rpcTimeoutMs` 1.5', { rpcTimeoutMs: 1.5 }],
    ] as const
  ).map(([what, o]) => ({
    row: `\`ByteStreamAudioReceiver\` ${what}`,
    act: () => new ByteStreamAudioReceiver(memoryTransports('a', 'b')[1], { sender: 'a', ...o }),
    expect: { throws: 'ERR_INVALID_OPTION' as const },
  })),

  // Frames
  { row: 'frame a string', act: (c) => c.source().captureFrame('abc' as never), expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING } },
  { row: 'frame `null` (`tryCaptureFrame`)', act: (c) => c.source().tryCaptureFrame(null as never), expect: { throws: 'ERR_INVALID_FRAME', counts: NOTHING } },
  { row: 'frame a `Uint8Array`', act: (c) => c.source().captureFrame(new Uint8Array(C) as never), expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING } },
  { row: 'frame a plain array', act: (c) => c.source().captureFrame([1, 2, 3] as never), expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING } },
  { row: 'frame empty', act: (c) => c.source().captureFrame(new Int16Array(0)), expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING } },
  { row: 'frame on a detached buffer', act: (c) => c.source().captureFrame(detached()), expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING } },
  {
    row: 'frame a `Proxy` of an `Int16Array`',
    act: (c) => c.source().captureFrame(new Proxy(ramp(C), {})),
    expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING },
  },
  {
    row: 'frame ragged (481 samples, 2 channels)',
    act: (c) => c.source({ channels: 2 }).captureFrame(ramp(481)),
    expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING },
  },
  {
    row: 'frame of another declared rate',
    act: (c) => c.source().captureFrame({ data: ramp(160), sampleRate: 16000, channels: 1 }),
    expect: { rejects: 'ERR_FORMAT_MISMATCH', counts: NOTHING },
  },
  {
    row: 'frame of another declared channel count',
    act: (c) => c.source().captureFrame({ data: ramp(2 * C), sampleRate: 48000, channels: 2 }),
    expect: { rejects: 'ERR_FORMAT_MISMATCH', counts: NOTHING },
  },
  {
    row: 'frame declaring `sampleRate` NaN',
    act: (c) => c.source().captureFrame({ data: ramp(C), sampleRate: NaN, channels: 1 }),
    expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING },
  },
  {
    row: '`new AudioFrame(data, 48000, 0)`',
    act: () => new AudioFrame(ramp(C), 48000, 0),
    expect: { throws: 'ERR_INVALID_FRAME' },
  },
  { row: '`Float32Array` with a NaN', act: (c) => c.source().captureFrame(floats(NaN)), expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING } },
  {
    row: '`Float32Array` with +Infinity',
    act: (c) => c.source().captureFrame(floats(Infinity)),
    expect: {
      value: outcome('accepted', C, 0),
      counts: { captured: C, queued: C },
      then: async (c) => expect((await readFrames(c.last.frames(), 1))[0].data[3]).toBe(32767),
    },
  },
  {
    row: '`Float32Array` with -Infinity',
    act: (c) => c.source().captureFrame(floats(-Infinity)),
    expect: {
      value: outcome('accepted', C, 0),
      counts: { captured: C, queued: C },
      then: async (c) => expect((await readFrames(c.last.frames(), 1))[0].data[3]).toBe(-32767),
    },
  },
  {
    row: '`Float32Array` beyond [-1, 1] (2.0)',
    act: (c) => c.source().captureFrame(floats(2)),
    expect: {
      value: outcome('accepted', C, 0),
      counts: { captured: C, queued: C },
      then: async (c) => expect((await readFrames(c.last.frames(), 1))[0].data[3]).toBe(32767),
    },
  },
  {
    row: "frame 5x the queue, `'wait'` (deadline 30 ms)",
    act: (c) => c.source({ overflow: 'wait', deadlineMs: 30 }).captureFrame(huge()),
    expect: { value: outcome('timeout', 2 * C, 8 * C), counts: { captured: 10 * C, queued: 2 * C, dropped: 8 * C, settled: 1 } },
  },
  {
    row: "frame 5x the queue, `'wait'`, `tryCaptureFrame`",
    act: (c) => c.source({ overflow: 'wait' }).tryCaptureFrame(huge()),
    expect: { value: outcome('dropped', 0, 10 * C), counts: { captured: 10 * C, queued: 0, dropped: 10 * C, settled: 1 } },
  },
  {
    row: "frame 5x the queue, `'drop-oldest'`",
    act: (c) => c.source({ overflow: 'drop-oldest' }).captureFrame(huge()),
    expect: { value: outcome('partial', 2 * C, 8 * C), counts: { captured: 10 * C, queued: 2 * C, dropped: 8 * C, settled: 1 } },
  },
  {
    row: "frame 5x the queue, `'drop-newest'`",
    act: (c) => c.source({ overflow: 'drop-newest' }).captureFrame(huge()),
    expect: { value: outcome('partial', 2 * C, 8 * C), counts: { captured: 10 * C, queued: 2 * C, dropped: 8 * C, settled: 1 } },
  },
  {
    row: "frame 5x the queue, `'reject'`",
    act: (c) => c.source({ overflow: 'reject' }).captureFrame(huge()),
    expect: { value: outcome('dropped', 0, 10 * C), counts: { captured: 10 * C, queued: 0, dropped: 10 * C, settled: 1 } },
  },
  {
    row: 'per-call `deadlineMs` -1',
    act: (c) => c.source().captureFrame(ramp(C), { deadlineMs: -1 }),
    expect: { rejects: 'ERR_INVALID_OPTION', counts: NOTHING },
  },
  {
    row: 'per-call `deadlineMs` NaN',
    act: (c) => c.source().captureFrame(ramp(C), { deadlineMs: NaN }),
    expect: { rejects: 'ERR_INVALID_OPTION', counts: NOTHING },
  },
  {
    row: 'per-call `deadlineMs` a string',
    act: (c) => c.source().captureFrame(ramp(C), { deadlineMs: '10' as never }),
    expect: { rejects: 'ERR_INVALID_OPTION', counts: NOTHING },
  },
  {
    row: 'per-call `deadlineMs` 3600001',
    act: (c) => c.source().captureFrame(ramp(C), { deadlineMs: 3_600_001 }),
    expect: { rejects: 'ERR_INVALID_OPTION', counts: NOTHING },
  },
  {
    row: '`flush({ deadlineMs: -1 })`',
    act: (c) => c.source().flush({ deadlineMs: -1 }),
    expect: { rejects: 'ERR_INVALID_OPTION', counts: NOTHING },
  },
  {
    row: 'call options `null`',
    act: (c) => c.source().captureFrame(ramp(C), null as never),
    expect: { rejects: 'ERR_INVALID_OPTION', counts: NOTHING },
  },
  {
    row: '`signal` not an AbortSignal, on a capture that would wait',
    act: (c) => {
      const s = c.source()
      s.tryCaptureFrame(ramp(2 * C))
      return s.captureFrame(ramp(C), { signal: {} as never })
    },
    expect: { rejects: 'ERR_INVALID_OPTION', counts: { captured: 2 * C, queued: 2 * C, settled: 1 } },
  },
  {
    row: 'already-aborted `signal`',
    act: (c) => c.source().captureFrame(ramp(C), { signal: AbortSignal.abort() }),
    expect: { value: outcome('aborted', 0, C), counts: { captured: 0, queued: 0, dropped: 0, settled: 1 } },
  },
  {
    row: 'already-aborted `signal` with a frame of another rate',
    act: (c) => c.source().captureFrame({ data: ramp(160), sampleRate: 16000, channels: 1 }, { signal: AbortSignal.abort() }),
    expect: { rejects: 'ERR_FORMAT_MISMATCH', counts: NOTHING },
  },
  {
    row: 'already-aborted `signal` with an empty frame',
    act: (c) => c.source().captureFrame(new Int16Array(0), { signal: AbortSignal.abort() }),
    expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING },
  },

  // Lifecycle
  {
    row: '`captureFrame` after `close()`',
    act: async (c) => {
      const s = c.source()
      await s.close()
      return s.captureFrame(ramp(C))
    },
    expect: { value: outcome('closed', 0, C), counts: { captured: 0, dropped: 0, settled: 1 } },
  },
  {
    row: '`tryCaptureFrame` after `close()`',
    act: async (c) => {
      const s = c.source()
      await s.close()
      return s.tryCaptureFrame(ramp(C))
    },
    expect: { value: outcome('closed', 0, C), counts: { captured: 0, dropped: 0, settled: 1 } },
  },
  {
    row: '`flush()` after `close()` (with a carried remainder)',
    act: async (c) => {
      const s = c.source()
      s.tryCaptureFrame(ramp(C + 7))
      await s.close()
      return s.flush()
    },
    expect: { value: outcome('closed', 0, 0), counts: { captured: C + 7, cleared: C + 7, settled: 2 } },
  },
  {
    row: '`clearQueue()` on a closed source',
    act: async (c) => {
      const s = c.source()
      s.tryCaptureFrame(ramp(C))
      await s.close()
      return s.clearQueue()
    },
    expect: { value: undefined, counts: { captured: C, cleared: C, queued: 0, settled: 1 } },
  },
  {
    row: '`waitForPlayout()` after `close()`',
    act: async (c) => {
      const s = c.source()
      await s.close()
      return within(s.waitForPlayout(), 1000)
    },
    expect: { value: undefined },
  },
  {
    row: '`frames()` after `close()`',
    act: async (c) => {
      const s = c.source()
      await s.close()
      return within(s.frames().next(), 1000)
    },
    expect: { value: { done: true } },
  },
  {
    row: 'a second concurrent `frames()` reader',
    act: (c) => {
      const s = c.source()
      void s.frames().next()
      return s.frames().next()
    },
    expect: { rejects: 'ERR_INVALID_STATE' },
  },
  {
    row: '`waitForPlayout` with an already-aborted `signal`',
    act: (c) => {
      const s = c.source()
      s.tryCaptureFrame(ramp(C))
      return s.waitForPlayout({ signal: AbortSignal.abort('stop') }).then(
        () => 'resolved',
        (e: unknown) => e,
      )
    },
    expect: { value: 'stop', counts: { queued: C, settled: 1 } },
  },
  {
    row: '`waitForPlayout` with a `signal` that is not an AbortSignal',
    act: (c) => {
      const s = c.source()
      s.tryCaptureFrame(ramp(C))
      return s.waitForPlayout({ signal: 'stop' as never })
    },
    expect: { rejects: 'ERR_INVALID_OPTION' },
  },
  {
    row: '`close()` twice',
    act: async (c) => {
      const s = c.source()
      s.tryCaptureFrame(ramp(C))
      await s.close()
      return s.close()
    },
    expect: { value: undefined, counts: { captured: C, cleared: C, settled: 1 } },
  },
  {
    row: 'a native processor in two sources',
    act: (c) => {
      const g = processors.gain({ db: 1 })
      c.source({ processors: [g] })
      return new AudioSource({ ...BASE, processors: [g] })
    },
    expect: { throws: 'ERR_INVALID_STATE' },
  },
  {
    row: 'a native processor reused after its source closed',
    act: (c) => {
      const g = processors.gain({ db: 1 })
      void c.source({ processors: [g] }).close()
      return new AudioSource({ ...BASE, processors: [g] })
    },
    expect: { throws: 'ERR_INVALID_STATE' },
  },
  {
    row: 'a native processor listed twice in one source',
    act: () => {
      const g = processors.gain({ db: 1 })
      return new AudioSource({ ...BASE, processors: [g, g] })
    },
    expect: { throws: 'ERR_INVALID_STATE' },
  },
  {
    row: '`setEnabled` on a native processor not attached',
    act: () => processors.gain({ db: 1 }).setEnabled(false),
    expect: { throws: 'ERR_INVALID_STATE' },
  },
  {
    row: 'a JS processor (autoClose) in two open sources',
    act: (c) => {
      const p = jsProc()
      c.source({ processors: [p] })
      return new AudioSource({ ...BASE, processors: [p] })
    },
    expect: { throws: 'ERR_INVALID_STATE' },
  },
  {
    row: 'a JS processor shared with `autoClose: false`',
    act: async (c) => {
      const p = jsProc()
      await c.source({ processors: [p], autoClose: false }).close()
      await c.source({ processors: [p], autoClose: false }).close()
      // Free again once no open source holds it: a later owner may close it.
      await c.source({ processors: [p] }).close()
      return p.closes
    },
    expect: { value: 1 },
  },
  {
    row: '`AudioStream` iterated twice',
    act: async (c) => {
      const s = c.stream([new AudioFrame(ramp(C), 48000, 1)])
      for await (const _ of s) {
        /* drain */
      }
      return s[Symbol.asyncIterator]().next()
    },
    expect: { rejects: 'ERR_INVALID_STATE' },
  },
  {
    row: '`AudioStream` input yielding a non-frame',
    act: async (c) => {
      for await (const _ of c.stream(['x'])) {
        /* never */
      }
    },
    expect: { rejects: 'ERR_INVALID_FRAME' },
  },

  // SourceGroup
  {
    row: '`SourceGroup` of mixed rates',
    act: (c) => new SourceGroup([c.source(), c.source({ sampleRate: 16000 })]),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  {
    row: '`SourceGroup` of mixed channel counts',
    act: (c) => new SourceGroup([c.source(), c.source({ channels: 2 })]),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  {
    row: '`SourceGroup` listing a source twice',
    act: (c) => {
      const s = c.source()
      return new SourceGroup([s, s])
    },
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  { row: '`SourceGroup` of no sources', act: () => new SourceGroup([]), expect: { throws: 'ERR_INVALID_OPTION' } },
  {
    row: '`SourceGroup` holding a non-source',
    act: (c) => new SourceGroup([c.source(), {} as never]),
    expect: { throws: 'ERR_INVALID_OPTION' },
  },
  { row: '`SourceGroup` of a non-iterable', act: () => new SourceGroup(5 as never), expect: { throws: 'ERR_INVALID_OPTION' } },
  {
    row: '`captureFrames` with uneven data',
    act: (c) => new SourceGroup([c.source(), c.source()]).captureFrames(ramp(2 * C + 1)),
    expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING, countsOf: 'all' },
  },
  {
    row: '`captureFrames` with ragged members (stereo, 481 each)',
    act: (c) => new SourceGroup([c.source({ channels: 2 }), c.source({ channels: 2 })]).captureFrames(ramp(2 * 481)),
    expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING, countsOf: 'all' },
  },
  {
    row: '`captureFrames` with empty data',
    act: (c) => new SourceGroup([c.source(), c.source()]).captureFrames(new Int16Array(0)),
    expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING, countsOf: 'all' },
  },
  {
    row: '`captureFrames` with a NaN in the last member',
    act: (c) => {
      const data = new Float32Array(2 * C).fill(0.5)
      data[2 * C - 1] = NaN
      return new SourceGroup([c.source(), c.source()]).captureFrames(data)
    },
    // The whole round is refused: the first member took nothing either.
    expect: { rejects: 'ERR_INVALID_FRAME', counts: NOTHING, countsOf: 'all' },
  },
  {
    row: '`captureFrames({ deadlineMs: -1 })`',
    act: (c) => new SourceGroup([c.source(), c.source()]).captureFrames(ramp(2 * C), { deadlineMs: -1 }),
    expect: { rejects: 'ERR_INVALID_OPTION', counts: NOTHING, countsOf: 'all' },
  },
  {
    row: '`captureFrames` on a closed group',
    act: (c) => {
      const g = new SourceGroup([c.source(), c.source()])
      g.close()
      return g.captureFrames(ramp(2 * C))
    },
    expect: { rejects: 'ERR_INVALID_STATE', counts: NOTHING, countsOf: 'all' },
  },
  {
    row: '`tryCaptureFrames` on a closed group',
    act: (c) => {
      const g = new SourceGroup([c.source(), c.source()])
      g.close()
      return g.tryCaptureFrames(ramp(2 * C))
    },
    expect: { throws: 'ERR_INVALID_STATE', counts: NOTHING, countsOf: 'all' },
  },
  {
    row: '`captureFrames` with a member closed',
    act: async (c) => {
      const a = c.source()
      const b = c.source()
      const g = new SourceGroup([a, b])
      await b.close()
      return g.captureFrames(ramp(2 * C))
    },
    expect: { value: { ...outcome('partial', C, C), statuses: ['accepted', 'closed'] }, counts: { captured: 0, settled: 1 } },
  },
]

/** The table's rows: the first cell of each row under the "Bad input" heading. */
function tableRows(): Array<{ row: string; gets: string }> {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'API.md'), 'utf8')
  const start = doc.indexOf('### Bad input, and what it gets')
  expect(start, 'docs/API.md has the section').toBeGreaterThan(0)
  const rest = doc.slice(start).split('\n').slice(1)
  const next = rest.findIndex((l) => /^#{1,3} /.test(l))
  const lines = (next < 0 ? rest : rest.slice(0, next)).filter((l) => l.startsWith('|'))
  // Header and separator first.
  return lines.slice(2).map((l) => {
    const cells = l
      .slice(1, l.endsWith('|') ? -1 : undefined)
      .split(/(?<!\\)\|/)
      .map((x) => x.trim())
    return { row: cells[0], gets: cells[1] ?? '' }
  })
}

async function run(k: Case): Promise<void> {
  const c = new Ctx()
  const e = k.expect
  if ('throws' in e) {
    let err: unknown
    try {
      const r = k.act(c)
      if (r instanceof Promise) r.catch(() => undefined)
    } catch (x) {
      err = x
    }
    expect(err, `${k.row}: throws synchronously`).toBeInstanceOf(CapstanError)
    expect((err as CapstanError).code).toBe(e.throws)
  } else if ('rejects' in e) {
    let p: unknown
    expect(() => (p = k.act(c)), `${k.row}: does not throw synchronously`).not.toThrow()
    expect(p).toBeInstanceOf(Promise)
    const err = await within(
      (p as Promise<unknown>).then(
        () => undefined,
        (x: unknown) => x,
      ),
      3000,
      k.row,
    )
    expect(err, `${k.row}: rejects`).toBeInstanceOf(CapstanError)
    expect((err as CapstanError).code).toBe(e.rejects)
  } else {
    const v = await within(Promise.resolve(k.act(c)), 3000, k.row)
    if (e.value !== null && typeof e.value === 'object') expect(v).toMatchObject(e.value as object)
    else expect(v).toEqual(e.value)
  }
  const counts = e.counts
  if (counts) {
    for (const s of e.countsOf === 'all' ? c.sources : [c.last]) {
      const m = s.metrics()
      const { settled, ...rest } = counts
      expect(m, k.row).toMatchObject(rest)
      if (settled !== undefined) expect(settledCount(m), `${k.row}: settled calls`).toBe(settled)
    }
  }
  if ('then' in e) await e.then?.(c)
  for (const s of c.sources) expectInvariant(s.metrics())
}

describe('bad input, and what it gets (docs/API.md)', () => {
  it.each(cases.map((k) => [k.row, k] as const))('%s', async (_, k) => {
    await run(k)
  })

  it('the table in docs/API.md and these cases are the same rows, in the same order, naming the same codes', () => {
    const rows = tableRows()
    expect(rows.length).toBeGreaterThanOrEqual(40)
    expect(rows.map((r) => r.row)).toEqual(cases.map((k) => k.row))
    expect(new Set(cases.map((k) => k.row)).size, 'labels are unique').toBe(cases.length)
    for (const [i, r] of rows.entries()) {
      const e = cases[i].expect
      const code = 'throws' in e ? e.throws : 'rejects' in e ? e.rejects : undefined
      if (code) expect(r.gets, r.row).toContain(`\`${code}\``)
      const status = 'value' in e ? (e.value as { status?: string } | undefined)?.status : undefined
      if (status) expect(r.gets, r.row).toContain(`\`'${status}'\``)
    }
  })
})
