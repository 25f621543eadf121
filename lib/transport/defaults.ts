/** The defaults of the transport stage's JS-side options, in one place (docs/API.md quotes them). */
export const SENDER_DEFAULTS = {
  /** @default 15000 bytes per chunk written (whole sample frames). */
  chunkBytes: 15_000,
  /** @default 2000 ms `clearBuffer()` waits for the receiver's answer. */
  clearTimeoutMs: 2000,
  /** @default 5000 ms watchdog on each transport call. */
  writeTimeoutMs: 5000,
} as const

export const RECEIVER_DEFAULTS = {
  /** @default 5000 ms of audio received but not yet read. */
  queueMs: 5000,
  /** @default 10000 ms without a chunk ends a segment. */
  idleTimeoutMs: 10_000,
  /** @default 3 attempts of each playback notification. */
  rpcAttempts: 3,
  /** @default 5000 ms per notification attempt. */
  rpcTimeoutMs: 5000,
} as const

/** Limits of what a remote peer can make the receiver hold. */
export const RECEIVER_LIMITS = {
  /** Streams waiting behind the one playing; more are cancelled and counted (`droppedStreams`). */
  maxPendingStreams: 64,
  /** Largest RPC answer parsed. */
  maxAnswerBytes: 64 * 1024,
  maxRpcAttempts: 10,
} as const

export const PUBLISHER_DEFAULTS = {
  /** @default 1000 ms one peer `captureFrame` may take. */
  captureTimeoutMs: 1000,
  /** @default 2000 ms to close a wedged peer sink. */
  closeTimeoutMs: 2000,
  /** @default 'recreate' */
  recovery: 'recreate',
  /** @default 20 ms per peer `captureFrame` (what LiveKit clients send). */
  frameMs: 20,
  /** @default 80 ms kept ahead in the peer's queue after it ran dry. */
  leadMs: 80,
  /** @default 80 ms of pre-roll while published. */
  prerollMs: 80,
} as const
