//! Raw PCM: s16le as the engine holds it, or f32le in [-1, 1). No header, no trailer:
//! every chunk is a piece of its own and any prefix of the stream is playable.

use super::{Encoder, Finished, PcmSample, Piece};
use crate::format::Format;

pub struct Pcm {
  format: Format,
  sample: PcmSample,
  samples: u64,
}

impl Pcm {
  pub fn new(format: Format, sample: PcmSample) -> Self {
    Pcm {
      format,
      sample,
      samples: 0,
    }
  }
}

/// Appends `chunk` as little-endian s16 or f32 (scaled by 1/32768, so i16 round-trips).
pub(crate) fn write_samples(chunk: &[i16], sample: PcmSample, bytes: &mut Vec<u8>) {
  match sample {
    PcmSample::S16le => {
      bytes.reserve(chunk.len() * 2);
      for s in chunk {
        bytes.extend_from_slice(&s.to_le_bytes());
      }
    }
    PcmSample::F32le => {
      bytes.reserve(chunk.len() * 4);
      for s in chunk {
        bytes.extend_from_slice(&(*s as f32 / 32_768.0).to_le_bytes());
      }
    }
  }
}

impl Encoder for Pcm {
  fn format(&self) -> Format {
    self.format
  }

  fn push_part(&mut self, chunk: &[i16], frames: usize, out: &mut Vec<Piece>) -> std::result::Result<(), String> {
    super::check_chunk(self.format, chunk)?;
    let frames = frames.min(self.format.chunk_frames());
    let mut bytes = Vec::new();
    write_samples(
      &chunk[..frames * self.format.channels as usize],
      self.sample,
      &mut bytes,
    );
    out.push(Piece::data(bytes));
    self.samples += frames as u64;
    Ok(())
  }

  fn finish(&mut self, _out: &mut Vec<Piece>) -> std::result::Result<Finished, String> {
    Ok(Finished {
      samples: std::mem::take(&mut self.samples),
      header_patch: None,
    })
  }

  fn name(&self) -> &'static str {
    match self.sample {
      PcmSample::S16le => "pcm-s16le",
      PcmSample::F32le => "pcm-f32le",
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn s16le_and_f32le_bytes_are_exact() {
    let f = Format::new(8_000, 1).unwrap();
    let chunk: Vec<i16> = (0..80).map(|i| (i * 400 - 16_000) as i16).collect();
    let mut out = Vec::new();
    let mut s = Pcm::new(f, PcmSample::S16le);
    s.push(&chunk, &mut out).unwrap();
    assert_eq!(out[0].bytes.len(), 160);
    assert_eq!(i16::from_le_bytes([out[0].bytes[2], out[0].bytes[3]]), chunk[1]);
    let mut g = Pcm::new(f, PcmSample::F32le);
    g.push(&chunk, &mut out).unwrap();
    let b = &out[1].bytes;
    assert_eq!(b.len(), 320);
    let v = f32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    assert_eq!((v * 32_768.0) as i16, chunk[1]);
    assert_eq!(g.finish(&mut out).unwrap().samples, 80);
    assert!(g.push(&chunk[..10], &mut out).is_err());
    // A segment's padded last chunk: only its audio is written.
    s.push_part(&chunk, 33, &mut out).unwrap();
    assert_eq!(out.last().unwrap().bytes.len(), 66);
    assert_eq!(s.finish(&mut out).unwrap().samples, 80 + 33);
  }
}
