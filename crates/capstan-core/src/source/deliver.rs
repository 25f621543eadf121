//! The consumer side: engine ticks take chunks from the queue (input side, short lock),
//! then run them through the processors into the sink (output side, no input lock held);
//! pull readers take chunks directly; playout marks resolve as chunks are taken.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::{Input, Source, LOCK_BOUND};
use crate::encode::{self, Settings};
use crate::error::{CoreError, Result};
use crate::options::Consumer;
use crate::outcome::{CaptureResult, Status};
use crate::process::{Chain, ChainEvent};
use crate::queue::Overflow;
use crate::sink::{Discard, EncodeSink, EncodedOutput, Read, ReaderSink, Sink};

/// The most chunks one clock pass takes from a source (320 ms of audio). It bounds the
/// input lock hold (one copy per chunk) and how long one source's processing keeps the
/// clock from its other sources; an unpaced source with more queued gets another pass
/// right away (see [`Source::tick`]'s return value).
pub const MAX_CHUNKS_PER_PASS: usize = 32;

/// Realtime ticks a full sink may be owed (50 ms): what a consumer that paused briefly
/// (a GC, a slow callback) gets back when it has room again. Longer stalls lose the ticks
/// and show as lag, as a playout device would.
pub const MAX_OWED_TICKS: u32 = 5;

/// The output side, owned by the clock: processors and sink. Getters never wait on it;
/// control calls wait at most one chunk's processing (the clock yields it between chunks).
pub(super) struct Output {
  pub(super) chain: Option<Chain>,
  events: Vec<ChainEvent>,
  /// Sink failures not yet reported.
  sink_errors: Vec<String>,
  /// Chunks taken by the current pass, back to back, to be processed.
  batch: Vec<i16>,
  sink: Box<dyn Sink>,
  /// Realtime ticks this sink could not take for lack of room, owed to it (see
  /// [`MAX_OWED_TICKS`]); a new sink starts owed nothing.
  owed: u32,
  /// The sink's constant answers, asked once when it is installed.
  discards: bool,
  fills_gaps: bool,
  /// The input side's reset generation the processors last caught up with.
  reset_gen: u64,
  closed: bool,
}

impl Output {
  pub(super) fn new(chain: Option<Chain>, sink: Box<dyn Sink>) -> Self {
    Output {
      chain,
      events: Vec::new(),
      sink_errors: Vec::new(),
      batch: Vec::new(),
      discards: sink.discards(),
      fills_gaps: sink.fills_gaps(),
      owed: 0,
      sink,
      reset_gen: 0,
      closed: false,
    }
  }

  /// Closes the sink once, after its last push.
  pub(super) fn close(&mut self) {
    if !self.closed {
      self.closed = true;
      self.sink.close();
    }
  }

  fn replace_sink(&mut self, sink: Box<dyn Sink>) {
    self.owed = 0;
    self.discards = sink.discards();
    self.fills_gaps = sink.fills_gaps();
    let mut old = std::mem::replace(&mut self.sink, sink);
    old.close();
  }
}

/// What one pass took from the input side.
#[derive(Default, Debug, PartialEq)]
pub(super) struct Pass {
  /// Chunks taken (and counted delivered).
  pub(super) chunks: usize,
  /// Realtime underrun ticks the sink fills (with silence).
  pub(super) gaps: usize,
  /// Whether the pass stopped at its bound with audio left: an unpaced source wants
  /// another pass at once.
  pub(super) more: bool,
  /// Queue position (samples) of the pass's first chunk, and after its last.
  pub(super) start: u64,
  pub(super) end: u64,
  /// The queue is empty and no capture waits to enter it.
  pub(super) idle: bool,
  /// Realtime ticks the sink had no room for, owed to it on the next pass.
  pub(super) owed: u32,
  /// Realtime ticks that played nothing (underruns, pre-roll, before the first capture):
  /// the reference tap gets silence for each.
  pub(super) silent: usize,
}

impl Source {
  /// One engine pass: pace the consumer (`ticks` ≥ 1 when the clock catches up; unpaced
  /// and pull-with-processors sources take up to [`MAX_CHUNKS_PER_PASS`] whatever the
  /// ticks), expire deadlines, judge health, then process and deliver what was taken with
  /// the input side released. Returns whether an unpaced source has more to take now.
  pub fn tick(&self, now: Instant, ticks: u32) -> bool {
    if let Some(m) = self.mix.get() {
      self.mix_into(m, ticks);
    }
    // A pull source without processors has no output side: JavaScript reads the queue.
    if self.opts.consumer == Consumer::Pull && !self.has_chain {
      if let Ok(mut st) = self.input() {
        if !st.closed {
          self.judge(&mut st, now);
        }
      }
      return false;
    }
    // No processors and a discarding sink: the output side has nothing to do, the pass is
    // the input side alone (the common realtime case, kept as cheap as one lock).
    let tap = self.tap.get();
    if !self.has_chain
      && tap.is_none()
      && self.sink_discards.load(Ordering::Relaxed)
      && !self.sink_requested.load(Ordering::Relaxed)
    {
      let Ok(mut guard) = self.input() else {
        return false;
      };
      let st = &mut *guard;
      if st.closed {
        return false;
      }
      let pass = self.take(st, now, ticks, usize::MAX, false, None);
      if pass.chunks > 0 {
        self.resolve_playouts(st);
      }
      self.judge(st, now);
      return pass.more;
    }
    let Some(mut out) = self.output.try_lock_for(LOCK_BOUND) else {
      return false;
    };
    if self.sink_requested.load(Ordering::Relaxed) && self.sink_requested.swap(false, Ordering::Acquire) {
      if let Some(sink) = self.cold.sink_slot.lock().request.take() {
        out.replace_sink(sink);
        self.sink_discards.store(out.discards, Ordering::Relaxed);
      }
    }
    let (pass, reset) = {
      let Ok(mut guard) = self.input() else {
        return false;
      };
      let st = &mut *guard;
      if st.closed {
        drop(guard);
        out.close();
        return false;
      }
      let room = out.sink.room();
      // With no processors and a sink that throws audio away, nothing needs copying.
      let copy = out.chain.is_some() || !out.discards || tap.is_some();
      let fills = out.fills_gaps;
      out.batch.clear();
      let owed = std::mem::take(&mut out.owed);
      let pass = self.take(st, now, ticks + owed, room, fills, copy.then_some(&mut out.batch));
      out.owed = pass.owed;
      if pass.chunks > 0 {
        // Copied chunks are the sink's only once processed: their playout waits for that.
        if !out.batch.is_empty() {
          st.handing = Some(pass.start);
        } else {
          self.resolve_playouts(st);
        }
      }
      self.judge(st, now);
      let reset = out.reset_gen != st.reset_gen;
      out.reset_gen = st.reset_gen;
      // Reports a busy earlier pass could not hand over.
      self.note_chain_events(st, &mut out.events);
      self.note_sink_errors(st, &mut out.sink_errors);
      (pass, reset)
    };
    if reset {
      if let Some(c) = out.chain.as_mut() {
        c.reset();
      }
    }
    // Chunks a discarding sink would drop unprocessed were never copied: nothing to do.
    let handed = !out.batch.is_empty() && pass.chunks > 0;
    if !out.batch.is_empty() || pass.gaps > 0 || (tap.is_some() && pass.silent > 0) {
      self.deliver(&mut out, &pass);
    }
    if handed {
      match self.input() {
        Ok(mut st) => self.handed(&mut st),
        Err(_) => self.defer(|d| d.handed = true),
      }
    }
    out.sink.at(pass.end, pass.idle.then_some(now));
    let more = pass.more;
    drop(out);
    // `close()` found the output side busy (this pass): close the sink for it.
    if self.closing.load(Ordering::Acquire) {
      if let Some(mut out) = self.output.try_lock_for(LOCK_BOUND) {
        out.close();
      }
    }
    more
  }

  /// A mixer output's share of the pass: one mixed chunk per realtime tick, or for an
  /// unpaced output as many as a pass takes (while an input has audio and there is room).
  fn mix_into(&self, m: &crate::mix::Mix, ticks: u32) {
    let n = match self.opts.consumer {
      Consumer::Realtime => ticks.min(MAX_OWED_TICKS) as usize,
      _ => {
        let Ok(st) = self.input() else {
          return;
        };
        MAX_CHUNKS_PER_PASS.min(st.queue.free_chunks())
      }
    };
    for _ in 0..n {
      let Some(chunk) = m.mix_chunk() else {
        break;
      };
      let _ = self.try_capture(crate::source::FrameRef::i16(&chunk));
    }
  }

  /// Whether delivery may start: the pre-roll is queued, or audio has waited for as long as
  /// the pre-roll lasts (a short utterance), or `flush()` waived it.
  fn prime(st: &mut Input, now: Instant) -> bool {
    if st.queue.is_empty() {
      st.refill_since = None;
      return false;
    }
    let since = *st.refill_since.get_or_insert(now);
    let wait = Duration::from_millis(st.preroll as u64 * crate::format::CHUNK_MS as u64);
    if st.queue.free_chunks() == 0
      || st.queue.len_samples() >= st.preroll * st.queue.chunk_len()
      || now.saturating_duration_since(since) >= wait
    {
      st.primed = true;
    }
    st.primed
  }

  /// Expires deadlines and judges health, once per pass.
  fn judge(&self, st: &mut Input, now: Instant) {
    self.expire(st, now);
    // Audio held for the pre-roll is not a consumer falling behind.
    let holding = st.preroll > 0 && !st.primed;
    let backlog = !holding && (!st.queue.is_empty() || !st.waiters.is_empty());
    let q = self.queued_ms(st);
    let t = st.health.check(now, backlog, q);
    self.push_transition(st, t);
  }

  /// Takes this pass's chunks out of the queue (copied into `batch`, if given), counting
  /// them delivered, and counts realtime underruns: never more than `room` chunks (and
  /// gaps, if the sink `fills` them with silence).
  fn take(
    &self,
    st: &mut Input,
    now: Instant,
    ticks: u32,
    room: usize,
    fills: bool,
    batch: Option<&mut Vec<i16>>,
  ) -> Pass {
    let mut pass = Pass {
      start: st.queue.removed_total(),
      ..Pass::default()
    };
    match self.opts.consumer {
      Consumer::Realtime => {
        let mut batch = batch;
        for t in 0..ticks {
          if pass.chunks + pass.gaps >= room {
            pass.owed = (ticks - t).min(MAX_OWED_TICKS);
            break;
          }
          // Waiting for the pre-roll: this tick plays nothing, as if the queue were empty.
          let waiting = st.preroll > 0 && !st.primed && !Self::prime(st, now);
          if !waiting && self.pop_chunk(st, now, batch.as_deref_mut()) {
            pass.chunks += 1;
            continue;
          }
          if !waiting && st.preroll > 0 {
            // Ran dry: the next audio waits for the pre-roll again.
            st.primed = false;
            st.refill_since = None;
          }
          pass.silent += 1;
          if self.underrun(st) && fills {
            pass.gaps += 1;
          }
        }
      }
      Consumer::Unpaced | Consumer::Pull => {
        let max = MAX_CHUNKS_PER_PASS.min(room);
        let mut batch = batch;
        while pass.chunks < max && self.pop_chunk(st, now, batch.as_deref_mut()) {
          pass.chunks += 1;
        }
        pass.more = pass.chunks == MAX_CHUNKS_PER_PASS && !st.queue.is_empty();
      }
    }
    pass.end = st.queue.removed_total();
    pass.idle = st.queue.is_empty() && st.waiters.is_empty();
    if pass.chunks > 0 {
      let q = self.queued_ms(st);
      let t = st.health.progress(now, q);
      self.push_transition(st, t);
    }
    pass
  }

  /// Takes one chunk for the consumer (appended to `into`, if given), counts it delivered
  /// and lets waiting captures into the room it frees.
  fn pop_chunk(&self, st: &mut Input, now: Instant, into: Option<&mut Vec<i16>>) -> bool {
    let popped = match into {
      Some(b) => st.queue.pop_with(|c| b.extend_from_slice(c)),
      None => st.queue.pop_with(|_| {}),
    };
    if popped {
      st.counters.delivered += st.chunker.chunk_len() as u64;
      st.delivered_since_underrun = true;
      self.service_waiters(st, now);
    }
    popped
  }

  /// Runs the pass's chunks through the processors into the sink, holding only the output
  /// side, which it yields to a waiting control call between chunks.
  fn deliver(&self, out: &mut MutexGuard<'_, Output>, pass: &Pass) {
    let len = self.opts.format.chunk_len();
    let copied = !out.batch.is_empty();
    let tap = self.tap.get();
    debug_assert!(copied || pass.chunks == 0 || out.discards);
    for i in 0..pass.chunks {
      // Closing: the rest of the batch (counted delivered when taken) goes nowhere, so a
      // slow chain does not hold up `close()` or the engine's shutdown.
      if self.closing.load(Ordering::Relaxed) {
        break;
      }
      if copied {
        let o = &mut **out;
        let chunk = &o.batch[i * len..(i + 1) * len];
        o.sink.at(pass.start + (i * len) as u64, None);
        let audio = match o.chain.as_mut() {
          // A chunk the chain refused (exact chunks never are) passes unprocessed.
          Some(c) => c.process(chunk, &mut o.events).unwrap_or(chunk),
          None => chunk,
        };
        if let Some(t) = tap {
          t.push(audio);
        }
        if let Err(e) = o.sink.push(audio) {
          o.sink_errors.push(e);
        }
      }
      if self.stats_wanted.load(Ordering::Relaxed) && self.stats_wanted.swap(false, Ordering::Relaxed) {
        self.publish(out);
      }
      MutexGuard::bump(out);
    }
    if let Some(t) = tap {
      t.push_silence(pass.silent);
    }
    for _ in 0..pass.gaps {
      if let Err(e) = out.sink.underrun() {
        out.sink_errors.push(e);
      }
    }
    if !out.events.is_empty() || !out.sink_errors.is_empty() {
      // Busy past the bound: the next pass reports them.
      if let Ok(mut st) = self.input() {
        self.note_chain_events(&mut st, &mut out.events);
        self.note_sink_errors(&mut st, &mut out.sink_errors);
      }
    }
  }

  /// Counts an underrun tick (from the first capture on); true if counted.
  fn underrun(&self, st: &mut Input) -> bool {
    if !st.started {
      return false;
    }
    st.counters.underruns += 1;
    if st.pending.underrun_report {
      // A report is waiting for the next drain: this tick joins it.
      st.pending.underrun_ticks += 1;
      return true;
    }
    st.underrun_unreported += 1;
    if st.delivered_since_underrun {
      st.delivered_since_underrun = false;
      st.pending.underrun_ticks += st.underrun_unreported;
      st.underrun_unreported = 0;
      st.pending.underrun_report = true;
      self.touch(st);
    }
    true
  }

  /// The pass's chunks are in the sink (or were given up for `close()`).
  pub(super) fn handed(&self, st: &mut Input) {
    st.handing = None;
    self.resolve_playouts(st);
  }

  /// Where playout stands: what has left the queue, less what a pass is still processing.
  fn played(st: &Input) -> u64 {
    st.handing.unwrap_or_else(|| st.queue.removed_total())
  }

  pub(super) fn resolve_playouts(&self, st: &mut Input) {
    let removed = Self::played(st);
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

  /// `waitForPlayout()`: None when everything queued so far is already out; else an id
  /// the bus reports once the consumer (or a clear) has taken it.
  pub fn wait_playout(&self) -> Option<u64> {
    let Ok(mut st) = self.input() else {
      let id = self.next_call.fetch_add(1, Ordering::Relaxed);
      self.defer(|d| d.playouts.push(id));
      return Some(id);
    };
    if st.closed || Self::played(&st) >= st.queue.pushed_total() {
      return None;
    }
    let id = self.next_call.fetch_add(1, Ordering::Relaxed);
    self.mark_playout(&mut st, id);
    Some(id)
  }

  /// Reports `id` once everything queued now is taken (at once if it already is).
  pub(super) fn mark_playout(&self, st: &mut Input, id: u64) {
    if st.closed || Self::played(st) >= st.queue.pushed_total() {
      st.pending.playouts.push(id);
      self.touch(st);
    } else {
      let mark = st.queue.pushed_total();
      st.playouts.push_back((id, mark));
    }
  }

  /// Forgets a playout wait (its AbortSignal fired).
  pub fn cancel_playout(&self, id: u64) {
    match self.input() {
      Ok(mut st) => st.playouts.retain(|(i, _)| *i != id),
      Err(_) => self.defer(|d| d.cancel_playouts.push(id)),
    }
  }

  /// Starts or stops buffering delivered chunks for a `frames()` reader on a paced source.
  /// The clock switches sinks before its next pass; chunks it is processing now go where
  /// they were headed.
  pub fn set_reader(&self, on: bool) {
    if self.opts.consumer == Consumer::Pull {
      return;
    }
    let mut slot = self.cold.sink_slot.lock();
    if on {
      let buffer = Self::reader_buffer(&self.me, self.out_format, self.opts.reader_chunks);
      let fill = self.opts.fill_silence && self.opts.consumer == Consumer::Realtime;
      // Checked under the slot lock, which `close` takes after setting `closing`.
      if self.closing.load(Ordering::Acquire) {
        buffer.close();
      }
      slot.reader = Some(buffer.clone());
      slot.request = Some(Box::new(ReaderSink::new(self.out_format, buffer, fill)));
    } else {
      slot.reader = None;
      slot.request = Some(Box::new(Discard::new(self.out_format)));
    }
    self.sink_requested.store(true, Ordering::Release);
  }

  /// The pre-roll from now on (a `frames()` reader's own): `None` goes back to the
  /// source's `prerollMs`. Checked like the option.
  pub fn set_preroll(&self, ms: Option<u32>) -> Result<()> {
    let ms = ms.unwrap_or(self.opts.preroll_ms);
    crate::options::check_preroll(ms, self.opts.consumer)?;
    let Ok(mut st) = self.input() else {
      return Err(CoreError::Busy("setting the pre-roll: the source lock is busy".into()));
    };
    st.preroll = (ms / crate::format::CHUNK_MS) as usize;
    Ok(())
  }

  /// Delivers to `sink` from the clock's next pass on (the current one is closed then):
  /// a wedged sink is replaced without recreating the source. It must take the source's
  /// output format; a `frames()` reader, if any, stops receiving.
  pub fn set_sink(&self, sink: Box<dyn Sink>) -> Result<()> {
    if self.opts.consumer == Consumer::Pull {
      return Err(CoreError::InvalidOption("a pull source's sink is its reader".into()));
    }
    if sink.format() != self.out_format {
      return Err(CoreError::FormatMismatch(format!(
        "sink takes {} Hz / {} ch, the source delivers {} Hz / {} ch",
        sink.format().sample_rate,
        sink.format().channels,
        self.out_format.sample_rate,
        self.out_format.channels
      )));
    }
    let mut slot = self.cold.sink_slot.lock();
    slot.reader = None;
    slot.request = Some(sink);
    self.sink_requested.store(true, Ordering::Release);
    Ok(())
  }

  /// Encodes the source's delivered audio from the clock's next pass on (see
  /// [`EncodeSink`]): the encoder is built for the output format now, so bad settings are
  /// an error here, never on an engine thread. Replaces any earlier sink (an earlier
  /// encoder's stream ends).
  pub fn encode(
    &self,
    settings: &Settings,
    capacity: usize,
    policy: Overflow,
    fill_gaps: bool,
  ) -> Result<Arc<EncodedOutput>> {
    if policy == Overflow::Reject {
      return Err(CoreError::InvalidOption(
        "an encoded stream's overflow must be wait, drop-oldest or drop-newest (bytes already encoded cannot be refused)".into(),
      ));
    }
    if capacity == 0 {
      return Err(CoreError::InvalidOption("queueBytes must be at least 1".into()));
    }
    let encoder = encode::build(settings, self.out_format)?;
    let me = self.me.clone();
    let out = EncodedOutput::new(
      capacity,
      policy,
      Box::new(move || {
        if let Some(s) = me.upgrade() {
          s.note_encoded();
        }
      }),
    );
    let fill = fill_gaps && self.opts.consumer == Consumer::Realtime;
    let sink = EncodeSink::new(self.out_format, encoder, out.clone(), fill).with_input(self.opts.format);
    self.set_sink(Box::new(sink))?;
    if self.closing.load(Ordering::Acquire) {
      // Closed already: the clock will never install it, so end the stream now.
      if let Some(mut sink) = self.cold.sink_slot.lock().request.take() {
        sink.close();
      }
    }
    Ok(out)
  }

  /// Ends `out`'s current segment after everything captured before this call: flushes the
  /// carried remainder (padded with silence, like `flush()`) and marks its end. The clock
  /// cuts there; `EncodedOutput::take_finished` reports it.
  pub fn cut_segment(&self, out: &EncodedOutput, last: bool, deadline_ms: Option<u32>) -> Result<CaptureResult> {
    let mut marked = false;
    let (r, mark) = self.flush_marked(deadline_ms, |mark, pad| {
      out.cut_padded(mark, pad, last);
      marked = true;
    })?;
    match &r {
      // The input was busy: cut at once, like any refused flush.
      _ if !marked => out.cut(mark, last),
      CaptureResult::Settled(o) if o.status != Status::Accepted => out.unpad(mark),
      _ => {}
    }
    self.poke_clock();
    Ok(r)
  }

  /// One chunk for a `frames()` reader; `Empty` arms a `Readable` event.
  pub fn read(&self) -> Read {
    // A pull source without processors is read from its queue; others through a buffer.
    let pull = self.opts.consumer == Consumer::Pull && !self.has_chain;
    if !pull {
      let reader = self.cold.sink_slot.lock().reader.clone();
      if let Some(r) = reader {
        return r.pop();
      }
    }
    let Ok(mut guard) = self.input() else {
      if pull {
        self.defer(|d| d.pull_reader = true);
      }
      return Read::Empty;
    };
    let st = &mut *guard;
    if pull {
      let mut out = Vec::with_capacity(st.chunker.chunk_len());
      let now = Instant::now();
      if self.pop_chunk(st, now, Some(&mut out)) {
        if let Some(t) = self.tap.get() {
          t.push(&out);
        }
        let q = self.queued_ms(st);
        let t = st.health.progress(now, q);
        self.push_transition(st, t);
        self.resolve_playouts(st);
        return Read::Chunk(out);
      }
    }
    if st.closed {
      Read::Closed
    } else {
      st.reader_wanted = true;
      Read::Empty
    }
  }
}

#[cfg(test)]
mod tests {
  use std::time::Instant;

  use super::MAX_CHUNKS_PER_PASS;
  use crate::events::Bus;
  use crate::options::{Consumer, SourceOptions};
  use crate::queue::Overflow;
  use crate::source::{FrameRef, Read, Source};

  fn source(consumer: Consumer, queue_ms: u32) -> std::sync::Arc<Source> {
    let mut o = SourceOptions::new(8_000, 1).unwrap();
    o.overflow = Overflow::Reject;
    o.consumer = consumer;
    o.queue_ms = queue_ms;
    o.reader_chunks = 3;
    Source::new(1, o, Bus::new()).unwrap()
  }

  #[test]
  fn an_unpaced_pass_takes_at_most_its_bound_and_asks_for_more() {
    let s = source(Consumer::Unpaced, 1_000);
    s.try_capture(FrameRef::i16(&vec![1; 80 * (MAX_CHUNKS_PER_PASS + 1)]))
      .unwrap();
    assert!(s.tick(Instant::now(), 1), "one chunk is left");
    assert_eq!(s.metrics().delivered, 80 * MAX_CHUNKS_PER_PASS as u64);
    assert!(!s.tick(Instant::now(), 0));
    assert_eq!(s.metrics().queued, 0);
  }

  #[test]
  fn the_clock_takes_no_more_than_the_reader_has_room_for() {
    let s = source(Consumer::Unpaced, 1_000);
    s.set_reader(true);
    s.try_capture(FrameRef::i16(&[1; 80 * 5])).unwrap();
    assert!(
      !s.tick(Instant::now(), 1),
      "the reader is full: no point in another pass"
    );
    let m = s.metrics();
    assert_eq!((m.delivered, m.queued), (240, 160));
    for _ in 0..3 {
      assert_eq!(s.read(), Read::Chunk(vec![1; 80]));
    }
    assert_eq!(s.read(), Read::Empty);
  }

  /// An input's end closes the source once its playout is reached: that must not be
  /// before the sink has the last chunks, or a reader would end without them.
  #[test]
  fn playout_waits_for_the_chunks_a_pass_is_processing() {
    let mut o = SourceOptions::new(8_000, 1).unwrap();
    o.consumer = Consumer::Pull;
    o.queue_ms = 1_000;
    o.reader_chunks = 8;
    o.processors = vec![crate::process::Spec::Sleep { ms: 25 }];
    let bus = Bus::new();
    let s = Source::new(1, o, bus.clone()).unwrap();
    for v in 1..=4 {
      s.try_capture(FrameRef::i16(&[v; 80])).unwrap();
    }
    let id = s.wait_playout().expect("audio is queued");
    let pass = {
      let s = s.clone();
      std::thread::spawn(move || s.tick(Instant::now(), 1))
    };
    let t0 = Instant::now();
    let deadline = std::time::Duration::from_secs(5);
    // The pass took all four and processes them, 100 ms in all.
    while s.metrics().queued > 0 {
      assert!(t0.elapsed() < deadline);
      std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(s.wait_playout().is_some(), "taken, not yet the sink's: not played out");
    let mut reported = false;
    while !reported {
      assert!(t0.elapsed() < deadline, "the playout was never reported");
      reported = bus.drain().iter().any(|d| d.playouts.contains(&id));
      std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Reported: the reader has all four; closing now (the input's end) loses none.
    assert!(s.close());
    let got: Vec<_> = std::iter::from_fn(|| match s.read() {
      Read::Chunk(c) => Some(c[0]),
      _ => None,
    })
    .collect();
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(s.read(), Read::Closed);
    pass.join().unwrap();
  }

  #[test]
  fn realtime_underruns_reach_a_filling_reader_as_silence() {
    let s = source(Consumer::Realtime, 100);
    s.set_reader(true);
    s.try_capture(FrameRef::i16(&[5; 80])).unwrap();
    s.tick(Instant::now(), 3);
    let m = s.metrics();
    assert_eq!((m.delivered, m.underruns), (80, 2));
    assert_eq!(s.read(), Read::Chunk(vec![5; 80]));
    assert_eq!(s.read(), Read::Chunk(vec![0; 80]));
    assert_eq!(s.read(), Read::Chunk(vec![0; 80]));
    // Full reader: ticks make no progress and count nothing.
    s.tick(Instant::now(), 5);
    s.tick(Instant::now(), 5);
    assert_eq!(
      s.metrics().underruns,
      5,
      "3 gaps filled the reader, then it stopped the clock"
    );
  }
}
