import { runAgentsDemo } from '../agents/demo'
import { runDemo } from './demo'
import { runEncodeSample } from './encode-sample'
import { runLivekitDemo } from './livekit-demo'
import { runLivekitRole } from './livekit-native'

const USAGE = `usage: capstan demo [--sources N] [--seconds S] [--stall-ms MS]
       capstan demo --livekit [--rtc-node]
       capstan demo --agents
       capstan encode --out DIR [--in FILE.wav] [--seconds S]

  demo     simulate N real-time sources whose transport hangs, and watch them recover;
           --livekit: an agent and a listener on capstan's own LiveKit client, over a real
           livekit-server (from a checkout); --rtc-node: the byte-stream avatar exchange
           over @livekit/rtc-node
           --agents: an @livekit/agents AgentSession speaking through CapstanAudioOutput (from a checkout)
  encode   write speech-like audio (or FILE.wav) through real-time sources to
           DIR/sample.ogg, DIR/sample.mp3 and DIR/sample.wav`

function flag(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name)
  if (i < 0) return dflt
  const v = Number(args[i + 1])
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number`)
  return v
}

/** Time after the hang for sources to go recovered → healthy (stall detection + 100 ms). */
const RECOVERY_MS = 600

/** The `capstan` command. Returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv
  if (cmd === 'encode') {
    const i = args.indexOf('--out')
    const out = i >= 0 ? args[i + 1] : undefined
    if (!out) {
      console.error('capstan encode: --out DIR is required')
      return 2
    }
    const j = args.indexOf('--in')
    const ok = await runEncodeSample({ out, input: j >= 0 ? args[j + 1] : undefined, seconds: flag(args, '--seconds', 4), log: (l) => console.log(l) })
    return ok ? 0 : 1
  }
  if (cmd === 'demo' && args.includes('--livekit')) return runLivekitDemo((l) => console.log(l), args.includes('--rtc-node')) ? 0 : 1
  // One side of `demo --livekit`, run inside its network namespace.
  if (cmd === 'livekit-role') return (await runLivekitRole(args[0], args[1])) ? 0 : 1
  if (cmd === 'demo' && args.includes('--agents')) return (await runAgentsDemo((l) => console.log(l))) ? 0 : 1
  if (cmd !== 'demo') {
    console.log(USAGE)
    return cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2
  }
  const sources = flag(args, '--sources', 200)
  const seconds = flag(args, '--seconds', 6)
  // The hang starts a quarter into a short run (1.5 s into a long one) and, unless given,
  // leaves a second after it for the sources to come back.
  const stallAtMs = Math.min(1500, (seconds * 1000) / 4)
  const stallMs = flag(args, '--stall-ms', Math.min(2000, Math.max(300, seconds * 1000 - stallAtMs - 1000)))
  if (stallAtMs + stallMs + RECOVERY_MS > seconds * 1000) {
    console.error(
      `capstan demo: a ${stallMs} ms hang from t=${stallAtMs / 1000}s leaves no time to recover in a ${seconds} s run; ` +
        `use --seconds ${Math.ceil((stallAtMs + stallMs + RECOVERY_MS) / 1000)} or more, or a shorter --stall-ms`,
    )
    return 2
  }
  const ok = await runDemo({ sources, seconds, stallAtMs, stallMs, log: (l) => console.log(l) })
  return ok ? 0 : 1
}
