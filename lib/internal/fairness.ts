/**
 * The event loop belongs to the caller. A promise capstan settles at once (a capture that
 * found room, a frame already buffered for a reader) lets its continuation run as a
 * microtask, so N producer loops that never have to wait form one microtask chain in which
 * timers and I/O never run. Every call that would settle at once asks `admit()` first: up
 * to TURN_BUDGET_MS of JavaScript per event-loop turn it may; past that, the settlement
 * is handed to the next macrotask (`setImmediate`), oldest first, so timers, sockets and
 * the engine's own drain get their turn in between.
 */

/** JavaScript time one event-loop turn may spend in continuations capstan settled at once. */
export const TURN_BUDGET_MS = 1
/** The clock is read every this many admissions (a count is cheaper than a clock read). */
const CHECK_EVERY = 16

let used = 0
let turnStart = 0
let over = false
let scheduled = false
let releasing = false

/** Settlements waiting for the next turn, oldest first: resolvers and their values. */
const waiting: Array<((v: unknown) => void) | undefined> = []
const values: unknown[] = []
let head = 0

/**
 * Counts one settlement; false when this turn's budget is spent (defer it). `heavy`: the
 * call behind it costs far more than a clock read (a group round), so look every time.
 */
export function admit(heavy = false): boolean {
  if (over) return false
  if (used++ === 0) {
    turnStart = performance.now()
    schedule()
  } else if ((heavy || used % CHECK_EVERY === 0) && performance.now() - turnStart > TURN_BUDGET_MS) {
    over = true
    return false
  }
  return true
}

/** A promise of `value`, settled at once when the turn has budget left, else next turn. */
export function settleFair<T>(value: T, heavy = false): Promise<T> {
  if (admit(heavy)) return Promise.resolve(value)
  return later(value)
}

/** Resolves with `value` in a later macrotask, after what was deferred before it. */
export function later<T>(value: T): Promise<T> {
  schedule()
  return new Promise<T>((resolve) => {
    waiting.push(resolve as (v: unknown) => void)
    values.push(value)
  })
}

/** Undefined when the caller may go on now; else a promise of the next turn's slot. */
export function turn(): Promise<void> | undefined {
  return admit() ? undefined : later<void>(undefined)
}

function schedule(): void {
  if (scheduled) return
  scheduled = true
  setImmediate(nextTurn)
}

/** A new turn: fresh budget, then the oldest deferred settlements, while it lasts. */
function nextTurn(): void {
  scheduled = false
  used = 0
  over = false
  if (head < waiting.length && !releasing) {
    turnStart = performance.now()
    used = 1
    schedule()
    void release()
  }
}

/** Deferred settlements handed back between two looks at the clock. */
const RELEASE_STEP = 8

/**
 * Hands deferred settlements back a few at a time: their continuations run (up to their
 * next `await`) before the clock is read again, so the budget covers the callers' own
 * work too.
 */
async function release(): Promise<void> {
  releasing = true
  try {
    while (head < waiting.length && !over) {
      const end = Math.min(head + RELEASE_STEP, waiting.length)
      for (; head < end; head++) {
        const resolve = waiting[head]!
        const v = values[head]
        waiting[head] = undefined
        values[head] = undefined
        resolve(v)
      }
      used += RELEASE_STEP
      await undefined
      if (performance.now() - turnStart > TURN_BUDGET_MS) over = true
    }
  } finally {
    releasing = false
    if (head === waiting.length) {
      waiting.length = 0
      values.length = 0
      head = 0
    } else if (head > 4096 && head * 2 > waiting.length) {
      waiting.splice(0, head)
      values.splice(0, head)
      head = 0
    }
  }
}

/** Deferred settlements not yet handed back (tests and metrics). */
export function deferredCount(): number {
  return waiting.length - head
}
