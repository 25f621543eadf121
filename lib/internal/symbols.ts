/**
 * `Symbol.asyncDispose` (`await using x = …`), or Node's own name for it where the
 * language's is missing: every closable capstan object answers to it.
 */
export const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose)
