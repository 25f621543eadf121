import { EventEmitter } from 'node:events'

import { AudioFrame, type AudioFrameLike, type Samples } from './frame'
import { CapstanError, fromNative, native } from '../internal/errors'
import { DEFAULTS, isPending, readOutcome, record, recordId } from './outcome'
import { admit, later, settleFair, turn } from '../internal/fairness'
import { enroll, retire, waitObservers } from '../internal/census'
import { NativeProcessor, attachProcessor, detachProcessor, specOf, type FrameProcessor, type FrameProcessorCredentials, type FrameProcessorStreamInfo } from '../process/processors'
import { JsChain, isFrameProcessor } from '../process/js-processors'
import { NativeSource, drainAll, getEngine, hold, register, release, unregister, type NativeSourceT } from '../internal/engine'
import { encodedStream, wakeEncoded, type EncodedStream, type EncodeHost, type EncodeOptions } from '../encode/encoded-stream'
import type { JsEvent, NativeEncoded } from '../internal/binding'
import type {
  AudioSourceEvents,
  AudioSourceOptions,
  CaptureOptions,
  CaptureOutcome,
  ConsumerMode,
  HealthState,
  SourceMetrics,
} from './types'
import { asyncDispose } from '../internal/symbols'
import { LIMITS, readOptions, whole } from '../internal/validate'
import { FRAMES_DEFAULTS } from './defaults'
import { Parked } from '../internal/wake'

interface Waiting {
  resolve(o: CaptureOutcome | PromiseLike<CaptureOutcome>): void
  signal?: AbortSignal
}

interface Playout {
  resolve(v?: void | PromiseLike<void>): void
  signal?: AbortSignal
}

/**
 * The waits of one AbortSignal on one source and the single listener that aborts them all:
 * a signal shared by many calls gets one listener per source, not one per call (Node warns
 * past ten), removed when the last of its waits settles.
 */
interface SignalWaits {
  captures: Set<number>
  playouts: Set<number>
  onAbort: () => void
}

/**
 * What only TypeScript can check: the options are an object, `autoClose` (a TypeScript-side
 * option) is a boolean, and the processors list is native processors, then JS ones. The
 * type and range of every other option is checked natively (`ERR_INVALID_OPTION`).
 */
/** Every option `AudioSource` reads: each is read once, into a snapshot. */
const OPTION_KEYS = [
  'sampleRate', 'channels', 'name', 'queueMs', 'overflow', 'deadlineMs', 'stallAfterMs', 'consumer', 'fillSilence',
  'prerollMs', 'readerBufferMs', 'processors', 'processorBypassAfter', 'processorBudgetMs', 'autoClose',
] as const satisfies ReadonlyArray<keyof AudioSourceOptions>

function checkOptions(given: unknown): AudioSourceOptions {
  // Read once: a getter that answers differently on a second read cannot make the JS side
  // and the engine disagree (the wire saying stereo for a mono source).
  const opts = readOptions('AudioSource', given, OPTION_KEYS)
  const autoClose = (opts as { autoClose?: unknown }).autoClose
  if (autoClose !== undefined && typeof autoClose !== 'boolean') {
    throw new CapstanError('ERR_INVALID_OPTION', 'autoClose must be a boolean')
  }
  // A metrics label only: the engine never sees it.
  const name = (opts as { name?: unknown }).name
  if (name !== undefined && typeof name !== 'string') {
    throw new CapstanError('ERR_INVALID_OPTION', 'name must be a string')
  }
  const list = (opts as { processors?: unknown }).processors
  if (list !== undefined) {
    if (!Array.isArray(list)) throw new CapstanError('ERR_INVALID_OPTION', 'processors must be an array')
    let sawJs = false
    for (const p of list) {
      if (p instanceof NativeProcessor) {
        if (sawJs) {
          throw new CapstanError(
            'ERR_INVALID_OPTION',
            'processors: native processors run on engine threads before JS processors run on the JS thread; list them first',
          )
        }
      } else if (isFrameProcessor(p)) {
        sawJs = true
      } else {
        throw new CapstanError(
          'ERR_INVALID_OPTION',
          'processors: each must be a built-in processor (processors.gain(), ...) or a FrameProcessor (isEnabled, setEnabled, process, close)',
        )
      }
    }
  }
  return opts as unknown as AudioSourceOptions
}

/** Splits what the caller passed into samples and declared format (undefined: the source's). */
function unpack(frame: AudioFrameLike | Samples): [Samples, number | undefined, number | undefined] {
  if (frame instanceof Int16Array || frame instanceof Float32Array) return [frame, undefined, undefined]
  if (typeof frame === 'object' && frame !== null) {
    const { data, sampleRate, channels } = frame as AudioFrameLike
    if (data instanceof Int16Array || data instanceof Float32Array) {
      if (!Number.isInteger(sampleRate) || !Number.isInteger(channels) || sampleRate < 0 || channels < 0) {
        throw new CapstanError('ERR_INVALID_FRAME', 'frame sampleRate and channels must be non-negative integers')
      }
      return [data, sampleRate, channels]
    }
  }
  throw new CapstanError('ERR_INVALID_FRAME', 'frame must be an AudioFrame, an Int16Array or a Float32Array')
}

function checkDeadline(d: unknown): number | undefined {
  if (d === undefined) return undefined
  if (typeof d !== 'number') throw new CapstanError('ERR_INVALID_OPTION', 'deadlineMs must be a number')
  return d
}

/** AbortSignal's shape (not `instanceof`: a signal from another realm or a polyfill works). */
function isSignal(s: unknown): s is AbortSignal {
  const o = s as Record<string, unknown> | null
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.aborted === 'boolean' &&
    typeof o.addEventListener === 'function' &&
    typeof o.removeEventListener === 'function'
  )
}

/**
 * A call's `{ signal?, deadlineMs? }`, checked before anything reaches the engine: a bad one
 * is `ERR_INVALID_OPTION`, never a TypeError after the capture was already sent. The range
 * of `deadlineMs` is the core's to check.
 */
function callOptions(opts: unknown): { deadline?: number; signal?: AbortSignal } {
  if (opts === undefined) return {}
  if (typeof opts !== 'object' || opts === null) {
    throw new CapstanError('ERR_INVALID_OPTION', 'call options must be an object ({ signal?, deadlineMs? })')
  }
  const { signal, deadlineMs } = opts as CaptureOptions
  if (signal !== undefined && !isSignal(signal)) throw new CapstanError('ERR_INVALID_OPTION', 'signal must be an AbortSignal')
  return { deadline: checkDeadline(deadlineMs), signal }
}

/** A rejection that, like every settlement, leaves the event loop its turn. */
function rejectFair<T>(e: unknown): Promise<T> {
  if (admit()) return Promise.reject(e)
  return later(undefined).then(() => {
    throw e
  })
}

let nativeOfSource: (s: AudioSource) => NativeSourceT
let endInputOf: (s: AudioSource) => void

/** One frame from consecutive chunks. */
function joined(parts: Int16Array[], rate: number, channels: number): AudioFrame {
  const data = new Int16Array(parts.reduce((n, p) => n + p.length, 0))
  let off = 0
  for (const p of parts) {
    data.set(p, off)
    off += p.length
  }
  return new AudioFrame(data, rate, channels)
}

/** The native handle of a source (for groups). Module-private plumbing, not on the object. */
export function nativeOf(s: AudioSource): NativeSourceT {
  return nativeOfSource(s)
}

/**
 * The end of an AudioStream's input: closes the source but lets the reader read (and
 * process) what is already buffered for it; the JS processors close when it ends, or at
 * once on a later close().
 */
export function endInput(s: AudioSource): void {
  endInputOf(s)
}

/**
 * A real-time audio source. Producers push frames of any length; the engine cuts exact
 * 10 ms chunks into a bounded queue and its consumer (engine clock, `frames()` reader,
 * or unpaced) takes them out. Every capture settles with a `CaptureOutcome`.
 */
export class AudioSource extends EventEmitter<AudioSourceEvents> {
  readonly sampleRate: number
  readonly channels: number
  readonly consumer: NonNullable<AudioSourceOptions['consumer']>
  /** The `name` option: a label for exported metrics (`''` when unnamed). */
  readonly name: string
  /** The rate `frames()` yields (a resampling processor changes it). */
  readonly outputSampleRate: number
  readonly #native: NativeSourceT
  readonly #id: number
  readonly #waiting = new Map<number, Waiting>()
  readonly #playouts = new Map<number, Playout>()
  readonly #signals = new Map<AbortSignal, SignalWaits>()
  readonly #reader = new Parked()
  #js: JsChain | undefined
  #reading = false
  /** close() ended the reader: its JS processors are closed, it must not process again. */
  #readerStopped = false
  #closed = false
  /** Encoded streams not yet ended: the source stays registered for their last events. */
  readonly #encoded = new Set<EncodedStream>()

  /** What an encoded stream may do with its source, held by the stream, not public. */
  readonly #host: EncodeHost

  static {
    nativeOfSource = (s) => s.#native
    endInputOf = (s) => s.#endInput()
  }

  constructor(options: AudioSourceOptions) {
    super()
    const o = checkOptions(options)
    const all = (o.processors ?? []) as unknown[]
    const procs = all.filter((p): p is NativeProcessor => p instanceof NativeProcessor)
    const js = all.filter(isFrameProcessor) as FrameProcessor<AudioFrame>[]
    const tapIdOf = (ref: unknown): number => {
      if (!(ref instanceof AudioSource)) throw new CapstanError('ERR_INVALID_OPTION', 'echoCancel: reference must be an AudioSource')
      const n = nativeOfSource(ref)
      if (n.closed) throw new CapstanError('ERR_INVALID_OPTION', 'echoCancel: reference is a closed AudioSource')
      return native(() => n.referenceTapId())
    }
    const specs = procs.map((p) => specOf(p, tapIdOf))
    this.#native = native(() => new NativeSource(getEngine(), { ...o, processors: specs as never }))
    try {
      procs.forEach((p, i) => attachProcessor(p, this.#native, i))
    } catch (e) {
      // A refused construction leaves nothing behind: not the native source, not its clock.
      procs.forEach((p) => detachProcessor(p, this.#native))
      this.#native.close()
      throw e
    }
    this.outputSampleRate = this.#native.outputSampleRate
    if (js.length > 0) {
      try {
        this.#js = new JsChain(
          js,
          { bypassAfter: o.processorBypassAfter, budgetMs: o.processorBudgetMs, autoClose: o.autoClose ?? true },
          (e) => this.#event(e),
        )
      } catch (e) {
        this.#native.close()
        throw fromNative(e)
      }
    }
    this.#id = this.#native.id
    this.sampleRate = o.sampleRate
    this.channels = o.channels
    this.consumer = o.consumer ?? (DEFAULTS.consumer as ConsumerMode)
    this.name = o.name ?? ''
    // The engine's dispatcher gets closures, not the source: its hooks stay off the object.
    register(this.#id, {
      settled: (rec, at) => this.#settled(rec, at),
      playedOut: (id) => this.#playedOut(id),
      event: (e) => this.#event(e),
    })
    this.#host = {
      sampleRate: this.sampleRate,
      name: this.name,
      cut: (n, last, opts) => this.#cut(n, last, opts),
      detach: (s) => this.#detachEncoded(s),
    }
    enroll(this)
  }

  /**
   * Copies the frame's samples at once (the caller may reuse its buffer when this
   * returns) and settles when the frame is queued, dropped, or its wait ends.
   * Rejects only on programmer errors (`CapstanError`).
   */
  captureFrame(frame: AudioFrameLike | Samples, opts?: CaptureOptions): Promise<CaptureOutcome> {
    let data: Samples, rate: number | undefined, ch: number | undefined, deadline: number | undefined
    let signal: AbortSignal | undefined
    try {
      if (frame instanceof Int16Array) data = frame
      else [data, rate, ch] = unpack(frame)
      if (opts !== undefined) {
        ;({ deadline, signal } = callOptions(opts))
        if (signal?.aborted) {
          // Never sent, but validated, settled and counted by the engine like every capture.
          if (data instanceof Int16Array) this.#native.refuseAbortedI16(data, rate, ch, deadline, record)
          else this.#native.refuseAbortedF32(data, rate, ch, deadline, record)
          return settleFair(readOutcome(record))
        }
      }
      if (data instanceof Int16Array) this.#native.captureI16(data, rate, ch, deadline, record)
      else this.#native.captureF32(data, rate, ch, deadline, record)
    } catch (e) {
      return rejectFair(fromNative(e))
    }
    if (!isPending(record)) return settleFair(readOutcome(record))
    return this.#wait(recordId(record), signal)
  }

  /** Synchronous and never waits: the fast path for hot loops. */
  tryCaptureFrame(frame: AudioFrameLike | Samples): CaptureOutcome {
    try {
      if (frame instanceof Int16Array) this.#native.tryCaptureI16(frame, undefined, undefined, record)
      else {
        const [data, rate, ch] = unpack(frame)
        if (data instanceof Int16Array) this.#native.tryCaptureI16(data, rate, ch, record)
        else this.#native.tryCaptureF32(data, rate, ch, record)
      }
    } catch (e) {
      throw fromNative(e)
    }
    return readOutcome(record)
  }

  /** Ends the segment: the carried remainder (< 10 ms) is padded with silence and queued. */
  flush(opts?: CaptureOptions): Promise<CaptureOutcome> {
    let signal: AbortSignal | undefined
    try {
      let deadline: number | undefined
      ;({ deadline, signal } = callOptions(opts))
      this.#native.flush(deadline, record)
    } catch (e) {
      return rejectFair(fromNative(e))
    }
    if (!isPending(record)) return settleFair(readOutcome(record))
    return this.#wait(recordId(record), signal)
  }

  #wait(id: number, signal: AbortSignal | undefined): Promise<CaptureOutcome> {
    return new Promise<CaptureOutcome>((resolve) => {
      if (signal) this.#waitsOf(signal).captures.add(id)
      this.#waiting.set(id, { resolve, signal })
      hold()
    })
  }

  /** `fair`: settled by JavaScript (an abort), so it shares the turn's budget (./fairness). */
  #settle(id: number, o: CaptureOutcome, fair = false): void {
    const w = this.#waiting.get(id)
    if (!w) return
    this.#waiting.delete(id)
    release()
    if (w.signal) this.#unlisten(w.signal, 'captures', id)
    w.resolve(fair ? settleFair(o) : o)
  }

  /** The waits of `signal` on this source, listening to it from the first one on. */
  #waitsOf(signal: AbortSignal): SignalWaits {
    let waits = this.#signals.get(signal)
    if (!waits) {
      const mine: SignalWaits = { captures: new Set(), playouts: new Set(), onAbort: () => this.#aborted(signal, mine) }
      waits = mine
      this.#signals.set(signal, waits)
      signal.addEventListener('abort', waits.onAbort, { once: true })
    }
    return waits
  }

  #unlisten(signal: AbortSignal, kind: 'captures' | 'playouts', id: number): void {
    const waits = this.#signals.get(signal)
    if (!waits) return
    waits[kind].delete(id)
    if (waits.captures.size === 0 && waits.playouts.size === 0) {
      this.#signals.delete(signal)
      signal.removeEventListener('abort', waits.onAbort)
    }
  }

  /** `signal` fired: every capture and playout wait of it on this source ends. */
  #aborted(signal: AbortSignal, waits: SignalWaits): void {
    // Forgotten first: the settlements below then have no listener left to remove.
    if (this.#signals.get(signal) === waits) this.#signals.delete(signal)
    for (const id of waits.captures) {
      // The engine settles and counts it; false: it settled already and is on its way here.
      if (native(() => this.#native.abort(id, record))) this.#settle(id, readOutcome(record), true)
    }
    for (const id of waits.playouts) {
      const p = this.#playouts.get(id)
      if (!p) continue
      native(() => this.#native.cancelPlayout(id))
      this.#playouts.delete(id)
      release()
      p.resolve(rejectFair<void>(signal.reason))
    }
  }

  /** Discards queued audio and settles every waiting capture `'cleared'`. */
  clearQueue(): void {
    native(() => this.#native.clear())
    drainAll()
  }

  /** Resolves once everything queued so far has been delivered (or cleared). */
  waitForPlayout(opts?: { signal?: AbortSignal }): Promise<void> {
    let signal: AbortSignal | undefined
    try {
      ;({ signal } = callOptions(opts))
    } catch (e) {
      return rejectFair(e)
    }
    if (signal?.aborted) return rejectFair(signal.reason)
    const id = native(() => this.#native.waitPlayout())
    if (id === null) return settleFair(undefined)
    return new Promise<void>((resolve) => {
      if (signal) this.#waitsOf(signal).playouts.add(id)
      this.#playouts.set(id, { resolve, signal })
      hold()
    })
  }

  /**
   * Reads delivered audio as exact 10 ms frames. With `consumer: 'pull'` this is the
   * consumer (not reading is a stall); on a realtime/unpaced source it is a sink with
   * bounded buffering (`readerBufferMs`). One reader at a time.
   */
  async *frames(opts: { frameMs?: number; prerollMs?: number } = {}): AsyncIterableIterator<AudioFrame> {
    const o = readOptions('frames()', opts, ['frameMs', 'prerollMs'] as const)
    // Bounded: a frame is audio held back from the reader until it is whole.
    const frameMs = whole('frameMs', o.frameMs, FRAMES_DEFAULTS.frameMs, LIMITS.chunkMs, FRAMES_DEFAULTS.maxFrameMs, LIMITS.chunkMs)
    const prerollMs = o.prerollMs as number | undefined
    if (frameMs === 10) {
      yield* this.#frames10(prerollMs)
      return
    }
    // Whole 10 ms chunks joined into frames of exactly frameMs (a transport that sends 20 ms
    // frames makes half the calls); a short last frame when the source ends mid-frame.
    const per = frameMs / 10
    let parts: Int16Array[] = []
    for await (const f of this.#frames10(prerollMs)) {
      parts.push(f.data as Int16Array)
      if (parts.length < per) continue
      yield joined(parts, this.outputSampleRate, this.channels)
      parts = []
    }
    if (parts.length > 0) yield joined(parts, this.outputSampleRate, this.channels)
  }

  async *#frames10(prerollMs?: number): AsyncIterableIterator<AudioFrame> {
    // Every start counts against the turn's budget: a loop that keeps opening readers on a
    // closed (or already read) source would otherwise be an endless chain of microtasks.
    const start = turn()
    if (start) await start
    if (this.#reading) throw new CapstanError('ERR_INVALID_STATE', 'this source already has a frames() reader')
    // The reader's own pre-roll (checked natively like the option), for as long as it reads.
    if (prerollMs !== undefined) native(() => this.#native.setPreroll(prerollMs))
    this.#reading = true
    const paced = this.consumer !== 'pull'
    if (paced) native(() => this.#native.setReader(true))
    try {
      for (;;) {
        if (this.#readerStopped) return
        const chunk = native(() => this.#native.read())
        if (chunk === null) {
          await this.#reader.park()
          continue
        }
        if (chunk.length === 0) return
        // A deep buffer is read without waiting: give the event loop its turn now and then.
        const next = turn()
        if (next) await next
        if (this.#readerStopped) return
        const frame = new AudioFrame(chunk, this.outputSampleRate, this.channels)
        yield this.#js ? this.#js.run(frame) : frame
      }
    } finally {
      this.#reader.forget()
      this.#reading = false
      // Closed by endInput() while this reader still had audio to read: its last process() is done.
      if (this.#closed) this.#js?.close()
      if (paced && !this.#closed) native(() => this.#native.setReader(false))
      if (prerollMs !== undefined && !this.#closed) native(() => this.#native.setPreroll(undefined))
    }
  }

  /**
   * Encodes everything the source delivers from now on (after native processors), on
   * engine threads, into a bounded byte stream. Replaces the source's sink: an earlier
   * encoded stream ends, and a `frames()` reader started later takes over (ending this one).
   */
  encode(options: EncodeOptions): EncodedStream {
    if (typeof options !== 'object' || options === null) {
      throw new CapstanError('ERR_INVALID_OPTION', 'encode options must be an object')
    }
    if (this.#closed) throw new CapstanError('ERR_INVALID_STATE', 'the source is closed')
    const n = native(() => this.#native.encode(options))
    const stream = encodedStream(n, options.format, this.#host)
    this.#encoded.add(stream)
    return stream
  }

  /** `flush()` that also marks where the encoder's segment ends. */
  #cut(n: NativeEncoded, last: boolean, opts?: CaptureOptions): Promise<CaptureOutcome> {
    let signal: AbortSignal | undefined
    try {
      let deadline: number | undefined
      ;({ deadline, signal } = callOptions(opts))
      n.cut(last, deadline, record)
    } catch (e) {
      return rejectFair(fromNative(e))
    }
    if (!isPending(record)) return settleFair(readOutcome(record))
    return this.#wait(recordId(record), signal)
  }

  /** The stream ended; the last one out lets a closed source go. */
  #detachEncoded(s: EncodedStream): void {
    this.#encoded.delete(s)
    if (this.#closed && this.#encoded.size === 0) unregister(this.#id)
  }

  /** Queue depth in ms (including the carried remainder), read from native state. */
  get queuedMs(): number {
    return this.#native.queuedMs
  }

  /** Samples per channel delivered to the consumer so far. */
  get playoutPosition(): number {
    return this.#native.playoutPosition
  }

  get health(): HealthState {
    return this.#native.health as HealthState
  }

  get closed(): boolean {
    return this.#closed
  }

  metrics(): SourceMetrics {
    const m = native(() => this.#native.metrics()) as SourceMetrics
    if (this.#js) m.processors = [...m.processors, ...this.#js.stats()]
    return m
  }

  /** Pushes stream info to JS processors (`null`: `onStreamInfoCleared`). */
  setStreamInfo(info: FrameProcessorStreamInfo | null): void {
    this.#js?.setStreamInfo(info)
  }

  /** Pushes credentials to JS processors (`null`: `onCredentialsCleared`). */
  setCredentials(credentials: FrameProcessorCredentials | null): void {
    this.#js?.setCredentials(credentials)
  }

  /**
   * Idempotent. Waiting captures settle `'closed'`, queued audio is counted as cleared,
   * the source leaves the engine clock (the last one stops the clock threads).
   */
  close(): Promise<void> {
    this.#end()
    // JS processors hold resources (a model, a connection) that must not wait for a reader
    // that may never call next() again: they close now (JsChain defers it past a process()
    // in flight), and the reader's next next() ends the iteration, processing nothing more.
    if (this.#js) {
      this.#readerStopped = true
      this.#js.close()
    }
    return settleFair(undefined)
  }

  #endInput(): void {
    this.#end()
    if (!this.#reading) this.#js?.close()
  }

  #end(): void {
    if (this.#closed) return
    this.#closed = true
    native(() => this.#native.close())
    drainAll()
    // An encoder's last segment may still be on its way from the clock thread.
    if (this.#encoded.size === 0) unregister(this.#id)
    retire(this)
  }

  [asyncDispose](): Promise<void> {
    return this.close()
  }

  /** A waiting capture settled (engine dispatcher). */
  #settled(rec: Float64Array, at: number): void {
    const o = readOutcome(rec, at)
    if (waitObservers.size > 0) for (const f of waitObservers) f(this.name, o.waitedMs)
    this.#settle(recordId(rec, at), o)
  }

  /** A playout mark was reached (engine dispatcher). */
  #playedOut(id: number): void {
    const p = this.#playouts.get(id)
    if (!p) return
    this.#playouts.delete(id)
    release()
    if (p.signal) this.#unlisten(p.signal, 'playouts', id)
    p.resolve()
  }

  /**
   * A coalesced event for this source (engine dispatcher). The public ones are passed on as
   * the core shaped them (`kind` is the event name, the rest its payload).
   */
  #event(e: JsEvent): void {
    switch (e.kind) {
      case 'readable': {
        this.#reader.wake()
        break
      }
      case 'encoded':
        for (const s of [...this.#encoded]) wakeEncoded(s)
        break
      case 'closed': {
        // Also reached when shutdown() closed the source natively.
        this.#closed = true
        if (this.#encoded.size === 0) unregister(this.#id)
        retire(this)
        this.#reader.wake()
        this.emit('closed', {})
        break
      }
      default: {
        const { kind, ...payload } = e
        ;(this.emit as (k: string, p: object) => boolean)(kind, payload)
      }
    }
  }
}
