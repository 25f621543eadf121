//! Receives the first remote audio track of a room and measures it: what `publish-tone`
//! sends should come back as its 440 Hz tone, with no JavaScript anywhere on the path.
//!
//!   receive-tone <url> <token|dev> <seconds> [room] [identity]
//!
//! `dev` makes a token (publish and subscribe) from LIVEKIT_API_KEY / LIVEKIT_API_SECRET
//! (default devkey / secret) for `room` (default `native`) and `identity` (default `sub`).
//! Joins with auto-subscribe, waits for the first remote audio track (within 20 s), reads
//! its 10 ms chunks for `<seconds>` (or until the track ends), then leaves. One JSON line on
//! stdout: samples read, the dominant frequency per 100 ms window over the tone span (zero
//! crossings; min/max), the longest silence inside the tone span, the track's counters;
//! `ok` only if both accounting laws held. The exit code is 0 only then.

use std::time::{Duration, Instant};

use capstan_livekit::{access_token, Grants, ReadRemote, Room, RoomEvent, RoomOptions};

const TRACK_WAIT: Duration = Duration::from_secs(20);
/// A window counts as tone when its peak is above this (the publisher's is 16384).
const TONE_PEAK: i16 = 2000;

fn ms(d: Duration) -> f64 {
  (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
  let args: Vec<String> = std::env::args().skip(1).collect();
  if args.len() < 3 {
    eprintln!("usage: receive-tone <url> <token|dev> <seconds> [room] [identity]");
    std::process::exit(2);
  }
  let mut out = serde_json::json!({ "role": "sub", "ok": false });
  let code = match run(&args, &mut out).await {
    Ok(()) => {
      out["ok"] = true.into();
      0
    }
    Err(e) => {
      out["error"] = e.to_string().into();
      out["code"] = e.code().into();
      eprintln!("receive-tone: {e}");
      1
    }
  };
  println!("{out}");
  std::process::exit(code);
}

/// Frequency by zero crossings of one channel's samples.
fn zero_crossing_hz(s: &[i16], rate: f64) -> f64 {
  let zc = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
  zc as f64 / 2.0 / (s.len() as f64 / rate)
}

async fn run(args: &[String], out: &mut serde_json::Value) -> capstan_livekit::Result<()> {
  let bad = |m: String| capstan_livekit::Error::InvalidOption(m);
  let url = &args[0];
  let seconds: f64 = args[2].parse().map_err(|_| bad(format!("seconds: {:?}", args[2])))?;
  if !(0.1..=300.0).contains(&seconds) {
    return Err(bad("seconds must be 0.1..=300".into()));
  }
  let room_name = args.get(3).map(String::as_str).unwrap_or("native");
  let identity = args.get(4).map(String::as_str).unwrap_or("sub");
  let token = if args[1] == "dev" {
    let key = std::env::var("LIVEKIT_API_KEY").unwrap_or_else(|_| "devkey".into());
    let secret = std::env::var("LIVEKIT_API_SECRET").unwrap_or_else(|_| "secret".into());
    access_token(&key, &secret, identity, &Grants::participant(room_name), 600)?
  } else {
    args[1].clone()
  };

  let t0 = Instant::now();
  let opts = RoomOptions {
    auto_subscribe: true,
    ..Default::default()
  };
  let (room, mut events) = Room::connect(url, &token, opts).await?;
  out["connectMs"] = ms(t0.elapsed()).into();
  out["join"] = serde_json::json!({
    "room": room.join_info().room,
    "identity": room.join_info().identity,
    "serverVersion": room.join_info().server_version,
    "subscriberPrimary": room.join_info().subscriber_primary,
  });

  let t1 = Instant::now();
  let found = tokio::time::timeout(TRACK_WAIT, async {
    while let Some(e) = events.recv().await {
      match e {
        RoomEvent::RemoteTrackSubscribed(t) => return Ok(t),
        RoomEvent::Disconnected { reason } => return Err(capstan_livekit::Error::Signal(reason)),
        _ => {}
      }
    }
    Err(capstan_livekit::Error::Closed)
  })
  .await;
  let track = match found {
    Ok(r) => r?,
    Err(_) => {
      let _ = room.close().await;
      return Err(capstan_livekit::Error::Timeout(format!(
        "no remote audio track within {} s",
        TRACK_WAIT.as_secs()
      )));
    }
  };
  out["subscribedAfterMs"] = ms(t1.elapsed()).into();
  out["track"] = serde_json::json!({
    "sid": track.sid, "participant": track.participant_identity, "name": track.name,
    "channels": track.format.channels,
  });

  // Wake on data (the binding's path), with a poll as a backstop: bounded either way.
  let wake = std::sync::Arc::new(tokio::sync::Notify::new());
  let w2 = wake.clone();
  track
    .audio
    .set_notify(Some(std::sync::Arc::new(move || w2.notify_one())));
  let channels = track.format.channels as usize;
  let mut mono: Vec<i16> = Vec::new();
  let t2 = Instant::now();
  let span = Duration::from_secs_f64(seconds);
  let mut end_reason = None;
  while t2.elapsed() < span {
    match track.audio.read(50) {
      ReadRemote::Chunks(pcm, _) => mono.extend(pcm.chunks(channels).map(|f| f[0])),
      ReadRemote::Empty => {
        let _ = tokio::time::timeout(Duration::from_millis(100), wake.notified()).await;
      }
      ReadRemote::Ended => {
        end_reason = track.audio.ended();
        break;
      }
    }
  }
  out["readMs"] = ms(t2.elapsed()).into();
  let first = track
    .audio
    .first_chunk_at()
    .map(|t| ms(t.saturating_duration_since(t1)));
  out["firstChunkAfterSubscribeMs"] = first.into();
  out["endedEarly"] = end_reason.into();

  // The tone span: from the first window whose peak says tone to the last one.
  const WIN: usize = 4800;
  let windows: Vec<&[i16]> = mono.chunks_exact(WIN).collect();
  let loud = |w: &&[i16]| w.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0) >= TONE_PEAK as u16;
  let first_tone = windows.iter().position(loud);
  let last_tone = windows.iter().rposition(loud);
  out["samplesRead"] = mono.len().into();
  if let (Some(a), Some(b)) = (first_tone, last_tone) {
    let hz: Vec<f64> = windows[a..=b].iter().map(|w| zero_crossing_hz(w, 48_000.0)).collect();
    // The edge windows are part silence by construction (the tone starts and ends inside
    // them): the frequency is taken over the windows between.
    let inner = if hz.len() > 2 { &hz[1..hz.len() - 1] } else { &hz[..] };
    let min = inner.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = inner.iter().cloned().fold(0.0, f64::max);
    let peaks: Vec<u16> = windows[a..=b]
      .iter()
      .map(|w| w.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0))
      .collect();
    out["windows"] = serde_json::json!({
      "hz": hz.iter().map(|h| h.round() as i64).collect::<Vec<_>>(),
      "peak": peaks,
    });
    // The longest run of near-silence (|s| < 1% of full scale) between the first and the
    // last loud sample, in ms.
    let span = &mono[a * WIN..(b + 1) * WIN];
    let lo = span
      .iter()
      .position(|s| s.unsigned_abs() >= TONE_PEAK as u16)
      .unwrap_or(0);
    let hi = span
      .iter()
      .rposition(|s| s.unsigned_abs() >= TONE_PEAK as u16)
      .unwrap_or(0);
    let tone = &span[lo..=hi.max(lo)];
    let (mut run, mut longest) = (0usize, 0usize);
    for s in tone {
      if s.unsigned_abs() < 328 {
        run += 1;
        longest = longest.max(run);
      } else {
        run = 0;
      }
    }
    out["tone"] = serde_json::json!({
      "startMs": a * 100, "spanMs": (b + 1 - a) * 100,
      "hzMin": (min * 10.0).round() / 10.0, "hzMax": (max * 10.0).round() / 10.0,
      "toneMs": (tone.len() as f64 / 48.0 * 10.0).round() / 10.0,
      "longestSilenceMs": (longest as f64 / 48.0 * 10.0).round() / 10.0,
    });
  } else {
    out["tone"] = serde_json::Value::Null;
  }

  let s = track.audio.stats();
  out["counters"] = serde_json::json!({
    "packetsReceived": s.packets_received, "bytesReceived": s.bytes_received, "played": s.played,
    "duplicate": s.duplicate, "late": s.late, "overflow": s.overflow, "discarded": s.discarded,
    "buffered": s.buffered, "lost": s.lost, "fecRecovered": s.fec_recovered, "decodeErrors": s.decode_errors,
    "silenceGaps": s.silence_gaps, "resyncs": s.resyncs,
    "decodedChunks": s.decoded_chunks, "concealedChunks": s.concealed_chunks, "droppedChunks": s.dropped_chunks,
    "readChunks": s.read_chunks, "queuedChunks": s.queued_chunks,
    "chunksBalanced": s.chunks_balanced(), "packetsBalanced": s.packets_balanced(),
  });
  let sig = room.signal_stats();
  out["signal"] = serde_json::json!({
    "pings": sig.pings, "pongs": sig.pongs, "rttMs": sig.rtt_ms,
    "unroutedPackets": sig.unrouted_packets, "droppedEvents": sig.dropped_events,
  });
  room.close().await?;
  if !s.balanced() {
    return Err(capstan_livekit::Error::Peer(format!(
      "the counters do not balance: {s:?}"
    )));
  }
  Ok(())
}
