//! Frame processors: native DSP that runs on engine threads, one exact 10 ms chunk at a
//! time, inside a [`Chain`] that survives a processor that fails or panics.
//!
//! Every processor is built for its input [`Format`] and turns one 10 ms chunk of it into
//! one 10 ms chunk of its output format; only [`Resample`] changes the format (the rate).
//! Stages, one file each: [`gain`], [`high_pass`], [`resample`], [`denoise`], [`vad`], and
//! the [`chain`] that runs them, and the [`ledger`] that times them and counts their
//! failures (also for processors that run outside the engine).

pub mod chain;
pub mod denoise;
pub mod gain;
pub mod high_pass;
pub mod ledger;
pub mod resample;
pub mod vad;

pub use chain::{Chain, ChainEvent, ProcessorStats, DEFAULT_BYPASS_AFTER};
pub use denoise::Denoise;
pub use gain::Gain;
pub use high_pass::HighPass;
pub use ledger::{Ledger, Ledgers};
pub use resample::Resample;
pub use vad::{Vad, VadOptions};

use crate::error::Result;
use crate::format::Format;

/// One stage of a chain. `process` gets exactly one 10 ms chunk of the input format and
/// must append exactly one 10 ms chunk of [`output_format`](Processor::output_format) to
/// `out` (which the chain hands over empty); anything else counts as a failure. A processor
/// may return `Err` or panic: the chain catches both and passes the chunk on unchanged.
pub trait Processor: Send {
  fn name(&self) -> &str;

  /// The format this processor was built for; the chain refuses to place it anywhere else.
  /// `None` means any format (gain, for example, does not care about the rate).
  fn input_format(&self) -> Option<Format> {
    None
  }

  /// The format of the chunks it produces from `input` chunks.
  fn output_format(&self, input: Format) -> Format {
    input
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String>;

  /// Forgets all history (filter memory, resampler and denoiser state), as at construction.
  fn reset(&mut self);

  /// Algorithmic delay the processor adds to the audio, in milliseconds.
  fn delay_ms(&self) -> f64 {
    0.0
  }

  /// A state change noticed by the last `process` call, taken once.
  fn poll_signal(&mut self) -> Option<Signal> {
    None
  }
}

/// Something a processor observed about the audio, surfaced by the chain as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
  /// Voice activity started (`true`) or ended (`false`).
  Speaking(bool),
}

/// A built-in processor as a caller describes it; [`Spec::build`] validates it against the
/// format it will receive.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
  Gain { db: f64 },
  HighPass { hz: f64 },
  Resample { to_rate: u32 },
  Denoise,
  Vad(VadOptions),
}

impl Spec {
  pub fn build(&self, input: Format) -> Result<Box<dyn Processor>> {
    Ok(match self {
      Spec::Gain { db } => Box::new(Gain::new(*db)?),
      Spec::HighPass { hz } => Box::new(HighPass::new(input, *hz)?),
      Spec::Resample { to_rate } => Box::new(Resample::new(input, *to_rate)?),
      Spec::Denoise => Box::new(Denoise::new(input)?),
      Spec::Vad(o) => Box::new(Vad::new(input, o.clone())?),
    })
  }
}

/// Rounds half away from zero and saturates to i16 (NaN becomes 0). `as` truncates
/// toward zero and saturates, so adding ±0.5 first rounds without a libm call.
#[inline]
pub(crate) fn round_i16(x: f64) -> i16 {
  (x + 0.5f64.copysign(x)) as i16
}

/// [`round_i16`] for the f32 paths (resampler, denoiser).
#[inline]
pub(crate) fn round_i16_f32(x: f32) -> i16 {
  (x + 0.5f32.copysign(x)) as i16
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn rounding_is_half_away_from_zero_and_saturates() {
    assert_eq!(round_i16(0.5), 1);
    assert_eq!(round_i16(-0.5), -1);
    assert_eq!(round_i16(1.49), 1);
    assert_eq!(round_i16(-1.49), -1);
    assert_eq!(round_i16(40_000.0), i16::MAX);
    assert_eq!(round_i16(-40_000.0), i16::MIN);
    assert_eq!(round_i16(f64::NAN), 0);
    assert_eq!(round_i16_f32(2.5), 3);
    assert_eq!(round_i16_f32(-1e9), i16::MIN);
  }

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
