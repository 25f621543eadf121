"""Proves the agents-py peer is installed: DataStreamAudioReceiver (and DataStreamAudioOutput)
import from livekit.agents.voice.avatar, and the livekit rtc FFI loads. Prints OK plus versions."""
from importlib.metadata import version

from livekit import rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput, DataStreamAudioReceiver
from livekit.agents.voice.avatar._datastream_io import AUDIO_STREAM_TOPIC, RPC_CLEAR_BUFFER

assert AUDIO_STREAM_TOPIC == "lk.audio_stream" and RPC_CLEAR_BUFFER == "lk.clear_buffer"
assert callable(DataStreamAudioReceiver) and callable(DataStreamAudioOutput)
rtc.AudioFrame.create(48000, 1, 480)  # touches the native FFI bindings
print(
    "OK DataStreamAudioReceiver livekit-agents",
    version("livekit-agents"),
    "livekit",
    version("livekit"),
)
