// `LiveKitRoom` (capstan/livekit): capstan's own LiveKit client, driven from JavaScript, against
// a real livekit-server inside a private network namespace (see netns.ts). The publisher
// processes load no @livekit/rtc-node; the subscribers that check what arrived are rtc-node
// peers. Fails (never skips) when the server cannot be built or started.
import { describe, beforeAll, expect, it } from 'vitest'

import { clientCode, fixture, foreignAddresses, interpreterFor, lastJsonLine, livekitServerBinary, runManyInLivekitNetns, type NetnsResult } from './netns'

const dump = (r: NetnsResult) =>
  `runner: code ${r.code} timedOut ${r.timedOut}\n${r.runnerStderr}\n` +
  r.procs.map((p) => `--- ${p.name} (code ${p.code})\n${p.stdout.slice(-3000)}\n${p.stderr.slice(-3000)}`).join('\n') +
  `\n--- server log (tail)\n${r.serverLog.slice(-2000)}`

const SECONDS = 3

describe('LiveKitRoom: native publish to a real server', () => {
  beforeAll(() => {
    livekitServerBinary()
  }, 20 * 60_000)

  it('10 runs of a 440 Hz tone fed as irregular 7..53 ms live frames: an rtc-node subscriber hears it within 2 Hz over the whole span, for 3 s within 5 %, no hole over 20 ms; every byte and sample accounted for', { timeout: 300_000 }, async () => {
    const r = await runManyInLivekitNetns([{ name: 'runs', argv: [...interpreterFor(fixture('native-jitter-runs.mjs')), '10', String(SECONDS)] }], { timeoutMs: 280_000 })
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs[0].code, dump(r)).toBe(0)
    const { runs } = lastJsonLine(r.procs[0].stdout)
    expect(runs).toHaveLength(10)
    console.log(JSON.stringify(runs.map((x: { seed: number; audio: { freqHzWholeSpan: number; toneSeconds: number; longestGapMs: number } }) => [x.seed, x.audio.freqHzWholeSpan, x.audio.toneSeconds, x.audio.longestGapMs])))
    for (const run of runs) {
      const what = JSON.stringify(run)
      expect(Math.abs(run.audio.freqHzWholeSpan - 440), what).toBeLessThanOrEqual(2)
      expect(Math.abs(run.audio.toneSeconds - SECONDS) / SECONDS, what).toBeLessThanOrEqual(0.05)
      expect(run.audio.longestGapMs, what).toBeLessThanOrEqual(20)
      expect(run.endedBy, what).toBe('unpublished')
      const pub = run.pub
      expect(pub.join, what).toMatchObject({ identity: 'pub', serverVersion: '1.13.5' })
      expect(pub.toneSamplesSent, what).toBe(SECONDS * 48_000)
      // Every capture was taken whole, and the source's law holds with nothing dropped.
      expect(Object.keys(pub.statuses), what).toEqual(['accepted'])
      expect(pub.invariant, what).toBe(true)
      expect(pub.source.dropped, what).toBe(0)
      expect(pub.source.captured, what).toBe(pub.source.delivered)
      // Bytes: encoded = sent + queued + dropped; all sent, none dropped.
      expect(pub.bytes.balanced, what).toBe(true)
      expect(pub.bytes.droppedBytes, what).toBe(0)
      expect(pub.bytes.queuedBytes, what).toBe(0)
      expect(pub.bytes.sentPackets, what).toBe(pub.bytes.encodedPackets)
      expect(pub.published, what).toBe(false)
      // The room was closed by the caller; no other state change happened on the way.
      expect(pub.states, what).toEqual(['disconnected'])
      expect(pub.signal.pongs, what).toBeGreaterThanOrEqual(1)
    }
    expect(foreignAddresses(r.serverLog)).toEqual([])
  })

  it('10 runs of @livekit/rtc-node publishing the irregular live tone to capstan\'s native receiver: within 2 Hz over the whole span, 3 s within 5 %, no hole over 20 ms; frames read, concealed and dropped accounted exactly', { timeout: 300_000 }, async () => {
    const r = await runManyInLivekitNetns([{ name: 'runs', argv: [...interpreterFor(fixture('native-jitter-runs.mjs')), '10', String(SECONDS), 'receive'] }], { timeoutMs: 280_000 })
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs[0].code, dump(r)).toBe(0)
    const { runs } = lastJsonLine(r.procs[0].stdout)
    expect(runs).toHaveLength(10)
    console.log(JSON.stringify(runs.map((x: { seed: number; audio: { freqHzWholeSpan: number; toneSeconds: number; longestGapMs: number }; sub: { remoteMetrics: { lost: number; concealedFrames: number; late: number } } }) => [x.seed, x.audio.freqHzWholeSpan, x.audio.toneSeconds, x.audio.longestGapMs, x.sub.remoteMetrics.lost, x.sub.remoteMetrics.concealedFrames, x.sub.remoteMetrics.late])))
    for (const run of runs) {
      const what = JSON.stringify(run)
      expect(Math.abs(run.audio.freqHzWholeSpan - 440), what).toBeLessThanOrEqual(2)
      expect(Math.abs(run.audio.toneSeconds - SECONDS) / SECONDS, what).toBeLessThanOrEqual(0.05)
      expect(run.audio.longestGapMs, what).toBeLessThanOrEqual(20)
      const sub = run.sub
      const m = sub.remoteMetrics
      // Both laws, exactly: packets and 10 ms frames.
      expect(sub.laws, what).toEqual({ frames: true, packets: true })
      expect(m.packetsReceived, what).toBe(m.played + m.duplicate + m.late + m.overflow + m.discarded + m.buffered)
      expect(m.decodedFrames + m.concealedFrames, what).toBe(m.readFrames + m.queuedFrames + m.droppedFrames)
      // Everything decoded or concealed was read: the reader kept up, the track ended empty.
      expect([m.queuedFrames, m.droppedFrames, m.buffered], what).toEqual([0, 0, 0])
      // What the reader took is what the JS stream captured and yielded, frame for frame.
      expect(sub.stream.captured, what).toBe(m.readFrames * 480)
      expect(sub.stream.delivered, what).toBe(sub.stream.captured)
      expect(sub.frames, what).toBe(m.readFrames)
      expect(sub.frameSizes, what).toEqual({ 480: m.readFrames })
      expect(sub.streamLaw, what).toBe(true)
      expect(m.decodeErrors, what).toBe(0)
      expect(sub.remote, what).toMatchObject({ name: 'tone', participantIdentity: 'pub', sampleRate: 48000, channels: 1 })
      expect(sub.ended, what).toEqual(['unpublished'])
      expect(sub.joined, what).toEqual(['pub'])
    }
    expect(foreignAddresses(r.serverLog)).toEqual([])
  })

  /** The manual-subscription run: `sub` (with `env`) takes pub's track by setSubscribed. */
  async function manualSubscription(env: string[]): Promise<void> {
    const r = await runManyInLivekitNetns(
      [
        { name: 'sub', argv: ['env', 'MANUAL=1', ...env, ...interpreterFor(fixture('native-subscriber.mjs')), 'manual', '48000'] },
        { name: 'pub', argv: [...interpreterFor(fixture('native-publisher.mjs')), 'manual', '2', 'plain'] },
      ],
      { timeoutMs: 100_000 },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    expect([r.procs[0].code, r.procs[1].code], dump(r)).toEqual([0, 0])
    const sub = lastJsonLine(r.procs[0].stdout)
    const pub = lastJsonLine(r.procs[1].stdout)
    const what = JSON.stringify({ sub, pub })
    // Told once: 'track-published' alone (no snapshot of the participants) took it.
    expect(sub.published, what).toEqual([pub.track.sid])
    expect(Math.abs(sub.audio.freqHzWholeSpan - 440), what).toBeLessThanOrEqual(2)
    expect(Math.abs(sub.audio.toneSeconds - 2) / 2, what).toBeLessThanOrEqual(0.05)
    expect(sub.laws, what).toEqual({ frames: true, packets: true })
  }

  it('manual subscription: without autoSubscribe the receiver takes the track with setSubscribed when it is published, and hears it', { timeout: 120_000 }, async () => {
    await manualSubscription([])
  })

  it("manual subscription, joining after the track was published: its 'track-published' comes once, on the turn after connect(), and setSubscribed takes it", { timeout: 120_000 }, async () => {
    await manualSubscription(['JOIN_DELAY_MS=3000'])
  })

  it('native to native, through the engine resampler: capstan publishes, capstan receives at 16 kHz; the tone within 2 Hz, 3 s within 5 %, no hole', { timeout: 120_000 }, async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'sub', argv: [...interpreterFor(fixture('native-subscriber.mjs')), 'n2n', '16000'] },
        { name: 'pub', argv: [...interpreterFor(fixture('native-publisher.mjs')), 'n2n', String(SECONDS), 'irregular', '77'] },
      ],
      { timeoutMs: 100_000 },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    expect([r.procs[0].code, r.procs[1].code], dump(r)).toEqual([0, 0])
    const sub = lastJsonLine(r.procs[0].stdout)
    const pub = lastJsonLine(r.procs[1].stdout)
    const what = JSON.stringify({ sub, pub })
    expect(Math.abs(sub.audio.freqHzWholeSpan - 440), what).toBeLessThanOrEqual(2)
    expect(Math.abs(sub.audio.toneSeconds - SECONDS) / SECONDS, what).toBeLessThanOrEqual(0.05)
    expect(sub.audio.longestGapMs, what).toBeLessThanOrEqual(20)
    expect(sub.laws, what).toEqual({ frames: true, packets: true })
    // At 16 kHz: 160 samples per 10 ms frame, every frame the receiver read resampled.
    expect(Object.keys(sub.frameSizes), what).toEqual(['160'])
    // The publisher's packets all reached the receiver's jitter buffer.
    expect(sub.remoteMetrics.packetsReceived, what).toBeGreaterThanOrEqual(pub.bytes.sentPackets)
    expect(pub.bytes.balanced && pub.bytes.droppedBytes === 0, what).toBe(true)
  })

  it('the signal connection breaks mid-tone (its TCP reset; the peer connections live on): the client resumes, the subscriber hears the whole tone with no hole, every packet is sent', { timeout: 120_000 }, async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'sub', argv: [...interpreterFor(fixture('smoke-subscriber.mjs')), 'resume', '0', 'unpublished'] },
        { name: 'pub', argv: ['env', 'DROP_SIGNAL=1', ...interpreterFor(fixture('native-publisher.mjs')), 'resume', '4', 'irregular', '9'] },
      ],
      { timeoutMs: 100_000 },
    )
    expect(r.timedOut, dump(r)).toBe(false)
    expect([clientCode(r.procs[0]), r.procs[1].code], dump(r)).toEqual([0, 0])
    const sub = lastJsonLine(r.procs[0].stdout)
    const pub = lastJsonLine(r.procs[1].stdout)
    const what = JSON.stringify({ sub, pub })
    expect(pub.signalDroppedAtMs, what).toBeGreaterThan(1000)
    expect(pub.states, what).toEqual(['reconnecting', 'resumed', 'disconnected'])
    expect(pub.disconnectReason, what).toBe('closed by the caller')
    expect(pub.signal.resumes, what).toBe(1)
    expect(Math.abs(sub.audio.freqHzWholeSpan - 440), what).toBeLessThanOrEqual(2)
    expect(Math.abs(sub.audio.toneSeconds - 4) / 4, what).toBeLessThanOrEqual(0.05)
    expect(sub.audio.longestGapMs, what).toBeLessThanOrEqual(20)
    expect(sub.endedBy, what).toBe('unpublished')
    expect(pub.bytes.balanced && pub.bytes.droppedBytes === 0 && pub.bytes.sentPackets === pub.bytes.encodedPackets, what).toBe(true)
    // The server took the same participant back (no second join).
    const joins = r.serverLog.split('\n').filter((l) => l.includes('new participant joined') && l.includes('"participant": "pub"'))
    expect(joins, 'pub joined once').toHaveLength(1)
    expect(r.serverLog).toContain('resuming RTC session')
  })

  it('full reconnect: the server is killed and started again mid-tone; it knows neither participant, so publisher and subscriber each join again, publish again (a new track sid) and subscribe again by themselves, and the tone is heard on the new track', { timeout: 120_000 }, async () => {
    const r = await runManyInLivekitNetns([{ name: 'restart', argv: [...interpreterFor(fixture('native-restart.mjs')), 'restart', '2500', '4000'] }], { timeoutMs: 100_000 })
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs[0].code, dump(r)).toBe(0)
    const f = lastJsonLine(r.procs[0].stdout)
    const what = JSON.stringify(f)
    expect(f.ok, what).toBe(true)
    for (const who of ['pub', 'sub'] as const) {
      const st = f.states[who] as Array<{ state: string; reason?: string; atMs: number }>
      expect(st.map((e) => e.state), what).toEqual(['reconnecting', 'connected', 'disconnected'])
      expect(st[1].reason, what).toBe('reconnected')
      expect(st[2].reason, what).toBe('closed by the caller')
      // Within the default 15 s recovery bound, counted from the kill.
      expect(st[1].atMs - f.killedAtMs, what).toBeLessThan(15_000)
      expect(f.participantSids[who], what).toMatch(/^PA_/)
    }
    // sub, there before pub joined, reached a listener pub added right after its connect().
    expect(f.pubSaw[0], what).toBe('sub')
    // The track was published again under a new sid; its packets flowed on, all accounted for.
    expect(f.sidAfter, what).not.toBe(f.sidBefore)
    expect(f.published, what).toBe(true)
    expect(f.bytes.balanced, what).toBe(true)
    expect(f.sentBytesAfterReconnect, what).toBeGreaterThan(f.sentBytesBefore)
    // sub heard the first track until the server went, then pub's new track: the tone again,
    // within 2 Hz, for the 4 s after the reconnect (within 10 %), with no hole inside it.
    expect(f.heard.map((h: { sid: string }) => h.sid), what).toEqual([f.sidBefore, f.sidAfter])
    expect(f.ended[0], what).toBe('reconnecting')
    const [first, second] = f.heard
    expect(first.audio.toneSeconds, what).toBeGreaterThan(1.5)
    expect(Math.abs(second.audio.freqHzWholeSpan - 440), what).toBeLessThanOrEqual(2)
    expect(second.audio.toneSeconds, what).toBeGreaterThan(3.6)
    expect(second.audio.longestGapMs, what).toBeLessThanOrEqual(20)
    expect(first.law && second.law, what).toBe(true)
  })

  it("a two-node cluster: the node the room is on crashes mid-tone (SIGKILL); publisher and subscriber each reconnect through the other node by themselves, and the tone is heard on pub's new track", { timeout: 150_000 }, async () => {
    const r = await runManyInLivekitNetns([{ name: 'crash', argv: ['env', 'STOP=room-node', ...interpreterFor(fixture('native-restart.mjs')), 'crash', '3000', '4000'] }], { timeoutMs: 130_000, cluster: true })
    expect(r.timedOut, dump(r)).toBe(false)
    expect(r.procs[0].code, dump(r)).toBe(0)
    const f = lastJsonLine(r.procs[0].stdout)
    const what = JSON.stringify(f)
    expect(f.ok, what).toBe(true)
    expect(['node1', 'node2'], what).toContain(f.stoppedNode)
    for (const who of ['pub', 'sub'] as const) {
      const st = f.states[who] as Array<{ state: string; reason?: string; atMs: number }>
      expect(st.map((e) => e.state), what).toEqual(['reconnecting', 'connected', 'disconnected'])
      expect(st[1].reason, what).toBe('reconnected')
      // The one whose signal went through the surviving node hears of it late (when that
      // node gives up on the room's: 9.4 s after the kill measured); the recovery's own 15 s
      // bound counts from when each noticed.
      expect(st[1].atMs - f.killedAtMs, what).toBeLessThan(25_000)
      expect(st[1].atMs - st[0].atMs, what).toBeLessThan(15_000)
    }
    expect(f.sidAfter, what).not.toBe(f.sidBefore)
    expect(f.bytes.balanced, what).toBe(true)
    expect(f.heard.map((h: { sid: string }) => h.sid), what).toEqual([f.sidBefore, f.sidAfter])
    const second = f.heard[1]
    expect(Math.abs(second.audio.freqHzWholeSpan - 440), what).toBeLessThanOrEqual(2)
    expect(second.audio.toneSeconds, what).toBeGreaterThan(3.6)
    expect(second.audio.longestGapMs, what).toBeLessThanOrEqual(20)
    expect(f.heard[0].law && second.law, what).toBe(true)
  })

  it('a two-node cluster routed through Redis: pub signals through one node, sub through the other, one room; the node the room is not on is stopped mid-tone; the participant that signalled through it resumes on the other, and the whole tone arrives with no hole', { timeout: 150_000 }, async () => {
    const r = await runManyInLivekitNetns(
      [
        { name: 'sub', argv: ['env', 'RELAY_TARGETS=node2,node1', ...interpreterFor(fixture('native-subscriber.mjs')), 'cluster', '48000'] },
        { name: 'pub', argv: ['env', 'RELAY_TARGETS=node1,node2', ...interpreterFor(fixture('native-publisher.mjs')), 'cluster', '6', 'irregular', '5'] },
        { name: 'controller', argv: [...interpreterFor(fixture('cluster-stop.mjs')), '2500'] },
      ],
      { timeoutMs: 130_000, cluster: true },
    )
    const all = `${dump(r)}\n--- node 2 log (tail)\n${r.serverLog2.slice(-2000)}`
    expect(r.timedOut, all).toBe(false)
    expect(r.procs.map((p) => p.code), all).toEqual([0, 0, 0])
    const sub = lastJsonLine(r.procs[0].stdout)
    const pub = lastJsonLine(r.procs[1].stdout)
    const ctl = lastJsonLine(r.procs[2].stdout)
    const what = JSON.stringify({ ctl, sub: { ...sub, remoteMetrics: undefined }, pub })
    console.log(JSON.stringify({ ctl, subStates: sub.states, pubStates: pub.states, audio: sub.audio }))
    // Both nodes took part: the room on one, the other relaying a signal connection.
    expect(ctl.ok && ctl.roomNodeAlive, what).toBe(true)
    expect(ctl.stopped, what).not.toBe(ctl.roomNode)
    expect(ctl.exitedAfterMs, 'the stopped node exited on SIGTERM').not.toBeNull()
    const roomLog = ctl.roomNode === 'node1' ? r.serverLog : r.serverLog2
    const otherLog = ctl.roomNode === 'node1' ? r.serverLog2 : r.serverLog
    expect(otherLog, 'the other node relayed a signal connection').toContain('new client WS connected')
    // Whoever signalled through the stopped node resumed on the room's node; the other never noticed.
    const moved = ctl.roomNode === 'node1' ? sub : pub
    const stayed = ctl.roomNode === 'node1' ? pub : sub
    expect(moved.states, what).toEqual(['reconnecting', 'resumed', 'disconnected'])
    expect(moved.signal.resumes, what).toBe(1)
    expect(stayed.states, what).toEqual(['disconnected'])
    expect(roomLog).toContain('resuming RTC session')
    expect([sub.disconnectReason, pub.disconnectReason]).toEqual(['closed by the caller', 'closed by the caller'])
    // The session survived: the whole 6 s tone, at pitch, no hole; every packet sent, both laws.
    expect(Math.abs(sub.audio.freqHzWholeSpan - 440), what).toBeLessThanOrEqual(2)
    expect(Math.abs(sub.audio.toneSeconds - 6) / 6, what).toBeLessThanOrEqual(0.05)
    expect(sub.audio.longestGapMs, what).toBeLessThanOrEqual(20)
    expect(sub.laws, what).toEqual({ frames: true, packets: true })
    expect(pub.bytes.balanced && pub.bytes.droppedBytes === 0, what).toBe(true)
  })

  it('faults: refusals, hostile servers, an abort, caller mistakes and the server killed mid-stream all settle with typed codes, and the process exits by itself', { timeout: 120_000 }, async () => {
    const r = await runManyInLivekitNetns([{ name: 'faults', argv: [...interpreterFor(fixture('native-faults.mjs'))] }], { timeoutMs: 100_000 })
    expect(r.timedOut, dump(r)).toBe(false)
    // capstan's own client: its exit code counts as it is, and it must exit by itself.
    expect(clientCode(r.procs[0]), dump(r)).toBe(0)
    const f = lastJsonLine(r.procs[0].stdout)
    expect(f.ok, dump(r)).toBe(true)
    const c = f.cases
    const code = (name: string) => [name, c[name]?.code ?? (c[name]?.ok ? 'ok' : c[name])]
    expect(
      ['badToken', 'expiredToken', 'nothingListening', 'noPublishConnect', 'noPublishGrant', 'noPublishClose', 'silentServer', 'httpGarbage', 'signalGarbage', 'aborted', 'abortedBefore', 'unknownConnectOption', 'pullSource', 'closedSource', 'unknownPublishOption', 'badBitrate', 'badRate', 'unpublishTwice', 'publishAfterKill', 'closeAfterKill', 'closeTwice', 'publishAfterClose'].map(code),
      JSON.stringify(c, null, 1),
    ).toEqual([
      ['badToken', 'ERR_CONNECT'],
      ['expiredToken', 'ERR_CONNECT'],
      ['nothingListening', 'ERR_CONNECT'],
      ['noPublishConnect', 'ok'],
      ['noPublishGrant', 'ERR_SIGNAL'],
      ['noPublishClose', 'ok'],
      ['silentServer', 'ERR_TIMEOUT'],
      ['httpGarbage', 'ERR_CONNECT'],
      ['signalGarbage', 'ERR_SIGNAL'],
      ['aborted', 'ERR_ABORTED'],
      ['abortedBefore', 'ERR_ABORTED'],
      ['unknownConnectOption', 'ERR_INVALID_OPTION'],
      ['pullSource', 'ERR_INVALID_OPTION'],
      ['closedSource', 'ERR_INVALID_STATE'],
      ['unknownPublishOption', 'ERR_INVALID_OPTION'],
      ['badBitrate', 'ERR_INVALID_OPTION'],
      ['badRate', 'ERR_INVALID_OPTION'],
      ['unpublishTwice', 'ok'],
      ['publishAfterKill', 'ERR_INVALID_STATE'],
      ['closeAfterKill', 'ok'],
      ['closeTwice', 'ok'],
      ['publishAfterClose', 'ERR_INVALID_STATE'],
    ])
    // A server that closes mid-join is a connect or signal failure, never a hang.
    expect(['ERR_CONNECT', 'ERR_SIGNAL'], JSON.stringify(c.closedMidJoin)).toContain(c.closedMidJoin.code)
    // Bounded: the silent server takes its connectTimeoutMs (1500), nothing else waits long.
    expect(c.silentServer.ms).toBeGreaterThanOrEqual(1400)
    expect(c.silentServer.ms).toBeLessThan(5000)
    for (const [name, v] of Object.entries(c) as Array<[string, { ms: number }]>) if (name !== 'silentServer') expect(v.ms, name).toBeLessThan(6000)
    expect(f.unpublished).toBe(true)
    // The kill: the session saw it within seconds (the WebSocket reset), said why, ended the
    // track; the bytes still balance, the packet that could not go counted as unsent.
    expect(f.sentBeforeKill).toBeGreaterThan(5)
    expect(f.disconnect.state).toBe('disconnected')
    // Seen first as a lost signal connection: a resume is tried, within its 2 s bound, then the end.
    expect(f.disconnect.reason).toMatch(/signal/)
    expect(f.disconnect.reason).toMatch(/resume failed/)
    expect(f.disconnect.reasonGetter).toBe(f.disconnect.reason)
    expect(f.disconnect.ms).toBeLessThan(20_000)
    expect(f.trackEnded).toBe(true)
    expect(f.afterKill.balanced, JSON.stringify(f.afterKill)).toBe(true)
    expect(f.afterKill.queuedBytes).toBe(0)
    expect(f.afterKill.droppedBytes).toBe(f.afterKill.encodedBytes - f.afterKill.sentBytes)
    expect(f.states).toEqual(['reconnecting', 'disconnected'])
    expect(r.procs[0].stderr).not.toContain('FORCED_EXIT')
  })
})
