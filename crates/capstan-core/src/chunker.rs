//! Cuts any frame length into exact 10 ms chunks; the remainder is carried, never dropped.

/// Carries the tail of one frame into the next so chunk boundaries are independent of
/// how the producer sliced its audio.
#[derive(Debug, Clone)]
pub struct Chunker {
  chunk_len: usize,
  residue: Vec<i16>,
}

impl Chunker {
  pub fn new(chunk_len: usize) -> Self {
    assert!(chunk_len > 0);
    Chunker {
      chunk_len,
      residue: Vec::with_capacity(chunk_len),
    }
  }

  pub fn chunk_len(&self) -> usize {
    self.chunk_len
  }

  /// Samples carried from earlier frames (always fewer than a chunk).
  pub fn residue_len(&self) -> usize {
    self.residue.len()
  }

  /// Whole chunks that `extra` more samples would complete.
  pub fn chunks_for(&self, extra: usize) -> usize {
    (self.residue.len() + extra) / self.chunk_len
  }

  /// Silence needed to complete the carried remainder into a chunk (0 if none is carried).
  pub fn pad_len(&self) -> usize {
    if self.residue.is_empty() {
      0
    } else {
      self.chunk_len - self.residue.len()
    }
  }

  /// Feeds `input`, emitting at most `max_chunks` whole chunks; a final tail shorter than a
  /// chunk is carried. Stops where the next chunk would exceed `max_chunks`, so the caller
  /// can resume from the returned count of consumed samples. Returns (consumed, emitted).
  pub fn feed(&mut self, input: &[i16], max_chunks: usize, mut emit: impl FnMut(&[i16])) -> (usize, usize) {
    let mut pos = 0;
    let mut emitted = 0;
    if !self.residue.is_empty() {
      let need = self.chunk_len - self.residue.len();
      if input.len() < need {
        self.residue.extend_from_slice(input);
        return (input.len(), 0);
      }
      if max_chunks == 0 {
        return (0, 0);
      }
      self.residue.extend_from_slice(&input[..need]);
      emit(&self.residue);
      self.residue.clear();
      pos = need;
      emitted = 1;
    }
    while input.len() - pos >= self.chunk_len {
      if emitted == max_chunks {
        return (pos, emitted);
      }
      emit(&input[pos..pos + self.chunk_len]);
      pos += self.chunk_len;
      emitted += 1;
    }
    self.residue.extend_from_slice(&input[pos..]);
    (input.len(), emitted)
  }

  /// Forgets the carried remainder, returning how many samples it held.
  pub fn clear(&mut self) -> usize {
    let n = self.residue.len();
    self.residue.clear();
    n
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn carries_remainder_across_frames() {
    let mut c = Chunker::new(4);
    let mut out = Vec::new();
    assert_eq!(c.feed(&[1, 2, 3], usize::MAX, |ch| out.extend_from_slice(ch)), (3, 0));
    assert_eq!(
      c.feed(&[4, 5, 6, 7, 8, 9], usize::MAX, |ch| out.extend_from_slice(ch)),
      (6, 2)
    );
    assert_eq!(out, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(c.residue_len(), 1);
    assert_eq!(c.pad_len(), 3);
  }

  #[test]
  fn stops_at_max_chunks_and_resumes() {
    let mut c = Chunker::new(2);
    let mut out = Vec::new();
    let input = [1, 2, 3, 4, 5, 6, 7];
    let (used, n) = c.feed(&input, 2, |ch| out.extend_from_slice(ch));
    assert_eq!((used, n), (4, 2));
    let (used2, n2) = c.feed(&input[used..], usize::MAX, |ch| out.extend_from_slice(ch));
    assert_eq!((used2, n2), (3, 1));
    assert_eq!(out, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(c.residue_len(), 1);
  }

  #[test]
  fn zero_room_with_residue_consumes_only_what_stays_below_a_chunk() {
    let mut c = Chunker::new(4);
    c.feed(&[1, 2], 0, |_| panic!("no room"));
    assert_eq!(c.feed(&[3], 0, |_| panic!("no room")), (1, 0));
    assert_eq!(c.feed(&[4, 5], 0, |_| panic!("no room")), (0, 0));
    assert_eq!(c.residue_len(), 3);
  }
}
