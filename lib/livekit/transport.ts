import { CapstanError } from '../internal/errors'
import { addTo, dispatch, type AudioTransport, type ByteStreamWriter, type IncomingByteStream, type RpcHandler } from '../transport/transport'

/**
 * The parts of an `@livekit/rtc-node` `Room` the transport uses, written out so capstan
 * needs no LiveKit package to build or import (`@livekit/rtc-node` is an optional peer).
 */
export interface LiveKitRoomLike {
  localParticipant?: {
    identity: string
    streamBytes(o: { name?: string; topic?: string; attributes?: Record<string, string>; destinationIdentities?: string[] }): Promise<{
      write(chunk: Uint8Array): Promise<void>
      close(): Promise<void>
    }>
    performRpc(o: { destinationIdentity: string; method: string; payload: string; responseTimeout?: number }): Promise<string>
    registerRpcMethod(method: string, handler: (data: { callerIdentity: string; payload: string }) => Promise<string>): void
    unregisterRpcMethod(method: string): void
  }
  registerByteStreamHandler(
    topic: string,
    handler: (reader: AsyncIterable<Uint8Array> & { info: { attributes?: Record<string, string>; topic?: string } }, participant: { identity: string }) => void,
  ): void
  unregisterByteStreamHandler(topic: string): void
  on(event: string, listener: (...a: never[]) => void): unknown
  off(event: string, listener: (...a: never[]) => void): unknown
}

/**
 * The RPC handlers every transport over one room registered: rtc-node keeps one handler per
 * method, so each method is registered once per room and its calls dispatched to all of
 * them (two receivers of different senders in one process; closing one keeps the other).
 */
const rooms = new WeakMap<LiveKitRoomLike, Map<string, RpcHandler[]>>()

/**
 * An `AudioTransport` over a connected LiveKit room (`@livekit/rtc-node`): byte streams
 * through `streamBytes`/`registerByteStreamHandler`, calls through RPC, departures from
 * `participantDisconnected` (and `disconnected`, which loses every peer).
 */
export function livekitTransport(room: LiveKitRoomLike): AudioTransport {
  const lp = room.localParticipant
  if (!lp) throw new CapstanError('ERR_INVALID_STATE', 'livekitTransport needs a connected room (no localParticipant)')
  let methods = rooms.get(room)
  if (!methods) rooms.set(room, (methods = new Map()))
  const shared = methods
  return {
    identity: lp.identity,
    async openStream(o): Promise<ByteStreamWriter> {
      const w = await lp.streamBytes({ name: o.name, topic: o.topic, attributes: o.attributes, destinationIdentities: [o.to] })
      return { write: (b) => w.write(b), close: () => w.close() }
    },
    onStream(topic, handler) {
      room.registerByteStreamHandler(topic, (reader, participant) => {
        const s: IncomingByteStream = {
          from: participant.identity,
          topic,
          attributes: { ...(reader.info.attributes ?? {}) },
          [Symbol.asyncIterator]: () => reader[Symbol.asyncIterator](),
        }
        handler(s)
      })
      return () => room.unregisterByteStreamHandler(topic)
    },
    call(o) {
      return lp.performRpc({ destinationIdentity: o.to, method: o.method, payload: o.payload, responseTimeout: o.timeoutMs })
    },
    handle(method, handler) {
      if (!shared.has(method)) {
        lp.registerRpcMethod(method, async (data) => dispatch([...(shared.get(method) ?? [])], data.payload, data.callerIdentity))
      }
      return addTo(shared, method, handler, () => lp.unregisterRpcMethod(method))
    },
    onPeerLeft(handler) {
      const left = (p: { identity: string }) => handler(p.identity)
      const gone = () => handler('*')
      room.on('participantDisconnected', left as never)
      room.on('disconnected', gone as never)
      return () => {
        room.off('participantDisconnected', left as never)
        room.off('disconnected', gone as never)
      }
    },
  }
}
