// collectMetrics: capstan's counters on a real prom-client registry match metrics().
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'

import { AudioEncoder, AudioSource } from '../../dist/index.js'
import { collectMetrics } from '../../dist/ops/index.js'
import { within } from '../helpers'
import { lastJson, runNode } from '../spawn'

const C = 480
const open: AudioSource[] = []
let stop: (() => void) | undefined
afterEach(async () => {
  stop?.()
  stop = undefined
  await Promise.all(open.splice(0).map((s) => s.close()))
})
const make = (name?: string, extra: object = {}) => {
  const s = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'pull', queueMs: 20, overflow: 'drop-newest', ...(name === undefined ? {} : { name }), ...extra })
  open.push(s)
  return s
}

/** The text exposition as `name{labels} -> value`, checking every sample line parses. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line)
    expect(m, `unparsable line: ${line}`).not.toBeNull()
    out.set(m![1] + (m![2] ?? ''), Number(m![3]))
  }
  return out
}

describe('collectMetrics (prom-client)', () => {
  it('per-name series sum their sources, unnamed sources share source="", closed sources keep counting', async () => {
    const reg = new Registry()
    stop = collectMetrics(reg)
    const a = make('tts')
    const b = make('tts')
    const c = make()
    a.tryCaptureFrame(new Int16Array(3 * C)) // 2 chunks fit, 1 dropped (drop-newest)
    b.tryCaptureFrame(new Int16Array(C))
    c.tryCaptureFrame(new Int16Array(2 * C))
    await new Promise((r) => setTimeout(r, 300)) // past the snapshot's lifetime
    let m = parse(await reg.metrics())
    expect(m.get('capstan_captured_samples_total{source="tts"}')).toBe(a.metrics().captured + b.metrics().captured)
    expect(m.get('capstan_captured_samples_total{source="tts"}')).toBe(4 * C)
    expect(m.get('capstan_dropped_samples_total{source="tts"}')).toBe(C)
    expect(m.get('capstan_captured_samples_total{source=""}')).toBe(2 * C)
    expect(m.get('capstan_captures_total{source="tts",status="partial"}')).toBe(1)
    expect(m.get('capstan_captures_total{source="tts",status="accepted"}')).toBe(1)
    expect(m.get('capstan_queued_seconds{source="tts"}')).toBeCloseTo(0.03, 6)
    // Nobody reads these pull sources: by now they are lagging or stalled, as their getters say.
    const byHealth = (name: string) =>
      Object.fromEntries(['healthy', 'lagging', 'stalled', 'recovered'].map((h) => [h, m.get(`capstan_sources{source="${name}",health="${h}"}`)]))
    const want = { healthy: 0, lagging: 0, stalled: 0, recovered: 0 } as Record<string, number>
    for (const s of [a, b]) want[s.health]++
    expect(byHealth('tts')).toEqual(want)
    // Closing moves a source's final counts into the totals: counters never go down.
    await b.close()
    await new Promise((r) => setTimeout(r, 300))
    m = parse(await reg.metrics())
    expect(m.get('capstan_captured_samples_total{source="tts"}')).toBe(4 * C)
    expect(m.get('capstan_cleared_samples_total{source="tts"}')).toBe(C)
    const after = ['healthy', 'lagging', 'stalled', 'recovered'].map((h) => m.get(`capstan_sources{source="tts",health="${h}"}`) ?? 0)
    expect(after.reduce((x, y) => x + y, 0)).toBe(1)
  })

  it('encoders export bytes, pieces and segments by source and format, matching their metrics()', async () => {
    const reg = new Registry()
    stop = collectMetrics(reg)
    const enc = new AudioEncoder({ sampleRate: 16000, channels: 1, format: 'pcm-s16le', name: 'stt', queueBytes: 1600, overflow: 'drop-oldest' })
    enc.push(new Int16Array(1600)) // 100 ms: 3,200 bytes into a 1,600-byte output
    await within(enc.segment(), 5000)
    await new Promise((r) => setTimeout(r, 300))
    let m = parse(await reg.metrics())
    const em = enc.metrics()
    const label = '{source="stt",format="pcm-s16le"}'
    expect(m.get(`capstan_encoded_bytes_total${label}`)).toBe(3200)
    expect(m.get(`capstan_encoded_dropped_bytes_total${label}`)).toBe(em.droppedBytes)
    expect(m.get(`capstan_encoded_cleared_bytes_total${label}`)).toBe(0)
    expect(m.get(`capstan_encoded_queued_bytes${label}`)).toBe(em.queuedBytes)
    expect(em.droppedBytes + em.queuedBytes).toBe(3200)
    expect(m.get(`capstan_encoded_pieces_total${label}`)).toBe(10)
    expect(m.get(`capstan_encoded_segments_total${label}`)).toBe(1)
    // Read to its end, the stream leaves its final counts in the totals.
    const reading = (async () => {
      for await (const _ of enc) void _
    })()
    await within(enc.finish(), 5000)
    await within(reading, 5000)
    await new Promise((r) => setTimeout(r, 300))
    m = parse(await reg.metrics())
    expect(m.get(`capstan_encoded_read_bytes_total${label}`)).toBe(enc.metrics().readBytes)
    expect(m.get(`capstan_encoded_segments_total${label}`)).toBe(2)
  })

  it('captures that waited land in the capture-wait histogram', async () => {
    const reg = new Registry()
    stop = collectMetrics(reg)
    const s = make('w', { overflow: 'wait', queueMs: 10, deadlineMs: 50 })
    s.tryCaptureFrame(new Int16Array(C))
    const o = await within(s.captureFrame(new Int16Array(C)), 2000, 'the waiting capture')
    expect(o.status).toBe('timeout')
    const m = parse(await reg.metrics())
    expect(m.get('capstan_capture_wait_seconds_count{source="w"}')).toBe(1)
    expect(m.get('capstan_capture_wait_seconds_bucket{le="0.02",source="w"}')).toBe(0)
    // Generous: a loaded machine may settle the 50 ms deadline late (timing belongs in benchmarks).
    expect(m.get('capstan_capture_wait_seconds_bucket{le="5",source="w"}')).toBe(1)
    expect(m.get('capstan_underruns_total{source="w"}')).toBe(s.metrics().underruns)
  })

  it('unregisters, and a bad name option is a typed error', async () => {
    const reg = new Registry()
    stop = collectMetrics(reg, { prefix: 'x_' })
    expect(await reg.metrics()).toContain('x_captured_samples_total')
    stop()
    stop = undefined
    expect(await reg.metrics()).not.toContain('x_')
    expect(() => new AudioSource({ sampleRate: 48000, channels: 1, name: 5 as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    )
  })
})

describe('collectMetrics: registries, the census and what it holds (issue 16, items 6 and 15)', () => {
  it('two registries each get every capture wait; the same registry twice is ERR_INVALID_STATE and leaves nothing behind', async () => {
    const r1 = new Registry()
    const r2 = new Registry()
    const stop1 = collectMetrics(r1)
    const stop2 = collectMetrics(r2)
    try {
      expect(() => collectMetrics(r1)).toThrow(expect.objectContaining({ name: 'CapstanError', code: 'ERR_INVALID_STATE' }))
      // Another exporter's metric under one of our names: refused, and none of ours stays.
      const r3 = new Registry()
      const { Counter } = await import('prom-client')
      new Counter({ name: 'y_encoded_bytes_total', help: 'not ours', registers: [r3] })
      expect(() => collectMetrics(r3, { prefix: 'y_' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
      expect(r3.getMetricsAsArray().map((m) => m.name)).toEqual(['y_encoded_bytes_total'])
      // A capture that has to wait: both histograms count it.
      const s = make('waits', { queueMs: 10, overflow: 'wait', consumer: 'realtime' })
      s.tryCaptureFrame(new Int16Array(C))
      const o = await s.captureFrame(new Int16Array(C))
      expect(o.status).toBe('accepted')
      for (const reg of [r1, r2]) {
        const m = parse(await reg.metrics())
        expect(m.get('capstan_capture_wait_seconds_count{source="waits"}'), 'each registry saw the wait').toBe(1)
      }
    } finally {
      stop1()
      stop2()
    }
  })

  it('an encoder dropped unread is collected, its counts kept: the census holds no stream', async () => {
    // A child with --expose-gc: collection is observed with a FinalizationRegistry of its own.
    const script = `
      const { AudioSource } = require('./dist/index.js')
      const { collectMetrics } = require('./dist/ops/index.js')
      const { Registry } = require('prom-client')
      const reg = new Registry()
      collectMetrics(reg)
      const N = 200
      let collected = 0
      const watch = new FinalizationRegistry(() => collected++)
      let produced = 0
      // In a function of its own: the frame of a loop still running would hold its last stream.
      async function makeAndDrop() {
        for (let i = 0; i < N; i++) {
          const s = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'unpaced', name: 'unread' })
          const e = s.encode({ format: 'wav' })
          s.tryCaptureFrame(new Int16Array(4800))
          await e.finish()
          await s.close()
          produced += e.metrics().producedBytes
          watch.register(e, i)
        }
      }
      ;(async () => {
        await makeAndDrop()
        for (let k = 0; k < 20 && collected < N; k++) {
          global.gc()
          await new Promise((r) => setTimeout(r, 20))
        }
        const text = await reg.metrics()
        const val = (n) => Number(new RegExp('^' + n + '\\\\{source="unread",format="wav"\\\\} (\\\\S+)$', 'm').exec(text)?.[1])
        console.log(JSON.stringify({ collected, produced, total: val('capstan_encoded_bytes_total'), cleared: val('capstan_encoded_cleared_bytes_total'), queued: val('capstan_encoded_queued_bytes') }))
      })()`
    const r = await runNode(['--expose-gc', '-e', script], { timeoutMs: 60_000 })
    expect(r.stderr).toBe('')
    const out = lastJson(r.stdout)
    // Every stream was collected (the census held none of them)...
    expect(out.collected).toBe(200)
    // ...and nothing it produced went uncounted: its unread bytes are cleared, not lost.
    expect(out.produced).toBeGreaterThan(200 * 9600)
    expect(out.total).toBe(out.produced)
    expect(out.cleared).toBe(out.produced)
    expect(out.queued).toBe(0)
  })

  it('without an exporter nothing is counted: the census is empty however many sources run', async () => {
    const { liveSources } = await import('../../dist/internal/census.js')
    const before = liveSources().size
    const a = make('quiet')
    const b = make('quiet')
    a.tryCaptureFrame(new Int16Array(C))
    b.tryCaptureFrame(new Int16Array(C))
    expect(liveSources().size).toBe(before)
    expect(before).toBe(0)
  })
})
