//! N native publishers in one process: what the per-packet path costs without JavaScript.
//!
//!   publish-load <url> <participants> <seconds> [opus complexity 0..=10, default 10]
//!
//! Joins `participants` publish-only participants (`load-0`..) to room `load` with dev
//! tokens (LIVEKIT_API_KEY / LIVEKIT_API_SECRET, default devkey / secret), publishes one
//! 48 kHz mono track each, plays `seconds` of tone through one capstan engine (a realtime
//! source and a `LiveKitSink` per participant), then unpublishes and leaves. Prints one JSON
//! line: process CPU per source per 10 ms frame while the tone played, the engine's lost
//! ticks, and the summed byte counters (which must balance).

use std::time::{Duration, Instant};

use capstan_core::{Engine, Format, FrameRef, SourceOptions};
use capstan_livekit::{access_token, Error, Grants, LiveKitSink, OpusOptions, Room, RoomOptions};

const RATE: u32 = 48_000;

/// User + system CPU of this process so far, from /proc (USER_HZ is 100 on Linux).
fn cpu_seconds() -> f64 {
  let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
  let f: Vec<&str> = rest.split_whitespace().collect();
  let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
  (tick(11) + tick(12)) / 100.0
}

fn bad(e: impl std::fmt::Display) -> Error {
  Error::InvalidOption(e.to_string())
}

#[tokio::main]
async fn main() {
  let args: Vec<String> = std::env::args().skip(1).collect();
  if args.len() < 3 {
    eprintln!("usage: publish-load <url> <participants> <seconds>");
    std::process::exit(2);
  }
  let mut out = serde_json::json!({ "role": "load", "ok": false });
  let code = match run(&args, &mut out).await {
    Ok(()) => {
      out["ok"] = true.into();
      0
    }
    Err(e) => {
      out["error"] = e.to_string().into();
      out["code"] = e.code().into();
      1
    }
  };
  println!("{out}");
  std::process::exit(code);
}

async fn run(args: &[String], out: &mut serde_json::Value) -> capstan_livekit::Result<()> {
  let url = args[0].clone();
  let n: usize = args[1].parse().map_err(bad)?;
  let seconds: u32 = args[2].parse().map_err(bad)?;
  if !(1..=1000).contains(&n) || !(1..=120).contains(&seconds) {
    return Err(bad("participants 1..=1000, seconds 1..=120"));
  }
  let key = std::env::var("LIVEKIT_API_KEY").unwrap_or_else(|_| "devkey".into());
  let secret = std::env::var("LIVEKIT_API_SECRET").unwrap_or_else(|_| "secret".into());

  // Join in batches of 10: the server's join path, not this client, is what a burst tests.
  let t0 = Instant::now();
  let mut rooms = Vec::with_capacity(n);
  let mut events = Vec::with_capacity(n);
  for batch in (0..n).collect::<Vec<_>>().chunks(10) {
    let mut joins = Vec::new();
    for &i in batch {
      let token = access_token(&key, &secret, &format!("load-{i}"), &Grants::publisher("load"), 600)?;
      let url = url.clone();
      joins.push(tokio::spawn(async move {
        Room::connect(&url, &token, RoomOptions::default()).await
      }));
    }
    for j in joins {
      let (room, ev) = j.await.map_err(bad)??;
      rooms.push(room);
      events.push(ev);
    }
  }
  out["joinAllMs"] = (t0.elapsed().as_millis() as u64).into();

  let mut opus = OpusOptions::new(Format::new(RATE, 1).map_err(bad)?)?;
  if let Some(c) = args.get(3) {
    opus.complexity = c.parse().map_err(bad)?;
    opus.validate()?;
  }
  let mut tracks = Vec::with_capacity(n);
  for r in &rooms {
    tracks.push(r.publish_audio("tone", opus).await?);
  }

  let engine = Engine::new(Engine::default_threads());
  let total = (seconds * RATE) as usize;
  let tone: Vec<i16> = (0..total)
    .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / RATE as f64).sin() * 16384.0) as i16)
    .collect();
  let mut sources = Vec::with_capacity(n);
  for t in &tracks {
    let mut so = SourceOptions::new(RATE, 1).map_err(bad)?;
    so.queue_ms = seconds * 1000 + 1000;
    let s = engine.add_source(so).map_err(bad)?;
    s.set_sink(Box::new(LiveKitSink::new(t)?)).map_err(bad)?;
    sources.push(s);
  }
  tokio::time::sleep(Duration::from_millis(200)).await;

  let lost0 = engine.lost_ticks();
  let cpu0 = cpu_seconds();
  let w0 = Instant::now();
  for s in &sources {
    s.try_capture(FrameRef::i16(&tone)).map_err(bad)?;
  }
  let bound = Duration::from_secs(seconds as u64 + 10);
  while sources.iter().any(|s| s.playout_position() < total as u64) {
    if w0.elapsed() > bound {
      return Err(Error::Timeout("the engine did not play the tones out".into()));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
  }
  let wall = w0.elapsed().as_secs_f64();
  let cpu = cpu_seconds() - cpu0;
  let frames = (n as f64) * (seconds as f64) * 100.0;
  out["participants"] = n.into();
  out["complexity"] = opus.complexity.into();
  out["toneSeconds"] = seconds.into();
  out["playoutWallS"] = ((wall * 1000.0).round() / 1000.0).into();
  out["cpuS"] = ((cpu * 1000.0).round() / 1000.0).into();
  out["cpuUsPerSourceFrame"] = ((cpu * 1e6 / frames * 10.0).round() / 10.0).into();
  out["cpuCoresBusy"] = ((cpu / wall * 1000.0).round() / 1000.0).into();
  out["lostTicks"] = (engine.lost_ticks() - lost0).into();
  out["engineThreads"] = engine.thread_count().into();

  for s in &sources {
    engine.remove_source(s);
  }
  engine.shutdown();
  let (mut enc, mut sent, mut queued, mut dropped, mut full) = (0u64, 0u64, 0u64, 0u64, 0u64);
  let mut balanced = true;
  for t in &tracks {
    let c = t.stats();
    balanced &= c.balanced();
    enc += c.encoded_bytes;
    sent += c.sent_bytes;
    queued += c.queued_bytes;
    dropped += c.dropped_bytes;
    full += c.dropped_full;
  }
  out["bytes"] = serde_json::json!({ "encoded": enc, "sent": sent, "queued": queued, "dropped": dropped, "droppedFull": full, "balanced": balanced });
  // Sessions that ended while the tone played (none should), by reason.
  let mut ended = std::collections::BTreeMap::<String, u32>::new();
  for ev in &mut events {
    while let Ok(e) = ev.try_recv() {
      if let capstan_livekit::RoomEvent::Disconnected { reason } = e {
        *ended.entry(reason).or_default() += 1;
      }
    }
  }
  out["endedEarly"] = serde_json::json!(ended);
  for (r, t) in rooms.iter().zip(&tracks) {
    let _ = r.unpublish(t).await;
  }
  for r in rooms {
    let _ = r.close().await;
  }
  if !balanced {
    return Err(Error::Peer("bytes do not balance".into()));
  }
  Ok(())
}
