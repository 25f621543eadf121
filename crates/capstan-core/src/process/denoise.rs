//! Noise suppression with RNNoise (the `nnnoiseless` port), one model state per channel.
//!
//! RNNoise only knows 48 kHz frames of 480 samples, which is exactly one 10 ms chunk at
//! 48 kHz. Other rates are resampled internally (rate → 48 kHz → rate, with the same exact
//! 10 ms FFT stage as [`Resample`](super::Resample)) rather than refused, so `denoise()` works
//! on a 16 kHz stream as the API promises; that round trip adds 10 ms of delay and roughly
//! doubles the cost.

use std::sync::OnceLock;

use nnnoiseless::{DenoiseState, RnnModel};

use super::processor::{round_i16_f32, Processor};
use super::resample::FftStage;
use crate::error::Result;
use crate::format::Format;

/// RNNoise's own rate and frame.
pub const RNNOISE_RATE: u32 = 48_000;
const FRAME: usize = DenoiseState::FRAME_SIZE;
/// RNNoise's overlap-add synthesis puts its output one frame behind its input.
const RNNOISE_DELAY_MS: f64 = 10.0;

/// One parsed model shared by every denoiser in the process (the weights are static).
fn model() -> &'static RnnModel {
  static MODEL: OnceLock<RnnModel> = OnceLock::new();
  MODEL.get_or_init(RnnModel::default)
}

pub struct Denoise {
  format: Format,
  states: Vec<Box<DenoiseState<'static>>>,
  /// rate → 48 kHz and back; `None` at 48 kHz.
  around: Option<(FftStage, FftStage)>,
  /// Interleaved f32 at the stream rate (in, and out after the way back).
  io: Vec<f32>,
  /// Interleaved 48 kHz, before and after RNNoise.
  wide_in: Vec<f32>,
  wide_out: Vec<f32>,
  frame_in: [f32; FRAME],
  frame_out: [f32; FRAME],
  vad: f32,
}

impl Denoise {
  pub fn new(format: Format) -> Result<Self> {
    let around = if format.sample_rate == RNNOISE_RATE {
      None
    } else {
      Some((
        FftStage::new(format.sample_rate, RNNOISE_RATE, format.channels)?,
        FftStage::new(RNNOISE_RATE, format.sample_rate, format.channels)?,
      ))
    };
    let channels = format.channels as usize;
    Ok(Denoise {
      format,
      states: (0..channels).map(|_| DenoiseState::with_model(model())).collect(),
      around,
      io: vec![0.0; format.chunk_len()],
      wide_in: vec![0.0; FRAME * channels],
      wide_out: vec![0.0; FRAME * channels],
      frame_in: [0.0; FRAME],
      frame_out: [0.0; FRAME],
      vad: 0.0,
    })
  }

  /// RNNoise's voice probability for the last chunk (the highest over channels), 0..=1.
  pub fn vad_probability(&self) -> f32 {
    self.vad
  }
}

impl Processor for Denoise {
  fn name(&self) -> &str {
    "denoise"
  }

  fn input_format(&self) -> Option<Format> {
    Some(self.format)
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String> {
    if input.len() != self.io.len() {
      return Err(format!("expected {} samples, got {}", self.io.len(), input.len()));
    }
    let channels = self.format.channels as usize;
    // RNNoise wants i16-scaled floats, so samples are converted without normalising.
    for (d, s) in self.io.iter_mut().zip(input) {
      *d = *s as f32;
    }
    match self.around.as_mut() {
      Some((up, _)) => up.run(&self.io, &mut self.wide_in)?,
      None => self.wide_in.copy_from_slice(&self.io),
    }
    let mut vad = 0.0f32;
    for (c, st) in self.states.iter_mut().enumerate() {
      for (d, s) in self.frame_in.iter_mut().zip(self.wide_in[c..].iter().step_by(channels)) {
        *d = *s;
      }
      vad = vad.max(st.process_frame(&mut self.frame_out, &self.frame_in));
      for (d, s) in self.wide_out[c..]
        .iter_mut()
        .step_by(channels)
        .zip(self.frame_out.iter())
      {
        *d = *s;
      }
    }
    self.vad = vad;
    let result = match self.around.as_mut() {
      Some((_, down)) => {
        down.run(&self.wide_out, &mut self.io)?;
        &self.io
      }
      None => &self.wide_out,
    };
    out.extend(result.iter().map(|&x| round_i16_f32(x)));
    Ok(())
  }

  fn reset(&mut self) {
    for st in self.states.iter_mut() {
      *st = DenoiseState::with_model(model());
    }
    if let Some((up, down)) = self.around.as_mut() {
      up.reset();
      down.reset();
    }
    self.vad = 0.0;
  }

  fn delay_ms(&self) -> f64 {
    RNNOISE_DELAY_MS
      + self
        .around
        .as_ref()
        .map_or(0.0, |(up, down)| up.delay_ms() + down.delay_ms())
  }
}
