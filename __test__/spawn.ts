// Runs a fixture in a child Node process with a hard timeout (not a test file itself).
import { execFile } from 'node:child_process'
import path from 'node:path'

export interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  elapsedMs: number
  timedOut: boolean
}

export const ROOT = path.resolve(__dirname, '..')
export const fixture = (name: string): string => path.join(__dirname, 'fixtures', name)

export function runNode(args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<ChildResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000
  const t0 = performance.now()
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { cwd: opts.cwd ?? ROOT, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const elapsedMs = performance.now() - t0
        const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: NodeJS.Signals }) | null
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout: String(stdout),
          stderr: String(stderr),
          elapsedMs,
          timedOut: !!e?.killed && elapsedMs >= timeoutMs - 50,
        })
      },
    )
  })
}

/** The last line of stdout that parses as JSON. */
export function lastJson(stdout: string): any {
  const lines = stdout.trim().split('\n').reverse()
  for (const l of lines) {
    try {
      return JSON.parse(l)
    } catch {
      // not JSON
    }
  }
  throw new Error(`no JSON line in output:\n${stdout}`)
}
