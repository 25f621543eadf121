// The fault matrix: one child process per cell, each with a deadline. In every cell every
// call settles, the accounting invariant holds and the process exits 0 by itself.
import { describe, expect, it } from 'vitest'

import { fixture, lastJson, runNode } from './spawn'

async function cell(name: string, flags: string[] = [], timeoutMs = 30_000): Promise<any> {
  const r = await runNode([...flags, fixture('faults.cjs'), name], { timeoutMs })
  expect(r.timedOut, `${name} hung: ${r.stderr}`).toBe(false)
  expect(r.stderr).toBe('')
  expect(r.signal).toBeNull()
  expect(r.code).toBe(0)
  return lastJson(r.stdout)
}

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
