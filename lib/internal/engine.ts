import { CONTRACT, binding } from './binding'
import type { JsEvent, NativeEngine as NativeEngineT, NativeGroup as NativeGroupT, NativeMixer as NativeMixerT, NativeSource as NativeSourceT } from './binding'
import { native } from './errors'

export const { NativeEngine, NativeGroup, NativeMixer, NativeSource } = binding
export type { NativeEngineT, NativeGroupT, NativeMixerT, NativeSourceT }

/** What a source needs from the engine dispatcher. */
export interface Dispatchable {
  /** A waiting capture settled: its outcome record starts at `rec[at]`. */
  settled(rec: Float64Array, at: number): void
  playedOut(id: number): void
  event(e: JsEvent): void
}

const sources = new Map<number, Dispatchable>()
let engine: NativeEngineT | undefined

/**
 * The engine for this JavaScript environment (each worker thread loads its own). Its
 * clock threads run only while sources are open; its wake-up is a weak threadsafe
 * function, so it never keeps the process alive.
 */
export function getEngine(): NativeEngineT {
  engine ??= new NativeEngine(null, wake)
  return engine
}

export function register(id: number, s: Dispatchable): void {
  sources.set(id, s)
}

export function unregister(id: number): void {
  sources.delete(id)
}

let holds = 0

/**
 * Counts promises only the engine can settle; while there are any, the engine's wake-up
 * keeps the event loop alive (like pending I/O), and lets it go when there are none.
 */
export function hold(): void {
  if (holds++ === 0) getEngine().keepAlive(true)
}

export function release(): void {
  if (--holds === 0) getEngine().keepAlive(false)
}

/** Captures settled per macrotask when the engine wakes us; the rest go on next turn. */
const SLICE = 256
/** Numbers per completion row, `[sourceId, ...outcome record]` (the core's layout; see ./outcome). */
const ROW = CONTRACT.completionRow
/** Settled-capture rows not yet handed to their sources, oldest first. */
const backlog: Float64Array[] = []
let at = 0
let continuing = false

function settle(limit: number): void {
  while (backlog.length > 0 && limit > 0) {
    const c = backlog[0]
    for (; at < c.length && limit > 0; at += ROW, limit--) sources.get(c[at])?.settled(c, at + 1)
    if (at >= c.length) {
      backlog.shift()
      at = 0
    }
  }
}

/**
 * Delivers what the engine has pending: settles captures, resolves playouts, emits
 * events. Woken by the engine, it settles at most SLICE captures per macrotask, so the
 * continuations of thousands of captures that settle on one tick cannot hold timers and
 * I/O back for long; calls that must settle synchronously (close, clear, abort) pass
 * `everything`.
 */
export function drainAll(everything = true): void {
  if (!engine) return
  const { completions, playouts: p, events, more } = engine.drain(everything ? null : SLICE)
  if (completions.length > 0) backlog.push(completions)
  settle(everything ? Infinity : SLICE)
  for (let i = 0; i < p.length; i += 2) sources.get(p[i])?.playedOut(p[i + 1])
  for (const { sourceId, event } of events) {
    try {
      sources.get(sourceId)?.event(event)
    } catch (e) {
      // A listener that throws is the caller's bug, reported as Node reports any throwing
      // listener (an uncaught exception), but never at the cost of the other sources'
      // events and settlements in this batch.
      process.nextTick(() => {
        throw e
      })
    }
  }
  if (more || backlog.length > 0) wake()
}

/**
 * The engine's wake-up. It only schedules a drain for the check phase: Node may deliver
 * many queued wake-ups in one go, and draining in each would undo the slicing.
 */
function wake(): void {
  if (continuing) return
  continuing = true
  setImmediate(() => {
    continuing = false
    drainAll(false)
  })
}

/** Closes every source of this environment and joins the engine's threads. */
export function shutdown(): void {
  if (!engine) return
  engine.shutdown()
  drainAll()
  // A shut-down engine has dropped its wake-up; the next source gets a fresh engine.
  if (holds > 0) engine.keepAlive(false)
  holds = 0
  engine = undefined
}

/** Triggers a Rust panic inside the binding (it surfaces as `ERR_NATIVE_PANIC`). */
export function debugPanic(message: string): void {
  native(() => binding.debugPanic(message))
}

/**
 * TEST-ONLY, not exported from the package: hands `e` to a source's dispatcher as the engine
 * would, so the suite can show what each event kind becomes without forcing it natively.
 */
export function __dispatchEvent(id: number, e: JsEvent): void {
  sources.get(id)?.event(e)
}
