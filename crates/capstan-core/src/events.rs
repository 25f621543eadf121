//! The one road from engine threads back to JavaScript: per-source pending events are
//! coalesced in place, and the bus wakes its owner once per batch, never per chunk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::health::Transition;
use crate::outcome::Outcome;
use crate::process::ChainEvent;
use crate::queue::Overflow;

/// A health or traffic signal for one source. Counters in `metrics()` carry the same
/// truth; events only say when to look.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
  Health(Transition),
  /// Samples per channel dropped by the overflow policy since the last report.
  Overflow {
    dropped_samples: u64,
    policy: Overflow,
  },
  /// Underrun ticks since the last underrun report.
  Underrun {
    ticks: u64,
  },
  /// Captures that hit their deadline since the last report: the longest wait and the
  /// samples per channel they could not queue.
  Deadline {
    count: u64,
    waited_ms: f64,
    dropped_samples: u64,
  },
  /// A native processor failed (error, panic, wrong output); the chunk passed through it
  /// unchanged. `bypassed` from the failure that made the chain skip it.
  ProcessorError {
    processor: String,
    message: String,
    consecutive: u32,
    bypassed: bool,
  },
  /// A processor overran its time budget; `count` is its overruns so far (coalesced).
  ProcessorSlow {
    processor: String,
    elapsed_us: f64,
    budget_us: f64,
    count: u64,
  },
  /// A VAD processor flipped: `position_ms` in the source's delivered audio, `at` wall time.
  Vad {
    speaking: bool,
    position_ms: f64,
    at: f64,
  },
  /// A sink refused a chunk (lost after being counted delivered); `metrics().sink_errors`
  /// counts them all.
  SinkError {
    message: String,
  },
  /// A reader waiting on `frames()` can read again.
  Readable,
  /// An encoded stream has bytes for a waiting reader, a finished segment or an error.
  Encoded,
  Closed,
}

impl From<ChainEvent> for Event {
  /// A processor chain's report as the event callers see (`at`: now, wall time).
  fn from(e: ChainEvent) -> Self {
    match e {
      ChainEvent::Failed {
        name,
        message,
        consecutive,
        bypassed,
        ..
      } => Event::ProcessorError {
        processor: name,
        message,
        consecutive,
        bypassed,
      },
      ChainEvent::OverBudget {
        name,
        elapsed_us,
        budget_us,
        count,
        ..
      } => Event::ProcessorSlow {
        processor: name,
        elapsed_us,
        budget_us,
        count,
      },
      ChainEvent::Vad { speaking, at_ms, .. } => Event::Vad {
        speaking,
        position_ms: at_ms,
        at: crate::health::epoch_ms(),
      },
    }
  }
}

/// A waiting capture that settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
  pub id: u64,
  pub outcome: Outcome,
}

/// Everything one source had pending at a drain.
#[derive(Debug, Default)]
pub struct Drained {
  pub source_id: u64,
  pub events: Vec<Event>,
  pub completions: Vec<Completion>,
  /// `waitForPlayout` calls whose mark was reached.
  pub playouts: Vec<u64>,
}

/// Whatever the bus collects reports from (a source). A trait, so the bus does not depend
/// on the source and the source can depend on the bus.
pub trait Reporter: Send + Sync {
  fn id(&self) -> u64;
  /// Everything pending, coalesced; leaves nothing behind.
  fn take_pending(&self) -> Drained;
}

/// Called (from any thread) when the bus goes from empty to non-empty.
pub type Notifier = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Bus {
  dirty: Mutex<Vec<Weak<dyn Reporter>>>,
  signaled: AtomicBool,
  notifier: RwLock<Option<Notifier>>,
}

impl Bus {
  pub fn new() -> Arc<Self> {
    Arc::new(Bus::default())
  }

  pub fn set_notifier(&self, n: Option<Notifier>) {
    *self.notifier.write() = n;
  }

  /// Lists a source with pending events; wakes the owner once until the next drain.
  pub(crate) fn mark(&self, source: Weak<dyn Reporter>) {
    self.dirty.lock().push(source);
    if !self.signaled.swap(true, Ordering::AcqRel) {
      if let Some(n) = self.notifier.read().as_ref() {
        n();
      }
    }
  }

  /// Takes every pending event, completion and playout mark.
  pub fn drain(&self) -> Vec<Drained> {
    self.drain_up_to(usize::MAX).0
  }

  /// Takes what at most `max_sources` sources have pending (oldest first), so a caller
  /// on an event loop can spread a large batch over several turns. The flag says whether
  /// sources were left for a later call.
  pub fn drain_up_to(&self, max_sources: usize) -> (Vec<Drained>, bool) {
    self.signaled.store(false, Ordering::Release);
    let (taken, more) = {
      let mut dirty = self.dirty.lock();
      if dirty.len() <= max_sources {
        (std::mem::take(&mut *dirty), false)
      } else {
        (dirty.drain(..max_sources).collect::<Vec<_>>(), true)
      }
    };
    let drained = taken
      .into_iter()
      .filter_map(|w| w.upgrade())
      .map(|s| s.take_pending())
      .collect();
    (drained, more)
  }
}
