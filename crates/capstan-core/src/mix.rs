//! A mixer: several sources mixed into one output source on the engine clock.
//!
//! Each input is an ordinary `pull` source (its own queue, overflow policy, outcomes and
//! accounting: what the mixer takes counts `delivered` there). The output is an ordinary
//! source (any sink: encoder, reader, publisher) whose clock pass, before it takes its own
//! queue, mixes one chunk per tick: one chunk read from each input (an input with nothing
//! queued contributes silence), each times its gain, background inputs times the ducking
//! gain, summed in f64, rounded half away from zero and saturated; the mix is captured into
//! the output's queue (counted `captured` there). A tick on which no input had audio
//! captures nothing, so the output underruns as any idle source does.
//!
//! Clips (`add_clip`) are PCM the mixer holds itself — a looping background bed, a one-shot
//! chime — mixed like an input that always has audio (until a one-shot ends).
//!
//! Ducking (deterministic, so a test can recompute it sample for sample): per chunk, the
//! duck depth moves toward `duckDb` while any speech input's chunk is at or above
//! `thresholdDbfs` (by at most `duckDb · 10 / attackMs` dB per chunk) and back toward 0
//! otherwise (`duckDb · 10 / releaseMs` dB per chunk); within a chunk the linear gain ramps
//! from the last chunk's to this one's, reaching it on the last sample frame.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{CoreError, Result};
use crate::format::{Format, CHUNK_MS};
use crate::options::Consumer;
use crate::process::processor::round_i16;
use crate::source::{Read, Source};

/// Whether an input is speech (it ducks the others) or background (it is ducked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixRole {
  Speech,
  Background,
}

impl MixRole {
  pub fn parse(s: &str) -> Result<Self> {
    match s {
      "speech" => Ok(MixRole::Speech),
      "background" => Ok(MixRole::Background),
      _ => Err(CoreError::InvalidOption(format!(
        "mixer input role must be 'speech' or 'background', got '{s}'"
      ))),
    }
  }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DuckOptions {
  /// How far background inputs go down under speech, dB (0..=60, default 12; 0: no ducking).
  pub duck_db: f64,
  /// A speech chunk at or above this RMS level ducks, dBFS (−90..=0, default −45).
  pub threshold_dbfs: f64,
  /// Time to reach the full depth, ms (10..=5000, default 20).
  pub attack_ms: f64,
  /// Time to come back, ms (10..=10000, default 300).
  pub release_ms: f64,
}

impl Default for DuckOptions {
  fn default() -> Self {
    DuckOptions {
      duck_db: 12.0,
      threshold_dbfs: -45.0,
      attack_ms: 20.0,
      release_ms: 300.0,
    }
  }
}

fn check(name: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
  if !v.is_finite() || !(lo..=hi).contains(&v) {
    return Err(CoreError::InvalidOption(format!(
      "mixer: {name} must be a number in {lo}..={hi}, got {v}"
    )));
  }
  Ok(())
}

impl DuckOptions {
  /// Options as a caller wrote them (absent: the default), validated.
  pub fn from_raw(
    duck_db: Option<f64>,
    threshold_dbfs: Option<f64>,
    attack_ms: Option<f64>,
    release_ms: Option<f64>,
  ) -> Result<Self> {
    let d = DuckOptions::default();
    let o = DuckOptions {
      duck_db: duck_db.unwrap_or(d.duck_db),
      threshold_dbfs: threshold_dbfs.unwrap_or(d.threshold_dbfs),
      attack_ms: attack_ms.unwrap_or(d.attack_ms),
      release_ms: release_ms.unwrap_or(d.release_ms),
    };
    o.validate()?;
    Ok(o)
  }

  pub fn validate(&self) -> Result<()> {
    check("duckDb", self.duck_db, 0.0, 60.0)?;
    check("thresholdDbfs", self.threshold_dbfs, -90.0, 0.0)?;
    check("attackMs", self.attack_ms, 10.0, 5_000.0)?;
    check("releaseMs", self.release_ms, 10.0, 10_000.0)
  }
}

/// Input gains outside this range are typos.
pub const MIN_GAIN_DB: f64 = -120.0;
pub const MAX_GAIN_DB: f64 = 24.0;

struct Input {
  source: Arc<Source>,
  gain_db: f64,
  gain: f64,
  role: MixRole,
}

/// A clip the mixer plays itself (a background bed, a chime): interleaved PCM of the
/// mixer's format, from its start, once or looping.
struct Clip {
  id: u64,
  pcm: Vec<i16>,
  pos: usize,
  looping: bool,
  gain: f64,
  role: MixRole,
}

struct State {
  /// Current duck depth, dB (0 = none).
  depth_db: f64,
  acc: Vec<f64>,
  chunk: Vec<i16>,
  mixed_chunks: u64,
  ducked_chunks: u64,
  clips: Vec<Clip>,
  next_clip: u64,
}

pub struct Mix {
  format: Format,
  duck: DuckOptions,
  inputs: Mutex<Vec<Input>>,
  state: Mutex<State>,
}

/// One input's gain and role as the mixer reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct MixInputStats {
  pub source_id: u64,
  pub gain_db: f64,
  pub role: MixRole,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MixStats {
  pub inputs: Vec<MixInputStats>,
  /// The duck depth now, dB (≥ 0).
  pub duck_db: f64,
  pub mixed_ms: f64,
  pub ducked_ms: f64,
}

fn mean_square_dbfs(x: &[i16]) -> f64 {
  let ms = x.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum::<f64>() / x.len().max(1) as f64;
  10.0 * ms.max(1e-12).log10()
}

impl Mix {
  pub fn new(format: Format, duck: DuckOptions) -> Result<Self> {
    duck.validate()?;
    Ok(Mix {
      format,
      duck,
      inputs: Mutex::new(Vec::new()),
      state: Mutex::new(State {
        depth_db: 0.0,
        acc: vec![0.0; format.chunk_len()],
        chunk: Vec::with_capacity(format.chunk_len()),
        mixed_chunks: 0,
        ducked_chunks: 0,
        clips: Vec::new(),
        next_clip: 1,
      }),
    })
  }

  pub fn format(&self) -> Format {
    self.format
  }

  /// Adds `source` (a `pull` source of the mixer's format) as an input.
  pub fn add_input(&self, source: Arc<Source>, gain_db: f64, role: MixRole) -> Result<()> {
    if source.format() != self.format {
      return Err(CoreError::FormatMismatch(format!(
        "mixer input is {} Hz / {} ch, the mixer {} Hz / {} ch",
        source.format().sample_rate,
        source.format().channels,
        self.format.sample_rate,
        self.format.channels
      )));
    }
    if source.options().consumer != Consumer::Pull {
      return Err(CoreError::InvalidOption("mixer input must be a 'pull' source".into()));
    }
    let mut inputs = self.inputs.lock();
    if inputs.iter().any(|i| Arc::ptr_eq(&i.source, &source)) {
      return Err(CoreError::InvalidOption(
        "source is already an input of this mixer".into(),
      ));
    }
    let gain = Self::gain_factor(gain_db)?;
    inputs.push(Input {
      source,
      gain_db,
      gain,
      role,
    });
    Ok(())
  }

  fn gain_factor(gain_db: f64) -> Result<f64> {
    check("gainDb", gain_db, MIN_GAIN_DB, MAX_GAIN_DB)?;
    Ok(10f64.powf(gain_db / 20.0))
  }

  /// [`add_input`](Self::add_input) as a caller wrote it: `gainDb` (default 0) and `role`
  /// (`'speech'`, the default, or `'background'`).
  pub fn add_input_raw(&self, source: Arc<Source>, gain_db: Option<f64>, role: Option<&str>) -> Result<()> {
    let role = role.map(MixRole::parse).transpose()?.unwrap_or(MixRole::Speech);
    self.add_input(source, gain_db.unwrap_or(0.0), role)
  }

  /// Changes an input's gain (from the next chunk on).
  pub fn set_gain(&self, source_id: u64, gain_db: f64) -> Result<()> {
    let gain = Self::gain_factor(gain_db)?;
    let mut inputs = self.inputs.lock();
    let i = inputs
      .iter_mut()
      .find(|i| i.source.id() == source_id)
      .ok_or_else(|| CoreError::InvalidOption(format!("source {source_id} is not an input of this mixer")))?;
    i.gain_db = gain_db;
    i.gain = gain;
    Ok(())
  }

  /// Adds a clip (interleaved PCM of the mixer's format, whole sample frames) played from
  /// the next chunk on, once (then removed) or looping; returns its id.
  pub fn add_clip(&self, pcm: Vec<i16>, gain_db: f64, role: MixRole, looping: bool) -> Result<u64> {
    let gain = Self::gain_factor(gain_db)?;
    if pcm.is_empty() || !pcm.len().is_multiple_of(self.format.channels as usize) {
      return Err(CoreError::InvalidFrame(format!(
        "a clip needs whole sample frames of {} channel(s), got {} samples",
        self.format.channels,
        pcm.len()
      )));
    }
    let mut st = self.state.lock();
    let id = st.next_clip;
    st.next_clip += 1;
    st.clips.push(Clip {
      id,
      pcm,
      pos: 0,
      looping,
      gain,
      role,
    });
    Ok(id)
  }

  /// [`add_clip`](Self::add_clip) as a caller wrote it: `gainDb` (default 0), `role`
  /// (default `'background'`), `loop` (default true).
  pub fn add_clip_raw(
    &self,
    pcm: Vec<i16>,
    gain_db: Option<f64>,
    role: Option<&str>,
    looping: Option<bool>,
  ) -> Result<u64> {
    let role = role.map(MixRole::parse).transpose()?.unwrap_or(MixRole::Background);
    self.add_clip(pcm, gain_db.unwrap_or(0.0), role, looping.unwrap_or(true))
  }

  /// Stops a clip; false if it was not playing (unknown, or a one-shot that ended).
  pub fn remove_clip(&self, id: u64) -> bool {
    let mut st = self.state.lock();
    let before = st.clips.len();
    st.clips.retain(|c| c.id != id);
    st.clips.len() != before
  }

  /// Clips playing now.
  pub fn clip_count(&self) -> usize {
    self.state.lock().clips.len()
  }

  /// Removes an input (closed inputs are removed by the mixer itself).
  pub fn remove_input(&self, source_id: u64) {
    self.inputs.lock().retain(|i| i.source.id() != source_id);
  }

  pub fn stats(&self) -> MixStats {
    let st = self.state.lock();
    MixStats {
      inputs: self
        .inputs
        .lock()
        .iter()
        .map(|i| MixInputStats {
          source_id: i.source.id(),
          gain_db: i.gain_db,
          role: i.role,
        })
        .collect(),
      duck_db: st.depth_db,
      mixed_ms: st.mixed_chunks as f64 * CHUNK_MS as f64,
      ducked_ms: st.ducked_chunks as f64 * CHUNK_MS as f64,
    }
  }

  /// Mixes one chunk from one chunk of each input; `None` if no input had audio.
  pub fn mix_chunk(&self) -> Option<Vec<i16>> {
    let mut inputs = self.inputs.lock();
    inputs.retain(|i| !i.source.is_closed());
    let mut st = self.state.lock();
    let st = &mut *st;
    st.acc.fill(0.0);
    let mut any = false;
    let mut speech = false;
    // Speech first (it decides the duck depth), then background at the new depth.
    let mut background: Vec<(f64, Vec<i16>)> = Vec::new();
    for i in inputs.iter() {
      let Read::Chunk(c) = i.source.read() else {
        continue;
      };
      any = true;
      match i.role {
        MixRole::Speech => {
          speech |= mean_square_dbfs(&c) >= self.duck.threshold_dbfs;
          for (a, &s) in st.acc.iter_mut().zip(&c) {
            *a += s as f64 * i.gain;
          }
        }
        MixRole::Background => background.push((i.gain, c)),
      }
    }
    drop(inputs);
    // Clips: one chunk each from their position (a one-shot's last chunk is padded with
    // silence, then it leaves; a loop wraps around).
    let len = self.format.chunk_len();
    let mut ended = Vec::new();
    for clip in st.clips.iter_mut() {
      let mut c = Vec::with_capacity(len);
      while c.len() < len {
        if clip.pos >= clip.pcm.len() {
          if !clip.looping {
            break;
          }
          clip.pos = 0;
        }
        let take = (len - c.len()).min(clip.pcm.len() - clip.pos);
        c.extend_from_slice(&clip.pcm[clip.pos..clip.pos + take]);
        clip.pos += take;
      }
      if !clip.looping && clip.pos >= clip.pcm.len() {
        ended.push(clip.id);
      }
      if c.is_empty() {
        continue;
      }
      c.resize(len, 0);
      any = true;
      match clip.role {
        MixRole::Speech => {
          speech |= mean_square_dbfs(&c) >= self.duck.threshold_dbfs;
          for (a, &s) in st.acc.iter_mut().zip(&c) {
            *a += s as f64 * clip.gain;
          }
        }
        MixRole::Background => background.push((clip.gain, c)),
      }
    }
    st.clips.retain(|c| !ended.contains(&c.id));
    if !any {
      return None;
    }
    let from = st.depth_db;
    let to = if speech {
      (from + self.duck.duck_db * CHUNK_MS as f64 / self.duck.attack_ms).min(self.duck.duck_db)
    } else {
      (from - self.duck.duck_db * CHUNK_MS as f64 / self.duck.release_ms).max(0.0)
    };
    st.depth_db = to;
    if to > 0.0 {
      st.ducked_chunks += 1;
    }
    st.mixed_chunks += 1;
    let (g0, g1) = (10f64.powf(-from / 20.0), 10f64.powf(-to / 20.0));
    let frames = self.format.chunk_frames();
    let ch = self.format.channels as usize;
    for (gain, c) in &background {
      for (f, (acc, x)) in st.acc.chunks_exact_mut(ch).zip(c.chunks_exact(ch)).enumerate() {
        let duck = g0 + (g1 - g0) * (f + 1) as f64 / frames as f64;
        for (a, &s) in acc.iter_mut().zip(x) {
          *a += s as f64 * gain * duck;
        }
      }
    }
    st.chunk.clear();
    st.chunk.extend(st.acc.iter().map(|&a| round_i16(a)));
    Some(st.chunk.clone())
  }
}
