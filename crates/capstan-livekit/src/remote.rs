//! What a remote participant's audio track delivers: decoded 10 ms chunks in a bounded
//! buffer the session fills (see [`crate::jitter`]) and a reader drains without blocking.
//!
//! The session never waits for the reader: a full buffer drops its *oldest* chunk (the
//! reader is behind; fresh audio matters more), counted. A reader that found the buffer
//! empty (or never read) is woken by the notify callback once, when the next chunk (or the
//! end) arrives, and not again until it has come back and found it empty: so a binding
//! makes one threadsafe-function call per batch, never one per chunk. The reader's
//! contract: call [`RemoteAudio::read`] until it says `Empty` (or `Ended`), then wait.
//!
//! Chunks obey `decoded + concealed == read + queued + dropped` at every snapshot: each
//! counter moves under the one lock with the queue.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use capstan_core::Format;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::jitter::{PacketCounters, CHUNK_FRAMES};

/// Chunks held for the reader unless the caller says otherwise: 500 ms.
pub const DEFAULT_BUFFER_CHUNKS: usize = 50;
pub const MAX_BUFFER_CHUNKS: usize = 6000;

pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// What one read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRemote {
  /// Interleaved samples of this many whole 10 ms chunks, oldest first.
  Chunks(Vec<i16>, usize),
  /// Nothing now; the notify callback says when there is.
  Empty,
  /// The track has ended and everything was read.
  Ended,
}

/// Counters of one remote track: the jitter buffer's (packets, see [`crate::jitter`]) and
/// the chunk buffer's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RemoteStats {
  pub packets_received: u64,
  pub bytes_received: u64,
  pub played: u64,
  pub duplicate: u64,
  pub late: u64,
  pub overflow: u64,
  pub discarded: u64,
  pub buffered: u64,
  pub lost: u64,
  pub fec_recovered: u64,
  pub decode_errors: u64,
  pub silence_gaps: u64,
  pub resyncs: u64,
  /// Chunks of a packet's own audio, and of PLC/FEC, put into the buffer.
  pub decoded_chunks: u64,
  pub concealed_chunks: u64,
  /// Oldest chunks dropped because the buffer was full.
  pub dropped_chunks: u64,
  pub read_chunks: u64,
  pub queued_chunks: u64,
}

impl RemoteStats {
  /// `decoded + concealed == read + queued + dropped`.
  pub fn chunks_balanced(&self) -> bool {
    self.decoded_chunks + self.concealed_chunks == self.read_chunks + self.queued_chunks + self.dropped_chunks
  }

  /// `received == played + duplicate + late + overflow + discarded + buffered`.
  pub fn packets_balanced(&self) -> bool {
    self.packets_received == self.played + self.duplicate + self.late + self.overflow + self.discarded + self.buffered
  }

  pub fn balanced(&self) -> bool {
    self.chunks_balanced() && self.packets_balanced()
  }
}

struct Inner {
  chunks: VecDeque<Vec<i16>>,
  stats: RemoteStats,
  ended: Option<String>,
  /// The reader has seen the buffer empty (or never read) and has not been woken since.
  armed: bool,
  first_chunk_at: Option<Instant>,
  notify: Option<Notify>,
}

impl Inner {
  /// The callback to call (outside the lock) if the reader is to be woken now.
  fn wake(&mut self) -> Option<Notify> {
    if self.armed && self.notify.is_some() {
      self.armed = false;
      self.notify.clone()
    } else {
      None
    }
  }
}

/// The decoded audio of one remote track. Shared by the session (writer) and the caller.
pub struct RemoteAudio {
  format: Format,
  capacity: usize,
  inner: Mutex<Inner>,
}

impl fmt::Debug for RemoteAudio {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("RemoteAudio")
      .field("format", &self.format)
      .field("capacity", &self.capacity)
      .field("stats", &self.stats())
      .finish()
  }
}

impl RemoteAudio {
  pub fn new(format: Format, capacity: usize) -> Result<Self> {
    check_capacity(capacity)?;
    Ok(RemoteAudio {
      format,
      capacity,
      inner: Mutex::new(Inner {
        chunks: VecDeque::with_capacity(capacity.min(256)),
        stats: RemoteStats::default(),
        ended: None,
        armed: true,
        first_chunk_at: None,
        notify: None,
      }),
    })
  }

  pub fn format(&self) -> Format {
    self.format
  }

  /// Samples in one chunk (480 per channel).
  pub fn chunk_samples(&self) -> usize {
    CHUNK_FRAMES * self.format.channels as usize
  }

  pub fn capacity(&self) -> usize {
    self.capacity
  }

  /// Takes up to `max_chunks` chunks, never waiting.
  pub fn read(&self, max_chunks: usize) -> ReadRemote {
    let mut g = self.inner.lock();
    if g.chunks.is_empty() {
      g.armed = true;
      return if g.ended.is_some() {
        ReadRemote::Ended
      } else {
        ReadRemote::Empty
      };
    }
    let n = max_chunks.min(g.chunks.len());
    if n == 0 {
      return ReadRemote::Empty;
    }
    let mut out = Vec::with_capacity(n * self.chunk_samples());
    for c in g.chunks.drain(..n) {
      out.extend_from_slice(&c);
    }
    g.stats.read_chunks += n as u64;
    g.stats.queued_chunks -= n as u64;
    ReadRemote::Chunks(out, n)
  }

  /// Sets (or clears) the wake-up. Called at once if chunks wait for a reader that has not
  /// been told of them.
  pub fn set_notify(&self, f: Option<Notify>) {
    let fire = {
      let mut g = self.inner.lock();
      g.notify = f;
      if !g.chunks.is_empty() || g.ended.is_some() {
        g.wake()
      } else {
        None
      }
    };
    if let Some(f) = fire {
      f();
    }
  }

  pub fn stats(&self) -> RemoteStats {
    self.inner.lock().stats
  }

  /// When the first chunk went into the buffer.
  pub fn first_chunk_at(&self) -> Option<Instant> {
    self.inner.lock().first_chunk_at
  }

  /// Why the track ended, once it has.
  pub fn ended(&self) -> Option<String> {
    self.inner.lock().ended.clone()
  }

  /// One chunk from the jitter buffer.
  pub(crate) fn push(&self, chunk: &[i16], concealed: bool) {
    debug_assert_eq!(chunk.len(), self.chunk_samples());
    let fire = {
      let mut g = self.inner.lock();
      if g.ended.is_some() {
        return;
      }
      if concealed {
        g.stats.concealed_chunks += 1;
      } else {
        g.stats.decoded_chunks += 1;
      }
      if g.chunks.len() >= self.capacity {
        g.chunks.pop_front();
        g.stats.queued_chunks -= 1;
        g.stats.dropped_chunks += 1;
      }
      g.chunks.push_back(chunk.to_vec());
      g.stats.queued_chunks += 1;
      if g.first_chunk_at.is_none() {
        g.first_chunk_at = Some(Instant::now());
      }
      g.wake()
    };
    // Outside the lock, so a callback that reads at once does not deadlock.
    if let Some(f) = fire {
      f();
    }
  }

  /// The jitter buffer's packet counters, copied in whole so a snapshot is consistent.
  pub(crate) fn set_packets(&self, p: &PacketCounters) {
    let mut g = self.inner.lock();
    let s = &mut g.stats;
    s.packets_received = p.received;
    s.bytes_received = p.bytes;
    s.played = p.played;
    s.duplicate = p.duplicate;
    s.late = p.late;
    s.overflow = p.overflow;
    s.discarded = p.discarded;
    s.buffered = p.buffered;
    s.lost = p.lost;
    s.fec_recovered = p.fec_recovered;
    s.decode_errors = p.decode_errors;
    s.silence_gaps = p.silence_gaps;
    s.resyncs = p.resyncs;
  }

  /// No more chunks; what is queued can still be read, then `Ended`.
  pub(crate) fn end(&self, reason: &str) {
    let fire = {
      let mut g = self.inner.lock();
      if g.ended.is_some() {
        return;
      }
      g.ended = Some(reason.to_string());
      g.wake()
    };
    if let Some(f) = fire {
      f();
    }
  }
}

pub(crate) fn check_capacity(capacity: usize) -> Result<()> {
  if !(1..=MAX_BUFFER_CHUNKS).contains(&capacity) {
    return Err(Error::InvalidOption(format!(
      "remoteBufferChunks must be 1..={MAX_BUFFER_CHUNKS}, got {capacity}"
    )));
  }
  Ok(())
}

/// A remote participant's audio track the session receives.
#[derive(Debug, Clone)]
pub struct RemoteAudioTrack {
  pub sid: String,
  pub participant_sid: String,
  pub participant_identity: String,
  pub name: String,
  /// 48 kHz; stereo when the publisher said so (TrackInfo `stereo` or `TF_STEREO`).
  pub format: Format,
  pub audio: Arc<RemoteAudio>,
}

impl PartialEq for RemoteAudioTrack {
  fn eq(&self, o: &Self) -> bool {
    self.sid == o.sid && Arc::ptr_eq(&self.audio, &o.audio)
  }
}

impl Eq for RemoteAudioTrack {}

/// A remote audio track a participant publishes, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTrackInfo {
  pub sid: String,
  pub name: String,
  pub stereo: bool,
  pub muted: bool,
}

/// Another participant in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParticipant {
  pub sid: String,
  pub identity: String,
  pub name: String,
  /// Its published audio tracks.
  pub audio_tracks: Vec<RemoteTrackInfo>,
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::{AtomicUsize, Ordering};

  fn audio(cap: usize) -> RemoteAudio {
    RemoteAudio::new(Format::new(48_000, 1).unwrap(), cap).unwrap()
  }

  fn chunk(v: i16) -> Vec<i16> {
    vec![v; 480]
  }

  #[test]
  fn a_full_buffer_drops_the_oldest_and_the_law_holds() {
    let a = audio(3);
    for v in 0..5 {
      a.push(&chunk(v), v == 4);
      assert!(a.stats().chunks_balanced(), "{:?}", a.stats());
    }
    let s = a.stats();
    assert_eq!(
      (s.decoded_chunks, s.concealed_chunks, s.queued_chunks, s.dropped_chunks),
      (4, 1, 3, 2)
    );
    let ReadRemote::Chunks(pcm, n) = a.read(2) else {
      panic!()
    };
    assert_eq!(n, 2);
    assert_eq!(
      (pcm.len(), pcm[0], pcm[480]),
      (960, 2, 3),
      "the oldest two were dropped"
    );
    assert_eq!(a.read(10), ReadRemote::Chunks(chunk(4), 1));
    assert_eq!(a.read(10), ReadRemote::Empty);
    let s = a.stats();
    assert_eq!((s.read_chunks, s.queued_chunks), (3, 0));
    assert!(s.chunks_balanced());
  }

  #[test]
  fn capacity_is_bounded() {
    assert!(RemoteAudio::new(Format::new(48_000, 1).unwrap(), 0).is_err());
    assert!(RemoteAudio::new(Format::new(48_000, 1).unwrap(), MAX_BUFFER_CHUNKS + 1).is_err());
  }

  /// One wake per batch: the first chunk wakes, later ones do not until a read finds the
  /// buffer empty; a callback set while chunks wait fires at once.
  #[test]
  fn notify_is_coalesced_until_the_reader_finds_it_empty() {
    let a = Arc::new(audio(100));
    let n = Arc::new(AtomicUsize::new(0));
    a.push(&chunk(1), false);
    let n2 = n.clone();
    a.set_notify(Some(Arc::new(move || {
      n2.fetch_add(1, Ordering::SeqCst);
    })));
    assert_eq!(n.load(Ordering::SeqCst), 1, "chunks were waiting");
    a.push(&chunk(2), false);
    a.push(&chunk(3), false);
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert!(matches!(a.read(1), ReadRemote::Chunks(_, 1)));
    a.push(&chunk(4), false);
    assert_eq!(n.load(Ordering::SeqCst), 1, "the reader has not come back empty");
    assert!(matches!(a.read(10), ReadRemote::Chunks(_, 3)));
    assert_eq!(a.read(10), ReadRemote::Empty);
    a.push(&chunk(5), false);
    a.push(&chunk(6), false);
    assert_eq!(n.load(Ordering::SeqCst), 2);
    // Woken for chunks 5 and 6 already: a new callback is not called for them again.
    a.set_notify(Some(Arc::new(|| panic!("not again"))));
    assert!(matches!(a.read(10), ReadRemote::Chunks(_, 2)));
    assert_eq!(a.read(10), ReadRemote::Empty);
    // A callback that reads at once, until Empty (as a binding on a fast path might), does
    // not deadlock and is woken once per batch.
    let a2 = a.clone();
    let got = Arc::new(AtomicUsize::new(0));
    let g2 = got.clone();
    a.set_notify(Some(Arc::new(move || {
      while let ReadRemote::Chunks(_, k) = a2.read(100) {
        g2.fetch_add(k, Ordering::SeqCst);
      }
    })));
    a.push(&chunk(7), false);
    assert_eq!(got.load(Ordering::SeqCst), 1);
    a.push(&chunk(8), false);
    assert_eq!(got.load(Ordering::SeqCst), 2);
    assert!(a.stats().chunks_balanced());
    a.set_notify(None);
  }

  /// Ended after the queued chunks are read; the end wakes a waiting reader; nothing is
  /// taken after it.
  #[test]
  fn ended_comes_after_the_last_chunk_and_wakes_the_reader() {
    let a = audio(10);
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    a.set_notify(Some(Arc::new(move || {
      n2.fetch_add(1, Ordering::SeqCst);
    })));
    assert_eq!(a.read(1), ReadRemote::Empty);
    a.push(&chunk(1), false);
    a.end("unsubscribed");
    assert_eq!(
      n.load(Ordering::SeqCst),
      1,
      "the end does not wake a reader already woken"
    );
    assert!(matches!(a.read(5), ReadRemote::Chunks(_, 1)));
    assert_eq!(a.read(5), ReadRemote::Ended);
    a.push(&chunk(2), false);
    assert_eq!(a.read(5), ReadRemote::Ended);
    assert_eq!(a.ended().as_deref(), Some("unsubscribed"));
    let b = audio(10);
    let m = Arc::new(AtomicUsize::new(0));
    let m2 = m.clone();
    b.set_notify(Some(Arc::new(move || {
      m2.fetch_add(1, Ordering::SeqCst);
    })));
    b.end("room closed");
    assert_eq!(m.load(Ordering::SeqCst), 1);
    assert_eq!(b.read(1), ReadRemote::Ended);
    assert!(b.stats().balanced());
  }
}
