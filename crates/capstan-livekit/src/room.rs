//! A session with a LiveKit server: the signal connection and the publisher peer connection,
//! run by one tokio task that owns both (and the UDP socket), so no lock is shared with
//! the network. Callers talk to it through a bounded command queue; every call has a
//! deadline; audio reaches it through the track's packet queue (see [`crate::track`]).
//!
//! A token that lets the participant subscribe makes the server lead with the subscriber
//! connection (`subscriber_primary` in the join); the session answers it (see
//! [`crate::peer`]) and, with `auto_subscribe` (or [`Room::set_subscribed`]), receives the
//! remote audio tracks the server offers on it.
//!
//! Receive: the session keeps the other participants (the join's `other_participants`,
//! then every `ParticipantUpdate`) and maps each audio m-line of the server's offers to a
//! track sid (the offer's `mid_to_track_id`, which livekit-server fills from its down
//! tracks, else the m-line's msid). A mapped m-line whose track a known participant
//! publishes becomes a [`RemoteAudioTrack`]; its RTP goes into that track's
//! [`JitterBuffer`], which the session drains into the track's [`RemoteAudio`].
//!
//! The playout clock is a 10 ms tokio interval in this session task, armed only while a
//! remote track exists: packets arrive in this task, so the jitter buffers need no lock and
//! no hand-off per packet, and each buffer computes the chunks due from its own wall-clock
//! anchor, so a tick that comes late catches up rather than drifts. (A dedicated thread
//! would give steadier ticks but put a queue or a lock on every packet; the reader's
//! buffer, 500 ms by default, absorbs the tick jitter.)

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use parking_lot::Mutex;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Res;
use str0m::media::{Mid, Pt};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::data::{
  Data, DataCommand, DataShared, IncomingByteStream, DEFAULT_DATA_QUEUE_BYTES, DEFAULT_STREAM_BUFFER_BYTES,
  MAX_DATA_BYTES_OPTION,
};
use crate::error::{Error, Result};
use crate::jitter::{JitterBuffer, JitterOptions, DEFAULT_DELAY};
use crate::peer::{audio_mlines, PeerOutput, Publisher, Subscriber};
use crate::remote::{
  check_capacity, RemoteAudio, RemoteAudioTrack, RemoteParticipant, RemoteTrackInfo, DEFAULT_BUFFER_CHUNKS,
};
use crate::signal;
use crate::track::{OpusOptions, OpusPacket, PacketSender, TrackStats, DEFAULT_QUEUE_PACKETS};

/// Join plus publisher connection (ICE, DTLS) unless the caller says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A publish or unpublish round trip (request, server response, offer, answer).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// One signal write; a server that stops reading fails the session past it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Ping interval and timeout when the server's JoinResponse gives none (livekit-server
/// sends 5 s and 15 s).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(15);
/// A lost signal connection is resumed within this unless the caller says otherwise.
pub const DEFAULT_RESUME_TIMEOUT: Duration = Duration::from_secs(15);
pub const MAX_RESUME_TIMEOUT: Duration = Duration::from_secs(300);
/// One resume attempt (TCP, upgrade, ReconnectResponse); attempts repeat with backoff.
const RESUME_ATTEMPT: Duration = Duration::from_secs(5);
/// Signal requests held while the connection is down; past it the session ends.
const MAX_HELD_REQUESTS: usize = 256;
/// The most Opus packets one track may queue for its session (200 s at 20 ms).
pub const MAX_QUEUE_PACKETS: usize = 10_000;
/// Events waiting for the caller; past it they are dropped and counted.
pub const EVENT_QUEUE: usize = 64;
const COMMAND_QUEUE: usize = 16;
/// Subscriber candidates kept from before the server's first offer.
const MAX_EARLY_CANDIDATES: usize = 16;
/// Opus packets taken from the queue in one turn of the session task.
const PACKET_BATCH: usize = 256;
/// How long the session waits, after the first packet of an engine tick, for the rest of
/// the tick's packets before it polls the connection. The clock threads encode every
/// track's frame one after another (about 60 µs each at complexity 10), and every poll
/// walks every track in str0m: a poll per packet made the session's cost grow with the
/// square of the tracks (100 tracks: ~2,100 wakeups a second for 5,000 packets).
const PACKET_LINGER: Duration = Duration::from_millis(1);
/// A UDP datagram larger than any the peer connection sends or takes.
const DATAGRAM_MAX: usize = 2048;

#[derive(Debug, Clone)]
pub struct RoomOptions {
  pub auto_subscribe: bool,
  pub connect_timeout: Duration,
  pub request_timeout: Duration,
  /// Opus packets each track may have queued for the session.
  pub queue_packets: usize,
  /// Remote tracks: from a packet's arrival to its playout (20..=1000 ms).
  pub jitter_delay: Duration,
  /// Remote tracks: decoded 10 ms chunks held for the reader (1..=6000).
  pub remote_buffer_chunks: usize,
  /// How long recovering may take from when the signal or a peer connection was lost: a
  /// resume, then a full reconnect (0: never recover, end at once).
  pub resume_timeout: Duration,
  /// Data packets waiting for the SCTP buffer, bytes (see [`crate::data`]).
  pub data_queue_bytes: usize,
  /// Each incoming byte stream's unread bytes before it fails.
  pub stream_buffer_bytes: usize,
}

impl Default for RoomOptions {
  fn default() -> Self {
    RoomOptions {
      auto_subscribe: false,
      connect_timeout: DEFAULT_CONNECT_TIMEOUT,
      request_timeout: DEFAULT_REQUEST_TIMEOUT,
      queue_packets: DEFAULT_QUEUE_PACKETS,
      jitter_delay: DEFAULT_DELAY,
      remote_buffer_chunks: DEFAULT_BUFFER_CHUNKS,
      resume_timeout: DEFAULT_RESUME_TIMEOUT,
      data_queue_bytes: DEFAULT_DATA_QUEUE_BYTES,
      stream_buffer_bytes: DEFAULT_STREAM_BUFFER_BYTES,
    }
  }
}

/// What the JoinResponse said.
#[derive(Debug, Clone)]
pub struct JoinInfo {
  pub room: String,
  pub participant_sid: String,
  pub identity: String,
  pub server_version: String,
  pub subscriber_primary: bool,
  pub ping_interval: Duration,
  pub ping_timeout: Duration,
}

/// What the signal connection has seen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SignalStats {
  pub pings: u64,
  pub pongs: u64,
  /// The last ping's round trip, ms (sent back to the server with the next ping, as the
  /// other SDKs do).
  pub rtt_ms: i64,
  /// Trickled candidates that did not parse (skipped).
  pub bad_candidates: u64,
  /// Subscriber RTP on an m-line with no remote track (not mapped, or unsubscribed).
  pub unrouted_packets: u64,
  /// Events dropped because the caller's queue was full.
  pub dropped_events: u64,
  /// Signal connections lost and resumed.
  pub resumes: u64,
  /// Signal requests held while the connection was down, sent on resume.
  pub held_requests: u64,
}

/// Things the session tells the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
  /// A remote participant subscribed to one of our tracks (the server says so once per track).
  TrackSubscribed { track_sid: String },
  /// The server ended one of our tracks.
  TrackUnpublished { track_sid: String },
  /// The subscriber connection (the server's, see [`crate::peer`]) is up.
  SubscriberConnected,
  /// Another participant is in the room (also sent for each one already there at the join).
  ParticipantJoined {
    sid: String,
    identity: String,
    name: String,
  },
  /// A participant left; `reason` is the server's `DisconnectReason` name.
  ParticipantLeft {
    sid: String,
    identity: String,
    reason: String,
  },
  /// A remote participant published an audio track (subscribe with
  /// [`Room::set_subscribed`] when not auto-subscribing).
  RemoteTrackPublished {
    participant_sid: String,
    track_sid: String,
    name: String,
  },
  /// A remote participant's audio track is gone from the room.
  RemoteTrackUnpublished { participant_sid: String, track_sid: String },
  /// A remote audio track is subscribed: its audio arrives in `track.audio`.
  RemoteTrackSubscribed(RemoteAudioTrack),
  /// A subscribed remote track ended: `unsubscribed`, `unpublished`, `participant left`,
  /// `room closed: …`. Its audio buffer can still be read out, then says `Ended`.
  RemoteTrackEnded { track_sid: String, reason: String },
  /// The signal connection was lost (or the server asked to resume): the peer connections
  /// carry on and the session tries to resume within `RoomOptions::resume_timeout`. Also
  /// the start of a full reconnect (a peer connection lost, the server's leave with
  /// RECONNECT, a refused resume), which ends in [`RoomEvent::Reconnected`].
  Reconnecting { reason: String },
  /// The signal connection is back (the server swapped it under the same participant).
  Resumed,
  /// A full reconnect is done: a new join (new participant sid), new peer connections,
  /// every published track published again (new sids, see
  /// [`RoomEvent::LocalTrackRepublished`]), subscriptions made again. `participant_sid`:
  /// the new join's.
  Reconnected { participant_sid: String },
  /// A published track got a new sid from a full reconnect; its packets flow on.
  LocalTrackRepublished { old_sid: String, sid: String },
  /// A user packet from another participant (`topic` empty when it had none).
  Data {
    from_identity: String,
    topic: String,
    payload: Vec<u8>,
  },
  /// An RPC for a registered method ([`Room::register_rpc_method`]): the session has acked
  /// it; answer with [`Room::respond_rpc`] within `response_timeout`.
  RpcRequest {
    id: String,
    caller_identity: String,
    method: String,
    payload: String,
    response_timeout: Duration,
  },
  /// Another participant opened a byte (or text) stream to us: read `data` as it arrives.
  ByteStream(IncomingByteStream),
  /// The session ended: the caller closed it, the server left, or a bound passed.
  Disconnected { reason: String },
}

/// A published audio track.
#[derive(Debug, Clone)]
pub struct LocalAudioTrack {
  pub sid: String,
  pub cid: String,
  pub name: String,
  pub opus: OpusOptions,
  pub(crate) packets: PacketSender,
}

impl LocalAudioTrack {
  /// The track's send path (for [`crate::LiveKitSink`] or a caller that encodes itself).
  pub fn packets(&self) -> PacketSender {
    self.packets.clone()
  }

  pub fn stats(&self) -> crate::track::Counters {
    self.packets.stats()
  }
}

pub(crate) enum Command {
  Data(DataCommand),
  Publish {
    name: String,
    opus: OpusOptions,
    reply: oneshot::Sender<Result<LocalAudioTrack>>,
  },
  Unpublish {
    cid: String,
    reply: oneshot::Sender<Result<()>>,
  },
  SetSubscribed {
    track_sid: String,
    subscribe: bool,
    reply: oneshot::Sender<Result<()>>,
  },
  Close {
    reply: oneshot::Sender<()>,
  },
}

pub struct Room {
  pub(crate) join: JoinInfo,
  pub(crate) cmd: mpsc::Sender<Command>,
  pub(crate) opts: RoomOptions,
  pub(crate) data: DataShared,
  /// Taken by the first `close`; later ones find the session gone.
  task: Mutex<Option<tokio::task::JoinHandle<()>>>,
  sub_up: Arc<AtomicBool>,
  stats: Arc<Mutex<SignalStats>>,
  participants: Arc<Mutex<HashMap<String, RemoteParticipant>>>,
  remote_tracks: Arc<Mutex<HashMap<String, RemoteAudioTrack>>>,
}

impl Room {
  /// Joins: signal connection to the JoinResponse, then the publisher connection up to
  /// DTLS connected, all within `opts.connect_timeout`. Events go to the returned receiver.
  pub async fn connect(url: &str, token: &str, opts: RoomOptions) -> Result<(Room, mpsc::Receiver<RoomEvent>)> {
    if opts.queue_packets == 0 || opts.queue_packets > MAX_QUEUE_PACKETS {
      return Err(Error::InvalidOption(format!(
        "queuePackets must be 1..={MAX_QUEUE_PACKETS}, got {}",
        opts.queue_packets
      )));
    }
    let jitter = JitterOptions::new(opts.jitter_delay)?;
    check_capacity(opts.remote_buffer_chunks)?;
    if opts.resume_timeout > MAX_RESUME_TIMEOUT {
      return Err(Error::InvalidOption(format!(
        "resumeTimeout must be at most {} ms, got {}",
        MAX_RESUME_TIMEOUT.as_millis(),
        opts.resume_timeout.as_millis()
      )));
    }
    for (name, v) in [
      ("dataQueueBytes", opts.data_queue_bytes),
      ("streamBufferBytes", opts.stream_buffer_bytes),
    ] {
      if v == 0 || v > MAX_DATA_BYTES_OPTION {
        return Err(Error::InvalidOption(format!(
          "{name} must be 1..={MAX_DATA_BYTES_OPTION}, got {v}"
        )));
      }
    }
    let deadline = tokio::time::Instant::now() + opts.connect_timeout;
    let (ws, join) = signal::connect(url, token, opts.auto_subscribe, opts.connect_timeout).await?;
    let secs = |s: i32, d: Duration| if s > 0 { Duration::from_secs(s as u64) } else { d };
    let participant = join.participant.clone().unwrap_or_default();
    let info = JoinInfo {
      room: join.room.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
      participant_sid: participant.sid,
      identity: participant.identity,
      server_version: join.server_version.clone(),
      subscriber_primary: join.subscriber_primary,
      ping_interval: secs(join.ping_interval, DEFAULT_PING_INTERVAL),
      ping_timeout: secs(join.ping_timeout, DEFAULT_PING_TIMEOUT),
    };

    let local_ip = local_ip_towards(url).await?;
    let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))
      .await
      .map_err(|e| Error::Peer(format!("binding a UDP socket on {local_ip}: {e}")))?;
    let local = socket.local_addr().map_err(|e| Error::Peer(e.to_string()))?;
    let pc = Publisher::new(local, Instant::now())?;

    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (pkt_tx, pkt_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let sub_up = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(SignalStats::default()));
    let participants = Arc::new(Mutex::new(HashMap::new()));
    let remote_tracks = Arc::new(Mutex::new(HashMap::new()));
    let (sink, stream) = ws.split();
    let data = DataShared::default();
    let session = Session {
      data: Data::new(
        info.identity.clone(),
        info.server_version.clone(),
        ev_tx.clone(),
        stats.clone(),
        data.clone(),
        opts.data_queue_bytes,
        opts.stream_buffer_bytes,
        opts.request_timeout,
      ),
      info: info.clone(),
      sink: Some(sink),
      stream: Some(stream),
      url: url.to_string(),
      token: token.to_string(),
      auto_subscribe: opts.auto_subscribe,
      resume_timeout: opts.resume_timeout,
      resuming: None,
      held: std::collections::VecDeque::new(),
      recovery_since: None,
      restarting: false,
      wanted: std::collections::HashSet::new(),
      socket,
      pc,
      cmd_rx,
      events: ev_tx,
      pkt_tx,
      pkt_rx,
      queue_packets: opts.queue_packets as u64,
      ready: Some(ready_tx),
      sub_up: sub_up.clone(),
      tracks: HashMap::new(),
      next_track: 1,
      in_flight: Vec::new(),
      queued: Vec::new(),
      last_rx: Instant::now(),
      stats: stats.clone(),
      local_ip,
      sub: None,
      sub_socket: None,
      early_sub_candidates: Vec::new(),
      others: join.other_participants,
      participants: participants.clone(),
      versions: HashMap::new(),
      remote_tracks: remote_tracks.clone(),
      remote: HashMap::new(),
      mids: HashMap::new(),
      off: std::collections::HashSet::new(),
      jitter,
      remote_chunks: opts.remote_buffer_chunks,
    };
    let task = tokio::spawn(session.run());
    let room = Room {
      join: info,
      cmd: cmd_tx,
      opts,
      task: Mutex::new(Some(task)),
      sub_up,
      stats,
      participants,
      remote_tracks,
      data,
    };
    match tokio::time::timeout_at(deadline, ready_rx).await {
      Ok(Ok(Ok(()))) => Ok((room, ev_rx)),
      Ok(Ok(Err(e))) => Err(e),
      Ok(Err(_)) => Err(Error::Closed),
      Err(_) => {
        let ms = room.opts.connect_timeout.as_millis();
        let _ = room.close().await;
        Err(Error::Timeout(format!(
          "join and publisher connection not done within {ms} ms"
        )))
      }
    }
  }

  /// Ends the session at once, without a goodbye (the server notices by its ping timeout):
  /// for a host that is going away and cannot wait, such as a Node environment's cleanup.
  pub fn abort(&self) {
    if let Some(task) = self.task.lock().take() {
      task.abort();
    }
  }

  /// Whether the session has ended (closed, left by the server, or failed).
  pub fn is_closed(&self) -> bool {
    self.cmd.is_closed()
  }

  pub fn join_info(&self) -> &JoinInfo {
    &self.join
  }

  /// Ping/pong and trickle counters of the signal connection.
  pub fn signal_stats(&self) -> SignalStats {
    *self.stats.lock()
  }

  /// Whether the server's subscriber connection has come up (only asked for when the
  /// join said `subscriber_primary`).
  pub fn subscriber_connected(&self) -> bool {
    self.sub_up.load(Ordering::Acquire)
  }

  /// The other participants now, with their published audio tracks.
  pub fn participants(&self) -> Vec<RemoteParticipant> {
    let mut v: Vec<_> = self.participants.lock().values().cloned().collect();
    v.sort_by(|a, b| a.sid.cmp(&b.sid));
    v
  }

  /// The remote audio tracks subscribed now (each also came as
  /// [`RoomEvent::RemoteTrackSubscribed`]; this finds them should an event be dropped).
  pub fn remote_tracks(&self) -> Vec<RemoteAudioTrack> {
    let mut v: Vec<_> = self.remote_tracks.lock().values().cloned().collect();
    v.sort_by(|a, b| a.sid.cmp(&b.sid));
    v
  }

  /// Subscribes to a remote track or ends the subscription (`UpdateSubscription`). Done
  /// when the request is sent: a subscription arrives as [`RoomEvent::RemoteTrackSubscribed`]
  /// once the server has offered it; an unsubscription ends the track here at once.
  pub async fn set_subscribed(&self, track_sid: &str, subscribe: bool) -> Result<()> {
    let (reply, rx) = oneshot::channel();
    self
      .request(
        Command::SetSubscribed {
          track_sid: track_sid.to_string(),
          subscribe,
          reply,
        },
        rx,
      )
      .await?
  }

  /// Publishes an Opus audio track: AddTrackRequest, the server's TrackPublishedResponse,
  /// then an offer with its m-line and the answer, within the request timeout.
  pub async fn publish_audio(&self, name: &str, opus: OpusOptions) -> Result<LocalAudioTrack> {
    opus.validate()?;
    let (reply, rx) = oneshot::channel();
    self
      .request(
        Command::Publish {
          name: name.to_string(),
          opus,
          reply,
        },
        rx,
      )
      .await?
  }

  /// Ends a track: its m-line goes inactive in a new offer; done when the answer is applied.
  pub async fn unpublish(&self, track: &LocalAudioTrack) -> Result<()> {
    let (reply, rx) = oneshot::channel();
    self
      .request(
        Command::Unpublish {
          cid: track.cid.clone(),
          reply,
        },
        rx,
      )
      .await?
  }

  async fn request<T>(&self, cmd: Command, rx: oneshot::Receiver<T>) -> Result<T> {
    let t = self.opts.request_timeout;
    let work = async {
      self.cmd.send(cmd).await.map_err(|_| Error::Closed)?;
      rx.await.map_err(|_| Error::Closed)
    };
    tokio::time::timeout(t, work)
      .await
      .unwrap_or_else(|_| Err(Error::Timeout(format!("request took over {} ms", t.as_millis()))))
  }

  /// Leaves (LeaveRequest, close frame) and ends the session, within the request timeout.
  /// Takes `&self` so a binding can share the room with calls still in flight (they fail
  /// `Closed`); a second close returns at once.
  pub async fn close(&self) -> Result<()> {
    let (reply, rx) = oneshot::channel();
    let r = match self.request(Command::Close { reply }, rx).await {
      Ok(()) | Err(Error::Closed) => Ok(()),
      Err(e) => Err(e),
    };
    let task = self.task.lock().take();
    if let Some(task) = task {
      if tokio::time::timeout(SEND_TIMEOUT, task).await.is_err() {
        return Err(Error::Timeout("session task did not end".into()));
      }
    }
    r
  }
}

/// The local address the OS would use to reach the signal host: the one host candidate.
/// (Its UDP `connect` sends nothing; it only picks the route.)
async fn local_ip_towards(url: &str) -> Result<IpAddr> {
  let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
  let hostport = rest.split('/').next().unwrap_or(rest);
  let secure = url.starts_with("wss://") || url.starts_with("https://");
  let has_port = match hostport.strip_prefix('[') {
    Some(v6) => v6.contains("]:"),
    None => hostport.contains(':'),
  };
  let with_port = if has_port {
    hostport.to_string()
  } else {
    format!("{hostport}:{}", if secure { 443 } else { 80 })
  };
  let addr = tokio::net::lookup_host(with_port.as_str())
    .await
    .map_err(|e| Error::Connect(format!("resolving {with_port}: {e}")))?
    .next()
    .ok_or_else(|| Error::Connect(format!("{with_port} resolves to nothing")))?;
  let probe = std::net::UdpSocket::bind(SocketAddr::new(
    if addr.is_ipv4() {
      IpAddr::from([0, 0, 0, 0])
    } else {
      IpAddr::from([0u16; 8])
    },
    0,
  ))
  .and_then(|s| s.connect(addr).map(|_| s))
  .and_then(|s| s.local_addr())
  .map_err(|e| Error::Peer(format!("no route to {addr}: {e}")))?;
  Ok(probe.ip())
}

/// The AddTrackRequest of an Opus track: no RED (the offer has none) and no DTX (the engine
/// sends a continuous stream).
fn add_track_request(cid: &str, name: &str, opus: &OpusOptions) -> proto::AddTrackRequest {
  proto::AddTrackRequest {
    cid: cid.to_string(),
    name: name.to_string(),
    r#type: proto::TrackType::Audio as i32,
    source: proto::TrackSource::Microphone as i32,
    disable_red: true,
    audio_features: if opus.format.channels == 2 {
      vec![
        proto::AudioTrackFeature::TfStereo as i32,
        proto::AudioTrackFeature::TfNoDtx as i32,
      ]
    } else {
      vec![proto::AudioTrackFeature::TfNoDtx as i32]
    },
    ..Default::default()
  }
}

fn subscription(track_sid: &str, participant_sid: &str, subscribe: bool) -> Req {
  Req::Subscription(proto::UpdateSubscription {
    track_sids: vec![track_sid.to_string()],
    subscribe,
    participant_tracks: vec![proto::ParticipantTracks {
      participant_sid: participant_sid.to_string(),
      track_sids: vec![track_sid.to_string()],
    }],
  })
}

#[derive(Debug)]
enum TrackPhase {
  /// AddTrackRequest sent, waiting for TrackPublishedResponse.
  Requested,
  /// In an offer (queued or out), waiting for the answer.
  Negotiating,
  Live {
    mid: Mid,
    pt: Pt,
  },
  Unpublishing,
}

struct TrackState {
  key: u32,
  name: String,
  sid: String,
  opus: OpusOptions,
  stats: Arc<TrackStats>,
  phase: TrackPhase,
  mid: Option<Mid>,
  publish_reply: Option<oneshot::Sender<Result<LocalAudioTrack>>>,
}

type WsSink = futures_util::stream::SplitSink<signal::Ws, tokio_tungstenite::tungstenite::Message>;
type WsStream = futures_util::stream::SplitStream<signal::Ws>;

struct Session {
  info: JoinInfo,
  data: Data,
  /// None while the signal connection is down and being resumed.
  sink: Option<WsSink>,
  stream: Option<WsStream>,
  url: String,
  /// The join's token, replaced by each `RefreshToken` the server sends (a resume after
  /// the first token expired still authenticates).
  token: String,
  auto_subscribe: bool,
  resume_timeout: Duration,
  /// The resume in flight, and why the connection was lost.
  resuming: Option<(
    tokio::task::JoinHandle<Result<(signal::Ws, proto::ReconnectResponse)>>,
    String,
  )>,
  /// Requests made while the connection was down, in order.
  held: std::collections::VecDeque<Req>,
  /// When the trouble being recovered from began (a lost signal connection or peer
  /// connection): resume and full reconnect together stay within `resume_timeout` of it.
  recovery_since: Option<Instant>,
  /// A full reconnect's new publisher connection is not up yet.
  restarting: bool,
  /// Remote tracks subscribed by the caller (not auto-subscribed), made again by a full reconnect.
  wanted: std::collections::HashSet<String>,
  socket: UdpSocket,
  pc: Publisher,
  cmd_rx: mpsc::Receiver<Command>,
  events: mpsc::Sender<RoomEvent>,
  pkt_tx: mpsc::UnboundedSender<OpusPacket>,
  pkt_rx: mpsc::UnboundedReceiver<OpusPacket>,
  /// Each track's share of the packet queue.
  queue_packets: u64,
  ready: Option<oneshot::Sender<Result<()>>>,
  sub_up: Arc<AtomicBool>,
  /// By client track id.
  tracks: HashMap<String, TrackState>,
  next_track: u32,
  /// Unpublish replies waiting for the answer to the offer out / the next offer.
  in_flight: Vec<oneshot::Sender<Result<()>>>,
  queued: Vec<oneshot::Sender<Result<()>>>,
  last_rx: Instant,
  stats: Arc<Mutex<SignalStats>>,
  local_ip: IpAddr,
  sub: Option<Subscriber>,
  sub_socket: Option<UdpSocket>,
  /// Subscriber candidates trickled before the offer that makes the connection.
  early_sub_candidates: Vec<String>,
  /// The join's other participants, taken in at the start.
  others: Vec<proto::ParticipantInfo>,
  participants: Arc<Mutex<HashMap<String, RemoteParticipant>>>,
  /// Participant info versions seen, so an update older than one applied is ignored.
  versions: HashMap<String, u32>,
  remote_tracks: Arc<Mutex<HashMap<String, RemoteAudioTrack>>>,
  /// Subscribed remote tracks by track sid.
  remote: HashMap<String, Remote>,
  /// The last offer's sending audio m-lines: mid to track sid.
  mids: HashMap<Mid, String>,
  /// Tracks the caller unsubscribed: an offer still mapping them makes no track.
  off: std::collections::HashSet<String>,
  jitter: JitterOptions,
  remote_chunks: usize,
}

/// A subscribed remote track in the session.
struct Remote {
  mid: Mid,
  jb: JitterBuffer,
  track: RemoteAudioTrack,
}

/// A receive error: an ICMP error a peer's datagram earned (refused, reset) says nothing
/// about the connection, which ICE judges; anything else ends the session.
fn udp_error(e: std::io::Error, which: &str) -> Result<Flow> {
  match e.kind() {
    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::Interrupted => {
      Ok(Flow::Go)
    }
    _ => Err(Error::Peer(format!("UDP receive ({which}): {e}"))),
  }
}

/// The next signal message, or never while the connection is down.
async fn next_opt(
  s: Option<&mut WsStream>,
) -> Option<std::result::Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>> {
  match s {
    Some(s) => s.next().await,
    None => std::future::pending().await,
  }
}

/// The resume task's outcome, or never while none is in flight.
async fn join_opt<T>(t: Option<&mut tokio::task::JoinHandle<T>>) -> std::result::Result<T, tokio::task::JoinError> {
  match t {
    Some(t) => t.await,
    None => std::future::pending().await,
  }
}

async fn recv_opt(s: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
  match s {
    Some(s) => s.recv_from(buf).await,
    None => std::future::pending().await,
  }
}

enum Flow {
  Go,
  End(String),
  /// A full reconnect is due (a peer connection lost, the server's leave with RECONNECT, a
  /// resume the server refused).
  Restart(String),
}

impl Session {
  async fn run(mut self) {
    let others = std::mem::take(&mut self.others);
    self.update_participants(others);
    let mut reason = match self.start().await {
      Ok(()) => self.main_loop().await,
      Err(e) => {
        if let Some(r) = self.ready.take() {
          let _ = r.send(Err(e.clone()));
        }
        Flow::End(e.to_string())
      }
    };
    let reason = loop {
      match reason {
        Flow::Restart(why) => match self.rejoin(&why).await {
          Ok(()) => reason = self.main_loop().await,
          Err(e) => break format!("{why}; reconnect failed: {e}"),
        },
        Flow::End(why) => break why,
        Flow::Go => break "the session stopped".into(),
      }
    };
    self.finish(reason).await;
  }

  async fn start(&mut self) -> Result<()> {
    for init in self.pc.local_candidate_inits()? {
      self
        .send(Req::Trickle(proto::TrickleRequest {
          candidate_init: init,
          target: proto::SignalTarget::Publisher as i32,
          r#final: false,
        }))
        .await?;
    }
    self.negotiate().await
  }

  /// Sends a request, or holds it (bounded) while the connection is being resumed: it goes
  /// out, in order, once the server has the participant's connection back.
  async fn send(&mut self, m: Req) -> Result<()> {
    match self.sink.as_mut() {
      Some(sink) => match signal::send(sink, m.clone(), SEND_TIMEOUT).await {
        Ok(()) => Ok(()),
        // The write found the connection broken before a read did: resume, and send this
        // one after (a goodbye or a ping is not worth it).
        Err(e) if self.can_resume() && !matches!(m, Req::Leave(_)) => {
          let _ = self.lost_signal(format!("signal send failed: {e}"));
          if !matches!(m, Req::PingReq(_)) {
            self.held.push_back(m);
            self.stats.lock().held_requests += 1;
          }
          Ok(())
        }
        Err(e) => Err(e),
      },
      None if matches!(m, Req::PingReq(_) | Req::Leave(_)) => Ok(()),
      None if self.held.len() < MAX_HELD_REQUESTS => {
        self.held.push_back(m);
        self.stats.lock().held_requests += 1;
        Ok(())
      }
      None => Err(Error::Signal(format!(
        "{MAX_HELD_REQUESTS} signal requests waited for a resume"
      ))),
    }
  }

  /// The signal connection is gone: resume it in the background (the peer connections and
  /// the audio on them carry on), or end the session if resuming is off.
  fn can_resume(&self) -> bool {
    !self.resume_timeout.is_zero() && !self.info.participant_sid.is_empty()
  }

  fn lost_signal(&mut self, why: String) -> Flow {
    if !self.can_resume() {
      return Flow::End(why);
    }
    if self.resuming.is_some() {
      return Flow::Go;
    }
    // The new join's connection broke before its publisher came up: join again, in what
    // is left of the same bound (a resume would bring back a half-made session).
    if self.restarting {
      return Flow::Restart(why);
    }
    self.sink = None;
    self.stream = None;
    let (url, token, sid, auto) = (
      self.url.clone(),
      self.token.clone(),
      self.info.participant_sid.clone(),
      self.auto_subscribe,
    );
    // One bound for the whole recovery, from when the trouble began.
    let new = self.recovery_since.is_none();
    let since = *self.recovery_since.get_or_insert_with(Instant::now);
    let deadline = tokio::time::Instant::from_std(since + self.resume_timeout);
    let bound = self.resume_timeout;
    let task = tokio::spawn(async move {
      let mut delay = Duration::ZERO;
      let mut last = Error::Timeout(format!("resume not done within {} ms", bound.as_millis()));
      loop {
        tokio::time::sleep(delay).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
          return Err(last);
        }
        let reason = proto::ReconnectReason::RrSignalDisconnected;
        match signal::reconnect(&url, &token, auto, &sid, reason, left.min(RESUME_ATTEMPT)).await {
          Ok(v) => return Ok(v),
          // The server answered and refused: it will not take the participant back.
          Err(e @ (Error::Signal(_) | Error::InvalidOption(_))) => return Err(e),
          Err(e) => last = e,
        }
        delay = (delay * 2).clamp(Duration::from_millis(250), Duration::from_secs(2));
      }
    });
    if new {
      self.event(RoomEvent::Reconnecting { reason: why.clone() });
    }
    self.resuming = Some((task, why));
    Flow::Go
  }

  /// The resume's outcome: the new connection in place and the held requests sent, or
  /// the end of the session.
  async fn resumed(
    &mut self,
    r: std::result::Result<Result<(signal::Ws, proto::ReconnectResponse)>, tokio::task::JoinError>,
    why: String,
  ) -> Result<Flow> {
    let ws = match r {
      Ok(Ok((ws, _reconnect))) => ws,
      // The server answered and will not take the participant back (a restarted server, a
      // node that lost the room): a new join, in what is left of the bound.
      Ok(Err(e @ Error::Signal(_))) if self.recovery_left().is_some() => {
        return Ok(Flow::Restart(format!("{why}; resume refused: {e}")))
      }
      Ok(Err(e)) => return Ok(Flow::End(format!("{why}; resume failed: {e}"))),
      Err(e) => return Ok(Flow::End(format!("{why}; resume failed: {e}"))),
    };
    self.recovery_since = None;
    let (sink, stream) = ws.split();
    self.sink = Some(sink);
    self.stream = Some(stream);
    self.last_rx = Instant::now();
    self.stats.lock().resumes += 1;
    while let Some(m) = self.held.pop_front() {
      self.send(m).await?;
    }
    self.event(RoomEvent::Resumed);
    Ok(Flow::Go)
  }

  /// The sid of the participant that publishes a remote audio track.
  fn track_owner(&self, track_sid: &str) -> Option<String> {
    self
      .participants
      .lock()
      .values()
      .find(|p| p.audio_tracks.iter().any(|t| t.sid == track_sid))
      .map(|p| p.sid.clone())
  }

  /// What is left of the recovery bound, if any.
  fn recovery_left(&self) -> Option<Duration> {
    let since = self.recovery_since?;
    let left = (since + self.resume_timeout).saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
  }

  /// A peer connection is gone (ICE gave up): a full reconnect, unless recovery is off.
  fn peer_lost(&mut self, why: String) -> Flow {
    if !self.can_resume() {
      return Flow::End(why);
    }
    Flow::Restart(why)
  }

  /// A full reconnect, as client-sdk-js does after a lost peer connection: the old
  /// connections go, a new join (the participant comes back under a new sid), new peer
  /// connections, every published track published again under its client id (its packet
  /// queue and counters carry on; packets meanwhile are counted dropped), and the caller's
  /// subscriptions made again. Subscribed remote tracks end (`reconnecting`) and come back
  /// as new ones. RPCs in flight keep their deadlines (an answer may still come on the new
  /// connection); incoming byte streams fail. Bounded by `resume_timeout` from when the
  /// trouble began; [`RoomEvent::Reconnected`] once the new publisher connection is up.
  async fn rejoin(&mut self, why: &str) -> Result<()> {
    if self.recovery_since.is_none() {
      self.recovery_since = Some(Instant::now());
      self.event(RoomEvent::Reconnecting {
        reason: format!("full reconnect: {why}"),
      });
    }
    if let Some((task, _)) = self.resuming.take() {
      task.abort();
    }
    self.sink = None;
    self.stream = None;
    self.held.clear();
    self.pc.disconnect();
    if let Some(mut sub) = self.sub.take() {
      sub.disconnect();
    }
    self.sub_socket = None;
    self.sub_up.store(false, Ordering::Release);
    self.early_sub_candidates.clear();
    let live: Vec<String> = self.remote.keys().cloned().collect();
    for sid in live {
      self.end_remote(&sid, "reconnecting");
    }
    self.mids.clear();
    self.data.restart(why);
    for reply in self.in_flight.drain(..).chain(self.queued.drain(..)) {
      // An unpublish waiting for its answer: the track is gone with the old connection.
      let _ = reply.send(Ok(()));
    }
    self.tracks.retain(|_, t| !matches!(t.phase, TrackPhase::Unpublishing));

    // The new join, with backoff, in what is left of the bound.
    let mut delay = Duration::ZERO;
    let (ws, join) = loop {
      tokio::time::sleep(delay).await;
      let Some(left) = self.recovery_left() else {
        return Err(Error::Timeout(format!(
          "no new join within {} ms",
          self.resume_timeout.as_millis()
        )));
      };
      match signal::connect(&self.url, &self.token, self.auto_subscribe, left.min(RESUME_ATTEMPT)).await {
        Ok(v) => break v,
        // Refused (a token no longer valid, a room closed to us): no point retrying.
        Err(e @ (Error::Signal(_) | Error::InvalidOption(_))) => return Err(e),
        Err(Error::Connect(m)) if m.contains("HTTP 4") => return Err(Error::Connect(m)),
        Err(_) => {}
      }
      delay = (delay * 2).clamp(Duration::from_millis(250), Duration::from_secs(2));
    };
    let participant = join.participant.clone().unwrap_or_default();
    let secs = |s: i32, d: Duration| if s > 0 { Duration::from_secs(s as u64) } else { d };
    self.info.participant_sid = participant.sid;
    self.info.server_version = join.server_version.clone();
    self.info.subscriber_primary = join.subscriber_primary;
    self.info.ping_interval = secs(join.ping_interval, DEFAULT_PING_INTERVAL);
    self.info.ping_timeout = secs(join.ping_timeout, DEFAULT_PING_TIMEOUT);
    self.data.set_server_version(&join.server_version);
    let (sink, stream) = ws.split();
    self.sink = Some(sink);
    self.stream = Some(stream);
    self.last_rx = Instant::now();

    self.local_ip = local_ip_towards(&self.url).await?;
    self.socket = UdpSocket::bind(SocketAddr::new(self.local_ip, 0))
      .await
      .map_err(|e| Error::Peer(format!("binding a UDP socket on {}: {e}", self.local_ip)))?;
    let local = self.socket.local_addr().map_err(|e| Error::Peer(e.to_string()))?;
    self.pc = Publisher::new(local, Instant::now())?;
    self.restarting = true;

    // The room as the new join sees it: who is gone is told, the rest updated in place.
    let now: std::collections::HashSet<&str> = join.other_participants.iter().map(|p| p.sid.as_str()).collect();
    let gone: Vec<String> = self
      .participants
      .lock()
      .keys()
      .filter(|sid| !now.contains(sid.as_str()))
      .cloned()
      .collect();
    let mut left_infos = Vec::new();
    for sid in gone {
      left_infos.push(proto::ParticipantInfo {
        sid,
        state: proto::participant_info::State::Disconnected as i32,
        ..Default::default()
      });
    }
    self.versions.clear();
    self.update_participants(left_infos);
    self.update_participants(join.other_participants);

    self.start().await?;
    for t in self.tracks.values_mut() {
      t.phase = TrackPhase::Requested;
      t.mid = None;
    }
    let again: Vec<(String, String, OpusOptions)> = self
      .tracks
      .iter()
      .map(|(cid, t)| (cid.clone(), t.name.clone(), t.opus))
      .collect();
    for (cid, name, opus) in again {
      self.send(Req::AddTrack(add_track_request(&cid, &name, &opus))).await?;
    }
    let wanted: Vec<String> = self.wanted.iter().cloned().collect();
    for track_sid in wanted {
      match self.track_owner(&track_sid) {
        Some(participant_sid) => self.send(subscription(&track_sid, &participant_sid, true)).await?,
        None => {
          self.wanted.remove(&track_sid);
        }
      }
    }
    Ok(())
  }

  /// Sends the next offer if changes are queued and none is out.
  async fn negotiate(&mut self) -> Result<()> {
    if let Some(offer) = self.pc.offer()? {
      self.in_flight.append(&mut self.queued);
      let mid_to_track_id = offer
        .added
        .iter()
        .map(|(cid, mid)| (mid.to_string(), cid.clone()))
        .collect();
      self
        .send(Req::Offer(proto::SessionDescription {
          r#type: "offer".into(),
          sdp: offer.sdp,
          id: offer.id,
          mid_to_track_id,
        }))
        .await?;
    }
    Ok(())
  }

  fn event(&self, e: RoomEvent) {
    if self.events.try_send(e).is_err() {
      self.stats.lock().dropped_events += 1;
    }
  }

  /// Runs until the session ends ([`Flow::End`]) or needs a full reconnect ([`Flow::Restart`]).
  async fn main_loop(&mut self) -> Flow {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut sub_buf = vec![0u8; DATAGRAM_MAX];
    let mut playout = tokio::time::interval(crate::jitter::CHUNK);
    playout.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ping = tokio::time::interval(self.info.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: one ping at once gives an RTT before the first interval.
    let mut outs = Vec::new();
    let mut rtps = Vec::new();
    loop {
      self.data.flush(&mut self.pc);
      let mut wake = match self.pc.poll(&mut outs) {
        Ok(t) => t,
        Err(e) => return Flow::End(e.to_string()),
      };
      let mut lost = None;
      for o in outs.drain(..) {
        match o {
          PeerOutput::Transmit { to, data } => {
            // UDP: a full socket buffer loses the datagram, as the network may.
            let _ = self.socket.try_send_to(&data, to);
          }
          PeerOutput::Connected => {
            if let Some(r) = self.ready.take() {
              let _ = r.send(Ok(()));
            }
            if std::mem::take(&mut self.restarting) {
              self.recovery_since = None;
              self.event(RoomEvent::Reconnected {
                participant_sid: self.info.participant_sid.clone(),
              });
            }
          }
          PeerOutput::Disconnected(why) => lost = Some(format!("publisher: {why}")),
          PeerOutput::ChannelOpen { id, label } => self.data.publisher_channel(id, &label),
          PeerOutput::ChannelClose(id) => self.data.publisher_channel_closed(id),
          PeerOutput::ChannelData { data, .. } => self.data.receive(&data, Instant::now()),
          PeerOutput::Media { .. } | PeerOutput::Rtp { .. } => {}
        }
      }
      if let (Some(sub), Some(sock)) = (self.sub.as_mut(), self.sub_socket.as_ref()) {
        match sub.poll(&mut outs) {
          Ok(t) => wake = wake.min(t),
          Err(e) => return Flow::End(format!("subscriber: {e}")),
        }
        for o in outs.drain(..) {
          match o {
            PeerOutput::Transmit { to, data } => {
              let _ = sock.try_send_to(&data, to);
            }
            PeerOutput::Connected => {
              self.sub_up.store(true, Ordering::Release);
              let _ = self.events.try_send(RoomEvent::SubscriberConnected);
            }
            PeerOutput::Disconnected(why) => lost = Some(format!("subscriber: {why}")),
            rtp @ PeerOutput::Rtp { .. } => rtps.push(rtp),
            PeerOutput::ChannelData { data, .. } => self.data.receive(&data, Instant::now()),
            PeerOutput::Media { .. } | PeerOutput::ChannelOpen { .. } | PeerOutput::ChannelClose(_) => {}
          }
        }
      }
      if let Some(why) = lost {
        return self.peer_lost(why);
      }
      if let Some(t) = self.data.next_deadline() {
        wake = wake.min(t);
      }
      if let (true, Some(since)) = (self.restarting, self.recovery_since) {
        let d = since + self.resume_timeout;
        if Instant::now() >= d {
          return Flow::End(format!(
            "reconnect: the new publisher connection was not up within {} ms",
            self.resume_timeout.as_millis()
          ));
        }
        wake = wake.min(d);
      }
      for o in rtps.drain(..) {
        if let PeerOutput::Rtp {
          mid,
          seq,
          rtp_time,
          data,
          ..
        } = o
        {
          self.rtp(mid, seq, rtp_time, &data);
        }
      }
      let flow = tokio::select! {
        cmd = self.cmd_rx.recv() => match cmd {
          Some(c) => self.command(c).await,
          None => Ok(Flow::End("the room was dropped".into())),
        },
        msg = next_opt(self.stream.as_mut()) => match msg {
          Some(Ok(m)) => {
            self.last_rx = Instant::now();
            match signal::decode_response(m) {
              Ok(Some(r)) => self.response(r).await,
              Ok(None) => Ok(Flow::Go),
              Err(Error::Closed) => Ok(self.lost_signal("the server closed the signal connection".into())),
              Err(e) => Err(e),
            }
          }
          Some(Err(e)) => Ok(self.lost_signal(format!("signal connection failed: {e}"))),
          None => Ok(self.lost_signal("the server closed the signal connection".into())),
        },
        r = join_opt(self.resuming.as_mut().map(|(t, _)| t)) => {
          let why = self.resuming.take().map(|(_, w)| w).unwrap_or_default();
          self.resumed(r, why).await
        },
        r = self.socket.recv_from(&mut buf) => match r {
          Ok((n, from)) => self.pc.receive(Instant::now(), from, &buf[..n]).map(|_| Flow::Go),
          Err(e) => udp_error(e, "publisher"),
        },
        r = recv_opt(self.sub_socket.as_ref(), &mut sub_buf) => match (r, self.sub.as_mut()) {
          (Ok((n, from)), Some(sub)) => sub.receive(Instant::now(), from, &sub_buf[..n]).map(|_| Flow::Go),
          (Ok(_), None) => Ok(Flow::Go),
          (Err(e), _) => udp_error(e, "subscriber"),
        },
        pkt = self.pkt_rx.recv() => {
          // The session holds a sender itself, so the queue never reports closed here. The
          // engine's tick completes every track's frame at once: the burst is taken in one
          // turn (bounded, so signal and sockets still get theirs), then one poll sends it.
          if let Some(p) = pkt {
            self.packet(p);
            let taken = 1 + self.drain_packets(PACKET_BATCH - 1);
            // A burst still coming (more than one track, the queue already empty): its
            // rest is taken after PACKET_LINGER, and one poll sends it all.
            if taken < PACKET_BATCH && self.tracks.len() > 1 {
              tokio::time::sleep(PACKET_LINGER).await;
              self.drain_packets(PACKET_BATCH - taken);
            }
          }
          Ok(Flow::Go)
        },
        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
          let now = Instant::now();
          self.data.timeouts(now);
          let r = self.pc.timeout(now);
          match self.sub.as_mut() {
            Some(sub) => r.and_then(|_| sub.timeout(now)),
            None => r,
          }.map(|_| Flow::Go)
        },
        _ = ping.tick() => self.ping().await,
        _ = playout.tick(), if !self.remote.is_empty() => {
          self.playout();
          Ok(Flow::Go)
        },
      };
      match flow {
        Ok(Flow::Go) => {}
        Ok(f) => return f,
        Err(e) => return Flow::End(e.to_string()),
      }
    }
  }

  /// Answers a server offer on the subscriber connection, making it (socket, candidate,
  /// trickle) on the first one.
  async fn subscriber_offer(&mut self, offer: proto::SessionDescription) -> Result<()> {
    if self.sub.is_none() {
      let socket = UdpSocket::bind(SocketAddr::new(self.local_ip, 0))
        .await
        .map_err(|e| Error::Peer(format!("binding a UDP socket on {}: {e}", self.local_ip)))?;
      let local = socket.local_addr().map_err(|e| Error::Peer(e.to_string()))?;
      let mut sub = Subscriber::new_rtp(local, Instant::now())?;
      for c in self.early_sub_candidates.drain(..) {
        sub.add_remote_candidate(&c)?;
      }
      let inits = sub.local_candidate_inits()?;
      self.sub = Some(sub);
      self.sub_socket = Some(socket);
      for init in inits {
        self
          .send(Req::Trickle(proto::TrickleRequest {
            candidate_init: init,
            target: proto::SignalTarget::Subscriber as i32,
            r#final: false,
          }))
          .await?;
      }
    }
    let Some(sub) = self.sub.as_mut() else {
      return Err(Error::Closed);
    };
    let sdp = sub.accept_offer(&offer.sdp)?;
    let mids: HashMap<Mid, String> = audio_mlines(&offer.sdp)
      .into_iter()
      .filter(|(_, sends, _)| *sends)
      .filter_map(|(mid, _, msid)| {
        let sid = offer.mid_to_track_id.get(&mid).cloned().or(msid)?;
        Some((Mid::from(mid.as_str()), sid))
      })
      .collect();
    let gone: Vec<String> = self
      .remote
      .iter()
      .filter(|(sid, r)| mids.get(&r.mid) != Some(*sid))
      .map(|(sid, _)| sid.clone())
      .collect();
    for sid in gone {
      self.end_remote(&sid, "unsubscribed");
    }
    self.mids = mids;
    self.attach_tracks();
    self
      .send(Req::Answer(proto::SessionDescription {
        r#type: "answer".into(),
        sdp,
        id: offer.id,
        mid_to_track_id: Default::default(),
      }))
      .await
  }

  async fn ping(&mut self) -> Result<Flow> {
    if self.sink.is_none() {
      return Ok(Flow::Go);
    }
    if self.last_rx.elapsed() > self.info.ping_timeout {
      return Ok(self.lost_signal(format!(
        "nothing from the server for {} ms (ping timeout)",
        self.info.ping_timeout.as_millis()
      )));
    }
    let now_ms = std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .map(|d| d.as_millis() as i64)
      .unwrap_or(0);
    let rtt = self.stats.lock().rtt_ms;
    self.send(Req::PingReq(proto::Ping { timestamp: now_ms, rtt })).await?;
    self.stats.lock().pings += 1;
    Ok(Flow::Go)
  }

  /// Takes up to `max` queued packets without waiting; returns how many.
  fn drain_packets(&mut self, max: usize) -> usize {
    let mut n = 0;
    while n < max {
      match self.pkt_rx.try_recv() {
        Ok(p) => self.packet(p),
        Err(_) => break,
      }
      n += 1;
    }
    n
  }

  fn packet(&mut self, p: OpusPacket) {
    let n = p.data.len();
    let live = self
      .tracks
      .values()
      .find(|t| t.key == p.track)
      .and_then(|t| match t.phase {
        TrackPhase::Live { mid, pt } => Some((mid, pt)),
        _ => None,
      });
    let sent = match live {
      Some((mid, pt)) if self.pc.is_connected() => self.pc.write_opus(mid, pt, p.at, p.rtp_ts, &p.data).is_ok(),
      _ => false,
    };
    p.stats.dequeued(n, sent);
  }

  async fn command(&mut self, c: Command) -> Result<Flow> {
    match c {
      Command::Data(c) => {
        self.data.command(c, Instant::now());
        Ok(Flow::Go)
      }
      Command::Publish { name, opus, reply } => {
        let key = self.next_track;
        self.next_track += 1;
        let cid = format!("capstan-audio-{key}");
        self.send(Req::AddTrack(add_track_request(&cid, &name, &opus))).await?;
        self.tracks.insert(
          cid,
          TrackState {
            key,
            name,
            sid: String::new(),
            opus,
            stats: Arc::new(TrackStats::default()),
            phase: TrackPhase::Requested,
            mid: None,
            publish_reply: Some(reply),
          },
        );
        Ok(Flow::Go)
      }
      Command::Unpublish { cid, reply } => {
        let Some(t) = self.tracks.get_mut(&cid) else {
          let _ = reply.send(Err(Error::InvalidOption(format!("no track {cid} is published"))));
          return Ok(Flow::Go);
        };
        let Some(mid) = t.mid else {
          let _ = reply.send(Err(Error::InvalidOption(format!("track {cid} is not negotiated yet"))));
          return Ok(Flow::Go);
        };
        t.phase = TrackPhase::Unpublishing;
        self.pc.deactivate(mid);
        self.queued.push(reply);
        self.negotiate().await?;
        Ok(Flow::Go)
      }
      Command::SetSubscribed {
        track_sid,
        subscribe,
        reply,
      } => {
        let Some(participant_sid) = self.track_owner(&track_sid) else {
          let _ = reply.send(Err(Error::InvalidOption(format!(
            "no remote audio track {track_sid} in the room"
          ))));
          return Ok(Flow::Go);
        };
        self.send(subscription(&track_sid, &participant_sid, subscribe)).await?;
        if subscribe {
          self.off.remove(&track_sid);
          self.wanted.insert(track_sid.clone());
          self.attach_tracks();
        } else {
          self.wanted.remove(&track_sid);
          self.off.insert(track_sid.clone());
          self.end_remote(&track_sid, "unsubscribed");
        }
        let _ = reply.send(Ok(()));
        Ok(Flow::Go)
      }
      Command::Close { reply } => {
        let _ = reply.send(());
        Ok(Flow::End("closed by the caller".into()))
      }
    }
  }

  async fn response(&mut self, r: Res) -> Result<Flow> {
    match r {
      Res::Answer(a) => {
        let added = self.pc.accept_answer(&a.sdp, a.id)?;
        for (cid, mid) in added {
          let pt = self.pc.opus_pt(mid);
          let Some(t) = self.tracks.get_mut(&cid) else { continue };
          t.mid = Some(mid);
          match pt {
            Some(pt) => {
              t.phase = TrackPhase::Live { mid, pt };
              if let Some(reply) = t.publish_reply.take() {
                let track = LocalAudioTrack {
                  sid: t.sid.clone(),
                  cid: cid.clone(),
                  name: t.name.clone(),
                  opus: t.opus,
                  packets: PacketSender {
                    track: t.key,
                    tx: self.pkt_tx.clone(),
                    stats: t.stats.clone(),
                    limit: self.queue_packets,
                  },
                };
                let _ = reply.send(Ok(track));
              }
            }
            None => {
              if let Some(reply) = t.publish_reply.take() {
                let _ = reply.send(Err(Error::Peer(
                  "the answer accepted no Opus on the track's m-line".into(),
                )));
              }
            }
          }
        }
        self.tracks.retain(|_, t| !matches!(t.phase, TrackPhase::Unpublishing));
        for reply in self.in_flight.drain(..) {
          let _ = reply.send(Ok(()));
        }
        self.negotiate().await?;
      }
      Res::Trickle(t) => {
        if t.target == proto::SignalTarget::Publisher as i32 {
          // A candidate this client cannot parse is counted, not fatal: the others may do.
          if self.pc.add_remote_candidate(&t.candidate_init).is_err() {
            self.stats.lock().bad_candidates += 1;
          }
        } else if let Some(sub) = self.sub.as_mut() {
          if sub.add_remote_candidate(&t.candidate_init).is_err() {
            self.stats.lock().bad_candidates += 1;
          }
        } else if self.early_sub_candidates.len() < MAX_EARLY_CANDIDATES {
          self.early_sub_candidates.push(t.candidate_init);
        }
      }
      Res::TrackPublished(p) => {
        let Some(t) = self.tracks.get_mut(&p.cid) else {
          return Ok(Flow::Go);
        };
        if matches!(t.phase, TrackPhase::Requested) {
          let old = std::mem::replace(&mut t.sid, p.track.map(|i| i.sid).unwrap_or_default());
          if !old.is_empty() && old != t.sid {
            let sid = t.sid.clone();
            self.event(RoomEvent::LocalTrackRepublished { old_sid: old, sid });
          }
          let Some(t) = self.tracks.get_mut(&p.cid) else {
            return Ok(Flow::Go);
          };
          t.phase = TrackPhase::Negotiating;
          let stream = format!("{}|{}", self.info.identity, p.cid);
          self.pc.add_audio(&p.cid, &stream);
          self.negotiate().await?;
        }
      }
      Res::TrackUnpublished(u) => {
        self.tracks.retain(|_, t| t.sid != u.track_sid);
        self.event(RoomEvent::TrackUnpublished { track_sid: u.track_sid });
      }
      Res::TrackSubscribed(s) => self.event(RoomEvent::TrackSubscribed { track_sid: s.track_sid }),
      Res::RequestResponse(rr)
        if rr.reason != proto::request_response::Reason::Ok as i32
          && rr.reason != proto::request_response::Reason::Queued as i32 =>
      {
        // A refused AddTrack names itself (protocol > 14): its publish fails with the reason.
        // (QUEUED is not a refusal: a second AddTrack for a cid still pending waits.)
        if let Some(proto::request_response::Request::AddTrack(add)) = rr.request {
          if let Some(mut t) = self.tracks.remove(&add.cid) {
            if let Some(reply) = t.publish_reply.take() {
              let why = proto::request_response::Reason::try_from(rr.reason)
                .map(|r| r.as_str_name())
                .unwrap_or("?");
              let msg = format!(
                "the server refused the track (reason {} {why}): {}",
                rr.reason, rr.message
              );
              let _ = reply.send(Err(Error::Signal(msg)));
            }
          }
        }
      }
      Res::PongResp(p) => {
        let now_ms = std::time::SystemTime::now()
          .duration_since(std::time::UNIX_EPOCH)
          .map(|d| d.as_millis() as i64)
          .unwrap_or(0);
        let mut st = self.stats.lock();
        st.pongs += 1;
        st.rtt_ms = (now_ms - p.last_ping_timestamp).max(0);
      }
      Res::RefreshToken(t) if !t.is_empty() => self.token = t,
      Res::Leave(l) if l.action == proto::leave_request::Action::Resume as i32 => {
        return Ok(self.lost_signal("the server asked to resume".into()));
      }
      Res::Leave(l) => {
        // The action says what the server expects next: RECONNECT is a new join (a full
        // reconnect, within the recovery bound); DISCONNECT ends the session, naming why.
        let why = proto::DisconnectReason::try_from(l.reason)
          .map(|r| r.as_str_name())
          .unwrap_or("?");
        let action = proto::leave_request::Action::try_from(l.action)
          .map(|a| a.as_str_name())
          .unwrap_or("?");
        let said = format!("the server asked to leave (reason {} {why}, action {action})", l.reason);
        if l.action == proto::leave_request::Action::Reconnect as i32 && self.can_resume() {
          return Ok(Flow::Restart(said));
        }
        return Ok(Flow::End(said));
      }
      Res::Offer(o) => self.subscriber_offer(o).await?,
      Res::Update(u) => self.update_participants(u.participants),
      _ => {}
    }
    Ok(Flow::Go)
  }

  /// Leaves politely (bounded), fails whatever still waits, tells the caller why.
  async fn finish(mut self, reason: String) {
    let _ = self
      .send(Req::Leave(proto::LeaveRequest {
        can_reconnect: false,
        reason: proto::DisconnectReason::ClientInitiated as i32,
        action: proto::leave_request::Action::Disconnect as i32,
        regions: None,
      }))
      .await;
    if let Some(sink) = self.sink.as_mut() {
      let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
    }
    if let Some((task, _)) = self.resuming.take() {
      task.abort();
    }
    self.pc.disconnect();
    if let Some(sub) = self.sub.as_mut() {
      sub.disconnect();
    }
    if let Some(r) = self.ready.take() {
      let _ = r.send(Err(Error::Connect(reason.clone())));
    }
    self.data.finish(&reason);
    let live: Vec<String> = self.remote.keys().cloned().collect();
    for sid in live {
      self.end_remote(&sid, &format!("room closed: {reason}"));
    }
    for (_, t) in self.tracks.drain() {
      if let Some(reply) = t.publish_reply {
        let _ = reply.send(Err(Error::Closed));
      }
    }
    // Packets still queued were never sent.
    self.pkt_rx.close();
    while let Ok(p) = self.pkt_rx.try_recv() {
      p.stats.dequeued(p.data.len(), false);
    }
    self.event(RoomEvent::Disconnected { reason });
  }
}

/// The receive side.
impl Session {
  /// Takes in participant infos (the join's or an update's): joins, leaves, and their audio
  /// tracks published or unpublished, each told once; then maps any new tracks.
  fn update_participants(&mut self, list: Vec<proto::ParticipantInfo>) {
    for p in list {
      // Ourselves, also under an earlier sid (a full reconnect's join may still list it).
      if p.sid == self.info.participant_sid
        || p.sid.is_empty()
        || (!p.identity.is_empty() && p.identity == self.info.identity)
      {
        continue;
      }
      if self
        .versions
        .get(&p.sid)
        .is_some_and(|v| p.version != 0 && *v > p.version)
      {
        continue;
      }
      self.versions.insert(p.sid.clone(), p.version);
      if p.state == proto::participant_info::State::Disconnected as i32 {
        let old = self.participants.lock().remove(&p.sid);
        if let Some(old) = old {
          for t in &old.audio_tracks {
            if self.remote.contains_key(&t.sid) {
              self.end_remote(&t.sid, "participant left");
            }
          }
          self.data.participant_left(&old.identity);
          let reason = proto::DisconnectReason::try_from(p.disconnect_reason)
            .map(|r| r.as_str_name().to_string())
            .unwrap_or_else(|_| p.disconnect_reason.to_string());
          self.event(RoomEvent::ParticipantLeft {
            sid: old.sid,
            identity: old.identity,
            reason,
          });
        }
        continue;
      }
      let audio: Vec<RemoteTrackInfo> = p
        .tracks
        .iter()
        .filter(|t| t.r#type == proto::TrackType::Audio as i32)
        .map(|t| RemoteTrackInfo {
          sid: t.sid.clone(),
          name: t.name.clone(),
          // `stereo` is deprecated for `audio_features`, which older publishers do not send.
          #[allow(deprecated)]
          stereo: t.stereo || t.audio_features.contains(&(proto::AudioTrackFeature::TfStereo as i32)),
          muted: t.muted,
        })
        .collect();
      let now = RemoteParticipant {
        sid: p.sid.clone(),
        identity: p.identity.clone(),
        name: p.name.clone(),
        audio_tracks: audio,
      };
      let before = self.participants.lock().insert(p.sid.clone(), now.clone());
      let old_tracks = match before {
        Some(b) => b.audio_tracks,
        None => {
          self.event(RoomEvent::ParticipantJoined {
            sid: now.sid.clone(),
            identity: now.identity.clone(),
            name: now.name.clone(),
          });
          Vec::new()
        }
      };
      for t in &old_tracks {
        if !now.audio_tracks.iter().any(|n| n.sid == t.sid) {
          if self.remote.contains_key(&t.sid) {
            self.end_remote(&t.sid, "unpublished");
          }
          self.event(RoomEvent::RemoteTrackUnpublished {
            participant_sid: now.sid.clone(),
            track_sid: t.sid.clone(),
          });
        }
      }
      for t in &now.audio_tracks {
        if !old_tracks.iter().any(|o| o.sid == t.sid) {
          self.event(RoomEvent::RemoteTrackPublished {
            participant_sid: now.sid.clone(),
            track_sid: t.sid.clone(),
            name: t.name.clone(),
          });
        }
      }
    }
    self.attach_tracks();
  }

  /// Makes a remote track for each mapped m-line whose track a known participant publishes.
  fn attach_tracks(&mut self) {
    let pending: Vec<(Mid, String)> = self
      .mids
      .iter()
      .filter(|(_, sid)| !self.remote.contains_key(*sid) && !self.off.contains(*sid))
      .map(|(m, s)| (*m, s.clone()))
      .collect();
    for (mid, sid) in pending {
      let found = self.participants.lock().values().find_map(|p| {
        p.audio_tracks
          .iter()
          .find(|t| t.sid == sid)
          .map(|t| (p.sid.clone(), p.identity.clone(), t.clone()))
      });
      let Some((participant_sid, participant_identity, info)) = found else {
        continue;
      };
      let channels = if info.stereo { 2 } else { 1 };
      let format = capstan_core::Format::new(crate::jitter::RATE, channels).expect("48 kHz, 1 or 2 channels");
      let (Ok(jb), Ok(audio)) = (
        JitterBuffer::new(channels, self.jitter),
        RemoteAudio::new(format, self.remote_chunks),
      ) else {
        continue; // both were validated at connect
      };
      let track = RemoteAudioTrack {
        sid: sid.clone(),
        participant_sid,
        participant_identity,
        name: info.name,
        format,
        audio: Arc::new(audio),
      };
      self.remote_tracks.lock().insert(sid.clone(), track.clone());
      self.remote.insert(
        sid,
        Remote {
          mid,
          jb,
          track: track.clone(),
        },
      );
      self.event(RoomEvent::RemoteTrackSubscribed(track));
    }
  }

  /// Ends a subscribed track: its buffered packets are discarded (counted), its audio says
  /// `Ended` once read out, and its m-line routes nothing more.
  fn end_remote(&mut self, sid: &str, reason: &str) {
    let Some(mut r) = self.remote.remove(sid) else {
      return;
    };
    r.jb.finish();
    r.track.audio.set_packets(&r.jb.counters());
    r.track.audio.end(reason);
    self.remote_tracks.lock().remove(sid);
    if self.mids.get(&r.mid).is_some_and(|s| s == sid) {
      self.mids.remove(&r.mid);
    }
    self.event(RoomEvent::RemoteTrackEnded {
      track_sid: sid.to_string(),
      reason: reason.to_string(),
    });
  }

  fn rtp(&mut self, mid: Option<Mid>, seq: u64, rtp_time: u64, data: &[u8]) {
    let r = mid
      .and_then(|m| self.mids.get(&m))
      .and_then(|sid| self.remote.get_mut(sid));
    match r {
      Some(r) => {
        r.jb.push(Instant::now(), seq, rtp_time, data);
        r.track.audio.set_packets(&r.jb.counters());
      }
      None => self.stats.lock().unrouted_packets += 1,
    }
  }

  /// One playout tick: every track's due chunks into its audio buffer.
  fn playout(&mut self) {
    let now = Instant::now();
    for r in self.remote.values_mut() {
      let audio = &r.track.audio;
      r.jb.pull(now, |chunk, concealed| audio.push(chunk, concealed));
      audio.set_packets(&r.jb.counters());
    }
  }
}
