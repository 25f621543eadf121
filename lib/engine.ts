import { native } from './errors'
import type { JsEvent, NativeEngine as NativeEngineT, NativeSource as NativeSourceT } from '../index'

// The generated napi-rs loader (index.js) picks the platform binary.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const binding: typeof import('../index') = require('../index.js')

export const { NativeEngine, NativeSource } = binding
export type { NativeEngineT, NativeSourceT }

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
  engine ??= new NativeEngine(null, drainAll)
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

/** Delivers everything pending to its sources: settles captures, emits events. */
export function drainAll(): void {
  if (!engine) return
  const { completions: c, playouts: p, events } = engine.drain()
  // Rows of [sourceId, ...outcome record]; see ./outcome.
  for (let i = 0; i < c.length; i += 7) sources.get(c[i])?.settled(c, i + 1)
  for (let i = 0; i < p.length; i += 2) sources.get(p[i])?.playedOut(p[i + 1])
  for (const e of events) sources.get(e.sourceId)?.event(e)
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
