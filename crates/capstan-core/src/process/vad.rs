//! Energy voice-activity detection with hysteresis and hangover. The audio passes through
//! untouched; the processor only reports `Speaking(true/false)` when its state flips.
//!
//! Per 10 ms chunk the level is the RMS of all channels in dBFS (a full-scale square wave is
//! 0 dBFS, a full-scale sine -3 dBFS). Speech starts after `attack_ms` of chunks at or above
//! `threshold_db`; it ends after `hangover_ms` of chunks below `threshold_db - hysteresis_db`,
//! so pauses between words and levels hovering at the threshold do not make it flicker.
//! Being absolute, it suits a denoised or gated signal; put it after `denoise()` on noisy input.

use super::processor::{Processor, Signal};
use crate::error::{CoreError, Result};
use crate::format::Format;

/// The level reported for digital silence.
pub const FLOOR_DB: f64 = -120.0;

#[derive(Debug, Clone, PartialEq)]
pub struct VadOptions {
  /// Level (dBFS) at or above which a chunk counts as voice. Default -40.
  pub threshold_db: f64,
  /// How far below the threshold the level must fall to count as quiet. Default 6.
  pub hysteresis_db: f64,
  /// Voice this long (rounded up to 10 ms chunks, at least one) starts speech. Default 20.
  pub attack_ms: u32,
  /// Quiet this long (rounded up to 10 ms chunks, at least one) ends speech. Default 300.
  pub hangover_ms: u32,
}

impl Default for VadOptions {
  fn default() -> Self {
    VadOptions {
      threshold_db: -40.0,
      hysteresis_db: 6.0,
      attack_ms: 20,
      hangover_ms: 300,
    }
  }
}

impl VadOptions {
  pub fn validate(&self) -> Result<()> {
    let bad = |m: String| Err(CoreError::InvalidOption(m));
    if !self.threshold_db.is_finite() || !(-96.0..=0.0).contains(&self.threshold_db) {
      return bad(format!(
        "vad thresholdDb must be -96..=0 dBFS, got {}",
        self.threshold_db
      ));
    }
    if !self.hysteresis_db.is_finite() || !(0.0..=40.0).contains(&self.hysteresis_db) {
      return bad(format!(
        "vad hysteresisDb must be 0..=40 dB, got {}",
        self.hysteresis_db
      ));
    }
    if self.attack_ms > 10_000 {
      return bad(format!("vad attackMs must be 0..=10000, got {}", self.attack_ms));
    }
    if self.hangover_ms > 60_000 {
      return bad(format!("vad hangoverMs must be 0..=60000, got {}", self.hangover_ms));
    }
    Ok(())
  }
}

/// Whole 10 ms chunks covering `ms`, at least one.
fn chunks(ms: u32) -> u32 {
  ms.div_ceil(10).max(1)
}

pub struct Vad {
  format: Format,
  opts: VadOptions,
  attack: u32,
  hangover: u32,
  speaking: bool,
  /// Consecutive voiced chunks while silent, or quiet chunks while speaking.
  run: u32,
  level_db: f64,
  pending: Option<Signal>,
}

impl Vad {
  pub fn new(format: Format, opts: VadOptions) -> Result<Self> {
    opts.validate()?;
    Ok(Vad {
      format,
      attack: chunks(opts.attack_ms),
      hangover: chunks(opts.hangover_ms),
      opts,
      speaking: false,
      run: 0,
      level_db: FLOOR_DB,
      pending: None,
    })
  }

  pub fn speaking(&self) -> bool {
    self.speaking
  }

  /// The last chunk's level in dBFS (at least [`FLOOR_DB`]).
  pub fn level_db(&self) -> f64 {
    self.level_db
  }

  /// Advances the state machine by one chunk at `level_db`; returns the new state on a flip.
  fn step(&mut self, level_db: f64) -> Option<bool> {
    self.level_db = level_db;
    if !self.speaking {
      self.run = if level_db >= self.opts.threshold_db {
        self.run + 1
      } else {
        0
      };
      if self.run >= self.attack {
        self.speaking = true;
        self.run = 0;
        return Some(true);
      }
    } else {
      let quiet = level_db < self.opts.threshold_db - self.opts.hysteresis_db;
      self.run = if quiet { self.run + 1 } else { 0 };
      if self.run >= self.hangover {
        self.speaking = false;
        self.run = 0;
        return Some(false);
      }
    }
    None
  }
}

/// RMS of interleaved i16 samples in dBFS, floored at [`FLOOR_DB`].
pub fn level_dbfs(samples: &[i16]) -> f64 {
  if samples.is_empty() {
    return FLOOR_DB;
  }
  let energy: i64 = samples.iter().map(|&s| s as i64 * s as i64).sum();
  if energy == 0 {
    return FLOOR_DB;
  }
  let rms = (energy as f64 / samples.len() as f64).sqrt();
  (20.0 * (rms / 32768.0).log10()).max(FLOOR_DB)
}

impl Processor for Vad {
  fn name(&self) -> &str {
    "vad"
  }

  fn input_format(&self) -> Option<Format> {
    Some(self.format)
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String> {
    out.extend_from_slice(input);
    if let Some(s) = self.step(level_dbfs(input)) {
      self.pending = Some(Signal::Speaking(s));
    }
    Ok(())
  }

  fn reset(&mut self) {
    self.speaking = false;
    self.run = 0;
    self.level_db = FLOOR_DB;
    self.pending = None;
  }

  fn poll_signal(&mut self) -> Option<Signal> {
    self.pending.take()
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn levels() {
    assert_eq!(level_dbfs(&[0; 480]), FLOOR_DB);
    assert!((level_dbfs(&[i16::MIN; 480]) - 0.0).abs() < 1e-9);
    let half: Vec<i16> = (0..480).map(|i| if i % 2 == 0 { 16_384 } else { -16_384 }).collect();
    assert!((level_dbfs(&half) + 6.0206).abs() < 1e-3);
  }

  #[test]
  fn hysteresis_keeps_speech_through_levels_between_the_thresholds() {
    let f = Format::new(16_000, 1).unwrap();
    let mut v = Vad::new(f, VadOptions::default()).unwrap();
    assert_eq!(v.step(-30.0), None);
    assert_eq!(v.step(-30.0), Some(true));
    // -43 dBFS is below the -40 threshold but above -46: still speech, however long.
    for _ in 0..100 {
      assert_eq!(v.step(-43.0), None);
    }
    assert!(v.speaking());
    for _ in 0..29 {
      assert_eq!(v.step(-50.0), None);
    }
    assert_eq!(v.step(-50.0), Some(false));
    // One loud chunk is not enough to start again with a 20 ms attack.
    assert_eq!(v.step(-30.0), None);
    assert_eq!(v.step(-60.0), None);
    assert!(!v.speaking());
  }
}
