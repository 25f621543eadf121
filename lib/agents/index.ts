/**
 * `capstan/agents`: adapters for `@livekit/agents` (1.9) sessions. Loading this entry loads
 * `@livekit/agents` (an optional peer dependency); `capstan` itself never does.
 *
 *   session.output.audio = new CapstanAudioOutput(ctx.room)
 *   session.input.audio = new CapstanAudioInput(ctx.room, { processors: () => [processors.denoise()] })
 */
export { CapstanAudioOutput, type AgentsRoomLike, type CapstanAudioOutputEvents, type CapstanAudioOutputMetrics, type CapstanAudioOutputOptions } from './output'
export { CapstanAudioInput, type CapstanAudioInputMetrics, type CapstanAudioInputOptions } from './input'
export type { PlaybackFinishedEvent, PlaybackProgressedEvent } from './load'
