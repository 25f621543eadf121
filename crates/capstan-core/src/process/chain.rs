//! Runs processors in order on one 10 ms chunk and keeps the audio flowing whatever they do:
//! an `Err`, a panic or a wrong-length chunk is a failure, the chunk passes through
//! unchanged, the failure is counted and reported, and after `bypass_after` consecutive
//! failures the processor is bypassed until it is enabled again. Each processor is timed
//! into a small histogram and checked against an optional budget.

use std::any::Any;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::ledger::Ledger;
use super::processor::{round_i16, Processor, Signal};
use super::spec::Spec;
use super::stats::{check_bypass_after, out_of_range, ChainEvent, ProcessorStats};
use crate::error::{CoreError, Result};
use crate::format::{Format, CHUNK_MS};

struct Slot {
  proc: Box<dyn Processor>,
  input: Format,
  output: Format,
  ledger: Ledger,
}

pub struct Chain {
  input: Format,
  output: Format,
  bypass_after: u32,
  slots: Vec<Slot>,
  /// The chunk as it moves down the chain, and the buffer the next processor writes into.
  cur: Vec<i16>,
  next: Vec<i16>,
  chunks: u64,
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn Any + Send)) -> String {
  if let Some(s) = payload.downcast_ref::<&str>() {
    s.to_string()
  } else if let Some(s) = payload.downcast_ref::<String>() {
    s.clone()
  } else {
    "non-string panic payload".into()
  }
}

/// Converts a chunk to another format when a format-changing processor is skipped, so the
/// chain's output stays exact 10 ms chunks of its output format: linear interpolation
/// within the chunk, channels averaged down to mono or repeated up. A stopgap for a broken
/// or disabled resampler, not a resampler.
fn conform(input: &[i16], from: Format, to: Format, out: &mut Vec<i16>) {
  out.clear();
  let (fi, fo) = (from.chunk_frames(), to.chunk_frames());
  let (ci, co) = (from.channels as usize, to.channels as usize);
  let at = |frame: usize, c: usize| -> f64 {
    let f = &input[frame * ci..frame * ci + ci];
    if co == 1 && ci > 1 {
      f.iter().map(|&s| s as f64).sum::<f64>() / ci as f64
    } else {
      f[c % ci] as f64
    }
  };
  for j in 0..fo {
    let pos = j as f64 * fi as f64 / fo as f64;
    let i0 = pos as usize;
    let i1 = (i0 + 1).min(fi - 1);
    let t = pos - i0 as f64;
    for c in 0..co {
      let (a, b) = (at(i0, c), at(i1, c));
      out.push(round_i16(a + (b - a) * t));
    }
  }
}

impl Chain {
  /// An empty chain (chunks pass through) for chunks of `input`.
  pub fn new(input: Format, bypass_after: u32) -> Result<Self> {
    check_bypass_after(bypass_after)?;
    Ok(Chain {
      input,
      output: input,
      bypass_after,
      slots: Vec::new(),
      cur: Vec::with_capacity(input.chunk_len()),
      next: Vec::with_capacity(input.chunk_len()),
      chunks: 0,
    })
  }

  /// Builds each spec for the format the previous one produces.
  pub fn from_specs(input: Format, specs: &[Spec], bypass_after: u32) -> Result<Self> {
    let mut chain = Chain::new(input, bypass_after)?;
    for s in specs {
      let p = s.build(chain.output)?;
      chain.push(p)?;
    }
    Ok(chain)
  }

  /// Appends a processor fed with the chain's current output format; returns its index.
  pub fn push(&mut self, proc: Box<dyn Processor>) -> Result<usize> {
    let input = self.output;
    let name = proc.name().to_string();
    if let Some(want) = proc.input_format() {
      if want != input {
        return Err(CoreError::InvalidOption(format!(
          "processor '{name}' was built for {} Hz / {} ch but receives {} Hz / {} ch",
          want.sample_rate, want.channels, input.sample_rate, input.channels
        )));
      }
    }
    let out = proc.output_format(input);
    let output = Format::new(out.sample_rate, out.channels)
      .map_err(|e| CoreError::InvalidOption(format!("processor '{name}' output: {}", e.message())))?;
    self.slots.push(Slot {
      proc,
      input,
      output,
      ledger: Ledger::new(name),
    });
    self.output = output;
    let len = self.output.chunk_len().max(self.cur.capacity());
    self.cur.reserve(len);
    self.next.reserve(len);
    Ok(self.slots.len() - 1)
  }

  pub fn input_format(&self) -> Format {
    self.input
  }

  pub fn output_format(&self) -> Format {
    self.output
  }

  pub fn len(&self) -> usize {
    self.slots.len()
  }

  pub fn is_empty(&self) -> bool {
    self.slots.is_empty()
  }

  fn slot(&mut self, index: usize) -> Result<&mut Slot> {
    let len = self.slots.len();
    self.slots.get_mut(index).ok_or_else(|| out_of_range(index, len))
  }

  /// Disabling skips the processor; enabling clears its consecutive failures and its
  /// bypass. A processor coming back after being skipped is reset first: its history is of
  /// audio it did not see.
  pub fn set_enabled(&mut self, index: usize, enabled: bool) -> Result<()> {
    let slot = self.slot(index)?;
    if slot.ledger.set_enabled(enabled) {
      let proc = &mut slot.proc;
      let _ = catch_unwind(AssertUnwindSafe(|| proc.reset()));
    }
    Ok(())
  }

  pub fn is_enabled(&self, index: usize) -> bool {
    self.slots.get(index).is_some_and(|s| s.ledger.is_enabled())
  }

  pub fn is_bypassed(&self, index: usize) -> bool {
    self.slots.get(index).is_some_and(|s| s.ledger.is_bypassed())
  }

  /// A processing-time budget per chunk for one processor; overruns are counted and
  /// reported, the audio is kept.
  pub fn set_budget(&mut self, index: usize, budget: Option<Duration>) -> Result<()> {
    self.slot(index)?.ledger.set_budget(budget);
    Ok(())
  }

  /// Total delay of the processors currently in the path, in milliseconds.
  pub fn delay_ms(&self) -> f64 {
    self
      .slots
      .iter()
      .filter(|s| s.ledger.active())
      .map(|s| s.proc.delay_ms())
      .sum()
  }

  /// Forgets every processor's history; counters stay. A source's output side calls it
  /// before the first chunk captured after a `clear()`.
  pub fn reset(&mut self) {
    for s in self.slots.iter_mut() {
      let proc = &mut s.proc;
      let _ = catch_unwind(AssertUnwindSafe(|| proc.reset()));
    }
  }

  pub fn stats(&self) -> Vec<ProcessorStats> {
    self
      .slots
      .iter()
      .map(|s| {
        let mut st = s.ledger.stats();
        let proc = &s.proc;
        st.health = catch_unwind(AssertUnwindSafe(|| proc.health())).unwrap_or_default();
        st
      })
      .collect()
  }

  /// Runs one 10 ms chunk of the input format through the chain and returns one 10 ms
  /// chunk of the output format. Failures, budget overruns and VAD flips are appended to
  /// `events`; nothing is allocated unless there is an event to report.
  pub fn process(&mut self, input: &[i16], events: &mut Vec<ChainEvent>) -> Result<&[i16]> {
    if input.len() != self.input.chunk_len() {
      return Err(CoreError::InvalidFrame(format!(
        "a chain takes one 10 ms chunk ({} samples), got {}",
        self.input.chunk_len(),
        input.len()
      )));
    }
    let at_ms = self.chunks as f64 * CHUNK_MS as f64;
    self.chunks += 1;
    self.cur.clear();
    self.cur.extend_from_slice(input);
    for (index, slot) in self.slots.iter_mut().enumerate() {
      if slot.ledger.active() {
        self.next.clear();
        let (proc, cur, next) = (&mut slot.proc, &self.cur, &mut self.next);
        let started = Instant::now();
        let ran = catch_unwind(AssertUnwindSafe(|| {
          let r = proc.process(cur, next);
          (r, proc.poll_signal())
        }));
        let elapsed = started.elapsed();
        let failure = match ran {
          Ok((Ok(()), signal)) if self.next.len() == slot.output.chunk_len() => {
            slot.ledger.record(index, elapsed, None, self.bypass_after, events);
            mem::swap(&mut self.cur, &mut self.next);
            if let Some(Signal::Speaking(speaking)) = signal {
              events.push(ChainEvent::Vad { index, speaking, at_ms });
            }
            continue;
          }
          Ok((Ok(()), _)) => format!(
            "produced {} samples, expected {} (one 10 ms chunk)",
            self.next.len(),
            slot.output.chunk_len()
          ),
          Ok((Err(message), _)) => message,
          Err(payload) => {
            // State half-updated by a panic is not worth trusting: start it afresh.
            let proc = &mut slot.proc;
            let _ = catch_unwind(AssertUnwindSafe(|| proc.reset()));
            format!("panicked: {}", panic_message(payload.as_ref()))
          }
        };
        slot
          .ledger
          .record(index, elapsed, Some(failure), self.bypass_after, events);
      }
      // Skipped, bypassed or failed: the chunk goes on as it came, in the format the next
      // stage expects.
      if slot.input != slot.output {
        conform(&self.cur, slot.input, slot.output, &mut self.next);
        mem::swap(&mut self.cur, &mut self.next);
      }
    }
    Ok(&self.cur)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn conform_keeps_length_and_level() {
    let from = Format::new(48_000, 2).unwrap();
    let to = Format::new(16_000, 1).unwrap();
    let input: Vec<i16> = (0..from.chunk_len())
      .map(|i| if i % 2 == 0 { 1000 } else { 3000 })
      .collect();
    let mut out = Vec::new();
    conform(&input, from, to, &mut out);
    assert_eq!(out.len(), to.chunk_len());
    assert!(out.iter().all(|&s| s == 2000));
    let up = Format::new(44_100, 2).unwrap();
    let mut up_out = Vec::new();
    conform(&out, to, up, &mut up_out);
    assert_eq!(up_out.len(), up.chunk_len());
    assert!(up_out.iter().all(|&s| s == 2000));
  }

  #[test]
  fn chains_move_to_engine_threads() {
    fn is_send<T: Send>() {}
    is_send::<Chain>();
  }

  #[test]
  fn bypass_after_is_validated() {
    let f = Format::new(16_000, 1).unwrap();
    assert_eq!(Chain::new(f, 0).err().unwrap().code(), "ERR_INVALID_OPTION");
    assert!(Chain::new(f, 1).is_ok());
  }
}
