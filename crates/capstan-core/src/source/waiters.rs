//! Captures waiting for room under the `wait` policy: fed in FIFO order as the consumer
//! frees room, settled when fully queued, at their deadline, on abort, clear or close.

use std::sync::Arc;
use std::time::Instant;

use super::{Input, Source};
use crate::events::Completion;
use crate::outcome::{Join, Outcome, Status};

pub(super) struct Waiter {
  pub(super) id: u64,
  pub(super) rest: Vec<i16>,
  /// Interleaved samples past `rest` that could not be queued before the deadline (not
  /// copied): the capture cannot be accepted whole, and settles with them dropped.
  pub(super) beyond: usize,
  pub(super) pos: usize,
  /// Interleaved samples of this frame already queued.
  pub(super) accepted: usize,
  pub(super) started: Instant,
  pub(super) deadline: Instant,
  /// Silence from `flush()`: counted in `padded` as it is taken into custody.
  pub(super) padding: bool,
  /// A group round this capture belongs to (member index): it reports there, not to the bus.
  pub(super) join: Option<(Arc<dyn Join>, u32)>,
}

impl Source {
  pub(super) fn settle_waiter(&self, st: &mut Input, w: Waiter, status: Status, now: Instant) {
    let rest = w.rest.len() - w.pos + w.beyond;
    let waited = now.saturating_duration_since(w.started);
    match status {
      Status::Accepted => {}
      Status::Cleared | Status::Closed => {
        st.counters.captured += rest as u64;
        st.counters.cleared += rest as u64;
      }
      _ => self.drop_now(st, rest),
    }
    if w.padding && status != Status::Accepted {
      st.counters.padded += rest as u64;
    }
    if status == Status::Timeout {
      self.note_deadline(st, waited, rest);
    }
    let outcome = self.outcome(st, status, w.accepted, rest, waited);
    if w.rest.capacity() > st.spare_rest.capacity() {
      st.spare_rest = w.rest;
    }
    match w.join {
      Some((join, member)) => join.settled(member, &outcome),
      None => {
        st.pending.completions.push(Completion { id: w.id, outcome });
        self.touch(st);
      }
    }
  }

  /// Moves waiting captures into freed room, in order; settles those fully queued.
  pub(super) fn service_waiters(&self, st: &mut Input, now: Instant) {
    while let Some(mut w) = st.waiters.pop_front() {
      let free = st.queue.free_chunks();
      let used = self.feed(st, &w.rest[w.pos..], free);
      w.pos += used;
      w.accepted += used;
      if w.padding {
        st.counters.padded += used as u64;
      }
      if w.pos == w.rest.len() {
        // All it could queue in time is queued: the rest is past its deadline already.
        let status = if w.beyond == 0 {
          Status::Accepted
        } else {
          Status::Timeout
        };
        self.settle_waiter(st, w, status, now);
      } else {
        st.waiters.push_front(w);
        break;
      }
    }
  }

  pub(super) fn expire(&self, st: &mut Input, now: Instant) {
    if st.waiters.iter().all(|w| w.deadline > now) {
      return;
    }
    let waiters = std::mem::take(&mut st.waiters);
    for w in waiters {
      if w.deadline <= now {
        self.settle_waiter(st, w, Status::Timeout, now);
      } else {
        st.waiters.push_back(w);
      }
    }
    // The head may have changed: let the next waiter use any room.
    self.service_waiters(st, now);
  }

  /// Settles a waiting capture as `aborted`; None if it already settled (or if the source
  /// was busy past the lock bound: then it settles `aborted` through the bus).
  pub fn abort(&self, id: u64) -> Option<Outcome> {
    let Ok(mut guard) = self.input() else {
      self.defer(|d| d.aborts.push(id));
      return None;
    };
    let st = &mut *guard;
    let idx = st.waiters.iter().position(|w| w.id == id)?;
    let w = st.waiters.remove(idx).unwrap();
    let now = Instant::now();
    let rest = w.rest.len() - w.pos;
    self.drop_now(st, rest);
    if w.padding {
      st.counters.padded += rest as u64;
    }
    let o = self.outcome(
      st,
      Status::Aborted,
      w.accepted,
      rest,
      now.saturating_duration_since(w.started),
    );
    if let Some((join, member)) = &w.join {
      join.settled(*member, &o);
    }
    if idx == 0 {
      self.service_waiters(st, now);
    }
    Some(o)
  }
}

#[cfg(test)]
mod tests {
  use std::time::{Duration, Instant};

  use crate::events::Bus;
  use crate::options::{Consumer, SourceOptions};
  use crate::outcome::{CaptureResult, Status};
  use crate::queue::Overflow;
  use crate::source::{FrameRef, Read, Source};

  #[test]
  fn waiters_are_fed_in_order_and_expire_at_their_deadline() {
    let mut o = SourceOptions::new(8_000, 1).unwrap();
    o.overflow = Overflow::Wait;
    o.consumer = Consumer::Pull;
    o.queue_ms = 10;
    let bus = Bus::new();
    let s = Source::new(1, o, bus.clone()).unwrap();
    s.try_capture(FrameRef::i16(&[1; 80])).unwrap();
    let pending = |data: &[i16], ms| match s.capture(FrameRef::i16(data), Some(ms)).unwrap() {
      CaptureResult::Pending(id) => id,
      other => panic!("expected to wait, got {other:?}"),
    };
    let a = pending(&[2; 80], 60_000);
    let b = pending(&[3; 80], 5);
    // Reading frees the room: `a` moves in (and settles), `b` still waits behind it.
    assert_eq!(s.read(), Read::Chunk(vec![1; 80]));
    let settled: Vec<_> = bus.drain().into_iter().flat_map(|d| d.completions).collect();
    assert_eq!(settled.len(), 1);
    assert_eq!((settled[0].id, settled[0].outcome.status), (a, Status::Accepted));
    // `b`'s deadline passes on the next tick.
    s.tick(Instant::now() + Duration::from_millis(10), 1);
    let settled: Vec<_> = bus.drain().into_iter().flat_map(|d| d.completions).collect();
    assert_eq!((settled[0].id, settled[0].outcome.status), (b, Status::Timeout));
    assert_eq!(settled[0].outcome.dropped_samples, 80);
    assert_eq!(s.read(), Read::Chunk(vec![2; 80]));
  }
}
