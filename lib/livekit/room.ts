import { EventEmitter } from 'node:events'

import { binding, type JsFailure, type JsRoomEvent, type NativeLocalTrack, type NativeRoom } from '../internal/binding'
import { CapstanError, describe, native, type CapstanErrorCode } from '../internal/errors'
import { asyncDispose } from '../internal/symbols'
import { readOptions } from '../internal/validate'
import { nativeOf, type AudioSource } from '../source/source'
import { LIVEKIT_CONTRACT } from './defaults'

/**
 * `connected` once joined; `disconnected` when the session ends (closed, left by the
 * server, or a bound passed), with the reason. `reconnecting` and `resumed` are the states
 * of a session that recovers; this client does not recover yet, so they are not emitted.
 */
export type LiveKitConnectionState = 'connected' | 'reconnecting' | 'resumed' | 'disconnected'

export interface LiveKitConnectionEvent {
  state: LiveKitConnectionState
  reason?: string
}

export interface LiveKitRoomOptions {
  /** Subscribe to remote tracks as they are published. Default false. */
  autoSubscribe?: boolean
  /** The join and the publisher connection (ICE, DTLS), ms. Default from the crate: 10000. */
  connectTimeoutMs?: number
  /** Each publish, unpublish or leave round trip, ms. Default 10000. */
  requestTimeoutMs?: number
  /** Opus packets queued for the session across the room's tracks; past it they drop, counted. Default 25. */
  queuePackets?: number
  /** Aborts the join: the promise rejects `ERR_ABORTED` and a session that came up is left. */
  signal?: AbortSignal
}

export interface LiveKitTrackOptions {
  /** The track's name in the room. Default `'audio'`. */
  name?: string
  /** Opus bitrate, bps. Default 32000 per channel. */
  bitrate?: number
  /** libopus complexity 0..10. Default 10. */
  complexity?: number
}

/**
 * A published track's send path, bytes and packets: `encodedBytes = sentBytes +
 * queuedBytes + droppedBytes` at every read. Dropped packets are `droppedFull` (the queue
 * to the session was full) or `droppedUnsent` (the session could not send them).
 */
export interface LiveKitTrackMetrics {
  encodedBytes: number
  sentBytes: number
  queuedBytes: number
  droppedBytes: number
  encodedPackets: number
  sentPackets: number
  droppedFull: number
  droppedUnsent: number
}

export interface LiveKitRoomEvents {
  connection: [LiveKitConnectionEvent]
  /** A remote participant subscribed to one of this room's published tracks. */
  'track-subscribed': [{ trackSid: string }]
}

const CONNECT_KEYS = ['autoSubscribe', 'connectTimeoutMs', 'requestTimeoutMs', 'queuePackets', 'signal'] as const satisfies ReadonlyArray<keyof LiveKitRoomOptions>
const PUBLISH_KEYS = ['name', 'bitrate', 'complexity'] as const satisfies ReadonlyArray<keyof LiveKitTrackOptions>

function isFailure(v: unknown): v is JsFailure {
  return typeof v === 'object' && v !== null && typeof (v as JsFailure).code === 'string' && typeof (v as JsFailure).message === 'string'
}

const CODES = new Set<string>([...LIVEKIT_CONTRACT.errorCodes, 'ERR_NATIVE_PANIC'])

/** A failure the binding resolved with, as the error users match on. */
function failed(f: JsFailure): CapstanError {
  if (!CODES.has(f.code)) return new CapstanError('ERR_NATIVE_PANIC', `unexpected failure ${f.code}: ${f.message}`)
  return new CapstanError(f.code as CapstanErrorCode, f.message)
}

function checkType(what: string, v: unknown, type: 'boolean' | 'number' | 'string'): void {
  if (v !== undefined && typeof v !== type) throw new CapstanError('ERR_INVALID_OPTION', `${what} must be a ${type}, got ${describe(v)}`)
}

/** Module-private construction: a token only this module holds. */
const TOKEN = Symbol('LiveKitRoom')
let makeRoom: (n: NativeRoom) => LiveKitRoom
let roomEvent: (room: LiveKitRoom, e: JsRoomEvent) => void
let makeTrack: (n: NativeLocalTrack, forget: () => void) => LiveKitTrack
let endTrack: (t: LiveKitTrack) => void

/**
 * A room joined by capstan's own LiveKit client (`crates/capstan-livekit`: signal, ICE,
 * DTLS, SRTP and Opus in Rust, no libwebrtc). Published sources are encoded and sent from
 * engine threads; JavaScript sees connection changes, never packets.
 */
export class LiveKitRoom extends EventEmitter<LiveKitRoomEvents> {
  readonly #native: NativeRoom
  readonly #tracks = new Set<LiveKitTrack>()
  #state: LiveKitConnectionState = 'connected'
  #reason: string | undefined
  #closing: Promise<void> | undefined
  /** The room's name, this participant's identity and sid, as the server's join said. */
  readonly name: string
  readonly identity: string
  readonly participantSid: string
  readonly serverVersion: string

  /** Joins `url` (ws:// or wss://) with an access token; resolves connected or rejects with a typed error. */
  static async connect(url: string, token: string, options: LiveKitRoomOptions = {}): Promise<LiveKitRoom> {
    if (typeof url !== 'string' || url.length === 0) throw new CapstanError('ERR_INVALID_OPTION', 'url must be a non-empty string')
    if (typeof token !== 'string' || token.length === 0) throw new CapstanError('ERR_INVALID_OPTION', 'token must be a non-empty string')
    const o = readOptions('LiveKitRoom.connect', options, CONNECT_KEYS)
    checkType('autoSubscribe', o.autoSubscribe, 'boolean')
    checkType('connectTimeoutMs', o.connectTimeoutMs, 'number')
    checkType('requestTimeoutMs', o.requestTimeoutMs, 'number')
    checkType('queuePackets', o.queuePackets, 'number')
    const signal = o.signal as AbortSignal | undefined
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new CapstanError('ERR_INVALID_OPTION', 'signal must be an AbortSignal')
    if (signal?.aborted) throw new CapstanError('ERR_ABORTED', 'the join was aborted before it started')
    // Events can come before the room object exists (a disconnect right after the join):
    // they wait here and are replayed in order.
    let room: LiveKitRoom | undefined
    const early: JsRoomEvent[] = []
    const onEvent = (e: JsRoomEvent) => (room ? roomEvent(room, e) : early.push(e))
    const pending = native(() =>
      binding.livekitConnect(
        url,
        token,
        { autoSubscribe: o.autoSubscribe as boolean | undefined, connectTimeoutMs: o.connectTimeoutMs as number | undefined, requestTimeoutMs: o.requestTimeoutMs as number | undefined, queuePackets: o.queuePackets as number | undefined },
        onEvent,
      ),
    )
    let onAbort: (() => void) | undefined
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new CapstanError('ERR_ABORTED', 'the join was aborted'))
      signal?.addEventListener('abort', onAbort, { once: true })
    })
    aborted.catch(() => {})
    let r: NativeRoom | JsFailure
    try {
      r = await Promise.race([pending, aborted])
    } catch (e) {
      // Aborted: a session that still comes up is left at once.
      void pending.then((late) => (isFailure(late) ? undefined : late.close())).catch(() => {})
      throw e
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort)
    }
    if (isFailure(r)) throw failed(r)
    room = makeRoom(r)
    for (const e of early.splice(0)) roomEvent(room, e)
    return room
  }

  static {
    makeRoom = (n) => new LiveKitRoom(TOKEN, n)
    roomEvent = (room, e) => room.#event(e)
  }

  private constructor(token: symbol, n: NativeRoom) {
    if (token !== TOKEN) throw new CapstanError('ERR_INVALID_STATE', 'use LiveKitRoom.connect(url, token, options)')
    super()
    this.#native = n
    const j = n.join
    this.name = j.room
    this.identity = j.identity
    this.participantSid = j.participantSid
    this.serverVersion = j.serverVersion
    // A connected room holds the event loop open, like a socket, until it ends.
    n.keepAlive(true)
  }

  get state(): LiveKitConnectionState {
    return this.#state
  }

  /** Why the session ended, once `state` is `disconnected`. */
  get disconnectReason(): string | undefined {
    return this.#reason
  }

  /** Ping/pong round trips and trickle counters of the signal connection. */
  signalStats(): { pings: number; pongs: number; rttMs: number; badCandidates: number } {
    return native(() => this.#native.signalStats())
  }

  /**
   * Publishes a realtime `AudioSource` as an Opus track, which becomes the source's sink
   * (like `encode()`; a later `encode()` or `frames()` takes the output back). Resolves
   * once the track is live on the publisher connection.
   */
  async publish(source: AudioSource, options: LiveKitTrackOptions = {}): Promise<LiveKitTrack> {
    const o = readOptions('LiveKitRoom.publish', options, PUBLISH_KEYS)
    checkType('name', o.name, 'string')
    checkType('bitrate', o.bitrate, 'number')
    checkType('complexity', o.complexity, 'number')
    if (this.#state === 'disconnected') throw new CapstanError('ERR_INVALID_STATE', `the room is disconnected${this.#reason ? ` (${this.#reason})` : ''}`)
    let n: ReturnType<typeof nativeOf>
    try {
      n = nativeOf(source)
    } catch {
      throw new CapstanError('ERR_INVALID_OPTION', 'publish takes a capstan AudioSource')
    }
    if (source.closed) throw new CapstanError('ERR_INVALID_STATE', 'the source is closed')
    const r = await native(() => this.#native.publish(n, { name: o.name as string | undefined, bitrate: o.bitrate as number | undefined, complexity: o.complexity as number | undefined }))
    if (isFailure(r)) throw failed(r)
    const t = makeTrack(r, () => this.#tracks.delete(t))
    this.#tracks.add(t)
    // The room may have ended while the publish was in flight.
    if ((this.#state as LiveKitConnectionState) === 'disconnected') endTrack(t)
    return t
  }

  /** Leaves the room (unpublishing everything) and ends the session; every call settles. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const r = await native(() => this.#native.close())
      this.#ended('closed by the caller')
      if (isFailure(r)) throw failed(r)
    })()
    return this.#closing
  }

  async [asyncDispose](): Promise<void> {
    await this.close()
  }

  #event(e: JsRoomEvent): void {
    switch (e.kind) {
      case 'track-subscribed':
        this.emit('track-subscribed', { trackSid: e.trackSid ?? '' })
        break
      case 'disconnected':
        this.#ended(e.reason ?? 'disconnected')
        break
    }
  }

  #ended(reason: string): void {
    if (this.#state === 'disconnected') return
    this.#state = 'disconnected'
    this.#reason = reason
    for (const t of [...this.#tracks]) endTrack(t)
    this.#native.keepAlive(false)
    this.emit('connection', { state: 'disconnected', reason })
  }
}

/** A track this room publishes. */
export class LiveKitTrack {
  readonly #native: NativeLocalTrack
  readonly #forget: () => void
  #unpublishing: Promise<void> | undefined
  #published = true
  /** The server's track sid. */
  readonly sid: string
  readonly name: string
  readonly sampleRate: number
  readonly channels: number

  static {
    makeTrack = (n, forget) => new LiveKitTrack(TOKEN, n, forget)
    endTrack = (t) => t.#end()
  }

  private constructor(token: symbol, n: NativeLocalTrack, forget: () => void) {
    if (token !== TOKEN) throw new CapstanError('ERR_INVALID_STATE', 'tracks are made by LiveKitRoom.publish')
    this.#native = n
    this.#forget = forget
    this.sid = n.sid
    this.name = n.name
    this.sampleRate = n.sampleRate
    this.channels = n.channels
  }

  /** False once unpublished or the room has ended. */
  get published(): boolean {
    return this.#published
  }

  metrics(): LiveKitTrackMetrics {
    return native(() => this.#native.metrics())
  }

  /**
   * Stops sending (the source's output goes nowhere from the clock's next pass) and ends
   * the track in the room. Idempotent; resolves at once on a room that has ended.
   */
  unpublish(): Promise<void> {
    this.#unpublishing ??= (async () => {
      const live = this.#published
      this.#published = false
      this.#forget()
      const r = await native(() => this.#native.unpublish())
      // On an ended room there is nothing left to unpublish from.
      if (live && isFailure(r) && r.code !== 'ERR_INVALID_STATE') throw failed(r)
    })()
    return this.#unpublishing
  }

  /** The room ended: the track goes with it, and its source stops encoding. */
  #end(): void {
    if (!this.#published) return
    void this.unpublish().catch(() => {})
  }
}
