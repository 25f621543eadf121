import { CapstanError } from './errors'

/**
 * `p`, or `ERR_TRANSPORT` after `ms`: the bound every call into a transport or peer gets,
 * so a connection that is gone never leaves a promise of capstan's pending forever. The
 * timer keeps the process alive until the call settles: a caller awaiting
 * `sender.close()` on a hung write gets its answer instead of a process that exits under it.
 */
export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined
  return Promise.race([
    p,
    new Promise<never>((_, rej) => {
      t = setTimeout(() => rej(new CapstanError('ERR_TRANSPORT', `${what} did not settle within ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(t))
}
