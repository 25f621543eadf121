// LiveKit agents (JS) as the agent: @livekit/agents' DataStreamAudioOutput sends two
// segments to `avatar` (runs inside the LiveKit namespace, on this folder's rtc-node 0.13):
//   1. 1.00 s of a ramp, flush(), then waitForPlayout() must bring the avatar's
//      playback-finished answer (interrupted: false);
//   2. 3.00 s of a second ramp pushed at once, clearBuffer() 0.5 s after the avatar started
//      playing it; waitForPlayout() must bring { interrupted: true }.
// Prints one JSON line.   node agent-sender.mjs [room]
import { DataStreamAudioOutput, initializeLogger } from '@livekit/agents'
import { AudioFrame, Room, RoomEvent, dispose } from '@livekit/rtc-node'
import { URL, finish, log, token, waitForParticipant, withTimeout } from '../../fixtures/lk-common.mjs'

process.env.LK_ROLE = 'agents-js'
initializeLogger({ pretty: false, level: 'warn' })
const [roomName = 'interop-js'] = process.argv.slice(2)
const RATE = 48000
const ramp = (n, seed) => Int16Array.from({ length: n }, (_, i) => ((i * 7 + seed) % 20000) - 10000)

const result = { role: 'agents-js', ok: false }
const room = new Room()
try {
  await withTimeout(room.connect(URL, await token('agent', roomName, { kind: 'agent' }), { autoSubscribe: false }), 15000, 'connect')
  let playing
  const playingP = new Promise((r) => (playing = r))
  room.localParticipant.registerRpcMethod('interop.playing', async (d) => {
    playing(JSON.parse(d.payload))
    return 'ok'
  })
  await withTimeout(waitForParticipant(room, 'avatar', RoomEvent), 20000, 'avatar joins')
  const out = new DataStreamAudioOutput({ room, destinationIdentity: 'avatar', sampleRate: RATE })
  const push = async (data) => {
    for (let off = 0; off < data.length; off += 960) {
      // A copy, not a view: DataStreamAudioOutput writes `frame.data.buffer` whole.
      const part = data.slice(off, off + 960)
      await out.captureFrame(new AudioFrame(part, RATE, 1, part.length))
    }
  }
  await push(ramp(RATE, 1))
  out.flush()
  result.first = await withTimeout(out.waitForPlayout(), 20000, 'playback finished of segment 1')
  await push(ramp(3 * RATE, 2))
  out.flush()
  await withTimeout(playingP, 20000, 'avatar playing segment 2')
  await new Promise((r) => setTimeout(r, 500))
  out.clearBuffer()
  result.second = await withTimeout(out.waitForPlayout(), 20000, 'playback finished after clearBuffer')
  result.ok = true
  await new Promise((r) => setTimeout(r, 300))
  await finish([room], dispose, result, 0)
} catch (e) {
  log('FAILED:', e?.stack ?? e)
  result.error = String(e?.message ?? e)
  await finish([room], dispose, result, 1)
}
