import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { UTTERANCES } from './livekit-native'

/** The checkout's server script and namespace runner, or why they are missing. */
function infrastructure(log: (l: string) => void): { root: string; runner: string; server: string } | undefined {
  // dist/cli/ → the package root.
  const root = join(__dirname, '..', '..')
  const runner = join(root, '__test__/livekit/fixtures/netns-run.sh')
  const server = join(root, 'scripts/livekit-server.sh')
  if (!existsSync(runner) || !existsSync(server)) {
    log('capstan demo --livekit runs from a capstan checkout (it needs scripts/livekit-server.sh and the namespace runner)')
    return undefined
  }
  log('capstan demo --livekit: building or finding livekit-server v1.13.5 (the first build takes a few minutes)')
  const built = spawnSync('bash', [server], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (built.status !== 0) {
    log('could not build livekit-server (see above)')
    return undefined
  }
  log(`  server: ${built.stdout.trim()}; a private network namespace (lo + veth 10.231.0.1/2), nothing leaves the machine`)
  return { root, runner, server }
}

/** The last `{"role"…}` line of a client's output file. */
function lastRole(dir: string, f: string): Record<string, any> | undefined {
  try {
    const lines = readFileSync(join(dir, f), 'utf8').trim().split('\n').reverse()
    for (const l of lines) if (l.startsWith('{"role"')) return JSON.parse(l)
  } catch {
    // missing output: reported by the caller
  }
  return undefined
}

/**
 * `capstan demo --livekit`: capstan's own LiveKit client (no libwebrtc, no
 * `@livekit/rtc-node`) on both ends of a real livekit-server in a private network
 * namespace: an agent publishes three utterances from engine threads, a listener receives
 * them (jitter buffer, Opus with loss concealment, the engine's resampler to 16 kHz) and
 * says what it heard, with both ends' accounting. `--rtc-node` runs the byte-stream avatar
 * exchange over `@livekit/rtc-node` instead.
 */
export function runLivekitDemo(log: (l: string) => void, rtcNode = false): boolean {
  if (rtcNode) return runByteStreamDemo(log)
  const infra = infrastructure(log)
  if (!infra) return false
  const out = mkdtempSync(join(tmpdir(), 'capstan-lk-demo-'))
  const bin = join(infra.root, 'bin/capstan.js')
  log("  agent and listener: capstan's own LiveKit client (LiveKitRoom), one process each, no @livekit/rtc-node")
  log(`  the agent says ${UTTERANCES.map((u) => `${u.hz} Hz for ${(u.ms / 1000).toFixed(2)} s`).join(', ')}`)
  const t0 = performance.now()
  const url = 'ws://127.0.0.1:7880'
  const r = spawnSync('bash', [infra.runner, '--out', out, '--cmd', `"${process.execPath}" "${bin}" livekit-role listener ${url}`, '--cmd', `"${process.execPath}" "${bin}" livekit-role agent ${url}`], {
    encoding: 'utf8',
    timeout: 120_000,
  })
  const listener = lastRole(out, 'cmd-0.out')
  const agent = lastRole(out, 'cmd-1.out')
  if (r.status !== 0 || !listener?.ok || !agent?.ok) {
    log(`the exchange failed (exit ${r.status}); outputs in ${out}`)
    return false
  }
  const t = agent.track
  const m = listener.remote
  log('')
  log(`  agent sent:      ${t.sentPackets} Opus packets (${t.sentBytes} bytes) from engine threads; dropped ${t.droppedBytes} bytes; bytes balance ${agent.bytesBalance}, samples balance ${agent.samplesBalance}`)
  for (const h of listener.heard as Array<{ hz: number; ms: number }>) log(`  listener heard:  ${h.hz.toFixed(1)} Hz for ${(h.ms / 1000).toFixed(2)} s`)
  log(`  jitter buffer:   ${m.packetsReceived} packets received, ${m.played} played, ${m.late} late, ${m.lost} slots concealed (${m.concealedFrames} frames), ${m.droppedFrames} frames dropped`)
  log(`  accounting holds: frames ${listener.framesBalance}, packets ${listener.packetsBalance}; @livekit/rtc-node loaded: agent ${agent.rtcNodeLoaded}, listener ${listener.rtcNodeLoaded}`)
  log(`  whole run ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  const heard = listener.heard as Array<{ hz: number; ms: number }>
  return heard.length === UTTERANCES.length && heard.every((h, i) => Math.abs(h.hz - UTTERANCES[i].hz) < 5) && agent.rtcNodeLoaded === false && listener.rtcNodeLoaded === false
}

/**
 * `capstan demo --livekit --rtc-node`: an agent → avatar exchange over `@livekit/rtc-node`:
 * capstan's byte-stream sender and receiver, two segments, an interruption in the second,
 * playback-finished answers.
 */
function runByteStreamDemo(log: (l: string) => void): boolean {
  const infra = infrastructure(log)
  if (!infra) return false
  const { root, runner } = infra
  const out = mkdtempSync(join(tmpdir(), 'capstan-lk-demo-'))
  const fx = (f: string) => join(root, '__test__/livekit/fixtures', f)
  log('  agent: capstan ByteStreamAudioSender; avatar: capstan ByteStreamAudioReceiver playing in real time')
  log('  segment 1: 1.00 s, flushed; segment 2: 3.00 s, interrupted 0.5 s into playback')
  const t0 = performance.now()
  const r = spawnSync('bash', [runner, '--out', out, '--cmd', `"${process.execPath}" "${fx('capstan-avatar.mjs')}" demo 2`, '--cmd', `"${process.execPath}" "${fx('capstan-agent.mjs')}" demo`], {
    encoding: 'utf8',
    timeout: 120_000,
  })
  const last = (f: string) => {
    try {
      const lines = readFileSync(join(out, f), 'utf8').trim().split('\n').reverse()
      for (const l of lines) if (l.startsWith('{"role"')) return JSON.parse(l)
    } catch {
      // missing output: reported below
    }
    return undefined
  }
  const avatar = last('cmd-0.out')
  const agent = last('cmd-1.out')
  if (r.status !== 0 || !avatar?.ok || !agent?.ok) {
    log(`the exchange failed (exit ${r.status}); outputs in ${out}`)
    return false
  }
  const s = (n: number) => `${(n / 48000).toFixed(2)} s`
  log('')
  log(`  avatar received segment 1: ${s(avatar.segments[0].samples)}, ${avatar.segments[0].interrupted ? 'interrupted' : 'complete'}`)
  log(`  agent heard back:          playback finished at ${agent.first.playbackPosition.toFixed(2)} s, interrupted ${agent.first.interrupted}`)
  log(`  avatar received segment 2: ${s(avatar.segments[1].samples)} before the interruption (${avatar.segments[1].interrupted ? 'interrupted' : 'complete'})`)
  log(`  agent's clearBuffer():     ${agent.second.status}, played ${agent.second.playbackPosition.toFixed(2)} s, interrupted ${agent.second.interrupted}`)
  log(`  bytes sent ${agent.metrics.bytesSent} in ${agent.metrics.chunksSent} chunks over ${agent.metrics.streams} byte streams; cleared unsent ${agent.metrics.encoder.clearedBytes} bytes`)
  log(`  accounting holds: agent ${agent.invariant}, avatar ${avatar.invariant}; whole run ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return true
}
