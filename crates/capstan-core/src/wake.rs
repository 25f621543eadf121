//! Wakes a clock thread between ticks. Its own module so the clock and the sources it
//! serves both use it without either importing the other.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// For unpaced sources whose producer is waiting: they should drain as fast as the CPU
/// allows, not once per tick.
#[derive(Default)]
pub struct Poke {
  thread: Mutex<Option<std::thread::Thread>>,
  flag: AtomicBool,
}

impl Poke {
  /// Asks the clock for a pass before its next tick; unparks it once until it looks.
  pub fn poke(&self) {
    if !self.flag.swap(true, Ordering::AcqRel) {
      if let Some(t) = self.thread.lock().as_ref() {
        t.unpark();
      }
    }
  }

  /// Called by the clock thread once, so `poke` knows whom to wake.
  pub(crate) fn attach_current(&self) {
    *self.thread.lock() = Some(std::thread::current());
  }

  /// Whether a poke arrived since the last look (and forgets it).
  pub(crate) fn take(&self) -> bool {
    self.flag.swap(false, Ordering::AcqRel)
  }

  /// Forgets pokes made before a full tick, which serves every source anyway.
  pub(crate) fn clear(&self) {
    self.flag.store(false, Ordering::Release);
  }
}
