import { readFileSync, writeFileSync, openSync, writeSync, closeSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'

import type { EncodeFormat, EncodedStream } from '../encode/encoded-stream'
import { AudioSource } from '../source/source'

export interface EncodeSampleOptions {
  out: string
  /** A 16-bit PCM WAV to encode instead of the synthetic speech. */
  input?: string
  seconds: number
  log: (line: string) => void
}

const FRAME_MS = 20

/**
 * Speech-like audio: a voiced source (harmonics of a gliding 100-220 Hz pitch) shaped by two
 * moving formants, in 4-5 syllables a second with pauses between phrases. Not speech, but
 * it exercises an encoder the way speech does: pitch, formants, onsets and silence.
 */
export function syntheticSpeech(rate: number, seconds: number): Int16Array {
  const n = Math.round(rate * seconds)
  const out = new Int16Array(n)
  let phase = 0
  for (let i = 0; i < n; i++) {
    const t = i / rate
    const f0 = 150 + 50 * Math.sin(2 * Math.PI * 0.7 * t) + 20 * Math.sin(2 * Math.PI * 3.1 * t)
    phase += (2 * Math.PI * f0) / rate
    const f1 = 500 + 300 * Math.sin(2 * Math.PI * 4.3 * t)
    const f2 = 1500 + 700 * Math.sin(2 * Math.PI * 2.9 * t + 1)
    let v = 0
    for (let h = 1; h * f0 < Math.min(4000, rate / 2); h++) {
      const f = h * f0
      const g = 1 / (1 + ((f - f1) / 150) ** 2) + 0.6 / (1 + ((f - f2) / 250) ** 2)
      v += (g * Math.sin(h * phase)) / Math.sqrt(h)
    }
    const syllable = Math.max(0, Math.sin(2 * Math.PI * 4.5 * t)) ** 0.6
    const phrase = t % 2.5 < 2.0 ? 1 : 0
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v * syllable * phrase * 6000)))
  }
  return out
}

/** A 16-bit PCM WAV's rate, channels and samples. */
export function readWav(path: string): { rate: number; channels: number; data: Int16Array } {
  const b = readFileSync(path)
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path}: not a WAV file`)
  let off = 12
  let fmt: { rate: number; channels: number; bits: number; tag: number } | undefined
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4)
    let size = b.readUInt32LE(off + 4)
    if (id === 'fmt ') fmt = { tag: b.readUInt16LE(off + 8), channels: b.readUInt16LE(off + 10), rate: b.readUInt32LE(off + 12), bits: b.readUInt16LE(off + 22) }
    else if (id === 'data') {
      if (!fmt || fmt.tag !== 1 || fmt.bits !== 16) throw new Error(`${path}: only 16-bit PCM WAV is read`)
      if (size === 0xffffffff || off + 8 + size > b.length) size = b.length - off - 8
      const bytes = b.subarray(off + 8, off + 8 + (size & ~1))
      const data = new Int16Array(bytes.length / 2)
      for (let i = 0; i < data.length; i++) data[i] = bytes.readInt16LE(i * 2)
      return { rate: fmt.rate, channels: fmt.channels, data }
    }
    off += 8 + size + (size & 1)
  }
  throw new Error(`${path}: no data chunk`)
}

const pct = (v: number[], q: number) => v[Math.min(v.length - 1, Math.floor(q * v.length))]

/** Writes everything a stream produces to `path`, patching the header when the segment ends. */
async function toFile(stream: EncodedStream, path: string, t0: { at?: number }): Promise<{ firstBytesMs?: number }> {
  const fd = openSync(path, 'w')
  let pos = 0
  let firstBytesMs: number | undefined
  try {
    for await (const c of stream.chunks()) {
      if (c.bytes.length > 0 && firstBytesMs === undefined && t0.at !== undefined) firstBytesMs = performance.now() - t0.at
      pos += writeSync(fd, c.bytes, 0, c.bytes.length, pos)
      if (c.end?.headerPatch) writeSync(fd, c.end.headerPatch, 0, c.end.headerPatch.length, 0)
    }
  } finally {
    closeSync(fd)
  }
  return { firstBytesMs }
}

/** `capstan encode`: the same audio through real-time sources into Ogg Opus, MP3 and WAV files. */
export async function runEncodeSample(o: EncodeSampleOptions): Promise<boolean> {
  const { log } = o
  mkdirSync(o.out, { recursive: true })
  const src = o.input ? readWav(o.input) : { rate: 48_000, channels: 1, data: syntheticSpeech(48_000, o.seconds) }
  const { rate, channels } = src
  const frame = (rate * FRAME_MS) / 1000
  log(`capstan encode: ${o.input ?? 'synthetic speech'}, ${rate} Hz, ${channels} ch, ${(src.data.length / channels / rate).toFixed(2)} s`)
  log(`  through 3 real-time sources (${FRAME_MS} ms frames, plain await captureFrame loops) into ${o.out}`)
  const formats: Array<[EncodeFormat, string, object]> = [
    ['ogg-opus', 'sample.ogg', { bitrate: 32000, pageMs: 20 }],
    ['mp3', 'sample.mp3', { bitrate: 64000 }],
    ['wav', 'sample.wav', {}],
  ]
  const t0: { at?: number } = {}
  const runs = formats.map(([format, file, extra]) => {
    const source = new AudioSource({ sampleRate: rate, channels, queueMs: 200 })
    const stream = source.encode({ format, ...extra } as never)
    return { format, file, source, stream, writing: toFile(stream, join(o.out, file), t0), pushUs: [] as number[] }
  })
  const step = frame * channels
  for (let i = 0; i < src.data.length; i += step) {
    const f = src.data.subarray(i, Math.min(src.data.length, i + step))
    await Promise.all(
      runs.map((r) => {
        const t = performance.now()
        const p = r.source.captureFrame(f)
        r.pushUs.push((performance.now() - t) * 1000)
        return p
      }),
    )
    t0.at ??= performance.now()
  }
  let ok = true
  for (const r of runs) {
    const seg = await r.stream.finish()
    const { firstBytesMs } = await r.writing
    await r.source.close()
    const m = r.stream.metrics()
    const s = [...r.pushUs].sort((a, b) => a - b)
    const unit = r.format === 'ogg-opus' ? 'pages' : r.format === 'mp3' ? 'frame groups' : 'blocks'
    log(
      `  ${r.file.padEnd(11)} ${String(m.producedBytes).padStart(8)} bytes, ${m.pieces} ${unit}, ${(seg.durationMs / 1000).toFixed(2)} s; ` +
        `captureFrame call p50 ${pct(s, 0.5).toFixed(1)} µs / p99 ${pct(s, 0.99).toFixed(1)} µs / max ${s[s.length - 1].toFixed(1)} µs; ` +
        `encode p99 ${m.encodeUs.p99} µs/10 ms; first audio page ${seg.firstPieceMs?.toFixed(2) ?? '-'} ms after its audio reached the encoder` +
        (firstBytesMs !== undefined ? `, first bytes in JS ${firstBytesMs.toFixed(1)} ms after the first frame` : ''),
    )
    if (m.producedBytes !== m.readBytes + m.queuedBytes + m.droppedBytes || m.droppedBytes > 0) ok = false
  }
  log(`  play them: opusdec/ffplay ${join(o.out, 'sample.ogg')}, mpg123 ${join(o.out, 'sample.mp3')}, aplay ${join(o.out, 'sample.wav')}`)
  writeFileSync(join(o.out, 'README.txt'), 'Written by `capstan encode`: the same audio as Ogg Opus, MP3 and WAV.\n')
  return ok
}
