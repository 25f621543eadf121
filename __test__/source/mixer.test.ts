// AudioMixer through the public API: inputs are AudioSources (pull, read by the mixer on the
// engine clock) with their own accounting; the output is an AudioSource feeding any sink
// (here the PCM encoder). The ducking rule itself is checked sample for sample by the Rust
// test (crates/capstan-core/tests/mix.rs); here the sum is exact at 0 dB (no float gain)
// and the ducking is measured.
import { afterEach, describe, expect, it } from 'vitest'

import { AudioFrame, AudioMixer, CapstanError } from '../../dist/index.js'
import { expectInvariant, within } from '../helpers'

const RATE = 16000
const N = RATE / 100
const open: AudioMixer[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()))
})

function tone(len: number, period: number, amp: number): Int16Array {
  return Int16Array.from({ length: len }, (_, i) => Math.round(amp * Math.sin((2 * Math.PI * i) / period)))
}

async function pcm(m: AudioMixer, total: number): Promise<Int16Array> {
  const enc = m.output.encode({ format: 'pcm-s16le' })
  const parts: Uint8Array[] = []
  let bytes = 0
  for await (const c of enc.chunks()) {
    parts.push(c.bytes)
    bytes += c.bytes.length
    if (bytes >= total * 2) break
  }
  const all = Buffer.concat(parts)
  return new Int16Array(all.buffer, all.byteOffset, Math.floor(all.length / 2))
}

const rms = (a: Int16Array, from: number, to: number): number => {
  let s = 0
  for (let i = from; i < to; i++) s += a[i] * a[i]
  return Math.sqrt(s / (to - from))
}

describe('AudioMixer', () => {
  it('mixes its inputs into the output: the exact sum at 0 dB, saturated; each input accounts for itself', async () => {
    const m = new AudioMixer({ sampleRate: RATE, channels: 1, consumer: 'unpaced', queueMs: 2000, duck: { duckDb: 0 } })
    open.push(m)
    const a = m.input({ queueMs: 2000 })
    const b = m.input({ role: 'background', queueMs: 2000 })
    const len = 100 * N
    const x = tone(len, 41, 20_000)
    const y = tone(len, 13, 20_000)
    const reading = pcm(m, len)
    // The mixer may take chunks of `a` before `b` is captured (the clock runs meanwhile, up
    // to a pass of 32 chunks on a loaded machine): `b` then starts k chunks later, and the
    // output is k chunks longer.
    expect(a.tryCaptureFrame(new AudioFrame(x, RATE, 1)).status).toBe('accepted')
    expect(b.tryCaptureFrame(new AudioFrame(y, RATE, 1)).status).toBe('accepted')
    const out = await within(reading, 5000, 'mixed output')
    await within(b.waitForPlayout(), 5000, 'b mixed')
    const k = Math.round((Number(m.output.metrics().captured) - len) / N)
    expect(k).toBeGreaterThanOrEqual(0)
    expect(k).toBeLessThan(100)
    let mismatches = 0
    for (let i = 0; i < len; i++) {
      const yb = i - k * N >= 0 ? y[i - k * N] : 0
      const want = Math.max(-32768, Math.min(32767, x[i] + yb))
      if (out[i] !== want) mismatches++
    }
    expect(mismatches).toBe(0)
    for (const s of [a, b]) {
      const mm = s.metrics()
      expectInvariant(mm)
      expect(mm.delivered).toBe(len)
    }
    expect(m.metrics().inputs).toEqual([
      { gainDb: 0, role: 'speech' },
      { gainDb: 0, role: 'background' },
    ])
  })

  it('ducks the background under speech by duckDb, and per-input gain applies', async () => {
    const m = new AudioMixer({ sampleRate: RATE, channels: 1, consumer: 'unpaced', queueMs: 2000, duck: { duckDb: 12, attackMs: 20, releaseMs: 100 } })
    open.push(m)
    const music = m.input({ role: 'background', gainDb: -6, queueMs: 5000 })
    const voice = m.input({ queueMs: 5000 })
    const len = 400 * N
    const bg = tone(len, 37, 8000)
    // Voice only in its 1..2 s (silence, exact zeros, elsewhere).
    const sp = new Int16Array(len)
    sp.set(tone(100 * N, 91, 6000), 100 * N)
    const reading = pcm(m, len)
    expect(music.tryCaptureFrame(new AudioFrame(bg, RATE, 1)).status).toBe('accepted')
    expect(voice.tryCaptureFrame(new AudioFrame(sp, RATE, 1)).status).toBe('accepted')
    const out = await within(reading, 5000, 'mixed output')
    await within(voice.waitForPlayout(), 5000, 'voice mixed')
    // The voice starts kv chunks after the music (chunks the clock mixed in between).
    const kv = Math.round((Number(m.output.metrics().captured) - len) / N)
    expect(kv).toBeGreaterThanOrEqual(0)
    expect(kv).toBeLessThan(60)
    const v = (i: number): number => (i - kv * N >= 0 ? sp[i - kv * N] : 0)
    // Before the voice: music at -6 dB. Under the voice (after the 20 ms attack), the output
    // minus the voice is the music at -18 dB. After it (past the 100 ms release), -6 dB again.
    const before = rms(out, 20 * N, 90 * N) / rms(bg, 20 * N, 90 * N)
    const at = (110 + kv) * N
    const resid = Int16Array.from({ length: 80 * N }, (_, i) => out[at + i] - v(at + i))
    const under = rms(resid, 0, resid.length) / rms(bg, at, at + 80 * N)
    const after = rms(out, (230 + kv) * N, (300 + kv) * N) / rms(bg, (230 + kv) * N, (300 + kv) * N)
    const db = (r: number) => 20 * Math.log10(r)
    console.log(`music level before ${db(before).toFixed(2)} dB, under the voice ${db(under).toFixed(2)} dB, after ${db(after).toFixed(2)} dB`, m.metrics())
    expect(Math.abs(db(before) + 6)).toBeLessThan(0.1)
    expect(Math.abs(db(under) + 18)).toBeLessThan(0.5)
    expect(Math.abs(db(after) + 6)).toBeLessThan(0.1)
    expect(m.metrics().duckedMs).toBeGreaterThanOrEqual(1000)
    expect(m.metrics().mixedMs).toBe(4000 + kv * 10)
    m.setGain(music, -20)
    expect(m.metrics().inputs[0].gainDb).toBe(-20)
  })

  it('plays a looping clip sample for sample (a background bed), and stops it', async () => {
    const m = new AudioMixer({ sampleRate: RATE, channels: 1, consumer: 'unpaced', queueMs: 500 })
    open.push(m)
    const bed = tone(250, 25, 4000)
    const id = m.addClip(new AudioFrame(bed, RATE, 1), { loop: true })
    const out = await within(pcm(m, 50 * N), 5000, 'mixed output')
    let mismatches = 0
    for (let i = 0; i < 50 * N; i++) if (out[i] !== bed[i % bed.length]) mismatches++
    expect(mismatches).toBe(0)
    expect(m.removeClip(id)).toBe(true)
    expect(m.removeClip(id)).toBe(false)
    expect(() => m.addClip(new AudioFrame(bed, 48000, 1))).toThrow(CapstanError)
  })

  it('validates its options natively, naming them', () => {
    const code = (f: () => unknown, mentions: string): void => {
      let err: unknown
      try {
        f()
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(CapstanError)
      expect((err as CapstanError).code).toBe('ERR_INVALID_OPTION')
      expect((err as CapstanError).message).toContain(mentions)
    }
    code(() => new AudioMixer({ sampleRate: RATE, channels: 1, duck: { duckDb: 70 } }), 'duckDb')
    code(() => new AudioMixer({ sampleRate: RATE, channels: 1, duck: { attack: 5 } as never }), 'attack')
    const m = new AudioMixer({ sampleRate: RATE, channels: 1 })
    open.push(m)
    code(() => m.input({ gainDb: 30 }), 'gainDb')
    code(() => m.input({ role: 'music' as never }), 'role')
    code(() => m.input({ consumer: 'realtime' } as never), 'consumer')
  })
})
