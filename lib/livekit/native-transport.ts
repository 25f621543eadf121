import type { JsFailure, JsRoomEvent, NativeIncomingStream, NativeRoom } from '../internal/binding'
import { CapstanError, describe, native } from '../internal/errors'
import { addTo, dispatch, type AudioTransport, type ByteStreamWriter, type IncomingByteStream, type RpcHandler } from '../transport/transport'

/** Bytes per native read of an incoming stream: a batch, never a chunk at a time. */
const READ_BYTES = 64 * 1024

/** LiveKit's RPC error code for an application's failure (the handler threw). */
const APPLICATION_ERROR = 1500

export function isFailure(v: unknown): v is JsFailure {
  return typeof v === 'object' && v !== null && typeof (v as JsFailure).code === 'string' && typeof (v as JsFailure).message === 'string'
}

/** What the room tells its transport: the data events, as they come. */
export interface TransportFeed {
  event(e: JsRoomEvent): void
}

/** A stream's chunks as an async iterable: batches read natively, woken once per batch. */
async function* chunks(n: NativeIncomingStream): AsyncGenerator<Uint8Array> {
  let wake: (() => void) | undefined
  native(() =>
    n.setWake(() => {
      const w = wake
      wake = undefined
      w?.()
    }),
  )
  try {
    for (;;) {
      const r = native(() => n.read(READ_BYTES))
      if (r.state === 'bytes') {
        yield r.bytes!
        continue
      }
      if (r.state === 'ended') return
      if (r.state === 'failed') throw new CapstanError('ERR_TRANSPORT', `the byte stream broke: ${r.reason ?? ''}`)
      n.keepAlive(true)
      try {
        await new Promise<void>((resolve) => (wake = resolve))
      } finally {
        n.keepAlive(false)
      }
    }
  } finally {
    native(() => n.release())
  }
}

/**
 * The `AudioTransport` of a native room: byte streams and RPC over LiveKit's reliable data
 * channel, so `ByteStreamAudioSender`/`ByteStreamAudioReceiver` run on capstan's own client
 * unchanged (and stay wire-compatible with LiveKit agents' avatar I/O).
 */
export function nativeTransport(n: NativeRoom, identity: string, closed: () => string | undefined): { transport: AudioTransport; feed: TransportFeed } {
  const streamHandlers = new Map<string, Array<(s: IncomingByteStream) => void>>()
  const methods = new Map<string, RpcHandler[]>()
  const left = new Set<(identity: string) => void>()

  const feed: TransportFeed = {
    event(e) {
      switch (e.kind) {
        case 'byte-stream': {
          const s = native(() => n.takeByteStream(e.id ?? ''))
          if (!s) return
          const handlers = streamHandlers.get(e.name ?? '')
          if (!handlers?.length) {
            // Nobody listens on this topic: let it go (the client counts it abandoned).
            native(() => s.release())
            return
          }
          const it = chunks(s)
          const incoming: IncomingByteStream = {
            from: e.identity ?? '',
            topic: e.name ?? '',
            attributes: { ...(e.attributes ?? {}) },
            [Symbol.asyncIterator]: () => it,
          }
          // One reader per stream: the newest handler on the topic takes it.
          handlers[handlers.length - 1](incoming)
          break
        }
        case 'rpc-request': {
          const id = e.id ?? ''
          const caller = e.identity ?? ''
          const list = [...(methods.get(e.name ?? '') ?? [])]
          void (async () => {
            let answer: { payload?: string; code?: number; message?: string }
            try {
              answer = { payload: await dispatch(list, e.text ?? '', caller) }
            } catch (err) {
              answer = { code: APPLICATION_ERROR, message: describe(err) }
            }
            await native(() => n.respondRpc(id, caller, answer.payload, answer.code, answer.message))
          })().catch(() => {})
          break
        }
        case 'participant-left':
          for (const h of [...left]) h(e.identity ?? '')
          break
        case 'disconnected':
          for (const h of [...left]) h('*')
          break
      }
    },
  }

  const transport: AudioTransport = {
    identity,
    async openStream(o): Promise<ByteStreamWriter> {
      const why = closed()
      if (why !== undefined) throw new CapstanError('ERR_INVALID_STATE', `the room is disconnected (${why})`)
      const w = await native(() => n.openByteStream([o.to], o.topic, o.name ?? '', { ...o.attributes }))
      if (isFailure(w)) throw new CapstanError('ERR_TRANSPORT', w.message)
      return {
        async write(bytes) {
          const r = await native(() => w.write(bytes))
          if (isFailure(r)) throw new CapstanError('ERR_TRANSPORT', r.message)
        },
        async close() {
          const r = await native(() => w.close(undefined))
          if (isFailure(r)) throw new CapstanError('ERR_TRANSPORT', r.message)
        },
      }
    },
    onStream(topic, handler) {
      return addTo(streamHandlers, topic, handler)
    },
    async call(o) {
      const r = await native(() => n.performRpc(o.to, o.method, o.payload, Math.max(1, Math.round(o.timeoutMs))))
      if (isFailure(r)) {
        throw new CapstanError('ERR_TRANSPORT', `rpc ${o.method} to ${o.to} failed${r.rpcCode === undefined || r.rpcCode === null ? '' : ` (${r.rpcCode})`}: ${r.message}`, { cause: r })
      }
      return r
    },
    handle(method, handler) {
      if (!methods.has(method)) native(() => n.registerRpcMethod(method))
      return addTo(methods, method, handler, () => native(() => n.unregisterRpcMethod(method)))
    },
    onPeerLeft(handler) {
      left.add(handler)
      return () => left.delete(handler)
    },
  }
  return { transport, feed }
}
