#!/usr/bin/env node
// @ts-check
// The machine's floor, measured beside capstan and the peer in the same run: N plain loops
// that each copy a 10 ms frame (48 kHz mono, 960 bytes) and await a promise that one 10 ms
// timer resolves for all of them. Pure JavaScript, no audio library: the least a real-time
// producer loop can cost on this machine, so other figures can be stated as multiples of it
// and two machines of the same name told apart.
//   node benchmark/child-floor.mjs [--n 1000] [--seconds 6] [--warmup 1]
import { emit, num, parseArgs } from './common.mjs'

const args = parseArgs(process.argv.slice(2))
const N = num(args, 'n', 1000)
const SECONDS = num(args, 'seconds', 6)
const WARMUP = num(args, 'warmup', 1)

const frame = new Int16Array(480)
for (let i = 0; i < frame.length; i++) frame[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 48000))

/** @type {(v?: unknown) => void} */
let release = () => {}
/** @type {Promise<unknown>} */
let tick = new Promise((r) => (release = r))
const timer = setInterval(() => {
  const r = release
  tick = new Promise((next) => (release = next))
  r()
}, 10)

let frames = 0
let copies = 0
let stop = false
const loops = Array.from({ length: N }, async () => {
  while (!stop) {
    const copy = frame.slice()
    copies += copy.length > 0 ? 1 : 0
    await tick
    frames++
  }
})

await new Promise((r) => setTimeout(r, WARMUP * 1000))
const f0 = frames
const c0 = process.cpuUsage()
const t0 = performance.now()
await new Promise((r) => setTimeout(r, (SECONDS - WARMUP) * 1000))
const cpu = process.cpuUsage(c0)
const wall = (performance.now() - t0) / 1000
const inWindow = frames - f0
stop = true
release()
await Promise.all(loops)
clearInterval(timer)
emit({
  scenario: 'floor',
  lib: 'floor',
  n: N,
  frameMs: 10,
  windowS: wall,
  frames: inWindow,
  // Each loop should run once per 10 ms tick: below 1 the machine cannot carry N plain loops.
  rtf: inWindow / N / (wall * 100),
  cpuUsPerFrame: inWindow ? (cpu.user + cpu.system) / inWindow : NaN,
  copies,
})
