import { CapstanError } from '../internal/errors'
import type { AudioSource } from '../source/source'
import { readOptions, whole } from '../internal/validate'
import { PUBLISHER_KEYS, Publisher, onPublisherClose, publisherOptions, type PeerSinkFactory, type PublisherOptions } from '../transport/publish'
import type { LiveKitRoomLike } from './transport'

/** Publishers of each room: one set of room listeners however many tracks it carries. */
const watched = new WeakMap<LiveKitRoomLike, Set<Publisher>>()

function watchRoom(room: LiveKitRoomLike, pub: Publisher): void {
  let pubs = watched.get(room)
  if (!pubs) {
    const set = new Set<Publisher>()
    pubs = set
    watched.set(room, set)
    const each = (f: (p: Publisher) => void) => () => [...set].forEach(f)
    const onDisconnected = (reason?: unknown) => {
      const why = reason === undefined ? undefined : String(reason)
      for (const p of [...set]) {
        p.emit('connection', { state: 'disconnected', reason: why })
        p.fail(`room disconnected${why === undefined ? '' : ` (${why})`}`)
      }
    }
    const onReconnecting = each((p) => p.emit('connection', { state: 'reconnecting' }))
    const onReconnected = each((p) => p.emit('connection', { state: 'reconnected' }))
    room.on('disconnected', onDisconnected as never)
    room.on('reconnecting', onReconnecting as never)
    room.on('reconnected', onReconnected as never)
    const stop = () => {
      room.off('disconnected', onDisconnected as never)
      room.off('reconnecting', onReconnecting as never)
      room.off('reconnected', onReconnected as never)
      watched.delete(room)
    }
    ;(set as Set<Publisher> & { stop?: () => void }).stop = stop
  }
  const set = pubs as Set<Publisher> & { stop?: () => void }
  set.add(pub)
  onPublisherClose(pub, () => {
    set.delete(pub)
    if (set.size === 0) set.stop?.()
  })
}

/** What `publishToLiveKit` needs of the `@livekit/rtc-node` module. */
interface RtcModule {
  AudioSource: new (rate: number, channels: number, queueMs?: number) => { captureFrame(f: unknown): Promise<void>; close(): Promise<void> }
  AudioFrame: new (data: Int16Array, rate: number, channels: number, samplesPerChannel: number) => unknown
  LocalAudioTrack: { createAudioTrack(name: string, source: unknown): { sid?: string; close(): Promise<void> | void } }
  TrackPublishOptions: new (o: { source: number }) => unknown
  TrackSource: { SOURCE_MICROPHONE: number }
}

export interface LiveKitPublishOptions extends PublisherOptions {
  trackName?: string
  /** The peer source's own queue, ms (rtc-node's `queueSize`). Default 200. */
  peerQueueMs?: number
  /** The `@livekit/rtc-node` module (default: required from the application). */
  rtc?: unknown
}

/**
 * Publishes a realtime capstan source to a LiveKit room through `@livekit/rtc-node`
 * (an optional peer dependency), with the watchdog and recovery of `Publisher`.
 */
export async function publishToLiveKit(source: AudioSource, room: LiveKitRoomLike, options: LiveKitPublishOptions = {}): Promise<Publisher> {
  const { trackName, peerQueueMs, rtc: rtcGiven, ...rest } = readOptions('publishToLiveKit', options, [...PUBLISHER_KEYS, 'trackName', 'peerQueueMs', 'rtc'] as const)
  const pubOptions = publisherOptions(rest)
  if (trackName !== undefined && typeof trackName !== 'string') throw new CapstanError('ERR_INVALID_OPTION', 'trackName must be a string')
  const queueMs = whole('peerQueueMs', peerQueueMs, 200, 10, 10_000)
  let rtc: RtcModule
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    rtc = (rtcGiven ?? require('@livekit/rtc-node')) as RtcModule
  } catch (e) {
    throw new CapstanError('ERR_INVALID_STATE', 'publishToLiveKit needs @livekit/rtc-node (npm install @livekit/rtc-node)', { cause: e })
  }
  const lp = room.localParticipant as unknown as {
    publishTrack(track: unknown, opts: unknown): Promise<{ sid?: string }>
    unpublishTrack(sid: string, stop?: boolean): Promise<void>
  }
  if (!lp) throw new CapstanError('ERR_INVALID_STATE', 'publishToLiveKit needs a connected room')
  const name = (trackName as string | undefined) ?? 'capstan'
  const factory: PeerSinkFactory = {
    async create(rate, channels) {
      const src = new rtc.AudioSource(rate, channels, queueMs)
      const track = rtc.LocalAudioTrack.createAudioTrack(name, src)
      const pub = await lp.publishTrack(track, new rtc.TrackPublishOptions({ source: rtc.TrackSource.SOURCE_MICROPHONE }))
      return {
        captureFrame: (f) => src.captureFrame(new rtc.AudioFrame(f.data as Int16Array, f.sampleRate, f.channels, f.samplesPerChannel)),
        async close() {
          if (pub.sid) await lp.unpublishTrack(pub.sid, true).catch(() => {})
          await track.close()
          await src.close()
        },
      }
    },
  }
  const pub = await Publisher.start(source, factory, pubOptions)
  watchRoom(room, pub)
  return pub
}
