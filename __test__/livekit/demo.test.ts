// `capstan demo --livekit` as a user runs it from a checkout: the native agent and listener
// over a real livekit-server in a private namespace (no @livekit/rtc-node in either), and
// `--rtc-node`, the byte-stream avatar exchange over @livekit/rtc-node.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'

import { livekitServerBinary, REPO_ROOT } from './netns'

const run = (args: string[]) =>
  spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'capstan.js'), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 150_000 })

describe('capstan demo --livekit', () => {
  beforeAll(() => {
    livekitServerBinary()
  }, 20 * 60_000)

  it("runs on capstan's own client: the listener hears the agent's three utterances at their pitch, both laws hold, no rtc-node loaded, and both processes exit by themselves", { timeout: 160_000 }, () => {
    const r = run(['demo', '--livekit'])
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
    const heard = [...r.stdout.matchAll(/listener heard:\s+([\d.]+) Hz for ([\d.]+) s/g)].map((m) => [Number(m[1]), Number(m[2])])
    expect(heard.map(([hz]) => Math.round(hz / 10) * 10), r.stdout).toEqual([440, 550, 660])
    for (const [i, ms] of [1.0, 0.7, 1.2].entries()) expect(Math.abs(heard[i][1] - ms), r.stdout).toBeLessThanOrEqual(0.05)
    expect(r.stdout).toContain('bytes balance true, samples balance true')
    expect(r.stdout).toContain('accounting holds: frames true, packets true; @livekit/rtc-node loaded: agent false, listener false')
    // The run is the exchange, not a client waiting out a timer: well under the 20 s wait.
    const whole = Number(/whole run ([\d.]+) s/.exec(r.stdout)?.[1])
    expect(whole, r.stdout).toBeLessThan(15)
  })

  it('--rtc-node: the byte-stream avatar exchange over @livekit/rtc-node', { timeout: 160_000 }, () => {
    const r = run(['demo', '--livekit', '--rtc-node'])
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
    expect(r.stdout).toMatch(/accounting holds: agent true, avatar true/)
  })
})
