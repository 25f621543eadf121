//! What a source has to report, coalesced in place until the bus drains it.

use std::sync::Weak;
use std::time::Duration;

use super::{Source, State};
use crate::events::{Completion, Drained, Event, Reporter};
use crate::health::Transition;
use crate::process::ChainEvent;

/// Health transitions kept per drain; older ones in a storm are folded away.
const MAX_PENDING_TRANSITIONS: usize = 8;

#[derive(Default)]
pub(super) struct Pending {
  pub(super) listed: bool,
  pub(super) health: Vec<Transition>,
  pub(super) overflow_dropped: u64,
  pub(super) underrun_ticks: u64,
  pub(super) underrun_report: bool,
  pub(super) deadline: Option<(u64, f64, u64)>,
  pub(super) readable: bool,
  pub(super) closed: bool,
  pub(super) completions: Vec<Completion>,
  pub(super) playouts: Vec<u64>,
  pub(super) processor_errors: Vec<Event>,
  pub(super) vad: Vec<Event>,
  pub(super) slow: Option<Event>,
}

impl Source {
  pub(super) fn touch(&self, st: &mut State) {
    if !st.pending.listed {
      st.pending.listed = true;
      self.bus.mark(self.me.clone() as Weak<dyn Reporter>);
    }
  }

  pub(super) fn push_transition(&self, st: &mut State, t: Option<Transition>) {
    if let Some(t) = t {
      if st.pending.health.len() >= MAX_PENDING_TRANSITIONS {
        st.pending.health.remove(0);
      }
      st.pending.health.push(t);
      self.touch(st);
    }
  }

  pub(super) fn note_overflow(&self, st: &mut State, dropped: usize) {
    if dropped > 0 {
      st.pending.overflow_dropped += self.per_ch(dropped);
      self.touch(st);
    }
  }

  pub(super) fn note_deadline(&self, st: &mut State, waited: Duration, dropped: usize) {
    let ms = waited.as_secs_f64() * 1000.0;
    let d = st.pending.deadline.get_or_insert((0, 0.0, 0));
    d.0 += 1;
    d.1 = d.1.max(ms);
    d.2 += (dropped / self.opts.format.channels as usize) as u64;
    self.touch(st);
  }

  pub(super) fn note_chain_events(&self, st: &mut State, events: &mut Vec<ChainEvent>) {
    if events.is_empty() {
      return;
    }
    for e in events.drain(..) {
      match Event::from(e) {
        ev @ Event::ProcessorError { .. } => {
          if st.pending.processor_errors.len() >= MAX_PENDING_TRANSITIONS * 2 {
            st.pending.processor_errors.remove(0);
          }
          st.pending.processor_errors.push(ev);
        }
        ev @ Event::Vad { .. } => {
          if st.pending.vad.len() >= 64 {
            st.pending.vad.remove(0);
          }
          st.pending.vad.push(ev);
        }
        // Budget overruns coalesce: the latest carries the running count.
        ev => st.pending.slow = Some(ev),
      }
    }
    self.touch(st);
  }
}

impl Reporter for Source {
  fn id(&self) -> u64 {
    self.id
  }

  /// Hands the bus everything pending, coalesced.
  fn take_pending(&self) -> Drained {
    let mut st = self.lock();
    let p = std::mem::take(&mut st.pending);
    let mut events = Vec::new();
    events.extend(p.health.into_iter().map(Event::Health));
    if p.overflow_dropped > 0 {
      events.push(Event::Overflow {
        dropped_samples: p.overflow_dropped,
        policy: self.opts.overflow,
      });
    }
    if p.underrun_report {
      events.push(Event::Underrun {
        ticks: p.underrun_ticks,
      });
    }
    if let Some((count, waited_ms, dropped_samples)) = p.deadline {
      events.push(Event::Deadline {
        count,
        waited_ms,
        dropped_samples,
      });
    }
    events.extend(p.processor_errors);
    events.extend(p.slow);
    events.extend(p.vad);
    if p.readable {
      events.push(Event::Readable);
    }
    if p.closed {
      events.push(Event::Closed);
    }
    Drained {
      source_id: self.id,
      events,
      completions: p.completions,
      playouts: p.playouts,
    }
  }
}
