import { native } from '../internal/errors'

/** What a native buffer with a coalesced wake-up offers its JavaScript reader. */
export interface WakingBuffer {
  setWake(onWake: () => void): void
  keepAlive(on: boolean): void
  release(): void
}

/**
 * Reads a native buffer until it ends, woken once per batch: `read()` gives the next
 * batch, `'empty'` (wait for the wake-up; the reader holds the event loop meanwhile, like
 * any pending read) or `'end'`. The wake-up is released however the reader stops.
 */
export async function* drain<T>(n: WakingBuffer, read: () => T | 'empty' | 'end'): AsyncGenerator<T> {
  let wake: (() => void) | undefined
  native(() =>
    n.setWake(() => {
      const w = wake
      wake = undefined
      w?.()
    }),
  )
  try {
    for (;;) {
      const r = read()
      if (r === 'end') return
      if (r !== 'empty') {
        yield r
        continue
      }
      n.keepAlive(true)
      try {
        await new Promise<void>((resolve) => (wake = resolve))
      } finally {
        n.keepAlive(false)
      }
    }
  } finally {
    native(() => n.release())
  }
}
