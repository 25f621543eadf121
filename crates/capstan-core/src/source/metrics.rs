//! `metrics()`: one consistent snapshot of a source's counters, depth, waits and health.

use std::sync::atomic::Ordering;

use super::{Input, Source};
use crate::health::HealthState;
use crate::process::ProcessorStats;

/// A consistent snapshot of one source. Samples are per channel.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
  pub captured: u64,
  pub delivered: u64,
  pub queued: u64,
  pub dropped: u64,
  pub cleared: u64,
  /// Silence added by `flush()` (included in `captured`).
  pub padded: u64,
  pub underruns: u64,
  pub waiting_captures: u64,
  pub waiting_samples: u64,
  pub stalls: u64,
  pub outcomes: [u64; 7],
  pub capture_wait_p50_us: u64,
  pub capture_wait_p99_us: u64,
  pub capture_wait_max_us: u64,
  pub queued_ms: f64,
  pub playout_position: u64,
  pub health: HealthState,
  /// Chunks a sink refused (each also reported as a `SinkError` event).
  pub sink_errors: u64,
  /// Per processor; while the clock is processing, as it last published them.
  pub processors: Vec<ProcessorStats>,
}

/// A capture-wait percentile over immediate captures (0 µs) and the waits histogram.
fn wait_quantile(st: &Input, q: f64) -> u64 {
  let waited = st.wait_us.as_ref().map_or(0, |h| h.len());
  let total = st.immediate + waited;
  let rank = (q * total as f64).ceil() as u64;
  match &st.wait_us {
    Some(h) if rank > st.immediate => h.value_at_quantile((rank - st.immediate) as f64 / waited as f64),
    _ => 0,
  }
}

impl Source {
  /// A consistent snapshot. Never waits on a processing clock; if the input side is busy
  /// past the lock bound, the last snapshot taken.
  pub fn metrics(&self) -> Metrics {
    let Ok(st) = self.input() else {
      return self.cold.last.metrics.lock().clone().unwrap_or_default();
    };
    let contended = self.contended.load(Ordering::Relaxed);
    let c = &st.counters;
    let queued = st.queue.len_samples() + st.chunker.residue_len();
    let waiting: usize = st.waiters.iter().map(|w| w.rest.len() - w.pos + w.beyond).sum();
    let ch = self.opts.format.channels as u64;
    let m = Metrics {
      captured: (c.captured + contended) / ch,
      delivered: c.delivered / ch,
      queued: queued as u64 / ch,
      dropped: (c.dropped + contended) / ch,
      cleared: c.cleared / ch,
      padded: c.padded / ch,
      underruns: c.underruns,
      waiting_captures: st.waiters.len() as u64,
      waiting_samples: waiting as u64 / ch,
      stalls: st.health.stalls,
      outcomes: c.outcomes,
      capture_wait_p50_us: wait_quantile(&st, 0.5),
      capture_wait_p99_us: wait_quantile(&st, 0.99),
      capture_wait_max_us: st.wait_us.as_ref().map_or(0, |h| h.max()),
      queued_ms: self.queued_ms(&st),
      playout_position: c.delivered / ch,
      health: st.health.state(),
      sink_errors: c.sink_errors,
      processors: Vec::new(),
    };
    drop(st);
    let m = Metrics {
      processors: self.processor_stats(),
      ..m
    };
    *self.cold.last.metrics.lock() = Some(m.clone());
    m
  }
}
