//! WAV (RIFF, 16-bit PCM). Streamable: the header goes out first with 0xFFFFFFFF sizes
//! (what players read as "until the end"), and `finish` hands back the same header with the
//! real sizes for an output that can seek back and patch offset 0.

use super::pcm::write_samples;
use super::{Encoder, Finished, PcmSample, Piece};
use crate::format::Format;

pub const HEADER_LEN: usize = 44;

pub struct Wav {
  format: Format,
  /// Data bytes in the current file; `None` before its first audio.
  data: Option<u64>,
}

impl Wav {
  pub fn new(format: Format) -> Self {
    Wav { format, data: None }
  }
}

/// The 44-byte header; `data_len` `None` writes the streaming sizes (0xFFFFFFFF).
pub fn header(format: Format, data_len: Option<u64>) -> Vec<u8> {
  let ch = format.channels as u32;
  let (riff, data) = match data_len {
    // Sizes past 4 GiB cannot be written; the streaming value says "read to the end".
    Some(n) if n <= u32::MAX as u64 - 36 => (36 + n as u32, n as u32),
    _ => (u32::MAX, u32::MAX),
  };
  let mut h = Vec::with_capacity(HEADER_LEN);
  h.extend_from_slice(b"RIFF");
  h.extend_from_slice(&riff.to_le_bytes());
  h.extend_from_slice(b"WAVEfmt ");
  h.extend_from_slice(&16u32.to_le_bytes());
  h.extend_from_slice(&1u16.to_le_bytes()); // PCM
  h.extend_from_slice(&(ch as u16).to_le_bytes());
  h.extend_from_slice(&format.sample_rate.to_le_bytes());
  h.extend_from_slice(&(format.sample_rate * ch * 2).to_le_bytes());
  h.extend_from_slice(&((ch * 2) as u16).to_le_bytes());
  h.extend_from_slice(&16u16.to_le_bytes());
  h.extend_from_slice(b"data");
  h.extend_from_slice(&data.to_le_bytes());
  h
}

impl Encoder for Wav {
  fn format(&self) -> Format {
    self.format
  }

  fn push_part(&mut self, chunk: &[i16], frames: usize, out: &mut Vec<Piece>) -> std::result::Result<(), String> {
    super::check_chunk(self.format, chunk)?;
    let chunk = &chunk[..frames.min(self.format.chunk_frames()) * self.format.channels as usize];
    if self.data.is_none() {
      out.push(Piece::header(header(self.format, None)));
      self.data = Some(0);
    }
    let mut bytes = Vec::new();
    write_samples(chunk, PcmSample::S16le, &mut bytes);
    *self.data.as_mut().expect("set above") += bytes.len() as u64;
    out.push(Piece::data(bytes));
    Ok(())
  }

  fn finish(&mut self, _out: &mut Vec<Piece>) -> std::result::Result<Finished, String> {
    let Some(n) = self.data.take() else {
      return Ok(Finished::default());
    };
    Ok(Finished {
      samples: n / (2 * self.format.channels as u64),
      header_patch: Some(header(self.format, Some(n))),
    })
  }

  fn name(&self) -> &'static str {
    "wav"
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn streams_with_open_sizes_and_patches_real_ones() {
    let f = Format::new(16_000, 2).unwrap();
    let mut w = Wav::new(f);
    let mut out = Vec::new();
    for _ in 0..3 {
      w.push(&vec![5; f.chunk_len()], &mut out).unwrap();
    }
    assert!(out[0].header && out[0].bytes.len() == HEADER_LEN);
    assert_eq!(&out[0].bytes[4..8], &[0xFF; 4]);
    assert_eq!(&out[0].bytes[40..44], &[0xFF; 4]);
    let fin = w.finish(&mut out).unwrap();
    assert_eq!(fin.samples, 480);
    let h = fin.header_patch.unwrap();
    let data = 3 * f.chunk_len() as u32 * 2;
    assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), data);
    assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), data + 36);
    assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 16_000 * 4);
    // The next segment is a new file with its own header.
    w.push(&vec![5; f.chunk_len()], &mut out).unwrap();
    assert!(out[4].header);
    assert_eq!(w.finish(&mut Vec::new()).unwrap().samples, 160);
    assert_eq!(Wav::new(f).finish(&mut out).unwrap(), Finished::default());
    // A padded last chunk: the data size (and the bytes) hold only its audio.
    w.push(&vec![5; f.chunk_len()], &mut out).unwrap();
    w.push_part(&vec![5; f.chunk_len()], 7, &mut out).unwrap();
    assert_eq!(out.last().unwrap().bytes.len(), 7 * 4);
    let fin = w.finish(&mut out).unwrap();
    assert_eq!(fin.samples, 167);
    let h = fin.header_patch.unwrap();
    assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 167 * 4);
  }
}
