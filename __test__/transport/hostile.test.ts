// Hostile peers and careless callers (the outside probes' findings): transports that reject
// with values that are not Errors, clears that fail or time out, malformed answers, a frame
// longer than a stream's queue, options that change under a second read. Each case failed
// before its fix; every call here settles.
import { afterEach, describe, expect, it } from 'vitest'

import { AudioSource, AudioStream, ByteStreamAudioReceiver, ByteStreamAudioSender, CapstanError, memoryTransports, type AudioTransport } from '../../dist/index.js'
import { runNode } from '../spawn'
import { ramp, within } from '../helpers'

const closers: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
})

/** Values a hostile transport may reject with that are not Errors. */
function badValues(): Array<[string, () => unknown]> {
  return [
    ['a Symbol', () => Symbol('nope')],
    ['an object whose message getter throws', () => ({
      get message(): string {
        throw new Error('gotcha')
      },
    })],
    ['a revoked Proxy', () => {
      const { proxy, revoke } = Proxy.revocable({}, {})
      revoke()
      return proxy
    }],
  ]
}

/** One end of a memory transport pair with some calls replaced. */
function hostile(base: AudioTransport, over: Partial<AudioTransport>): AudioTransport {
  return {
    identity: base.identity,
    openStream: over.openStream ?? ((o) => base.openStream(o)),
    onStream: (t, h) => base.onStream(t, h),
    call: over.call ?? ((o) => base.call(o)),
    handle: (m, h) => base.handle(m, h),
    onPeerLeft: (h) => base.onPeerLeft(h),
  }
}

describe('a transport that rejects with something that is not an Error', () => {
  for (const [what, value] of badValues()) {
    it(`write() rejecting with ${what}: 'error' is a CapstanError, the bytes are counted unsent, nothing crashes`, async () => {
      const [agent] = memoryTransports('agent', 'avatar')
      const t = hostile(agent, {
        openStream: async () => ({ write: () => Promise.reject(value()), close: () => Promise.reject(value()) }),
      })
      const source = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced', queueMs: 1000 })
      const sender = new ByteStreamAudioSender(source, t, { destination: 'avatar', clearTimeoutMs: 200 })
      closers.push(() => source.close(), () => sender.close())
      const errors: unknown[] = []
      sender.on('error', (e) => errors.push(e))
      await source.captureFrame(ramp(1600))
      await within(sender.flush(), 3000, 'flush')
      const until = Date.now() + 3000
      while (sender.metrics().unsentBytes === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
      expect(sender.metrics().unsentBytes).toBeGreaterThan(0)
      expect(errors.length).toBeGreaterThan(0)
      for (const e of errors) {
        expect(e).toBeInstanceOf(CapstanError)
        expect((e as CapstanError).code).toBe('ERR_TRANSPORT')
      }
      // clearBuffer() on a call that rejects the same way settles with the stand-in answer.
      const c = hostile(agent, { call: () => Promise.reject(value()) })
      const s2 = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced' })
      const tx2 = new ByteStreamAudioSender(s2, c, { destination: 'avatar', clearTimeoutMs: 200 })
      closers.push(() => s2.close(), () => tx2.close())
      tx2.on('error', () => {})
      await expect(within(tx2.clearBuffer(), 3000, 'clearBuffer')).resolves.toMatchObject({ status: 'timeout', interrupted: true })
    })
  }
})

describe('clearBuffer() and the playback waiters', () => {
  it("a failed clear takes back its own waiter, not the app's: the app's waitForPlayback() still gets the next answer", async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    let fail = true
    const t = hostile(agent, { call: (o) => (fail && o.method === 'lk.clear_buffer' ? Promise.reject(new Error('refused')) : agent.call(o)) })
    const source = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced' })
    const sender = new ByteStreamAudioSender(source, t, { destination: 'avatar', clearTimeoutMs: 300 })
    closers.push(() => source.close(), () => sender.close())
    sender.on('error', () => {})
    const app = sender.waitForPlayback()
    expect((await within(sender.clearBuffer(), 2000)).status).toBe('timeout')
    fail = false
    await avatar.call({ to: 'agent', method: 'lk.playback_finished', payload: JSON.stringify({ playback_position: 1.5, interrupted: false }), timeoutMs: 1000 })
    await expect(within(app, 2000, "the app's wait")).resolves.toMatchObject({ status: 'finished', playbackPosition: 1.5 })
  })

  it('a clear that timed out leaves no waiter behind to take the answer meant for a later wait', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    avatar.handle('lk.clear_buffer', () => 'ok') // answers the call, never sends playback_finished
    const source = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced' })
    const sender = new ByteStreamAudioSender(source, agent, { destination: 'avatar', clearTimeoutMs: 100 })
    closers.push(() => source.close(), () => sender.close())
    expect((await within(sender.clearBuffer(), 2000)).status).toBe('timeout')
    const later = sender.waitForPlayback()
    await avatar.call({ to: 'agent', method: 'lk.playback_finished', payload: JSON.stringify({ playback_position: 0.25, interrupted: false }), timeoutMs: 1000 })
    await expect(within(later, 2000, 'the later wait')).resolves.toMatchObject({ status: 'finished', playbackPosition: 0.25 })
  })
})

describe('malformed playback_finished answers', () => {
  it('are refused and counted, never thrown; a well-formed one still settles the wait', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    const source = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced' })
    const sender = new ByteStreamAudioSender(source, agent, { destination: 'avatar' })
    closers.push(() => source.close(), () => sender.close())
    const wait = sender.waitForPlayback()
    const bad = ['null', '5', '"x"', '[]', '{}', '{"playback_position":-1}', '{"playback_position":1e400}', '{"playback_position":"2"}', '{"playback_position":1,"interrupted":"yes"}', 'not json']
    for (const payload of bad) {
      // Refused: the handler answers 'reject' (a transport may also turn that into a rejection).
      const answer = await avatar.call({ to: 'agent', method: 'lk.playback_finished', payload, timeoutMs: 1000 }).catch(() => 'reject')
      expect(answer, payload).toBe('reject')
    }
    expect(sender.metrics().invalidAnswers).toBe(bad.length)
    expect(sender.metrics().playbackFinished).toBe(0)
    await avatar.call({ to: 'agent', method: 'lk.playback_finished', payload: '{"playback_position":0.5,"interrupted":true}', timeoutMs: 1000 })
    await expect(within(wait, 2000)).resolves.toEqual({ playbackPosition: 0.5, interrupted: true, status: 'finished' })
  })
})

describe('careless callers', () => {
  it('an AudioStream input frame longer than the queue is yielded whole, in order, instead of hanging', async () => {
    const second = ramp(48000)
    async function* input() {
      yield { data: second, sampleRate: 48000, channels: 1 }
    }
    const stream = new AudioStream(input(), { sampleRate: 48000, channels: 1 }) // a 500 ms queue
    closers.push(() => stream.close())
    const got: number[] = []
    await within(
      (async () => {
        for await (const f of stream) got.push(...f.data)
      })(),
      10_000,
      'the stream',
    )
    expect(got.length).toBe(48000)
    expect(got).toEqual(Array.from(second))
    expect(stream.metrics().dropped).toBe(0)
  })

  it('options are read once: a getter that changes its answer cannot make JS and the engine disagree', () => {
    let reads = 0
    const o = {
      sampleRate: 48000,
      get channels() {
        return ++reads === 1 ? 1 : 2
      },
    }
    const s = new AudioSource(o)
    closers.push(() => s.close())
    expect(reads).toBe(1)
    expect(s.channels).toBe(1)
    expect(s.tryCaptureFrame(new Int16Array(480)).acceptedSamples).toBe(480)
  })

  it('a Proxy of an Int16Array is a CapstanError, not a plain Error; frames({ frameMs }) is bounded', async () => {
    const s = new AudioSource({ sampleRate: 48000, channels: 1 })
    closers.push(() => s.close())
    const p = new Proxy(new Int16Array(480), {})
    expect(() => s.tryCaptureFrame(p)).toThrow(CapstanError)
    await expect(s.captureFrame(p)).rejects.toBeInstanceOf(CapstanError)
    await expect(s.frames({ frameMs: 2000 }).next()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
  })

  it('receiver options are checked at construction', () => {
    const [, avatar] = memoryTransports('agent', 'avatar')
    for (const bad of [{ queueMs: Number.NaN }, { queueMs: 15 }, { idleTimeoutMs: -1 }, { rpcAttempts: 0 }, { rpcTimeoutMs: 1.5 }]) {
      expect(() => new ByteStreamAudioReceiver(avatar, { sender: 'agent', ...bad }), JSON.stringify(bad)).toThrow(CapstanError)
    }
  })

  it('the timer that bounds a transport call keeps the process alive: await sender.close() on a hung write returns', async () => {
    const script = `
      const { AudioSource, ByteStreamAudioSender, memoryTransports } = require('./dist/index.js')
      const [agent] = memoryTransports('agent', 'avatar')
      const t = { ...agent, identity: 'agent', openStream: async () => ({ write: () => new Promise(() => {}), close: () => new Promise(() => {}) }),
        onStream: (a, b) => agent.onStream(a, b), call: (o) => agent.call(o), handle: (a, b) => agent.handle(a, b), onPeerLeft: (h) => agent.onPeerLeft(h) }
      const s = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced' })
      const tx = new ByteStreamAudioSender(s, t, { destination: 'avatar', writeTimeoutMs: 300 })
      tx.on('error', () => {})
      ;(async () => {
        await s.captureFrame(new Int16Array(1600))
        await tx.flush()
        await tx.close()
        await s.close()
        console.log('close returned')
      })()
    `
    const r = await runNode(['-e', script], { timeoutMs: 15_000 })
    expect(r.stdout + r.stderr).toContain('close returned')
    expect(r.code).toBe(0)
  })
})

/** A byte stream that records whether it was cancelled; `open` streams never end. */
function fakeStream(o: { from?: string; attributes?: unknown; chunks?: Uint8Array[]; open?: boolean; throwing?: unknown }) {
  const chunks = [...(o.chunks ?? [])]
  const s = {
    from: o.from ?? 'agent',
    topic: 'lk.audio_stream',
    attributes: (o.attributes ?? { sample_rate: '16000', num_channels: '1' }) as Record<string, string>,
    returned: 0,
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      return {
        next: () => {
          if (o.throwing !== undefined) return Promise.reject(o.throwing)
          const c = chunks.shift()
          if (c) return Promise.resolve({ done: false, value: c })
          return o.open ? new Promise(() => {}) : Promise.resolve({ done: true, value: undefined })
        },
        return: async () => {
          s.returned++
          return { done: true, value: undefined }
        },
      }
    },
  }
  return s
}

/** A transport whose incoming streams the test hands in (and that ignores off()). */
function streamsByHand() {
  const [, avatar] = memoryTransports('agent', 'avatar')
  const handlers: Array<(s: unknown) => void> = []
  const t: AudioTransport = {
    identity: 'avatar',
    openStream: (o) => avatar.openStream(o),
    onStream: (_topic, h) => {
      handlers.push(h as (s: unknown) => void)
      return () => {} // ignores off(): the receiver must cope after close
    },
    call: (o) => avatar.call(o),
    handle: (m, h) => avatar.handle(m, h),
    onPeerLeft: (h) => avatar.onPeerLeft(h),
  }
  return { t, deliver: (s: unknown) => handlers.forEach((h) => h(s)) }
}

const pcm = (ms: number) => new Uint8Array(new Int16Array(ramp(16 * ms)).buffer)

describe('the receiver and the streams it abandons', () => {
  it('close() settles while a stream is open, and every close() waits for the same end', async () => {
    const { t, deliver } = streamsByHand()
    const rx = new ByteStreamAudioReceiver(t, { sender: 'agent', idleTimeoutMs: 60_000 })
    const open = fakeStream({ chunks: [pcm(100)], open: true })
    deliver(open)
    await new Promise((r) => setTimeout(r, 50))
    const order: string[] = []
    const first = rx.close().then(() => order.push('first'))
    const second = rx.close().then(() => order.push('second'))
    await within(Promise.all([first, second]), 3000, 'close with a stream open')
    expect(order).toEqual(['first', 'second'])
    expect(open.returned).toBe(1)
  })

  it('superseded, queued-at-close and after-close streams are cancelled; waiting streams are capped and counted', async () => {
    const { t, deliver } = streamsByHand()
    const rx = new ByteStreamAudioReceiver(t, { sender: 'agent', idleTimeoutMs: 60_000 })
    const a = fakeStream({ chunks: [pcm(20)], open: true })
    deliver(a)
    await new Promise((r) => setTimeout(r, 30))
    const queued = Array.from({ length: 70 }, () => fakeStream({ chunks: [pcm(10)], open: true }))
    for (const s of queued) deliver(s)
    await new Promise((r) => setTimeout(r, 30))
    // A was superseded by the first queued one: cancelled.
    expect(a.returned).toBe(1)
    await within(rx.close(), 3000, 'close')
    const late = fakeStream({ chunks: [pcm(10)] })
    deliver(late)
    expect(late.returned).toBe(1)
    // The 70 queued: one was playing (superseded by the next and cancelled), the rest were
    // either beyond the cap or still waiting at close; every one was cancelled.
    for (const s of queued) expect(s.returned, 'each queued stream cancelled').toBeGreaterThanOrEqual(1)
    const m = rx.metrics()
    expect(m.droppedStreams).toBeGreaterThanOrEqual(70 - 64)
    expect(m.streams + m.droppedStreams).toBeGreaterThanOrEqual(70)
  })

  it('one bad stream (attributes that throw, an iterator that throws a non-Error) is skipped; the next one plays', async () => {
    const { t, deliver } = streamsByHand()
    const rx = new ByteStreamAudioReceiver(t, { sender: 'agent' })
    closers.push(() => rx.close())
    const errors: unknown[] = []
    rx.on('stream-error', (e) => errors.push(e))
    const throwingAttrs = fakeStream({})
    Object.defineProperty(throwingAttrs, 'attributes', {
      get() {
        throw Symbol('no attributes for you')
      },
    })
    deliver(throwingAttrs)
    deliver(fakeStream({ attributes: undefined as never }))
    deliver(fakeStream({ attributes: { sample_rate: '0x3E80', num_channels: '1' } }))
    deliver(fakeStream({ throwing: Symbol('broken') }))
    deliver(fakeStream({ chunks: [pcm(30)] }))
    const got: number[] = []
    await within(
      (async () => {
        for await (const item of rx) {
          // (The broken stream ends an interrupted segment of its own first.)
          if ('data' in item) got.push(...item.data)
          else if (got.length > 0) break
        }
      })(),
      5000,
      'the good stream',
    )
    expect(got.length).toBe(480)
    expect(errors.length).toBeGreaterThanOrEqual(3)
    for (const e of errors) expect(e).toBeInstanceOf(CapstanError)
  })
})

describe('one RPC method, several handlers', () => {
  it('memoryTransports: closing an old receiver leaves the new one answering lk.clear_buffer', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    const old = new ByteStreamAudioReceiver(avatar, { sender: 'agent' })
    const now = new ByteStreamAudioReceiver(avatar, { sender: 'agent' })
    closers.push(() => now.close())
    let cleared = 0
    now.on('clear-buffer', () => cleared++)
    await old.close()
    expect(await agent.call({ to: 'avatar', method: 'lk.clear_buffer', payload: '', timeoutMs: 1000 })).toBe('ok')
    expect(cleared).toBe(1)
  })

  it('livekitTransport: rtc-node keeps one handler per method, so calls are dispatched to every transport of the room', async () => {
    const registered = new Map<string, (d: { callerIdentity: string; payload: string }) => Promise<string>>()
    const room = {
      localParticipant: {
        identity: 'avatar',
        streamBytes: async () => ({ write: async () => {}, close: async () => {} }),
        performRpc: async () => 'ok',
        registerRpcMethod: (m: string, h: (d: { callerIdentity: string; payload: string }) => Promise<string>) => void registered.set(m, h),
        unregisterRpcMethod: (m: string) => void registered.delete(m),
      },
      registerByteStreamHandler: () => {},
      unregisterByteStreamHandler: () => {},
      on: () => room,
      off: () => room,
    }
    const { livekitTransport } = await import('../../dist/livekit/index.js')
    const a = livekitTransport(room)
    const b = livekitTransport(room)
    const offA = a.handle('m', (_p, from) => (from === 'alice' ? 'from-a' : 'reject'))
    const offB = b.handle('m', (_p, from) => (from === 'bob' ? 'from-b' : 'reject'))
    const call = (from: string) => registered.get('m')!({ callerIdentity: from, payload: '' })
    expect([await call('alice'), await call('bob'), await call('eve')]).toEqual(['from-a', 'from-b', 'reject'])
    offA()
    expect(await call('bob')).toBe('from-b')
    expect(await call('alice')).toBe('reject')
    offB()
    expect(registered.has('m')).toBe(false)
  })
})

describe('memoryTransports behave like a transport with a buffer (issue 16, item 7)', () => {
  it('a receiver that stops reading backs the sender up, and the source behind it: audio waits, nothing piles up', async () => {
    const [a, b] = memoryTransports()
    // The receiver reads into its own bounded queue (1 s) and nobody reads it: it stops reading.
    const rx = new ByteStreamAudioReceiver(b, { sender: 'agent', queueMs: 1000 })
    const source = new AudioSource({ sampleRate: 48000, channels: 2, consumer: 'unpaced', deadlineMs: 100 })
    const sender = new ByteStreamAudioSender(source, a, { destination: 'avatar' })
    closers.push(async () => {
      await sender.close()
      await source.close()
      await rx.close()
    })
    const second = new Int16Array(2 * 48000)
    let accepted = 0
    const statuses = new Set<string>()
    const t0 = performance.now()
    // Up to 300 s of audio offered, for at most 3 s of wall time.
    for (let i = 0; i < 300 && performance.now() - t0 < 3000; i++) {
      const o = await source.captureFrame(second)
      accepted += o.acceptedSamples
      statuses.add(o.status)
      if (o.status === 'timeout') break
    }
    // Bounded by what the chain may hold: the receiver's 1 s, the stream's window, the
    // sender's 1 MiB (5.5 s of 48 kHz stereo) and the source's queue; not 300 s.
    expect(statuses.has('timeout')).toBe(true)
    expect(accepted / 48000).toBeLessThan(10)
    const m = sender.metrics()
    expect(m.bytesSent).toBeLessThanOrEqual(1000 * 192 + 64 * 1024 + 15_000)
  })

  it('a plain loop of writes to a reader that keeps up leaves timers their turn', async () => {
    const [a, b] = memoryTransports()
    b.onStream('t', (st) => void (async () => { for await (const c of st) void c })())
    const w = await a.openStream({ to: 'avatar', topic: 't', attributes: {} })
    let ticks = 0
    let last = performance.now()
    let worst = 0
    const t = setInterval(() => {
      const now = performance.now()
      worst = Math.max(worst, now - last)
      last = now
      ticks++
    }, 5)
    const t0 = performance.now()
    let writes = 0
    try {
      // Bounded by the clock, not a timer: an endless microtask chain would still end here.
      while (performance.now() - t0 < 1000) {
        await w.write(new Uint8Array(100))
        writes++
      }
    } finally {
      clearInterval(t)
    }
    expect(writes).toBeGreaterThan(1000)
    // Before: every write settled as a microtask and the 5 ms timer never ran (0 ticks).
    expect(ticks).toBeGreaterThan(50)
    expect(worst).toBeLessThan(100)
    await w.close()
  })

  it('a stream whose reader has gone takes writes and drops them, never a write that waits forever', async () => {
    const [a, b] = memoryTransports()
    let reader: AsyncIterator<Uint8Array> | undefined
    b.onStream('t', (s) => (reader = s[Symbol.asyncIterator]()))
    const w = await a.openStream({ to: 'avatar', topic: 't', attributes: {} })
    await w.write(new Uint8Array(10))
    expect((await reader!.next()).value.length).toBe(10)
    await reader!.return!()
    // Far past the window: each write settles at once.
    for (let i = 0; i < 20; i++) await within(w.write(new Uint8Array(16 * 1024)), 1000, 'write after the reader left')
    await w.close()
  })
})

describe('huge inputs are bounded by the queue, in slices (issue 16, item 10)', () => {
  /** The longest gap between 5 ms timers while `f` runs. */
  async function longestGap(f: () => Promise<void>): Promise<number> {
    let last = performance.now()
    let worst = 0
    const t = setInterval(() => {
      const now = performance.now()
      worst = Math.max(worst, now - last)
      last = now
    }, 5)
    try {
      await f()
    } finally {
      clearInterval(t)
    }
    return Math.max(worst, performance.now() - last)
  }

  it("a peer's 100 MB chunk is captured a quarter of the queue at a time: the event loop keeps turning, the audio arrives in order", async () => {
    const { t, deliver } = streamsByHand()
    const rx = new ByteStreamAudioReceiver(t, { sender: 'agent', queueMs: 1000 })
    closers.push(() => rx.close())
    const big = new Int16Array(50_000_000)
    for (let i = 0; i < big.length; i += 160) big[i] = (i / 160) % 30000
    const stream = fakeStream({ chunks: [new Uint8Array(big.buffer)], open: true })
    const gap = await longestGap(async () => {
      deliver(stream)
      const it = rx[Symbol.asyncIterator]()
      // 3 s of audio read: every 10 ms frame starts with its chunk's marker, in order.
      for (let k = 0; k < 300; k++) {
        const f = (await within(it.next(), 5000, 'a frame')).value as { data: Int16Array }
        expect(f.data[0]).toBe(k % 30000)
      }
    })
    expect(gap).toBeLessThan(60)
    // Closing while a slice waits for room ends at once, not at the idle timeout (10 s).
    await within(rx.close(), 2000, 'close while a capture waits for room')
  })

  it('a 50 M-sample captureFrame under wait on a realtime source returns at once and settles counted', async () => {
    const s = new AudioSource({ sampleRate: 48000, channels: 1, deadlineMs: 100 })
    closers.push(() => s.close())
    const big = new Int16Array(50_000_000)
    const t0 = performance.now()
    const p = s.captureFrame(big)
    const callMs = performance.now() - t0
    const o = await within(p, 3000, 'the huge capture')
    expect(callMs).toBeLessThan(30)
    expect(o.status).toBe('timeout')
    expect(o.acceptedSamples + o.droppedSamples).toBe(50_000_000)
    const m = s.metrics()
    expect(m.captured).toBe(m.delivered + m.queued + m.dropped + m.cleared)
    expect(m.dropped).toBe(o.droppedSamples)
  })
})

describe('minor: after close, positions, tiny chunks (issue 16, item 19)', () => {
  /** A transport whose off() does nothing, keeping every handler it was given. */
  function sticky() {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    const handlers = new Map<string, (payload: string, from: string) => string | Promise<string>>()
    const keep = (base: AudioTransport): AudioTransport => ({
      identity: base.identity,
      openStream: (o) => base.openStream(o),
      onStream: (t, h) => (base.onStream(t, h), () => {}),
      call: (o) => base.call(o),
      handle: (m, h) => {
        handlers.set(m, h)
        return () => {}
      },
      onPeerLeft: (h) => (base.onPeerLeft(h), () => {}),
    })
    return { a: keep(agent), b: keep(avatar), handlers, agent }
  }

  it('handlers refuse and emit nothing after close(), whatever the transport does with off()', async () => {
    const { a, b, handlers } = sticky()
    const source = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced' })
    const sender = new ByteStreamAudioSender(source, a, { destination: 'avatar' })
    const rx = new ByteStreamAudioReceiver(b, { sender: 'agent' })
    const seen: string[] = []
    sender.on('playback-started', () => seen.push('started'))
    rx.on('clear-buffer', () => seen.push('clear'))
    await sender.close()
    await source.close()
    await rx.close()
    expect(await handlers.get('lk.playback_finished')!(JSON.stringify({ playback_position: 1, interrupted: false }), 'avatar')).toBe('reject')
    expect(await handlers.get('lk.playback_started')!('{}', 'avatar')).toBe('reject')
    expect(await handlers.get('lk.clear_buffer')!('{}', 'agent')).toBe('reject')
    expect(seen).toEqual([])
    expect(sender.metrics().playbackFinished).toBe(0)
  })

  it('a position of 1 s reads 1, not 0.9999999999999999 (samples are counted, not seconds summed)', async () => {
    const [a, b] = memoryTransports()
    b.onStream('lk.audio_stream', (s) => void (async () => { for await (const _ of s) void _ })())
    const source = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'unpaced', queueMs: 2000 })
    // 0.1 s per chunk, ten chunks: 0.1 summed ten times is 0.9999999999999999.
    const sender = new ByteStreamAudioSender(source, a, { destination: 'avatar', chunkBytes: 9600 })
    closers.push(async () => {
      await sender.close()
      await source.close()
    })
    expect(source.tryCaptureFrame(ramp(48000)).status).toBe('accepted')
    const wait = sender.waitForPlayback()
    await waitUntilSent(sender, 96_000)
    b.leave()
    const p = await within(wait, 3000, 'peer-left settles the wait')
    expect(p).toMatchObject({ status: 'peer-left', playbackPosition: 1 })
  })

  it('a peer writing one byte per chunk is received whole and in order, well ahead of real time', async () => {
    const [agent, avatar] = memoryTransports('agent', 'avatar')
    const rx = new ByteStreamAudioReceiver(avatar, { sender: 'agent' })
    closers.push(() => rx.close())
    const audio = new Int16Array(ramp(4 * 16000))
    const bytes = new Uint8Array(audio.buffer)
    const t0 = performance.now()
    const w = await agent.openStream({ to: 'avatar', topic: 'lk.audio_stream', attributes: { sample_rate: '16000', num_channels: '1' } })
    const writing = (async () => {
      for (let i = 0; i < bytes.length; i++) await w.write(bytes.subarray(i, i + 1))
      await w.close()
    })()
    const got: number[] = []
    for await (const x of rx) {
      if ('data' in x) got.push(...(x.data as Int16Array))
      else break
    }
    await writing
    const ms = performance.now() - t0
    expect(got.length).toBe(audio.length)
    expect(got.every((v, i) => v === audio[i])).toBe(true)
    // 4 s of audio in 128,000 chunks: a per-chunk cost that grew with the backlog took 5 s here.
    expect(ms).toBeLessThan(3000)
  })
})

async function waitUntilSent(sender: ByteStreamAudioSender, bytes: number): Promise<void> {
  for (let i = 0; i < 300 && sender.metrics().bytesSent < bytes; i++) await new Promise((r) => setTimeout(r, 10))
}
