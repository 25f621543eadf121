//! `NativeGroup`: one call captures one frame for each of many sources and settles once.

use std::sync::Arc;

use capstan_core::{Group, RoundResult, Samples};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{js_err, Result};
use crate::engine::NativeEngine;
use crate::record::{check_out, deadline, slots};
use crate::source::NativeSource;

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

  /// Starts a round of `total` samples (one frame per member, validated here); returns
  /// its id. `wait`: members apply their own policy; otherwise they never wait.
  #[napi(catch_unwind)]
  pub fn begin(&self, total: f64, deadline_ms: Option<f64>, wait: bool) -> Result<f64> {
    let id = self
      .inner
      .begin(total as usize, deadline(deadline_ms)?, wait)
      .map_err(js_err)?;
    Ok(id as f64)
  }

  /// Captures the frames of members `first..` (whole frames, in member order).
  #[napi(catch_unwind)]
  pub fn feed_i16(&self, round: f64, data: Int16ArraySlice, first: u32) -> Result<()> {
    self
      .inner
      .feed(round as u64, Samples::I16(&data), first as usize)
      .map_err(js_err)
  }

  #[napi(catch_unwind)]
  pub fn feed_f32(&self, round: f64, data: Float32ArraySlice, first: u32) -> Result<()> {
    self
      .inner
      .feed(round as u64, Samples::F32(&data), first as usize)
      .map_err(js_err)
  }

  /// Closes a round: its record goes to `out` (`PENDING` and the round id while members
  /// still wait) and, when settled, each member's status code to `statuses`.
  #[napi(catch_unwind)]
  pub fn end(&self, round: f64, mut out: Float64ArraySlice, mut statuses: Uint8ArraySlice) -> Result<()> {
    let out = slots(&mut out);
    check_out(out)?;
    let st = unsafe { statuses.as_mut() };
    let r = self.inner.end(round as u64).map_err(js_err)?;
    write(&r, out, st);
    Ok(())
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
