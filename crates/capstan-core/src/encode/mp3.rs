//! MP3 through LAME (`mp3lame-encoder`, LAME built from its bundled sources). LAME is
//! LGPL, so this module exists only with the `mp3` cargo feature.
//!
//! Each segment gets its own LAME instance (LAME cannot restart after a flush). The first
//! frame of a segment is LAME's Info/Xing frame; `finish` returns the real one (frame
//! count, encoder delay and padding, so decoders trim to the exact input length) as a
//! header patch for outputs that can seek back to offset 0.

use std::num::NonZeroU32;

use mp3lame_encoder::{Bitrate, Builder, FlushGap, InterleavedPcm, MonoPcm, Quality};

use super::{Encoder, Finished, Mp3Settings, Piece};
use crate::error::{CoreError, Result};
use crate::format::Format;

/// Rates an MPEG-1/2/2.5 layer III stream can carry.
pub const RATES: [u32; 9] = [8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];
const BITRATES: [u32; 16] = [8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];

/// The input's rate if MP3 carries it, else 48 kHz through the resampler.
pub fn codec_rate(input_rate: u32) -> u32 {
  if RATES.contains(&input_rate) {
    input_rate
  } else {
    48_000
  }
}

pub fn validate(s: &Mp3Settings, channels: u16) -> Result<()> {
  if !(1..=2).contains(&channels) {
    return Err(CoreError::InvalidOption(format!(
      "mp3 encodes 1 or 2 channels, got {channels}"
    )));
  }
  if !BITRATES.contains(&s.bitrate_kbps) {
    return Err(CoreError::InvalidOption(format!(
      "mp3 bitrate must be one of {BITRATES:?} kbit/s, got {}",
      s.bitrate_kbps
    )));
  }
  for (name, v) in [("vbrQuality", s.vbr_quality), ("quality", s.quality)] {
    if v.is_some_and(|q| q > 9) {
      return Err(CoreError::InvalidOption(format!(
        "{name} must be 0..=9, got {}",
        v.unwrap()
      )));
    }
  }
  Ok(())
}

fn bitrate(kbps: u32) -> Bitrate {
  match kbps {
    8 => Bitrate::Kbps8,
    16 => Bitrate::Kbps16,
    24 => Bitrate::Kbps24,
    32 => Bitrate::Kbps32,
    40 => Bitrate::Kbps40,
    48 => Bitrate::Kbps48,
    64 => Bitrate::Kbps64,
    80 => Bitrate::Kbps80,
    96 => Bitrate::Kbps96,
    112 => Bitrate::Kbps112,
    128 => Bitrate::Kbps128,
    160 => Bitrate::Kbps160,
    192 => Bitrate::Kbps192,
    224 => Bitrate::Kbps224,
    256 => Bitrate::Kbps256,
    _ => Bitrate::Kbps320,
  }
}

fn quality(q: u8) -> Quality {
  [
    Quality::Best,
    Quality::SecondBest,
    Quality::NearBest,
    Quality::VeryNice,
    Quality::Nice,
    Quality::Good,
    Quality::Decent,
    Quality::Ok,
    Quality::SecondWorst,
    Quality::Worst,
  ][q.min(9) as usize]
}

pub struct Mp3 {
  settings: Mp3Settings,
  format: Format,
  lame: Option<mp3lame_encoder::Encoder>,
  samples: u64,
  buf: Vec<u8>,
}

impl Mp3 {
  pub fn new(s: &Mp3Settings, format: Format) -> Result<Self> {
    validate(s, format.channels)?;
    if !RATES.contains(&format.sample_rate) {
      return Err(CoreError::InvalidOption(format!(
        "mp3 cannot carry {} Hz",
        format.sample_rate
      )));
    }
    let mut m = Mp3 {
      settings: s.clone(),
      format,
      lame: None,
      samples: 0,
      buf: Vec::new(),
    };
    // Built once here so bad settings fail at construction, not on an engine thread.
    m.lame = Some(m.open().map_err(CoreError::InvalidOption)?);
    Ok(m)
  }

  fn open(&self) -> std::result::Result<mp3lame_encoder::Encoder, String> {
    let e = |e: mp3lame_encoder::BuildError| format!("LAME refused the settings: {e:?}");
    let mut b = Builder::new().ok_or("LAME could not allocate an encoder")?;
    b.set_num_channels(self.format.channels as u8).map_err(e)?;
    b.set_sample_rate(self.format.sample_rate).map_err(e)?;
    b.set_output_sample_rate(NonZeroU32::new(self.format.sample_rate))
      .map_err(e)?;
    match self.settings.vbr_quality {
      Some(q) => {
        b.set_vbr_mode(mp3lame_encoder::VbrMode::Mtrh).map_err(e)?;
        b.set_vbr_quality(quality(q)).map_err(e)?;
      }
      None => {
        b.set_vbr_mode(mp3lame_encoder::VbrMode::Off).map_err(e)?;
        b.set_brate(bitrate(self.settings.bitrate_kbps)).map_err(e)?;
      }
    }
    if let Some(q) = self.settings.quality {
      b.set_quality(quality(q)).map_err(e)?;
    }
    b.set_to_write_vbr_tag(true).map_err(e)?;
    b.build().map_err(e)
  }
}

impl Encoder for Mp3 {
  fn format(&self) -> Format {
    self.format
  }

  fn push_part(&mut self, chunk: &[i16], frames: usize, out: &mut Vec<Piece>) -> std::result::Result<(), String> {
    super::check_chunk(self.format, chunk)?;
    // LAME takes any length: fed only the audio, its tag's padding ends the file exactly.
    let frames = frames.min(self.format.chunk_frames());
    let chunk = &chunk[..frames * self.format.channels as usize];
    if self.lame.is_none() {
      self.lame = Some(self.open()?);
    }
    let lame = self.lame.as_mut().expect("opened above");
    self.buf.clear();
    self.buf.reserve(chunk.len() * 5 / 4 + 7200);
    let r = if self.format.channels == 1 {
      lame.encode_to_vec(MonoPcm(chunk), &mut self.buf)
    } else {
      lame.encode_to_vec(InterleavedPcm(chunk), &mut self.buf)
    };
    r.map_err(|e| format!("LAME encode failed: {e:?}"))?;
    self.samples += frames as u64;
    if !self.buf.is_empty() {
      out.push(Piece::data(std::mem::take(&mut self.buf)));
    }
    Ok(())
  }

  fn finish(&mut self, out: &mut Vec<Piece>) -> std::result::Result<Finished, String> {
    let samples = std::mem::take(&mut self.samples);
    if samples == 0 {
      return Ok(Finished::default());
    }
    let Some(mut lame) = self.lame.take() else {
      return Ok(Finished::default());
    };
    let mut tail = Vec::with_capacity(7200);
    lame
      .flush_to_vec::<FlushGap>(&mut tail)
      .map_err(|e| format!("LAME flush failed: {e:?}"))?;
    if !tail.is_empty() {
      out.push(Piece::data(tail));
    }
    let mut tag = Vec::with_capacity(2880);
    let patch = lame.lame_tag_encode_to_vec(&mut tag).map(|_| tag);
    Ok(Finished {
      samples,
      header_patch: patch,
    })
  }

  fn name(&self) -> &'static str {
    "mp3"
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  /// Walks MPEG-1 layer III frames (48 kHz here) header to header; panics on a torn one.
  fn frames(bytes: &[u8]) -> usize {
    const KBPS: [usize; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
      assert!(
        bytes[i] == 0xFF && bytes[i + 1] & 0xFE == 0xFA,
        "no frame header at {i}"
      );
      let kbps = KBPS[(bytes[i + 2] >> 4) as usize];
      let pad = ((bytes[i + 2] >> 1) & 1) as usize;
      i += 144_000 * kbps / 48_000 + pad;
      n += 1;
    }
    assert_eq!(i, bytes.len(), "last frame cut short");
    n
  }

  #[test]
  fn cbr_segments_are_whole_mpeg_streams_with_a_lame_tag() {
    let f = Format::new(48_000, 1).unwrap();
    let mut m = Mp3::new(&Mp3Settings::default(), f).unwrap();
    let mut out = Vec::new();
    for i in 0..100 {
      let c: Vec<i16> = (0..480)
        .map(|k| (((i * 480 + k) as f64 * 0.0576).sin() * 8000.0) as i16)
        .collect();
      m.push(&c, &mut out).unwrap();
    }
    let fin = m.finish(&mut out).unwrap();
    assert_eq!(fin.samples, 48_000);
    let bytes: Vec<u8> = out.iter().flat_map(|p| p.bytes.clone()).collect();
    assert_eq!((bytes[0], bytes[1] & 0xE0), (0xFF, 0xE0));
    // 1 s at 48 kHz is ~42 frames of 1152 samples, plus delay, padding and the tag frame.
    let n = frames(&bytes);
    assert!((43..=46).contains(&n), "{n} frames");
    let tag = fin.header_patch.expect("LAME tag");
    assert_eq!(&tag[..2], &bytes[..2]);
    // A new segment starts a new LAME instance.
    m.push(&vec![0; 480], &mut out).unwrap();
    assert_eq!(m.finish(&mut out).unwrap().samples, 480);
  }

  #[test]
  fn settings_are_checked() {
    let f = Format::new(48_000, 1).unwrap();
    assert!(Mp3::new(
      &Mp3Settings {
        bitrate_kbps: 65,
        ..Default::default()
      },
      f
    )
    .is_err());
    assert!(Mp3::new(
      &Mp3Settings {
        vbr_quality: Some(10),
        ..Default::default()
      },
      f
    )
    .is_err());
    assert!(Mp3::new(&Mp3Settings::default(), Format::new(48_000, 3).unwrap()).is_err());
    assert!(Mp3::new(
      &Mp3Settings {
        vbr_quality: Some(4),
        ..Default::default()
      },
      f
    )
    .is_ok());
    assert_eq!(codec_rate(96_000), 48_000);
    assert_eq!(codec_rate(22_050), 22_050);
  }
}
