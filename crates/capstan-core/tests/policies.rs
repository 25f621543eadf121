//! Every overflow policy on a pull source (nothing drains unless the test reads): exact
//! statuses, per-channel counts, and exactly which samples stay readable.
//!
//! Sizes are in quarters of a chunk (`q`), so each scenario runs unchanged at 8 kHz mono
//! (chunk 80) and 48 kHz stereo (chunk 960, counts reported per channel).

mod common;

use capstan_core::{Event, FrameRef, Overflow, Read, Samples, Status};
use common::*;

/// (rate, channels) pairs every scenario runs at.
const FORMATS: [(u32, u16); 2] = [(8_000, 1), (48_000, 2)];
/// Queue of 5 chunks.
const QUEUE_MS: u32 = 50;

struct Fx {
  c: usize,
  q: usize,
  ch: u64,
}

impl Fx {
  fn new(rate: u32, channels: u16) -> Self {
    let c = (rate / 100) as usize * channels as usize;
    Fx {
      c,
      q: c / 4,
      ch: channels as u64,
    }
  }
  /// Interleaved samples → per-channel count.
  fn pc(&self, interleaved: usize) -> u64 {
    interleaved as u64 / self.ch
  }
}

fn overflow_events(d: &[capstan_core::Drained]) -> Vec<(u64, Overflow)> {
  events(d)
    .into_iter()
    .filter_map(|e| match e {
      Event::Overflow {
        dropped_samples,
        policy,
      } => Some((dropped_samples, policy)),
      _ => None,
    })
    .collect()
}

#[test]
fn reject_is_all_or_nothing() {
  for (rate, channels) in FORMATS {
    let f = Fx::new(rate, channels);
    let (s, bus) = pull(rate, channels, QUEUE_MS, Overflow::Reject);
    let a = ramp(0, 15 * f.q); // 3 chunks + 3q carried
    let b = ramp(10_000, 10 * f.q); // 3q + 10q = 3 chunks > 2 free
    let b2 = ramp(20_000, 9 * f.q); // 3q + 9q = 3 chunks > 2 free
    let d = ramp(30_000, 5 * f.q); // 3q + 5q = 2 chunks: fits exactly
    assert_outcome(&settled(cap(&s, &a)), Status::Accepted, f.pc(a.len()), 0);
    assert_outcome(&settled(cap(&s, &b)), Status::Dropped, 0, f.pc(b.len()));
    assert_outcome(&try_cap(&s, &b2), Status::Dropped, 0, f.pc(b2.len()));
    let m = s.metrics();
    assert_eq!(
      (m.queued, m.dropped),
      (f.pc(15 * f.q), f.pc(19 * f.q)),
      "a refused frame leaves the queue untouched"
    );
    assert_outcome(&settled(cap(&s, &d)), Status::Accepted, f.pc(d.len()), 0);
    // The queue is full, nothing carried: a frame shorter than a chunk is only carried.
    let small = &ramp(40_000, channels as usize)[..];
    assert_outcome(&settled(cap(&s, small)), Status::Accepted, 1, 0);
    let one_chunk = ramp(50_000, f.c);
    assert_outcome(&settled(cap(&s, &one_chunk)), Status::Dropped, 0, f.pc(f.c));
    let m = s.metrics();
    assert_eq!(m.captured, f.pc(20 * f.q + channels as usize + 19 * f.q + f.c));
    assert_eq!(m.dropped, f.pc(19 * f.q + f.c));
    assert_eq!(status_count(&m, Status::Accepted), 3);
    assert_eq!(status_count(&m, Status::Dropped), 3);
    assert_invariant(&m);

    let mut expect = a.clone();
    expect.extend_from_slice(&d);
    assert_eq!(
      read_all(&s),
      expect,
      "the queue holds exactly the accepted frames, in order"
    );
    let ev = overflow_events(&bus.drain());
    assert_eq!(ev, vec![(f.pc(19 * f.q + f.c), Overflow::Reject)]);
    assert_invariant(&s.metrics());
  }
}

#[test]
fn drop_newest_keeps_the_prefix() {
  for (rate, channels) in FORMATS {
    let f = Fx::new(rate, channels);
    let (s, bus) = pull(rate, channels, QUEUE_MS, Overflow::DropNewest);
    let a = ramp(0, 15 * f.q);
    let b = ramp(15 * f.q, 15 * f.q);
    assert_outcome(&settled(cap(&s, &a)), Status::Accepted, f.pc(a.len()), 0);
    // 3q carried + 5q of b fill the 2 free chunks; the other 10q of b are dropped.
    let o = settled(cap(&s, &b));
    assert_outcome(&o, Status::Partial, f.pc(5 * f.q), f.pc(10 * f.q));
    assert_eq!(o.queued_ms, 50.0);
    let m = s.metrics();
    assert_eq!(
      (m.queued, m.dropped, m.captured),
      (f.pc(20 * f.q), f.pc(10 * f.q), f.pc(30 * f.q))
    );
    // Full queue, nothing carried: a sub-chunk frame is carried, and then a frame that
    // would complete a chunk is dropped whole (the carried part stays).
    let c = ramp(50_000, 2 * f.q);
    assert_outcome(&settled(cap(&s, &c)), Status::Accepted, f.pc(2 * f.q), 0);
    let d = ramp(60_000, 2 * f.q);
    assert_outcome(&settled(cap(&s, &d)), Status::Dropped, 0, f.pc(2 * f.q));
    let big = ramp(70_000, 40 * f.q);
    assert_outcome(&try_cap(&s, &big), Status::Dropped, 0, f.pc(40 * f.q));
    assert_eq!(read_all(&s), ramp(0, 20 * f.q), "the prefix a ++ b[..5q] is readable");
    // After reads, the carried c completes the next chunk.
    let e = ramp(80_000, 2 * f.q);
    assert_outcome(&settled(cap(&s, &e)), Status::Accepted, f.pc(2 * f.q), 0);
    let mut expect = c.clone();
    expect.extend_from_slice(&e);
    assert_eq!(read_all(&s), expect);
    let m = s.metrics();
    assert_eq!(m.dropped, f.pc(10 * f.q + 2 * f.q + 40 * f.q));
    assert_eq!(m.delivered, f.pc(24 * f.q));
    assert_eq!(status_count(&m, Status::Partial), 1);
    assert_eq!(status_count(&m, Status::Dropped), 2);
    assert_invariant(&m);
    assert_eq!(
      overflow_events(&bus.drain()),
      vec![(f.pc(52 * f.q), Overflow::DropNewest)]
    );
  }
}

#[test]
fn drop_newest_frame_larger_than_the_queue() {
  for (rate, channels) in FORMATS {
    let f = Fx::new(rate, channels);
    let (s, _bus) = pull(rate, channels, QUEUE_MS, Overflow::DropNewest);
    let big = ramp(0, 7 * f.c + f.q);
    assert_outcome(
      &settled(cap(&s, &big)),
      Status::Partial,
      f.pc(5 * f.c),
      f.pc(2 * f.c + f.q),
    );
    assert_eq!(read_all(&s), ramp(0, 5 * f.c));
    assert_invariant(&s.metrics());
  }
}

#[test]
fn drop_oldest_keeps_the_newest() {
  for (rate, channels) in FORMATS {
    let f = Fx::new(rate, channels);
    let (s, bus) = pull(rate, channels, QUEUE_MS, Overflow::DropOldest);
    let a = ramp(0, 15 * f.q);
    let b = ramp(15 * f.q, 15 * f.q);
    assert_outcome(&settled(cap(&s, &a)), Status::Accepted, f.pc(a.len()), 0);
    // 3q + 15q = 4 chunks + 2q carried; 3 queued + 4 > 5 evicts the 2 oldest chunks (of a).
    let o = settled(cap(&s, &b));
    assert_outcome(&o, Status::Accepted, f.pc(15 * f.q), f.pc(2 * f.c));
    let m = s.metrics();
    assert_eq!(
      (m.queued, m.dropped, m.captured),
      (f.pc(22 * f.q), f.pc(8 * f.q), f.pc(30 * f.q))
    );
    assert_invariant(&m);
    assert_eq!(read_all(&s), ramp(8 * f.q, 20 * f.q), "the newest 5 chunks stay");
    assert_eq!(s.metrics().queued, f.pc(2 * f.q), "the tail of b is carried");
    assert_eq!(
      overflow_events(&bus.drain()),
      vec![(f.pc(2 * f.c), Overflow::DropOldest)]
    );
    // try_capture evicts the same way.
    let fill = ramp(100_000, 22 * f.q); // 2q + 22q = 6 chunks into 5 slots: evicts 1, which is its own
    let o = try_cap(&s, &fill);
    // The first chunk out is the carried 2q of b + 2q of fill: evicting it loses 2q of fill.
    assert_outcome(&o, Status::Partial, f.pc(20 * f.q), f.pc(f.c));
    let mut expect = ramp(100_000 + 2 * f.q, 20 * f.q);
    assert_eq!(read_all(&s), std::mem::take(&mut expect));
    assert_invariant(&s.metrics());
  }
}

#[test]
fn drop_oldest_frame_larger_than_the_queue() {
  for (rate, channels) in FORMATS {
    let f = Fx::new(rate, channels);
    let (s, _bus) = pull(rate, channels, QUEUE_MS, Overflow::DropOldest);
    let a = ramp(0, 15 * f.q);
    assert_outcome(&settled(cap(&s, &a)), Status::Accepted, f.pc(a.len()), 0);
    // 3q carried + 50q = 13 chunks + q carried; 3 + 13 - 5 = 11 chunks evicted: all of a
    // (15q) and 29q of the new frame.
    let big = ramp(15 * f.q, 50 * f.q);
    let o = settled(cap(&s, &big));
    assert_outcome(&o, Status::Partial, f.pc(21 * f.q), f.pc(11 * f.c));
    assert_eq!(o.queued_ms, 50.0 + 2.5);
    let m = s.metrics();
    assert_eq!((m.queued, m.dropped), (f.pc(21 * f.q), f.pc(44 * f.q)));
    assert_invariant(&m);
    assert_eq!(read_all(&s), ramp(44 * f.q, 20 * f.q));
    let fl = settled(s.flush(None).unwrap());
    assert_outcome(&fl, Status::Accepted, f.pc(3 * f.q), 0);
    let mut tail = ramp(64 * f.q, f.q);
    tail.resize(f.c, 0);
    assert_eq!(read_all(&s), tail);
    assert_invariant(&s.metrics());
  }
}

#[test]
fn wait_try_capture_refuses_whole_frames() {
  for (rate, channels) in FORMATS {
    let f = Fx::new(rate, channels);
    let (s, bus) = pull(rate, channels, QUEUE_MS, Overflow::Wait);
    let a = ramp(0, 15 * f.q);
    assert_outcome(&try_cap(&s, &a), Status::Accepted, f.pc(a.len()), 0);
    let b = ramp(10_000, 10 * f.q); // needs 3 chunks, 2 free: refused whole, nothing queued
    assert_outcome(&try_cap(&s, &b), Status::Dropped, 0, f.pc(b.len()));
    assert_eq!(s.metrics().queued, f.pc(15 * f.q));
    let big = ramp(20_000, 8 * f.c); // larger than the whole queue
    assert_outcome(&try_cap(&s, &big), Status::Dropped, 0, f.pc(big.len()));
    let d = ramp(30_000, 5 * f.q); // fits exactly
    assert_outcome(&try_cap(&s, &d), Status::Accepted, f.pc(d.len()), 0);
    let m = s.metrics();
    assert_eq!(
      (m.queued, m.dropped, m.waiting_captures),
      (f.pc(20 * f.q), f.pc(10 * f.q + 8 * f.c), 0)
    );
    assert_invariant(&m);
    // A waiter exists: try_capture must not jump it, even with room in the queue.
    let w = ramp(40_000, 2 * f.c);
    let id = pending(cap(&s, &w));
    let mut out = read_n(&s, 1); // one chunk of room: the waiter takes it
    let tiny = ramp(50_000, channels as usize);
    assert_outcome(&try_cap(&s, &tiny), Status::Dropped, 0, 1);
    out.extend(read_n(&s, 1));
    let done = completions(&bus.drain());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, id);
    assert_outcome(&done[0].outcome, Status::Accepted, f.pc(2 * f.c), 0);
    out.extend(read_all(&s));
    let mut expect = a.clone();
    expect.extend_from_slice(&d);
    expect.extend_from_slice(&w);
    assert_eq!(out, expect);
    let m = s.metrics();
    assert_eq!(status_count(&m, Status::Dropped), 3);
    assert_eq!(status_count(&m, Status::Accepted), 3);
    assert_invariant(&m);
    let ev = overflow_events(&bus.drain());
    assert!(ev.is_empty(), "drained already: {ev:?}");
  }
}

#[test]
fn wait_frame_larger_than_the_queue_is_fed_progressively() {
  for (rate, channels) in FORMATS {
    let f = Fx::new(rate, channels);
    let (s, bus) = pull(rate, channels, QUEUE_MS, Overflow::Wait);
    let big = ramp(0, 12 * f.c + f.q);
    let id = pending(cap_deadline(&s, &big, 60_000));
    let m = s.metrics();
    // 5 chunks went in at once; the rest waits, not yet counted as captured.
    assert_eq!(
      (m.queued, m.captured, m.waiting_captures, m.waiting_samples),
      (f.pc(5 * f.c), f.pc(5 * f.c), 1, f.pc(7 * f.c + f.q))
    );
    assert_invariant(&m);
    let mut out = Vec::new();
    for i in 0..6 {
      out.extend(read_n(&s, 1));
      assert!(completions(&bus.drain()).is_empty(), "settled too early at read {i}");
      assert_eq!(s.metrics().waiting_samples, f.pc((6 - i) * f.c + f.q));
      assert_invariant(&s.metrics());
    }
    out.extend(read_n(&s, 1)); // the last whole chunk and the tail q go in
    let done = completions(&bus.drain());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, id);
    assert_outcome(&done[0].outcome, Status::Accepted, f.pc(big.len()), 0);
    out.extend(read_all(&s));
    assert_eq!(out, ramp(0, 12 * f.c));
    let m = s.metrics();
    assert_eq!((m.queued, m.waiting_captures, m.dropped), (f.pc(f.q), 0, 0));
    assert_invariant(&m);
  }
}

#[test]
fn wait_deadline_zero_times_out_at_once_keeping_what_fit() {
  for (rate, channels) in FORMATS {
    let f = Fx::new(rate, channels);
    let (s, bus) = pull(rate, channels, QUEUE_MS, Overflow::Wait);
    let a = ramp(0, 3 * f.c);
    assert_outcome(&settled(cap(&s, &a)), Status::Accepted, f.pc(a.len()), 0);
    let b = ramp(a.len(), 3 * f.c + f.q);
    let o = settled(cap_deadline(&s, &b, 0));
    assert_outcome(&o, Status::Timeout, f.pc(2 * f.c), f.pc(f.c + f.q));
    assert_eq!(s.metrics().waiting_captures, 0);
    assert_eq!(read_all(&s), ramp(0, 5 * f.c));
    let d = bus.drain();
    let dl: Vec<_> = events(&d)
      .into_iter()
      .filter(|e| matches!(e, Event::Deadline { .. }))
      .collect();
    assert_eq!(
      dl,
      vec![Event::Deadline {
        count: 1,
        waited_ms: 0.0,
        dropped_samples: f.pc(f.c + f.q)
      }]
    );
    // The source's own default deadline of 0 does the same.
    let mut o = opts(rate, channels, QUEUE_MS, Overflow::Wait, capstan_core::Consumer::Pull);
    o.deadline_ms = 0;
    let (s2, _b2) = source(o);
    let big = ramp(0, 6 * f.c);
    assert_outcome(&settled(cap(&s2, &big)), Status::Timeout, f.pc(5 * f.c), f.pc(f.c));
    assert_invariant(&s.metrics());
    assert_invariant(&s2.metrics());
  }
}

#[test]
fn closed_source_settles_captures_closed() {
  for overflow in [
    Overflow::Wait,
    Overflow::DropOldest,
    Overflow::DropNewest,
    Overflow::Reject,
  ] {
    let (s, _bus) = pull(8_000, 1, QUEUE_MS, overflow);
    assert_outcome(&settled(cap(&s, &ramp(0, 100))), Status::Accepted, 100, 0);
    assert!(s.close());
    assert!(!s.close(), "close is idempotent");
    assert_outcome(&settled(cap(&s, &ramp(0, 10))), Status::Closed, 0, 10);
    assert_outcome(&try_cap(&s, &ramp(0, 10)), Status::Closed, 0, 10);
    assert_eq!(s.read(), Read::Closed);
    let m = s.metrics();
    assert_eq!((m.captured, m.cleared, m.queued), (100, 100, 0));
    assert_eq!(status_count(&m, Status::Closed), 2);
    assert_invariant(&m);
  }
}

#[test]
fn float_frames_are_converted_and_formats_checked() {
  let (s, _bus) = pull(8_000, 2, QUEUE_MS, Overflow::Reject);
  let mut fl = vec![0.0f32; 160];
  fl[0] = 1.0;
  fl[1] = -1.0;
  fl[2] = 2.0;
  fl[3] = 0.5;
  let o = s
    .capture(
      FrameRef {
        samples: Samples::F32(&fl),
        sample_rate: Some(8_000),
        channels: Some(2),
      },
      None,
    )
    .unwrap();
  assert_outcome(&settled(o), Status::Accepted, 80, 0);
  let got = read_all(&s);
  assert_eq!(&got[..4], &[32767, -32767, 32767, 16384]);
  assert!(got[4..].iter().all(|&x| x == 0));
  let err = s
    .capture(
      FrameRef {
        samples: Samples::I16(&[0; 160]),
        sample_rate: Some(16_000),
        channels: Some(2),
      },
      None,
    )
    .unwrap_err();
  assert_eq!(err.code(), "ERR_FORMAT_MISMATCH");
  assert_eq!(
    s.capture(FrameRef::i16(&[0; 3]), None).unwrap_err().code(),
    "ERR_INVALID_FRAME"
  );
  assert_eq!(
    s.capture(FrameRef::i16(&[]), None).unwrap_err().code(),
    "ERR_INVALID_FRAME"
  );
  let nan = [0.0f32, f32::NAN];
  let r = s.capture(
    FrameRef {
      samples: Samples::F32(&nan),
      sample_rate: None,
      channels: None,
    },
    None,
  );
  assert_eq!(r.unwrap_err().code(), "ERR_INVALID_FRAME");
  // Programmer errors are not outcomes and touch no counter.
  let m = s.metrics();
  assert_eq!((m.captured, m.outcomes.iter().sum::<u64>()), (80, 1));
}
