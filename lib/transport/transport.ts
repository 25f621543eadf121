/**
 * What byte-stream audio needs of a transport, and nothing more: open a byte stream to a
 * peer with attributes, receive peers' byte streams on a topic, and a request/response
 * call. `livekitTransport()` (./livekit) speaks it over a LiveKit room; `memoryTransports()`
 * links two in-process peers for tests and local pipelines.
 */

import { turn } from '../internal/fairness'

export interface ByteStreamWriter {
  write(bytes: Uint8Array): Promise<void>
  close(): Promise<void>
}

export interface IncomingByteStream {
  /** The sender's identity. */
  readonly from: string
  readonly topic: string
  readonly attributes: Readonly<Record<string, string>>
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array>
}

export interface AudioTransport {
  /** This end's identity. */
  readonly identity: string
  openStream(o: { to: string; topic: string; attributes: Record<string, string>; name?: string }): Promise<ByteStreamWriter>
  /** Every byte stream on `topic` from any peer; returns a function that stops listening. */
  onStream(topic: string, handler: (s: IncomingByteStream) => void): () => void
  /** Calls `method` on peer `to`; rejects on timeout, refusal or an absent peer. */
  call(o: { to: string; method: string; payload: string; timeoutMs: number }): Promise<string>
  /** Answers `method` calls from any peer; returns a function that stops answering. */
  handle(method: string, handler: (payload: string, from: string) => string | Promise<string>): () => void
  /** A peer left; `'*'` when this end lost the transport (every peer is gone). */
  onPeerLeft(handler: (identity: string) => void): () => void
}

type Handler<A extends unknown[]> = (...a: A) => void

/** Answers calls of one method. */
export type RpcHandler = (payload: string, from: string) => string | Promise<string>

/**
 * One call to several handlers of its method (a sender and a receiver in one process, two
 * receivers of different senders): newest first, the first answer that is not `'reject'`
 * is the answer. Each handler refuses callers that are not its peer, so each call reaches
 * the one it is for, and removing one handler never removes another's.
 */
export async function dispatch(handlers: readonly RpcHandler[], payload: string, from: string): Promise<string> {
  for (let i = handlers.length - 1; i >= 0; i--) {
    const answer = await handlers[i](payload, from)
    if (answer !== 'reject') return answer
  }
  return 'reject'
}

/** Adds `h` to the list under `key`; the returned function removes exactly it. */
export function addTo<K, H>(map: Map<K, H[]>, key: K, h: H, onEmpty?: () => void): () => void {
  let list = map.get(key)
  if (!list) map.set(key, (list = []))
  list.push(h)
  return () => {
    const l = map.get(key)
    const i = l?.indexOf(h) ?? -1
    if (!l || i < 0) return
    l.splice(i, 1)
    if (l.length === 0) {
      map.delete(key)
      onEmpty?.()
    }
  }
}

/**
 * Bytes an in-process stream holds unread before a write waits, like a socket's buffer: a
 * reader that does not keep up backs the writer up (and, behind it, the source), as a real
 * transport does.
 */
export const MEMORY_WINDOW_BYTES = 64 * 1024

const EMPTY = new Uint8Array(0)

/** A byte stream between two in-process peers: a bounded queue of chunks. */
class MemoryStream implements IncomingByteStream {
  readonly #chunks: Uint8Array[] = []
  #head = 0
  #buffered = 0
  #done = false
  /** The reader has gone (`return()`): writes are taken and dropped, never waited on. */
  #cancelled = false
  #wake: (() => void) | undefined
  readonly #room: Array<() => void> = []
  constructor(
    readonly from: string,
    readonly topic: string,
    readonly attributes: Readonly<Record<string, string>>,
  ) {}
  /** Resolves once the bytes fit the window (at once while the reader keeps up). */
  async push(b: Uint8Array): Promise<void> {
    if (this.#cancelled) return
    this.#chunks.push(b)
    this.#buffered += b.length
    this.#kick()
    while (this.#buffered > MEMORY_WINDOW_BYTES && !this.#cancelled) await new Promise<void>((r) => this.#room.push(r))
  }
  end(): void {
    this.#done = true
    this.#kick()
  }
  #kick(): void {
    const w = this.#wake
    this.#wake = undefined
    w?.()
  }
  /** The oldest chunk (a head index, not `shift()`: a deep queue of tiny chunks stays O(1)). */
  #take(): Uint8Array | undefined {
    if (this.#head >= this.#chunks.length) return undefined
    const c = this.#chunks[this.#head]
    this.#chunks[this.#head++] = EMPTY
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks.splice(0, this.#head)
      this.#head = 0
    }
    return c
  }
  #drained(): void {
    if (this.#buffered > MEMORY_WINDOW_BYTES && !this.#cancelled) return
    for (const r of this.#room.splice(0)) r()
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    try {
      for (;;) {
        const c = this.#take()
        if (c) {
          this.#buffered -= c.length
          this.#drained()
          yield c
          continue
        }
        if (this.#done) return
        await new Promise<void>((r) => (this.#wake = r))
      }
    } finally {
      this.#cancelled = true
      this.#chunks.length = 0
      this.#head = 0
      this.#buffered = 0
      this.#drained()
    }
  }
}

class MemoryEnd implements AudioTransport {
  peer!: MemoryEnd
  gone = false
  readonly #streams = new Map<string, Set<(s: IncomingByteStream) => void>>()
  readonly #methods = new Map<string, RpcHandler[]>()
  readonly #left = new Set<Handler<[string]>>()
  constructor(readonly identity: string) {}

  async openStream(o: { to: string; topic: string; attributes: Record<string, string> }): Promise<ByteStreamWriter> {
    const peer = this.#reach(o.to)
    const s = new MemoryStream(this.identity, o.topic, { ...o.attributes })
    const heard = peer.#streams.get(o.topic)?.size ?? 0
    for (const h of peer.#streams.get(o.topic) ?? []) h(s)
    return {
      write: async (b) => {
        this.#reach(o.to)
        // Nobody listens to the topic: the bytes go nowhere, as over a network.
        if (heard > 0) await s.push(b.slice())
        // A write that settles at once shares the turn's budget, as every capstan call does:
        // a loop of writes to a reader that keeps up must not be an endless microtask chain.
        const next = turn()
        if (next) await next
      },
      close: async () => s.end(),
    }
  }

  onStream(topic: string, handler: (s: IncomingByteStream) => void): () => void {
    let set = this.#streams.get(topic)
    if (!set) this.#streams.set(topic, (set = new Set()))
    set.add(handler)
    return () => set.delete(handler)
  }

  async call(o: { to: string; method: string; payload: string; timeoutMs: number }): Promise<string> {
    const peer = this.#reach(o.to)
    const hs = peer.#methods.get(o.method)
    if (!hs?.length) throw new Error(`unsupported method ${o.method}`)
    const handlers = [...hs]
    let t: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        Promise.resolve().then(() => dispatch(handlers, o.payload, this.identity)),
        new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${o.method}: no response within ${o.timeoutMs} ms`)), o.timeoutMs))),
      ])
    } finally {
      clearTimeout(t)
    }
  }

  handle(method: string, handler: RpcHandler): () => void {
    return addTo(this.#methods, method, handler)
  }

  onPeerLeft(handler: (identity: string) => void): () => void {
    this.#left.add(handler)
    return () => this.#left.delete(handler)
  }

  #reach(to: string): MemoryEnd {
    if (to !== this.peer.identity || this.peer.gone || this.gone) throw new Error(`peer ${to} is not connected`)
    return this.peer
  }

  /** This end leaves: the other end is told, calls and writes fail from now on. */
  leave(): void {
    if (this.gone) return
    this.gone = true
    for (const h of this.peer.#left) h(this.identity)
  }
}

/** Two linked in-process transports; `leave()` on one tells the other its peer left. */
export function memoryTransports(a = 'agent', b = 'avatar'): [AudioTransport & { leave(): void }, AudioTransport & { leave(): void }] {
  const x = new MemoryEnd(a)
  const y = new MemoryEnd(b)
  x.peer = y
  y.peer = x
  return [x, y]
}
