//! Automatic gain, AGC2-style: a speech level estimate (10 ms RMS, averaged over chunks an
//! energy gate calls speech), a gain that moves toward `target - level` no faster than
//! `maxGainChangeDbPerSecond` (interpolated sample by sample, so no zipper noise), and a
//! peak limiter behind it (instant attack, 50 ms release) so no sample exceeds
//! `limiterDbfs`. Either direction: it runs wherever a chain does.

use super::processor::{round_i16, Processor};
use crate::error::{CoreError, Result};
use crate::format::Format;

#[derive(Debug, Clone, PartialEq)]
pub struct AutoGainOptions {
  /// Speech RMS level to reach, dBFS (−60..=−1, default −18).
  pub target_dbfs: f64,
  /// Most gain applied, dB (0..=60, default 30).
  pub max_gain_db: f64,
  /// Most attenuation applied, dB (0..=60, default 20).
  pub max_attenuation_db: f64,
  /// Slew limit of the gain, dB per second (0.1..=100, default 6, AGC2's).
  pub max_gain_change_db_per_second: f64,
  /// Peak ceiling after the gain, dBFS (−20..=0, default −1).
  pub limiter_dbfs: f64,
  /// Chunks quieter than this (before gain) are not speech and leave the level alone
  /// (−90..=−10, default −50).
  pub speech_threshold_dbfs: f64,
}

impl Default for AutoGainOptions {
  fn default() -> Self {
    AutoGainOptions {
      target_dbfs: -18.0,
      max_gain_db: 30.0,
      max_attenuation_db: 20.0,
      max_gain_change_db_per_second: 6.0,
      limiter_dbfs: -1.0,
      speech_threshold_dbfs: -50.0,
    }
  }
}

fn check(name: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
  if !v.is_finite() || !(lo..=hi).contains(&v) {
    return Err(CoreError::InvalidOption(format!(
      "autoGain: {name} must be a number in {lo}..={hi}, got {v}"
    )));
  }
  Ok(())
}

impl AutoGainOptions {
  pub fn validate(&self) -> Result<()> {
    check("targetDbfs", self.target_dbfs, -60.0, -1.0)?;
    check("maxGainDb", self.max_gain_db, 0.0, 60.0)?;
    check("maxAttenuationDb", self.max_attenuation_db, 0.0, 60.0)?;
    check(
      "maxGainChangeDbPerSecond",
      self.max_gain_change_db_per_second,
      0.1,
      100.0,
    )?;
    check("limiterDbfs", self.limiter_dbfs, -20.0, 0.0)?;
    check("speechThresholdDbfs", self.speech_threshold_dbfs, -90.0, -10.0)?;
    if self.target_dbfs > self.limiter_dbfs {
      return Err(CoreError::InvalidOption(format!(
        "autoGain: targetDbfs ({}) must not exceed limiterDbfs ({})",
        self.target_dbfs, self.limiter_dbfs
      )));
    }
    Ok(())
  }
}

/// Level estimate time constant in speech chunks (~0.5 s of speech), after a fast start.
const LEVEL_CHUNKS: f64 = 50.0;
const LIMITER_RELEASE_MS: f64 = 50.0;

pub struct AutoGain {
  format: Format,
  opts: AutoGainOptions,
  /// Speech power estimate (mean square, full scale 1.0); `None` until the first speech.
  level: Option<f64>,
  speech_chunks: u64,
  /// Gain applied at the end of the last chunk, dB.
  gain_db: f64,
  limiter_gain: f64,
  limiter_release: f64,
  limit: f64,
  /// Deepest limiter reduction in the last chunk, dB (≤ 0).
  limiter_db: f64,
  limited_chunks: u64,
}

impl AutoGain {
  pub fn new(format: Format, opts: AutoGainOptions) -> Result<Self> {
    opts.validate()?;
    let release = (-1.0 / (LIMITER_RELEASE_MS / 1000.0 * format.sample_rate as f64)).exp();
    Ok(AutoGain {
      format,
      limit: 10f64.powf(opts.limiter_dbfs / 20.0) * 32767.0,
      opts,
      level: None,
      speech_chunks: 0,
      gain_db: 0.0,
      limiter_gain: 1.0,
      limiter_release: release,
      limiter_db: 0.0,
      limited_chunks: 0,
    })
  }

  pub fn gain_db(&self) -> f64 {
    self.gain_db
  }

  pub fn speech_level_dbfs(&self) -> Option<f64> {
    self.level.map(|p| 10.0 * p.max(1e-12).log10())
  }
}

impl Processor for AutoGain {
  fn name(&self) -> &str {
    "autoGain"
  }

  fn input_format(&self) -> Option<Format> {
    Some(self.format)
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String> {
    let ms = input.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum::<f64>() / input.len().max(1) as f64;
    let chunk_db = 10.0 * ms.max(1e-12).log10();
    if chunk_db > self.opts.speech_threshold_dbfs {
      self.speech_chunks += 1;
      // Fast at first (a running mean), then an exponential average over ~0.5 s of speech.
      let w = 1.0 / (self.speech_chunks as f64).min(LEVEL_CHUNKS);
      self.level = Some(match self.level {
        None => ms,
        Some(l) => l + w * (ms - l),
      });
    }
    let want = match self.speech_level_dbfs() {
      Some(level) => (self.opts.target_dbfs - level).clamp(-self.opts.max_attenuation_db, self.opts.max_gain_db),
      None => self.gain_db,
    };
    let step = self.opts.max_gain_change_db_per_second / 100.0;
    let from = self.gain_db;
    let to = from + (want - from).clamp(-step, step);
    self.gain_db = to;
    let frames = self.format.chunk_frames();
    let ch = self.format.channels as usize;
    let (g0, g1) = (10f64.powf(from / 20.0), 10f64.powf(to / 20.0));
    let start = out.len();
    out.resize(start + input.len(), 0);
    let mut deepest = 1.0f64;
    for (i, (fin, fout)) in input
      .chunks_exact(ch)
      .zip(out[start..].chunks_exact_mut(ch))
      .enumerate()
    {
      let g = g0 + (g1 - g0) * (i + 1) as f64 / frames as f64;
      let peak = fin.iter().map(|&s| (s as f64 * g).abs()).fold(0.0, f64::max);
      // Release toward unity, attack at once: the frame's peak never exceeds the limit.
      self.limiter_gain = 1.0 - (1.0 - self.limiter_gain) * self.limiter_release;
      if peak * self.limiter_gain > self.limit {
        self.limiter_gain = self.limit / peak;
      }
      deepest = deepest.min(self.limiter_gain);
      for (y, &x) in fout.iter_mut().zip(fin) {
        *y = round_i16(x as f64 * g * self.limiter_gain);
      }
    }
    self.limiter_db = 20.0 * deepest.log10();
    if deepest < 1.0 {
      self.limited_chunks += 1;
    }
    Ok(())
  }

  fn reset(&mut self) {
    self.level = None;
    self.speech_chunks = 0;
    self.gain_db = 0.0;
    self.limiter_gain = 1.0;
    self.limiter_db = 0.0;
  }

  fn health(&self) -> Vec<(&'static str, f64)> {
    let mut h = vec![
      ("gainDb", self.gain_db),
      ("limiterDb", self.limiter_db),
      ("limitedMs", self.limited_chunks as f64 * 10.0),
    ];
    if let Some(l) = self.speech_level_dbfs() {
      h.push(("speechLevelDbfs", l));
    }
    h
  }
}
