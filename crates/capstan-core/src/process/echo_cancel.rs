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
//!
//! `doubleTalk: 'preserve'` replaces AEC3 with [`KalmanEcho`](super::kalman_echo): AEC3's
//! suppressor takes the near end down by about 10 dB while both ends talk (double-talk SNR
//! 2–4 dB on the benchmark room, where the issue asks 15), while the Kalman filter keeps it
//! (18–22 dB), with a first-cycle ERLE of 31 dB (AEC3 26), a fixed 320 ms reach for delay
//! plus room tail, and a residual-echo estimate that is linear.

use std::collections::VecDeque;
use std::sync::Arc;

use sonora::config::{EchoCanceller, NoiseSuppression, NoiseSuppressionLevel};
use sonora::{AudioProcessing, Config, StreamConfig};

use super::kalman_echo::KalmanEcho;
use super::processor::{round_i16_f32, Processor};
use super::reference::{ReferenceTap, TapCursor, TAP_CHUNKS};
use crate::error::{CoreError, Result};
use crate::format::{Format, CHUNK_MS};

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

/// What the canceller does while both ends talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DoubleTalk {
  /// AEC3: strongest echo removal from the first seconds on; the near end is turned down
  /// with the echo while both talk.
  #[default]
  Suppress,
  /// The Kalman filter and its postfilter: the near end kept whole in double talk.
  Preserve,
}

impl DoubleTalk {
  pub fn parse(s: &str) -> Result<Self> {
    match s {
      "suppress" => Ok(Self::Suppress),
      "preserve" => Ok(Self::Preserve),
      _ => Err(CoreError::InvalidOption(format!(
        "echoCancel: doubleTalk must be 'suppress' or 'preserve', got '{s}'"
      ))),
    }
  }
}

/// Filter length of the `preserve` canceller, in 10 ms blocks: delay plus room tail.
const KALMAN_BLOCKS: usize = 32;
/// Reference chunks held for the `preserve` canceller (its pairing may lag the newest by
/// up to this much before it realigns).
const FAR_BACKLOG_CHUNKS: usize = 64;
/// `preserve` pairs each capture chunk with the reference chunk this many behind the newest
/// one delivered when pairing starts or realigns: the margin for a capture chunk processed
/// ahead of its reference (a stream's pass, a wall-clock feed's jitter).
const PAIR_LAG_CHUNKS: i64 = 3;
/// `preserve` realigns forward when the pairing lagged the newest reference by more than
/// the margin plus this over a whole window (the near end lost audio, so it now runs ahead).
const PAIR_SLACK_CHUNKS: i64 = 12;
/// The window (capture chunks) over which the pairing's smallest lag is taken.
const PAIR_WINDOW_CHUNKS: u32 = 100;

/// `processors.echoCancel({ reference, highPass = false, noiseSuppression = 'off',
/// doubleTalk = 'suppress' })`.
#[derive(Clone)]
pub struct EchoCancelOptions {
  /// What the far-end source delivered.
  pub reference: Arc<ReferenceTap>,
  /// WebRTC's 80 Hz high-pass before AEC3 (its default in WebRTC; off here because it
  /// changes the near end's waveform and `highPass()` exists as its own processor).
  pub high_pass: bool,
  pub noise_suppression: EchoNoiseSuppression,
  pub double_talk: DoubleTalk,
}

impl std::fmt::Debug for EchoCancelOptions {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("EchoCancelOptions")
      .field("reference", &self.reference.format())
      .field("high_pass", &self.high_pass)
      .field("noise_suppression", &self.noise_suppression)
      .field("double_talk", &self.double_talk)
      .finish()
  }
}

impl PartialEq for EchoCancelOptions {
  fn eq(&self, o: &Self) -> bool {
    Arc::ptr_eq(&self.reference, &o.reference)
      && self.high_pass == o.high_pass
      && self.noise_suppression == o.noise_suppression
      && self.double_talk == o.double_talk
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
  /// AEC3 (`suppress`), or one Kalman canceller per capture channel (`preserve`).
  apm: Option<AudioProcessing>,
  kalman: Vec<KalmanEcho>,
  /// `preserve`: the reference, downmixed, waiting for its capture chunk.
  /// `preserve`: the reference delivered lately (newest at the back), its end as a chunk
  /// count since the first read, and the reference chunk the next capture chunk pairs with.
  far: VecDeque<f32>,
  far_end: i64,
  pair: Option<i64>,
  /// The smallest lag of the pairing behind the newest reference: this window's so far
  /// (chunks in it), and since the pairing was set (the delay estimate adds it to the
  /// filter's: a capture chunk is processed no earlier than it arrived).
  lag_min: i64,
  lag_floor: Option<i64>,
  lag_chunks: u32,
  realigned: u64,
  far_block: Vec<f32>,
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

fn build(format: Format, reference: Format, opts: &EchoCancelOptions) -> (Option<AudioProcessing>, Vec<KalmanEcho>) {
  match opts.double_talk {
    DoubleTalk::Suppress => (Some(build_apm(format, reference, opts)), Vec::new()),
    DoubleTalk::Preserve => (
      None,
      (0..format.channels)
        .map(|_| KalmanEcho::new(format.chunk_frames(), KALMAN_BLOCKS))
        .collect(),
    ),
  }
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
    if opts.double_talk == DoubleTalk::Preserve && reference.sample_rate != format.sample_rate {
      return Err(CoreError::InvalidOption(format!(
        "echoCancel: doubleTalk 'preserve' needs the reference at the stream's rate ({} Hz), got {} Hz",
        format.sample_rate, reference.sample_rate
      )));
    }
    let (apm, kalman) = build(format, reference, &opts);
    Ok(EchoCancel {
      format,
      apm,
      kalman,
      far: VecDeque::with_capacity(FAR_BACKLOG_CHUNKS * format.chunk_frames()),
      far_end: 0,
      pair: None,
      lag_min: i64::MAX,
      lag_floor: None,
      lag_chunks: 0,
      realigned: 0,
      far_block: vec![0.0; format.chunk_frames()],
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

  /// The echo path delay estimate, in milliseconds (the far end's delivery to its echo):
  /// AEC3's, or the Kalman filter's largest tap.
  pub fn delay_estimate_ms(&self) -> Option<f64> {
    match &self.apm {
      Some(apm) => apm.statistics().delay_ms.map(|d| d as f64),
      // The filter sees the echo behind the reference it was paired with, which lags the
      // newest by at least the window's smallest lag.
      None => self.kalman[0].delay_frames().map(|d| {
        d as f64 * 1000.0 / self.format.sample_rate as f64 + self.lag_floor.unwrap_or(0) as f64 * CHUNK_MS as f64
      }),
    }
  }

  /// AEC3's echo return loss enhancement (its own estimate), in dB; `None` in `preserve`.
  pub fn erle_db(&self) -> Option<f64> {
    self.apm.as_ref()?.statistics().echo_return_loss_enhancement
  }

  fn render_pending(&mut self) {
    let tap = self.opts.reference.clone();
    let rch = tap.format().channels as usize;
    let backlog = FAR_BACKLOG_CHUNKS * self.format.chunk_frames();
    let skipped = self.cursor.skipped;
    let (ren_in, ren_out, apm, far, far_ms, far_at) = (
      &mut self.ren_in,
      &mut self.ren_out,
      &mut self.apm,
      &mut self.far,
      &mut self.far_ms,
      &mut self.far_at,
    );
    let mut errors = 0;
    let n = tap.read(&mut self.cursor, TAP_CHUNKS, |chunk| {
      match apm {
        Some(apm) => {
          to_planes(chunk, rch, ren_in);
          let src: Vec<&[f32]> = ren_in.iter().map(|p| p.as_slice()).collect();
          let mut dst: Vec<&mut [f32]> = ren_out.iter_mut().map(|p| p.as_mut_slice()).collect();
          if apm.process_render_f32(&src, &mut dst).is_err() {
            errors += 1;
          }
        }
        // Past the backlog the oldest frames were played long ago: drop them.
        None => {
          let scale = 1.0 / (32768.0 * rch as f32);
          far.extend(
            chunk
              .chunks_exact(rch)
              .map(|f| f.iter().map(|&s| s as f32).sum::<f32>() * scale),
          );
          let excess = far.len().saturating_sub(backlog);
          far.drain(..excess);
        }
      }
      far_ms[*far_at % far_ms.len()] = mean_square(chunk);
      *far_at += 1;
    });
    self.render_chunks += n as u64;
    self.render_errors += errors;
    self.far_end += n as i64 + (self.cursor.skipped - skipped) as i64;
  }

  /// `preserve`: the reference chunk for the next capture chunk, into `far_block`. Pairing
  /// is by count, set once (and realigned only when it must), never by popping what came
  /// since the last chunk: a capture chunk processed a little early or late (a stream's pass
  /// takes its queued chunks together; a wall-clock feed jitters) then pairs with the same
  /// reference it would have, and the echo path the filter learned stays where it was.
  fn pair_next(&mut self) {
    let (n, end) = (self.format.chunk_frames(), self.far_end);
    let held = (self.far.len() / n) as i64;
    let mut at = *self.pair.get_or_insert(end - 1 - PAIR_LAG_CHUNKS);
    // Ahead of what has been delivered, or behind what is held: start again from the newest.
    if at >= end || (at < end - held && at >= 0) {
      at = end - 1 - PAIR_LAG_CHUNKS;
      self.realigned += 1;
      self.lag_floor = None;
    }
    let lag = end - 1 - at;
    self.lag_min = self.lag_min.min(lag);
    self.lag_floor = Some(self.lag_floor.map_or(lag, |f| f.min(lag)));
    self.lag_chunks += 1;
    if self.lag_chunks >= PAIR_WINDOW_CHUNKS {
      // Lagging far more than the margin for a whole window: the near end runs ahead now.
      if self.lag_min > PAIR_LAG_CHUNKS + PAIR_SLACK_CHUNKS {
        at += self.lag_min - PAIR_LAG_CHUNKS;
        self.realigned += 1;
        self.lag_floor = Some(PAIR_LAG_CHUNKS);
      }
      self.lag_min = i64::MAX;
      self.lag_chunks = 0;
    }
    let from_back = end - at; // 1 = the newest chunk held
    if at < 0 || from_back > held {
      self.far_block.fill(0.0);
    } else {
      let start = self.far.len() - from_back as usize * n;
      for (v, s) in self.far_block.iter_mut().zip(self.far.range(start..start + n)) {
        *v = *s;
      }
    }
    self.pair = Some(at + 1);
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
    match &mut self.apm {
      Some(apm) => {
        let src: Vec<&[f32]> = self.cap_in.iter().map(|p| p.as_slice()).collect();
        let mut dst: Vec<&mut [f32]> = self.cap_out.iter_mut().map(|p| p.as_mut_slice()).collect();
        apm
          .process_capture_f32(&src, &mut dst)
          .map_err(|e| format!("AEC3: {e}"))?;
      }
      None => {
        self.pair_next();
        for (k, (i, o)) in self
          .kalman
          .iter_mut()
          .zip(self.cap_in.iter().zip(self.cap_out.iter_mut()))
        {
          k.process(&self.far_block, i, o);
        }
      }
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
    (self.apm, self.kalman) = build(self.format, self.opts.reference.format(), &self.opts);
    self.far.clear();
    self.far_end = 0;
    self.pair = None;
    self.lag_min = i64::MAX;
    self.lag_floor = None;
    self.lag_chunks = 0;
    self.cursor = TapCursor::default();
    self.far_ms = [0.0; 30];
    self.double_talk = false;
    self.echo_in = 0.0;
    self.echo_out = 0.0;
  }

  fn delay_ms(&self) -> f64 {
    match self.opts.double_talk {
      DoubleTalk::Suppress => AEC3_DELAY_MS,
      // The postfilter's overlap-add: one chunk.
      DoubleTalk::Preserve => 10.0,
    }
  }

  fn health(&self) -> Vec<(&'static str, f64)> {
    let mut h = Vec::with_capacity(8);
    if let Some(apm) = &self.apm {
      let s = apm.statistics();
      if let Some(v) = s.echo_return_loss_enhancement {
        h.push(("erleDb", v));
      }
      if let Some(v) = s.echo_return_loss {
        h.push(("erlDb", v));
      }
      if let Some(v) = s.divergent_filter_fraction {
        h.push(("divergentFilterFraction", v));
      }
    }
    if let Some(v) = self.delay_estimate_ms() {
      h.push(("delayMs", v));
    }
    if self.echo_in > 0.0 {
      h.push(("echoRemovedDb", dbfs(self.echo_in) - dbfs(self.echo_out)));
    }
    h.push(("doubleTalk", if self.double_talk { 1.0 } else { 0.0 }));
    h.push(("doubleTalkMs", self.double_talk_chunks as f64 * 10.0));
    h.push(("referenceMs", self.render_chunks as f64 * 10.0));
    h.push(("referenceSkippedMs", self.cursor.skipped as f64 * 10.0));
    if self.apm.is_none() {
      h.push(("referenceRealigned", self.realigned as f64));
    }
    h
  }
}
