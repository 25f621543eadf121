import type { EncodedStream, EncoderMetrics } from './encode'
import type { AudioSource } from './source'
import type { CaptureStatus, SourceMetrics } from './types'

/**
 * The sources of this JavaScript environment, by name, for exporters: live ones are read
 * when metrics are collected; a closed one leaves its final counts behind, so totals only
 * ever grow (what a Prometheus counter must do).
 */
export interface Totals {
  captured: number
  delivered: number
  dropped: number
  cleared: number
  padded: number
  underruns: number
  stalls: number
  sinkErrors: number
  outcomes: Partial<Record<CaptureStatus, number>>
}

const live = new Set<AudioSource>()
const retired = new Map<string, Totals>()

/** A wait-time observer for settled captures that had to wait (set by an exporter). */
export const hooks: { wait?: (source: AudioSource, waitedMs: number) => void } = {}

export function enroll(s: AudioSource): void {
  live.add(s)
}

/** Moves a closed source's final counts into its name's retired totals (once). */
export function retire(s: AudioSource, final: SourceMetrics): void {
  if (!live.delete(s)) return
  let t = retired.get(s.name)
  if (!t) retired.set(s.name, (t = emptyTotals()))
  add(t, final)
}

export function liveSources(): ReadonlySet<AudioSource> {
  return live
}

export function retiredTotals(): ReadonlyMap<string, Totals> {
  return retired
}

export function emptyTotals(): Totals {
  return { captured: 0, delivered: 0, dropped: 0, cleared: 0, padded: 0, underruns: 0, stalls: 0, sinkErrors: 0, outcomes: {} }
}

export function add(t: Totals, m: Totals | SourceMetrics): void {
  t.captured += m.captured
  t.delivered += m.delivered
  t.dropped += m.dropped
  t.cleared += m.cleared
  t.padded += m.padded
  t.underruns += m.underruns
  t.stalls += m.stalls
  t.sinkErrors += m.sinkErrors
  for (const [k, v] of Object.entries(m.outcomes) as [CaptureStatus, number][]) t.outcomes[k] = (t.outcomes[k] ?? 0) + v
}

/** Encoder byte counts, per source name and format: `producedBytes = read + queued + dropped + cleared`. */
export interface EncoderTotals {
  producedBytes: number
  readBytes: number
  droppedBytes: number
  clearedBytes: number
  pieces: number
  droppedPieces: number
  segments: number
  errors: number
}

const liveEncoders = new Map<EncodedStream, string>()
/** `${name}\u0000${format}` → final counts of ended, fully read streams. */
const retiredEncoders = new Map<string, EncoderTotals>()

export function enrollEncoder(s: EncodedStream, name: string): void {
  liveEncoders.set(s, name)
}

/** A stream that ended and was read to its end leaves its final counts (once). */
export function retireEncoder(s: EncodedStream, final: EncoderMetrics): void {
  const name = liveEncoders.get(s)
  if (name === undefined) return
  liveEncoders.delete(s)
  const key = `${name}\u0000${final.format}`
  let t = retiredEncoders.get(key)
  if (!t) retiredEncoders.set(key, (t = emptyEncoderTotals()))
  addEncoder(t, final)
}

export function liveEncoderStreams(): ReadonlyMap<EncodedStream, string> {
  return liveEncoders
}

export function retiredEncoderTotals(): ReadonlyMap<string, EncoderTotals> {
  return retiredEncoders
}

export function emptyEncoderTotals(): EncoderTotals {
  return { producedBytes: 0, readBytes: 0, droppedBytes: 0, clearedBytes: 0, pieces: 0, droppedPieces: 0, segments: 0, errors: 0 }
}

export function addEncoder(t: EncoderTotals, m: EncoderTotals | EncoderMetrics): void {
  t.producedBytes += m.producedBytes
  t.readBytes += m.readBytes
  t.droppedBytes += m.droppedBytes
  t.clearedBytes += m.clearedBytes
  t.pieces += m.pieces
  t.droppedPieces += m.droppedPieces
  t.segments += m.segments
  t.errors += m.errors
}
