//! The engine clock: a small fixed pool of threads, each ticking a shard of sources
//! every 10 ms (the playout model of a WebRTC audio device). Not a thread per source.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Result;
use crate::events::{Bus, Drained, Notifier};
use crate::group::Group;
use crate::options::{Consumer, SourceOptions};
use crate::source::Source;
use crate::wake::Poke;

/// Clock threads are named this plus their index.
pub const THREAD_PREFIX: &str = "capstan-clock-";
pub const TICK: Duration = Duration::from_millis(10);
/// Ticks a late clock may catch up in one go; beyond that the time is lost, and counted.
const MAX_CATCH_UP: u32 = 5;

/// A shard's sources as of the last add or remove.
type Snapshot = Arc<Vec<(u64, Arc<Source>)>>;

#[derive(Default)]
struct Shard {
  poke: Arc<Poke>,
  /// (id, source): ids kept inline so removal scans a dense array, not every source.
  /// Copied on write: the clock ticks a snapshot without holding this lock, so adding or
  /// removing a source never waits for a pass.
  sources: Mutex<Snapshot>,
  /// Size of `sources`, readable without its lock.
  count: AtomicUsize,
  /// Ticks lost because this thread woke too late to catch up.
  lost_ticks: AtomicU64,
}

/// Owns the clock threads, the sources' shards and the event bus. One per JS environment
/// (main thread or worker). Threads run only while sources exist: the last source's
/// removal joins them, so a closed engine holds no thread and calls no notifier.
pub struct Engine {
  shards: Vec<Arc<Shard>>,
  threads: Mutex<Option<Clocks>>,
  /// Clock threads told to stop when the last source left, not waited for there: one may
  /// be in the middle of a slow processor chunk, and that caller is the JS thread. Joined
  /// (once finished) when clocks start again, and by `shutdown`.
  retired: Mutex<Vec<JoinHandle<()>>>,
  bus: Arc<Bus>,
  next_id: AtomicU64,
}

struct Clocks {
  running: Arc<AtomicBool>,
  handles: Vec<JoinHandle<()>>,
}

impl Engine {
  /// An engine with `threads` clock threads (at least one) once it has sources.
  pub fn new(threads: usize) -> Arc<Self> {
    let n = threads.max(1);
    let shards = (0..n).map(|_| Arc::new(Shard::default())).collect();
    Arc::new(Engine {
      shards,
      threads: Mutex::new(None),
      retired: Mutex::new(Vec::new()),
      bus: Bus::new(),
      next_id: AtomicU64::new(1),
    })
  }

  /// Default pool size: one clock thread per core, at most four.
  pub fn default_threads() -> usize {
    std::thread::available_parallelism()
      .map(|n| n.get())
      .unwrap_or(1)
      .min(4)
  }

  pub fn set_notifier(&self, n: Option<Notifier>) {
    self.bus.set_notifier(n);
  }

  pub fn drain(&self) -> Vec<Drained> {
    self.bus.drain()
  }

  /// See [`Bus::drain_up_to`].
  pub fn drain_up_to(&self, max_sources: usize) -> (Vec<Drained>, bool) {
    self.bus.drain_up_to(max_sources)
  }

  /// Creates a source, puts it on the least-loaded shard and starts the clocks if idle.
  pub fn add_source(&self, opts: SourceOptions) -> Result<Arc<Source>> {
    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
    let source = Source::new(id, opts, self.bus.clone())?;
    let mut clocks = self.threads.lock();
    let shard = self
      .shards
      .iter()
      .min_by_key(|s| s.count.load(Ordering::Relaxed))
      .expect("at least one shard");
    source.set_poke(shard.poke.clone());
    // In place unless a pass holds the snapshot right now (then copied once: the copy is
    // this shard's own until the next pass), so adding N sources costs O(N), not O(N²).
    Arc::make_mut(&mut shard.sources.lock()).push((id, source.clone()));
    shard.count.fetch_add(1, Ordering::Relaxed);
    if clocks.is_none() {
      self.reap(Duration::ZERO);
      *clocks = Some(self.start_clocks());
    }
    Ok(source)
  }

  /// Groups a fixed set of this engine's sources for one-call rounds (see [`Group`]). The
  /// group takes an id from the sources' sequence, so the bus reports it like a source.
  pub fn add_group(&self, members: Vec<Arc<Source>>) -> Result<Arc<Group>> {
    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
    Group::new(id, members, self.bus.clone())
  }

  fn start_clocks(&self) -> Clocks {
    let running = Arc::new(AtomicBool::new(true));
    let handles = self
      .shards
      .iter()
      .enumerate()
      .map(|(i, shard)| {
        let shard = shard.clone();
        let running = running.clone();
        std::thread::Builder::new()
          .name(format!("{THREAD_PREFIX}{i}"))
          .spawn(move || run_clock(shard, running))
          .expect("spawn capstan clock thread")
      })
      .collect();
    Clocks { running, handles }
  }

  /// Tells the clock threads to stop after their current pass and returns them unjoined.
  fn signal_stop(clocks: Option<Clocks>) -> Vec<JoinHandle<()>> {
    let Some(c) = clocks else { return Vec::new() };
    c.running.store(false, Ordering::Release);
    for h in &c.handles {
      h.thread().unpark();
    }
    c.handles
  }

  /// Joins retired clock threads that have finished, waiting up to `wait` for the rest;
  /// any still busy after that (a processor that never returns) stay listed.
  fn reap(&self, wait: Duration) {
    let deadline = Instant::now() + wait;
    let mut retired = self.retired.lock();
    loop {
      let (done, busy): (Vec<_>, Vec<_>) = retired.drain(..).partition(|h| h.is_finished());
      for h in done {
        let _ = h.join();
      }
      *retired = busy;
      if retired.is_empty() || Instant::now() >= deadline {
        return;
      }
      std::thread::sleep(Duration::from_millis(1));
    }
  }

  /// Clock threads not yet joined (running, or retired and not reaped).
  pub fn thread_count(&self) -> usize {
    self.threads.lock().as_ref().map_or(0, |c| c.handles.len()) + self.retired.lock().len()
  }

  /// Closes a source and takes it off its clock; the last one out stops the clocks.
  pub fn remove_source(&self, source: &Source) {
    source.close();
    let mut clocks = self.threads.lock();
    for shard in &self.shards {
      let mut list = shard.sources.lock();
      if let Some(i) = list.iter().position(|(id, _)| *id == source.id()) {
        Arc::make_mut(&mut list).swap_remove(i);
        shard.count.fetch_sub(1, Ordering::Relaxed);
      }
    }
    if self.source_count() == 0 {
      // Not joined here: the caller is the JS thread, and a clock may be in a slow chunk.
      let stopped = Self::signal_stop(clocks.take());
      self.retired.lock().extend(stopped);
    }
  }

  pub fn source_count(&self) -> usize {
    self.shards.iter().map(|s| s.count.load(Ordering::Relaxed)).sum()
  }

  pub fn lost_ticks(&self) -> u64 {
    self.shards.iter().map(|s| s.lost_ticks.load(Ordering::Relaxed)).sum()
  }

  /// Whether clock threads are running.
  pub fn is_running(&self) -> bool {
    self.threads.lock().is_some()
  }

  /// Closes every source, stops and joins the clock threads, drops the notifier.
  /// Idempotent; after it returns no engine thread touches the notifier again (it is
  /// dropped first, and a clock only calls it under the lock `set_notifier` takes). A
  /// thread stuck in a processor that never returns is waited for up to 5 s, then left.
  pub fn shutdown(&self) {
    self.bus.set_notifier(None);
    // Closed first, so a clock in the middle of a slow pass stops it at the next chunk.
    for shard in &self.shards {
      let sources = std::mem::take(&mut *shard.sources.lock());
      shard.count.store(0, Ordering::Relaxed);
      for (_, s) in sources.iter() {
        s.close();
      }
    }
    let clocks = self.threads.lock().take();
    let stopped = Self::signal_stop(clocks);
    self.retired.lock().extend(stopped);
    self.reap(Duration::from_secs(5));
  }
}

impl Drop for Engine {
  fn drop(&mut self) {
    self.shutdown();
  }
}

fn run_clock(shard: Arc<Shard>, running: Arc<AtomicBool>) {
  shard.poke.attach_current();
  let start = Instant::now();
  let mut done: u64 = 0;
  // An unpaced source stopped at its per-pass bound with audio left.
  let mut more = false;
  while running.load(Ordering::Acquire) {
    let now = Instant::now();
    let due = (now.duration_since(start).as_nanos() / TICK.as_nanos()) as u64;
    if due > done {
      let behind = due - done;
      let ticks = behind.min(MAX_CATCH_UP as u64) as u32;
      if behind > MAX_CATCH_UP as u64 {
        shard
          .lost_ticks
          .fetch_add(behind - MAX_CATCH_UP as u64, Ordering::Relaxed);
      }
      done = due;
      shard.poke.clear();
      let sources = shard.sources.lock().clone();
      more = false;
      for (_, s) in sources.iter() {
        more |= s.tick(now, ticks);
      }
    } else if more || shard.poke.take() {
      // Between ticks: only unpaced sources move, as fast as their sinks take audio, one
      // bounded pass each in turn.
      let sources = shard.sources.lock().clone();
      more = false;
      for (_, s) in sources
        .iter()
        .filter(|(_, s)| s.options().consumer == Consumer::Unpaced)
      {
        more |= s.tick(now, 0);
      }
    }
    if more {
      continue;
    }
    let next = start + TICK * (done as u32 + 1);
    let now = Instant::now();
    if next > now {
      std::thread::park_timeout(next - now);
    }
  }
}
