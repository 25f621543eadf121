import { EventEmitter } from 'node:events'

import { CapstanError } from '../internal/errors'
import { turn } from '../internal/fairness'
import type { AudioFrame, AudioFrameLike } from './frame'
import type { FrameProcessor, FrameProcessorCredentials, FrameProcessorStreamInfo, NativeProcessor } from '../process/processors'
import { AudioSource, endInput } from './source'
import type { AudioSourceEvents, SourceMetrics } from './types'
import { asyncDispose } from '../internal/symbols'
import { LIMITS, readOptions, whole } from '../internal/validate'
import { STREAM_DEFAULTS } from './defaults'

export interface AudioStreamOptions {
  sampleRate: number
  channels: number
  /** Native processors first (engine threads), then JS processors (JS thread). */
  processors?: Array<NativeProcessor | FrameProcessor<AudioFrame>>
  /** Frames (10 ms) buffered between the input and the reader; the oldest drop first. Default 50. */
  queueFrames?: number
  /** Close JS processors when the stream ends. Default true; false for shared ones. */
  autoClose?: boolean
  processorBypassAfter?: number
  processorBudgetMs?: number
}

const STREAM_KEYS = ['sampleRate', 'channels', 'processors', 'queueFrames', 'autoClose', 'processorBypassAfter', 'processorBudgetMs'] as const satisfies ReadonlyArray<keyof AudioStreamOptions>

/**
 * Every event of the internal source, re-emitted by the stream. Keyed by the events type, so
 * an event added to `AudioSourceEvents` fails to compile until it is listed here.
 */
const FORWARD: { [K in keyof AudioSourceEvents]: true } = {
  health: true,
  overflow: true,
  underrun: true,
  deadline: true,
  'processor-error': true,
  'processor-slow': true,
  vad: true,
  'sink-error': true,
  closed: true,
}
const FORWARDED = Object.keys(FORWARD) as Array<keyof AudioSourceEvents>

/**
 * The receive side: wraps any (async) iterable of frames — an `@livekit/rtc-node`
 * `AudioStream` included — and yields processed, exact 10 ms frames through a bounded
 * queue that drops the oldest when the reader falls behind (counted in `metrics()`).
 */
export class AudioStream extends EventEmitter<AudioSourceEvents> implements AsyncIterable<AudioFrame> {
  readonly #input: AsyncIterable<AudioFrameLike> | Iterable<AudioFrameLike>
  readonly #source: AudioSource
  readonly #queueMs: number
  #started = false
  #stopped = false
  #error: unknown
  /** The reader is in its own code (between our `yield` and its next `next()`). */
  #readerBusy = false
  /** Wakes a pump that waits for the reader to make room. */
  #room: (() => void) | undefined
  /** The input's iterator while the pump reads it (closed once, on any exit). */
  #iterator: AsyncIterator<AudioFrameLike> | Iterator<AudioFrameLike> | undefined

  constructor(input: AsyncIterable<AudioFrameLike> | Iterable<AudioFrameLike>, options: AudioStreamOptions) {
    super()
    const it = input as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown } | null
    if (!it || (typeof it[Symbol.asyncIterator] !== 'function' && typeof it[Symbol.iterator] !== 'function')) {
      throw new CapstanError('ERR_INVALID_OPTION', 'AudioStream input must be an iterable or async iterable of frames')
    }
    const o = readOptions('AudioStream', options, STREAM_KEYS) as Partial<AudioStreamOptions>
    const queueFrames = whole('queueFrames', o.queueFrames, STREAM_DEFAULTS.queueFrames, 1, LIMITS.maxQueueMs / LIMITS.chunkMs)
    this.#input = input
    this.#queueMs = queueFrames * 10
    this.#source = new AudioSource({
      sampleRate: o.sampleRate!,
      channels: o.channels!,
      consumer: 'pull',
      queueMs: queueFrames * 10,
      overflow: 'drop-oldest',
      processors: o.processors,
      autoClose: o.autoClose,
      processorBypassAfter: o.processorBypassAfter,
      processorBudgetMs: o.processorBudgetMs,
    })
    for (const name of FORWARDED) {
      const forward = (e: unknown) => (this.emit as (n: string, e: unknown) => boolean)(name, e)
      ;(this.#source.on as (n: string, f: (e: unknown) => void) => void)(name, forward)
    }
  }

  /** The rate frames come out at (a resampling processor changes it). */
  get sampleRate(): number {
    return this.#source.outputSampleRate
  }

  async *[Symbol.asyncIterator](): AsyncIterator<AudioFrame> {
    const start = turn()
    if (start) await start
    if (this.#started) throw new CapstanError('ERR_INVALID_STATE', 'an AudioStream can be iterated once')
    this.#started = true
    const pump = this.#pump()
    let ended = false
    try {
      for await (const frame of this.#source.frames()) {
        // The reader took a frame: a pump waiting for room may go on.
        this.#wakePump()
        this.#readerBusy = true
        yield frame
        this.#readerBusy = false
      }
      // Ended by close() while the reader was away: an early exit, not the input's end.
      ended = !this.#stopped
    } finally {
      this.#stopped = true
      await this.close()
    }
    // The input ended (or failed): the pump is done. On an early exit it is not awaited:
    // an idle input may not yield again for a long time, and it stops at its next frame.
    if (ended) await pump
    if (this.#error !== undefined) throw this.#error
  }

  /**
   * Feeds the input into the bounded queue. When the queue is full, the pump gives the
   * reader as long as the frame it holds lasts to make room: a reader that keeps real time
   * loses nothing, however fast the input; one that does not loses the oldest audio
   * (counted). It yields to the event loop like every capstan loop (see ./fairness).
   */
  async #pump(): Promise<void> {
    const input = this.#input as Partial<AsyncIterable<AudioFrameLike> & Iterable<AudioFrameLike>>
    const it = input[Symbol.asyncIterator]?.() ?? (input as Iterable<AudioFrameLike>)[Symbol.iterator]()
    this.#iterator = it
    let done = false
    try {
      while (!this.#stopped) {
        const r = await it.next()
        if (r.done) {
          done = true
          this.#iterator = undefined
          break
        }
        if (this.#stopped) break
        // A frame longer than half the queue goes in in slices: whole, it could never find
        // room, and a reader parked in next() would wait for it forever.
        for (const frame of slices(r.value, this.#queueMs / 2)) {
          const ms = frameMs(frame)
          // Woken by any frame the reader got, which may have left the queue before it
          // filled: look again, until there is room or the reader has had its time.
          while (!this.#stopped && this.#source.queuedMs + ms > this.#queueMs) {
            if (await this.#waitForRoom(ms)) break
          }
          if (this.#stopped) break
          this.#source.tryCaptureFrame(frame)
        }
        if (this.#stopped) break
        const next = turn()
        if (next) await next
      }
      if (done && !this.#stopped) {
        await this.#source.flush()
        await this.#source.waitForPlayout()
      }
    } catch (e) {
      this.#error = e
    } finally {
      this.#closeInput()
      // The input ended (or failed): frames() ends once what is buffered has been read. A
      // stopped stream was closed already (close() ends the reader at once).
      if (!this.#stopped) endInput(this.#source)
    }
  }

  /**
   * Resolves false when the reader takes a frame or the stream stops, true when the reader
   * has spent `ms` in its own code without coming back (it is slower than real time). A reader parked in `next()` (about to be woken by
   * the engine) is keeping up, however busy the event loop is: it is waited for.
   */
  #waitForRoom(ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout
      const arm = () => {
        timer = setTimeout(() => {
          if (!this.#readerBusy) return arm()
          this.#room = undefined
          resolve(true)
        }, Math.max(1, ms))
      }
      arm()
      this.#room = () => {
        clearTimeout(timer)
        resolve(false)
      }
    })
  }

  #wakePump(): void {
    const wake = this.#room
    this.#room = undefined
    wake?.()
  }

  /** Tells the input we are done with it (once): a LiveKit stream or a generator stops. */
  #closeInput(): void {
    const it = this.#iterator
    this.#iterator = undefined
    if (!it?.return) return
    try {
      const r = it.return() as unknown
      if (r instanceof Promise) r.catch(() => undefined)
    } catch {
      // an input whose return() throws is done all the same
    }
  }

  setStreamInfo(info: FrameProcessorStreamInfo | null): void {
    this.#source.setStreamInfo(info)
  }

  setCredentials(credentials: FrameProcessorCredentials | null): void {
    this.#source.setCredentials(credentials)
  }

  /** `dropped` counts audio the reader was too slow for. */
  metrics(): SourceMetrics {
    return this.#source.metrics()
  }

  /** Stops reading the input, ends the iteration, closes JS processors (autoClose). */
  close(): Promise<void> {
    this.#stopped = true
    this.#wakePump()
    // Now, not when an idle input next yields: the input learns at once that we are done.
    this.#closeInput()
    return this.#source.close()
  }

  [asyncDispose](): Promise<void> {
    return this.close()
  }
}

/** `f` cut into frames of at most `maxMs` (at least 10 ms each), whole sample frames. */
function slices(f: AudioFrameLike, maxMs: number): AudioFrameLike[] {
  const ms = frameMs(f)
  if (ms <= maxMs || ms === 0) return [f]
  const per = Math.max(Math.ceil(f.sampleRate / 100), Math.floor((maxMs * f.sampleRate) / 1000)) * f.channels
  const out: AudioFrameLike[] = []
  for (let off = 0; off < f.data.length; off += per) {
    out.push({ data: f.data.subarray(off, Math.min(f.data.length, off + per)), sampleRate: f.sampleRate, channels: f.channels })
  }
  return out
}

/** How long a frame lasts, in ms (0 for one the source will refuse anyway). */
function frameMs(f: AudioFrameLike): number {
  const len = (f as { data?: { length?: unknown } })?.data?.length
  if (typeof len !== 'number' || !(f.sampleRate > 0) || !(f.channels > 0)) return 0
  return (len / f.channels / f.sampleRate) * 1000
}
