//! A pure-Rust LiveKit client for capstan: publish and receive audio.
//!
//! - [`signal`]: the `/rtc` WebSocket, protobuf framing, the join.
//! - [`peer`]: the peer connections on str0m (sans-IO ICE, DTLS, SRTP, SDP): the publisher
//!   (ours, frame mode) and the subscriber (the server's, RTP mode).
//! - [`room`]: the session task that runs both; publish/unpublish; remote participants,
//!   subscriptions, and the 10 ms playout tick of the remote tracks.
//! - [`jitter`]: one remote track's jitter buffer, Opus decode with PLC/FEC, exact 10 ms
//!   chunks (packets: `received = played + duplicate + late + overflow + discarded + buffered`).
//! - [`remote`]: [`RemoteAudio`], the bounded drop-oldest chunk buffer a reader drains with a
//!   coalesced wake-up (chunks: `decoded + concealed = read + queued + dropped`), and the
//!   remote track and participant types.
//! - [`track`]: 10 ms chunks to 20 ms Opus packets with RTP time, and the bounded,
//!   non-blocking queue to the session (bytes: `encoded = sent + queued + dropped`).
//! - [`sink`]: [`LiveKitSink`], a `capstan_core::Sink`, so a capstan source publishes with
//!   nothing but engine threads and the session task on the per-packet path.
//! - [`data`]: user packets, RPC and byte streams on the data channels, bounded (send
//!   queue, RPCs in flight, open streams, each stream's [`StreamBuffer`]).
//! - [`token`]: HS256 access tokens from an API key and secret.
//!
//! Pacing: the sink sends each packet when its second chunk arrives; a realtime capstan
//! source's clock already paces chunks at 10 ms, so the wire is paced by the engine.

pub mod data;
pub mod error;
pub mod jitter;
pub mod peer;
pub mod remote;
pub mod room;
pub mod signal;
pub mod sink;
pub mod token;
pub mod track;

pub use data::{
  ByteStreamOptions, ByteStreamWriter, DataStats, IncomingByteStream, ReadStream, RpcError, StreamBuffer, StreamStats,
};
pub use error::{Error, Result};
pub use jitter::{JitterOptions, PacketCounters};
pub use remote::{ReadRemote, RemoteAudio, RemoteAudioTrack, RemoteParticipant, RemoteStats, RemoteTrackInfo};
pub use room::{JoinInfo, LocalAudioTrack, Room, RoomEvent, RoomOptions, SignalStats};
pub use sink::LiveKitSink;
pub use token::{access_token, Grants};
pub use track::{Counters, OpusOptions};
