//! capstan's engine: any frame length in, exact 10 ms chunks out through bounded queues,
//! paced by an engine clock, with every capture settled and every sample accounted for.
//!
//! Stages in the order audio flows: [`format`] → [`chunker`] → [`queue`] → [`source`]
//! (capture, waiters, consumer) → [`clock`] (engine threads), with [`health`] judging
//! consumer progress and [`events`] carrying coalesced signals back to the caller.
//! [`group`] feeds many sources from one call.

pub mod chunker;
pub mod clock;
pub mod encode;
pub mod error;
pub mod events;
pub mod format;
pub mod group;
pub mod health;
pub mod mix;
pub mod options;
pub mod outcome;
pub mod process;
pub mod queue;
pub mod sink;
pub mod source;
pub mod wake;

pub use clock::Engine;
pub use error::{CoreError, Result};
pub use events::{Completion, Drained, Event, Notifier};
pub use format::{declared, Format};
pub use group::{Group, RoundOutcome, RoundResult};
pub use health::epoch_ms;
pub use health::{HealthState, Transition};
pub use mix::{DuckOptions, Mix, MixRole, MixStats};
pub use options::{deadline_ms, whole, Consumer, RawOptions, RawProcessor, SourceOptions};
pub use outcome::{CaptureResult, Outcome, Status};
pub use queue::Overflow;
pub use sink::Sink;
pub use source::{FrameRef, Metrics, Read, Samples, Source};
