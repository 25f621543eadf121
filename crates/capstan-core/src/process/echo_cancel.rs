//! Acoustic echo cancellation with AEC3 (the `sonora` pure-Rust port of WebRTC's audio
//! processing module), on the receive side: the near end is the stream this processor runs
//! on, the far end is what a source delivered, read from its [`ReferenceTap`].
//!
//! Before each capture chunk, every reference chunk delivered since the last one is handed
//! to AEC3's render side (WebRTC's own model: render frames as they are played, capture
//! frames as they arrive); AEC3 estimates the echo path delay itself (its matched filters
//! search about a second), adapts a linear filter and suppresses what remains.
//! `health()` reports AEC3's ERLE (its linear stage's), ERL and delay estimate, the echo
//! removed as measured here (input over output power while only the far end talks), and a
//! double-talk flag.

use std::sync::Arc;

use sonora::config::{EchoCanceller, NoiseSuppression, NoiseSuppressionLevel};
use sonora::{AudioProcessing, Config, StreamConfig};

use super::processor::{round_i16_f32, Processor};
use super::reference::{ReferenceTap, TapCursor, TAP_CHUNKS};
use crate::error::{CoreError, Result};
use crate::format::Format;

/// AEC3 (its frame blocker) puts the capture output this far behind its input.
pub const AEC3_DELAY_MS: f64 = 8.0;

/// Noise suppression inside the echo canceller (WebRTC NS), off by default: `denoise()` is
/// the project's noise suppressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoNoiseSuppression {
  Off,
  Low,
  Moderate,
  High,
  VeryHigh,
}

impl EchoNoiseSuppression {
  pub fn parse(s: &str) -> Result<Self> {
    Ok(match s {
      "off" => Self::Off,
      "low" => Self::Low,
      "moderate" => Self::Moderate,
      "high" => Self::High,
      "very-high" => Self::VeryHigh,
      _ => {
        return Err(CoreError::InvalidOption(format!(
          "echoCancel: noiseSuppression must be 'off', 'low', 'moderate', 'high' or 'very-high', got '{s}'"
        )))
      }
    })
  }
}

/// `processors.echoCancel({ reference, highPass = false, noiseSuppression = 'off' })`.
#[derive(Clone)]
pub struct EchoCancelOptions {
  /// What the far-end source delivered.
  pub reference: Arc<ReferenceTap>,
  /// WebRTC's 80 Hz high-pass before AEC3 (its default in WebRTC; off here because it
  /// changes the near end's waveform and `highPass()` exists as its own processor).
  pub high_pass: bool,
  pub noise_suppression: EchoNoiseSuppression,
}

impl std::fmt::Debug for EchoCancelOptions {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("EchoCancelOptions")
      .field("reference", &self.reference.format())
      .field("high_pass", &self.high_pass)
      .field("noise_suppression", &self.noise_suppression)
      .finish()
  }
}

impl PartialEq for EchoCancelOptions {
  fn eq(&self, o: &Self) -> bool {
    Arc::ptr_eq(&self.reference, &o.reference)
      && self.high_pass == o.high_pass
      && self.noise_suppression == o.noise_suppression
  }
}

/// Far end (reference) louder than this over the last 300 ms counts as talking.
const FAR_ACTIVE_DBFS: f64 = -50.0;
/// Output within this much of the input while the far end talks: the near end talks too.
const DOUBLE_TALK_RATIO_DB: f64 = -10.0;
const NEAR_ACTIVE_DBFS: f64 = -55.0;

pub struct EchoCancel {
  format: Format,
  opts: EchoCancelOptions,
  apm: AudioProcessing,
  cursor: TapCursor,
  /// Deinterleaved f32 planes: capture in, capture out, render in, render out.
  cap_in: Vec<Vec<f32>>,
  cap_out: Vec<Vec<f32>>,
  ren_in: Vec<Vec<f32>>,
  ren_out: Vec<Vec<f32>>,
  /// Reference energy over the last 30 chunks (a ring of per-chunk mean squares).
  far_ms: [f64; 30],
  far_at: usize,
  double_talk: bool,
  double_talk_chunks: u64,
  /// Input and output power over far-end-only chunks (exponential, ~1 s): the echo
  /// removed as measured at this processor's ends, next to AEC3's own (linear) ERLE.
  echo_in: f64,
  echo_out: f64,
  render_chunks: u64,
  render_errors: u64,
}

fn planes(f: Format) -> Vec<Vec<f32>> {
  vec![vec![0.0; f.chunk_frames()]; f.channels as usize]
}

fn build_apm(format: Format, reference: Format, opts: &EchoCancelOptions) -> AudioProcessing {
  let ns = match opts.noise_suppression {
    EchoNoiseSuppression::Off => None,
    l => Some(NoiseSuppression {
      level: match l {
        EchoNoiseSuppression::Low => NoiseSuppressionLevel::Low,
        EchoNoiseSuppression::Moderate => NoiseSuppressionLevel::Moderate,
        EchoNoiseSuppression::High => NoiseSuppressionLevel::High,
        _ => NoiseSuppressionLevel::VeryHigh,
      },
      ..Default::default()
    }),
  };
  AudioProcessing::builder()
    .config(Config {
      echo_canceller: Some(EchoCanceller {
        enforce_high_pass_filtering: opts.high_pass,
        ..Default::default()
      }),
      noise_suppression: ns,
      ..Default::default()
    })
    .capture_config(StreamConfig::new(format.sample_rate, format.channels))
    .render_config(StreamConfig::new(reference.sample_rate, reference.channels))
    .build()
}

fn to_planes(input: &[i16], ch: usize, planes: &mut [Vec<f32>]) {
  for (i, frame) in input.chunks_exact(ch).enumerate() {
    for (c, &s) in frame.iter().enumerate() {
      planes[c][i] = s as f32 / 32768.0;
    }
  }
}

fn mean_square(x: &[i16]) -> f64 {
  x.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn dbfs(ms: f64) -> f64 {
  10.0 * ms.max(1e-12).log10()
}

impl EchoCancel {
  pub fn new(format: Format, opts: EchoCancelOptions) -> Result<Self> {
    if format.sample_rate < 8_000 {
      return Err(CoreError::InvalidOption(format!(
        "echoCancel needs 8000 Hz or more, got {} Hz",
        format.sample_rate
      )));
    }
    let reference = opts.reference.format();
    if reference.sample_rate < 8_000 {
      return Err(CoreError::InvalidOption(format!(
        "echoCancel: the reference source runs at {} Hz; it needs 8000 Hz or more",
        reference.sample_rate
      )));
    }
    Ok(EchoCancel {
      format,
      apm: build_apm(format, reference, &opts),
      cursor: TapCursor::default(),
      cap_in: planes(format),
      cap_out: planes(format),
      ren_in: planes(reference),
      ren_out: planes(reference),
      opts,
      far_ms: [0.0; 30],
      far_at: 0,
      double_talk: false,
      double_talk_chunks: 0,
      echo_in: 0.0,
      echo_out: 0.0,
      render_chunks: 0,
      render_errors: 0,
    })
  }

  /// Whether the last chunk was judged double talk (both ends talking).
  pub fn double_talk(&self) -> bool {
    self.double_talk
  }

  /// AEC3's echo path delay estimate, in milliseconds (the far end's delivery to its echo).
  pub fn delay_estimate_ms(&self) -> Option<f64> {
    self.apm.statistics().delay_ms.map(|d| d as f64)
  }

  /// AEC3's echo return loss enhancement (its own estimate), in dB.
  pub fn erle_db(&self) -> Option<f64> {
    self.apm.statistics().echo_return_loss_enhancement
  }

  fn render_pending(&mut self) {
    let tap = self.opts.reference.clone();
    let rch = tap.format().channels as usize;
    let (ren_in, ren_out, apm, far_ms, far_at) = (
      &mut self.ren_in,
      &mut self.ren_out,
      &mut self.apm,
      &mut self.far_ms,
      &mut self.far_at,
    );
    let mut errors = 0;
    let n = tap.read(&mut self.cursor, TAP_CHUNKS, |chunk| {
      to_planes(chunk, rch, ren_in);
      let src: Vec<&[f32]> = ren_in.iter().map(|p| p.as_slice()).collect();
      let mut dst: Vec<&mut [f32]> = ren_out.iter_mut().map(|p| p.as_mut_slice()).collect();
      if apm.process_render_f32(&src, &mut dst).is_err() {
        errors += 1;
      }
      far_ms[*far_at % far_ms.len()] = mean_square(chunk);
      *far_at += 1;
    });
    self.render_chunks += n as u64;
    self.render_errors += errors;
  }
}

impl Processor for EchoCancel {
  fn name(&self) -> &str {
    "echoCancel"
  }

  fn input_format(&self) -> Option<Format> {
    Some(self.format)
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String> {
    self.render_pending();
    let ch = self.format.channels as usize;
    to_planes(input, ch, &mut self.cap_in);
    {
      let src: Vec<&[f32]> = self.cap_in.iter().map(|p| p.as_slice()).collect();
      let mut dst: Vec<&mut [f32]> = self.cap_out.iter_mut().map(|p| p.as_mut_slice()).collect();
      self
        .apm
        .process_capture_f32(&src, &mut dst)
        .map_err(|e| format!("AEC3: {e}"))?;
    }
    let start = out.len();
    out.resize(start + input.len(), 0);
    for (i, frame) in out[start..].chunks_exact_mut(ch).enumerate() {
      for (c, s) in frame.iter_mut().enumerate() {
        *s = round_i16_f32(self.cap_out[c][i] * 32768.0);
      }
    }
    // Double talk: the far end talked lately and the canceller left most of the input in.
    let far = self.far_ms.iter().sum::<f64>() / self.far_ms.len() as f64;
    let (mi, mo) = (mean_square(input), mean_square(&out[start..]));
    self.double_talk =
      dbfs(far) > FAR_ACTIVE_DBFS && dbfs(mo) > NEAR_ACTIVE_DBFS && dbfs(mo) - dbfs(mi) > DOUBLE_TALK_RATIO_DB;
    if self.double_talk {
      self.double_talk_chunks += 1;
    } else if dbfs(far) > FAR_ACTIVE_DBFS && dbfs(mi) > NEAR_ACTIVE_DBFS {
      self.echo_in += 0.01 * (mi - self.echo_in);
      self.echo_out += 0.01 * (mo - self.echo_out);
    }
    Ok(())
  }

  fn reset(&mut self) {
    self.apm = build_apm(self.format, self.opts.reference.format(), &self.opts);
    self.cursor = TapCursor::default();
    self.far_ms = [0.0; 30];
    self.double_talk = false;
    self.echo_in = 0.0;
    self.echo_out = 0.0;
  }

  fn delay_ms(&self) -> f64 {
    AEC3_DELAY_MS
  }

  fn health(&self) -> Vec<(&'static str, f64)> {
    let s = self.apm.statistics();
    let mut h = Vec::with_capacity(8);
    if let Some(v) = s.echo_return_loss_enhancement {
      h.push(("erleDb", v));
    }
    if let Some(v) = s.echo_return_loss {
      h.push(("erlDb", v));
    }
    if let Some(v) = s.delay_ms {
      h.push(("delayMs", v as f64));
    }
    if let Some(v) = s.divergent_filter_fraction {
      h.push(("divergentFilterFraction", v));
    }
    if self.echo_in > 0.0 {
      h.push(("echoRemovedDb", dbfs(self.echo_in) - dbfs(self.echo_out)));
    }
    h.push(("doubleTalk", if self.double_talk { 1.0 } else { 0.0 }));
    h.push(("doubleTalkMs", self.double_talk_chunks as f64 * 10.0));
    h.push(("referenceMs", self.render_chunks as f64 * 10.0));
    h.push(("referenceSkippedMs", self.cursor.skipped as f64 * 10.0));
    h
  }
}
