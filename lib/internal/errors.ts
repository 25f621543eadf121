import { CONTRACT } from './binding'

/** Stable codes for programmer errors. Everything else a capture meets is an outcome. */
export type CapstanErrorCode =
  | 'ERR_FORMAT_MISMATCH'
  | 'ERR_INVALID_FRAME'
  | 'ERR_INVALID_OPTION'
  | 'ERR_INVALID_STATE'
  | 'ERR_BUSY'
  | 'ERR_NATIVE_PANIC'
  | 'ERR_ENCODER'
  | 'ERR_TRANSPORT'
  | 'ERR_INVALID_STREAM'
  /** LiveKit client: the signal connection could not be made (TCP, HTTP upgrade: a bad token is a 401, TLS). */
  | 'ERR_CONNECT'
  /** LiveKit client: the server said something unusable, or refused (a track the grant forbids). */
  | 'ERR_SIGNAL'
  /** LiveKit client: SDP, ICE, DTLS, SRTP or the UDP socket. */
  | 'ERR_PEER'
  /** A bounded network step did not finish in time; the message names it. */
  | 'ERR_TIMEOUT'
  /** The call's AbortSignal fired. */
  | 'ERR_ABORTED'
  /** LiveKit client: an RPC failed (its LiveKit code is in the message); `room.transport` reports it as `ERR_TRANSPORT`. */
  | 'ERR_RPC'

/** The only thing capstan throws or rejects with; match on `code`, not on `message`. */
export class CapstanError extends Error {
  readonly code: CapstanErrorCode
  constructor(code: CapstanErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CapstanError'
    this.code = code
  }
}

/**
 * What went wrong, as text, whatever was thrown: a Symbol, an object whose `message` getter
 * throws, a revoked Proxy. Never throws (an error path must not fail in turn).
 */
export function describe(e: unknown): string {
  try {
    if (typeof e === 'symbol') return e.toString()
    if (typeof e === 'object' && e !== null) {
      const m = (e as { message?: unknown }).message
      if (typeof m === 'string') return m
      return Object.prototype.toString.call(e)
    }
    return String(e)
  } catch {
    return 'an error that could not be described'
  }
}

/** `e instanceof CapstanError`, false for a value that throws when asked (a revoked Proxy). */
export function isCapstanError(e: unknown): e is CapstanError {
  try {
    return e instanceof CapstanError
  } catch {
    return false
  }
}

/** The codes core errors carry in `code` (the binding makes them the napi error status). */
let coreCodes: Set<string> | undefined

/**
 * Native errors carry the core's code in `code`. A Rust panic caught at the boundary
 * (`#[napi(catch_unwind)]`) arrives with napi-rs's `GenericFailure`. Anything else is not a
 * capstan error and is passed on unchanged.
 */
export function fromNative(e: unknown): unknown {
  if (e instanceof CapstanError || !(e instanceof Error)) return e
  const code = (e as { code?: unknown }).code
  coreCodes ??= new Set(CONTRACT.errorCodes)
  if (typeof code === 'string' && coreCodes.has(code)) {
    return new CapstanError(code as CapstanErrorCode, e.message, { cause: e })
  }
  if (code === 'GenericFailure') return new CapstanError('ERR_NATIVE_PANIC', `native panic: ${e.message}`, { cause: e })
  // napi-rs refused an argument before the core saw it (a Proxy where a typed array goes).
  if (code === 'InvalidArg') return new CapstanError('ERR_INVALID_FRAME', `not audio the binding can read: ${e.message}`, { cause: e })
  return e
}

/** Runs a native call, turning its errors into `CapstanError`s. */
export function native<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw fromNative(e)
  }
}
