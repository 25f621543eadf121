//! Gain in decibels: `y = round(x · 10^(db/20))`, rounded half away from zero and saturated
//! to i16. 0 dB copies samples untouched; +6.0206 dB doubles every sample that fits.

use super::processor::{round_i16, Processor};
use crate::error::{CoreError, Result};

/// Gains outside this range are typos, not mixing decisions.
pub const MIN_DB: f64 = -120.0;
pub const MAX_DB: f64 = 60.0;

#[derive(Debug, Clone)]
pub struct Gain {
  db: f64,
  factor: f64,
}

impl Gain {
  pub fn new(db: f64) -> Result<Self> {
    if !db.is_finite() || !(MIN_DB..=MAX_DB).contains(&db) {
      return Err(CoreError::InvalidOption(format!(
        "gain db must be a number in {MIN_DB}..={MAX_DB}, got {db}"
      )));
    }
    Ok(Gain {
      db,
      factor: 10f64.powf(db / 20.0),
    })
  }

  /// The linear factor every sample is multiplied by.
  pub fn factor(&self) -> f64 {
    self.factor
  }
}

impl Processor for Gain {
  fn name(&self) -> &str {
    "gain"
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String> {
    if self.db == 0.0 {
      // Bit-exact by construction, not by trusting the float path.
      out.extend_from_slice(input);
      return Ok(());
    }
    let g = self.factor;
    let start = out.len();
    out.resize(start + input.len(), 0);
    for (y, &x) in out[start..].iter_mut().zip(input) {
      *y = round_i16(x as f64 * g);
    }
    Ok(())
  }

  fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn refuses_non_finite_and_absurd_gains() {
    for db in [f64::NAN, f64::INFINITY, -121.0, 61.0] {
      assert_eq!(Gain::new(db).unwrap_err().code(), "ERR_INVALID_OPTION");
    }
  }
}
