//! Audio work runs on the output side, never under the lock producers and getters take:
//! a long backlog through RNNoise or a processor slower than real time delays nobody but
//! the clock; accounting holds at every snapshot while a batch is being processed; sinks
//! that fail are reported; a clear resets the processors' history.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_core::process::Spec;
use capstan_core::sink::Sink;
use capstan_core::{Consumer, Engine, Event, Format, FrameRef, Metrics, Overflow, Read, Source, Status};
use common::*;
use proptest::prelude::*;

/// Runs `f` on another thread in a loop for `run`, timing every iteration; returns the
/// slowest iteration and how many ran.
fn hammer(run: Duration, f: impl Fn() + Send + Sync) -> (Duration, u64) {
  std::thread::scope(|scope| {
    scope
      .spawn(|| {
        let t0 = Instant::now();
        let (mut worst, mut n) = (Duration::ZERO, 0);
        while t0.elapsed() < run {
          let t = Instant::now();
          f();
          worst = worst.max(t.elapsed());
          n += 1;
        }
        (worst, n)
      })
      .join()
      .expect("no call panics")
  })
}

/// The two tests that bound call times run one at a time: on a two-core machine, other
/// tests' clock threads running in parallel would deschedule the calls being timed.
static TIMED: Mutex<()> = Mutex::new(());

/// Getters and captures a JS thread would make, checking the invariant on every snapshot.
fn js_calls(s: &Source, frame: &[i16]) {
  let _ = s.queued_ms_now();
  let m = s.metrics();
  assert_invariant(&m);
  let _ = s.health();
  let _ = s.playout_position();
  let _ = s.processor_enabled(0);
  let o = try_cap(s, frame);
  assert_ne!(
    o.status,
    Status::Timeout,
    "a capture never times out on the lock: {o:?}"
  );
}

/// The reproduction: an unpaced source with RNNoise and 100 s queued at once used
/// to hold the source lock for the whole drain, and the next getter aborted the process.
#[test]
fn a_denoised_backlog_never_blocks_getters_or_captures() {
  let _one_at_a_time = TIMED.lock().unwrap_or_else(|e| e.into_inner());
  let engine = Engine::new(1);
  let mut o = opts(48_000, 1, 120_000, Overflow::DropNewest, Consumer::Unpaced);
  o.processors = vec![Spec::Denoise];
  let s = engine.add_source(o).unwrap();
  let hundred_s = ramp(0, 48_000 * 100);
  let t = Instant::now();
  assert_outcome(&try_cap(&s, &hundred_s), Status::Accepted, 4_800_000, 0);
  println!("captured 100 s in {:?}", t.elapsed());
  let frame = vec![0i16; 480];
  let (worst, n) = hammer(Duration::from_secs(2), || js_calls(&s, &frame));
  let m = s.metrics();
  println!("{n} rounds, slowest {worst:?}, delivered {} samples", m.delivered);
  // Holding the lock for the backlog used to cost ~580 ms per 10,000 chunks.
  assert!(worst < Duration::from_millis(150), "a call took {worst:?}");
  assert!(m.delivered > 0, "the clock made progress meanwhile");
  assert_invariant(&m);
  let t = Instant::now();
  engine.remove_source(&s);
  assert!(t.elapsed() < Duration::from_millis(300), "close took {:?}", t.elapsed());
}

/// A processor that takes 50 ms per 10 ms chunk: the clock is five times slower than real
/// time, and still no call from the producer's side waits on it.
#[test]
fn a_processor_slower_than_real_time_waits_for_nobody() {
  let _one_at_a_time = TIMED.lock().unwrap_or_else(|e| e.into_inner());
  let engine = Engine::new(1);
  let mut o = opts(16_000, 1, 2_000, Overflow::DropNewest, Consumer::Unpaced);
  o.processors = vec![Spec::Sleep { ms: 50 }];
  let s = engine.add_source(o).unwrap();
  try_cap(&s, &ramp(0, 16_000));
  let frame = vec![0i16; 160];
  let (worst, n) = hammer(Duration::from_millis(1_200), || {
    js_calls(&s, &frame);
    let _ = s.clear();
    let _ = s.wait_playout();
  });
  let m = s.metrics();
  println!(
    "{n} rounds, slowest {worst:?}, processor calls {}",
    m.processors[0].calls
  );
  assert!(
    worst < Duration::from_millis(40),
    "a call waited on the processor: {worst:?}"
  );
  assert!(m.processors[0].calls > 0, "the clock processed meanwhile");
  // A control call on the processors waits at most one chunk (the clock yields between).
  let t = Instant::now();
  s.set_processor_enabled(0, true).unwrap();
  assert!(t.elapsed() < Duration::from_millis(150), "took {:?}", t.elapsed());
  let t = Instant::now();
  engine.remove_source(&s);
  assert!(t.elapsed() < Duration::from_millis(150), "close took {:?}", t.elapsed());
}

/// Delivered is counted when the clock takes a chunk, so a snapshot taken while the batch
/// is still in the processors shows it delivered (and the invariant whole).
#[test]
fn chunks_being_processed_count_as_delivered() {
  let mut o = opts(16_000, 1, 2_000, Overflow::Reject, Consumer::Unpaced);
  o.processors = vec![Spec::Sleep { ms: 20 }];
  let (s, _bus) = source(o);
  try_cap(&s, &ramp(0, 160 * 10));
  let done = AtomicBool::new(false);
  std::thread::scope(|scope| {
    scope.spawn(|| {
      s.tick(Instant::now(), 1);
      done.store(true, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(50));
    let m = s.metrics();
    assert!(!done.load(Ordering::SeqCst), "the pass takes 200 ms");
    assert_eq!((m.delivered, m.queued), (1_600, 0), "{m:?}");
    assert!(m.processors[0].calls < 10, "still processing: {:?}", m.processors[0]);
    assert_invariant(&m);
  });
  assert_eq!(s.metrics().processors[0].calls, 10);
}

#[derive(Debug, Clone)]
enum Op {
  Capture(usize),
  TryCapture(usize),
  Clear,
  Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
  prop_oneof![
    3 => (1usize..2_000).prop_map(Op::Capture),
    3 => (1usize..2_000).prop_map(Op::TryCapture),
    1 => Just(Op::Clear),
    3 => Just(Op::Snapshot),
  ]
}

fn policy() -> impl Strategy<Value = Overflow> {
  prop_oneof![
    Just(Overflow::Wait),
    Just(Overflow::DropOldest),
    Just(Overflow::DropNewest),
    Just(Overflow::Reject),
  ]
}

/// Counters only grow, and every snapshot balances.
fn check(m: &Metrics, prev: &Metrics) {
  assert_invariant(m);
  assert!(
    m.captured >= prev.captured && m.delivered >= prev.delivered,
    "{prev:?} -> {m:?}"
  );
  assert!(
    m.dropped >= prev.dropped && m.cleared >= prev.cleared,
    "{prev:?} -> {m:?}"
  );
}

proptest! {
  #![proptest_config(ProptestConfig { cases: cases(12), ..ProptestConfig::default() })]

  /// A clock thread processes through a slow chain while this thread captures, clears and
  /// snapshots: the invariant holds at every snapshot, mid-pass included.
  #[test]
  fn accounting_holds_while_a_pass_is_processing(
    overflow in policy(),
    ops in prop::collection::vec(op(), 1..40),
  ) {
    let mut o = opts(16_000, 1, 100, overflow, Consumer::Unpaced);
    o.processors = vec![Spec::Sleep { ms: 1 }, Spec::Gain { db: -6.0 }];
    o.deadline_ms = 5;
    let (s, _bus) = source(o);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
      scope.spawn(|| {
        while !stop.load(Ordering::Relaxed) {
          s.tick(Instant::now(), 1);
        }
      });
      let mut prev = s.metrics();
      for op in &ops {
        match op {
          Op::Capture(n) => {
            let _ = s.capture(FrameRef::i16(&ramp(0, *n)), None).unwrap();
          }
          Op::TryCapture(n) => {
            let _ = try_cap(&s, &ramp(0, *n));
          }
          Op::Clear => {
            s.clear();
          }
          Op::Snapshot => std::thread::sleep(Duration::from_millis(3)),
        }
        let m = s.metrics();
        check(&m, &prev);
        prev = m;
      }
      // Let waiters settle, then every whole chunk drains (the remainder is carried).
      let t0 = Instant::now();
      while (prev.queued >= 160 || prev.waiting_captures > 0) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
        let m = s.metrics();
        check(&m, &prev);
        prev = m;
      }
      stop.store(true, Ordering::Relaxed);
      prop_assert!(prev.queued < 160, "{:?}", prev);
      Ok(())
    })?;
  }
}

/// Fails every second push, and records what it was given.
struct Flaky {
  format: Format,
  pushes: Arc<Mutex<Vec<Vec<i16>>>>,
  closed: Arc<AtomicBool>,
}

impl Sink for Flaky {
  fn format(&self) -> Format {
    self.format
  }

  fn room(&self) -> usize {
    usize::MAX
  }

  fn push(&mut self, chunk: &[i16]) -> Result<(), String> {
    let mut p = self.pushes.lock().unwrap();
    p.push(chunk.to_vec());
    if p.len().is_multiple_of(2) {
      Err(format!("wedged at push {}", p.len()))
    } else {
      Ok(())
    }
  }

  fn close(&mut self) {
    self.closed.store(true, Ordering::SeqCst);
  }
}

#[test]
fn a_failing_sink_becomes_sink_error_events_and_can_be_replaced() {
  let (s, bus) = source(opts(16_000, 1, 1_000, Overflow::Reject, Consumer::Unpaced));
  let wrong = Flaky {
    format: Format::new(48_000, 1).unwrap(),
    pushes: Default::default(),
    closed: Default::default(),
  };
  assert_eq!(s.set_sink(Box::new(wrong)).unwrap_err().code(), "ERR_FORMAT_MISMATCH");
  let pushes = Arc::new(Mutex::new(Vec::new()));
  let closed = Arc::new(AtomicBool::new(false));
  let flaky = Flaky {
    format: s.output_format(),
    pushes: pushes.clone(),
    closed: closed.clone(),
  };
  s.set_sink(Box::new(flaky)).unwrap();
  let audio = ramp(7, 160 * 4);
  try_cap(&s, &audio);
  s.tick(Instant::now(), 1);
  assert_eq!(
    pushes.lock().unwrap().concat(),
    audio,
    "the sink got every chunk, in order"
  );
  let errors: Vec<Event> = events(&bus.drain())
    .into_iter()
    .filter(|e| matches!(e, Event::SinkError { .. }))
    .collect();
  assert_eq!(
    errors,
    [
      Event::SinkError {
        message: "wedged at push 2".into()
      },
      Event::SinkError {
        message: "wedged at push 4".into()
      }
    ]
  );
  let m = s.metrics();
  assert_eq!((m.sink_errors, m.delivered), (2, 640));
  assert_invariant(&m);
  // Replaced: the wedged sink is closed before the next pass delivers elsewhere.
  s.set_reader(true);
  try_cap(&s, &audio[..160]);
  s.tick(Instant::now(), 1);
  assert!(closed.load(Ordering::SeqCst));
  assert_eq!(s.read(), Read::Chunk(audio[..160].to_vec()));
  assert_eq!(pushes.lock().unwrap().len(), 4);
}

/// A high-pass filter remembers the audio before a clear unless the clear resets it: after
/// `clear()` the same input must come out as from a fresh source.
#[test]
fn clear_resets_the_processors_history() {
  let make = || {
    let mut o = opts(16_000, 1, 1_000, Overflow::Reject, Consumer::Pull);
    o.processors = vec![Spec::HighPass { hz: 1_000.0 }];
    o.reader_chunks = 10;
    source(o).0
  };
  let loud: Vec<i16> = (0..160 * 5)
    .map(|i| if i % 40 < 20 { 20_000 } else { -20_000 })
    .collect();
  let after = ramp(100, 160 * 5);
  let run = |s: &Source, input: &[i16]| {
    try_cap(s, input);
    s.tick(Instant::now(), 1);
    read_n(s, input.len() / 160)
  };
  let used = make();
  run(&used, &loud);
  // Queued but never processed, then cleared: only the filter's memory could leak.
  try_cap(&used, &loud);
  used.clear();
  let fresh = make();
  let expected = run(&fresh, &after);
  assert_ne!(expected, after, "the filter changes the audio");
  assert_eq!(run(&used, &after), expected);
}
