// A real livekit-server and two real @livekit/rtc-node clients inside a private network
// namespace (see netns.ts): audio track (440 Hz, 3 s), a 30 kB byte stream on lk.audio_stream
// with the avatar attributes, and an RPC round trip. Fails (never skips) when the server cannot
// be built or started.
import { readFileSync } from 'node:fs'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  LivekitNetnsError,
  fixture,
  foreignAddresses,
  interpreterFor,
  ipv4Addresses,
  lastJsonLine,
  livekitServerBinary,
  runInLivekitNetns,
  runManyInLivekitNetns,
} from './netns'

const FREQ = 440
const TONE_S = 3
const BYTES = 30_000

describe('livekit in a network namespace', () => {
  beforeAll(() => {
    // First run on a machine builds livekit-server from the Go module proxy (minutes).
    livekitServerBinary()
  }, 20 * 60_000)

  it('publisher -> subscriber: 440 Hz tone, 30 kB byte stream, RPC; only namespace addresses', async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'sub', argv: [...interpreterFor(fixture('smoke-subscriber.mjs')), 'smoke'] },
        { name: 'pub', argv: [...interpreterFor(fixture('smoke-publisher.mjs')), 'smoke', String(FREQ), String(TONE_S), String(BYTES)] },
      ],
      { timeoutMs: 75_000 },
    )
    const dump = () =>
      `runner: code ${r.code} timedOut ${r.timedOut}\n${r.runnerStderr}\n` +
      r.procs.map((p) => `--- ${p.name} (code ${p.code})\n${p.stdout}\n${p.stderr.slice(-3000)}`).join('\n') +
      `\n--- server log (tail)\n${r.serverLog.slice(-3000)}`
    expect(r.timedOut, dump()).toBe(false)
    expect(r.procs.map((p) => p.code), dump()).toEqual([0, 0])
    for (const p of r.procs) expect(p.stderr, `${p.name} had to be killed after dispose()`).not.toContain('FORCED_EXIT')

    const sub = lastJsonLine(r.procs[0].stdout)
    const pub = lastJsonLine(r.procs[1].stdout)
    expect(sub.ok && pub.ok, dump()).toBe(true)

    // Audio: frequency within 2 Hz, tone duration within 5 %.
    expect(pub.toneSamplesSent).toBe(TONE_S * 48000)
    expect(Math.abs(sub.audio.freqHz - FREQ), JSON.stringify(sub.audio)).toBeLessThanOrEqual(2)
    expect(Math.abs(sub.audio.toneSeconds - TONE_S) / TONE_S, JSON.stringify(sub.audio)).toBeLessThanOrEqual(0.05)
    expect(sub.audio.frames).toBeGreaterThan(TONE_S * 100 * 0.9)
    expect(sub.audio.peak).toBeGreaterThan(0.3)

    // Byte stream: whole, same bytes, topic and attributes.
    expect(sub.byteStream).toMatchObject({
      from: 'pub',
      topic: 'lk.audio_stream',
      bytes: BYTES,
      sha256: pub.byteStream.sha256,
      attributes: { sample_rate: '48000', num_channels: '1' },
    })

    // RPC round trips (sub -> pub smoke.ready, pub -> sub smoke.echo).
    expect(sub.readyRpc.response).toBe('go')
    expect(JSON.parse(pub.rpc.response)).toEqual({ echo: { hello: 'capstan', n: 42 }, from: 'pub' })

    // Nothing but the namespace's own addresses in the server log (0.0.0.0, the unspecified
    // address of SDP o=/c= lines, is not a peer and is allowed by foreignAddresses).
    expect(r.serverLog.length).toBeGreaterThan(0)
    expect(foreignAddresses(r.serverLog), r.serverLog.slice(-3000)).toEqual([])
    expect(ipv4Addresses(r.serverLog)).toContain('127.0.0.1')

    console.log(
      JSON.stringify({
        serverReadyMs: r.serverReadyMs,
        runMs: Math.round(r.elapsedMs),
        connectMs: { pub: pub.connectMs, sub: sub.connectMs },
        publishMs: pub.publishMs,
        subscribeReadyMs: pub.subscribeReadyMs,
        audio: sub.audio,
        byteStream: { bytes: sub.byteStream.bytes, chunks: sub.byteStream.chunks, writeMs: pub.byteStream.writeMs, readMs: sub.byteStream.readMs },
        rpcRttMs: { echo: pub.rpc.rttMs, ready: sub.readyRpc.rttMs },
        addresses: ipv4Addresses(r.serverLog),
      }),
    )
  }, 120_000)

  it('a single script: the namespace has only lo and the veth pair, and no route out', async () => {
    const r = await runInLivekitNetns(fixture('netns-probe.mjs'), [], { timeoutMs: 40_000 })
    expect(r.code, r.stderr + r.runnerStderr).toBe(0)
    const probe = lastJsonLine(r.stdout)
    expect(probe.http).toBe('OK')
    expect(probe.env).toEqual({ url: 'ws://127.0.0.1:7880', key: 'devkey' })
    expect(probe.addresses.sort()).toEqual(['10.231.0.1', '10.231.0.2', '127.0.0.1'])
    expect(r.netnsAddrs, 'IPv6 is switched off in the namespace').not.toMatch(/inet6|fe80:|::1/)
    // No default route: nothing in the namespace can reach another host.
    expect(probe.routes.length).toBeGreaterThan(0)
    expect(probe.routes.every((r: { dest: string }) => r.dest === '10.231.0.0/24'), JSON.stringify(probe.routes)).toBe(true)
  }, 60_000)

  it('the deadline kills the whole process group: clients and server', async () => {
    const t0 = performance.now()
    const r = await runManyInLivekitNetns([{ name: 'sleeper', argv: ['sleep', '600'] }], { timeoutMs: 3_000 })
    expect(r.timedOut).toBe(true)
    expect(r.code).toBe(null)
    expect(r.procs[0].code).toBe(null)
    expect(performance.now() - t0).toBeLessThan(10_000)
    expect(r.serverPid).toBeGreaterThan(0)
    await new Promise((res) => setTimeout(res, 200))
    // Gone, or a zombie waiting for whichever init adopted it (SIGKILLed with its parent).
    let state = 'gone'
    try {
      state = readFileSync(`/proc/${r.serverPid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]
    } catch {
      // no such process
    }
    expect(['gone', 'Z', 'X'], `livekit-server ${r.serverPid} state ${state}`).toContain(state)
  }, 30_000)

  it('throws (does not skip) when the server cannot start', async () => {
    await expect(runInLivekitNetns(fixture('netns-probe.mjs'), [], { timeoutMs: 20_000, serverBin: '/bin/false' })).rejects.toThrow(
      LivekitNetnsError,
    )
  }, 30_000)
})
