/**
 * The sources and encoders of this JavaScript environment, by name, for exporters: live
 * ones are read when metrics are collected; a closed one leaves its final counts behind, so
 * totals only ever grow (what a Prometheus counter must do).
 *
 * Nothing is counted until an exporter registers (`collectMetrics`): a service that never
 * exports pays nothing at close. It holds no strong reference to an encoder's stream: one
 * dropped unread is collected, its unread bytes discarded and its counts retired then.
 */

/** The sample counters of a source (its `metrics()` has these and more). */
export interface Totals {
  captured: number
  delivered: number
  dropped: number
  cleared: number
  padded: number
  underruns: number
  stalls: number
  sinkErrors: number
  outcomes: Partial<Record<string, number>>
}

/** What the census reads of a source. */
export interface CensusSource {
  readonly name: string
  metrics(): Totals
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

/**
 * What the census keeps of an encoder: its counts and a way to free its unread bytes, never
 * the stream object itself.
 */
export interface CensusEncoder {
  readonly key: string
  metrics(): EncoderTotals & { queuedBytes: number }
  /** Discards the unread bytes (counted as cleared): nobody can read them any more. */
  discard(): void
}

/** Exporters registered (the census runs while there is one). */
let exporters = 0
const live = new Set<CensusSource>()
const retired = new Map<string, Totals>()
const liveEncoders = new Set<CensusEncoder>()
/** `${name}\u0000${format}` → final counts of ended encoders. */
const retiredEncoders = new Map<string, EncoderTotals>()
/** An encoder's stream collected before it was retired: its counts are retired then. */
const collected = new FinalizationRegistry<CensusEncoder>((e) => {
  if (!liveEncoders.has(e)) return
  e.discard()
  retireEncoder(e)
})

/** Wait-time observers of settled captures that had to wait, one per exporter. */
export const waitObservers = new Set<(source: string, waitedMs: number) => void>()

/** An exporter registered; the returned function unregisters it. */
export function activate(): () => void {
  exporters++
  let done = false
  return () => {
    if (done) return
    done = true
    if (--exporters === 0) {
      live.clear()
      liveEncoders.clear()
    }
  }
}

export function counting(): boolean {
  return exporters > 0
}

export function enroll(s: CensusSource): void {
  if (exporters > 0) live.add(s)
}

/** Moves a closed source's final counts into its name's retired totals (once). */
export function retire(s: CensusSource): void {
  if (!live.delete(s)) return
  let t = retired.get(s.name)
  if (!t) retired.set(s.name, (t = emptyTotals()))
  add(t, s.metrics())
}

/** Counts an encoder whose stream is `owner`, until it ends or `owner` is collected. */
export function enrollEncoder(owner: object, e: CensusEncoder): void {
  if (exporters === 0) return
  liveEncoders.add(e)
  collected.register(owner, e, e)
}

/** An encoder ended and was read to its end: it leaves its final counts (once). */
export function retireEncoder(e: CensusEncoder): void {
  if (!liveEncoders.delete(e)) return
  collected.unregister(e)
  let t = retiredEncoders.get(e.key)
  if (!t) retiredEncoders.set(e.key, (t = emptyEncoderTotals()))
  addEncoder(t, e.metrics())
}

export function liveSources(): ReadonlySet<CensusSource> {
  return live
}

export function retiredTotals(): ReadonlyMap<string, Totals> {
  return retired
}

export function liveEncoderStreams(): ReadonlySet<CensusEncoder> {
  return liveEncoders
}

export function retiredEncoderTotals(): ReadonlyMap<string, EncoderTotals> {
  return retiredEncoders
}

export function emptyTotals(): Totals {
  return { captured: 0, delivered: 0, dropped: 0, cleared: 0, padded: 0, underruns: 0, stalls: 0, sinkErrors: 0, outcomes: {} }
}

export function add(t: Totals, m: Totals): void {
  t.captured += m.captured
  t.delivered += m.delivered
  t.dropped += m.dropped
  t.cleared += m.cleared
  t.padded += m.padded
  t.underruns += m.underruns
  t.stalls += m.stalls
  t.sinkErrors += m.sinkErrors
  for (const [k, v] of Object.entries(m.outcomes)) t.outcomes[k] = (t.outcomes[k] ?? 0) + (v ?? 0)
}

export function emptyEncoderTotals(): EncoderTotals {
  return { producedBytes: 0, readBytes: 0, droppedBytes: 0, clearedBytes: 0, pieces: 0, droppedPieces: 0, segments: 0, errors: 0 }
}

export function addEncoder(t: EncoderTotals, m: EncoderTotals): void {
  t.producedBytes += m.producedBytes
  t.readBytes += m.readBytes
  t.droppedBytes += m.droppedBytes
  t.clearedBytes += m.clearedBytes
  t.pieces += m.pieces
  t.droppedPieces += m.droppedPieces
  t.segments += m.segments
  t.errors += m.errors
}
