import { binding } from './engine'
import type { CaptureOutcome, CaptureStatus } from './types'

/**
 * Outcomes cross the native boundary as records of plain numbers
 * `[status, acceptedSamples, droppedSamples, queuedMs, waitedMs, id]`, written into a
 * reused `Float64Array`: far cheaper than an object with named properties.
 */
export const STATUSES = binding.outcomeStatuses() as CaptureStatus[]
/** The status code of a capture that is waiting; slot 5 then holds its id. */
export const PENDING = STATUSES.length
export const SLOTS = 6

/** The outcome record every call on this thread writes into (JS is single-threaded). */
export const record = new Float64Array(SLOTS)

export function readOutcome(r: Float64Array, at = 0): CaptureOutcome {
  return {
    status: STATUSES[r[at]],
    acceptedSamples: r[at + 1],
    droppedSamples: r[at + 2],
    queuedMs: r[at + 3],
    waitedMs: r[at + 4],
  }
}
