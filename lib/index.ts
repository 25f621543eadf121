/**
 * `capstan`: the core API, in the order audio flows (sources, processors, encoders,
 * transports). The integrations have their own entry points, `capstan/livekit` and
 * `capstan/prometheus`; importing this one loads neither.
 */
export { AudioFrame, type AudioFrameLike, type Samples } from './source/frame'
export { AudioSource } from './source/source'
export { AudioEncoder, type AudioEncoderMetrics, type AudioEncoderOptions } from './encode/encoder'
export {
  EncodedStream,
  type EncodeFormat,
  type EncodeOptions,
  type EncodedChunk,
  type EncodedSegment,
  type EncodedStreamEvents,
  type EncoderMetrics,
} from './encode/encoded-stream'
export { SourceGroup, type GroupOutcome } from './source/group'
export { AudioMixer, type AudioMixerOptions, type DuckOptions, type MixerInputOptions, type MixerMetrics } from './source/mixer'
export {
  AUDIO_STREAM_TOPIC,
  AudioSegmentEnd,
  ByteStreamAudioReceiver,
  ByteStreamAudioSender,
  RPC_CLEAR_BUFFER,
  RPC_PLAYBACK_FINISHED,
  RPC_PLAYBACK_STARTED,
  type ByteStreamAudioReceiverEvents,
  type ByteStreamAudioReceiverMetrics,
  type ByteStreamAudioReceiverOptions,
  type ByteStreamAudioSenderEvents,
  type ByteStreamAudioSenderMetrics,
  type ByteStreamAudioSenderOptions,
  type PlaybackFinished,
} from './transport/byte-stream'
export {
  Publisher,
  type PeerAudioSink,
  type PeerSinkFactory,
  type PublisherEvents,
  type PublisherMetrics,
  type PublisherOptions,
  type SinkStalledEvent,
} from './transport/publish'
export { memoryTransports, type AudioTransport, type ByteStreamWriter, type IncomingByteStream } from './transport/transport'
export { AudioStream, type AudioStreamOptions } from './source/stream'
export { CapstanError, type CapstanErrorCode } from './internal/errors'
export { shutdown } from './internal/engine'
export {
  NativeProcessor,
  processors,
  type AutoGainOptions,
  type EchoCancelOptions,
  type FrameProcessor,
  type FrameProcessorCredentials,
  type FrameProcessorStreamInfo,
} from './process/processors'
export type {
  AudioSourceEvents,
  AudioSourceOptions,
  CaptureOptions,
  CaptureOutcome,
  CaptureStatus,
  ConsumerMode,
  DeadlineEvent,
  HealthEvent,
  HealthState,
  OverflowEvent,
  OverflowPolicy,
  ProcessorErrorEvent,
  ProcessorMetrics,
  SourceMetrics,
  UnderrunEvent,
} from './source/types'

// Deprecated root re-exports of the integrations, kept for one minor version (0.2 drops
// them): each loads its entry point on first call, so importing `capstan` still loads neither.
type LiveKitEntry = typeof import('./livekit/index')
type OpsEntry = typeof import('./ops/index')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const lazyLiveKit = (): LiveKitEntry => require('./livekit/index.js')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const lazyOps = (): OpsEntry => require('./ops/index.js')

/** @deprecated Import it from `capstan/livekit`. */
export function livekitTransport(...a: Parameters<LiveKitEntry['livekitTransport']>): ReturnType<LiveKitEntry['livekitTransport']> {
  return lazyLiveKit().livekitTransport(...a)
}
/** @deprecated Import it from `capstan/livekit`. */
export function publishToLiveKit(...a: Parameters<LiveKitEntry['publishToLiveKit']>): ReturnType<LiveKitEntry['publishToLiveKit']> {
  return lazyLiveKit().publishToLiveKit(...a)
}
/** @deprecated Import it from `capstan/prometheus`. */
export function collectMetrics(...a: Parameters<OpsEntry['collectMetrics']>): ReturnType<OpsEntry['collectMetrics']> {
  return lazyOps().collectMetrics(...a)
}
/** @deprecated Import them from `capstan/livekit` / `capstan/prometheus`. */
export type { LiveKitRoomLike, LiveKitPublishOptions } from './livekit/index'
/** @deprecated */
export type { CollectMetricsOptions, MetricsRegistry } from './ops/index'
