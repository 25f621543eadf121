import { EventEmitter } from 'node:events'

import { AudioFrame } from '../source/frame'
import { bounded } from '../internal/bounded'
import { CapstanError, describe, isCapstanError } from '../internal/errors'
import { settleFair, turn } from '../internal/fairness'
import type { EncodedSegment, EncodedStream, EncoderMetrics } from '../encode/encoded-stream'
import { AudioSource, endInput } from '../source/source'
import type { AudioTransport, ByteStreamWriter, IncomingByteStream } from './transport'
import type { CaptureOptions, SourceMetrics } from '../source/types'
import { asyncDispose } from '../internal/symbols'
import { LIMITS, positive, readOptions, whole } from '../internal/validate'
import { RECEIVER_DEFAULTS, RECEIVER_LIMITS, SENDER_DEFAULTS } from './defaults'

/** Wire names shared with LiveKit agents' avatar I/O (`DataStreamAudioOutput`/`Receiver`). */
export const AUDIO_STREAM_TOPIC = 'lk.audio_stream'
export const RPC_CLEAR_BUFFER = 'lk.clear_buffer'
export const RPC_PLAYBACK_FINISHED = 'lk.playback_finished'
export const RPC_PLAYBACK_STARTED = 'lk.playback_started'

/** The receiver's answer to a segment's end or an interruption, or what stood in for it. */
export interface PlaybackFinished {
  /** Seconds of the segment the receiver played (the sender's estimate unless `status` is `'finished'`). */
  playbackPosition: number
  interrupted: boolean
  /** `'finished'`: the receiver said so; `'timeout'`: it did not answer in time; `'peer-left'`; `'closed'`. */
  status: 'finished' | 'timeout' | 'peer-left' | 'closed'
}


export interface ByteStreamAudioSenderOptions {
  /** The receiver's identity. */
  destination: string
  /** Largest chunk written, in bytes; chunks hold whole sample frames. Default 15,000. */
  chunkBytes?: number
  /** How long `clearBuffer()` waits for the receiver's playback-finished answer. Default 2,000 ms. */
  clearTimeoutMs?: number
  /** Watchdog on each transport call (open, write, close). Default 5,000 ms. */
  writeTimeoutMs?: number
  /** Bytes the sender may hold unsent (then the source backs up under its own policy). Default 1 MiB. */
  queueBytes?: number
}

export interface ByteStreamAudioSenderEvents {
  'playback-finished': [PlaybackFinished]
  'playback-started': []
  /** The destination left the transport: pending waits settle `'peer-left'`. */
  'peer-left': [{ identity: string }]
  /** A transport call failed or timed out (`ERR_TRANSPORT`); the segment's remaining bytes are counted unsent. */
  error: [CapstanError]
}

export interface ByteStreamAudioSenderMetrics {
  streams: number
  chunksSent: number
  bytesSent: number
  /** Bytes the transport did not take (a failed or timed-out write; the rest of that segment). */
  unsentBytes: number
  failures: number
  clears: number
  playbackFinished: number
  /** `lk.playback_finished` answers refused as malformed (not an object, a position that is not a finite number >= 0, `interrupted` not a boolean, over 64 KiB). */
  invalidAnswers: number
  /** The PCM stream between the source and the transport: produced = read + queued + dropped + cleared. */
  encoder: EncoderMetrics
}

/**
 * Sends a source's audio to a receiver as LiveKit agents' avatars expect it: one byte
 * stream per segment on `lk.audio_stream` with `sample_rate`/`num_channels` attributes,
 * raw s16le chunks of at most `chunkBytes` holding whole sample frames, the stream closed
 * at the segment's end; `clearBuffer()` interrupts (`lk.clear_buffer`), and the
 * receiver's `lk.playback_finished` answers. The source (realtime or unpaced) feeds it
 * after its native processors; a slow transport backs the source up under its own policy.
 */
export class ByteStreamAudioSender extends EventEmitter<ByteStreamAudioSenderEvents> {
  readonly destination: string
  readonly #source: AudioSource
  readonly #transport: AudioTransport
  readonly #stream: EncodedStream
  readonly #chunkBytes: number
  readonly #frameBytes: number
  readonly #clearMs: number
  readonly #callMs: number
  readonly #off: Array<() => void> = []
  readonly #waiting: Array<(p: PlaybackFinished) => void> = []
  #writer: ByteStreamWriter | undefined
  #failedSegment = -1
  /** Sample frames written on the current stream: a count, so 1 s reads 1, not 0.9999999999999999. */
  #pushedFrames = 0
  #closed = false
  readonly #pump: Promise<void>
  readonly #m = { streams: 0, chunksSent: 0, bytesSent: 0, unsentBytes: 0, failures: 0, clears: 0, playbackFinished: 0, invalidAnswers: 0 }

  constructor(source: AudioSource, transport: AudioTransport, options: ByteStreamAudioSenderOptions) {
    super()
    const o = readOptions('ByteStreamAudioSender', options, ['destination', 'chunkBytes', 'clearTimeoutMs', 'writeTimeoutMs', 'queueBytes'] as const)
    if (typeof o.destination !== 'string' || o.destination === '') {
      throw new CapstanError('ERR_INVALID_OPTION', 'destination (the receiver identity) is required')
    }
    this.#frameBytes = 2 * source.channels
    this.#chunkBytes = whole('chunkBytes', o.chunkBytes, SENDER_DEFAULTS.chunkBytes, this.#frameBytes, 2 ** 31)
    this.#clearMs = positive('clearTimeoutMs', o.clearTimeoutMs, SENDER_DEFAULTS.clearTimeoutMs)
    this.#callMs = positive('writeTimeoutMs', o.writeTimeoutMs, SENDER_DEFAULTS.writeTimeoutMs)
    this.destination = o.destination
    this.#source = source
    this.#transport = transport
    this.#stream = source.encode({ format: 'pcm-s16le', queueBytes: o.queueBytes as number | undefined })
    this.#off.push(
      // A transport that ignores off() may still call these after close(): they refuse.
      transport.handle(RPC_PLAYBACK_FINISHED, (payload, from) => {
        if (from !== this.destination || this.#closed) return 'reject'
        const p = parsePlaybackFinished(payload)
        if (!p) {
          this.#m.invalidAnswers++
          return 'reject'
        }
        this.#finished({ ...p, status: 'finished' })
        return 'ok'
      }),
      transport.handle(RPC_PLAYBACK_STARTED, (_payload, from) => {
        if (from !== this.destination || this.#closed) return 'reject'
        this.emit('playback-started')
        return 'ok'
      }),
      transport.onPeerLeft((identity) => {
        if ((identity !== this.destination && identity !== '*') || this.#closed) return
        this.emit('peer-left', { identity: this.destination })
        this.#settleAll({ playbackPosition: this.#pushedSeconds(), interrupted: true, status: 'peer-left' })
      }),
    )
    this.#pump = this.#run()
  }

  #pushedSeconds(): number {
    return this.#pushedFrames / this.#source.outputSampleRate
  }

  async #run(): Promise<void> {
    const rate = this.#source.outputSampleRate
    for await (const c of this.#stream.chunks({ maxBytes: this.#chunkBytes })) {
      if (c.bytes.length > 0) {
        if (c.segment === this.#failedSegment) this.#m.unsentBytes += c.bytes.length
        else {
          try {
            if (!this.#writer) {
              this.#writer = await bounded(
                this.#transport.openStream({
                  to: this.destination,
                  topic: AUDIO_STREAM_TOPIC,
                  attributes: { sample_rate: String(rate), num_channels: String(this.#source.channels) },
                  name: `AUDIO_${c.segment}`,
                }),
                this.#callMs,
                'open byte stream',
              )
              this.#m.streams++
              this.#pushedFrames = 0
            }
            // Whole pieces up to chunkBytes; a single piece bigger than that (very high rates)
            // is split at sample-frame boundaries.
            const step = this.#chunkBytes - (this.#chunkBytes % this.#frameBytes)
            for (let off = 0; off < c.bytes.length; off += step) {
              const part = c.bytes.subarray(off, Math.min(c.bytes.length, off + step))
              await bounded(this.#writer.write(part), this.#callMs, 'byte stream write')
              this.#m.chunksSent++
              this.#m.bytesSent += part.length
              this.#pushedFrames += part.length / this.#frameBytes
            }
          } catch (e) {
            this.#fail(c.segment, e)
            this.#m.unsentBytes += c.bytes.length
          }
        }
      }
      if (c.end) await this.#endStream()
    }
    await this.#endStream()
  }

  #fail(segment: number, e: unknown): void {
    this.#failedSegment = segment
    this.#writer = undefined
    this.#m.failures++
    const err = isCapstanError(e) ? e : new CapstanError('ERR_TRANSPORT', `byte stream: ${describe(e)}`, { cause: e })
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }

  async #endStream(): Promise<void> {
    const w = this.#writer
    this.#writer = undefined
    if (!w) return
    try {
      await bounded(w.close(), this.#callMs, 'close byte stream')
    } catch (e) {
      this.#fail(-2, e)
    }
  }

  #finished(p: PlaybackFinished): void {
    this.#m.playbackFinished++
    this.#waiting.shift()?.(p)
    this.emit('playback-finished', p)
  }

  #settleAll(p: PlaybackFinished): void {
    for (const r of this.#waiting.splice(0)) r(p)
  }

  /** Ends the segment after everything captured so far: the byte stream closes once it is sent. */
  flush(opts?: CaptureOptions): Promise<EncodedSegment> {
    return this.#stream.segment(opts)
  }

  /** The next playback-finished answer (or what stands in for it: peer left, sender closed). */
  waitForPlayback(): Promise<PlaybackFinished> {
    // Settled at once, so through the turn's budget: a loop of these must not starve timers.
    if (this.#closed) return settleFair({ playbackPosition: this.#pushedSeconds(), interrupted: true, status: 'closed' })
    return this.#addWaiter()[0]
  }

  /** A waiter for the next answer, and how to take exactly that waiter back. */
  #addWaiter(): [Promise<PlaybackFinished>, () => void] {
    let resolve!: (p: PlaybackFinished) => void
    const promise = new Promise<PlaybackFinished>((r) => (resolve = r))
    this.#waiting.push(resolve)
    const cancel = () => {
      const i = this.#waiting.indexOf(resolve)
      if (i >= 0) this.#waiting.splice(i, 1)
    }
    return [promise, cancel]
  }

  /**
   * Interrupts: drops what is queued (waiting captures settle `'cleared'`, counted), the
   * bytes not yet sent (counted `encoder.clearedBytes`), ends the current byte stream and
   * asks the receiver to clear its buffer. Resolves with its playback-finished answer, or
   * after `clearTimeoutMs` without one with `status: 'timeout'` and the sent duration.
   */
  async clearBuffer(): Promise<PlaybackFinished> {
    // A transport that refuses at once settles this at once: take the turn's budget first.
    const start = turn()
    if (start) await start
    this.#m.clears++
    this.#source.clearQueue()
    this.#stream.clear()
    void this.#stream.segment().catch(() => {})
    // This call's own waiter: taken back (never another's) when no answer is coming.
    const [answer, cancel] = this.#closed ? [this.waitForPlayback(), () => {}] : this.#addWaiter()
    const fallback = (): PlaybackFinished => ({ playbackPosition: this.#pushedSeconds(), interrupted: true, status: 'timeout' })
    try {
      await bounded(
        Promise.resolve().then(() => this.#transport.call({ to: this.destination, method: RPC_CLEAR_BUFFER, payload: '', timeoutMs: this.#clearMs })),
        this.#clearMs,
        RPC_CLEAR_BUFFER,
      )
    } catch (e) {
      this.#fail(-3, e)
      cancel()
      return fallback()
    }
    let t: NodeJS.Timeout | undefined
    const timedOut = new Promise<PlaybackFinished>((r) => (t = setTimeout(() => r(fallback()), this.#clearMs)))
    const p = await Promise.race([answer, timedOut])
    clearTimeout(t)
    // Timed out: its waiter must not take the next answer, which belongs to a later wait.
    cancel()
    return p
  }

  metrics(): ByteStreamAudioSenderMetrics {
    return { ...this.#m, encoder: this.#stream.metrics() }
  }

  /** Ends the stream (the last segment is sent), stops answering RPCs, settles waits `'closed'`. */
  async close(): Promise<void> {
    const start = turn()
    if (start) await start
    if (this.#closed) return
    this.#closed = true
    await this.#stream.finish().catch(() => {})
    await this.#pump.catch(() => {})
    for (const off of this.#off) off()
    this.#settleAll({ playbackPosition: this.#pushedSeconds(), interrupted: true, status: 'closed' })
  }
  [asyncDispose](): Promise<void> {
    return this.close()
  }

}

/** Byte streams a receiver holds waiting to be played; past it the newest are cancelled. */
const MAX_PENDING_STREAMS = RECEIVER_LIMITS.maxPendingStreams

/** A decimal integer attribute, strictly ('48000', not '0x1F40', ' 48000' or '4.8e4'). */
function strictInt(v: unknown): number {
  return typeof v === 'string' && /^[1-9][0-9]{0,8}$/.test(v) ? Number(v) : Number.NaN
}

/** Tells a stream nobody will read it (its iterator's return()), whatever it does then. */
function cancel(s: IncomingByteStream): void {
  try {
    cancelIterator(s[Symbol.asyncIterator]())
  } catch {
    // a stream that cannot even be iterated is done all the same
  }
}

function cancelIterator(it: AsyncIterator<unknown>): void {
  try {
    const r = it.return?.() as unknown
    if (r instanceof Promise) r.catch(() => undefined)
  } catch {
    // an iterator whose return() throws is done all the same
  }
}


/** The largest `lk.playback_finished` payload read. */
const MAX_ANSWER_BYTES = RECEIVER_LIMITS.maxAnswerBytes

/**
 * A receiver's `lk.playback_finished` payload, parsed strictly: an object with
 * `playback_position` a finite number >= 0 (seconds) and `interrupted` a boolean (absent:
 * false). Anything else is undefined: refused and counted, never a throw in the handler.
 */
function parsePlaybackFinished(payload: unknown): { playbackPosition: number; interrupted: boolean } | undefined {
  if (typeof payload !== 'string' || payload.length > MAX_ANSWER_BYTES) return undefined
  let p: unknown
  try {
    p = JSON.parse(payload)
  } catch {
    return undefined
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return undefined
  const { playback_position: pos, interrupted } = p as { playback_position?: unknown; interrupted?: unknown }
  if (typeof pos !== 'number' || !Number.isFinite(pos) || pos < 0) return undefined
  if (interrupted !== undefined && typeof interrupted !== 'boolean') return undefined
  return { playbackPosition: pos, interrupted: interrupted === true }
}

/** Marks the end of a segment in a receiver's output (after its last frame). */
export class AudioSegmentEnd {
  constructor(
    readonly index: number,
    /** The sender interrupted it (`lk.clear_buffer`), or its stream ended without a trailer. */
    readonly interrupted: boolean,
  ) {}
}

export interface ByteStreamAudioReceiverOptions {
  /** The only identity whose streams and calls are accepted (others are ignored and counted). */
  sender: string
  /** Audio received but not yet read, in ms; a full queue stops reading the stream. Default 5,000. */
  queueMs?: number
  /** A stream with no chunk and no end for this long ends its segment. Default 10,000 ms. */
  idleTimeoutMs?: number
  /** Attempts of each playback notification. Default 3. */
  rpcAttempts?: number
  /** Timeout of each notification attempt. Default 5,000 ms. */
  rpcTimeoutMs?: number
}

export interface ByteStreamAudioReceiverEvents {
  'clear-buffer': []
  /** A stream without usable `sample_rate`/`num_channels` (skipped) or of another format. */
  'stream-error': [CapstanError]
  'peer-left': [{ identity: string }]
}

export interface ByteStreamAudioReceiverMetrics {
  streams: number
  /** Streams from identities other than `sender`, ignored. */
  ignoredStreams: number
  /** Streams skipped for bad attributes or a different format. */
  rejectedStreams: number
  bytesReceived: number
  /** Bytes of skipped streams and of streams' tails after a clear. */
  discardedBytes: number
  segments: number
  clears: number
  /** Streams cancelled unplayed: beyond `MAX_PENDING_STREAMS` waiting, or still waiting at close. */
  droppedStreams: number
  /** The reassembly queue (samples): captured = delivered + queued + dropped + cleared. */
  queue: SourceMetrics | undefined
}

/**
 * Receives byte-stream audio from one sender (LiveKit agents' `DataStreamAudioOutput`, or
 * `ByteStreamAudioSender`) as exact 10 ms `AudioFrame`s and `AudioSegmentEnd` markers,
 * through a bounded native queue. Answers `lk.clear_buffer`; `notifyPlaybackFinished()` and
 * `notifyPlaybackStarted()` answer the sender.
 */
export class ByteStreamAudioReceiver extends EventEmitter<ByteStreamAudioReceiverEvents> implements AsyncIterable<AudioFrame | AudioSegmentEnd> {
  readonly sender: string
  readonly #transport: AudioTransport
  readonly #queueMs: number
  readonly #idleMs: number
  readonly #attempts: number
  readonly #rpcMs: number
  readonly #off: Array<() => void> = []
  readonly #incoming: IncomingByteStream[] = []
  #arrived: (() => void) | undefined
  #source: AudioSource | undefined
  #format: { rate: number; channels: number } | undefined
  /** Segment ends not yet yielded, and a wake for an iterator parked on audio. */
  readonly #ends: AudioSegmentEnd[] = []
  #endArrived: (() => void) | undefined
  #formatArrived: (() => void) | undefined
  #cleared = false
  #closed = false
  #reading = false
  #frames: AsyncIterator<AudioFrame> | undefined
  #pending: Promise<IteratorResult<AudioFrame>> | undefined
  readonly #loop: Promise<void>
  readonly #m = { streams: 0, ignoredStreams: 0, rejectedStreams: 0, bytesReceived: 0, discardedBytes: 0, segments: 0, clears: 0, droppedStreams: 0 }
  /** Aborts a capture waiting for room when the receiver closes. */
  readonly #abort = new AbortController()
  #closing: Promise<void> | undefined

  constructor(transport: AudioTransport, options: ByteStreamAudioReceiverOptions) {
    super()
    const o = readOptions('ByteStreamAudioReceiver', options, ['sender', 'queueMs', 'idleTimeoutMs', 'rpcAttempts', 'rpcTimeoutMs'] as const)
    if (typeof o.sender !== 'string' || o.sender === '') {
      throw new CapstanError('ERR_INVALID_OPTION', 'sender (the sender identity) is required')
    }
    this.sender = o.sender
    this.#transport = transport
    // Checked here, not when the first stream arrives: a bad value is the caller's bug.
    this.#queueMs = whole('queueMs', o.queueMs, RECEIVER_DEFAULTS.queueMs, LIMITS.chunkMs, LIMITS.maxQueueMs, LIMITS.chunkMs)
    this.#idleMs = whole('idleTimeoutMs', o.idleTimeoutMs, RECEIVER_DEFAULTS.idleTimeoutMs, 1, LIMITS.maxDeadlineMs)
    this.#attempts = whole('rpcAttempts', o.rpcAttempts, RECEIVER_DEFAULTS.rpcAttempts, 1, RECEIVER_LIMITS.maxRpcAttempts)
    this.#rpcMs = whole('rpcTimeoutMs', o.rpcTimeoutMs, RECEIVER_DEFAULTS.rpcTimeoutMs, 1, LIMITS.maxDeadlineMs)
    this.#off.push(
      transport.onStream(AUDIO_STREAM_TOPIC, (s) => {
        if (this.#closed) {
          // A transport that ignored off(): the stream is cancelled, not left queueing.
          cancel(s)
          return
        }
        let from: unknown
        try {
          from = s.from
        } catch {
          from = undefined
        }
        if (from !== this.sender) {
          // Read and thrown away (counted), so an unread stream holds no memory.
          this.#m.ignoredStreams++
          void this.#discard(s).catch(() => {})
          return
        }
        if (this.#incoming.length >= MAX_PENDING_STREAMS) {
          // Bounded: a sender opening streams faster than they play loses the newest, counted.
          this.#m.droppedStreams++
          cancel(s)
          return
        }
        this.#incoming.push(s)
        this.#kick()
      }),
      // A transport that ignores off() may still call these after close(): they refuse.
      transport.handle(RPC_CLEAR_BUFFER, (_payload, from) => {
        if (from !== this.sender || this.#closed) return 'reject'
        this.#clear()
        return 'ok'
      }),
      transport.onPeerLeft((identity) => {
        if ((identity !== this.sender && identity !== '*') || this.#closed) return
        this.emit('peer-left', { identity: this.sender })
      }),
    )
    // Never an unhandled rejection: a failure here ends reception, and close() still works.
    this.#loop = this.#receive().catch((e: unknown) => this.#reject(`receiver stopped: ${describe(e)}`))
  }

  #kick(): void {
    const w = this.#arrived
    this.#arrived = undefined
    w?.()
  }

  #clear(): void {
    this.#m.clears++
    this.#cleared = true
    this.#source?.clearQueue()
    this.emit('clear-buffer')
  }

  #reject(message: string, code: 'ERR_INVALID_STREAM' | 'ERR_FORMAT_MISMATCH' = 'ERR_INVALID_STREAM'): void {
    this.#m.rejectedStreams++
    if (this.listenerCount('stream-error') > 0) this.emit('stream-error', new CapstanError(code, message))
  }

  /** Streams one at a time, in order: the sender never overlaps them. */
  async #receive(): Promise<void> {
    while (!this.#closed) {
      const s = this.#incoming.shift()
      if (!s) {
        await new Promise<void>((r) => (this.#arrived = r))
        continue
      }
      this.#m.streams++
      // One bad stream (attributes that throw, an iterator that throws anything) is that
      // stream's failure, counted; the receiver goes on with the next.
      try {
        await this.#one(s)
      } catch (e) {
        this.#reject(`byte stream failed: ${describe(e)}; skipped`)
        cancel(s)
      }
    }
    // Closed: streams still waiting are cancelled (a LiveKit reader left open keeps queueing).
    for (const s of this.#incoming.splice(0)) {
      this.#m.droppedStreams++
      cancel(s)
    }
  }

  /** One stream from the sender: checked, then played (or skipped, counted). */
  async #one(s: IncomingByteStream): Promise<void> {
    const attrs = (s.attributes ?? {}) as Record<string, unknown>
    const rate = strictInt(attrs.sample_rate)
    const channels = strictInt(attrs.num_channels)
    if (!Number.isInteger(rate) || !Number.isInteger(channels) || rate < LIMITS.minSampleRate || rate > LIMITS.maxSampleRate || rate % 100 !== 0 || channels < 1 || channels > LIMITS.maxChannels) {
      let shown: string
      try {
        shown = JSON.stringify(attrs).slice(0, 200)
      } catch {
        shown = describe(attrs)
      }
      this.#reject(`byte stream without usable sample_rate/num_channels attributes (${shown}); skipped`)
      await this.#discard(s)
      return
    }
    if (this.#format && (this.#format.rate !== rate || this.#format.channels !== channels)) {
      this.#reject(`byte stream of ${rate} Hz / ${channels} ch, the receiver plays ${this.#format.rate} Hz / ${this.#format.channels} ch; skipped`, 'ERR_FORMAT_MISMATCH')
      await this.#discard(s)
      return
    }
    if (!this.#source) {
      this.#format = { rate, channels }
      this.#source = new AudioSource({ sampleRate: rate, channels, consumer: 'pull', queueMs: Math.max(10, Math.round(this.#queueMs / 10) * 10), overflow: 'wait', deadlineMs: LIMITS.maxDeadlineMs })
      const w = this.#formatArrived
      this.#formatArrived = undefined
      w?.()
    }
    await this.#play(s, this.#source, 2 * channels)
  }

  async #discard(s: IncomingByteStream): Promise<void> {
    try {
      for await (const b of s) this.#m.discardedBytes += b.length
    } catch {
      // A stream being thrown away may break too; nothing else to do with it.
    }
  }

  async #play(s: IncomingByteStream, source: AudioSource, frameBytes: number): Promise<void> {
    this.#cleared = false
    // A quarter of the queue, in whole sample frames.
    const quarter = Math.floor((source.sampleRate * this.#queueMs) / 4000) * frameBytes
    const step = Math.max(frameBytes, quarter)
    const minBytes = (source.sampleRate / 100) * frameBytes
    const held: Uint8Array[] = []
    let heldBytes = 0
    let ended = false
    const it = s[Symbol.asyncIterator]()
    for (;;) {
      // The next chunk, unless a newer stream supersedes this one (its trailer was lost) or
      // it stays idle too long.
      let t: NodeJS.Timeout | undefined
      const next = it.next()
      const idle = new Promise<'idle'>((r) => (t = setTimeout(() => r('idle'), this.#idleMs)))
      const superseded = new Promise<'superseded'>((r) => {
        // Closed while this stream waited for room: close() has already looked for a race to end.
        if (this.#incoming.length > 0 || this.#closed) r('superseded')
        else this.#arrived = () => r('superseded')
      })
      // A stream that breaks (its sender vanished mid-segment) ends the segment, interrupted.
      const r = await Promise.race([next, idle, superseded]).catch((e: unknown) => {
        this.#reject(`byte stream broke: ${describe(e)}`)
        return 'broken' as const
      })
      clearTimeout(t)
      if (r === 'idle' || r === 'superseded' || r === 'broken' || this.#closed) {
        // Abandoned: the chunk the leftover read brings is counted, and the stream cancelled.
        if (r !== 'broken') {
          void next.then(
            (x) => {
              if (!x.done) {
                this.#m.bytesReceived += x.value.length
                this.#m.discardedBytes += x.value.length
              }
            },
            () => {},
          )
          if (r !== 'idle' && r !== 'superseded' && !r.done) {
            this.#m.bytesReceived += r.value.length
            this.#m.discardedBytes += r.value.length
          }
        }
        cancelIterator(it)
        break
      }
      if (r.done) {
        ended = true
        break
      }
      const chunk = r.value
      this.#m.bytesReceived += chunk.length
      if (this.#cleared || this.#closed) {
        this.#m.discardedBytes += chunk.length
        continue
      }
      // Tiny chunks (a peer that writes a byte at a time) are gathered up to 10 ms of audio
      // before they are captured: one capture per chunk would cost more than real time.
      held.push(chunk)
      heldBytes += chunk.length
      if (heldBytes < minBytes) continue
      const bytes = held.length === 1 ? held[0] : join(held, heldBytes)
      held.length = 0
      heldBytes = 0
      const whole = bytes.length - (bytes.length % frameBytes)
      if (whole < bytes.length) {
        held.push(bytes.slice(whole))
        heldBytes = bytes.length - whole
      }
      if (whole === 0) continue
      // In slices of at most a quarter of the queue, each an aligned copy (byte streams hand
      // over chunks at any offset) captured before the next is made: a peer's huge chunk
      // costs neither a copy of itself nor a blocked event loop, only its turn in the queue.
      let off = 0
      for (; off < whole && !this.#cleared && !this.#closed; off += step) {
        const samples = new Int16Array(bytes.slice(off, Math.min(whole, off + step)).buffer)
        // Aborted (and counted) if the receiver closes while it waits for room.
        await source.captureFrame(samples, { signal: this.#abort.signal })
        const next = turn()
        if (next) await next
      }
      // Cleared or closed mid-chunk: what was not offered is counted, not lost.
      if (off < whole) this.#m.discardedBytes += whole - off
    }
    // What was gathered and not yet captured: its whole sample frames are audio like the rest.
    const rest = held.length === 1 ? held[0] : join(held, heldBytes)
    const whole = rest.length - (rest.length % frameBytes)
    if (whole > 0 && !this.#cleared && !this.#closed) {
      await source.captureFrame(new Int16Array(rest.slice(0, whole).buffer), { signal: this.#abort.signal })
      this.#m.discardedBytes += rest.length - whole
    } else this.#m.discardedBytes += rest.length
    // Closed: the reader ends after what is queued; nothing waits for it to be played.
    if (this.#closed) return
    if (!this.#cleared) await source.flush()
    await source.waitForPlayout({ signal: this.#abort.signal }).catch(() => undefined)
    if (this.#closed) return
    // A clear while the segment's tail was still queued interrupts it too.
    const interrupted = this.#cleared || !ended
    this.#ends.push(new AudioSegmentEnd(this.#m.segments++, interrupted))
    const w = this.#endArrived
    this.#endArrived = undefined
    w?.()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<AudioFrame | AudioSegmentEnd> {
    // Every start counts against the turn's budget (a loop over a closed receiver ends at once).
    const start = turn()
    if (start) await start
    if (this.#reading) throw new CapstanError('ERR_INVALID_STATE', 'this receiver already has a reader')
    this.#reading = true
    try {
      while (!this.#source) {
        if (this.#closed) return
        await new Promise<void>((r) => (this.#formatArrived = r))
      }
      // Kept across iterations: a reader that breaks out and comes back resumes the same
      // frames() reader, including a read still in flight.
      this.#frames ??= this.#source.frames()[Symbol.asyncIterator]()
      for (;;) {
        const end = this.#ends.shift()
        if (end) {
          yield end
          continue
        }
        this.#pending ??= this.#frames.next()
        const endSignal = new Promise<'end'>((r) => (this.#endArrived = () => r('end')))
        const r = await Promise.race([this.#pending, endSignal])
        if (r === 'end') continue
        this.#pending = undefined
        if (r.done) return
        yield r.value
      }
    } finally {
      this.#reading = false
    }
  }

  async #notify(method: string, payload: string): Promise<boolean> {
    const start = turn()
    if (start) await start
    for (let i = 0; i < this.#attempts; i++) {
      try {
        // Bounded here too: a transport whose connection is gone may not honour its own timeout.
        const answer = await bounded(this.#transport.call({ to: this.sender, method, payload, timeoutMs: this.#rpcMs }), this.#rpcMs + 500, method)
        return answer === 'ok'
      } catch {
        if (this.#closed) return false
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    return false
  }

  /** Tells the sender how much of the segment was played; true once it acknowledged. */
  notifyPlaybackFinished(o: { playbackPosition: number; interrupted: boolean }): Promise<boolean> {
    return this.#notify(RPC_PLAYBACK_FINISHED, JSON.stringify({ playback_position: o.playbackPosition, interrupted: o.interrupted }))
  }

  notifyPlaybackStarted(): Promise<boolean> {
    return this.#notify(RPC_PLAYBACK_STARTED, '')
  }

  metrics(): ByteStreamAudioReceiverMetrics {
    return { ...this.#m, queue: this.#source?.metrics() }
  }

  /**
   * Stops receiving and answering; a reader ends after what was already queued. Settles
   * whatever the sender does (an open stream is cancelled); every call waits for the same
   * end.
   */
  async close(): Promise<void> {
    // Settled at once after the first: through the turn's budget, so a loop of these
    // cannot starve timers.
    const start = turn()
    if (start) await start
    this.#closing ??= this.#close()
    return this.#closing
  }
  [asyncDispose](): Promise<void> {
    return this.close()
  }


  async #close(): Promise<void> {
    this.#closed = true
    for (const off of this.#off) off()
    this.#abort.abort()
    this.#kick()
    const w = this.#formatArrived
    this.#formatArrived = undefined
    w?.()
    if (this.#source) endInput(this.#source)
    await this.#loop.catch(() => {})
  }
}

export type { AudioTransport, ByteStreamWriter, IncomingByteStream } from './transport'

/** `parts` end to end, `bytes` long. */
function join(parts: readonly Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes)
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}
