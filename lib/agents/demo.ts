import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * `capstan demo --agents`: a real `@livekit/agents` AgentSession speaking through
 * `CapstanAudioOutput` over a livekit-server in a private network namespace, with a plain
 * subscriber measuring what it hears: two segments (the second interrupted), a barge-in storm,
 * an LLM turn after it, and the positions playbackFinished reported against those heard.
 * Runs from a checkout with the agents peer installed (`node scripts/test-setup.mjs peers`).
 * Self-contained (spawns processes, loads no LiveKit package itself), for `lib/cli.ts` to call.
 */
export function runAgentsDemo(log: (l: string) => void): boolean {
  const root = join(__dirname, '..', '..')
  const runner = join(root, '__test__/livekit/fixtures/netns-run.sh')
  const server = join(root, 'scripts/livekit-server.sh')
  const peer = join(root, '__test__/livekit/peers/agents-js/node_modules')
  if (!existsSync(runner) || !existsSync(server)) {
    log('capstan demo --agents runs from a capstan checkout (it needs scripts/livekit-server.sh and the namespace runner)')
    return false
  }
  if (!existsSync(join(peer, '@livekit/agents'))) {
    log('capstan demo --agents needs the @livekit/agents peer: node scripts/test-setup.mjs peers')
    return false
  }
  log('capstan demo --agents: building or finding livekit-server v1.13.5 (the first build takes a few minutes)')
  const built = spawnSync('bash', [server], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (built.status !== 0) {
    log('could not build livekit-server (see above)')
    return false
  }
  const out = mkdtempSync(join(tmpdir(), 'capstan-agents-demo-'))
  const fx = (f: string) => join(root, '__test__/livekit/fixtures', f)
  log(`  server: ${built.stdout.trim()}; a private network namespace, nothing leaves the machine`)
  log('  agent: @livekit/agents 1.9.0 AgentSession, session.output.audio = new CapstanAudioOutput(room); local tone TTS and LLM')
  log('  say 1 s of 440 Hz; say a 3 s chirp 660 -> 1260 Hz, interrupted 1.2 s in; 20 interruptions in 2 s; an LLM turn: 0.8 s of 550 Hz')
  const r = spawnSync(
    'bash',
    [runner, '--out', out, '--cmd', `"${process.execPath}" "${fx('agents-subscriber.mjs')}" demo`, '--cmd', `"${process.execPath}" "${fx('agents-session.mjs')}" demo capstan`],
    { encoding: 'utf8', timeout: 120_000, env: { ...process.env, NODE_PATH: peer } },
  )
  const result = (f: string, role: string) => {
    try {
      for (const l of readFileSync(join(out, f), 'utf8').trim().split('\n').reverse()) if (l.startsWith(`{"role":"${role}"`)) return JSON.parse(l)
    } catch {
      // missing output: reported below
    }
    return undefined
  }
  const sub = result('cmd-0.out', 'sub')
  const agent = result('cmd-1.out', 'agent')
  if (r.status !== 0 || !sub?.ok || !agent?.ok) {
    log(`the session failed (exit ${r.status}); outputs in ${out}`)
    return false
  }
  type Run = { hz: number; startHz: number; endHz: number; durMs: number; holeMs: number }
  const runs = sub.runs as Run[]
  const tone = (hz: number) => runs.find((x) => Math.abs(x.hz - hz) < 0.02 * hz)
  // Segment 2 is a chirp (660 -> 1260 Hz over 3 s): its last frequency heard says where it was cut.
  const chirp = runs.find((x) => Math.abs(x.startHz - 660) < 20)
  let ok = true
  for (const [name, ev, h] of [['whole', agent.first, tone(440)], ['interrupted', agent.second, chirp], ['after the storm', agent.last, tone(550)]] as const) {
    const reported = ev.position * 1000
    const sent = h === chirp && h ? ((h.endHz - 660) / 200) * 1000 + 10 : h?.durMs
    const err = sent === undefined ? NaN : reported - sent
    // A duration as the receiver played it may be stretched by its jitter buffer (~25 ms seen).
    if (!(Math.abs(err) <= (h === chirp ? 20 : 30))) ok = false
    const what = h === chirp ? `the chirp up to ${sent?.toFixed(1)} ms of it (played as ${h?.durMs} ms)` : `${h?.durMs} ms of ${h?.hz} Hz`
    log(`  ${name}: playbackFinished ${reported.toFixed(1)} ms (interrupted: ${ev.interrupted}), heard ${h ? `${what}, longest hole ${h.holeMs} ms` : 'nothing'}, error ${err.toFixed(1)} ms`)
  }
  const m = agent.metrics
  log(`  source: captured ${m.source.captured}, delivered ${m.source.delivered}, cleared ${m.source.cleared}; publisher: ${m.publisher.framesSent} frames sent, ${m.publisher.stalls} stalls`)
  log(`  segments: ${m.segments.finished} finished, ${m.segments.interrupted} interrupted; unhandled rejections: ${agent.unhandled.length}`)
  log(ok ? 'OK' : `positions and what was heard disagree; outputs in ${out}`)
  return ok && agent.unhandled.length === 0
}
