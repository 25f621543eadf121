// The `capstan/agents` entry without a server: importing `capstan` never loads
// @livekit/agents, a missing peer is a typed error, the ESM and CJS faces share one class, bad
// options are typed errors, and a capture waiting for a room that never connects settles at
// close(). Needs the build and the agents peer (`node scripts/test-setup.mjs peers`).
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { ROOT, fixture } from '../spawn'

const PEER_MODULES = join(ROOT, '__test__/livekit/peers/agents-js/node_modules')

function run(mode: string, env: Record<string, string> = {}): Promise<{ code: number | null; out: Record<string, unknown>; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [fixture('agents-entry.mjs'), mode], { cwd: ROOT, timeout: 30_000, killSignal: 'SIGKILL', env: { ...process.env, NODE_PATH: '', ...env } }, (err, stdout, stderr) => {
      const line = stdout.split('\n').reverse().find((l) => l.startsWith('{"mode"'))
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: line ? JSON.parse(line) : {}, stderr })
    })
  })
}

describe('capstan/agents entry', () => {
  it('importing capstan (CJS and ESM) does not load @livekit/agents, even where it resolves', async () => {
    const r = await run('root', { NODE_PATH: PEER_MODULES })
    expect(r.code, r.stderr).toBe(0)
    expect(r.out.agentsLoaded).toBe(false)
  })

  it('capstan/agents without @livekit/agents installed throws CapstanError ERR_INVALID_STATE', async () => {
    const r = await run('missing')
    expect(r.code, r.stderr).toBe(0)
    expect(r.out.error).toBe('CapstanError:ERR_INVALID_STATE')
  })

  it('ESM and CJS share the classes; they are voice.AudioOutput / voice.AudioInput; bad options are ERR_INVALID_OPTION; a waiting capture settles at close()', async () => {
    expect(existsSync(join(PEER_MODULES, '@livekit/agents')), 'agents peer: node scripts/test-setup.mjs peers').toBe(true)
    const r = await run('api', { NODE_PATH: PEER_MODULES })
    expect(r.code, r.stderr).toBe(0)
    expect(r.out.sameClass).toBe(true)
    expect(r.out.isAudioOutput).toBe(true)
    expect(r.out.isAudioInput).toBe(true)
    expect(Object.values(r.out.errors as Record<string, string>)).toEqual(Array(8).fill('CapstanError:ERR_INVALID_OPTION'))
    expect(r.out.capture).toBe('resolved')
    expect(r.out.playout).toEqual({ playbackPosition: 0, interrupted: false })
    expect(r.out.inputMetrics).toEqual({ tracks: 0, framesOut: 0 })
  })
})
