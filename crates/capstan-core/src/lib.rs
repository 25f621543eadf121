//! capstan's engine: any frame length in, exact 10 ms chunks out through bounded queues,
//! paced by an engine clock, with every capture settled and every sample accounted for.
//!
//! Stages in the order audio flows: [`format`] → [`chunker`] → [`queue`] → [`source`]
//! (capture, waiters, consumer) → [`clock`] (engine threads), with [`health`] judging
//! consumer progress and [`events`] carrying coalesced signals back to the caller.

pub mod chunker;
pub mod clock;
pub mod error;
pub mod events;
pub mod format;
pub mod health;
pub mod process;
pub mod queue;
pub mod source;

pub use clock::Engine;
pub use error::{CoreError, Result};
pub use events::{Completion, Drained, Event, Notifier};
pub use format::{declared, Format};
pub use health::{HealthState, Transition};
pub use queue::Overflow;
pub use source::{
  whole, CaptureResult, Consumer, FrameRef, Metrics, Outcome, RawOptions, RawProcessor, Read, Samples, Source,
  SourceOptions, Status,
};

/// Wall-clock milliseconds since the Unix epoch, as JavaScript's `Date.now()` counts.
pub fn epoch_ms() -> f64 {
  std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map(|d| d.as_secs_f64() * 1000.0)
    .unwrap_or(0.0)
}
