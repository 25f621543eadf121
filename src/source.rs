//! `NativeSource`: one capstan source, every method a direct call into the core.

use std::sync::Arc;

use capstan_core::{declared, Engine, FrameRef, Read, Samples, Source, SourceOptions, Status};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{js_err, source_options, JsMetrics, Result};
use crate::encode::NativeEncoded;
use crate::engine::NativeEngine;
use crate::record::{check_out, deadline, slots};

#[napi]
pub struct NativeSource {
  pub(crate) inner: Arc<Source>,
  engine: Arc<Engine>,
}

/// Core-validated: a declared format that is not a whole number in range is a mismatch.
fn frame<'a>(samples: Samples<'a>, sample_rate: Option<f64>, channels: Option<f64>) -> Result<FrameRef<'a>> {
  let (sample_rate, channels) = declared(sample_rate, channels).map_err(js_err)?;
  Ok(FrameRef {
    samples,
    sample_rate,
    channels,
  })
}

#[napi]
impl NativeSource {
  /// `options` is an `AudioSourceOptions` object; it is converted here rather than by
  /// napi-rs so that a value of the wrong type is `ERR_INVALID_OPTION` like any other.
  #[napi(constructor, catch_unwind)]
  pub fn new(engine: &NativeEngine, #[napi(ts_arg_type = "AudioSourceOptions")] options: Unknown) -> Result<Self> {
    let opts = SourceOptions::from_raw(source_options(options)?).map_err(js_err)?;
    let inner = engine.inner.add_source(opts).map_err(js_err)?;
    Ok(NativeSource {
      inner,
      engine: engine.inner.clone(),
    })
  }

  fn run(&self, f: FrameRef<'_>, wait: bool, deadline_ms: Option<f64>, out: &mut [f64]) -> Result<()> {
    check_out(out)?;
    let r = if wait {
      self.inner.capture(f, deadline(deadline_ms)?)
    } else {
      self.inner.try_capture(f).map(capstan_core::CaptureResult::Settled)
    };
    r.map_err(js_err)?.write(out);
    Ok(())
  }

  #[napi(getter, catch_unwind)]
  pub fn id(&self) -> f64 {
    self.inner.id() as f64
  }

  /// Copies the samples (borrowed zero-copy from the caller's view) into the engine and
  /// writes the outcome record into `out` (see `OUTCOME_SLOTS`).
  #[napi(catch_unwind)]
  pub fn capture_i16(
    &self,
    data: Int16ArraySlice,
    sample_rate: Option<f64>,
    channels: Option<f64>,
    deadline_ms: Option<f64>,
    mut out: Float64ArraySlice,
  ) -> Result<()> {
    self.run(
      frame(Samples::I16(&data), sample_rate, channels)?,
      true,
      deadline_ms,
      slots(&mut out),
    )
  }

  #[napi(catch_unwind)]
  pub fn capture_f32(
    &self,
    data: Float32ArraySlice,
    sample_rate: Option<f64>,
    channels: Option<f64>,
    deadline_ms: Option<f64>,
    mut out: Float64ArraySlice,
  ) -> Result<()> {
    self.run(
      frame(Samples::F32(&data), sample_rate, channels)?,
      true,
      deadline_ms,
      slots(&mut out),
    )
  }

  /// Never waits; the outcome is always settled.
  #[napi(catch_unwind)]
  pub fn try_capture_i16(
    &self,
    data: Int16ArraySlice,
    sample_rate: Option<f64>,
    channels: Option<f64>,
    mut out: Float64ArraySlice,
  ) -> Result<()> {
    self.run(
      frame(Samples::I16(&data), sample_rate, channels)?,
      false,
      None,
      slots(&mut out),
    )
  }

  #[napi(catch_unwind)]
  pub fn try_capture_f32(
    &self,
    data: Float32ArraySlice,
    sample_rate: Option<f64>,
    channels: Option<f64>,
    mut out: Float64ArraySlice,
  ) -> Result<()> {
    self.run(
      frame(Samples::F32(&data), sample_rate, channels)?,
      false,
      None,
      slots(&mut out),
    )
  }

  #[napi(catch_unwind)]
  pub fn flush(&self, deadline_ms: Option<f64>, mut out: Float64ArraySlice) -> Result<()> {
    let out = slots(&mut out);
    check_out(out)?;
    let r = self.inner.flush(deadline(deadline_ms)?).map_err(js_err)?;
    r.write(out);
    Ok(())
  }

  /// Settles a waiting capture as aborted (record in `out`); false if it had already settled.
  #[napi(catch_unwind)]
  pub fn abort(&self, id: f64, mut out: Float64ArraySlice) -> Result<bool> {
    let out = slots(&mut out);
    check_out(out)?;
    Ok(self.inner.abort(id as u64).map(|o| o.write(out)).is_some())
  }

  /// Settles a capture JavaScript refused before sending it (its signal was already
  /// aborted) as `aborted`, so the engine counts it, none of it taken. The frame and the
  /// deadline are validated as a capture's are: a programmer error is still one.
  fn refuse_aborted(&self, f: FrameRef<'_>, deadline_ms: Option<f64>, out: &mut [f64]) -> Result<()> {
    check_out(out)?;
    deadline(deadline_ms)?;
    self.inner.refuse_frame(f, Status::Aborted).map_err(js_err)?.write(out);
    Ok(())
  }

  #[napi(catch_unwind)]
  pub fn refuse_aborted_i16(
    &self,
    data: Int16ArraySlice,
    sample_rate: Option<f64>,
    channels: Option<f64>,
    deadline_ms: Option<f64>,
    mut out: Float64ArraySlice,
  ) -> Result<()> {
    self.refuse_aborted(
      frame(Samples::I16(&data), sample_rate, channels)?,
      deadline_ms,
      slots(&mut out),
    )
  }

  #[napi(catch_unwind)]
  pub fn refuse_aborted_f32(
    &self,
    data: Float32ArraySlice,
    sample_rate: Option<f64>,
    channels: Option<f64>,
    deadline_ms: Option<f64>,
    mut out: Float64ArraySlice,
  ) -> Result<()> {
    self.refuse_aborted(
      frame(Samples::F32(&data), sample_rate, channels)?,
      deadline_ms,
      slots(&mut out),
    )
  }

  #[napi(catch_unwind)]
  pub fn clear(&self) -> f64 {
    self.inner.clear() as f64
  }

  /// Null when already played out; else an id the bus reports in `playouts`.
  #[napi(catch_unwind)]
  pub fn wait_playout(&self) -> Option<f64> {
    self.inner.wait_playout().map(|id| id as f64)
  }

  #[napi(catch_unwind)]
  pub fn cancel_playout(&self, id: f64) {
    self.inner.cancel_playout(id as u64)
  }

  #[napi(catch_unwind)]
  pub fn set_reader(&self, on: bool) {
    self.inner.set_reader(on)
  }

  /// A reader's own pre-roll (ms); none: back to the source's `prerollMs`.
  #[napi(catch_unwind)]
  pub fn set_preroll(&self, ms: Option<f64>) -> Result<()> {
    let ms = ms
      .map(|v| capstan_core::whole("prerollMs", v))
      .transpose()
      .map_err(js_err)?;
    self.inner.set_preroll(ms).map_err(js_err)
  }

  /// Encodes everything the source delivers from now on (see `NativeEncoded`); the
  /// options object is `EncodeOptions`, checked by the core.
  #[napi(catch_unwind)]
  pub fn encode(&self, #[napi(ts_arg_type = "EncodeOptions")] options: Unknown) -> Result<NativeEncoded> {
    NativeEncoded::attach(&self.inner, options)
  }

  /// One 10 ms chunk; `null` when none is ready (a `readable` event follows), an empty
  /// array once closed.
  #[napi(catch_unwind)]
  pub fn read(&self) -> Either<Int16Array, Null> {
    match self.inner.read() {
      Read::Chunk(c) => Either::A(Int16Array::new(c)),
      Read::Empty => Either::B(Null),
      Read::Closed => Either::A(Int16Array::new(Vec::new())),
    }
  }

  /// The rate audio leaves at (a resampling processor changes it).
  #[napi(getter, catch_unwind)]
  pub fn output_sample_rate(&self) -> u32 {
    self.inner.output_format().sample_rate
  }

  #[napi(catch_unwind)]
  pub fn set_processor_enabled(&self, index: u32, enabled: bool) -> Result<()> {
    self
      .inner
      .set_processor_enabled(index as usize, enabled)
      .map_err(js_err)
  }

  /// Starts (once) copying what this source delivers into its reference tap and returns
  /// the tap's id, for an `echoCancel` processor on another source or stream.
  #[napi(catch_unwind)]
  pub fn reference_tap_id(&self) -> f64 {
    self.inner.reference_tap_id() as f64
  }

  #[napi(catch_unwind)]
  pub fn processor_enabled(&self, index: u32) -> bool {
    self.inner.processor_enabled(index as usize)
  }

  #[napi(getter, catch_unwind)]
  pub fn closed(&self) -> bool {
    self.inner.is_closed()
  }

  #[napi(getter, catch_unwind)]
  pub fn queued_ms(&self) -> f64 {
    self.inner.queued_ms_now()
  }

  #[napi(getter, catch_unwind)]
  pub fn playout_position(&self) -> f64 {
    self.inner.playout_position() as f64
  }

  #[napi(getter, catch_unwind)]
  pub fn health(&self) -> String {
    self.inner.health().as_str().into()
  }

  #[napi(catch_unwind)]
  pub fn metrics(&self) -> JsMetrics {
    self.inner.metrics().into()
  }

  /// Closes the source and takes it off the engine clock (the last one stops the clocks).
  #[napi(catch_unwind)]
  pub fn close(&self) {
    self.engine.remove_source(&self.inner);
  }
}
