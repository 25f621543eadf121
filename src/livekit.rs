//! `NativeRoom` and `NativeLocalTrack`: `capstan_livekit`'s session as JavaScript sees it.
//! Calls that wait on the network return promises run on napi-rs's tokio runtime; they
//! resolve with the value or a `{ code, message }` failure (napi-rs can only reject async
//! work with its own statuses, and the codes are the contract). Room events cross on one
//! weak threadsafe function, one call per event (connection changes and subscriptions,
//! never audio). Audio never crosses: a published source's engine thread encodes and
//! queues packets for the session itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use capstan_core::sink::Discard;
use capstan_core::{Consumer, Source};
use capstan_livekit::remote::{ReadRemote, RemoteAudioTrack};
use capstan_livekit::{ByteStreamOptions, ByteStreamWriter, ReadStream, RpcError, StreamBuffer};
use capstan_livekit::{Error as LkError, LiveKitSink, LocalAudioTrack, OpusOptions, Room, RoomEvent, RoomOptions};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use parking_lot::Mutex;

use crate::source::NativeSource;

/// What `LiveKitRoom.connect` passes down; checked in the crate (ranges) and here (types).
#[napi(object)]
pub struct JsRoomOptions {
  pub auto_subscribe: Option<bool>,
  pub connect_timeout_ms: Option<f64>,
  pub request_timeout_ms: Option<f64>,
  pub queue_packets: Option<f64>,
  pub jitter_ms: Option<f64>,
  pub remote_buffer_frames: Option<f64>,
  pub resume_timeout_ms: Option<f64>,
}

#[napi(object)]
pub struct JsPublishOptions {
  pub name: Option<String>,
  pub bitrate: Option<f64>,
  pub complexity: Option<f64>,
}

/// A failed network call: the crate's stable code and its message; for `ERR_RPC`, LiveKit's
/// RPC error code (1500 application error, 1501 no ack, 1502 response timeout, …) and data.
#[napi(object)]
pub struct JsFailure {
  pub code: String,
  pub message: String,
  pub rpc_code: Option<u32>,
  pub rpc_data: Option<String>,
}

#[napi(object)]
pub struct JsJoinInfo {
  pub room: String,
  pub participant_sid: String,
  pub identity: String,
  pub server_version: String,
  pub subscriber_primary: bool,
  pub ping_interval_ms: f64,
  pub ping_timeout_ms: f64,
}

/// One room event. `kind`: `local-track-subscribed` and `local-track-unpublished` (this
/// room's tracks), `subscriber-connected`, `participant-joined` / `participant-left`,
/// `track-published` / `track-unpublished` (remote tracks in the room), `track-subscribed`
/// (take the track with `takeRemoteTrack(trackSid)`), `track-ended`, `reconnecting`,
/// `resumed`, `reconnected` (a full reconnect is done), `local-track-republished` (a track's
/// new sid after one: `id` the old, `trackSid` the new), and `disconnected`.
#[napi(object)]
pub struct JsRoomEvent {
  pub kind: String,
  pub track_sid: Option<String>,
  pub participant_sid: Option<String>,
  pub identity: Option<String>,
  pub name: Option<String>,
  pub reason: Option<String>,
  /// `data`: the payload; `rpc-request`: the request id (`id`), method (`name`), payload
  /// (`text`) and response timeout; `byte-stream`: its id, topic (`name`), attributes.
  pub payload: Option<Uint8Array>,
  pub id: Option<String>,
  pub text: Option<String>,
  pub timeout_ms: Option<f64>,
  pub attributes: Option<HashMap<String, String>>,
}

fn event(kind: &str) -> JsRoomEvent {
  JsRoomEvent {
    kind: kind.into(),
    track_sid: None,
    participant_sid: None,
    identity: None,
    name: None,
    reason: None,
    payload: None,
    id: None,
    text: None,
    timeout_ms: None,
    attributes: None,
  }
}

impl From<RoomEvent> for JsRoomEvent {
  fn from(e: RoomEvent) -> Self {
    match e {
      RoomEvent::TrackSubscribed { track_sid } => JsRoomEvent {
        track_sid: Some(track_sid),
        ..event("local-track-subscribed")
      },
      RoomEvent::TrackUnpublished { track_sid } => JsRoomEvent {
        track_sid: Some(track_sid),
        ..event("local-track-unpublished")
      },
      RoomEvent::SubscriberConnected => event("subscriber-connected"),
      RoomEvent::ParticipantJoined { sid, identity, name } => JsRoomEvent {
        participant_sid: Some(sid),
        identity: Some(identity),
        name: Some(name),
        ..event("participant-joined")
      },
      RoomEvent::ParticipantLeft { sid, identity, reason } => JsRoomEvent {
        participant_sid: Some(sid),
        identity: Some(identity),
        reason: Some(reason),
        ..event("participant-left")
      },
      RoomEvent::RemoteTrackPublished {
        participant_sid,
        track_sid,
        name,
      } => JsRoomEvent {
        participant_sid: Some(participant_sid),
        track_sid: Some(track_sid),
        name: Some(name),
        ..event("track-published")
      },
      RoomEvent::RemoteTrackUnpublished {
        participant_sid,
        track_sid,
      } => JsRoomEvent {
        participant_sid: Some(participant_sid),
        track_sid: Some(track_sid),
        ..event("track-unpublished")
      },
      RoomEvent::RemoteTrackSubscribed(t) => JsRoomEvent {
        participant_sid: Some(t.participant_sid),
        identity: Some(t.participant_identity),
        track_sid: Some(t.sid),
        name: Some(t.name),
        ..event("track-subscribed")
      },
      RoomEvent::RemoteTrackEnded { track_sid, reason } => JsRoomEvent {
        track_sid: Some(track_sid),
        reason: Some(reason),
        ..event("track-ended")
      },
      RoomEvent::Reconnecting { reason } => JsRoomEvent {
        reason: Some(reason),
        ..event("reconnecting")
      },
      RoomEvent::Resumed => event("resumed"),
      RoomEvent::Reconnected { participant_sid } => JsRoomEvent {
        participant_sid: Some(participant_sid),
        ..event("reconnected")
      },
      RoomEvent::LocalTrackRepublished { old_sid, sid } => JsRoomEvent {
        id: Some(old_sid),
        track_sid: Some(sid),
        ..event("local-track-republished")
      },
      RoomEvent::Data {
        from_identity,
        topic,
        payload,
      } => JsRoomEvent {
        identity: Some(from_identity),
        name: Some(topic),
        payload: Some(Uint8Array::new(payload)),
        ..event("data")
      },
      RoomEvent::RpcRequest {
        id,
        caller_identity,
        method,
        payload,
        response_timeout,
      } => JsRoomEvent {
        id: Some(id),
        identity: Some(caller_identity),
        name: Some(method),
        text: Some(payload),
        timeout_ms: Some(response_timeout.as_millis() as f64),
        ..event("rpc-request")
      },
      RoomEvent::ByteStream(b) => JsRoomEvent {
        id: Some(b.id),
        identity: Some(b.from_identity),
        name: Some(b.topic),
        text: Some(b.name),
        attributes: Some(b.attributes),
        ..event("byte-stream")
      },
      RoomEvent::Disconnected { reason } => JsRoomEvent {
        reason: Some(reason),
        ..event("disconnected")
      },
    }
  }
}

/// A published track's send path. Bytes: `encodedBytes = sentBytes + queuedBytes +
/// droppedBytes`; dropped packets are `droppedFull` (the queue to the session was full) or
/// `droppedUnsent` (the session could not send: not live yet, unpublished, ended).
#[napi(object)]
pub struct JsTrackMetrics {
  pub encoded_bytes: f64,
  pub sent_bytes: f64,
  pub queued_bytes: f64,
  pub dropped_bytes: f64,
  pub encoded_packets: f64,
  pub sent_packets: f64,
  pub queued_packets: f64,
  pub dropped_full: f64,
  pub dropped_unsent: f64,
}

#[napi(object)]
pub struct JsSignalStats {
  pub pings: f64,
  pub pongs: f64,
  pub rtt_ms: f64,
  pub bad_candidates: f64,
  pub resumes: f64,
  pub held_requests: f64,
}

type EventFn = ThreadsafeFunction<JsRoomEvent, Unknown<'static>, JsRoomEvent, Status, false, true>;

fn failure(e: LkError) -> JsFailure {
  JsFailure {
    code: e.code().into(),
    message: e.to_string(),
    rpc_code: e.rpc().map(|r| r.code),
    rpc_data: e.rpc().map(|r| r.data.clone()),
  }
}

fn panicked(what: &str) -> JsFailure {
  JsFailure {
    code: "ERR_NATIVE_PANIC".into(),
    message: format!("native panic in {what}"),
    rpc_code: None,
    rpc_data: None,
  }
}

fn invalid(message: String) -> napi::Error<crate::convert::Code> {
  crate::convert::js_err(capstan_core::CoreError::InvalidOption(message))
}

/// A whole number of milliseconds in `1..=max`, or the default.
fn millis(name: &str, v: Option<f64>, default: Duration, max: u64) -> crate::convert::Result<Duration> {
  match v {
    None => Ok(default),
    Some(ms) if ms.fract() == 0.0 && ms >= 1.0 && ms <= max as f64 => Ok(Duration::from_millis(ms as u64)),
    Some(ms) => Err(invalid(format!(
      "{name} must be a whole number of ms in 1..={max}, got {ms}"
    ))),
  }
}

/// Runs `work` on the runtime as its own task, so a panic in it is a failure, not an abort.
async fn guarded<T: Send + 'static>(
  what: &'static str,
  work: impl std::future::Future<Output = std::result::Result<T, JsFailure>> + Send + 'static,
) -> Either<T, JsFailure> {
  match napi::tokio::spawn(work).await {
    Ok(Ok(v)) => Either::A(v),
    Ok(Err(f)) => Either::B(f),
    Err(_) => Either::B(panicked(what)),
  }
}

/// Joins a room. `onEvent` receives every room event on the JS thread; the returned
/// promise resolves with the room or a failure, within `connectTimeoutMs`.
#[napi(catch_unwind, ts_return_type = "Promise<NativeRoom | JsFailure>")]
pub fn livekit_connect<'env>(
  env: &'env Env,
  url: String,
  token: String,
  options: Option<JsRoomOptions>,
  on_event: Function<'_, JsRoomEvent, Unknown<'static>>,
) -> crate::convert::Result<PromiseRaw<'env, Either<NativeRoom, JsFailure>>> {
  let mut opts = RoomOptions::default();
  if let Some(o) = options {
    opts.auto_subscribe = o.auto_subscribe.unwrap_or(false);
    opts.connect_timeout = millis("connectTimeoutMs", o.connect_timeout_ms, opts.connect_timeout, 600_000)?;
    opts.request_timeout = millis("requestTimeoutMs", o.request_timeout_ms, opts.request_timeout, 600_000)?;
    if let Some(q) = o.queue_packets {
      if q.fract() != 0.0 || !(1.0..=MAX_QUEUE_PACKETS).contains(&q) {
        return Err(invalid(format!(
          "queuePackets must be a whole number in 1..=10000, got {q}"
        )));
      }
      opts.queue_packets = q as usize;
    }
    // Ranges are the crate's (checked in `Room::connect`); here only whole numbers.
    if let Some(ms) = o.jitter_ms {
      if ms.fract() != 0.0 || ms < 0.0 {
        return Err(invalid(format!("jitterMs must be a whole number of ms, got {ms}")));
      }
      opts.jitter_delay = Duration::from_millis(ms as u64);
    }
    if let Some(ms) = o.resume_timeout_ms {
      if ms.fract() != 0.0 || ms < 0.0 {
        return Err(invalid(format!(
          "resumeTimeoutMs must be a whole number of ms, got {ms}"
        )));
      }
      opts.resume_timeout = Duration::from_millis(ms as u64);
    }
    if let Some(n) = o.remote_buffer_frames {
      if n.fract() != 0.0 || n < 0.0 {
        return Err(invalid(format!("remoteBufferFrames must be a whole number, got {n}")));
      }
      opts.remote_buffer_chunks = n as usize;
    }
  }
  let events: EventFn = on_event
    .build_threadsafe_function()
    .weak::<true>()
    .callee_handled::<false>()
    .build()
    .map_err(|e| invalid(e.reason))?;
  let events = Arc::new(Mutex::new(Some(events)));
  // Filled once joined: a Node environment that goes away (a worker exiting) takes its
  // sessions with it instead of leaving them running for nobody.
  let slot: Arc<Mutex<Option<Arc<Room>>>> = Arc::new(Mutex::new(None));
  env
    .add_env_cleanup_hook(slot.clone(), |slot| {
      if let Some(room) = slot.lock().take() {
        room.abort();
      }
    })
    .map_err(|e| invalid(e.reason))?;
  let fut = guarded("connect", async move {
    let (room, mut rx) = Room::connect(&url, &token, opts).await.map_err(failure)?;
    let room = Arc::new(room);
    *slot.lock() = Some(room.clone());
    let forward = events.clone();
    let remotes: Remotes = Arc::new(Mutex::new(HashMap::new()));
    let held = remotes.clone();
    let streams: Streams = Arc::new(Mutex::new(HashMap::new()));
    let held_streams = streams.clone();
    napi::tokio::spawn(async move {
      while let Some(e) = rx.recv().await {
        let last = matches!(e, RoomEvent::Disconnected { .. });
        if let RoomEvent::RemoteTrackSubscribed(t) = &e {
          // Held until JavaScript takes it: its audio waits in its own bounded buffer.
          held.lock().insert(t.sid.clone(), t.clone());
        }
        if let RoomEvent::ByteStream(b) = &e {
          // Likewise: its bytes wait in the stream's own bounded buffer.
          held_streams.lock().insert(b.id.clone(), b.data.clone());
        }
        if let Some(f) = forward.lock().as_ref() {
          f.call(e.into(), ThreadsafeFunctionCallMode::NonBlocking);
        }
        if last {
          break;
        }
      }
      // Released: queued calls still arrive, then nothing holds the loop.
      forward.lock().take();
    });
    let info = room.join_info().clone();
    Ok(NativeRoom {
      room,
      events,
      remotes,
      streams,
      info: JsJoinInfo {
        room: info.room,
        participant_sid: info.participant_sid,
        identity: info.identity,
        server_version: info.server_version,
        subscriber_primary: info.subscriber_primary,
        ping_interval_ms: info.ping_interval.as_millis() as f64,
        ping_timeout_ms: info.ping_timeout.as_millis() as f64,
      },
    })
  });
  env
    .spawn_future(async move { Ok(fut.await) })
    .map_err(|e| invalid(e.reason))
}

#[napi]
pub struct NativeRoom {
  room: Arc<Room>,
  events: Arc<Mutex<Option<EventFn>>>,
  remotes: Remotes,
  streams: Streams,
  info: JsJoinInfo,
}

/// Subscribed remote tracks announced to JavaScript and not yet taken.
type Remotes = Arc<Mutex<HashMap<String, RemoteAudioTrack>>>;
/// Incoming byte streams announced to JavaScript and not yet taken. JavaScript takes each
/// one at its event (dropping those nobody listens for: the crate counts them abandoned).
type Streams = Arc<Mutex<HashMap<String, Arc<StreamBuffer>>>>;

#[napi]
impl NativeRoom {
  #[napi(getter, catch_unwind)]
  pub fn join(&self) -> JsJoinInfo {
    clone_info(&self.info)
  }

  #[napi(getter, catch_unwind)]
  pub fn closed(&self) -> bool {
    self.room.is_closed()
  }

  #[napi(catch_unwind)]
  pub fn signal_stats(&self) -> JsSignalStats {
    let s = self.room.signal_stats();
    JsSignalStats {
      pings: s.pings as f64,
      pongs: s.pongs as f64,
      rtt_ms: s.rtt_ms as f64,
      bad_candidates: s.bad_candidates as f64,
      resumes: s.resumes as f64,
      held_requests: s.held_requests as f64,
    }
  }

  /// The remote track a `track-subscribed` event announced (once; null if taken or gone).
  #[napi(catch_unwind)]
  pub fn take_remote_track(&self, track_sid: String) -> Option<NativeRemoteTrack> {
    self.remotes.lock().remove(&track_sid).map(|track| NativeRemoteTrack {
      track,
      wake: Mutex::new(None),
    })
  }

  /// The incoming byte stream a `byte-stream` event announced (once; null if taken).
  #[napi(catch_unwind)]
  pub fn take_byte_stream(&self, id: String) -> Option<NativeIncomingStream> {
    self.streams.lock().remove(&id).map(|data| NativeIncomingStream {
      data,
      wake: Mutex::new(None),
    })
  }

  /// A user packet to `destinations` (everyone when empty), reliable or lossy.
  #[napi(catch_unwind, ts_return_type = "Promise<boolean | JsFailure>")]
  pub fn publish_data<'env>(
    &self,
    env: &'env Env,
    payload: Uint8Array,
    topic: Option<String>,
    destinations: Vec<String>,
    reliable: bool,
  ) -> crate::convert::Result<PromiseRaw<'env, Either<bool, JsFailure>>> {
    let room = self.room.clone();
    let bytes = payload.to_vec();
    let fut = guarded("publishData", async move {
      room
        .publish_data(&bytes, topic.as_deref(), &destinations, reliable)
        .await
        .map(|_| true)
        .map_err(failure)
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }

  /// Calls `method` on `destination` (LiveKit RPC); resolves its response or a failure
  /// (`ERR_RPC` with the RPC code).
  #[napi(catch_unwind, ts_return_type = "Promise<string | JsFailure>")]
  pub fn perform_rpc<'env>(
    &self,
    env: &'env Env,
    destination: String,
    method: String,
    payload: String,
    timeout_ms: f64,
  ) -> crate::convert::Result<PromiseRaw<'env, Either<String, JsFailure>>> {
    let t = millis("timeoutMs", Some(timeout_ms), Duration::ZERO, 600_000)?;
    let room = self.room.clone();
    let fut = guarded("performRpc", async move {
      room
        .perform_rpc(&destination, &method, &payload, t)
        .await
        .map_err(failure)
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }

  /// Requests for `method` come as `rpc-request` events; others are refused by the session.
  #[napi(catch_unwind)]
  pub fn register_rpc_method(&self, method: String) -> bool {
    self.room.register_rpc_method(&method)
  }

  #[napi(catch_unwind)]
  pub fn unregister_rpc_method(&self, method: String) -> bool {
    self.room.unregister_rpc_method(&method)
  }

  /// Answers a request: its payload, or an error (`errorCode`, 1500 for the application's).
  #[napi(catch_unwind, ts_return_type = "Promise<boolean | JsFailure>")]
  pub fn respond_rpc<'env>(
    &self,
    env: &'env Env,
    id: String,
    caller: String,
    payload: Option<String>,
    error_code: Option<u32>,
    error_message: Option<String>,
  ) -> crate::convert::Result<PromiseRaw<'env, Either<bool, JsFailure>>> {
    let result = match (payload, error_code) {
      (Some(p), None) => Ok(p),
      (_, Some(code)) => Err(RpcError::new(code, error_message.as_deref().unwrap_or(""), "")),
      (None, None) => Ok(String::new()),
    };
    let room = self.room.clone();
    let fut = guarded("respondRpc", async move {
      room
        .respond_rpc(&id, &caller, result)
        .await
        .map(|_| true)
        .map_err(failure)
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }

  /// Opens a byte stream (LiveKit data streams) to `destinations` on `topic`.
  #[napi(catch_unwind, ts_return_type = "Promise<NativeByteStreamWriter | JsFailure>")]
  pub fn open_byte_stream<'env>(
    &self,
    env: &'env Env,
    destinations: Vec<String>,
    topic: String,
    name: String,
    attributes: HashMap<String, String>,
  ) -> crate::convert::Result<PromiseRaw<'env, Either<NativeByteStreamWriter, JsFailure>>> {
    let room = self.room.clone();
    let fut = guarded("openByteStream", async move {
      let o = ByteStreamOptions {
        destination_identities: destinations,
        topic,
        name,
        attributes,
        ..Default::default()
      };
      let w = room.open_byte_stream(o).await.map_err(failure)?;
      Ok(NativeByteStreamWriter {
        inner: Arc::new(napi::tokio::sync::Mutex::new(Some(w))),
      })
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }

  #[napi(catch_unwind)]
  pub fn data_stats(&self) -> HashMap<String, f64> {
    let d = self.room.data_stats();
    let mut m = HashMap::new();
    for (k, v) in [
      ("packetsSent", d.packets_sent),
      ("bytesSent", d.bytes_sent),
      ("sendFailed", d.send_failed),
      ("queuedPackets", d.queued_packets),
      ("queuedBytes", d.queued_bytes),
      ("unsentAtClose", d.unsent_at_close),
      ("packetsReceived", d.packets_received),
      ("bytesReceived", d.bytes_received),
      ("undecodable", d.undecodable),
      ("unhandled", d.unhandled),
      ("userPackets", d.user_packets),
      ("rpcCalls", d.rpc_calls),
      ("rpcCallsOk", d.rpc_calls_ok),
      ("rpcCallsFailed", d.rpc_calls_failed),
      ("rpcRequests", d.rpc_requests),
      ("rpcAutoErrors", d.rpc_auto_errors),
      ("rpcResponses", d.rpc_responses),
      ("rpcStray", d.rpc_stray),
      ("streamsOpened", d.streams_opened),
      ("streamsReceived", d.streams_received),
      ("streamsEnded", d.streams_ended),
      ("streamsFailed", d.streams_failed),
      ("streamsRefused", d.streams_refused),
      ("streamsAbandoned", d.streams_abandoned),
      ("streamStray", d.stream_stray),
    ] {
      m.insert(k.to_string(), v as f64);
    }
    m
  }

  /// The other participants and their audio tracks, as the server last described them.
  #[napi(catch_unwind)]
  pub fn participants(&self) -> Vec<JsParticipant> {
    self
      .room
      .participants()
      .into_iter()
      .map(|p| JsParticipant {
        sid: p.sid,
        identity: p.identity,
        name: p.name,
        audio_tracks: p
          .audio_tracks
          .into_iter()
          .map(|t| JsTrackInfo {
            sid: t.sid,
            name: t.name,
            stereo: t.stereo,
            muted: t.muted,
          })
          .collect(),
      })
      .collect()
  }

  /// Subscribes to (or leaves) a remote track (UpdateSubscription), within the request timeout.
  #[napi(catch_unwind, ts_return_type = "Promise<boolean | JsFailure>")]
  pub fn set_subscribed<'env>(
    &self,
    env: &'env Env,
    track_sid: String,
    subscribed: bool,
  ) -> crate::convert::Result<PromiseRaw<'env, Either<bool, JsFailure>>> {
    let room = self.room.clone();
    let fut = guarded("setSubscribed", async move {
      room
        .set_subscribed(&track_sid, subscribed)
        .await
        .map(|_| true)
        .map_err(failure)
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }

  /// While the room is connected its events hold the event loop open, like a socket.
  #[napi]
  #[allow(deprecated)]
  pub fn keep_alive(&self, env: Env, on: bool) -> Result<()> {
    if let Some(f) = self.events.lock().as_mut() {
      if on {
        f.refer(&env)?;
      } else {
        f.unref(&env)?;
      }
    }
    Ok(())
  }

  /// Publishes `source` as an Opus track and makes the track its sink: from the clock's
  /// next pass on, its engine thread encodes and queues the packets. A realtime source
  /// only (the engine clock paces the wire); its output rate must be one Opus takes.
  #[napi(catch_unwind, ts_return_type = "Promise<NativeLocalTrack | JsFailure>")]
  pub fn publish<'env>(
    &self,
    env: &'env Env,
    source: &NativeSource,
    options: Option<JsPublishOptions>,
  ) -> crate::convert::Result<PromiseRaw<'env, Either<NativeLocalTrack, JsFailure>>> {
    let src = source.inner.clone();
    if src.options().consumer != Consumer::Realtime {
      return Err(invalid(
        "a published source must be consumer 'realtime' (the engine clock paces the wire)".into(),
      ));
    }
    if src.is_closed() {
      return Err(napi::Error::new(
        crate::convert::Code::named("ERR_INVALID_STATE"),
        "the source is closed",
      ));
    }
    let o = options.unwrap_or(JsPublishOptions {
      name: None,
      bitrate: None,
      complexity: None,
    });
    let mut opus = OpusOptions::new(src.output_format()).map_err(|e| invalid(e.to_string()))?;
    if let Some(b) = o.bitrate {
      if b.fract() != 0.0 || !(MIN_BITRATE..=MAX_BITRATE).contains(&b) {
        return Err(invalid(format!(
          "bitrate must be a whole number of bps in 6000..=510000, got {b}"
        )));
      }
      opus.bitrate_bps = b as u32;
    }
    if let Some(c) = o.complexity {
      if c.fract() != 0.0 || !(0.0..=10.0).contains(&c) {
        return Err(invalid(format!("complexity must be a whole number in 0..=10, got {c}")));
      }
      opus.complexity = c as u8;
    }
    let name = o.name.unwrap_or_else(|| "audio".into());
    let room = self.room.clone();
    let fut = guarded("publish", async move {
      let track = room.publish_audio(&name, opus).await.map_err(failure)?;
      let sink = match LiveKitSink::new(&track) {
        Ok(s) => s,
        Err(e) => {
          let _ = room.unpublish(&track).await;
          return Err(failure(e));
        }
      };
      let sink_closed = sink.closed_flag();
      if let Err(e) = src.set_sink(Box::new(sink)) {
        let _ = room.unpublish(&track).await;
        return Err(JsFailure {
          code: e.code().into(),
          message: e.message().to_string(),
          rpc_code: None,
          rpc_data: None,
        });
      }
      Ok(NativeLocalTrack {
        room,
        track,
        source: src,
        sink_closed,
      })
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }

  /// Leaves and ends the session; resolves `true`, or a failure if the goodbye itself
  /// could not be said within the request timeout (the session is ended either way).
  #[napi(catch_unwind, ts_return_type = "Promise<boolean | JsFailure>")]
  pub fn close<'env>(&self, env: &'env Env) -> crate::convert::Result<PromiseRaw<'env, Either<bool, JsFailure>>> {
    let room = self.room.clone();
    let fut = guarded(
      "close",
      async move { room.close().await.map(|_| true).map_err(failure) },
    );
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }
}

fn clone_info(i: &JsJoinInfo) -> JsJoinInfo {
  JsJoinInfo {
    room: i.room.clone(),
    participant_sid: i.participant_sid.clone(),
    identity: i.identity.clone(),
    server_version: i.server_version.clone(),
    subscriber_primary: i.subscriber_primary,
    ping_interval_ms: i.ping_interval_ms,
    ping_timeout_ms: i.ping_timeout_ms,
  }
}

#[napi]
pub struct NativeLocalTrack {
  room: Arc<Room>,
  track: LocalAudioTrack,
  source: Arc<Source>,
  sink_closed: Arc<AtomicBool>,
}

/// How long a graceful unpublish waits for the sink's last packet to be queued and sent:
/// the clock swaps sinks within a tick, the session sends within a turn.
const DRAIN_BOUND: Duration = Duration::from_millis(500);

#[napi]
impl NativeLocalTrack {
  #[napi(getter, catch_unwind)]
  pub fn sid(&self) -> String {
    self.track.sid.clone()
  }

  #[napi(getter, catch_unwind)]
  pub fn name(&self) -> String {
    self.track.name.clone()
  }

  #[napi(getter, catch_unwind)]
  pub fn sample_rate(&self) -> u32 {
    self.track.opus.format.sample_rate
  }

  #[napi(getter, catch_unwind)]
  pub fn channels(&self) -> u32 {
    self.track.opus.format.channels as u32
  }

  #[napi(catch_unwind)]
  pub fn metrics(&self) -> JsTrackMetrics {
    let c = self.track.stats();
    JsTrackMetrics {
      encoded_bytes: c.encoded_bytes as f64,
      sent_bytes: c.sent_bytes as f64,
      queued_bytes: c.queued_bytes as f64,
      dropped_bytes: c.dropped_bytes as f64,
      encoded_packets: c.encoded_packets as f64,
      sent_packets: c.sent_packets as f64,
      queued_packets: c.queued_packets as f64,
      dropped_full: c.dropped_full as f64,
      dropped_unsent: c.dropped_unsent as f64,
    }
  }

  /// Ends the track: the source's output goes nowhere from the clock's next pass (nothing
  /// more is encoded); once the old sink's last packet is out (bounded), the m-line goes
  /// inactive in a new offer.
  #[napi(catch_unwind, ts_return_type = "Promise<boolean | JsFailure>")]
  pub fn unpublish<'env>(&self, env: &'env Env) -> crate::convert::Result<PromiseRaw<'env, Either<bool, JsFailure>>> {
    let _ = self
      .source
      .set_sink(Box::new(Discard::new(self.source.output_format())));
    let room = self.room.clone();
    let track = self.track.clone();
    let closed = self.sink_closed.clone();
    let fut = guarded("unpublish", async move {
      let until = napi::tokio::time::Instant::now() + DRAIN_BOUND;
      while (!closed.load(Ordering::Acquire) || track.stats().queued_bytes > 0)
        && napi::tokio::time::Instant::now() < until
        && !room.is_closed()
      {
        napi::tokio::time::sleep(Duration::from_millis(5)).await;
      }
      room.unpublish(&track).await.map(|_| true).map_err(failure)
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }
}

/// The LiveKit client's defaults and bounds, from the crate (TypeScript restates none).
#[napi(object)]
pub struct JsLiveKitContract {
  pub connect_timeout_ms: f64,
  pub request_timeout_ms: f64,
  pub queue_packets: f64,
  pub max_queue_packets: f64,
  pub bitrate_per_channel: f64,
  pub min_bitrate: f64,
  pub max_bitrate: f64,
  pub complexity: f64,
  pub opus_sample_rates: Vec<u32>,
  pub frame_ms: u32,
  pub jitter_ms: f64,
  pub min_jitter_ms: f64,
  pub max_jitter_ms: f64,
  pub remote_buffer_frames: f64,
  pub max_remote_buffer_frames: f64,
  pub resume_timeout_ms: f64,
  pub max_resume_timeout_ms: f64,
  pub error_codes: Vec<String>,
}

#[napi(catch_unwind)]
pub fn livekit_contract() -> JsLiveKitContract {
  use capstan_livekit::room::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
  use capstan_livekit::track::{
    DEFAULT_BITRATE_PER_CHANNEL, DEFAULT_COMPLEXITY, DEFAULT_QUEUE_PACKETS, FRAME_MS, OPUS_INPUT_RATES,
  };
  JsLiveKitContract {
    connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT.as_millis() as f64,
    request_timeout_ms: DEFAULT_REQUEST_TIMEOUT.as_millis() as f64,
    queue_packets: DEFAULT_QUEUE_PACKETS as f64,
    max_queue_packets: MAX_QUEUE_PACKETS,
    bitrate_per_channel: DEFAULT_BITRATE_PER_CHANNEL as f64,
    min_bitrate: MIN_BITRATE,
    max_bitrate: MAX_BITRATE,
    complexity: DEFAULT_COMPLEXITY as f64,
    opus_sample_rates: OPUS_INPUT_RATES.to_vec(),
    frame_ms: FRAME_MS,
    jitter_ms: capstan_livekit::jitter::DEFAULT_DELAY.as_millis() as f64,
    min_jitter_ms: capstan_livekit::jitter::MIN_DELAY.as_millis() as f64,
    max_jitter_ms: capstan_livekit::jitter::MAX_DELAY.as_millis() as f64,
    remote_buffer_frames: capstan_livekit::remote::DEFAULT_BUFFER_CHUNKS as f64,
    max_remote_buffer_frames: capstan_livekit::remote::MAX_BUFFER_CHUNKS as f64,
    resume_timeout_ms: capstan_livekit::room::DEFAULT_RESUME_TIMEOUT.as_millis() as f64,
    max_resume_timeout_ms: capstan_livekit::room::MAX_RESUME_TIMEOUT.as_millis() as f64,
    error_codes: LkError::CODES.iter().map(|c| c.to_string()).collect(),
  }
}

const MAX_QUEUE_PACKETS: f64 = capstan_livekit::room::MAX_QUEUE_PACKETS as f64;
const MIN_BITRATE: f64 = capstan_livekit::track::MIN_BITRATE as f64;
const MAX_BITRATE: f64 = capstan_livekit::track::MAX_BITRATE as f64;

#[napi(object)]
pub struct JsTrackInfo {
  pub sid: String,
  pub name: String,
  pub stereo: bool,
  pub muted: bool,
}

#[napi(object)]
pub struct JsParticipant {
  pub sid: String,
  pub identity: String,
  pub name: String,
  pub audio_tracks: Vec<JsTrackInfo>,
}

/// A remote track's counters. Packets: `packetsReceived = played + duplicate + late +
/// overflow + discarded + buffered`; 10 ms frames: `decodedFrames + concealedFrames =
/// readFrames + queuedFrames + droppedFrames`.
#[napi(object)]
pub struct JsRemoteMetrics {
  pub packets_received: f64,
  pub bytes_received: f64,
  pub played: f64,
  pub duplicate: f64,
  pub late: f64,
  pub overflow: f64,
  pub discarded: f64,
  pub buffered: f64,
  pub lost: f64,
  pub fec_recovered: f64,
  pub decode_errors: f64,
  pub silence_gaps: f64,
  pub resyncs: f64,
  pub decoded_frames: f64,
  pub concealed_frames: f64,
  pub dropped_frames: f64,
  pub read_frames: f64,
  pub queued_frames: f64,
}

/// `state`: `frames` (with `samples`, interleaved, `frames` whole 10 ms chunks), `empty` (the
/// wake-up comes when there is more) or `ended` (with `reason`).
#[napi(object)]
pub struct JsRemoteRead {
  pub state: String,
  pub samples: Option<Int16Array>,
  pub frames: Option<u32>,
  pub reason: Option<String>,
}

type WakeFn = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

/// A subscribed remote audio track: decoded 10 ms frames (48 kHz) in a bounded buffer the
/// session fills on its own; JavaScript reads batches and is woken once per batch.
#[napi]
pub struct NativeRemoteTrack {
  track: RemoteAudioTrack,
  wake: Mutex<Option<Arc<Mutex<WakeFn>>>>,
}

#[napi]
impl NativeRemoteTrack {
  #[napi(getter, catch_unwind)]
  pub fn sid(&self) -> String {
    self.track.sid.clone()
  }

  #[napi(getter, catch_unwind)]
  pub fn name(&self) -> String {
    self.track.name.clone()
  }

  #[napi(getter, catch_unwind)]
  pub fn participant_sid(&self) -> String {
    self.track.participant_sid.clone()
  }

  #[napi(getter, catch_unwind)]
  pub fn participant_identity(&self) -> String {
    self.track.participant_identity.clone()
  }

  #[napi(getter, catch_unwind)]
  pub fn sample_rate(&self) -> u32 {
    self.track.format.sample_rate
  }

  #[napi(getter, catch_unwind)]
  pub fn channels(&self) -> u32 {
    self.track.format.channels as u32
  }

  /// Up to `maxFrames` whole 10 ms frames, never waiting.
  #[napi(catch_unwind)]
  pub fn read(&self, max_frames: u32) -> JsRemoteRead {
    match self.track.audio.read(max_frames.max(1) as usize) {
      ReadRemote::Chunks(samples, n) => JsRemoteRead {
        state: "frames".into(),
        samples: Some(Int16Array::new(samples)),
        frames: Some(n as u32),
        reason: None,
      },
      ReadRemote::Empty => JsRemoteRead {
        state: "empty".into(),
        samples: None,
        frames: None,
        reason: None,
      },
      ReadRemote::Ended => JsRemoteRead {
        state: "ended".into(),
        samples: None,
        frames: None,
        reason: self.track.audio.ended(),
      },
    }
  }

  /// `onWake` runs on the JS thread when a read that found nothing has something to find
  /// (coalesced by the buffer: one call per batch). Weak: it never holds the process.
  #[napi(catch_unwind)]
  pub fn set_wake(&self, on_wake: Function<'_, (), Unknown<'static>>) -> crate::convert::Result<()> {
    let f: WakeFn = on_wake
      .build_threadsafe_function()
      .weak::<true>()
      .callee_handled::<false>()
      .build()
      .map_err(|e| invalid(e.reason))?;
    let f = Arc::new(Mutex::new(f));
    let call = f.clone();
    self.track.audio.set_notify(Some(Arc::new(move || {
      call.lock().call((), ThreadsafeFunctionCallMode::NonBlocking);
    })));
    *self.wake.lock() = Some(f);
    Ok(())
  }

  /// A reader waiting for audio holds the event loop open, like any pending read.
  #[napi]
  #[allow(deprecated)]
  pub fn keep_alive(&self, env: Env, on: bool) -> Result<()> {
    if let Some(f) = self.wake.lock().as_ref() {
      let mut f = f.lock();
      if on {
        f.refer(&env)?;
      } else {
        f.unref(&env)?;
      }
    }
    Ok(())
  }

  /// Stops waking JavaScript (the reader is done); the buffer still counts what arrives.
  #[napi(catch_unwind)]
  pub fn release(&self) {
    self.track.audio.set_notify(None);
    self.wake.lock().take();
  }

  #[napi(catch_unwind)]
  pub fn metrics(&self) -> JsRemoteMetrics {
    let s = self.track.audio.stats();
    JsRemoteMetrics {
      packets_received: s.packets_received as f64,
      bytes_received: s.bytes_received as f64,
      played: s.played as f64,
      duplicate: s.duplicate as f64,
      late: s.late as f64,
      overflow: s.overflow as f64,
      discarded: s.discarded as f64,
      buffered: s.buffered as f64,
      lost: s.lost as f64,
      fec_recovered: s.fec_recovered as f64,
      decode_errors: s.decode_errors as f64,
      silence_gaps: s.silence_gaps as f64,
      resyncs: s.resyncs as f64,
      decoded_frames: s.decoded_chunks as f64,
      concealed_frames: s.concealed_chunks as f64,
      dropped_frames: s.dropped_chunks as f64,
      read_frames: s.read_chunks as f64,
      queued_frames: s.queued_chunks as f64,
    }
  }
}

/// A byte stream this room sends: writes are cut into LiveKit's 15 000-byte chunks and wait
/// for room in the bounded send queue (the back-pressure).
#[napi]
pub struct NativeByteStreamWriter {
  inner: Arc<napi::tokio::sync::Mutex<Option<ByteStreamWriter>>>,
}

#[napi]
impl NativeByteStreamWriter {
  #[napi(catch_unwind, ts_return_type = "Promise<boolean | JsFailure>")]
  pub fn write<'env>(
    &self,
    env: &'env Env,
    bytes: Uint8Array,
  ) -> crate::convert::Result<PromiseRaw<'env, Either<bool, JsFailure>>> {
    let w = self.inner.clone();
    let bytes = bytes.to_vec();
    let fut = guarded("write", async move {
      match w.lock().await.as_mut() {
        Some(w) => w.write(&bytes).await.map(|_| true).map_err(failure),
        None => Err(failure(LkError::Closed)),
      }
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }

  /// Ends the stream (a trailer; a non-empty `reason` marks it aborted). Idempotent.
  #[napi(catch_unwind, ts_return_type = "Promise<boolean | JsFailure>")]
  pub fn close<'env>(
    &self,
    env: &'env Env,
    reason: Option<String>,
  ) -> crate::convert::Result<PromiseRaw<'env, Either<bool, JsFailure>>> {
    let w = self.inner.clone();
    let fut = guarded("close", async move {
      match w.lock().await.take() {
        Some(w) => w
          .close(reason.as_deref().unwrap_or(""))
          .await
          .map(|_| true)
          .map_err(failure),
        None => Ok(true),
      }
    });
    env
      .spawn_future(async move { Ok(fut.await) })
      .map_err(|e| invalid(e.reason))
  }
}

/// `state`: `bytes` (with `bytes`), `empty` (the wake-up comes when there is more), `ended`,
/// or `failed` (with `reason`).
#[napi(object)]
pub struct JsStreamRead {
  pub state: String,
  pub bytes: Option<Uint8Array>,
  pub reason: Option<String>,
}

/// An incoming byte stream: its chunks in a bounded buffer the session fills; JavaScript
/// reads what is there and is woken once when there is more.
#[napi]
pub struct NativeIncomingStream {
  data: Arc<StreamBuffer>,
  wake: Mutex<Option<Arc<Mutex<WakeFn>>>>,
}

#[napi]
impl NativeIncomingStream {
  #[napi(catch_unwind)]
  pub fn read(&self, max_bytes: u32) -> JsStreamRead {
    match self.data.read(max_bytes.max(1) as usize) {
      ReadStream::Bytes(b) => JsStreamRead {
        state: "bytes".into(),
        bytes: Some(Uint8Array::new(b)),
        reason: None,
      },
      ReadStream::Empty => JsStreamRead {
        state: "empty".into(),
        bytes: None,
        reason: None,
      },
      ReadStream::Ended => JsStreamRead {
        state: "ended".into(),
        bytes: None,
        reason: None,
      },
      ReadStream::Failed(r) => JsStreamRead {
        state: "failed".into(),
        bytes: None,
        reason: Some(r),
      },
    }
  }

  #[napi(catch_unwind)]
  pub fn set_wake(&self, on_wake: Function<'_, (), Unknown<'static>>) -> crate::convert::Result<()> {
    let f: WakeFn = on_wake
      .build_threadsafe_function()
      .weak::<true>()
      .callee_handled::<false>()
      .build()
      .map_err(|e| invalid(e.reason))?;
    let f = Arc::new(Mutex::new(f));
    let call = f.clone();
    *self.wake.lock() = Some(f);
    self.data.set_notify(Some(Arc::new(move || {
      call.lock().call((), ThreadsafeFunctionCallMode::NonBlocking);
    })));
    Ok(())
  }

  #[napi]
  #[allow(deprecated)]
  pub fn keep_alive(&self, env: Env, on: bool) -> Result<()> {
    if let Some(f) = self.wake.lock().as_ref() {
      let mut f = f.lock();
      if on {
        f.refer(&env)?;
      } else {
        f.unref(&env)?;
      }
    }
    Ok(())
  }

  #[napi(catch_unwind)]
  pub fn release(&self) {
    self.data.set_notify(None);
    self.wake.lock().take();
  }

  #[napi(catch_unwind)]
  pub fn stats(&self) -> HashMap<String, f64> {
    let s = self.data.stats();
    [
      ("bytesReceived", s.bytes_received),
      ("bytesRead", s.bytes_read),
      ("bytesQueued", s.bytes_queued),
      ("bytesDiscarded", s.bytes_discarded),
      ("chunks", s.chunks),
      ("outOfOrder", s.out_of_order),
      ("missing", s.missing),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v as f64))
    .collect()
  }
}
