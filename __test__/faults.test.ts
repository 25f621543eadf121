// The fault matrix: one child process per cell, each with a deadline. In every cell every
// call settles, the accounting invariant holds and the process exits 0 by itself.
import { describe, expect, it } from 'vitest'

import { fixture, lastJson, runNode } from './spawn'

async function cell(
  name: string,
  flags: string[] = [],
  timeoutMs = 30_000,
  checkStderr: (stderr: string) => void = (stderr) => expect(stderr).toBe(''),
): Promise<any> {
  const r = await runNode([...flags, fixture('faults.cjs'), name], { timeoutMs })
  expect(r.timedOut, `${name} hung: ${r.stderr}`).toBe(false)
  checkStderr(r.stderr)
  expect(r.signal).toBeNull()
  expect(r.code).toBe(0)
  return lastJson(r.stdout)
}

/**
 * A caught panic still goes through Rust's panic hook, which reports it on stderr:
 * `thread '…' panicked at <file>:<line>:<col>:`, the message, and (once) a backtrace note.
 * Anything else on stderr fails the cell; returns the panic messages.
 */
function panicReports(stderr: string): string[] {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '')
  const panicLine = /^thread '[^']*'( \(\d+\))? panicked at /
  const message = /^fault processor: panic on call \d+$/
  const note = /^note: run with `RUST_BACKTRACE=1`/
  expect(lines.filter((l) => !panicLine.test(l) && !message.test(l) && !note.test(l)), stderr).toEqual([])
  expect(lines.filter((l) => panicLine.test(l)).length).toBe(lines.filter((l) => message.test(l)).length)
  return lines.filter((l) => message.test(l))
}

/** Five consecutive failures, the fifth bypassing: what a bypassed phase reports. */
const bypassRun = [
  [1, false],
  [2, false],
  [3, false],
  [4, false],
  [5, true],
]

describe('fault matrix', () => {
  it('stalled consumer: waiting captures time out, health goes lagging then stalled', async () => {
    const r = await cell('stalled-consumer')
    expect(r.statuses).toEqual({ timeout: 20 })
    expect(r.states).toEqual(['lagging', 'stalled'])
    expect(r.invariant).toBe(true)
  })

  it('slow, throwing and never-settling JS processors: audio passes through in order, failures counted, bypass, close once', async () => {
    const r = await cell('js-processors')
    for (const mode of ['slow', 'throw', 'promise']) {
      expect(r[mode].frames, mode).toBe(30)
      expect(r[mode].inOrder, mode).toBe(true)
      expect(r[mode].closed, mode).toBe(1)
      expect(r[mode].invariant, mode).toBe(true)
    }
    expect(r.slow).toMatchObject({ calls: 30, failures: 0, overBudget: 30, bypassed: false })
    // Five consecutive failures bypass the processor: it is not called again.
    expect(r.throw).toMatchObject({ calls: 5, failures: 5, bypassed: true })
    expect(r.promise).toMatchObject({ calls: 5, failures: 5, bypassed: true })
  })

  it('a native processor 3x slower than real time: audio arrives whole and in order, overruns counted, the event loop keeps turning', async () => {
    const r = await cell('native-slow')
    expect(r.rounds).toEqual([{ enabledAtStart: true, enabledAtEnd: true, frames: 30, unchanged: true, statuses: { accepted: 30 } }])
    expect(r).toMatchObject({ name: 'fault-sleep', calls: 30, failures: 0, overBudget: 30, bypassed: false, events: [] })
    expect(r.slowEvents).toBeGreaterThan(0)
    expect(r.invariant).toBe(true)
    expect(r.readerDone).toBe(true)
    expect(r.closeMs).toBeLessThan(2000)
    // 30 ms of native sleep per chunk never lands on the JS thread.
    expect(r.loopMaxGapMs).toBeLessThan(1000)
    // close() in the middle of a 200 ms chunk: the waiting captures settle 'closed', the
    // reader reads what was processed and ends.
    const c = r.closeDuring
    expect(c.firstValue).toBe(1)
    expect(Object.keys(c.statuses).sort()).toEqual(['accepted', 'closed'])
    expect(c.statuses.accepted + c.statuses.closed).toBe(20)
    expect(c.readerEnded).toBe(true)
    expect(c.invariant).toBe(true)
    expect(c.settledMs).toBeLessThan(5000)
  })

  // One run of this cell serves the two tests below.
  let slowClose: Promise<any> | undefined
  const closeDuringSlowChunk = () => (slowClose ??= cell('native-slow-close'))

  it('close() of the last source during a 1 s native chunk: every call settles, the reader ends', async () => {
    const r = await closeDuringSlowChunk()
    expect(r.firstValue).toBe(1)
    expect(Object.keys(r.statuses).sort()).toEqual(['accepted', 'closed'])
    expect(r.statuses.accepted + r.statuses.closed).toBe(20)
    expect(r.readerEnded).toBe(true)
    expect(r.invariant).toBe(true)
  })

  // Closing the last source during a slow native chunk used to join the clock threads on
  // the JS thread (the event loop held until the chunk ended: ~1 s here, forever for a
  // processor that hangs). The clocks are now told to stop and joined later.
  it('close() of the last source during a 1 s native chunk does not hold the event loop', async () => {
    const r = await closeDuringSlowChunk()
    expect(r.closeSyncMs).toBeLessThan(100)
    expect(r.loopMaxGapMs).toBeLessThan(250)
  })

  it('a native processor that returns Err: audio passes through unchanged, 5 failures bypass it, setEnabled(true) brings it back', async () => {
    const r = await cell('native-error')
    expect(r.rounds).toEqual([
      { enabledAtStart: true, enabledAtEnd: false, frames: 20, unchanged: true, statuses: { accepted: 20 } },
      { enabledAtStart: true, enabledAtEnd: false, frames: 20, unchanged: true, statuses: { accepted: 20 } },
    ])
    expect(r).toMatchObject({ name: 'fault-error', calls: 10, failures: 10, consecutiveFailures: 5, bypassed: true, enabledAfter: false })
    expect(r.events).toEqual([...bypassRun, ...bypassRun])
    expect(r.eventProcessor).toEqual(['fault-error'])
    expect(r.eventMessage).toBe('fault processor: error on call 1')
    expect(r.invariant).toBe(true)
    expect(r.readerDone).toBe(true)
    expect(r.closeMs).toBeLessThan(2000)
  })

  it('a native processor that panics: caught on the engine thread, audio passes through unchanged, bypass and re-enable; the engine and the process survive', async () => {
    let panics: string[] = []
    const r = await cell('native-panic', [], 30_000, (stderr) => (panics = panicReports(stderr)))
    // Every panic really happened (the hook reported it), and every one was caught.
    expect(panics.length).toBe(10 + 15)
    const { every, alternate, after } = r
    expect(every.rounds).toEqual([
      { enabledAtStart: true, enabledAtEnd: false, frames: 20, unchanged: true, statuses: { accepted: 20 } },
      { enabledAtStart: true, enabledAtEnd: false, frames: 20, unchanged: true, statuses: { accepted: 20 } },
    ])
    expect(every).toMatchObject({ name: 'fault-panic', calls: 10, failures: 10, consecutiveFailures: 5, bypassed: true, enabledAfter: false })
    expect(every.events).toEqual([...bypassRun, ...bypassRun])
    expect(every.eventMessage).toBe('panicked: fault processor: panic on call 1')
    // Panics on every second chunk are never consecutive: counted, never bypassed.
    expect(alternate.rounds).toEqual([{ enabledAtStart: true, enabledAtEnd: true, frames: 30, unchanged: true, statuses: { accepted: 30 } }])
    expect(alternate).toMatchObject({ calls: 30, failures: 15, consecutiveFailures: 1, bypassed: false, enabledAfter: true })
    expect(alternate.events).toEqual(Array.from({ length: 15 }, () => [1, false]))
    for (const x of [every, alternate]) {
      expect(x.invariant).toBe(true)
      expect(x.readerDone).toBe(true)
      expect(x.closeMs).toBeLessThan(2000)
    }
    expect(after).toEqual({ frames: 20, unchanged: true, statuses: { accepted: 20 }, calls: 20, invariant: true })
  })

  it('a listener that throws surfaces as an uncaught exception; no other event or settlement is lost', async () => {
    const r = await cell('throwing-listener')
    expect(r.thrown).toEqual(['listener lagging', 'listener stalled'])
    expect(r.statuses).toEqual({ timeout: 11 })
    expect(r.othersStalled).toBe(10)
    expect(r.invariant).toBe(true)
  })

  it('the caller blocks the event loop for 2 s: captures that got room are accepted, the rest time out, all settle at once after', async () => {
    const r = await cell('blocked-loop')
    expect(r.statuses).toEqual({ accepted: 50, timeout: 10 })
    expect(r.settledMs).toBeLessThan(1000)
    expect(r.invariant).toBe(true)
  })

  it('GC pressure (48 MB heap, allocation churn): 100 sources capture for 2 s', async () => {
    const r = await cell('gc-pressure', ['--max-old-space-size=48'])
    expect(r.captures).toBeGreaterThan(100 * 100)
    expect(r.statuses).toEqual({ accepted: r.captures })
    expect(r.invariant).toBe(true)
  })

  it('close() during waiting captures, a pending flush, a playout wait and a parked reader', async () => {
    const r = await cell('close-during')
    expect(r.statuses.length).toBe(3)
    expect(r.statuses.slice(1)).toEqual(['closed', 'closed'])
    expect(['accepted', 'closed']).toContain(r.statuses[0])
    expect(r.played).toBe('resolved')
    expect(r.readerFrames).toBe(0)
    expect(r.invariant).toBe(true)
  })

  it('a worker capturing in a loop is terminated 20 times in a row; the main thread keeps working', async () => {
    const r = await cell('worker-terminate', [], 60_000)
    expect(r.terminations).toBe(20)
    expect(r.codes).toEqual([1])
    expect(r.mainThread).toBe('accepted')
  })

  it('shutdown() with waiting captures and a parked reader', async () => {
    const r = await cell('shutdown-open')
    expect(r.statuses).toEqual({ closed: 5 })
    expect(r.readerFrames).toBe(0)
    expect(r.closed).toEqual([true, true])
    expect(r.invariant).toBe(true)
  })
})
