//! The data side: user packets, RPC and byte streams over LiveKit's data channels, in the
//! wire format of LiveKit's other SDKs (a `DataPacket` protobuf per SCTP message).
//!
//! Client data goes out on the publisher connection's `_reliable` (or `_lossy`) channel; the
//! server forwards it to the others on their subscriber connection's channels (which the
//! server opens), so packets are taken from the channels of both connections.
//!
//! Everything is bounded: the send queue in front of str0m's SCTP buffer by bytes (a packet
//! that does not fit fails, counted; a byte stream's chunks wait for room instead, which is
//! its back-pressure), RPCs in flight each way, open incoming streams, and each incoming
//! stream's buffer ([`StreamBuffer`]: past its byte cap the stream fails, counted).
//!
//! RPC follows client-sdk-js (`src/room/rpc/`): the callee acks at once, then answers with
//! a payload or an [`RpcError`]; the caller fails with 1501 when no ack came within
//! [`RPC_MAX_ROUND_TRIP`] (a callee not in the room too: this client does not refuse a call
//! to an identity it has not heard of yet, since the server's participant updates lag) and 1502 when no response came within its timeout. This client
//! advertises no `client_protocol`, so the others send it version-1 packets (never the
//! data-stream or compressed forms).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use parking_lot::Mutex;
use prost::Message as _;
use proto::data_packet::Value;
use str0m::channel::ChannelId;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::peer::{Pc, LOSSY_CHANNEL, RELIABLE_CHANNEL};
use crate::remote::Notify;
use crate::room::{RoomEvent, SignalStats};

/// RPC request and response payloads, and `RpcError.data` (client-sdk-js `MAX_PAYLOAD_BYTES`).
pub const MAX_RPC_PAYLOAD_BYTES: usize = 15_360;
/// `RpcError.message` is cut to this many bytes, as the other SDKs do.
pub const MAX_RPC_MESSAGE_BYTES: usize = 256;
/// How long a request and its ack may take (client-sdk-js `maxRoundTripLatencyMs`: 7 s, to
/// cover LiveKit Cloud's relay retries).
pub const RPC_MAX_ROUND_TRIP: Duration = Duration::from_secs(7);
/// The response timeout when the caller gives none (rust-sdks' default).
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Byte-stream chunk content, as the SDKs cut it.
pub const STREAM_CHUNK_BYTES: usize = 15_000;
/// `mime_type` of a byte stream when the caller gives none.
pub const DEFAULT_STREAM_MIME: &str = "application/octet-stream";
/// Encoded packets waiting for the SCTP buffer (str0m takes 128 KiB across channels).
pub const DEFAULT_DATA_QUEUE_BYTES: usize = 1 << 20;
/// An incoming stream's unread bytes before it fails.
pub const DEFAULT_STREAM_BUFFER_BYTES: usize = 4 << 20;
/// Bounds for both options.
pub const MAX_DATA_BYTES_OPTION: usize = 256 << 20;
/// Incoming streams open at once; a header past it is refused (counted).
pub const MAX_INCOMING_STREAMS: usize = 64;
/// RPCs in flight each way (calls we wait on, requests we have not answered).
pub const MAX_PENDING_RPCS: usize = 256;
/// Stream chunks waiting for room in a full send queue.
const MAX_PARKED: usize = 64;

/// An RPC failure: a built-in code (below) or an application's own, with the SDKs'
/// message and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
  pub code: u32,
  pub message: String,
  /// Empty when none.
  pub data: String,
}

impl RpcError {
  pub const APPLICATION_ERROR: u32 = 1500;
  pub const CONNECTION_TIMEOUT: u32 = 1501;
  pub const RESPONSE_TIMEOUT: u32 = 1502;
  pub const RECIPIENT_DISCONNECTED: u32 = 1503;
  pub const RESPONSE_PAYLOAD_TOO_LARGE: u32 = 1504;
  pub const SEND_FAILED: u32 = 1505;
  pub const UNSUPPORTED_METHOD: u32 = 1400;
  pub const RECIPIENT_NOT_FOUND: u32 = 1401;
  pub const REQUEST_PAYLOAD_TOO_LARGE: u32 = 1402;
  pub const UNSUPPORTED_SERVER: u32 = 1403;
  pub const UNSUPPORTED_VERSION: u32 = 1404;

  /// Message and data cut to the SDKs' limits (on a UTF-8 boundary).
  pub fn new(code: u32, message: &str, data: &str) -> Self {
    RpcError {
      code,
      message: truncate(message, MAX_RPC_MESSAGE_BYTES),
      data: truncate(data, MAX_RPC_PAYLOAD_BYTES),
    }
  }

  /// A built-in code with the other SDKs' message.
  pub fn built_in(code: u32, data: &str) -> Self {
    let message = match code {
      Self::APPLICATION_ERROR => "Application error in method handler",
      Self::CONNECTION_TIMEOUT => "Connection timeout",
      Self::RESPONSE_TIMEOUT => "Response timeout",
      Self::RECIPIENT_DISCONNECTED => "Recipient disconnected",
      Self::RESPONSE_PAYLOAD_TOO_LARGE => "Response payload too large",
      Self::SEND_FAILED => "Failed to send",
      Self::UNSUPPORTED_METHOD => "Method not supported at destination",
      Self::RECIPIENT_NOT_FOUND => "Recipient not found",
      Self::REQUEST_PAYLOAD_TOO_LARGE => "Request payload too large",
      Self::UNSUPPORTED_SERVER => "RPC not supported by server",
      Self::UNSUPPORTED_VERSION => "Unsupported RPC version",
      _ => "RPC error",
    };
    Self::new(code, message, data)
  }

  fn to_proto(&self) -> proto::RpcError {
    proto::RpcError {
      code: self.code,
      message: self.message.clone(),
      data: self.data.clone(),
    }
  }
}

impl fmt::Display for RpcError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{} ({})", self.message, self.code)?;
    if !self.data.is_empty() {
      write!(f, ": {}", self.data)?;
    }
    Ok(())
  }
}

fn truncate(s: &str, max: usize) -> String {
  if s.len() <= max {
    return s.to_string();
  }
  let mut end = max;
  while !s.is_char_boundary(end) {
    end -= 1;
  }
  s[..end].to_string()
}

/// A random (version 4) UUID, as the SDKs name requests and streams.
pub fn uuid_v4() -> String {
  let mut b = [0u8; 16];
  // The OS generator failing is not something a caller can handle; ids stay unique
  // enough from the clock in that case.
  if getrandom::fill(&mut b).is_err() {
    let t = std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .map(|d| d.as_nanos())
      .unwrap_or(0);
    b = t.to_le_bytes();
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
  format!(
    "{}-{}-{}-{}-{}",
    &h[0..8],
    &h[8..12],
    &h[12..16],
    &h[16..20],
    &h[20..32]
  )
}

fn now_ms() -> i64 {
  std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map(|d| d.as_millis() as i64)
    .unwrap_or(0)
}

/// A `DataPacket` from `identity` to `to` (everyone when empty), encoded.
pub fn encode_packet(identity: &str, to: &[String], reliable: bool, value: Value) -> Vec<u8> {
  #[allow(deprecated)]
  let p = proto::DataPacket {
    kind: if reliable {
      proto::data_packet::Kind::Reliable as i32
    } else {
      proto::data_packet::Kind::Lossy as i32
    },
    participant_identity: identity.to_string(),
    destination_identities: to.to_vec(),
    value: Some(value),
    ..Default::default()
  };
  p.encode_to_vec()
}

pub fn user_value(payload: &[u8], topic: Option<&str>) -> Value {
  Value::User(proto::UserPacket {
    payload: payload.to_vec(),
    topic: topic.map(str::to_string),
    ..Default::default()
  })
}

pub fn request_value(id: &str, method: &str, payload: &str, timeout: Duration) -> Value {
  Value::RpcRequest(proto::RpcRequest {
    id: id.to_string(),
    method: method.to_string(),
    payload: payload.to_string(),
    response_timeout_ms: timeout.as_millis().min(u32::MAX as u128) as u32,
    version: 1,
    ..Default::default()
  })
}

pub fn ack_value(id: &str) -> Value {
  Value::RpcAck(proto::RpcAck {
    request_id: id.to_string(),
  })
}

/// A response; a payload over [`MAX_RPC_PAYLOAD_BYTES`] becomes the 1504 error, as the
/// other SDKs answer it.
pub fn response_value(id: &str, result: &std::result::Result<String, RpcError>) -> Value {
  let value = match result {
    Ok(p) if p.len() <= MAX_RPC_PAYLOAD_BYTES => proto::rpc_response::Value::Payload(p.clone()),
    Ok(_) => proto::rpc_response::Value::Error(RpcError::built_in(RpcError::RESPONSE_PAYLOAD_TOO_LARGE, "").to_proto()),
    Err(e) => proto::rpc_response::Value::Error(e.to_proto()),
  };
  Value::RpcResponse(proto::RpcResponse {
    request_id: id.to_string(),
    value: Some(value),
  })
}

/// What the caller gives to open a byte stream.
#[derive(Debug, Clone, Default)]
pub struct ByteStreamOptions {
  /// Everyone in the room when empty.
  pub destination_identities: Vec<String>,
  pub topic: String,
  pub name: String,
  /// [`DEFAULT_STREAM_MIME`] when none.
  pub mime_type: Option<String>,
  pub attributes: HashMap<String, String>,
  /// Told to the receivers when known.
  pub total_length: Option<u64>,
}

pub fn header_value(id: &str, o: &ByteStreamOptions) -> Value {
  #[allow(deprecated)]
  let h = proto::data_stream::Header {
    stream_id: id.to_string(),
    timestamp: now_ms(),
    topic: o.topic.clone(),
    mime_type: o.mime_type.clone().unwrap_or_else(|| DEFAULT_STREAM_MIME.to_string()),
    total_length: o.total_length,
    attributes: o.attributes.clone(),
    content_header: Some(proto::data_stream::header::ContentHeader::ByteHeader(
      proto::data_stream::ByteHeader { name: o.name.clone() },
    )),
    ..Default::default()
  };
  Value::StreamHeader(h)
}

/// The chunks of `bytes`, cut at [`STREAM_CHUNK_BYTES`], indexed from `first_index`.
pub fn chunk_values(id: &str, first_index: u64, bytes: &[u8]) -> Vec<Value> {
  bytes
    .chunks(STREAM_CHUNK_BYTES)
    .enumerate()
    .map(|(i, c)| {
      Value::StreamChunk(proto::data_stream::Chunk {
        stream_id: id.to_string(),
        chunk_index: first_index + i as u64,
        content: c.to_vec(),
        ..Default::default()
      })
    })
    .collect()
}

/// The end of a stream: an empty reason is a normal end, any other an abnormal one.
pub fn trailer_value(id: &str, reason: &str) -> Value {
  Value::StreamTrailer(proto::data_stream::Trailer {
    stream_id: id.to_string(),
    reason: reason.to_string(),
    attributes: HashMap::new(),
  })
}

/// What one [`StreamBuffer::read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadStream {
  /// The next bytes, in order.
  Bytes(Vec<u8>),
  /// Nothing now; the notify callback says when there is.
  Empty,
  /// The sender closed the stream normally and everything was read.
  Ended,
  /// The stream broke: the sender aborted (its trailer's reason), left, the room closed,
  /// or the reader fell behind past the cap (then the unread bytes were discarded).
  Failed(String),
}

/// Counters of one incoming stream: `received = read + queued + discarded` at every snapshot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
  pub bytes_received: u64,
  pub bytes_read: u64,
  pub bytes_queued: u64,
  /// Unread bytes thrown away when the stream failed for the cap.
  pub bytes_discarded: u64,
  pub chunks: u64,
  /// Chunks whose index was below the next one expected (dropped as repeats).
  pub out_of_order: u64,
  /// Indices skipped (a chunk came with a higher index than the next expected).
  pub missing: u64,
}

impl StreamStats {
  pub fn balanced(&self) -> bool {
    self.bytes_received == self.bytes_read + self.bytes_queued + self.bytes_discarded
  }
}

struct BufInner {
  chunks: VecDeque<Vec<u8>>,
  /// Bytes of the front chunk already read.
  front_read: usize,
  stats: StreamStats,
  end: Option<std::result::Result<(), String>>,
  trailer_attributes: HashMap<String, String>,
  armed: bool,
  notify: Option<Notify>,
}

impl BufInner {
  fn wake(&mut self) -> Option<Notify> {
    if self.armed && self.notify.is_some() {
      self.armed = false;
      self.notify.clone()
    } else {
      None
    }
  }
}

/// The received bytes of one incoming stream, read without blocking: the session fills it,
/// the reader drains it, woken (as [`crate::RemoteAudio`]'s reader is) once after it found
/// the buffer empty, not per chunk. The reader's contract: read until `Empty`, then wait.
pub struct StreamBuffer {
  cap: usize,
  inner: Mutex<BufInner>,
}

impl fmt::Debug for StreamBuffer {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("StreamBuffer")
      .field("cap", &self.cap)
      .field("stats", &self.stats())
      .finish()
  }
}

impl StreamBuffer {
  pub fn new(cap: usize) -> Self {
    StreamBuffer {
      cap,
      inner: Mutex::new(BufInner {
        chunks: VecDeque::new(),
        front_read: 0,
        stats: StreamStats::default(),
        end: None,
        trailer_attributes: HashMap::new(),
        armed: true,
        notify: None,
      }),
    }
  }

  pub fn capacity(&self) -> usize {
    self.cap
  }

  /// Takes up to `max` bytes (at least one chunk's worth is not promised: `max` rules).
  pub fn read(&self, max: usize) -> ReadStream {
    let mut g = self.inner.lock();
    if g.chunks.is_empty() {
      g.armed = true;
      return match &g.end {
        None => ReadStream::Empty,
        Some(Ok(())) => ReadStream::Ended,
        Some(Err(why)) => ReadStream::Failed(why.clone()),
      };
    }
    if max == 0 {
      return ReadStream::Empty;
    }
    let mut out = Vec::with_capacity(max.min(g.stats.bytes_queued as usize));
    while out.len() < max {
      let from = g.front_read;
      let Some(front) = g.chunks.front() else { break };
      let take = (front.len() - from).min(max - out.len());
      out.extend_from_slice(&front[from..from + take]);
      if from + take == front.len() {
        g.chunks.pop_front();
        g.front_read = 0;
      } else {
        g.front_read = from + take;
      }
    }
    g.stats.bytes_read += out.len() as u64;
    g.stats.bytes_queued -= out.len() as u64;
    ReadStream::Bytes(out)
  }

  /// Sets (or clears) the wake-up; called at once if something waits unseen.
  pub fn set_notify(&self, f: Option<Notify>) {
    let fire = {
      let mut g = self.inner.lock();
      g.notify = f;
      if !g.chunks.is_empty() || g.end.is_some() {
        g.wake()
      } else {
        None
      }
    };
    if let Some(f) = fire {
      f();
    }
  }

  pub fn stats(&self) -> StreamStats {
    self.inner.lock().stats
  }

  /// The trailer's attributes, once the stream has ended.
  pub fn trailer_attributes(&self) -> HashMap<String, String> {
    self.inner.lock().trailer_attributes.clone()
  }

  /// Whether the stream has ended or failed (there may still be bytes to read).
  pub fn is_finished(&self) -> bool {
    self.inner.lock().end.is_some()
  }

  /// One chunk's content; false if it failed the stream for the cap.
  fn push(&self, index: u64, expected: u64, content: Vec<u8>) -> bool {
    let (ok, fire) = {
      let mut g = self.inner.lock();
      if g.end.is_some() {
        return false;
      }
      g.stats.chunks += 1;
      g.stats.bytes_received += content.len() as u64;
      if index > expected {
        g.stats.missing += index - expected;
      }
      if g.stats.bytes_queued as usize + content.len() > self.cap {
        let discard = g.stats.bytes_queued + content.len() as u64;
        g.chunks.clear();
        g.front_read = 0;
        g.stats.bytes_queued = 0;
        g.stats.bytes_discarded += discard;
        g.end = Some(Err(format!("the reader fell behind: over {} bytes unread", self.cap)));
        (false, g.wake())
      } else {
        g.stats.bytes_queued += content.len() as u64;
        if !content.is_empty() {
          g.chunks.push_back(content);
        }
        (true, g.wake())
      }
    };
    if let Some(f) = fire {
      f();
    }
    ok
  }

  fn out_of_order(&self) {
    self.inner.lock().stats.out_of_order += 1;
  }

  /// Ends (`Ok`) or fails the stream; the bytes already in it stay readable.
  fn finish(&self, end: std::result::Result<(), String>, attributes: HashMap<String, String>) {
    let fire = {
      let mut g = self.inner.lock();
      if g.end.is_some() {
        return;
      }
      g.end = Some(end);
      g.trailer_attributes = attributes;
      g.wake()
    };
    if let Some(f) = fire {
      f();
    }
  }
}

/// A byte (or text) stream another participant opened to us.
#[derive(Debug, Clone)]
pub struct IncomingByteStream {
  pub id: String,
  pub from_identity: String,
  pub topic: String,
  /// The byte header's name (empty for a text stream).
  pub name: String,
  pub mime_type: String,
  pub total_length: Option<u64>,
  pub attributes: HashMap<String, String>,
  /// A text stream (`TextHeader`: chat, transcriptions): its bytes are UTF-8.
  pub text: bool,
  /// The sender's clock, ms since the epoch.
  pub timestamp_ms: i64,
  pub data: Arc<StreamBuffer>,
}

impl PartialEq for IncomingByteStream {
  fn eq(&self, o: &Self) -> bool {
    self.id == o.id && Arc::ptr_eq(&self.data, &o.data)
  }
}

impl Eq for IncomingByteStream {}

/// What the data side has done, for the room as a whole.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DataStats {
  /// Packets str0m took, and their bytes.
  pub packets_sent: u64,
  pub bytes_sent: u64,
  /// Packets refused: the queue was full, or a stream chunk waited past its deadline.
  pub send_failed: u64,
  /// Packets still waiting in the queue (and their bytes) when taken.
  pub queued_packets: u64,
  pub queued_bytes: u64,
  /// Packets left unsent when the session ended.
  pub unsent_at_close: u64,
  pub packets_received: u64,
  pub bytes_received: u64,
  /// Packets that did not decode, and kinds this client does not handle.
  pub undecodable: u64,
  pub unhandled: u64,
  pub user_packets: u64,
  pub rpc_calls: u64,
  pub rpc_calls_ok: u64,
  pub rpc_calls_failed: u64,
  pub rpc_requests: u64,
  /// Requests answered by the session itself (unsupported method or version, too many).
  pub rpc_auto_errors: u64,
  pub rpc_responses: u64,
  /// Acks and responses for no call in flight (late, after a timeout).
  pub rpc_stray: u64,
  pub streams_opened: u64,
  pub streams_received: u64,
  pub streams_ended: u64,
  pub streams_failed: u64,
  /// Headers refused: too many open, compressed, a repeated id.
  pub streams_refused: u64,
  /// Streams whose reader dropped the buffer: the rest of their chunks are discarded.
  pub streams_abandoned: u64,
  /// Chunks and trailers for no open stream.
  pub stream_stray: u64,
}

/// What the caller asks of the data side (through the session's command queue).
pub(crate) enum DataCommand {
  /// `wait`: park until the queue has room (a stream's back-pressure) rather than fail.
  Send {
    packet: Vec<u8>,
    reliable: bool,
    wait: bool,
    reply: oneshot::Sender<Result<()>>,
  },
  Call {
    id: String,
    destination: String,
    packet: Vec<u8>,
    timeout: Duration,
    reply: oneshot::Sender<Result<String>>,
  },
  Respond {
    id: String,
    caller: String,
    result: std::result::Result<String, RpcError>,
    reply: oneshot::Sender<Result<()>>,
  },
}

struct Queued {
  bytes: Vec<u8>,
  reliable: bool,
}

struct Parked {
  packet: Queued,
  reply: oneshot::Sender<Result<()>>,
  deadline: Instant,
}

struct Call {
  destination: String,
  ack_by: Option<Instant>,
  respond_by: Instant,
  reply: oneshot::Sender<Result<String>>,
}

struct Request {
  caller: String,
  /// Past it the caller has given up; the entry is forgotten.
  forget_at: Instant,
}

struct Incoming {
  from: String,
  next_index: u64,
  buf: Arc<StreamBuffer>,
}

/// Shared between the room and its session.
#[derive(Clone, Default)]
pub(crate) struct DataShared {
  pub stats: Arc<Mutex<DataStats>>,
  pub methods: Arc<Mutex<HashSet<String>>>,
}

/// The data side of a session: owned by the session task, like the peer connections.
pub(crate) struct Data {
  identity: String,
  server_version: String,
  events: mpsc::Sender<RoomEvent>,
  signal_stats: Arc<Mutex<SignalStats>>,
  shared: DataShared,
  queue: VecDeque<Queued>,
  queued_bytes: usize,
  queue_cap: usize,
  parked: VecDeque<Parked>,
  park_timeout: Duration,
  reliable: Option<ChannelId>,
  lossy: Option<ChannelId>,
  calls: HashMap<String, Call>,
  requests: HashMap<String, Request>,
  streams: HashMap<String, Incoming>,
  stream_cap: usize,
}

#[allow(clippy::too_many_arguments)]
impl Data {
  pub fn new(
    identity: String,
    server_version: String,
    events: mpsc::Sender<RoomEvent>,
    signal_stats: Arc<Mutex<SignalStats>>,
    shared: DataShared,
    queue_cap: usize,
    stream_cap: usize,
    park_timeout: Duration,
  ) -> Self {
    Data {
      identity,
      server_version,
      events,
      signal_stats,
      shared,
      queue: VecDeque::new(),
      queued_bytes: 0,
      queue_cap,
      parked: VecDeque::new(),
      park_timeout,
      reliable: None,
      lossy: None,
      calls: HashMap::new(),
      requests: HashMap::new(),
      streams: HashMap::new(),
      stream_cap,
    }
  }

  fn event(&self, e: RoomEvent) -> bool {
    if self.events.try_send(e).is_err() {
      self.signal_stats.lock().dropped_events += 1;
      false
    } else {
      true
    }
  }

  fn stats(&self) -> parking_lot::MutexGuard<'_, DataStats> {
    self.shared.stats.lock()
  }

  /// A channel the publisher connection opened (ours: the ones to send on).
  pub fn publisher_channel(&mut self, id: ChannelId, label: &str) {
    match label {
      RELIABLE_CHANNEL => self.reliable = Some(id),
      LOSSY_CHANNEL => self.lossy = Some(id),
      _ => {}
    }
  }

  pub fn publisher_channel_closed(&mut self, id: ChannelId) {
    if self.reliable == Some(id) {
      self.reliable = None;
    }
    if self.lossy == Some(id) {
      self.lossy = None;
    }
  }

  /// Queues a packet if it fits.
  fn enqueue(&mut self, bytes: Vec<u8>, reliable: bool) -> bool {
    if self.queued_bytes + bytes.len() > self.queue_cap {
      self.stats().send_failed += 1;
      return false;
    }
    self.queued_bytes += bytes.len();
    self.queue.push_back(Queued { bytes, reliable });
    self.sync_queue_stats();
    true
  }

  fn sync_queue_stats(&self) {
    let mut s = self.stats();
    s.queued_packets = self.queue.len() as u64;
    s.queued_bytes = self.queued_bytes as u64;
  }

  fn send(&mut self, to: &str, value: Value) -> bool {
    let bytes = encode_packet(&self.identity, &[to.to_string()], true, value);
    self.enqueue(bytes, true)
  }

  /// Moves queued packets into the SCTP buffer while it takes them, then parked chunks into
  /// the room that made. A lossy packet with no lossy channel goes on the reliable one.
  pub fn flush(&mut self, pc: &mut Pc) {
    let mut moved = false;
    while let Some(front) = self.queue.front() {
      let ch = if front.reliable {
        self.reliable
      } else {
        self.lossy.or(self.reliable)
      };
      let Some(ch) = ch else { break };
      match pc.channel_write(ch, &front.bytes) {
        Ok(true) => {
          let q = self.queue.pop_front().expect("front");
          self.queued_bytes -= q.bytes.len();
          let mut s = self.stats();
          s.packets_sent += 1;
          s.bytes_sent += q.bytes.len() as u64;
          moved = true;
        }
        // Full (str0m says when it has room again by taking the next write) or not open.
        _ => break,
      }
    }
    while let Some(p) = self.parked.front() {
      if self.queued_bytes + p.packet.bytes.len() > self.queue_cap {
        break;
      }
      let p = self.parked.pop_front().expect("front");
      self.queued_bytes += p.packet.bytes.len();
      self.queue.push_back(p.packet);
      let _ = p.reply.send(Ok(()));
      moved = true;
    }
    if moved {
      self.sync_queue_stats();
    }
  }

  /// The next instant a deadline passes, if any.
  pub fn next_deadline(&self) -> Option<Instant> {
    let calls = self
      .calls
      .values()
      .map(|c| c.ack_by.map_or(c.respond_by, |a| a.min(c.respond_by)));
    let reqs = self.requests.values().map(|r| r.forget_at);
    let parked = self.parked.front().map(|p| p.deadline);
    calls.chain(reqs).chain(parked).min()
  }

  /// Fails what passed its deadline.
  pub fn timeouts(&mut self, now: Instant) {
    let due: Vec<(String, u32)> = self
      .calls
      .iter()
      .filter_map(|(id, c)| {
        if c.ack_by.is_some_and(|a| a <= now) {
          Some((id.clone(), RpcError::CONNECTION_TIMEOUT))
        } else if c.respond_by <= now {
          Some((id.clone(), RpcError::RESPONSE_TIMEOUT))
        } else {
          None
        }
      })
      .collect();
    for (id, code) in due {
      self.fail_call(&id, RpcError::built_in(code, ""));
    }
    self.requests.retain(|_, r| r.forget_at > now);
    while self.parked.front().is_some_and(|p| p.deadline <= now) {
      let p = self.parked.pop_front().expect("front");
      self.stats().send_failed += 1;
      let _ = p.reply.send(Err(Error::Timeout(format!(
        "data send queue full ({} bytes) for {} ms",
        self.queue_cap,
        self.park_timeout.as_millis()
      ))));
    }
  }

  fn fail_call(&mut self, id: &str, e: RpcError) {
    if let Some(c) = self.calls.remove(id) {
      self.stats().rpc_calls_failed += 1;
      let _ = c.reply.send(Err(Error::Rpc(e)));
    }
  }

  pub fn command(&mut self, c: DataCommand, now: Instant) {
    match c {
      DataCommand::Send {
        packet,
        reliable,
        wait,
        reply,
      } => {
        if self.queued_bytes + packet.len() <= self.queue_cap && self.parked.is_empty() {
          self.queued_bytes += packet.len();
          self.queue.push_back(Queued {
            bytes: packet,
            reliable,
          });
          self.sync_queue_stats();
          let _ = reply.send(Ok(()));
        } else if wait && self.parked.len() < MAX_PARKED && packet.len() <= self.queue_cap {
          self.parked.push_back(Parked {
            packet: Queued {
              bytes: packet,
              reliable,
            },
            reply,
            deadline: now + self.park_timeout,
          });
        } else {
          self.stats().send_failed += 1;
          let _ = reply.send(Err(Error::Peer(format!(
            "data send queue full ({} of {} bytes queued)",
            self.queued_bytes, self.queue_cap
          ))));
        }
      }
      DataCommand::Call {
        id,
        destination,
        packet,
        timeout,
        reply,
      } => {
        self.stats().rpc_calls += 1;
        let fail = |s: &mut Self, code: u32, data: &str, reply: oneshot::Sender<Result<String>>| {
          s.stats().rpc_calls_failed += 1;
          let _ = reply.send(Err(Error::Rpc(RpcError::built_in(code, data))));
        };
        if version_below(&self.server_version, (1, 8, 0)) {
          return fail(self, RpcError::UNSUPPORTED_SERVER, "", reply);
        }
        // No check that the callee is in the room: the server may have admitted a participant
        // whose update has not reached this client yet (it batches them; seconds here), and
        // client-sdk-js sends regardless. A callee that is not there fails with 1501 at the
        // ack deadline.
        if self.calls.len() >= MAX_PENDING_RPCS {
          return fail(self, RpcError::SEND_FAILED, "too many calls in flight", reply);
        }
        if !self.enqueue(packet, true) {
          return fail(self, RpcError::SEND_FAILED, "data send queue full", reply);
        }
        self.calls.insert(
          id,
          Call {
            destination,
            ack_by: Some(now + RPC_MAX_ROUND_TRIP),
            respond_by: now + timeout,
            reply,
          },
        );
      }
      DataCommand::Respond {
        id,
        caller,
        result,
        reply,
      } => {
        if self.requests.get(&id).is_none_or(|r| r.caller != caller) {
          let _ = reply.send(Err(Error::InvalidOption(format!(
            "no RPC request {id} from {caller} waits for an answer (answered, timed out, or its caller left)"
          ))));
          return;
        }
        self.requests.remove(&id);
        if self.send(&caller, response_value(&id, &result)) {
          self.stats().rpc_responses += 1;
          let _ = reply.send(Ok(()));
        } else {
          let _ = reply.send(Err(Error::Peer("data send queue full".into())));
        }
      }
    }
  }

  /// One SCTP message from either connection.
  pub fn receive(&mut self, bytes: &[u8], now: Instant) {
    {
      let mut s = self.stats();
      s.packets_received += 1;
      s.bytes_received += bytes.len() as u64;
    }
    let Ok(p) = proto::DataPacket::decode(bytes) else {
      self.stats().undecodable += 1;
      return;
    };
    let from = p.participant_identity;
    match p.value {
      Some(Value::User(u)) => {
        self.stats().user_packets += 1;
        #[allow(deprecated)]
        let from_identity = if from.is_empty() { u.participant_identity } else { from };
        self.event(RoomEvent::Data {
          from_identity,
          topic: u.topic.unwrap_or_default(),
          payload: u.payload,
        });
      }
      Some(Value::RpcRequest(r)) => self.request(from, r, now),
      Some(Value::RpcAck(a)) => match self.calls.get_mut(&a.request_id) {
        Some(c) => c.ack_by = None,
        None => self.stats().rpc_stray += 1,
      },
      Some(Value::RpcResponse(r)) => {
        let Some(c) = self.calls.remove(&r.request_id) else {
          self.stats().rpc_stray += 1;
          return;
        };
        let result = match r.value {
          Some(proto::rpc_response::Value::Payload(p)) => Ok(p),
          Some(proto::rpc_response::Value::Error(e)) => Err(RpcError::new(e.code, &e.message, &e.data)),
          // Sent only to callers that advertise compression, which this one does not.
          Some(proto::rpc_response::Value::CompressedPayload(_)) => Err(RpcError::built_in(
            RpcError::APPLICATION_ERROR,
            "compressed response not supported",
          )),
          None => Ok(String::new()),
        };
        let mut s = self.stats();
        if result.is_ok() {
          s.rpc_calls_ok += 1;
        } else {
          s.rpc_calls_failed += 1;
        }
        drop(s);
        let _ = c.reply.send(result.map_err(Error::Rpc));
      }
      Some(Value::StreamHeader(h)) => self.header(from, h),
      Some(Value::StreamChunk(c)) => self.chunk(c),
      Some(Value::StreamTrailer(t)) => match self.streams.remove(&t.stream_id) {
        Some(s) => {
          let end = if t.reason.is_empty() { Ok(()) } else { Err(t.reason) };
          let mut st = self.stats();
          if end.is_ok() {
            st.streams_ended += 1;
          } else {
            st.streams_failed += 1;
          }
          drop(st);
          s.buf.finish(end, t.attributes);
        }
        None => self.stats().stream_stray += 1,
      },
      _ => self.stats().unhandled += 1,
    }
  }

  /// Acks at once; answers itself what no handler can (wrong version, unregistered method,
  /// too many waiting, or no room in the caller's event queue); else tells the caller.
  fn request(&mut self, from: String, r: proto::RpcRequest, now: Instant) {
    self.stats().rpc_requests += 1;
    self.send(&from, ack_value(&r.id));
    let auto = if r.version != 1 {
      Some(RpcError::built_in(RpcError::UNSUPPORTED_VERSION, ""))
    } else if !self.shared.methods.lock().contains(&r.method) {
      Some(RpcError::built_in(RpcError::UNSUPPORTED_METHOD, ""))
    } else if self.requests.len() >= MAX_PENDING_RPCS || self.requests.contains_key(&r.id) {
      Some(RpcError::built_in(
        RpcError::APPLICATION_ERROR,
        "too many requests waiting",
      ))
    } else {
      None
    };
    if let Some(e) = auto {
      self.stats().rpc_auto_errors += 1;
      self.send(&from, response_value(&r.id, &Err(e)));
      return;
    }
    let timeout = Duration::from_millis(r.response_timeout_ms as u64);
    let told = self.event(RoomEvent::RpcRequest {
      id: r.id.clone(),
      caller_identity: from.clone(),
      method: r.method,
      payload: r.payload,
      response_timeout: timeout,
    });
    if told {
      self.requests.insert(
        r.id,
        Request {
          caller: from,
          forget_at: now + timeout.max(Duration::from_secs(1)) + RPC_MAX_ROUND_TRIP,
        },
      );
    } else {
      self.stats().rpc_auto_errors += 1;
      let e = RpcError::built_in(RpcError::APPLICATION_ERROR, "the callee's event queue is full");
      self.send(&from, response_value(&r.id, &Err(e)));
    }
  }

  fn header(&mut self, from: String, h: proto::data_stream::Header) {
    use proto::data_stream::header::ContentHeader;
    let refuse = self.streams.len() >= MAX_INCOMING_STREAMS
      || self.streams.contains_key(&h.stream_id)
      || h.compression != proto::data_stream::CompressionType::None as i32;
    if refuse {
      self.stats().streams_refused += 1;
      return;
    }
    let (name, text) = match &h.content_header {
      Some(ContentHeader::ByteHeader(b)) => (b.name.clone(), false),
      Some(ContentHeader::TextHeader(_)) => (String::new(), true),
      None => (String::new(), false),
    };
    let buf = Arc::new(StreamBuffer::new(self.stream_cap));
    let s = IncomingByteStream {
      id: h.stream_id.clone(),
      from_identity: from.clone(),
      topic: h.topic,
      name,
      mime_type: h.mime_type,
      total_length: h.total_length,
      attributes: h.attributes,
      text,
      timestamp_ms: h.timestamp,
      data: buf.clone(),
    };
    self.stats().streams_received += 1;
    // A single-packet stream carries its content in the header.
    if let Some(content) = h.inline_content {
      buf.push(0, 0, content);
      buf.finish(Ok(()), HashMap::new());
      self.stats().streams_ended += 1;
      self.event(RoomEvent::ByteStream(s));
      return;
    }
    if self.event(RoomEvent::ByteStream(s)) {
      self.streams.insert(
        h.stream_id,
        Incoming {
          from,
          next_index: 0,
          buf,
        },
      );
    }
  }

  fn chunk(&mut self, c: proto::data_stream::Chunk) {
    let Some(s) = self.streams.get_mut(&c.stream_id) else {
      self.stats().stream_stray += 1;
      return;
    };
    // Only the session holds it: nobody will read it.
    if Arc::strong_count(&s.buf) == 1 {
      self.streams.remove(&c.stream_id);
      self.stats().streams_abandoned += 1;
      return;
    }
    if c.chunk_index < s.next_index {
      s.buf.out_of_order();
      return;
    }
    let expected = s.next_index;
    s.next_index = c.chunk_index + 1;
    if !s.buf.push(c.chunk_index, expected, c.content) {
      self.streams.remove(&c.stream_id);
      self.stats().streams_failed += 1;
    }
  }

  /// A participant left: calls to it fail (1503), its requests are forgotten, its open
  /// streams fail.
  pub fn participant_left(&mut self, identity: &str) {
    let calls: Vec<String> = self
      .calls
      .iter()
      .filter(|(_, c)| c.destination == identity)
      .map(|(id, _)| id.clone())
      .collect();
    for id in calls {
      self.fail_call(&id, RpcError::built_in(RpcError::RECIPIENT_DISCONNECTED, ""));
    }
    self.requests.retain(|_, r| r.caller != identity);
    let streams: Vec<String> = self
      .streams
      .iter()
      .filter(|(_, s)| s.from == identity)
      .map(|(id, _)| id.clone())
      .collect();
    for id in streams {
      if let Some(s) = self.streams.remove(&id) {
        self.stats().streams_failed += 1;
        s.buf.finish(Err(format!("{identity} left mid-stream")), HashMap::new());
      }
    }
  }

  /// A full reconnect: the old peer connection's channels are gone (the new ones announce
  /// themselves), incoming streams fail (their chunks in flight are lost); queued packets
  /// wait for the new reliable channel, calls keep their deadlines.
  pub fn restart(&mut self, reason: &str) {
    self.reliable = None;
    self.lossy = None;
    let n = self.streams.len() as u64;
    for (_, s) in self.streams.drain() {
      s.buf
        .finish(Err(format!("connection lost mid-stream: {reason}")), HashMap::new());
    }
    self.stats().streams_failed += n;
  }

  pub fn set_server_version(&mut self, v: &str) {
    self.server_version = v.to_string();
  }

  /// The session ended: open streams fail, calls and parked sends fail `Closed` (their
  /// replies are dropped), queued packets are counted unsent.
  pub fn finish(&mut self, reason: &str) {
    for (_, s) in self.streams.drain() {
      s.buf.finish(Err(format!("room closed: {reason}")), HashMap::new());
    }
    let n = self.calls.len() as u64;
    self.calls.clear();
    self.parked.clear();
    let mut s = self.shared.stats.lock();
    s.rpc_calls_failed += n;
    s.unsent_at_close += self.queue.len() as u64;
    self.queue.clear();
    self.queued_bytes = 0;
    s.queued_packets = 0;
    s.queued_bytes = 0;
  }
}

/// Whether a server version (`1.9.2`, `1.13.5-rc`) is below `min`; unparsable is not.
fn version_below(v: &str, min: (u32, u32, u32)) -> bool {
  let mut parts = v.split(|c: char| !c.is_ascii_digit());
  let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
  match (next(), next(), next()) {
    (Some(a), Some(b), c) => (a, b, c.unwrap_or(0)) < min,
    _ => false,
  }
}

/// The data API of a room. Each call goes through the session's command queue, bounded by
/// the room's request timeout (an RPC's wait by its own deadlines, which the session keeps).
impl crate::room::Room {
  async fn data_command<T>(&self, c: DataCommand, rx: oneshot::Receiver<T>) -> Result<T> {
    let t = self.opts.request_timeout;
    tokio::time::timeout(t, self.cmd.send(crate::room::Command::Data(c)))
      .await
      .map_err(|_| Error::Timeout(format!("the session took no command within {} ms", t.as_millis())))?
      .map_err(|_| Error::Closed)?;
    rx.await.map_err(|_| Error::Closed)
  }

  /// Sends a user packet to `destination_identities` (everyone when empty) on the reliable
  /// (ordered, retransmitted) or lossy channel. Done once queued; fails if the send queue
  /// has no room (counted in [`DataStats::send_failed`]).
  pub async fn publish_data(
    &self,
    payload: &[u8],
    topic: Option<&str>,
    destination_identities: &[String],
    reliable: bool,
  ) -> Result<()> {
    let packet = encode_packet(
      &self.join.identity,
      destination_identities,
      reliable,
      user_value(payload, topic),
    );
    if packet.len() > self.opts.data_queue_bytes {
      return Err(Error::InvalidOption(format!(
        "a {}-byte packet does not fit the {}-byte send queue",
        packet.len(),
        self.opts.data_queue_bytes
      )));
    }
    let (reply, rx) = oneshot::channel();
    self
      .data_command(
        DataCommand::Send {
          packet,
          reliable,
          wait: false,
          reply,
        },
        rx,
      )
      .await?
  }

  /// Calls `method` on `destination_identity` and waits for its response: the payload, or
  /// [`Error::Rpc`] with the [`RpcError`] (the callee's, or 1402/1403/1501/1502/1503/
  /// 1505 from here); [`Error::Closed`] if the session ends first.
  pub async fn perform_rpc(
    &self,
    destination_identity: &str,
    method: &str,
    payload: &str,
    response_timeout: Duration,
  ) -> Result<String> {
    if payload.len() > MAX_RPC_PAYLOAD_BYTES {
      let mut s = self.data.stats.lock();
      s.rpc_calls += 1;
      s.rpc_calls_failed += 1;
      return Err(Error::Rpc(RpcError::built_in(RpcError::REQUEST_PAYLOAD_TOO_LARGE, "")));
    }
    let id = uuid_v4();
    let to = [destination_identity.to_string()];
    let packet = encode_packet(
      &self.join.identity,
      &to,
      true,
      request_value(&id, method, payload, response_timeout),
    );
    let (reply, rx) = oneshot::channel();
    let c = DataCommand::Call {
      id,
      destination: destination_identity.to_string(),
      packet,
      timeout: response_timeout,
      reply,
    };
    self.data_command(c, rx).await?
  }

  /// Says this client handles `method`: its requests come as [`RoomEvent::RpcRequest`];
  /// requests for any other method are answered 1400 by the session. False if it already was.
  pub fn register_rpc_method(&self, method: &str) -> bool {
    self.data.methods.lock().insert(method.to_string())
  }

  /// False if it was not registered.
  pub fn unregister_rpc_method(&self, method: &str) -> bool {
    self.data.methods.lock().remove(method)
  }

  /// Answers a [`RoomEvent::RpcRequest`] (once). A payload over [`MAX_RPC_PAYLOAD_BYTES`]
  /// goes to the caller as the 1504 error. Fails `InvalidOption` for a request not waiting
  /// (answered, expired past its timeout, or its caller left).
  pub async fn respond_rpc(
    &self,
    request_id: &str,
    caller_identity: &str,
    result: std::result::Result<String, RpcError>,
  ) -> Result<()> {
    let (reply, rx) = oneshot::channel();
    let c = DataCommand::Respond {
      id: request_id.to_string(),
      caller: caller_identity.to_string(),
      result,
      reply,
    };
    self.data_command(c, rx).await?
  }

  /// Opens a byte stream (sends its header); write to it, then close it.
  pub async fn open_byte_stream(&self, opts: ByteStreamOptions) -> Result<ByteStreamWriter> {
    let id = uuid_v4();
    let w = ByteStreamWriter {
      cmd: self.cmd.clone(),
      id: id.clone(),
      identity: self.join.identity.clone(),
      to: opts.destination_identities.clone(),
      next_index: 0,
      written: 0,
      timeout: self.opts.request_timeout,
      closed: false,
    };
    w.send(header_value(&id, &opts)).await?;
    self.data.stats.lock().streams_opened += 1;
    Ok(w)
  }

  /// Counters of the data side.
  pub fn data_stats(&self) -> DataStats {
    *self.data.stats.lock()
  }
}

/// The sending end of a byte stream. Each write waits until its chunks are in the send
/// queue (the stream's back-pressure); dropping it unclosed ends the stream abnormally.
#[derive(Debug)]
pub struct ByteStreamWriter {
  cmd: mpsc::Sender<crate::room::Command>,
  id: String,
  identity: String,
  to: Vec<String>,
  next_index: u64,
  written: u64,
  timeout: Duration,
  closed: bool,
}

impl ByteStreamWriter {
  pub fn id(&self) -> &str {
    &self.id
  }

  pub fn bytes_written(&self) -> u64 {
    self.written
  }

  fn packet(&self, v: Value) -> Vec<u8> {
    encode_packet(&self.identity, &self.to, true, v)
  }

  async fn send(&self, v: Value) -> Result<()> {
    let (reply, rx) = oneshot::channel();
    let c = DataCommand::Send {
      packet: self.packet(v),
      reliable: true,
      wait: true,
      reply,
    };
    let t = self.timeout;
    tokio::time::timeout(t, self.cmd.send(crate::room::Command::Data(c)))
      .await
      .map_err(|_| Error::Timeout(format!("the session took no command within {} ms", t.as_millis())))?
      .map_err(|_| Error::Closed)?;
    rx.await.map_err(|_| Error::Closed)?
  }

  /// Sends `bytes` as chunks of up to [`STREAM_CHUNK_BYTES`].
  pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
    if self.closed {
      return Err(Error::Closed);
    }
    for v in chunk_values(&self.id, self.next_index, bytes) {
      let n = match &v {
        Value::StreamChunk(c) => c.content.len() as u64,
        _ => 0,
      };
      self.send(v).await?;
      self.next_index += 1;
      self.written += n;
    }
    Ok(())
  }

  /// Ends the stream: an empty `reason` is a normal end, any other tells the receivers it
  /// was aborted.
  pub async fn close(mut self, reason: &str) -> Result<()> {
    self.closed = true;
    self.send(trailer_value(&self.id, reason)).await
  }
}

impl Drop for ByteStreamWriter {
  fn drop(&mut self) {
    if !self.closed {
      let (reply, _) = oneshot::channel();
      let c = DataCommand::Send {
        packet: self.packet(trailer_value(&self.id, "the writer was dropped")),
        reliable: true,
        wait: true,
        reply,
      };
      let _ = self.cmd.try_send(crate::room::Command::Data(c));
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn data(server: &str, queue_cap: usize, stream_cap: usize) -> (Data, mpsc::Receiver<RoomEvent>) {
    let (tx, rx) = mpsc::channel(16);
    let d = Data::new(
      "me".into(),
      server.into(),
      tx,
      Arc::new(Mutex::new(SignalStats::default())),
      DataShared::default(),
      queue_cap,
      stream_cap,
      Duration::from_secs(2),
    );
    (d, rx)
  }

  fn from(identity: &str, v: Value) -> Vec<u8> {
    encode_packet(identity, &["me".to_string()], true, v)
  }

  /// The queued packets, decoded, and the queue emptied.
  fn sent(d: &mut Data) -> Vec<proto::DataPacket> {
    let v = d
      .queue
      .drain(..)
      .map(|q| proto::DataPacket::decode(q.bytes.as_slice()).unwrap())
      .collect();
    d.queued_bytes = 0;
    v
  }

  fn call(d: &mut Data, id: &str, to: &str, timeout: Duration, now: Instant) -> oneshot::Receiver<Result<String>> {
    let (reply, rx) = oneshot::channel();
    let packet = encode_packet("me", &[to.to_string()], true, request_value(id, "m", "p", timeout));
    d.command(
      DataCommand::Call {
        id: id.into(),
        destination: to.into(),
        packet,
        timeout,
        reply,
      },
      now,
    );
    rx
  }

  fn rpc_code(rx: &mut oneshot::Receiver<Result<String>>) -> Option<u32> {
    match rx.try_recv() {
      Ok(Err(Error::Rpc(e))) => Some(e.code),
      Ok(other) => panic!("{other:?}"),
      Err(_) => None,
    }
  }

  #[test]
  fn packets_round_trip_through_the_protobufs() {
    let p = proto::DataPacket::decode(
      encode_packet("me", &["a".into(), "b".into()], false, user_value(b"hi", Some("t"))).as_slice(),
    )
    .unwrap();
    #[allow(deprecated)]
    let kind = p.kind;
    assert_eq!(kind, proto::data_packet::Kind::Lossy as i32);
    assert_eq!(
      (p.participant_identity.as_str(), p.destination_identities.len()),
      ("me", 2)
    );
    let Some(Value::User(u)) = p.value else { panic!() };
    assert_eq!((u.payload.as_slice(), u.topic.as_deref()), (&b"hi"[..], Some("t")));

    let Value::RpcRequest(r) = request_value("id1", "echo", "x", Duration::from_millis(8500)) else {
      panic!()
    };
    assert_eq!(
      (r.id.as_str(), r.method.as_str(), r.payload.as_str()),
      ("id1", "echo", "x")
    );
    assert_eq!((r.response_timeout_ms, r.version), (8500, 1));
    let Value::RpcResponse(r) = response_value("id1", &Ok("ok".into())) else {
      panic!()
    };
    assert_eq!(r.value, Some(proto::rpc_response::Value::Payload("ok".into())));
    let big = "x".repeat(MAX_RPC_PAYLOAD_BYTES + 1);
    let Value::RpcResponse(r) = response_value("id1", &Ok(big)) else {
      panic!()
    };
    let Some(proto::rpc_response::Value::Error(e)) = r.value else {
      panic!()
    };
    assert_eq!(e.code, RpcError::RESPONSE_PAYLOAD_TOO_LARGE);
    let Value::RpcResponse(r) = response_value("id1", &Err(RpcError::new(7, "no", "d"))) else {
      panic!()
    };
    assert_eq!(
      r.value,
      Some(proto::rpc_response::Value::Error(proto::RpcError {
        code: 7,
        message: "no".into(),
        data: "d".into()
      }))
    );
    let e = RpcError::new(1, &"é".repeat(200), "");
    assert_eq!(e.message.len(), 256, "cut on a char boundary at 256 bytes");

    let o = ByteStreamOptions {
      topic: "files".into(),
      name: "a.bin".into(),
      total_length: Some(5),
      attributes: [("k".to_string(), "v".to_string())].into(),
      ..Default::default()
    };
    let Value::StreamHeader(h) = header_value("s1", &o) else {
      panic!()
    };
    assert_eq!(
      (h.stream_id.as_str(), h.topic.as_str(), h.mime_type.as_str()),
      ("s1", "files", DEFAULT_STREAM_MIME)
    );
    assert_eq!((h.total_length, h.attributes["k"].as_str()), (Some(5), "v"));
    assert!(h.timestamp > 1_600_000_000_000);
    assert_eq!(
      h.content_header,
      Some(proto::data_stream::header::ContentHeader::ByteHeader(
        proto::data_stream::ByteHeader { name: "a.bin".into() }
      ))
    );
    let Value::StreamTrailer(t) = trailer_value("s1", "") else {
      panic!()
    };
    assert_eq!((t.stream_id.as_str(), t.reason.as_str()), ("s1", ""));

    let id = uuid_v4();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4");
    assert!("89ab".contains(&id[19..20]));
    assert_ne!(id, uuid_v4());
  }

  #[test]
  fn chunks_are_cut_at_15000_bytes_and_indexed_on() {
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let cs = chunk_values("s", 3, &bytes);
    let parts: Vec<(u64, Vec<u8>)> = cs
      .into_iter()
      .map(|v| match v {
        Value::StreamChunk(c) => (c.chunk_index, c.content),
        _ => panic!(),
      })
      .collect();
    assert_eq!(
      parts.iter().map(|p| p.1.len()).collect::<Vec<_>>(),
      [15_000, 15_000, 15_000, 15_000, 15_000, 15_000, 10_000]
    );
    assert_eq!(
      parts.iter().map(|p| p.0).collect::<Vec<_>>(),
      (3..10).collect::<Vec<_>>()
    );
    assert_eq!(parts.concat_bytes(), bytes);
    assert_eq!(chunk_values("s", 0, &[0; STREAM_CHUNK_BYTES]).len(), 1);
    assert_eq!(chunk_values("s", 0, &[0; STREAM_CHUNK_BYTES + 1]).len(), 2);
    assert!(chunk_values("s", 0, &[]).is_empty());
  }

  trait Concat {
    fn concat_bytes(&self) -> Vec<u8>;
  }
  impl Concat for Vec<(u64, Vec<u8>)> {
    fn concat_bytes(&self) -> Vec<u8> {
      self.iter().flat_map(|p| p.1.clone()).collect()
    }
  }

  #[test]
  fn a_call_fails_1501_without_an_ack_and_1502_without_a_response() {
    let (mut d, _rx) = data("1.13.5", 1 << 20, 1 << 20);
    let t0 = Instant::now();
    let mut no_ack = call(&mut d, "r1", "bob", Duration::from_secs(30), t0);
    let mut slow = call(&mut d, "r2", "bob", Duration::from_secs(9), t0);
    let out = sent(&mut d);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].destination_identities, ["bob"]);
    d.receive(&from("bob", ack_value("r2")), t0);
    assert_eq!(d.next_deadline(), Some(t0 + RPC_MAX_ROUND_TRIP));
    d.timeouts(t0 + RPC_MAX_ROUND_TRIP - Duration::from_millis(1));
    assert_eq!((rpc_code(&mut no_ack), rpc_code(&mut slow)), (None, None));
    d.timeouts(t0 + RPC_MAX_ROUND_TRIP);
    assert_eq!(rpc_code(&mut no_ack), Some(RpcError::CONNECTION_TIMEOUT));
    assert_eq!(rpc_code(&mut slow), None, "acked: waits for its response");
    assert_eq!(d.next_deadline(), Some(t0 + Duration::from_secs(9)));
    d.timeouts(t0 + Duration::from_secs(9));
    assert_eq!(rpc_code(&mut slow), Some(RpcError::RESPONSE_TIMEOUT));
    // A late response finds nothing.
    d.receive(&from("bob", response_value("r2", &Ok("late".into()))), t0);
    let s = *d.shared.stats.lock();
    assert_eq!((s.rpc_calls, s.rpc_calls_failed, s.rpc_stray), (2, 2, 1));
    assert_eq!(d.next_deadline(), None);
  }

  #[test]
  fn a_call_gets_its_payload_or_the_callees_error_or_1503_when_it_leaves() {
    let (mut d, _rx) = data("1.13.5", 1 << 20, 1 << 20);
    let t0 = Instant::now();
    let mut ok = call(&mut d, "a", "bob", Duration::from_secs(10), t0);
    let mut err = call(&mut d, "b", "bob", Duration::from_secs(10), t0);
    let mut gone = call(&mut d, "c", "bob", Duration::from_secs(10), t0);
    d.receive(&from("bob", ack_value("a")), t0);
    d.receive(&from("bob", response_value("a", &Ok("pong".into()))), t0);
    assert_eq!(ok.try_recv().unwrap().unwrap(), "pong");
    // A response before its ack also completes the call.
    d.receive(
      &from("bob", response_value("b", &Err(RpcError::new(1500, "boom", "ctx")))),
      t0,
    );
    assert_eq!(
      err.try_recv().unwrap().unwrap_err(),
      Error::Rpc(RpcError::new(1500, "boom", "ctx"))
    );
    d.participant_left("bob");
    assert_eq!(rpc_code(&mut gone), Some(RpcError::RECIPIENT_DISCONNECTED));
    // Someone this client has not heard of yet: the request goes out (the server may know
    // them), and with no ack the call fails at the ack deadline.
    let mut nobody = call(&mut d, "d", "carol", Duration::from_secs(10), t0);
    assert_eq!(rpc_code(&mut nobody), None);
    d.timeouts(t0 + RPC_MAX_ROUND_TRIP);
    assert_eq!(rpc_code(&mut nobody), Some(RpcError::CONNECTION_TIMEOUT));
    let (mut old, _rx) = data("1.7.2", 1 << 20, 1 << 20);
    let mut r = call(&mut old, "e", "bob", Duration::from_secs(10), t0);
    assert_eq!(rpc_code(&mut r), Some(RpcError::UNSUPPORTED_SERVER));
    // A queue too small for the request: 1505.
    let (mut tiny, _rx) = data("1.13.5", 8, 1 << 20);
    let mut r = call(&mut tiny, "f", "bob", Duration::from_secs(10), t0);
    assert_eq!(rpc_code(&mut r), Some(RpcError::SEND_FAILED));
  }

  #[test]
  fn a_request_is_acked_at_once_and_unknown_methods_and_versions_answered_by_the_session() {
    let (mut d, mut rx) = data("1.13.5", 1 << 20, 1 << 20);
    d.shared.methods.lock().insert("greet".into());
    let t0 = Instant::now();
    d.receive(
      &from("bob", request_value("q1", "nope", "", Duration::from_secs(5))),
      t0,
    );
    let mut v2 = request_value("q2", "greet", "", Duration::from_secs(5));
    if let Value::RpcRequest(r) = &mut v2 {
      r.version = 2;
    }
    d.receive(&from("bob", v2), t0);
    d.receive(
      &from("bob", request_value("q3", "greet", "hi", Duration::from_secs(5))),
      t0,
    );
    let out = sent(&mut d);
    let vals: Vec<Value> = out.into_iter().map(|p| p.value.unwrap()).collect();
    let code = |v: &Value| match v {
      Value::RpcResponse(proto::RpcResponse {
        value: Some(proto::rpc_response::Value::Error(e)),
        ..
      }) => e.code,
      _ => 0,
    };
    assert_eq!(vals[0], ack_value("q1"));
    assert_eq!(code(&vals[1]), RpcError::UNSUPPORTED_METHOD);
    assert_eq!(vals[2], ack_value("q2"));
    assert_eq!(code(&vals[3]), RpcError::UNSUPPORTED_VERSION);
    assert_eq!(vals[4], ack_value("q3"));
    assert_eq!(vals.len(), 5, "the registered method waits for the caller's answer");
    assert_eq!(
      rx.try_recv().unwrap(),
      RoomEvent::RpcRequest {
        id: "q3".into(),
        caller_identity: "bob".into(),
        method: "greet".into(),
        payload: "hi".into(),
        response_timeout: Duration::from_secs(5),
      }
    );
    let respond = |d: &mut Data, id: &str, caller: &str| {
      let (reply, mut rx) = oneshot::channel();
      d.command(
        DataCommand::Respond {
          id: id.into(),
          caller: caller.into(),
          result: Ok("hello".into()),
          reply,
        },
        t0,
      );
      rx.try_recv().unwrap()
    };
    assert_eq!(respond(&mut d, "q3", "eve").unwrap_err().code(), "ERR_INVALID_OPTION");
    respond(&mut d, "q3", "bob").unwrap();
    assert_eq!(sent(&mut d)[0].value, Some(response_value("q3", &Ok("hello".into()))));
    assert!(respond(&mut d, "q3", "bob").is_err(), "answered once");
    // The caller leaving forgets its requests.
    d.receive(
      &from("bob", request_value("q4", "greet", "", Duration::from_secs(5))),
      t0,
    );
    d.participant_left("bob");
    assert!(respond(&mut d, "q4", "bob").is_err());
    // One never answered is forgotten once its caller has given up.
    d.receive(
      &from("bob", request_value("q5", "greet", "", Duration::from_secs(5))),
      t0,
    );
    d.timeouts(t0 + Duration::from_secs(5) + RPC_MAX_ROUND_TRIP);
    assert!(respond(&mut d, "q5", "bob").is_err());
    let s = *d.shared.stats.lock();
    assert_eq!((s.rpc_requests, s.rpc_auto_errors, s.rpc_responses), (5, 2, 1));
  }

  fn header(id: &str) -> Value {
    header_value(
      id,
      &ByteStreamOptions {
        topic: "t".into(),
        name: "n".into(),
        ..Default::default()
      },
    )
  }

  fn stream(rx: &mut mpsc::Receiver<RoomEvent>) -> IncomingByteStream {
    match rx.try_recv().unwrap() {
      RoomEvent::ByteStream(s) => s,
      e => panic!("{e:?}"),
    }
  }

  fn chunk(id: &str, index: u64, content: &[u8]) -> Value {
    Value::StreamChunk(proto::data_stream::Chunk {
      stream_id: id.into(),
      chunk_index: index,
      content: content.to_vec(),
      ..Default::default()
    })
  }

  #[test]
  fn an_incoming_stream_is_buffered_read_in_order_and_ended_by_its_trailer() {
    let (mut d, mut rx) = data("1.13.5", 1 << 20, 1 << 20);
    let t0 = Instant::now();
    d.receive(&from("bob", header("s1")), t0);
    let s = stream(&mut rx);
    assert_eq!(
      (s.from_identity.as_str(), s.topic.as_str(), s.name.as_str(), s.text),
      ("bob", "t", "n", false)
    );
    let wakes = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let w = wakes.clone();
    s.data.set_notify(Some(Arc::new(move || {
      w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })));
    d.receive(&from("bob", chunk("s1", 0, b"hello ")), t0);
    d.receive(&from("bob", chunk("s1", 1, b"world")), t0);
    assert_eq!(
      wakes.load(std::sync::atomic::Ordering::SeqCst),
      1,
      "one wake for two chunks"
    );
    d.receive(&from("bob", chunk("s1", 1, b"again")), t0);
    d.receive(&from("bob", chunk("s1", 4, b"!")), t0);
    assert_eq!(s.data.read(4), ReadStream::Bytes(b"hell".to_vec()));
    assert_eq!(s.data.read(100), ReadStream::Bytes(b"o world!".to_vec()));
    assert_eq!(s.data.read(100), ReadStream::Empty);
    let mut t = trailer_value("s1", "");
    if let Value::StreamTrailer(t) = &mut t {
      t.attributes.insert("done".into(), "yes".into());
    }
    d.receive(&from("bob", t), t0);
    assert_eq!(
      wakes.load(std::sync::atomic::Ordering::SeqCst),
      2,
      "woken again for the end"
    );
    assert_eq!(s.data.read(100), ReadStream::Ended);
    assert_eq!(s.data.trailer_attributes()["done"], "yes");
    let st = s.data.stats();
    assert!(st.balanced(), "{st:?}");
    assert_eq!((st.chunks, st.out_of_order, st.missing, st.bytes_read), (3, 1, 2, 12));
    // Chunks after the end are strays.
    d.receive(&from("bob", chunk("s1", 5, b"x")), t0);
    let ds = *d.shared.stats.lock();
    assert_eq!((ds.streams_received, ds.streams_ended, ds.stream_stray), (1, 1, 1));
  }

  #[test]
  fn a_stream_fails_past_its_cap_when_aborted_and_when_its_sender_leaves() {
    let (mut d, mut rx) = data("1.13.5", 1 << 20, 10);
    let t0 = Instant::now();
    d.receive(&from("bob", header("s1")), t0);
    let s1 = stream(&mut rx);
    d.receive(&from("bob", chunk("s1", 0, b"123456")), t0);
    assert_eq!(s1.data.read(2), ReadStream::Bytes(b"12".to_vec()));
    d.receive(&from("bob", chunk("s1", 1, b"7890123")), t0);
    assert!(matches!(s1.data.read(100), ReadStream::Failed(w) if w.contains("fell behind")));
    let st = s1.data.stats();
    assert!(st.balanced() && st.bytes_discarded == 11, "{st:?}");

    d.receive(&from("bob", header("s2")), t0);
    let s2 = stream(&mut rx);
    d.receive(&from("bob", chunk("s2", 0, b"ab")), t0);
    d.receive(&from("bob", trailer_value("s2", "cancelled")), t0);
    assert_eq!(
      s2.data.read(100),
      ReadStream::Bytes(b"ab".to_vec()),
      "what came is still readable"
    );
    assert_eq!(s2.data.read(100), ReadStream::Failed("cancelled".into()));

    d.receive(&from("bob", header("s3")), t0);
    let s3 = stream(&mut rx);
    d.participant_left("bob");
    assert!(matches!(s3.data.read(1), ReadStream::Failed(w) if w.contains("bob left")));

    // A reader that dropped its buffer: the stream is abandoned at the next chunk.
    d.receive(&from("bob", header("s4")), t0);
    drop(stream(&mut rx));
    d.receive(&from("bob", chunk("s4", 0, b"x")), t0);
    let ds = *d.shared.stats.lock();
    assert_eq!((ds.streams_failed, ds.streams_abandoned), (3, 1));
    assert!(d.streams.is_empty());
  }

  #[test]
  fn a_full_send_queue_fails_a_packet_and_parks_a_stream_chunk_until_its_deadline() {
    let (mut d, _rx) = data("1.13.5", 100, 10);
    let t0 = Instant::now();
    let send = |d: &mut Data, n: usize, wait: bool| {
      let (reply, rx) = oneshot::channel();
      d.command(
        DataCommand::Send {
          packet: vec![0; n],
          reliable: true,
          wait,
          reply,
        },
        t0,
      );
      rx
    };
    assert!(send(&mut d, 80, false).try_recv().unwrap().is_ok());
    assert!(send(&mut d, 30, false).try_recv().unwrap().is_err());
    let mut parked = send(&mut d, 30, true);
    assert!(parked.try_recv().is_err(), "waits for room");
    d.timeouts(t0 + Duration::from_secs(2));
    assert_eq!(parked.try_recv().unwrap().unwrap_err().code(), "ERR_TIMEOUT");
    let s = *d.shared.stats.lock();
    assert_eq!((s.send_failed, s.queued_packets, s.queued_bytes), (2, 1, 80));
    d.finish("test");
    assert_eq!(d.shared.stats.lock().unsent_at_close, 1);
  }
}
