import { hold, release } from './engine'

/**
 * A reader parked until the engine says there is something to read: one waiter at a time,
 * woken once. While parked it holds the event loop open (the engine will wake it, like
 * pending I/O), and lets go when woken or abandoned.
 */
export class Parked {
  #wake: (() => void) | undefined

  /** Resolves at the next `wake()`. */
  async park(): Promise<void> {
    hold()
    try {
      await new Promise<void>((resolve) => (this.#wake = resolve))
    } finally {
      release()
    }
  }

  /** Wakes the parked reader, if any (once). */
  wake(): void {
    const w = this.#wake
    this.#wake = undefined
    w?.()
  }

  /** The reader is gone: a later `wake()` finds nobody. */
  forget(): void {
    this.#wake = undefined
  }
}
