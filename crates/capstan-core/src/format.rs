//! Audio formats and the 10 ms chunk they imply.

use crate::error::{CoreError, Result};

pub const MIN_RATE: u32 = 8_000;
pub const MAX_RATE: u32 = 192_000;
pub const MAX_CHANNELS: u16 = 8;
/// The engine's step: every chunk is exactly this long.
pub const CHUNK_MS: u32 = 10;
/// Chunks per second: a rate must divide by this for a chunk to be whole samples.
pub const CHUNKS_PER_SECOND: u32 = 1000 / CHUNK_MS;

/// Interleaved signed 16-bit PCM at a fixed rate and channel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
  pub sample_rate: u32,
  pub channels: u16,
}

impl Format {
  /// Validates the contract's ranges; rates must give whole 10 ms chunks.
  pub fn new(sample_rate: u32, channels: u16) -> Result<Self> {
    if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
      return Err(CoreError::InvalidOption(format!(
        "sampleRate must be {MIN_RATE}..={MAX_RATE} Hz, got {sample_rate}"
      )));
    }
    if !sample_rate.is_multiple_of(CHUNKS_PER_SECOND) {
      return Err(CoreError::InvalidOption(format!(
        "sampleRate must be divisible by {CHUNKS_PER_SECOND} so a {CHUNK_MS} ms chunk is whole, got {sample_rate}"
      )));
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
      return Err(CoreError::InvalidOption(format!(
        "channels must be 1..={MAX_CHANNELS}, got {channels}"
      )));
    }
    Ok(Format { sample_rate, channels })
  }

  /// Samples per channel in one 10 ms chunk (441 at 44.1 kHz).
  pub fn chunk_frames(&self) -> usize {
    (self.sample_rate / CHUNKS_PER_SECOND) as usize
  }

  /// Interleaved samples in one 10 ms chunk.
  pub fn chunk_len(&self) -> usize {
    self.chunk_frames() * self.channels as usize
  }

  /// Milliseconds of audio in `samples` interleaved samples.
  pub fn samples_to_ms(&self, samples: usize) -> f64 {
    samples as f64 * 1000.0 / (self.sample_rate as f64 * self.channels as f64)
  }

  /// Checks a frame's declared format against this one.
  pub fn check_frame(&self, sample_rate: u32, channels: u16) -> Result<()> {
    if sample_rate != self.sample_rate || channels != self.channels {
      return Err(CoreError::FormatMismatch(format!(
        "frame is {sample_rate} Hz / {channels} ch, source is {} Hz / {} ch",
        self.sample_rate, self.channels
      )));
    }
    Ok(())
  }

  /// Checks a frame's sample count: non-empty and whole frames for every channel.
  pub fn check_len(&self, len: usize) -> Result<()> {
    if len == 0 {
      return Err(CoreError::InvalidFrame(
        "frame has no samples (empty or detached buffer)".into(),
      ));
    }
    if len % self.channels as usize != 0 {
      return Err(CoreError::InvalidFrame(format!(
        "frame length {len} is not a multiple of {} channels",
        self.channels
      )));
    }
    Ok(())
  }
}

/// A frame's declared rate and channel count as JavaScript numbers: anything that is not
/// a whole number in range cannot match a source's format.
pub fn declared(sample_rate: Option<f64>, channels: Option<f64>) -> Result<(Option<u32>, Option<u16>)> {
  let bad = |what: &str, v: f64| CoreError::FormatMismatch(format!("frame {what} {v} matches no source format"));
  let sr = match sample_rate {
    Some(v) if v.fract() != 0.0 || !(0.0..=u32::MAX as f64).contains(&v) => return Err(bad("sampleRate", v)),
    v => v.map(|v| v as u32),
  };
  let ch = match channels {
    Some(v) if v.fract() != 0.0 || !(0.0..=u16::MAX as f64).contains(&v) => return Err(bad("channels", v)),
    v => v.map(|v| v as u16),
  };
  Ok((sr, ch))
}

/// Converts float PCM in [-1, 1] to i16, clipping; NaN is a caller bug, not audio.
pub fn f32_to_i16(input: &[f32], out: &mut Vec<i16>) -> Result<()> {
  out.clear();
  out.reserve(input.len());
  for (i, &x) in input.iter().enumerate() {
    if x.is_nan() {
      return Err(CoreError::InvalidFrame(format!("sample {i} is NaN")));
    }
    let clipped = x.clamp(-1.0, 1.0);
    out.push((clipped * 32767.0).round() as i16);
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn chunk_sizes() {
    assert_eq!(Format::new(44_100, 1).unwrap().chunk_frames(), 441);
    assert_eq!(Format::new(48_000, 2).unwrap().chunk_len(), 960);
    assert_eq!(Format::new(8_000, 1).unwrap().chunk_len(), 80);
  }

  #[test]
  fn rejects_bad_formats() {
    assert_eq!(Format::new(7_999, 1).unwrap_err().code(), "ERR_INVALID_OPTION");
    assert_eq!(Format::new(22_050, 1).unwrap_err().code(), "ERR_INVALID_OPTION");
    assert_eq!(Format::new(192_100, 1).unwrap_err().code(), "ERR_INVALID_OPTION");
    assert_eq!(Format::new(48_000, 0).unwrap_err().code(), "ERR_INVALID_OPTION");
    assert_eq!(Format::new(48_000, 9).unwrap_err().code(), "ERR_INVALID_OPTION");
    let f = Format::new(48_000, 2).unwrap();
    assert_eq!(f.check_len(0).unwrap_err().code(), "ERR_INVALID_FRAME");
    assert_eq!(f.check_len(3).unwrap_err().code(), "ERR_INVALID_FRAME");
    assert_eq!(f.check_frame(16_000, 2).unwrap_err().code(), "ERR_FORMAT_MISMATCH");
    assert_eq!(
      declared(Some(48_000.0 + 4_294_967_296.0), None).unwrap_err().code(),
      "ERR_FORMAT_MISMATCH"
    );
    assert_eq!(
      declared(None, Some(65_537.0)).unwrap_err().code(),
      "ERR_FORMAT_MISMATCH"
    );
    assert_eq!(
      declared(Some(48_000.5), None).unwrap_err().code(),
      "ERR_FORMAT_MISMATCH"
    );
    assert_eq!(declared(Some(48_000.0), Some(2.0)).unwrap(), (Some(48_000), Some(2)));
  }

  #[test]
  fn float_conversion_clips_and_refuses_nan() {
    let mut out = Vec::new();
    f32_to_i16(&[0.0, 1.0, -1.0, 2.0, -3.0, 0.5], &mut out).unwrap();
    assert_eq!(out, vec![0, 32767, -32767, 32767, -32767, 16384]);
    assert_eq!(
      f32_to_i16(&[0.0, f32::NAN], &mut out).unwrap_err().code(),
      "ERR_INVALID_FRAME"
    );
  }
}
