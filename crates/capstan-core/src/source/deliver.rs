//! The consumer side: engine ticks take chunks through the processors to the sink (or a
//! `frames()` reader's buffer); pull readers take them directly; playout marks resolve.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Source, State, LOCK_BOUND};
use crate::options::Consumer;
use crate::queue::ChunkQueue;

/// What `read()` found.
#[derive(Debug, PartialEq)]
pub enum Read {
  Chunk(Vec<i16>),
  /// Nothing now; a `Readable` event follows when there is.
  Empty,
  Closed,
}

pub(super) enum Delivery {
  /// The consumer's audio leaves the engine (counted as delivered).
  Discard,
  /// A `frames()` reader on a paced source: delivered chunks wait here, bounded.
  Reader(ChunkQueue),
}

impl Source {
  pub(super) fn resolve_playouts(&self, st: &mut State) {
    let removed = st.queue.removed_total();
    let mut any = false;
    while let Some(&(id, mark)) = st.playouts.front() {
      if mark > removed {
        break;
      }
      st.playouts.pop_front();
      st.pending.playouts.push(id);
      any = true;
    }
    if any {
      self.touch(st);
    }
  }

  /// Takes one chunk out of the queue for the consumer.
  pub(super) fn take_chunk(&self, st: &mut State, now: Instant, take: impl FnOnce(&[i16], &[i16])) -> bool {
    if !st.queue.pop_with(take) {
      return false;
    }
    st.counters.delivered += st.chunker.chunk_len() as u64;
    st.delivered_since_underrun = true;
    let q = self.queued_ms(st);
    let t = st.health.progress(now, q);
    self.push_transition(st, t);
    self.service_waiters(st, now);
    self.resolve_playouts(st);
    true
  }

  pub(super) fn underrun(&self, st: &mut State) {
    if !st.started {
      return;
    }
    st.counters.underruns += 1;
    if st.pending.underrun_report {
      // A report is waiting for the next drain: this tick joins it.
      st.pending.underrun_ticks += 1;
      return;
    }
    st.underrun_unreported += 1;
    if st.delivered_since_underrun {
      st.delivered_since_underrun = false;
      st.pending.underrun_ticks += st.underrun_unreported;
      st.underrun_unreported = 0;
      st.pending.underrun_report = true;
      self.touch(st);
    }
  }

  /// One engine tick: pace the consumer (`ticks` ≥ 1 when the clock catches up),
  /// expire deadlines, judge health.
  pub fn tick(&self, now: Instant, ticks: u32) {
    let Some(mut guard) = self.state.try_lock_for(LOCK_BOUND) else {
      return;
    };
    let st = &mut *guard;
    if st.closed {
      return;
    }
    match self.opts.consumer {
      Consumer::Pull if st.chain.is_none() => {}
      Consumer::Realtime => {
        for _ in 0..ticks {
          if !self.deliver_one(st, now) {
            break;
          }
        }
      }
      Consumer::Unpaced | Consumer::Pull => {
        for _ in 0..10_000 {
          if st.queue.is_empty() || !self.deliver_one(st, now) {
            break;
          }
        }
      }
    }
    self.expire(st, now);
    let backlog = !st.queue.is_empty() || !st.waiters.is_empty();
    let q = self.queued_ms(st);
    let t = st.health.check(now, backlog, q);
    self.push_transition(st, t);
  }

  /// Takes one chunk out of the queue through the processors into `st.processed`.
  pub(super) fn take_processed(&self, st: &mut State, now: Instant) -> bool {
    let mut raw = std::mem::take(&mut st.raw);
    raw.clear();
    let took = self.take_chunk(st, now, |a, b| {
      raw.extend_from_slice(a);
      raw.extend_from_slice(b);
    });
    if took {
      let mut events = std::mem::take(&mut st.chain_events);
      let mut out = std::mem::take(&mut st.processed);
      out.clear();
      match st.chain.as_mut().map(|c| c.process(&raw, &mut events)) {
        Some(Ok(o)) => out.extend_from_slice(o),
        // No chain; or a chunk the chain refused, which exact chunks never are.
        _ => out.extend_from_slice(&raw),
      }
      st.processed = out;
      self.note_chain_events(st, &mut events);
      st.chain_events = events;
    }
    st.raw = raw;
    took
  }

  /// Hands one chunk (through the processors, if any) to the sink; an empty queue is an
  /// underrun. False when the sink has no room (the consumer makes no progress).
  pub(super) fn deliver_one(&self, st: &mut State, now: Instant) -> bool {
    let has_chain = st.chain.is_some();
    let mut ring = match std::mem::replace(&mut st.delivery, Delivery::Discard) {
      Delivery::Discard => {
        let took = if has_chain {
          self.take_processed(st, now)
        } else {
          self.take_chunk(st, now, |_, _| {})
        };
        if !took {
          self.underrun(st);
        }
        return true;
      }
      Delivery::Reader(ring) => ring,
    };
    let ok = ring.free_chunks() > 0;
    if ok {
      let took = if has_chain {
        let took = self.take_processed(st, now);
        if took {
          ring.push(&st.processed);
        }
        took
      } else {
        let chunk_len = ring.chunk_len();
        self.take_chunk(st, now, |a, b| {
          let mut chunk = Vec::with_capacity(chunk_len);
          chunk.extend_from_slice(a);
          chunk.extend_from_slice(b);
          ring.push(&chunk);
        })
      };
      if !took {
        self.underrun(st);
        if self.opts.fill_silence && self.opts.consumer == Consumer::Realtime && st.started {
          ring.push(&vec![0; ring.chunk_len()]);
        }
      }
      if !ring.is_empty() && st.reader_wanted {
        st.reader_wanted = false;
        st.pending.readable = true;
        self.touch(st);
      }
    }
    st.delivery = Delivery::Reader(ring);
    ok
  }

  /// `waitForPlayout()`: None when everything queued so far is already out; else an id
  /// the bus reports once the consumer (or a clear) has taken it.
  pub fn wait_playout(&self) -> Option<u64> {
    let mut st = self.lock();
    if st.closed || st.queue.removed_total() >= st.queue.pushed_total() {
      return None;
    }
    let id = self.next_call.fetch_add(1, Ordering::Relaxed);
    let mark = st.queue.pushed_total();
    st.playouts.push_back((id, mark));
    Some(id)
  }

  /// Forgets a playout wait (its AbortSignal fired).
  pub fn cancel_playout(&self, id: u64) {
    self.lock().playouts.retain(|(i, _)| *i != id);
  }

  /// Starts or stops buffering delivered chunks for a `frames()` reader on a paced source.
  pub fn set_reader(&self, on: bool) {
    let mut st = self.lock();
    if self.opts.consumer == Consumer::Pull {
      return;
    }
    let chunk_len = st
      .chain
      .as_ref()
      .map_or(self.opts.format, |c| c.output_format())
      .chunk_len();
    st.delivery = if on {
      Delivery::Reader(ChunkQueue::new(chunk_len, self.opts.reader_chunks))
    } else {
      Delivery::Discard
    };
  }

  /// One chunk for a `frames()` reader; `Empty` arms a `Readable` event.
  pub fn read(&self) -> Read {
    let now = Instant::now();
    let mut guard = self.lock();
    let st = &mut *guard;
    let chunk_len = st.chunker.chunk_len();
    let mut out = Vec::with_capacity(chunk_len);
    let got = match (&mut st.delivery, self.opts.consumer) {
      (Delivery::Reader(ring), _) => ring.pop_with(|a, b| {
        out.extend_from_slice(a);
        out.extend_from_slice(b);
      }),
      (_, Consumer::Pull) => self.take_chunk(st, now, |a, b| {
        out.extend_from_slice(a);
        out.extend_from_slice(b);
      }),
      (Delivery::Discard, _) => false,
    };
    if got {
      Read::Chunk(out)
    } else if st.closed {
      Read::Closed
    } else {
      st.reader_wanted = true;
      Read::Empty
    }
  }
}
