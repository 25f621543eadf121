//! Frame processors: native DSP that runs on engine threads, one exact 10 ms chunk at a
//! time, inside a [`Chain`] that survives a processor that fails or panics.
//!
//! Every processor is built for its input [`Format`](crate::format::Format) and turns one 10 ms chunk of it into
//! one 10 ms chunk of its output format; only [`Resample`] changes the format (the rate).
//! Stages, one file each: [`gain`], [`high_pass`], [`resample`], [`denoise`], [`vad`],
//! [`echo_cancel`] (AEC3 against a source's [`reference`] tap), [`auto_gain`], and
//! the [`chain`] that runs them, and the [`ledger`] that times them and counts their
//! failures (also for processors that run outside the engine). The [`processor`] contract,
//! the [`spec`]s callers write and the [`stats`] both chain and ledger report sit apart.

pub mod auto_gain;
pub mod chain;
pub mod denoise;
pub mod echo_cancel;
#[doc(hidden)]
pub mod fault;
pub mod gain;
pub mod high_pass;
pub mod kalman_echo;
pub mod ledger;
pub mod processor;
pub mod reference;
pub mod resample;
#[doc(hidden)]
pub mod sleep;
pub mod spec;
pub mod stats;
pub mod vad;

pub use auto_gain::{AutoGain, AutoGainOptions};
pub use chain::Chain;
pub use denoise::Denoise;
pub use echo_cancel::{DoubleTalk, EchoCancel, EchoCancelOptions, EchoNoiseSuppression};
pub use gain::Gain;
pub use high_pass::HighPass;
pub use ledger::{Ledger, Ledgers};
pub use processor::{Processor, Signal};
pub use reference::{ReferenceTap, TapCursor};
pub use resample::Resample;
pub use spec::Spec;
pub(crate) use stats::check_bypass_after;
pub use stats::{ChainEvent, ProcessorStats, DEFAULT_BYPASS_AFTER, MAX_BYPASS_AFTER};
pub use vad::{Vad, VadOptions};
