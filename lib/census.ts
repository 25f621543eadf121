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
