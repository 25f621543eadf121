//! A `frames()` reader's buffer: the clock pushes delivered chunks, JavaScript pops them
//! at its own pace. Bounded: a reader that stops reading fills it, and a full buffer
//! stops the consumer (the source goes `lagging`, then `stalled`).
//!
//! The buffer has its own small lock, shared by the sink (clock side) and `read()` (JS
//! side); neither ever waits on the other's processing.

use std::sync::Arc;

use parking_lot::Mutex;

use super::Sink;
use crate::format::Format;
use crate::queue::ChunkQueue;

/// What `read()` found.
#[derive(Debug, PartialEq)]
pub enum Read {
  Chunk(Vec<i16>),
  /// Nothing now; a `Readable` event follows when there is.
  Empty,
  Closed,
}

struct Inner {
  ring: ChunkQueue,
  /// A reader found it empty and waits for a `Readable` event.
  wanted: bool,
  closed: bool,
}

/// Called (without the buffer's lock) when a waiting reader can read again.
pub type Wake = Box<dyn Fn() + Send + Sync>;

pub struct ReaderBuffer {
  inner: Mutex<Inner>,
  wake: Wake,
}

impl ReaderBuffer {
  /// Room for `chunks` chunks of `chunk_len` interleaved samples.
  pub fn new(chunk_len: usize, chunks: usize, wake: Wake) -> Arc<Self> {
    Arc::new(ReaderBuffer {
      inner: Mutex::new(Inner {
        ring: ChunkQueue::new(chunk_len, chunks),
        wanted: false,
        closed: false,
      }),
      wake,
    })
  }

  /// The oldest chunk; `Empty` arms one wake-up for the next push (or close).
  pub fn pop(&self) -> Read {
    let mut g = self.inner.lock();
    let mut out = Vec::new();
    if g.ring.pop_with(|c| out.extend_from_slice(c)) {
      Read::Chunk(out)
    } else if g.closed {
      Read::Closed
    } else {
      g.wanted = true;
      Read::Empty
    }
  }

  pub fn room(&self) -> usize {
    self.inner.lock().ring.free_chunks()
  }

  /// False when full (the clock checks room first, so it never is).
  fn push(&self, chunk: &[i16]) -> bool {
    let wake = {
      let mut g = self.inner.lock();
      if g.ring.free_chunks() == 0 {
        return false;
      }
      g.ring.push(chunk);
      std::mem::take(&mut g.wanted)
    };
    if wake {
      (self.wake)();
    }
    true
  }

  /// No more audio will come: a reader drains what is left, then reads `Closed`. Returns
  /// whether a reader was waiting (the caller tells it, as it may hold the lock `wake`
  /// takes).
  pub fn close(&self) -> bool {
    let mut g = self.inner.lock();
    g.closed = true;
    std::mem::take(&mut g.wanted)
  }
}

/// The sink side of a [`ReaderBuffer`].
pub struct ReaderSink {
  format: Format,
  buffer: Arc<ReaderBuffer>,
  /// Realtime underruns reach the reader as silent chunks (`fillSilence`).
  fill_gaps: bool,
  silence: Vec<i16>,
}

impl ReaderSink {
  pub fn new(format: Format, buffer: Arc<ReaderBuffer>, fill_gaps: bool) -> Self {
    ReaderSink {
      format,
      buffer,
      fill_gaps,
      silence: Vec::new(),
    }
  }
}

impl Sink for ReaderSink {
  fn format(&self) -> Format {
    self.format
  }

  fn room(&self) -> usize {
    self.buffer.room()
  }

  fn push(&mut self, chunk: &[i16]) -> Result<(), String> {
    if self.buffer.push(chunk) {
      Ok(())
    } else {
      Err("reader buffer full".into())
    }
  }

  fn underrun(&mut self) -> Result<(), String> {
    if !self.fill_gaps {
      return Ok(());
    }
    self.silence.resize(self.format.chunk_len(), 0);
    let silence = std::mem::take(&mut self.silence);
    let r = self.push(&silence);
    self.silence = silence;
    r
  }

  fn fills_gaps(&self) -> bool {
    self.fill_gaps
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::{AtomicUsize, Ordering};

  fn buffer(chunk_len: usize, chunks: usize) -> (Arc<ReaderBuffer>, Arc<AtomicUsize>) {
    let woken = Arc::new(AtomicUsize::new(0));
    let w = woken.clone();
    let b = ReaderBuffer::new(
      chunk_len,
      chunks,
      Box::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
      }),
    );
    (b, woken)
  }

  #[test]
  fn a_waiting_reader_is_woken_once_by_the_next_push() {
    let (b, woken) = buffer(2, 2);
    let mut s = ReaderSink::new(Format::new(8_000, 1).unwrap(), b.clone(), false);
    assert_eq!(b.pop(), Read::Empty);
    s.push(&[1, 2]).unwrap();
    s.push(&[3, 4]).unwrap();
    assert_eq!(woken.load(Ordering::SeqCst), 1, "one wake per wait");
    assert_eq!(s.room(), 0);
    assert!(s.push(&[5, 6]).is_err(), "a full buffer refuses");
    assert_eq!(b.pop(), Read::Chunk(vec![1, 2]));
    assert_eq!(b.pop(), Read::Chunk(vec![3, 4]));
    assert_eq!(b.pop(), Read::Empty);
    assert!(b.close(), "the reader was waiting");
    assert_eq!(b.pop(), Read::Closed);
  }

  #[test]
  fn gaps_are_silence_only_when_filling() {
    let f = Format::new(8_000, 1).unwrap();
    let (b, _) = buffer(80, 4);
    let mut quiet = ReaderSink::new(f, b.clone(), false);
    quiet.underrun().unwrap();
    assert_eq!(b.room(), 4);
    let mut filling = ReaderSink::new(f, b.clone(), true);
    assert!(filling.fills_gaps());
    filling.underrun().unwrap();
    assert_eq!(b.pop(), Read::Chunk(vec![0; 80]));
  }
}
