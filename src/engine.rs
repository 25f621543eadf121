//! One engine per JS environment: clock threads plus the bus that wakes JavaScript
//! through a weak threadsafe function, once per batch.

use std::sync::Arc;

use capstan_core::Engine;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use parking_lot::Mutex;

use crate::convert::JsBatch;

type Wake = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

#[napi]
pub struct NativeEngine {
  pub(crate) inner: Arc<Engine>,
  wake: Arc<Mutex<Wake>>,
}

#[napi]
impl NativeEngine {
  /// `onWake` is called (on the JS thread, coalesced) when `drain()` has something.
  /// The threadsafe function is weak, so it never keeps the process alive, and an env
  /// cleanup hook joins the clock threads before the environment goes away.
  #[napi(constructor)]
  pub fn new(env: Env, threads: Option<u32>, on_wake: Function<(), Unknown<'static>>) -> Result<Self> {
    let n = threads.map(|t| t as usize).unwrap_or_else(Engine::default_threads);
    let inner = Engine::new(n);
    let wake: Wake = on_wake
      .build_threadsafe_function()
      .weak::<true>()
      .callee_handled::<false>()
      .build()?;
    let wake = Arc::new(Mutex::new(wake));
    let notify = wake.clone();
    inner.set_notifier(Some(Arc::new(move || {
      notify.lock().call((), ThreadsafeFunctionCallMode::NonBlocking);
    })));
    env.add_env_cleanup_hook(inner.clone(), |engine| engine.shutdown())?;
    Ok(NativeEngine { inner, wake })
  }

  /// What sources have pending (at most `maxSources` of them): events, settled captures,
  /// reached playout marks.
  #[napi(catch_unwind)]
  pub fn drain(&self, max_sources: Option<u32>) -> JsBatch {
    let (drained, more) = self.inner.drain_up_to(max_sources.map_or(usize::MAX, |m| m as usize));
    JsBatch::pack(drained, more)
  }

  /// While JavaScript awaits something only the engine can settle (a waiting capture, a
  /// playout, a reader), the wake-up holds the event loop open like any pending I/O.
  #[napi]
  #[allow(deprecated)]
  pub fn keep_alive(&self, env: Env, on: bool) -> Result<()> {
    let mut w = self.wake.lock();
    if on {
      w.refer(&env)
    } else {
      w.unref(&env)
    }
  }

  /// Closes every source and joins the clock threads. Idempotent.
  #[napi(catch_unwind)]
  pub fn shutdown(&self) {
    self.inner.shutdown();
  }

  #[napi(getter)]
  pub fn running(&self) -> bool {
    self.inner.is_running()
  }

  #[napi(getter)]
  pub fn source_count(&self) -> u32 {
    self.inner.source_count() as u32
  }

  /// Ticks the clocks could not catch up on (host overload).
  #[napi(getter)]
  pub fn lost_ticks(&self) -> f64 {
    self.inner.lost_ticks() as f64
  }
}
