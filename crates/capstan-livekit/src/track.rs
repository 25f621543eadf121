//! The audio track's send path: 10 ms chunks in, 20 ms Opus packets out with their RTP
//! time, handed to the session through a queue bounded per track that never blocks the
//! sender (one track's backlog cannot make another's packets drop).
//!
//! Bytes obey `encoded = sent + queued + dropped` at every moment (each counter moves under
//! one lock, and a packet is counted encoded and queued in one step): a full queue or a
//! session that cannot send (not yet connected, closed) drops whole packets, counted, and
//! the RTP time still advances by the dropped frame, so the receiver sees a loss it
//! conceals, never a clock that jumped back.

use std::sync::Arc;
use std::time::Instant;

use capstan_core::Format;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::peer::OPUS_RTP_RATE;

/// One Opus frame per RTP packet: 20 ms, what WebRTC endpoints send and expect.
pub const FRAME_MS: u32 = 20;
/// The track's first frame only: 10 ms, so the first packet leaves one engine tick after
/// the first audio instead of two (receivers take Opus frames of any legal duration).
pub const FIRST_FRAME_MS: u32 = 10;
/// Packets one track may have queued for the session before it drops: 500 ms at 20 ms.
pub const DEFAULT_QUEUE_PACKETS: usize = 25;
/// Opus bitrate per channel unless the caller says otherwise (speech and tones alike are
/// transparent at this rate).
pub const DEFAULT_BITRATE_PER_CHANNEL: u32 = 32_000;
/// The bitrates a track may ask for, bps (libopus's own range).
pub const MIN_BITRATE: u32 = 6_000;
pub const MAX_BITRATE: u32 = 510_000;
/// libopus's own default (and the most expensive setting).
pub const DEFAULT_COMPLEXITY: u8 = 10;
/// Input rates libopus takes; anything else needs a resampler processor before the sink.
pub const OPUS_INPUT_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// The largest Opus packet (RFC 6716 §3.2.1 limit for one frame is 1275 bytes).
pub const MAX_PACKET_BYTES: usize = 1275;

/// One encoded frame on its way to the session.
#[derive(Debug)]
pub struct OpusPacket {
  /// The session's key of the track it belongs to.
  pub track: u32,
  /// RTP time of its first sample, in 48 kHz units since the track began.
  pub rtp_ts: u64,
  pub data: Vec<u8>,
  /// When the frame's last chunk was pushed: the sender report's wallclock.
  pub at: Instant,
  pub stats: Arc<TrackStats>,
}

/// Byte and packet counters of one track's send path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
  pub encoded_bytes: u64,
  pub queued_bytes: u64,
  pub sent_bytes: u64,
  pub dropped_bytes: u64,
  pub encoded_packets: u64,
  pub sent_packets: u64,
  /// Packets waiting for the session now.
  pub queued_packets: u64,
  /// Dropped because the track's queue to the session was full.
  pub dropped_full: u64,
  /// Dropped because the session could not send them (not connected yet, unpublished, closed).
  pub dropped_unsent: u64,
}

impl Counters {
  /// The byte law; tests and metrics check it.
  pub fn balanced(&self) -> bool {
    self.encoded_bytes == self.sent_bytes + self.queued_bytes + self.dropped_bytes
  }
}

#[derive(Debug, Default)]
pub struct TrackStats(Mutex<Counters>);

impl TrackStats {
  pub fn snapshot(&self) -> Counters {
    *self.0.lock()
  }

  /// The session took a packet off the queue and `sent` it to the peer connection or not.
  pub fn dequeued(&self, bytes: usize, sent: bool) {
    let mut c = self.0.lock();
    let n = bytes as u64;
    c.queued_bytes -= n;
    c.queued_packets -= 1;
    if sent {
      c.sent_bytes += n;
      c.sent_packets += 1;
    } else {
      c.dropped_bytes += n;
      c.dropped_unsent += 1;
    }
  }
}

/// The sending end of the room's packet queue for one track, which may hold `limit` of
/// this track's packets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PacketSender {
  pub(crate) track: u32,
  pub(crate) tx: mpsc::UnboundedSender<OpusPacket>,
  pub(crate) stats: Arc<TrackStats>,
  pub(crate) limit: u64,
}

impl PacketSender {
  /// Queues one packet without waiting; a full (for this track) or closed queue drops it
  /// (counted). Returns whether it was queued. The channel itself is unbounded: every
  /// track's share is bounded here, so the room's total is too.
  pub fn send(&self, rtp_ts: u64, data: Vec<u8>, at: Instant) -> bool {
    let n = data.len() as u64;
    let pkt = OpusPacket {
      track: self.track,
      rtp_ts,
      data,
      at,
      stats: self.stats.clone(),
    };
    // Counted encoded and queued before the session can see it, so its dequeue never
    // finds the queued bytes missing.
    let mut c = self.stats.0.lock();
    c.encoded_bytes += n;
    c.encoded_packets += 1;
    if c.queued_packets >= self.limit {
      c.dropped_bytes += n;
      c.dropped_full += 1;
      return false;
    }
    c.queued_bytes += n;
    c.queued_packets += 1;
    match self.tx.send(pkt) {
      Ok(()) => true,
      Err(_) => {
        c.queued_bytes -= n;
        c.queued_packets -= 1;
        c.dropped_bytes += n;
        c.dropped_unsent += 1;
        false
      }
    }
  }

  pub fn stats(&self) -> Counters {
    self.stats.snapshot()
  }
}

/// Opus encoder settings of a published track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusOptions {
  pub format: Format,
  pub bitrate_bps: u32,
  /// libopus's complexity, 0..=10. At 10 the encoder is about a quarter of the send path's
  /// CPU (publish-load, 100 sources: 54-61 µs per source per 10 ms at 10, 40 at 5, 39 at 0;
  /// see the livekit test README).
  pub complexity: u8,
}

impl OpusOptions {
  pub fn new(format: Format) -> Result<Self> {
    let o = OpusOptions {
      format,
      bitrate_bps: DEFAULT_BITRATE_PER_CHANNEL * format.channels as u32,
      complexity: DEFAULT_COMPLEXITY,
    };
    o.validate()?;
    Ok(o)
  }

  pub fn validate(&self) -> Result<()> {
    if !OPUS_INPUT_RATES.contains(&self.format.sample_rate) {
      return Err(Error::InvalidOption(format!(
        "sampleRate must be one of {OPUS_INPUT_RATES:?} for Opus (add a resampler), got {}",
        self.format.sample_rate
      )));
    }
    if !(1..=2).contains(&self.format.channels) {
      return Err(Error::InvalidOption(format!(
        "channels must be 1 or 2 for Opus, got {}",
        self.format.channels
      )));
    }
    if !(MIN_BITRATE..=MAX_BITRATE).contains(&self.bitrate_bps) {
      return Err(Error::InvalidOption(format!(
        "bitrate must be {MIN_BITRATE}..={MAX_BITRATE} bps, got {}",
        self.bitrate_bps
      )));
    }
    if self.complexity > 10 {
      return Err(Error::InvalidOption(format!(
        "complexity must be 0..=10, got {}",
        self.complexity
      )));
    }
    Ok(())
  }
}

/// 10 ms chunks in, Opus frames out with their RTP times: the first frame 10 ms (RTP 0),
/// then one 20 ms frame every second chunk (RTP 480, 1440, …, by samples encoded), whatever
/// happens to the packets after encoding.
pub struct OpusFramer {
  enc: opus::Encoder,
  format: Format,
  pending: Vec<i16>,
  frame_samples: usize,
  first_samples: usize,
  frames: u64,
  /// Frames (per channel, at the input rate) encoded so far: the RTP clock.
  encoded: u64,
  out: Vec<u8>,
}

impl OpusFramer {
  pub fn new(o: &OpusOptions) -> Result<Self> {
    o.validate()?;
    let channels = if o.format.channels == 1 {
      opus::Channels::Mono
    } else {
      opus::Channels::Stereo
    };
    let lib = |e: opus::Error| Error::InvalidOption(format!("libopus refused the settings: {e}"));
    let mut enc = opus::Encoder::new(o.format.sample_rate, channels, opus::Application::Audio).map_err(lib)?;
    enc
      .set_bitrate(opus::Bitrate::Bits(o.bitrate_bps as i32))
      .map_err(lib)?;
    enc.set_complexity(o.complexity as i32).map_err(lib)?;
    let frame_samples = (o.format.sample_rate * FRAME_MS / 1000) as usize * o.format.channels as usize;
    let first_samples = (o.format.sample_rate * FIRST_FRAME_MS / 1000) as usize * o.format.channels as usize;
    Ok(OpusFramer {
      enc,
      format: o.format,
      pending: Vec::with_capacity(frame_samples),
      frame_samples,
      first_samples,
      frames: 0,
      encoded: 0,
      out: vec![0; MAX_PACKET_BYTES * 3],
    })
  }

  pub fn format(&self) -> Format {
    self.format
  }

  /// RTP time of the next frame.
  pub fn next_rtp(&self) -> u64 {
    self.encoded * OPUS_RTP_RATE as u64 / self.format.sample_rate as u64
  }

  /// The samples (interleaved) the frame being filled takes.
  fn target(&self) -> usize {
    if self.frames == 0 {
      self.first_samples
    } else {
      self.frame_samples
    }
  }

  /// Adds interleaved samples (a 10 ms chunk); returns a finished frame and its RTP time.
  pub fn push(&mut self, chunk: &[i16]) -> Result<Option<(u64, Vec<u8>)>> {
    let mut rest = chunk;
    let mut done = None;
    while !rest.is_empty() {
      let take = (self.target() - self.pending.len()).min(rest.len());
      self.pending.extend_from_slice(&rest[..take]);
      rest = &rest[take..];
      if self.pending.len() == self.target() {
        if done.is_some() {
          return Err(Error::InvalidOption("more than one frame pushed at once".into()));
        }
        done = Some(self.encode()?);
      }
    }
    Ok(done)
  }

  /// Pads a half-filled frame with silence and encodes it (end of stream).
  pub fn finish(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
    if self.pending.is_empty() {
      return Ok(None);
    }
    self.pending.resize(self.target(), 0);
    self.encode().map(Some)
  }

  fn encode(&mut self) -> Result<(u64, Vec<u8>)> {
    let n = self
      .enc
      .encode(&self.pending, &mut self.out)
      .map_err(|e| Error::Peer(format!("opus encode: {e}")))?;
    let ts = self.next_rtp();
    self.encoded += (self.pending.len() / self.format.channels as usize) as u64;
    self.pending.clear();
    self.frames += 1;
    Ok((ts, self.out[..n].to_vec()))
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn sine(format: Format, chunks: usize, hz: f64) -> Vec<i16> {
    let n = format.sample_rate as usize / 100 * chunks;
    (0..n)
      .flat_map(|i| {
        let v = ((i as f64 * hz * std::f64::consts::TAU / format.sample_rate as f64).sin() * 16000.0) as i16;
        std::iter::repeat_n(v, format.channels as usize)
      })
      .collect()
  }

  #[test]
  fn the_first_chunk_is_a_10_ms_frame_then_two_chunks_make_one_and_rtp_time_steps_by_960_at_any_input_rate() {
    for rate in [16_000, 24_000, 48_000] {
      let f = Format::new(rate, 1).unwrap();
      let mut fr = OpusFramer::new(&OpusOptions::new(f).unwrap()).unwrap();
      let audio = sine(f, 10, 440.0);
      let chunk = rate as usize / 100;
      let mut out = Vec::new();
      for c in audio.chunks(chunk) {
        if let Some(p) = fr.push(c).unwrap() {
          out.push(p);
        }
      }
      // Chunk 1 alone, then 2-3, 4-5, 6-7, 8-9; the tenth waits for its pair.
      assert_eq!(out.len(), 5);
      let ts: Vec<u64> = out.iter().map(|p| p.0).collect();
      assert_eq!(ts, vec![0, 480, 1440, 2400, 3360], "rate {rate}");
      assert_eq!(fr.next_rtp(), 4320);
      // Decodes back to 10 ms, then 20 ms per packet, with a real decoder.
      let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
      let mut pcm = vec![0i16; 5760];
      let lens: Vec<usize> = out
        .iter()
        .map(|(_, p)| dec.decode(p, &mut pcm, false).unwrap())
        .collect();
      assert_eq!(lens, vec![480, 960, 960, 960, 960], "rate {rate}");
    }
  }

  #[test]
  fn finish_pads_a_half_frame_and_silence_keeps_the_clock() {
    let f = Format::new(48_000, 2).unwrap();
    let mut fr = OpusFramer::new(&OpusOptions::new(f).unwrap()).unwrap();
    // The first chunk is a frame of its own (10 ms).
    assert_eq!(fr.push(&sine(f, 1, 440.0)).unwrap().unwrap().0, 0);
    assert!(fr.push(&sine(f, 1, 440.0)).unwrap().is_none());
    let (ts, _) = fr.finish().unwrap().unwrap();
    assert_eq!(ts, 480);
    // Underrun chunks are silence through the same path: the clock runs on.
    let silence = vec![0i16; 960];
    assert!(fr.push(&silence).unwrap().is_none());
    assert_eq!(fr.push(&silence).unwrap().unwrap().0, 1440);
    assert!(fr.finish().unwrap().is_none());
    assert_eq!(fr.next_rtp(), 2400);
  }

  #[test]
  fn options_outside_what_opus_takes_are_refused_with_the_option_named() {
    let e = OpusOptions::new(Format::new(44_100, 1).unwrap()).unwrap_err();
    assert!(e.to_string().contains("sampleRate"), "{e}");
    let e = OpusOptions::new(Format::new(48_000, 3).unwrap()).unwrap_err();
    assert!(e.to_string().contains("channels"), "{e}");
    let mut o = OpusOptions::new(Format::new(48_000, 1).unwrap()).unwrap();
    o.bitrate_bps = 1;
    assert!(o.validate().unwrap_err().to_string().contains("bitrate"));
    o.bitrate_bps = 32_000;
    o.complexity = 11;
    assert!(o.validate().unwrap_err().to_string().contains("complexity"));
  }

  #[test]
  fn a_full_or_closed_queue_drops_whole_packets_and_the_bytes_balance() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let s = PacketSender {
      track: 7,
      tx,
      limit: 2,
      stats: Arc::new(TrackStats::default()),
    };
    let now = Instant::now();
    assert!(s.send(0, vec![1; 10], now));
    assert!(s.send(960, vec![1; 20], now));
    assert!(!s.send(1920, vec![1; 30], now)); // full
    let c = s.stats();
    assert_eq!(
      (c.encoded_bytes, c.queued_bytes, c.dropped_bytes, c.sent_bytes),
      (60, 30, 30, 0)
    );
    assert_eq!(c.dropped_full, 1);
    assert!(c.balanced());
    let p = rx.try_recv().unwrap();
    assert_eq!((p.track, p.rtp_ts), (7, 0));
    p.stats.dequeued(p.data.len(), true);
    let p = rx.try_recv().unwrap();
    p.stats.dequeued(p.data.len(), false); // e.g. not connected yet
    drop(rx);
    assert!(!s.send(2880, vec![1; 5], now)); // closed
    let c = s.stats();
    assert_eq!(
      (c.encoded_bytes, c.queued_bytes, c.sent_bytes, c.dropped_bytes),
      (65, 0, 10, 55)
    );
    assert_eq!(
      (c.sent_packets, c.dropped_full, c.dropped_unsent, c.encoded_packets),
      (1, 1, 2, 4)
    );
    assert!(c.balanced());
  }
}
