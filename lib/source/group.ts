import { CapstanError, fromNative, native } from '../internal/errors'
import { NativeGroup, getEngine, hold, register, release, unregister, type NativeGroupT } from '../internal/engine'
import { admit, later, settleFair } from '../internal/fairness'
import type { Samples } from './frame'
import { STATUSES, isPending, readOutcome, record, recordId } from './outcome'
import { AudioSource, nativeOf } from './source'
import type { CaptureOutcome, CaptureStatus } from './types'
import { asyncDispose } from '../internal/symbols'

/** Bytes of samples copied per native call of a round (~0.25 ms of copying and queueing). */
const SLICE_BYTES = 256 * 1024

/** How a group round settled: the members' outcomes joined, and each member's status. */
export interface GroupOutcome extends CaptureOutcome {
  /**
   * The members' common status, or `'partial'` when they differ. Samples are summed over
   * members (per channel); `queuedMs` and `waitedMs` are the largest.
   */
  status: CaptureStatus
  /** Each member's status, in member order. */
  statuses: CaptureStatus[]
}

/**
 * A fixed set of sources of one format fed from one place: `captureFrames` captures one
 * frame for each member in one call and settles once, when every member's capture has.
 * A service that drives thousands of sources from one loop pays one promise and one
 * native call per round instead of one per source. Each member keeps its own policy,
 * queue, deadline, counters, health and events.
 */
export class SourceGroup {
  readonly sources: readonly AudioSource[]
  readonly #native: NativeGroupT
  readonly #id: number
  readonly #waiting = new Map<number, (o: GroupOutcome) => void>()
  /** Rounds whose caller already got an error: their completion is dropped. */
  readonly #orphans = new Set<number>()
  #closed = false

  constructor(sources: Iterable<AudioSource>) {
    if (typeof (sources as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] !== 'function') {
      throw new CapstanError('ERR_INVALID_OPTION', 'SourceGroup takes an iterable of AudioSources')
    }
    const list = [...sources]
    for (const s of list) {
      if (!(s instanceof AudioSource)) throw new CapstanError('ERR_INVALID_OPTION', 'SourceGroup members must be AudioSources')
    }
    this.#native = native(() => new NativeGroup(getEngine(), list.map(nativeOf)))
    this.sources = Object.freeze(list)
    this.#id = this.#native.id
    register(this.#id, { settled: (rec, at) => this.#settled(rec, at), playedOut() {}, event() {} })
  }

  get size(): number {
    return this.sources.length
  }

  /**
   * `data` holds one frame per member, member after member (all the same length, whole
   * sample frames, the members' format). Each member applies its own overflow policy;
   * `deadlineMs` overrides the members' own for `wait`. The samples are copied in slices
   * of about SLICE_BYTES, with the event loop's turn in between when the fairness budget
   * is spent, so even a round of 10,000 × 100 ms never holds timers back for long.
   * Rejects only on programmer errors (`CapstanError`).
   */
  async captureFrames(data: Samples, opts: { deadlineMs?: number } = {}): Promise<GroupOutcome> {
    const statuses = new Uint8Array(this.sources.length)
    let id: number
    try {
      id = this.#begin(data, opts.deadlineMs, true)
    } catch (e) {
      const err = fromNative(e)
      if (!admit(true)) await later(undefined)
      throw err
    }
    const per = data.length / this.sources.length
    const step = Math.max(1, Math.floor(SLICE_BYTES / (per * data.BYTES_PER_ELEMENT)))
    let failed: unknown
    for (let first = 0; first < this.sources.length; first += step) {
      try {
        this.#feed(id, data.subarray(first * per, Math.min(this.sources.length, first + step) * per), first)
      } catch (e) {
        failed = fromNative(e)
        break
      }
      if (first + step < this.sources.length && !admit(true)) await later(undefined)
    }
    native(() => this.#native.end(id, record, statuses))
    if (failed !== undefined) {
      this.#orphans.add(id)
      throw failed
    }
    if (!isPending(record)) return settleFair(this.#outcome(record, 0, statuses), true)
    const wait = recordId(record)
    return new Promise<GroupOutcome>((resolve) => {
      this.#waiting.set(wait, resolve)
      hold()
    })
  }

  /** Synchronous and never waits: a member that cannot take its frame now drops it. */
  tryCaptureFrames(data: Samples): GroupOutcome {
    const statuses = new Uint8Array(this.sources.length)
    const id = native(() => this.#begin(data, undefined, false))
    try {
      this.#feed(id, data, 0)
    } catch (e) {
      this.#native.end(id, record, statuses)
      throw fromNative(e)
    }
    native(() => this.#native.end(id, record, statuses))
    return this.#outcome(record, 0, statuses)
  }

  #begin(data: Samples, deadlineMs: unknown, wait: boolean): number {
    if (this.#closed) throw new CapstanError('ERR_INVALID_STATE', 'this SourceGroup is closed')
    if (deadlineMs !== undefined && typeof deadlineMs !== 'number') {
      throw new CapstanError('ERR_INVALID_OPTION', 'deadlineMs must be a number')
    }
    if (!(data instanceof Int16Array) && !(data instanceof Float32Array)) {
      throw new CapstanError('ERR_INVALID_FRAME', 'captureFrames takes an Int16Array or a Float32Array holding one frame per source')
    }
    return this.#native.begin(data.length, deadlineMs, wait)
  }

  #feed(id: number, data: Samples, first: number): void {
    if (data instanceof Int16Array) this.#native.feedI16(id, data, first)
    else this.#native.feedF32(id, data as Float32Array, first)
  }

  #outcome(rec: Float64Array, at: number, statuses: Uint8Array): GroupOutcome {
    const o = readOutcome(rec, at) as GroupOutcome
    o.statuses = Array.from(statuses, (c) => STATUSES[c])
    return o
  }

  /**
   * Forgets the group; its sources stay open and untouched. Rounds still waiting settle
   * as their members do (at their deadline, or `closed` when a member closes).
   */
  close(): void {
    this.#closed = true
    if (this.#waiting.size === 0) unregister(this.#id)
  }
  [asyncDispose](): Promise<void> {
    this.close()
    return Promise.resolve()
  }


  /** A waiting round settled (engine dispatcher). */
  #settled(rec: Float64Array, at: number): void {
    const id = recordId(rec, at)
    const resolve = this.#waiting.get(id)
    if (!resolve) {
      if (this.#orphans.delete(id)) this.#native.takeStatuses(id, new Uint8Array(0))
      return
    }
    this.#waiting.delete(id)
    release()
    const statuses = new Uint8Array(this.sources.length)
    this.#native.takeStatuses(id, statuses)
    resolve(this.#outcome(rec, at, statuses))
    if (this.#closed && this.#waiting.size === 0) unregister(this.#id)
  }
}
