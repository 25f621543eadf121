// capstan-livekit (the pure-Rust LiveKit client, crates/capstan-livekit) against a real
// livekit-server inside a private network namespace (see netns.ts): its `publish-tone`
// example publishes a 440 Hz tone from a realtime capstan source through `LiveKitSink`, with
// no JavaScript on the path, and an @livekit/rtc-node subscriber measures what arrives.
// Fails (never skips) when the server or the example cannot be built or started.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'

import { clientCode, fixture, foreignAddresses, interpreterFor, lastJsonLine, livekitServerBinary, REPO_ROOT, runManyInLivekitNetns, type NetnsResult } from './netns'

const dump = (r: NetnsResult) =>
  `runner: code ${r.code} timedOut ${r.timedOut}\n${r.runnerStderr}\n` +
  r.procs.map((p) => `--- ${p.name} (code ${p.code})\n${p.stdout.slice(-2000)}\n${p.stderr.slice(-3000)}`).join('\n') +
  `\n--- server log (tail)\n${r.serverLog.slice(-2000)}`

const TONE_SECONDS = 3

/** Builds the example (debug: the dependencies are shared with `cargo test --workspace`, and
 * a release build of str0m's crypto would cost minutes more on two cores); cargo caches it. */
function buildExample(): string {
  const r = spawnSync('cargo', ['build', '-p', 'capstan-livekit', '--example', 'publish-tone'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 20 * 60_000,
    maxBuffer: 64 << 20,
  })
  if (r.status !== 0) throw new Error(`cargo build of publish-tone failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${(r.stderr ?? '').slice(-4000)}`)
  const target = process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, 'target')
  const bin = path.join(target, 'debug', 'examples', 'publish-tone')
  if (!existsSync(bin)) throw new Error(`cargo built publish-tone but ${bin} is not there`)
  return bin
}

describe('capstan-livekit: a native publisher on a real LiveKit server', () => {
  let bin = ''
  beforeAll(() => {
    livekitServerBinary()
    bin = buildExample()
  }, 20 * 60_000)

  it('publish-tone: the subscriber hears 440 Hz (within 2 Hz over the whole span), for 3 s (within 5 %), with no hole over 20 ms, then the track is unpublished', async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'sub', argv: [...interpreterFor(fixture('smoke-subscriber.mjs')), 'native', '0', 'unpublished'] },
        { name: 'pub', argv: [bin, 'ws://127.0.0.1:7880', 'dev', String(TONE_SECONDS), 'native', 'pub'] },
      ],
      { timeoutMs: 90_000 },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    // The publisher is capstan's own native client: its exit code counts as it is.
    expect([clientCode(r.procs[0]), r.procs[1].code], dump(r)).toEqual([0, 0])
    const sub = lastJsonLine(r.procs[0].stdout)
    const pub = lastJsonLine(r.procs[1].stdout)
    expect(sub.ok && pub.ok, dump(r)).toBe(true)
    // The usual token (publish and subscribe): the server leads with its subscriber connection,
    // which the client answers; only then does the server count the participant ACTIVE (one
    // still JOINED is removed after a minute).
    expect(pub.join).toMatchObject({ room: 'native', identity: 'pub', serverVersion: '1.13.5', subscriberPrimary: true })
    expect(pub.subscriberConnected).toBe(true)
    // The signal: one ping at join, answered (protobuf PingReq/PongResp framing both ways).
    expect(pub.signal.pongs, JSON.stringify(pub.signal)).toBeGreaterThanOrEqual(1)
    expect(pub.signal.badCandidates).toBe(0)
    const pubStates = r.serverLog
      .split('\n')
      .filter((l) => l.includes('updating participant state') && l.includes('"participant": "pub"'))
      .map((l) => /"state": "([A-Z]+)"/.exec(l)?.[1])
    expect(pubStates, 'pub participant states in the server log').toEqual(['JOINED', 'ACTIVE', 'DISCONNECTED'])
    // Both data channels open on the publisher transport: without `_lossy` the server may
    // fail the transport 10-20 s after ICE connected (see RELIABLE_CHANNEL in peer.rs).
    for (const label of ['_reliable', '_lossy']) {
      const open = r.serverLog.split('\n').some((l) => l.includes(`${label} data channel open`) && l.includes('"participant": "pub"') && l.includes('"transport": "PUBLISHER"'))
      expect(open, `${label} open on pub's publisher transport`).toBe(true)
    }
    expect(pub.toneSamplesSent).toBe(TONE_SECONDS * 48_000)
    // Bytes: encoded = sent + queued + dropped, all sent, nothing left queued.
    expect(pub.bytes.balanced, JSON.stringify(pub.bytes)).toBe(true)
    expect(pub.bytes.sent, JSON.stringify(pub.bytes)).toBeGreaterThan(0)
    expect(pub.bytes.queued).toBe(0)
    expect(pub.bytes.droppedFull, JSON.stringify(pub.bytes)).toBe(0)
    // What arrived.
    expect(Math.abs(sub.audio.freqHzWholeSpan - 440), JSON.stringify(sub.audio)).toBeLessThanOrEqual(2)
    expect(Math.abs(sub.audio.freqHz - 440), JSON.stringify(sub.audio)).toBeLessThanOrEqual(2)
    expect(Math.abs(sub.audio.toneSeconds - TONE_SECONDS) / TONE_SECONDS, JSON.stringify(sub.audio)).toBeLessThanOrEqual(0.05)
    expect(sub.audio.longestGapMs, JSON.stringify(sub.audio)).toBeLessThanOrEqual(20)
    expect(sub.audio.peak, JSON.stringify(sub.audio)).toBeGreaterThan(0.4)
    // Unpublish reached the subscriber as TrackUnpublished, before the publisher left.
    expect(sub.endedBy).toBe('unpublished')
    expect(foreignAddresses(r.serverLog)).toEqual([])
    console.log(JSON.stringify({ audio: sub.audio, pub: { ...pub, role: undefined } }))
  }, 120_000)

  it('refusals are typed errors, not hangs: a bad token is ERR_CONNECT (HTTP 401), a track the grant forbids ERR_SIGNAL (NOT_ALLOWED)', async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'bad-token', argv: [bin, 'ws://127.0.0.1:7880', 'not.a.token', '1'] },
        { name: 'no-publish', argv: [bin, 'ws://127.0.0.1:7880', 'dev-no-publish', '1', 'native', 'nopub'] },
      ],
      { timeoutMs: 60_000 },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs.map((p) => p.code), dump(r)).toEqual([1, 1])
    const [badToken, noPublish] = r.procs.map((p) => lastJsonLine(p.stdout))
    expect(badToken).toMatchObject({ ok: false, code: 'ERR_CONNECT' })
    expect(badToken.error).toMatch(/401/)
    // Joined (the grant allows that), then the AddTrackRequest came back refused (reason 2).
    expect(noPublish).toMatchObject({ ok: false, code: 'ERR_SIGNAL', join: { identity: 'nopub' } })
    expect(noPublish.error).toMatch(/refused the track \(reason 2 NOT_ALLOWED\)/)
  }, 90_000)
})
