import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'

import { enrollEncoder, retireEncoder, type CensusEncoder } from '../internal/census'
import { CapstanError, native } from '../internal/errors'
import { hold, release } from '../internal/engine'
import { settleFair, turn } from '../internal/fairness'
import type { NativeEncoded } from '../internal/binding'
import type { CaptureOptions, CaptureOutcome } from '../source/types'
import { Parked } from '../internal/wake'
import { READ_DEFAULTS } from './defaults'

export type EncodeFormat = 'ogg-opus' | 'mp3' | 'wav' | 'pcm-s16le' | 'pcm-f32le'

/** How to encode; every option is checked natively (`ERR_INVALID_OPTION`, option named). */
export interface EncodeOptions {
  format: EncodeFormat
  /** Bits per second (Opus 6000..510000, libopus chooses if unset; MP3 a LAME step, default 64000). */
  bitrate?: number
  /** Opus: 0..10 (libopus default if unset). */
  complexity?: number
  /** Opus: what libopus tunes for. Default `'voip'`. */
  application?: 'voip' | 'audio' | 'lowdelay'
  /** Opus frame: 10, 20, 40 or 60 ms. Default 20. */
  frameMs?: number
  /** Opus audio per Ogg page, a whole number of frames. Default one frame. */
  pageMs?: number
  /** Opus discontinuous transmission. Default false. */
  dtx?: boolean
  /** Opus in-band forward error correction (tuned for `packetLossPercent`). Default false. */
  fec?: boolean
  packetLossPercent?: number
  /** Opus codec rate (8000, 12000, 16000, 24000, 48000); default the source's, else 48000. */
  sampleRate?: number
  /** MP3 VBR quality 0 (best) ..9; unset encodes CBR at `bitrate`. */
  vbrQuality?: number
  /** MP3 LAME algorithm quality 0 (best) ..9. */
  quality?: number
  /** Bytes the output may hold unread. Default 1 MiB. */
  queueBytes?: number
  /** When the output is full: `'wait'` (default: stop taking audio, the source backs up), `'drop-oldest'`, `'drop-newest'`. */
  overflow?: 'wait' | 'drop-oldest' | 'drop-newest'
  /** Realtime sources: encode silence for underrun ticks so the stream keeps wall-clock time. Default false. */
  fillGaps?: boolean
}

/** One finished segment: a complete, playable file. */
export interface EncodedSegment {
  index: number
  /** Samples per channel of audio it holds (padding excluded). */
  samples: number
  durationMs: number
  /** Bytes the encoder produced for it (some may have been dropped by the overflow policy). */
  bytes: number
  /** Bytes to write at offset 0 once complete, for outputs that can seek (WAV sizes, MP3 LAME tag). */
  headerPatch?: Uint8Array
  /** The stream ended with it (`finish()`, the source closing, or a new sink). */
  last: boolean
  /** From its first audio reaching the encoder to its first audio page queued. */
  firstPieceMs?: number
}

/** Bytes as `chunks()` yields them: whole pages/frames, and where a segment ends. */
export interface EncodedChunk {
  bytes: Uint8Array
  /** The segment these bytes belong to. */
  segment: number
  /** Set on the last chunk of a segment. */
  end?: EncodedSegment
}

/** Bytes obey `producedBytes === readBytes + queuedBytes + droppedBytes + clearedBytes`. */
export interface EncoderMetrics {
  format: EncodeFormat
  producedBytes: number
  readBytes: number
  queuedBytes: number
  droppedBytes: number
  /** Unread bytes `clear()` discarded (an interruption). */
  clearedBytes: number
  /** Pages (Ogg), frame groups (MP3) or blocks (WAV/PCM) produced and dropped. */
  pieces: number
  droppedPieces: number
  segments: number
  encodedSamples: number
  /** Delivered after the stream ended: nothing encoded them. */
  ignoredSamples: number
  errors: number
  /** Encoder calls on the caller's thread (only `close()` ending a stream can make one; pushes never do). */
  callerEncodes: number
  encodeUs: { p50: number; p99: number; max: number }
  firstPieceMs?: number
}

export interface EncodedStreamEvents {
  segment: [EncodedSegment]
  /** Encoder failures (`ERR_ENCODER`); emitted only while someone listens, always counted. */
  error: [CapstanError]
}

/** What an encoded stream needs of its source (closures the source hands it, not the source). */
export interface EncodeHost {
  readonly sampleRate: number
  /** The source's `name`, labelling exported metrics. */
  readonly name: string
  /** `flush()` through the encoder's cut: pads the remainder and marks the segment's end. */
  cut(native: NativeEncoded, last: boolean, opts?: CaptureOptions): Promise<CaptureOutcome>
  /** The stream ended: the source may let go of it. */
  detach(s: EncodedStream): void
}

let make: (n: NativeEncoded, format: EncodeFormat, host: EncodeHost) => EncodedStream
let wake: (s: EncodedStream) => void
/** Proves a construction comes from this module (`AudioSource.encode()`), not user code. */
const TOKEN = Symbol('EncodedStream')

/** A source's new encoded stream (`AudioSource.encode()`). */
export function encodedStream(n: NativeEncoded, format: EncodeFormat, host: EncodeHost): EncodedStream {
  return make(n, format, host)
}

/** The source's `encoded` event: bytes for a waiting reader, segment ends, errors. */
export function wakeEncoded(s: EncodedStream): void {
  wake(s)
}


/**
 * An encoder's output: an async iterable of `Uint8Array` (whole pages or frames), also a
 * Node `Readable` and a Web `ReadableStream`. Encoding runs on engine threads; the output
 * queue is bounded (`queueBytes`, `overflow`). One reader at a time.
 */
export class EncodedStream extends EventEmitter<EncodedStreamEvents> implements AsyncIterable<Uint8Array> {
  readonly format: EncodeFormat
  readonly #native: NativeEncoded
  readonly #host: EncodeHost
  readonly #reader = new Parked()
  #reading = false
  #segment = 0
  #ended = false
  readonly #pending: Array<(s: EncodedSegment) => void> = []
  #lastSegment: EncodedSegment | undefined
  readonly #census: CensusEncoder

  static {
    make = (n, format, host) => new EncodedStream(TOKEN, n, format, host)
    wake = (s) => s.#wake()
  }

  /** Made by `AudioSource.encode()` or `AudioEncoder` only. */
  private constructor(token: symbol, nativeEncoded: NativeEncoded, format: EncodeFormat, host: EncodeHost) {
    if (token !== TOKEN) throw new CapstanError('ERR_INVALID_STATE', 'an EncodedStream is made by AudioSource.encode() or AudioEncoder')
    super()
    this.#native = nativeEncoded
    this.format = format
    this.#host = host
    // The census keeps the native handle and its name, never this stream: one dropped
    // unread can be collected (its unread bytes are then discarded and counted).
    this.#census = {
      key: `${host.name}\u0000${format}`,
      metrics: () => nativeEncoded.metrics(),
      discard: () => void nativeEncoded.clear(),
    }
    enrollEncoder(this, this.#census)
  }

  #segmentOf(s: { index: number; samples: number; bytes: number; headerPatch?: Uint8Array | null; last: boolean; firstPieceMs?: number | null }): EncodedSegment {
    const seg: EncodedSegment = {
      index: s.index,
      samples: s.samples,
      durationMs: (s.samples * 1000) / this.#host.sampleRate,
      bytes: s.bytes,
      last: s.last,
    }
    if (s.headerPatch) seg.headerPatch = s.headerPatch
    if (s.firstPieceMs != null) seg.firstPieceMs = s.firstPieceMs
    return seg
  }

  #wake(): void {
    this.#takeFinished()
    const errors = native(() => this.#native.takeErrors())
    if (this.listenerCount('error') > 0) {
      for (const m of errors) this.emit('error', new CapstanError('ERR_ENCODER', m))
    }
    this.#reader.wake()
  }

  /** Segments the engine finished since the last look: settles `segment()`/`finish()`. */
  #takeFinished(): void {
    for (const f of native(() => this.#native.takeFinished())) {
      const seg = this.#segmentOf(f)
      this.#lastSegment = seg
      if (seg.last) {
        this.#ended = true
        // Everything still asked for ends with the stream.
        for (const r of this.#pending.splice(0)) r(seg)
        this.#host.detach(this)
      } else {
        this.#pending.shift()?.(seg)
      }
      this.emit('segment', seg)
    }
  }

  /** Every byte in order, each yield whole pages/frames; ends when the stream has ended and been read. */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    for await (const c of this.chunks()) if (c.bytes.length > 0) yield c.bytes
  }

  /**
   * Like iterating the stream, with each chunk's segment and the segment ends. `maxBytes`
   * bounds a chunk (default 64 KiB): whole pieces up to it, one piece at least.
   */
  async *chunks(opts: { maxBytes?: number } = {}): AsyncIterableIterator<EncodedChunk> {
    const max = opts.maxBytes ?? READ_DEFAULTS.maxBytes
    if (!Number.isInteger(max) || max < 1) throw new CapstanError('ERR_INVALID_OPTION', `maxBytes must be a positive whole number, got ${max}`)
    const start = turn()
    if (start) await start
    if (this.#reading) throw new CapstanError('ERR_INVALID_STATE', 'this encoded stream already has a reader')
    this.#reading = true
    try {
      for (;;) {
        const r = native(() => this.#native.read(max))
        if (r.state === 'ended') {
          // The reader may see the end before the engine's event for it arrives: the last
          // segment is taken now, so `ended` and pending `segment()`s agree with the reader.
          this.#takeFinished()
          retireEncoder(this.#census)
          return
        }
        if (r.state === 'empty') {
          await this.#reader.park()
          continue
        }
        // A deep queue is read without waiting: give the event loop its turn now and then.
        const next = turn()
        if (next) await next
        const chunk: EncodedChunk = { bytes: r.bytes!, segment: this.#segment }
        if (r.end) {
          chunk.end = this.#segmentOf(r.end)
          this.#segment = r.end.index + 1
        }
        yield chunk
      }
    } finally {
      this.#reader.forget()
      this.#reading = false
    }
  }

  /** A Node `Readable` of the bytes (pipe it to a file, an HTTP body, a socket). */
  readable(): Readable {
    return Readable.from(this, { objectMode: false })
  }

  /** A Web `ReadableStream` of the bytes (fetch bodies, WebSocket senders, browsers' APIs). */
  stream(): ReadableStream<Uint8Array> {
    const it = this[Symbol.asyncIterator]()
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await it.next()
        if (done) controller.close()
        else controller.enqueue(value)
      },
      async cancel() {
        await it.return?.()
      },
    })
  }

  /**
   * Ends the current segment after everything captured before this call (the remainder
   * is padded like `flush()`), as a complete file; the next audio starts a new one on the
   * same encoder. Resolves when the segment is encoded (its bytes may still be unread).
   */
  segment(opts?: CaptureOptions): Promise<EncodedSegment> {
    return this.#cut(false, opts)
  }

  /** Ends the stream: the last segment is completed (EOS page, LAME flush), readers end after it. */
  finish(opts?: CaptureOptions): Promise<EncodedSegment> {
    return this.#cut(true, opts)
  }

  #cut(last: boolean, opts?: CaptureOptions): Promise<EncodedSegment> {
    if (this.#ended) return settleFair(this.#lastSegment!)
    const done = new Promise<EncodedSegment>((resolve) => this.#pending.push(resolve))
    hold()
    return this.#host.cut(this.#native, last, opts).then(
      () => done.finally(release),
      (e) => {
        this.#pending.pop()
        release()
        throw e
      },
    )
  }

  get ended(): boolean {
    return this.#ended
  }

  /**
   * Discards the bytes not yet read (counted `clearedBytes`; segment ends are kept) — for
   * an interruption, with `clearQueue()` on the source for the audio not yet encoded.
   */
  clear(): number {
    return native(() => this.#native.clear())
  }

  metrics(): EncoderMetrics {
    // Shaped by the binding; only the format, which the stream knows, is added.
    const { firstPieceMs, ...m } = native(() => this.#native.metrics())
    const out: EncoderMetrics = { format: this.format, ...m }
    if (firstPieceMs != null) out.firstPieceMs = firstPieceMs
    return out
  }

}
