//! A realtime pre-roll: delivery starts once `prerollMs` of audio is queued (or that long
//! after audio came, or at a `flush()`), and starts again the same way after the queue ran
//! dry, so a producer that delivers in bursts does not reach the consumer as holes.

use std::time::{Duration, Instant};

use capstan_core::events::Bus;
use capstan_core::options::{Consumer, SourceOptions};
use capstan_core::source::{FrameRef, Source};
use capstan_core::HealthState;

fn source(preroll_ms: u32) -> std::sync::Arc<Source> {
  let mut o = SourceOptions::new(8_000, 1).unwrap();
  o.consumer = Consumer::Realtime;
  o.queue_ms = 1_000;
  o.preroll_ms = preroll_ms;
  Source::new(1, o, Bus::new()).unwrap()
}

const MS: u64 = 8; // samples per ms at 8 kHz mono

#[test]
fn delivery_waits_for_the_preroll_then_plays_in_real_time() {
  let s = source(30);
  let mut now = Instant::now();
  s.capture(FrameRef::i16(&[1; 80]), None).unwrap();
  for _ in 0..2 {
    now += Duration::from_millis(10);
    s.tick(now, 1);
  }
  assert_eq!(s.metrics().delivered, 0, "10 ms queued of a 30 ms pre-roll: held");
  assert_eq!(s.health(), HealthState::Healthy, "held audio is not a lagging consumer");
  s.capture(FrameRef::i16(&[2; 160]), None).unwrap();
  now += Duration::from_millis(1);
  s.tick(now, 1);
  assert_eq!(
    s.metrics().delivered,
    10 * MS,
    "30 ms queued: delivery starts, one chunk a tick"
  );
  for _ in 0..2 {
    now += Duration::from_millis(10);
    s.tick(now, 1);
  }
  let m = s.metrics();
  assert_eq!((m.delivered, m.queued), (30 * MS, 0));
  assert_eq!(m.captured, m.delivered + m.queued + m.dropped + m.cleared);
}

#[test]
fn a_short_utterance_waits_no_longer_than_the_preroll_and_a_flush_not_at_all() {
  let s = source(50);
  let t0 = Instant::now();
  s.capture(FrameRef::i16(&[1; 80]), None).unwrap();
  s.tick(t0, 1);
  s.tick(t0 + Duration::from_millis(40), 1);
  assert_eq!(s.metrics().delivered, 0);
  s.tick(t0 + Duration::from_millis(50), 1);
  assert_eq!(
    s.metrics().delivered,
    10 * MS,
    "released once it waited as long as the pre-roll"
  );
  // The queue ran dry; a flush() (the end of a segment) releases what is queued at once.
  s.tick(t0 + Duration::from_millis(60), 1);
  s.capture(FrameRef::i16(&[1; 120]), None).unwrap();
  s.flush(None).unwrap();
  s.tick(t0 + Duration::from_millis(61), 1);
  assert_eq!(s.metrics().delivered, 20 * MS);
}

#[test]
fn after_running_dry_the_next_audio_waits_for_the_preroll_again() {
  let s = source(20);
  let mut now = Instant::now();
  s.capture(FrameRef::i16(&[1; 160]), None).unwrap();
  for _ in 0..3 {
    now += Duration::from_millis(10);
    s.tick(now, 1);
  }
  let m = s.metrics();
  assert_eq!((m.delivered, m.underruns), (20 * MS, 1));
  s.capture(FrameRef::i16(&[1; 80]), None).unwrap();
  now += Duration::from_millis(10);
  s.tick(now, 1);
  assert_eq!(s.metrics().delivered, 20 * MS, "held: 10 of 20 ms");
  s.capture(FrameRef::i16(&[1; 80]), None).unwrap();
  now += Duration::from_millis(1);
  s.tick(now, 1);
  assert_eq!(s.metrics().delivered, 30 * MS);
}

#[test]
fn no_preroll_delivers_the_first_chunk_at_once_and_bad_values_are_refused() {
  let s = source(0);
  s.capture(FrameRef::i16(&[1; 80]), None).unwrap();
  s.tick(Instant::now(), 1);
  assert_eq!(s.metrics().delivered, 10 * MS);
  for bad in [15, 210] {
    let mut o = SourceOptions::new(8_000, 1).unwrap();
    o.preroll_ms = bad;
    assert!(o.validate().is_err(), "{bad}");
  }
  let mut o = SourceOptions::new(8_000, 1).unwrap();
  o.preroll_ms = 20;
  o.consumer = Consumer::Unpaced;
  assert!(o.validate().unwrap_err().message().contains("realtime"));
  assert!(s.set_preroll(Some(25)).is_err());
  s.set_preroll(Some(40)).unwrap();
  s.set_preroll(None).unwrap();
}
