//! Events are coalesced: a storm of drops, deadlines or underruns gives one event per
//! drain carrying the sum, and the bus wakes its owner once per batch.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_core::{Consumer, Engine, Event, Overflow, Status};
use common::*;

#[test]
fn a_thousand_rejected_captures_make_one_overflow_event() {
  for channels in [1u16, 2] {
    let (s, bus) = pull(8_000, channels, 50, Overflow::Reject);
    let c = 80 * channels as usize;
    settled(cap(&s, &ramp(0, 5 * c)));
    assert!(
      bus.drain().iter().all(|d| d.events.is_empty()),
      "accepted captures raise no event"
    );
    let frame = ramp(0, c);
    for i in 0..1_000 {
      let o = if i % 2 == 0 {
        settled(cap(&s, &frame))
      } else {
        try_cap(&s, &frame)
      };
      assert_outcome(&o, Status::Dropped, 0, 80);
    }
    let d = bus.drain();
    assert_eq!(d.len(), 1, "one entry per source per drain");
    assert_eq!(d[0].source_id, s.id());
    assert_eq!(
      d[0].events,
      vec![Event::Overflow {
        dropped_samples: 80_000,
        policy: Overflow::Reject
      }]
    );
    assert!(d[0].completions.is_empty());
    assert!(bus.drain().is_empty(), "nothing left after a drain");
    // The next storm is reported on its own.
    for _ in 0..10 {
      try_cap(&s, &frame);
    }
    let d = bus.drain();
    assert_eq!(
      events(&d),
      vec![Event::Overflow {
        dropped_samples: 800,
        policy: Overflow::Reject
      }]
    );
    let m = s.metrics();
    assert_eq!((m.dropped, status_count(&m, Status::Dropped)), (80_800, 1_010));
    assert_invariant(&m);
  }
}

#[test]
fn engine_drain_coalesces_overflow_and_wakes_the_owner_once_per_batch() {
  let engine = Engine::new(1);
  let wakes = Arc::new(AtomicUsize::new(0));
  let w = wakes.clone();
  engine.set_notifier(Some(Arc::new(move || {
    w.fetch_add(1, Ordering::SeqCst);
  })));
  let s = engine
    .add_source(opts(16_000, 1, 20, Overflow::Reject, Consumer::Pull))
    .unwrap();
  settled(cap(&s, &ramp(0, 320)));
  let frame = ramp(0, 160);
  for _ in 0..1_000 {
    try_cap(&s, &frame);
  }
  assert_eq!(wakes.load(Ordering::SeqCst), 1, "one wake for the whole storm");
  let d = engine.drain();
  let overflow: Vec<_> = events(&d)
    .into_iter()
    .filter(|e| matches!(e, Event::Overflow { .. }))
    .collect();
  assert_eq!(
    overflow,
    vec![Event::Overflow {
      dropped_samples: 160_000,
      policy: Overflow::Reject
    }]
  );
  try_cap(&s, &frame);
  assert_eq!(wakes.load(Ordering::SeqCst), 2, "a drain re-arms the wake");
  let d = engine.drain();
  let overflow: Vec<_> = events(&d)
    .into_iter()
    .filter(|e| matches!(e, Event::Overflow { .. }))
    .collect();
  assert_eq!(
    overflow,
    vec![Event::Overflow {
      dropped_samples: 160,
      policy: Overflow::Reject
    }]
  );
  engine.shutdown();
  let n = wakes.load(Ordering::SeqCst);
  try_cap(&s, &frame); // closed now: settles `closed`, and the notifier is gone
  assert_eq!(wakes.load(Ordering::SeqCst), n, "no wake after shutdown");
}

#[test]
fn drop_policies_report_their_policy() {
  for policy in [Overflow::DropOldest, Overflow::DropNewest] {
    let (s, bus) = pull(8_000, 1, 20, policy);
    for i in 0..100 {
      settled(cap(&s, &ramp(i * 80, 80)));
    }
    // 100 chunks into a 2-chunk queue: 98 chunks lost either way.
    assert_eq!(
      events(&bus.drain()),
      vec![Event::Overflow {
        dropped_samples: 98 * 80,
        policy
      }]
    );
    let expect = if policy == Overflow::DropOldest {
      ramp(98 * 80, 160)
    } else {
      ramp(0, 160)
    };
    assert_eq!(read_all(&s), expect);
  }
}

#[test]
fn deadline_events_coalesce() {
  let (s, bus) = pull(8_000, 1, 20, Overflow::Wait);
  settled(cap(&s, &ramp(0, 120))); // 1 chunk + 40 carried; 1 free
  for _ in 0..100 {
    // Wants 3 chunks, room for 1 (the first time): deadline 0 times out at once.
    settled(cap_deadline(&s, &ramp(0, 200), 0));
  }
  // The first call queued 40 (completing the carried 40 into the one free chunk) and
  // dropped 160; the queue was then full, so the other 99 dropped all 200.
  let m = s.metrics();
  assert_eq!(status_count(&m, Status::Timeout), 100);
  let d = bus.drain();
  let ev = events(&d);
  assert_eq!(ev.len(), 1, "{ev:?}");
  assert_eq!(
    ev[0],
    Event::Deadline {
      count: 100,
      waited_ms: 0.0,
      dropped_samples: m.dropped
    }
  );
  assert_eq!(m.dropped, 200 * 100 - 40);
  assert_invariant(&m);
}

#[test]
fn underrun_reports_one_event_per_episode_and_counters_are_exact() {
  // A realtime source on its own bus, ticked by hand.
  let (s, bus) = source(opts(8_000, 1, 100, Overflow::Reject, Consumer::Realtime));
  let t0 = Instant::now();
  let tick = |ms: u64, n: u32| s.tick(t0 + Duration::from_millis(ms), n);
  tick(10, 3);
  assert_eq!(s.metrics().underruns, 0, "no underrun before the first capture");
  settled(cap(&s, &ramp(0, 160)));
  tick(20, 1);
  tick(30, 1);
  assert_eq!(s.metrics().delivered, 160);
  tick(40, 1); // first underrun: reported
  let ev: Vec<_> = events(&bus.drain())
    .into_iter()
    .filter(|e| matches!(e, Event::Underrun { .. }))
    .collect();
  assert_eq!(ev, vec![Event::Underrun { ticks: 1 }]);
  for i in 0..50 {
    tick(50 + i * 10, 1);
  }
  let ev: Vec<_> = events(&bus.drain())
    .into_iter()
    .filter(|e| matches!(e, Event::Underrun { .. }))
    .collect();
  assert!(
    ev.is_empty(),
    "an ongoing underrun is not re-reported every tick: {ev:?}"
  );
  assert_eq!(s.metrics().underruns, 51);
  // Audio again, then the next episode: its report carries every tick not yet reported
  // (the 50 ticks after the first report of the previous episode, plus this one). This pins
  // the engine's current coalescing; `metrics().underruns` is the exact count either way.
  settled(cap(&s, &ramp(0, 80)));
  tick(600, 1);
  tick(610, 1);
  let ev: Vec<_> = events(&bus.drain())
    .into_iter()
    .filter(|e| matches!(e, Event::Underrun { .. }))
    .collect();
  assert_eq!(ev, vec![Event::Underrun { ticks: 51 }]);
  assert_eq!(s.metrics().underruns, 52);
  // Catch-up ticks count one underrun each.
  tick(660, 5);
  assert_eq!(s.metrics().underruns, 57);
  assert_invariant(&s.metrics());
}

#[test]
fn readable_fires_once_when_a_waiting_reader_can_read() {
  let (s, bus) = pull(8_000, 1, 50, Overflow::Reject);
  assert_eq!(s.read(), capstan_core::Read::Empty);
  settled(cap(&s, &ramp(0, 40))); // not a whole chunk yet
  assert!(events(&bus.drain()).is_empty());
  settled(cap(&s, &ramp(40, 200)));
  settled(cap(&s, &ramp(240, 80)));
  assert_eq!(events(&bus.drain()), vec![Event::Readable]);
  assert_eq!(read_all(&s), ramp(0, 320));
  // read_all ended on Empty, which re-arms it.
  settled(cap(&s, &ramp(320, 80)));
  assert_eq!(events(&bus.drain()), vec![Event::Readable]);
  assert!(s.close());
  assert_eq!(events(&bus.drain()), vec![Event::Closed]);
}
