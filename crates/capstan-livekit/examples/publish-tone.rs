//! Publishes a 440 Hz tone (amplitude 0.5, 48 kHz mono) from a realtime capstan source
//! through `LiveKitSink`: no JavaScript anywhere on the path.
//!
//!   publish-tone <url> <token|dev> <seconds> [room] [identity]
//!
//! `dev` makes a token (publish and subscribe, the usual grant) from LIVEKIT_API_KEY /
//! LIVEKIT_API_SECRET (default devkey / secret) for `room` (default `native`) and `identity`
//! (default `pub`); `dev-publish-only` one that may not subscribe, `dev-no-publish` one that
//! may not publish (the server refuses the track: a typed error). The tone
//! starts once a subscriber is there (the server's TrackSubscribed, within 20 s) plus
//! 300 ms of silence, is played out by the engine clock, followed by 300 ms of silence;
//! then the track is unpublished and the room left. One JSON line on stdout says what
//! happened; the exit code is 0 only if every step worked and the byte law held.

use std::time::{Duration, Instant};

use capstan_core::{Engine, FrameRef, SourceOptions};
use capstan_livekit::{access_token, Grants, LiveKitSink, OpusOptions, Room, RoomEvent, RoomOptions};

const RATE: u32 = 48_000;
const HZ: f64 = 440.0;
const SUBSCRIBER_WAIT: Duration = Duration::from_secs(20);
const LEAD_SILENCE: Duration = Duration::from_millis(300);
const TAIL_SILENCE: Duration = Duration::from_millis(300);

fn ms(d: Duration) -> f64 {
  (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
  let args: Vec<String> = std::env::args().skip(1).collect();
  if args.len() < 3 {
    eprintln!("usage: publish-tone <url> <token|dev> <seconds> [room] [identity]");
    std::process::exit(2);
  }
  let mut out = serde_json::json!({ "role": "pub", "ok": false });
  let code = match run(&args, &mut out).await {
    Ok(()) => {
      out["ok"] = true.into();
      0
    }
    Err(e) => {
      out["error"] = e.to_string().into();
      out["code"] = e.code().into();
      eprintln!("publish-tone: {e}");
      1
    }
  };
  println!("{out}");
  std::process::exit(code);
}

async fn run(args: &[String], out: &mut serde_json::Value) -> capstan_livekit::Result<()> {
  let url = &args[0];
  let seconds: f64 = args[2]
    .parse()
    .map_err(|_| capstan_livekit::Error::InvalidOption(format!("seconds: {:?}", args[2])))?;
  if !(0.1..=300.0).contains(&seconds) {
    return Err(capstan_livekit::Error::InvalidOption(
      "seconds must be 0.1..=300".into(),
    ));
  }
  let room_name = args.get(3).map(String::as_str).unwrap_or("native");
  let identity = args.get(4).map(String::as_str).unwrap_or("pub");
  let token = if args[1].starts_with("dev") {
    let key = std::env::var("LIVEKIT_API_KEY").unwrap_or_else(|_| "devkey".into());
    let secret = std::env::var("LIVEKIT_API_SECRET").unwrap_or_else(|_| "secret".into());
    let grants = match args[1].as_str() {
      "dev" => Grants::participant(room_name),
      "dev-publish-only" => Grants::publisher(room_name),
      // A participant that may not publish: the server refuses the track.
      "dev-no-publish" => Grants {
        can_publish: false,
        ..Grants::participant(room_name)
      },
      other => return Err(capstan_livekit::Error::InvalidOption(format!("token {other:?}"))),
    };
    access_token(&key, &secret, identity, &grants, 600)?
  } else {
    args[1].clone()
  };

  let t0 = Instant::now();
  let (room, mut events) = Room::connect(url, &token, RoomOptions::default()).await?;
  out["connectMs"] = ms(t0.elapsed()).into();
  out["join"] = serde_json::json!({
    "room": room.join_info().room,
    "identity": room.join_info().identity,
    "serverVersion": room.join_info().server_version,
    "subscriberPrimary": room.join_info().subscriber_primary,
    "pingIntervalS": room.join_info().ping_interval.as_secs(),
  });

  let t1 = Instant::now();
  let opus = OpusOptions::new(
    capstan_core::Format::new(RATE, 1).map_err(|e| capstan_livekit::Error::InvalidOption(e.to_string()))?,
  )?;
  let track = room.publish_audio("tone", opus).await?;
  out["publishMs"] = ms(t1.elapsed()).into();
  out["trackSid"] = track.sid.clone().into();

  // The engine: one clock thread, a realtime source whose queue holds the whole tone.
  let engine = Engine::new(1);
  let total = (seconds * RATE as f64 / 480.0).round() as usize * 480;
  let mut so = SourceOptions::new(RATE, 1).map_err(|e| capstan_livekit::Error::InvalidOption(e.to_string()))?;
  so.queue_ms = ((total as u32 / 48 + 1000) / 10 * 10).min(capstan_core::options::MAX_QUEUE_MS);
  let source = engine
    .add_source(so)
    .map_err(|e| capstan_livekit::Error::InvalidOption(e.to_string()))?;
  source
    .set_sink(Box::new(LiveKitSink::new(&track)?))
    .map_err(|e| capstan_livekit::Error::InvalidOption(e.to_string()))?;

  // Silence flows from now on (underruns); the tone waits for a subscriber.
  let t2 = Instant::now();
  let subscribed = tokio::time::timeout(SUBSCRIBER_WAIT, async {
    while let Some(e) = events.recv().await {
      match e {
        RoomEvent::TrackSubscribed { track_sid } if track_sid == track.sid => return Ok(()),
        RoomEvent::Disconnected { reason } => return Err(capstan_livekit::Error::Signal(reason)),
        _ => {}
      }
    }
    Err(capstan_livekit::Error::Closed)
  })
  .await
  .map_err(|_| capstan_livekit::Error::Timeout(format!("no subscriber within {} s", SUBSCRIBER_WAIT.as_secs())))?;
  subscribed?;
  out["subscribedAfterMs"] = ms(t2.elapsed()).into();
  tokio::time::sleep(LEAD_SILENCE).await;

  let tone: Vec<i16> = (0..total)
    .map(|i| ((i as f64 * HZ * std::f64::consts::TAU / RATE as f64).sin() * 16384.0).round() as i16)
    .collect();
  let start_pos = source.playout_position();
  let outcome = source
    .try_capture(FrameRef::i16(&tone))
    .map_err(|e| capstan_livekit::Error::InvalidOption(e.to_string()))?;
  out["capture"] = format!("{outcome:?}").into();
  let t3 = Instant::now();
  let bound = Duration::from_secs_f64(seconds + 5.0);
  while source.playout_position() < start_pos + total as u64 {
    if t3.elapsed() > bound {
      return Err(capstan_livekit::Error::Timeout(
        "the engine did not play the tone out".into(),
      ));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  out["playoutMs"] = ms(t3.elapsed()).into();
  out["toneSamplesSent"] = total.into();
  tokio::time::sleep(TAIL_SILENCE).await;
  engine.remove_source(&source);
  engine.shutdown();

  let stats = track.stats();
  out["bytes"] = serde_json::json!({
    "encoded": stats.encoded_bytes, "sent": stats.sent_bytes, "queued": stats.queued_bytes, "dropped": stats.dropped_bytes,
    "packets": stats.encoded_packets, "sentPackets": stats.sent_packets,
    "droppedFull": stats.dropped_full, "droppedUnsent": stats.dropped_unsent, "balanced": stats.balanced(),
  });
  let t4 = Instant::now();
  room.unpublish(&track).await?;
  out["unpublishMs"] = ms(t4.elapsed()).into();
  out["subscriberConnected"] = room.subscriber_connected().into();
  let sig = room.signal_stats();
  out["signal"] = serde_json::json!({ "pings": sig.pings, "pongs": sig.pongs, "rttMs": sig.rtt_ms, "badCandidates": sig.bad_candidates });
  // Give the server a moment to tell the subscriber before the participant leaves.
  tokio::time::sleep(Duration::from_millis(300)).await;
  room.close().await?;
  if !stats.balanced() {
    return Err(capstan_livekit::Error::Peer(format!("bytes do not balance: {stats:?}")));
  }
  Ok(())
}
