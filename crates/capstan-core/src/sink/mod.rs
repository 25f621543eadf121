//! Where audio goes once the consumer has taken it: the last stage of the output side.
//!
//! The engine clock owns the sink and is the only thread that pushes into it, after the
//! processors, holding no lock a producer or getter waits on. A sink never blocks: it
//! says how much room it has and the clock takes no more than that from the queue (a full
//! sink is a consumer that makes no progress, which health reports). One file per sink:
//! [`discard`] (audio leaves the engine), [`reader`] (a `frames()` reader's buffer) and
//! [`encode`] (an encoder and its bounded byte output).

pub mod discard;
pub mod encode;
pub mod reader;

pub use discard::Discard;
pub use encode::{EncodeSink, EncodedMetrics, EncodedOutput, SegmentInfo};
pub use reader::{Read, ReaderBuffer, ReaderSink};

use std::time::Instant;

use crate::format::Format;

pub trait Sink: Send {
  /// The format it takes: the processors' output format, else the source's.
  fn format(&self) -> Format;

  /// Whole 10 ms chunks it can take right now. Only the clock pushes, so room can only
  /// grow between this call and the pushes that follow.
  fn room(&self) -> usize;

  /// One exact 10 ms chunk of [`format`](Sink::format). The chunk already counts as
  /// delivered; an `Err` loses it and is reported as a `'sink-error'` event.
  fn push(&mut self, chunk: &[i16]) -> Result<(), String>;

  /// A realtime tick found the queue empty. A sink that [fills gaps](Sink::fills_gaps)
  /// plays silence for it (using one chunk of room); others ignore it.
  fn underrun(&mut self) -> Result<(), String> {
    Ok(())
  }

  /// Whether [`underrun`](Sink::underrun) uses a chunk of room, so the clock can plan.
  fn fills_gaps(&self) -> bool {
    false
  }

  /// Whether pushed audio is thrown away unread: with no processors either, the clock
  /// need not even copy chunks out of the queue.
  fn discards(&self) -> bool {
    false
  }

  /// The queue position (in samples) of the next chunk to be pushed, told before each
  /// chunk and once at the end of every pass; `idle` when the queue was empty and nothing
  /// waited to enter it, with the instant the pass started: what was registered after it
  /// may have come with audio the pass did not see. Everything before `position` has left
  /// the queue (delivered, dropped or cleared). Sinks that cut segments at positions use it.
  fn at(&mut self, _position: u64, _idle: Option<Instant>) {}

  /// Called once, after the last push, when the source closes or the sink is replaced.
  fn close(&mut self) {}
}
