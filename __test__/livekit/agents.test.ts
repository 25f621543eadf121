// capstan/agents in a real @livekit/agents 1.9.0 AgentSession over a real livekit-server
// (private network namespace): the session (its own process, the agents peer's
// @livekit/rtc-node 0.13.35) speaks through CapstanAudioOutput; a plain @livekit/rtc-node
// 1.1.0 subscriber measures what reaches it. Local TTS (tones) and LLM (FakeLLM), no cloud.
// Needs the build (`npm run build`) and the agents peer (`node scripts/test-setup.mjs peers`).
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'

import { clientCode, fixture, interpreterFor, livekitServerBinary, runManyInLivekitNetns, type NetnsResult } from './netns'

const ROOT = join(__dirname, '..', '..')
const PEER_MODULES = join(ROOT, '__test__/livekit/peers/agents-js/node_modules')
const dump = (r: NetnsResult) =>
  `runner: code ${r.code} timedOut ${r.timedOut}\n${r.runnerStderr}\n` +
  r.procs.map((p) => `--- ${p.name} (code ${p.code})\n${p.stdout.slice(-3000)}\n${p.stderr.slice(-4000)}`).join('\n')

interface Run {
  hz: number
  startHz: number
  endHz: number
  startMs: number
  durMs: number
  holeMs: number
  startWall: number
  endWall: number
}
interface Finished {
  ev: 'finished'
  wall: number
  position: number
  interrupted: boolean
}

async function session(room: string, mode: 'capstan' | 'default', fault?: 'hang' | 'rtc-root', env: Record<string, string> = {}) {
  const r = await runManyInLivekitNetns(
    [
      { name: 'sub', argv: [...interpreterFor(fixture('agents-subscriber.mjs')), room] },
      { name: 'agent', argv: [process.execPath, fixture('agents-session.mjs'), room, mode, ...(fault ? [fault] : [])] },
    ],
    // NODE_PATH: capstan/agents (this repo's dist) loads the peer's @livekit/agents, the copy the
    // fixture uses (a fallback after node_modules: the subscriber still gets the root's rtc-node
    // 1.1.0). Run-wide, as netns.ts prefixes a command's own env as `env K=V exec ...`, which fails.
    { timeoutMs: 90_000, env: { NODE_PATH: PEER_MODULES, ...env } },
  )
  expect(r.timedOut, dump(r)).toBe(false)
  expect(r.procs.map(clientCode), dump(r)).toEqual([0, 0])
  // The result line, not a log line @livekit/agents' logger (pino) writes to stdout after it.
  const resultOf = (out: string, role: string) =>
    out
      .split('\n')
      .reverse()
      .map((l) => {
        try {
          return JSON.parse(l)
        } catch {
          return undefined
        }
      })
      .find((j) => j?.role === role)
  const sub = resultOf(r.procs[0].stdout, 'sub')
  const agent = resultOf(r.procs[1].stdout, 'agent')
  expect(sub.ok, dump(r)).toBe(true)
  expect(agent.ok, dump(r)).toBe(true)
  /** The one run of this tone (segment 1: 440 Hz; the storm's are 880 Hz). */
  const tone = (hz: number): Run => {
    const found = (sub.runs as Run[]).filter((x) => Math.abs(x.hz - hz) < 0.02 * hz)
    expect(found, `runs of ${hz} Hz: ${JSON.stringify(sub.runs)}\n${dump(r)}`).toHaveLength(1)
    return found[0]
  }
  /** A chirp segment: the one run that starts at `f0` (segment 2: 660 Hz, segment 4: 550 Hz). */
  const chirp = (f0: number): Run => {
    const found = (sub.runs as Run[]).filter((x) => Math.abs(x.startHz - f0) < 0.03 * f0)
    expect(found, `runs starting at ${f0} Hz: ${JSON.stringify(sub.runs)}\n${dump(r)}`).toHaveLength(1)
    return found[0]
  }
  return { r, sub, agent, tone, chirp }
}

/**
 * Where in a chirp segment its last sample heard was sent, ms, read from the frequency of its
 * last 20 ms (a window's mean frequency is the one at its middle, 10 ms before the end): a time
 * code that the receiver's jitter buffer, stretching or shortening what it plays, keeps.
 * Segment 2 sweeps 660 -> 1260 Hz in 3 s (200 Hz/s), segment 4 550 -> 950 Hz in 0.8 s (500 Hz/s).
 */
const SWEEP = { 660: 200, 550: 500 } as const
const chirpEndMs = (run: Run, f0: 660 | 550) => ((run.endHz - f0) / SWEEP[f0]) * 1000 + 10

/** How far each reported position is from what the subscriber heard, ms. */
/** playbackStarted times (Date.now()) of the first and the last segment, with their runs. */
function startedOf(agent: { events: Array<{ ev: string; createdAt?: number }> }, first: Run, last: Run): Array<[string, number, Run]> {
  const st = agent.events.filter((e) => e.ev === 'started')
  return [
    ['whole', st[0].createdAt as number, first],
    ['after storm', st[st.length - 1].createdAt as number, last],
  ]
}

interface Compared {
  reportedMs: number
  receivedMs: number
  errorMs: number
  timeCodeMs?: number
  timeCodeErrorMs?: number
  finishedMinusHeardMs: number
}
function compare(label: string, pairs: Array<[string, Finished, Run, number?]>, started?: Array<[string, number, Run]>): Record<string, Compared> {
  const out: Record<string, Compared> = {}
  const r1 = (v: number) => Math.round(v * 10) / 10
  for (const [k, f, run, code] of pairs) {
    out[k] = {
      reportedMs: r1(f.position * 1000),
      receivedMs: run.durMs,
      errorMs: r1(f.position * 1000 - run.durMs),
      ...(code === undefined ? {} : { timeCodeMs: r1(code), timeCodeErrorMs: r1(f.position * 1000 - code) }),
      // When playbackFinished fired against when the segment's last sample reached the subscriber.
      finishedMinusHeardMs: f.wall - run.endWall,
    }
  }
  console.log(`${label}: ${JSON.stringify(out)}`)
  if (started) {
    // When playbackStarted fired against when the segment's first sample reached the subscriber.
    const s = started.map(([k, t, run]) => `${k} ${t - run.startWall}`)
    console.log(`${label} startedMinusHeardMs: ${s.join(', ')}`)
  }
  return out
}

describe('capstan/agents: CapstanAudioOutput in a real AgentSession (real server)', () => {
  beforeAll(() => {
    livekitServerBinary()
    if (!existsSync(join(PEER_MODULES, '@livekit/agents'))) throw new Error('agents peer missing: node scripts/test-setup.mjs peers')
    if (!existsSync(join(ROOT, 'dist/agents/index.mjs'))) throw new Error('capstan/agents not built: npm run build:ts')
  }, 20 * 60_000)

  // One retry: in 1 of 9 runs on this shared 2-core machine the subscriber heard the interrupted
  // chirp only up to 1221 ms of the 1340 ms reported (played stretched to 1282 ms, i.e. audio
  // concealed): audio lost after capstan (which hands the publisher every chunk it counts, also
  // across a clear) under load, past anything a sender can report. A second failure fails.
  it('playbackFinished reports what the subscriber received (±20 ms), interrupted after an interruption, no hole > 20 ms; a barge-in storm leaves the session speaking', { retry: 1, timeout: 180_000 }, async () => {
    const { r, agent, tone, chirp } = await session('agents-capstan', 'capstan')
    expect(agent.outputClass).toBe('CapstanAudioOutput')
    expect(agent.unhandled, dump(r)).toEqual([])
    const a = tone(440)
    const b = chirp(660)
    const c = chirp(550)
    expect(Math.abs(a.hz - 440), JSON.stringify(a)).toBeLessThan(2)
    for (const run of [a, b, c]) expect(run.holeMs, JSON.stringify(run)).toBeLessThanOrEqual(20)
    expect(agent.first.interrupted).toBe(false)
    expect(agent.first.position).toBeCloseTo(1.0, 2)
    expect(agent.second.interrupted).toBe(true)
    // interrupted 1200 ms after playbackStarted, of a 3 s tone
    expect(agent.second.position).toBeGreaterThan(1.1)
    expect(agent.second.position).toBeLessThan(1.7)
    expect(agent.last.interrupted).toBe(false)
    expect(agent.last.position).toBeCloseTo(0.8, 2)
    const cmp = compare('capstan', [['whole', agent.first, a], ['interrupted', agent.second, b, chirpEndMs(b, 660)], ['after storm', agent.last, c, chirpEndMs(c, 550)]], startedOf(agent, a, c))
    // Positions against where the last sample heard was sent (the chirps' time codes).
    expect(Math.abs(cmp.interrupted.timeCodeErrorMs as number), JSON.stringify(cmp)).toBeLessThanOrEqual(20)
    expect(Math.abs(cmp['after storm'].timeCodeErrorMs as number), JSON.stringify(cmp)).toBeLessThanOrEqual(20)
    // Durations as played by the receiver: its jitter buffer stretches or shortens a run by up
    // to ~25 ms (measured with both outputs, most often in the first audio after it joined).
    expect(Math.abs(cmp.whole.errorMs), JSON.stringify(cmp)).toBeLessThanOrEqual(30)
    expect(Math.abs(cmp.interrupted.errorMs), JSON.stringify(cmp)).toBeLessThanOrEqual(30)
    expect(Math.abs(cmp['after storm'].errorMs), JSON.stringify(cmp)).toBeLessThanOrEqual(30)
    // The storm: every segment it opened finished, interrupted (a say() interrupted before the
    // session captured any of its audio opens none), none left pending.
    const fin = (agent.events as Array<Finished & { t: number }>).filter((e) => e.ev === 'finished')
    const storm = fin.slice(2, -1)
    expect(storm.length).toBeGreaterThanOrEqual(10)
    expect(storm.length).toBeLessThanOrEqual(20)
    expect(storm.every((e) => e.interrupted)).toBe(true)
    // Accounting and the watchdog's view.
    const m = agent.metrics
    expect(m.source.captured).toBe(m.source.delivered + m.source.queued + m.source.dropped + m.source.cleared)
    expect(m.segments.finished).toBe(fin.length)
    expect(m.segments.interrupted).toBe(storm.length + 1)
    expect(m.segments.started).toBeGreaterThanOrEqual(3)
    expect(m.publisher.stalls).toBe(0)
    expect(m.publisher.framesLost).toBe(0)
  })

  it('the default RoomIO output in the same session and scenario (measured for comparison)', async () => {
    const { r, agent, tone, chirp } = await session('agents-default', 'default')
    expect(agent.outputClass).toBe('ParticipantAudioOutput')
    const b = chirp(660)
    const c = chirp(550)
    const cmp = compare('default', [['whole', agent.first, tone(440)], ['interrupted', agent.second, b, chirpEndMs(b, 660)], ['after storm', agent.last, c, chirpEndMs(c, 550)]], startedOf(agent, tone(440), c))
    expect(agent.second.interrupted, dump(r)).toBe(true)
    expect(Object.keys(cmp)).toHaveLength(3)
  }, 180_000)

  it('a wedged peer captureFrame is recovered by the watchdog: a new track, and the session keeps speaking on it', async () => {
    const { r, sub, agent, tone, chirp } = await session('agents-hang', 'capstan', 'hang')
    expect(agent.unhandled, dump(r)).toEqual([])
    expect(agent.watchdog.map((w: { ev: string }) => w.ev), dump(r)).toEqual(['sink-stalled', 'sink-recovered'])
    expect(agent.watchdog[0].cause).toMatch(/did not settle within 300 ms/)
    expect(agent.metrics.publisher).toMatchObject({ stalls: 1, recoveries: 1, state: 'publishing' })
    expect(sub.tracks).toHaveLength(2)
    // After the recovery (in segment 1), segments 2 and 4 are heard whole on the new track.
    const b = chirp(660)
    const c = chirp(550)
    const late = sub.tracks[1].runs as Run[]
    expect(late.some((x) => Math.abs(x.startHz - 660) < 20) && late.some((x) => Math.abs(x.startHz - 550) < 17), JSON.stringify(late)).toBe(true)
    const cmp = compare('capstan after recovery', [['interrupted', agent.second, b, chirpEndMs(b, 660)], ['after storm', agent.last, c, chirpEndMs(c, 550)]])
    expect(Math.abs(cmp.interrupted.timeCodeErrorMs as number), JSON.stringify(cmp)).toBeLessThanOrEqual(20)
    expect(Math.abs(cmp['after storm'].timeCodeErrorMs as number), JSON.stringify(cmp)).toBeLessThanOrEqual(20)
    expect(agent.last.interrupted).toBe(false)
  }, 180_000)

  it("publishToLiveKit on the agents' rtc-node 0.13 Room with the repo root's rtc-node 1.1.0 classes (what it loads when not told): works here", async () => {
    // It works because rtc-node keeps one FFI client per process (globalThis._ffiClientInstance):
    // the 1.1.0 classes send their requests through the 0.13 native library the Room started.
    // CapstanAudioOutput does not rely on that: it passes the agents' own copy (rtc option).
    const { r, agent, chirp } = await session('agents-rtc-root', 'capstan', 'rtc-root')
    expect(agent.rtcVersion).toBe('1.1.0')
    expect(agent.publishFailed, dump(r)).toBeUndefined()
    const b = chirp(660)
    const cmp = compare('capstan, rtc-node 1.1.0 classes', [['interrupted', agent.second, b, chirpEndMs(b, 660)]])
    expect(Math.abs(cmp.interrupted.timeCodeErrorMs as number), JSON.stringify(cmp)).toBeLessThanOrEqual(20)
  }, 180_000)

  it("an ESM application with RoomIO's transcription on: agents and rtc-node imported as ESM, capstan/agents (its CJS copy) beside them, the transcript synchronizer wrapping the output", async () => {
    const { r, agent, chirp } = await session('agents-esm', 'capstan', undefined, { AGENTS_ESM: '1', AGENTS_TRANSCRIPTION: '1' })
    expect(agent.esm).toBe(true)
    expect(agent.transcription).toBe(true)
    // RoomIO's wrapper, whose events are forwarded from CapstanAudioOutput (its next in chain).
    expect(agent.outputClass).toBe('SyncedAudioOutput')
    expect(agent.unhandled, dump(r)).toEqual([])
    const b = chirp(660)
    const c = chirp(550)
    const cmp = compare('capstan, ESM agents, transcription', [['interrupted', agent.second, b, chirpEndMs(b, 660)], ['after storm', agent.last, c, chirpEndMs(c, 550)]])
    expect(Math.abs(cmp.interrupted.timeCodeErrorMs as number), JSON.stringify(cmp)).toBeLessThanOrEqual(20)
    expect(Math.abs(cmp['after storm'].timeCodeErrorMs as number), JSON.stringify(cmp)).toBeLessThanOrEqual(20)
    expect(agent.second.interrupted).toBe(true)
  }, 180_000)

  it('CapstanAudioInput: the participant track reaches the session stream through native high-pass, VAD and resampler, bounded and counted', async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'input', argv: [process.execPath, fixture('agents-input.mjs'), 'agents-input'] },
        { name: 'pub', argv: [...interpreterFor(fixture('smoke-publisher.mjs')), 'agents-input', '440', '3', '1'] },
      ],
      { timeoutMs: 90_000, env: { NODE_PATH: PEER_MODULES } },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs.map(clientCode), dump(r)).toEqual([0, 0])
    const line = r.procs[0].stdout.split('\n').reverse().find((l) => l.includes('"role":"input"'))
    const res = JSON.parse(line ?? '{}')
    expect(res.ok, dump(r)).toBe(true)
    // The session gets @livekit/rtc-node AudioFrames of exactly 10 ms at its rate.
    expect(res.frameClass).toBe('AudioFrame')
    expect(res.rates).toEqual([16000])
    expect(Object.keys(res.frameSizes)).toEqual(['160'])
    expect(res.frameSizes['160']).toBeGreaterThan(280)
    // 3 s of 440 Hz (within 1 %: a run whose start the receiver's jitter buffer stretched read 442.2 Hz).
    expect(Math.abs(res.toneHz - 440), JSON.stringify(res)).toBeLessThan(4.4)
    expect(Math.abs(res.toneMs - 3000), JSON.stringify(res)).toBeLessThan(150)
    expect(res.vad[0]).toMatchObject({ speaking: true })
    expect(res.vad[0].positionMs).toBeLessThan(400)
    const m = res.metrics
    expect(m.tracks).toBe(1)
    expect(m.stream.captured).toBe(m.stream.delivered + m.stream.queued + m.stream.dropped + m.stream.cleared)
    expect(m.stream.processors.map((p: { name: string }) => p.name)).toEqual(['high-pass', 'vad', 'resample'])
    expect(m.stream.processors.every((p: { failures: number; calls: number }) => p.failures === 0 && p.calls > 280)).toBe(true)
  }, 120_000)
})
