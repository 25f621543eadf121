//! Boundary types: core values as plain JS objects, core errors as coded JS errors.

use capstan_core::outcome::{slot, OUTCOME_SLOTS};
use capstan_core::{CoreError, Drained, Event, Metrics, Status};
use napi::bindgen_prelude::Float64Array;
use napi_derive::napi;

/// Core errors cross as `"<CODE>: <message>"`; the TypeScript layer makes them `CapstanError`s.
pub fn js_err(e: CoreError) -> napi::Error {
  napi::Error::new(napi::Status::InvalidArg, e.to_string())
}

#[napi(object)]
pub struct JsSourceOptions {
  pub sample_rate: f64,
  pub channels: f64,
  pub queue_ms: Option<f64>,
  pub overflow: Option<String>,
  pub deadline_ms: Option<f64>,
  pub stall_after_ms: Option<f64>,
  pub consumer: Option<String>,
  pub fill_silence: Option<bool>,
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
        })
        .collect(),
      processor_bypass_after: o.processor_bypass_after,
      processor_budget_ms: o.processor_budget_ms,
    }
  }
}

#[napi(object)]
pub struct JsEvent {
  pub source_id: f64,
  pub kind: String,
  pub state: Option<String>,
  pub previous: Option<String>,
  pub since_ms: Option<f64>,
  pub queued_ms: Option<f64>,
  pub at: Option<f64>,
  pub dropped_samples: Option<f64>,
  pub policy: Option<String>,
  pub ticks: Option<f64>,
  pub count: Option<f64>,
  pub waited_ms: Option<f64>,
  pub processor: Option<String>,
  pub message: Option<String>,
  pub consecutive: Option<f64>,
  pub bypassed: Option<bool>,
  pub elapsed_us: Option<f64>,
  pub budget_us: Option<f64>,
  pub speaking: Option<bool>,
  pub position_ms: Option<f64>,
}

impl JsEvent {
  fn kind(kind: &str) -> Self {
    JsEvent {
      source_id: 0.0,
      kind: kind.into(),
      state: None,
      previous: None,
      since_ms: None,
      queued_ms: None,
      at: None,
      dropped_samples: None,
      policy: None,
      ticks: None,
      count: None,
      waited_ms: None,
      processor: None,
      message: None,
      consecutive: None,
      bypassed: None,
      elapsed_us: None,
      budget_us: None,
      speaking: None,
      position_ms: None,
    }
  }
}

impl From<Event> for JsEvent {
  fn from(e: Event) -> Self {
    match e {
      Event::Health(t) => JsEvent {
        state: Some(t.state.as_str().into()),
        previous: Some(t.previous.as_str().into()),
        since_ms: Some(t.since_ms),
        queued_ms: Some(t.queued_ms),
        at: Some(t.at),
        ..JsEvent::kind("health")
      },
      Event::Overflow {
        dropped_samples,
        policy,
      } => JsEvent {
        dropped_samples: Some(dropped_samples as f64),
        policy: Some(policy.as_str().into()),
        ..JsEvent::kind("overflow")
      },
      Event::Underrun { ticks } => JsEvent {
        ticks: Some(ticks as f64),
        ..JsEvent::kind("underrun")
      },
      Event::Deadline {
        count,
        waited_ms,
        dropped_samples,
      } => JsEvent {
        count: Some(count as f64),
        waited_ms: Some(waited_ms),
        dropped_samples: Some(dropped_samples as f64),
        ..JsEvent::kind("deadline")
      },
      Event::ProcessorError {
        processor,
        message,
        consecutive,
        bypassed,
      } => JsEvent {
        processor: Some(processor),
        message: Some(message),
        consecutive: Some(consecutive as f64),
        bypassed: Some(bypassed),
        ..JsEvent::kind("processor-error")
      },
      Event::ProcessorSlow {
        processor,
        elapsed_us,
        budget_us,
        count,
      } => JsEvent {
        processor: Some(processor),
        elapsed_us: Some(elapsed_us),
        budget_us: Some(budget_us),
        count: Some(count as f64),
        ..JsEvent::kind("processor-slow")
      },
      Event::Vad {
        speaking,
        position_ms,
        at,
      } => JsEvent {
        speaking: Some(speaking),
        position_ms: Some(position_ms),
        at: Some(at),
        ..JsEvent::kind("vad")
      },
      Event::SinkError { message } => JsEvent {
        message: Some(message),
        ..JsEvent::kind("sink-error")
      },
      Event::Readable => JsEvent::kind("readable"),
      Event::Closed => JsEvent::kind("closed"),
    }
  }
}

/// Everything a drain found, packed: completions as `[sourceId, ...outcome record]` rows
/// (1 + OUTCOME_SLOTS numbers each, the record's `id` slot naming the capture), reached
/// playout marks as `[sourceId, id]` pairs, events as objects (they are rare and coalesced).
#[napi(object)]
pub struct JsBatch {
  /// Sources were left pending for the next drain.
  pub more: bool,
  pub completions: Float64Array,
  pub playouts: Float64Array,
  pub events: Vec<JsEvent>,
}

impl JsBatch {
  pub fn pack(drained: Vec<Drained>, more: bool) -> Self {
    let mut completions = Vec::new();
    let mut playouts = Vec::new();
    let mut events = Vec::new();
    let mut rec = [0.0; OUTCOME_SLOTS];
    for d in drained {
      let sid = d.source_id as f64;
      for c in d.completions {
        c.outcome.write(&mut rec);
        rec[slot::ID] = c.id as f64;
        completions.push(sid);
        completions.extend_from_slice(&rec);
      }
      for p in d.playouts {
        playouts.extend_from_slice(&[sid, p as f64]);
      }
      events.extend(d.events.into_iter().map(|e| JsEvent {
        source_id: sid,
        ..JsEvent::from(e)
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
      health: m.health.map(|h| h.as_str()).unwrap_or("healthy").into(),
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
