//! What the chain and the ledgers both speak: the events a processor call produces, the
//! counters a processor reports, and the bypass limits. Kept apart so `chain` and `ledger`
//! each depend on it and not on each other.

use crate::error::{CoreError, Result};

/// Consecutive failures before a processor is bypassed, unless the caller says otherwise.
pub const DEFAULT_BYPASS_AFTER: u32 = 5;
pub const MAX_BYPASS_AFTER: u32 = 1_000_000;

/// Something the caller should hear about from one `process` call.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainEvent {
  /// The processor returned an error, panicked or produced a wrong-length chunk; the chunk
  /// passed through it unchanged. `bypassed` is true from the failure that bypassed it on.
  Failed {
    index: usize,
    name: String,
    message: String,
    consecutive: u32,
    bypassed: bool,
  },
  /// The processor took longer than its budget; `count` is its overruns so far.
  OverBudget {
    index: usize,
    name: String,
    elapsed_us: f64,
    budget_us: f64,
    count: u64,
  },
  /// A VAD flipped; `at_ms` is the stream position of the chunk's start (10 ms per chunk).
  Vad { index: usize, speaking: bool, at_ms: f64 },
}

/// One processor's counters, as `metrics().processors` reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorStats {
  pub name: String,
  pub enabled: bool,
  pub bypassed: bool,
  /// Calls made (a disabled or bypassed processor is not called).
  pub calls: u64,
  pub failures: u64,
  pub consecutive_failures: u32,
  pub over_budget: u64,
  /// Processing time per chunk; the histogram keeps one significant digit (±6%).
  pub p50_us: f64,
  pub p90_us: f64,
  pub p99_us: f64,
  pub max_us: f64,
  /// The processor's own measurements ([`Processor::health`](super::Processor::health)).
  pub health: Vec<(&'static str, f64)>,
}

pub(crate) fn check_bypass_after(bypass_after: u32) -> Result<()> {
  if !(1..=MAX_BYPASS_AFTER).contains(&bypass_after) {
    return Err(CoreError::InvalidOption(format!(
      "processorBypassAfter must be 1..={MAX_BYPASS_AFTER}, got {bypass_after}"
    )));
  }
  Ok(())
}

pub(crate) fn out_of_range(index: usize, len: usize) -> CoreError {
  CoreError::InvalidOption(format!("processor index {index} out of range (chain has {len})"))
}
