import type { AudioFrame } from './frame'
import type { FrameProcessor, NativeProcessor } from '../process/processors'

export type OverflowPolicy = 'wait' | 'drop-oldest' | 'drop-newest' | 'reject'
export type ConsumerMode = 'realtime' | 'pull' | 'unpaced'
export type HealthState = 'healthy' | 'lagging' | 'stalled' | 'recovered'
export type CaptureStatus = 'accepted' | 'partial' | 'dropped' | 'timeout' | 'aborted' | 'cleared' | 'closed'

export interface AudioSourceOptions {
  sampleRate: number
  channels: number
  /** A label for exported metrics (`collectMetrics`); sources sharing a name aggregate. */
  name?: string
  /** Queue capacity in ms, a multiple of 10. Default 200. */
  queueMs?: number
  /** What a capture does when the queue is full. Default `'wait'`. */
  overflow?: OverflowPolicy
  /** Longest a `'wait'` capture waits for room. Default 1000. */
  deadlineMs?: number
  /** No consumer progress for this long while audio waits => `'stalled'`. Default 250. */
  stallAfterMs?: number
  /** Who takes audio out of the queue. Default `'realtime'`. */
  consumer?: ConsumerMode
  /** Realtime: an underrun tick sends silence (always counted). Default true. */
  fillSilence?: boolean
  /**
   * Realtime: audio to have queued before delivery starts, and starts again after the
   * queue ran dry, ms (a multiple of 10, up to 200). A producer that delivers in bursts
   * (a live relay, 7..53 ms frames) then reaches the consumer without holes; the wait is
   * never longer than this, and `flush()` ends it. Default 0.
   */
  prerollMs?: number
  /** Realtime/unpaced `frames()` reader: delivered audio it may hold unread. Default 50. */
  readerBufferMs?: number
  /**
   * Native processors (`processors.gain(...)`, ...) run on engine threads, in order; then
   * JS processors (LiveKit `FrameProcessor` shape) run on the JS thread in `frames()`.
   */
  processors?: Array<NativeProcessor | FrameProcessor<AudioFrame>>
  /** Consecutive failures after which a processor is bypassed. Default 5. */
  processorBypassAfter?: number
  /** Per-chunk time budget of each processor; overruns emit 'processor-slow'. Default 5. */
  processorBudgetMs?: number
  /** Close JS processors when the source closes. Default true; false for shared ones. */
  autoClose?: boolean
}

/** How a capture settled. Samples are per channel. */
export interface CaptureOutcome {
  status: CaptureStatus
  acceptedSamples: number
  /** Samples this call caused to be lost (for drop-oldest: older audio it evicted). */
  droppedSamples: number
  /** Queue depth once the call settled, including the carried remainder. */
  queuedMs: number
  waitedMs: number
}

export interface CaptureOptions {
  signal?: AbortSignal
  /** Overrides the source's `deadlineMs` for this call. */
  deadlineMs?: number
}

export interface HealthEvent {
  state: HealthState
  previous: HealthState
  /** Ms since the consumer last made progress (for `recovered`: how long the stall lasted). */
  sinceMs: number
  queuedMs: number
  /** `Date.now()`-style timestamp of the transition. */
  at: number
}

export interface OverflowEvent {
  droppedSamples: number
  policy: OverflowPolicy
}

export interface UnderrunEvent {
  ticks: number
}

export interface DeadlineEvent {
  /** Longest wait among the captures reported. */
  waitedMs: number
  droppedSamples: number
  /** Captures that hit their deadline since the previous report. */
  count: number
}

export interface ProcessorErrorEvent {
  processor: string
  message: string
  consecutive: number
  bypassed: boolean
}

export interface ProcessorMetrics {
  name: string
  enabled: boolean
  bypassed: boolean
  calls: number
  failures: number
  consecutiveFailures: number
  overBudget: number
  timeUs: { p50: number; p90: number; p99: number; max: number }
  /**
   * What the processor measures, by name (empty for most): `echoCancel` reports `erleDb`,
   * `erlDb` and `delayMs` (AEC3's own estimates), `echoRemovedDb` (input over output power
   * while only the far end talks), `doubleTalk` (1 or 0, the last chunk), `doubleTalkMs`,
   * `referenceMs`, `referenceSkippedMs`; `autoGain` reports `gainDb`, `limiterDb`,
   * `limitedMs`, `speechLevelDbfs`.
   */
  health: Record<string, number>
}

export interface AudioSourceEvents {
  health: [HealthEvent]
  overflow: [OverflowEvent]
  underrun: [UnderrunEvent]
  deadline: [DeadlineEvent]
  'processor-error': [ProcessorErrorEvent]
  /** A processor overran its time budget (coalesced; `count` is its overruns so far). */
  'processor-slow': [{ processor: string; elapsedUs: number; budgetUs: number; count: number }]
  /** A VAD processor flipped: `positionMs` in the delivered audio, `at` wall time. */
  vad: [{ speaking: boolean; at: number; positionMs: number }]
  'sink-error': [{ message: string }]
  closed: [Record<string, never>]
}

/** A snapshot of one source. Samples per channel; `underruns` in ticks. */
export interface SourceMetrics {
  captured: number
  delivered: number
  queued: number
  dropped: number
  cleared: number
  /** Silence added by `flush()`; part of `captured`. */
  padded: number
  underruns: number
  waitingCaptures: number
  /** Samples in waiting captures, not yet captured. */
  waitingSamples: number
  stalls: number
  queuedMs: number
  playoutPosition: number
  health: HealthState
  /** Chunks a sink refused (each also a `'sink-error'` event). */
  sinkErrors: number
  captureWaitUs: { p50: number; p99: number; max: number }
  outcomes: Record<CaptureStatus, number>
  processors: ProcessorMetrics[]
}
