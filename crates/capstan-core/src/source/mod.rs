//! A capture source: chunker → bounded queue → consumer, with waiters, deadlines,
//! accounting and health. One lock per source; the JS thread never waits on it unbounded.
//!
//! One `Source` with its `impl` split by concern: [`capture`] (one function per overflow
//! policy), [`waiters`], [`deliver`] (the consumer: ticks, sinks, readers), [`pending`]
//! (coalesced reports for the bus) and [`metrics`].

mod capture;
mod deliver;
mod metrics;
mod pending;
mod waiters;

pub use deliver::Read;
pub use metrics::Metrics;

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::{Mutex, MutexGuard};

use crate::chunker::Chunker;
use crate::error::{CoreError, Result};
use crate::events::Bus;
use crate::format::Format;
use crate::health::{Health, HealthState, HealthTimes};
use crate::options::{Consumer, SourceOptions};
use crate::outcome::{Outcome, Status};
use crate::process::{Chain, ChainEvent};
use crate::queue::ChunkQueue;
use crate::wake::Poke;
use deliver::Delivery;
use pending::Pending;
use waiters::Waiter;

/// The longest any call waits for a source's lock; critical sections are microseconds.
const LOCK_BOUND: Duration = Duration::from_millis(200);

/// Samples as the caller handed them over.
pub enum Samples<'a> {
  I16(&'a [i16]),
  F32(&'a [f32]),
}

/// A frame with its declared format; `None` means "the source's format".
pub struct FrameRef<'a> {
  pub samples: Samples<'a>,
  pub sample_rate: Option<u32>,
  pub channels: Option<u16>,
}

impl<'a> FrameRef<'a> {
  pub fn i16(data: &'a [i16]) -> Self {
    FrameRef {
      samples: Samples::I16(data),
      sample_rate: None,
      channels: None,
    }
  }
}

/// Counters in interleaved samples; reported per channel.
#[derive(Default)]
struct Counters {
  captured: u64,
  delivered: u64,
  dropped: u64,
  cleared: u64,
  padded: u64,
  underruns: u64,
  outcomes: [u64; 7],
}

pub(crate) struct State {
  /// Native processors; audio leaves the queue through them.
  chain: Option<Chain>,
  chain_events: Vec<ChainEvent>,
  raw: Vec<i16>,
  processed: Vec<i16>,
  chunker: Chunker,
  queue: ChunkQueue,
  waiters: VecDeque<Waiter>,
  playouts: VecDeque<(u64, u64)>,
  delivery: Delivery,
  reader_wanted: bool,
  counters: Counters,
  health: Health,
  /// The last settled waiter's buffer, reused by the next one (no malloc per wait).
  spare_rest: Vec<i16>,
  /// Captures settled without waiting (the common case; kept out of the histogram).
  immediate: u64,
  /// Waits in µs, allocated on the first capture that waited.
  wait_us: Option<Box<Histogram<u32>>>,
  pending: Pending,
  started: bool,
  delivered_since_underrun: bool,
  underrun_unreported: u64,
  closed: bool,
}

pub struct Source {
  id: u64,
  opts: SourceOptions,
  me: Weak<Source>,
  bus: Arc<Bus>,
  next_call: AtomicU64,
  /// Captures refused because the lock bound ran out (never expected; counted anyway).
  contended: AtomicU64,
  /// The clock to wake when an unpaced source's producer starts waiting.
  poke: OnceLock<Arc<Poke>>,
  state: Mutex<State>,
}

impl Source {
  pub fn new(id: u64, opts: SourceOptions, bus: Arc<Bus>) -> Result<Arc<Self>> {
    opts.validate()?;
    let chunk_len = opts.format.chunk_len();
    let now = Instant::now();
    let chain = if opts.processors.is_empty() {
      None
    } else {
      let mut c = Chain::from_specs(opts.format, &opts.processors, opts.processor_bypass_after)?;
      for i in 0..c.len() {
        c.set_budget(i, opts.processor_budget)?;
      }
      Some(c)
    };
    // A pull source with processors reads from a bounded buffer the engine fills through
    // the chain, so the processing runs on engine threads, never in `read()`.
    let delivery = match (&chain, opts.consumer) {
      (Some(c), Consumer::Pull) => Delivery::Reader(ChunkQueue::new(c.output_format().chunk_len(), opts.reader_chunks)),
      _ => Delivery::Discard,
    };
    let state = State {
      chain,
      chain_events: Vec::new(),
      raw: Vec::new(),
      processed: Vec::new(),
      chunker: Chunker::new(chunk_len),
      queue: ChunkQueue::new(chunk_len, (opts.queue_ms / 10) as usize),
      waiters: VecDeque::new(),
      playouts: VecDeque::new(),
      delivery,
      reader_wanted: false,
      counters: Counters::default(),
      health: Health::new(HealthTimes::from_stall_ms(opts.stall_after_ms), now),
      spare_rest: Vec::new(),
      immediate: 0,
      wait_us: None,
      pending: Pending::default(),
      started: false,
      delivered_since_underrun: false,
      underrun_unreported: 0,
      closed: false,
    };
    Ok(Arc::new_cyclic(|me| Source {
      id,
      opts,
      me: me.clone(),
      bus,
      next_call: AtomicU64::new(1),
      contended: AtomicU64::new(0),
      poke: OnceLock::new(),
      state: Mutex::new(state),
    }))
  }

  pub fn id(&self) -> u64 {
    self.id
  }

  /// Set once by the engine when it puts the source on a clock.
  pub(crate) fn set_poke(&self, poke: Arc<Poke>) {
    let _ = self.poke.set(poke);
  }

  pub fn options(&self) -> &SourceOptions {
    &self.opts
  }

  pub fn format(&self) -> Format {
    self.opts.format
  }

  pub(super) fn lock(&self) -> MutexGuard<'_, State> {
    self
      .state
      .try_lock_for(LOCK_BOUND)
      .expect("capstan: source lock held past its bound")
  }

  pub(super) fn per_ch(&self, interleaved: usize) -> u64 {
    (interleaved / self.opts.format.channels as usize) as u64
  }

  pub(super) fn queued_ms(&self, st: &State) -> f64 {
    self
      .opts
      .format
      .samples_to_ms(st.queue.len_samples() + st.chunker.residue_len())
  }

  pub(super) fn outcome(
    &self,
    st: &mut State,
    status: Status,
    accepted: usize,
    dropped: usize,
    waited: Duration,
  ) -> Outcome {
    st.counters.outcomes[status.code()] += 1;
    let us = waited.as_micros() as u64;
    if us == 0 {
      st.immediate += 1;
    } else {
      st.wait_us
        .get_or_insert_with(|| Box::new(Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("histogram bounds")))
        .saturating_record(us);
    }
    Outcome {
      status,
      accepted_samples: self.per_ch(accepted),
      dropped_samples: self.per_ch(dropped),
      queued_ms: self.queued_ms(st),
      waited_ms: waited.as_secs_f64() * 1000.0,
    }
  }

  /// Feeds samples into whole chunks while the queue has room; returns samples consumed.
  pub(super) fn feed(&self, st: &mut State, input: &[i16], max_chunks: usize) -> usize {
    let State { chunker, queue, .. } = st;
    let (used, emitted) = chunker.feed(input, max_chunks, |c| queue.push(c));
    st.counters.captured += used as u64;
    if emitted > 0 {
      self.wake_reader_if_pull(st);
    }
    used
  }

  pub(super) fn wake_reader_if_pull(&self, st: &mut State) {
    if st.reader_wanted && self.opts.consumer == Consumer::Pull {
      st.reader_wanted = false;
      st.pending.readable = true;
      self.touch(st);
    }
  }

  /// Counts samples taken into custody only to be lost at once.
  pub(super) fn drop_now(&self, st: &mut State, n: usize) {
    st.counters.captured += n as u64;
    st.counters.dropped += n as u64;
  }

  /// `clearQueue()`: discards queued audio and the carried remainder; every waiting
  /// capture settles `cleared`. Returns samples per channel discarded from the queue.
  pub fn clear(&self) -> u64 {
    let mut guard = self.lock();
    let st = &mut *guard;
    self.discard_all(st, Status::Cleared)
  }

  pub(super) fn discard_all(&self, st: &mut State, status: Status) -> u64 {
    let now = Instant::now();
    let n = st.queue.clear() + st.chunker.clear();
    st.counters.cleared += n as u64;
    for w in std::mem::take(&mut st.waiters) {
      self.settle_waiter(st, w, status, now);
    }
    self.resolve_playouts(st);
    self.per_ch(n)
  }

  /// Marks the source closed: waiters settle `closed`, queued audio is counted as
  /// cleared, a `Closed` event is queued. Idempotent.
  pub fn close(&self) -> bool {
    let mut guard = self.lock();
    let st = &mut *guard;
    if st.closed {
      return false;
    }
    self.discard_all(st, Status::Closed);
    let ids: Vec<u64> = st.playouts.drain(..).map(|(id, _)| id).collect();
    st.pending.playouts.extend(ids);
    st.closed = true;
    st.pending.closed = true;
    st.pending.readable = st.reader_wanted;
    self.touch(st);
    true
  }

  /// The format audio leaves in: the processors' output, else the source's own.
  pub fn output_format(&self) -> Format {
    self
      .lock()
      .chain
      .as_ref()
      .map_or(self.opts.format, |c| c.output_format())
  }

  /// Enables or disables processor `index`; enabling a bypassed one brings it back.
  pub fn set_processor_enabled(&self, index: usize, enabled: bool) -> Result<()> {
    match self.lock().chain.as_mut() {
      Some(c) => c.set_enabled(index, enabled),
      None => Err(CoreError::InvalidOption(format!(
        "this source has no processor {index}"
      ))),
    }
  }

  pub fn processor_enabled(&self, index: usize) -> bool {
    self
      .lock()
      .chain
      .as_ref()
      .is_some_and(|c| c.is_enabled(index) && !c.is_bypassed(index))
  }

  pub fn is_closed(&self) -> bool {
    self.lock().closed
  }

  pub fn health(&self) -> HealthState {
    self.lock().health.state()
  }

  pub fn queued_ms_now(&self) -> f64 {
    let st = self.lock();
    self.queued_ms(&st)
  }

  pub fn playout_position(&self) -> u64 {
    let st = self.lock();
    self.per_ch(st.counters.delivered as usize)
  }
}
