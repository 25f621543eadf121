import { EventEmitter } from 'node:events'

import { bounded } from './bounded'
import { CapstanError, describe } from './errors'
import type { AudioFrame } from './frame'
import type { AudioSource } from './source'
import type { LiveKitRoomLike } from './livekit'

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

  /** @internal Use `publishToLiveKit()` or `Publisher.start()`. */
  private constructor(source: AudioSource, factory: PeerSinkFactory, sink: PeerAudioSink, o: PublisherOptions) {
    super()
    this.#source = source
    this.#factory = factory
    this.#sink = sink
    this.#timeoutMs = o.captureTimeoutMs ?? 1000
    this.#closeMs = o.closeTimeoutMs ?? 2000
    this.#recovery = o.recovery ?? 'recreate'
    this.#frameMs = o.frameMs ?? 20
    this.#leadMs = o.leadMs ?? 80
    this.#prerollMs = o.prerollMs === 0 ? undefined : (o.prerollMs ?? 80)
    this.#done = this.#run()
  }

  /** Starts publishing `source` (realtime) through sinks `factory` makes. */
  static async start(source: AudioSource, factory: PeerSinkFactory, o: PublisherOptions = {}): Promise<Publisher> {
    if (source.consumer !== 'realtime') {
      throw new CapstanError('ERR_INVALID_OPTION', 'a published source must have consumer: realtime (capstan paces it)')
    }
    for (const k of ['captureTimeoutMs', 'closeTimeoutMs'] as const) {
      const v = o[k]
      if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new CapstanError('ERR_INVALID_OPTION', `${k} must be a positive number, got ${v}`)
    }
    if (o.prerollMs !== undefined && (!Number.isInteger(o.prerollMs) || o.prerollMs < 0 || o.prerollMs > 200 || o.prerollMs % 10 !== 0)) {
      throw new CapstanError('ERR_INVALID_OPTION', `prerollMs must be a multiple of 10 up to 200, got ${o.prerollMs}`)
    }
    if (o.leadMs !== undefined && (!Number.isFinite(o.leadMs) || o.leadMs < 0 || o.leadMs > 1000)) {
      throw new CapstanError('ERR_INVALID_OPTION', `leadMs must be 0..1000, got ${o.leadMs}`)
    }
    if (o.frameMs !== undefined && (!Number.isInteger(o.frameMs) || o.frameMs < 10 || o.frameMs % 10 !== 0)) {
      throw new CapstanError('ERR_INVALID_OPTION', `frameMs must be a multiple of 10, got ${o.frameMs}`)
    }
    if (o.recovery !== undefined && o.recovery !== 'recreate' && o.recovery !== 'manual') {
      throw new CapstanError('ERR_INVALID_OPTION', `recovery must be 'recreate' or 'manual', got ${String(o.recovery)}`)
    }
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

  /** @internal Run once at close (an adapter's listeners). */
  onClose(f: () => void): void {
    this.#cleanups.push(f)
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

/** Publishers of each room: one set of room listeners however many tracks it carries. */
const watched = new WeakMap<LiveKitRoomLike, Set<Publisher>>()

function watchRoom(room: LiveKitRoomLike, pub: Publisher): void {
  let pubs = watched.get(room)
  if (!pubs) {
    const set = new Set<Publisher>()
    pubs = set
    watched.set(room, set)
    const each = (f: (p: Publisher) => void) => () => [...set].forEach(f)
    const onDisconnected = (reason?: unknown) => {
      const why = reason === undefined ? undefined : String(reason)
      for (const p of [...set]) {
        p.emit('connection', { state: 'disconnected', reason: why })
        p.fail(`room disconnected${why === undefined ? '' : ` (${why})`}`)
      }
    }
    const onReconnecting = each((p) => p.emit('connection', { state: 'reconnecting' }))
    const onReconnected = each((p) => p.emit('connection', { state: 'reconnected' }))
    room.on('disconnected', onDisconnected as never)
    room.on('reconnecting', onReconnecting as never)
    room.on('reconnected', onReconnected as never)
    const stop = () => {
      room.off('disconnected', onDisconnected as never)
      room.off('reconnecting', onReconnecting as never)
      room.off('reconnected', onReconnected as never)
      watched.delete(room)
    }
    ;(set as Set<Publisher> & { stop?: () => void }).stop = stop
  }
  const set = pubs as Set<Publisher> & { stop?: () => void }
  set.add(pub)
  pub.onClose(() => {
    set.delete(pub)
    if (set.size === 0) set.stop?.()
  })
}

/** What `publishToLiveKit` needs of the `@livekit/rtc-node` module. */
interface RtcModule {
  AudioSource: new (rate: number, channels: number, queueMs?: number) => { captureFrame(f: unknown): Promise<void>; close(): Promise<void> }
  AudioFrame: new (data: Int16Array, rate: number, channels: number, samplesPerChannel: number) => unknown
  LocalAudioTrack: { createAudioTrack(name: string, source: unknown): { sid?: string; close(): Promise<void> | void } }
  TrackPublishOptions: new (o: { source: number }) => unknown
  TrackSource: { SOURCE_MICROPHONE: number }
}

export interface LiveKitPublishOptions extends PublisherOptions {
  trackName?: string
  /** The peer source's own queue, ms (rtc-node's `queueSize`). Default 200. */
  peerQueueMs?: number
  /** The `@livekit/rtc-node` module (default: required from the application). */
  rtc?: unknown
}

/**
 * Publishes a realtime capstan source to a LiveKit room through `@livekit/rtc-node`
 * (an optional peer dependency), with the watchdog and recovery of `Publisher`.
 */
export async function publishToLiveKit(source: AudioSource, room: LiveKitRoomLike, o: LiveKitPublishOptions = {}): Promise<Publisher> {
  let rtc: RtcModule
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    rtc = (o.rtc ?? require('@livekit/rtc-node')) as RtcModule
  } catch (e) {
    throw new CapstanError('ERR_INVALID_STATE', 'publishToLiveKit needs @livekit/rtc-node (npm install @livekit/rtc-node)', { cause: e })
  }
  const lp = room.localParticipant as unknown as {
    publishTrack(track: unknown, opts: unknown): Promise<{ sid?: string }>
    unpublishTrack(sid: string, stop?: boolean): Promise<void>
  }
  if (!lp) throw new CapstanError('ERR_INVALID_STATE', 'publishToLiveKit needs a connected room')
  const name = o.trackName ?? 'capstan'
  const factory: PeerSinkFactory = {
    async create(rate, channels) {
      const src = new rtc.AudioSource(rate, channels, o.peerQueueMs ?? 200)
      const track = rtc.LocalAudioTrack.createAudioTrack(name, src)
      const pub = await lp.publishTrack(track, new rtc.TrackPublishOptions({ source: rtc.TrackSource.SOURCE_MICROPHONE }))
      return {
        captureFrame: (f) => src.captureFrame(new rtc.AudioFrame(f.data as Int16Array, f.sampleRate, f.channels, f.samplesPerChannel)),
        async close() {
          if (pub.sid) await lp.unpublishTrack(pub.sid, true).catch(() => {})
          await track.close()
          await src.close()
        },
      }
    },
  }
  const pub = await Publisher.start(source, factory, o)
  watchRoom(room, pub)
  return pub
}
