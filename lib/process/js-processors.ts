import { AudioFrame, type AudioFrameLike } from '../source/frame'
import { binding } from '../internal/binding'
import { CapstanError, describe, native } from '../internal/errors'
import type { FrameProcessor, FrameProcessorCredentials, FrameProcessorStreamInfo } from './processors'
import type { ProcessorMetrics } from '../source/types'
import type { JsEvent, NativeLedger as NativeLedgerT } from '../internal/binding'

/** Whether `p` has LiveKit's `FrameProcessor<AudioFrame>` shape. */
export function isFrameProcessor(p: unknown): p is FrameProcessor<AudioFrame> {
  const o = p as Record<string, unknown> | null
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.process === 'function' &&
    typeof o.isEnabled === 'function' &&
    typeof o.setEnabled === 'function' &&
    typeof o.close === 'function'
  )
}

/**
 * Open chains holding each JS processor: `closing` with autoClose (they will close it),
 * `sharing` without. A processor some chain will close belongs to that chain alone: in a
 * second one it would be closed while still in use there (or closed twice).
 */
const holders = new WeakMap<object, { closing: number; sharing: number }>()

function hold(procs: FrameProcessor<AudioFrame>[], autoClose: boolean): void {
  const taken: FrameProcessor<AudioFrame>[] = []
  for (const p of procs) {
    const h = holders.get(p) ?? { closing: 0, sharing: 0 }
    if (h.closing > 0 || (autoClose && h.sharing > 0)) {
      letGo(taken, autoClose)
      throw new CapstanError(
        'ERR_INVALID_STATE',
        `a FrameProcessor (${p.constructor?.name || 'FrameProcessor'}) is already in use by an open source that closes it; ` +
          'to share one, pass autoClose: false everywhere it is used',
      )
    }
    if (autoClose) h.closing++
    else h.sharing++
    holders.set(p, h)
    taken.push(p)
  }
}

function letGo(procs: FrameProcessor<AudioFrame>[], autoClose: boolean): void {
  for (const p of procs) {
    const h = holders.get(p)
    if (!h) continue
    if (autoClose) h.closing--
    else h.sharing--
  }
}

/**
 * JavaScript processors, run in order on the JS thread where audio reaches JavaScript
 * (`frames()`, `AudioStream`). Their calls, failures, bypass and budget are kept by the
 * engine's own ledger (the native chain's rules); this class only calls them and keeps
 * their lifecycle: stream info and credentials pushed on change and cleared on detach,
 * `close()` once, after the last `process()` returned, unless `autoClose` is false.
 */
export class JsChain {
  readonly #procs: FrameProcessor<AudioFrame>[]
  readonly #ledger: NativeLedgerT
  readonly #emit: (e: JsEvent) => void
  readonly #autoClose: boolean
  #info: FrameProcessorStreamInfo | null = null
  #creds: FrameProcessorCredentials | null = null
  #closed = false
  /** Inside run(): a close() now (from a process() or an event listener) waits for it to end. */
  #running = false
  #closeAfterRun = false

  constructor(
    procs: FrameProcessor<AudioFrame>[],
    /** The source's options; unset limits are the core's defaults, as for native processors. */
    opts: { bypassAfter?: number; budgetMs?: number; autoClose: boolean },
    emit: (e: JsEvent) => void,
  ) {
    this.#procs = procs
    const names = procs.map((p) => (p as object).constructor?.name || 'FrameProcessor')
    hold(procs, opts.autoClose)
    try {
      this.#ledger = native(() => new binding.NativeLedger(names, opts.bypassAfter, opts.budgetMs))
    } catch (e) {
      letGo(procs, opts.autoClose)
      throw e
    }
    this.#emit = emit
    this.#autoClose = opts.autoClose
  }

  get length(): number {
    return this.#procs.length
  }

  /** Runs one frame through every enabled, non-bypassed processor. */
  run(frame: AudioFrame): AudioFrame {
    this.#running = true
    try {
      return this.#runAll(frame)
    } finally {
      this.#running = false
      if (this.#closeAfterRun) this.#teardown()
    }
  }

  #runAll(frame: AudioFrame): AudioFrame {
    let cur = frame
    this.#procs.forEach((p, i) => {
      // A processor the ledger bypassed and the user re-enabled comes back.
      if (this.#ledger.bypassed(i) && p.isEnabled()) this.#ledger.setEnabled(i, true)
      if (!p.isEnabled() || !this.#ledger.active(i)) return
      let failure: string | undefined
      let out: AudioFrame | undefined
      const t0 = performance.now()
      try {
        out = conform(p.process(cur), cur)
      } catch (e) {
        failure = describe(e)
      }
      const events = this.#ledger.record(i, (performance.now() - t0) * 1000, failure)
      if (out) cur = out
      for (const e of events) {
        if (e.kind === 'processor-error' && e.bypassed) this.#call(() => p.setEnabled(false))
        this.#emit(e)
      }
    })
    return cur
  }

  setStreamInfo(info: FrameProcessorStreamInfo | null): void {
    this.#info = info
    for (const p of this.#procs) this.#call(() => (info ? p.onStreamInfoUpdated?.(info) : p.onStreamInfoCleared?.()))
  }

  setCredentials(creds: FrameProcessorCredentials | null): void {
    this.#creds = creds
    for (const p of this.#procs) this.#call(() => (creds ? p.onCredentialsUpdated?.(creds) : p.onCredentialsCleared?.()))
  }

  stats(): ProcessorMetrics[] {
    return this.#ledger.stats() as ProcessorMetrics[]
  }

  /**
   * Detaches: clears what was pushed, then closes the processors unless `autoClose: false`.
   * Called during run() (re-entrantly), it happens when run() returns: the frame in flight
   * is finished first, so close() always comes after the last process() returned.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#running) this.#closeAfterRun = true
    else this.#teardown()
  }

  #teardown(): void {
    this.#closeAfterRun = false
    if (this.#info) this.setStreamInfo(null)
    if (this.#creds) this.setCredentials(null)
    if (this.#autoClose) for (const p of this.#procs) this.#call(() => p.close())
    // Free for another source once this one is done with it.
    letGo(this.#procs, this.#autoClose)
  }

  /** Lifecycle callbacks that throw are reported, never propagated into the audio path. */
  #call(f: () => void): void {
    try {
      f()
    } catch (e) {
      this.#emit({ kind: 'processor-error', processor: 'lifecycle', message: describe(e), consecutive: 0, bypassed: false })
    }
  }
}

/** A processor's output must be a frame of the input's format and length. */
function conform(out: unknown, input: AudioFrame): AudioFrame {
  const f = out as AudioFrameLike | null
  if (!f || !(f.data instanceof Int16Array)) throw new Error('process() must return an AudioFrame with Int16Array data')
  if (f.sampleRate !== input.sampleRate || f.channels !== input.channels || f.data.length !== input.data.length) {
    throw new Error(
      `process() returned ${f.data.length} samples at ${f.sampleRate} Hz / ${f.channels} ch, expected ` +
        `${input.data.length} at ${input.sampleRate} Hz / ${input.channels} ch`,
    )
  }
  return f instanceof AudioFrame ? f : new AudioFrame(f.data, f.sampleRate, f.channels)
}
