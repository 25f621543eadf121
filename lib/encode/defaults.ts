/** The defaults of the encode stage's JS-side options; the encoders' own are the core's. */
export const ENCODER_DEFAULTS = {
  /** @default 1000 ms of audio an `AudioEncoder` holds pushed but not yet encoded. */
  inputQueueMs: 1000,
} as const

export const READ_DEFAULTS = {
  /** @default 65536 bytes per `chunks()` read: whole pieces up to this, one at least. */
  maxBytes: 64 * 1024,
} as const
