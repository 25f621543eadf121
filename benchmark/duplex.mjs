#!/usr/bin/env node
// @ts-nocheck -- typed checking not yet done for this harness (its JSDoc types are incomplete)
// How many echo-cancelled duplex sessions one process carries (issue 20): each session is
// what a voice agent runs per call, an `AudioSource` playing the agent's voice in real time
// and an `AudioStream` of the caller's microphone (fed in real time, 10 ms frames) whose
// `processors.echoCancel({ reference: source })` cancels that voice. Beside each N, the same
// sessions without the echo canceller (the harness's own cost: the floor of this run).
// Each N runs in its own child process, SECONDS measured after a 1 s warm-up; a session
// keeps up when its microphone was fed in real time (>= 0.99) and its reader got >= 0.99 of
// what was fed, and the process when the event loop's p99 lag stays <= 20 ms.
//   node benchmark/duplex.mjs [--ns 10,25,50,100] [--seconds 10] [--rate 16000]
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

import { num, parseArgs } from './common.mjs'

const args = parseArgs(process.argv.slice(2))
const SECONDS = num(args, 'seconds', 10)
const RATE = num(args, 'rate', 16000)

if (args.child) {
  const require = createRequire(import.meta.url)
  const { AudioFrame, AudioSource, AudioStream, processors, shutdown } = require('../dist/index.js')
  const N = num(args, 'n', 10)
  const aec = args.aec === 'on'
  const chunk = RATE / 100
  // One shared timer that every microphone waits on (the cheapest real-time feed): each
  // frame is released once the wall clock has passed its end, so the feed keeps real time
  // whatever the timer's own drift.
  /** @type {Array<{ due: number, r: () => void }>} */
  let waiters = []
  const timer = setInterval(() => {
    const now = performance.now()
    const w = waiters
    waiters = []
    for (const x of w) (x.due <= now ? x.r() : waiters.push(x))
  }, 5)
  // Speech-like far end (a few harmonics, syllable envelope) and a mic that hears it late.
  const far = Int16Array.from({ length: RATE * 2 }, (_, i) => {
    const t = i / RATE
    const env = 0.5 + 0.5 * Math.sin(2 * Math.PI * 3 * t)
    return Math.round(6000 * env * (Math.sin(2 * Math.PI * 180 * t) + 0.5 * Math.sin(2 * Math.PI * 360 * t) + 0.3 * Math.sin(2 * Math.PI * 900 * t)))
  })
  const mic = Int16Array.from({ length: RATE * 2 }, (_, i) => Math.round(0.4 * far[(i - Math.round(RATE * 0.06) + far.length) % far.length] + 300 * Math.sin(i)))
  const WARM_MS = 1000
  const end = performance.now() + WARM_MS + SECONDS * 1000
  const sessions = []
  for (let k = 0; k < N; k++) {
    const s = { tts: undefined, stream: undefined, read: 0, fed: 0, read0: 0, fed0: 0 }
    const tts = new AudioSource({ sampleRate: RATE, channels: 1, queueMs: 4000 })
    async function* microphone() {
      let at = (k * 997) % mic.length
      const start = performance.now()
      let n = 0
      while (performance.now() < end) {
        const due = start + ++n * 10
        await new Promise((r) => waiters.push({ due, r: () => r(undefined) }))
        const f = new Int16Array(chunk)
        for (let i = 0; i < chunk; i++) f[i] = mic[(at + i) % mic.length]
        at = (at + chunk) % mic.length
        s.fed += chunk
        yield new AudioFrame(f, RATE, 1)
      }
    }
    const stream = new AudioStream(microphone(), { sampleRate: RATE, channels: 1, queueFrames: 50, processors: aec ? [processors.echoCancel({ reference: tts })] : [] })
    s.tts = tts
    s.stream = stream
    sessions.push(s)
  }
  // The agent speaks: 1 s of voice queued each second (captures that never wait).
  const speak = () => sessions.forEach((s) => s.tts.tryCaptureFrame(far.subarray(0, RATE)))
  speak()
  const talker = setInterval(speak, 1000)
  const gaps = []
  let last = performance.now()
  let measuring = false
  let cpu0 = process.cpuUsage()
  let t0 = performance.now()
  const probe = setInterval(() => {
    const t = performance.now()
    if (measuring) gaps.push(t - last - 5)
    last = t
  }, 5)
  setTimeout(() => {
    measuring = true
    cpu0 = process.cpuUsage()
    t0 = performance.now()
    for (const s of sessions) {
      s.read0 = s.read
      s.fed0 = s.fed
    }
  }, WARM_MS)
  await Promise.all(
    sessions.map(async (s) => {
      for await (const f of s.stream) s.read += f.samplesPerChannel
    }),
  )
  const wall = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  clearInterval(probe)
  clearInterval(talker)
  clearInterval(timer)
  gaps.sort((a, b) => a - b)
  const q = (p) => Math.round(gaps[Math.min(gaps.length - 1, Math.floor(p * gaps.length))] * 10) / 10
  // Fed: real time of the microphones; kept: what each reader got of what was fed.
  const fed = sessions.map((s) => (s.fed - s.fed0) / RATE / wall)
  const kept = sessions.map((s) => (s.read - s.read0) / Math.max(1, s.fed - s.fed0))
  const echo = aec ? sessions[0].stream.metrics().processors?.[0] : undefined
  await Promise.all(sessions.flatMap((s) => [s.tts.close(), s.stream.close()]))
  shutdown()
  console.log(
    JSON.stringify({
      n: N,
      aec,
      minRtf: Math.round(Math.min(...fed) * 1000) / 1000,
      minKept: Math.round(Math.min(...kept) * 1000) / 1000,
      loopP99: q(0.99),
      loopMax: Math.round(gaps[gaps.length - 1] * 10) / 10,
      cpuUsPerSessionSecond: Math.round((cpu.user + cpu.system) / N / wall),
      wall: Math.round(wall * 100) / 100,
      echo: echo ? { erleDb: echo.health?.erleDb, delayMs: echo.health?.delayMs } : undefined,
    }),
  )
  process.exit(0)
}

const ns = typeof args.ns === 'string' ? args.ns.split(',').map(Number) : [10, 25, 50, 100]
const here = fileURLToPath(import.meta.url)
const rows = []
for (const n of ns) {
  for (const aec of ['off', 'on']) {
    const r = spawnSync(process.execPath, [here, '--child', '--n', String(n), '--aec', aec, '--seconds', String(SECONDS), '--rate', String(RATE)], { encoding: 'utf8', timeout: (SECONDS + 60) * 1000 })
    const line = r.stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'))
    const row = line ? JSON.parse(line) : { n, aec: aec === 'on', error: (r.stderr || `exit ${r.status}`).slice(-300) }
    rows.push(row)
    process.stderr.write(`${JSON.stringify(row)}\n`)
  }
}
const ok = (/** @type {any} */ x) => x.minRtf >= 0.99 && x.minKept >= 0.99 && x.loopP99 <= 20
const lines = []
lines.push(`${new Date().toISOString()} · ${os.cpus()[0]?.model ?? 'cpu'} × ${os.availableParallelism?.() ?? os.cpus().length} · node ${process.version} · ${RATE} Hz · ${SECONDS} s per run`)
lines.push('')
lines.push(`Command: \`node benchmark/duplex.mjs --ns ${ns.join(',')} --seconds ${SECONDS} --rate ${RATE}\``)
lines.push('')
lines.push('| sessions | echoCancel | mic fed, min RTF | reader kept, min | loop p99 / max ms | CPU µs per session-second | keeps up |')
lines.push('|---:|---|---:|---:|---|---:|---|')
for (const x of rows) {
  lines.push(`| ${x.n} | ${x.aec ? 'on' : 'off (floor)'} | ${x.minRtf ?? '—'} | ${x.minKept ?? '—'} | ${x.loopP99 ?? '—'} / ${x.loopMax ?? '—'} | ${x.cpuUsPerSessionSecond ?? '—'} | ${x.error ? `error: ${x.error}` : ok(x) ? 'yes' : 'no'} |`)
}
const best = rows.filter((x) => x.aec && ok(x)).reduce((m, x) => Math.max(m, x.n), 0)
lines.push('')
lines.push(`Most echo-cancelled sessions that kept up: ${best || 'none of those tried'}`)
console.log(lines.join('\n'))
