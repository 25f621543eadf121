/**
 * The defaults of the source stage's JS-side options. The engine's own (queue, policy,
 * deadline, consumer, pre-roll, ...) are the core's, read from `contract().defaults`.
 */
export const STREAM_DEFAULTS = {
  /** @default 50 frames of 10 ms between an `AudioStream`'s input and its reader. */
  queueFrames: 50,
} as const

export const FRAMES_DEFAULTS = {
  /** @default 10 ms per frame `frames()` yields. */
  frameMs: 10,
  /** Longest frame `frames()` joins: audio held back from the reader until it is whole. */
  maxFrameMs: 1000,
} as const
