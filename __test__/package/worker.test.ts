// capstan in worker_threads: per-environment engines, terminate while capturing, and the
// main thread keeps working; the whole child process exits 0 by itself.
import { expect, it } from 'vitest'

import { fixture, lastJson, runNode } from '../spawn'

it('workers capture and read, one is terminated mid-capture, the main thread keeps working, exit 0', async () => {
  const r = await runNode([fixture('worker-main.cjs')], { timeoutMs: 15_000 })
  expect(r.stderr).toBe('')
  expect(r.signal).toBeNull()
  expect(r.code).toBe(0)
  expect(r.elapsedMs).toBeLessThan(10_000)
  const out = lastJson(r.stdout)

  for (const tag of ['before', 'during', 'after']) {
    expect(out.main).toContainEqual({ tag, accepted: 'accepted', timeout: 'timeout', same: true, invariant: true })
  }
  const goodResult = { status: 'accepted', accepted: 1440, exact: true, delivered: 1440, invariant: true }
  expect(out.goodExit).toBe(0)
  expect(out.good).toEqual([{ mode: 'good', results: new Array(4).fill(goodResult), closed: true }])
  // terminate() ends a worker with exit code 1; it must not crash or hang the process.
  expect(out.busyExit).toBe(1)
  expect(out.busyMessages).toEqual(['capturing'])
  // A worker that leaves its sources open still ends by itself.
  expect(out.idleExit).toBe(0)
  expect(out.idle).toEqual([{ mode: 'leave-open' }])
  expect(out.againExit).toBe(0)
  expect(out.again).toEqual([{ mode: 'good', results: new Array(4).fill(goodResult), closed: true }])
}, 30_000)
