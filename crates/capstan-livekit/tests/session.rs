//! The session (`Room`) against an in-process stand-in for livekit-server's signal and media
//! sides: a WebSocket that speaks the same protobufs and a str0m peer that answers offers
//! over real UDP on 127.0.0.1. It pins what the real server cannot be made to do on demand
//! (stop answering pings, ask to leave, never answer an offer) and reads the RTP that
//! arrives. The real server is exercised by `__test__/livekit/native-publish.test.ts`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_core::{Format, Sink};
use capstan_livekit::peer::{PeerOutput, Subscriber};
use capstan_livekit::{Error, LiveKitSink, OpusOptions, Room, RoomEvent, RoomOptions};
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
  /// Send a LeaveRequest this long after the publisher connected.
  leave_after: Option<Duration>,
}

impl Default for Behaviour {
  fn default() -> Self {
    Behaviour {
      answer_offers: true,
      answer_pings: true,
      ping_interval_s: 1,
      ping_timeout_s: 2,
      leave_after: None,
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
    let join = proto::JoinResponse {
      room: Some(proto::Room {
        name: "r".into(),
        ..Default::default()
      }),
      participant: Some(proto::ParticipantInfo {
        sid: "PA_x".into(),
        identity: "pub".into(),
        ..Default::default()
      }),
      server_version: "stand-in".into(),
      ping_interval: b.ping_interval_s,
      ping_timeout: b.ping_timeout_s,
      ..Default::default()
    };
    ws.send(res(Res::Join(join))).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    let mut leave_at: Option<tokio::time::Instant> = None;
    loop {
      let wake = srv.poll(&mut out).unwrap();
      for o in out.drain(..) {
        match o {
          PeerOutput::Transmit { to, data } => {
            let _ = udp.try_send_to(&data, to);
          }
          PeerOutput::Connected => {
            if let Some(d) = b.leave_after {
              leave_at = Some(tokio::time::Instant::now() + d);
            }
          }
          PeerOutput::Media { rtp_time, data, .. } => seen2.lock().media.push((rtp_time, data)),
          PeerOutput::Disconnected(_) | PeerOutput::Rtp { .. } => {}
        }
      }
      let far = tokio::time::Instant::now() + Duration::from_secs(3600);
      tokio::select! {
        m = ws.next() => {
          let Some(Ok(Message::Binary(bytes))) = m else { break };
          let Some(req) = proto::SignalRequest::decode(bytes.as_ref()).unwrap().message else { continue };
          seen2.lock().requests.push(name(&req));
          match req {
            Req::Trickle(t) => {
              srv.add_remote_candidate(&t.candidate_init).unwrap();
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
          srv.receive(Instant::now(), from, &buf[..n]).unwrap();
        }
        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => srv.timeout(Instant::now()).unwrap(),
        _ = tokio::time::sleep_until(leave_at.unwrap_or(far)) => {
          leave_at = None;
          let leave = proto::LeaveRequest { reason: proto::DisconnectReason::ServerShutdown as i32, ..Default::default() };
          ws.send(res(Res::Leave(leave))).await.unwrap();
        }
      }
    }
  });
  (url, seen)
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
/// arriving as RTP whose time steps by 960 per packet and whose payload decodes as 20 ms of
/// Opus, unpublish, close with a LeaveRequest.
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
  assert!(
    media.windows(2).all(|w| w[1].0 - w[0].0 == 960),
    "{:?}",
    media.iter().map(|m| m.0).collect::<Vec<_>>()
  );
  let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
  let mut pcm = vec![0i16; 5760];
  for (_, p) in &media {
    assert_eq!(dec.decode(p, &mut pcm, false).unwrap(), 960);
  }
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

/// A server that stops answering is found by the ping timeout (2 s here) and ends the
/// session with a Disconnected event naming it; one that answers keeps it up.
#[tokio::test]
async fn no_pong_within_the_ping_timeout_disconnects() {
  let (url, _) = stand_in(Behaviour {
    answer_pings: false,
    ..Default::default()
  })
  .await;
  let t0 = Instant::now();
  let (room, mut events) = Room::connect(&url, "a.b.c", RoomOptions::default()).await.unwrap();
  let why = disconnected(&mut events, Duration::from_secs(6)).await;
  assert!(why.contains("ping timeout"), "{why}");
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
  assert_eq!(e.code(), "ERR_LIVEKIT_TIMEOUT", "{e}");
  assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
  tokio::time::sleep(Duration::from_millis(100)).await;
  let s = seen.lock();
  assert_eq!(&s.requests[..2], &["trickle", "offer"], "{:?}", s.requests);
  assert!(s.leave, "the failed connect still leaves: {:?}", s.requests);
}
