//! The caller's outcome record and per-call deadline, as every binding method that settles
//! a capture reads them (sources, groups, encoders' cuts).

use capstan_core::deadline_ms;
use capstan_core::outcome::OUTCOME_SLOTS;
use capstan_core::CoreError;
use napi::bindgen_prelude::Float64ArraySlice;

use crate::convert::{js_err, Result};

/// The caller's outcome record. Safety: the JS thread is inside this call, so nothing
/// else touches the array while we write it.
pub(crate) fn slots<'a>(out: &'a mut Float64ArraySlice) -> &'a mut [f64] {
  unsafe { out.as_mut() }
}

pub(crate) fn check_out(out: &[f64]) -> Result<()> {
  if out.len() < OUTCOME_SLOTS {
    return Err(js_err(CoreError::InvalidOption(format!(
      "outcome record needs {OUTCOME_SLOTS} slots"
    ))));
  }
  Ok(())
}

pub(crate) fn deadline(ms: Option<f64>) -> Result<Option<u32>> {
  ms.map(deadline_ms).transpose().map_err(js_err)
}
