//! A capture source: chunker → bounded queue → consumer, with waiters, deadlines,
//! accounting and health.
//!
//! Two sides, two locks, so no audio work ever runs under a lock a producer or a getter
//! waits on:
//! - the **input side** ([`Input`], a short lock): chunker, queue, waiting captures,
//!   counters, health and pending reports. Every critical section is a copy or a count.
//! - the **output side** ([`deliver::Output`]): processor chain and sink, owned by the
//!   engine clock. The clock takes a bounded batch of chunks under the input lock,
//!   releases it, then processes and delivers them. A chunk counts as delivered when the
//!   clock takes it, so `captured == delivered + queued + dropped + cleared` holds at every
//!   snapshot, also while a batch is being processed.
//!
//! No lock is waited on unbounded, and none panics: past [`LOCK_BOUND`] a capture settles
//! `timeout`, a getter returns its last-known value, a control call is deferred to whoever
//! takes the lock next (see [`control`]) or returns `ERR_BUSY`.
//!
//! One `Source` with its `impl` split by concern: [`capture`] (one function per overflow
//! policy), [`waiters`], [`deliver`] (ticks, processors, sinks, readers), [`control`]
//! (clear, close, deferred calls), [`pending`] (coalesced reports for the bus) and
//! [`metrics`].

mod capture;
mod control;
mod deliver;
mod metrics;
mod pending;
mod waiters;

pub use crate::sink::Read;
pub use deliver::MAX_CHUNKS_PER_PASS;
pub use metrics::Metrics;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::{Mutex, MutexGuard};

use crate::chunker::Chunker;
use crate::error::{CoreError, Result};
use crate::events::Bus;
use crate::format::Format;
use crate::health::{Health, HealthState, HealthTimes};
use crate::mix::Mix;
use crate::options::{Consumer, SourceOptions};
use crate::outcome::{Outcome, Status};
use crate::process::{Chain, ProcessorStats, ReferenceTap};
use crate::queue::ChunkQueue;
use crate::sink::{Discard, ReaderBuffer, ReaderSink, Sink};
use crate::wake::Poke;
use control::Deferred;
use deliver::Output;
use pending::Pending;
use waiters::Waiter;

/// The longest any call waits for one of a source's locks. Critical sections are
/// microseconds; this is only reached if a thread holding one is descheduled that long.
pub const LOCK_BOUND: Duration = Duration::from_millis(200);

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

/// Counters in interleaved samples (except `underruns`, in ticks, and `sink_errors`).
#[derive(Default)]
struct Counters {
  captured: u64,
  /// Taken by the consumer (the clock counts a chunk when it takes it for processing).
  delivered: u64,
  dropped: u64,
  cleared: u64,
  padded: u64,
  underruns: u64,
  sink_errors: u64,
  outcomes: [u64; 7],
}

/// The input side: everything producers and getters touch.
pub(crate) struct Input {
  chunker: Chunker,
  queue: ChunkQueue,
  waiters: VecDeque<Waiter>,
  playouts: VecDeque<(u64, u64)>,
  /// Queue position of the first chunk a pass took and is still processing: playout marks
  /// at or past it wait until the sink has those chunks (a closing input's last audio
  /// reaches its reader).
  handing: Option<u64>,
  /// A pull reader (without processors, reading the queue itself) waits for audio.
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
  /// Pre-roll in chunks (the option, or what the current reader asked for); 0: none.
  preroll: usize,
  /// Delivery is running: the pre-roll was met (or waived) and the queue has not run dry.
  primed: bool,
  /// When audio came back while not primed: the pre-roll waits at most its length.
  refill_since: Option<Instant>,
  underrun_unreported: u64,
  /// Bumped by every clear: the output side resets the processors' history before it
  /// processes audio captured after it.
  reset_gen: u64,
  closed: bool,
}

/// Which sink the output side should deliver to, and the reader buffer `read()` pops from.
/// A lock of its own, never held for more than a swap, so `set_reader` and `read` wait
/// on neither the input side nor a processing clock.
#[derive(Default)]
struct SinkSlot {
  reader: Option<Arc<ReaderBuffer>>,
  /// A sink the clock installs before its next pass.
  request: Option<Box<dyn Sink>>,
}

/// Values getters fall back on if the input lock cannot be had in bound.
#[derive(Default)]
struct Last {
  queued_ms: AtomicU64,
  delivered: AtomicU64,
  health: AtomicU8,
  metrics: Mutex<Option<Metrics>>,
}

struct Cold {
  sink_slot: Mutex<SinkSlot>,
  /// Calls that found the input side busy, applied by the next one to take it.
  deferred: Mutex<Deferred>,
  last: Last,
  /// Processor stats as last published from the output side, for `metrics()` and
  /// `processor_enabled()` while the clock is processing.
  published: Mutex<Vec<ProcessorStats>>,
}

pub struct Source {
  id: u64,
  opts: SourceOptions,
  me: Weak<Source>,
  bus: Arc<Bus>,
  next_call: AtomicU64,
  /// Samples of captures refused because the lock bound ran out (never expected).
  contended: AtomicU64,
  /// The clock to wake when an unpaced source's producer starts waiting.
  poke: OnceLock<Arc<Poke>>,
  /// The format audio leaves in (the processors' output); fixed at construction.
  out_format: Format,
  input: Mutex<Input>,
  /// Boxed: the common realtime pass (no processors, discarding sink) never touches it,
  /// and inline it would push the input side's hot fields onto more cache lines.
  output: Box<Mutex<Output>>,
  /// Rarely touched state, boxed to keep the hot fields of a source on few cache lines.
  cold: Box<Cold>,
  /// `cold.sink_slot.request` is set: spares the clock a lock per tick.
  sink_requested: AtomicBool,
  /// The installed sink discards audio (mirrors the output side, for the clock's fast path).
  sink_discards: AtomicBool,
  /// Whether there are processors at all (fixed), so sources without skip their stats.
  has_chain: bool,
  /// `cold.deferred` holds calls that found the input side busy.
  has_deferred: AtomicBool,
  /// The far-end reference an echo canceller reads (what this source delivered), made on
  /// first request; from then on every tick's chunk (or silence) is pushed to it.
  tap: OnceLock<Arc<ReferenceTap>>,
  /// A mixer output: each clock pass first mixes its inputs into this source's queue.
  mix: OnceLock<Arc<Mix>>,
  /// Set by `close()` before it looks for the output side, so a clock holding it closes
  /// the sink after its pass.
  closing: AtomicBool,
  /// A getter found the output side busy: the clock publishes stats after its next chunk.
  stats_wanted: AtomicBool,
}

#[cold]
#[inline(never)]
fn input_busy() -> CoreError {
  CoreError::Busy("the source's input side was busy past its bound".into())
}

fn health_code(h: HealthState) -> u8 {
  match h {
    HealthState::Healthy => 0,
    HealthState::Lagging => 1,
    HealthState::Stalled => 2,
    HealthState::Recovered => 3,
  }
}

fn health_from(code: u8) -> HealthState {
  match code {
    1 => HealthState::Lagging,
    2 => HealthState::Stalled,
    3 => HealthState::Recovered,
    _ => HealthState::Healthy,
  }
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
    let out_format = chain.as_ref().map_or(opts.format, |c| c.output_format());
    let published = chain.as_ref().map(|c| c.stats()).unwrap_or_default();
    let has_chain = chain.is_some();
    let input = Input {
      chunker: Chunker::new(chunk_len),
      queue: ChunkQueue::new(chunk_len, opts.queue_chunks()),
      waiters: VecDeque::new(),
      playouts: VecDeque::new(),
      handing: None,
      reader_wanted: false,
      counters: Counters::default(),
      health: Health::new(HealthTimes::from_stall_ms(opts.stall_after_ms), now),
      spare_rest: Vec::new(),
      immediate: 0,
      wait_us: None,
      pending: Pending::default(),
      started: false,
      delivered_since_underrun: false,
      preroll: (opts.preroll_ms / crate::format::CHUNK_MS) as usize,
      primed: false,
      refill_since: None,
      underrun_unreported: 0,
      reset_gen: 0,
      closed: false,
    };
    Ok(Arc::new_cyclic(|me: &Weak<Source>| {
      let mut slot = SinkSlot::default();
      // A pull source with processors reads from a bounded buffer the engine fills
      // through the chain, so the processing runs on engine threads, never in `read()`.
      let sink: Box<dyn Sink> = if chain.is_some() && opts.consumer == Consumer::Pull {
        let buffer = Self::reader_buffer(me, out_format, opts.reader_chunks);
        slot.reader = Some(buffer.clone());
        Box::new(ReaderSink::new(out_format, buffer, false))
      } else {
        Box::new(Discard::new(out_format))
      };
      let discards = sink.discards();
      Source {
        id,
        me: me.clone(),
        bus,
        next_call: AtomicU64::new(1),
        contended: AtomicU64::new(0),
        poke: OnceLock::new(),
        out_format,
        input: Mutex::new(input),
        output: Box::new(Mutex::new(Output::new(chain, sink))),
        cold: Box::new(Cold {
          sink_slot: Mutex::new(slot),
          deferred: Mutex::new(Deferred::default()),
          last: Last::default(),
          published: Mutex::new(published),
        }),
        sink_requested: AtomicBool::new(false),
        sink_discards: AtomicBool::new(discards),
        has_chain,
        has_deferred: AtomicBool::new(false),
        tap: OnceLock::new(),
        mix: OnceLock::new(),
        closing: AtomicBool::new(false),
        stats_wanted: AtomicBool::new(false),
        opts,
      }
    }))
  }

  /// The reference tap of this source, made on first call: every chunk the source
  /// delivers from now on (after its processors; silence for a tick with nothing to play)
  /// is copied into it on the engine thread, for [`EchoCancel`](crate::process::EchoCancel).
  pub fn reference_tap(&self) -> Arc<ReferenceTap> {
    self
      .tap
      .get_or_init(|| Arc::new(ReferenceTap::new(self.out_format)))
      .clone()
  }

  /// Makes this source the output of `mix` (once): from now on each clock pass first mixes
  /// one chunk per tick (realtime) or up to a pass's worth (unpaced) from the inputs into
  /// this source's queue, captured as any audio is.
  pub fn set_mix(&self, mix: Arc<Mix>) -> Result<()> {
    if mix.format() != self.opts.format {
      return Err(CoreError::FormatMismatch(
        "a mixer's output must have the mixer's format".into(),
      ));
    }
    if self.opts.consumer == Consumer::Pull {
      return Err(CoreError::InvalidOption(
        "a mixer's output must be a 'realtime' or 'unpaced' source".into(),
      ));
    }
    self
      .mix
      .set(mix)
      .map_err(|_| CoreError::InvalidOption("this source is already a mixer's output".into()))
  }

  /// The mixer this source is the output of.
  pub fn mix(&self) -> Option<&Arc<Mix>> {
    self.mix.get()
  }

  /// [`reference_tap`](Self::reference_tap), registered: the id an `echoCancel` processor
  /// spec names it by ([`RawProcessor::reference`](crate::RawProcessor::reference)).
  pub fn reference_tap_id(&self) -> u64 {
    crate::process::reference::register(&self.reference_tap())
  }

  /// A reader buffer whose wake-up reports `Readable` for this source.
  fn reader_buffer(me: &Weak<Source>, format: Format, chunks: usize) -> Arc<ReaderBuffer> {
    let me = me.clone();
    ReaderBuffer::new(
      format.chunk_len(),
      chunks,
      Box::new(move || {
        if let Some(s) = me.upgrade() {
          s.note_readable();
        }
      }),
    )
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

  /// Whether this source reports to `bus` (belongs to that engine).
  pub(crate) fn on_bus(&self, bus: &Arc<Bus>) -> bool {
    Arc::ptr_eq(&self.bus, bus)
  }

  pub fn format(&self) -> Format {
    self.opts.format
  }

  /// The input side, waiting at most [`LOCK_BOUND`]. Whoever gets it first applies the
  /// calls deferred while it was busy.
  /// Inlined into every call and pass (two per capture + tick); the error is built out of
  /// line, so the hot path is a compare-and-swap and a flag load.
  #[inline(always)]
  fn input(&self) -> Result<MutexGuard<'_, Input>> {
    let Some(mut st) = self.input.try_lock_for(LOCK_BOUND) else {
      return Err(input_busy());
    };
    if self.has_deferred.load(Ordering::Acquire) {
      self.apply_deferred(&mut st);
    }
    Ok(st)
  }

  fn per_ch(&self, interleaved: usize) -> u64 {
    (interleaved / self.opts.format.channels as usize) as u64
  }

  fn queued_ms(&self, st: &Input) -> f64 {
    self
      .opts
      .format
      .samples_to_ms(st.queue.len_samples() + st.chunker.residue_len())
  }

  /// Keeps what getters return if they ever cannot take the lock (called by the getters
  /// themselves: the last value a caller saw is the last-known one).
  fn remember(&self, st: &Input) {
    self
      .cold
      .last
      .queued_ms
      .store(self.queued_ms(st).to_bits(), Ordering::Relaxed);
    self
      .cold
      .last
      .delivered
      .store(self.per_ch(st.counters.delivered as usize), Ordering::Relaxed);
    self
      .cold
      .last
      .health
      .store(health_code(st.health.state()), Ordering::Relaxed);
  }

  fn outcome(&self, st: &mut Input, status: Status, accepted: usize, dropped: usize, waited: Duration) -> Outcome {
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
  fn feed(&self, st: &mut Input, input: &[i16], max_chunks: usize) -> usize {
    let Input { chunker, queue, .. } = st;
    let (used, emitted) = chunker.feed(input, max_chunks, |c| queue.push(c));
    st.counters.captured += used as u64;
    if emitted > 0 {
      self.wake_reader_if_pull(st);
    }
    used
  }

  fn wake_reader_if_pull(&self, st: &mut Input) {
    if st.reader_wanted && self.opts.consumer == Consumer::Pull {
      st.reader_wanted = false;
      st.pending.readable = true;
      self.touch(st);
    }
  }

  /// Counts samples taken into custody only to be lost at once.
  fn drop_now(&self, st: &mut Input, n: usize) {
    st.counters.captured += n as u64;
    st.counters.dropped += n as u64;
  }

  /// The format audio leaves in: the processors' output, else the source's own.
  pub fn output_format(&self) -> Format {
    self.out_format
  }

  /// Enables or disables processor `index`; enabling a bypassed one brings it back.
  /// Waits for the output side at most [`LOCK_BOUND`] (a clock yields it between chunks,
  /// so this is one chunk's processing at most), else `ERR_BUSY`.
  pub fn set_processor_enabled(&self, index: usize, enabled: bool) -> Result<()> {
    let mut out = self
      .output
      .try_lock_for(LOCK_BOUND)
      .ok_or_else(|| CoreError::Busy("the source's processors were busy past the lock bound".into()))?;
    let r = match out.chain.as_mut() {
      Some(c) => c.set_enabled(index, enabled),
      None => Err(CoreError::InvalidOption(format!(
        "this source has no processor {index}"
      ))),
    };
    self.publish(&out);
    r
  }

  /// Whether processor `index` runs (enabled and not bypassed). Never waits for a
  /// processing clock: then it answers from the stats last published.
  pub fn processor_enabled(&self, index: usize) -> bool {
    if let Some(out) = self.output.try_lock() {
      return out
        .chain
        .as_ref()
        .is_some_and(|c| c.is_enabled(index) && !c.is_bypassed(index));
    }
    self.stats_wanted.store(true, Ordering::Relaxed);
    self
      .cold
      .published
      .lock()
      .get(index)
      .is_some_and(|p| p.enabled && !p.bypassed)
  }

  /// Processor stats now, or (while the clock processes) as last published.
  fn processor_stats(&self) -> Vec<ProcessorStats> {
    if !self.has_chain {
      return Vec::new();
    }
    if let Some(out) = self.output.try_lock() {
      return self.publish(&out);
    }
    self.stats_wanted.store(true, Ordering::Relaxed);
    self.cold.published.lock().clone()
  }

  fn publish(&self, out: &Output) -> Vec<ProcessorStats> {
    let stats = out.chain.as_ref().map(|c| c.stats()).unwrap_or_default();
    *self.cold.published.lock() = stats.clone();
    stats
  }

  pub fn is_closed(&self) -> bool {
    self.closing.load(Ordering::Acquire)
  }

  pub fn health(&self) -> HealthState {
    match self.input() {
      Ok(st) => {
        self.remember(&st);
        st.health.state()
      }
      Err(_) => health_from(self.cold.last.health.load(Ordering::Relaxed)),
    }
  }

  pub fn queued_ms_now(&self) -> f64 {
    match self.input() {
      Ok(st) => {
        self.remember(&st);
        self.queued_ms(&st)
      }
      Err(_) => f64::from_bits(self.cold.last.queued_ms.load(Ordering::Relaxed)),
    }
  }

  /// Samples per channel the consumer has taken.
  pub fn playout_position(&self) -> u64 {
    match self.input() {
      Ok(st) => {
        self.remember(&st);
        self.per_ch(st.counters.delivered as usize)
      }
      Err(_) => self.cold.last.delivered.load(Ordering::Relaxed),
    }
  }
}
