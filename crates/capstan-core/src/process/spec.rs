//! Built-in processors as callers describe them, validated when built.

use super::denoise::Denoise;
use super::gain::Gain;
use super::high_pass::HighPass;
use super::processor::Processor;
use super::resample::Resample;
use super::sleep::Sleep;
use super::vad::{Vad, VadOptions};
use crate::error::Result;
use crate::format::Format;

/// A built-in processor as a caller describes it; [`Spec::build`] validates it against the
/// format it will receive.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
  Gain {
    db: f64,
  },
  HighPass {
    hz: f64,
  },
  Resample {
    to_rate: u32,
  },
  Denoise,
  Vad(VadOptions),
  /// Test-only: passes audio through after sleeping `ms` per chunk.
  #[doc(hidden)]
  Sleep {
    ms: u32,
  },
}

impl Spec {
  pub fn build(&self, input: Format) -> Result<Box<dyn Processor>> {
    Ok(match self {
      Spec::Gain { db } => Box::new(Gain::new(*db)?),
      Spec::HighPass { hz } => Box::new(HighPass::new(input, *hz)?),
      Spec::Resample { to_rate } => Box::new(Resample::new(input, *to_rate)?),
      Spec::Denoise => Box::new(Denoise::new(input)?),
      Spec::Vad(o) => Box::new(Vad::new(input, o.clone())?),
      Spec::Sleep { ms } => Box::new(Sleep::new(*ms)),
    })
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn specs_validate_against_the_input_format() {
    let f = Format::new(16_000, 1).unwrap();
    for bad in [
      Spec::Gain { db: f64::NAN },
      Spec::HighPass { hz: 8_000.0 },
      Spec::HighPass { hz: 0.0 },
      Spec::Resample { to_rate: 22_050 },
      Spec::Vad(VadOptions {
        hangover_ms: 60_001,
        ..VadOptions::default()
      }),
    ] {
      let err = bad
        .build(f)
        .err()
        .unwrap_or_else(|| panic!("{bad:?} should be refused"));
      assert_eq!(err.code(), "ERR_INVALID_OPTION", "{bad:?}");
    }
    let p = Spec::Resample { to_rate: 48_000 }.build(f).unwrap();
    assert_eq!(p.output_format(f), Format::new(48_000, 1).unwrap());
  }
}
