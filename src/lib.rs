//! The napi-rs binding: owned types at the boundary, panics caught, no logic of its own.
//! Everything it exposes is a thin call into `capstan_core`.

#![deny(clippy::all)]

mod convert;
mod encode;
mod engine;
mod group;
mod ledger;
mod livekit;
mod mix;
mod record;
mod source;

pub use encode::NativeEncoded;
pub use engine::NativeEngine;
pub use group::NativeGroup;
pub use ledger::NativeLedger;
pub use livekit::{NativeByteStreamWriter, NativeIncomingStream, NativeLocalTrack, NativeRemoteTrack, NativeRoom};
pub use source::NativeSource;

/// The contract TypeScript reads at load instead of restating it: outcome record layout,
/// statuses, the pending code, error codes and option defaults, all from the core.
#[napi_derive::napi(catch_unwind)]
pub fn contract() -> convert::JsContract {
  convert::JsContract::new()
}

/// Panics on purpose, so tests can prove a Rust panic surfaces as `ERR_NATIVE_PANIC`
/// instead of taking the process down.
#[napi_derive::napi(catch_unwind)]
pub fn debug_panic(message: String) -> napi::Result<()> {
  panic!("{message}");
}
