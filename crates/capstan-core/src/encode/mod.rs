//! Encoders: exact 10 ms chunks of PCM in, container bytes out, on engine threads.
//!
//! An encoder never sees JavaScript: the clock pushes chunks into it through the encode
//! sink ([`crate::sink::encode`]), and what it completes comes out as whole [`Piece`]s (an
//! Ogg page, a group of MP3 frames, a block of WAV or PCM) so a bounded queue can drop
//! whole pieces and never leave a torn one. One file per format: [`ogg_opus`], [`mp3`]
//! (LAME, LGPL, behind the `mp3` cargo feature), [`wav`], [`pcm`]. Rates a codec cannot
//! run at are converted first by [`Resampled`] with the engine's own resampler.

#[cfg(feature = "mp3")]
pub mod mp3;
pub mod ogg_opus;
pub mod options;
pub mod pcm;
pub mod wav;

#[cfg(not(feature = "mp3"))]
use crate::error::CoreError;
use crate::error::Result;
use crate::format::Format;
use crate::process::{Processor, Resample};
pub use options::{EncodeOptions, RawEncodeOptions};

/// One unit of output. Queues keep or drop a piece whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
  pub bytes: Vec<u8>,
  /// A stream header (OpusHead/OpusTags, RIFF header): the rest of the segment cannot be
  /// decoded without it, so overflow policies never drop it.
  pub header: bool,
}

impl Piece {
  pub fn data(bytes: Vec<u8>) -> Self {
    Piece { bytes, header: false }
  }

  pub fn header(bytes: Vec<u8>) -> Self {
    Piece { bytes, header: true }
  }
}

/// Encoders take exactly one 10 ms chunk per push; anything else is the caller's bug.
pub(crate) fn check_chunk(format: Format, chunk: &[i16]) -> std::result::Result<(), String> {
  if chunk.len() == format.chunk_len() {
    return Ok(());
  }
  Err(format!(
    "expected a {}-sample chunk, got {}",
    format.chunk_len(),
    chunk.len()
  ))
}

/// What ending a logical stream produced, besides its last pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
  /// Samples per channel of input audio the segment holds (padding excluded), at the
  /// encoder's input rate.
  pub samples: u64,
  /// Bytes to write at offset 0 of a seekable output once the segment is complete (the
  /// WAV header with its real sizes); a pure stream cannot take them and need not.
  pub header_patch: Option<Vec<u8>>,
}

/// A streaming encoder for one format. Headers come with the first push of each logical
/// stream, so a stream with no audio produces no bytes at all.
pub trait Encoder: Send {
  /// The format it takes: one exact 10 ms chunk of it per [`push`](Encoder::push).
  fn format(&self) -> Format;

  /// Encodes one 10 ms chunk, appending the pieces it completes (possibly none: Opus
  /// frames and Ogg pages span several chunks).
  fn push(&mut self, chunk: &[i16], out: &mut Vec<Piece>) -> std::result::Result<(), String> {
    let frames = self.format().chunk_frames();
    self.push_part(chunk, frames, out)
  }

  /// Encodes one 10 ms chunk of which only the first `frames` frames are audio: the rest
  /// is the silence `flush()` padded the segment's last chunk with. Only the chunk right
  /// before a segment's end is partial, so every format can end its file on the input's
  /// exact length (Ogg: the end granule; MP3: LAME's padding; WAV and PCM: the bytes).
  fn push_part(&mut self, chunk: &[i16], frames: usize, out: &mut Vec<Piece>) -> std::result::Result<(), String>;

  /// Ends the logical stream: encodes what is buffered (padding the last frame), writes
  /// the trailer (end-of-stream page, LAME flush). The next push starts a new stream with
  /// new headers, so each segment is a complete file.
  fn finish(&mut self, out: &mut Vec<Piece>) -> std::result::Result<Finished, String>;

  /// Short name for metrics and messages (`"ogg-opus"`).
  fn name(&self) -> &'static str;
}

/// Opus's `application` (what libopus tunes for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Application {
  Voip,
  Audio,
  LowDelay,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpusSettings {
  /// Bits per second; `None` lets libopus choose.
  pub bitrate: Option<i32>,
  /// 0..=10; `None` keeps libopus's default.
  pub complexity: Option<i32>,
  pub application: Application,
  /// 10, 20, 40 or 60.
  pub frame_ms: u32,
  /// Audio per Ogg page, a whole number of frames (a turn detector wants small pages).
  pub page_ms: u32,
  pub dtx: bool,
  /// In-band forward error correction, tuned for `packet_loss_pct`.
  pub fec: bool,
  pub packet_loss_pct: i32,
  /// Rate the codec runs at (8/12/16/24/48 kHz); `None`: the input's if libopus supports
  /// it, else 48 kHz through the resampler.
  pub rate: Option<u32>,
}

impl Default for OpusSettings {
  fn default() -> Self {
    OpusSettings {
      bitrate: None,
      complexity: None,
      application: Application::Voip,
      frame_ms: 20,
      page_ms: 20,
      dtx: false,
      fec: false,
      packet_loss_pct: 0,
      rate: None,
    }
  }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mp3Settings {
  /// CBR bitrate in kbit/s (8..=320 among LAME's steps); ignored with `vbr_quality`.
  pub bitrate_kbps: u32,
  /// VBR quality 0 (best) ..= 9; `None` encodes CBR.
  pub vbr_quality: Option<u8>,
  /// LAME's algorithm quality 0 (best, slowest) ..= 9; `None` keeps LAME's default.
  pub quality: Option<u8>,
}

impl Default for Mp3Settings {
  fn default() -> Self {
    Mp3Settings {
      bitrate_kbps: 64,
      vbr_quality: None,
      quality: None,
    }
  }
}

/// Raw PCM sample encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmSample {
  S16le,
  F32le,
}

/// Which encoder, and how.
#[derive(Debug, Clone, PartialEq)]
pub enum Settings {
  OggOpus(OpusSettings),
  Mp3(Mp3Settings),
  Wav,
  Pcm(PcmSample),
}

impl Settings {
  pub fn name(&self) -> &'static str {
    match self {
      Settings::OggOpus(_) => "ogg-opus",
      Settings::Mp3(_) => "mp3",
      Settings::Wav => "wav",
      Settings::Pcm(PcmSample::S16le) => "pcm-s16le",
      Settings::Pcm(PcmSample::F32le) => "pcm-f32le",
    }
  }

  /// Whether this build can encode it (MP3 needs the `mp3` feature).
  pub fn available(&self) -> bool {
    !matches!(self, Settings::Mp3(_)) || cfg!(feature = "mp3")
  }
}

/// Builds the encoder for audio of `input`, behind a resampler when the codec cannot run
/// at the input's rate.
pub fn build(settings: &Settings, input: Format) -> Result<Box<dyn Encoder>> {
  let inner: Box<dyn Encoder> = match settings {
    Settings::OggOpus(o) => {
      let rate = ogg_opus::codec_rate(o.rate, input.sample_rate)?;
      Box::new(ogg_opus::OggOpus::new(
        o,
        Format::new(rate, input.channels)?,
        input.sample_rate,
      )?)
    }
    #[cfg(feature = "mp3")]
    Settings::Mp3(m) => {
      let rate = mp3::codec_rate(input.sample_rate);
      Box::new(mp3::Mp3::new(m, Format::new(rate, input.channels)?)?)
    }
    #[cfg(not(feature = "mp3"))]
    Settings::Mp3(_) => {
      return Err(CoreError::InvalidOption(
        "mp3 is not in this build (the `mp3` cargo feature is off)".into(),
      ))
    }
    Settings::Wav => Box::new(wav::Wav::new(input)),
    Settings::Pcm(s) => Box::new(pcm::Pcm::new(input, *s)),
  };
  if inner.format().sample_rate == input.sample_rate {
    Ok(inner)
  } else {
    Ok(Box::new(Resampled::new(input, inner)?))
  }
}

/// An encoder behind the engine's FFT resampler: one 10 ms chunk in is one 10 ms chunk
/// at the codec's rate out, so lengths in chunks are kept (the content is delayed by the
/// resampler's 5 ms).
pub struct Resampled {
  input: Format,
  resample: Resample,
  buf: Vec<i16>,
  inner: Box<dyn Encoder>,
}

impl Resampled {
  pub fn new(input: Format, inner: Box<dyn Encoder>) -> Result<Self> {
    let resample = Resample::new(input, inner.format().sample_rate)?;
    Ok(Resampled {
      input,
      resample,
      buf: Vec::with_capacity(inner.format().chunk_len()),
      inner,
    })
  }
}

impl Encoder for Resampled {
  fn format(&self) -> Format {
    self.input
  }

  fn push_part(&mut self, chunk: &[i16], frames: usize, out: &mut Vec<Piece>) -> std::result::Result<(), String> {
    self.buf.clear();
    self.resample.process(chunk, &mut self.buf)?;
    let (from, to) = (
      self.input.sample_rate as usize,
      self.inner.format().sample_rate as usize,
    );
    let inner = self.inner.format().chunk_frames();
    let frames = if frames >= self.input.chunk_frames() {
      inner
    } else {
      ((frames * to + from / 2) / from).min(inner)
    };
    self.inner.push_part(&self.buf, frames, out)
  }

  fn finish(&mut self, out: &mut Vec<Piece>) -> std::result::Result<Finished, String> {
    let mut f = self.inner.finish(out)?;
    // Reported at the input's rate, like every other encoder.
    let (from, to) = (self.inner.format().sample_rate as u64, self.input.sample_rate as u64);
    f.samples = f.samples * to / from;
    self.resample.reset();
    Ok(f)
  }

  fn name(&self) -> &'static str {
    self.inner.name()
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn opus_at_an_unsupported_rate_is_resampled_and_keeps_chunk_lengths() {
    let input = Format::new(44_100, 1).unwrap();
    let mut e = build(&Settings::OggOpus(OpusSettings::default()), input).unwrap();
    assert_eq!(e.format(), input);
    let mut out = Vec::new();
    for _ in 0..50 {
      e.push(&vec![1000; input.chunk_len()], &mut out).unwrap();
    }
    let f = e.finish(&mut out).unwrap();
    assert_eq!(f.samples, 50 * 441);
    assert!(out.iter().any(|p| p.header) && out.iter().any(|p| !p.header));
  }

  #[test]
  fn a_partial_last_chunk_counts_only_its_audio_at_every_rate() {
    for (rate, settings) in [
      (48_000, Settings::OggOpus(OpusSettings::default())),
      (44_100, Settings::OggOpus(OpusSettings::default())),
      (16_000, Settings::Wav),
      (32_000, Settings::Pcm(PcmSample::S16le)),
    ] {
      let input = Format::new(rate, 2).unwrap();
      let mut e = build(&settings, input).unwrap();
      let mut out = Vec::new();
      for _ in 0..7 {
        e.push(&vec![1000; input.chunk_len()], &mut out).unwrap();
      }
      let part = input.chunk_frames() / 3;
      e.push_part(&vec![1000; input.chunk_len()], part, &mut out).unwrap();
      let f = e.finish(&mut out).unwrap();
      let want = 7 * input.chunk_frames() as u64 + part as u64;
      // Through a resampler the count is converted twice, each time to the nearest frame.
      assert!(f.samples.abs_diff(want) <= 1, "{rate}: {} vs {want}", f.samples);
    }
  }

  #[test]
  fn unavailable_formats_say_so() {
    assert_eq!(Settings::Mp3(Mp3Settings::default()).available(), cfg!(feature = "mp3"));
    assert_eq!(Settings::Pcm(PcmSample::F32le).name(), "pcm-f32le");
  }
}
