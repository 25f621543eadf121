//! How a capture settled, and the flat record the binding writes it into: plain numbers
//! cross the JS boundary far cheaper than an object with named properties, so the layout
//! is defined here once and both sides read it from here.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
  Accepted,
  Partial,
  Dropped,
  Timeout,
  Aborted,
  Cleared,
  Closed,
}

impl Status {
  pub const ALL: [Status; 7] = [
    Status::Accepted,
    Status::Partial,
    Status::Dropped,
    Status::Timeout,
    Status::Aborted,
    Status::Cleared,
    Status::Closed,
  ];

  pub fn as_str(&self) -> &'static str {
    match self {
      Status::Accepted => "accepted",
      Status::Partial => "partial",
      Status::Dropped => "dropped",
      Status::Timeout => "timeout",
      Status::Aborted => "aborted",
      Status::Cleared => "cleared",
      Status::Closed => "closed",
    }
  }
}

/// How a capture settled. Samples are per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
  pub status: Status,
  pub accepted_samples: u64,
  /// Samples this call caused to be lost: its own that did not fit, or (drop-oldest)
  /// older queued audio evicted to make room.
  pub dropped_samples: u64,
  /// Queue depth (including the carried remainder) once the call settled.
  pub queued_ms: f64,
  pub waited_ms: f64,
}

/// Where a waiting capture reports when it settles, instead of the bus: a group round
/// (see [`crate::group`]) joins its members' outcomes and settles once. Called on an
/// engine or JS thread with the member source's input lock held: implementations only
/// record and count.
pub trait Join: Send + Sync {
  fn settled(&self, member: u32, outcome: &Outcome);
}

/// Either settled at once, or waiting under the `wait` policy (settles through the bus).
#[derive(Debug, Clone, PartialEq)]
pub enum CaptureResult {
  Settled(Outcome),
  Pending(u64),
}

/// Slot indices of an outcome record: `[status, acceptedSamples, droppedSamples, queuedMs,
/// waitedMs, id]`. `status` is the index in [`Status::ALL`], or [`PENDING`] with the id the
/// bus will settle; a settled completion carries the capture's id too.
pub mod slot {
  pub const STATUS: usize = 0;
  pub const ACCEPTED_SAMPLES: usize = 1;
  pub const DROPPED_SAMPLES: usize = 2;
  pub const QUEUED_MS: usize = 3;
  pub const WAITED_MS: usize = 4;
  pub const ID: usize = 5;
}

/// Numbers in one outcome record.
pub const OUTCOME_SLOTS: usize = 6;
/// The status code of a capture still waiting (one past the last status).
pub const PENDING: f64 = Status::ALL.len() as f64;

impl Status {
  /// Its code in an outcome record: the index in [`Status::ALL`].
  pub fn code(self) -> usize {
    self as usize
  }
}

impl Outcome {
  /// Writes the record into `out[..OUTCOME_SLOTS]`, id 0 (panics if `out` is shorter).
  pub fn write(&self, out: &mut [f64]) {
    out[slot::STATUS] = self.status.code() as f64;
    out[slot::ACCEPTED_SAMPLES] = self.accepted_samples as f64;
    out[slot::DROPPED_SAMPLES] = self.dropped_samples as f64;
    out[slot::QUEUED_MS] = self.queued_ms;
    out[slot::WAITED_MS] = self.waited_ms;
    out[slot::ID] = 0.0;
  }
}

impl CaptureResult {
  /// A settled outcome as [`Outcome::write`]; a pending one as `PENDING` and its id.
  pub fn write(&self, out: &mut [f64]) {
    match self {
      CaptureResult::Settled(o) => o.write(out),
      CaptureResult::Pending(id) => {
        out[..OUTCOME_SLOTS].fill(0.0);
        out[slot::STATUS] = PENDING;
        out[slot::ID] = *id as f64;
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn codes_are_positions_in_all() {
    for (i, s) in Status::ALL.iter().enumerate() {
      assert_eq!(s.code(), i);
    }
  }

  #[test]
  fn records_carry_status_counts_and_ids() {
    let mut out = [9.0; OUTCOME_SLOTS];
    let o = Outcome {
      status: Status::Timeout,
      accepted_samples: 3,
      dropped_samples: 4,
      queued_ms: 5.5,
      waited_ms: 6.5,
    };
    CaptureResult::Settled(o).write(&mut out);
    assert_eq!(out, [Status::Timeout.code() as f64, 3.0, 4.0, 5.5, 6.5, 0.0]);
    CaptureResult::Pending(42).write(&mut out);
    assert_eq!(out, [PENDING, 0.0, 0.0, 0.0, 0.0, 42.0]);
  }
}
