import { CapstanError, native } from '../internal/errors'
import { NativeMixer, type NativeMixerT } from '../internal/engine'
import { asyncDispose } from '../internal/symbols'
import { AudioFrame } from './frame'
import { AudioSource, nativeOf } from './source'
import type { AudioSourceOptions } from './types'

/** Ducking: how background inputs go down while a speech input talks (limits are the core's). */
export interface DuckOptions {
  /** Depth, dB (0..60; 0 turns ducking off). @default 12 */
  duckDb?: number
  /** A speech chunk at or above this RMS level ducks, dBFS (−90..0). @default -45 */
  thresholdDbfs?: number
  /** Time to reach the full depth, ms (10..5000). @default 20 */
  attackMs?: number
  /** Time to come back, ms (10..10000). @default 300 */
  releaseMs?: number
}

export interface AudioMixerOptions {
  sampleRate: number
  channels: number
  /** The output's consumer. @default 'realtime' */
  consumer?: 'realtime' | 'unpaced'
  /** The output's queue, ms. @default 200 */
  queueMs?: number
  duck?: DuckOptions
}

/** One input: its gain and role, and the options of the `pull` source it is. */
export interface MixerInputOptions extends Pick<AudioSourceOptions, 'queueMs' | 'overflow' | 'deadlineMs' | 'stallAfterMs'> {
  /** Gain, dB (−120..24). @default 0 */
  gainDb?: number
  /** `'speech'` ducks the background; `'background'` is ducked. @default 'speech' */
  role?: 'speech' | 'background'
}

/** A clip the mixer plays itself. */
export interface MixerClipOptions {
  /** Gain, dB (−120..24). @default 0 */
  gainDb?: number
  /** @default 'background' */
  role?: 'speech' | 'background'
  /** Loop until `removeClip()`; false plays it once. @default true */
  loop?: boolean
}

export interface MixerMetrics {
  inputs: Array<{ gainDb: number; role: 'speech' | 'background' }>
  /** The duck depth now, dB. */
  duckDb: number
  mixedMs: number
  duckedMs: number
}

const MIXER_KEYS = ['sampleRate', 'channels', 'consumer', 'queueMs', 'duck']
const INPUT_KEYS = ['gainDb', 'role', 'queueMs', 'overflow', 'deadlineMs', 'stallAfterMs']
const DUCK_KEYS = ['duckDb', 'thresholdDbfs', 'attackMs', 'releaseMs']

function known(what: string, o: object, keys: string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new CapstanError('ERR_INVALID_OPTION', `${what}: unknown option '${k}'`)
}

/**
 * Several sources mixed into one on the engine clock. Each `input()` is an `AudioSource`
 * (consumer `'pull'`, read by the mixer) with its own queue, overflow policy, outcomes and
 * accounting; `output` is an ordinary `AudioSource` that carries the mix to any sink
 * (`encode()`, a `Publisher`, a byte stream). Each tick the output takes one chunk from
 * every input (silence for an input with nothing queued), applies the input's gain and, to
 * background inputs, the ducking gain, and sums them (rounded, saturated).
 */
export class AudioMixer {
  readonly output: AudioSource
  readonly #native: NativeMixerT
  readonly #inputs = new Set<AudioSource>()
  readonly #sampleRate: number
  readonly #channels: number

  constructor(options: AudioMixerOptions) {
    if (options === null || typeof options !== 'object') throw new CapstanError('ERR_INVALID_OPTION', 'AudioMixer options must be an object')
    known('AudioMixer', options, MIXER_KEYS)
    const duck = options.duck ?? {}
    known('AudioMixer duck', duck, DUCK_KEYS)
    this.output = new AudioSource({
      sampleRate: options.sampleRate,
      channels: options.channels,
      consumer: options.consumer ?? 'realtime',
      queueMs: options.queueMs ?? 200,
    })
    this.#sampleRate = options.sampleRate
    this.#channels = options.channels
    try {
      this.#native = native(() => new NativeMixer(nativeOf(this.output), duck))
    } catch (e) {
      void this.output.close()
      throw e
    }
  }

  /** A new input: an `AudioSource` to capture into, mixed from the next tick on. */
  input(options: MixerInputOptions = {}): AudioSource {
    known('AudioMixer input', options, INPUT_KEYS)
    const { gainDb, role, ...rest } = options
    const s = new AudioSource({ ...rest, sampleRate: this.#sampleRate, channels: this.#channels, consumer: 'pull' })
    try {
      native(() => this.#native.addInput(nativeOf(s), gainDb, role))
    } catch (e) {
      void s.close()
      throw e
    }
    this.#inputs.add(s)
    return s
  }

  /**
   * Plays a clip (a copy of `data`, the mixer's format, interleaved) from the next chunk
   * on, looping (a background bed) or once (a chime); returns its id for `removeClip`.
   */
  addClip(data: Int16Array | AudioFrame, options: MixerClipOptions = {}): number {
    known('AudioMixer clip', options, ['gainDb', 'role', 'loop'])
    let pcm: Int16Array
    if (data instanceof AudioFrame) {
      if (data.sampleRate !== this.#sampleRate || data.channels !== this.#channels) {
        throw new CapstanError('ERR_FORMAT_MISMATCH', `clip is ${data.sampleRate} Hz / ${data.channels} ch, the mixer ${this.#sampleRate} Hz / ${this.#channels} ch`)
      }
      pcm = data.data as Int16Array
    } else pcm = data
    if (!(pcm instanceof Int16Array)) throw new CapstanError('ERR_INVALID_FRAME', 'a clip is an Int16Array or an AudioFrame of Int16 samples')
    return native(() => this.#native.addClip(pcm, options.gainDb, options.role, options.loop))
  }

  /** Stops a clip; false if it was not playing (unknown, or a one-shot that ended). */
  removeClip(id: number): boolean {
    return this.#native.removeClip(id)
  }

  /** Changes an input's gain, dB, from the next chunk on. */
  setGain(input: AudioSource, gainDb: number): void {
    if (!this.#inputs.has(input)) throw new CapstanError('ERR_INVALID_OPTION', 'not an input of this mixer')
    native(() => this.#native.setGain(nativeOf(input).id, gainDb))
  }

  metrics(): MixerMetrics {
    const s = this.#native.stats()
    return {
      inputs: s.inputs.map((i) => ({ gainDb: i.gainDb, role: i.role as 'speech' | 'background' })),
      duckDb: s.duckDb,
      mixedMs: s.mixedMs,
      duckedMs: s.duckedMs,
    }
  }

  /** Closes every input, then the output. */
  async close(): Promise<void> {
    const all = [...this.#inputs]
    this.#inputs.clear()
    await Promise.all(all.map((s) => s.close()))
    await this.output.close()
  }

  async [asyncDispose](): Promise<void> {
    await this.close()
  }
}
