//! `NativeMixer`: several pull sources mixed into one output source on the engine clock.

use std::sync::Arc;

use capstan_core::{DuckOptions, Mix, MixRole};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{js_err, Result};
use crate::source::NativeSource;

/// `new AudioMixer({ duck })` as the binding reads it; validated by the core.
#[napi(object)]
pub struct JsDuckOptions {
  pub duck_db: Option<f64>,
  pub threshold_dbfs: Option<f64>,
  pub attack_ms: Option<f64>,
  pub release_ms: Option<f64>,
}

#[napi(object)]
pub struct JsMixInput {
  pub source_id: f64,
  pub gain_db: f64,
  pub role: String,
}

#[napi(object)]
pub struct JsMixStats {
  pub inputs: Vec<JsMixInput>,
  pub duck_db: f64,
  pub mixed_ms: f64,
  pub ducked_ms: f64,
}

#[napi]
pub struct NativeMixer {
  inner: Arc<Mix>,
}

#[napi]
impl NativeMixer {
  /// Makes `output` (a realtime or unpaced source) the mixer's output.
  #[napi(constructor, catch_unwind)]
  pub fn new(output: ClassInstance<'_, NativeSource>, duck: JsDuckOptions) -> Result<Self> {
    let d =
      DuckOptions::from_raw(duck.duck_db, duck.threshold_dbfs, duck.attack_ms, duck.release_ms).map_err(js_err)?;
    let inner = Arc::new(Mix::new(output.inner.format(), d).map_err(js_err)?);
    output.inner.set_mix(inner.clone()).map_err(js_err)?;
    Ok(NativeMixer { inner })
  }

  #[napi(catch_unwind)]
  pub fn add_input(
    &self,
    source: ClassInstance<'_, NativeSource>,
    gain_db: Option<f64>,
    role: Option<String>,
  ) -> Result<()> {
    self
      .inner
      .add_input_raw(source.inner.clone(), gain_db, role.as_deref())
      .map_err(js_err)
  }

  #[napi(catch_unwind)]
  pub fn set_gain(&self, source_id: f64, gain_db: f64) -> Result<()> {
    self.inner.set_gain(source_id as u64, gain_db).map_err(js_err)
  }

  /// Adds a clip (a copy of `pcm`); returns its id.
  #[napi(catch_unwind)]
  pub fn add_clip(
    &self,
    pcm: Int16Array,
    gain_db: Option<f64>,
    role: Option<String>,
    looping: Option<bool>,
  ) -> Result<f64> {
    self
      .inner
      .add_clip_raw(pcm.to_vec(), gain_db, role.as_deref(), looping)
      .map(|id| id as f64)
      .map_err(js_err)
  }

  #[napi(catch_unwind)]
  pub fn remove_clip(&self, id: f64) -> bool {
    self.inner.remove_clip(id as u64)
  }

  #[napi(catch_unwind)]
  pub fn remove_input(&self, source_id: f64) {
    self.inner.remove_input(source_id as u64)
  }

  #[napi(catch_unwind)]
  pub fn stats(&self) -> JsMixStats {
    let s = self.inner.stats();
    JsMixStats {
      inputs: s
        .inputs
        .into_iter()
        .map(|i| JsMixInput {
          source_id: i.source_id as f64,
          gain_db: i.gain_db,
          role: match i.role {
            MixRole::Speech => "speech".into(),
            MixRole::Background => "background".into(),
          },
        })
        .collect(),
      duck_db: s.duck_db,
      mixed_ms: s.mixed_ms,
      ducked_ms: s.ducked_ms,
    }
  }
}
