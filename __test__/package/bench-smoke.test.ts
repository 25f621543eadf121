// The benchmark harness in smoke mode (`npm run bench:smoke`): every scenario for ~1-2 s with
// 20 sources, both libraries, in child processes. Asserts it completes in time and reports
// well-formed numbers; it does not judge performance (other test files run in parallel).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { afterAll, describe, expect, it } from 'vitest'

import { runNode } from '../spawn'

const dir = mkdtempSync(path.join(os.tmpdir(), 'capstan-bench-smoke-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const finite = (x: unknown): number => {
  expect(typeof x).toBe('number')
  expect(Number.isFinite(x)).toBe(true)
  return x as number
}

function expectDelay(h: { p50: number; p99: number; max: number }): void {
  expect(finite(h.p50)).toBeGreaterThanOrEqual(0)
  expect(finite(h.p99)).toBeGreaterThanOrEqual(h.p50)
  expect(finite(h.max)).toBeGreaterThanOrEqual(h.p99 - 1e-9)
}

describe('benchmark harness (smoke)', () => {
  it('runs every scenario for both libraries in < 60 s and reports well-formed numbers', { timeout: 120_000 }, async () => {
    const out = path.join(dir, 'smoke.json')
    const r = await runNode(['benchmark/bench.mjs', '--smoke', '--out', out], { timeoutMs: 90_000 })
    expect(r.timedOut, r.stdout + r.stderr).toBe(false)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.elapsedMs).toBeLessThan(120_000) // a bound on hanging, not a speed figure

    // markdown on stdout
    expect(r.stdout).toContain('| N | library | RTF min | RTF avg |')
    expect(r.stdout).toMatch(/^\| 20 \| capstan \| \d+\.\d{3} \| \d+\.\d{3} \|/m)
    expect(r.stdout).toMatch(/^\| 20 \| livekit \| \d+\.\d{3} \| \d+\.\d{3} \|/m)
    expect(r.stdout).toContain('#### capstan / livekit at the same N')
    expect(r.stdout).not.toContain('FAILED')

    const { meta, results } = JSON.parse(readFileSync(out, 'utf8'))
    expect(meta.livekitRtcNode).toBe('1.1.0')
    expect(readFileSync(out.replace(/\.json$/, '.md'), 'utf8')).toContain('| N | library |')

    for (const frameMs of [10, 100]) {
      for (const lib of ['capstan', 'livekit']) {
        const x = results[`realtime/${frameMs}/20/${lib}`]
        expect(x, `realtime ${lib} ${frameMs} ms`).toBeDefined()
        expect(x.failed, x.error).toBeUndefined()
        expect(x).toMatchObject({ scenario: 'realtime', lib, n: 20, frameMs })
        for (const k of ['rtfMin', 'rtfAvg', 'acceptedRtfMin', 'acceptedRtfAvg']) {
          expect(finite(x[k]), k).toBeGreaterThan(0)
          expect(x[k], k).toBeLessThan(2)
        }
        expect(x.rtfMin).toBeLessThanOrEqual(x.rtfAvg + 1e-9)
        expect(finite(x.windowS)).toBeGreaterThan(0.5)
        expect(finite(x.frames)).toBeGreaterThan(0)
        expect(finite(x.cpuUsPerFrame)).toBeGreaterThan(0)
        expectDelay(x.eld)
        expectDelay(x.capture)
        expect(Number.isInteger(x.nonAccepted) && x.nonAccepted >= 0).toBe(true)
        if (lib === 'capstan') expect(Number.isInteger(x.underruns)).toBe(true)
      }
    }

    for (const key of ['capstan-unpaced-200', 'capstan-unpaced-full', 'capstan-realtime-full', 'livekit']) {
      const b = results[`burst/${key}`]
      expect(b, key).toBeDefined()
      expect(b.failed, b.error).toBeUndefined()
      expect(finite(b.acceptedMsMedian)).toBeGreaterThan(0)
      expect(finite(b.acceptedMBpsMedian)).toBeGreaterThan(0)
      expect(b.frames).toBe(1000)
      expect(b.nonAccepted).toBe(0)
    }
    expect(finite(results['burst/capstan-unpaced-200'].playoutMsMedian)).toBeGreaterThan(0)

    const t = results.try
    expect(t.failed, t.error).toBeUndefined()
    expect(t.results).toHaveLength(3)
    for (const x of t.results) {
      expect(finite(x.nsPerCall)).toBeGreaterThan(0)
      expect(finite(x.callsPerSec)).toBeGreaterThan(0)
      expect(x.invariant).toBe(true)
    }

    const s = results.stall
    expect(s.failed, s.error).toBeUndefined()
    expect(s.n).toBe(20)
    expect(finite(s.pushes)).toBeGreaterThan(0)
    expect(finite(s.totalEvents)).toBeGreaterThan(0)
    expect(s.events.overflow).toBeGreaterThan(0)
    expect(s.invariant).toBe(true)
    expectDelay(s.eld)
  })
})
