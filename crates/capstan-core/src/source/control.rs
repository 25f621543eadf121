//! Calls that change a source as a whole: `clear`, `close`, and the deferral that lets
//! every call return in bound even if the input side is ever held past it.
//!
//! A call that cannot take the input lock within [`LOCK_BOUND`](super::LOCK_BOUND) records
//! what it wanted here and returns; the next call (or clock pass) to take the lock
//! applies it before anything else, and the results reach the caller through the bus
//! like any other settlement. The bound is never expected to run out: this makes "never"
//! safe rather than a panic.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{FrameRef, Input, Source};
use crate::error::Result;
use crate::outcome::{Outcome, Status};

/// What calls that found the input side busy asked for.
#[derive(Default)]
pub(super) struct Deferred {
  pub(super) aborts: Vec<u64>,
  clear: bool,
  /// `waitForPlayout` ids handed out without a mark yet.
  pub(super) playouts: Vec<u64>,
  pub(super) cancel_playouts: Vec<u64>,
  /// A pass finished handing its chunks to the sink.
  pub(super) handed: bool,
  /// A pull reader found nothing and waits for `Readable`.
  pub(super) pull_reader: bool,
  readable: bool,
  encoded: bool,
  close: bool,
  /// Settlements `refuse` made without the lock, still to be counted.
  refused: Vec<Status>,
}

impl Source {
  #[cold]
  pub(super) fn defer(&self, f: impl FnOnce(&mut Deferred)) {
    f(&mut self.cold.deferred.lock());
    self.has_deferred.store(true, Ordering::Release);
  }

  /// Applies deferred calls in the order their effects compose: aborts, clear, playout
  /// marks, reader wake-ups, close.
  #[cold]
  #[inline(never)]
  pub(super) fn apply_deferred(&self, st: &mut Input) {
    let d = {
      let mut d = self.cold.deferred.lock();
      self.has_deferred.store(false, Ordering::Release);
      std::mem::take(&mut *d)
    };
    let now = Instant::now();
    for status in d.refused {
      st.counters.outcomes[status.code()] += 1;
    }
    for id in d.aborts {
      if let Some(idx) = st.waiters.iter().position(|w| w.id == id) {
        let w = st.waiters.remove(idx).expect("position is in range");
        self.settle_waiter(st, w, Status::Aborted, now);
      }
    }
    self.service_waiters(st, now);
    if d.clear {
      self.clear_locked(st);
    }
    if d.handed {
      self.handed(st);
    }
    for id in d.playouts {
      self.mark_playout(st, id);
    }
    st.playouts.retain(|(id, _)| !d.cancel_playouts.contains(id));
    if d.pull_reader {
      st.reader_wanted = true;
      if !st.queue.is_empty() {
        self.wake_reader_if_pull(st);
      }
    }
    if d.readable {
      st.pending.readable = true;
      self.touch(st);
    }
    if d.encoded {
      st.pending.encoded = true;
      self.touch(st);
    }
    if d.close {
      self.close_locked(st);
    }
  }

  /// `clearQueue()`: discards queued audio and the carried remainder; every waiting
  /// capture settles `cleared`, and the processors forget their history before the next
  /// audio. Returns samples per channel discarded from the queue (0 if deferred).
  pub fn clear(&self) -> u64 {
    match self.input() {
      Ok(mut st) => self.clear_locked(&mut st),
      Err(_) => {
        self.defer(|d| d.clear = true);
        0
      }
    }
  }

  fn clear_locked(&self, st: &mut Input) -> u64 {
    st.reset_gen += 1;
    self.discard_all(st, Status::Cleared)
  }

  fn discard_all(&self, st: &mut Input, status: Status) -> u64 {
    let now = Instant::now();
    let n = st.queue.clear() + st.chunker.clear();
    st.counters.cleared += n as u64;
    for w in std::mem::take(&mut st.waiters) {
      self.settle_waiter(st, w, status, now);
    }
    self.resolve_playouts(st);
    self.per_ch(n)
  }

  /// Marks the source closed: waiters settle `closed`, queued audio is counted as
  /// cleared, a `Closed` event is queued, and the sink is closed after its last push.
  /// Idempotent; false if it was already closed.
  pub fn close(&self) -> bool {
    if self.closing.swap(true, Ordering::AcqRel) {
      return false;
    }
    match self.input() {
      Ok(mut st) => self.close_locked(&mut st),
      Err(_) => self.defer(|d| d.close = true),
    }
    // A clock holding the output side sees `closing` once its pass is done.
    if let Some(mut out) = self.output.try_lock() {
      out.close();
    }
    // A sink asked for but never installed ends too (an encoder's stream must end).
    let requested = self.cold.sink_slot.lock().request.take();
    if let Some(mut sink) = requested {
      sink.close();
    }
    true
  }

  fn close_locked(&self, st: &mut Input) {
    if st.closed {
      return;
    }
    self.closing.store(true, Ordering::Release);
    self.discard_all(st, Status::Closed);
    let ids: Vec<u64> = st.playouts.drain(..).map(|(id, _)| id).collect();
    st.pending.playouts.extend(ids);
    st.closed = true;
    st.pending.closed = true;
    let reader_waits = self.cold.sink_slot.lock().reader.as_ref().is_some_and(|r| r.close());
    st.pending.readable = st.reader_wanted || reader_waits;
    self.remember(st);
    self.touch(st);
  }

  /// An encoded stream has news for JavaScript (bytes, a segment's end, an error).
  pub fn note_encoded(&self) {
    match self.input() {
      Ok(mut st) => {
        st.pending.encoded = true;
        self.touch(&mut st);
      }
      Err(_) => self.defer(|d| d.encoded = true),
    }
  }

  /// Asks the clock for a pass now (an unpaced source otherwise waits for audio or a tick).
  pub fn poke_clock(&self) {
    if let Some(p) = self.poke.get() {
      p.poke();
    }
  }

  /// A reader waiting on its buffer can read again.
  pub(super) fn note_readable(&self) {
    match self.input() {
      Ok(mut st) => {
        st.pending.readable = true;
        self.touch(&mut st);
      }
      Err(_) => self.defer(|d| d.readable = true),
    }
  }
}

impl Source {
  /// `refuse` for a frame: validated exactly as a capture would be first (a programmer
  /// error stays an error even when the call is refused), then refused whole.
  pub fn refuse_frame(&self, frame: FrameRef<'_>, status: Status) -> Result<Outcome> {
    let mut scratch = Vec::new();
    let n = self.prepare(&frame, &mut scratch)?.len();
    Ok(self.refuse(n, status))
  }

  /// Settles a call JavaScript refuses before it reaches the queue (its `AbortSignal` was
  /// already aborted) with `status`: counted in `metrics().outcomes` like every
  /// settlement, nothing taken into custody (`interleaved` samples reported dropped),
  /// `queuedMs` as the source has it now. If the input side is busy past its bound, the
  /// count is deferred and `queuedMs` is the last-known depth.
  pub fn refuse(&self, interleaved: usize, status: Status) -> Outcome {
    match self.input() {
      Ok(mut st) => self.outcome(&mut st, status, 0, interleaved, Duration::ZERO),
      Err(_) => {
        self.defer(|d| d.refused.push(status));
        Outcome {
          status,
          accepted_samples: 0,
          dropped_samples: self.per_ch(interleaved),
          queued_ms: f64::from_bits(self.cold.last.queued_ms.load(Ordering::Relaxed)),
          waited_ms: 0.0,
        }
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use std::time::{Duration, Instant};

  use crate::events::{Bus, Event};
  use crate::options::{Consumer, SourceOptions};
  use crate::outcome::{CaptureResult, Status};
  use crate::queue::Overflow;
  use crate::source::{FrameRef, Read, Source, LOCK_BOUND};

  /// Calls made while another thread holds the input side past the bound return in
  /// bound, without panicking, and take effect once the lock is free.
  #[test]
  fn calls_on_a_busy_source_return_in_bound_and_apply_later() {
    let mut o = SourceOptions::new(8_000, 1).unwrap();
    o.consumer = Consumer::Pull;
    o.overflow = Overflow::Wait;
    o.queue_ms = 20;
    let bus = Bus::new();
    let s = Source::new(1, o, bus.clone()).unwrap();
    let full = vec![1i16; 160];
    s.try_capture(FrameRef::i16(&full)).unwrap();
    let CaptureResult::Pending(waiting) = s.capture(FrameRef::i16(&[2; 80]), Some(60_000)).unwrap() else {
      panic!("the queue is full: the capture waits");
    };
    assert_eq!(s.health(), crate::HealthState::Healthy);
    let before = s.metrics();

    let held = s.input.lock();
    let t = Instant::now();
    std::thread::scope(|scope| {
      scope
        .spawn(|| {
          let bound = LOCK_BOUND + Duration::from_millis(100);
          let call = |f: &dyn Fn()| {
            let t = Instant::now();
            f();
            assert!(t.elapsed() < bound, "a call took {:?}", t.elapsed());
          };
          call(&|| assert_eq!(s.queued_ms_now(), 20.0));
          call(&|| assert_eq!(s.metrics().captured, before.captured));
          call(&|| assert_eq!(s.read(), Read::Empty));
          call(&|| assert_eq!(s.abort(waiting), None));
          call(&|| assert_eq!(s.refuse(80, Status::Aborted).dropped_samples, 80));
          call(&|| assert_eq!(s.clear(), 0));
          let o = s.try_capture(FrameRef::i16(&full)).unwrap();
          assert_eq!(o.status, Status::Timeout);
          call(&|| assert!(s.close()));
          assert!(s.is_closed());
        })
        .join()
        .unwrap();
    });
    assert!(t.elapsed() >= LOCK_BOUND);
    drop(held);

    // The next call applies what was deferred: abort, clear, close, in that order.
    let m = s.metrics();
    assert_eq!(m.captured, m.delivered + m.queued + m.dropped + m.cleared);
    assert_eq!(m.cleared, 160);
    // The deferred abort and the refused call are both counted.
    assert_eq!(m.outcomes[Status::Aborted.code()], 2);
    let d = bus.drain();
    let completions: Vec<_> = d.iter().flat_map(|x| x.completions.clone()).collect();
    assert_eq!(completions.len(), 1);
    assert_eq!(
      (completions[0].id, completions[0].outcome.status),
      (waiting, Status::Aborted)
    );
    let events: Vec<_> = d.iter().flat_map(|x| x.events.clone()).collect();
    assert!(events.contains(&Event::Closed), "{events:?}");
    assert!(
      events.contains(&Event::Readable),
      "the waiting reader is told: {events:?}"
    );
    assert_eq!(s.read(), Read::Closed);
  }

  /// A refused call is an outcome like any other: counted, nothing taken into custody.
  #[test]
  fn refused_calls_are_counted_and_take_nothing() {
    let mut o = SourceOptions::new(8_000, 2).unwrap();
    o.consumer = Consumer::Pull;
    let s = Source::new(1, o, Bus::new()).unwrap();
    s.try_capture(FrameRef::i16(&[1; 200])).unwrap();
    let r = s.refuse(160, Status::Aborted);
    assert_eq!(
      (r.status, r.accepted_samples, r.dropped_samples),
      (Status::Aborted, 0, 80)
    );
    assert_eq!((r.queued_ms, r.waited_ms), (12.5, 0.0));
    let m = s.metrics();
    assert_eq!((m.captured, m.dropped, m.outcomes[Status::Aborted.code()]), (100, 0, 1));
    assert_eq!(m.captured, m.delivered + m.queued + m.dropped + m.cleared);
  }
}
