//! An encoder as a source's sink, driven by hand-made clock passes: segments cut exactly
//! where `cut_segment` was called, samples and bytes both accounted for.

use std::time::{Duration, Instant};

use capstan_core::encode::{OpusSettings, PcmSample, Settings};
use capstan_core::events::Bus;
use capstan_core::options::{Consumer, SourceOptions};
use capstan_core::queue::Overflow;
use capstan_core::sink::encode::Read;
use capstan_core::source::{FrameRef, Source};

fn source(consumer: Consumer) -> std::sync::Arc<Source> {
  let mut o = SourceOptions::new(8_000, 1).unwrap();
  o.consumer = consumer;
  o.queue_ms = 1_000;
  Source::new(1, o, Bus::new()).unwrap()
}

fn read_all(out: &capstan_core::sink::EncodedOutput) -> Vec<(Vec<u8>, Option<u32>)> {
  let mut v = Vec::new();
  while let Read::Bytes { bytes, end } = out.read(1 << 20) {
    v.push((bytes, end.map(|e| e.index)));
  }
  v
}

#[test]
fn segments_end_exactly_where_cut_was_called() {
  let s = source(Consumer::Unpaced);
  let out = s
    .encode(&Settings::Pcm(PcmSample::S16le), 1 << 20, Overflow::Wait, false)
    .unwrap();
  let mut now = Instant::now();
  // 25 ms, cut (padded to 30 ms in the queue, trimmed in the file), then 10 ms of the next segment before any pass runs.
  let a: Vec<i16> = (1..=200).collect();
  s.capture(FrameRef::i16(&a), None).unwrap();
  s.cut_segment(&out, false, None).unwrap();
  s.capture(FrameRef::i16(&[-5; 80]), None).unwrap();
  for _ in 0..3 {
    now += Duration::from_millis(10);
    s.tick(now, 1);
  }
  let got = read_all(&out);
  // Reads stop at a segment's end, so the first segment is everything up to that read.
  let split = got.iter().position(|(_, e)| e.is_some()).expect("a segment ended") + 1;
  let first: Vec<u8> = got[..split].iter().flat_map(|(b, _)| b.clone()).collect();
  let mut rest: Vec<u8> = got[split..].iter().flat_map(|(b, _)| b.clone()).collect();
  assert_eq!(first.len(), 200 * 2, "exactly the 25 ms captured, the padding trimmed");
  assert_eq!(i16::from_le_bytes([first[398], first[399]]), 200);
  let fin = out.take_finished();
  assert_eq!((fin.len(), fin[0].samples, fin[0].last), (1, 200, false));
  // The next segment holds the 10 ms captured after the cut; closing ends it.
  s.close();
  s.tick(now, 1);
  rest.extend(read_all(&out).into_iter().flat_map(|(b, _)| b));
  assert_eq!(rest.len(), 160);
  assert_eq!(i16::from_le_bytes([rest[0], rest[1]]), -5);
  let fin = out.take_finished();
  assert!(fin[0].last && fin[0].index == 1);
  let m = s.metrics();
  assert_eq!(m.captured, m.delivered + m.queued + m.dropped + m.cleared);
  let e = out.metrics();
  assert_eq!(e.produced_bytes, e.read_bytes + e.queued_bytes + e.dropped_bytes);
  assert_eq!(e.encoded_samples, 280);
  assert_eq!(m.padded, 40, "the source still counts the padding it queued");
}

#[test]
fn a_full_output_under_wait_backs_up_the_source() {
  let s = source(Consumer::Unpaced);
  let out = s
    .encode(&Settings::Pcm(PcmSample::S16le), 400, Overflow::Wait, false)
    .unwrap();
  // One pass takes what the source has while the output has room: 10 chunks, 1600 bytes.
  s.capture(FrameRef::i16(&[3; 800]), None).unwrap();
  s.tick(Instant::now(), 0);
  assert_eq!(out.metrics().produced_bytes, 1600);
  // Now the output is past its 400 bytes: the next pass takes nothing, the source backs up.
  s.capture(FrameRef::i16(&[4; 800]), None).unwrap();
  s.tick(Instant::now(), 0);
  assert_eq!(out.metrics().produced_bytes, 1600);
  assert_eq!(s.metrics().queued, 800);
  // A reader makes room; the audio moves again.
  let _ = read_all(&out);
  s.tick(Instant::now(), 0);
  assert_eq!(out.metrics().produced_bytes, 3200);
  assert_eq!(s.metrics().queued, 0);
}

#[test]
fn bad_settings_and_policies_are_errors_at_the_call() {
  let s = source(Consumer::Realtime);
  let bad = Settings::OggOpus(OpusSettings {
    frame_ms: 15,
    ..Default::default()
  });
  assert_eq!(
    s.encode(&bad, 1 << 20, Overflow::Wait, false).err().unwrap().code(),
    "ERR_INVALID_OPTION"
  );
  let ok = Settings::Pcm(PcmSample::F32le);
  assert!(s.encode(&ok, 1 << 20, Overflow::Reject, false).is_err());
  assert!(s.encode(&ok, 0, Overflow::Wait, false).is_err());
  assert!(source(Consumer::Pull)
    .encode(&ok, 1 << 20, Overflow::Wait, false)
    .is_err());
}

#[test]
fn a_realtime_sink_that_paused_briefly_is_owed_its_ticks_a_long_pause_is_lag() {
  use capstan_core::source::Read;
  let mut o = SourceOptions::new(8_000, 1).unwrap();
  o.consumer = Consumer::Realtime;
  o.queue_ms = 1_000;
  o.reader_chunks = 2;
  let s = Source::new(1, o, Bus::new()).unwrap();
  s.set_reader(true);
  s.capture(FrameRef::i16(&[1; 80 * 50]), None).unwrap();
  let mut now = Instant::now();
  let mut tick = |n: u32| {
    now += Duration::from_millis(10) * n;
    s.tick(now, n);
  };
  tick(1); // installs the reader sink
  tick(2); // fills its 2 chunks
  let d0 = s.metrics().delivered;
  tick(3); // no room: 3 ticks owed
  assert_eq!(s.metrics().delivered, d0);
  for _ in 0..2 {
    assert!(matches!(s.read(), Read::Chunk(_)));
  }
  tick(1); // room for 2: the tick plus 1 owed
  assert_eq!(s.metrics().delivered, d0 + 160);
  for _ in 0..2 {
    assert!(matches!(s.read(), Read::Chunk(_)));
  }
  tick(1); // 1 tick + 3 owed, room 2
  assert_eq!(s.metrics().delivered, d0 + 320);
  // A long pause: at most 5 ticks (50 ms) are owed, the rest is lost time.
  tick(40);
  for _ in 0..2 {
    assert!(matches!(s.read(), Read::Chunk(_)));
  }
  let d1 = s.metrics().delivered;
  // Room for 2 a pass: 6 passes take 6 ticks and the 5 owed.
  for _ in 0..6 {
    tick(1);
    while let Read::Chunk(_) = s.read() {}
  }
  assert_eq!(s.metrics().delivered - d1, (6 + 5) * 80);
  let m = s.metrics();
  assert_eq!(m.captured, m.delivered + m.queued + m.dropped + m.cleared);
}
