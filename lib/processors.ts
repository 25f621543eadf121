import { CapstanError, native } from './errors'
import type { NativeSourceT } from './engine'

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

  /** @internal */
  attach(source: NativeSourceT, index: number): void {
    if (this.#source) throw new CapstanError('ERR_INVALID_STATE', `${this.kind} processor already belongs to a source`)
    this.#source = source
    this.#index = index
  }

  /** @internal Undoes `attach` for a source whose construction failed. */
  detach(source: NativeSourceT): void {
    if (this.#source === source) {
      this.#source = undefined
      this.#index = -1
    }
  }

  /** @internal The spec the binding reads. */
  spec(): Record<string, unknown> {
    return { kind: this.kind, ...this.options }
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

/** A native processor that misbehaves on purpose (test-only; see `__faultProcessor`). */
class FaultProcessor extends NativeProcessor {
  readonly #mode: FaultMode

  constructor(mode: FaultMode, options: Record<string, number>) {
    // The kind only the binding knows: deliberately outside the public `Kind` union.
    super('__fault' as Kind, options)
    this.#mode = mode
  }

  /** @internal */
  override spec(): Record<string, unknown> {
    return { ...super.spec(), mode: this.#mode }
  }
}

/**
 * @internal TEST-ONLY, not part of the API and not exported from the package root: a
 * native processor that, on every `everyN`-th chunk (default 1), sleeps `ms` then passes
 * the chunk through (`'sleep'`), returns an error (`'error'`) or panics (`'panic'`) on the
 * engine thread; its other chunks pass through. The fault matrix uses it to show that a
 * slow, failing or panicking native processor never stops the audio, the engine or the
 * process. Options are validated natively when a source is created with it.
 */
export function __faultProcessor(o: { mode: FaultMode; everyN?: number; ms?: number }): NativeProcessor {
  const { mode, ...rest } = o ?? ({} as { mode: FaultMode })
  if (typeof mode !== 'string') throw new CapstanError('ERR_INVALID_OPTION', "__fault: mode must be 'sleep', 'error' or 'panic'")
  return new FaultProcessor(mode, numbers('__fault', rest, ['everyN', 'ms']))
}
