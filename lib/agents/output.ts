import {
  AudioSource,
  CapstanError,
  type HealthEvent,
  type LiveKitPublishOptions,
  type LiveKitRoomLike,
  type Publisher,
  type PublisherEvents,
  type PublisherMetrics,
  type SourceMetrics,
} from '../index'
import { publishToLiveKit } from '../livekit/index'
import { agents, agentsRtc, type PlaybackFinishedEvent } from './load'

export interface CapstanAudioOutputOptions extends Omit<LiveKitPublishOptions, 'rtc'> {
  /** The rate the session's TTS audio is resampled to (by the session) and published at. Default 24000. */
  sampleRate?: number
  /** Default 1. */
  channels?: number
  /** capstan's queue, ms (a multiple of 10). The TTS waits for room in it. Default 200. */
  queueMs?: number
  /** Longest one `captureFrame` waits for room before the rest of its frame is dropped (counted). Default 2000. */
  deadlineMs?: number
  /** Labels the source's exported metrics (`collectMetrics`). */
  name?: string
  /**
   * When `playbackFinished` comes: `'peer'` (default) once the peer track has played the
   * segment's end (the engine delivers the publisher's lead, `leadMs` + `frameMs`, after it);
   * `'engine'` when the engine delivers its last chunk, that much earlier, which lets a
   * session that waits for it start its next speech without that gap.
   */
  finishAt?: 'peer' | 'engine'
  /** The `@livekit/rtc-node` module the room belongs to. Default: the one `@livekit/agents` resolves. */
  rtc?: unknown
}

/** A room as an agent job hands it out: connected, or about to be. */
export interface AgentsRoomLike extends LiveKitRoomLike {
  isConnected?: boolean
  once?(event: string, listener: (...a: never[]) => void): unknown
}

/** One playback segment: the audio between two `flush()`/`clearBuffer()` calls. */
interface Segment {
  /** Where it starts in the source's delivered stream (samples per channel). */
  start: number
  /** Samples per channel taken into capstan's custody. */
  samples: number
  /** The first 10 ms chunk is captured and its delivery is being watched. */
  armed: boolean
  startedAt: number | undefined
  interrupted: boolean
  reported: boolean
}

export interface CapstanAudioOutputMetrics {
  source: SourceMetrics
  /** Undefined until the track is published (and if publishing failed). */
  publisher: PublisherMetrics | undefined
  segments: { started: number; finished: number; interrupted: number }
  /** Frames `captureFrame` took; the rest of a frame after a deadline is in `source.dropped`. */
  framesCaptured: number
  /** Frames that arrived for a segment that was already interrupted (ignored, never an error). */
  framesAfterClear: number
}

export interface CapstanAudioOutputEvents {
  health: [HealthEvent]
  'sink-stalled': PublisherEvents['sink-stalled']
  'sink-recovered': PublisherEvents['sink-recovered']
  'sink-abandoned': PublisherEvents['sink-abandoned']
  connection: PublisherEvents['connection']
  'publish-failed': [{ error: unknown }]
}

const Base = agents.voice.AudioOutput

/**
 * A `voice.AudioOutput` for `@livekit/agents` sessions that plays through a capstan source
 * published with `publishToLiveKit` (watchdog and recovery included). Playback events come
 * from the engine's delivered position, not from timers: `playbackStarted` when a segment's
 * first 10 ms chunk is played, `playbackFinished` with the samples delivered (on
 * `clearBuffer()`, up to where the clear took effect, `interrupted: true`). Frames after a
 * clear, rapid barge-ins and a stalled peer never make `captureFrame` reject.
 *
 * The publisher keeps the peer track its lead (`leadMs` + `frameMs`) ahead of the engine:
 * audio already handed over when `clearBuffer()` is called still plays and is part of the
 * reported position (so it is what the far end receives), and with `finishAt: 'peer'` both
 * events wait until the engine has delivered that lead past the point they report.
 */
export class CapstanAudioOutput extends Base {
  /** The capstan source the session's audio goes through: `health`, `metrics()`, `queuedMs`. */
  readonly source: AudioSource
  readonly #room: AgentsRoomLike
  readonly #o: CapstanAudioOutputOptions
  readonly #deadlineMs: number
  readonly #chunk: number
  /** Silence played out behind a segment before it is reported finished (see #drain). */
  readonly #drainSamples: number
  /** That silence is queued and not yet played. */
  #drainQueued = false
  readonly #ready: Promise<Publisher | undefined>
  #publisher: Publisher | undefined
  /** Segments not yet reported finished, oldest first; the last may be open (capturing). */
  readonly #segments: Segment[] = []
  #open: Segment | undefined
  /** Reports are made in segment order: each waits for the one before it. */
  #tail: Promise<void> = Promise.resolve()
  #closed = false
  #onClose!: () => void
  /** Resolves at `close()`: a capture waiting for the track to be published settles then. */
  readonly #closing = new Promise<undefined>((r) => (this.#onClose = () => r(undefined)))
  readonly #m = { started: 0, finished: 0, interrupted: 0, framesCaptured: 0, framesAfterClear: 0 }

  constructor(room: AgentsRoomLike, options: CapstanAudioOutputOptions = {}) {
    if (typeof room !== 'object' || room === null || typeof room.on !== 'function') {
      throw new CapstanError('ERR_INVALID_OPTION', 'CapstanAudioOutput needs an @livekit/rtc-node Room (ctx.room)')
    }
    if (typeof options !== 'object' || options === null) throw new CapstanError('ERR_INVALID_OPTION', 'options must be an object')
    const sampleRate = options.sampleRate ?? 24000
    const channels = options.channels ?? 1
    const deadlineMs = options.deadlineMs ?? 2000
    if (!Number.isFinite(deadlineMs) || deadlineMs < 0) throw new CapstanError('ERR_INVALID_OPTION', `deadlineMs must be >= 0, got ${deadlineMs}`)
    if (options.finishAt !== undefined && options.finishAt !== 'peer' && options.finishAt !== 'engine') {
      throw new CapstanError('ERR_INVALID_OPTION', `finishAt must be 'peer' or 'engine', got ${String(options.finishAt)}`)
    }
    super(sampleRate, undefined, { pause: false })
    // Made after super(), which throws if the agents logger is not initialised: nothing is left
    // open then. Validates rate, channels and queueMs with the source's own rules and errors.
    const source = new AudioSource({ sampleRate, channels, queueMs: options.queueMs ?? 200, overflow: 'wait', deadlineMs, consumer: 'realtime', name: options.name })
    this.source = source
    this.#room = room
    this.#o = options
    this.#deadlineMs = deadlineMs
    this.#chunk = sampleRate / 100
    const ahead = options.finishAt === 'engine' ? 0 : Math.max(0, options.leadMs ?? 80) + (options.frameMs ?? 20)
    this.#drainSamples = Math.ceil(ahead / 10) * this.#chunk
    source.on('health', (e) => this.emit('health', e))
    this.#ready = this.#publish()
    // A failure is reported as an event; captures keep settling (the engine still plays out).
    this.#ready.catch(() => {})
  }

  async #publish(): Promise<Publisher | undefined> {
    const room = this.#room
    if (!room.localParticipant || room.isConnected === false) {
      let on: () => void = () => {}
      await Promise.race([new Promise<void>((resolve) => room.on('connected', (on = resolve) as never)), this.#closing])
      room.off('connected', on as never)
    }
    if (this.#closed) return undefined
    try {
      const { sampleRate: _r, channels: _c, queueMs: _q, deadlineMs: _d, name: _n, finishAt: _f, ...pub } = this.#o
      const p = await publishToLiveKit(this.source, room, { trackName: 'roomio_audio', ...pub, rtc: this.#o.rtc ?? agentsRtc })
      if (this.#closed) {
        await p.close()
        return undefined
      }
      this.#publisher = p
      // Silence first: the publisher's lead (a burst, when the peer's queue is empty) and the
      // start of the engine's underrun silence happen now, not with the first words, whose
      // burst a receiver's jitter buffer would shorten (seen: the first segment heard 23 ms short).
      await this.source.captureFrame(new Int16Array((this.#o.leadMs ?? 80) >= 10 ? this.#chunk * this.source.channels * 10 : this.#chunk * this.source.channels)).catch(() => undefined)
      for (const ev of ['sink-stalled', 'sink-recovered', 'sink-abandoned', 'connection'] as const) {
        p.on(ev, ((e: never) => this.emit(ev, e)) as never)
      }
      return p
    } catch (error) {
      this.emit('publish-failed', { error })
      return undefined
    }
  }

  /** The publisher (watchdog, recovery, `metrics()`), once the track is published. */
  get publisher(): Publisher | undefined {
    return this.#publisher
  }

  /** Resolves when the track is published (undefined if publishing failed or the output closed). */
  ready(): Promise<Publisher | undefined> {
    return this.#ready
  }

  /**
   * Queues a frame of the current segment. Waits for room in capstan's queue (bounded by
   * `deadlineMs`), never for the peer; resolves on every runtime outcome (cleared by a
   * barge-in, closed, deadline) and rejects only for a frame that cannot be this output's
   * audio (`ERR_FORMAT_MISMATCH`, `ERR_INVALID_FRAME`).
   */
  override async captureFrame(frame: { data: Int16Array; sampleRate: number; channels: number; samplesPerChannel?: number }): Promise<void> {
    if (this.#closed) return
    // The track is published before the first audio, so it is not played to nobody.
    await Promise.race([this.#ready, this.#closing])
    if (this.#closed) return
    void super.captureFrame(frame)
    let seg = this.#open
    if (!seg && this.#drainQueued) {
      // The silence behind the last segment (see #drain) would delay this one: drop it, once
      // the engine has applied that (the finish it was timing then comes early, by what is left).
      this.#drainQueued = false
      const m = this.source.metrics()
      if (m.waitingSamples === 0 && m.queued <= this.#drainSamples) {
        this.source.clearQueue()
        await this.source.waitForPlayout().catch(() => undefined)
      }
      seg = this.#open
    }
    if (!seg) {
      const m = this.source.metrics()
      // Delivery is FIFO: the segment starts after what is queued or still waiting to be.
      seg = { start: m.delivered + m.queued + m.waitingSamples, samples: 0, armed: false, startedAt: undefined, interrupted: false, reported: false }
      this.#open = seg
      this.#segments.push(seg)
    }
    this.#m.framesCaptured++
    const data = frame.data
    const ch = frame.channels
    if (!seg.armed && data instanceof Int16Array && frame.channels > 0) {
      // The audio up to the segment's first 10 ms (plus, with finishAt 'peer', the lead the
      // peer track plays behind the engine) is captured apart from the rest, and the native
      // playout wait then resolves exactly when the engine has delivered it: playbackStarted.
      const need = (this.#chunk + this.#drainSamples - seg.samples) * ch
      if (data.length >= need) {
        await this.#capture(seg, { data: data.subarray(0, need), sampleRate: frame.sampleRate, channels: ch })
        if (!seg.interrupted) this.#arm(seg)
        if (data.length > need) await this.#capture(seg, { data: data.subarray(need), sampleRate: frame.sampleRate, channels: ch })
        return
      }
    }
    await this.#capture(seg, frame)
  }

  async #capture(seg: Segment, frame: { data: Int16Array; sampleRate: number; channels: number }): Promise<void> {
    if (seg.interrupted) {
      this.#m.framesAfterClear++
      return
    }
    const o = await this.source.captureFrame({ data: frame.data, sampleRate: frame.sampleRate, channels: frame.channels }, { deadlineMs: this.#deadlineMs })
    seg.samples += o.acceptedSamples
  }

  #arm(seg: Segment): void {
    seg.armed = true
    this.source.waitForPlayout().then(
      () => this.#started(seg),
      () => {},
    )
  }

  /** The segment's first chunk was played (or the wait ended by a clear: then only if it was delivered). */
  #started(seg: Segment): void {
    if (seg.startedAt !== undefined || this.source.playoutPosition <= seg.start) return
    seg.startedAt = Date.now()
    this.#m.started++
    this.onPlaybackStarted(seg.startedAt)
  }

  /** Ends the segment: its remainder is padded to 10 ms, and it is reported when delivered. */
  override flush(): void {
    super.flush()
    const seg = this.#open
    if (!seg) return
    this.#open = undefined
    // Started now, not in the report chain, so the wait covers this segment and not audio
    // queued later; `at` is the delivered position when its last chunk was taken.
    const played = this.source
      .flush()
      .catch(() => undefined)
      .then(() => this.source.waitForPlayout().catch(() => undefined))
      .then(() => this.source.playoutPosition)
    this.#after(async () => {
      const at = await played
      await this.#drain(at)
      this.#finish(seg, at)
    })
  }

  /**
   * Waits, on the engine's clock, until what the publisher had handed to the peer track by
   * position `at` has played there: the publisher keeps the peer `leadMs` + `frameMs` ahead of
   * the engine, so the engine must deliver that much more (the next segment's audio, or, when
   * nothing is queued, silence captured here, which is no segment's) before the finish is true.
   */
  async #drain(at: number): Promise<void> {
    for (;;) {
      const gone = this.source.playoutPosition - at
      if (gone >= this.#drainSamples || this.#closed || this.source.closed) return
      const m = this.source.metrics()
      if (m.queued + m.waitingSamples === 0) {
        const n = Math.ceil((this.#drainSamples - gone) / this.#chunk) * this.#chunk
        this.#drainQueued = true
        await this.source.captureFrame(new Int16Array(n * this.source.channels), { deadlineMs: this.#deadlineMs }).catch(() => undefined)
        await this.source.waitForPlayout().catch(() => undefined)
        this.#drainQueued = false
        return
      }
      await this.source.waitForPlayout().catch(() => undefined)
      // A wait that delivered nothing (closed, cleared): stop rather than spin.
      if (this.source.playoutPosition - at === gone) return
    }
  }

  /**
   * Stops playback now: capstan's queue and waiting captures are cleared, and every pending
   * segment is reported finished (`interrupted: true`) at the position the engine reached.
   */
  override clearBuffer(): void {
    const pending = this.#segments.filter((s) => !s.reported && !s.interrupted)
    if (this.#open) {
      super.flush()
      this.#open = undefined
    }
    if (pending.length === 0) return
    for (const s of pending) s.interrupted = true
    this.source.clearQueue()
    // Resolves once the clear is applied: nothing more of these segments is delivered after `at`.
    const stopped = this.source
      .waitForPlayout()
      .catch(() => undefined)
      .then(() => this.source.playoutPosition)
    this.#after(async () => {
      const at = await stopped
      // What the peer track already had still plays: the finish comes when it has.
      await this.#drain(at)
      for (const s of pending) this.#finish(s, at)
    })
  }

  #after(f: () => Promise<void>): void {
    this.#tail = this.#tail.then(f).catch(() => {})
  }

  /** Reports `seg` finished at `at`, the source's delivered position when it stopped. */
  #finish(seg: Segment, at: number): void {
    if (seg.reported) return
    seg.reported = true
    const i = this.#segments.indexOf(seg)
    if (i >= 0) this.#segments.splice(i, 1)
    const played = Math.max(0, Math.min(at - seg.start, seg.samples))
    if (played > 0 && seg.startedAt === undefined) this.#started(seg)
    const rate = this.sampleRate as number
    if (played > 0) this.onPlaybackProgressed({ startedAt: seg.startedAt ?? Date.now(), offset: 0, duration: (played * 1000) / rate })
    this.#m.finished++
    if (seg.interrupted) this.#m.interrupted++
    this.onPlaybackFinished({ playbackPosition: played / rate, interrupted: seg.interrupted })
  }

  metrics(): CapstanAudioOutputMetrics {
    const { started, finished, interrupted, framesCaptured, framesAfterClear } = this.#m
    return {
      source: this.source.metrics(),
      publisher: this.#publisher?.metrics(),
      segments: { started, finished, interrupted },
      framesCaptured,
      framesAfterClear,
    }
  }

  /**
   * Unpublishes and closes the source (bounded by the publisher's timeouts). Pending
   * segments are reported finished (interrupted) so no `waitForPlayout()` is left waiting.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.clearBuffer()
    this.#closed = true
    this.#onClose()
    await this.#tail
    // A publish still under way closes its publisher itself when it sees #closed.
    await this.#publisher?.close()
    await this.source.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
