// The event loop belongs to the caller: plain user code over capstan never keeps timers
// from running. Each scenario runs in its own child process with a deadline, and alone
// (this folder runs after the main suite, one file at a time: vitest.load.config.ts), so
// that the timer gaps measure capstan and not a neighbour's CPU load. Bounds are generous;
// the precise figures are in BENCHMARKS.md.
import { describe, expect, it } from 'vitest'

import { fixture, lastJson, runNode } from '../spawn'

async function scenario(name: string, timeoutMs = 30_000): Promise<any> {
  const r = await runNode([fixture('fairness.cjs'), name], { timeoutMs })
  expect(r.timedOut, `${name} did not finish within ${timeoutMs} ms: ${r.stderr}`).toBe(false)
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return lastJson(r.stdout)
}

describe('the event loop keeps turning', () => {
  it('2,000 plain `await captureFrame` loops (10 ms frames, 1 s queues) for 3 s: timers run, the stop timer fires on time', async () => {
    const r = await scenario('loops')
    expect(r.maxGap).toBeLessThanOrEqual(100)
    expect(r.stopLateMs).toBeLessThanOrEqual(100)
    // The 5 ms interval ran all along (an idle loop gets ~600 ticks in 3 s).
    expect(r.ticks).toBeGreaterThan(150)
    // Start-up fill (1 s of queue each) plus real-time pace: ~2,000 × 400 captures.
    expect(r.calls).toBeGreaterThan(2000 * 250)
    // Every call settled, and the engine counted each one.
    expect(r.settled).toBe(r.calls)
    expect(r.statuses).toEqual({ accepted: r.calls })
    expect(r.invariant).toBe(true)
  })

  it('overload: 10,000 plain loops with 10 ms frames degrade by real-time factor, never by the event loop', async () => {
    const r = await scenario('overload', 60_000)
    // From the end of the caller's own start loop (reported as startLoopMs) to the stop.
    console.log(JSON.stringify({ startLoopMs: r.startLoopMs, maxGap: r.maxGap, stopLateMs: r.stopLateMs }))
    expect(r.maxGap).toBeLessThanOrEqual(100)
    expect(r.stopLateMs).toBeLessThanOrEqual(100)
    // The producers noticed the stop signal promptly too.
    expect(r.stoppedMs).toBeLessThanOrEqual(200)
    expect(r.ticks).toBeGreaterThan(100)
    // Starved consumers are reported, not hidden.
    expect(r.underrunSources).toBeGreaterThan(0)
    expect(r.invariant).toBe(true)
  })

  it('10,000 sources fed by one SourceGroup loop: every round settles, nothing lost, timers run', async () => {
    const r = await scenario('group', 60_000)
    expect(r.maxGap).toBeLessThanOrEqual(100)
    expect(r.stopLateMs).toBeLessThanOrEqual(100)
    expect(r.rounds).toBeGreaterThan(100)
    expect(r.statuses).toEqual({ accepted: r.rounds })
    expect(r.captured).toBe(r.expectedCaptured)
    expect(r.invariant).toBe(true)
  })

  it('loops over calls that settle at once (close, flush, waitForPlayout, a rejected capture, a frames() that ends; an ended encoder, closed byte-stream ends, a closed publisher) leave timers their turn', async () => {
    const r = await scenario('settledLoops')
    expect(r.maxGap).toBeLessThanOrEqual(100)
    expect(r.stopLateMs).toBeLessThanOrEqual(100)
    // Every loop ran (a starving one would leave the others at zero and the timer late).
    for (const [call, n] of Object.entries(r.calls as Record<string, number>)) expect(n, call).toBeGreaterThan(call === 'notify' ? 1 : call === 'clearBuffer' ? 10 : 1000) // notify retries 100 ms apart
  })

  it('a frames() reader over 300 s of queued audio reads every frame, in order, while timers run', async () => {
    const r = await scenario('reader')
    expect(r.accepted).toBe('accepted')
    expect(r.frames).toBe(30000)
    expect(r.exact).toBe(true)
    expect(r.delivered).toBe(48000 * 300)
    expect(r.maxGap).toBeLessThanOrEqual(100)
    // Reading 30,000 frames takes ~100 ms; the timer got turns in between.
    if (r.readMs > 20) expect(r.ticksWhileReading).toBeGreaterThan(0)
  })

  it('AudioStream over a large synchronous iterable: a reader that keeps up gets every frame, in order', async () => {
    const r = await scenario('streamSync')
    expect(r.got).toBe(r.input)
    expect(r.inOrder).toBe(true)
    expect(r.dropped).toBe(0)
    expect(r.invariant).toBe(true)
    expect(r.maxGap).toBeLessThanOrEqual(100)
  })

  it('AudioStream over an async generator of ready frames: every frame, in order', async () => {
    const r = await scenario('streamAsync')
    expect(r.got).toBe(r.input)
    expect(r.inOrder).toBe(true)
    expect(r.dropped).toBe(0)
    expect(r.maxGap).toBeLessThanOrEqual(100)
  })

  it('AudioStream over an endless fast input: break after 5 frames returns promptly and calls the input’s return()', async () => {
    const r = await scenario('streamEndless')
    expect(r.values).toEqual([0, 1, 2, 3, 4])
    expect(r.breakMs).toBeLessThan(1000)
    expect(r.returned).toBe(true)
    expect(r.stillProducing).toBe(false)
    expect(r.maxGap).toBeLessThanOrEqual(100)
  })

  it('AudioStream with a reader slower than real time: the oldest audio drops, counted; the newest arrives', async () => {
    const r = await scenario('streamSlowReader')
    // 100 frames of 480 samples in; whatever was not delivered was dropped (nothing else).
    expect(r.captured).toBe(100 * 480)
    expect(r.delivered + r.dropped).toBe(r.captured)
    expect(r.got * 480).toBe(r.delivered)
    expect(r.dropped).toBeGreaterThan(0)
    // Frames come out in order, and the last one is the input's last one.
    expect(r.values).toEqual([...r.values].sort((a: number, b: number) => a - b))
    expect(r.values.at(-1)).toBe(99)
  })
})
