// Proves the agents-js peer is installed: DataStreamAudioOutput is exported from the package
// root of @livekit/agents (src/voice/avatar/datastream_io.ts, re-exported via voice/index.ts),
// and the rtc-node it runs on loads. Prints OK plus versions.
import { readFileSync } from 'node:fs'
import { DataStreamAudioOutput, voice } from '@livekit/agents'
import { AudioFrame } from '@livekit/rtc-node'

if (typeof DataStreamAudioOutput !== 'function') throw new Error('DataStreamAudioOutput is not exported')
if (voice.DataStreamAudioOutput !== DataStreamAudioOutput) throw new Error('voice.DataStreamAudioOutput differs')
new AudioFrame(new Int16Array(480), 48000, 1, 480) // touches the native FFI bindings
const v = (p) => JSON.parse(readFileSync(new URL(`./node_modules/${p}/package.json`, import.meta.url), 'utf8')).version
console.log(`OK DataStreamAudioOutput @livekit/agents ${v('@livekit/agents')} @livekit/rtc-node ${v('@livekit/rtc-node')}`)
