/** Stable codes for programmer errors. Everything else a capture meets is an outcome. */
export type CapstanErrorCode =
  | 'ERR_FORMAT_MISMATCH'
  | 'ERR_INVALID_FRAME'
  | 'ERR_INVALID_OPTION'
  | 'ERR_INVALID_STATE'
  | 'ERR_NATIVE_PANIC'

/** The only thing capstan throws or rejects with; match on `code`, not on `message`. */
export class CapstanError extends Error {
  readonly code: CapstanErrorCode
  constructor(code: CapstanErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CapstanError'
    this.code = code
  }
}

const CODED = /^(ERR_[A-Z_]+): ([\s\S]*)$/

/**
 * Native errors arrive as `"<CODE>: <message>"` (from the core) or as a caught Rust panic
 * (napi-rs reports those with status `GenericFailure`).
 */
export function fromNative(e: unknown): unknown {
  if (e instanceof CapstanError || !(e instanceof Error)) return e
  const m = CODED.exec(e.message)
  if (m) return new CapstanError(m[1] as CapstanErrorCode, m[2], { cause: e })
  if ((e as { code?: string }).code === 'GenericFailure') {
    return new CapstanError('ERR_NATIVE_PANIC', `native panic: ${e.message}`, { cause: e })
  }
  return new CapstanError('ERR_INVALID_OPTION', e.message, { cause: e })
}

/** Runs a native call, turning its errors into `CapstanError`s. */
export function native<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw fromNative(e)
  }
}
