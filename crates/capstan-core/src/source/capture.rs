//! Producers: `capture`, `try_capture` and `flush`, one function per overflow policy for
//! a frame that does not fit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::waiters::Waiter;
use super::{FrameRef, Input, Samples, Source, LOCK_BOUND};
use crate::error::Result;
use crate::format::{f32_to_i16, CHUNK_MS};
use crate::options::Consumer;
use crate::outcome::{CaptureResult, Join, Outcome, Status};
use crate::queue::Overflow;

/// Chunks a realtime waiter may take past twice its deadline's ticks (a late clock catching up).
const REACH_SLACK_CHUNKS: usize = 20;

impl Source {
  /// Validates a frame and turns it into i16 samples (borrowed when already i16).
  pub(super) fn prepare<'a>(&self, frame: &FrameRef<'a>, scratch: &'a mut Vec<i16>) -> Result<&'a [i16]>
  where
    Self: 'a,
  {
    let fmt = self.opts.format;
    fmt.check_frame(
      frame.sample_rate.unwrap_or(fmt.sample_rate),
      frame.channels.unwrap_or(fmt.channels),
    )?;
    let data: &'a [i16] = match frame.samples {
      Samples::I16(d) => d,
      Samples::F32(f) => {
        f32_to_i16(f, scratch)?;
        scratch.as_slice()
      }
    };
    fmt.check_len(data.len())?;
    Ok(data)
  }

  /// `captureFrame`: queue what the policy allows now; under `wait`, what does not fit
  /// waits (FIFO behind earlier waiters) until room, deadline, abort, clear or close.
  pub fn capture(&self, frame: FrameRef<'_>, deadline_ms: Option<u32>) -> Result<CaptureResult> {
    self.capture_inner(frame, deadline_ms, true, false, None)
  }

  /// `capture` as a member of a group round: if it has to wait, it settles into `join`
  /// (as `member`) instead of the bus. A settled result is returned as usual.
  pub fn capture_joined(
    &self,
    frame: FrameRef<'_>,
    deadline_ms: Option<u32>,
    join: Arc<dyn Join>,
    member: u32,
  ) -> Result<CaptureResult> {
    self.capture_inner(frame, deadline_ms, true, false, Some((join, member)))
  }

  /// `tryCaptureFrame`: never waits. Under `wait`, a frame that cannot be queued whole
  /// right now (or that would jump earlier waiters) is refused whole (`dropped`).
  pub fn try_capture(&self, frame: FrameRef<'_>) -> Result<Outcome> {
    match self.capture_inner(frame, Some(0), false, false, None)? {
      CaptureResult::Settled(o) => Ok(o),
      CaptureResult::Pending(_) => unreachable!("try_capture never waits"),
    }
  }

  /// `flush()`: completes the carried remainder with silence, queued like a capture.
  pub fn flush(&self, deadline_ms: Option<u32>) -> Result<CaptureResult> {
    self.flush_mark(deadline_ms).map(|(r, _)| r)
  }

  /// [`flush`](Source::flush), and the queue position (samples) right after the padded
  /// audio: where everything captured before this call ends, for a sink that cuts
  /// segments there. Exact unless an earlier capture still waiting then times out (the
  /// mark then lies past the audio, and the sink cuts when the queue runs idle).
  pub fn flush_mark(&self, deadline_ms: Option<u32>) -> Result<(CaptureResult, u64)> {
    self.flush_marked(deadline_ms, |_, _| {})
  }

  /// [`flush_mark`](Source::flush_mark) that tells `before(mark, pad)` where the padded
  /// audio will end and how much of it is padding, before the padding is captured: once it
  /// is in, the clock may deliver the chunk at any moment.
  pub fn flush_marked(&self, deadline_ms: Option<u32>, before: impl FnOnce(u64, u64)) -> Result<(CaptureResult, u64)> {
    let busy = |n: usize| {
      self.contended.fetch_add(n as u64, Ordering::Relaxed);
      Ok((
        CaptureResult::Settled(Outcome {
          status: Status::Timeout,
          accepted_samples: 0,
          dropped_samples: self.per_ch(n),
          queued_ms: 0.0,
          waited_ms: LOCK_BOUND.as_secs_f64() * 1000.0,
        }),
        0,
      ))
    };
    let (pad, mark) = {
      let Ok(mut st) = self.input() else { return busy(0) };
      // A segment's end: what is queued plays now, without waiting for a pre-roll.
      if st.preroll > 0 && !st.queue.is_empty() {
        st.primed = true;
      }
      // Pad against what will be carried once earlier waiters are in.
      let pending: usize = st.waiters.iter().map(|w| w.rest.len() - w.pos).sum();
      let c = st.chunker.chunk_len();
      let carried = st.chunker.residue_len() + pending;
      let pad = (c - carried % c) % c;
      (pad, st.queue.pushed_total() + (carried + pad) as u64)
    };
    before(mark, pad as u64);
    if pad == 0 {
      let Ok(mut st) = self.input() else { return busy(0) };
      let status = if st.closed { Status::Closed } else { Status::Accepted };
      let o = self.outcome(&mut st, status, 0, 0, Duration::ZERO);
      return Ok((CaptureResult::Settled(o), mark));
    }
    let silence = vec![0i16; pad];
    let r = self.capture_inner(FrameRef::i16(&silence), deadline_ms, true, true, None)?;
    Ok((r, mark))
  }

  fn capture_inner(
    &self,
    frame: FrameRef<'_>,
    deadline_ms: Option<u32>,
    may_wait: bool,
    padding: bool,
    join: Option<(Arc<dyn Join>, u32)>,
  ) -> Result<CaptureResult> {
    let mut scratch = Vec::new();
    let input = self.prepare(&frame, &mut scratch)?;
    let n = input.len();
    let Ok(mut guard) = self.input() else {
      // Counted as captured and dropped, so the invariant holds for refused audio too.
      self.contended.fetch_add(n as u64, Ordering::Relaxed);
      return Ok(CaptureResult::Settled(Outcome {
        status: Status::Timeout,
        accepted_samples: 0,
        dropped_samples: self.per_ch(n),
        queued_ms: 0.0,
        waited_ms: LOCK_BOUND.as_secs_f64() * 1000.0,
      }));
    };
    let st = &mut *guard;
    if st.closed {
      let o = self.outcome(st, Status::Closed, 0, n, Duration::ZERO);
      return Ok(CaptureResult::Settled(o));
    }
    st.started = true;
    let fits = st.waiters.is_empty() && st.chunker.chunks_for(n) <= st.queue.free_chunks();
    let result = match self.opts.overflow {
      _ if fits => {
        self.feed(st, input, usize::MAX);
        CaptureResult::Settled(self.outcome(st, Status::Accepted, n, 0, Duration::ZERO))
      }
      // `tryCaptureFrame` under `wait`: refused whole rather than waiting.
      Overflow::Wait if !may_wait => self.reject(st, input),
      Overflow::Wait => {
        // Read only here: a capture that fits never needs the clock (a clock read is
        // about a fifth of an uncontended capture + tick).
        let now = Instant::now();
        let wait = Duration::from_millis(deadline_ms.unwrap_or(self.opts.deadline_ms) as u64);
        match self.wait(st, input, now, wait, padding, join) {
          Some(o) => o,
          None => return Ok(CaptureResult::Pending(st.waiters.back().expect("just queued").id)),
        }
      }
      Overflow::DropNewest => self.drop_newest(st, input),
      Overflow::DropOldest => self.drop_oldest(st, input),
      Overflow::Reject => self.reject(st, input),
    };
    // Settled here: all of the padding is in custody (queued or counted as dropped).
    if padding {
      st.counters.padded += n as u64;
    }
    Ok(result)
  }

  /// `wait`: what fits is queued at once (unless earlier captures wait), the rest waits
  /// for room until `wait` runs out. None: the capture is now a waiter (and its padding,
  /// if any, is counted as it goes in); `deadlineMs: 0` settles `timeout` at once.
  fn wait(
    &self,
    st: &mut Input,
    input: &[i16],
    now: Instant,
    wait: Duration,
    padding: bool,
    join: Option<(Arc<dyn Join>, u32)>,
  ) -> Option<CaptureResult> {
    let n = input.len();
    let used = if st.waiters.is_empty() {
      self.feed(st, input, st.queue.free_chunks())
    } else {
      0
    };
    if wait.is_zero() {
      self.drop_now(st, n - used);
      self.note_deadline(st, Duration::ZERO, n - used);
      return Some(CaptureResult::Settled(self.outcome(
        st,
        Status::Timeout,
        used,
        n - used,
        Duration::ZERO,
      )));
    }
    let id = self.next_call.fetch_add(1, Ordering::Relaxed);
    // A realtime consumer takes one chunk a tick: audio past what it can take before the
    // deadline (twice over, for a clock catching up) can never be queued in time. It is not
    // copied (a 50 M-sample frame would hold the caller for 100+ ms): it is counted with the
    // outcome, as dropped, when the capture settles.
    let reachable = match self.opts.consumer {
      Consumer::Realtime => {
        let ticks = (wait.as_millis() as usize / CHUNK_MS as usize)
          .saturating_mul(2)
          .saturating_add(REACH_SLACK_CHUNKS);
        ticks.saturating_mul(self.opts.format.chunk_len())
      }
      _ => usize::MAX,
    };
    let keep = (n - used).min(reachable);
    let mut rest = std::mem::take(&mut st.spare_rest);
    rest.clear();
    rest.extend_from_slice(&input[used..used + keep]);
    st.waiters.push_back(Waiter {
      id,
      rest,
      beyond: n - used - keep,
      pos: 0,
      accepted: used,
      started: now,
      deadline: now + wait,
      padding,
      join,
    });
    if padding {
      st.counters.padded += used as u64;
    }
    if self.opts.consumer == Consumer::Unpaced {
      if let Some(p) = self.poke.get() {
        p.poke();
      }
    }
    None
  }

  /// `drop-newest`: the prefix that fits is queued, the rest dropped.
  fn drop_newest(&self, st: &mut Input, input: &[i16]) -> CaptureResult {
    let n = input.len();
    let used = self.feed(st, input, st.queue.free_chunks());
    self.drop_now(st, n - used);
    self.note_overflow(st, n - used);
    let status = if used == 0 { Status::Dropped } else { Status::Partial };
    CaptureResult::Settled(self.outcome(st, status, used, n - used, Duration::ZERO))
  }

  /// `drop-oldest`: older queued audio is evicted to make room, chunk by chunk; a frame
  /// larger than the whole queue evicts its own start.
  fn drop_oldest(&self, st: &mut Input, input: &[i16]) -> CaptureResult {
    let n = input.len();
    let before = st.queue.len_samples() + st.chunker.residue_len();
    let Input { chunker, queue, .. } = st;
    let mut evicted = 0usize;
    chunker.feed(input, usize::MAX, |c| {
      if queue.free_chunks() == 0 {
        queue.evict();
        evicted += c.len();
      }
      queue.push(c);
    });
    st.counters.captured += n as u64;
    st.counters.dropped += evicted as u64;
    self.wake_reader_if_pull(st);
    self.note_overflow(st, evicted);
    self.resolve_playouts(st);
    let own = evicted.saturating_sub(before);
    let status = if own == 0 { Status::Accepted } else { Status::Partial };
    CaptureResult::Settled(self.outcome(st, status, n - own, evicted, Duration::ZERO))
  }

  /// `reject`: all or nothing; a frame that does not fit whole is dropped whole.
  fn reject(&self, st: &mut Input, input: &[i16]) -> CaptureResult {
    let n = input.len();
    self.drop_now(st, n);
    self.note_overflow(st, n);
    CaptureResult::Settled(self.outcome(st, Status::Dropped, 0, n, Duration::ZERO))
  }
}

#[cfg(test)]
mod tests {
  use std::sync::Arc;

  use crate::events::Bus;
  use crate::options::{Consumer, SourceOptions};
  use crate::outcome::{CaptureResult, Outcome, Status};
  use crate::queue::Overflow;
  use crate::source::{FrameRef, Source};

  /// 8 kHz mono (80-sample chunks), a two-chunk queue holding one chunk of `1`s.
  fn half_full(overflow: Overflow) -> Arc<Source> {
    let mut o = SourceOptions::new(8_000, 1).unwrap();
    o.overflow = overflow;
    o.consumer = Consumer::Pull;
    o.queue_ms = 20;
    let s = Source::new(1, o, Bus::new()).unwrap();
    s.try_capture(FrameRef::i16(&[1; 80])).unwrap();
    s
  }

  fn counts(o: &Outcome) -> (Status, u64, u64) {
    (o.status, o.accepted_samples, o.dropped_samples)
  }

  #[test]
  fn each_policy_handles_a_frame_that_does_not_fit() {
    let two = [2i16; 160];
    let s = half_full(Overflow::Reject);
    assert_eq!(
      counts(&s.try_capture(FrameRef::i16(&two)).unwrap()),
      (Status::Dropped, 0, 160)
    );
    let s = half_full(Overflow::DropNewest);
    assert_eq!(
      counts(&s.try_capture(FrameRef::i16(&two)).unwrap()),
      (Status::Partial, 80, 80)
    );
    let s = half_full(Overflow::DropOldest);
    assert_eq!(
      counts(&s.try_capture(FrameRef::i16(&two)).unwrap()),
      (Status::Accepted, 160, 80)
    );
    assert_eq!(s.read(), crate::source::Read::Chunk(vec![2; 80]), "the oldest went");
    let s = half_full(Overflow::Wait);
    let CaptureResult::Settled(o) = s.capture(FrameRef::i16(&two), Some(0)).unwrap() else {
      panic!("deadline 0 never waits");
    };
    assert_eq!(counts(&o), (Status::Timeout, 80, 80), "what fit is kept");
    let s = half_full(Overflow::Wait);
    assert!(matches!(
      s.capture(FrameRef::i16(&two), None).unwrap(),
      CaptureResult::Pending(_)
    ));
    let m = s.metrics();
    assert_eq!((m.waiting_captures, m.waiting_samples, m.queued), (1, 80, 160));
  }

  /// A realtime `wait` capture far longer than its deadline could ever queue copies only
  /// what the clock can take in time; the rest is dropped and counted when it settles.
  #[test]
  fn a_huge_realtime_wait_copies_only_what_its_deadline_can_reach() {
    let mut o = SourceOptions::new(8_000, 1).unwrap();
    o.consumer = Consumer::Realtime;
    o.queue_ms = 20;
    o.deadline_ms = 100;
    let s = Source::new(1, o, Bus::new()).unwrap();
    let huge = vec![3i16; 8_000_000];
    let CaptureResult::Pending(_) = s.capture(FrameRef::i16(&huge), None).unwrap() else {
      panic!("a wait capture that does not fit waits");
    };
    {
      let st = s.input().unwrap();
      let w = st.waiters.front().unwrap();
      // 2 queued chunks; copied: (100 ms / 10 ms) x 2 + 20 = 40 chunks of 80 samples.
      assert_eq!(w.rest.len(), 40 * 80);
      assert_eq!(w.beyond, 8_000_000 - 160 - 40 * 80);
    }
    let m = s.metrics();
    assert_eq!(
      m.waiting_samples,
      8_000_000 - 160,
      "the uncopied rest is still waiting, in the books"
    );
    assert_eq!(m.captured, m.delivered + m.queued + m.dropped + m.cleared);
  }
}
