//! `NativeGroup`: one call captures one frame for each of many sources and settles once.

use std::sync::Arc;

use capstan_core::{Group, RoundResult, Samples};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{js_err, Result};
use crate::engine::NativeEngine;
use crate::source::{check_out, deadline, slots, NativeSource};

#[napi]
pub struct NativeGroup {
  inner: Arc<Group>,
}

/// Writes a round's result: the joined outcome record (`PENDING` and the round id while
/// it waits) and, once settled, each member's status code into `statuses`.
fn write(r: &RoundResult, out: &mut [f64], statuses: &mut [u8]) {
  match r {
    RoundResult::Settled(o) => {
      o.outcome.write(out);
      let n = statuses.len().min(o.statuses.len());
      statuses[..n].copy_from_slice(&o.statuses[..n]);
    }
    RoundResult::Pending(id) => {
      capstan_core::CaptureResult::Pending(*id).write(out);
    }
  }
}

#[napi]
impl NativeGroup {
  #[napi(constructor, catch_unwind)]
  pub fn new(engine: &NativeEngine, sources: Vec<ClassInstance<'_, NativeSource>>) -> Result<Self> {
    let members = sources.iter().map(|s| s.inner.clone()).collect();
    let inner = engine.inner.add_group(members).map_err(js_err)?;
    Ok(NativeGroup { inner })
  }

  #[napi(getter)]
  pub fn id(&self) -> f64 {
    self.inner.id() as f64
  }

  #[napi(getter)]
  pub fn size(&self) -> u32 {
    self.inner.len() as u32
  }

  fn round(
    &self,
    samples: Samples<'_>,
    deadline_ms: Option<f64>,
    may_wait: bool,
    out: &mut [f64],
    statuses: &mut [u8],
  ) -> Result<()> {
    check_out(out)?;
    let r = self
      .inner
      .capture(samples, deadline(deadline_ms)?, may_wait)
      .map_err(js_err)?;
    write(&r, out, statuses);
    Ok(())
  }

  /// One frame per member, member after member in `data`; the record goes to `out`,
  /// member statuses (when settled at once) to `statuses`.
  #[napi(catch_unwind)]
  pub fn capture_i16(
    &self,
    data: Int16ArraySlice,
    deadline_ms: Option<f64>,
    wait: bool,
    mut out: Float64ArraySlice,
    mut statuses: Uint8ArraySlice,
  ) -> Result<()> {
    let st = unsafe { statuses.as_mut() };
    self.round(Samples::I16(&data), deadline_ms, wait, slots(&mut out), st)
  }

  #[napi(catch_unwind)]
  pub fn capture_f32(
    &self,
    data: Float32ArraySlice,
    deadline_ms: Option<f64>,
    wait: bool,
    mut out: Float64ArraySlice,
    mut statuses: Uint8ArraySlice,
  ) -> Result<()> {
    let st = unsafe { statuses.as_mut() };
    self.round(Samples::F32(&data), deadline_ms, wait, slots(&mut out), st)
  }

  /// A settled round's member statuses (once; false if unknown).
  #[napi(catch_unwind)]
  pub fn take_statuses(&self, round: f64, mut statuses: Uint8ArraySlice) -> bool {
    let st = unsafe { statuses.as_mut() };
    match self.inner.take_statuses(round as u64) {
      Some(v) => {
        let n = st.len().min(v.len());
        st[..n].copy_from_slice(&v[..n]);
        true
      }
      None => false,
    }
  }
}
