import { EventEmitter } from 'node:events'

import { CapstanError } from './errors'
import type { AudioFrame, AudioFrameLike } from './frame'
import type { FrameProcessor, FrameProcessorCredentials, FrameProcessorStreamInfo, NativeProcessor } from './processors'
import { AudioSource } from './source'
import type { AudioSourceEvents, SourceMetrics } from './types'

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

/**
 * The receive side: wraps any (async) iterable of frames — an `@livekit/rtc-node`
 * `AudioStream` included — and yields processed, exact 10 ms frames through a bounded
 * queue that drops the oldest when the reader falls behind (counted in `metrics()`).
 */
export class AudioStream extends EventEmitter<AudioSourceEvents> implements AsyncIterable<AudioFrame> {
  readonly #input: AsyncIterable<AudioFrameLike> | Iterable<AudioFrameLike>
  readonly #source: AudioSource
  #started = false
  #stopped = false
  #error: unknown

  constructor(input: AsyncIterable<AudioFrameLike> | Iterable<AudioFrameLike>, options: AudioStreamOptions) {
    super()
    const it = input as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown } | null
    if (!it || (typeof it[Symbol.asyncIterator] !== 'function' && typeof it[Symbol.iterator] !== 'function')) {
      throw new CapstanError('ERR_INVALID_OPTION', 'AudioStream input must be an iterable or async iterable of frames')
    }
    const queueFrames = options?.queueFrames ?? 50
    if (!Number.isInteger(queueFrames) || queueFrames < 1) {
      throw new CapstanError('ERR_INVALID_OPTION', `queueFrames must be a positive integer, got ${queueFrames}`)
    }
    this.#input = input
    this.#source = new AudioSource({
      sampleRate: options.sampleRate,
      channels: options.channels,
      consumer: 'pull',
      queueMs: queueFrames * 10,
      overflow: 'drop-oldest',
      processors: options.processors,
      autoClose: options.autoClose,
      processorBypassAfter: options.processorBypassAfter,
      processorBudgetMs: options.processorBudgetMs,
    })
    for (const name of ['overflow', 'processor-error', 'processor-slow', 'vad', 'health', 'closed'] as const) {
      const forward = (e: unknown) => (this.emit as (n: string, e: unknown) => boolean)(name, e)
      ;(this.#source.on as (n: string, f: (e: unknown) => void) => void)(name, forward)
    }
  }

  /** The rate frames come out at (a resampling processor changes it). */
  get sampleRate(): number {
    return this.#source.outputSampleRate
  }

  async *[Symbol.asyncIterator](): AsyncIterator<AudioFrame> {
    if (this.#started) throw new CapstanError('ERR_INVALID_STATE', 'an AudioStream can be iterated once')
    this.#started = true
    const pump = this.#pump()
    let ended = false
    try {
      yield* this.#source.frames()
      ended = true
    } finally {
      this.#stopped = true
      await this.close()
    }
    // The input ended (or failed): the pump is done. On an early exit it is not awaited:
    // an idle input may not yield again for a long time, and it stops at its next frame.
    if (ended) await pump
    if (this.#error !== undefined) throw this.#error
  }

  /** Feeds the input into the bounded queue; never waits (drop-oldest, counted). */
  async #pump(): Promise<void> {
    try {
      for await (const frame of this.#input) {
        if (this.#stopped) break
        this.#source.tryCaptureFrame(frame)
      }
      if (!this.#stopped) {
        await this.#source.flush()
        await this.#source.waitForPlayout()
      }
    } catch (e) {
      this.#error = e
    } finally {
      // Ends frames() once what is buffered has been read.
      await this.#source.close()
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
    return this.#source.close()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
