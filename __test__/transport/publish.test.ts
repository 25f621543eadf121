// The publisher's watchdog with peer sinks that hang or throw (no network needed): every
// frame is sent or counted lost, the stall is reported with its cause, recovery works by
// policy, and nothing waits forever.
import { afterEach, describe, expect, it } from 'vitest'

import { AudioSource, CapstanError, Publisher, type AudioFrame, type PeerAudioSink, type PeerSinkFactory, type SinkStalledEvent } from '../../dist/index.js'
import { expectInvariant, within } from '../helpers'

const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()))
})

/** Peer sinks that take frames (recording their samples) until told to hang or throw. */
class Peers implements PeerSinkFactory {
  made = 0
  closed = 0
  mode: 'ok' | 'hang' | 'throw' = 'ok'
  /** Samples each sink took, in order. */
  readonly taken: number[][] = []
  async create(): Promise<PeerAudioSink> {
    const mine: number[] = []
    this.taken.push(mine)
    this.made++
    return {
      captureFrame: (f: AudioFrame) => {
        if (this.mode === 'hang') return new Promise<void>(() => {})
        if (this.mode === 'throw') return Promise.reject(new Error('peer says no'))
        mine.push(...f.data)
        return Promise.resolve()
      },
      close: async () => {
        this.closed++
      },
    }
  }
}

const frame = (i: number) => Int16Array.from({ length: 480 }, (_, k) => ((i * 480 + k) % 20000) - 10000)
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5))
  expect(cond()).toBe(true)
}

describe('Publisher watchdog', () => {
  it('a hung peer captureFrame is a stall with its cause; recreate carries on; every frame sent or counted lost', async () => {
    const source = new AudioSource({ sampleRate: 48000, channels: 1, queueMs: 500, overflow: 'wait', deadlineMs: 5000 })
    const peers = new Peers()
    const pub = await Publisher.start(source, peers, { captureTimeoutMs: 100 })
    open.push(pub)
    const stalls: SinkStalledEvent[] = []
    const recovered: number[] = []
    pub.on('sink-stalled', (e) => {
      stalls.push(e)
      peers.mode = 'ok' // the next peer sink works
    })
    pub.on('sink-recovered', (e) => recovered.push(e.stalledMs))
    for (let i = 0; i < 20; i++) await source.captureFrame(frame(i))
    await until(() => pub.metrics().framesSent >= 10)
    peers.mode = 'hang'
    for (let i = 20; i < 40; i++) await source.captureFrame(frame(i))
    await until(() => stalls.length === 1)
    expect(stalls[0].cause).toMatch(/did not settle within 100 ms/)
    await until(() => recovered.length === 1)
    for (let i = 40; i < 60; i++) await source.captureFrame(frame(i))
    await source.waitForPlayout()
    await until(() => pub.metrics().framesRead === pub.metrics().framesSent + pub.metrics().framesLost && pub.metrics().framesRead >= 60)
    const m = pub.metrics()
    expect(m.stalls).toBe(1)
    expect(m.recoveries).toBe(1)
    expect(peers.made).toBe(2)
    expect(peers.closed).toBe(1)
    expect(m.framesLost).toBe(1) // the frame in the hung call
    expect(m.state).toBe('publishing')
    // What the peers took is the audio in order, minus the one lost frame (and any silence
    // of underrun ticks the realtime consumer filled while the producer paused).
    const all = peers.taken.flat()
    expect(all.length).toBe(m.samplesSent)
    expectInvariant(source.metrics())
    expect(recovered[0]).toBeLessThan(2000)
    console.log(JSON.stringify({ recoveredAfterStallMs: recovered[0], captureTimeoutMs: 100, metrics: m }))
  })

  it('manual recovery: the caller chooses recover() or abandon(); abandon stops publishing and nothing hangs', async () => {
    const source = new AudioSource({ sampleRate: 48000, channels: 1, queueMs: 200, overflow: 'drop-oldest' })
    const peers = new Peers()
    const pub = await Publisher.start(source, peers, { captureTimeoutMs: 50, recovery: 'manual' })
    open.push(pub)
    let stalled: SinkStalledEvent | undefined
    pub.on('sink-stalled', (e) => (stalled = e))
    const abandoned: string[] = []
    pub.on('sink-abandoned', (e) => abandoned.push(e.cause))
    peers.mode = 'throw'
    for (let i = 0; i < 10; i++) await source.captureFrame(frame(i))
    await until(() => stalled !== undefined)
    expect(stalled!.cause).toMatch(/peer says no/)
    expect(pub.metrics().state).toBe('stalled')
    peers.mode = 'ok'
    await stalled!.recover()
    expect(pub.metrics().state).toBe('publishing')
    peers.mode = 'hang'
    stalled = undefined
    for (let i = 10; i < 20; i++) await source.captureFrame(frame(i))
    await until(() => stalled !== undefined)
    await stalled!.abandon()
    expect(abandoned).toHaveLength(1)
    expect(pub.metrics().state).toBe('abandoned')
    // The source keeps its own policy: captures still settle, losses counted.
    for (let i = 20; i < 60; i++) expect(['accepted', 'partial']).toContain((await within(source.captureFrame(frame(i)), 2000)).status)
    expectInvariant(source.metrics())
    await within(pub.close(), 3000, 'close after abandon')
  })

  it('keeps the peer leadMs ahead: the first 40 ms go out together, then real time; a new peer sink gets its lead again; nothing lost or reordered', async () => {
    const source = new AudioSource({ sampleRate: 48000, channels: 1, queueMs: 1000, overflow: 'wait' })
    const sinks: Array<{ at: number[]; taken: number[] }> = []
    let hang = false
    const peers: PeerSinkFactory = {
      async create() {
        const mine = { at: [] as number[], taken: [] as number[] }
        sinks.push(mine)
        return {
          captureFrame: (f: AudioFrame) => {
            if (hang) return new Promise<void>(() => {})
            mine.at.push(performance.now())
            mine.taken.push(...f.data)
            return Promise.resolve()
          },
          close: async () => {},
        }
      },
    }
    const pub = await Publisher.start(source, peers, { leadMs: 40, captureTimeoutMs: 100 })
    open.push(pub)
    pub.on('sink-stalled', () => (hang = false))
    const sent: number[] = []
    for (let i = 0; i < 20; i++) {
      const f = frame(i)
      sent.push(...f)
      await source.captureFrame(f)
    }
    await source.waitForPlayout()
    await until(() => pub.metrics().samplesSent >= 9600)
    const [first] = sinks
    // The first 40 ms (two 20 ms frames) reached the peer together, the next 20 ms later.
    expect(first.at[1] - first.at[0]).toBeLessThan(5)
    expect(first.at[2] - first.at[1]).toBeGreaterThan(10)
    expect(pub.metrics().leads).toBe(1)
    // Every sample in order (the realtime reader goes on with silence after the audio).
    expect(first.taken.slice(0, sent.length)).toEqual(sent)
    // A hung peer is replaced; the new one starts empty, so its first frames go out together.
    hang = true
    await until(() => sinks.length === 2 && sinks[1].at.length >= 3)
    expect(sinks[1].at[1] - sinks[1].at[0]).toBeLessThan(5)
    expect(pub.metrics().leads).toBe(2)
    const m = pub.metrics()
    expect(m.framesLost).toBe(1) // the frame in the hung call
    expect(m.framesRead).toBeGreaterThanOrEqual(m.framesSent + m.framesLost)
    // leadMs: 0 sends each frame as it comes.
    const s2 = new AudioSource({ sampleRate: 48000, channels: 1, queueMs: 1000 })
    const at2: number[] = []
    const p2 = await Publisher.start(s2, { create: async () => ({ captureFrame: async () => void at2.push(performance.now()), close: async () => {} }) }, { leadMs: 0 })
    open.push(p2)
    for (let k = 0; k < 6; k++) await s2.captureFrame(frame(k))
    await until(() => p2.metrics().framesSent >= 3)
    expect(at2[1] - at2[0]).toBeGreaterThan(10)
    expect(p2.metrics().leads).toBe(0)
  })

  it('audio held for the lead when the publisher closes is sent, not lost', async () => {
    const source = new AudioSource({ sampleRate: 48000, channels: 1, queueMs: 1000 })
    const taken: number[] = []
    const pub = await Publisher.start(source, { create: async () => ({ captureFrame: async (f: AudioFrame) => void taken.push(...f.data), close: async () => {} }) }, { leadMs: 500, prerollMs: 0 })
    await source.captureFrame(frame(0))
    await source.captureFrame(frame(1))
    await until(() => pub.metrics().framesRead >= 2)
    expect(pub.metrics().framesSent).toBe(0) // held: less than the 500 ms lead
    await within(pub.close(), 3000, 'close')
    const m = pub.metrics()
    expect(m.framesSent).toBe(m.framesRead)
    expect(m.framesLost).toBe(0)
    // (After the silence the realtime consumer played while the source's pre-roll waited.)
    const start = taken.findIndex((v) => v !== 0)
    expect(taken.slice(start, start + 960)).toEqual([...frame(0), ...frame(1)])
  })

  it('refuses a source that capstan does not pace, and bad options', async () => {
    const peers = new Peers()
    const pull = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'pull' })
    open.push(pull)
    await expect(Publisher.start(pull, peers)).rejects.toThrow(CapstanError)
    const rt = new AudioSource({ sampleRate: 48000, channels: 1 })
    open.push(rt)
    await expect(Publisher.start(rt, peers, { captureTimeoutMs: 0 })).rejects.toThrow(/captureTimeoutMs/)
    await expect(Publisher.start(rt, peers, { recovery: 'pray' as never })).rejects.toThrow(/recovery/)
    await expect(Publisher.start(rt, peers, { frameMs: 15 })).rejects.toThrow(/frameMs/)
    for (const leadMs of [-1, 1001, Number.NaN]) await expect(Publisher.start(rt, peers, { leadMs })).rejects.toThrow(/leadMs/)
  })
})
