//! The far-end reference for echo cancellation: what a source actually delivered, chunk by
//! chunk, after its processors, at the engine tick that played it.
//!
//! The source's clock pushes every tick's chunk here on the engine thread (a chunk of silence
//! for a tick that had nothing to play, so the reference keeps the clock's time); an
//! [`EchoCancel`](super::EchoCancel) on another stream reads it with its own cursor. The ring
//! is bounded ([`TAP_CHUNKS`]): a reader that falls further behind skips the oldest audio and
//! counts it, the writer never waits. No JavaScript runs per chunk.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use crate::format::{Format, CHUNK_MS};

/// Chunks the ring keeps (2 s): longer than any echo path AEC3 models (its delay search
/// covers about 1 s), short enough to bound memory.
pub const TAP_CHUNKS: usize = 200;

pub struct ReferenceTap {
  format: Format,
  ring: Mutex<Ring>,
}

impl std::fmt::Debug for ReferenceTap {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("ReferenceTap")
      .field("format", &self.format)
      .finish_non_exhaustive()
  }
}

/// Taps by id, so a caller outside Rust (JavaScript's `echoCancel({ reference: source })`)
/// names one with a number. Weak: a closed and dropped source takes its tap with it.
fn registry() -> &'static Mutex<(u64, HashMap<u64, Weak<ReferenceTap>>)> {
  static R: OnceLock<Mutex<(u64, HashMap<u64, Weak<ReferenceTap>>)>> = OnceLock::new();
  R.get_or_init(|| Mutex::new((0, HashMap::new())))
}

/// Registers `tap` (once per tap: the same tap gets the same id) and returns its id.
pub fn register(tap: &Arc<ReferenceTap>) -> u64 {
  let mut r = registry().lock();
  r.1.retain(|_, w| w.strong_count() > 0);
  if let Some((&id, _)) = r
    .1
    .iter()
    .find(|(_, w)| w.upgrade().is_some_and(|t| Arc::ptr_eq(&t, tap)))
  {
    return id;
  }
  r.0 += 1;
  let id = r.0;
  r.1.insert(id, Arc::downgrade(tap));
  id
}

/// The tap registered as `id`, if its source is still alive.
pub fn lookup(id: u64) -> Option<Arc<ReferenceTap>> {
  registry().lock().1.get(&id).and_then(Weak::upgrade)
}

struct Ring {
  /// `TAP_CHUNKS` chunks of `format.chunk_len()` samples, back to back.
  buf: Vec<i16>,
  /// Chunks ever pushed; chunk `n` lives at slot `n % TAP_CHUNKS`.
  pushed: u64,
}

/// One reader's place in the reference.
#[derive(Debug, Default, Clone)]
pub struct TapCursor {
  /// The next chunk to read (`None`: not started, begins at the newest chunk).
  next: Option<u64>,
  /// Chunks lost because this reader fell more than the ring behind.
  pub skipped: u64,
}

impl ReferenceTap {
  pub fn new(format: Format) -> Self {
    ReferenceTap {
      format,
      ring: Mutex::new(Ring {
        buf: vec![0; TAP_CHUNKS * format.chunk_len()],
        pushed: 0,
      }),
    }
  }

  /// The format of the reference (the source's output format).
  pub fn format(&self) -> Format {
    self.format
  }

  /// Appends one delivered chunk (any other length is ignored: chunks are exact).
  pub fn push(&self, chunk: &[i16]) {
    let len = self.format.chunk_len();
    if chunk.len() != len {
      return;
    }
    let mut r = self.ring.lock();
    let at = (r.pushed % TAP_CHUNKS as u64) as usize * len;
    r.buf[at..at + len].copy_from_slice(chunk);
    r.pushed += 1;
  }

  /// Appends `n` chunks of silence: ticks on which the source played nothing.
  pub fn push_silence(&self, n: usize) {
    let len = self.format.chunk_len();
    let mut r = self.ring.lock();
    for _ in 0..n.min(TAP_CHUNKS) {
      let at = (r.pushed % TAP_CHUNKS as u64) as usize * len;
      r.buf[at..at + len].fill(0);
      r.pushed += 1;
    }
    r.pushed += n.saturating_sub(TAP_CHUNKS) as u64;
  }

  /// Chunks ever pushed (10 ms each): the reference's own clock.
  pub fn pushed(&self) -> u64 {
    self.ring.lock().pushed
  }

  /// Milliseconds of reference pushed so far.
  pub fn pushed_ms(&self) -> f64 {
    self.pushed() as f64 * CHUNK_MS as f64
  }

  /// Hands `f` every chunk pushed since the cursor's last read, oldest first, at most `max`
  /// of them (the newest `max`; older ones are counted skipped). Returns how many it handed.
  pub fn read(&self, cursor: &mut TapCursor, max: usize, mut f: impl FnMut(&[i16])) -> usize {
    let len = self.format.chunk_len();
    let r = self.ring.lock();
    let next = *cursor.next.get_or_insert(r.pushed);
    let oldest = r.pushed.saturating_sub(TAP_CHUNKS.min(max) as u64);
    let from = next.max(oldest);
    cursor.skipped += from - next;
    for n in from..r.pushed {
      let at = (n % TAP_CHUNKS as u64) as usize * len;
      f(&r.buf[at..at + len]);
    }
    cursor.next = Some(r.pushed);
    (r.pushed - from) as usize
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_reader_sees_every_chunk_once_in_order_and_counts_what_it_missed() {
    let f = Format::new(8_000, 1).unwrap();
    let tap = ReferenceTap::new(f);
    let mut c = TapCursor::default();
    assert_eq!(tap.read(&mut c, 10, |_| panic!("nothing yet")), 0);
    for i in 0..5 {
      tap.push(&vec![i as i16; 80]);
    }
    let mut seen = Vec::new();
    assert_eq!(tap.read(&mut c, 10, |ch| seen.push(ch[0])), 5);
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    tap.push_silence(2);
    for i in 0..TAP_CHUNKS + 3 {
      tap.push(&vec![(i % 100) as i16; 80]);
    }
    let mut n = 0;
    assert_eq!(tap.read(&mut c, 4, |_| n += 1), 4);
    assert_eq!(c.skipped, (TAP_CHUNKS + 5 - 4) as u64);
    tap.push(&[1; 79]);
    assert_eq!(tap.read(&mut c, 4, |_| ()), 0, "a wrong-length chunk is ignored");
  }
}
