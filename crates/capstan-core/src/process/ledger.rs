//! One processor's bookkeeping: calls, failures, bypass after consecutive failures, time
//! budget and timing percentiles. Shared by the native [`Chain`](super::Chain) and by
//! processors that run outside the engine (JavaScript), so both follow the same rules.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::stats::{check_bypass_after, out_of_range, ChainEvent, ProcessorStats};
use crate::error::Result;

/// Processing times above this are recorded as this (a processor that slow is broken anyway).
const MAX_RECORDED_NS: u64 = 1_000_000_000;

pub struct Ledger {
  name: String,
  enabled: bool,
  bypassed: bool,
  calls: u64,
  failures: u64,
  consecutive: u32,
  over_budget: u64,
  budget: Option<Duration>,
  /// Nanoseconds per call. One significant digit keeps it at ~2 KB per processor, which
  /// matters at thousands of sources.
  time_ns: Histogram<u32>,
}

impl Ledger {
  pub fn new(name: impl Into<String>) -> Self {
    Ledger {
      name: name.into(),
      enabled: true,
      bypassed: false,
      calls: 0,
      failures: 0,
      consecutive: 0,
      over_budget: 0,
      budget: None,
      time_ns: Histogram::new_with_bounds(1, MAX_RECORDED_NS, 1).expect("histogram bounds"),
    }
  }

  pub fn name(&self) -> &str {
    &self.name
  }

  /// Whether the processor should be called: enabled and not bypassed.
  pub fn active(&self) -> bool {
    self.enabled && !self.bypassed
  }

  pub fn is_enabled(&self) -> bool {
    self.enabled
  }

  pub fn is_bypassed(&self) -> bool {
    self.bypassed
  }

  /// Records one call that took `elapsed` and failed with `failure` (None: it worked).
  /// Appends the events the caller should report; returns whether it worked.
  pub fn record(
    &mut self,
    index: usize,
    elapsed: Duration,
    failure: Option<String>,
    bypass_after: u32,
    events: &mut Vec<ChainEvent>,
  ) -> bool {
    self.calls += 1;
    self
      .time_ns
      .saturating_record((elapsed.as_nanos() as u64).clamp(1, MAX_RECORDED_NS));
    if let Some(budget) = self.budget.filter(|b| elapsed > *b) {
      self.over_budget += 1;
      events.push(ChainEvent::OverBudget {
        index,
        name: self.name.clone(),
        elapsed_us: elapsed.as_secs_f64() * 1e6,
        budget_us: budget.as_secs_f64() * 1e6,
        count: self.over_budget,
      });
    }
    let Some(message) = failure else {
      self.consecutive = 0;
      return true;
    };
    self.failures += 1;
    self.consecutive += 1;
    if self.consecutive >= bypass_after {
      self.bypassed = true;
    }
    events.push(ChainEvent::Failed {
      index,
      name: self.name.clone(),
      message,
      consecutive: self.consecutive,
      bypassed: self.bypassed,
    });
    false
  }

  /// Disabling skips the processor; enabling clears its consecutive failures and its
  /// bypass. Returns whether it comes back after being skipped (its history is stale).
  pub fn set_enabled(&mut self, enabled: bool) -> bool {
    let returning = enabled && (!self.enabled || self.bypassed);
    if enabled {
      self.bypassed = false;
      self.consecutive = 0;
    }
    self.enabled = enabled;
    returning
  }

  pub fn set_budget(&mut self, budget: Option<Duration>) {
    self.budget = budget;
  }

  pub fn stats(&self) -> ProcessorStats {
    let us = |ns: u64| ns as f64 / 1000.0;
    ProcessorStats {
      name: self.name.clone(),
      enabled: self.enabled,
      bypassed: self.bypassed,
      calls: self.calls,
      failures: self.failures,
      consecutive_failures: self.consecutive,
      over_budget: self.over_budget,
      p50_us: us(self.time_ns.value_at_quantile(0.5)),
      p90_us: us(self.time_ns.value_at_quantile(0.9)),
      p99_us: us(self.time_ns.value_at_quantile(0.99)),
      max_us: us(self.time_ns.max()),
      health: Vec::new(),
    }
  }
}

/// Ledgers for processors that run outside the engine (JavaScript processors on the JS
/// thread): the caller runs each processor and reports here; the rules are the chain's.
pub struct Ledgers {
  bypass_after: u32,
  items: Vec<Ledger>,
}

impl Ledgers {
  pub fn new(names: &[String], bypass_after: u32, budget: Option<Duration>) -> Result<Self> {
    check_bypass_after(bypass_after)?;
    let items = names
      .iter()
      .map(|n| {
        let mut l = Ledger::new(n.clone());
        l.set_budget(budget);
        l
      })
      .collect();
    Ok(Ledgers { bypass_after, items })
  }

  pub fn get(&self, index: usize) -> Result<&Ledger> {
    self
      .items
      .get(index)
      .ok_or_else(|| out_of_range(index, self.items.len()))
  }

  pub fn get_mut(&mut self, index: usize) -> Result<&mut Ledger> {
    let len = self.items.len();
    self.items.get_mut(index).ok_or_else(|| out_of_range(index, len))
  }

  /// See [`Ledger::record`].
  pub fn record(&mut self, index: usize, elapsed: Duration, failure: Option<String>) -> Result<Vec<ChainEvent>> {
    let bypass_after = self.bypass_after;
    let mut events = Vec::new();
    self
      .get_mut(index)?
      .record(index, elapsed, failure, bypass_after, &mut events);
    Ok(events)
  }

  pub fn stats(&self) -> Vec<ProcessorStats> {
    self.items.iter().map(Ledger::stats).collect()
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn ledgers_bypass_after_consecutive_failures_and_come_back() {
    let mut l = Ledgers::new(&["js".into()], 2, Some(Duration::from_millis(1))).unwrap();
    assert!(l.record(0, Duration::from_micros(10), None).unwrap().is_empty());
    let e = l.record(0, Duration::from_micros(10), Some("boom".into())).unwrap();
    assert!(matches!(
      &e[0],
      ChainEvent::Failed {
        consecutive: 1,
        bypassed: false,
        ..
      }
    ));
    let e = l.record(0, Duration::from_millis(2), Some("boom".into())).unwrap();
    assert_eq!(e.len(), 2, "over budget and failed: {e:?}");
    assert!(matches!(
      &e[1],
      ChainEvent::Failed {
        consecutive: 2,
        bypassed: true,
        ..
      }
    ));
    assert!(!l.get(0).unwrap().active());
    assert!(l.get_mut(0).unwrap().set_enabled(true));
    assert!(l.get(0).unwrap().active());
    let s = &l.stats()[0];
    assert_eq!(
      (s.calls, s.failures, s.consecutive_failures, s.over_budget),
      (3, 2, 0, 1)
    );
    assert!(l.record(5, Duration::ZERO, None).is_err());
    assert!(Ledgers::new(&[], 0, None).is_err());
  }
}
