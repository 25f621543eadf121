//! Helpers shared by the integration tests. Each test binary uses a subset.
#![allow(dead_code)]

use std::sync::Arc;

use capstan_core::events::Bus;
use capstan_core::{
  CaptureResult, Completion, Consumer, Drained, Event, FrameRef, Metrics, Outcome, Overflow, Read, Source,
  SourceOptions, Status,
};

pub fn opts(rate: u32, channels: u16, queue_ms: u32, overflow: Overflow, consumer: Consumer) -> SourceOptions {
  let mut o = SourceOptions::new(rate, channels).expect("valid format");
  o.queue_ms = queue_ms;
  o.overflow = overflow;
  o.consumer = consumer;
  o
}

/// A source on its own bus, with no clock thread: nothing moves unless the test calls
/// `read()` or `tick()`.
pub fn source(o: SourceOptions) -> (Arc<Source>, Arc<Bus>) {
  let bus = Bus::new();
  let s = Source::new(1, o, bus.clone()).expect("valid options");
  (s, bus)
}

pub fn pull(rate: u32, channels: u16, queue_ms: u32, overflow: Overflow) -> (Arc<Source>, Arc<Bus>) {
  source(opts(rate, channels, queue_ms, overflow, Consumer::Pull))
}

/// `len` distinct-looking samples starting at `start` (wrapping).
pub fn ramp(start: usize, len: usize) -> Vec<i16> {
  (0..len).map(|i| (start + i) as u16 as i16).collect()
}

pub fn cap(s: &Source, data: &[i16]) -> CaptureResult {
  s.capture(FrameRef::i16(data), None)
    .expect("capture is not a programmer error")
}

pub fn cap_deadline(s: &Source, data: &[i16], deadline_ms: u32) -> CaptureResult {
  s.capture(FrameRef::i16(data), Some(deadline_ms))
    .expect("capture is not a programmer error")
}

pub fn try_cap(s: &Source, data: &[i16]) -> Outcome {
  s.try_capture(FrameRef::i16(data))
    .expect("try_capture is not a programmer error")
}

#[track_caller]
pub fn settled(r: CaptureResult) -> Outcome {
  match r {
    CaptureResult::Settled(o) => o,
    CaptureResult::Pending(id) => panic!("expected a settled capture, got Pending({id})"),
  }
}

#[track_caller]
pub fn pending(r: CaptureResult) -> u64 {
  match r {
    CaptureResult::Pending(id) => id,
    CaptureResult::Settled(o) => panic!("expected a pending capture, got {o:?}"),
  }
}

/// Status and per-channel counts, the part of an outcome tests compare exactly.
#[track_caller]
pub fn assert_outcome(o: &Outcome, status: Status, accepted: u64, dropped: u64) {
  assert_eq!(
    (o.status, o.accepted_samples, o.dropped_samples),
    (status, accepted, dropped),
    "outcome {o:?}"
  );
}

/// Reads chunks until the source has none, checking every chunk's length.
#[track_caller]
pub fn read_all(s: &Source) -> Vec<i16> {
  let chunk = s.format().chunk_len();
  let mut out = Vec::new();
  loop {
    match s.read() {
      Read::Chunk(c) => {
        assert_eq!(c.len(), chunk, "every chunk is exactly 10 ms");
        out.extend_from_slice(&c);
      }
      Read::Empty | Read::Closed => return out,
    }
  }
}

/// Reads exactly `n` chunks (panics if fewer are there).
#[track_caller]
pub fn read_n(s: &Source, n: usize) -> Vec<i16> {
  let chunk = s.format().chunk_len();
  let mut out = Vec::new();
  for i in 0..n {
    match s.read() {
      Read::Chunk(c) => {
        assert_eq!(c.len(), chunk);
        out.extend_from_slice(&c);
      }
      other => panic!("read {i} of {n}: expected a chunk, got {other:?}"),
    }
  }
  out
}

#[track_caller]
pub fn assert_invariant(m: &Metrics) {
  assert_eq!(
    m.captured,
    m.delivered + m.queued + m.dropped + m.cleared,
    "captured == delivered + queued + dropped + cleared violated: {m:?}"
  );
}

pub fn completions(d: &[Drained]) -> Vec<Completion> {
  d.iter().flat_map(|x| x.completions.iter().cloned()).collect()
}

pub fn events(d: &[Drained]) -> Vec<Event> {
  d.iter().flat_map(|x| x.events.iter().cloned()).collect()
}

pub fn status_count(m: &Metrics, s: Status) -> u64 {
  m.outcomes[Status::ALL.iter().position(|x| *x == s).unwrap()]
}

/// Proptest case count: `default`, or `PROPTEST_CASES` from the environment for longer runs.
pub fn cases(default: u32) -> u32 {
  std::env::var("PROPTEST_CASES")
    .ok()
    .and_then(|v| v.parse().ok())
    .unwrap_or(default)
}
