//! An encoder as the source's sink: the clock pushes each delivered 10 ms chunk (after the
//! processors) into the encoder on its own thread, and the pieces it completes go into a
//! bounded output queue that JavaScript reads at its own pace.
//!
//! The output queue is bounded in bytes with the capture vocabulary: `wait` stops taking
//! audio while it is full (the source backs up, its own policy applies and its health says
//! so), `drop-oldest` and `drop-newest` keep taking audio and drop whole pieces, never a
//! stream header. Bytes obey the same law as samples:
//! produced = read + queued + dropped + cleared.
//!
//! Segments are cut at exact queue positions: [`EncodedOutput::cut`] names the position
//! (in samples) where a segment ends, the clock tells the sink each chunk's position, and
//! the sink finishes the logical stream right before the first chunk past it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::Sink;
use crate::encode::{Encoder, Finished, Piece};
use crate::format::Format;
use crate::queue::Overflow;

/// Called (without the output's lock) when a reader can read again or a segment ended.
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// Default output bound: minutes of speech-rate Opus, seconds of WAV.
pub const DEFAULT_QUEUE_BYTES: usize = 1 << 20;

/// A finished segment (one complete file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentInfo {
  /// 0, 1, 2… in the order they were cut.
  pub index: u32,
  /// Samples per channel of audio it holds (padding excluded), at the source's rate.
  pub samples: u64,
  /// Bytes the encoder produced for it (some may have been dropped).
  pub bytes: u64,
  /// What to write at offset 0 of a seekable output (WAV sizes, MP3 LAME tag).
  pub header_patch: Option<Vec<u8>>,
  /// Whether it was the last: `finish()` or the source closing ended the stream.
  pub last: bool,
  /// From the segment's first chunk entering the encoder to its first audio piece queued.
  pub first_piece_ms: Option<f64>,
}

struct Item {
  bytes: Vec<u8>,
  header: bool,
  /// Set on the item that ends a segment (possibly with no bytes of its own).
  end: Option<SegmentInfo>,
}

/// What [`EncodedOutput::read`] found.
#[derive(Debug, PartialEq)]
pub enum Read {
  /// Whole pieces, concatenated; `end` when the last one closed a segment.
  Bytes { bytes: Vec<u8>, end: Option<SegmentInfo> },
  /// Nothing now; a wake follows when there is.
  Empty,
  /// The stream ended and everything was read.
  Ended,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedMetrics {
  pub produced_bytes: u64,
  pub read_bytes: u64,
  pub queued_bytes: u64,
  pub dropped_bytes: u64,
  /// Bytes `clear()` discarded unread (an interruption).
  pub cleared_bytes: u64,
  pub pieces: u64,
  pub dropped_pieces: u64,
  pub segments: u64,
  /// Samples per channel that reached the encoder.
  pub encoded_samples: u64,
  /// Samples per channel delivered after the stream ended (nothing encodes them).
  pub ignored_samples: u64,
  /// Chunks the encoder failed on (each also a source `'sink-error'`).
  pub errors: u64,
  /// Encoder calls made on a thread that is not an engine clock (the caller's, when
  /// `close()` ends a stream the clock was not holding). Pushes never add to it.
  pub caller_encodes: u64,
  pub encode_us_p50: f64,
  pub encode_us_p99: f64,
  pub encode_us_max: f64,
  pub first_piece_ms: Option<f64>,
}

struct Cut {
  position: u64,
  /// When it was registered: an idle pass that started earlier may not have seen the
  /// audio that came before it.
  registered: Instant,
  /// Queue samples of `flush()` silence right before `position`: the chunk that ends
  /// there is encoded without them, so the file ends on the input's exact length.
  pad: u64,
  last: bool,
}

struct Inner {
  items: VecDeque<Item>,
  queued: usize,
  m: EncodedMetrics,
  cuts: VecDeque<Cut>,
  /// Segments cut since JavaScript last asked.
  finished: Vec<SegmentInfo>,
  errors: Vec<String>,
  wanted: bool,
  /// No more pieces will come (finish or close); readers see `Ended` once drained.
  ended: bool,
  encode_us: Histogram<u64>,
}

/// The output side shared by the sink (clock thread) and JavaScript: a small lock that
/// neither side holds while encoding or converting.
pub struct EncodedOutput {
  inner: Mutex<Inner>,
  capacity: usize,
  policy: Overflow,
  wake: Wake,
}

impl EncodedOutput {
  /// `capacity` bytes at most (plus one pass of output under `wait`); `reject` means
  /// nothing for bytes that are already encoded, so it is refused by the caller.
  pub fn new(capacity: usize, policy: Overflow, wake: Wake) -> Arc<Self> {
    Arc::new(EncodedOutput {
      inner: Mutex::new(Inner {
        items: VecDeque::new(),
        queued: 0,
        m: EncodedMetrics::default(),
        cuts: VecDeque::new(),
        finished: Vec::new(),
        errors: Vec::new(),
        wanted: false,
        ended: false,
        encode_us: Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds"),
      }),
      capacity: capacity.max(1),
      policy,
      wake,
    })
  }

  /// Ends a segment once the queue has given up everything before `position` (samples,
  /// as counted by the source queue); `last` ends the stream.
  pub fn cut(&self, position: u64, last: bool) {
    self.cut_padded(position, 0, last);
  }

  /// [`cut`](Self::cut) where the last `pad` queue samples before `position` are padding.
  /// Registered before the padding is captured, so the clock cannot deliver the chunk
  /// that ends there without knowing it.
  pub fn cut_padded(&self, position: u64, pad: u64, last: bool) {
    self.inner.lock().cuts.push_back(Cut {
      position,
      registered: Instant::now(),
      pad,
      last,
    });
  }

  /// The padding for the cut at `position` was refused: whatever completes that chunk
  /// later is audio, not silence to trim.
  pub fn unpad(&self, position: u64) {
    for c in self.inner.lock().cuts.iter_mut().filter(|c| c.position == position) {
      c.pad = 0;
    }
  }

  /// Whole pieces up to about `max` bytes (at least one), stopping after a segment's end.
  pub fn read(&self, max: usize) -> Read {
    let mut g = self.inner.lock();
    let Some(first) = g.items.pop_front() else {
      if g.ended {
        return Read::Ended;
      }
      g.wanted = true;
      return Read::Empty;
    };
    let mut bytes = first.bytes;
    let mut end = first.end;
    while end.is_none() && bytes.len() < max {
      match g.items.front() {
        Some(it) if bytes.len() + it.bytes.len() <= max => {
          let it = g.items.pop_front().expect("front exists");
          bytes.extend_from_slice(&it.bytes);
          end = it.end;
        }
        _ => break,
      }
    }
    g.queued -= bytes.len();
    g.m.read_bytes += bytes.len() as u64;
    Read::Bytes { bytes, end }
  }

  /// Discards every unread piece (an interruption: the listener must not hear it),
  /// keeping segment ends so readers still see where segments stop. Returns the bytes.
  pub fn clear(&self) -> u64 {
    let mut g = self.inner.lock();
    let mut n = 0u64;
    g.items.retain_mut(|it| {
      n += it.bytes.len() as u64;
      it.bytes = Vec::new();
      it.end.is_some()
    });
    g.queued = 0;
    g.m.cleared_bytes += n;
    n
  }

  /// Segments cut since the last call.
  pub fn take_finished(&self) -> Vec<SegmentInfo> {
    std::mem::take(&mut self.inner.lock().finished)
  }

  /// Encoder failures since the last call.
  pub fn take_errors(&self) -> Vec<String> {
    std::mem::take(&mut self.inner.lock().errors)
  }

  pub fn metrics(&self) -> EncodedMetrics {
    let g = self.inner.lock();
    let mut m = g.m.clone();
    m.queued_bytes = g.queued as u64;
    if !g.encode_us.is_empty() {
      m.encode_us_p50 = g.encode_us.value_at_quantile(0.5) as f64;
      m.encode_us_p99 = g.encode_us.value_at_quantile(0.99) as f64;
      m.encode_us_max = g.encode_us.max() as f64;
    }
    m
  }

  pub fn is_ended(&self) -> bool {
    self.inner.lock().ended
  }

  fn full(&self) -> bool {
    self.inner.lock().queued >= self.capacity
  }

  /// Queues what one encoder call produced; wakes a waiting reader.
  fn enqueue(&self, pieces: &mut Vec<Piece>, end: Option<SegmentInfo>, stats: Option<ChunkStats>) {
    let wake = {
      let mut g = self.inner.lock();
      if let Some(c) = stats {
        let _ = g.encode_us.record(c.encode_us.max(1));
        g.m.encoded_samples += c.samples;
        if c.first_piece_ms.is_some() {
          g.m.first_piece_ms = c.first_piece_ms;
        }
        g.m.caller_encodes += c.caller as u64;
      }
      for p in pieces.drain(..) {
        g.m.produced_bytes += p.bytes.len() as u64;
        g.m.pieces += 1;
        let n = p.bytes.len();
        if !p.header && g.queued + n > self.capacity {
          match self.policy {
            Overflow::DropNewest => {
              g.m.dropped_bytes += n as u64;
              g.m.dropped_pieces += 1;
              continue;
            }
            Overflow::DropOldest => Self::evict(&mut g, n, self.capacity),
            // `wait` stops the sink taking audio instead (see `room`).
            Overflow::Wait | Overflow::Reject => {}
          }
        }
        g.queued += n;
        g.items.push_back(Item {
          bytes: p.bytes,
          header: p.header,
          end: None,
        });
      }
      let had_end = end.is_some();
      if let Some(info) = end {
        g.m.segments += 1;
        g.finished.push(info.clone());
        if info.last {
          g.ended = true;
        }
        match g.items.back_mut() {
          Some(it) if it.end.is_none() => it.end = Some(info),
          _ => g.items.push_back(Item {
            bytes: Vec::new(),
            header: false,
            end: Some(info),
          }),
        }
      }
      // A segment's end always wakes JavaScript (its `segment()` promise waits on it).
      std::mem::take(&mut g.wanted) || had_end
    };
    if wake {
      (self.wake)();
    }
  }

  /// Drops the oldest droppable pieces until `n` more bytes fit (headers and segment ends
  /// stay: without them the rest cannot be decoded or delimited).
  fn evict(g: &mut Inner, n: usize, capacity: usize) {
    let mut i = 0;
    while g.queued + n > capacity && i < g.items.len() {
      let it = &mut g.items[i];
      if it.header || it.bytes.is_empty() {
        i += 1;
        continue;
      }
      let len = it.bytes.len();
      if it.end.is_some() {
        it.bytes = Vec::new();
        i += 1;
      } else {
        g.items.remove(i);
      }
      g.queued -= len;
      g.m.dropped_bytes += len as u64;
      g.m.dropped_pieces += 1;
    }
  }

  fn error(&self, e: &str) {
    let wake = {
      let mut g = self.inner.lock();
      g.m.errors += 1;
      if g.errors.len() < 16 {
        g.errors.push(e.to_string());
      }
      true
    };
    if wake {
      (self.wake)();
    }
  }
}

/// What one encoded chunk adds to the output's counters.
struct ChunkStats {
  encode_us: u64,
  samples: u64,
  first_piece_ms: Option<f64>,
  /// Encoded on a thread that is not an engine clock.
  caller: bool,
}

fn on_engine_thread() -> bool {
  std::thread::current()
    .name()
    .is_some_and(|n| n.starts_with(crate::clock::THREAD_PREFIX))
}

pub struct EncodeSink {
  format: Format,
  /// The source's format (queue positions count its samples; processors may change rate).
  input: Format,
  /// Frames of audio in the next chunk, when it is a segment's padded last one.
  next_frames: Option<usize>,
  encoder: Box<dyn Encoder>,
  out: Arc<EncodedOutput>,
  pieces: Vec<Piece>,
  fill_gaps: bool,
  silence: Vec<i16>,
  ended: bool,
  segment: u32,
  segment_bytes: u64,
  segment_started: Option<Instant>,
  first_piece_ms: Option<f64>,
}

impl EncodeSink {
  /// `encoder` must take `format` (the source's output format); `fill_gaps` encodes
  /// silence for realtime underruns so the stream keeps wall-clock time.
  pub fn new(format: Format, encoder: Box<dyn Encoder>, out: Arc<EncodedOutput>, fill_gaps: bool) -> Self {
    EncodeSink {
      format,
      input: format,
      next_frames: None,
      encoder,
      out,
      pieces: Vec::new(),
      fill_gaps,
      silence: vec![0; format.chunk_len()],
      ended: false,
      segment: 0,
      segment_bytes: 0,
      segment_started: None,
      first_piece_ms: None,
    }
  }

  /// The source's own format, when processors deliver another (a resampler): positions
  /// and padding are counted in it.
  pub fn with_input(mut self, input: Format) -> Self {
    self.input = input;
    self
  }

  /// Frames of audio (at the sink's rate) in a chunk whose last `pad` queue samples are
  /// padding.
  fn audio_frames(&self, pad: u64) -> usize {
    let (inr, outr) = (self.input.sample_rate as u64, self.format.sample_rate as u64);
    let pad_frames = pad / self.input.channels as u64;
    let pad_out = (pad_frames * outr + inr / 2) / inr;
    self.format.chunk_frames().saturating_sub(pad_out as usize)
  }

  fn encode(&mut self, chunk: &[i16], frames: usize) -> Result<(), String> {
    let started = Instant::now();
    self.segment_started.get_or_insert(started);
    let r = self.encoder.push_part(chunk, frames, &mut self.pieces);
    let us = started.elapsed().as_micros() as u64;
    if self.first_piece_ms.is_none() && self.pieces.iter().any(|p| !p.header) {
      let since = self.segment_started.expect("set above").elapsed();
      self.first_piece_ms = Some(since.as_secs_f64() * 1000.0);
    }
    self.segment_bytes += self.pieces.iter().map(|p| p.bytes.len() as u64).sum::<u64>();
    // One lock for the chunk's pieces and its counts: this runs for every 10 ms of audio.
    let stats = ChunkStats {
      encode_us: us,
      samples: frames as u64,
      first_piece_ms: self.first_piece_ms,
      caller: !on_engine_thread(),
    };
    self.out.enqueue(&mut self.pieces, None, Some(stats));
    if let Err(e) = &r {
      self.out.error(e);
    }
    r
  }

  fn note_thread(&self) {
    if !on_engine_thread() {
      self.out.inner.lock().m.caller_encodes += 1;
    }
  }

  /// Ends the current segment (a complete file), queueing its last pieces and its record.
  fn end_segment(&mut self, last: bool) {
    self.note_thread();
    let r = self.encoder.finish(&mut self.pieces);
    let fin = match r {
      Ok(f) => f,
      Err(e) => {
        self.out.error(&e);
        Finished::default()
      }
    };
    self.segment_bytes += self.pieces.iter().map(|p| p.bytes.len() as u64).sum::<u64>();
    let info = SegmentInfo {
      index: self.segment,
      samples: fin.samples,
      bytes: std::mem::take(&mut self.segment_bytes),
      header_patch: fin.header_patch,
      last,
      first_piece_ms: self.first_piece_ms.take(),
    };
    self.segment += 1;
    self.segment_started = None;
    self.ended = last;
    self.out.enqueue(&mut self.pieces, Some(info), None);
  }
}

impl Sink for EncodeSink {
  fn format(&self) -> Format {
    self.format
  }

  fn room(&self) -> usize {
    if !self.ended && self.out.policy == Overflow::Wait && self.out.full() {
      0
    } else {
      usize::MAX
    }
  }

  fn push(&mut self, chunk: &[i16]) -> Result<(), String> {
    let frames = self.next_frames.take().unwrap_or(self.format.chunk_frames());
    if self.ended {
      self.out.inner.lock().m.ignored_samples += self.format.chunk_frames() as u64;
      return Ok(());
    }
    self.encode(chunk, frames)
  }

  fn underrun(&mut self) -> Result<(), String> {
    if !self.fill_gaps || self.ended || self.segment_started.is_none() {
      return Ok(());
    }
    let silence = std::mem::take(&mut self.silence);
    let r = self.encode(&silence, self.format.chunk_frames());
    self.silence = silence;
    r
  }

  fn fills_gaps(&self) -> bool {
    self.fill_gaps
  }

  fn at(&mut self, position: u64, idle: Option<Instant>) {
    let chunk_end = position + self.input.chunk_len() as u64;
    loop {
      let (cut, pad) = {
        let mut g = self.out.inner.lock();
        match g.cuts.front() {
          // Idle: the queue is empty and nothing waits, so a cut registered before the pass
          // looked is due even if its mark lies past the audio (a padding capture that
          // timed out). One registered since came after audio this pass did not take.
          Some(c) if c.position <= position || idle.is_some_and(|t| c.registered < t) => (g.cuts.pop_front(), 0),
          // The next chunk ends a segment: how much of it is padding (one lock for both).
          Some(c) if c.position == chunk_end => (None, c.pad),
          _ => (None, 0),
        }
      };
      let Some(cut) = cut else {
        self.next_frames = (pad > 0).then(|| self.audio_frames(pad));
        break;
      };
      if !self.ended {
        self.end_segment(cut.last);
      }
    }
  }

  fn close(&mut self) {
    if !self.ended {
      self.end_segment(true);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::encode::{build, PcmSample, Settings};
  use std::sync::atomic::{AtomicUsize, Ordering};

  fn sink(cap: usize, policy: Overflow, wakes: Arc<AtomicUsize>) -> (EncodeSink, Arc<EncodedOutput>) {
    let f = Format::new(8_000, 1).unwrap();
    let out = EncodedOutput::new(
      cap,
      policy,
      Box::new(move || {
        wakes.fetch_add(1, Ordering::Relaxed);
      }),
    );
    let e = build(&Settings::Pcm(PcmSample::S16le), f).unwrap();
    (EncodeSink::new(f, e, out.clone(), false), out)
  }

  fn law(m: &EncodedMetrics) {
    assert_eq!(
      m.produced_bytes,
      m.read_bytes + m.queued_bytes + m.dropped_bytes + m.cleared_bytes,
      "{m:?}"
    );
  }

  #[test]
  fn clear_discards_unread_bytes_but_keeps_segment_ends() {
    let (mut s, out) = sink(1 << 20, Overflow::Wait, Arc::default());
    out.cut(160, false);
    for i in 0..3u64 {
      s.at(i * 80, None);
      s.push(&[1; 80]).unwrap();
    }
    assert_eq!(out.clear(), 480);
    let Read::Bytes { bytes, end } = out.read(1 << 20) else {
      panic!()
    };
    assert!(bytes.is_empty() && end.is_some());
    assert_eq!(out.read(1 << 20), Read::Empty);
    law(&out.metrics());
  }

  #[test]
  fn wait_policy_stops_taking_audio_when_full_and_counts_add_up() {
    let (mut s, out) = sink(480, Overflow::Wait, Arc::default());
    for i in 0..3 {
      assert_eq!(s.room(), usize::MAX, "chunk {i}");
      s.push(&[i as i16; 80]).unwrap();
    }
    assert_eq!(s.room(), 0);
    let m = out.metrics();
    assert_eq!((m.produced_bytes, m.queued_bytes, m.dropped_bytes), (480, 480, 0));
    let Read::Bytes { bytes, end } = out.read(200) else {
      panic!()
    };
    assert_eq!((bytes.len(), end), (160, None));
    assert_eq!(i16::from_le_bytes([bytes[0], bytes[1]]), 0);
    assert_eq!(s.room(), usize::MAX);
    law(&out.metrics());
  }

  #[test]
  fn drop_policies_drop_whole_pieces_and_count_them() {
    let (mut s, out) = sink(320, Overflow::DropOldest, Arc::default());
    for i in 0..5 {
      s.push(&[i as i16; 80]).unwrap();
    }
    let m = out.metrics();
    assert_eq!((m.queued_bytes, m.dropped_bytes, m.dropped_pieces), (320, 480, 3));
    let Read::Bytes { bytes, .. } = out.read(1 << 20) else {
      panic!()
    };
    assert_eq!(i16::from_le_bytes([bytes[0], bytes[1]]), 3, "oldest went first");
    law(&out.metrics());

    let (mut s, out) = sink(320, Overflow::DropNewest, Arc::default());
    for i in 0..5 {
      s.push(&[i as i16; 80]).unwrap();
    }
    let Read::Bytes { bytes, .. } = out.read(1 << 20) else {
      panic!()
    };
    assert_eq!(i16::from_le_bytes([bytes[0], bytes[1]]), 0, "newest went");
    assert_eq!(out.metrics().dropped_bytes, 480);
    law(&out.metrics());
  }

  #[test]
  fn cuts_end_segments_at_exact_positions_and_wake_the_reader() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let (mut s, out) = sink(1 << 20, Overflow::Wait, wakes.clone());
    assert_eq!(out.read(10), Read::Empty);
    out.cut(160, false);
    for i in 0..4u64 {
      s.at(i * 80, None);
      s.push(&[i as i16; 80]).unwrap();
    }
    s.at(320, None);
    assert!(wakes.load(Ordering::Relaxed) >= 2);
    let Read::Bytes { bytes, end } = out.read(1 << 20) else {
      panic!()
    };
    assert_eq!(bytes.len(), 320, "the first segment: two chunks");
    let end = end.expect("segment end");
    assert_eq!((end.index, end.samples, end.bytes, end.last), (0, 160, 320, false));
    assert_eq!(out.take_finished().len(), 1);
    // Closing ends the second segment and the stream.
    s.close();
    let Read::Bytes { bytes, end } = out.read(1 << 20) else {
      panic!()
    };
    assert_eq!(bytes.len(), 320);
    assert!(end.unwrap().last);
    assert_eq!(out.read(1), Read::Ended);
    s.push(&[0; 80]).unwrap();
    assert_eq!(out.metrics().ignored_samples, 80);
    law(&out.metrics());
  }

  #[test]
  fn an_idle_queue_cuts_a_mark_that_audio_will_never_reach() {
    let (mut s, out) = sink(1 << 20, Overflow::Wait, Arc::default());
    s.push(&[1; 80]).unwrap();
    out.cut(10_000, true);
    s.at(80, None);
    assert!(!out.is_ended());
    s.at(80, Some(Instant::now()));
    assert!(out.is_ended());
  }

  #[test]
  fn an_idle_pass_that_started_before_a_cut_leaves_it_for_the_audio_that_came_with_it() {
    // The race a loaded machine hit: a pass sees the queue empty, then a producer
    // captures a segment's audio and cuts it, then the pass reports idle.
    let (mut s, out) = sink(1 << 20, Overflow::Wait, Arc::default());
    let pass_started = Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(2));
    out.cut(160, true);
    s.at(0, Some(pass_started));
    assert!(!out.is_ended(), "the cut is not the stale pass's to take");
    s.at(0, None);
    s.push(&[1; 80]).unwrap();
    s.at(80, None);
    s.push(&[1; 80]).unwrap();
    s.at(160, None);
    assert!(out.is_ended());
    assert_eq!(out.take_finished()[0].samples, 160);
  }

  #[test]
  fn the_chunk_before_a_padded_cut_is_encoded_without_its_padding() {
    let (mut s, out) = sink(1 << 20, Overflow::Wait, Arc::default());
    out.cut_padded(160, 30, true);
    s.at(0, None);
    s.push(&[1; 80]).unwrap();
    s.at(80, None);
    s.push(&[2; 80]).unwrap();
    s.at(160, None);
    let fin = out.take_finished();
    assert_eq!(fin[0].samples, 130);
    assert_eq!(out.metrics().produced_bytes, 260);
    // A refused padding (unpad) makes the chunk whole audio again.
    let (mut s, out) = sink(1 << 20, Overflow::Wait, Arc::default());
    out.cut_padded(80, 30, true);
    out.unpad(80);
    s.at(0, None);
    s.push(&[1; 80]).unwrap();
    s.at(80, None);
    assert_eq!(out.take_finished()[0].samples, 80);
  }
}
