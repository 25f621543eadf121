//! The engine clock: realtime pacing at one chunk per 10 ms, unpaced draining, underruns,
//! and health judged from consumer progress. Wall-clock tests, so bounds are generous
//! where the scheduler matters and exact where it does not.

mod common;

use std::time::{Duration, Instant};

use capstan_core::{Consumer, Drained, Engine, Event, HealthState, Overflow, Read, Status};
use common::*;

const RATE: u32 = 48_000;
const CF: u64 = 480;

fn health_events(d: &[Drained]) -> Vec<(HealthState, HealthState, f64)> {
  events(d)
    .into_iter()
    .filter_map(|e| match e {
      Event::Health(t) => Some((t.previous, t.state, t.since_ms)),
      _ => None,
    })
    .collect()
}

#[test]
fn realtime_source_is_paced_at_one_chunk_per_tick() {
  let engine = Engine::new(1);
  let s = engine
    .add_source(opts(RATE, 1, 2_000, Overflow::Reject, Consumer::Realtime))
    .unwrap();
  let second = ramp(0, RATE as usize);
  let t0 = Instant::now();
  assert_outcome(&settled(cap(&s, &second)), Status::Accepted, RATE as u64, 0);
  std::thread::sleep(Duration::from_millis(500));
  let pos = s.playout_position();
  let elapsed_ms = t0.elapsed().as_secs_f64() * 1000.0;
  let m = s.metrics();
  assert_invariant(&m);
  assert_eq!(pos % CF, 0, "delivery is in whole chunks");
  assert!(
    (300 * 48..=700 * 48).contains(&pos),
    "after ~500 ms, delivered {} ms",
    pos / 48
  );
  // It can never run ahead of the clock: at most one tick per 10 ms (+2 for the tick in
  // progress at capture time).
  assert!(
    pos / CF <= (elapsed_ms / 10.0) as u64 + 2,
    "ran ahead: {} chunks in {elapsed_ms} ms",
    pos / CF
  );
  assert_eq!(m.underruns, 0, "no underrun while audio is queued");
  // The rest plays out; then the empty queue underruns on every tick.
  let t1 = Instant::now();
  while s.playout_position() < RATE as u64 && t1.elapsed() < Duration::from_secs(3) {
    std::thread::sleep(Duration::from_millis(5));
  }
  assert_eq!(s.playout_position(), RATE as u64);
  let total_ms = t0.elapsed().as_secs_f64() * 1000.0;
  assert!(total_ms >= 900.0, "1 s of audio played in {total_ms} ms");
  let t2 = Instant::now();
  let u0 = s.metrics().underruns;
  std::thread::sleep(Duration::from_millis(100));
  let m = s.metrics();
  let ticks = m.underruns - u0;
  let bound = (t2.elapsed().as_secs_f64() * 100.0) as u64 + 2;
  assert!(
    ticks >= 3 && ticks <= bound,
    "{ticks} underruns in ~100 ms (bound {bound})"
  );
  assert_eq!((m.delivered, m.queued, m.captured), (RATE as u64, 0, RATE as u64));
  assert_invariant(&m);
  let ev = events(&engine.drain());
  assert!(ev.iter().any(|e| matches!(e, Event::Underrun { .. })), "{ev:?}");
  engine.shutdown();
}

#[test]
fn unpaced_source_drains_within_a_few_ticks() {
  let engine = Engine::new(1);
  let s = engine
    .add_source(opts(RATE, 2, 2_000, Overflow::Reject, Consumer::Unpaced))
    .unwrap();
  let t0 = Instant::now();
  assert_outcome(
    &settled(cap(&s, &ramp(0, 2 * RATE as usize))),
    Status::Accepted,
    RATE as u64,
    0,
  );
  while s.playout_position() < RATE as u64 && t0.elapsed() < Duration::from_secs(2) {
    std::thread::sleep(Duration::from_millis(1));
  }
  let took = t0.elapsed();
  assert_eq!(s.playout_position(), RATE as u64);
  assert!(took < Duration::from_millis(300), "1 s of audio took {took:?} unpaced");
  std::thread::sleep(Duration::from_millis(30));
  let m = s.metrics();
  assert_eq!(
    (m.delivered, m.queued, m.underruns),
    (RATE as u64, 0, 0),
    "unpaced never underruns"
  );
  assert_invariant(&m);
}

#[test]
fn realtime_underruns_count_from_the_first_capture() {
  let engine = Engine::new(1);
  let idle = engine
    .add_source(opts(RATE, 1, 200, Overflow::Reject, Consumer::Realtime))
    .unwrap();
  let s = engine
    .add_source(opts(RATE, 1, 200, Overflow::Reject, Consumer::Realtime))
    .unwrap();
  assert_outcome(
    &settled(cap(&s, &ramp(0, 3 * CF as usize))),
    Status::Accepted,
    3 * CF,
    0,
  );
  let t0 = Instant::now();
  std::thread::sleep(Duration::from_millis(200));
  let m = s.metrics();
  let el = t0.elapsed().as_secs_f64() * 100.0;
  assert_eq!(m.delivered, 3 * CF);
  // ~20 ticks, 3 of them delivered audio.
  assert!(
    m.underruns >= 8 && m.underruns as f64 <= el + 2.0,
    "underruns {} in {el} ticks",
    m.underruns
  );
  assert_eq!(
    idle.metrics().underruns,
    0,
    "a source that never captured does not underrun"
  );
  let d = engine.drain();
  let under: Vec<_> = events(&d)
    .into_iter()
    .filter(|e| matches!(e, Event::Underrun { .. }))
    .collect();
  // One coalesced report for the episode, carrying the ticks up to the drain.
  assert_eq!(under.len(), 1, "one report per underrun episode: {under:?}");
  let Event::Underrun { ticks } = under[0] else {
    unreachable!()
  };
  assert!(
    ticks >= 1 && ticks <= m.underruns + 2,
    "ticks {ticks} vs underruns {}",
    m.underruns
  );
  assert_invariant(&m);
}

#[test]
fn realtime_reader_gets_audio_then_silence_when_fill_silence() {
  for fill in [true, false] {
    let engine = Engine::new(1);
    let mut o = opts(RATE, 1, 200, Overflow::Reject, Consumer::Realtime);
    o.fill_silence = fill;
    o.reader_chunks = 5;
    let s = engine.add_source(o).unwrap();
    s.set_reader(true);
    let audio = ramp(1, 2 * CF as usize);
    settled(cap(&s, &audio));
    std::thread::sleep(Duration::from_millis(150));
    if fill {
      // The reader's buffer (5 chunks) holds the 2 audio chunks and then fills with silence
      // (more may follow while we read: the clock keeps running).
      let got = read_n(&s, 5);
      assert_eq!(&got[..audio.len()], &audio[..]);
      assert!(
        got[audio.len()..].iter().all(|&x| x == 0),
        "underrun ticks hand the reader silence"
      );
    } else {
      assert_eq!(read_all(&s), audio, "no silence without fillSilence");
    }
    assert!(s.metrics().underruns >= 1);
    assert_eq!(s.metrics().delivered, 2 * CF, "silence is not delivered audio");
    engine.shutdown();
    // Chunks already handed to the reader's buffer stay readable after close; then Closed.
    let rest = read_all(&s);
    assert!(rest.len() <= 5 * CF as usize && rest.iter().all(|&x| x == 0));
    assert_eq!(s.read(), Read::Closed);
  }
}

/// Polls `engine.drain()` until `pred` holds on the health transitions seen so far.
fn poll_health(
  engine: &Engine,
  seen: &mut Vec<(HealthState, HealthState, f64, Duration)>,
  t0: Instant,
  limit: Duration,
  pred: impl Fn(&[(HealthState, HealthState, f64, Duration)]) -> bool,
) {
  let start = Instant::now();
  while !pred(seen) && start.elapsed() < limit {
    std::thread::sleep(Duration::from_millis(3));
    for (p, s, since) in health_events(&engine.drain()) {
      seen.push((p, s, since, t0.elapsed()));
    }
  }
}

#[test]
fn pull_source_without_reads_lags_stalls_and_recovers() {
  let engine = Engine::new(1);
  let mut o = opts(RATE, 1, 500, Overflow::Reject, Consumer::Pull);
  o.stall_after_ms = 200; // lagging after 50 ms
  let s = engine.add_source(o).unwrap();
  std::thread::sleep(Duration::from_millis(30));
  assert_eq!(
    s.health(),
    HealthState::Healthy,
    "an idle consumer with nothing queued is healthy"
  );
  let t0 = Instant::now();
  settled(cap(&s, &ramp(0, 10 * CF as usize)));
  let mut seen = Vec::new();
  poll_health(&engine, &mut seen, t0, Duration::from_secs(3), |v| {
    v.iter().any(|t| t.1 == HealthState::Stalled)
  });
  assert_eq!(seen.len(), 2, "{seen:?}");
  let (p, st, since, at) = seen[0];
  assert_eq!((p, st), (HealthState::Healthy, HealthState::Lagging));
  // `since` is measured by the engine from the last progress (the last idle tick, up to a
  // tick or so before t0); `at` is when the test saw it.
  assert!(since >= 50.0 && at >= Duration::from_millis(30), "{seen:?}");
  let (p, st, since, at) = seen[1];
  assert_eq!((p, st), (HealthState::Lagging, HealthState::Stalled));
  assert!(
    since >= 200.0 && at >= Duration::from_millis(180) && at < Duration::from_millis(700),
    "{seen:?}"
  );
  assert_eq!(s.health(), HealthState::Stalled);
  assert_eq!(s.metrics().stalls, 1);
  // The consumer resumes: recovered at once, healthy ~100 ms later (queue now empty).
  let stall_len = t0.elapsed();
  assert_eq!(read_all(&s), ramp(0, 10 * CF as usize));
  let t_read = Instant::now();
  poll_health(&engine, &mut seen, t0, Duration::from_secs(3), |v| v.len() >= 4);
  assert_eq!(seen.len(), 4, "{seen:?}");
  let (p, st, since, _) = seen[2];
  assert_eq!((p, st), (HealthState::Stalled, HealthState::Recovered));
  assert!(
    since >= 200.0 && since <= stall_len.as_secs_f64() * 1000.0 + 50.0,
    "recovered.since_ms is the stall: {since} (read at {stall_len:?})"
  );
  let (p, st, _, _) = seen[3];
  assert_eq!((p, st), (HealthState::Recovered, HealthState::Healthy));
  let settle = t_read.elapsed();
  assert!(
    settle >= Duration::from_millis(100) && settle < Duration::from_millis(600),
    "{settle:?}"
  );
  assert_eq!(s.health(), HealthState::Healthy);
  assert_eq!(s.metrics().health, HealthState::Healthy);
  assert_eq!(s.metrics().stalls, 1);
  engine.shutdown();
}

#[test]
fn realtime_reader_that_stops_reading_stalls_the_source() {
  let engine = Engine::new(1);
  let mut o = opts(RATE, 1, 1_000, Overflow::Reject, Consumer::Realtime);
  o.stall_after_ms = 200; // lagging after 50 ms
  o.reader_chunks = 2;
  let s = engine.add_source(o).unwrap();
  s.set_reader(true);
  let t0 = Instant::now();
  settled(cap(&s, &ramp(0, 50 * CF as usize)));
  let mut seen = Vec::new();
  poll_health(&engine, &mut seen, t0, Duration::from_secs(3), |v| {
    v.iter().any(|t| t.1 == HealthState::Stalled)
  });
  let states: Vec<_> = seen.iter().map(|t| t.1).collect();
  assert_eq!(states, vec![HealthState::Lagging, HealthState::Stalled]);
  let m = s.metrics();
  assert_eq!(
    m.delivered,
    2 * CF,
    "the consumer stops when the reader's buffer is full"
  );
  assert_eq!(m.underruns, 0);
  // Reading frees the buffer; the clock resumes and the source recovers.
  let mut got = read_n(&s, 2);
  poll_health(&engine, &mut seen, t0, Duration::from_secs(3), |v| {
    v.iter().any(|t| t.1 == HealthState::Recovered)
  });
  assert_eq!(seen.last().unwrap().1, HealthState::Recovered, "{seen:?}");
  got.extend(read_all(&s));
  assert_eq!(got, ramp(0, got.len()), "the reader sees the audio in order");
  assert_invariant(&s.metrics());
  engine.shutdown();
}

#[test]
fn clock_threads_run_only_while_sources_exist() {
  let engine = Engine::new(2);
  assert!(!engine.is_running());
  let a = engine
    .add_source(opts(RATE, 1, 200, Overflow::Reject, Consumer::Realtime))
    .unwrap();
  let b = engine
    .add_source(opts(RATE, 1, 200, Overflow::Reject, Consumer::Unpaced))
    .unwrap();
  assert!(engine.is_running());
  assert_eq!(engine.source_count(), 2);
  engine.remove_source(&a);
  assert!(a.is_closed());
  assert!(engine.is_running(), "one source left");
  engine.remove_source(&b);
  assert!(!engine.is_running(), "the last source out stops the clocks");
  assert_eq!(engine.source_count(), 0);
  // The engine can be used again.
  let c = engine
    .add_source(opts(RATE, 1, 200, Overflow::Reject, Consumer::Unpaced))
    .unwrap();
  settled(cap(&c, &ramp(0, 10 * CF as usize)));
  let t0 = Instant::now();
  while c.playout_position() < 10 * CF && t0.elapsed() < Duration::from_secs(2) {
    std::thread::sleep(Duration::from_millis(1));
  }
  assert_eq!(c.playout_position(), 10 * CF, "restarted clocks deliver");
  engine.shutdown();
  assert!(!engine.is_running());
  assert!(c.is_closed());
}
