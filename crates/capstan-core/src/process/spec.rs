//! Built-in processors as callers describe them, validated when built.

use super::auto_gain::{AutoGain, AutoGainOptions};
use super::denoise::Denoise;
use super::echo_cancel::{EchoCancel, EchoCancelOptions};
use super::fault::{Fault, FaultMode};
use super::gain::Gain;
use super::high_pass::HighPass;
use super::processor::Processor;
use super::resample::Resample;
use super::sleep::Sleep;
use super::vad::{Vad, VadOptions};
use crate::error::{CoreError, Result};
use crate::format::Format;
use crate::options::whole;

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
  EchoCancel(EchoCancelOptions),
  AutoGain(AutoGainOptions),
  /// Test-only: passes audio through after sleeping `ms` per chunk.
  #[doc(hidden)]
  Sleep {
    ms: u32,
  },
  /// Test-only: misbehaves (sleeps `ms`, returns `Err` or panics) on every `every_n`-th
  /// chunk. JavaScript reaches it as the internal kind `'__fault'` (see [`Spec::fault`]).
  #[doc(hidden)]
  Fault {
    mode: FaultMode,
    every_n: u32,
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
      Spec::EchoCancel(o) => Box::new(EchoCancel::new(input, o.clone())?),
      Spec::AutoGain(o) => Box::new(AutoGain::new(input, o.clone())?),
      Spec::Sleep { ms } => Box::new(Sleep::new(*ms)),
      Spec::Fault { mode, every_n, ms } => Box::new(Fault::new(*mode, *every_n, *ms)?),
    })
  }

  /// The internal kind a caller writes for [`Spec::Fault`].
  #[doc(hidden)]
  pub const FAULT_KIND: &'static str = "__fault";

  /// A `'__fault'` processor as a caller wrote it: `mode` is `'sleep'`, `'error'` or
  /// `'panic'`; `everyN` (default 1) and `ms` (default 0) are whole numbers.
  #[doc(hidden)]
  pub fn fault(mode: Option<&str>, every_n: Option<f64>, ms: Option<f64>) -> Result<Spec> {
    let mode = mode.ok_or_else(|| CoreError::InvalidOption("processor '__fault' needs mode".into()))?;
    let mode = FaultMode::parse(mode).ok_or_else(|| {
      CoreError::InvalidOption(format!(
        "__fault: mode must be 'sleep', 'error' or 'panic', got '{mode}'"
      ))
    })?;
    Ok(Spec::Fault {
      mode,
      every_n: every_n.map(|v| whole("everyN", v)).transpose()?.unwrap_or(1),
      ms: ms.map(|v| whole("ms", v)).transpose()?.unwrap_or(0),
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
    for bad in [
      Spec::Fault {
        mode: FaultMode::Error,
        every_n: 0,
        ms: 0,
      },
      Spec::Fault {
        mode: FaultMode::Sleep,
        every_n: 1,
        ms: 10_001,
      },
    ] {
      assert_eq!(bad.build(f).err().unwrap().code(), "ERR_INVALID_OPTION", "{bad:?}");
    }
    let p = Spec::Resample { to_rate: 48_000 }.build(f).unwrap();
    assert_eq!(p.output_format(f), Format::new(48_000, 1).unwrap());
  }

  #[test]
  fn fault_specs_parse() {
    assert_eq!(
      Spec::fault(Some("panic"), None, None).unwrap(),
      Spec::Fault {
        mode: FaultMode::Panic,
        every_n: 1,
        ms: 0
      }
    );
    assert_eq!(
      Spec::fault(Some("sleep"), Some(3.0), Some(20.0)).unwrap(),
      Spec::Fault {
        mode: FaultMode::Sleep,
        every_n: 3,
        ms: 20
      }
    );
    for (mode, every_n, ms) in [
      (None, None, None),
      (Some("boom"), None, None),
      (Some("error"), Some(1.5), None),
      (Some("error"), None, Some(-1.0)),
    ] {
      assert_eq!(
        Spec::fault(mode, every_n, ms).err().unwrap().code(),
        "ERR_INVALID_OPTION",
        "{mode:?} {every_n:?} {ms:?}"
      );
    }
  }
}
