//! A processor that misbehaves on purpose, for the fault matrix: on every `every_n`-th call
//! it sleeps `ms` (slow), returns `Err` (error) or panics (panic). Its other calls pass the
//! chunk through. Test-only: JavaScript reaches it through the internal kind `'__fault'`,
//! which the public API neither documents nor re-exports.
//!
//! A failing call first writes a full chunk of garbage into `out`, so a chain that used
//! the output of a failed call (instead of passing its input on unchanged) shows.

use std::time::Duration;

use super::processor::Processor;
use crate::error::{CoreError, Result};

/// What a fault processor does on the calls its schedule hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
  /// Sleeps, then passes the chunk through: slower than real time, never failing.
  Sleep,
  /// Returns `Err`.
  Error,
  /// Panics (the chain catches it).
  Panic,
}

impl FaultMode {
  pub fn parse(s: &str) -> Option<Self> {
    Some(match s {
      "sleep" => FaultMode::Sleep,
      "error" => FaultMode::Error,
      "panic" => FaultMode::Panic,
      _ => return None,
    })
  }

  pub fn as_str(self) -> &'static str {
    match self {
      FaultMode::Sleep => "sleep",
      FaultMode::Error => "error",
      FaultMode::Panic => "panic",
    }
  }
}

/// The longest sleep a fault processor may be asked for (a slow processor, not a hung one).
pub const MAX_FAULT_MS: u32 = 10_000;

/// The sample a failing call leaves in `out`: never what the tests feed.
pub const GARBAGE: i16 = i16::MIN;

pub struct Fault {
  mode: FaultMode,
  every_n: u32,
  per_hit: Duration,
  /// Calls made so far. Survives `reset()` (which the chain calls after a panic and on
  /// re-enabling), so the schedule is a function of the calls made, nothing else.
  calls: u64,
}

impl Fault {
  pub fn new(mode: FaultMode, every_n: u32, ms: u32) -> Result<Self> {
    if every_n == 0 {
      return Err(CoreError::InvalidOption("__fault: everyN must be at least 1".into()));
    }
    if ms > MAX_FAULT_MS {
      return Err(CoreError::InvalidOption(format!(
        "__fault: ms must be at most {MAX_FAULT_MS}, got {ms}"
      )));
    }
    Ok(Fault {
      mode,
      every_n,
      per_hit: Duration::from_millis(ms as u64),
      calls: 0,
    })
  }
}

impl Processor for Fault {
  fn name(&self) -> &str {
    match self.mode {
      FaultMode::Sleep => "fault-sleep",
      FaultMode::Error => "fault-error",
      FaultMode::Panic => "fault-panic",
    }
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String> {
    self.calls += 1;
    if self.calls % self.every_n as u64 != 0 {
      out.extend_from_slice(input);
      return Ok(());
    }
    match self.mode {
      FaultMode::Sleep => {
        std::thread::sleep(self.per_hit);
        out.extend_from_slice(input);
        Ok(())
      }
      FaultMode::Error => {
        out.resize(input.len(), GARBAGE);
        Err(format!("fault processor: error on call {}", self.calls))
      }
      FaultMode::Panic => {
        out.resize(input.len(), GARBAGE);
        panic!("fault processor: panic on call {}", self.calls);
      }
    }
  }

  fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::format::Format;
  use crate::process::{Chain, ChainEvent};

  #[test]
  fn options_are_validated() {
    assert_eq!(
      Fault::new(FaultMode::Error, 0, 0).err().unwrap().code(),
      "ERR_INVALID_OPTION"
    );
    assert_eq!(
      Fault::new(FaultMode::Sleep, 1, MAX_FAULT_MS + 1).err().unwrap().code(),
      "ERR_INVALID_OPTION"
    );
    for m in ["sleep", "error", "panic"] {
      assert_eq!(FaultMode::parse(m).unwrap().as_str(), m);
    }
    assert_eq!(FaultMode::parse("boom"), None);
  }

  /// Runs `chunks` chunks through a chain of one fault processor; returns whether every
  /// output chunk equalled its input, and the events.
  fn run(mode: FaultMode, every_n: u32, bypass_after: u32, chunks: usize) -> (bool, Vec<ChainEvent>, Chain) {
    let f = Format::new(16_000, 1).unwrap();
    let mut chain = Chain::new(f, bypass_after).unwrap();
    chain.push(Box::new(Fault::new(mode, every_n, 0).unwrap())).unwrap();
    let mut events = Vec::new();
    let mut unchanged = true;
    for i in 0..chunks {
      let input: Vec<i16> = (0..f.chunk_len()).map(|j| (i * 1000 + j) as i16).collect();
      let out = chain.process(&input, &mut events).unwrap();
      unchanged &= out == &input[..];
    }
    (unchanged, events, chain)
  }

  #[test]
  fn failures_pass_the_chunk_through_unchanged_and_bypass_after_consecutive_ones() {
    for mode in [FaultMode::Error, FaultMode::Panic] {
      let (unchanged, events, chain) = run(mode, 1, 3, 10);
      assert!(unchanged, "{mode:?}: a failed call's garbage reached the output");
      let s = &chain.stats()[0];
      assert_eq!((s.calls, s.failures, s.bypassed), (3, 3, true), "{mode:?}");
      let flags: Vec<(u32, bool)> = events
        .iter()
        .map(|e| match e {
          ChainEvent::Failed {
            consecutive, bypassed, ..
          } => (*consecutive, *bypassed),
          other => panic!("unexpected {other:?}"),
        })
        .collect();
      assert_eq!(flags, vec![(1, false), (2, false), (3, true)], "{mode:?}");
    }
  }

  #[test]
  fn failures_that_are_not_consecutive_never_bypass() {
    let (unchanged, events, chain) = run(FaultMode::Panic, 2, 2, 10);
    assert!(unchanged);
    let s = &chain.stats()[0];
    assert_eq!(
      (s.calls, s.failures, s.consecutive_failures, s.bypassed),
      (10, 5, 1, false)
    );
    assert_eq!(events.len(), 5);
  }

  #[test]
  fn re_enabling_brings_a_bypassed_fault_back_on_the_same_schedule() {
    let (_, _, mut chain) = run(FaultMode::Error, 1, 2, 4);
    assert!(chain.is_bypassed(0));
    chain.set_enabled(0, true).unwrap();
    let f = chain.input_format();
    let mut events = Vec::new();
    chain.process(&vec![1; f.chunk_len()], &mut events).unwrap();
    let s = &chain.stats()[0];
    assert_eq!((s.calls, s.failures, s.bypassed), (3, 3, false));
  }
}
