// capstan against a real livekit-server (inside a private network namespace, see netns.ts):
// publishing through capstan, byte-stream audio on the wire, and the server dying mid-stream.
// Fails (never skips) when the server cannot be built or started.
import { beforeAll, describe, expect, it } from 'vitest'

import { fixture, foreignAddresses, interpreterFor, lastJsonLine, livekitServerBinary, runManyInLivekitNetns, type NetnsResult } from './netns'

const dump = (r: NetnsResult) =>
  `runner: code ${r.code} timedOut ${r.timedOut}\n${r.runnerStderr}\n` +
  r.procs.map((p) => `--- ${p.name} (code ${p.code})\n${p.stdout.slice(-2000)}\n${p.stderr.slice(-3000)}`).join('\n') +
  `\n--- server log (tail)\n${r.serverLog.slice(-2000)}`

describe('capstan on a real LiveKit server', () => {
  beforeAll(() => {
    livekitServerBinary()
  }, 20 * 60_000)

  it('publishToLiveKit: a subscriber receives the 440 Hz tone (within 2 Hz, duration within 5 %, no gaps) and a capstan byte stream whole', async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'sub', argv: [...interpreterFor(fixture('smoke-subscriber.mjs')), 'capstan-pub'] },
        { name: 'pub', argv: [...interpreterFor(fixture('capstan-publisher.mjs')), 'capstan-pub', '440', '3', '30000'] },
      ],
      { timeoutMs: 90_000 },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs.map((p) => p.code), dump(r)).toEqual([0, 0])
    const sub = lastJsonLine(r.procs[0].stdout)
    const pub = lastJsonLine(r.procs[1].stdout)
    expect(sub.ok && pub.ok, dump(r)).toBe(true)
    expect(pub.statuses).toEqual({ accepted: 150 })
    expect(pub.invariant).toBe(true)
    expect(pub.stalls).toEqual([])
    expect(pub.publisher.framesLost).toBe(0)
    expect(Math.abs(sub.audio.freqHz - 440), JSON.stringify(sub.audio)).toBeLessThanOrEqual(2)
    expect(Math.abs(sub.audio.toneSeconds - 3) / 3, JSON.stringify(sub.audio)).toBeLessThanOrEqual(0.05)
    // No hole in the tone: the jitter buffer conceals a lost packet (20 ms) at most.
    expect(sub.audio.longestGapMs, JSON.stringify(sub.audio)).toBeLessThan(20)
    // capstan's byte-stream sender: one segment, attributes, bytes intact (padded to 10 ms).
    expect(sub.byteStream).toMatchObject({
      from: 'pub',
      topic: 'lk.audio_stream',
      bytes: pub.byteStream.bytes,
      sha256: pub.byteStream.sha256,
      attributes: { sample_rate: '48000', num_channels: '1' },
    })
    expect(pub.byteStream.sender.streams).toBe(1)
    expect(foreignAddresses(r.serverLog)).toEqual([])
    console.log(JSON.stringify({ audio: sub.audio, publisher: pub.publisher, toneWallMs: pub.toneWallMs }))
  }, 120_000)
})
