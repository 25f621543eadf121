//! Many sources fed from one place. One call captures one frame for each member and
//! settles once, when every member's capture has: a service driving thousands of
//! sources from one loop pays one promise and one boundary crossing per round, not per
//! source. Each member keeps its own policy, queue, waiters, counters and health; the
//! round only joins their outcomes.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use crate::error::{CoreError, Result};
use crate::events::{Bus, Completion, Drained, Reporter};
use crate::format::{f32_to_i16, Format};
use crate::outcome::{CaptureResult, Join, Outcome, Status};
use crate::source::{FrameRef, Samples, Source};

/// How a round settled: the joined outcome plus each member's status.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
  /// `status` is the members' common status, or `partial` when they differ; samples
  /// are summed over members, `queued_ms` and `waited_ms` are the largest.
  pub outcome: Outcome,
  /// Each member's status, as [`Status::code`], in member order.
  pub statuses: Vec<u8>,
}

/// The members' outcomes as they settle; the last one finishes the round.
struct Round {
  id: u64,
  group: Weak<Group>,
  /// Members still waiting, plus one held by `Group::capture` until it has gone through
  /// every member (so a round cannot finish while it is still being started).
  remaining: AtomicUsize,
  state: Mutex<Joined>,
}

struct Joined {
  statuses: Vec<u8>,
  accepted: u64,
  dropped: u64,
  queued_ms: f64,
  waited_ms: f64,
}

impl Round {
  fn record(&self, member: u32, o: &Outcome) {
    let mut j = self.state.lock();
    j.statuses[member as usize] = o.status.code() as u8;
    j.accepted += o.accepted_samples;
    j.dropped += o.dropped_samples;
    j.queued_ms = j.queued_ms.max(o.queued_ms);
    j.waited_ms = j.waited_ms.max(o.waited_ms);
  }

  /// Counts one member (or the starter's hold) off; true for the last.
  fn release(&self) -> bool {
    self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
  }

  fn outcome(&self) -> RoundOutcome {
    let j = self.state.lock();
    let first = j.statuses.first().copied().unwrap_or(Status::Accepted.code() as u8);
    let status = if j.statuses.iter().all(|&s| s == first) {
      Status::ALL[first as usize]
    } else {
      Status::Partial
    };
    RoundOutcome {
      outcome: Outcome {
        status,
        accepted_samples: j.accepted,
        dropped_samples: j.dropped,
        queued_ms: j.queued_ms,
        waited_ms: j.waited_ms,
      },
      statuses: j.statuses.clone(),
    }
  }
}

impl Join for Round {
  fn settled(&self, member: u32, outcome: &Outcome) {
    self.record(member, outcome);
    if self.release() {
      if let Some(g) = self.group.upgrade() {
        g.finish(self);
      }
    }
  }
}

#[derive(Default)]
struct Reports {
  listed: bool,
  completions: Vec<Completion>,
  /// Finished rounds' member statuses, until the caller takes them.
  statuses: HashMap<u64, Vec<u8>>,
}

/// A round between `begin` and `end`.
struct Open {
  round: Arc<Round>,
  /// Samples per member frame.
  per: usize,
  deadline_ms: Option<u32>,
  may_wait: bool,
  /// The next member a slice must start at.
  next: usize,
}

/// A fixed set of sources of one format, captured together.
pub struct Group {
  id: u64,
  members: Vec<Arc<Source>>,
  format: Format,
  bus: Arc<Bus>,
  me: Weak<Group>,
  next_round: AtomicU64,
  open: Mutex<HashMap<u64, Open>>,
  reports: Mutex<Reports>,
}

/// What a round started: settled at once, or pending (settles through the bus under the
/// group's id, with this round id).
#[derive(Debug, Clone, PartialEq)]
pub enum RoundResult {
  Settled(RoundOutcome),
  Pending(u64),
}

impl Group {
  /// `id` comes from the engine's source ids, so the bus can report the group like a source.
  pub(crate) fn new(id: u64, members: Vec<Arc<Source>>, bus: Arc<Bus>) -> Result<Arc<Self>> {
    let Some(first) = members.first() else {
      return Err(CoreError::InvalidOption(
        "a source group needs at least one source".into(),
      ));
    };
    let format = first.format();
    for (i, m) in members.iter().enumerate() {
      if m.format() != format {
        return Err(CoreError::InvalidOption(format!(
          "source group members share one format: member 0 is {} Hz × {}, member {i} is {} Hz × {}",
          format.sample_rate,
          format.channels,
          m.format().sample_rate,
          m.format().channels
        )));
      }
      if members[..i].iter().any(|o| Arc::ptr_eq(o, m)) {
        return Err(CoreError::InvalidOption(format!(
          "source group member {i} is listed twice"
        )));
      }
      if !m.on_bus(&bus) {
        return Err(CoreError::InvalidOption(format!(
          "source group member {i} belongs to another engine (worker thread)"
        )));
      }
    }
    Ok(Arc::new_cyclic(|me| Group {
      id,
      members,
      format,
      bus,
      me: me.clone(),
      next_round: AtomicU64::new(1),
      open: Mutex::new(HashMap::new()),
      reports: Mutex::new(Reports::default()),
    }))
  }

  pub fn id(&self) -> u64 {
    self.id
  }

  pub fn len(&self) -> usize {
    self.members.len()
  }

  pub fn is_empty(&self) -> bool {
    self.members.is_empty()
  }

  pub fn format(&self) -> Format {
    self.format
  }

  /// One frame per member, member after member in `samples` (each the same length, whole
  /// sample frames). With `may_wait`, each member applies its own overflow policy (`wait`
  /// waits up to `deadline_ms` or its source's default); without, a member that cannot
  /// take its frame now refuses it (`dropped`), as `try_capture` does.
  pub fn capture(&self, samples: Samples<'_>, deadline_ms: Option<u32>, may_wait: bool) -> Result<RoundResult> {
    let len = match samples {
      Samples::I16(d) => d.len(),
      Samples::F32(f) => f.len(),
    };
    let id = self.begin(len, deadline_ms, may_wait)?;
    let fed = self.feed(id, samples, 0);
    let end = self.end(id);
    fed?;
    end
  }

  /// Starts a round of `total` samples (one frame per member) that [`Group::feed`] fills in
  /// slices, so a caller can yield between them; [`Group::end`] closes it. Validates the
  /// length once, up front.
  pub fn begin(&self, total: usize, deadline_ms: Option<u32>, may_wait: bool) -> Result<u64> {
    let n = self.members.len();
    if total % n != 0 {
      return Err(CoreError::InvalidFrame(format!(
        "a group round needs one frame per source: {total} samples do not split evenly over {n} sources"
      )));
    }
    let per = total / n;
    self.format.check_len(per)?;
    let round = Arc::new(Round {
      id: self.next_round.fetch_add(1, Ordering::Relaxed),
      group: self.me.clone(),
      remaining: AtomicUsize::new(n + 1),
      state: Mutex::new(Joined {
        statuses: vec![Status::Accepted.code() as u8; n],
        accepted: 0,
        dropped: 0,
        queued_ms: 0.0,
        waited_ms: 0.0,
      }),
    });
    let id = round.id;
    self.open.lock().insert(
      id,
      Open {
        round,
        per,
        deadline_ms,
        may_wait,
        next: 0,
      },
    );
    Ok(id)
  }

  /// Captures the frames of members `first..` held in `samples` (whole frames, in member
  /// order, continuing where the previous slice stopped).
  pub fn feed(&self, id: u64, samples: Samples<'_>, first: usize) -> Result<()> {
    let (round, per, deadline_ms, may_wait) = {
      let open = self.open.lock();
      let o = open
        .get(&id)
        .ok_or_else(|| CoreError::InvalidOption(format!("group round {id} is not open")))?;
      (o.round.clone(), o.per, o.deadline_ms, o.may_wait)
    };
    let mut scratch = Vec::new();
    let data: &[i16] = match samples {
      Samples::I16(d) => d,
      Samples::F32(f) => {
        f32_to_i16(f, &mut scratch)?;
        &scratch
      }
    };
    let count = data.len() / per;
    if data.len() % per != 0 || first + count > self.members.len() {
      return Err(CoreError::InvalidFrame(format!(
        "a round slice holds whole frames of {per} samples for members that exist: {} samples from member {first}",
        data.len()
      )));
    }
    {
      let mut open = self.open.lock();
      let o = open.get_mut(&id).expect("checked above");
      if o.next != first {
        return Err(CoreError::InvalidOption(format!(
          "group round {id} continues at member {}, not {first}",
          o.next
        )));
      }
      o.next = first + count;
    }
    for (k, frame) in data.chunks_exact(per).enumerate() {
      let i = first + k;
      let m = &self.members[i];
      let r = if may_wait {
        m.capture_joined(FrameRef::i16(frame), deadline_ms, round.clone(), i as u32)?
      } else {
        CaptureResult::Settled(m.try_capture(FrameRef::i16(frame))?)
      };
      if let CaptureResult::Settled(o) = r {
        round.record(i as u32, &o);
        round.release();
      }
    }
    Ok(())
  }

  /// Closes a round: settled if every member already has, else pending (it settles
  /// through the bus). Members never fed (a round ended early) count as `dropped`.
  pub fn end(&self, id: u64) -> Result<RoundResult> {
    let o = self
      .open
      .lock()
      .remove(&id)
      .ok_or_else(|| CoreError::InvalidOption(format!("group round {id} is not open")))?;
    for i in o.next..self.members.len() {
      o.round.record(
        i as u32,
        &Outcome {
          status: Status::Dropped,
          accepted_samples: 0,
          dropped_samples: 0,
          queued_ms: 0.0,
          waited_ms: 0.0,
        },
      );
      o.round.release();
    }
    if o.round.release() {
      return Ok(RoundResult::Settled(o.round.outcome()));
    }
    Ok(RoundResult::Pending(id))
  }

  /// A round's member statuses, once its completion was drained (then forgotten).
  pub fn take_statuses(&self, round: u64) -> Option<Vec<u8>> {
    self.reports.lock().statuses.remove(&round)
  }

  fn finish(&self, round: &Round) {
    let r = round.outcome();
    let mut rep = self.reports.lock();
    rep.completions.push(Completion {
      id: round.id,
      outcome: r.outcome,
    });
    rep.statuses.insert(round.id, r.statuses);
    if !rep.listed {
      rep.listed = true;
      drop(rep);
      self.bus.mark(self.me.clone() as Weak<dyn Reporter>);
    }
  }
}

impl Reporter for Group {
  fn id(&self) -> u64 {
    self.id
  }

  fn take_pending(&self) -> Drained {
    let mut rep = self.reports.lock();
    rep.listed = false;
    Drained {
      source_id: self.id,
      events: Vec::new(),
      completions: std::mem::take(&mut rep.completions),
      playouts: Vec::new(),
    }
  }
}

#[cfg(test)]
mod tests {
  use std::time::{Duration, Instant};

  use super::*;
  use crate::options::{Consumer, SourceOptions};
  use crate::queue::Overflow;

  fn sources(bus: &Arc<Bus>, n: usize, queue_ms: u32) -> Vec<Arc<Source>> {
    (0..n)
      .map(|i| {
        let mut o = SourceOptions::new(8_000, 1).unwrap();
        o.consumer = Consumer::Pull;
        o.overflow = Overflow::Wait;
        o.queue_ms = queue_ms;
        Source::new(i as u64 + 1, o, bus.clone()).unwrap()
      })
      .collect()
  }

  #[test]
  fn a_round_with_room_settles_at_once_with_every_member_accepted() {
    let bus = Bus::new();
    let g = Group::new(100, sources(&bus, 3, 20), bus.clone()).unwrap();
    let data: Vec<i16> = (0..240).map(|i| i as i16).collect();
    let RoundResult::Settled(r) = g.capture(Samples::I16(&data), None, true).unwrap() else {
      panic!("room for all");
    };
    assert_eq!(r.outcome.status, Status::Accepted);
    assert_eq!(r.outcome.accepted_samples, 240);
    assert_eq!(r.statuses, vec![0, 0, 0]);
    // Each member got its own slice, exactly.
    for (i, m) in g.members.iter().enumerate() {
      let want: Vec<i16> = (i * 80..i * 80 + 80).map(|v| v as i16).collect();
      assert_eq!(m.read(), crate::source::Read::Chunk(want));
    }
    assert!(bus.drain().is_empty(), "a settled round reports nothing");
  }

  #[test]
  fn a_round_that_waits_settles_once_when_its_last_member_does() {
    let bus = Bus::new();
    let members = sources(&bus, 2, 10);
    // Member 1's queue is full: its frame waits; member 0's fits.
    members[1].try_capture(FrameRef::i16(&[7; 80])).unwrap();
    let g = Group::new(100, members, bus.clone()).unwrap();
    let RoundResult::Pending(id) = g.capture(Samples::I16(&[1; 160]), Some(60_000), true).unwrap() else {
      panic!("member 1 must wait");
    };
    assert!(bus.drain().is_empty());
    // Member 1's reader frees room: the round settles, through the bus, under the group's id.
    assert_eq!(g.members[1].read(), crate::source::Read::Chunk(vec![7; 80]));
    let d = bus.drain();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].source_id, 100);
    assert_eq!(d[0].completions.len(), 1);
    assert_eq!(d[0].completions[0].id, id);
    assert_eq!(d[0].completions[0].outcome.status, Status::Accepted);
    assert_eq!(d[0].completions[0].outcome.accepted_samples, 160);
    assert!(d[0].completions[0].outcome.waited_ms > 0.0);
    assert_eq!(g.take_statuses(id), Some(vec![0, 0]));
    assert_eq!(g.take_statuses(id), None, "taken once");
  }

  #[test]
  fn members_settling_differently_make_a_partial_round_with_each_status() {
    let bus = Bus::new();
    let members = sources(&bus, 3, 10);
    members[1].try_capture(FrameRef::i16(&[7; 80])).unwrap();
    members[2].close();
    let g = Group::new(100, members, bus.clone()).unwrap();
    let RoundResult::Pending(id) = g.capture(Samples::I16(&[1; 240]), Some(5), true).unwrap() else {
      panic!("member 1 must wait");
    };
    // Member 1 times out at its deadline.
    g.members[1].tick(Instant::now() + Duration::from_millis(10), 1);
    let d: Vec<_> = bus.drain().into_iter().filter(|d| d.source_id == 100).collect();
    let o = &d[0].completions[0].outcome;
    assert_eq!(o.status, Status::Partial);
    assert_eq!((o.accepted_samples, o.dropped_samples), (80, 160));
    assert_eq!(
      g.take_statuses(id),
      Some(vec![
        Status::Accepted.code() as u8,
        Status::Timeout.code() as u8,
        Status::Closed.code() as u8
      ])
    );
    // The members counted their own outcomes.
    assert_eq!(g.members[1].metrics().outcomes[Status::Timeout.code()], 1);
  }

  #[test]
  fn a_round_fed_in_slices_is_one_round() {
    let bus = Bus::new();
    let g = Group::new(100, sources(&bus, 4, 20), bus.clone()).unwrap();
    let data: Vec<i16> = (0..320).map(|i| i as i16).collect();
    let id = g.begin(320, None, true).unwrap();
    g.feed(id, Samples::I16(&data[..160]), 0).unwrap();
    assert!(
      g.feed(id, Samples::I16(&data[160..240]), 3).is_err(),
      "slices continue in order"
    );
    g.feed(id, Samples::I16(&data[160..]), 2).unwrap();
    let RoundResult::Settled(r) = g.end(id).unwrap() else {
      panic!("room for all");
    };
    assert_eq!((r.outcome.status, r.outcome.accepted_samples), (Status::Accepted, 320));
    for (i, m) in g.members.iter().enumerate() {
      let want: Vec<i16> = (i * 80..i * 80 + 80).map(|v| v as i16).collect();
      assert_eq!(m.read(), crate::source::Read::Chunk(want));
    }
    // A round ended before every member was fed: the rest count as dropped.
    let id = g.begin(320, None, true).unwrap();
    g.feed(id, Samples::I16(&data[..80]), 0).unwrap();
    let RoundResult::Settled(r) = g.end(id).unwrap() else {
      panic!("nothing waits");
    };
    assert_eq!(r.statuses, vec![0, 2, 2, 2]);
    assert!(g.end(id).is_err(), "ended once");
  }

  #[test]
  fn rounds_without_waiting_refuse_what_does_not_fit_and_bad_input_is_an_error() {
    let bus = Bus::new();
    let members = sources(&bus, 2, 10);
    members[0].try_capture(FrameRef::i16(&[7; 80])).unwrap();
    let g = Group::new(100, members, bus.clone()).unwrap();
    let RoundResult::Settled(r) = g.capture(Samples::I16(&[1; 160]), None, false).unwrap() else {
      panic!("never waits");
    };
    assert_eq!(
      r.statuses,
      vec![Status::Dropped.code() as u8, Status::Accepted.code() as u8]
    );
    assert_eq!(r.outcome.status, Status::Partial);
    assert!(matches!(
      g.capture(Samples::I16(&[1; 161]), None, true),
      Err(CoreError::InvalidFrame(_))
    ));
    let other = sources(&Bus::new(), 1, 10);
    assert!(Group::new(101, other, bus.clone()).is_err(), "another engine's source");
    let twice = vec![g.members[0].clone(), g.members[0].clone()];
    assert!(Group::new(102, twice, bus).is_err());
  }
}
