//! `NativeLedger`: the chain's bookkeeping for processors that run in JavaScript.

use std::time::Duration;

use capstan_core::options::processor_limits;
use capstan_core::process::Ledgers;
use capstan_core::Event;
use napi_derive::napi;

use crate::convert::{js_err, JsEvent, JsProcessorStats, Result};

#[napi]
pub struct NativeLedger {
  inner: Ledgers,
}

#[napi]
impl NativeLedger {
  /// One ledger per processor name, with the source's `processorBypassAfter` and
  /// `processorBudgetMs` (null: the core's defaults, as for native processors).
  #[napi(constructor, catch_unwind)]
  pub fn new(names: Vec<String>, bypass_after: Option<f64>, budget_ms: Option<f64>) -> Result<Self> {
    let (bypass_after, budget) = processor_limits(bypass_after, budget_ms).map_err(js_err)?;
    Ok(NativeLedger {
      inner: Ledgers::new(&names, bypass_after, budget).map_err(js_err)?,
    })
  }

  /// Whether processor `index` should be called (enabled and not bypassed).
  #[napi(catch_unwind)]
  pub fn active(&self, index: u32) -> Result<bool> {
    Ok(self.inner.get(index as usize).map_err(js_err)?.active())
  }

  #[napi(catch_unwind)]
  pub fn bypassed(&self, index: u32) -> Result<bool> {
    Ok(self.inner.get(index as usize).map_err(js_err)?.is_bypassed())
  }

  /// Records one call: its duration and, if it failed, why. Returns the events to emit.
  #[napi(catch_unwind)]
  pub fn record(&mut self, index: u32, elapsed_us: f64, failure: Option<String>) -> Result<Vec<JsEvent>> {
    let elapsed = Duration::from_secs_f64(elapsed_us.max(0.0) / 1e6);
    let events = self.inner.record(index as usize, elapsed, failure).map_err(js_err)?;
    Ok(
      events
        .into_iter()
        .map(Event::from)
        // JS processors have no VAD signal; failures and overruns are what they report.
        .filter(|e| !matches!(e, Event::Vad { .. }))
        .map(JsEvent::from)
        .collect(),
    )
  }

  #[napi(catch_unwind)]
  pub fn set_enabled(&mut self, index: u32, enabled: bool) -> Result<()> {
    self.inner.get_mut(index as usize).map_err(js_err)?.set_enabled(enabled);
    Ok(())
  }

  #[napi(catch_unwind)]
  pub fn stats(&self) -> Vec<JsProcessorStats> {
    self.inner.stats().into_iter().map(Into::into).collect()
  }
}
