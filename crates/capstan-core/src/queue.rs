//! The bounded queue between producer and consumer, sized in whole 10 ms chunks.

use std::collections::VecDeque;

/// What a capture does when the queue has no room for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
  /// Backpressure: the capture waits for room, up to its deadline.
  Wait,
  /// Evict the oldest queued audio to make room.
  DropOldest,
  /// Keep what fits, drop the rest of the new frame.
  DropNewest,
  /// All or nothing: a frame that does not fit is refused whole.
  Reject,
}

impl Overflow {
  pub fn parse(s: &str) -> Option<Self> {
    Some(match s {
      "wait" => Overflow::Wait,
      "drop-oldest" => Overflow::DropOldest,
      "drop-newest" => Overflow::DropNewest,
      "reject" => Overflow::Reject,
      _ => return None,
    })
  }

  pub fn as_str(&self) -> &'static str {
    match self {
      Overflow::Wait => "wait",
      Overflow::DropOldest => "drop-oldest",
      Overflow::DropNewest => "drop-newest",
      Overflow::Reject => "reject",
    }
  }
}

/// Whole chunks in FIFO order. Chunk buffers are recycled, so memory grows only to the
/// deepest the queue has been (not to its capacity up front) and a push is one memcpy.
/// Totals of samples ever pushed and ever removed give `waitForPlayout` an exact mark.
#[derive(Debug)]
pub struct ChunkQueue {
  chunks: VecDeque<Box<[i16]>>,
  spare: Vec<Box<[i16]>>,
  chunk_len: usize,
  capacity: usize,
  pushed_total: u64,
  removed_total: u64,
}

impl ChunkQueue {
  /// `capacity` is in chunks.
  pub fn new(chunk_len: usize, capacity: usize) -> Self {
    ChunkQueue {
      chunks: VecDeque::new(),
      spare: Vec::new(),
      chunk_len,
      capacity,
      pushed_total: 0,
      removed_total: 0,
    }
  }

  pub fn chunk_len(&self) -> usize {
    self.chunk_len
  }

  pub fn len_samples(&self) -> usize {
    self.chunks.len() * self.chunk_len
  }

  pub fn free_chunks(&self) -> usize {
    self.capacity - self.chunks.len()
  }

  pub fn is_empty(&self) -> bool {
    self.chunks.is_empty()
  }

  pub fn pushed_total(&self) -> u64 {
    self.pushed_total
  }

  pub fn removed_total(&self) -> u64 {
    self.removed_total
  }

  /// Appends one chunk; the caller has checked for room.
  pub fn push(&mut self, chunk: &[i16]) {
    debug_assert_eq!(chunk.len(), self.chunk_len);
    debug_assert!(self.free_chunks() > 0);
    let mut b = self
      .spare
      .pop()
      .unwrap_or_else(|| vec![0; self.chunk_len].into_boxed_slice());
    b.copy_from_slice(chunk);
    self.chunks.push_back(b);
    self.pushed_total += self.chunk_len as u64;
  }

  /// Removes the oldest chunk, handing it to `take`; false when empty.
  pub fn pop_with(&mut self, take: impl FnOnce(&[i16])) -> bool {
    let Some(b) = self.chunks.pop_front() else { return false };
    take(&b);
    self.recycle(b);
    true
  }

  fn recycle(&mut self, b: Box<[i16]>) {
    self.removed_total += self.chunk_len as u64;
    if self.spare.len() < 4 || self.spare.len() < self.chunks.len() {
      self.spare.push(b);
    }
  }

  /// Removes the oldest chunk without reading it (drop-oldest eviction).
  pub fn evict(&mut self) -> bool {
    self.pop_with(|_| {})
  }

  /// Empties the queue, returning how many samples it held.
  pub fn clear(&mut self) -> usize {
    let n = self.len_samples();
    self.chunks.clear();
    self.spare.clear();
    self.removed_total += n as u64;
    n
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn fifo_and_totals() {
    let mut q = ChunkQueue::new(2, 3);
    q.push(&[1, 2]);
    q.push(&[3, 4]);
    assert_eq!(q.free_chunks(), 1);
    let mut got = Vec::new();
    assert!(q.pop_with(|a| got.extend_from_slice(a)));
    assert_eq!(got, vec![1, 2]);
    assert!(q.evict());
    assert!(!q.evict());
    assert_eq!((q.pushed_total(), q.removed_total()), (4, 4));
  }
}
