import { CapstanError, fromNative, native } from './errors'
import { NativeGroup, getEngine, hold, register, release, unregister, type NativeGroupT } from './engine'
import { admit, later, settleFair } from './fairness'
import type { Samples } from './frame'
import { STATUSES, isPending, readOutcome, record, recordId } from './outcome'
import { AudioSource, nativeOf } from './source'
import type { CaptureOutcome, CaptureStatus } from './types'

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
  #closed = false

  constructor(sources: Iterable<AudioSource>) {
    const list = [...sources]
    for (const s of list) {
      if (!(s instanceof AudioSource)) throw new CapstanError('ERR_INVALID_OPTION', 'SourceGroup members must be AudioSources')
    }
    this.#native = native(() => new NativeGroup(getEngine(), list.map(nativeOf)))
    this.sources = Object.freeze(list)
    this.#id = this.#native.id
    register(this.#id, this)
  }

  get size(): number {
    return this.sources.length
  }

  /**
   * `data` holds one frame per member, member after member (all the same length, whole
   * sample frames, the members' format). The samples are copied at once. Each member
   * applies its own overflow policy; `deadlineMs` overrides the members' own for `wait`.
   * Rejects only on programmer errors (`CapstanError`).
   */
  captureFrames(data: Samples, opts: { deadlineMs?: number } = {}): Promise<GroupOutcome> {
    const statuses = new Uint8Array(this.sources.length)
    try {
      this.#round(data, opts.deadlineMs, true, statuses)
    } catch (e) {
      const err = fromNative(e)
      return admit(true) ? Promise.reject(err) : later(undefined).then(() => Promise.reject(err))
    }
    if (!isPending(record)) return settleFair(this.#outcome(record, 0, statuses), true)
    const id = recordId(record)
    return new Promise<GroupOutcome>((resolve) => {
      this.#waiting.set(id, resolve)
      hold()
    })
  }

  /** Synchronous and never waits: a member that cannot take its frame now drops it. */
  tryCaptureFrames(data: Samples): GroupOutcome {
    const statuses = new Uint8Array(this.sources.length)
    try {
      this.#round(data, undefined, false, statuses)
    } catch (e) {
      throw fromNative(e)
    }
    return this.#outcome(record, 0, statuses)
  }

  #round(data: Samples, deadlineMs: unknown, wait: boolean, statuses: Uint8Array): void {
    if (this.#closed) throw new CapstanError('ERR_INVALID_STATE', 'this SourceGroup is closed')
    if (deadlineMs !== undefined && typeof deadlineMs !== 'number') {
      throw new CapstanError('ERR_INVALID_OPTION', 'deadlineMs must be a number')
    }
    if (data instanceof Int16Array) this.#native.captureI16(data, deadlineMs, wait, record, statuses)
    else if (data instanceof Float32Array) this.#native.captureF32(data, deadlineMs, wait, record, statuses)
    else throw new CapstanError('ERR_INVALID_FRAME', 'captureFrames takes an Int16Array or a Float32Array holding one frame per source')
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

  /** @internal A waiting round settled (engine dispatcher). */
  settled(rec: Float64Array, at: number): void {
    const id = recordId(rec, at)
    const resolve = this.#waiting.get(id)
    if (!resolve) return
    this.#waiting.delete(id)
    release()
    const statuses = new Uint8Array(this.sources.length)
    this.#native.takeStatuses(id, statuses)
    resolve(this.#outcome(rec, at, statuses))
    if (this.#closed && this.#waiting.size === 0) unregister(this.#id)
  }

  /** @internal */
  playedOut(): void {}

  /** @internal */
  event(): void {}
}
