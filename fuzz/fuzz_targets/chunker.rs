//! Any sequence of frame lengths and per-call chunk limits: every chunk is exact, samples
//! come out in order, and nothing is created or lost (emitted + carried == consumed).
#![no_main]

use arbitrary::Arbitrary;
use capstan_core::chunker::Chunker;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
  chunk_len: u8,
  feeds: Vec<(u16, u8)>,
  clear_at: Option<u8>,
}

fuzz_target!(|inp: Input| {
  let chunk_len = inp.chunk_len as usize + 1;
  let mut c = Chunker::new(chunk_len);
  let mut next: i64 = 0; // the next sample value we feed
  let mut expect: i64 = 0; // the next sample value we must see come out
  let mut consumed = 0usize;
  let mut emitted = 0usize;
  let mut base = 0usize; // samples accounted for before the last clear
  let mut input: Vec<i16> = Vec::with_capacity(1024);
  for (k, (len, max)) in inp.feeds.iter().take(64).enumerate() {
    if inp.clear_at == Some(k as u8) {
      let dropped = c.clear();
      assert_eq!(
        base + consumed,
        base + emitted + dropped,
        "clear returns exactly the carried samples"
      );
      expect += dropped as i64;
      base += consumed;
      consumed = 0;
      emitted = 0;
    }
    input.clear();
    input.extend((0..*len as i64 % 1024).map(|i| ((next + i) % 30_000) as i16));
    let (used, chunks) = c.feed(&input, *max as usize, |chunk| {
      assert_eq!(chunk.len(), chunk_len, "exact chunks only");
      for &s in chunk {
        assert_eq!(s as i64, expect % 30_000, "samples in order");
        expect += 1;
      }
      emitted += chunk.len();
    });
    assert!(chunks <= *max as usize);
    assert!(used <= input.len());
    next += used as i64;
    consumed += used;
    assert_eq!(consumed, emitted + c.residue_len(), "nothing created or lost");
    assert!(c.residue_len() < chunk_len);
  }
});
