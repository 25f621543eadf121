import { EventEmitter } from 'node:events'

import { bounded } from '../internal/bounded'
import { CapstanError, describe } from '../internal/errors'
import type { AudioFrame } from '../source/frame'
import type { AudioSource } from '../source/source'
import { asyncDispose } from '../internal/symbols'
import { LIMITS, oneOf, positive, readOptions, whole } from '../internal/validate'
import { PUBLISHER_DEFAULTS } from './defaults'

/**
 * Where a publisher's audio goes: one peer audio source and its published track. The
 * LiveKit one is an `@livekit/rtc-node` `AudioSource` + `LocalAudioTrack`; tests use
 * stand-ins that hang or throw.
 */
export interface PeerAudioSink {
  captureFrame(frame: AudioFrame): Promise<void>
  /** Unpublishes and releases it; must not hang forever (it is bounded by the publisher). */
  close(): Promise<void>
}

export interface PeerSinkFactory {
  create(sampleRate: number, channels: number): Promise<PeerAudioSink>
}

export interface PublisherOptions {
  /** Longest one peer `captureFrame` may take before the sink is judged stalled. Default 1,000 ms. */
  captureTimeoutMs?: number
  /**
   * What a stall leads to: `'recreate'` (default) closes the peer sink, makes and publishes
   * a new one and carries on; `'manual'` emits `'sink-stalled'` with `recover()`/`abandon()`.
   */
  recovery?: 'recreate' | 'manual'
  /** Bound on closing a wedged peer sink during recovery. Default 2,000 ms. */
  closeTimeoutMs?: number
  /** Audio per peer `captureFrame`, a multiple of 10 ms. Default 20 (what LiveKit clients send). */
  frameMs?: number
  /**
   * How far ahead of real time the peer's queue is kept, ms (0 turns it off). When the
   * peer's queue has run dry (the first audio, or audio after a pause), frames are held
   * until this much is there and sent together: up to this much added latency at each
   * start, in exchange for late event-loop turns not reaching the wire. Default 80 (40
   * let one run in 10-20 of a live producer reach the wire as concealment on a 2-core machine).
   */
  leadMs?: number
  /**
   * The source's pre-roll while it is published (its `frames()` reader's, see
   * `AudioSourceOptions.prerollMs`): a producer that delivers in bursts (a live relay) does
   * not reach the peer as holes. A producer ahead of real time (TTS) meets it at once and
   * pays nothing. Default 80; 0 keeps the source's own.
   */
  prerollMs?: number
}

export interface SinkStalledEvent {
  /** Why: the peer call that did not settle in time, or the error it threw. */
  cause: string
  /** When recovery is `'manual'`: make a new peer sink and carry on. */
  recover(): Promise<void>
  /** When recovery is `'manual'`: stop publishing (the source keeps its own policy). */
  abandon(): Promise<void>
}

export interface PublisherEvents {
  /** The transport's connection: lost (`'reconnecting'`), back, or gone for good (then a stall). */
  connection: [{ state: 'reconnecting' | 'reconnected' | 'disconnected'; reason?: string }]
  'sink-stalled': [SinkStalledEvent]
  'sink-recovered': [{ stalledMs: number; recoveries: number }]
  'sink-abandoned': [{ cause: string }]
}

/** Frames the peer took, and what it did not: sent + lost = frames read from the source. */
export interface PublisherMetrics {
  framesRead: number
  framesSent: number
  /** Frames read from the source that no peer sink took (the one in a stalled or failed call). */
  framesLost: number
  samplesSent: number
  stalls: number
  recoveries: number
  /** Longest a peer `captureFrame` took that did settle, ms. */
  maxCaptureMs: number
  /** Times the peer's lead was (re)built: the first audio, and audio after the peer ran dry. */
  leads: number
  state: 'publishing' | 'stalled' | 'recovering' | 'abandoned' | 'closed'
}


/**
 * Publishes a capstan source through a peer audio sink: capstan paces and queues (the
 * source's `frames()` reader, realtime), and every peer `captureFrame` is watched. A call
 * that does not settle within `captureTimeoutMs` (or throws) marks the sink stalled: the
 * publisher stops feeding it, capstan's own queue keeps its policy (health says so, losses
 * are counted), and recovery follows the chosen policy.
 */
/** The publisher's option keys, exported for adapters that add their own. */
export const PUBLISHER_KEYS = ['captureTimeoutMs', 'recovery', 'closeTimeoutMs', 'frameMs', 'leadMs', 'prerollMs'] as const

/** Publisher options read once, checked, with their defaults. */
export function publisherOptions(given: unknown): Required<PublisherOptions> {
  const o = readOptions('Publisher', given, PUBLISHER_KEYS)
  const d = PUBLISHER_DEFAULTS
  return {
    captureTimeoutMs: positive('captureTimeoutMs', o.captureTimeoutMs, d.captureTimeoutMs),
    closeTimeoutMs: positive('closeTimeoutMs', o.closeTimeoutMs, d.closeTimeoutMs),
    recovery: oneOf('recovery', o.recovery, d.recovery, ['recreate', 'manual'] as const),
    frameMs: whole('frameMs', o.frameMs, d.frameMs, LIMITS.chunkMs, 1000, LIMITS.chunkMs),
    leadMs: whole('leadMs', o.leadMs, d.leadMs, 0, 1000),
    prerollMs: whole('prerollMs', o.prerollMs, d.prerollMs, 0, LIMITS.maxPrerollMs, LIMITS.chunkMs),
  }
}

let onCloseOf: (p: Publisher, f: () => void) => void

/** Runs `f` once at the publisher's close (an adapter's listeners). */
export function onPublisherClose(p: Publisher, f: () => void): void {
  onCloseOf(p, f)
}

export class Publisher extends EventEmitter<PublisherEvents> {
  readonly #source: AudioSource
  readonly #factory: PeerSinkFactory
  readonly #timeoutMs: number
  readonly #closeMs: number
  readonly #recovery: 'recreate' | 'manual'
  readonly #frameMs: number
  readonly #leadMs: number
  readonly #prerollMs: number | undefined
  /** Frames held back while the peer's lead is rebuilt. */
  readonly #held: AudioFrame[] = []
  /** When the peer's queue runs dry, by the audio sent to it (performance.now() ms). */
  #dryAt = 0
  #sink: PeerAudioSink | undefined
  #stop = false
  /** A failure reported from outside (the room disconnected), handled before the next frame. */
  #failed: string | undefined
  readonly #cleanups: Array<() => void> = []
  #resume: ((go: boolean) => void) | undefined
  readonly #m: PublisherMetrics = { framesRead: 0, framesSent: 0, framesLost: 0, samplesSent: 0, stalls: 0, recoveries: 0, maxCaptureMs: 0, leads: 0, state: 'publishing' }
  readonly #done: Promise<void>

  static {
    onCloseOf = (p, f) => p.#cleanups.push(f)
  }

  /** Use `Publisher.start()` (or `publishToLiveKit()` from `capstan/livekit`). */
  private constructor(source: AudioSource, factory: PeerSinkFactory, sink: PeerAudioSink, o: Required<PublisherOptions>) {
    super()
    this.#source = source
    this.#factory = factory
    this.#sink = sink
    this.#timeoutMs = o.captureTimeoutMs
    this.#closeMs = o.closeTimeoutMs
    this.#recovery = o.recovery
    this.#frameMs = o.frameMs
    this.#leadMs = o.leadMs
    this.#prerollMs = o.prerollMs === 0 ? undefined : o.prerollMs
    this.#done = this.#run()
  }

  /** Starts publishing `source` (realtime) through sinks `factory` makes. */
  static async start(source: AudioSource, factory: PeerSinkFactory, options: PublisherOptions = {}): Promise<Publisher> {
    if (source.consumer !== 'realtime') {
      throw new CapstanError('ERR_INVALID_OPTION', 'a published source must have consumer: realtime (capstan paces it)')
    }
    const o = publisherOptions(options)
    const sink = await factory.create(source.outputSampleRate, source.channels)
    return new Publisher(source, factory, sink, o)
  }

  async #run(): Promise<void> {
    const it = this.#source.frames({ frameMs: this.#frameMs, prerollMs: this.#prerollMs })[Symbol.asyncIterator]()
    // A pending read outlives a loop turn only while frames are held for the lead.
    let pending: Promise<IteratorResult<AudioFrame>> | undefined
    let holdUntil = 0
    for (;;) {
      pending ??= it.next()
      let r: IteratorResult<AudioFrame> | undefined
      if (this.#held.length > 0) {
        r = await settleOrTimeout(pending, holdUntil - performance.now())
        if (r === undefined) {
          // No more audio came in time (the end of an utterance): send what is held.
          if (!(await this.#sendHeld())) break
          continue
        }
      } else r = await pending
      pending = undefined
      if (r.done || this.#stop) break
      const frame = r.value
      this.#m.framesRead++
      if (this.#failed !== undefined) {
        const cause = this.#failed
        this.#failed = undefined
        this.#m.framesLost++
        if (!(await this.#stalled(cause))) break
        continue
      }
      // The peer's queue has (by its own clock) run dry: this is a start, or audio after a
      // gap. Hold frames until `leadMs` of audio is there and send them together, so the
      // peer's queue stays that far ahead and a late turn of the event loop or a late
      // producer does not reach the wire as a hole the receiver must conceal.
      if (this.#leadMs > 0 && (this.#held.length > 0 || performance.now() >= this.#dryAt)) {
        if (this.#held.length === 0) {
          this.#m.leads++
          holdUntil = performance.now() + this.#leadMs + this.#frameMs
        }
        this.#held.push(frame)
        if (this.#held.length * this.#frameMs >= this.#leadMs && !(await this.#sendHeld())) break
        continue
      }
      if (!(await this.#send(frame))) break
    }
    if (pending) {
      // Publishing stopped while a read was out: the frame it brings is lost, and counted.
      void pending.then((r) => {
        if (!r.done) {
          this.#m.framesRead++
          this.#m.framesLost++
        }
      }, () => {})
    }
    // Ends the reader as a for-await break would (queued behind a read still out).
    const ended = it.return?.(undefined).catch(() => undefined)
    if (!pending) await ended
    // What is still held goes out (the source ended or closed) unless the sink is gone.
    if (this.#held.length > 0) {
      if (this.#m.state === 'publishing' && this.#sink) await this.#sendHeld()
      this.#m.framesLost += this.#held.length
      this.#held.length = 0
    }
    if (this.#m.state !== 'abandoned') this.#m.state = 'closed'
  }

  async #sendHeld(): Promise<boolean> {
    while (this.#held.length > 0) {
      const f = this.#held.shift() as AudioFrame
      if (!(await this.#send(f))) return false
    }
    return true
  }

  /** One frame to the peer, watched; false when publishing must stop. */
  async #send(frame: AudioFrame): Promise<boolean> {
    const sink = this.#sink
    if (!sink) {
      this.#m.framesLost++
      return true
    }
    const t = performance.now()
    try {
      await bounded(sink.captureFrame(frame), this.#timeoutMs, 'peer captureFrame')
      this.#m.framesSent++
      this.#m.samplesSent += frame.samplesPerChannel
      this.#m.maxCaptureMs = Math.max(this.#m.maxCaptureMs, performance.now() - t)
      // The peer plays in real time from when it has audio: when its queue runs dry.
      this.#dryAt = Math.max(this.#dryAt, t) + (frame.samplesPerChannel * 1000) / frame.sampleRate
      return true
    } catch (e) {
      this.#m.framesLost++
      if (this.#stop) return false
      return this.#stalled(describe(e))
    }
  }

  /** The sink stalled: stop feeding it (the reader waits here, so capstan's queue holds). */
  async #stalled(cause: string): Promise<boolean> {
    const at = performance.now()
    this.#m.stalls++
    this.#m.state = 'stalled'
    const old = this.#sink
    this.#sink = undefined
    const recreate = async () => {
      this.#m.state = 'recovering'
      await bounded(old?.close() ?? Promise.resolve(), this.#closeMs, 'closing the stalled peer sink').catch(() => {})
      this.#sink = await this.#factory.create(this.#source.outputSampleRate, this.#source.channels)
      this.#dryAt = 0 // a new peer sink starts empty: its lead is built again
      this.#m.recoveries++
      this.#m.state = 'publishing'
      this.emit('sink-recovered', { stalledMs: performance.now() - at, recoveries: this.#m.recoveries })
    }
    if (this.#recovery === 'recreate') {
      this.emit('sink-stalled', { cause, recover: async () => {}, abandon: async () => this.#abandon(cause) })
      if (this.#stop) return false
      try {
        await recreate()
        return true
      } catch (e) {
        this.#abandon(`recreating the peer sink failed: ${describe(e)}`)
        return false
      }
    }
    return new Promise<boolean>((resolve) => {
      this.#resume = resolve
      this.emit('sink-stalled', {
        cause,
        recover: async () => {
          if (this.#resume !== resolve) return
          this.#resume = undefined
          try {
            await recreate()
            resolve(true)
          } catch (e) {
            this.#abandon(`recreating the peer sink failed: ${describe(e)}`)
            resolve(false)
          }
        },
        abandon: async () => {
          if (this.#resume !== resolve) return
          this.#resume = undefined
          this.#abandon(cause)
          resolve(false)
        },
      })
    })
  }

  #abandon(cause: string): void {
    if (this.#m.state === 'abandoned') return
    this.#m.state = 'abandoned'
    this.#stop = true
    this.emit('sink-abandoned', { cause })
  }

  /**
   * Reports that the peer sink is gone for a reason the publisher cannot see in its calls
   * (the room disconnected): handled as a stall with that cause at the next frame.
   */
  fail(cause: string): void {
    if (this.#m.state === 'abandoned' || this.#m.state === 'closed') return
    this.#failed = cause
  }


  metrics(): PublisherMetrics {
    return { ...this.#m }
  }

  /** Stops publishing: the frames() reader ends, the peer sink closes (bounded). Idempotent. */
  async close(): Promise<void> {
    this.#stop = true
    for (const f of this.#cleanups.splice(0)) f()
    const r = this.#resume
    this.#resume = undefined
    r?.(false)
    await this.#source.close()
    await this.#done.catch(() => {})
    const s = this.#sink
    this.#sink = undefined
    await bounded(s?.close() ?? Promise.resolve(), this.#closeMs, 'closing the peer sink').catch(() => {})
    if (this.#m.state !== 'abandoned') this.#m.state = 'closed'
  }
  [asyncDispose](): Promise<void> {
    return this.close()
  }

}

/** The read's result, or undefined once `ms` have passed first. */
async function settleOrTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  if (ms <= 0) return undefined
  let t: NodeJS.Timeout | undefined
  const timer = new Promise<undefined>((r) => (t = setTimeout(r, ms, undefined)))
  try {
    return await Promise.race([p, timer])
  } finally {
    clearTimeout(t)
  }
}
