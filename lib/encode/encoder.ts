import { EventEmitter } from 'node:events'
import type { Readable } from 'node:stream'

import { CapstanError } from '../internal/errors'
import type { AudioFrameLike, Samples } from '../source/frame'
import type { NativeProcessor } from '../process/processors'
import { AudioSource } from '../source/source'
import type { EncodedChunk, EncodedSegment, EncodedStream, EncodedStreamEvents, EncodeOptions, EncoderMetrics } from './encoded-stream'
import type { CaptureOptions, CaptureOutcome, SourceMetrics } from '../source/types'
import { asyncDispose } from '../internal/symbols'
import { readOptions } from '../internal/validate'
import { ENCODER_DEFAULTS } from './defaults'

export interface AudioEncoderOptions extends EncodeOptions {
  sampleRate: number
  channels: number
  /** Audio pushed but not yet encoded, in ms (a multiple of 10). Default 1000. */
  inputQueueMs?: number
  /** Native processors run before the encoder, on engine threads. */
  processors?: NativeProcessor[]
  /** A label for exported metrics. */
  name?: string
}

/** The encoder's output metrics, and its input queue's (samples: pushed = encoded + queued + dropped + cleared). */
export interface AudioEncoderMetrics extends EncoderMetrics {
  input: SourceMetrics
}

const ENCODER_KEYS = [
  'sampleRate', 'channels', 'inputQueueMs', 'processors', 'name', 'format', 'bitrate', 'complexity', 'application', 'frameMs',
  'pageMs', 'dtx', 'fec', 'packetLossPercent', 'vbrQuality', 'quality', 'queueBytes', 'overflow', 'fillGaps',
] as const satisfies ReadonlyArray<keyof AudioEncoderOptions>

/**
 * A standalone streaming encoder: `push(frame)` copies the samples and returns at once
 * (a typed outcome, no promise); engine threads encode them as fast as they come (an
 * unpaced source with the encoder as its sink). A push that does not fit the input queue
 * is refused whole and counted (`status: 'dropped'`).
 */
export class AudioEncoder extends EventEmitter<EncodedStreamEvents> implements AsyncIterable<Uint8Array> {
  readonly sampleRate: number
  readonly channels: number
  readonly #source: AudioSource
  readonly #stream: EncodedStream

  constructor(options: AudioEncoderOptions) {
    super()
    const { sampleRate, channels, inputQueueMs, processors, name, ...encode } = readOptions('AudioEncoder', options, ENCODER_KEYS) as AudioEncoderOptions
    this.#source = new AudioSource({
      sampleRate,
      channels,
      name,
      processors,
      consumer: 'unpaced',
      overflow: 'reject',
      queueMs: inputQueueMs ?? ENCODER_DEFAULTS.inputQueueMs,
    })
    try {
      this.#stream = this.#source.encode(encode)
    } catch (e) {
      void this.#source.close()
      throw e
    }
    this.sampleRate = sampleRate
    this.channels = channels
    this.#stream.on('segment', (s) => this.emit('segment', s))
    // Encoder errors are re-emitted only while someone listens (an unheard 'error' would throw).
    this.#stream.on('error', (e) => {
      if (this.listenerCount('error') > 0) this.emit('error', e)
    })
  }

  /** Copies the frame and returns at once; never encodes on the calling thread. */
  push(frame: AudioFrameLike | Samples): CaptureOutcome {
    return this.#source.tryCaptureFrame(frame)
  }

  /** Ends the current segment (a complete file) after everything pushed so far. */
  segment(opts?: CaptureOptions): Promise<EncodedSegment> {
    return this.#stream.segment(opts)
  }

  /** Ends the stream after everything pushed so far, then releases the encoder. */
  async finish(opts?: CaptureOptions): Promise<EncodedSegment> {
    const s = await this.#stream.finish(opts)
    await this.#source.close()
    return s
  }

  /** Idempotent. Audio not yet encoded is cleared (counted); the current segment is completed. */
  close(): Promise<void> {
    return this.#source.close()
  }
  [asyncDispose](): Promise<void> {
    return this.close()
  }


  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return this.#stream[Symbol.asyncIterator]()
  }

  chunks(opts?: { maxBytes?: number }): AsyncIterableIterator<EncodedChunk> {
    return this.#stream.chunks(opts)
  }

  readable(): Readable {
    return this.#stream.readable()
  }

  stream(): ReadableStream<Uint8Array> {
    return this.#stream.stream()
  }

  get ended(): boolean {
    return this.#stream.ended
  }

  metrics(): AudioEncoderMetrics {
    return { ...this.#stream.metrics(), input: this.#source.metrics() }
  }
}
