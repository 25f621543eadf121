import { CapstanError } from '../internal/errors'

/** Interleaved PCM: `Int16Array`, or `Float32Array` in [-1, 1] (converted, clipped). */
export type Samples = Int16Array | Float32Array

/** The frame shape capstan reads; a LiveKit `AudioFrame` has it too. */
export interface AudioFrameLike {
  data: Samples
  sampleRate: number
  channels: number
}

/** A frame of interleaved PCM with its format. Any length; capstan cuts 10 ms chunks. */
export class AudioFrame implements AudioFrameLike {
  readonly data: Samples
  readonly sampleRate: number
  readonly channels: number

  constructor(data: Samples, sampleRate: number, channels: number) {
    if (!(data instanceof Int16Array) && !(data instanceof Float32Array)) {
      throw new CapstanError('ERR_INVALID_FRAME', 'AudioFrame data must be an Int16Array or a Float32Array')
    }
    if (!Number.isInteger(sampleRate) || sampleRate <= 0) {
      throw new CapstanError('ERR_INVALID_FRAME', `AudioFrame sampleRate must be a positive integer, got ${sampleRate}`)
    }
    if (!Number.isInteger(channels) || channels <= 0) {
      throw new CapstanError('ERR_INVALID_FRAME', `AudioFrame channels must be a positive integer, got ${channels}`)
    }
    this.data = data
    this.sampleRate = sampleRate
    this.channels = channels
  }

  /** Samples per channel. */
  get samplesPerChannel(): number {
    return Math.floor(this.data.length / this.channels)
  }
}
