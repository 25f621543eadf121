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
  // 25 ms, cut (padded to 30 ms), then 10 ms of the next segment before any pass runs.
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
  assert_eq!(first.len(), 240 * 2, "25 ms padded to 30 ms");
  assert_eq!(i16::from_le_bytes([first[398], first[399]]), 200);
  assert_eq!(i16::from_le_bytes([first[400], first[401]]), 0, "padding");
  let fin = out.take_finished();
  assert_eq!((fin.len(), fin[0].samples, fin[0].last), (1, 240, false));
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
  assert_eq!(e.encoded_samples, 320);
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
