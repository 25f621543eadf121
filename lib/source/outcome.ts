import { CONTRACT } from '../internal/binding'
import type { CaptureOutcome, CaptureStatus } from './types'

/**
 * Outcomes cross the native boundary as records of plain numbers written into a reused
 * `Float64Array` (far cheaper than an object with named properties). Their layout, the
 * statuses and the option defaults are the core's, read once at load: nothing here
 * restates them.
 */
export { CONTRACT }
export const STATUSES = CONTRACT.statuses as CaptureStatus[]
/** The status code of a capture that is waiting; its record's `id` slot names it. */
export const PENDING = CONTRACT.pending
export const SLOT = CONTRACT.slots
/** Numbers per completion row of a drained batch: `[sourceId, ...outcome record]`. */
export const COMPLETION_ROW = CONTRACT.completionRow
export const DEFAULTS = CONTRACT.defaults

/** The outcome record every call on this thread writes into (JS is single-threaded). */
export const record = new Float64Array(SLOT.count)

export function readOutcome(r: Float64Array, at = 0): CaptureOutcome {
  return {
    status: STATUSES[r[at + SLOT.status]],
    acceptedSamples: r[at + SLOT.acceptedSamples],
    droppedSamples: r[at + SLOT.droppedSamples],
    queuedMs: r[at + SLOT.queuedMs],
    waitedMs: r[at + SLOT.waitedMs],
  }
}

/** The id of the capture a record is about (a waiting one, or a settled completion). */
export function recordId(r: Float64Array, at = 0): number {
  return r[at + SLOT.id]
}

/** Whether the record is of a capture still waiting. */
export function isPending(r: Float64Array): boolean {
  return r[SLOT.status] === PENDING
}
