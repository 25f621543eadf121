import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'

import { CapstanError } from '../index'

/**
 * The parts of `@livekit/agents` 1.9's `voice.AudioOutput` that capstan uses, written out so
 * capstan builds without the package (it is an optional peer, loaded only by `capstan/agents`).
 */
export interface PlaybackFinishedEvent {
  /** Seconds of the segment that played. */
  playbackPosition: number
  interrupted: boolean
  synchronizedTranscript?: string
}
export interface PlaybackProgressedEvent {
  startedAt: number
  offset: number
  duration: number
}
export declare class AgentsAudioOutput extends EventEmitter {
  sampleRate?: number
  constructor(sampleRate?: number, nextInChain?: unknown, capabilities?: { pause: boolean })
  captureFrame(frame: unknown): Promise<void>
  waitForPlayout(): Promise<PlaybackFinishedEvent>
  onPlaybackStarted(createdAt: number): void
  onPlaybackProgressed(ev: PlaybackProgressedEvent): void
  onPlaybackFinished(ev: PlaybackFinishedEvent): void
  flush(): void
  clearBuffer(): void
  onAttached(): void
  onDetached(): void
  get pendingPlayoutSegments(): number
}
/** `voice.AudioInput`: frames reach the session through `multiStream`, a `MultiInputStream`. */
export declare class AgentsAudioInput {
  protected multiStream: {
    addInputStream(s: ReadableStream<unknown>): string
    removeInputStream(id: string): Promise<void>
  }
  get stream(): ReadableStream<unknown>
  close(): Promise<void>
  onAttached(): void
  onDetached(): void
}

/** What `capstan/agents` needs of `@livekit/rtc-node` (the copy `@livekit/agents` uses). */
export interface RtcNode {
  AudioFrame: new (data: Int16Array, sampleRate: number, channels: number, samplesPerChannel: number) => unknown
  AudioStream: new (track: unknown, o: { sampleRate: number; numChannels: number }) => ReadableStream<{ data: Int16Array; sampleRate: number; channels: number }>
  RoomEvent: Record<string, string>
  TrackKind: Record<string, number>
}

interface AgentsModule {
  voice: { AudioOutput: typeof AgentsAudioOutput; AudioInput: typeof AgentsAudioInput }
}

function load(): { agents: AgentsModule; rtc: unknown } {
  let agents: AgentsModule
  let where: string
  try {
    where = require.resolve('@livekit/agents')
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    agents = require('@livekit/agents') as AgentsModule
  } catch (e) {
    throw new CapstanError('ERR_INVALID_STATE', 'capstan/agents needs @livekit/agents (npm install @livekit/agents), an optional peer dependency', { cause: e })
  }
  if (typeof agents.voice?.AudioOutput !== 'function' || typeof agents.voice?.AudioInput !== 'function') {
    throw new CapstanError('ERR_INVALID_STATE', 'this @livekit/agents exports no voice.AudioOutput / voice.AudioInput (capstan/agents needs 1.9 or later)')
  }
  // The Room an agent job hands out belongs to the @livekit/rtc-node that @livekit/agents
  // resolves (0.13 for agents 1.9), which need not be the application's own: tracks must be
  // made by that copy (FFI handles of another version's native library are not valid there).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const rtc = createRequire(where)('@livekit/rtc-node') as unknown
  return { agents, rtc }
}

const loaded = load()
export const agents = loaded.agents
/** `@livekit/rtc-node` as `@livekit/agents` resolves it. */
export const agentsRtc = loaded.rtc
