//! Ogg Opus (RFC 7845) from libopus (1.6, bundled and built from source by `opusic-sys`) and
//! the `ogg` crate's page writer (lacing, CRC, BOS/EOS flags).
//!
//! Each logical stream is: an OpusHead page carrying the encoder's real pre-skip, an
//! OpusTags page, then audio pages of `page_ms` each whose granule positions count 48 kHz
//! samples. `finish` pads with silence until the decoder has seen pre-skip + input samples,
//! and the end-of-stream page's granule (pre-skip + input) trims the padding, so a decoder
//! gives back exactly the input's length.

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::{Application, Encoder, Finished, OpusSettings, Piece};
use crate::error::{CoreError, Result};
use crate::format::Format;

/// Rates libopus encodes at.
pub const RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Granule positions and pre-skip are always in 48 kHz samples.
const GRANULE_RATE: u64 = 48_000;
/// The largest packet libopus writes (RFC 6716: 1275 bytes a frame, up to 3 frames).
const MAX_PACKET: usize = 4000;

/// The codec rate for `input_rate`: the one asked for, else the input's if libopus has
/// it, else 48 kHz.
pub fn codec_rate(asked: Option<u32>, input_rate: u32) -> Result<u32> {
  match asked {
    Some(r) if RATES.contains(&r) => Ok(r),
    Some(r) => Err(CoreError::InvalidOption(format!(
      "opus sampleRate must be one of 8000, 12000, 16000, 24000, 48000, got {r}"
    ))),
    None if RATES.contains(&input_rate) => Ok(input_rate),
    None => Ok(48_000),
  }
}

/// Checks settings a caller wrote; every message names the option.
pub fn validate(s: &OpusSettings, channels: u16) -> Result<()> {
  let bad = |m: String| Err(CoreError::InvalidOption(m));
  if !(1..=2).contains(&channels) {
    return bad(format!(
      "ogg-opus encodes 1 or 2 channels (mapping family 0), got {channels}"
    ));
  }
  if ![10, 20, 40, 60].contains(&s.frame_ms) {
    return bad(format!("frameMs must be 10, 20, 40 or 60, got {}", s.frame_ms));
  }
  if s.page_ms < s.frame_ms || !s.page_ms.is_multiple_of(s.frame_ms) || s.page_ms > 1000 {
    return bad(format!(
      "pageMs must be a whole number of frames ({} ms) up to 1000, got {}",
      s.frame_ms, s.page_ms
    ));
  }
  if let Some(b) = s.bitrate {
    if !(6_000..=510_000).contains(&b) {
      return bad(format!("bitrate must be 6000..=510000 bit/s, got {b}"));
    }
  }
  if let Some(c) = s.complexity {
    if !(0..=10).contains(&c) {
      return bad(format!("complexity must be 0..=10, got {c}"));
    }
  }
  if !(0..=100).contains(&s.packet_loss_pct) {
    return bad(format!("packetLossPercent must be 0..=100, got {}", s.packet_loss_pct));
  }
  Ok(())
}

pub struct OggOpus {
  enc: opus::Encoder,
  format: Format,
  /// The source's rate, recorded in OpusHead (informational for players).
  input_rate: u32,
  /// Interleaved samples in one Opus frame.
  frame_len: usize,
  /// 48 kHz samples one frame decodes to.
  frame_granules: u64,
  frames_per_page: u32,
  /// Pre-skip in 48 kHz samples: the encoder's lookahead.
  pre_skip: u64,
  /// Samples of the frame being filled.
  pending: Vec<i16>,
  packet: Vec<u8>,
  /// The current logical stream; `None` until its first audio.
  stream: Option<Stream>,
  /// Serial numbers of successive segments.
  next_serial: u32,
}

struct Stream {
  writer: PacketWriter<'static, Vec<u8>>,
  serial: u32,
  /// 48 kHz samples of input audio (per channel).
  input: u64,
  /// 48 kHz samples encoded into packets so far.
  encoded: u64,
  packets_in_page: u32,
}

impl OggOpus {
  pub fn new(s: &OpusSettings, format: Format, input_rate: u32) -> Result<Self> {
    validate(s, format.channels)?;
    if !RATES.contains(&format.sample_rate) {
      return Err(CoreError::InvalidOption(format!(
        "libopus cannot run at {} Hz",
        format.sample_rate
      )));
    }
    let channels = if format.channels == 1 {
      opus::Channels::Mono
    } else {
      opus::Channels::Stereo
    };
    let app = match s.application {
      Application::Voip => opus::Application::Voip,
      Application::Audio => opus::Application::Audio,
      Application::LowDelay => opus::Application::LowDelay,
    };
    let lib = |e: opus::Error| CoreError::InvalidOption(format!("libopus refused the settings: {e}"));
    let mut enc = opus::Encoder::new(format.sample_rate, channels, app).map_err(lib)?;
    if let Some(b) = s.bitrate {
      enc.set_bitrate(opus::Bitrate::Bits(b)).map_err(lib)?;
    }
    if let Some(c) = s.complexity {
      enc.set_complexity(c).map_err(lib)?;
    }
    enc.set_dtx(s.dtx).map_err(lib)?;
    enc.set_inband_fec(s.fec).map_err(lib)?;
    enc.set_packet_loss_perc(s.packet_loss_pct).map_err(lib)?;
    let lookahead = enc.get_lookahead().map_err(lib)? as u64;
    let scale = GRANULE_RATE / format.sample_rate as u64;
    let frame_frames = format.sample_rate as usize * s.frame_ms as usize / 1000;
    Ok(OggOpus {
      enc,
      format,
      input_rate,
      frame_len: frame_frames * format.channels as usize,
      frame_granules: frame_frames as u64 * scale,
      frames_per_page: s.page_ms / s.frame_ms,
      pre_skip: lookahead * scale,
      pending: Vec::with_capacity(frame_frames * format.channels as usize),
      packet: vec![0; MAX_PACKET],
      stream: None,
      next_serial: serial_seed(),
    })
  }

  /// Pre-skip in 48 kHz samples, as written in OpusHead.
  pub fn pre_skip(&self) -> u64 {
    self.pre_skip
  }

  fn head(&self) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1); // version
    h.push(self.format.channels as u8);
    h.extend_from_slice(&(self.pre_skip as u16).to_le_bytes());
    h.extend_from_slice(&self.input_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family 0: mono or stereo, no table
    h
  }

  fn tags() -> Vec<u8> {
    let vendor = format!("capstan {} ({})", env!("CARGO_PKG_VERSION"), opus::version());
    let mut t = Vec::with_capacity(16 + vendor.len());
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&0u32.to_le_bytes()); // no user comments
    t
  }

  /// Opens the next logical stream: its two header pages.
  fn open(&mut self, out: &mut Vec<Piece>) -> std::result::Result<(), String> {
    let serial = self.next_serial;
    self.next_serial = self.next_serial.wrapping_add(1);
    let mut writer = PacketWriter::new(Vec::new());
    let io = |e: std::io::Error| e.to_string();
    writer
      .write_packet(self.head(), serial, PacketWriteEndInfo::EndPage, 0)
      .map_err(io)?;
    out.push(Piece::header(std::mem::take(writer.inner_mut())));
    writer
      .write_packet(Self::tags(), serial, PacketWriteEndInfo::EndPage, 0)
      .map_err(io)?;
    out.push(Piece::header(std::mem::take(writer.inner_mut())));
    self.stream = Some(Stream {
      writer,
      serial,
      input: 0,
      encoded: 0,
      packets_in_page: 0,
    });
    Ok(())
  }

  /// Encodes the full frame in `pending` and writes its packet; `last` ends the stream
  /// with `end_granule`.
  fn encode_frame(&mut self, out: &mut Vec<Piece>, last: Option<u64>) -> std::result::Result<(), String> {
    let n = self
      .enc
      .encode(&self.pending, &mut self.packet)
      .map_err(|e| format!("opus encode failed: {e}"))?;
    self.pending.clear();
    let fpp = self.frames_per_page;
    let st = self.stream.as_mut().expect("a stream is open while encoding");
    st.encoded += self.frame_granules;
    st.packets_in_page += 1;
    let (info, granule) = match last {
      Some(g) => (PacketWriteEndInfo::EndStream, g),
      None if st.packets_in_page >= fpp => (PacketWriteEndInfo::EndPage, st.encoded),
      None => (PacketWriteEndInfo::NormalPacket, st.encoded),
    };
    if info != PacketWriteEndInfo::NormalPacket {
      st.packets_in_page = 0;
    }
    st.writer
      .write_packet(self.packet[..n].to_vec(), st.serial, info, granule)
      .map_err(|e| e.to_string())?;
    let bytes = std::mem::take(st.writer.inner_mut());
    if !bytes.is_empty() {
      out.push(Piece::data(bytes));
    }
    Ok(())
  }
}

impl Encoder for OggOpus {
  fn format(&self) -> Format {
    self.format
  }

  fn push_part(&mut self, chunk: &[i16], frames: usize, out: &mut Vec<Piece>) -> std::result::Result<(), String> {
    super::check_chunk(self.format, chunk)?;
    if self.stream.is_none() {
      self.open(out)?;
    }
    let scale = GRANULE_RATE / self.format.sample_rate as u64;
    if self.pending.len() == self.frame_len {
      // A frame held back by a partial chunk that no segment end followed.
      self.encode_frame(out, None)?;
    }
    let frames = frames.min(self.format.chunk_frames());
    let st = self.stream.as_mut().expect("opened above");
    st.input += frames as u64 * scale;
    // Chunks (10 ms) divide every frame length (10..=60 ms) exactly.
    self.pending.extend_from_slice(chunk);
    // A partial chunk is the segment's last: its frame is left for `finish` to write as
    // the end-of-stream packet, so the trimmed end granule still lies past every earlier
    // page's (RFC 7845 forbids an end granule below the previous page's).
    if self.pending.len() == self.frame_len && frames == self.format.chunk_frames() {
      self.encode_frame(out, None)?;
    }
    Ok(())
  }

  fn finish(&mut self, out: &mut Vec<Piece>) -> std::result::Result<Finished, String> {
    let Some(st) = self.stream.as_ref() else {
      self.pending.clear();
      return Ok(Finished::default());
    };
    let end = self.pre_skip + st.input;
    let mut encoded = st.encoded;
    // Pad with silence until the decoder has produced pre-skip + input samples; the last
    // packet ends the stream and its granule trims the padding.
    loop {
      self.pending.resize(self.frame_len, 0);
      encoded += self.frame_granules;
      let last = encoded >= end;
      self.encode_frame(out, last.then_some(end))?;
      if last {
        break;
      }
    }
    let st = self.stream.take().expect("checked above");
    // Fresh state for the next segment: no history leaks across files.
    self.enc.reset_state().map_err(|e| e.to_string())?;
    let scale = GRANULE_RATE / self.format.sample_rate as u64;
    Ok(Finished {
      samples: st.input / scale,
      header_patch: None,
    })
  }

  fn name(&self) -> &'static str {
    "ogg-opus"
  }
}

/// A serial number that differs between encoders and runs (chained or muxed streams need
/// distinct serials); segments of one encoder count up from it.
fn serial_seed() -> u32 {
  use std::sync::atomic::{AtomicU32, Ordering};
  static COUNTER: AtomicU32 = AtomicU32::new(0);
  let t = std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
    .unwrap_or(0);
  t.wrapping_mul(2_654_435_761)
    .wrapping_add(COUNTER.fetch_add(0x9E37_79B9, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
  use super::*;
  use ogg::reading::PacketReader;
  use proptest::prelude::*;
  use std::io::Cursor;

  fn sine(format: Format, chunks: usize, hz: f64) -> Vec<i16> {
    let n = format.chunk_frames() * chunks;
    (0..n)
      .flat_map(|i| {
        let v = (i as f64 * hz * std::f64::consts::TAU / format.sample_rate as f64).sin() * 12_000.0;
        std::iter::repeat_n(v as i16, format.channels as usize)
      })
      .collect()
  }

  fn encode(s: &OpusSettings, format: Format, chunks: usize) -> (Vec<Piece>, Finished, u64) {
    encode_part(s, format, chunks, format.chunk_frames())
  }

  /// `chunks` chunks of which the last holds only `last_frames` frames of audio.
  fn encode_part(s: &OpusSettings, format: Format, chunks: usize, last_frames: usize) -> (Vec<Piece>, Finished, u64) {
    let mut e = OggOpus::new(s, format, format.sample_rate).unwrap();
    let mut out = Vec::new();
    let audio = sine(format, chunks, 440.0);
    let n = audio.len() / format.chunk_len();
    for (i, c) in audio.chunks(format.chunk_len()).enumerate() {
      let frames = if i + 1 == n { last_frames } else { format.chunk_frames() };
      e.push_part(c, frames, &mut out).unwrap();
    }
    let f = e.finish(&mut out).unwrap();
    (out, f, e.pre_skip())
  }

  /// Every page, read back through a real Ogg page parser (CRC checked).
  struct Page {
    granule: u64,
    bos: bool,
    eos: bool,
    packets: usize,
    serial: u32,
  }

  fn pages(bytes: &[u8]) -> Vec<Page> {
    let mut r = PacketReader::new(Cursor::new(bytes.to_vec()));
    let mut out: Vec<Page> = Vec::new();
    while let Some(p) = r.read_packet().expect("valid ogg") {
      let serial = p.stream_serial();
      if p.first_in_page() || out.is_empty() {
        out.push(Page {
          granule: p.absgp_page(),
          bos: p.first_in_stream(),
          eos: false,
          packets: 0,
          serial,
        });
      }
      let pg = out.last_mut().unwrap();
      pg.packets += 1;
      pg.eos |= p.last_in_stream();
    }
    out
  }

  #[test]
  fn stream_has_head_tags_and_an_eos_page_trimming_padding() {
    let f = Format::new(48_000, 1).unwrap();
    let (out, fin, pre_skip) = encode(&OpusSettings::default(), f, 103);
    assert!(out[0].header && out[1].header && !out[2].header);
    assert_eq!(&out[0].bytes[28..36], b"OpusHead");
    assert_eq!(
      u16::from_le_bytes([out[0].bytes[38], out[0].bytes[39]]) as u64,
      pre_skip
    );
    assert!(pre_skip > 0);
    assert_eq!(&out[1].bytes[28..36], b"OpusTags");
    assert_eq!(fin.samples, 103 * 480);
    let bytes: Vec<u8> = out.iter().flat_map(|p| p.bytes.clone()).collect();
    let ps = pages(&bytes);
    assert!(ps[0].bos && !ps[1].bos);
    assert_eq!(ps[0].granule, 0);
    assert_eq!(ps[1].granule, 0);
    let last = ps.last().unwrap();
    assert!(last.eos);
    assert_eq!(last.granule, pre_skip + 103 * 480);
  }

  #[test]
  fn a_stream_with_no_audio_writes_nothing_and_segments_restart_with_new_serials() {
    let f = Format::new(16_000, 2).unwrap();
    let mut e = OggOpus::new(&OpusSettings::default(), f, 16_000).unwrap();
    let mut out = Vec::new();
    assert_eq!(e.finish(&mut out).unwrap(), Finished::default());
    assert!(out.is_empty());
    let chunk = vec![100; f.chunk_len()];
    e.push(&chunk, &mut out).unwrap();
    e.finish(&mut out).unwrap();
    let n = out.len();
    e.push(&chunk, &mut out).unwrap();
    e.finish(&mut out).unwrap();
    let a: Vec<u8> = out[..n].iter().flat_map(|p| p.bytes.clone()).collect();
    let b: Vec<u8> = out[n..].iter().flat_map(|p| p.bytes.clone()).collect();
    let (pa, pb) = (pages(&a), pages(&b));
    assert!(pa[0].bos && pb[0].bos);
    assert!(pa.last().unwrap().eos && pb.last().unwrap().eos);
    assert_ne!(pa[0].serial, pb[0].serial);
  }

  #[test]
  fn settings_are_checked_with_the_option_named() {
    let f = Format::new(48_000, 1).unwrap();
    for (s, word) in [
      (
        OpusSettings {
          frame_ms: 30,
          ..Default::default()
        },
        "frameMs",
      ),
      (
        OpusSettings {
          page_ms: 30,
          ..Default::default()
        },
        "pageMs",
      ),
      (
        OpusSettings {
          bitrate: Some(1),
          ..Default::default()
        },
        "bitrate",
      ),
      (
        OpusSettings {
          complexity: Some(11),
          ..Default::default()
        },
        "complexity",
      ),
      (
        OpusSettings {
          packet_loss_pct: 101,
          ..Default::default()
        },
        "packetLossPercent",
      ),
    ] {
      let e = OggOpus::new(&s, f, 48_000).err().expect("refused");
      assert!(e.message().contains(word), "{e}");
    }
    assert!(OggOpus::new(&OpusSettings::default(), Format::new(48_000, 3).unwrap(), 48_000).is_err());
    assert!(codec_rate(Some(44_100), 48_000).is_err());
    assert_eq!(codec_rate(None, 44_100).unwrap(), 48_000);
    assert_eq!(codec_rate(None, 16_000).unwrap(), 16_000);
  }

  #[test]
  fn decodes_back_to_the_input_length_with_a_real_decoder() {
    let f = Format::new(48_000, 1).unwrap();
    let (out, _, pre_skip) = encode(&OpusSettings::default(), f, 57);
    let bytes: Vec<u8> = out.iter().flat_map(|p| p.bytes.clone()).collect();
    let mut r = PacketReader::new(Cursor::new(bytes));
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut decoded = 0u64;
    let mut last_granule = 0;
    let mut buf = vec![0i16; 5760];
    while let Some(p) = r.read_packet().unwrap() {
      if p.data.starts_with(b"Opus") {
        continue;
      }
      decoded += dec.decode(&p.data, &mut buf, false).unwrap() as u64;
      last_granule = p.absgp_page();
    }
    assert!(decoded >= last_granule);
    assert_eq!(last_granule - pre_skip, 57 * 480);
  }

  proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Granules never go back, pages parse (lacing and CRC), one BOS and one EOS, each
    /// page holds `page_ms / frame_ms` packets (the last may hold fewer), and the EOS
    /// granule is pre-skip + input for any length.
    #[test]
    fn muxer_invariants(
      chunks in 1usize..300,
      frame in prop::sample::select(vec![10u32, 20, 40, 60]),
      per_page in 1u32..5,
      rate in prop::sample::select(RATES.to_vec()),
      stereo in any::<bool>(),
      tail_pct in 1usize..=100,
    ) {
      let f = Format::new(rate, if stereo { 2 } else { 1 }).unwrap();
      let s = OpusSettings { frame_ms: frame, page_ms: frame * per_page, complexity: Some(0), ..Default::default() };
      // The last chunk is partial (a segment's padded end) unless tail_pct is 100.
      let last = (f.chunk_frames() * tail_pct / 100).max(1);
      let (out, fin, pre_skip) = encode_part(&s, f, chunks, last);
      let input = ((chunks - 1) * f.chunk_frames() + last) as u64;
      prop_assert_eq!(fin.samples, input);
      let input = input * (48_000 / rate as u64);
      let bytes: Vec<u8> = out.iter().flat_map(|p| p.bytes.clone()).collect();
      let ps = pages(&bytes);
      prop_assert!(ps.len() >= 3);
      prop_assert_eq!(ps.iter().filter(|p| p.bos).count(), 1);
      prop_assert_eq!(ps.iter().filter(|p| p.eos).count(), 1);
      prop_assert!(ps.last().unwrap().eos);
      let mut prev = 0;
      for (i, p) in ps[2..].iter().enumerate() {
        // The end granule trims, but never below an earlier page's (RFC 7845 4.5).
        if i + 3 == ps.len() {
          prop_assert!(p.granule > prev, "end granule {} not past {}", p.granule, prev);
        }
        prop_assert!(p.granule >= prev, "granule went back: {} < {}", p.granule, prev);
        prev = p.granule;
        prop_assert!(p.packets as u32 <= per_page);
      }
      for p in &ps[2..ps.len() - 1] {
        prop_assert_eq!(p.packets as u32, per_page);
      }
      prop_assert_eq!(ps.last().unwrap().granule, pre_skip + input);
      // Enough audio for the decoder to reach the end granule, and not a frame more.
      let frame_granules = frame as u64 * 48;
      let packets: u64 = ps[2..].iter().map(|p| p.packets as u64).sum();
      prop_assert!(packets * frame_granules >= pre_skip + input);
      prop_assert!((packets - 1) * frame_granules < pre_skip + input);
    }
  }
}
