// AudioStream's events: it re-emits every event its internal source emits (the ones
// docs/API.md lists for AudioSource), with the source's payload, and a native processor's
// failures reach the stream's listeners from the engine.
import { afterEach, describe, expect, it } from 'vitest'

import { activate, liveSources } from '../../dist/internal/census.js'
import { __dispatchEvent } from '../../dist/internal/engine.js'
import { nativeOf } from '../../dist/source/source.js'
import { AudioFrame, AudioSource, AudioStream, type AudioSourceEvents, type ProcessorErrorEvent } from '../../dist/index.js'
import { __faultProcessor } from '../../dist/process/processors.js'
import type { JsEvent } from '../../index'
import { waitUntil } from '../helpers'

// The census finds the source a stream made for itself; it counts once an exporter is active.
activate()

const streams: AudioStream[] = []
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()))
})

const C = 480
const frame = (v: number) => new AudioFrame(new Int16Array(C).fill(v), 48000, 1)

/** A stream, and the AudioSource it made for itself (the one source that appeared). */
function streamWithSource(input: Iterable<AudioFrame> | AsyncIterable<AudioFrame>, opts: object = {}): [AudioStream, AudioSource] {
  const before = new Set(liveSources())
  const st = new AudioStream(input, { sampleRate: 48000, channels: 1, ...opts })
  streams.push(st)
  const made = [...liveSources()].filter((s) => !before.has(s))
  expect(made.length).toBe(1)
  return [st, made[0]]
}

/** An input that yields nothing until the test is over. */
async function* idle(): AsyncGenerator<AudioFrame> {
  await new Promise((r) => setTimeout(r, 60_000).unref())
}

/**
 * One engine event of each kind the source turns into a public event (everything but the
 * internal `readable`), as the engine dispatcher hands it over; `closed` last.
 */
const engineEvents: JsEvent[] = [
  { kind: 'health', state: 'lagging', previous: 'healthy', sinceMs: 25, queuedMs: 40, at: 1 },
  { kind: 'overflow', droppedSamples: 480, policy: 'drop-oldest' },
  { kind: 'underrun', ticks: 3 },
  { kind: 'deadline', count: 2, waitedMs: 30, droppedSamples: 960 },
  { kind: 'processor-error', processor: 'gain', message: 'boom', consecutive: 1, bypassed: false },
  { kind: 'processor-slow', processor: 'gain', elapsedUs: 9000, budgetUs: 5000, count: 4 },
  { kind: 'vad', speaking: true, positionMs: 120, at: 2 },
  { kind: 'sink-error', message: 'reader buffer full' },
  { kind: 'closed' },
]

describe('AudioStream events', () => {
  it("re-emits every event of its source, 'sink-error' included, with the source's payload", () => {
    const [st, source] = streamWithSource(idle())
    const names = Object.keys({
      health: 0,
      overflow: 0,
      underrun: 0,
      deadline: 0,
      'processor-error': 0,
      'processor-slow': 0,
      vad: 0,
      'sink-error': 0,
      closed: 0,
    } satisfies Record<keyof AudioSourceEvents, 0>) as (keyof AudioSourceEvents)[]
    const fromSource: [string, unknown][] = []
    const fromStream: [string, unknown][] = []
    for (const n of names) {
      source.on(n, (e: unknown) => fromSource.push([n, e]))
      st.on(n, (e: unknown) => fromStream.push([n, e]))
    }
    for (const e of engineEvents) __dispatchEvent(nativeOf(source).id, e)
    // Every public event was emitted once by the source...
    expect(fromSource.map(([n]) => n).sort()).toEqual([...names].sort())
    // ...and the stream re-emitted each, in order, with the very same payload.
    expect(fromStream.length).toBe(fromSource.length)
    fromStream.forEach(([n, e], i) => {
      expect(n).toBe(fromSource[i][0])
      expect(e).toBe(fromSource[i][1])
    })
    expect(fromStream.find(([n]) => n === 'sink-error')?.[1]).toEqual({ message: 'reader buffer full' })
  })

  it("a failing native processor's 'processor-error' events reach the stream from the engine; the audio is unchanged", async () => {
    const input = Array.from({ length: 20 }, (_, i) => frame(i + 1))
    const [st, source] = streamWithSource(input, {
      processors: [__faultProcessor({ mode: 'error' })],
      processorBypassAfter: 5,
    })
    const onStream: ProcessorErrorEvent[] = []
    const onSource: ProcessorErrorEvent[] = []
    st.on('processor-error', (e) => onStream.push(e))
    source.on('processor-error', (e) => onSource.push(e))
    let closed = 0
    st.on('closed', () => closed++)
    const values: (number | null)[] = []
    for await (const f of st) values.push(f.data.every((x) => x === f.data[0]) ? f.data[0] : null)
    expect(values).toEqual(input.map((_, i) => i + 1))
    await waitUntil(() => onSource.length >= 5 && closed === 1, 5000)
    expect(onStream).toEqual(onSource)
    expect(onStream.map((e) => [e.processor, e.consecutive, e.bypassed])).toEqual([
      ['fault-error', 1, false],
      ['fault-error', 2, false],
      ['fault-error', 3, false],
      ['fault-error', 4, false],
      ['fault-error', 5, true],
    ])
    const m = st.metrics()
    expect(m.processors[0]).toMatchObject({ name: 'fault-error', calls: 5, failures: 5, bypassed: true })
    expect(m.captured).toBe(m.delivered + m.queued + m.dropped + m.cleared)
    expect(closed).toBe(1)
  })

  it('the input ends while a slow native processor still holds its last frames: the reader gets every one, then the end', async () => {
    // One 200 ms frame, then the end: the engine takes its 20 chunks in one pass and
    // processes them at 12 ms each on an engine thread, so its last ones are still there
    // when the queue is empty.
    const N = 20
    const data = new Int16Array(N * C)
    for (let i = 0; i < N; i++) data.fill(i + 1, i * C, (i + 1) * C)
    const [st] = streamWithSource([new AudioFrame(data, 48000, 1)], { processors: [__faultProcessor({ mode: 'sleep', everyN: 1, ms: 12 })] })
    const values: (number | null)[] = []
    for await (const f of st) values.push(f.data.every((x) => x === f.data[0]) ? f.data[0] : null)
    expect(values).toEqual(Array.from({ length: N }, (_, i) => i + 1))
    const m = st.metrics()
    expect([m.captured, m.delivered, m.dropped, m.cleared]).toEqual([N * C, N * C, 0, 0])
  })
})
