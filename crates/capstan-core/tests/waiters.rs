//! The `wait` policy: a capture that does not fit waits (`Pending`), is fed as the
//! consumer frees room, settles through the bus in FIFO order, and always settles:
//! accepted, timeout (deadline), aborted, cleared or closed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_core::{CaptureResult, Completion, Consumer, Engine, Event, Overflow, Read, Status};
use common::*;

const RATE: u32 = 8_000;
/// 10 ms at 8 kHz mono.
const C: usize = 80;
const Q: usize = C / 4;

fn full_wait_source() -> (
  std::sync::Arc<capstan_core::Source>,
  std::sync::Arc<capstan_core::events::Bus>,
) {
  let (s, bus) = pull(RATE, 1, 50, Overflow::Wait);
  assert_outcome(&settled(cap(&s, &ramp(0, 5 * C))), Status::Accepted, 5 * C as u64, 0);
  (s, bus)
}

#[test]
fn waiters_are_fed_progressively_and_settle_fifo() {
  let (s, bus) = full_wait_source();
  let a = ramp(1_000, 3 * C);
  let b = ramp(2_000, 2 * C);
  let c = ramp(3_000, Q); // would fit in the carried remainder, but must not jump the queue
  let ia = pending(cap(&s, &a));
  let ib = pending(cap(&s, &b));
  let ic = pending(cap(&s, &c));
  assert!(ia < ib && ib < ic);
  let m = s.metrics();
  assert_eq!(
    (m.waiting_captures, m.waiting_samples, m.captured),
    (3, (5 * C + Q) as u64, 5 * C as u64)
  );
  assert_invariant(&m);
  assert!(bus.drain().iter().all(|d| d.completions.is_empty()));

  let mut out = read_n(&s, 1);
  assert!(completions(&bus.drain()).is_empty(), "a is only one third in");
  assert_eq!(s.metrics().waiting_samples, (4 * C + Q) as u64);
  out.extend(read_n(&s, 2));
  let done = completions(&bus.drain());
  assert_eq!(done.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ia]);
  assert_outcome(&done[0].outcome, Status::Accepted, 3 * C as u64, 0);
  assert!(done[0].outcome.waited_ms >= 0.0);
  // Two more reads complete b, and c (a sub-chunk frame) goes in right behind it.
  out.extend(read_n(&s, 2));
  let done = completions(&bus.drain());
  assert_eq!(done.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ib, ic], "FIFO");
  assert_outcome(&done[0].outcome, Status::Accepted, 2 * C as u64, 0);
  assert_outcome(&done[1].outcome, Status::Accepted, Q as u64, 0);
  out.extend(read_all(&s));
  let mut expect = ramp(0, 5 * C);
  expect.extend_from_slice(&a);
  expect.extend_from_slice(&b);
  assert_eq!(out, expect);
  let m = s.metrics();
  assert_eq!((m.queued, m.waiting_captures, m.dropped), (Q as u64, 0, 0));
  assert_eq!(status_count(&m, Status::Accepted), 4);
  assert_invariant(&m);
  // flush pads c with silence.
  assert_outcome(&settled(s.flush(None).unwrap()), Status::Accepted, (C - Q) as u64, 0);
  let mut tail = c.clone();
  tail.resize(C, 0);
  assert_eq!(read_all(&s), tail);
}

#[test]
fn partial_room_is_used_at_once_and_the_rest_waits() {
  let (s, bus) = pull(RATE, 1, 50, Overflow::Wait);
  assert_outcome(
    &settled(cap(&s, &ramp(0, 4 * C + Q))),
    Status::Accepted,
    (4 * C + Q) as u64,
    0,
  );
  // One chunk free: 3q of a complete it, 5q wait.
  let a = ramp(4 * C + Q, 2 * C);
  let ia = pending(cap(&s, &a));
  let m = s.metrics();
  assert_eq!(
    (m.captured, m.queued, m.waiting_samples),
    ((5 * C) as u64, (5 * C) as u64, (5 * Q) as u64)
  );
  let mut out = read_n(&s, 1);
  let done = completions(&bus.drain());
  assert_eq!(done.len(), 1);
  assert_eq!(done[0].id, ia);
  assert_outcome(&done[0].outcome, Status::Accepted, 2 * C as u64, 0);
  out.extend(read_all(&s));
  assert_eq!(out, ramp(0, 6 * C));
  assert_eq!(s.metrics().queued, Q as u64);
}

#[test]
fn abort_settles_aborted_and_the_next_waiter_moves_up() {
  let (s, bus) = full_wait_source();
  let a = ramp(1_000, 2 * C);
  let b = ramp(2_000, C);
  let d = ramp(3_000, C);
  let ia = pending(cap(&s, &a));
  let ib = pending(cap(&s, &b));
  let id = pending(cap(&s, &d));
  let mut out = read_n(&s, 1); // a gets one chunk in
                               // Abort a waiter that is not at the head: nothing of it was queued.
  let ob = s.abort(ib).expect("b is waiting");
  assert_outcome(&ob, Status::Aborted, 0, C as u64);
  // Abort the head, half in.
  let oa = s.abort(ia).expect("a is waiting");
  assert_outcome(&oa, Status::Aborted, C as u64, C as u64);
  assert!(s.abort(ia).is_none(), "an id settles once");
  assert!(s.abort(9_999).is_none());
  assert_eq!(s.metrics().waiting_captures, 1);
  out.extend(read_n(&s, 1)); // d takes the freed chunk
  let done = completions(&bus.drain());
  assert_eq!(
    done.iter().map(|c| (c.id, c.outcome.status)).collect::<Vec<_>>(),
    vec![(id, Status::Accepted)]
  );
  out.extend(read_all(&s));
  let mut expect = ramp(0, 5 * C);
  expect.extend_from_slice(&a[..C]);
  expect.extend_from_slice(&d);
  assert_eq!(out, expect);
  let m = s.metrics();
  assert_eq!(status_count(&m, Status::Aborted), 2);
  assert_eq!(m.dropped, 2 * C as u64);
  assert_invariant(&m);
}

#[test]
fn clear_settles_waiters_cleared() {
  let (s, bus) = pull(RATE, 1, 50, Overflow::Wait);
  assert_outcome(
    &settled(cap(&s, &ramp(0, 4 * C + Q))),
    Status::Accepted,
    (4 * C + Q) as u64,
    0,
  );
  let ia = pending(cap(&s, &ramp(1_000, 2 * C))); // 3q in, 5q waiting
  let ib = pending(cap(&s, &ramp(2_000, C)));
  assert_eq!(s.clear(), 5 * C as u64, "returns what the queue held");
  let done = completions(&bus.drain());
  assert_eq!(done.len(), 2);
  assert_eq!(done[0].id, ia);
  assert_outcome(&done[0].outcome, Status::Cleared, 3 * Q as u64, 5 * Q as u64);
  assert_eq!(done[1].id, ib);
  assert_outcome(&done[1].outcome, Status::Cleared, 0, C as u64);
  let m = s.metrics();
  assert_eq!(
    (m.queued, m.waiting_captures, m.cleared, m.dropped),
    (0, 0, (5 * C + 5 * Q + C) as u64, 0)
  );
  assert_eq!(m.captured, (4 * C + Q + 2 * C + C) as u64);
  assert_eq!(status_count(&m, Status::Cleared), 2);
  assert_invariant(&m);
  assert_eq!(s.read(), Read::Empty);
  // The source goes on.
  assert_outcome(&settled(cap(&s, &ramp(5_000, C))), Status::Accepted, C as u64, 0);
  assert_eq!(read_all(&s), ramp(5_000, C));
  assert_invariant(&s.metrics());
}

#[test]
fn close_settles_waiters_closed() {
  let (s, bus) = full_wait_source();
  let ia = pending(cap(&s, &ramp(1_000, C)));
  let ib = pending(cap(&s, &ramp(2_000, 2 * C)));
  assert!(s.close());
  let d = bus.drain();
  let done = completions(&d);
  assert_eq!(
    done.iter().map(|c| (c.id, c.outcome.status)).collect::<Vec<_>>(),
    vec![(ia, Status::Closed), (ib, Status::Closed)]
  );
  assert_outcome(&done[1].outcome, Status::Closed, 0, 2 * C as u64);
  assert!(events(&d).contains(&Event::Closed));
  let m = s.metrics();
  assert_eq!((m.cleared, m.queued, m.waiting_captures), (8 * C as u64, 0, 0));
  assert_invariant(&m);
  assert!(s.abort(ia).is_none());
}

#[test]
fn flush_waits_behind_earlier_waiters() {
  let (s, bus) = full_wait_source();
  let a = ramp(1_000, C + Q);
  let ia = pending(cap(&s, &a));
  // The pad is computed against what will be carried once a is in: 3q of silence.
  let ifl = pending(s.flush(None).unwrap());
  let mut out = read_n(&s, 1);
  let done = completions(&bus.drain());
  assert_eq!(done.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ia]);
  out.extend(read_n(&s, 1));
  let done = completions(&bus.drain());
  assert_eq!(done.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ifl]);
  assert_outcome(&done[0].outcome, Status::Accepted, 3 * Q as u64, 0);
  out.extend(read_all(&s));
  let mut expect = ramp(0, 5 * C);
  expect.extend_from_slice(&a);
  expect.resize(7 * C, 0);
  assert_eq!(out, expect);
  let m = s.metrics();
  assert_eq!((m.padded, m.queued), (3 * Q as u64, 0));
  assert_invariant(&m);
}

/// Several threads capture at once into a small `wait` queue while another reads: every
/// capture is accepted, completions arrive in call order, and each thread's audio comes
/// out in the order it was captured.
#[test]
fn concurrent_waiters_settle_fifo_and_keep_each_producers_order() {
  const PRODUCERS: usize = 4;
  const FRAMES: usize = 25;
  let (s, bus) = pull(RATE, 1, 30, Overflow::Wait);
  let total_chunks = PRODUCERS * FRAMES * 2;
  let stop = Arc::new(AtomicBool::new(false));
  let reader = {
    let s = s.clone();
    let stop = stop.clone();
    std::thread::spawn(move || {
      let mut out = Vec::new();
      while out.len() < total_chunks && !stop.load(Ordering::Relaxed) {
        match s.read() {
          Read::Chunk(c) => out.push(c),
          _ => std::thread::sleep(Duration::from_micros(200)),
        }
      }
      out
    })
  };
  let producers: Vec<_> = (0..PRODUCERS)
    .map(|p| {
      let s = s.clone();
      std::thread::spawn(move || {
        let mut ids = Vec::new();
        for k in 0..FRAMES {
          let frame = vec![(p * 256 + k) as i16; 2 * C];
          match cap_deadline(&s, &frame, 3_600_000) {
            CaptureResult::Pending(id) => ids.push(id),
            CaptureResult::Settled(o) => assert_outcome(&o, Status::Accepted, 2 * C as u64, 0),
          }
        }
        ids
      })
    })
    .collect();
  let mut ids: Vec<u64> = producers.into_iter().flat_map(|h| h.join().unwrap()).collect();
  ids.sort_unstable();
  let mut done: Vec<Completion> = Vec::new();
  let t0 = Instant::now();
  while done.len() < ids.len() && t0.elapsed() < Duration::from_secs(10) {
    done.extend(completions(&bus.drain()));
    std::thread::sleep(Duration::from_millis(1));
  }
  stop.store(true, Ordering::Relaxed);
  let chunks = reader.join().unwrap();
  done.extend(completions(&bus.drain()));
  let got: Vec<u64> = done.iter().map(|c| c.id).collect();
  assert_eq!(got, ids, "every waiter settles once, in FIFO (call) order");
  for c in &done {
    assert_outcome(&c.outcome, Status::Accepted, 2 * C as u64, 0);
  }
  assert_eq!(chunks.len(), total_chunks);
  let mut next = [0usize; PRODUCERS];
  for c in &chunks {
    assert!(c.iter().all(|&x| x == c[0]), "a chunk mixes frames");
    let (p, k) = (c[0] as usize / 256, c[0] as usize % 256);
    assert_eq!(k, next[p] / 2, "producer {p} out of order");
    next[p] += 1;
  }
  assert_eq!(next, [FRAMES * 2; PRODUCERS]);
  let m = s.metrics();
  assert_eq!(
    (m.captured, m.delivered, m.dropped),
    ((total_chunks * C) as u64, (total_chunks * C) as u64, 0)
  );
  assert_eq!(status_count(&m, Status::Accepted), (PRODUCERS * FRAMES) as u64);
  assert_invariant(&m);
}

/// Polls the engine until `id` settles (or `limit` passes); returns it with the events
/// drained on the way.
fn await_completion(engine: &Engine, id: u64, limit: Duration) -> (Option<Completion>, Vec<Event>) {
  let t0 = Instant::now();
  let mut evs = Vec::new();
  while t0.elapsed() < limit {
    let d = engine.drain();
    evs.extend(events(&d));
    if let Some(c) = completions(&d).into_iter().find(|c| c.id == id) {
      return (Some(c), evs);
    }
    std::thread::sleep(Duration::from_millis(2));
  }
  (None, evs)
}

#[test]
fn engine_expires_deadlines() {
  let engine = Engine::new(1);
  let s = engine
    .add_source(opts(RATE, 1, 50, Overflow::Wait, Consumer::Pull))
    .unwrap();
  assert_outcome(&settled(cap(&s, &ramp(0, 4 * C))), Status::Accepted, 4 * C as u64, 0);
  let frame = ramp(1_000, 3 * C);
  let t0 = Instant::now();
  let id = pending(cap_deadline(&s, &frame, 50));
  let (c, evs) = await_completion(&engine, id, Duration::from_secs(2));
  let elapsed = t0.elapsed();
  let c = c.expect("the deadline settles the capture");
  assert!(elapsed >= Duration::from_millis(50), "settled early: {elapsed:?}");
  assert!(elapsed < Duration::from_millis(500), "settled late: {elapsed:?}");
  assert_outcome(&c.outcome, Status::Timeout, C as u64, 2 * C as u64);
  assert_eq!(
    c.outcome.accepted_samples + c.outcome.dropped_samples,
    frame.len() as u64
  );
  assert!(
    c.outcome.waited_ms >= 50.0 && c.outcome.waited_ms < 500.0,
    "{:?}",
    c.outcome
  );
  let dl: Vec<_> = evs.iter().filter(|e| matches!(e, Event::Deadline { .. })).collect();
  assert_eq!(dl.len(), 1);
  match dl[0] {
    Event::Deadline {
      count,
      waited_ms,
      dropped_samples,
    } => {
      assert_eq!((*count, *dropped_samples), (1, 2 * C as u64));
      assert!(*waited_ms >= 50.0);
    }
    _ => unreachable!(),
  }
  let m = s.metrics();
  assert_eq!(
    (m.dropped, m.queued, m.waiting_captures),
    (2 * C as u64, 5 * C as u64, 0)
  );
  assert_eq!(status_count(&m, Status::Timeout), 1);
  assert_invariant(&m);
  let mut expect = ramp(0, 4 * C);
  expect.extend_from_slice(&frame[..C]);
  assert_eq!(read_all(&s), expect, "what fit before the deadline stays queued");
  engine.shutdown();
}

#[test]
fn engine_default_deadline_and_out_of_order_expiry() {
  let engine = Engine::new(1);
  let mut o = opts(RATE, 1, 50, Overflow::Wait, Consumer::Pull);
  o.deadline_ms = 60;
  let s = engine.add_source(o).unwrap();
  assert_outcome(&settled(cap(&s, &ramp(0, 5 * C))), Status::Accepted, 5 * C as u64, 0);
  let t0 = Instant::now();
  let head = pending(cap_deadline(&s, &ramp(1_000, C), 5_000)); // long deadline, at the head
  let short = pending(cap(&s, &ramp(2_000, C))); // default deadline 60 ms, behind it
  let (c, _) = await_completion(&engine, short, Duration::from_secs(2));
  let c = c.expect("the short deadline expires first");
  assert!(t0.elapsed() < Duration::from_millis(560));
  assert_outcome(&c.outcome, Status::Timeout, 0, C as u64);
  assert_eq!(s.metrics().waiting_captures, 1, "the head still waits");
  // Reading frees room for the head.
  let mut out = read_n(&s, 1);
  let (c, _) = await_completion(&engine, head, Duration::from_secs(1));
  assert_outcome(&c.expect("head settles").outcome, Status::Accepted, C as u64, 0);
  out.extend(read_all(&s));
  let mut expect = ramp(0, 5 * C);
  expect.extend(ramp(1_000, C));
  assert_eq!(out, expect);
  assert_invariant(&s.metrics());
}

#[test]
fn engine_remove_and_shutdown_settle_waiters_closed() {
  let engine = Engine::new(1);
  let s = engine
    .add_source(opts(RATE, 1, 50, Overflow::Wait, Consumer::Pull))
    .unwrap();
  let s2 = engine
    .add_source(opts(RATE, 1, 50, Overflow::Wait, Consumer::Pull))
    .unwrap();
  assert_eq!(engine.source_count(), 2);
  settled(cap(&s, &ramp(0, 5 * C)));
  settled(cap(&s2, &ramp(0, 5 * C)));
  let id = pending(cap_deadline(&s, &ramp(0, C), 60_000));
  let id2 = pending(cap_deadline(&s2, &ramp(0, C), 60_000));
  engine.remove_source(&s);
  assert_eq!(engine.source_count(), 1);
  let (c, evs) = await_completion(&engine, id, Duration::from_secs(1));
  assert_outcome(&c.expect("closed").outcome, Status::Closed, 0, C as u64);
  assert!(evs.contains(&Event::Closed));
  engine.shutdown();
  assert!(!engine.is_running());
  assert!(s2.is_closed());
  let done = completions(&engine.drain());
  assert_eq!(done.len(), 1);
  assert_eq!(done[0].id, id2);
  assert_outcome(&done[0].outcome, Status::Closed, 0, C as u64);
  engine.shutdown(); // idempotent
  assert_invariant(&s.metrics());
  assert_invariant(&s2.metrics());
}
