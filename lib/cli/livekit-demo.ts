import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * `capstan demo --livekit`: builds (or finds) livekit-server, starts it in a private network
 * namespace, and runs an agent → avatar exchange through it: capstan's byte-stream sender
 * and receiver, two segments, an interruption in the second, playback-finished answers.
 * Needs a capstan checkout (the server script and the namespace runner live there).
 */
export function runLivekitDemo(log: (l: string) => void): boolean {
  const root = join(__dirname, '..')
  const runner = join(root, '__test__/livekit/fixtures/netns-run.sh')
  const server = join(root, 'scripts/livekit-server.sh')
  if (!existsSync(runner) || !existsSync(server)) {
    log('capstan demo --livekit runs from a capstan checkout (it needs scripts/livekit-server.sh and the namespace runner)')
    return false
  }
  log('capstan demo --livekit: building or finding livekit-server v1.13.5 (the first build takes a few minutes)')
  const built = spawnSync('bash', [server], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (built.status !== 0) {
    log('could not build livekit-server (see above)')
    return false
  }
  const out = mkdtempSync(join(tmpdir(), 'capstan-lk-demo-'))
  const fx = (f: string) => join(root, '__test__/livekit/fixtures', f)
  log(`  server: ${built.stdout.trim()}; a private network namespace (lo + veth 10.231.0.1/2), nothing leaves the machine`)
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
