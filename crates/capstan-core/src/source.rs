//! A capture source: chunker → bounded queue → consumer, with waiters, deadlines,
//! accounting and health. One lock per source; the JS thread never waits on it unbounded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::{Mutex, MutexGuard};

use crate::chunker::Chunker;
use crate::clock::Poke;
use crate::error::{CoreError, Result};
use crate::events::{Bus, Completion, Drained, Event};
use crate::format::{f32_to_i16, Format};
use crate::health::{Health, HealthState, HealthTimes, Transition};
use crate::process::{Chain, ChainEvent, ProcessorStats, Spec, VadOptions, DEFAULT_BYPASS_AFTER};
use crate::queue::{ChunkQueue, Overflow};

/// The longest any call waits for a source's lock; critical sections are microseconds.
const LOCK_BOUND: Duration = Duration::from_millis(200);
/// Health transitions kept per drain; older ones in a storm are folded away.
const MAX_PENDING_TRANSITIONS: usize = 8;

/// Who takes audio out of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
  /// The engine clock takes one chunk per 10 ms tick.
  Realtime,
  /// JavaScript reads with `frames()` at its own pace.
  Pull,
  /// The engine takes chunks as fast as the sink accepts them.
  Unpaced,
}

impl Consumer {
  pub fn parse(s: &str) -> Option<Self> {
    Some(match s {
      "realtime" => Consumer::Realtime,
      "pull" => Consumer::Pull,
      "unpaced" => Consumer::Unpaced,
      _ => return None,
    })
  }
}

#[derive(Debug, Clone)]
pub struct SourceOptions {
  pub format: Format,
  pub queue_ms: u32,
  pub overflow: Overflow,
  pub deadline_ms: u32,
  pub stall_after_ms: u32,
  pub consumer: Consumer,
  pub fill_silence: bool,
  /// Chunks a `frames()` reader may hold undelivered on a realtime/unpaced source.
  pub reader_chunks: usize,
  /// Native processors, run on engine threads on every chunk the consumer takes.
  pub processors: Vec<Spec>,
  /// Consecutive failures after which a processor is bypassed.
  pub processor_bypass_after: u32,
  /// Per-chunk time budget of each processor; overruns are counted and reported.
  pub processor_budget: Option<Duration>,
}

impl SourceOptions {
  pub fn new(sample_rate: u32, channels: u16) -> Result<Self> {
    Ok(SourceOptions {
      format: Format::new(sample_rate, channels)?,
      queue_ms: 200,
      overflow: Overflow::Wait,
      deadline_ms: 1000,
      stall_after_ms: 250,
      consumer: Consumer::Realtime,
      fill_silence: true,
      reader_chunks: 5,
      processors: Vec::new(),
      processor_bypass_after: DEFAULT_BYPASS_AFTER,
      processor_budget: Some(Duration::from_millis(5)),
    })
  }

  pub fn validate(&self) -> Result<()> {
    if self.queue_ms == 0 || self.queue_ms % 10 != 0 || self.queue_ms > 600_000 {
      return Err(CoreError::InvalidOption(format!(
        "queueMs must be a positive multiple of 10 up to 600000, got {}",
        self.queue_ms
      )));
    }
    if self.deadline_ms > 3_600_000 {
      return Err(CoreError::InvalidOption(format!(
        "deadlineMs must be at most 3600000, got {}",
        self.deadline_ms
      )));
    }
    if self.stall_after_ms < 20 || self.stall_after_ms > 3_600_000 {
      return Err(CoreError::InvalidOption(format!(
        "stallAfterMs must be 20..=3600000, got {}",
        self.stall_after_ms
      )));
    }
    if self.reader_chunks == 0 || self.reader_chunks > 1000 {
      return Err(CoreError::InvalidOption(format!(
        "readerBufferMs must be 10..=10000, got {}",
        self.reader_chunks * 10
      )));
    }
    Ok(())
  }
}

/// Options as a caller wrote them (numbers as f64, enums as strings); `from_raw`
/// validates them all so no other layer has to.
#[derive(Debug, Clone, Default)]
pub struct RawOptions {
  pub sample_rate: f64,
  pub channels: f64,
  pub queue_ms: Option<f64>,
  pub overflow: Option<String>,
  pub deadline_ms: Option<f64>,
  pub stall_after_ms: Option<f64>,
  pub consumer: Option<String>,
  pub fill_silence: Option<bool>,
  pub reader_buffer_ms: Option<f64>,
  pub processors: Vec<RawProcessor>,
  pub processor_bypass_after: Option<f64>,
  pub processor_budget_ms: Option<f64>,
}

/// A native processor as a caller wrote it: `kind` plus its numeric options.
#[derive(Debug, Clone, Default)]
pub struct RawProcessor {
  pub kind: String,
  pub db: Option<f64>,
  pub hz: Option<f64>,
  pub to_rate: Option<f64>,
  pub threshold_db: Option<f64>,
  pub hysteresis_db: Option<f64>,
  pub attack_ms: Option<f64>,
  pub hangover_ms: Option<f64>,
}

impl RawProcessor {
  fn spec(&self) -> Result<Spec> {
    let need = |v: Option<f64>, what: &str| {
      v.ok_or_else(|| CoreError::InvalidOption(format!("processor '{}' needs {what}", self.kind)))
    };
    Ok(match self.kind.as_str() {
      "gain" => Spec::Gain {
        db: need(self.db, "db")?,
      },
      "highPass" => Spec::HighPass {
        hz: need(self.hz, "hz")?,
      },
      "resample" => Spec::Resample {
        to_rate: whole("toRate", need(self.to_rate, "toRate")?)?,
      },
      "denoise" => Spec::Denoise,
      "vad" => {
        let mut o = VadOptions::default();
        if let Some(v) = self.threshold_db {
          o.threshold_db = v;
        }
        if let Some(v) = self.hysteresis_db {
          o.hysteresis_db = v;
        }
        if let Some(v) = self.attack_ms {
          o.attack_ms = whole("attackMs", v)?;
        }
        if let Some(v) = self.hangover_ms {
          o.hangover_ms = whole("hangoverMs", v)?;
        }
        Spec::Vad(o)
      }
      k => return Err(CoreError::InvalidOption(format!("unknown native processor '{k}'"))),
    })
  }
}

/// A caller-supplied count (ms, Hz, channels) as a whole u32, or `ERR_INVALID_OPTION`.
pub fn whole(name: &str, v: f64) -> Result<u32> {
  if !v.is_finite() || v.fract() != 0.0 || v < 0.0 || v > u32::MAX as f64 {
    return Err(CoreError::InvalidOption(format!(
      "{name} must be a non-negative whole number, got {v}"
    )));
  }
  Ok(v as u32)
}

impl SourceOptions {
  pub fn from_raw(r: RawOptions) -> Result<Self> {
    let channels = whole("channels", r.channels)?;
    let mut o = SourceOptions::new(
      whole("sampleRate", r.sample_rate)?,
      channels.min(u16::MAX as u32) as u16,
    )?;
    if let Some(v) = r.queue_ms {
      o.queue_ms = whole("queueMs", v)?;
    }
    if let Some(v) = r.overflow {
      o.overflow = Overflow::parse(&v).ok_or_else(|| {
        CoreError::InvalidOption(format!(
          "overflow must be 'wait', 'drop-oldest', 'drop-newest' or 'reject', got '{v}'"
        ))
      })?;
    }
    if let Some(v) = r.deadline_ms {
      o.deadline_ms = whole("deadlineMs", v)?;
    }
    if let Some(v) = r.stall_after_ms {
      o.stall_after_ms = whole("stallAfterMs", v)?;
    }
    if let Some(v) = r.consumer {
      o.consumer = Consumer::parse(&v).ok_or_else(|| {
        CoreError::InvalidOption(format!("consumer must be 'realtime', 'pull' or 'unpaced', got '{v}'"))
      })?;
    }
    if let Some(v) = r.fill_silence {
      o.fill_silence = v;
    }
    if let Some(v) = r.reader_buffer_ms {
      let ms = whole("readerBufferMs", v)?;
      if ms % 10 != 0 {
        return Err(CoreError::InvalidOption(format!(
          "readerBufferMs must be a multiple of 10, got {ms}"
        )));
      }
      o.reader_chunks = (ms / 10) as usize;
    }
    o.processors = r.processors.iter().map(RawProcessor::spec).collect::<Result<_>>()?;
    if let Some(v) = r.processor_bypass_after {
      o.processor_bypass_after = whole("processorBypassAfter", v)?;
    }
    if let Some(v) = r.processor_budget_ms {
      if !v.is_finite() || v < 0.0 {
        return Err(CoreError::InvalidOption(format!(
          "processorBudgetMs must be >= 0, got {v}"
        )));
      }
      o.processor_budget = (v > 0.0).then(|| Duration::from_secs_f64(v / 1000.0));
    }
    o.validate()?;
    Ok(o)
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
  Accepted,
  Partial,
  Dropped,
  Timeout,
  Aborted,
  Cleared,
  Closed,
}

impl Status {
  pub const ALL: [Status; 7] = [
    Status::Accepted,
    Status::Partial,
    Status::Dropped,
    Status::Timeout,
    Status::Aborted,
    Status::Cleared,
    Status::Closed,
  ];

  pub fn as_str(&self) -> &'static str {
    match self {
      Status::Accepted => "accepted",
      Status::Partial => "partial",
      Status::Dropped => "dropped",
      Status::Timeout => "timeout",
      Status::Aborted => "aborted",
      Status::Cleared => "cleared",
      Status::Closed => "closed",
    }
  }
}

/// How a capture settled. Samples are per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
  pub status: Status,
  pub accepted_samples: u64,
  /// Samples this call caused to be lost: its own that did not fit, or (drop-oldest)
  /// older queued audio evicted to make room.
  pub dropped_samples: u64,
  /// Queue depth (including the carried remainder) once the call settled.
  pub queued_ms: f64,
  pub waited_ms: f64,
}

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

/// Either settled at once, or waiting under the `wait` policy (settles through the bus).
#[derive(Debug, Clone, PartialEq)]
pub enum CaptureResult {
  Settled(Outcome),
  Pending(u64),
}

/// What `read()` found.
#[derive(Debug, PartialEq)]
pub enum Read {
  Chunk(Vec<i16>),
  /// Nothing now; a `Readable` event follows when there is.
  Empty,
  Closed,
}

/// A consistent snapshot of one source. Samples are per channel.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
  pub captured: u64,
  pub delivered: u64,
  pub queued: u64,
  pub dropped: u64,
  pub cleared: u64,
  /// Silence added by `flush()` (included in `captured`).
  pub padded: u64,
  pub underruns: u64,
  pub waiting_captures: u64,
  pub waiting_samples: u64,
  pub stalls: u64,
  pub outcomes: [u64; 7],
  pub capture_wait_p50_us: u64,
  pub capture_wait_p99_us: u64,
  pub capture_wait_max_us: u64,
  pub queued_ms: f64,
  pub playout_position: u64,
  pub health: Option<HealthState>,
  pub processors: Vec<ProcessorStats>,
}

struct Waiter {
  id: u64,
  rest: Vec<i16>,
  pos: usize,
  /// Interleaved samples of this frame already queued.
  accepted: usize,
  started: Instant,
  deadline: Instant,
  /// Silence from `flush()`: counted in `padded` as it is taken into custody.
  padding: bool,
}

#[derive(Default)]
struct Pending {
  listed: bool,
  health: Vec<Transition>,
  overflow_dropped: u64,
  underrun_ticks: u64,
  underrun_report: bool,
  deadline: Option<(u64, f64, u64)>,
  readable: bool,
  closed: bool,
  completions: Vec<Completion>,
  playouts: Vec<u64>,
  processor_errors: Vec<Event>,
  vad: Vec<Event>,
  slow: Option<Event>,
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

enum Delivery {
  /// The consumer's audio leaves the engine (counted as delivered).
  Discard,
  /// A `frames()` reader on a paced source: delivered chunks wait here, bounded.
  Reader(ChunkQueue),
}

struct State {
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

/// A capture-wait percentile over immediate captures (0 µs) and the waits histogram.
fn wait_quantile(st: &State, q: f64) -> u64 {
  let waited = st.wait_us.as_ref().map_or(0, |h| h.len());
  let total = st.immediate + waited;
  let rank = (q * total as f64).ceil() as u64;
  match &st.wait_us {
    Some(h) if rank > st.immediate => h.value_at_quantile((rank - st.immediate) as f64 / waited as f64),
    _ => 0,
  }
}

fn status_index(s: Status) -> usize {
  Status::ALL.iter().position(|x| *x == s).unwrap()
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

  fn lock(&self) -> MutexGuard<'_, State> {
    self
      .state
      .try_lock_for(LOCK_BOUND)
      .expect("capstan: source lock held past its bound")
  }

  fn per_ch(&self, interleaved: usize) -> u64 {
    (interleaved / self.opts.format.channels as usize) as u64
  }

  fn queued_ms(&self, st: &State) -> f64 {
    self
      .opts
      .format
      .samples_to_ms(st.queue.len_samples() + st.chunker.residue_len())
  }

  fn touch(&self, st: &mut State) {
    if !st.pending.listed {
      st.pending.listed = true;
      self.bus.mark(self.me.clone());
    }
  }

  fn push_transition(&self, st: &mut State, t: Option<Transition>) {
    if let Some(t) = t {
      if st.pending.health.len() >= MAX_PENDING_TRANSITIONS {
        st.pending.health.remove(0);
      }
      st.pending.health.push(t);
      self.touch(st);
    }
  }

  fn note_overflow(&self, st: &mut State, dropped: usize) {
    if dropped > 0 {
      st.pending.overflow_dropped += self.per_ch(dropped);
      self.touch(st);
    }
  }

  fn outcome(&self, st: &mut State, status: Status, accepted: usize, dropped: usize, waited: Duration) -> Outcome {
    st.counters.outcomes[status_index(status)] += 1;
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
  fn feed(&self, st: &mut State, input: &[i16], max_chunks: usize) -> usize {
    let State { chunker, queue, .. } = st;
    let (used, emitted) = chunker.feed(input, max_chunks, |c| queue.push(c));
    st.counters.captured += used as u64;
    if emitted > 0 {
      self.wake_reader_if_pull(st);
    }
    used
  }

  fn wake_reader_if_pull(&self, st: &mut State) {
    if st.reader_wanted && self.opts.consumer == Consumer::Pull {
      st.reader_wanted = false;
      st.pending.readable = true;
      self.touch(st);
    }
  }

  /// Counts samples taken into custody only to be lost at once.
  fn drop_now(&self, st: &mut State, n: usize) {
    st.counters.captured += n as u64;
    st.counters.dropped += n as u64;
  }

  /// Validates a frame and turns it into i16 samples (borrowed when already i16).
  fn prepare<'a>(&self, frame: &FrameRef<'a>, scratch: &'a mut Vec<i16>) -> Result<&'a [i16]>
  where
    Self: 'a,
  {
    let fmt = self.opts.format;
    fmt.check_frame(
      frame.sample_rate.unwrap_or(fmt.sample_rate),
      frame.channels.unwrap_or(fmt.channels),
    )?;
    let data: &'a [i16] = match frame.samples {
      Samples::I16(d) => d,
      Samples::F32(f) => {
        f32_to_i16(f, scratch)?;
        scratch.as_slice()
      }
    };
    fmt.check_len(data.len())?;
    Ok(data)
  }

  /// `captureFrame`: queue what the policy allows now; under `wait`, what does not fit
  /// waits (FIFO behind earlier waiters) until room, deadline, abort, clear or close.
  pub fn capture(&self, frame: FrameRef<'_>, deadline_ms: Option<u32>) -> Result<CaptureResult> {
    self.capture_inner(frame, deadline_ms, true, false)
  }

  /// `tryCaptureFrame`: never waits. Under `wait`, a frame that cannot be queued whole
  /// right now (or that would jump earlier waiters) is refused whole (`dropped`).
  pub fn try_capture(&self, frame: FrameRef<'_>) -> Result<Outcome> {
    match self.capture_inner(frame, Some(0), false, false)? {
      CaptureResult::Settled(o) => Ok(o),
      CaptureResult::Pending(_) => unreachable!("try_capture never waits"),
    }
  }

  /// `flush()`: completes the carried remainder with silence, queued like a capture.
  pub fn flush(&self, deadline_ms: Option<u32>) -> Result<CaptureResult> {
    let pad = {
      let st = self.lock();
      // Pad against what will be carried once earlier waiters are in.
      let pending: usize = st.waiters.iter().map(|w| w.rest.len() - w.pos).sum();
      let c = st.chunker.chunk_len();
      (c - (st.chunker.residue_len() + pending) % c) % c
    };
    if pad == 0 {
      let mut st = self.lock();
      let status = if st.closed { Status::Closed } else { Status::Accepted };
      let o = self.outcome(&mut st, status, 0, 0, Duration::ZERO);
      return Ok(CaptureResult::Settled(o));
    }
    let silence = vec![0i16; pad];
    self.capture_inner(FrameRef::i16(&silence), deadline_ms, true, true)
  }

  fn capture_inner(
    &self,
    frame: FrameRef<'_>,
    deadline_ms: Option<u32>,
    may_wait: bool,
    padding: bool,
  ) -> Result<CaptureResult> {
    let mut scratch = Vec::new();
    let input = self.prepare(&frame, &mut scratch)?;
    let n = input.len();
    let now = Instant::now();
    let Some(mut guard) = self.state.try_lock_for(LOCK_BOUND) else {
      self.contended.fetch_add(n as u64, Ordering::Relaxed);
      return Ok(CaptureResult::Settled(Outcome {
        status: Status::Timeout,
        accepted_samples: 0,
        dropped_samples: self.per_ch(n),
        queued_ms: 0.0,
        waited_ms: LOCK_BOUND.as_secs_f64() * 1000.0,
      }));
    };
    let st = &mut *guard;
    if st.closed {
      let o = self.outcome(st, Status::Closed, 0, n, Duration::ZERO);
      return Ok(CaptureResult::Settled(o));
    }
    st.started = true;
    let free = st.queue.free_chunks();
    let fits = st.waiters.is_empty() && st.chunker.chunks_for(n) <= free;
    let result = match self.opts.overflow {
      _ if fits => {
        self.feed(st, input, usize::MAX);
        CaptureResult::Settled(self.outcome(st, Status::Accepted, n, 0, Duration::ZERO))
      }
      Overflow::Wait if !may_wait => {
        self.drop_now(st, n);
        self.note_overflow(st, n);
        CaptureResult::Settled(self.outcome(st, Status::Dropped, 0, n, Duration::ZERO))
      }
      Overflow::Wait => {
        let used = if st.waiters.is_empty() {
          self.feed(st, input, free)
        } else {
          0
        };
        let deadline = Duration::from_millis(deadline_ms.unwrap_or(self.opts.deadline_ms) as u64);
        if deadline.is_zero() {
          self.drop_now(st, n - used);
          self.note_deadline(st, Duration::ZERO, n - used);
          CaptureResult::Settled(self.outcome(st, Status::Timeout, used, n - used, Duration::ZERO))
        } else {
          let id = self.next_call.fetch_add(1, Ordering::Relaxed);
          st.waiters.push_back(Waiter {
            id,
            rest: {
              let mut v = std::mem::take(&mut st.spare_rest);
              v.clear();
              v.extend_from_slice(&input[used..]);
              v
            },
            pos: 0,
            accepted: used,
            started: now,
            deadline: now + deadline,
            padding,
          });
          if padding {
            st.counters.padded += used as u64;
          }
          if self.opts.consumer == Consumer::Unpaced {
            if let Some(p) = self.poke.get() {
              p.poke();
            }
          }
          return Ok(CaptureResult::Pending(id));
        }
      }
      Overflow::DropNewest => {
        let used = self.feed(st, input, free);
        self.drop_now(st, n - used);
        self.note_overflow(st, n - used);
        let status = if used == 0 { Status::Dropped } else { Status::Partial };
        CaptureResult::Settled(self.outcome(st, status, used, n - used, Duration::ZERO))
      }
      Overflow::DropOldest => {
        let before = st.queue.len_samples() + st.chunker.residue_len();
        let State { chunker, queue, .. } = st;
        let mut evicted = 0usize;
        chunker.feed(input, usize::MAX, |c| {
          if queue.free_chunks() == 0 {
            queue.evict();
            evicted += c.len();
          }
          queue.push(c);
        });
        st.counters.captured += n as u64;
        st.counters.dropped += evicted as u64;
        self.wake_reader_if_pull(st);
        self.note_overflow(st, evicted);
        self.resolve_playouts(st);
        let own = evicted.saturating_sub(before);
        let status = if own == 0 { Status::Accepted } else { Status::Partial };
        CaptureResult::Settled(self.outcome(st, status, n - own, evicted, Duration::ZERO))
      }
      Overflow::Reject => {
        self.drop_now(st, n);
        self.note_overflow(st, n);
        CaptureResult::Settled(self.outcome(st, Status::Dropped, 0, n, Duration::ZERO))
      }
    };
    // Settled here: all of the padding is in custody (queued or counted as dropped).
    if padding {
      st.counters.padded += n as u64;
    }
    Ok(result)
  }

  fn note_deadline(&self, st: &mut State, waited: Duration, dropped: usize) {
    let ms = waited.as_secs_f64() * 1000.0;
    let d = st.pending.deadline.get_or_insert((0, 0.0, 0));
    d.0 += 1;
    d.1 = d.1.max(ms);
    d.2 += (dropped / self.opts.format.channels as usize) as u64;
    self.touch(st);
  }

  fn settle_waiter(&self, st: &mut State, w: Waiter, status: Status, now: Instant) {
    let rest = w.rest.len() - w.pos;
    let waited = now.saturating_duration_since(w.started);
    match status {
      Status::Accepted => {}
      Status::Cleared | Status::Closed => {
        st.counters.captured += rest as u64;
        st.counters.cleared += rest as u64;
      }
      _ => self.drop_now(st, rest),
    }
    if w.padding && status != Status::Accepted {
      st.counters.padded += rest as u64;
    }
    if status == Status::Timeout {
      self.note_deadline(st, waited, rest);
    }
    let outcome = self.outcome(st, status, w.accepted, rest, waited);
    st.pending.completions.push(Completion { id: w.id, outcome });
    if w.rest.capacity() > st.spare_rest.capacity() {
      st.spare_rest = w.rest;
    }
    self.touch(st);
  }

  /// Moves waiting captures into freed room, in order; settles those fully queued.
  fn service_waiters(&self, st: &mut State, now: Instant) {
    while let Some(mut w) = st.waiters.pop_front() {
      let free = st.queue.free_chunks();
      let used = self.feed(st, &w.rest[w.pos..], free);
      w.pos += used;
      w.accepted += used;
      if w.padding {
        st.counters.padded += used as u64;
      }
      if w.pos == w.rest.len() {
        self.settle_waiter(st, w, Status::Accepted, now);
      } else {
        st.waiters.push_front(w);
        break;
      }
    }
  }

  fn resolve_playouts(&self, st: &mut State) {
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
  fn take_chunk(&self, st: &mut State, now: Instant, take: impl FnOnce(&[i16], &[i16])) -> bool {
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

  fn underrun(&self, st: &mut State) {
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
  fn take_processed(&self, st: &mut State, now: Instant) -> bool {
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

  fn note_chain_events(&self, st: &mut State, events: &mut Vec<ChainEvent>) {
    if events.is_empty() {
      return;
    }
    for e in events.drain(..) {
      match Event::from(e) {
        ev @ Event::ProcessorError { .. } => {
          if st.pending.processor_errors.len() >= MAX_PENDING_TRANSITIONS * 2 {
            st.pending.processor_errors.remove(0);
          }
          st.pending.processor_errors.push(ev);
        }
        ev @ Event::Vad { .. } => {
          if st.pending.vad.len() >= 64 {
            st.pending.vad.remove(0);
          }
          st.pending.vad.push(ev);
        }
        // Budget overruns coalesce: the latest carries the running count.
        ev => st.pending.slow = Some(ev),
      }
    }
    self.touch(st);
  }

  /// Hands one chunk (through the processors, if any) to the sink; an empty queue is an
  /// underrun. False when the sink has no room (the consumer makes no progress).
  fn deliver_one(&self, st: &mut State, now: Instant) -> bool {
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

  fn expire(&self, st: &mut State, now: Instant) {
    if st.waiters.iter().all(|w| w.deadline > now) {
      return;
    }
    let waiters = std::mem::take(&mut st.waiters);
    for w in waiters {
      if w.deadline <= now {
        self.settle_waiter(st, w, Status::Timeout, now);
      } else {
        st.waiters.push_back(w);
      }
    }
    // The head may have changed: let the next waiter use any room.
    self.service_waiters(st, now);
  }

  /// Settles a waiting capture as `aborted`; None if it already settled.
  pub fn abort(&self, id: u64) -> Option<Outcome> {
    let mut guard = self.lock();
    let st = &mut *guard;
    let idx = st.waiters.iter().position(|w| w.id == id)?;
    let w = st.waiters.remove(idx).unwrap();
    let now = Instant::now();
    let rest = w.rest.len() - w.pos;
    self.drop_now(st, rest);
    if w.padding {
      st.counters.padded += rest as u64;
    }
    let o = self.outcome(
      st,
      Status::Aborted,
      w.accepted,
      rest,
      now.saturating_duration_since(w.started),
    );
    if idx == 0 {
      self.service_waiters(st, now);
    }
    Some(o)
  }

  /// `clearQueue()`: discards queued audio and the carried remainder; every waiting
  /// capture settles `cleared`. Returns samples per channel discarded from the queue.
  pub fn clear(&self) -> u64 {
    let mut guard = self.lock();
    let st = &mut *guard;
    self.discard_all(st, Status::Cleared)
  }

  fn discard_all(&self, st: &mut State, status: Status) -> u64 {
    let now = Instant::now();
    let n = st.queue.clear() + st.chunker.clear();
    st.counters.cleared += n as u64;
    for w in std::mem::take(&mut st.waiters) {
      self.settle_waiter(st, w, status, now);
    }
    self.resolve_playouts(st);
    self.per_ch(n)
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

  pub fn metrics(&self) -> Metrics {
    let st = self.lock();
    let contended = self.contended.load(Ordering::Relaxed);
    let c = &st.counters;
    let queued = st.queue.len_samples() + st.chunker.residue_len();
    let waiting: usize = st.waiters.iter().map(|w| w.rest.len() - w.pos).sum();
    let ch = self.opts.format.channels as u64;
    Metrics {
      captured: (c.captured + contended) / ch,
      delivered: c.delivered / ch,
      queued: queued as u64 / ch,
      dropped: (c.dropped + contended) / ch,
      cleared: c.cleared / ch,
      padded: c.padded / ch,
      underruns: c.underruns,
      waiting_captures: st.waiters.len() as u64,
      waiting_samples: waiting as u64 / ch,
      stalls: st.health.stalls,
      outcomes: c.outcomes,
      capture_wait_p50_us: wait_quantile(&st, 0.5),
      capture_wait_p99_us: wait_quantile(&st, 0.99),
      capture_wait_max_us: st.wait_us.as_ref().map_or(0, |h| h.max()),
      queued_ms: self.queued_ms(&st),
      playout_position: c.delivered / ch,
      health: Some(st.health.state()),
      processors: st.chain.as_ref().map(|c| c.stats()).unwrap_or_default(),
    }
  }

  /// Hands the bus everything pending, coalesced.
  pub(crate) fn take_pending(&self) -> Drained {
    let mut st = self.lock();
    let p = std::mem::take(&mut st.pending);
    let mut events = Vec::new();
    events.extend(p.health.into_iter().map(Event::Health));
    if p.overflow_dropped > 0 {
      events.push(Event::Overflow {
        dropped_samples: p.overflow_dropped,
        policy: self.opts.overflow,
      });
    }
    if p.underrun_report {
      events.push(Event::Underrun {
        ticks: p.underrun_ticks,
      });
    }
    if let Some((count, waited_ms, dropped_samples)) = p.deadline {
      events.push(Event::Deadline {
        count,
        waited_ms,
        dropped_samples,
      });
    }
    events.extend(p.processor_errors);
    events.extend(p.slow);
    events.extend(p.vad);
    if p.readable {
      events.push(Event::Readable);
    }
    if p.closed {
      events.push(Event::Closed);
    }
    Drained {
      source_id: self.id,
      events,
      completions: p.completions,
      playouts: p.playouts,
    }
  }
}
