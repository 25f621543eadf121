//! Any sequence of calls on one source (captures of any length and type, waits, flushes,
//! reads, ticks, clears, aborts, close) under any policy: no panic, every waiting capture
//! settles exactly once, and captured == delivered + queued + dropped + cleared after
//! every call.
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use capstan_core::events::Bus;
use capstan_core::options::{Consumer, SourceOptions};
use capstan_core::outcome::CaptureResult;
use capstan_core::queue::Overflow;
use capstan_core::source::{FrameRef, Samples, Source};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
  Capture { len: u16, f32: bool, deadline: Option<u8> },
  Try { len: u16 },
  Flush,
  Read,
  Tick { ms: u8, ticks: u8 },
  Clear,
  Abort { nth: u8 },
  Close,
}

#[derive(Arbitrary, Debug)]
struct Input {
  channels: bool,
  policy: u8,
  consumer: u8,
  queue_chunks: u8,
  ops: Vec<Op>,
}

fuzz_target!(|inp: Input| {
  let channels = if inp.channels { 2 } else { 1 };
  let mut o = SourceOptions::new(8_000, channels).unwrap();
  o.overflow = [
    Overflow::Wait,
    Overflow::DropOldest,
    Overflow::DropNewest,
    Overflow::Reject,
  ][inp.policy as usize % 4];
  o.consumer = [Consumer::Pull, Consumer::Realtime, Consumer::Unpaced][inp.consumer as usize % 3];
  o.queue_ms = (inp.queue_chunks as u32 % 20 + 1) * 10;
  let bus = Bus::new();
  let s = Source::new(1, o, bus.clone()).unwrap();
  let mut now = Instant::now();
  let mut waiting: Vec<u64> = Vec::new();
  let mut settled: HashSet<u64> = HashSet::new();
  let ch = channels as usize;
  for op in inp.ops.iter().take(200) {
    match op {
      Op::Capture { len, f32, deadline } => {
        let n = (*len as usize % 2000) / ch * ch;
        let r = if *f32 {
          let d = vec![0.25f32; n];
          s.capture(
            FrameRef {
              samples: Samples::F32(&d),
              sample_rate: None,
              channels: None,
            },
            deadline.map(|d| d as u32),
          )
        } else {
          let d: Vec<i16> = (0..n).map(|i| i as i16).collect();
          s.capture(FrameRef::i16(&d), deadline.map(|d| d as u32))
        };
        match r {
          Ok(CaptureResult::Pending(id)) => waiting.push(id),
          Ok(CaptureResult::Settled(_)) => {}
          Err(e) => assert!(n == 0 && e.code() == "ERR_INVALID_FRAME", "unexpected {e:?}"),
        }
      }
      Op::Try { len } => {
        let n = (*len as usize % 2000) / ch * ch;
        let d = vec![7i16; n];
        let _ = s.try_capture(FrameRef::i16(&d));
      }
      Op::Flush => {
        if let Ok(CaptureResult::Pending(id)) = s.flush(Some(50)) {
          waiting.push(id);
        }
      }
      Op::Read => {
        let _ = s.read();
      }
      Op::Tick { ms, ticks } => {
        now += Duration::from_millis(*ms as u64);
        s.tick(now, *ticks as u32 % 6);
      }
      Op::Clear => {
        s.clear();
      }
      Op::Abort { nth } => {
        if !waiting.is_empty() {
          let id = waiting[*nth as usize % waiting.len()];
          if s.abort(id).is_some() {
            assert!(settled.insert(id), "settled twice");
          }
        }
      }
      Op::Close => {
        s.close();
      }
    }
    for d in bus.drain() {
      for c in d.completions {
        assert!(settled.insert(c.id), "settled twice");
      }
    }
    let m = s.metrics();
    assert_eq!(m.captured, m.delivered + m.queued + m.dropped + m.cleared, "{m:?}");
  }
  s.close();
  for d in bus.drain() {
    for c in d.completions {
      assert!(settled.insert(c.id), "settled twice");
    }
  }
  for id in waiting {
    assert!(settled.contains(&id), "capture {id} never settled");
  }
});
