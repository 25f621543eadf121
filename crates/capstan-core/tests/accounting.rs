//! The accounting invariant under random operation sequences, on every policy and
//! consumer: after every operation `captured == delivered + queued + dropped + cleared`,
//! every call settles exactly once, and the outcome counters match what callers saw.
//!
//! Sources are built with `Source::new` on a private bus (no engine, no clock thread), and
//! time is driven by calling `tick(now, n)` with a virtual clock, so runs are repeatable.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use capstan_core::{CaptureResult, Consumer, FrameRef, Metrics, Outcome, Overflow, Read, Status};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
  /// Frame length as a fraction (per mille) of 3 chunks; deadline for `wait`.
  Capture {
    len: u32,
    deadline: Option<u32>,
  },
  TryCapture {
    len: u32,
  },
  Read,
  Clear,
  Flush,
  /// Aborts the `pick`-th live waiter (or an unknown id when there is none).
  Abort {
    pick: usize,
  },
  Tick {
    n: u32,
  },
  WaitPlayout,
  SetReader(bool),
  Close,
}

fn op() -> impl Strategy<Value = Op> {
  prop_oneof![
    24 => (1u32..=1000, prop_oneof![Just(None), Just(Some(0)), Just(Some(20)), Just(Some(50)), Just(Some(200))])
      .prop_map(|(len, deadline)| Op::Capture { len, deadline }),
    12 => (1u32..=1000).prop_map(|len| Op::TryCapture { len }),
    18 => Just(Op::Read),
    3 => Just(Op::Clear),
    6 => Just(Op::Flush),
    6 => any::<usize>().prop_map(|pick| Op::Abort { pick }),
    18 => (1u32..=3).prop_map(|n| Op::Tick { n }),
    3 => Just(Op::WaitPlayout),
    2 => any::<bool>().prop_map(Op::SetReader),
    1 => Just(Op::Close),
  ]
}

#[derive(Debug, Clone)]
struct Setup {
  rate: u32,
  channels: u16,
  queue_ms: u32,
  overflow: Overflow,
  consumer: Consumer,
  fill_silence: bool,
  deadline_ms: u32,
}

fn setup() -> impl Strategy<Value = Setup> {
  (
    prop::sample::select(vec![8_000u32, 16_000, 44_100, 48_000]),
    1u16..=2,
    (1u32..=8).prop_map(|c| c * 10),
    prop::sample::select(vec![
      Overflow::Wait,
      Overflow::DropOldest,
      Overflow::DropNewest,
      Overflow::Reject,
    ]),
    prop::sample::select(vec![Consumer::Realtime, Consumer::Pull, Consumer::Unpaced]),
    any::<bool>(),
    prop::sample::select(vec![0u32, 30, 1000]),
  )
    .prop_map(
      |(rate, channels, queue_ms, overflow, consumer, fill_silence, deadline_ms)| Setup {
        rate,
        channels,
        queue_ms,
        overflow,
        consumer,
        fill_silence,
        deadline_ms,
      },
    )
}

struct Model {
  setup: Setup,
  cf: u64,
  calls: u64,
  seen: [u64; 7],
  /// Live waiting captures: id → frame length per channel.
  waiting: HashMap<u64, u64>,
  settled_ids: HashSet<u64>,
  playouts: HashSet<u64>,
  started: bool,
  closed: bool,
  reader: bool,
  counter: usize,
}

fn idx(s: Status) -> usize {
  Status::ALL.iter().position(|x| *x == s).unwrap()
}

impl Model {
  fn frame(&mut self, per_mille: u32) -> Vec<i16> {
    let frames = ((3 * self.cf) * per_mille as u64 / 1000).max(1) as usize;
    let v = ramp(self.counter, frames * self.setup.channels as usize);
    self.counter += v.len();
    v
  }

  /// Checks one settled outcome of a call that handed over `n` samples per channel.
  fn outcome(&mut self, o: &Outcome, n: u64, immediate: bool) {
    self.seen[idx(o.status)] += 1;
    let p = self.setup.overflow;
    let allowed: &[Status] = match (p, immediate) {
      (_, true) if self.closed => &[Status::Closed],
      (Overflow::Reject, _) => &[Status::Accepted, Status::Dropped],
      (Overflow::DropNewest, _) => &[Status::Accepted, Status::Partial, Status::Dropped],
      (Overflow::DropOldest, _) => &[Status::Accepted, Status::Partial],
      (Overflow::Wait, true) => &[Status::Accepted, Status::Dropped, Status::Timeout],
      (Overflow::Wait, false) => &[
        Status::Accepted,
        Status::Timeout,
        Status::Aborted,
        Status::Cleared,
        Status::Closed,
      ],
    };
    assert!(
      allowed.contains(&o.status),
      "{:?} under {:?} (immediate {immediate}): {o:?}",
      o.status,
      p
    );
    match o.status {
      Status::Accepted => {
        assert_eq!(o.accepted_samples, n, "{o:?}");
        if p != Overflow::DropOldest {
          assert_eq!(o.dropped_samples, 0, "{o:?}");
        }
      }
      Status::Dropped | Status::Closed if immediate => {
        assert_eq!((o.accepted_samples, o.dropped_samples), (0, n), "{o:?}")
      }
      _ if p == Overflow::DropOldest => {
        assert!(o.accepted_samples < n, "{o:?}");
        assert!(o.dropped_samples >= n - o.accepted_samples, "{o:?}")
      }
      _ => assert_eq!(o.accepted_samples + o.dropped_samples, n, "{o:?}"),
    }
    assert!(o.waited_ms >= 0.0);
  }

  fn result(&mut self, r: CaptureResult, n: u64) {
    self.calls += 1;
    match r {
      CaptureResult::Settled(o) => self.outcome(&o, n, true),
      CaptureResult::Pending(id) => {
        assert_eq!(self.setup.overflow, Overflow::Wait, "only `wait` captures wait");
        assert!(!self.closed);
        assert!(self.waiting.insert(id, n).is_none(), "id {id} reused");
      }
    }
  }
}

fn check(m: &Metrics, model: &Model) {
  assert_invariant(m);
  assert_eq!(m.outcomes, model.seen, "outcome counters match what callers saw");
  assert_eq!(
    m.outcomes.iter().sum::<u64>() + m.waiting_captures,
    model.calls,
    "every call settles once"
  );
  assert_eq!(m.waiting_captures, model.waiting.len() as u64);
  assert_eq!(m.playout_position, m.delivered);
  if m.waiting_captures == 0 {
    // A waiting flush counts its padding before the samples are taken in (see report).
    assert!(m.padded <= m.captured, "{m:?}");
  }
  if model.setup.overflow != Overflow::Wait {
    assert_eq!(m.waiting_captures, 0);
  }
}

fn run(setup: Setup, ops: Vec<Op>) {
  let mut o = opts(
    setup.rate,
    setup.channels,
    setup.queue_ms,
    setup.overflow,
    setup.consumer,
  );
  o.fill_silence = setup.fill_silence;
  o.deadline_ms = setup.deadline_ms;
  let (s, bus) = source(o);
  let cf = (setup.rate / 100) as u64;
  let ch = setup.channels as usize;
  let mut model = Model {
    setup: setup.clone(),
    cf,
    calls: 0,
    seen: [0; 7],
    waiting: HashMap::new(),
    settled_ids: HashSet::new(),
    playouts: HashSet::new(),
    started: false,
    closed: false,
    reader: false,
    counter: 0,
  };
  let t0 = Instant::now();
  let mut vt = Duration::ZERO;
  let mut prev = s.metrics();

  let drain = |model: &mut Model| {
    for d in bus.drain() {
      for c in d.completions {
        let n = model
          .waiting
          .remove(&c.id)
          .unwrap_or_else(|| panic!("completion for unknown or settled id {}", c.id));
        assert!(model.settled_ids.insert(c.id));
        model.outcome(&c.outcome, n, false);
      }
      for p in d.playouts {
        assert!(model.playouts.remove(&p), "playout {p} reported twice or never asked");
      }
    }
  };

  for op in ops {
    let before = s.metrics();
    match op {
      Op::Capture { len, deadline } => {
        let f = model.frame(len);
        if !model.closed {
          model.started = true;
        }
        let r = s.capture(FrameRef::i16(&f), deadline).unwrap();
        model.result(r, (f.len() / ch) as u64);
      }
      Op::TryCapture { len } => {
        let f = model.frame(len);
        if !model.closed {
          model.started = true;
        }
        let o = s.try_capture(FrameRef::i16(&f)).unwrap();
        model.calls += 1;
        model.outcome(&o, (f.len() / ch) as u64, true);
      }
      Op::Flush => {
        let pad = (cf - (before.queued + before.waiting_samples) % cf) % cf;
        if pad > 0 && !model.closed {
          model.started = true;
        }
        let r = s.flush(Some(50)).unwrap();
        // On a closed source even a flush with nothing to pad settles `closed`.
        model.result(r, pad);
      }
      Op::Read => {
        let r = s.read();
        let after = s.metrics();
        match r {
          Read::Chunk(c) => {
            assert_eq!(c.len(), cf as usize * ch);
            if setup.consumer == Consumer::Pull {
              assert_eq!(after.delivered, before.delivered + cf);
            } else {
              assert!(model.reader, "a paced source without a reader hands out nothing");
            }
          }
          Read::Empty => {
            assert!(!model.closed);
            if setup.consumer == Consumer::Pull {
              assert!(
                before.queued < cf,
                "a whole chunk was queued but read() found none: {before:?}"
              );
            }
          }
          Read::Closed => assert!(model.closed),
        }
      }
      Op::Clear => {
        let n = s.clear();
        assert_eq!(n, before.queued, "clear returns what was queued (and carried)");
        let after = s.metrics();
        assert_eq!(after.queued, 0);
        assert_eq!(after.waiting_captures, 0);
        assert_eq!(after.cleared, before.cleared + before.queued + before.waiting_samples);
      }
      Op::Abort { pick } => {
        let mut ids: Vec<u64> = model.waiting.keys().copied().collect();
        ids.sort_unstable();
        if ids.is_empty() {
          assert!(s.abort(1 << 40).is_none());
        } else {
          let id = ids[pick % ids.len()];
          let n = model.waiting.remove(&id).unwrap();
          let o = s.abort(id).expect("a live waiter can be aborted");
          assert_eq!(o.status, Status::Aborted);
          assert!(model.settled_ids.insert(id));
          model.outcome(&o, n, false);
          assert!(s.abort(id).is_none());
        }
      }
      Op::Tick { n } => {
        vt += Duration::from_millis(10) * n;
        s.tick(t0 + vt, n);
        let after = s.metrics();
        if !model.closed && !model.reader {
          let delivered = (after.delivered - before.delivered) / cf;
          let underruns = after.underruns - before.underruns;
          match setup.consumer {
            Consumer::Pull => assert_eq!((delivered, underruns), (0, 0)),
            Consumer::Realtime => {
              // Every tick either delivers a chunk or is an underrun (once started).
              let expect_underruns = if model.started { n as u64 - delivered } else { 0 };
              assert_eq!(underruns, expect_underruns, "{before:?} -> {after:?}");
              assert!(delivered <= n as u64);
              if before.queued >= n as u64 * cf {
                assert_eq!(delivered, n as u64);
              }
            }
            Consumer::Unpaced => {
              assert_eq!(underruns, 0);
              assert!(after.queued < cf, "unpaced drains every whole chunk: {after:?}");
            }
          }
        }
      }
      Op::WaitPlayout => {
        if let Some(id) = s.wait_playout() {
          assert!(!model.closed);
          model.playouts.insert(id);
        }
      }
      Op::SetReader(on) => {
        s.set_reader(on);
        if setup.consumer != Consumer::Pull {
          model.reader = on;
        }
      }
      Op::Close => {
        assert_eq!(s.close(), !model.closed);
        model.closed = true;
      }
    }
    drain(&mut model);
    let m = s.metrics();
    check(&m, &model);
    // Counters only grow.
    assert!(
      m.captured >= prev.captured && m.delivered >= prev.delivered,
      "{prev:?} -> {m:?}"
    );
    assert!(m.dropped >= prev.dropped && m.cleared >= prev.cleared && m.underruns >= prev.underruns);
    prev = m;
  }

  // Close settles everything still open.
  s.close();
  drain(&mut model);
  let m = s.metrics();
  check(&m, &model);
  assert!(
    model.waiting.is_empty(),
    "waiters left after close: {:?}",
    model.waiting
  );
  assert!(
    model.playouts.is_empty(),
    "playouts left after close: {:?}",
    model.playouts
  );
  assert_eq!(m.queued, 0);
  assert_eq!(m.outcomes.iter().sum::<u64>(), model.calls);
}

proptest! {
  #![proptest_config(ProptestConfig { cases: cases(128), ..ProptestConfig::default() })]

  #[test]
  fn accounting_invariant_holds_after_every_operation(setup in setup(), ops in prop::collection::vec(op(), 1..120)) {
    run(setup, ops);
  }
}

proptest! {
  #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

  /// The `wait` policy on a pull source only (the richest path: waiters, deadlines, aborts).
  #[test]
  fn accounting_invariant_wait_pull(
    setup in setup().prop_map(|s| Setup { overflow: Overflow::Wait, consumer: Consumer::Pull, deadline_ms: 1000, ..s }),
    ops in prop::collection::vec(op(), 1..160),
  ) {
    run(setup, ops);
  }
}
