// Shared helpers for the capstan test suite (not a test file itself).
import { expect } from 'vitest'

import { AudioSource, type AudioFrame } from '../dist/index.js'
import type { AudioSourceOptions, SourceMetrics } from '../dist/index.js'

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Interleaved samples `start, start+1, ...` wrapped into the int16 range (negatives included). */
export function ramp(n: number, start = 0): Int16Array {
  const a = new Int16Array(n)
  for (let i = 0; i < n; i++) a[i] = (((start + i) * 7 + 32768) % 65536) - 32768
  return a
}

export function concat(parts: ArrayLike<number>[]): Int16Array {
  const len = parts.reduce((n, p) => n + p.length, 0)
  const out = new Int16Array(len)
  let o = 0
  for (const p of parts) {
    out.set(p as ArrayLike<number>, o)
    o += p.length
  }
  return out
}

/** Plain arrays compare much faster (and print better) than typed arrays in expect(). */
export const arr = (a: ArrayLike<number>): number[] => Array.from(a)

/** The accounting invariant of the contract, checked on a snapshot. */
export function expectInvariant(m: SourceMetrics): void {
  expect(m.captured).toBe(m.delivered + m.queued + m.dropped + m.cleared)
}

/** Sources created through `track` are closed by `closeAll` (use it in afterEach). */
export function tracker() {
  const open = new Set<AudioSource>()
  return {
    make(opts: AudioSourceOptions): AudioSource {
      const s = new AudioSource(opts)
      open.add(s)
      return s
    },
    async closeAll(): Promise<void> {
      const all = [...open]
      open.clear()
      await Promise.all(all.map((s) => s.close()))
    },
  }
}

/** Races a promise against a timer; rejects (fails the test) instead of hanging. */
export async function within<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let t: NodeJS.Timeout | undefined
  const timer = new Promise<never>((_, rej) => {
    t = setTimeout(() => rej(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, timer])
  } finally {
    clearTimeout(t)
  }
}

/** Tracks whether a promise has settled yet (without awaiting it). */
export function track<T>(p: Promise<T>): { readonly settled: boolean; readonly value: T | undefined; promise: Promise<T> } {
  const state = { settled: false, value: undefined as T | undefined, promise: p }
  p.then(
    (v) => {
      state.settled = true
      state.value = v
    },
    () => {
      state.settled = true
    },
  )
  return state
}

/** Polls `cond` until true or `ms` elapse; throws with `what` on timeout. */
export async function waitUntil(cond: () => boolean, ms: number, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(5)
  }
}

/** Reads exactly `n` frames from a (pull) reader, each within `ms`. */
export async function readFrames(it: AsyncIterator<AudioFrame>, n: number, ms = 2000): Promise<AudioFrame[]> {
  const out: AudioFrame[] = []
  for (let i = 0; i < n; i++) {
    const r = await within(it.next(), ms, `frame ${i + 1}/${n}`)
    if (r.done) throw new Error(`reader ended after ${i} of ${n} frames`)
    out.push(r.value)
  }
  return out
}

/** Lets the engine clock tick and the wake-up reach JavaScript a few times. */
export const settleTicks = (ms = 60): Promise<void> => sleep(ms)
