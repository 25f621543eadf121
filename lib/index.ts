export { AudioFrame, type AudioFrameLike, type Samples } from './frame'
export { AudioSource } from './source'
export { CapstanError, type CapstanErrorCode } from './errors'
export { shutdown } from './engine'
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
  SourceMetrics,
  UnderrunEvent,
} from './types'
