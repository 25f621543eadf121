export { AudioFrame, type AudioFrameLike, type Samples } from './frame'
export { AudioSource } from './source'
export { AudioEncoder, type AudioEncoderMetrics, type AudioEncoderOptions } from './encoder'
export {
  EncodedStream,
  type EncodeFormat,
  type EncodeOptions,
  type EncodedChunk,
  type EncodedSegment,
  type EncodedStreamEvents,
  type EncoderMetrics,
} from './encode'
export { SourceGroup, type GroupOutcome } from './group'
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
} from './byte-stream'
export { livekitTransport, type LiveKitRoomLike } from './livekit'
export {
  Publisher,
  publishToLiveKit,
  type LiveKitPublishOptions,
  type PeerAudioSink,
  type PeerSinkFactory,
  type PublisherEvents,
  type PublisherMetrics,
  type PublisherOptions,
  type SinkStalledEvent,
} from './publish'
export { memoryTransports, type AudioTransport, type ByteStreamWriter, type IncomingByteStream } from './transport'
export { collectMetrics, type CollectMetricsOptions, type MetricsRegistry } from './prometheus'
export { AudioStream, type AudioStreamOptions } from './stream'
export { CapstanError, type CapstanErrorCode } from './errors'
export { shutdown } from './engine'
export {
  NativeProcessor,
  processors,
  type FrameProcessor,
  type FrameProcessorCredentials,
  type FrameProcessorStreamInfo,
} from './processors'
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
} from './types'
