//! Captures waiting for room under the `wait` policy: fed in FIFO order as the consumer
//! frees room, settled when fully queued, at their deadline, on abort, clear or close.

use std::time::Instant;

use super::{Input, Source};
use crate::events::Completion;
use crate::outcome::{Outcome, Status};

pub(super) struct Waiter {
  pub(super) id: u64,
  pub(super) rest: Vec<i16>,
  pub(super) pos: usize,
  /// Interleaved samples of this frame already queued.
  pub(super) accepted: usize,
  pub(super) started: Instant,
  pub(super) deadline: Instant,
  /// Silence from `flush()`: counted in `padded` as it is taken into custody.
  pub(super) padding: bool,
}

impl Source {
  pub(super) fn settle_waiter(&self, st: &mut Input, w: Waiter, status: Status, now: Instant) {
    let rest = w.rest.len() - w.pos;
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
    st.pending.completions.push(Completion { id: w.id, outcome });
    if w.rest.capacity() > st.spare_rest.capacity() {
      st.spare_rest = w.rest;
    }
    self.touch(st);
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
        self.settle_waiter(st, w, Status::Accepted, now);
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
    if idx == 0 {
      self.service_waiters(st, now);
    }
    Some(o)
  }
}
