/**
 * `capstan/livekit`: everything that knows LiveKit. `LiveKitRoom` is capstan's own client
 * (pure Rust, no libwebrtc); the transports and `publishToLiveKit` work over an
 * `@livekit/rtc-node` Room (an optional peer, loaded only when used).
 */
export {
  LiveKitRemoteTrack,
  LiveKitRoom,
  LiveKitTrack,
  type LiveKitParticipant,
  type LiveKitRemoteMetrics,
  type LiveKitConnectionEvent,
  type LiveKitDataOptions,
  type LiveKitConnectionState,
  type LiveKitRoomEvents,
  type LiveKitRoomOptions,
  type LiveKitTrackMetrics,
  type LiveKitTrackOptions,
} from './room'

export { livekitTransport, type LiveKitRoomLike } from './transport'
export { publishToLiveKit, type LiveKitPublishOptions } from './publish'
