//! What a source has to report, coalesced in place until the bus drains it.

use std::sync::Weak;
use std::time::Duration;

use super::{Input, Source};
use crate::events::{Completion, Drained, Event, Reporter};
use crate::health::Transition;
use crate::process::ChainEvent;

/// Health transitions kept per drain; older ones in a storm are folded away.
const MAX_PENDING_TRANSITIONS: usize = 8;
/// Processor failures kept per drain (each names its processor; counters keep the rest).
const MAX_PENDING_PROCESSOR_ERRORS: usize = 16;
/// Sink failures kept per drain (`metrics().sink_errors` counts them all).
const MAX_PENDING_SINK_ERRORS: usize = 16;
/// VAD flips kept per drain: more than a second of flips at 10 ms per chunk is noise.
const MAX_PENDING_VAD: usize = 64;

/// Captures that hit their deadline since the last report.
#[derive(Default)]
pub(super) struct DeadlineReport {
  count: u64,
  /// The longest of their waits.
  longest_wait_ms: f64,
  /// Samples per channel they could not queue.
  dropped_samples: u64,
}

#[derive(Default)]
pub(super) struct Pending {
  /// On the bus's list already (cleared by the drain).
  pub(super) listed: bool,
  pub(super) health: Vec<Transition>,
  pub(super) overflow_dropped: u64,
  pub(super) underrun_ticks: u64,
  pub(super) underrun_report: bool,
  pub(super) deadline: Option<DeadlineReport>,
  pub(super) readable: bool,
  pub(super) encoded: bool,
  pub(super) closed: bool,
  pub(super) completions: Vec<Completion>,
  pub(super) playouts: Vec<u64>,
  pub(super) processor_errors: Vec<Event>,
  pub(super) sink_errors: Vec<Event>,
  pub(super) vad: Vec<Event>,
  pub(super) slow: Option<Event>,
}

/// Keeps the newest `max` of a storm of reports.
fn push_bounded(list: &mut Vec<Event>, max: usize, ev: Event) {
  if list.len() >= max {
    list.remove(0);
  }
  list.push(ev);
}

impl Source {
  pub(super) fn touch(&self, st: &mut Input) {
    if !st.pending.listed {
      st.pending.listed = true;
      self.bus.mark(self.me.clone() as Weak<dyn Reporter>);
    }
  }

  pub(super) fn push_transition(&self, st: &mut Input, t: Option<Transition>) {
    if let Some(t) = t {
      if st.pending.health.len() >= MAX_PENDING_TRANSITIONS {
        st.pending.health.remove(0);
      }
      st.pending.health.push(t);
      self.touch(st);
    }
  }

  pub(super) fn note_overflow(&self, st: &mut Input, dropped: usize) {
    if dropped > 0 {
      st.pending.overflow_dropped += self.per_ch(dropped);
      self.touch(st);
    }
  }

  pub(super) fn note_deadline(&self, st: &mut Input, waited: Duration, dropped: usize) {
    let ms = waited.as_secs_f64() * 1000.0;
    let per_ch = self.per_ch(dropped);
    let d = st.pending.deadline.get_or_insert_with(DeadlineReport::default);
    d.count += 1;
    d.longest_wait_ms = d.longest_wait_ms.max(ms);
    d.dropped_samples += per_ch;
    self.touch(st);
  }

  pub(super) fn note_chain_events(&self, st: &mut Input, events: &mut Vec<ChainEvent>) {
    if events.is_empty() {
      return;
    }
    for e in events.drain(..) {
      match Event::from(e) {
        ev @ Event::ProcessorError { .. } => {
          push_bounded(&mut st.pending.processor_errors, MAX_PENDING_PROCESSOR_ERRORS, ev)
        }
        ev @ Event::Vad { .. } => push_bounded(&mut st.pending.vad, MAX_PENDING_VAD, ev),
        // Budget overruns coalesce: the latest carries the running count.
        ev => st.pending.slow = Some(ev),
      }
    }
    self.touch(st);
  }

  /// Sink failures: each chunk it refused was lost after being counted delivered.
  pub(super) fn note_sink_errors(&self, st: &mut Input, errors: &mut Vec<String>) {
    if errors.is_empty() {
      return;
    }
    for message in errors.drain(..) {
      st.counters.sink_errors += 1;
      push_bounded(
        &mut st.pending.sink_errors,
        MAX_PENDING_SINK_ERRORS,
        Event::SinkError { message },
      );
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
    let Ok(mut st) = self.input() else {
      // Busy past the bound: stay listed, so a later drain collects it all.
      self.bus.mark(self.me.clone() as Weak<dyn Reporter>);
      return Drained {
        source_id: self.id,
        ..Drained::default()
      };
    };
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
    if let Some(d) = p.deadline {
      events.push(Event::Deadline {
        count: d.count,
        waited_ms: d.longest_wait_ms,
        dropped_samples: d.dropped_samples,
      });
    }
    events.extend(p.processor_errors);
    events.extend(p.sink_errors);
    events.extend(p.slow);
    events.extend(p.vad);
    if p.readable {
      events.push(Event::Readable);
    }
    if p.encoded {
      events.push(Event::Encoded);
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
