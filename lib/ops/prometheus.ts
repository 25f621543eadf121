import {
  activate,
  add,
  addEncoder,
  emptyEncoderTotals,
  emptyTotals,
  liveEncoderStreams,
  liveSources,
  retiredEncoderTotals,
  retiredTotals,
  waitObservers,
  type EncoderTotals,
  type Totals,
} from '../internal/census'
import { CONTRACT } from '../internal/binding'
import { CapstanError, describe } from '../internal/errors'
import type { HealthState, SourceMetrics } from '../source/types'

/**
 * What capstan needs of a `prom-client` `Registry`, written out so that the published types
 * do not require prom-client (an optional peer dependency) to be installed.
 */
export interface MetricsRegistry {
  registerMetric(metric: never): void
  removeSingleMetric(name: string): void
}

export interface CollectMetricsOptions {
  /** Metric name prefix. Default `'capstan_'`. */
  prefix?: string
  /** Buckets of the capture-wait histogram, in seconds. */
  waitBuckets?: number[]
}

const HEALTH = CONTRACT.healthStates as HealthState[]
/** A scrape reads every live source once; its metrics share that snapshot for this long. */
const SNAPSHOT_MS = 250

interface ByName {
  totals: Totals
  queuedMs: number
  health: Record<HealthState, number>
  /** processor name → largest p50 / p99 over this name's sources (µs), calls, failures. */
  processors: Map<string, { p50: number; p99: number; calls: number; failures: number }>
}

interface EncoderEntry {
  totals: EncoderTotals
  queuedBytes: number
}

/** Encoders by (source name, format): a closed set of formats keeps cardinality small. */
function encoderSnapshot(): Map<string, EncoderEntry> {
  const out = new Map<string, EncoderEntry>()
  const entry = (key: string): EncoderEntry => {
    let e = out.get(key)
    if (!e) out.set(key, (e = { totals: emptyEncoderTotals(), queuedBytes: 0 }))
    return e
  }
  for (const [key, t] of retiredEncoderTotals()) addEncoder(entry(key).totals, t)
  for (const s of liveEncoderStreams()) {
    const m = s.metrics()
    const e = entry(s.key)
    addEncoder(e.totals, m)
    e.queuedBytes += m.queuedBytes
  }
  return out
}

function snapshot(): Map<string, ByName> {
  const out = new Map<string, ByName>()
  const entry = (name: string): ByName => {
    let e = out.get(name)
    if (!e) {
      e = { totals: emptyTotals(), queuedMs: 0, health: Object.fromEntries(HEALTH.map((h) => [h, 0])) as Record<HealthState, number>, processors: new Map() }
      out.set(name, e)
    }
    return e
  }
  for (const [name, t] of retiredTotals()) add(entry(name).totals, t)
  for (const s of liveSources()) {
    const m = s.metrics() as SourceMetrics
    const e = entry(s.name)
    add(e.totals, m)
    e.queuedMs += m.queuedMs
    e.health[m.health]++
    for (const p of m.processors) {
      const q = e.processors.get(p.name) ?? { p50: 0, p99: 0, calls: 0, failures: 0 }
      q.p50 = Math.max(q.p50, p.timeUs.p50)
      q.p99 = Math.max(q.p99, p.timeUs.p99)
      q.calls += p.calls
      q.failures += p.failures
      e.processors.set(p.name, q)
    }
  }
  return out
}

/**
 * Registers capstan's metrics on a `prom-client` registry (default: its global one):
 * sample counters, captures by status, underruns, stalls, sink errors, queue depth,
 * sources by health, processor time and a histogram of capture waits. Series are labelled
 * by the `name` option of each source (unnamed sources share `source=""`), so cardinality
 * stays as small as the set of names. Closed sources keep counting in the totals.
 * Returns a function that unregisters them. `prom-client` is an optional peer dependency.
 */
export function collectMetrics(register?: MetricsRegistry, opts: CollectMetricsOptions = {}): () => void {
  let client: typeof import('prom-client')
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    client = require('prom-client')
  } catch (e) {
    throw new CapstanError('ERR_INVALID_STATE', 'collectMetrics needs the prom-client package (npm install prom-client)', { cause: e })
  }
  const reg = (register ?? client.register) as import('prom-client').Registry
  const p = opts.prefix ?? 'capstan_'
  /** A scrape reads every live source (and encoder) once; its series share the snapshot. */
  const cached = <T>(make: () => T): (() => T) => {
    let value: T | undefined
    let at = -Infinity
    return () => {
      const now = performance.now()
      if (value === undefined || now - at > SNAPSHOT_MS) {
        value = make()
        at = now
      }
      return value
    }
  }
  const taken = (reg as { getSingleMetric?(n: string): unknown }).getSingleMetric?.(p + 'captured_samples_total')
  if (taken) {
    throw new CapstanError('ERR_INVALID_STATE', `capstan's metrics (prefix '${p}') are already registered on this registry; unregister them first or use another prefix`)
  }
  const current = cached(snapshot)
  const encoders = cached(encoderSnapshot)
  const names: string[] = []
  let wait: import('prom-client').Histogram | undefined
  type Labels = Record<string, string>
  /** One counter or gauge whose samples `rows` lists at each scrape. */
  const series = (kind: 'Counter' | 'Gauge', name: string, help: string, labelNames: string[], rows: () => Iterable<[Labels, number]>) => {
    const C = client[kind] as unknown as new (c: object) => unknown
    new C({
      name: p + name,
      help,
      labelNames,
      registers: [reg],
      collect(this: { reset(): void; set?(l: Labels, v: number): void; inc?(l: Labels, v: number): void }) {
        this.reset()
        for (const [labels, v] of rows()) {
          if (kind === 'Gauge') this.set!(labels, v)
          else this.inc!(labels, v)
        }
      },
    })
    names.push(p + name)
  }
  try {
    define()
  } catch (e) {
    // One of the names is taken (another exporter's): leave nothing of ours behind.
    for (const n of names) reg.removeSingleMetric(n)
    throw new CapstanError('ERR_INVALID_STATE', `collectMetrics: ${describe(e)}`, { cause: e })
  }
  function define() {
    const perSource = (name: string, help: string, value: (t: Totals) => number) =>
      series('Counter', name, help, ['source'], function* () {
        for (const [source, e] of current()) yield [{ source }, value(e.totals)]
      })
    perSource('captured_samples_total', 'Samples per channel taken into custody (queued, or lost and counted).', (t) => t.captured)
    perSource('delivered_samples_total', 'Samples per channel delivered to the consumer.', (t) => t.delivered)
    perSource('dropped_samples_total', 'Samples per channel lost to an overflow policy, a deadline or an abort.', (t) => t.dropped)
    perSource('cleared_samples_total', 'Samples per channel discarded by clearQueue() or close().', (t) => t.cleared)
    perSource('padded_samples_total', 'Silence added by flush() (part of captured).', (t) => t.padded)
    perSource('underruns_total', 'Consumer ticks that found the queue empty.', (t) => t.underruns)
    perSource('stalls_total', 'Times a source went stalled.', (t) => t.stalls)
    perSource('sink_errors_total', 'Chunks a sink refused.', (t) => t.sinkErrors)
    series('Counter', 'captures_total', 'Settled captures by status.', ['source', 'status'], function* () {
      for (const [source, e] of current()) {
        for (const [status, n] of Object.entries(e.totals.outcomes)) yield [{ source, status }, n ?? 0]
      }
    })
    series('Gauge', 'queued_seconds', 'Audio queued (including the carried remainder), summed over open sources.', ['source'], function* () {
      for (const [source, e] of current()) yield [{ source }, e.queuedMs / 1000]
    })
    series('Gauge', 'sources', 'Open sources by health state.', ['source', 'health'], function* () {
      for (const [source, e] of current()) for (const health of HEALTH) yield [{ source, health }, e.health[health]]
    })
    series(
      'Gauge',
      'processor_time_seconds',
      'Time a native processor takes per 10 ms chunk (largest quantile over the sources of a name).',
      ['source', 'processor', 'quantile'],
      function* () {
        for (const [source, e] of current()) {
          for (const [processor, q] of e.processors) {
            yield [{ source, processor, quantile: '0.5' }, q.p50 / 1e6]
            yield [{ source, processor, quantile: '0.99' }, q.p99 / 1e6]
          }
        }
      },
    )
    series('Counter', 'processor_calls_total', 'Processor calls (open sources).', ['source', 'processor'], function* () {
      for (const [source, e] of current()) for (const [processor, q] of e.processors) yield [{ source, processor }, q.calls]
    })
    const perEncoder = (kind: 'Counter' | 'Gauge', name: string, help: string, value: (e: EncoderEntry) => number) =>
      series(kind, name, help, ['source', 'format'], function* () {
        for (const [key, e] of encoders()) {
          const [source, format] = key.split('\u0000')
          yield [{ source, format }, value(e)]
        }
      })
    perEncoder('Counter', 'encoded_bytes_total', 'Bytes encoders produced (= read + queued + dropped + cleared).', (e) => e.totals.producedBytes)
    perEncoder('Counter', 'encoded_read_bytes_total', 'Encoded bytes readers took.', (e) => e.totals.readBytes)
    perEncoder('Counter', 'encoded_dropped_bytes_total', 'Encoded bytes an output overflow policy dropped.', (e) => e.totals.droppedBytes)
    perEncoder('Counter', 'encoded_cleared_bytes_total', 'Unread encoded bytes clear() discarded (interruptions).', (e) => e.totals.clearedBytes)
    perEncoder('Counter', 'encoded_pieces_total', 'Ogg pages, MP3 frame groups or WAV/PCM blocks produced.', (e) => e.totals.pieces)
    perEncoder('Counter', 'encoded_segments_total', 'Segments (complete files) finished.', (e) => e.totals.segments)
    perEncoder('Counter', 'encoder_errors_total', 'Chunks an encoder failed on.', (e) => e.totals.errors)
    perEncoder('Gauge', 'encoded_queued_bytes', 'Encoded bytes waiting for a reader (open streams).', (e) => e.queuedBytes)
    wait = new client.Histogram({
      name: p + 'capture_wait_seconds',
      help: 'How long captures that had to wait for room waited, from the call to its settlement.',
      labelNames: ['source'],
      buckets: opts.waitBuckets ?? [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers: [reg],
    })
    names.push(p + 'capture_wait_seconds')
  }
  const observe = (source: string, ms: number) => wait!.observe({ source }, ms / 1000)
  waitObservers.add(observe)
  const deactivate = activate()
  let done = false
  return () => {
    if (done) return
    done = true
    waitObservers.delete(observe)
    deactivate()
    for (const n of names) reg.removeSingleMetric(n)
  }
}
