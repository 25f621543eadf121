import { EventEmitter } from 'node:events'

import { binding, type JsFailure, type JsRoomEvent, type NativeLocalTrack, type NativeRemoteTrack, type NativeRoom } from '../internal/binding'
import { CapstanError, describe, native, type CapstanErrorCode } from '../internal/errors'
import { asyncDispose } from '../internal/symbols'
import { readOptions } from '../internal/validate'
import { nativeOf, type AudioSource } from '../source/source'
import { AudioFrame } from '../source/frame'
import { AudioStream, type AudioStreamOptions } from '../source/stream'
import { processors } from '../process/processors'
import type { AudioTransport } from '../transport/transport'
import { nativeTransport, type TransportFeed } from './native-transport'
import { LIVEKIT_CONTRACT } from './defaults'

/**
 * `connected` once joined; `reconnecting` when the signal connection is lost (the peer
 * connections and the audio on them carry on), `resumed` when it is back; `reconnecting`
 * also when a peer connection is lost, the server asks for a new join or will not take a
 * resume, then `connected` again (`reason: 'reconnected'`) after a full reconnect;
 * `disconnected` when the session ends (closed, left by the server, a recovery that failed
 * or passed its bound), with the reason.
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
  /** Opus packets each track may have queued for the session; past it they drop, counted. Default 25 (500 ms). */
  queuePackets?: number
  /** Remote tracks: from a packet's arrival to its playout, ms (20..1000). Default 60. */
  jitterMs?: number
  /** Remote tracks: decoded 10 ms frames held for a reader; past it the oldest drop, counted. Default 50. */
  remoteBufferFrames?: number
  /** How long recovering a session may take, ms: a resume, then a full reconnect, from when the signal or a peer connection was lost (0: end the session at once). Default 15000. */
  resumeTimeoutMs?: number
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
  queuedPackets: number
  droppedFull: number
  droppedUnsent: number
}

/** Another participant, as the server last described it. */
export interface LiveKitParticipant {
  sid: string
  identity: string
  name: string
  audioTracks: Array<{ sid: string; name: string; stereo: boolean; muted: boolean }>
}

/**
 * A remote track's counters. Packets: `packetsReceived = played + duplicate + late +
 * overflow + discarded + buffered`. Frames (10 ms): `decodedFrames + concealedFrames =
 * readFrames + queuedFrames + droppedFrames`. `lost` counts playout slots with no packet
 * (each concealed by Opus PLC, or recovered from the next packet's FEC: `fecRecovered`).
 */
export interface LiveKitRemoteMetrics {
  packetsReceived: number
  bytesReceived: number
  played: number
  duplicate: number
  late: number
  overflow: number
  discarded: number
  buffered: number
  lost: number
  fecRecovered: number
  decodeErrors: number
  silenceGaps: number
  resyncs: number
  decodedFrames: number
  concealedFrames: number
  droppedFrames: number
  readFrames: number
  queuedFrames: number
}

export interface LiveKitRoomEvents {
  connection: [LiveKitConnectionEvent]
  /** A remote audio track is subscribed: read it with `remote.stream(options)`. */
  track: [LiveKitRemoteTrack]
  /** A subscribed remote track ended (`unsubscribed`, `unpublished`, `participant left`, `room closed: …`). */
  'track-ended': [{ trackSid: string; reason: string }]
  /** A remote participant published (or ended) an audio track: `setSubscribed` takes it when `autoSubscribe` is off. */
  'track-published': [{ participantSid: string; trackSid: string; name: string }]
  'track-unpublished': [{ participantSid: string; trackSid: string }]
  'participant-joined': [{ sid: string; identity: string; name: string }]
  'participant-left': [{ sid: string; identity: string; reason: string }]
  /** A remote participant subscribed to one of this room's published tracks. */
  'local-track-subscribed': [{ trackSid: string }]
  /** A user packet from another participant (`topic` '' when it had none). */
  data: [{ from: string; topic: string; payload: Uint8Array }]
}

export interface LiveKitDataOptions {
  /** Default '' (none). */
  topic?: string
  /** Identities to send to; everyone when absent or empty. */
  destinations?: string[]
  /** The reliable (ordered, retransmitted) channel, or the lossy one. Default true. */
  reliable?: boolean
}

const CONNECT_KEYS = ['autoSubscribe', 'connectTimeoutMs', 'requestTimeoutMs', 'queuePackets', 'jitterMs', 'remoteBufferFrames', 'resumeTimeoutMs', 'signal'] as const satisfies ReadonlyArray<keyof LiveKitRoomOptions>
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
let resid: (t: LiveKitTrack, sid: string) => void
let makeRemote: (n: NativeRemoteTrack) => LiveKitRemoteTrack

/**
 * A room joined by capstan's own LiveKit client (`crates/capstan-livekit`: signal, ICE,
 * DTLS, SRTP and Opus in Rust, no libwebrtc). Published sources are encoded and sent from
 * engine threads; JavaScript sees connection changes, never packets.
 */
export class LiveKitRoom extends EventEmitter<LiveKitRoomEvents> {
  readonly #native: NativeRoom
  readonly #tracks = new Set<LiveKitTrack>()
  #transport: { transport: AudioTransport; feed: TransportFeed } | undefined
  #state: LiveKitConnectionState = 'connected'
  #reason: string | undefined
  #closing: Promise<void> | undefined
  /** The room's name, this participant's identity and the server's version, as the join said. */
  readonly name: string
  readonly identity: string
  #participantSid: string
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
    checkType('jitterMs', o.jitterMs, 'number')
    checkType('remoteBufferFrames', o.remoteBufferFrames, 'number')
    checkType('resumeTimeoutMs', o.resumeTimeoutMs, 'number')
    const signal = o.signal as AbortSignal | undefined
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new CapstanError('ERR_INVALID_OPTION', 'signal must be an AbortSignal')
    if (signal?.aborted) throw new CapstanError('ERR_ABORTED', 'the join was aborted before it started')
    // Events can come before the room object exists (a disconnect right after the join):
    // they wait here and are replayed in order.
    let room: LiveKitRoom | undefined
    // ... and past the resolution too, until the caller's code after `await connect()` has
    // run (the next turn): the participants already there and the tracks subscribed during
    // the join reach the listeners it adds there.
    const early: JsRoomEvent[] = []
    let replayed = false
    const onEvent = (e: JsRoomEvent) => (room && replayed ? roomEvent(room, e) : early.push(e))
    const pending = native(() =>
      binding.livekitConnect(
        url,
        token,
        {
          autoSubscribe: o.autoSubscribe as boolean | undefined,
          connectTimeoutMs: o.connectTimeoutMs as number | undefined,
          requestTimeoutMs: o.requestTimeoutMs as number | undefined,
          queuePackets: o.queuePackets as number | undefined,
          jitterMs: o.jitterMs as number | undefined,
          remoteBufferFrames: o.remoteBufferFrames as number | undefined,
          resumeTimeoutMs: o.resumeTimeoutMs as number | undefined,
        },
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
    const made = (room = makeRoom(r))
    setImmediate(() => {
      replayed = true
      for (const e of early.splice(0)) roomEvent(made, e)
    })
    return made
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
    this.#participantSid = j.participantSid
    this.serverVersion = j.serverVersion
    // A connected room holds the event loop open, like a socket, until it ends.
    n.keepAlive(true)
  }

  /** This participant's sid: the join's, then a full reconnect's. */
  get participantSid(): string {
    return this.#participantSid
  }

  get state(): LiveKitConnectionState {
    return this.#state
  }

  /** Why the session ended, once `state` is `disconnected`. */
  get disconnectReason(): string | undefined {
    return this.#reason
  }

  /**
   * Byte streams and RPC over this room's reliable data channel, as the `AudioTransport`
   * `ByteStreamAudioSender` and `ByteStreamAudioReceiver` take (wire-compatible with LiveKit
   * agents' avatar I/O and every LiveKit SDK's `streamBytes`/`performRpc`).
   */
  get transport(): AudioTransport {
    this.#transport ??= nativeTransport(this.#native, this.identity, () => (this.#state === 'disconnected' ? (this.#reason ?? 'disconnected') : undefined))
    return this.#transport.transport
  }

  /** A user packet to other participants (LiveKit's `publishData`). */
  async publishData(payload: Uint8Array, options: LiveKitDataOptions = {}): Promise<void> {
    if (!(payload instanceof Uint8Array)) throw new CapstanError('ERR_INVALID_OPTION', 'payload must be a Uint8Array')
    const o = readOptions('LiveKitRoom.publishData', options, ['topic', 'destinations', 'reliable'] as const)
    checkType('topic', o.topic, 'string')
    checkType('reliable', o.reliable, 'boolean')
    const to = o.destinations as unknown
    if (to !== undefined && !(Array.isArray(to) && to.every((d) => typeof d === 'string'))) throw new CapstanError('ERR_INVALID_OPTION', 'destinations must be an array of identities')
    if (this.#state === 'disconnected') throw new CapstanError('ERR_INVALID_STATE', 'the room is disconnected')
    const r = await native(() => this.#native.publishData(payload, o.topic as string | undefined, (to as string[] | undefined) ?? [], (o.reliable as boolean | undefined) ?? true))
    if (isFailure(r)) throw failed(r)
  }

  /** The other participants and their audio tracks. */
  get participants(): LiveKitParticipant[] {
    return native(() => this.#native.participants())
  }

  /** Subscribes to (or leaves) a remote track; a subscribed one comes as a `'track'` event. */
  async setSubscribed(trackSid: string, subscribed: boolean): Promise<void> {
    if (typeof trackSid !== 'string' || trackSid.length === 0) throw new CapstanError('ERR_INVALID_OPTION', 'trackSid must be a non-empty string')
    if (typeof subscribed !== 'boolean') throw new CapstanError('ERR_INVALID_OPTION', 'subscribed must be a boolean')
    if (this.#state === 'disconnected') throw new CapstanError('ERR_INVALID_STATE', 'the room is disconnected')
    const r = await native(() => this.#native.setSubscribed(trackSid, subscribed))
    if (isFailure(r)) throw failed(r)
  }

  /** Ping/pong round trips and trickle counters of the signal connection. */
  signalStats(): { pings: number; pongs: number; rttMs: number; badCandidates: number; resumes: number; heldRequests: number } {
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
    const sid = e.trackSid ?? ''
    switch (e.kind) {
      case 'data':
        this.emit('data', { from: e.identity ?? '', topic: e.name ?? '', payload: e.payload ?? new Uint8Array(0) })
        break
      case 'byte-stream':
        // Nobody asked for the transport: the stream has no reader (the client counts it).
        if (this.#transport) this.#transport.feed.event(e)
        else native(() => this.#native.takeByteStream(e.id ?? '')?.release())
        break
      case 'rpc-request':
        if (this.#transport) this.#transport.feed.event(e)
        else void native(() => this.#native.respondRpc(e.id ?? '', e.identity ?? '', undefined, 1400, 'Method not supported at destination')).catch(() => {})
        break
      case 'local-track-subscribed':
        this.emit('local-track-subscribed', { trackSid: sid })
        break
      case 'track-subscribed': {
        const n = native(() => this.#native.takeRemoteTrack(sid))
        if (n) this.emit('track', makeRemote(n))
        break
      }
      case 'track-ended':
        this.emit('track-ended', { trackSid: sid, reason: e.reason ?? '' })
        break
      case 'track-published':
        this.emit('track-published', { participantSid: e.participantSid ?? '', trackSid: sid, name: e.name ?? '' })
        break
      case 'track-unpublished':
        this.emit('track-unpublished', { participantSid: e.participantSid ?? '', trackSid: sid })
        break
      case 'participant-joined':
        this.emit('participant-joined', { sid: e.participantSid ?? '', identity: e.identity ?? '', name: e.name ?? '' })
        break
      case 'participant-left':
        this.#transport?.feed.event(e)
        this.emit('participant-left', { sid: e.participantSid ?? '', identity: e.identity ?? '', reason: e.reason ?? '' })
        break
      case 'reconnecting':
        if (this.#state === 'disconnected') break
        this.#state = 'reconnecting'
        this.emit('connection', { state: 'reconnecting', reason: e.reason ?? '' })
        break
      case 'resumed':
        if (this.#state === 'disconnected') break
        this.#state = 'resumed'
        this.emit('connection', { state: 'resumed' })
        break
      case 'reconnected':
        if (this.#state === 'disconnected') break
        this.#state = 'connected'
        this.#participantSid = e.participantSid ?? this.#participantSid
        this.emit('connection', { state: 'connected', reason: 'reconnected' })
        break
      case 'local-track-republished':
        for (const t of this.#tracks) if (t.sid === e.id) resid(t, sid)
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
    this.#transport?.feed.event({ kind: 'disconnected', reason } as JsRoomEvent)
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
  #sid: string
  readonly name: string
  readonly sampleRate: number
  readonly channels: number

  static {
    makeTrack = (n, forget) => new LiveKitTrack(TOKEN, n, forget)
    endTrack = (t) => t.#end()
    resid = (t, sid) => (t.#sid = sid)
  }

  private constructor(token: symbol, n: NativeLocalTrack, forget: () => void) {
    if (token !== TOKEN) throw new CapstanError('ERR_INVALID_STATE', 'tracks are made by LiveKitRoom.publish')
    this.#native = n
    this.#forget = forget
    this.#sid = n.sid
    this.name = n.name
    this.sampleRate = n.sampleRate
    this.channels = n.channels
  }

  /** The server's track sid (a new one after a full reconnect publishes the track again). */
  get sid(): string {
    return this.#sid
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

/** Frames per native read: a batch is at most this much audio (10 ms each). */
const READ_FRAMES = 50

const STREAM_KEYS = ['sampleRate', 'channels', 'processors', 'queueFrames', 'autoClose', 'processorBypassAfter', 'processorBudgetMs'] as const satisfies ReadonlyArray<keyof AudioStreamOptions>

/** Mono to stereo (copied) or stereo to mono (averaged). */
function remix(x: Int16Array, from: number, to: number): Int16Array {
  if (from === to) return x
  const frames = x.length / from
  const out = new Int16Array(frames * to)
  if (from === 1) for (let i = 0; i < frames; i++) out[2 * i] = out[2 * i + 1] = x[i]
  else for (let i = 0; i < frames; i++) out[i] = (x[2 * i] + x[2 * i + 1]) >> 1
  return out
}

/**
 * A subscribed remote audio track. The session decodes it on its own (jitter buffer, Opus
 * with loss concealment) into exact 10 ms frames at 48 kHz in a bounded buffer;
 * `stream()` reads them in batches, woken once per batch, never per packet.
 */
export class LiveKitRemoteTrack {
  readonly #native: NativeRemoteTrack
  #streamed = false
  readonly sid: string
  readonly name: string
  readonly participantSid: string
  readonly participantIdentity: string
  /** What the track carries: 48000 Hz, 1 or 2 channels. */
  readonly sampleRate: number
  readonly channels: number

  static {
    makeRemote = (n) => new LiveKitRemoteTrack(TOKEN, n)
  }

  private constructor(token: symbol, n: NativeRemoteTrack) {
    if (token !== TOKEN) throw new CapstanError('ERR_INVALID_STATE', "remote tracks come from a LiveKitRoom's 'track' event")
    this.#native = n
    this.sid = n.sid
    this.name = n.name
    this.participantSid = n.participantSid
    this.participantIdentity = n.participantIdentity
    this.sampleRate = n.sampleRate
    this.channels = n.channels
  }

  /**
   * The track as a capstan `AudioStream`: `sampleRate` other than 48000 puts the engine's
   * resampler first, then `processors` (native on engine threads, then JS); `channels` 1 or
   * 2 (mixed down or copied up); `queueFrames` bounds the stream's own queue. Once per track.
   * The stream ends when the track does (after what was buffered is read).
   */
  stream(options: AudioStreamOptions): AudioStream {
    const o = readOptions('LiveKitRemoteTrack.stream', options, STREAM_KEYS) as Partial<AudioStreamOptions>
    if (o.channels !== 1 && o.channels !== 2) throw new CapstanError('ERR_INVALID_OPTION', `channels must be 1 or 2, got ${describe(o.channels)}`)
    if (typeof o.sampleRate !== 'number') throw new CapstanError('ERR_INVALID_OPTION', `sampleRate must be a number, got ${describe(o.sampleRate)}`)
    if (this.#streamed) throw new CapstanError('ERR_INVALID_STATE', 'this remote track is already streamed')
    const pre = o.sampleRate === this.sampleRate ? [] : [processors.resample({ toRate: o.sampleRate })]
    const s = new AudioStream(this.#frames(o.channels), { ...o, sampleRate: this.sampleRate, channels: o.channels, processors: [...pre, ...(o.processors ?? [])] })
    this.#streamed = true
    return s
  }

  metrics(): LiveKitRemoteMetrics {
    return native(() => this.#native.metrics())
  }

  async *#frames(channels: number): AsyncGenerator<AudioFrame> {
    const n = this.#native
    let wake: (() => void) | undefined
    native(() =>
      n.setWake(() => {
        const w = wake
        wake = undefined
        w?.()
      }),
    )
    try {
      for (;;) {
        const r = native(() => n.read(READ_FRAMES))
        if (r.state === 'frames') {
          yield new AudioFrame(remix(r.samples!, this.channels, channels), this.sampleRate, channels)
          continue
        }
        if (r.state === 'ended') return
        // Empty: the buffer wakes us once when there is more (or the end).
        n.keepAlive(true)
        try {
          await new Promise<void>((resolve) => (wake = resolve))
        } finally {
          n.keepAlive(false)
        }
      }
    } finally {
      native(() => n.release())
    }
  }
}
