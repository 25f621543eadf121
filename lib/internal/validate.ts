import { CONTRACT } from './binding'
import { CapstanError, describe } from './errors'

/** The core's bounds (rates, channels, queue, deadline, pre-roll), never restated here. */
export const LIMITS = CONTRACT.limits

/**
 * `given`, checked to be an object and read once into a snapshot of `keys`: a getter that
 * answers differently on a second read cannot make two layers disagree. A key not in
 * `keys` is refused by name (a misspelt option is a bug, not a default).
 */
export function readOptions<K extends string>(what: string, given: unknown, keys: readonly K[]): Partial<Record<K, unknown>> {
  if (typeof given !== 'object' || given === null) throw new CapstanError('ERR_INVALID_OPTION', `${what} options must be an object`)
  const known = new Set<string>(keys)
  for (const k of Object.keys(given)) {
    if (!known.has(k)) throw new CapstanError('ERR_INVALID_OPTION', `${what}: unknown option '${k}'`)
  }
  const out: Partial<Record<K, unknown>> = {}
  for (const k of keys) {
    const v = (given as Record<string, unknown>)[k]
    if (v !== undefined) out[k] = Array.isArray(v) ? [...v] : v
  }
  return out
}

/** A whole number in [min, max] (a multiple of `step` if given); `dflt` when absent. */
export function whole(name: string, v: unknown, dflt: number, min: number, max: number, step = 1): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max || v % step !== 0) {
    const of = step === 1 ? '' : `, a multiple of ${step}`
    throw new CapstanError('ERR_INVALID_OPTION', `${name} must be a whole number ${min}..${max}${of}, got ${describe(v)}`)
  }
  return v
}

/** A finite number > 0 (ms of a timeout); `dflt` when absent. */
export function positive(name: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new CapstanError('ERR_INVALID_OPTION', `${name} must be a positive number, got ${describe(v)}`)
  }
  return v
}

/** One of `allowed`; `dflt` when absent. */
export function oneOf<T extends string>(name: string, v: unknown, dflt: T, allowed: readonly T[]): T {
  if (v === undefined) return dflt
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new CapstanError('ERR_INVALID_OPTION', `${name} must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${describe(v)}`)
  }
  return v as T
}
