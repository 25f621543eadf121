//! The contract every native processor keeps, and the sample rounding they share.

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

  /// What the processor measures about the audio (ERLE, delay, gain...), as named numbers
  /// for `metrics().processors[i].health`; empty for most processors.
  fn health(&self) -> Vec<(&'static str, f64)> {
    Vec::new()
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
}
