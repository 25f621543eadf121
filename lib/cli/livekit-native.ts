import { createHmac } from 'node:crypto'

import { AudioSource } from '../source/source'
import { LiveKitRoom } from '../livekit/room'
import { shutdown } from '../internal/engine'

/** The utterances the demo's agent speaks: a tone each, a pause between. */
export const UTTERANCES = [
  { hz: 440, ms: 1000 },
  { hz: 550, ms: 700 },
  { hz: 660, ms: 1200 },
] as const
const PAUSE_MS = 400
const RATE = 48000
const LISTEN_RATE = 16000

/**
 * An HS256 LiveKit access token for the dev keys of the demo's private server (a JWT is
 * three base64url parts; the grant is LiveKit's `video` claim).
 */
export function devToken(identity: string, room: string, key = 'devkey', secret = 'secret'): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const body = b64({ iss: key, sub: identity, nbf: now - 10, exp: now + 600, name: identity, video: { room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true } })
  const head = b64({ alg: 'HS256', typ: 'JWT' })
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${sig}`
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Whether @livekit/rtc-node (libwebrtc) was loaded by this process. */
const rtcLoaded = () => Object.keys(require.cache).some((k) => /[\\/]@livekit[\\/]rtc-node[\\/]/.test(k))

/**
 * The agent: joins with capstan's own client, publishes a realtime source, waits for the
 * listener to take the track, speaks the utterances with plain `await captureFrame` calls
 * of 20 ms, then unpublishes and leaves. Prints one JSON line.
 */
async function agent(url: string): Promise<boolean> {
  const out: Record<string, unknown> = { role: 'agent', ok: false }
  const room = await LiveKitRoom.connect(url, devToken('agent', 'demo'))
  try {
    const source = new AudioSource({ sampleRate: RATE, channels: 1, queueMs: 400 })
    const subscribed = new Promise((r) => room.once('local-track-subscribed', r))
    const track = await room.publish(source, { name: 'agent-voice' })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([subscribed, new Promise((r) => (timer = setTimeout(r, 20_000)))])
    clearTimeout(timer)
    await sleep(300)
    for (const u of UTTERANCES) {
      const total = (RATE * u.ms) / 1000
      for (let at = 0; at < total; at += 960) {
        const n = Math.min(960, total - at)
        const f = new Int16Array(n)
        for (let i = 0; i < n; i++) f[i] = Math.round(12000 * Math.sin((2 * Math.PI * u.hz * (at + i)) / RATE))
        await source.captureFrame(f)
      }
      await source.waitForPlayout()
      await sleep(PAUSE_MS)
    }
    await track.unpublish()
    const m = track.metrics()
    const s = source.metrics()
    out.track = m
    out.bytesBalance = m.encodedBytes === m.sentBytes + m.queuedBytes + m.droppedBytes
    out.samplesBalance = s.captured === s.delivered + s.queued + s.dropped + s.cleared
    out.rtcNodeLoaded = rtcLoaded()
    await source.close()
    out.ok = true
  } finally {
    await room.close()
    shutdown()
  }
  console.log(JSON.stringify(out))
  return out.ok === true
}

/**
 * The listener: joins with capstan's own client, takes the agent's track as a 16 kHz
 * `AudioStream` (jitter buffer and Opus decoding on native threads, then the engine's
 * resampler), and finds the utterances in what it hears. Prints one JSON line.
 */
async function listener(url: string): Promise<boolean> {
  const out: Record<string, unknown> = { role: 'listener', ok: false }
  const room = await LiveKitRoom.connect(url, devToken('listener', 'demo'), { autoSubscribe: true })
  try {
    const remote = await new Promise<import('../livekit/room').LiveKitRemoteTrack>((resolve, reject) => {
      room.on('track', (t) => t.participantIdentity === 'agent' && resolve(t))
      setTimeout(() => reject(new Error("no track from 'agent' within 30 s")), 30_000).unref()
    })
    const heard: Array<{ hz: number; ms: number }> = []
    let loud = 0
    let crossings = 0
    let prev = 0
    let quiet = 0
    const end = () => {
      if (loud > 0) heard.push({ hz: Math.round((crossings / (loud / LISTEN_RATE)) * 10) / 10, ms: Math.round((loud / LISTEN_RATE) * 1000) })
      loud = crossings = 0
    }
    for await (const f of remote.stream({ sampleRate: LISTEN_RATE, channels: 1 })) {
      let peak = 0
      let c = 0
      for (const v of f.data) {
        peak = Math.max(peak, Math.abs(v))
        if (prev < 0 && v >= 0) c++
        prev = v
      }
      if (peak > 3000) {
        loud += f.samplesPerChannel
        crossings += c
        quiet = 0
      } else if (++quiet === 10) end()
    }
    end()
    const m = remote.metrics()
    out.heard = heard
    out.remote = m
    out.framesBalance = m.decodedFrames + m.concealedFrames === m.readFrames + m.queuedFrames + m.droppedFrames
    out.packetsBalance = m.packetsReceived === m.played + m.duplicate + m.late + m.overflow + m.discarded + m.buffered
    out.rtcNodeLoaded = rtcLoaded()
    out.ok = true
  } finally {
    await room.close()
    shutdown()
  }
  console.log(JSON.stringify(out))
  return out.ok === true
}

/** `capstan livekit-role agent|listener URL`: one side of `capstan demo --livekit`. */
export async function runLivekitRole(role: string | undefined, url: string | undefined): Promise<boolean> {
  if (!url) throw new Error('livekit-role needs a URL')
  if (role === 'agent') return agent(url)
  if (role === 'listener') return listener(url)
  throw new Error(`unknown livekit-role '${role}' (agent or listener)`)
}
