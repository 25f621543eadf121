#!/usr/bin/env node
// @ts-check
// The encode floor of a published Opus track, measured on this machine beside the LiveKit
// capacity run (livekit-many.mjs): raw libopus through @discordjs/opus (a devDependency;
// its bundled libopus, 1.3.1), at the settings LiveKitRoom.publish uses by default — 48 kHz
// mono, OPUS_APPLICATION_AUDIO, 32 kbps, complexity 10, 20 ms frames — on the same tones the
// harness feeds (300 + 10 k Hz, amplitude 8000). One thread, synchronous, no I/O: the least
// CPU a track-second of encoded audio costs here. Prints µs of CPU per encoded second.
//   node benchmark/child-opus-floor.mjs [--encoders 20] [--seconds 10] [--complexity 10] [--bitrate 32000]
import { createRequire } from 'node:module'

import { emit, num, parseArgs } from './common.mjs'

const require = createRequire(import.meta.url)
const { OpusEncoder } = require('@discordjs/opus')

const args = parseArgs(process.argv.slice(2))
const ENCODERS = num(args, 'encoders', 20)
const SECONDS = num(args, 'seconds', 10)
const COMPLEXITY = num(args, 'complexity', 10)
const BITRATE = num(args, 'bitrate', 32000)
const RATE = 48000
const FRAME = 960
const OPUS_SET_COMPLEXITY_REQUEST = 4010

// Encoders on tones spread over the harness's range (track k plays 300 + 10 k Hz, k < 500).
const encs = Array.from({ length: ENCODERS }, (_, i) => {
  const k = Math.floor((i * 500) / ENCODERS)
  const hz = 300 + 10 * k
  const enc = new OpusEncoder(RATE, 1)
  enc.setBitrate(BITRATE)
  enc.applyEncoderCTL(OPUS_SET_COMPLEXITY_REQUEST, COMPLEXITY)
  const pcm = Int16Array.from({ length: RATE }, (_, j) => Math.round(8000 * Math.sin((2 * Math.PI * hz * j) / RATE)))
  const buf = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength)
  return { enc, buf, hz }
})

/** @param {number} seconds */
const run = (seconds) => {
  let bytes = 0
  let packets = 0
  for (let s = 0; s < seconds; s++)
    for (const e of encs)
      for (let off = 0; off < RATE; off += FRAME) {
        bytes += e.enc.encode(e.buf.subarray(off * 2, (off + FRAME) * 2)).length
        packets++
      }
  return { bytes, packets }
}

run(1) // warm up: the encoders' first second, the JIT
const c0 = process.cpuUsage()
const t0 = performance.now()
const { bytes, packets } = run(SECONDS)
const wall = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(c0)
const encodedSeconds = ENCODERS * SECONDS
emit({
  scenario: 'opus-floor',
  lib: '@discordjs/opus',
  libopus: '1.3.1',
  encoders: ENCODERS,
  complexity: COMPLEXITY,
  bitrate: BITRATE,
  encodedSeconds,
  wallS: wall,
  cpuUsPerSecond: (cpu.user + cpu.system) / encodedSeconds,
  wallUsPerSecond: (wall * 1e6) / encodedSeconds,
  meanPacketBytes: bytes / packets,
  kbps: (bytes * 8) / encodedSeconds / 1000,
})
