import { EventEmitter } from 'node:events'

import {
  AudioStream,
  CapstanError,
  NativeProcessor,
  processors as builtin,
  type AudioFrame,
  type AudioSourceEvents,
  type FrameProcessor,
  type SourceMetrics,
} from '../index'
import { agents, agentsRtc, type RtcNode } from './load'

export interface CapstanAudioInputOptions {
  /** The participant whose microphone feeds the session. Default: the first remote audio track. */
  participantIdentity?: string
  /** The rate the session gets (STT/VAD). Default 24000 (what RoomIO uses). */
  sampleRate?: number
  /** Default 1. */
  channels?: number
  /**
   * Makes the processors of one track's stream (a processor belongs to one stream, and a
   * participant may republish): native ones run on engine threads before the resampler,
   * JS ones (LiveKit `FrameProcessor`s) after it, on the JS thread.
   */
  processors?: () => Array<NativeProcessor | FrameProcessor<AudioFrame>>
  /** 10 ms frames buffered between the track and the session; the oldest drop first (counted). Default 50. */
  queueFrames?: number
  /** The `@livekit/rtc-node` module the room belongs to. Default: the one `@livekit/agents` resolves. */
  rtc?: unknown
}

/** The rate tracks are read at from rtc-node: its native rate, resampled by capstan. */
const TRACK_RATE = 48000

export interface CapstanAudioInputMetrics {
  /** The current track's stream (undefined before the first track). */
  stream: SourceMetrics | undefined
  /** Tracks read so far. */
  tracks: number
  /** 10 ms frames handed to the session. */
  framesOut: number
}

const Base = agents.voice.AudioInput

interface RoomLike {
  on(e: string, f: (...a: never[]) => void): unknown
  off(e: string, f: (...a: never[]) => void): unknown
  remoteParticipants?: Map<string, unknown>
}

interface TrackLike {
  kind?: number
  sid?: string
}

/**
 * A `voice.AudioInput` for `@livekit/agents` sessions (`session.input.audio = new
 * CapstanAudioInput(ctx.room, options)`): the participant's microphone track is read through a
 * capstan `AudioStream` with native processors (denoise, VAD, the resampler to the session's
 * rate) on engine threads, bounded (`queueFrames`, oldest dropped and counted).
 * `events` re-emits the stream's `vad`, `processor-error`, `overflow` and `health` events.
 */
export class CapstanAudioInput extends Base {
  readonly events = new EventEmitter<AudioSourceEvents>()
  readonly #room: RoomLike
  readonly #o: CapstanAudioInputOptions
  readonly #rtc: RtcNode
  readonly #rate: number
  readonly #channels: number
  #stream: AudioStream | undefined
  #streamId: string | undefined
  #trackSid: string | undefined
  #last: SourceMetrics | undefined
  #tracks = 0
  #framesOut = 0
  #closed = false
  readonly #onSubscribed: (track: TrackLike, pub: unknown, participant: { identity: string }) => void
  readonly #onUnsubscribed: (track: TrackLike) => void

  constructor(room: unknown, options: CapstanAudioInputOptions = {}) {
    super()
    if (typeof room !== 'object' || room === null || typeof (room as { on?: unknown }).on !== 'function') {
      throw new CapstanError('ERR_INVALID_OPTION', 'CapstanAudioInput needs an @livekit/rtc-node Room (ctx.room)')
    }
    const rate = options.sampleRate ?? 24000
    const channels = options.channels ?? 1
    if (!Number.isInteger(rate) || rate < 8000 || rate > 192000 || rate % 100 !== 0) throw new CapstanError('ERR_INVALID_OPTION', `sampleRate must be 8000..192000 and a multiple of 100, got ${rate}`)
    if (!Number.isInteger(channels) || channels < 1 || channels > 8) throw new CapstanError('ERR_INVALID_OPTION', `channels must be 1..8, got ${channels}`)
    if (options.processors !== undefined && typeof options.processors !== 'function') {
      throw new CapstanError('ERR_INVALID_OPTION', 'processors must be a function returning the processors of one stream')
    }
    this.#room = room as RoomLike
    this.#o = options
    this.#rtc = (options.rtc ?? agentsRtc) as RtcNode
    this.#rate = rate
    this.#channels = channels
    this.#onSubscribed = (track, _pub, participant) => this.#subscribed(track, participant)
    this.#onUnsubscribed = (track) => {
      if (track.sid !== undefined && track.sid === this.#trackSid) void this.#stop()
    }
    this.#room.on('trackSubscribed', this.#onSubscribed as never)
    this.#room.on('trackUnsubscribed', this.#onUnsubscribed as never)
    // Tracks subscribed before the input was made.
    for (const p of (this.#room.remoteParticipants?.values() ?? []) as Iterable<{ identity: string; trackPublications?: Map<string, { track?: TrackLike }> }>) {
      for (const pub of p.trackPublications?.values() ?? []) if (pub.track) this.#subscribed(pub.track, p)
    }
  }

  /** The session's sample rate. */
  get sampleRate(): number {
    return this.#rate
  }

  #subscribed(track: TrackLike, participant: { identity: string }): void {
    if (this.#closed || this.#stream || track.kind !== this.#rtc.TrackKind.KIND_AUDIO) return
    if (this.#o.participantIdentity !== undefined && participant.identity !== this.#o.participantIdentity) return
    const made = this.#o.processors?.() ?? []
    const native = made.filter((p) => p instanceof NativeProcessor)
    const js = made.filter((p) => !(p instanceof NativeProcessor))
    const chain = [...native, ...(this.#rate !== TRACK_RATE ? [builtin.resample({ toRate: this.#rate })] : []), ...js]
    const frames = new this.#rtc.AudioStream(track, { sampleRate: TRACK_RATE, numChannels: this.#channels })
    const stream = new AudioStream(frames as unknown as AsyncIterable<AudioFrame>, {
      sampleRate: TRACK_RATE,
      channels: this.#channels,
      processors: chain,
      queueFrames: this.#o.queueFrames ?? 50,
    })
    for (const ev of ['vad', 'processor-error', 'overflow', 'health'] as const) stream.on(ev, ((e: never) => this.events.emit(ev, e)) as never)
    this.#stream = stream
    this.#trackSid = track.sid
    this.#tracks++
    const it = stream[Symbol.asyncIterator]()
    const Frame = this.#rtc.AudioFrame
    const readable = new ReadableStream<unknown>({
      pull: async (controller) => {
        try {
          const r = await it.next()
          if (r.done) return controller.close()
          const f = r.value
          this.#framesOut++
          controller.enqueue(new Frame(f.data as Int16Array, f.sampleRate, f.channels, f.samplesPerChannel))
        } catch (e) {
          controller.error(e)
        }
      },
      cancel: async () => {
        await it.return?.(undefined)
      },
    })
    this.#streamId = this.multiStream.addInputStream(readable)
  }

  async #stop(): Promise<void> {
    const s = this.#stream
    const id = this.#streamId
    this.#stream = undefined
    this.#streamId = undefined
    this.#trackSid = undefined
    if (s) this.#last = s.metrics()
    if (id !== undefined) await this.multiStream.removeInputStream(id).catch(() => {})
    await s?.close()
  }

  metrics(): CapstanAudioInputMetrics {
    return { stream: this.#stream?.metrics() ?? this.#last, tracks: this.#tracks, framesOut: this.#framesOut }
  }

  /** Stops reading the track and closes the stream and its processors. Idempotent. */
  override async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#room.off('trackSubscribed', this.#onSubscribed as never)
    this.#room.off('trackUnsubscribed', this.#onUnsubscribed as never)
    await this.#stop()
    await super.close()
  }
}
