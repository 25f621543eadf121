/**
 * `capstan/livekit`: everything that knows LiveKit. Today the transports and the publisher
 * over an `@livekit/rtc-node` Room (an optional peer, loaded only when used).
 */
export { livekitTransport, type LiveKitRoomLike } from './transport'
export { publishToLiveKit, type LiveKitPublishOptions } from './publish'
