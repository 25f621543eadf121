#!/usr/bin/env node
// @ts-nocheck -- typed checking not yet done for this harness (its JSDoc types are incomplete)
// Capacity of one publishing process (issue 18): N real-time 48 kHz mono tracks published to a
// real livekit-server (in a private network namespace, __test__/livekit/fixtures/netns-run.sh)
// for SECONDS each, by
//   native   capstan's own client, LiveKitRoom.publish (Opus encoded on engine threads)
//   direct   @livekit/rtc-node AudioSources fed directly (the peer)
//   capstan  capstan AudioSources through publishToLiveKit into an rtc-node Room
// each fed by the same plain `await captureFrame` loop of 20 ms frames, while a subscriber
// (many-sampler.mjs, rtc-node) decodes 10 of the N tracks. For N = 20, 50, 100, 200, 500
// (interleaved: every library still in the sweep runs at one N before the next N), a library
// leaves the sweep at its first N that fails: RTF < 0.99, event-loop p99 > 20 ms, or a sampled
// track not received in full (under 0.99 x SECONDS of tone, off its frequency by 5 %, or quiet
// 10 ms frames inside the tones over 1 % of the sampled frames), or (native, the one library
// that counts them) over 1 % of the Opus packets dropped before the wire.
// Before the runs, this machine's floors: the raw libopus encode cost at the same settings
// (child-opus-floor.mjs) and the plain-loop JS floor (child-floor.mjs). After them, the first
// audio packet on the wire (native and direct; wire-first-packet.py, a raw socket in the
// namespace, in runs of its own: a capture costs CPU). Prints a markdown report on stdout.
//   node benchmark/livekit-many.mjs [--ns 20,50,100,200,500] [--seconds 20] [--modes native,direct,capstan]
//        [--sample 10] [--wait-load 1.0] [--wait-max-min 25] [--latency-reps 5] [--json FILE]
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { RESULT_PREFIX, num, parseArgs } from './common.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const FIX = path.join(ROOT, '__test__/livekit/fixtures')
const args = parseArgs(process.argv.slice(2))
const NS = (typeof args.ns === 'string' ? args.ns : typeof args.n === 'string' ? args.n : '20,50,100,200,500').split(',').map(Number)
const SECONDS = num(args, 'seconds', 20)
const SAMPLE = num(args, 'sample', 10)
const WAIT_LOAD = num(args, 'wait-load', 0)
const WAIT_MAX_MIN = num(args, 'wait-max-min', 25)
const LAT_REPS = num(args, 'latency-reps', 5)
const BIG_WIRE = 60
const modes = typeof args.modes === 'string' ? args.modes.split(',') : ['native', 'direct', 'capstan']
const LABEL = { 'native-q': 'native, queuePackets 25 N (diagnostic)', native: 'capstan LiveKitRoom.publish (native)', direct: '@livekit/rtc-node direct', capstan: 'capstan publishToLiveKit (rtc-node room)' }
const log = (/** @type {string} */ s) => process.stderr.write(`[livekit-many ${new Date().toISOString().slice(11, 19)}] ${s}\n`)
const load1 = () => os.loadavg()[0]

// ---- a quiet machine first (other engineers compile here) ----
const started = new Date()
if (WAIT_LOAD > 0) {
  const until = Date.now() + WAIT_MAX_MIN * 60_000
  while (load1() >= WAIT_LOAD && Date.now() < until) {
    log(`1-minute load ${load1().toFixed(2)} >= ${WAIT_LOAD}: waiting 30 s`)
    execFileSync('sleep', ['30'])
  }
  log(`1-minute load ${load1().toFixed(2)}${load1() >= WAIT_LOAD ? ` (still >= ${WAIT_LOAD} after ${WAIT_MAX_MIN} min: running anyway)` : ''}`)
}
const loadAtStart = os.loadavg()

/** @param {string} text */
const lastJson = (text) => {
  const line = text.trim().split('\n').reverse().find((l) => l.startsWith('{"role"'))
  return line ? JSON.parse(line) : null
}
/** @param {string} script @param {string[]} argv */
const child = (script, argv) => {
  const r = spawnSync(process.execPath, [path.join(HERE, script), ...argv], { encoding: 'utf8' })
  const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX))
  return line ? JSON.parse(line.slice(RESULT_PREFIX.length)) : null
}

// ---- floors ----
log('floors: raw libopus (20 encoders x 10 s), the JS plain-loop floor')
const opusFloor = child('child-opus-floor.mjs', ['--encoders', '20', '--seconds', '10'])
const floor = child('child-floor.mjs', ['--n', '1000', '--seconds', '6'])
const opusUs = opusFloor?.cpuUsPerSecond ?? NaN
// The same loop on the libopus build capstan-livekit links (crates/capstan-livekit/examples/
// opus-floor.rs, built here if needed): the floor of the same encoder, not only of libopus.
const sameBuilt = spawnSync('cargo', ['build', '--release', '-q', '-p', 'capstan-livekit', '--example', 'opus-floor'], { cwd: path.join(HERE, '..'), encoding: 'utf8' }).status === 0
/** The same-build loop over `encoders` encoders for `seconds` each (null if it did not build). */
const sameFloorOf = (encoders, seconds, interleaved = false) => {
  if (!sameBuilt) return null
  const r = spawnSync(path.join(HERE, '..', 'target', 'release', 'examples', 'opus-floor'), [String(encoders), String(seconds), '10', '32000', interleaved ? '1' : '0'], { encoding: 'utf8' })
  const line = r.stdout?.split('\n').find((l) => l.startsWith('{'))
  return line ? JSON.parse(line) : null
}
const sameFloor = sameFloorOf(20, 10)
const sameUs = sameFloor?.cpuUsPerEncodedSecond ?? NaN
// N encoders interleaved, as N tracks are: their states no longer all fit the caches, which
// is the encoder's cost at that N, not the library's overhead. Measured here, with the other
// floors, on the quiet machine (after a run, its server and sampler are still winding down).
/** @type {Map<number, number>} */
const sameAtN = new Map()
if (modes.includes('native')) {
  for (const n of NS) {
    const at = sameFloorOf(n, 5, true)
    if (at) sameAtN.set(n, at.cpuUsPerEncodedSecond)
  }
}

/**
 * One netns run: the clients given, in order; returns their last JSON lines and the exit.
 * @param {string[]} cmds @param {number} timeoutS @param {string} tag
 */
const netns = (cmds, timeoutS, tag) => {
  const out = mkdtempSync(path.join(os.tmpdir(), `lk-many-${tag}-`))
  const argv = [path.join(FIX, 'netns-run.sh'), '--out', out]
  for (const c of cmds) argv.push('--cmd', c)
  const r = spawnSync('bash', argv, { encoding: 'utf8', timeout: timeoutS * 1000, cwd: ROOT })
  const read = (/** @type {string} */ f) => {
    try {
      return readFileSync(path.join(out, f), 'utf8')
    } catch {
      return ''
    }
  }
  return { status: r.status, out, results: cmds.map((_, i) => lastJson(read(`cmd-${i}.out`))), errs: cmds.map((_, i) => read(`cmd-${i}.err`)) }
}

// ---- the sweep ----
/** @type {any[]} */
const rows = []
const active = new Set(modes)
/** @type {Record<string, {n: number, why: string} | undefined>} */
const stopped = {}
for (const n of NS) {
  for (const mode of modes) {
    if (!active.has(mode)) continue
    log(`${mode}, ${n} tracks for ${SECONDS} s (load ${load1().toFixed(2)}) ...`)
    const t = performance.now()
    const r = netns(
      [`node ${path.join(FIX, 'many-sampler.mjs')} many ${n} ${SAMPLE} ${SECONDS + 240}`, `node --expose-gc ${path.join(FIX, 'many-publishers.mjs')} many ${mode} ${n} ${SECONDS} ${SAMPLE}`],
      SECONDS + 300,
      `${mode}-${n}`,
    )
    const [sub, pub] = r.results
    const tracks = sub?.tracks ? Object.entries(sub.tracks) : []
    const want = Math.min(n, SAMPLE)
    const hzErr = tracks.length ? Math.max(...tracks.map(([name, x]) => Math.abs(x.hz - (300 + 10 * Number(name.slice(1)))) / (300 + 10 * Number(name.slice(1))))) : NaN
    const minSeconds = tracks.length ? Math.min(...tracks.map(([, x]) => x.seconds)) : NaN
    const holes = tracks.reduce((a, [, x]) => a + x.holes, 0)
    const e2e = tracks.map(([name, x]) => x.firstLoudEpochMs - (pub?.firstCaptures?.[name] ?? NaN)).filter(Number.isFinite).sort((a, b) => a - b)
    /** @type {string[]} */
    const why = []
    if (r.status !== 0 || !sub?.ok || !pub?.ok) why.push(`run failed (exit ${r.status}${pub?.error ? `: ${pub.error}` : ''}${sub?.error ? `; sampler: ${sub.error}` : ''})`)
    if (pub && !(pub.rtf >= 0.99)) why.push(`RTF ${pub.rtf}`)
    if (pub?.loop && !(pub.loop.p99 <= 20)) why.push(`loop p99 ${pub.loop.p99} ms`)
    if (tracks.length < want) why.push(`${tracks.length} of ${want} sampled tracks subscribed`)
    if (!(minSeconds >= 0.99 * SECONDS)) why.push(`shortest sampled track ${minSeconds} s`)
    if (!(hzErr <= 0.05)) why.push(`a sampled tone off by ${(hzErr * 100).toFixed(1)} %`)
    // Holes: quiet 10 ms frames inside a sampled tone; more than 1 % of them is not "in full".
    const sampledFrames = want * SECONDS * 100
    if (holes > 0.01 * sampledFrames) why.push(`${holes} holes in the sampled tones (${((100 * holes) / sampledFrames).toFixed(1)} % of their 10 ms frames)`)
    // Native only (the one library that counts it): Opus packets dropped before the wire.
    const dropped = pub?.bytes ? pub.bytes.droppedFull + pub.bytes.droppedUnsent : 0
    if (pub?.bytes && dropped > 0.01 * pub.bytes.encodedPackets) why.push(`${dropped} of ${pub.bytes.encodedPackets} packets dropped before the wire (${pub.bytes.droppedFull} full queue)`)
    const row = { mode, n, pass: why.length === 0, why, pub, sub: sub && { ok: sub.ok, error: sub.error }, minSeconds, holes, hzErr, e2eMedianMs: e2e[e2e.length >> 1], out: r.out, runS: (performance.now() - t) / 1000, load1: load1() }
    rows.push(row)
    log(`  ${row.pass ? 'pass' : `FAIL: ${why.join('; ')}`} (RTF ${pub?.rtf}, p99 ${pub?.loop?.p99} ms, ${pub?.cpuUsPerTrackSecond} µs/track-s, ${row.runS.toFixed(0)} s, out ${r.out})`)
    if (!row.pass) {
      active.delete(mode)
      stopped[mode] = { n, why: why.join('; ') }
    }
  }
}
const sweepEnded = new Date()

// ---- first audio packet on the wire, runs of their own ----
/** @type {any[]} */
const latency = []
for (const [mode, n, reps] of /** @type {Array<[string, number, number]>} */ ([
  ['native', 1, LAT_REPS],
  ['direct', 1, Math.min(3, LAT_REPS)],
  ['native', 20, Math.min(3, LAT_REPS)],
])) {
  if (!modes.includes(mode) || reps === 0) continue
  for (let rep = 0; rep < reps; rep++) {
    const r = netns(
      [`python3 ${path.join(FIX, 'wire-first-packet.py')} ${n > 1 ? 10 : 8}`, `node ${path.join(FIX, 'many-sampler.mjs')} many ${n} ${n} 60`, `node ${path.join(FIX, 'many-publishers.mjs')} many ${mode} ${n} 2 ${n}`],
      120,
      `lat-${mode}-${n}`,
    )
    const [wire, , pub] = r.results
    const caps = Object.values(pub?.firstCaptures ?? {}).map(Number)
    const firstCap = caps.length ? Math.min(...caps) : NaN
    // Per SSRC: its first packet after the first capture that carries the tone (over BIG_WIRE
    // bytes of UDP payload: a 3-byte Opus silence frame with its headers, about 40, stays
    // under; the first tone packet, a 10 ms frame at 32 kbps, is about 70).
    const firstPkts = wire?.ssrcs ? Object.values(wire.ssrcs).map((s) => s.early.find((/** @type {number[]} */ [ms, bytes]) => ms >= firstCap && bytes > BIG_WIRE)).filter(Boolean) : []
    const firsts = firstPkts.map(([ms]) => ms - firstCap).sort((a, b) => a - b)
    const sizes = firstPkts.map(([, b]) => b)
    latency.push({ mode, n, rep, ok: r.status === 0 && !!pub?.ok, ssrcs: firsts.length, captureSpreadMs: caps.length ? Math.max(...caps) - firstCap : NaN, sizes: sizes.length ? `${Math.min(...sizes)}–${Math.max(...sizes)}` : '—', before: wire?.ssrcs ? Object.values(wire.ssrcs).reduce((a, s) => a + s.early.filter(([ms]) => ms < firstCap).length, 0) : NaN, minMs: firsts[0], medianMs: firsts[firsts.length >> 1], maxMs: firsts[firsts.length - 1], pollBy: pub?.firstPacketMs, out: r.out })
    log(`latency ${mode} n=${n} #${rep}: ${firsts.map((x) => x.toFixed(1)).join(' ')} ms`)
  }
}

// ---- the report ----
/** @param {number | undefined} x @param {number} d */
const f = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '—')
const cpuModel = (() => {
  try {
    return execFileSync('lscpu', { encoding: 'utf8' }).split('\n').find((l) => l.startsWith('Model name'))?.split(':')[1].trim()
  } catch {
    return os.cpus()[0]?.model
  }
})()
const lines = []
lines.push(`${started.toISOString()} – ${sweepEnded.toISOString()} · ${cpuModel} × ${os.availableParallelism?.() ?? os.cpus().length} · node ${process.version} · 1-minute load at the start ${loadAtStart.map((x) => x.toFixed(2)).join(' / ')}`)
lines.push('')
lines.push(`Command: \`node benchmark/livekit-many.mjs ${process.argv.slice(2).join(' ')}\``)
lines.push('')
lines.push(
  `Floors (same run): raw libopus (@discordjs/opus, libopus ${opusFloor?.libopus}, 48 kHz mono, 32 kbps, complexity 10, 20 ms frames, ${opusFloor?.encoders} encoders x 10 s): **${f(opusUs, 0)} µs CPU per encoded second**; JS plain-loop floor (child-floor.mjs): ${f(floor?.cpuUsPerFrame)} µs/frame; the same loop on the libopus capstan-livekit links (examples/opus-floor.rs, ${sameFloor?.libopus ?? 'not built'}): **${f(sameUs, 0)} µs CPU per encoded second**.`,
)
lines.push('')
lines.push('| library | N | result | RTF | sampled: shortest s / holes | loop p99 / max ms | CPU µs per track-s | × libopus floor | cores | RSS KB/track after publish / feed max / after feed (gc) | publish all s | dropped pkts (native) | load 1-min after |')
lines.push('|---|---:|---|---:|---|---|---:|---:|---:|---|---:|---:|---:|')
for (const x of rows) {
  const p = x.pub
  const drops = p?.bytes ? `${p.bytes.droppedFull + p.bytes.droppedUnsent} of ${p.bytes.encodedPackets}` : '—'
  lines.push(
    `| ${LABEL[x.mode]} | ${x.n} | ${x.pass ? 'pass' : `**fail**: ${x.why.join('; ')}`} | ${f(p?.rtf, 3)} | ${f(x.minSeconds, 2)} of ${SECONDS} / ${x.holes} | ${f(p?.loop?.p99, 1)} / ${f(p?.loop?.max, 1)} | ${p?.cpuUsPerTrackSecond ?? '—'} | ${f(p?.cpuUsPerTrackSecond / opusUs, 2)} | ${f(p?.cpuCores, 2)} | ${f(p?.rss?.perTrackKB, 0)} / ${f(p?.rss?.perTrackFeedKB, 0)} / ${f(p?.rss?.perTrackAfterFeedGcKB, 0)} | ${f(p?.publishMs / 1000, 1)} | ${drops} | ${f(x.load1, 2)} |`,
  )
}
lines.push('')
/** @param {string} m */
const carried = (m) => Math.max(0, ...rows.filter((x) => x.mode === m && x.pass).map((x) => x.n))
for (const m of modes) lines.push(`- ${LABEL[m]}: carried ${carried(m) || 'none of the N tried'}; ${stopped[m] ? `stopped at N = ${stopped[m].n}: ${stopped[m].why}` : 'passed every N tried'}`)
for (const nm of ['native', 'native-q'].filter((m) => modes.includes(m))) {
  if (modes.includes('direct')) {
    const a = carried(nm)
    const b = carried('direct')
    lines.push(`- tracks carried, ${nm} / rtc-node direct: ${b ? f(a / b, 1) + 'x' : `${a} / 0 (rtc-node carried none)`}${!stopped[nm] ? ` (${nm} did not fail: a lower bound)` : ''}`)
  }
  const nat = rows.filter((x) => x.mode === nm && x.pub?.cpuUsPerTrackSecond)
  if (nat.length) lines.push(`- ${nm} CPU per track-second / libopus floor: ${nat.map((x) => `N=${x.n} ${f(x.pub.cpuUsPerTrackSecond / opusUs, 2)}x`).join(', ')}`)
  if (nat.length && Number.isFinite(sameUs)) lines.push(`- ${nm} CPU per track-second / the same libopus build's floor: ${nat.map((x) => `N=${x.n} ${f(x.pub.cpuUsPerTrackSecond / sameUs, 2)}x`).join(', ')}`)
  if (nat.length && sameAtN.size) lines.push(`- ${nm} CPU per track-second / the same build's floor with N encoders interleaved (µs per encoded second in brackets): ${nat.filter((x) => sameAtN.has(x.n)).map((x) => `N=${x.n} ${f(x.pub.cpuUsPerTrackSecond / sameAtN.get(x.n), 2)}x [${f(sameAtN.get(x.n), 0)}]`).join(', ')}`)
  const both = NS.filter((n) => rows.some((x) => x.mode === nm && x.n === n && x.pub) && rows.some((x) => x.mode === 'direct' && x.n === n && x.pub))
  if (both.length)
    lines.push(
      `- CPU per track-second, rtc-node direct / ${nm}: ${both.map((n) => `N=${n} ${f(rows.find((x) => x.mode === 'direct' && x.n === n).pub.cpuUsPerTrackSecond / rows.find((x) => x.mode === nm && x.n === n).pub.cpuUsPerTrackSecond, 2)}x`).join(', ')}`,
    )
}
if (latency.length) {
  lines.push('')
  lines.push(`First audio packet on the wire: per track (SSRC), the kernel timestamp (SO_TIMESTAMPNS) of its first RTP packet after the first capture with over ${BIG_WIRE} bytes of UDP payload, minus the publisher's clock just before its first \`captureFrame\` (the earliest of the N; same realtime clock, same machine); 2 s feeds, each run its own server:`)
  lines.push('')
  lines.push('| library | N | run | tracks seen | first / median / max ms | their UDP payload bytes | RTP packets before the first capture | first captures spread ms | JS poll of sentPackets: seen within ms (median) |')
  lines.push('|---|---:|---:|---:|---|---|---:|---:|---:|')
  for (const l of latency) lines.push(`| ${LABEL[l.mode]} | ${l.n} | ${l.rep + 1}${l.ok ? '' : ' (FAILED)'} | ${l.ssrcs} | ${f(l.minMs, 1)} / ${f(l.medianMs, 1)} / ${f(l.maxMs, 1)} | ${l.sizes} | ${l.before} | ${f(l.captureSpreadMs, 1)} | ${f(l.pollBy?.byMedian, 1)} |`)
}
console.log(lines.join('\n'))
if (typeof args.json === 'string') writeFileSync(args.json, JSON.stringify({ started, sweepEnded, loadAtStart, cpuModel, opusFloor, sameFloor, sameAtN: Object.fromEntries(sameAtN), floor, rows, latency, stopped }, null, 1))
