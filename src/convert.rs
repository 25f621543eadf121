//! Boundary types: core values as plain JS objects, core errors as coded JS errors, and
//! the contract (record layout, statuses, defaults) that TypeScript reads from here.

use capstan_core::options::{
  DEFAULT_CONSUMER, DEFAULT_DEADLINE_MS, DEFAULT_FILL_SILENCE, DEFAULT_OVERFLOW, DEFAULT_PREROLL_MS,
  DEFAULT_PROCESSOR_BUDGET_MS, DEFAULT_QUEUE_MS, DEFAULT_READER_BUFFER_MS, DEFAULT_STALL_AFTER_MS,
};
use capstan_core::outcome::{slot, OUTCOME_SLOTS, PENDING};
use capstan_core::process::DEFAULT_BYPASS_AFTER;
use capstan_core::{CoreError, Drained, Event, HealthState, Metrics, Status};
use napi::bindgen_prelude::{Float64Array, FromNapiValue, Unknown};
use napi::JsValue;
use napi_derive::napi;

/// The status of an error that crosses the boundary: the core's stable code, which
/// napi-rs puts into the JS error's `code`.
pub struct Code(&'static str);

impl Code {
  /// A code the core does not own (the LiveKit client's, `ERR_INVALID_STATE`).
  pub fn named(code: &'static str) -> Self {
    Code(code)
  }
}

impl AsRef<str> for Code {
  fn as_ref(&self) -> &str {
    self.0
  }
}

/// What `#[napi]` functions that can meet a core error return.
pub type Result<T> = napi::Result<T, Code>;

pub fn js_err(e: CoreError) -> napi::Error<Code> {
  napi::Error::new(Code(e.code()), e.message().to_string())
}

/// The options object as napi-rs converts it; a value of the wrong type (or a missing
/// `sampleRate`/`channels`) is `ERR_INVALID_OPTION`, its message naming the option.
pub fn source_options(options: Unknown<'_>) -> Result<capstan_core::RawOptions> {
  // Safety: `options` is a live value of the current call's scope.
  let o = unsafe { JsSourceOptions::from_napi_value(options.value().env, options.raw()) }
    .map_err(|e| js_err(CoreError::InvalidOption(format!("AudioSource options: {}", e.reason))))?;
  Ok(o.into())
}

/// Numbers in one completion row of a drained batch: the source id, then an outcome record.
pub const COMPLETION_ROW: usize = 1 + OUTCOME_SLOTS;

/// Slot indices of an outcome record (see `capstan_core::outcome::slot`).
#[napi(object)]
pub struct JsSlots {
  pub status: u32,
  pub accepted_samples: u32,
  pub dropped_samples: u32,
  pub queued_ms: u32,
  pub waited_ms: u32,
  pub id: u32,
  /// Numbers in one record.
  pub count: u32,
}

/// Option defaults, as the core applies them.
#[napi(object)]
pub struct JsDefaults {
  pub queue_ms: u32,
  pub overflow: String,
  pub deadline_ms: u32,
  pub stall_after_ms: u32,
  pub consumer: String,
  pub fill_silence: bool,
  pub preroll_ms: u32,
  pub reader_buffer_ms: u32,
  pub processor_bypass_after: u32,
  pub processor_budget_ms: f64,
}

/// Everything TypeScript needs to read what the binding writes, defined by the core.
#[napi(object)]
pub struct JsContract {
  /// Outcome statuses by the code a record's status slot carries.
  pub statuses: Vec<String>,
  /// The status code of a capture still waiting (its record's `id` slot names it).
  pub pending: u32,
  pub slots: JsSlots,
  /// Numbers per row of `JsBatch.completions`: the source id, then an outcome record.
  pub completion_row: u32,
  /// The codes core errors carry in `code`.
  pub error_codes: Vec<String>,
  pub defaults: JsDefaults,
  /// Health states, in the order the core defines them.
  pub health_states: Vec<String>,
  pub limits: JsLimits,
}

/// The core's bounds, for JS-side checks that must agree with them.
#[napi(object)]
pub struct JsLimits {
  pub min_sample_rate: u32,
  pub max_sample_rate: u32,
  pub max_channels: u32,
  pub max_queue_ms: u32,
  pub max_deadline_ms: u32,
  pub max_preroll_ms: u32,
  /// Every chunk is this long.
  pub chunk_ms: u32,
}

impl JsContract {
  pub fn new() -> Self {
    JsContract {
      statuses: Status::ALL.iter().map(|s| s.as_str().into()).collect(),
      pending: PENDING as u32,
      slots: JsSlots {
        status: slot::STATUS as u32,
        accepted_samples: slot::ACCEPTED_SAMPLES as u32,
        dropped_samples: slot::DROPPED_SAMPLES as u32,
        queued_ms: slot::QUEUED_MS as u32,
        waited_ms: slot::WAITED_MS as u32,
        id: slot::ID as u32,
        count: OUTCOME_SLOTS as u32,
      },
      completion_row: COMPLETION_ROW as u32,
      error_codes: {
        // The core's codes, then the LiveKit client's that the core does not have.
        let mut codes: Vec<String> = CoreError::CODES.iter().map(|c| c.to_string()).collect();
        for c in capstan_livekit::Error::CODES {
          if !codes.iter().any(|k| k == c) {
            codes.push(c.to_string());
          }
        }
        codes
      },
      defaults: JsDefaults {
        queue_ms: DEFAULT_QUEUE_MS,
        overflow: DEFAULT_OVERFLOW.as_str().into(),
        deadline_ms: DEFAULT_DEADLINE_MS,
        stall_after_ms: DEFAULT_STALL_AFTER_MS,
        consumer: DEFAULT_CONSUMER.as_str().into(),
        fill_silence: DEFAULT_FILL_SILENCE,
        preroll_ms: DEFAULT_PREROLL_MS,
        reader_buffer_ms: DEFAULT_READER_BUFFER_MS,
        processor_bypass_after: DEFAULT_BYPASS_AFTER,
        processor_budget_ms: DEFAULT_PROCESSOR_BUDGET_MS as f64,
      },
      health_states: HealthState::ALL.iter().map(|h| h.as_str().into()).collect(),
      limits: JsLimits {
        min_sample_rate: capstan_core::format::MIN_RATE,
        max_sample_rate: capstan_core::format::MAX_RATE,
        max_channels: capstan_core::format::MAX_CHANNELS as u32,
        max_queue_ms: capstan_core::options::MAX_QUEUE_MS,
        max_deadline_ms: capstan_core::options::MAX_DEADLINE_MS,
        max_preroll_ms: capstan_core::options::MAX_PREROLL_MS,
        chunk_ms: capstan_core::format::CHUNK_MS,
      },
    }
  }
}

/// `new AudioSource(options)` as the binding reads it; validated by the core
/// (`SourceOptions::from_raw`), defaults in `contract().defaults`.
#[napi(object, js_name = "AudioSourceOptions")]
pub struct JsSourceOptions {
  pub sample_rate: f64,
  pub channels: f64,
  pub queue_ms: Option<f64>,
  pub overflow: Option<String>,
  pub deadline_ms: Option<f64>,
  pub stall_after_ms: Option<f64>,
  pub consumer: Option<String>,
  pub fill_silence: Option<bool>,
  pub preroll_ms: Option<f64>,
  pub reader_buffer_ms: Option<f64>,
  pub processors: Option<Vec<JsProcessorSpec>>,
  pub processor_bypass_after: Option<f64>,
  pub processor_budget_ms: Option<f64>,
}

/// A native processor as `processors.gain({ db })` and friends describe it.
#[napi(object)]
pub struct JsProcessorSpec {
  pub kind: String,
  pub db: Option<f64>,
  pub hz: Option<f64>,
  pub to_rate: Option<f64>,
  pub threshold_db: Option<f64>,
  pub hysteresis_db: Option<f64>,
  pub attack_ms: Option<f64>,
  pub hangover_ms: Option<f64>,
  /// `echoCancel`: the far-end source's reference tap id (`NativeSource.referenceTapId()`).
  pub reference: Option<f64>,
  pub high_pass: Option<bool>,
  pub noise_suppression: Option<String>,
  /// `echoCancel`: `'suppress'` (AEC3) or `'preserve'` (the near end kept in double talk).
  pub double_talk: Option<String>,
  /// `autoGain`.
  pub target_dbfs: Option<f64>,
  pub max_gain_db: Option<f64>,
  pub max_attenuation_db: Option<f64>,
  pub max_gain_change_db_per_second: Option<f64>,
  pub limiter_dbfs: Option<f64>,
  pub speech_threshold_dbfs: Option<f64>,
  /// Test-only (kind `'__fault'`): `'sleep'`, `'error'` or `'panic'`.
  pub mode: Option<String>,
  /// Test-only (kind `'__fault'`): misbehave on every n-th chunk (default 1).
  pub every_n: Option<f64>,
  /// Test-only (kind `'__fault'`, mode `'sleep'`): how long, per hit.
  pub ms: Option<f64>,
}

impl From<JsSourceOptions> for capstan_core::RawOptions {
  fn from(o: JsSourceOptions) -> Self {
    capstan_core::RawOptions {
      sample_rate: o.sample_rate,
      channels: o.channels,
      queue_ms: o.queue_ms,
      overflow: o.overflow,
      deadline_ms: o.deadline_ms,
      stall_after_ms: o.stall_after_ms,
      consumer: o.consumer,
      fill_silence: o.fill_silence,
      preroll_ms: o.preroll_ms,
      reader_buffer_ms: o.reader_buffer_ms,
      processors: o
        .processors
        .unwrap_or_default()
        .into_iter()
        .map(|p| capstan_core::RawProcessor {
          kind: p.kind,
          db: p.db,
          hz: p.hz,
          to_rate: p.to_rate,
          threshold_db: p.threshold_db,
          hysteresis_db: p.hysteresis_db,
          attack_ms: p.attack_ms,
          hangover_ms: p.hangover_ms,
          reference: p.reference,
          high_pass: p.high_pass,
          noise_suppression: p.noise_suppression,
          double_talk: p.double_talk,
          target_dbfs: p.target_dbfs,
          max_gain_db: p.max_gain_db,
          max_attenuation_db: p.max_attenuation_db,
          max_gain_change_db_per_second: p.max_gain_change_db_per_second,
          limiter_dbfs: p.limiter_dbfs,
          speech_threshold_dbfs: p.speech_threshold_dbfs,
          mode: p.mode,
          every_n: p.every_n,
          ms: p.ms,
        })
        .collect(),
      processor_bypass_after: o.processor_bypass_after,
      processor_budget_ms: o.processor_budget_ms,
    }
  }
}

/// A source's event, tagged by `kind`: each variant carries exactly its own fields.
#[napi(discriminant = "kind", discriminant_case = "kebab-case")]
pub enum JsEvent {
  Health {
    state: String,
    previous: String,
    since_ms: f64,
    queued_ms: f64,
    at: f64,
  },
  Overflow {
    dropped_samples: f64,
    policy: String,
  },
  Underrun {
    ticks: f64,
  },
  Deadline {
    count: f64,
    waited_ms: f64,
    dropped_samples: f64,
  },
  ProcessorError {
    processor: String,
    message: String,
    consecutive: f64,
    bypassed: bool,
  },
  ProcessorSlow {
    processor: String,
    elapsed_us: f64,
    budget_us: f64,
    count: f64,
  },
  Vad {
    speaking: bool,
    position_ms: f64,
    at: f64,
  },
  SinkError {
    message: String,
  },
  Readable,
  Encoded,
  Closed,
}

impl From<Event> for JsEvent {
  fn from(e: Event) -> Self {
    match e {
      Event::Health(t) => JsEvent::Health {
        state: t.state.as_str().into(),
        previous: t.previous.as_str().into(),
        since_ms: t.since_ms,
        queued_ms: t.queued_ms,
        at: t.at,
      },
      Event::Overflow {
        dropped_samples,
        policy,
      } => JsEvent::Overflow {
        dropped_samples: dropped_samples as f64,
        policy: policy.as_str().into(),
      },
      Event::Underrun { ticks } => JsEvent::Underrun { ticks: ticks as f64 },
      Event::Deadline {
        count,
        waited_ms,
        dropped_samples,
      } => JsEvent::Deadline {
        count: count as f64,
        waited_ms,
        dropped_samples: dropped_samples as f64,
      },
      Event::ProcessorError {
        processor,
        message,
        consecutive,
        bypassed,
      } => JsEvent::ProcessorError {
        processor,
        message,
        consecutive: consecutive as f64,
        bypassed,
      },
      Event::ProcessorSlow {
        processor,
        elapsed_us,
        budget_us,
        count,
      } => JsEvent::ProcessorSlow {
        processor,
        elapsed_us,
        budget_us,
        count: count as f64,
      },
      Event::Vad {
        speaking,
        position_ms,
        at,
      } => JsEvent::Vad {
        speaking,
        position_ms,
        at,
      },
      Event::SinkError { message } => JsEvent::SinkError { message },
      Event::Readable => JsEvent::Readable,
      Event::Encoded => JsEvent::Encoded,
      Event::Closed => JsEvent::Closed,
    }
  }
}

/// An event and the source it is for.
#[napi(object)]
pub struct JsSourceEvent {
  pub source_id: f64,
  pub event: JsEvent,
}

/// Everything a drain found, packed: completions as rows of `contract().completionRow`
/// numbers (`[sourceId, ...outcome record]`, the record's `id` slot naming the capture),
/// reached playout marks as `[sourceId, id]` pairs, events as objects (rare, coalesced).
#[napi(object)]
pub struct JsBatch {
  /// Sources were left pending for the next drain.
  pub more: bool,
  pub completions: Float64Array,
  pub playouts: Float64Array,
  pub events: Vec<JsSourceEvent>,
}

impl JsBatch {
  pub fn pack(drained: Vec<Drained>, more: bool) -> Self {
    let mut completions = Vec::new();
    let mut playouts = Vec::new();
    let mut events = Vec::new();
    let mut row = [0.0; COMPLETION_ROW];
    for d in drained {
      let sid = d.source_id as f64;
      for c in d.completions {
        row[0] = sid;
        c.outcome.write(&mut row[1..]);
        row[1 + slot::ID] = c.id as f64;
        completions.extend_from_slice(&row);
      }
      for p in d.playouts {
        playouts.extend_from_slice(&[sid, p as f64]);
      }
      events.extend(d.events.into_iter().map(|e| JsSourceEvent {
        source_id: sid,
        event: e.into(),
      }));
    }
    JsBatch {
      more,
      completions: Float64Array::new(completions),
      playouts: Float64Array::new(playouts),
      events,
    }
  }
}

#[napi(object)]
pub struct JsWait {
  pub p50: f64,
  pub p99: f64,
  pub max: f64,
}

#[napi(object)]
pub struct JsMetrics {
  pub captured: f64,
  pub delivered: f64,
  pub queued: f64,
  pub dropped: f64,
  pub cleared: f64,
  pub padded: f64,
  pub underruns: f64,
  pub waiting_captures: f64,
  pub waiting_samples: f64,
  pub stalls: f64,
  pub queued_ms: f64,
  pub playout_position: f64,
  pub health: String,
  /// Chunks a sink refused (each also reported as a `sink-error` event).
  pub sink_errors: f64,
  pub capture_wait_us: JsWait,
  /// Count of settled calls per status (`accepted`, `partial`, ...).
  pub outcomes: std::collections::HashMap<String, f64>,
  pub processors: Vec<JsProcessorStats>,
}

#[napi(object)]
pub struct JsProcessorStats {
  pub name: String,
  pub enabled: bool,
  pub bypassed: bool,
  pub calls: f64,
  pub failures: f64,
  pub consecutive_failures: f64,
  pub over_budget: f64,
  pub time_us: JsTime,
  /// What the processor measures (echoCancel: `erleDb`, `delayMs`, `doubleTalk`, ...;
  /// autoGain: `gainDb`, ...); empty for the others.
  pub health: std::collections::HashMap<String, f64>,
}

impl From<capstan_core::process::ProcessorStats> for JsProcessorStats {
  fn from(p: capstan_core::process::ProcessorStats) -> Self {
    JsProcessorStats {
      name: p.name,
      enabled: p.enabled,
      bypassed: p.bypassed,
      calls: p.calls as f64,
      failures: p.failures as f64,
      consecutive_failures: p.consecutive_failures as f64,
      over_budget: p.over_budget as f64,
      time_us: JsTime {
        p50: p.p50_us,
        p90: p.p90_us,
        p99: p.p99_us,
        max: p.max_us,
      },
      health: p.health.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
  }
}

#[napi(object)]
pub struct JsTime {
  pub p50: f64,
  pub p90: f64,
  pub p99: f64,
  pub max: f64,
}

impl From<Metrics> for JsMetrics {
  fn from(m: Metrics) -> Self {
    JsMetrics {
      captured: m.captured as f64,
      delivered: m.delivered as f64,
      queued: m.queued as f64,
      dropped: m.dropped as f64,
      cleared: m.cleared as f64,
      padded: m.padded as f64,
      underruns: m.underruns as f64,
      waiting_captures: m.waiting_captures as f64,
      waiting_samples: m.waiting_samples as f64,
      stalls: m.stalls as f64,
      queued_ms: m.queued_ms,
      playout_position: m.playout_position as f64,
      health: m.health.as_str().into(),
      sink_errors: m.sink_errors as f64,
      capture_wait_us: JsWait {
        p50: m.capture_wait_p50_us as f64,
        p99: m.capture_wait_p99_us as f64,
        max: m.capture_wait_max_us as f64,
      },
      processors: m.processors.into_iter().map(Into::into).collect(),
      outcomes: Status::ALL
        .iter()
        .zip(m.outcomes)
        .map(|(s, n)| (s.as_str().to_string(), n as f64))
        .collect(),
    }
  }
}
