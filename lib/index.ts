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
