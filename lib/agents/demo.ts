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
  log('  say 1 s of 440 Hz; say a 3 s chirp 660 -> 1260 Hz, interrupted 1.2 s in; 20 interruptions in 2 s; an LLM turn: a 0.8 s chirp 550 -> 950 Hz')
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
  // Segments 2 and 4 are chirps (660 -> 1260 Hz in 3 s, 550 -> 950 Hz in 0.8 s): the frequency
  // of the last 20 ms heard says where in the segment it was sent, however the receiver's
  // jitter buffer stretched what it played.
  const chirp = (f0: number) => runs.find((x) => Math.abs(x.startHz - f0) < 0.03 * f0)
  const code = (h: Run | undefined, f0: number, perS: number) => (h ? ((h.endHz - f0) / perS) * 1000 + 10 : undefined)
  let ok = true
  const rows: Array<[string, { position: number; interrupted: boolean }, Run | undefined, number | undefined]> = [
    ['whole', agent.first, tone(440), tone(440)?.durMs],
    ['interrupted', agent.second, chirp(660), code(chirp(660), 660, 200)],
    ['after the storm', agent.last, chirp(550), code(chirp(550), 550, 500)],
  ]
  for (const [name, ev, h, sent] of rows) {
    const reported = ev.position * 1000
    const err = sent === undefined ? NaN : reported - sent
    // A duration as the receiver played it may be stretched by its jitter buffer (~25 ms seen).
    if (!(Math.abs(err) <= (name === 'whole' ? 30 : 20))) ok = false
    const what = name === 'whole' ? `${h?.durMs} ms of ${h?.hz} Hz` : `the chirp up to ${sent?.toFixed(1)} ms of it (played as ${h?.durMs} ms)`
    log(`  ${name}: playbackFinished ${reported.toFixed(1)} ms (interrupted: ${ev.interrupted}), heard ${h ? `${what}, longest hole ${h.holeMs} ms` : 'nothing'}, error ${err.toFixed(1)} ms`)
  }
  const m = agent.metrics
  log(`  source: captured ${m.source.captured}, delivered ${m.source.delivered}, cleared ${m.source.cleared}; publisher: ${m.publisher.framesSent} frames sent, ${m.publisher.stalls} stalls`)
  log(`  segments: ${m.segments.finished} finished, ${m.segments.interrupted} interrupted; unhandled rejections: ${agent.unhandled.length}`)
  log(ok ? 'OK' : `positions and what was heard disagree; outputs in ${out}`)
  return ok && agent.unhandled.length === 0
}
