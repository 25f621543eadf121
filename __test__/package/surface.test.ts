// What users can reach: every public member of every exported class is documented in
// docs/API.md, the engine's plumbing is on no public object nor in the published types,
// and importing `capstan` loads neither integration.
import { execFile } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import * as capstan from '../../dist/index.js'
import { lastJson, runNode, ROOT } from '../spawn'

const doc = readFileSync(join(ROOT, 'docs', 'API.md'), 'utf8')

/** Members a user can call or read on `o`, its prototypes' and its own (fields). */
function members(o: object): string[] {
  const out = new Set<string>()
  // An EventEmitter's own bookkeeping is Node's API, documented there.
  const emitter = new Set(Object.keys(new EventEmitter()))
  for (const k of Object.keys(o)) if (!emitter.has(k)) out.add(k)
  for (let p = Object.getPrototypeOf(o); p && p !== Object.prototype && p.constructor?.name !== 'EventEmitter'; p = Object.getPrototypeOf(p)) {
    if (p === Error.prototype) break
    for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor') out.add(k)
  }
  return [...out]
}

/** What the engine and the stages say to each other: none of it may be reachable. */
const PLUMBING = ['settled', 'playedOut', 'event', 'cut', 'detachEncoded', 'endInput', 'wake', 'attach', 'detach', 'spec', 'onClose', 'native', 'host']

async function instances(): Promise<Record<string, object>> {
  const { AudioSource, AudioStream, AudioEncoder, AudioMixer, SourceGroup, ByteStreamAudioSender, ByteStreamAudioReceiver, Publisher, AudioFrame, memoryTransports, processors, CapstanError, AudioSegmentEnd } = capstan
  const source = new AudioSource({ sampleRate: 48000, channels: 1 })
  const pull = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'unpaced' })
  const encoded = pull.encode({ format: 'wav' })
  const [a, b] = memoryTransports()
  const bs = new AudioSource({ sampleRate: 48000, channels: 1, consumer: 'unpaced' })
  const sender = new ByteStreamAudioSender(bs, a, { destination: 'avatar' })
  const receiver = new ByteStreamAudioReceiver(b, { sender: 'agent' })
  const published = new AudioSource({ sampleRate: 48000, channels: 1 })
  const publisher = await Publisher.start(published, { create: async () => ({ captureFrame: async () => {}, close: async () => {} }) })
  const all = {
    AudioSource: source,
    EncodedStream: encoded,
    AudioStream: new AudioStream([], { sampleRate: 48000, channels: 1 }),
    AudioEncoder: new AudioEncoder({ sampleRate: 48000, channels: 1, format: 'wav' }),
    SourceGroup: new SourceGroup([source]),
    AudioMixer: new AudioMixer({ sampleRate: 48000, channels: 1 }),
    ByteStreamAudioSender: sender,
    ByteStreamAudioReceiver: receiver,
    Publisher: publisher,
    AudioFrame: new AudioFrame(new Int16Array(480), 48000, 1),
    NativeProcessor: processors.gain({ db: 0 }),
    CapstanError: new CapstanError('ERR_BUSY', 'x'),
    AudioSegmentEnd: new AudioSegmentEnd(0, 0, false),
  }
  cleanups.push(async () => {
    await publisher.close()
    await sender.close()
    await receiver.close()
    await Promise.all([source, pull, bs, all.AudioStream, all.AudioEncoder, all.AudioMixer].map((s) => (s as { close(): Promise<void> }).close()))
  })
  return all
}
const cleanups: Array<() => Promise<void>> = []

describe('the public surface', () => {
  it('every public member of every exported class is in docs/API.md, and none is plumbing', async () => {
    const objs = await instances()
    try {
      // Every exported class is covered here.
      const classes = Object.entries(capstan).filter(([, v]) => typeof v === 'function' && /^class\s/.test(Function.prototype.toString.call(v)))
      for (const [name] of classes) expect(objs, `an instance of ${name} is checked`).toHaveProperty(name)
      const undocumented: string[] = []
      for (const [cls, o] of Object.entries(objs)) {
        for (const m of members(o)) {
          if (typeof m !== 'string') continue
          expect(PLUMBING, `${cls}.${m} is engine plumbing`).not.toContain(m)
          if (!new RegExp(`\\b${m}\\b`).test(doc)) undocumented.push(`${cls}.${m}`)
        }
        // Symbol-keyed members: only the language's protocols.
        for (let p = Object.getPrototypeOf(o); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
          for (const s of Object.getOwnPropertySymbols(p)) {
            expect(['Symbol.asyncIterator', 'Symbol.asyncDispose', 'Symbol(nodejs.asyncDispose)', 'Symbol(nodejs.rejection)', 'Symbol(shapeMode)', 'Symbol(kCapture)']).toContain(s.description?.startsWith('Symbol.') ? s.description : s.toString())
          }
        }
      }
      expect(undocumented).toEqual([])
    } finally {
      for (const c of cleanups.splice(0)) await c()
    }
  })

  it('every closable class answers to Symbol.asyncDispose', async () => {
    const objs = await instances()
    try {
      for (const [cls, o] of Object.entries(objs)) {
        if (typeof (o as { close?: unknown }).close !== 'function') continue
        expect(typeof (o as Record<symbol, unknown>)[Symbol.asyncDispose], cls).toBe('function')
      }
    } finally {
      for (const c of cleanups.splice(0)) await c()
    }
  })

  it('plumbing cannot be forged: an EncodedStream is made by a source only', async () => {
    const s = new capstan.AudioSource({ sampleRate: 48000, channels: 1, consumer: 'unpaced' })
    const e = s.encode({ format: 'wav' })
    const Ctor = e.constructor as new (...a: unknown[]) => unknown
    const fake = { metrics: () => ({}), read: () => ({ state: 'ended' }), takeFinished: () => [], takeErrors: () => [], clear: () => 0 }
    expect(() => new Ctor(fake, 'wav', { sampleRate: 48000, name: '', cut: () => Promise.resolve(), detach() {} })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_STATE' }),
    )
    // The engine's entry points are not on the source: a forged 'closed' cannot reach it.
    expect((s as unknown as Record<string, unknown>).event).toBeUndefined()
    expect((s as unknown as Record<string, unknown>).settled).toBeUndefined()
    expect(s.closed).toBe(false)
    await s.close()
  })

  it('the published types show only the API: no @internal, no plumbing member', () => {
    const files: string[] = []
    const walk = (d: string) => {
      for (const f of readdirSync(d, { withFileTypes: true })) {
        if (f.isDirectory()) walk(join(d, f.name))
        else if (f.name.endsWith('.d.ts')) files.push(join(d, f.name))
      }
    }
    walk(join(ROOT, 'dist'))
    expect(files.length).toBeGreaterThan(10)
    for (const f of files) {
      const t = readFileSync(f, 'utf8')
      expect(t, f).not.toContain('@internal')
      // A public class declaration never declares an engine hook as a member.
      for (const m of ['settled(', 'playedOut(', 'event(e', 'detachEncoded(', 'endInput(): void;', 'onClose(']) {
        if (/source\/source\.d\.ts$|group\.d\.ts$|publish\.d\.ts$|encoded-stream\.d\.ts$/.test(f)) expect(t, `${f}: ${m}`).not.toContain(`    ${m}`)
      }
    }
  })
})

describe('the integrations: capstan/livekit and capstan/agents', () => {
  it('their classes show only documented members (own prototype and static), none is plumbing, and none can be forged', async () => {
    const script = `
      const lk = require('capstan/livekit'), ag = require('capstan/agents')
      const own = (o) => Object.getOwnPropertyNames(o).filter((k) => !['constructor', 'length', 'name', 'prototype'].includes(k))
      const out = {}
      for (const [name, C] of Object.entries({ LiveKitRoom: lk.LiveKitRoom, LiveKitTrack: lk.LiveKitTrack, LiveKitRemoteTrack: lk.LiveKitRemoteTrack, CapstanAudioOutput: ag.CapstanAudioOutput, CapstanAudioInput: ag.CapstanAudioInput })) {
        out[name] = { proto: own(C.prototype), statics: own(C), symbols: Object.getOwnPropertySymbols(C.prototype).map(String) }
      }
      const forge = (C) => { try { new C(Symbol('LiveKitRoom'), {}); return 'made' } catch (e) { return e.code } }
      out.forged = [forge(lk.LiveKitRoom), forge(lk.LiveKitTrack), forge(lk.LiveKitRemoteTrack)]
      console.log(JSON.stringify(out))`
    // @livekit/agents is the agents peer's (installed by the test setup), as in the LiveKit suite.
    const agentsModules = join(ROOT, '__test__', 'livekit', 'peers', 'agents-js', 'node_modules')
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['-e', script], { cwd: ROOT, timeout: 30_000, env: { ...process.env, NODE_PATH: agentsModules } }, (e, stdout, stderr) =>
        resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      )
    })
    expect(r.code, r.stderr).toBe(0)
    const out = lastJson(r.stdout)
    const undocumented: string[] = []
    for (const cls of ['LiveKitRoom', 'LiveKitTrack', 'LiveKitRemoteTrack', 'CapstanAudioOutput', 'CapstanAudioInput']) {
      const { proto, statics, symbols } = out[cls] as { proto: string[]; statics: string[]; symbols: string[] }
      expect(proto.length, cls).toBeGreaterThan(0)
      for (const m of [...proto, ...statics]) {
        expect(PLUMBING, `${cls}.${m} is plumbing`).not.toContain(m)
        if (!new RegExp(`\\b${m}\\b`).test(doc)) undocumented.push(`${cls}.${m}`)
      }
      for (const sym of symbols) expect(['Symbol(Symbol.asyncDispose)', 'Symbol(nodejs.asyncDispose)', 'Symbol(Symbol.asyncIterator)']).toContain(sym)
    }
    expect(undocumented).toEqual([])
    expect(out.forged).toEqual(['ERR_INVALID_STATE', 'ERR_INVALID_STATE', 'ERR_INVALID_STATE'])
  })
})

describe('entry points', () => {
  it('importing capstan loads neither integration, nor their peers; the deprecated root re-exports load theirs on first call', async () => {
    const script = `
      const loaded = () => Object.keys(require.cache).filter((k) => /[\\\\/]dist[\\\\/](livekit|ops|cli)[\\\\/]|node_modules[\\\\/](prom-client|@livekit)/.test(k)).map((k) => k.replace(process.cwd(), ''))
      const c = require('capstan')
      const before = loaded()
      const stop = c.collectMetrics(new (require('prom-client').Registry)())
      stop()
      console.log(JSON.stringify({ before, after: loaded(), lk: typeof require('capstan/livekit').publishToLiveKit, ops: typeof require('capstan/prometheus').collectMetrics }))`
    const r = await runNode(['-e', script])
    expect(r.stderr).toBe('')
    const out = lastJson(r.stdout)
    expect(out.before).toEqual([])
    expect(out.after.some((k: string) => /dist\/ops\//.test(k))).toBe(true)
    expect(out.after.some((k: string) => /livekit/.test(k))).toBe(false)
    expect(out.lk).toBe('function')
    expect(out.ops).toBe('function')
  })

  it('ESM: capstan/livekit and capstan/prometheus share the core instance', async () => {
    const script = `
      import { livekitTransport, publishToLiveKit } from 'capstan/livekit'
      import { collectMetrics } from 'capstan/prometheus'
      import * as core from 'capstan'
      import { createRequire } from 'node:module'
      const require = createRequire(import.meta.url)
      console.log(JSON.stringify({
        fns: [typeof livekitTransport, typeof publishToLiveKit, typeof collectMetrics],
        same: require('capstan/livekit').publishToLiveKit === publishToLiveKit && require('capstan').AudioSource === core.AudioSource,
      }))`
    const r = await runNode(['--input-type=module', '-e', script])
    expect(r.stderr).toBe('')
    const out = lastJson(r.stdout)
    expect(out.fns).toEqual(['function', 'function', 'function'])
    expect(out.same).toBe(true)
  })
})
