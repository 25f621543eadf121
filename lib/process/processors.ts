import { CapstanError, native } from '../internal/errors'
import type { NativeSourceT } from '../internal/engine'

/** Stream info pushed to processors (LiveKit's `FrameProcessorStreamInfo`). */
export interface FrameProcessorStreamInfo {
  roomName: string
  participantIdentity: string
  publicationSid: string
}

/** Credentials pushed to processors (LiveKit's `FrameProcessorCredentials`). */
export interface FrameProcessorCredentials {
  token: string
  url: string
}

/** The shape of LiveKit's `FrameProcessor<AudioFrame>`. */
export interface FrameProcessor<Frame = unknown> {
  isEnabled(): boolean
  setEnabled(enabled: boolean): void
  process(frame: Frame): Frame
  close(): void
  onStreamInfoUpdated?(info: FrameProcessorStreamInfo): void
  onStreamInfoCleared?(): void
  onCredentialsUpdated?(credentials: FrameProcessorCredentials): void
  onCredentialsCleared?(): void
}

type Kind = 'gain' | 'highPass' | 'resample' | 'denoise' | 'vad' | 'echoCancel' | 'autoGain'

let attachOf: (p: NativeProcessor, source: NativeSourceT, index: number) => void
let detachOf: (p: NativeProcessor, source: NativeSourceT) => void
/** Test-only fault processors: their mode, which only the binding's spec carries. */
const faultModes = new WeakMap<NativeProcessor, FaultMode>()
/** echoCancel: the far-end source and the non-numeric options, which only the spec carries. */
const echoRefs = new WeakMap<NativeProcessor, { reference: unknown; highPass?: boolean; noiseSuppression?: string; doubleTalk?: string }>()

/** Binds a processor to the source it runs in (once: a processor belongs to one source). */
export function attachProcessor(p: NativeProcessor, source: NativeSourceT, index: number): void {
  attachOf(p, source, index)
}

/** Undoes `attachProcessor` for a source whose construction failed. */
export function detachProcessor(p: NativeProcessor, source: NativeSourceT): void {
  detachOf(p, source)
}

/**
 * The spec the binding reads. `tapIdOf` turns an echoCancel's `reference` (checked by the
 * caller, which knows `AudioSource`) into the id of that source's reference tap.
 */
export function specOf(p: NativeProcessor, tapIdOf?: (reference: unknown) => number): Record<string, unknown> {
  const mode = faultModes.get(p)
  if (mode !== undefined) return { kind: p.kind, ...p.options, mode }
  const echo = echoRefs.get(p)
  if (echo !== undefined) {
    if (!tapIdOf) throw new CapstanError('ERR_INVALID_OPTION', 'echoCancel: reference must be an AudioSource')
    const { reference, ...rest } = echo
    return { kind: p.kind, ...p.options, ...rest, reference: tapIdOf(reference) }
  }
  return { kind: p.kind, ...p.options }
}

/** Options of `processors.echoCancel()`; limits and defaults are the core's. */
export interface EchoCancelOptions {
  /** The far end: the `AudioSource` whose delivered audio (the agent's voice) to cancel. */
  reference: object
  /** WebRTC's 80 Hz high-pass before AEC3. @default false */
  highPass?: boolean
  /** WebRTC noise suppression inside the canceller (`suppress` only). @default 'off' */
  noiseSuppression?: 'off' | 'low' | 'moderate' | 'high' | 'very-high'
  /**
   * While both ends talk: `'suppress'` is AEC3 (its suppressor also takes the near end down,
   * about 10 dB); `'preserve'` is the core's Kalman canceller, which keeps the near end
   * (needs the reference at the stream's rate; slower to converge at the start).
   * @default 'suppress'
   */
  doubleTalk?: 'suppress' | 'preserve'
}

/** Options of `processors.autoGain()`; limits and defaults are the core's. */
export interface AutoGainOptions {
  /** Speech RMS level to reach, dBFS (−60..−1). @default -18 */
  targetDbfs?: number
  /** Most gain, dB (0..60). @default 30 */
  maxGainDb?: number
  /** Most attenuation, dB (0..60). @default 20 */
  maxAttenuationDb?: number
  /** Gain slew limit, dB per second (0.1..100). @default 6 */
  maxGainChangeDbPerSecond?: number
  /** Peak ceiling after the gain, dBFS (−20..0, at least targetDbfs). @default -1 */
  limiterDbfs?: number
  /** Chunks quieter than this (before gain) leave the level estimate alone (−90..−10). @default -50 */
  speechThresholdDbfs?: number
}

/**
 * A built-in processor. It runs on engine threads, never on the JS thread; the options
 * are validated natively when a source is created with it. Attached to one source.
 */
export class NativeProcessor {
  readonly kind: Kind
  readonly options: Readonly<Record<string, number>>
  #source: NativeSourceT | undefined
  #index = -1

  constructor(kind: Kind, options: Record<string, number> = {}) {
    this.kind = kind
    this.options = Object.freeze({ ...options })
  }

  static {
    attachOf = (p, source, index) => {
      if (p.#source) throw new CapstanError('ERR_INVALID_STATE', `${p.kind} processor already belongs to a source`)
      p.#source = source
      p.#index = index
    }
    detachOf = (p, source) => {
      if (p.#source === source) {
        p.#source = undefined
        p.#index = -1
      }
    }
  }

  /** False when disabled, or bypassed after `processorBypassAfter` consecutive failures. */
  isEnabled(): boolean {
    return this.#source ? this.#source.processorEnabled(this.#index) : true
  }

  /** `true` brings a bypassed processor back. */
  setEnabled(enabled: boolean): void {
    if (!this.#source) throw new CapstanError('ERR_INVALID_STATE', `${this.kind} processor is not attached to a source`)
    const source = this.#source
    native(() => source.setProcessorEnabled(this.#index, enabled))
  }
}

function numbers(kind: string, o: object | undefined, allowed: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(o ?? {})) {
    if (!allowed.includes(k)) throw new CapstanError('ERR_INVALID_OPTION', `${kind}: unknown option '${k}'`)
    if (v === undefined) continue
    if (typeof v !== 'number') throw new CapstanError('ERR_INVALID_OPTION', `${kind}: ${k} must be a number`)
    out[k] = v
  }
  return out
}

/** Built-in native processors (real DSP, on engine threads). */
export const processors = {
  /** Gain in dB (−120..60); 0 dB is bit-exact. */
  gain: (o: { db: number }) => new NativeProcessor('gain', numbers('gain', o, ['db'])),
  /** 2nd-order Butterworth high-pass at `hz`. */
  highPass: (o: { hz: number }) => new NativeProcessor('highPass', numbers('highPass', o, ['hz'])),
  /** Resampler (rubato, FFT): exact 10 ms chunks out at `toRate`. */
  resample: (o: { toRate: number }) => new NativeProcessor('resample', numbers('resample', o, ['toRate'])),
  /** RNNoise noise suppression (nnnoiseless); other rates are resampled through 48 kHz. */
  denoise: () => new NativeProcessor('denoise'),
  /** Energy VAD with hysteresis; emits `'vad'` events on the source. */
  vad: (o: { thresholdDb?: number; hysteresisDb?: number; attackMs?: number; hangoverMs?: number } = {}) =>
    new NativeProcessor('vad', numbers('vad', o, ['thresholdDb', 'hysteresisDb', 'attackMs', 'hangoverMs'])),
  /**
   * Acoustic echo cancellation (AEC3, WebRTC's, as the pure-Rust `sonora` port) on the
   * receive side: cancels from this stream what `reference` (an `AudioSource`) actually
   * delivered, after its processors, tapped on the engine thread at each tick. AEC3
   * estimates the echo delay itself. `metrics().processors[i].health` reports `erleDb`,
   * `delayMs`, `echoRemovedDb`, `doubleTalk` and more.
   */
  echoCancel: (o: EchoCancelOptions) => {
    if (o === null || typeof o !== 'object') throw new CapstanError('ERR_INVALID_OPTION', 'echoCancel: options must be an object with reference')
    for (const k of Object.keys(o)) {
      if (!['reference', 'highPass', 'noiseSuppression', 'doubleTalk'].includes(k)) throw new CapstanError('ERR_INVALID_OPTION', `echoCancel: unknown option '${k}'`)
    }
    if (o.highPass !== undefined && typeof o.highPass !== 'boolean') throw new CapstanError('ERR_INVALID_OPTION', 'echoCancel: highPass must be a boolean')
    if (o.noiseSuppression !== undefined && typeof o.noiseSuppression !== 'string') {
      throw new CapstanError('ERR_INVALID_OPTION', 'echoCancel: noiseSuppression must be a string')
    }
    if (o.doubleTalk !== undefined && typeof o.doubleTalk !== 'string') throw new CapstanError('ERR_INVALID_OPTION', 'echoCancel: doubleTalk must be a string')
    const p = new NativeProcessor('echoCancel')
    echoRefs.set(p, { reference: o.reference, highPass: o.highPass, noiseSuppression: o.noiseSuppression, doubleTalk: o.doubleTalk })
    return p
  },
  /** AGC2-style automatic gain (speech level → `targetDbfs`, slew-limited) with a peak limiter. */
  autoGain: (o: AutoGainOptions = {}) =>
    new NativeProcessor(
      'autoGain',
      numbers('autoGain', o, ['targetDbfs', 'maxGainDb', 'maxAttenuationDb', 'maxGainChangeDbPerSecond', 'limiterDbfs', 'speechThresholdDbfs']),
    ),
}

/** What a test-only fault processor does on the chunks its schedule hits. */
type FaultMode = 'sleep' | 'error' | 'panic'

/**
 * TEST-ONLY, not part of the API and not exported from the package root: a
 * native processor that, on every `everyN`-th chunk (default 1), sleeps `ms` then passes
 * the chunk through (`'sleep'`), returns an error (`'error'`) or panics (`'panic'`) on the
 * engine thread; its other chunks pass through. The fault matrix uses it to show that a
 * slow, failing or panicking native processor never stops the audio, the engine or the
 * process. Options are validated natively when a source is created with it.
 */
export function __faultProcessor(o: { mode: FaultMode; everyN?: number; ms?: number }): NativeProcessor {
  const { mode, ...rest } = o ?? ({} as { mode: FaultMode })
  if (typeof mode !== 'string') throw new CapstanError('ERR_INVALID_OPTION', "__fault: mode must be 'sleep', 'error' or 'panic'")
  // The kind only the binding knows: deliberately outside the public `Kind` union.
  const p = new NativeProcessor('__fault' as Kind, numbers('__fault', rest, ['everyN', 'ms']))
  faultModes.set(p, mode)
  return p
}
