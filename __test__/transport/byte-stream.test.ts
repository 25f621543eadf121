// Byte-stream audio (LiveKit agents' avatar wire format) over in-process transports:
// sample-exact delivery, segments, interruption, playback-finished, bad streams, departures.
import { afterEach, describe, expect, it } from 'vitest'

import {
  AudioFrame,
  AudioSegmentEnd,
  AudioSource,
  ByteStreamAudioReceiver,
  ByteStreamAudioSender,
  CapstanError,
  memoryTransports,
  type AudioTransport,
} from '../../dist/index.js'
import { expectInvariant, within } from '../helpers'

const closers: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
})

function ramp(n: number, start = 0): Int16Array {
  return Int16Array.from({ length: n }, (_, i) => ((start + i) % 30000) - 15000)
}

function setup(o: { rate?: number; channels?: number; chunkBytes?: number; clearTimeoutMs?: number } = {}) {
  const [agent, avatar] = memoryTransports('agent', 'avatar')
  const source = new AudioSource({ sampleRate: o.rate ?? 48000, channels: o.channels ?? 1, consumer: 'unpaced', queueMs: 2000 })
  const sender = new ByteStreamAudioSender(source, agent, { destination: 'avatar', chunkBytes: o.chunkBytes, clearTimeoutMs: o.clearTimeoutMs ?? 500 })
  const receiver = new ByteStreamAudioReceiver(avatar, { sender: 'agent', queueMs: 5000 })
  closers.push(() => source.close(), () => sender.close(), () => receiver.close())
  return { agent, avatar, source, sender, receiver }
}

/** Reads frames until `segments` segment ends; returns the samples of each segment. */
async function read(rx: ByteStreamAudioReceiver, segments: number, onFrame?: (f: AudioFrame) => void, frameDelayMs = 0) {
  const out: Array<{ samples: number[]; end: AudioSegmentEnd }> = []
  let cur: number[] = []
  for await (const item of rx) {
    if (item instanceof AudioSegmentEnd) {
      out.push({ samples: cur, end: item })
      cur = []
      if (out.length === segments) break
    } else {
      expect(item.samplesPerChannel).toBe(item.sampleRate / 100)
      onFrame?.(item)
      cur.push(...item.data)
      // A player that takes its time, so an interruption finds audio still queued.
      if (frameDelayMs > 0) await new Promise((r) => setTimeout(r, frameDelayMs))
    }
  }
  return out
}

describe('ByteStreamAudioSender → ByteStreamAudioReceiver', () => {
  it('delivers sample-exact audio as 10 ms frames, one byte stream per segment, chunks ≤ 15,000 bytes of whole frames', async () => {
    const { agent, avatar, source, sender, receiver } = setup({ rate: 44100, channels: 2 })
    const chunkSizes: number[] = []
    const attrs: Array<Record<string, string>> = []
    avatar.onStream('lk.audio_stream', (s) => {
      attrs.push({ ...s.attributes })
    })
    // Watch the wire: wrap the transport's writer sizes through a second listener.
    void agent
    const a = ramp(44100 * 2 * 0.5) // 0.5 s stereo
    const b = ramp(44100 * 2 * 0.25 + 2 * 7, 5) // 0.25 s + 7 frames: the receiver pads its last 10 ms
    const reading = read(receiver, 2, (f) => chunkSizes.push(f.data.length))
    await source.captureFrame(a)
    await sender.flush()
    await source.captureFrame(b)
    await sender.flush()
    const segs = await within(reading, 10_000, 'reader')
    expect(Array.from(segs[0].samples)).toEqual(Array.from(a))
    const pad = 441 * 2 - ((44100 * 2 * 0.25 + 14) % (441 * 2))
    expect(segs[1].samples.length).toBe(b.length + pad)
    expect(segs[1].samples.slice(0, b.length)).toEqual(Array.from(b))
    expect(segs[1].samples.slice(b.length).every((v) => v === 0)).toBe(true)
    expect(segs.map((s) => s.end.interrupted)).toEqual([false, false])
    expect(attrs).toEqual([
      { sample_rate: '44100', num_channels: '2' },
      { sample_rate: '44100', num_channels: '2' },
    ])
    const m = sender.metrics()
    expect(m.streams).toBe(2)
    // The wire carries exactly the audio (the sender's PCM stream is sample-exact); only the
    // receiver's last 10 ms frame is padded.
    expect(m.bytesSent).toBe((a.length + b.length) * 2)
    expect(m.chunksSent).toBeGreaterThanOrEqual(Math.ceil(m.bytesSent / 15000))
    expect(m.unsentBytes).toBe(0)
    expectInvariant(source.metrics())
    expectInvariant(receiver.metrics().queue!)
  })

  it('splits into chunks of at most chunkBytes holding whole frames', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    const sizes: number[] = []
    avatar.onStream('lk.audio_stream', async (s) => {
      for await (const c of s) sizes.push(c.length)
    })
    const source = new AudioSource({ sampleRate: 48000, channels: 2, consumer: 'unpaced' })
    const sender = new ByteStreamAudioSender(source, agent, { destination: 'avatar', chunkBytes: 1000 })
    closers.push(() => source.close(), () => sender.close())
    await source.captureFrame(ramp(48000 * 2 * 0.1))
    await sender.flush()
    const until = Date.now() + 5000
    while (sizes.reduce((x, y) => x + y, 0) < 19200 && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(19200)
    for (const s of sizes) {
      expect(s).toBeLessThanOrEqual(1000)
      expect(s % 4).toBe(0)
    }
  })

  it('clearBuffer interrupts: queued audio is cleared and counted, the receiver clears and its playback-finished answer resolves', async () => {
    const { avatar, source, sender, receiver } = setup()
    const cleared: string[] = []
    receiver.on('clear-buffer', () => cleared.push('rx'))
    const got = read(receiver, 1, undefined, 2)
    void avatar
    // Fill the sender side with 1.5 s; the reader reads some then the agent interrupts.
    const capture = source.captureFrame(ramp(72_000))
    receiver.on('clear-buffer', () => {
      void receiver.notifyPlaybackFinished({ playbackPosition: 0.42, interrupted: true })
    })
    await new Promise((r) => setTimeout(r, 20))
    const finished = await within(sender.clearBuffer(), 5000, 'clearBuffer')
    expect(finished).toEqual({ playbackPosition: 0.42, interrupted: true, status: 'finished' })
    expect(cleared).toEqual(['rx'])
    await capture
    const [seg] = await within(got, 5000, 'segment end after clear')
    expect(seg.end.interrupted).toBe(true)
    expect(seg.samples.length).toBeLessThan(72_000)
    // Whatever the receiver yielded is a prefix of what was sent: nothing reordered or invented.
    expect(seg.samples).toEqual(Array.from(ramp(72_000)).slice(0, seg.samples.length))
    expectInvariant(source.metrics())
    const em = sender.metrics().encoder
    expect(em.producedBytes).toBe(em.readBytes + em.queuedBytes + em.droppedBytes + em.clearedBytes)
    // After the interruption a new segment flows normally.
    const next = read(receiver, 1)
    await source.captureFrame(ramp(4800, 7))
    await sender.flush()
    const [seg2] = await within(next, 5000)
    expect(seg2.samples).toEqual(Array.from(ramp(4800, 7)))
    expect(seg2.end.interrupted).toBe(false)
  })

  it('a receiver that never answers: clearBuffer settles with status timeout after clearTimeoutMs', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    avatar.handle('lk.clear_buffer', () => 'ok') // answers the clear, never reports playback finished
    const source = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced' })
    const sender = new ByteStreamAudioSender(source, agent, { destination: 'avatar', clearTimeoutMs: 200 })
    closers.push(() => source.close(), () => sender.close())
    const t = performance.now()
    const p = await within(sender.clearBuffer(), 3000)
    expect(p.status).toBe('timeout')
    expect(p.interrupted).toBe(true)
    expect(performance.now() - t).toBeGreaterThanOrEqual(150)
  })

  it('the receiver ignores other senders and skips streams without usable attributes, with a typed event', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    const receiver = new ByteStreamAudioReceiver(avatar, { sender: 'someone-else' })
    closers.push(() => receiver.close())
    const w = await agent.openStream({ to: 'avatar', topic: 'lk.audio_stream', attributes: { sample_rate: '48000', num_channels: '1' } })
    await w.write(new Uint8Array(960))
    await w.close()
    expect(receiver.metrics().ignoredStreams).toBe(1)

    const [agent2, avatar2] = memoryTransports('agent', 'avatar')
    const rx = new ByteStreamAudioReceiver(avatar2, { sender: 'agent' })
    closers.push(() => rx.close())
    const errors: CapstanError[] = []
    rx.on('stream-error', (e) => errors.push(e))
    for (const attributes of [{}, { sample_rate: 'abc', num_channels: '1' }, { sample_rate: '48000', num_channels: '0' }]) {
      const bad = await agent2.openStream({ to: 'avatar', topic: 'lk.audio_stream', attributes })
      await bad.write(new Uint8Array(100))
      await bad.close()
    }
    const good = await agent2.openStream({ to: 'avatar', topic: 'lk.audio_stream', attributes: { sample_rate: '48000', num_channels: '1' } })
    // Odd-sized chunks: partial samples are carried over.
    const pcm = new Uint8Array(ramp(960).buffer)
    await good.write(pcm.subarray(0, 333))
    await good.write(pcm.subarray(333, 1001))
    await good.write(pcm.subarray(1001))
    await good.close()
    const [seg] = await within(read(rx, 1), 5000)
    expect(seg.samples).toEqual(Array.from(ramp(960)))
    expect(errors.map((e) => e.code)).toEqual(['ERR_INVALID_STREAM', 'ERR_INVALID_STREAM', 'ERR_INVALID_STREAM'])
    expect(rx.metrics().rejectedStreams).toBe(3)
    expect(rx.metrics().discardedBytes).toBe(300)
  })

  it('when the receiver leaves, the sender reports it and pending waits settle peer-left; writes fail and are counted', async () => {
    const { avatar, source, sender } = setup()
    const left: string[] = []
    sender.on('peer-left', (e) => left.push(e.identity))
    const errors: CapstanError[] = []
    sender.on('error', (e) => errors.push(e))
    const wait = sender.waitForPlayback()
    ;(avatar as AudioTransport & { leave(): void }).leave()
    expect(await within(wait, 1000)).toMatchObject({ status: 'peer-left', interrupted: true })
    expect(left).toEqual(['avatar'])
    await source.captureFrame(ramp(4800))
    await sender.flush()
    const until = Date.now() + 5000
    while (sender.metrics().unsentBytes < 9600 && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
    expect(sender.metrics().unsentBytes).toBe(9600)
    expect(errors[0]?.code).toBe('ERR_TRANSPORT')
    const c = await within(sender.clearBuffer(), 3000)
    expect(c.status).toBe('timeout')
  })

  it('the receiver reports its sender leaving; notifications to it settle false', async () => {
    const { agent, receiver } = setup()
    const left: string[] = []
    receiver.on('peer-left', (e) => left.push(e.identity))
    ;(agent as AudioTransport & { leave(): void }).leave()
    expect(left).toEqual(['agent'])
    expect(await within(receiver.notifyPlaybackFinished({ playbackPosition: 1, interrupted: false }), 3000)).toBe(false)
  })

  it('refuses bad options with typed errors', () => {
    const [agent, avatar] = memoryTransports()
    const s = new AudioSource({ sampleRate: 48000, channels: 1 })
    closers.push(() => s.close())
    expect(() => new ByteStreamAudioSender(s, agent, {} as never)).toThrow(/destination/)
    expect(() => new ByteStreamAudioSender(s, agent, { destination: 'x', chunkBytes: 1 })).toThrow(/chunkBytes/)
    expect(() => new ByteStreamAudioReceiver(avatar, {} as never)).toThrow(/sender/)
  })
})

describe('ByteStreamAudioReceiver: streams that end badly', () => {
  it('a stream superseded by a newer one (its end lost) ends its segment interrupted; a stream of another format is skipped with ERR_FORMAT_MISMATCH', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    const rx = new ByteStreamAudioReceiver(avatar, { sender: 'agent' })
    closers.push(() => rx.close())
    const errors: CapstanError[] = []
    rx.on('stream-error', (e) => errors.push(e))
    const attributes = { sample_rate: '48000', num_channels: '1' }
    const lost = await agent.openStream({ to: 'avatar', topic: 'lk.audio_stream', attributes })
    await lost.write(new Uint8Array(ramp(960).buffer)) // never closed
    const reading = read(rx, 2)
    await new Promise((r) => setTimeout(r, 50))
    const other = await agent.openStream({ to: 'avatar', topic: 'lk.audio_stream', attributes: { sample_rate: '16000', num_channels: '1' } })
    await other.write(new Uint8Array(320))
    await other.close()
    const next = await agent.openStream({ to: 'avatar', topic: 'lk.audio_stream', attributes })
    await next.write(new Uint8Array(ramp(480, 3).buffer))
    await next.close()
    const [a, b] = await within(reading, 5000)
    expect(a.samples).toEqual(Array.from(ramp(960)))
    expect(a.end.interrupted).toBe(true)
    expect(b.samples).toEqual(Array.from(ramp(480, 3)))
    expect(b.end.interrupted).toBe(false)
    expect(errors.map((e) => e.code)).toEqual(['ERR_FORMAT_MISMATCH'])
    expect(rx.metrics().rejectedStreams).toBe(1)
  })

  it('a stream that stays idle past idleTimeoutMs ends its segment interrupted', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    const rx = new ByteStreamAudioReceiver(avatar, { sender: 'agent', idleTimeoutMs: 100 })
    closers.push(() => rx.close())
    const w = await agent.openStream({ to: 'avatar', topic: 'lk.audio_stream', attributes: { sample_rate: '48000', num_channels: '1' } })
    await w.write(new Uint8Array(ramp(480).buffer))
    const [seg] = await within(read(rx, 1), 3000, 'the idle stream ends')
    expect(seg.samples).toEqual(Array.from(ramp(480)))
    expect(seg.end.interrupted).toBe(true)
  })
})
