// Wire compatibility with LiveKit agents' avatar I/O, both ways, over a real livekit-server
// (private network namespace): each peer in its own process with its own dependencies.
//   @livekit/agents (JS) DataStreamAudioOutput  ->  capstan ByteStreamAudioReceiver
//   capstan ByteStreamAudioSender               ->  livekit-agents (Python) DataStreamAudioReceiver
// Sample-exact, with an interruption in the middle and playback-finished checked on both
// sides. The peers are installed by `npm test` (scripts/test-setup.mjs, cached). capstan's
// end runs over @livekit/rtc-node (livekitTransport) and, again, over its own client
// (LiveKitRoom.transport: data channel, RPC and byte streams in Rust; NATIVE=1).
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'

import { clientCode, fixture, interpreterFor, lastJsonLine, livekitServerBinary, runManyInLivekitNetns, type NetnsResult } from './netns'

const ROOT = join(__dirname, '..', '..')
const dump = (r: NetnsResult) =>
  `runner: code ${r.code} timedOut ${r.timedOut}\n${r.runnerStderr}\n` +
  r.procs.map((p) => `--- ${p.name} (code ${p.code})\n${p.stdout.slice(-3000)}\n${p.stderr.slice(-4000)}`).join('\n')
const ramp = (n: number, seed: number) => Int16Array.from({ length: n }, (_, i) => ((i * 7 + seed) % 20000) - 10000)
const sha = (a: Int16Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex')

const VIA = [
  { name: 'over @livekit/rtc-node', env: [] as string[] },
  { name: "over capstan's own LiveKit client", env: ['env', 'NATIVE=1'] },
]

describe.each(VIA)('avatar byte-stream interop with LiveKit agents (real server), capstan $name', ({ env }) => {
  beforeAll(() => {
    livekitServerBinary()
    for (const p of ['__test__/livekit/peers/agents-js/node_modules/@livekit/agents', '.cache/livekit/venv/bin/python']) {
      if (!existsSync(join(ROOT, p))) throw new Error(`interop peer missing (${p}): npm test installs it, or node scripts/test-setup.mjs peers`)
    }
  }, 20 * 60_000)

  it('agents-js DataStreamAudioOutput -> capstan receiver: sample-exact segment, interruption, playback-finished both ways', async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'avatar', argv: [...env, ...interpreterFor(fixture('capstan-avatar.mjs')), 'interop-js', '2'] },
        { name: 'agent', argv: [process.execPath, join(ROOT, '__test__/livekit/peers/agents-js/agent-sender.mjs'), 'interop-js'] },
      ],
      { timeoutMs: 90_000 },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs.map(clientCode), dump(r)).toEqual([0, 0])
    const avatar = lastJsonLine(r.procs[0].stdout)
    const agent = lastJsonLine(r.procs[1].stdout)
    expect(avatar.ok && agent.ok, dump(r)).toBe(true)
    expect(avatar.native).toBe(env.length > 0)
    // Segment 1: exactly the ramp the agent sent (1.00 s = 100 frames of 10 ms).
    expect(avatar.segments[0]).toMatchObject({ index: 0, interrupted: false, samples: 48000, sha256: sha(ramp(48000, 1)) })
    // Segment 2: interrupted; what was played is a prefix of the ramp (checked by length: the
    // clear came ~0.5 s into playback, so well under the 3 s sent).
    expect(avatar.segments[1].interrupted).toBe(true)
    expect(avatar.segments[1].samples).toBeLessThan(3 * 48000)
    expect(avatar.segments[1].sha256).toBe(sha(ramp(3 * 48000, 2).subarray(0, avatar.segments[1].samples)))
    // The avatar's answers reached the agent: first { interrupted: false, ~1 s }, then interrupted.
    expect(avatar.notified.map((n: { acked: boolean }) => n.acked)).toEqual([true, true])
    expect(agent.first).toMatchObject({ interrupted: false })
    expect(agent.first.playbackPosition).toBeCloseTo(1.0, 2)
    expect(agent.second).toMatchObject({ interrupted: true })
    expect(agent.second.playbackPosition).toBeGreaterThan(0.3)
    expect(agent.second.playbackPosition).toBeLessThan(2.5)
    expect(avatar.invariant).toBe(true)
    console.log(JSON.stringify({ avatar: avatar.segments, notified: avatar.notified, agent: { first: agent.first, second: agent.second } }))
  }, 120_000)

  it('capstan sender -> livekit-agents (Python) DataStreamAudioReceiver: sample-exact segment, interruption, playback-finished', async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'avatar', argv: [...interpreterFor(fixture('py-avatar.py')), 'interop-py', '2'] },
        { name: 'agent', argv: [...env, ...interpreterFor(fixture('capstan-agent.mjs')), 'interop-py'] },
      ],
      { timeoutMs: 90_000 },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs.map(clientCode), dump(r)).toEqual([0, 0])
    const avatar = lastJsonLine(r.procs[0].stdout)
    const agent = lastJsonLine(r.procs[1].stdout)
    expect(avatar.ok && agent.ok, dump(r)).toBe(true)
    expect(agent.native).toBe(env.length > 0)
    expect(avatar.segments[0]).toMatchObject({ samples: 48000, sha256: sha(ramp(48000, 1)), cleared: false })
    expect(avatar.segments[1].cleared).toBe(true)
    expect(avatar.segments[1].samples).toBeLessThan(3 * 48000)
    expect(avatar.segments[1].sha256).toBe(sha(ramp(3 * 48000, 2).subarray(0, avatar.segments[1].samples)))
    expect(agent.first).toMatchObject({ status: 'finished', interrupted: false })
    expect(agent.first.playbackPosition).toBeCloseTo(1.0, 2)
    expect(agent.second).toMatchObject({ status: 'finished', interrupted: true })
    expect(agent.metrics.streams).toBe(2)
    expect(agent.metrics.unsentBytes).toBe(0)
    expect(agent.invariant).toBe(true)
    console.log(JSON.stringify({ avatar: avatar.segments, notified: avatar.notified, agent: { first: agent.first, second: agent.second, metrics: agent.metrics } }))
  }, 120_000)
})
