//! [`LiveKitSink`]: a capstan sink that publishes what the engine delivers. It runs where
//! every sink runs, on the engine clock's thread: each 10 ms chunk goes into the Opus
//! framer, every second one finishes a 20 ms frame that is encoded there and queued to the
//! session without waiting (a full queue drops the packet, counted; see [`crate::track`]).
//! No JavaScript and no lock shared with the network is on this path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use capstan_core::{Format, Sink};

use crate::error::Result;
use crate::room::LocalAudioTrack;
use crate::track::{Counters, OpusFramer, PacketSender};

/// Chunks the sink says it can take per pass: it never refuses audio (a full queue drops
/// encoded packets instead, so the engine's queue never backs up behind the network). A
/// realtime source takes one per tick whatever this says; the sink is meant for those, as
/// an unpaced source would send faster than real time.
pub const ROOM_CHUNKS: usize = 4;

pub struct LiveKitSink {
  framer: OpusFramer,
  packets: PacketSender,
  silence: Vec<i16>,
  closed: Arc<AtomicBool>,
}

impl LiveKitSink {
  /// A sink for `track`, taking the track's format (48 kHz mono unless it was published
  /// with another).
  pub fn new(track: &LocalAudioTrack) -> Result<Self> {
    Self::with_sender(&track.opus, track.packets())
  }

  pub fn with_sender(opus: &crate::track::OpusOptions, packets: PacketSender) -> Result<Self> {
    let framer = OpusFramer::new(opus)?;
    let f = opus.format;
    let silence = vec![0; f.sample_rate as usize / 100 * f.channels as usize];
    Ok(LiveKitSink {
      framer,
      packets,
      silence,
      closed: Arc::new(AtomicBool::new(false)),
    })
  }

  /// Set once the sink has closed and queued its last packet (the padded half frame):
  /// a graceful unpublish waits for it, so the end of the audio is sent, not dropped.
  pub fn closed_flag(&self) -> Arc<AtomicBool> {
    self.closed.clone()
  }

  pub fn stats(&self) -> Counters {
    self.packets.stats()
  }

  fn send(&mut self, frame: Option<(u64, Vec<u8>)>) {
    if let Some((ts, data)) = frame {
      self.packets.send(ts, data, std::time::Instant::now());
    }
  }
}

impl Sink for LiveKitSink {
  fn format(&self) -> Format {
    self.framer.format()
  }

  fn room(&self) -> usize {
    ROOM_CHUNKS
  }

  fn push(&mut self, chunk: &[i16]) -> std::result::Result<(), String> {
    let f = self.framer.push(chunk).map_err(|e| e.to_string())?;
    self.send(f);
    Ok(())
  }

  /// An underrun is sent as silence: the RTP clock and the receiver's playout run on.
  fn underrun(&mut self) -> std::result::Result<(), String> {
    let silence = std::mem::take(&mut self.silence);
    let r = self.push(&silence);
    self.silence = silence;
    r
  }

  fn fills_gaps(&self) -> bool {
    true
  }

  fn close(&mut self) {
    if let Ok(f) = self.framer.finish() {
      self.send(f);
    }
    self.closed.store(true, Ordering::Release);
  }
}

#[cfg(test)]
mod tests {
  use std::sync::Arc;

  use super::*;
  use crate::track::{OpusOptions, TrackStats};
  use tokio::sync::mpsc;

  /// Underruns go through the encoder as silence: packet after packet (the first 10 ms, the
  /// rest 20 ms), RTP time steps by exactly 960 after the first whatever mix of audio and
  /// underruns made the frames, and a frame can be half audio, half silence.
  #[test]
  fn underruns_keep_rtp_time_continuous() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stats = Arc::new(TrackStats::default());
    let opus = OpusOptions::new(Format::new(48_000, 1).unwrap()).unwrap();
    let mut sink = LiveKitSink::with_sender(
      &opus,
      PacketSender {
        track: 1,
        tx,
        stats: stats.clone(),
        limit: 64,
      },
    )
    .unwrap();
    assert!(sink.fills_gaps());
    let chunk = vec![4000i16; 480];
    for i in 0..21 {
      match i % 3 {
        0 => sink.underrun().unwrap(),
        _ => sink.push(&chunk).unwrap(),
      }
    }
    sink.close(); // 21 chunks: the first alone, then 10 pairs
    let mut ts = Vec::new();
    while let Ok(p) = rx.try_recv() {
      p.stats.dequeued(p.data.len(), true);
      ts.push(p.rtp_ts);
    }
    let want: Vec<u64> = std::iter::once(0).chain((0..10).map(|k| 480 + k * 960)).collect();
    assert_eq!(ts, want);
    let c = stats.snapshot();
    assert!(c.balanced() && c.sent_packets == 11, "{c:?}");
    assert_eq!(sink.stats(), c);
  }

  /// Through a real capstan engine: a realtime source paced by the clock, the sink on its
  /// thread, a queue that is drained slower than it fills. Bytes balance, RTP time steps by
  /// 960 over drops and underruns alike.
  #[test]
  fn the_engine_drives_the_sink_and_the_byte_law_holds() {
    let engine = capstan_core::Engine::new(1);
    let opts = capstan_core::SourceOptions::new(48_000, 1).unwrap();
    let source = engine.add_source(opts).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stats = Arc::new(TrackStats::default());
    let sender = PacketSender {
      track: 1,
      tx,
      stats: stats.clone(),
      limit: 4,
    };
    let opus = OpusOptions::new(Format::new(48_000, 1).unwrap()).unwrap();
    source
      .set_sink(Box::new(LiveKitSink::with_sender(&opus, sender).unwrap()))
      .unwrap();
    let tone: Vec<i16> = (0..4800)
      .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 48_000.0).sin() * 8000.0) as i16)
      .collect();
    source.try_capture(capstan_core::FrameRef::i16(&tone)).unwrap();
    // 100 ms of tone, then underruns; the receiver lags so the 4-packet queue overflows.
    let mut got = Vec::new();
    // The reader takes one packet per 100 ms, a fifth of the rate the clock makes them, so
    // the queue overflows even on a loaded machine; it runs until 15 packets were encoded.
    let t0 = std::time::Instant::now();
    while stats.snapshot().encoded_packets < 15 && t0.elapsed() < std::time::Duration::from_secs(10) {
      std::thread::sleep(std::time::Duration::from_millis(100));
      if let Ok(p) = rx.try_recv() {
        p.stats.dequeued(p.data.len(), true);
        got.push(p.rtp_ts);
      }
      assert!(stats.snapshot().balanced());
    }
    engine.remove_source(&source);
    engine.shutdown();
    let c = stats.snapshot();
    assert!(c.balanced(), "{c:?}");
    assert!(c.encoded_packets >= 15, "{c:?}");
    assert!(c.dropped_full > 0, "{c:?}");
    // After the 10 ms first frame at 0, frames start at 480 + k * 960.
    assert_eq!(got[0], 0);
    assert!(
      got[1..].iter().all(|t| t % 960 == 480) && got.windows(2).all(|w| w[1] > w[0]),
      "{got:?}"
    );
  }
}
