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

type Kind = 'gain' | 'highPass' | 'resample' | 'denoise' | 'vad'

let attachOf: (p: NativeProcessor, source: NativeSourceT, index: number) => void
let detachOf: (p: NativeProcessor, source: NativeSourceT) => void
/** Test-only fault processors: their mode, which only the binding's spec carries. */
const faultModes = new WeakMap<NativeProcessor, FaultMode>()

/** Binds a processor to the source it runs in (once: a processor belongs to one source). */
export function attachProcessor(p: NativeProcessor, source: NativeSourceT, index: number): void {
  attachOf(p, source, index)
}

/** Undoes `attachProcessor` for a source whose construction failed. */
export function detachProcessor(p: NativeProcessor, source: NativeSourceT): void {
  detachOf(p, source)
}

/** The spec the binding reads. */
export function specOf(p: NativeProcessor): Record<string, unknown> {
  const mode = faultModes.get(p)
  return mode === undefined ? { kind: p.kind, ...p.options } : { kind: p.kind, ...p.options, mode }
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
