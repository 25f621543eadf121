//! Chunker properties: any slicing of the input gives the same exact 10 ms chunks, the
//! remainder is carried, and `flush()` pads it with silence to a whole chunk. Checked on
//! the bare `Chunker` and end to end through a `Source` read by `read()`.

mod common;

use capstan_core::chunker::Chunker;
use capstan_core::{CaptureResult, Format, Overflow, Status};
use common::*;
use proptest::prelude::*;

const RATES: [u32; 4] = [8_000, 16_000, 44_100, 48_000];

/// Deterministic full-range samples (including i16::MIN / i16::MAX) from a seed.
fn samples(seed: u64, len: usize) -> Vec<i16> {
  let mut x = seed | 1;
  (0..len)
    .map(|i| {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      match i % 97 {
        0 => i16::MIN,
        1 => i16::MAX,
        _ => (x >> 16) as u16 as i16,
      }
    })
    .collect()
}

/// Frame lengths in samples per channel, a rate and a channel count.
fn case() -> impl Strategy<Value = (u32, u16, Vec<usize>, u64)> {
  (
    prop::sample::select(RATES.to_vec()),
    1u16..=2,
    prop::collection::vec(
      prop_oneof![1usize..=40, 1usize..=1500, Just(80), Just(441), Just(480)],
      1..40,
    ),
    any::<u64>(),
  )
}

fn frames(channels: u16, lens: &[usize], seed: u64) -> (Vec<i16>, Vec<std::ops::Range<usize>>) {
  let total: usize = lens.iter().map(|l| l * channels as usize).sum();
  let input = samples(seed, total);
  let mut ranges = Vec::with_capacity(lens.len());
  let mut pos = 0;
  for l in lens {
    let n = l * channels as usize;
    ranges.push(pos..pos + n);
    pos += n;
  }
  (input, ranges)
}

proptest! {
  #![proptest_config(ProptestConfig { cases: cases(96), ..ProptestConfig::default() })]

  /// The bare chunker, fed without limit.
  #[test]
  fn chunker_emits_exact_chunks_and_carries_the_rest((rate, channels, lens, seed) in case()) {
    let fmt = Format::new(rate, channels).unwrap();
    let chunk = fmt.chunk_len();
    let (input, ranges) = frames(channels, &lens, seed);
    let mut c = Chunker::new(chunk);
    let mut out = Vec::new();
    let mut fed = 0;
    for r in ranges {
      let frame = &input[r];
      let expect_chunks = c.chunks_for(frame.len());
      let (used, emitted) = c.feed(frame, usize::MAX, |ch| {
        assert_eq!(ch.len(), chunk);
        out.extend_from_slice(ch);
      });
      fed += frame.len();
      prop_assert_eq!(used, frame.len(), "an unlimited feed consumes the whole frame");
      prop_assert_eq!(emitted, expect_chunks, "chunks_for predicts what feed emits");
      prop_assert_eq!(out.len(), fed / chunk * chunk);
      prop_assert_eq!(c.residue_len(), fed % chunk);
      prop_assert!(c.residue_len() < chunk);
    }
    let whole = input.len() / chunk * chunk;
    prop_assert_eq!(&out[..], &input[..whole], "output is the input prefix, bit-exact");
    let r = input.len() % chunk;
    prop_assert_eq!(c.pad_len(), if r == 0 { 0 } else { chunk - r });
    prop_assert_eq!(c.clear(), r);
    prop_assert_eq!(c.residue_len(), 0);
    prop_assert_eq!(c.pad_len(), 0);
  }

  /// The chunker fed with a chunk budget per call, resuming from the consumed count:
  /// the budget never changes the output, only where the calls stop.
  #[test]
  fn chunker_budget_and_resume_preserve_the_stream(
    (rate, channels, lens, seed) in case(),
    budgets in prop::collection::vec(0usize..=3, 1..16),
  ) {
    let chunk = Format::new(rate, channels).unwrap().chunk_len();
    let (input, ranges) = frames(channels, &lens, seed);
    let mut c = Chunker::new(chunk);
    let mut out = Vec::new();
    let mut consumed = 0usize;
    let mut k = 0usize;
    for r in ranges {
      let frame = &input[r];
      let mut pos = 0;
      while pos < frame.len() {
        let budget = budgets[k % budgets.len()];
        k += 1;
        let before = out.len();
        let (used, emitted) = c.feed(&frame[pos..], budget, |ch| {
          assert_eq!(ch.len(), chunk);
          out.extend_from_slice(ch);
        });
        prop_assert!(emitted <= budget, "emitted {} > budget {}", emitted, budget);
        prop_assert_eq!(out.len() - before, emitted * chunk);
        if used < frame.len() - pos {
          // It stopped only because the next chunk would exceed the budget.
          prop_assert_eq!(emitted, budget);
          prop_assert!(c.residue_len() + (frame.len() - pos - used) >= chunk);
        }
        if budget == 0 && used == 0 {
          // No room at all: what is left needs a chunk; give it one next time.
          let (u, e) = c.feed(&frame[pos..], 1, |ch| out.extend_from_slice(ch));
          prop_assert_eq!(e, 1);
          pos += u;
          consumed += u;
        }
        pos += used;
        consumed += used;
        prop_assert_eq!(consumed, out.len() + c.residue_len(), "consumed = emitted + carried");
      }
    }
    let whole = input.len() / chunk * chunk;
    prop_assert_eq!(&out[..], &input[..whole]);
    prop_assert_eq!(c.residue_len(), input.len() % chunk);
  }

  /// End to end: Source (pull consumer, queue big enough) and `read()`, reads interleaved
  /// with captures; then `flush()` pads the remainder with zeros.
  #[test]
  fn source_read_returns_the_input_and_flush_pads_with_zeros(
    (rate, channels, lens, seed) in case(),
    reads in prop::collection::vec(0usize..=3, 1..8),
    overflow in prop::sample::select(vec![Overflow::Wait, Overflow::DropOldest, Overflow::DropNewest, Overflow::Reject]),
  ) {
    let fmt = Format::new(rate, channels).unwrap();
    let chunk = fmt.chunk_len();
    let ch = channels as u64;
    let (input, ranges) = frames(channels, &lens, seed);
    let queue_ms = ((input.len() / chunk + 1) * 10) as u32;
    let (s, _bus) = pull(rate, channels, queue_ms, overflow);
    let mut out = Vec::new();
    for (i, r) in ranges.into_iter().enumerate() {
      let n = r.len() as u64;
      let o = settled(cap(&s, &input[r]));
      prop_assert_eq!((o.status, o.accepted_samples, o.dropped_samples), (Status::Accepted, n / ch, 0));
      for _ in 0..reads[i % reads.len()] {
        if let capstan_core::Read::Chunk(c) = s.read() {
          prop_assert_eq!(c.len(), chunk);
          out.extend_from_slice(&c);
        }
      }
      assert_invariant(&s.metrics());
    }
    out.extend(read_all(&s));
    let whole = input.len() / chunk * chunk;
    prop_assert_eq!(&out[..], &input[..whole], "bit-exact prefix");
    let r = input.len() % chunk;
    let m = s.metrics();
    prop_assert_eq!(m.queued, (r as u64) / ch, "the remainder is carried");
    prop_assert_eq!(m.captured, input.len() as u64 / ch);
    prop_assert_eq!(m.delivered, whole as u64 / ch);
    assert_invariant(&m);

    let pad = if r == 0 { 0 } else { chunk - r };
    let f = settled(s.flush(None).unwrap());
    prop_assert_eq!((f.status, f.accepted_samples, f.dropped_samples), (Status::Accepted, pad as u64 / ch, 0));
    let tail = read_all(&s);
    let mut expect = input[whole..].to_vec();
    expect.resize(expect.len() + pad, 0);
    prop_assert_eq!(tail, expect, "flush pads the carried remainder with zeros");
    let m = s.metrics();
    prop_assert_eq!(m.queued, 0);
    prop_assert_eq!(m.padded, pad as u64 / ch);
    prop_assert_eq!(m.captured, (input.len() + pad) as u64 / ch);
    prop_assert_eq!(m.delivered, m.captured);
    assert_invariant(&m);
    // A second flush has nothing to pad.
    let f2 = settled(s.flush(None).unwrap());
    prop_assert_eq!((f2.status, f2.accepted_samples), (Status::Accepted, 0));
  }

  /// Backpressure is lossless: with a small `wait` queue, every capture that has to wait
  /// is fed as `read()` frees room, and the output is still the input, bit-exact.
  #[test]
  fn wait_policy_small_queue_is_lossless(
    (rate, channels, lens, seed) in case(),
    queue_chunks in 1u32..=5,
  ) {
    let chunk = Format::new(rate, channels).unwrap().chunk_len();
    let ch = channels as u64;
    let (input, ranges) = frames(channels, &lens, seed);
    let (s, bus) = pull(rate, channels, queue_chunks * 10, Overflow::Wait);
    let mut out = Vec::new();
    for r in ranges {
      let n = r.len() as u64;
      match cap_deadline(&s, &input[r], 3_600_000) {
        CaptureResult::Settled(o) => {
          prop_assert_eq!((o.status, o.accepted_samples, o.dropped_samples), (Status::Accepted, n / ch, 0));
        }
        CaptureResult::Pending(id) => {
          let mut done = None;
          let mut guard = 0;
          while done.is_none() {
            guard += 1;
            prop_assert!(guard < 10_000, "waiter never settled");
            match s.read() {
              capstan_core::Read::Chunk(c) => out.extend_from_slice(&c),
              other => prop_assert!(false, "queue empty while a capture waits: {:?}", other),
            }
            assert_invariant(&s.metrics());
            for c in completions(&bus.drain()) {
              prop_assert_eq!(c.id, id);
              done = Some(c.outcome);
            }
          }
          let o = done.unwrap();
          prop_assert_eq!((o.status, o.accepted_samples, o.dropped_samples), (Status::Accepted, n / ch, 0));
        }
      }
      prop_assert!(s.metrics().queued as usize * channels as usize <= queue_chunks as usize * chunk + chunk);
    }
    out.extend(read_all(&s));
    let whole = input.len() / chunk * chunk;
    prop_assert_eq!(&out[..], &input[..whole]);
    let m = s.metrics();
    prop_assert_eq!((m.dropped, m.cleared, m.waiting_captures), (0, 0, 0));
    assert_invariant(&m);
  }
}
