// Encoders, checked by real decoders (opus-tools, ffmpeg, mpg123; `npm test` installs them
// through scripts/test-setup.mjs, and a missing one fails these tests, it does not skip them).
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { AudioEncoder, AudioSource, CapstanError, type EncodedChunk, type EncoderMetrics } from '../../dist/index.js'
import { expectInvariant, within } from '../helpers'

const dir = mkdtempSync(join(tmpdir(), 'capstan-encode-'))
const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()))
})
function encoder(o: ConstructorParameters<typeof AudioEncoder>[0]): AudioEncoder {
  const e = new AudioEncoder(o)
  open.push(e)
  return e
}

function sine(rate: number, channels: number, samples: number, hz = 440, amp = 12000): Int16Array {
  const d = new Int16Array(samples * channels)
  for (let i = 0; i < samples; i++) {
    const v = Math.round(Math.sin((2 * Math.PI * hz * i) / rate) * amp)
    for (let c = 0; c < channels; c++) d[i * channels + c] = v
  }
  return d
}

/** Reads every chunk until the stream ends; split into files at segment ends. */
async function collect(it: AsyncIterable<EncodedChunk>): Promise<Array<{ bytes: Buffer; end: EncodedChunk['end'] }>> {
  const files: Array<{ bytes: Buffer; end: EncodedChunk['end'] }> = []
  let parts: Uint8Array[] = []
  for await (const c of it) {
    parts.push(c.bytes)
    if (c.end) {
      const bytes = Buffer.concat(parts)
      // A seekable output writes the final header (WAV sizes, MP3 LAME tag) at offset 0.
      if (c.end.headerPatch) Buffer.from(c.end.headerPatch).copy(bytes, 0)
      files.push({ bytes, end: c.end })
      parts = []
    }
  }
  return files
}

function write(name: string, bytes: Uint8Array): string {
  const p = join(dir, name)
  writeFileSync(p, bytes)
  return p
}

const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
const runAll = (cmd: string, args: string[]): string => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.error) throw r.error
  expect(r.status, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0)
  return `${r.stdout}${r.stderr}`
}

/** Decodes a WAV file's 16-bit PCM data chunk. */
function wavSamples(path: string): { rate: number; channels: number; data: Int16Array } {
  const b = readFileSync(path)
  expect(b.toString('ascii', 0, 4)).toBe('RIFF')
  let off = 12
  let rate = 0
  let channels = 0
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4)
    let size = b.readUInt32LE(off + 4)
    if (id === 'fmt ') {
      channels = b.readUInt16LE(off + 10)
      rate = b.readUInt32LE(off + 12)
    } else if (id === 'data') {
      if (size === 0xffffffff || off + 8 + size > b.length) size = b.length - off - 8
      const data = new Int16Array(b.buffer.slice(b.byteOffset + off + 8, b.byteOffset + off + 8 + (size & ~1)))
      return { rate, channels, data }
    }
    off += 8 + size + (size & 1)
  }
  throw new Error('no data chunk')
}

function ffprobeDuration(path: string): number {
  return Number(run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', path]).trim())
}

/** ffprobe's stream duration less its start time (an MP3's encoder delay, from the LAME tag). */
function ffprobePlayable(path: string): number {
  const out = run('ffprobe', ['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'stream=duration,start_time', '-of', 'default=nw=1', path])
  const get = (k: string) => Number(new RegExp(`${k}=([0-9.]+)`).exec(out)![1])
  return get('duration') - get('start_time')
}

/** Samples per channel ffmpeg decodes (16-bit, the file's own channel count). */
function ffmpegSamples(path: string, channels: number): number {
  const raw = join(dir, 'ffmpeg.raw')
  run('ffmpeg', ['-v', 'error', '-y', '-i', path, '-f', 's16le', raw])
  return readFileSync(raw).length / 2 / channels
}

/** Frequency from zero crossings (mono). */
function frequency(x: Int16Array, rate: number): number {
  let crossings = 0
  for (let i = 1; i < x.length; i++) if ((x[i - 1] < 0 && x[i] >= 0) || (x[i - 1] >= 0 && x[i] < 0)) crossings++
  return (crossings / 2) * (rate / x.length)
}

/** SNR of `y` against `x` in dB at the best lag within ±`maxLag` samples, edges skipped. */
function snr(x: Int16Array, y: Int16Array, maxLag = 64): number {
  let best = -Infinity
  const skip = 2400
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    let sig = 0
    let err = 0
    for (let i = skip; i < x.length - skip; i++) {
      const j = i + lag
      if (j < 0 || j >= y.length) continue
      sig += x[i] * x[i]
      err += (x[i] - y[j]) ** 2
    }
    best = Math.max(best, 10 * Math.log10(sig / Math.max(err, 1)))
  }
  return best
}

const bytesLaw = (m: EncoderMetrics) => expect(m.producedBytes).toBe(m.readBytes + m.queuedBytes + m.droppedBytes + m.clearedBytes)

describe('Ogg Opus', () => {
  it('is a valid stream (opusinfo) that decodes to the exact input length, a 440 Hz tone at >= 20 dB SNR', async () => {
    const rate = 48000
    const input = sine(rate, 1, 59_270) // 1.2348 s: not a whole number of frames or chunks
    const enc = encoder({ sampleRate: rate, channels: 1, format: 'ogg-opus', bitrate: 64000, inputQueueMs: 2000 })
    const reading = collect(enc.chunks())
    expect(enc.push(input).status).toBe('accepted')
    const seg = await within(enc.finish(), 5000, 'finish')
    const [file] = await within(reading, 5000, 'reader')
    // The remainder (< 10 ms) is padded to a whole chunk in the queue, trimmed in the file.
    expect(seg.samples).toBe(59_270)
    expect(file.end!.last).toBe(true)
    const ogg = write('tone.ogg', file.bytes)
    const info = runAll('opusinfo', [ogg])
    expect(info).not.toMatch(/WARNING|ERROR/i)
    expect(info).toMatch(/Pre-skip: \d+/)
    runAll('opusdec', ['--rate', '48000', '--quiet', ogg, join(dir, 'tone.wav')])
    const out = wavSamples(join(dir, 'tone.wav'))
    expect(out.rate).toBe(48000)
    expect(out.data.length).toBe(59_270)
    expect(Math.abs(frequency(out.data, rate) - 440)).toBeLessThan(2)
    expect(snr(input, out.data)).toBeGreaterThanOrEqual(20)
    const m = enc.metrics()
    bytesLaw(m)
    expect(m.readBytes).toBe(file.bytes.length)
    expect(m.encodedSamples).toBe(59_270)
    expect(m.callerEncodes).toBe(0)
    expectInvariant(m.input)
    expect(m.input.padded).toBe(59_520 - 59_270)
  })

  it('keeps exact lengths for stereo at 16 kHz, 60 ms frames and several frames a page', async () => {
    const enc = encoder({ sampleRate: 16000, channels: 2, format: 'ogg-opus', frameMs: 60, pageMs: 180, complexity: 3 })
    const reading = collect(enc.chunks())
    enc.push(sine(16000, 2, 7_360))
    await within(enc.finish(), 5000)
    const [file] = await reading
    const ogg = write('stereo16.ogg', file.bytes)
    const info = runAll('opusinfo', [ogg])
    expect(info).toMatch(/Channels: 2/)
    expect(info).toMatch(/Page duration:\s+180\.0ms \(max\)/)
    runAll('opusdec', ['--rate', '16000', '--quiet', ogg, join(dir, 'stereo16.wav')])
    expect(wavSamples(join(dir, 'stereo16.wav')).data.length).toBe(7_360 * 2)
  })

  it('resamples a rate libopus lacks (44.1 kHz) and keeps the length in 10 ms chunks', async () => {
    const enc = encoder({ sampleRate: 44100, channels: 1, format: 'ogg-opus' })
    const reading = collect(enc.chunks())
    enc.push(sine(44100, 1, 44_100))
    await within(enc.finish(), 5000)
    const [file] = await reading
    const ogg = write('r441.ogg', file.bytes)
    expect(runAll('opusinfo', [ogg])).toMatch(/Original sample rate: 44100 Hz/)
    runAll('opusdec', ['--rate', '48000', '--quiet', ogg, join(dir, 'r441.wav')])
    expect(wavSamples(join(dir, 'r441.wav')).data.length).toBe(48_000)
  })

  it('segments are each a complete, playable file of their own length', async () => {
    const enc = encoder({ sampleRate: 48000, channels: 1, format: 'ogg-opus', inputQueueMs: 2000 })
    const reading = collect(enc.chunks())
    const segments: number[] = []
    enc.on('segment', (s) => segments.push(s.index))
    enc.push(sine(48000, 1, 24_000))
    const first = await within(enc.segment(), 5000, 'segment')
    enc.push(sine(48000, 1, 33_600, 660))
    const second = await within(enc.finish(), 5000, 'finish')
    const files = await within(reading, 5000)
    expect(files.map((f) => f.end!.index)).toEqual([0, 1])
    expect([first.samples, first.last, second.samples, second.last]).toEqual([24_000, false, 33_600, true])
    expect(segments).toEqual([0, 1])
    for (const [i, f] of files.entries()) {
      const p = write(`seg${i}.ogg`, f.bytes)
      expect(runAll('opusinfo', [p])).not.toMatch(/WARNING|ERROR/i)
      runAll('opusdec', ['--rate', '48000', '--quiet', p, join(dir, `seg${i}.wav`)])
    }
    expect(wavSamples(join(dir, 'seg0.wav')).data.length).toBe(24_000)
    const s1 = wavSamples(join(dir, 'seg1.wav')).data
    expect(s1.length).toBe(33_600)
    expect(Math.abs(frequency(s1, 48000) - 660)).toBeLessThan(3)
  })

  it('as a realtime source sink: captured audio comes out as a file of its exact length', async () => {
    const s = new AudioSource({ sampleRate: 48000, channels: 1 })
    open.push(s)
    const enc = s.encode({ format: 'ogg-opus', pageMs: 20 })
    const reading = collect(enc.chunks())
    const tone = sine(48000, 1, 14_400)
    for (let i = 0; i < tone.length; i += 960) expect((await s.captureFrame(tone.subarray(i, i + 960))).status).toBe('accepted')
    const seg = await within(enc.finish(), 5000)
    expect(seg.samples).toBe(14_400)
    const [file] = await within(reading, 5000)
    const p = write('sink.ogg', file.bytes)
    runAll('opusdec', ['--rate', '48000', '--quiet', p, join(dir, 'sink.wav')])
    expect(wavSamples(join(dir, 'sink.wav')).data.length).toBe(14_400)
    expectInvariant(s.metrics())
    bytesLaw(enc.metrics())
  })
})

/** Deterministic lengths (the seed is in the test name, so a failure can be replayed). */
function lengths(seed: number, n: number, rate: number, min: number, max: number): number[] {
  let x = seed >>> 0 || 1
  const next = () => ((x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0) / 2 ** 32)
  const chunk = rate / 100
  const out: number[] = []
  while (out.length < n) {
    const len = Math.floor(min + next() * (max - min))
    if (len % chunk !== 0) out.push(len)
  }
  return out
}

/** Samples per channel the real decoder gives back for a file of `format`. */
function decodedLength(format: 'ogg-opus' | 'mp3' | 'wav' | 'pcm-s16le', p: string, rate: number, channels: number, tag: string): number {
  switch (format) {
    case 'ogg-opus': {
      const out = join(dir, `${tag}.dec.wav`)
      runAll('opusdec', ['--rate', String(rate), '--quiet', p, out])
      return wavSamples(out).data.length / channels
    }
    case 'mp3': {
      // Both gapless decoders read LAME's delay and padding.
      const out = join(dir, `${tag}.dec.wav`)
      runAll('mpg123', ['-q', '-w', out, p])
      const viaMpg123 = wavSamples(out).data.length / channels
      const viaFfmpeg = ffmpegSamples(p, channels)
      expect(viaMpg123, `${tag}: mpg123 ${viaMpg123}, ffmpeg ${viaFfmpeg}`).toBe(viaFfmpeg)
      return viaFfmpeg
    }
    case 'wav':
      return ffmpegSamples(p, channels)
    case 'pcm-s16le':
      return readFileSync(p).length / 2 / channels
  }
}

describe('sample-exact files at any length', () => {
  const formats = [
    ['ogg-opus', {}],
    ['mp3', { bitrate: 64000 }],
    ['mp3', { vbrQuality: 5 }],
    ['wav', {}],
    ['pcm-s16le', {}],
  ] as const
  const SEED = 20261203

  it(`AudioEncoder: every segment decodes to exactly what was pushed (lengths from seed ${SEED})`, async () => {
    for (const [rate, channels] of [
      [48000, 1],
      [16000, 2],
    ] as const) {
      for (const [fi, [format, opts]] of formats.entries()) {
        const [a, b] = lengths(SEED + fi * 7 + rate, 2, rate, rate / 20, rate * 1.5)
        const enc = encoder({ sampleRate: rate, channels, format, inputQueueMs: 3000, ...opts })
        const reading = collect(enc.chunks())
        expect(enc.push(sine(rate, channels, a)).status).toBe('accepted')
        const first = await within(enc.segment(), 5000, 'segment')
        expect(enc.push(sine(rate, channels, b, 660)).status).toBe('accepted')
        const second = await within(enc.finish(), 5000, 'finish')
        expect([first.samples, second.samples], `${format} ${rate}/${channels}`).toEqual([a, b])
        const files = await within(reading, 5000, 'reader')
        expect(files.length).toBe(2)
        const ext = format === 'ogg-opus' ? 'ogg' : format === 'pcm-s16le' ? 'raw' : format
        for (const [i, f] of files.entries()) {
          const tag = `exact-${format}-${fi}-${rate}-${channels}-${i}`
          const p = write(`${tag}.${ext}`, f.bytes)
          expect(decodedLength(format, p, rate, channels, tag), `${tag}: ${[a, b][i]} samples pushed`).toBe([a, b][i])
        }
        expect(enc.metrics().encodedSamples).toBe(a + b)
      }
    }
  })

  it(`a source's encode(): captures of random sizes decode to exactly what was captured (seed ${SEED + 1})`, async () => {
    const rate = 48000
    for (const [fi, [format, opts]] of formats.entries()) {
      const s = new AudioSource({ sampleRate: rate, channels: 1, consumer: 'unpaced', queueMs: 3000 })
      open.push(s)
      const enc = s.encode({ format, ...opts })
      const reading = collect(enc.chunks())
      const sizes = lengths(SEED + 1 + fi, 6, rate, 100, 4000)
      let total = 0
      for (const n of sizes) {
        expect((await s.captureFrame(sine(rate, 1, n))).status).toBe('accepted')
        total += n
      }
      const seg = await within(enc.finish(), 5000, 'finish')
      expect(seg.samples).toBe(total)
      const [file] = await within(reading, 5000, 'reader')
      const ext = format === 'ogg-opus' ? 'ogg' : format === 'pcm-s16le' ? 'raw' : format
      const tag = `exact-src-${format}-${fi}`
      const p = write(`${tag}.${ext}`, file.bytes)
      expect(decodedLength(format, p, rate, 1, tag), `${tag}: ${total} samples captured`).toBe(total)
      expectInvariant(s.metrics())
    }
  })
})

describe('MP3, WAV and PCM', () => {
  it('MP3 (CBR and VBR): ffprobe reads the duration within one frame, mpg123 decodes it', async () => {
    for (const [name, opts] of [
      ['cbr', { bitrate: 96000 }],
      ['vbr', { vbrQuality: 4 }],
    ] as const) {
      const enc = encoder({ sampleRate: 48000, channels: 1, format: 'mp3', inputQueueMs: 3000, ...opts })
      const reading = collect(enc.chunks())
      enc.push(sine(48000, 1, 96_000))
      await within(enc.finish(), 5000)
      const [file] = await reading
      expect(file.end!.headerPatch).toBeDefined()
      const p = write(`${name}.mp3`, file.bytes)
      expect(Math.abs(ffprobePlayable(p) - 2)).toBeLessThanOrEqual(1152 / 48000)
      // The LAME tag's delay and padding let a gapless decoder give back exactly the input.
      expect(ffmpegSamples(p, 1)).toBe(96_000)
      runAll('mpg123', ['-q', '-w', join(dir, `${name}.wav`), p])
      const out = wavSamples(join(dir, `${name}.wav`))
      expect(Math.abs(out.data.length - 96_000)).toBeLessThanOrEqual(1152)
      expect(Math.abs(frequency(out.data.subarray(4800, 90_000), 48000) - 440)).toBeLessThan(3)
    }
  })

  it('WAV: patched sizes give the exact duration; the streamed header (open sizes) still plays', async () => {
    const enc = encoder({ sampleRate: 24000, channels: 2, format: 'wav' })
    const reading = collect(enc.chunks())
    const input = sine(24000, 2, 12_000)
    enc.push(input)
    await within(enc.finish(), 5000)
    const [file] = await reading
    const patched = write('patched.wav', file.bytes)
    expect(ffprobeDuration(patched)).toBeCloseTo(0.5, 3)
    const data = wavSamples(patched).data
    expect(Array.from(data)).toEqual(Array.from(input))
    const streamed = Buffer.from(file.bytes)
    streamed.writeUInt32LE(0xffffffff, 4)
    streamed.writeUInt32LE(0xffffffff, 40)
    const sp = write('streamed.wav', streamed)
    runAll('ffmpeg', ['-v', 'error', '-y', '-i', sp, '-f', 's16le', join(dir, 'streamed.raw')])
    expect(readFileSync(join(dir, 'streamed.raw')).length).toBe(input.length * 2)
  })

  it('PCM s16le is the exact samples; f32le is them over 32768', async () => {
    const input = new Int16Array(480).map((_, i) => i * 50 - 12000)
    for (const format of ['pcm-s16le', 'pcm-f32le'] as const) {
      const enc = encoder({ sampleRate: 48000, channels: 1, format })
      const reading = collect(enc.chunks())
      enc.push(input)
      await within(enc.finish(), 5000)
      const [file] = await reading
      if (format === 'pcm-s16le') expect(Array.from(new Int16Array(file.bytes.buffer, file.bytes.byteOffset, 480))).toEqual(Array.from(input))
      else expect(Array.from(new Float32Array(file.bytes.buffer.slice(file.bytes.byteOffset, file.bytes.byteOffset + 1920)))).toEqual(Array.from(input, (v) => Math.fround(v / 32768)))
    }
  })
})

describe('the JS thread and the output queue', () => {
  it('push of 10, 60 and 500 ms is a copy: every encoder call ran on an engine thread', async () => {
    const enc = encoder({ sampleRate: 48000, channels: 1, format: 'ogg-opus', inputQueueMs: 2000 })
    const reading = collect(enc.chunks())
    let pushed = 0
    for (const ms of [10, 60, 500, 10, 60, 500]) {
      const o = enc.push(sine(48000, 1, ms * 48))
      expect(o.status).toBe('accepted')
      pushed += ms * 48
    }
    await within(enc.finish(), 5000)
    await reading
    const m = enc.metrics()
    expect(m.encodedSamples).toBe(pushed)
    expect(m.callerEncodes).toBe(0)
  })

  it('an output nobody reads obeys drop-oldest and its bytes add up', async () => {
    const enc = encoder({ sampleRate: 48000, channels: 1, format: 'pcm-s16le', queueBytes: 9600, overflow: 'drop-oldest', inputQueueMs: 2000 })
    enc.push(sine(48000, 1, 48_000))
    const until = Date.now() + 5000
    while (enc.metrics().encodedSamples < 48_000 && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
    const m = enc.metrics()
    expect(m.encodedSamples).toBe(48_000)
    expect(m.producedBytes).toBe(96_000)
    expect(m.queuedBytes).toBe(9600)
    expect(m.droppedBytes).toBe(96_000 - 9600)
    bytesLaw(m)
    // What is left is the newest audio.
    const it = enc.chunks()[Symbol.asyncIterator]()
    const first = (await it.next()).value as EncodedChunk
    const expected = sine(48000, 1, 48_000).subarray(48_000 - 4800)
    expect(new Int16Array(first.bytes.buffer.slice(first.bytes.byteOffset, first.bytes.byteOffset + 4))[0]).toBe(expected[0])
    await it.return?.()
  })

  it('an output nobody reads under wait backs the input up; pushes are refused and counted', async () => {
    const enc = encoder({ sampleRate: 48000, channels: 1, format: 'pcm-s16le', queueBytes: 4800, inputQueueMs: 100 })
    const outcomes = []
    for (let i = 0; i < 40; i++) {
      outcomes.push(enc.push(sine(48000, 1, 480)).status)
      await new Promise((r) => setTimeout(r, 2))
    }
    expect(outcomes).toContain('dropped')
    const m = enc.metrics()
    expectInvariant(m.input)
    bytesLaw(m)
    expect(m.droppedBytes).toBe(0)
    expect(m.input.dropped).toBeGreaterThan(0)
    // A reader brings it back: the queued input is encoded.
    const reading = collect(enc.chunks())
    await within(enc.finish(), 5000)
    await reading
    expect(enc.metrics().encodedSamples).toBe(m.input.captured - m.input.dropped)
  })

  it('Node Readable and Web ReadableStream carry the same bytes as the iterator', async () => {
    const input = sine(16000, 1, 16_000)
    const bodies: Buffer[] = []
    for (const how of ['iter', 'readable', 'stream'] as const) {
      const enc = encoder({ sampleRate: 16000, channels: 1, format: 'wav' })
      enc.push(input)
      void enc.finish()
      const parts: Uint8Array[] = []
      if (how === 'iter') for await (const b of enc) parts.push(b)
      else if (how === 'readable') for await (const b of enc.readable()) parts.push(b as Buffer)
      else {
        const r = enc.stream().getReader()
        for (;;) {
          const { value, done } = await r.read()
          if (done) break
          parts.push(value)
        }
      }
      bodies.push(Buffer.concat(parts))
    }
    expect(bodies[0].length).toBe(44 + 32_000)
    expect(bodies[1].equals(bodies[0])).toBe(true)
    expect(bodies[2].equals(bodies[0])).toBe(true)
  })

  it('closing a source ends its encoded stream with a complete file, and every call settles', async () => {
    const s = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'unpaced' })
    const enc = s.encode({ format: 'ogg-opus' })
    const reading = collect(enc.chunks())
    const pending = enc.segment()
    await s.captureFrame(sine(48000, 1, 4800))
    await s.close()
    const seg = await within(pending, 5000, 'segment() across close')
    const files = await within(reading, 5000, 'reader across close')
    expect(enc.ended).toBe(true)
    expect(files.at(-1)!.end!.last).toBe(true)
    expect(seg.index).toBe(0)
    expect(await within(enc.finish(), 1000)).toEqual(files.at(-1)!.end)
    expect(() => s.encode({ format: 'wav' })).toThrow(CapstanError)
  })

  it('bad options are ERR_INVALID_OPTION naming the option', () => {
    const s = new AudioSource({ sampleRate: 48000, channels: 1 })
    open.push(s)
    const bad: Array<[unknown, RegExp]> = [
      [{}, /format is required/],
      [{ format: 'flac' }, /format must be/],
      [{ format: 'ogg-opus', bitrate: 1 }, /bitrate/],
      [{ format: 'ogg-opus', frameMs: 30 }, /frameMs/],
      [{ format: 'ogg-opus', pageMs: 30 }, /pageMs/],
      [{ format: 'ogg-opus', complexity: 11 }, /complexity/],
      [{ format: 'ogg-opus', application: 'music' }, /application/],
      [{ format: 'ogg-opus', sampleRate: 44100 }, /sampleRate/],
      [{ format: 'wav', complexity: 5 }, /complexity applies to ogg-opus only/],
      [{ format: 'mp3', bitrate: 65000 }, /bitrate/],
      [{ format: 'wav', overflow: 'reject' }, /overflow/],
      [{ format: 'wav', queueBytes: 0 }, /queueBytes/],
      [{ format: 'wav', queueBytes: 'big' }, /queueBytes|encode options/],
      [null, /must be an object/],
    ]
    for (const [o, msg] of bad) {
      let err: unknown
      try {
        s.encode(o as never)
      } catch (e) {
        err = e
      }
      expect(err, JSON.stringify(o)).toBeInstanceOf(CapstanError)
      expect((err as CapstanError).code).toBe('ERR_INVALID_OPTION')
      expect((err as CapstanError).message).toMatch(msg)
    }
    const six = new AudioSource({ sampleRate: 48000, channels: 6 })
    open.push(six)
    expect(() => six.encode({ format: 'ogg-opus' })).toThrow(/1 or 2 channels/)
    expect(() => new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'pull' }).encode({ format: 'wav' })).toThrow(/pull/)
  })
})

describe('the encoder as a sink among others', () => {
  it('fillGaps encodes silence for realtime underruns; without it only captured audio is encoded', async () => {
    const counts: number[] = []
    for (const fillGaps of [false, true]) {
      const s = new AudioSource({ sampleRate: 16000, channels: 1 })
      open.push(s)
      const enc = s.encode({ format: 'pcm-s16le', fillGaps })
      const reading = collect(enc.chunks())
      expect((await s.captureFrame(sine(16000, 1, 800))).status).toBe('accepted') // 50 ms
      await s.waitForPlayout()
      await new Promise((r) => setTimeout(r, 200)) // ~20 ticks with nothing queued
      await within(enc.finish(), 5000)
      await reading
      counts.push(enc.metrics().encodedSamples)
    }
    expect(counts[0]).toBe(800)
    expect(counts[1]).toBeGreaterThanOrEqual(800 + 10 * 160)
    expect(counts[1] % 160).toBe(0)
  })

  it('a second encode() ends the first stream with a complete last segment; a frames() reader takes the sink over the same way', async () => {
    const s = new AudioSource({ sampleRate: 16000, channels: 1, consumer: 'unpaced' })
    open.push(s)
    const first = s.encode({ format: 'wav' })
    const firstFiles = collect(first.chunks())
    await s.captureFrame(sine(16000, 1, 1600))
    await s.waitForPlayout()
    const second = s.encode({ format: 'pcm-s16le' })
    const [file] = await within(firstFiles, 5000, 'the replaced stream ends')
    expect(first.ended).toBe(true)
    expect(file.end).toMatchObject({ last: true, samples: 1600 })
    expect(file.bytes.length).toBe(44 + 3200)
    const secondFiles = collect(second.chunks())
    const reader = s.frames()[Symbol.asyncIterator]()
    const got = reader.next()
    await s.captureFrame(sine(16000, 1, 160))
    expect((await within(got, 5000)).value!.samplesPerChannel).toBe(160)
    const files = await within(secondFiles, 5000, 'a frames() reader ends the encoded stream')
    expect(files.at(-1)!.end!.last).toBe(true)
    expect(second.metrics().encodedSamples).toBe(0)
    await reader.return?.()
  })

  it('chunks({ maxBytes }) bounds each chunk to whole pieces; a bad maxBytes is ERR_INVALID_OPTION', async () => {
    const enc = encoder({ sampleRate: 16000, channels: 1, format: 'pcm-s16le' })
    enc.push(sine(16000, 1, 1600)) // ten pieces of 320 bytes
    void enc.finish()
    const sizes: number[] = []
    for await (const c of enc.chunks({ maxBytes: 700 })) if (c.bytes.length > 0) sizes.push(c.bytes.length)
    expect(sizes).toEqual([640, 640, 640, 640, 640])
    await expect(enc.chunks({ maxBytes: 0 }).next()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
  })
})
