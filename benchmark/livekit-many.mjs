#!/usr/bin/env node
// @ts-check
// N real-time tracks published from one process to a real livekit-server (in a private
// network namespace, __test__/livekit/fixtures/netns-run.sh), capstan (publishToLiveKit)
// beside @livekit/rtc-node fed directly, in one sitting, with this machine's floor measured
// first (child-floor.mjs). Prints a markdown table: per library the real-time factor, the
// shortest track any subscriber received, event-loop p99/max, CPU per frame, and ratios.
//   node benchmark/livekit-many.mjs [--n 50] [--seconds 20] [--modes capstan,direct]
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { RESULT_PREFIX, num, parseArgs } from './common.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const FIX = path.join(ROOT, '__test__/livekit/fixtures')
const args = parseArgs(process.argv.slice(2))
const N = num(args, 'n', 50)
const SECONDS = num(args, 'seconds', 20)
const modes = typeof args.modes === 'string' ? args.modes.split(',') : ['capstan', 'direct']

/** @param {string} text */
const lastJson = (text) => {
  const line = text.trim().split('\n').reverse().find((l) => l.startsWith('{'))
  return line ? JSON.parse(line) : null
}

const floorRun = spawnSync(process.execPath, [path.join(HERE, 'child-floor.mjs'), '--n', '1000', '--seconds', '6'], { encoding: 'utf8' })
const floorLine = floorRun.stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX))
const floor = floorLine ? JSON.parse(floorLine.slice(RESULT_PREFIX.length)) : null
const floorUs = floor?.cpuUsPerFrame ?? NaN

/** @type {Record<string, any>} */
const rows = {}
for (const mode of modes) {
  const out = mkdtempSync(path.join(os.tmpdir(), `lk-many-${mode}-`))
  process.stderr.write(`livekit-many: ${mode}, ${N} tracks for ${SECONDS} s (output in ${out}) ... `)
  const r = spawnSync(
    'bash',
    [path.join(FIX, 'netns-run.sh'), '--out', out, '--cmd', `node ${path.join(FIX, 'many-subscriber.mjs')} many ${N}`, '--cmd', `node ${path.join(FIX, 'many-publishers.mjs')} many ${mode} ${N} ${SECONDS}`],
    { encoding: 'utf8', timeout: (SECONDS + 120) * 1000, cwd: ROOT },
  )
  const read = (/** @type {string} */ f) => {
    try {
      return readFileSync(path.join(out, f), 'utf8')
    } catch {
      return ''
    }
  }
  const sub = lastJson(read('cmd-0.out'))
  const pub = lastJson(read('cmd-1.out'))
  process.stderr.write(`${r.status === 0 && sub?.ok && pub?.ok ? 'done' : `FAILED (exit ${r.status})`}\n`)
  const tracks = sub?.tracks ? Object.values(sub.tracks) : []
  rows[mode] = {
    ok: r.status === 0 && !!sub?.ok && !!pub?.ok,
    rtf: pub?.rtf,
    received: tracks.length,
    minSeconds: tracks.length ? Math.min(...tracks.map((/** @type {any} */ t) => t.seconds)) : NaN,
    loop: pub?.loop,
    cpuUsPerFrame: pub?.cpuUsPerFrame,
    framesLost: pub?.framesLost,
  }
}

/** @param {number | undefined} x @param {number} d */
const f = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '—')
const lines = []
lines.push(`${new Date().toISOString()} · ${os.cpus()[0]?.model ?? 'cpu'} × ${os.availableParallelism?.() ?? os.cpus().length} · node ${process.version}`)
lines.push('')
lines.push(`Floor (child-floor.mjs, 1,000 plain loops, one copy + one shared 10 ms timer promise per frame): **${f(floorUs)} µs/frame**`)
lines.push('')
lines.push(`Command: \`node benchmark/livekit-many.mjs --n ${N} --seconds ${SECONDS}\``)
lines.push('')
lines.push('| library | RTF | tracks received | shortest track s | loop p99 / max ms | CPU µs per 20 ms frame | × floor | frames lost |')
lines.push('|---|---:|---:|---:|---|---:|---:|---:|')
for (const [mode, x] of Object.entries(rows)) {
  lines.push(
    `| ${mode === 'direct' ? '@livekit/rtc-node direct' : 'capstan publishToLiveKit'}${x.ok ? '' : ' (FAILED)'} | ${f(x.rtf, 3)} | ${x.received} / ${N} | ${f(x.minSeconds, 1)} of ${SECONDS} | ${f(x.loop?.p99, 1)} / ${f(x.loop?.max, 1)} | ${f(x.cpuUsPerFrame, 1)} | ${f(x.cpuUsPerFrame / floorUs, 1)}x | ${x.framesLost ?? '—'} |`,
  )
}
if (rows.capstan && rows.direct) {
  lines.push('')
  lines.push(`capstan / rtc-node direct: RTF ${f(rows.capstan.rtf / rows.direct.rtf, 3)}, CPU per frame ${f(rows.capstan.cpuUsPerFrame / rows.direct.cpuUsPerFrame, 2)}`)
}
console.log(lines.join('\n'))
process.exit(Object.values(rows).every((x) => x.ok) ? 0 : 1)
