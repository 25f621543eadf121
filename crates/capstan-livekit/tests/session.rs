//! The session (`Room`) against an in-process stand-in for livekit-server's signal and media
//! sides: a WebSocket that speaks the same protobufs and a str0m peer that answers offers
//! over real UDP on 127.0.0.1. It pins what the real server cannot be made to do on demand
//! (stop answering pings, ask to leave, never answer an offer) and reads the RTP that
//! arrives. The real server is exercised by `__test__/livekit/native-publish.test.ts`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_core::{Format, Sink};
use capstan_livekit::peer::{PeerOutput, Publisher, Subscriber};
use capstan_livekit::{Error, LiveKitSink, OpusOptions, ReadRemote, Room, RoomEvent, RoomOptions};
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use parking_lot::Mutex;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Res;
use tokio::net::{TcpListener, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy)]
struct Behaviour {
  answer_offers: bool,
  answer_pings: bool,
  ping_interval_s: i32,
  ping_timeout_s: i32,
  /// Send a LeaveRequest this long after the publisher connected, with this action
  /// (`leave_request::Action`). After a RECONNECT, the stand-in takes the client's new
  /// join (a JoinResponse under a new sid, nothing answered after it) and records it.
  leave_after: Option<Duration>,
  leave_action: i32,
  /// Stop answering on the publisher connection's UDP socket this long after it connected
  /// (the signal stays up), then take the client's new join (see [`take_rejoin`]).
  mute_udp_after: Option<Duration>,
  /// A remote participant publishing a tone, offered on the subscriber connection.
  remote: Option<RemotePlan>,
  /// Break the signal connection this long after the publisher connected, then take the
  /// client's resume.
  drop_signal_after: Option<Duration>,
  /// The remote participant in the join and the subscriber connection with the server's
  /// data channels, the remote playing a peer on them (see [`DataRemote`]).
  data: bool,
}

/// What the stand-in's remote participant sends: `frames` 20 ms Opus frames of a 440 Hz
/// tone, paced at 20 ms, with the RTP datagrams of the frames in `drop` never sent and those
/// in `swap` sent after the next one; `leave_after` the last frame, it leaves.
#[derive(Clone, Copy)]
struct RemotePlan {
  frames: u64,
  drop: &'static [u64],
  swap: &'static [u64],
  leave_after: Duration,
}

const REMOTE_SID: &str = "PA_remote";
const REMOTE_TRACK: &str = "TR_remote";
const TONE_HZ: f64 = 440.0;

/// Frame `k` of the remote's tone, encoded as a WebRTC sender would (in-band FEC on).
fn tone_frame(enc: &mut opus::Encoder, k: u64) -> Vec<u8> {
  let pcm: Vec<i16> = (0..960u64)
    .map(|i| ((((k * 960 + i) as f64) / 48_000.0 * TONE_HZ * std::f64::consts::TAU).sin() * 12_000.0) as i16)
    .collect();
  let mut out = vec![0u8; 1500];
  let n = enc.encode(&pcm, &mut out).unwrap();
  out.truncate(n);
  out
}

/// An RTP datagram's sequence number (SRTP leaves the header in the clear); none for
/// RTCP, DTLS and STUN.
fn rtp_seq(d: &[u8]) -> Option<u16> {
  (d.len() >= 12 && d[0] & 0xc0 == 0x80 && !(192..=223).contains(&d[1])).then(|| u16::from_be_bytes([d[2], d[3]]))
}

impl Default for Behaviour {
  fn default() -> Self {
    Behaviour {
      answer_offers: true,
      answer_pings: true,
      ping_interval_s: 1,
      ping_timeout_s: 2,
      leave_after: None,
      leave_action: 0,
      mute_udp_after: None,
      remote: None,
      drop_signal_after: None,
      data: false,
    }
  }
}

/// What the stand-in saw.
#[derive(Default, Debug)]
struct Seen {
  requests: Vec<&'static str>,
  add_track: Option<proto::AddTrackRequest>,
  /// (RTP time, payload) of every media frame that arrived.
  media: Vec<(u64, Vec<u8>)>,
  leave: bool,
  /// The remote's frames written, and RTP datagrams of them dropped on purpose.
  remote_sent: u64,
  dropped: u64,
  /// The query of the resume's upgrade request, once the client came back.
  resume_query: Option<String>,
  /// A full reconnect's new join: its upgrade request's query, and what it sent then.
  rejoin_query: Option<String>,
  rejoin_requests: Vec<&'static str>,
  rejoin_add_track: Option<proto::AddTrackRequest>,
  /// Labels of the channels the client opened, and every DataPacket that came on them with
  /// its channel's label.
  channels: Vec<String>,
  packets: Vec<(String, proto::DataPacket)>,
  /// The bytes of each stream the client sent, by stream id, and its chunks' sizes.
  streams: std::collections::HashMap<String, (Vec<u8>, Vec<usize>)>,
}

fn remote_info(state: proto::participant_info::State) -> proto::ParticipantInfo {
  proto::ParticipantInfo {
    sid: REMOTE_SID.into(),
    identity: "remote".into(),
    name: "Remote".into(),
    state: state as i32,
    version: if state == proto::participant_info::State::Active {
      1
    } else {
      2
    },
    disconnect_reason: if state == proto::participant_info::State::Active {
      0
    } else {
      proto::DisconnectReason::ClientInitiated as i32
    },
    tracks: vec![proto::TrackInfo {
      sid: REMOTE_TRACK.into(),
      r#type: proto::TrackType::Audio as i32,
      name: "tone".into(),
      mime_type: "audio/opus".into(),
      ..Default::default()
    }],
    ..Default::default()
  }
}

fn name(m: &Req) -> &'static str {
  match m {
    Req::Offer(_) => "offer",
    Req::Answer(_) => "answer",
    Req::Trickle(_) => "trickle",
    Req::AddTrack(_) => "add_track",
    Req::Leave(_) => "leave",
    Req::PingReq(_) => "ping",
    _ => "other",
  }
}

fn res(m: Res) -> Message {
  Message::Binary(proto::SignalResponse { message: Some(m) }.encode_to_vec().into())
}

/// The stand-in's JoinResponse for participant `sid` (`pub` in room `r`); `others` puts the
/// remote participant in the room and makes the subscriber connection primary.
fn join_response(sid: &str, b: Behaviour, others: bool) -> proto::JoinResponse {
  proto::JoinResponse {
    room: Some(proto::Room {
      name: "r".into(),
      ..Default::default()
    }),
    participant: Some(proto::ParticipantInfo {
      sid: sid.into(),
      identity: "pub".into(),
      ..Default::default()
    }),
    server_version: "stand-in".into(),
    ping_interval: b.ping_interval_s,
    ping_timeout: b.ping_timeout_s,
    subscriber_primary: others,
    other_participants: if others {
      vec![remote_info(proto::participant_info::State::Active)]
    } else {
      vec![]
    },
    ..Default::default()
  }
}

/// A full reconnect's new join: the upgrade's query, a JoinResponse under a new sid, then
/// every request recorded (none answered) until the client goes.
async fn take_rejoin(l: &TcpListener, seen: &Arc<Mutex<Seen>>, b: Behaviour) {
  let (tcp, _) = l.accept().await.unwrap();
  let query = Arc::new(Mutex::new(None));
  let q = query.clone();
  let cb = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
    *q.lock() = req.uri().query().map(str::to_string);
    Ok(resp)
  };
  let mut ws = tokio_tungstenite::accept_hdr_async(tcp, cb).await.unwrap();
  seen.lock().rejoin_query = query.lock().take();
  ws.send(res(Res::Join(join_response("PA_y", b, false)))).await.unwrap();
  while let Some(Ok(Message::Binary(bytes))) = ws.next().await {
    let Some(req) = proto::SignalRequest::decode(bytes.as_ref()).unwrap().message else {
      continue;
    };
    let mut seen = seen.lock();
    seen.rejoin_requests.push(name(&req));
    if let Req::AddTrack(a) = req {
      seen.rejoin_add_track = Some(a);
    }
  }
}

async fn stand_in(b: Behaviour) -> (String, Arc<Mutex<Seen>>) {
  let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
  let url = format!("ws://{}", l.local_addr().unwrap());
  let seen = Arc::new(Mutex::new(Seen::default()));
  let seen2 = seen.clone();
  tokio::spawn(async move {
    let (tcp, _) = l.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local: SocketAddr = udp.local_addr().unwrap();
    let mut srv = Subscriber::new(local, Instant::now()).unwrap();
    let join = join_response("PA_x", b, b.remote.is_some() || b.data);
    ws.send(res(Res::Join(join))).await.unwrap();
    // As livekit-server does: a fresh token for the session (a resume authenticates with it).
    ws.send(res(Res::RefreshToken("r.e.f".into()))).await.unwrap();
    // The server's side of the subscriber connection: it offers the remote's track.
    let sub_udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut down = Publisher::new(sub_udp.local_addr().unwrap(), Instant::now()).unwrap();
    let mut down_track: Option<(str0m::media::Mid, str0m::media::Pt)> = None;
    if b.remote.is_some() || b.data {
      if b.remote.is_some() {
        down.add_audio(REMOTE_TRACK, &format!("{REMOTE_SID}|{REMOTE_TRACK}"));
      }
      let offer = down.offer().unwrap().unwrap();
      let mid_to_track_id = offer.added.iter().map(|(t, m)| (m.to_string(), t.clone())).collect();
      let o = proto::SessionDescription {
        r#type: "offer".into(),
        sdp: offer.sdp,
        id: offer.id,
        mid_to_track_id,
      };
      ws.send(res(Res::Offer(o))).await.unwrap();
      for c in down.local_candidate_inits().unwrap() {
        let t = proto::TrickleRequest {
          candidate_init: c,
          target: 1,
          r#final: false,
        };
        ws.send(res(Res::Trickle(t))).await.unwrap();
      }
    }
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_inband_fec(true).unwrap();
    enc.set_packet_loss_perc(10).unwrap();
    let mut next_frame = 0u64;
    let mut send_at: Option<tokio::time::Instant> = None;
    let mut remote_leave_at: Option<tokio::time::Instant> = None;
    let mut first_seq: Option<u16> = None;
    let mut held: Option<(SocketAddr, Vec<u8>)> = None;
    let mut sub_buf = vec![0u8; 2048];
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    let mut leave_at: Option<tokio::time::Instant> = None;
    let mut drop_at: Option<tokio::time::Instant> = None;
    let mut mute_at: Option<tokio::time::Instant> = None;
    let mut muted = false;
    let mut remote = DataRemote::default();
    let mut srv_labels = std::collections::HashMap::new();
    loop {
      let wake = srv.poll(&mut out).unwrap();
      for o in out.drain(..) {
        match o {
          PeerOutput::Transmit { to, data } => {
            if !muted {
              let _ = udp.try_send_to(&data, to);
            }
          }
          PeerOutput::Connected => {
            if let Some(d) = b.leave_after {
              leave_at = Some(tokio::time::Instant::now() + d);
            }
            if let Some(d) = b.drop_signal_after {
              drop_at = Some(tokio::time::Instant::now() + d);
            }
            if let Some(d) = b.mute_udp_after {
              mute_at = Some(tokio::time::Instant::now() + d);
            }
          }
          PeerOutput::Media { rtp_time, data, .. } => seen2.lock().media.push((rtp_time, data)),
          PeerOutput::ChannelOpen { id, label } => {
            seen2.lock().channels.push(label.clone());
            srv_labels.insert(id, label);
          }
          PeerOutput::ChannelData { id, data } => {
            let p = proto::DataPacket::decode(data.as_slice()).unwrap();
            remote.take(&p, &mut seen2.lock());
            let label = srv_labels.get(&id).cloned().unwrap_or_default();
            seen2.lock().packets.push((label, p));
          }
          PeerOutput::Disconnected(_) | PeerOutput::Rtp { .. } | PeerOutput::ChannelClose(_) => {}
        }
      }
      remote.flush(&mut down);
      let down_wake = down.poll(&mut out).unwrap();
      let wake = wake.min(down_wake);
      for o in out.drain(..) {
        match o {
          PeerOutput::Transmit { to, data } => {
            let Some(plan) = b.remote else {
              let _ = sub_udp.try_send_to(&data, to);
              continue;
            };
            let Some(seq) = rtp_seq(&data) else {
              let _ = sub_udp.try_send_to(&data, to);
              continue;
            };
            let k = seq.wrapping_sub(*first_seq.get_or_insert(seq)) as u64;
            if plan.drop.contains(&k) {
              seen2.lock().dropped += 1;
              continue;
            }
            if plan.swap.contains(&k) {
              held = Some((to, data));
              continue;
            }
            let _ = sub_udp.try_send_to(&data, to);
            if let Some((to, data)) = held.take() {
              let _ = sub_udp.try_send_to(&data, to);
            }
          }
          PeerOutput::Connected => send_at = Some(tokio::time::Instant::now()),
          PeerOutput::ChannelOpen { id, label } if label == "_reliable" => remote.channel = Some(id),
          _ => {}
        }
      }
      let far = tokio::time::Instant::now() + Duration::from_secs(3600);
      let sending = send_at.filter(|_| down_track.is_some());
      tokio::select! {
        m = ws.next() => {
          let Some(Ok(Message::Binary(bytes))) = m else {
            // The client left this connection for a new join (its peer connection failed).
            if muted {
              take_rejoin(&l, &seen2, b).await;
            }
            break;
          };
          let Some(req) = proto::SignalRequest::decode(bytes.as_ref()).unwrap().message else { continue };
          seen2.lock().requests.push(name(&req));
          match req {
            Req::Trickle(t) if t.target == 1 => {
              down.add_remote_candidate(&t.candidate_init).unwrap();
            }
            Req::Trickle(t) => {
              srv.add_remote_candidate(&t.candidate_init).unwrap();
            }
            Req::Answer(a) => {
              let added = down.accept_answer(&a.sdp, a.id).unwrap();
              if let Some((_, mid)) = added.first().cloned() {
                down_track = Some((mid, down.opus_pt(mid).unwrap()));
              }
            }
            Req::Offer(o) if b.answer_offers => {
              let sdp = srv.accept_offer(&o.sdp).unwrap();
              let answer = proto::SessionDescription { r#type: "answer".into(), sdp, id: o.id, ..Default::default() };
              ws.send(res(Res::Answer(answer))).await.unwrap();
              for c in srv.local_candidate_inits().unwrap() {
                let t = proto::TrickleRequest { candidate_init: c, target: 0, r#final: false };
                ws.send(res(Res::Trickle(t))).await.unwrap();
              }
            }
            Req::AddTrack(a) => {
              let track = proto::TrackInfo { sid: "TR_x".into(), name: a.name.clone(), ..Default::default() };
              ws.send(res(Res::TrackPublished(proto::TrackPublishedResponse { cid: a.cid.clone(), track: Some(track) }))).await.unwrap();
              seen2.lock().add_track = Some(a);
            }
            Req::PingReq(p) if b.answer_pings => {
              ws.send(res(Res::PongResp(proto::Pong { last_ping_timestamp: p.timestamp, timestamp: p.timestamp }))).await.unwrap();
            }
            Req::Leave(_) => {
              seen2.lock().leave = true;
              break;
            }
            _ => {}
          }
        }
        r = udp.recv_from(&mut buf) => {
          let (n, from) = r.unwrap();
          if !muted {
            srv.receive(Instant::now(), from, &buf[..n]).unwrap();
          }
        }
        _ = tokio::time::sleep_until(mute_at.unwrap_or(far)) => {
          mute_at = None;
          muted = true;
        }
        r = sub_udp.recv_from(&mut sub_buf) => {
          let (n, from) = r.unwrap();
          down.receive(Instant::now(), from, &sub_buf[..n]).unwrap();
        }
        _ = tokio::time::sleep_until(sending.unwrap_or(far)) => {
          let plan = b.remote.unwrap();
          let (mid, pt) = down_track.unwrap();
          let frame = tone_frame(&mut enc, next_frame);
          down.write_opus(mid, pt, Instant::now(), next_frame * 960, &frame).unwrap();
          seen2.lock().remote_sent += 1;
          next_frame += 1;
          send_at = send_at.map(|t| t + Duration::from_millis(20));
          if next_frame == plan.frames {
            send_at = None;
            remote_leave_at = Some(tokio::time::Instant::now() + plan.leave_after);
          }
        }
        _ = tokio::time::sleep_until(remote_leave_at.unwrap_or(far)) => {
          remote_leave_at = None;
          let gone = proto::ParticipantUpdate { participants: vec![remote_info(proto::participant_info::State::Disconnected)] };
          ws.send(res(Res::Update(gone))).await.unwrap();
        }
        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
          srv.timeout(Instant::now()).unwrap();
          down.timeout(Instant::now()).unwrap();
        }
        _ = tokio::time::sleep_until(drop_at.unwrap_or(far)) => {
          // The signal connection breaks (TCP reset); the media keeps flowing. The client
          // comes back with reconnect=1: the server answers ReconnectResponse on the new one.
          drop_at = None;
          drop(ws);
          let (tcp, _) = l.accept().await.unwrap();
          let query = Arc::new(Mutex::new(None));
          let q = query.clone();
          let cb = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
            *q.lock() = req.uri().query().map(str::to_string);
            Ok(resp)
          };
          ws = tokio_tungstenite::accept_hdr_async(tcp, cb).await.unwrap();
          seen2.lock().resume_query = query.lock().take();
          ws.send(res(Res::Reconnect(proto::ReconnectResponse::default()))).await.unwrap();
        }
        _ = tokio::time::sleep_until(leave_at.unwrap_or(far)) => {
          leave_at = None;
          let leave = proto::LeaveRequest { reason: proto::DisconnectReason::ServerShutdown as i32, action: b.leave_action, ..Default::default() };
          ws.send(res(Res::Leave(leave))).await.unwrap();
          if b.leave_action == proto::leave_request::Action::Reconnect as i32 {
            take_rejoin(&l, &seen2, b).await;
            break;
          }
        }
      }
    }
  });
  (url, seen)
}

/// The stand-in's remote participant on the data channels (what livekit-server forwards
/// between it and the client): echoes user packets (topic `echo`) and byte streams (as
/// `echo-<id>`), answers RPC `echo` (the payload reversed), `fail` (error 2001) and `slow`
/// (an ack, never a response); a user packet on topic `call-me` makes it call the client's
/// `greet` and `nope`.
#[derive(Default)]
struct DataRemote {
  channel: Option<str0m::channel::ChannelId>,
  out: Vec<Vec<u8>>,
}

impl DataRemote {
  fn send(&mut self, v: proto::data_packet::Value) {
    let p = proto::DataPacket {
      participant_identity: "remote".into(),
      destination_identities: vec!["pub".into()],
      value: Some(v),
      ..Default::default()
    };
    self.out.push(p.encode_to_vec());
  }

  fn flush(&mut self, down: &mut Publisher) {
    let Some(ch) = self.channel else { return };
    while let Some(b) = self.out.first() {
      if !down.channel_write(ch, b).unwrap() {
        break;
      }
      self.out.remove(0);
    }
  }

  fn take(&mut self, p: &proto::DataPacket, seen: &mut Seen) {
    use proto::data_packet::Value as V;
    let Some(v) = p.value.clone() else { return };
    // As an SFU does: a packet for others only is not delivered to `remote`.
    if !p.destination_identities.is_empty() && !p.destination_identities.iter().any(|d| d == "remote") {
      return;
    }
    match v {
      V::User(u) if u.topic.as_deref() == Some("call-me") => {
        for (id, method) in [("q-greet", "greet"), ("q-nope", "nope")] {
          self.send(V::RpcRequest(proto::RpcRequest {
            id: id.into(),
            method: method.into(),
            payload: "from remote".into(),
            response_timeout_ms: 5000,
            version: 1,
            ..Default::default()
          }));
        }
      }
      V::User(u) => self.send(V::User(proto::UserPacket {
        payload: u.payload,
        topic: Some("echo".into()),
        ..Default::default()
      })),
      V::RpcRequest(r) => {
        self.send(V::RpcAck(proto::RpcAck {
          request_id: r.id.clone(),
        }));
        let value = match r.method.as_str() {
          "echo" => proto::rpc_response::Value::Payload(r.payload.chars().rev().collect()),
          "fail" => proto::rpc_response::Value::Error(proto::RpcError {
            code: 2001,
            message: "it failed".into(),
            data: "details".into(),
          }),
          _ => return,
        };
        self.send(V::RpcResponse(proto::RpcResponse {
          request_id: r.id,
          value: Some(value),
        }));
      }
      V::StreamHeader(mut h) => {
        seen.streams.insert(h.stream_id.clone(), (Vec::new(), Vec::new()));
        h.stream_id = format!("echo-{}", h.stream_id);
        self.send(V::StreamHeader(h));
      }
      V::StreamChunk(mut c) => {
        let s = seen.streams.get_mut(&c.stream_id).unwrap();
        s.0.extend_from_slice(&c.content);
        s.1.push(c.content.len());
        c.stream_id = format!("echo-{}", c.stream_id);
        self.send(V::StreamChunk(c));
      }
      V::StreamTrailer(mut t) => {
        t.stream_id = format!("echo-{}", t.stream_id);
        self.send(V::StreamTrailer(t));
      }
      _ => {}
    }
  }
}

async fn disconnected(events: &mut tokio::sync::mpsc::Receiver<RoomEvent>, within: Duration) -> String {
  tokio::time::timeout(within, async {
    while let Some(e) = events.recv().await {
      if let RoomEvent::Disconnected { reason } = e {
        return reason;
      }
    }
    "events closed".to_string()
  })
  .await
  .expect("no Disconnected event in time")
}

/// Join, publish (AddTrack → TrackPublished → offer/answer), audio through `LiveKitSink`
/// arriving as RTP: the first packet 10 ms of Opus at time 0, then 20 ms ones whose time
/// steps by 960 from 480; unpublish, close with a LeaveRequest.
#[tokio::test]
async fn publish_sends_continuous_rtp_and_close_leaves() {
  let (url, seen) = stand_in(Behaviour::default()).await;
  // A queue that holds the whole run: a loaded machine may delay the session task, and this
  // test is about what arrives, not about drops.
  let opts = RoomOptions {
    queue_packets: 100,
    ..Default::default()
  };
  let (room, _events) = Room::connect(&url, "a.b.c", opts).await.unwrap();
  assert_eq!(room.join_info().server_version, "stand-in");
  let opus = OpusOptions::new(Format::new(48_000, 1).unwrap()).unwrap();
  let track = room.publish_audio("tone", opus).await.unwrap();
  assert_eq!(track.sid, "TR_x");
  let add = seen.lock().add_track.clone().unwrap();
  assert_eq!(
    (add.name.as_str(), add.r#type, add.source, add.disable_red),
    ("tone", 0, 2, true)
  );
  assert_eq!(add.cid, track.cid);

  // 50 chunks = 25 packets, pushed as the engine clock would (one per 10 ms).
  let mut sink = LiveKitSink::new(&track).unwrap();
  let chunk: Vec<i16> = (0..480)
    .map(|i| ((i as f64 / 480.0 * std::f64::consts::TAU * 4.4).sin() * 8000.0) as i16)
    .collect();
  for _ in 0..50 {
    sink.push(&chunk).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  let t0 = Instant::now();
  while (track.stats().queued_bytes > 0 || seen.lock().media.len() < 25) && t0.elapsed() < Duration::from_secs(5) {
    tokio::time::sleep(Duration::from_millis(20)).await;
  }
  let c = track.stats();
  assert!(c.balanced(), "{c:?}");
  assert_eq!(
    (c.encoded_packets, c.sent_packets, c.queued_bytes),
    (25, 25, 0),
    "{c:?}"
  );

  let media = std::mem::take(&mut seen.lock().media);
  assert_eq!(media.len(), 25, "every packet arrived");
  let times: Vec<u64> = media.iter().map(|m| m.0 - media[0].0).collect();
  let want: Vec<u64> = std::iter::once(0).chain((0..24).map(|k| 480 + k * 960)).collect();
  assert_eq!(times, want);
  let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
  let mut pcm = vec![0i16; 5760];
  let lens: Vec<usize> = media
    .iter()
    .map(|(_, p)| dec.decode(p, &mut pcm, false).unwrap())
    .collect();
  assert_eq!(lens[0], 480, "the first frame is 10 ms");
  assert!(lens[1..].iter().all(|&n| n == 960), "{lens:?}");
  assert_eq!(
    track.stats().sent_bytes,
    media.iter().map(|m| m.1.len() as u64).sum::<u64>()
  );

  room.unpublish(&track).await.unwrap();
  // After unpublish the session sends nothing more: the packets are counted unsent.
  sink.push(&chunk).unwrap();
  sink.push(&chunk).unwrap();
  let t0 = Instant::now();
  while track.stats().queued_bytes > 0 && t0.elapsed() < Duration::from_secs(5) {
    tokio::time::sleep(Duration::from_millis(20)).await;
  }
  let c = track.stats();
  assert!(c.balanced() && c.dropped_unsent == 1, "{c:?}");
  room.close().await.unwrap();
  tokio::time::sleep(Duration::from_millis(100)).await;
  let s = seen.lock();
  assert!(s.leave, "close sends a LeaveRequest: {:?}", s.requests);
  assert_eq!(
    s.requests.iter().filter(|r| **r == "offer").count(),
    3,
    "{:?}",
    s.requests
  );
  assert!(s.requests.contains(&"ping"));
}

/// A server that stops answering is found by the ping timeout (2 s here); the session tries
/// to resume (this stand-in takes no second connection) and, past the resume bound, ends
/// with a Disconnected event naming both; one that answers keeps it up.
#[tokio::test]
async fn no_pong_within_the_ping_timeout_disconnects() {
  let (url, _) = stand_in(Behaviour {
    answer_pings: false,
    ..Default::default()
  })
  .await;
  let t0 = Instant::now();
  let opts = RoomOptions {
    resume_timeout: Duration::from_secs(1),
    ..Default::default()
  };
  let (room, mut events) = Room::connect(&url, "a.b.c", opts).await.unwrap();
  let why = disconnected(&mut events, Duration::from_secs(8)).await;
  assert!(why.contains("ping timeout") && why.contains("resume failed"), "{why}");
  assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
  let opus = OpusOptions::new(Format::new(48_000, 1).unwrap()).unwrap();
  assert_eq!(room.publish_audio("late", opus).await.unwrap_err(), Error::Closed);

  let (url, _) = stand_in(Behaviour::default()).await;
  let (room, mut events) = Room::connect(&url, "a.b.c", RoomOptions::default()).await.unwrap();
  assert!(tokio::time::timeout(
    Duration::from_millis(3500),
    disconnected(&mut events, Duration::from_secs(5))
  )
  .await
  .is_err());
  assert!(room.signal_stats().pongs >= 3, "{:?}", room.signal_stats());
  room.close().await.unwrap();
}

#[tokio::test]
async fn a_server_leave_ends_the_session() {
  let (url, _) = stand_in(Behaviour {
    leave_after: Some(Duration::from_millis(200)),
    ..Default::default()
  })
  .await;
  let (_room, mut events) = Room::connect(&url, "a.b.c", RoomOptions::default()).await.unwrap();
  let why = disconnected(&mut events, Duration::from_secs(3)).await;
  assert!(
    why.contains("leave") && why.contains("reason 3 SERVER_SHUTDOWN, action DISCONNECT"),
    "{why}"
  );
}

/// Publishes a track on a session with a `bound_ms` recovery bound and collects its events
/// until it ends: the events with when they came (from the publish), the reason it ended,
/// and the first AddTrack's client id.
async fn publish_until_disconnected(
  url: &str,
  seen: &Arc<Mutex<Seen>>,
  bound_ms: u64,
  within: Duration,
) -> (Vec<(Duration, RoomEvent)>, String, String) {
  let o = RoomOptions {
    resume_timeout: Duration::from_millis(bound_ms),
    ..Default::default()
  };
  let (room, mut events) = Room::connect(url, "a.b.c", o).await.unwrap();
  let opus = OpusOptions::new(Format::new(48_000, 1).unwrap()).unwrap();
  let _track = room.publish_audio("voice", opus).await.unwrap();
  let cid = seen.lock().add_track.as_ref().map(|a| a.cid.clone()).unwrap();
  let t0 = Instant::now();
  let mut got = Vec::new();
  let why = tokio::time::timeout(within, async {
    while let Some(e) = events.recv().await {
      if let RoomEvent::Disconnected { reason } = e {
        return reason;
      }
      got.push((t0.elapsed(), e));
    }
    "events closed".to_string()
  })
  .await
  .expect("no Disconnected event in time");
  room.close().await.unwrap();
  (got, why, cid)
}

/// The `Reconnecting` events among `got`, with when they came.
fn reconnecting(got: &[(Duration, RoomEvent)]) -> Vec<(Duration, String)> {
  got
    .iter()
    .filter_map(|(at, e)| match e {
      RoomEvent::Reconnecting { reason } => Some((*at, reason.clone())),
      _ => None,
    })
    .collect()
}

/// What the stand-in saw of the new join: no `reconnect=1`, the refreshed token, the track
/// published again under its client id.
fn assert_rejoined(seen: &Arc<Mutex<Seen>>, cid: &str) {
  let s = seen.lock();
  let q = s.rejoin_query.clone().unwrap_or_default();
  assert!(!q.contains("reconnect=1") && q.contains("access_token=r.e.f"), "{q}");
  assert_eq!(s.rejoin_add_track.as_ref().map(|a| a.cid.as_str()), Some(cid));
  assert!(s.rejoin_requests.contains(&"offer"), "{:?}", s.rejoin_requests);
}

/// The server's leave with action RECONNECT: a new join (no `reconnect=1`, the refreshed
/// token) that publishes the track again under its client id and offers a new publisher
/// connection; this server never answers it, so the session ends within the recovery bound,
/// saying why.
#[tokio::test]
async fn a_server_leave_with_action_reconnect_is_a_new_join_within_the_bound() {
  let (url, seen) = stand_in(Behaviour {
    leave_after: Some(Duration::from_millis(600)),
    leave_action: proto::leave_request::Action::Reconnect as i32,
    ..Default::default()
  })
  .await;
  let (got, why, cid) = publish_until_disconnected(&url, &seen, 2500, Duration::from_secs(8)).await;
  assert!(
    matches!(reconnecting(&got).as_slice(), [(_, r)] if r.contains("full reconnect") && r.contains("action RECONNECT")),
    "{got:?}"
  );
  // The bound runs from the leave (600 ms after the publisher connected).
  let last = got.last().map(|(at, _)| *at).unwrap_or_default();
  assert!(last < Duration::from_millis(2500 + 1500), "{got:?}");
  // Either the new publisher connection never came up, or the new join's signal went quiet
  // (this server answers no ping) and the next join found nobody: the same bound.
  assert!(
    why.contains("not up within 2500 ms") || why.contains("no new join within 2500 ms"),
    "{why}"
  );
  assert_rejoined(&seen, &cid);
}

/// A publisher connection that stops answering while the signal stays up: ICE gives up
/// (about 15.5 s after the last answer here with `MAX_STUN_RTO`; about 22 s with str0m's
/// default 3 s, which fails the 19 s bound below), then a full
/// reconnect as after the server's leave (a new join publishing the track again), bounded
/// from when ICE gave up.
#[tokio::test]
async fn a_lost_peer_connection_is_a_full_reconnect_with_the_signal_up() {
  let (url, seen) = stand_in(Behaviour {
    mute_udp_after: Some(Duration::from_millis(500)),
    ping_timeout_s: 30,
    ..Default::default()
  })
  .await;
  let (got, why, cid) = publish_until_disconnected(&url, &seen, 2000, Duration::from_secs(35)).await;
  assert!(
    matches!(reconnecting(&got).as_slice(), [(at, r)] if r.contains("full reconnect") && r.contains("ICE")
      && *at > Duration::from_secs(5) && *at < Duration::from_secs(19)),
    "{got:?}"
  );
  assert!(why.contains("within 2000 ms"), "{why}");
  assert_rejoined(&seen, &cid);
}

/// A server that joins but never answers the offer: connect fails with a timeout within its
/// bound, not a hang, after the client sent its candidate and offer.
#[tokio::test]
async fn an_offer_never_answered_is_a_connect_timeout() {
  let (url, seen) = stand_in(Behaviour {
    answer_offers: false,
    ..Default::default()
  })
  .await;
  let t0 = Instant::now();
  let opts = RoomOptions {
    connect_timeout: Duration::from_millis(800),
    ..Default::default()
  };
  let e = Room::connect(&url, "a.b.c", opts)
    .await
    .err()
    .expect("connect must fail");
  assert_eq!(e.code(), "ERR_TIMEOUT", "{e}");
  assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
  tokio::time::sleep(Duration::from_millis(100)).await;
  let s = seen.lock();
  assert_eq!(&s.requests[..2], &["trickle", "offer"], "{:?}", s.requests);
  assert!(s.leave, "the failed connect still leaves: {:?}", s.requests);
}

/// The receive side end to end: the stand-in's remote participant is in the join, its
/// track is offered on the subscriber connection (mapped by `mid_to_track_id`), and 100
/// frames of a 440 Hz tone arrive as real SRTP over UDP with frames 20, 40 and 41 dropped
/// and 60 sent after 61. The track's counters come back exact: 97 packets played, the
/// single loss and the second of the double one from FEC, the first of the double one by
/// PLC, and after the last packet 200 ms of PLC, then a silence gap; the remote then
/// leaves and the track ends. Every chunk is read, the tone is there, and the reader was
/// woken once per batch, not per chunk.
#[tokio::test]
async fn a_remote_track_is_received_jitter_buffered_decoded_and_ended() {
  let plan = RemotePlan {
    frames: 100,
    drop: &[20, 40, 41],
    swap: &[60],
    leave_after: Duration::from_millis(1500),
  };
  let (url, seen) = stand_in(Behaviour {
    remote: Some(plan),
    ..Default::default()
  })
  .await;
  // A delay and a buffer far above what loopback needs: a loaded machine stalls tasks.
  let opts = RoomOptions {
    auto_subscribe: true,
    jitter_delay: Duration::from_millis(400),
    remote_buffer_chunks: 2000,
    ..Default::default()
  };
  let (room, mut events) = Room::connect(&url, "a.b.c", opts).await.unwrap();
  let track = tokio::time::timeout(Duration::from_secs(10), async {
    let mut joined = false;
    while let Some(e) = events.recv().await {
      match e {
        RoomEvent::ParticipantJoined { sid, identity, name } => {
          assert_eq!(
            (sid.as_str(), identity.as_str(), name.as_str()),
            (REMOTE_SID, "remote", "Remote")
          );
          joined = true;
        }
        RoomEvent::RemoteTrackSubscribed(t) => {
          assert!(joined, "the participant comes first");
          return t;
        }
        RoomEvent::Disconnected { reason } => panic!("{reason}"),
        _ => {}
      }
    }
    panic!("events closed")
  })
  .await
  .expect("no remote track within 10 s");
  assert_eq!(
    (
      track.sid.as_str(),
      track.participant_sid.as_str(),
      track.participant_identity.as_str(),
      track.name.as_str()
    ),
    (REMOTE_TRACK, REMOTE_SID, "remote", "tone")
  );
  assert_eq!((track.format.sample_rate, track.format.channels), (48_000, 1));
  let ps = room.participants();
  assert_eq!(ps.len(), 1);
  assert_eq!(ps[0].audio_tracks[0].sid, REMOTE_TRACK);
  assert_eq!(room.remote_tracks(), vec![track.clone()]);

  let wakes = Arc::new(std::sync::atomic::AtomicU64::new(0));
  let w2 = wakes.clone();
  track.audio.set_notify(Some(Arc::new(move || {
    w2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
  })));
  let mut pcm: Vec<i16> = Vec::new();
  let (mut empties, mut ended_reason, mut left) = (0u64, None, None);
  let t0 = Instant::now();
  loop {
    assert!(t0.elapsed() < Duration::from_secs(20), "the track did not end");
    while let Ok(e) = events.try_recv() {
      match e {
        RoomEvent::RemoteTrackEnded { track_sid, reason } => {
          assert_eq!(track_sid, REMOTE_TRACK);
          ended_reason = Some(reason);
        }
        RoomEvent::ParticipantLeft { sid, identity, reason } => left = Some((sid, identity, reason)),
        _ => {}
      }
    }
    match track.audio.read(7) {
      ReadRemote::Chunks(c, n) => {
        assert_eq!(c.len(), n * 480);
        pcm.extend_from_slice(&c);
        let s = track.audio.stats();
        assert!(s.balanced(), "{s:?}");
      }
      ReadRemote::Empty => {
        empties += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
      }
      ReadRemote::Ended => break,
    }
  }
  assert_eq!(ended_reason.as_deref(), Some("participant left"));
  assert_eq!(
    left,
    Some((
      REMOTE_SID.to_string(),
      "remote".to_string(),
      "CLIENT_INITIATED".to_string()
    ))
  );
  assert!(room.remote_tracks().is_empty() && room.participants().is_empty());
  let s = track.audio.stats();
  let (sent, dropped) = {
    let g = seen.lock();
    (g.remote_sent, g.dropped)
  };
  assert_eq!((sent, dropped), (100, 3));
  assert!(s.balanced(), "{s:?}");
  assert_eq!(
    (
      s.packets_received,
      s.played,
      s.late,
      s.duplicate,
      s.overflow,
      s.buffered,
      s.discarded
    ),
    (97, 97, 0, 0, 0, 0, 0),
    "{s:?}"
  );
  assert_eq!(
    (s.lost, s.fec_recovered, s.silence_gaps, s.resyncs),
    (3 + 10, 2, 1, 0),
    "{s:?}"
  );
  assert_eq!(
    (s.decoded_chunks, s.concealed_chunks, s.dropped_chunks),
    (194, 26, 0),
    "{s:?}"
  );
  assert_eq!((s.read_chunks, s.queued_chunks), (220, 0), "{s:?}");
  assert_eq!(pcm.len(), 220 * 480);
  assert!(track.audio.first_chunk_at().is_some());
  // Woken only after finding it empty (plus the first arrival): never once per chunk.
  let w = wakes.load(std::sync::atomic::Ordering::SeqCst);
  assert!(w >= 1 && w <= empties + 1, "wakes {w}, empty reads {empties}");
  // The tone: 440 Hz by zero crossings over the played packets (past the codec's start).
  let span = &pcm[10 * 480..190 * 480];
  let zc = span.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
  let hz = zc as f64 / 2.0 / (span.len() as f64 / 48_000.0);
  assert!((hz - TONE_HZ).abs() < 20.0, "{hz} Hz");
  assert_eq!(room.signal_stats().dropped_events, 0);
  room.close().await.unwrap();
}

/// The signal connection breaks mid-session: the client reports Reconnecting, comes back
/// with `reconnect=1`, its sid, the reason and the token the server refreshed (not the one
/// it joined with), takes the ReconnectResponse, reports Resumed,
/// and the session goes on over the new connection (pongs, a publish round trip).
#[tokio::test]
async fn a_lost_signal_connection_is_resumed() {
  let (url, seen) = stand_in(Behaviour {
    drop_signal_after: Some(Duration::from_millis(300)),
    ..Default::default()
  })
  .await;
  let (room, mut events) = Room::connect(&url, "a.b.c", RoomOptions::default()).await.unwrap();
  let mut got = Vec::new();
  let t0 = Instant::now();
  while !got.contains(&RoomEvent::Resumed) && t0.elapsed() < Duration::from_secs(8) {
    if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
      got.push(e);
    }
  }
  assert!(
    matches!(got.as_slice(), [RoomEvent::Reconnecting { reason }, RoomEvent::Resumed] if reason.contains("signal")),
    "{got:?}"
  );
  let q = seen.lock().resume_query.clone().unwrap_or_default();
  assert!(
    q.contains("reconnect=1")
      && q.contains("sid=PA_x")
      && q.contains("reconnect_reason=1")
      && q.contains("access_token=r.e.f"),
    "{q}"
  );
  let pongs = room.signal_stats().pongs;
  let opus = OpusOptions::new(Format::new(48_000, 1).unwrap()).unwrap();
  let track = room.publish_audio("after", opus).await.unwrap();
  assert_eq!(track.sid, "TR_x");
  tokio::time::sleep(Duration::from_millis(1500)).await;
  let st = room.signal_stats();
  assert!(st.pongs > pongs && st.resumes == 1, "{st:?}");
  room.close().await.unwrap();
}

async fn next_event<T>(
  events: &mut tokio::sync::mpsc::Receiver<RoomEvent>,
  mut f: impl FnMut(RoomEvent) -> Option<T>,
) -> T {
  tokio::time::timeout(Duration::from_secs(10), async {
    while let Some(e) = events.recv().await {
      if let RoomEvent::Disconnected { reason } = &e {
        panic!("{reason}");
      }
      if let Some(t) = f(e) {
        return t;
      }
    }
    panic!("events closed")
  })
  .await
  .expect("no such event within 10 s")
}

/// The data side end to end over real SCTP/DTLS/UDP: the client opens `_reliable` and
/// `_lossy` on its publisher connection and receives on the server's channels on its
/// subscriber connection. A user packet comes back echoed; RPCs to the remote return its
/// payload, its error, a response timeout (1502) and, for an unknown identity, 1401; the
/// remote's calls to the client are acked and answered (a registered method by the caller,
/// an unregistered one 1400 by the session); a 100 000-byte stream goes out in 15 000-byte
/// chunks and comes back byte for byte.
#[tokio::test]
async fn data_packets_rpc_and_byte_streams_both_ways() {
  let (url, seen) = stand_in(Behaviour {
    data: true,
    ..Default::default()
  })
  .await;
  let (room, mut events) = Room::connect(&url, "a.b.c", RoomOptions::default()).await.unwrap();

  room.publish_data(b"hello", Some("t"), &[], true).await.unwrap();
  let (from, payload) = next_event(&mut events, |e| match e {
    RoomEvent::Data {
      from_identity,
      topic,
      payload,
    } if topic == "echo" => Some((from_identity, payload)),
    _ => None,
  })
  .await;
  assert_eq!((from.as_str(), payload.as_slice()), ("remote", &b"hello"[..]));
  room
    .publish_data(b"lossy", None, &["remote".into()], false)
    .await
    .unwrap();

  let t = Duration::from_secs(5);
  assert_eq!(room.perform_rpc("remote", "echo", "abc", t).await.unwrap(), "cba");
  let e = room.perform_rpc("remote", "fail", "", t).await.unwrap_err();
  assert_eq!(
    e.rpc(),
    Some(&capstan_livekit::RpcError::new(2001, "it failed", "details"))
  );
  let t0 = Instant::now();
  let e = room
    .perform_rpc("remote", "slow", "", Duration::from_millis(1500))
    .await
    .unwrap_err();
  assert_eq!(e.rpc().map(|e| e.code), Some(1502), "{e}");
  assert!(t0.elapsed() >= Duration::from_millis(1500) && t0.elapsed() < Duration::from_secs(4));
  // Someone the room has not reported: the request goes out all the same (the server's
  // participant updates lag), and nobody answers: the call's own deadline (here shorter
  // than the 7 s ack bound) fails it.
  let t0 = Instant::now();
  let e = room
    .perform_rpc("nobody", "echo", "", Duration::from_millis(400))
    .await
    .unwrap_err();
  assert_eq!(e.rpc().map(|e| e.code), Some(1502), "{e}");
  assert!(t0.elapsed() >= Duration::from_millis(400) && t0.elapsed() < Duration::from_secs(3));
  let e = room
    .perform_rpc("remote", "echo", &"x".repeat(15_361), t)
    .await
    .unwrap_err();
  assert_eq!(e.rpc().map(|e| e.code), Some(1402));

  assert!(room.register_rpc_method("greet"));
  room.publish_data(b"", Some("call-me"), &[], true).await.unwrap();
  let (id, caller, payload) = next_event(&mut events, |e| match e {
    RoomEvent::RpcRequest {
      id,
      caller_identity,
      method,
      payload,
      response_timeout,
    } => {
      assert_eq!((method.as_str(), response_timeout), ("greet", Duration::from_secs(5)));
      Some((id, caller_identity, payload))
    }
    _ => None,
  })
  .await;
  assert_eq!(
    (id.as_str(), caller.as_str(), payload.as_str()),
    ("q-greet", "remote", "from remote")
  );
  room.respond_rpc(&id, &caller, Ok("hi remote".into())).await.unwrap();
  assert!(room.respond_rpc(&id, &caller, Ok("twice".into())).await.is_err());

  // 100 000 bytes in uneven writes: the chunks are cut per write at 15 000.
  let bytes: Vec<u8> = (0..100_000u32)
    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
    .collect();
  let mut w = room
    .open_byte_stream(capstan_livekit::ByteStreamOptions {
      destination_identities: vec!["remote".into()],
      topic: "files".into(),
      name: "blob.bin".into(),
      total_length: Some(bytes.len() as u64),
      attributes: [("k".to_string(), "v".to_string())].into(),
      ..Default::default()
    })
    .await
    .unwrap();
  let sid = w.id().to_string();
  for part in [&bytes[..40_000], &bytes[40_000..40_001], &bytes[40_001..]] {
    w.write(part).await.unwrap();
  }
  assert_eq!(w.bytes_written(), 100_000);
  w.close("").await.unwrap();
  let s = next_event(&mut events, |e| match e {
    RoomEvent::ByteStream(s) => Some(s),
    _ => None,
  })
  .await;
  assert_eq!(s.id, format!("echo-{sid}"));
  assert_eq!(
    (
      s.from_identity.as_str(),
      s.topic.as_str(),
      s.name.as_str(),
      s.mime_type.as_str()
    ),
    ("remote", "files", "blob.bin", "application/octet-stream")
  );
  assert_eq!(
    (s.total_length, s.attributes["k"].as_str(), s.text),
    (Some(100_000), "v", false)
  );
  let mut got = Vec::new();
  let t0 = Instant::now();
  loop {
    assert!(t0.elapsed() < Duration::from_secs(10), "the echoed stream did not end");
    match s.data.read(7_000) {
      capstan_livekit::ReadStream::Bytes(b) => got.extend_from_slice(&b),
      capstan_livekit::ReadStream::Empty => tokio::time::sleep(Duration::from_millis(10)).await,
      capstan_livekit::ReadStream::Ended => break,
      capstan_livekit::ReadStream::Failed(why) => panic!("{why}"),
    }
  }
  assert!(got == bytes, "the echoed stream differs");
  let st = s.data.stats();
  assert!(st.balanced(), "{st:?}");
  assert_eq!(
    (st.chunks, st.out_of_order, st.missing, st.bytes_read),
    (8, 0, 0, 100_000)
  );

  // What the remote saw: the exact bytes, the chunk sizes, and its calls answered.
  tokio::time::sleep(Duration::from_millis(200)).await;
  {
    let g = seen.lock();
    let (sent, sizes) = &g.streams[&sid];
    assert!(sent == &bytes, "the stream the remote got differs");
    assert_eq!(sizes, &[15_000, 15_000, 10_000, 1, 15_000, 15_000, 15_000, 14_999]);
    assert!(g.channels.contains(&"_reliable".to_string()) && g.channels.contains(&"_lossy".to_string()));
    use proto::data_packet::Value as V;
    let on = |label: &str, f: &dyn Fn(&V) -> bool| {
      g.packets
        .iter()
        .any(|(l, p)| l == label && p.value.as_ref().is_some_and(f))
    };
    assert!(on("_lossy", &|v| matches!(v, V::User(u) if u.payload == b"lossy")));
    assert!(on(
      "_reliable",
      &|v| matches!(v, V::RpcAck(a) if a.request_id == "q-greet")
    ));
    assert!(on(
      "_reliable",
      &|v| matches!(v, V::RpcAck(a) if a.request_id == "q-nope")
    ));
    assert!(on(
      "_reliable",
      &|v| matches!(v, V::RpcResponse(r) if r.request_id == "q-greet"
      && r.value == Some(proto::rpc_response::Value::Payload("hi remote".into())))
    ));
    assert!(on("_reliable", &|v| matches!(v, V::RpcResponse(proto::RpcResponse {
      request_id,
      value: Some(proto::rpc_response::Value::Error(e)),
    }) if request_id == "q-nope" && e.code == 1400)));
    let (_, req) = g
      .packets
      .iter()
      .find(|(_, p)| matches!(&p.value, Some(V::RpcRequest(r)) if r.method == "echo"))
      .unwrap();
    let Some(V::RpcRequest(r)) = &req.value else {
      unreachable!()
    };
    assert_eq!((r.version, r.response_timeout_ms, r.id.len()), (1, 5000, 36));
    assert_eq!(
      (req.participant_identity.as_str(), req.destination_identities.as_slice()),
      ("pub", &["remote".to_string()][..])
    );
  }
  let ds = room.data_stats();
  assert_eq!(
    (ds.send_failed, ds.undecodable, ds.rpc_stray, ds.queued_bytes),
    (0, 0, 0, 0),
    "{ds:?}"
  );
  assert_eq!(
    (ds.rpc_calls, ds.rpc_calls_ok, ds.rpc_calls_failed),
    (5, 1, 4),
    "{ds:?}"
  );
  assert_eq!(
    (ds.rpc_requests, ds.rpc_auto_errors, ds.rpc_responses),
    (2, 1, 1),
    "{ds:?}"
  );
  assert_eq!(
    (ds.streams_opened, ds.streams_received, ds.streams_ended),
    (1, 1, 1),
    "{ds:?}"
  );
  room.close().await.unwrap();
}
