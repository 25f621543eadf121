//! Per-source health: judged from consumer progress, never from the producer's pace.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthState {
  #[default]
  Healthy,
  Lagging,
  Stalled,
  Recovered,
}

impl HealthState {
  pub const ALL: [HealthState; 4] = [
    HealthState::Healthy,
    HealthState::Lagging,
    HealthState::Stalled,
    HealthState::Recovered,
  ];

  pub fn as_str(&self) -> &'static str {
    match self {
      HealthState::Healthy => "healthy",
      HealthState::Lagging => "lagging",
      HealthState::Stalled => "stalled",
      HealthState::Recovered => "recovered",
    }
  }
}

/// One state change, as reported in a `'health'` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
  pub state: HealthState,
  pub previous: HealthState,
  /// Milliseconds since the consumer last made progress, measured at the transition
  /// (for `recovered`: how long the stall lasted).
  pub since_ms: f64,
  /// Queue depth at the transition.
  pub queued_ms: f64,
  /// Wall-clock time of the transition, ms since the Unix epoch.
  pub at: f64,
}

/// Wall-clock milliseconds since the Unix epoch, as JavaScript's `Date.now()` counts.
pub fn epoch_ms() -> f64 {
  std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map(|d| d.as_secs_f64() * 1000.0)
    .unwrap_or(0.0)
}

/// How long a source may go without progress, while it has audio waiting, before it is
/// `lagging` and then `stalled`; how long `recovered` lasts before `healthy`.
#[derive(Debug, Clone, Copy)]
pub struct HealthTimes {
  pub lag_after: Duration,
  pub stall_after: Duration,
  pub settle_after: Duration,
}

impl HealthTimes {
  pub fn from_stall_ms(stall_after_ms: u32) -> Self {
    let stall_after = Duration::from_millis(stall_after_ms as u64);
    HealthTimes {
      lag_after: Duration::from_millis((stall_after_ms as u64 / 2).clamp(10, 50)),
      stall_after,
      settle_after: Duration::from_millis(100),
    }
  }
}

/// The state machine `healthy → lagging → stalled → recovered → healthy`.
#[derive(Debug)]
pub struct Health {
  state: HealthState,
  times: HealthTimes,
  last_progress: Instant,
  entered: Instant,
  pub stalls: u64,
}

impl Health {
  pub fn new(times: HealthTimes, now: Instant) -> Self {
    Health {
      state: HealthState::Healthy,
      times,
      last_progress: now,
      entered: now,
      stalls: 0,
    }
  }

  pub fn state(&self) -> HealthState {
    self.state
  }

  fn go(&mut self, to: HealthState, since: Duration, now: Instant, queued_ms: f64) -> Transition {
    let t = Transition {
      state: to,
      previous: self.state,
      since_ms: since.as_secs_f64() * 1000.0,
      queued_ms,
      at: epoch_ms(),
    };
    self.state = to;
    self.entered = now;
    t
  }

  /// The consumer took audio. Ends a stall (`recovered`) or a lag (`healthy`).
  pub fn progress(&mut self, now: Instant, queued_ms: f64) -> Option<Transition> {
    let gap = now.saturating_duration_since(self.last_progress);
    self.last_progress = now;
    match self.state {
      HealthState::Stalled => Some(self.go(HealthState::Recovered, gap, now, queued_ms)),
      HealthState::Lagging => Some(self.go(HealthState::Healthy, gap, now, queued_ms)),
      _ => None,
    }
  }

  /// Called on every engine tick. `backlog` is whether audio is waiting for the consumer;
  /// with nothing waiting, an idle consumer is caught up, not stalled.
  pub fn check(&mut self, now: Instant, backlog: bool, queued_ms: f64) -> Option<Transition> {
    if !backlog {
      self.last_progress = now;
    }
    let idle = now.saturating_duration_since(self.last_progress);
    if !backlog {
      // Nothing waits for the consumer any more (cleared, or the producer stopped): it
      // cannot be behind.
      return match self.state {
        HealthState::Lagging => Some(self.go(HealthState::Healthy, idle, now, queued_ms)),
        HealthState::Stalled => Some(self.go(HealthState::Recovered, idle, now, queued_ms)),
        HealthState::Recovered if now.saturating_duration_since(self.entered) >= self.times.settle_after => {
          Some(self.go(HealthState::Healthy, idle, now, queued_ms))
        }
        _ => None,
      };
    }
    match self.state {
      HealthState::Healthy if idle >= self.times.stall_after => {
        self.stalls += 1;
        Some(self.go(HealthState::Stalled, idle, now, queued_ms))
      }
      HealthState::Healthy | HealthState::Recovered if idle >= self.times.lag_after => {
        Some(self.go(HealthState::Lagging, idle, now, queued_ms))
      }
      HealthState::Lagging if idle >= self.times.stall_after => {
        self.stalls += 1;
        Some(self.go(HealthState::Stalled, idle, now, queued_ms))
      }
      HealthState::Recovered if now.saturating_duration_since(self.entered) >= self.times.settle_after => {
        Some(self.go(HealthState::Healthy, idle, now, queued_ms))
      }
      _ => None,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn stall_and_recover() {
    let t0 = Instant::now();
    let mut h = Health::new(HealthTimes::from_stall_ms(250), t0);
    assert!(h.check(t0 + Duration::from_millis(20), true, 0.0).is_none());
    let lag = h.check(t0 + Duration::from_millis(60), true, 0.0).unwrap();
    assert_eq!((lag.previous, lag.state), (HealthState::Healthy, HealthState::Lagging));
    let st = h.check(t0 + Duration::from_millis(260), true, 0.0).unwrap();
    assert_eq!(st.state, HealthState::Stalled);
    assert!(st.since_ms >= 250.0);
    assert!(h.check(t0 + Duration::from_millis(900), true, 0.0).is_none());
    let rec = h.progress(t0 + Duration::from_millis(1000), 0.0).unwrap();
    assert_eq!(rec.state, HealthState::Recovered);
    assert!((rec.since_ms - 1000.0).abs() < 1.0);
    assert!(h.check(t0 + Duration::from_millis(1050), false, 0.0).is_none());
    let ok = h.check(t0 + Duration::from_millis(1110), false, 0.0).unwrap();
    assert_eq!((ok.previous, ok.state), (HealthState::Recovered, HealthState::Healthy));
    assert_eq!(h.stalls, 1);
  }

  #[test]
  fn a_stall_ends_when_nothing_is_left_to_consume() {
    let t0 = Instant::now();
    let mut h = Health::new(HealthTimes::from_stall_ms(100), t0);
    h.check(t0 + Duration::from_millis(60), true, 10.0);
    assert_eq!(
      h.check(t0 + Duration::from_millis(120), true, 10.0).unwrap().state,
      HealthState::Stalled
    );
    // The queue was cleared: the consumer owes nothing.
    let r = h.check(t0 + Duration::from_millis(130), false, 0.0).unwrap();
    assert_eq!((r.previous, r.state), (HealthState::Stalled, HealthState::Recovered));
    assert!(h.check(t0 + Duration::from_millis(200), false, 0.0).is_none());
    let ok = h.check(t0 + Duration::from_millis(240), false, 0.0).unwrap();
    assert_eq!(ok.state, HealthState::Healthy);
  }

  #[test]
  fn idle_consumer_with_empty_queue_is_healthy() {
    let t0 = Instant::now();
    let mut h = Health::new(HealthTimes::from_stall_ms(100), t0);
    assert!(h.check(t0 + Duration::from_secs(10), false, 0.0).is_none());
    assert_eq!(h.state(), HealthState::Healthy);
  }
}
