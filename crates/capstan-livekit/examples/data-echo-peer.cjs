// The @livekit/rtc-node side of the data interop run with examples/data-echo.rs:
//   NODE_PATH=.../node_modules node data-echo-peer.cjs <room> <identity> <capstan-identity>
// Calls capstan's RPC methods, sends a user packet and a 100 000-byte stream and checks they
// come back; answers `js-echo`; hashes the stream capstan sends. Prints one JSON line.
const { Room, RoomEvent, dispose, RpcError } = require('@livekit/rtc-node')
const { AccessToken } = require('livekit-server-sdk')
const crypto = require('node:crypto')

const [roomName, identity, capstan] = process.argv.slice(2)
const url = process.env.LIVEKIT_URL ?? 'ws://127.0.0.1:7880'
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')
const log = (...a) => process.stderr.write(`[js] ${a.join(' ')}\n`)
const timeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))])

async function main() {
  const at = new AccessToken(process.env.LIVEKIT_API_KEY ?? 'devkey', process.env.LIVEKIT_API_SECRET ?? 'secret', {
    identity,
  })
  at.addGrant({ roomJoin: true, room: roomName, canPublish: true, canSubscribe: true, canPublishData: true })
  const room = new Room()
  const result = {}
  let gotCapstanStream
  const capstanStream = new Promise((r) => (gotCapstanStream = r))
  let gotEcho
  const echoStream = new Promise((r) => (gotEcho = r))
  room.registerByteStreamHandler('capstan-bytes', async (reader, from) => {
    const parts = await reader.readAll()
    const b = Buffer.concat(parts.map((p) => Buffer.from(p)))
    gotCapstanStream({ from: from.identity, name: reader.info.name, size: reader.info.size, len: b.length, sha: sha(b) })
  })
  room.registerByteStreamHandler('echo', async (reader) => {
    const parts = await reader.readAll()
    gotEcho(Buffer.concat(parts.map((p) => Buffer.from(p))))
  })
  await room.connect(url, await at.toJwt(), { autoSubscribe: false })
  room.localParticipant.registerRpcMethod('js-echo', async (d) => `js:${d.payload} (caller ${d.callerIdentity})`)
  const echoData = new Promise((resolve) =>
    room.on(RoomEvent.DataReceived, (payload, participant, kind, topic) => {
      if (topic === 'echo') resolve({ from: participant?.identity, text: Buffer.from(payload).toString() })
    }),
  )
  while (![...room.remoteParticipants.values()].some((p) => p.identity === capstan)) {
    await new Promise((r) => setTimeout(r, 100))
  }
  log('capstan is in the room')
  const rpc = async (method, payload) => {
    try {
      return { ok: await room.localParticipant.performRpc({ destinationIdentity: capstan, method, payload }) }
    } catch (e) {
      return { code: e.code, message: e.message, data: e.data }
    }
  }
  result.rpc_echo = await rpc('echo', 'hello capstan')
  result.rpc_fail = await rpc('fail', '')
  result.rpc_unknown = await rpc('nope', '')
  await room.localParticipant.publishData(Buffer.from('ping from js'), { reliable: true, topic: 't' })
  result.data_echo = await timeout(echoData, 10000, 'data echo')
  const bytes = crypto.randomBytes(100_000)
  const w = await room.localParticipant.streamBytes({
    name: 'from-js.bin',
    topic: 'files',
    destinationIdentities: [capstan],
    totalSize: bytes.length,
  })
  await w.write(bytes)
  await w.close()
  const back = await timeout(echoStream, 15000, 'stream echo')
  result.stream_echo = { sent: bytes.length, sent_sha: sha(bytes), back: back.length, back_sha: sha(back), equal: back.equals(bytes) }
  result.capstan_stream = await timeout(capstanStream, 15000, 'capstan stream')
  await room.localParticipant.publishData(Buffer.from('bye'), { reliable: true, topic: 'done' })
  await new Promise((r) => setTimeout(r, 500))
  process.stdout.write(JSON.stringify(result) + '\n')
  await room.disconnect()
  await dispose()
}
main().catch((e) => {
  log('failed:', e.stack ?? e)
  process.exit(1)
})
