import { runDemo } from './demo'

const USAGE = `usage: capstan demo [--sources N] [--seconds S] [--stall-ms MS]

  demo   simulate N real-time sources whose transport hangs, and watch them recover`

function flag(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name)
  if (i < 0) return dflt
  const v = Number(args[i + 1])
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number`)
  return v
}

/** The `capstan` command. Returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv
  if (cmd !== 'demo') {
    console.log(USAGE)
    return cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2
  }
  const sources = flag(args, '--sources', 200)
  const stallMs = flag(args, '--stall-ms', 2000)
  const seconds = flag(args, '--seconds', 6)
  const ok = await runDemo({ sources, seconds, stallAtMs: 1500, stallMs, log: (l) => console.log(l) })
  return ok ? 0 : 1
}
