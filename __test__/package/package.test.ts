// Entry points: the ESM and CJS builds both export the public API, share one engine
// instance, and match what lib/ exports.
import { describe, expect, it } from 'vitest'

import * as lib from '../../dist/index.js'
import { lastJson, runNode } from '../spawn'

const API = ['AudioFrame', 'AudioSource', 'CapstanError', 'shutdown']

describe('package entry points', () => {
  it('lib/index exports the public API', () => {
    for (const n of API) expect(typeof (lib as Record<string, unknown>)[n], n).toBe('function')
  })

  it('CJS (dist/index.js and require("capstan")) exports AudioSource, AudioFrame, CapstanError, shutdown', async () => {
    const script = `
      const a = require('./dist/index.js')
      const b = require('capstan')
      const names = ${JSON.stringify(API)}
      const s = new a.AudioSource({ sampleRate: 48000, channels: 1, consumer: 'pull' })
      const o = s.tryCaptureFrame(new a.AudioFrame(new Int16Array(480), 48000, 1))
      let code
      try { s.tryCaptureFrame(new Int16Array(0)) } catch (e) { code = e instanceof a.CapstanError && e.code }
      s.close()
      console.log(JSON.stringify({
        types: names.map((n) => typeof a[n]),
        same: names.every((n) => a[n] === b[n]),
        keys: Object.keys(a).filter((k) => k !== '__esModule').sort(),
        status: o.status,
        code,
      }))`
    const r = await runNode(['-e', script])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = lastJson(r.stdout)
    expect(out.types).toEqual(['function', 'function', 'function', 'function'])
    expect(out.same).toBe(true)
    expect(out.keys).toEqual(expect.arrayContaining(API))
    // dist is built from lib: the same runtime exports.
    expect(out.keys).toEqual(Object.keys(lib).filter((k) => k !== '__esModule').sort())
    expect(out.status).toBe('accepted')
    expect(out.code).toBe('ERR_INVALID_FRAME')
  })

  it('ESM (dist/index.mjs and import "capstan") exports the same API, sharing the CJS instance', async () => {
    const script = `
      import * as esm from './dist/index.mjs'
      import * as pkg from 'capstan'
      import { createRequire } from 'node:module'
      const require = createRequire(import.meta.url)
      const cjs = require('./dist/index.js')
      const names = ${JSON.stringify(API)}
      const s = new esm.AudioSource({ sampleRate: 16000, channels: 2, consumer: 'pull' })
      const o = await s.captureFrame(new esm.AudioFrame(new Int16Array(320).fill(9), 16000, 2))
      const f = (await s.frames().next()).value
      await s.close()
      esm.shutdown()
      console.log(JSON.stringify({
        types: names.map((n) => typeof esm[n]),
        pkg: names.every((n) => pkg[n] === esm[n]),
        shared: names.every((n) => esm[n] === cjs[n]),
        defaultIsCjs: esm.default === cjs,
        status: o.status,
        sample: f.data[0],
        isFrame: f instanceof cjs.AudioFrame,
      }))`
    const r = await runNode(['--input-type=module', '-e', script])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(lastJson(r.stdout)).toEqual({
      types: ['function', 'function', 'function', 'function'],
      pkg: true,
      shared: true,
      defaultIsCjs: true,
      status: 'accepted',
      sample: 9,
      isFrame: true,
    })
  })
})
