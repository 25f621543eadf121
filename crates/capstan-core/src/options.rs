//! Source options: what a caller may set, the defaults, and the one place they are
//! validated (`from_raw`), so neither the source nor the binding has to.

use std::time::Duration;

use crate::error::{CoreError, Result};
use crate::format::{Format, CHUNK_MS};
use crate::process::{
  check_bypass_after, AutoGainOptions, DoubleTalk, EchoCancelOptions, EchoNoiseSuppression, Spec, VadOptions,
  DEFAULT_BYPASS_AFTER,
};
use crate::queue::Overflow;

/// Queue capacity unless the caller says otherwise.
pub const DEFAULT_QUEUE_MS: u32 = 200;
/// The largest queue: ten minutes of audio.
pub const MAX_QUEUE_MS: u32 = 600_000;
/// How long a `wait` capture may wait for room unless the caller says otherwise.
pub const DEFAULT_DEADLINE_MS: u32 = 1000;
/// The longest deadline: an hour.
pub const MAX_DEADLINE_MS: u32 = 3_600_000;
/// No consumer progress for this long (with audio waiting) is a stall.
pub const DEFAULT_STALL_AFTER_MS: u32 = 250;
/// Shorter than two ticks cannot be told from clock jitter.
pub const MIN_STALL_AFTER_MS: u32 = 20;
pub const MAX_STALL_AFTER_MS: u32 = 3_600_000;
/// Audio a `frames()` reader on a paced source may leave unread.
pub const DEFAULT_READER_BUFFER_MS: u32 = 50;
pub const MAX_READER_BUFFER_MS: u32 = 10_000;
/// Per-chunk time budget of each native processor.
pub const DEFAULT_PROCESSOR_BUDGET_MS: u64 = 5;
/// What a capture does with a frame that does not fit, unless the caller says otherwise.
pub const DEFAULT_OVERFLOW: Overflow = Overflow::Wait;
/// Who takes audio out of the queue unless the caller says otherwise.
pub const DEFAULT_CONSUMER: Consumer = Consumer::Realtime;
/// A realtime underrun tick sends silence unless the caller says otherwise.
pub const DEFAULT_FILL_SILENCE: bool = true;
/// Realtime delivery starts at once unless the caller asks for a pre-roll.
pub const DEFAULT_PREROLL_MS: u32 = 0;
/// The longest pre-roll: past it the wait would read as a lagging consumer.
pub const MAX_PREROLL_MS: u32 = 200;

/// Who takes audio out of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
  /// The engine clock takes one chunk per 10 ms tick.
  Realtime,
  /// JavaScript reads with `frames()` at its own pace.
  Pull,
  /// The engine takes chunks as fast as the sink accepts them.
  Unpaced,
}

impl Consumer {
  pub fn parse(s: &str) -> Option<Self> {
    Some(match s {
      "realtime" => Consumer::Realtime,
      "pull" => Consumer::Pull,
      "unpaced" => Consumer::Unpaced,
      _ => return None,
    })
  }

  pub fn as_str(&self) -> &'static str {
    match self {
      Consumer::Realtime => "realtime",
      Consumer::Pull => "pull",
      Consumer::Unpaced => "unpaced",
    }
  }
}

#[derive(Debug, Clone)]
pub struct SourceOptions {
  pub format: Format,
  pub queue_ms: u32,
  pub overflow: Overflow,
  pub deadline_ms: u32,
  pub stall_after_ms: u32,
  pub consumer: Consumer,
  pub fill_silence: bool,
  /// Realtime: audio to have queued before delivery starts, and starts again after the
  /// queue ran dry (a producer that delivers in bursts, a live relay), ms.
  pub preroll_ms: u32,
  /// Chunks a `frames()` reader may hold undelivered on a realtime/unpaced source.
  pub reader_chunks: usize,
  /// Native processors, run on engine threads on every chunk the consumer takes.
  pub processors: Vec<Spec>,
  /// Consecutive failures after which a processor is bypassed.
  pub processor_bypass_after: u32,
  /// Per-chunk time budget of each processor; overruns are counted and reported.
  pub processor_budget: Option<Duration>,
}

impl SourceOptions {
  /// Queue capacity in whole chunks.
  pub fn queue_chunks(&self) -> usize {
    (self.queue_ms / CHUNK_MS) as usize
  }
}

impl SourceOptions {
  pub fn new(sample_rate: u32, channels: u16) -> Result<Self> {
    Ok(SourceOptions {
      format: Format::new(sample_rate, channels)?,
      queue_ms: DEFAULT_QUEUE_MS,
      overflow: DEFAULT_OVERFLOW,
      deadline_ms: DEFAULT_DEADLINE_MS,
      stall_after_ms: DEFAULT_STALL_AFTER_MS,
      consumer: DEFAULT_CONSUMER,
      fill_silence: DEFAULT_FILL_SILENCE,
      preroll_ms: DEFAULT_PREROLL_MS,
      reader_chunks: (DEFAULT_READER_BUFFER_MS / CHUNK_MS) as usize,
      processors: Vec::new(),
      processor_bypass_after: DEFAULT_BYPASS_AFTER,
      processor_budget: Some(Duration::from_millis(DEFAULT_PROCESSOR_BUDGET_MS)),
    })
  }

  pub fn validate(&self) -> Result<()> {
    if self.queue_ms == 0 || !self.queue_ms.is_multiple_of(CHUNK_MS) || self.queue_ms > MAX_QUEUE_MS {
      return Err(CoreError::InvalidOption(format!(
        "queueMs must be a positive multiple of {CHUNK_MS} up to {MAX_QUEUE_MS}, got {}",
        self.queue_ms
      )));
    }
    check_deadline(self.deadline_ms)?;
    if !(MIN_STALL_AFTER_MS..=MAX_STALL_AFTER_MS).contains(&self.stall_after_ms) {
      return Err(CoreError::InvalidOption(format!(
        "stallAfterMs must be {MIN_STALL_AFTER_MS}..={MAX_STALL_AFTER_MS}, got {}",
        self.stall_after_ms
      )));
    }
    check_preroll(self.preroll_ms, self.consumer)?;
    let max_reader_chunks = (MAX_READER_BUFFER_MS / CHUNK_MS) as usize;
    if self.reader_chunks == 0 || self.reader_chunks > max_reader_chunks {
      return Err(CoreError::InvalidOption(format!(
        "readerBufferMs must be {CHUNK_MS}..={MAX_READER_BUFFER_MS}, got {}",
        self.reader_chunks * CHUNK_MS as usize
      )));
    }
    Ok(())
  }
}

/// Options as a caller wrote them (numbers as f64, enums as strings); `from_raw`
/// validates them all so no other layer has to.
#[derive(Debug, Clone, Default)]
pub struct RawOptions {
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
  pub processors: Vec<RawProcessor>,
  pub processor_bypass_after: Option<f64>,
  pub processor_budget_ms: Option<f64>,
}

/// A native processor as a caller wrote it: `kind` plus its numeric options.
#[derive(Debug, Clone, Default)]
pub struct RawProcessor {
  pub kind: String,
  pub db: Option<f64>,
  pub hz: Option<f64>,
  pub to_rate: Option<f64>,
  pub threshold_db: Option<f64>,
  pub hysteresis_db: Option<f64>,
  pub attack_ms: Option<f64>,
  pub hangover_ms: Option<f64>,
  /// `echoCancel`: the far-end source's reference tap, by its registered id
  /// ([`reference::register`](crate::process::reference::register)).
  pub reference: Option<f64>,
  pub high_pass: Option<bool>,
  pub noise_suppression: Option<String>,
  /// `echoCancel`: `'suppress'` (AEC3, the default) or `'preserve'`.
  pub double_talk: Option<String>,
  /// `autoGain`.
  pub target_dbfs: Option<f64>,
  pub max_gain_db: Option<f64>,
  pub max_attenuation_db: Option<f64>,
  pub max_gain_change_db_per_second: Option<f64>,
  pub limiter_dbfs: Option<f64>,
  pub speech_threshold_dbfs: Option<f64>,
  /// Test-only (`'__fault'`): see [`Spec::fault`].
  #[doc(hidden)]
  pub mode: Option<String>,
  #[doc(hidden)]
  pub every_n: Option<f64>,
  #[doc(hidden)]
  pub ms: Option<f64>,
}

impl RawProcessor {
  fn spec(&self) -> Result<Spec> {
    let need = |v: Option<f64>, what: &str| {
      v.ok_or_else(|| CoreError::InvalidOption(format!("processor '{}' needs {what}", self.kind)))
    };
    Ok(match self.kind.as_str() {
      "gain" => Spec::Gain {
        db: need(self.db, "db")?,
      },
      "highPass" => Spec::HighPass {
        hz: need(self.hz, "hz")?,
      },
      "resample" => Spec::Resample {
        to_rate: whole("toRate", need(self.to_rate, "toRate")?)?,
      },
      "denoise" => Spec::Denoise,
      "vad" => {
        let mut o = VadOptions::default();
        if let Some(v) = self.threshold_db {
          o.threshold_db = v;
        }
        if let Some(v) = self.hysteresis_db {
          o.hysteresis_db = v;
        }
        if let Some(v) = self.attack_ms {
          o.attack_ms = whole("attackMs", v)?;
        }
        if let Some(v) = self.hangover_ms {
          o.hangover_ms = whole("hangoverMs", v)?;
        }
        Spec::Vad(o)
      }
      "echoCancel" => {
        let id = need(self.reference, "reference (the AudioSource whose playout to cancel)")?;
        let known = id.is_finite() && id >= 1.0 && id.fract() == 0.0;
        let reference = known
          .then(|| crate::process::reference::lookup(id as u64))
          .flatten()
          .ok_or_else(|| CoreError::InvalidOption("echoCancel: reference is not an open AudioSource".into()))?;
        Spec::EchoCancel(EchoCancelOptions {
          reference,
          high_pass: self.high_pass.unwrap_or(false),
          noise_suppression: match &self.noise_suppression {
            Some(s) => EchoNoiseSuppression::parse(s)?,
            None => EchoNoiseSuppression::Off,
          },
          double_talk: match &self.double_talk {
            Some(s) => DoubleTalk::parse(s)?,
            None => DoubleTalk::Suppress,
          },
        })
      }
      "autoGain" => {
        let d = AutoGainOptions::default();
        let o = AutoGainOptions {
          target_dbfs: self.target_dbfs.unwrap_or(d.target_dbfs),
          max_gain_db: self.max_gain_db.unwrap_or(d.max_gain_db),
          max_attenuation_db: self.max_attenuation_db.unwrap_or(d.max_attenuation_db),
          max_gain_change_db_per_second: self
            .max_gain_change_db_per_second
            .unwrap_or(d.max_gain_change_db_per_second),
          limiter_dbfs: self.limiter_dbfs.unwrap_or(d.limiter_dbfs),
          speech_threshold_dbfs: self.speech_threshold_dbfs.unwrap_or(d.speech_threshold_dbfs),
        };
        o.validate()?;
        Spec::AutoGain(o)
      }
      Spec::FAULT_KIND => Spec::fault(self.mode.as_deref(), self.every_n, self.ms)?,
      k => return Err(CoreError::InvalidOption(format!("unknown native processor '{k}'"))),
    })
  }
}

/// A caller-supplied count (ms, Hz, channels) as a whole u32, or `ERR_INVALID_OPTION`.
pub fn whole(name: &str, v: f64) -> Result<u32> {
  if !v.is_finite() || v.fract() != 0.0 || v < 0.0 || v > u32::MAX as f64 {
    return Err(CoreError::InvalidOption(format!(
      "{name} must be a non-negative whole number, got {v}"
    )));
  }
  Ok(v as u32)
}

/// `prerollMs`: whole 10 ms chunks up to [`MAX_PREROLL_MS`], for a realtime consumer only
/// (the others take audio as it comes).
pub fn check_preroll(ms: u32, consumer: Consumer) -> Result<()> {
  if ms > MAX_PREROLL_MS || !ms.is_multiple_of(CHUNK_MS) {
    return Err(CoreError::InvalidOption(format!(
      "prerollMs must be a multiple of {CHUNK_MS} up to {MAX_PREROLL_MS}, got {ms}"
    )));
  }
  if ms > 0 && consumer != Consumer::Realtime {
    return Err(CoreError::InvalidOption(format!(
      "prerollMs applies to consumer: 'realtime', not '{}'",
      consumer.as_str()
    )));
  }
  Ok(())
}

fn check_deadline(ms: u32) -> Result<()> {
  if ms > MAX_DEADLINE_MS {
    return Err(CoreError::InvalidOption(format!(
      "deadlineMs must be at most {MAX_DEADLINE_MS}, got {ms}"
    )));
  }
  Ok(())
}

/// A `deadlineMs` as JavaScript passed it (the source's option or one call's), validated
/// by the one rule for both.
pub fn deadline_ms(v: f64) -> Result<u32> {
  let ms = whole("deadlineMs", v)?;
  check_deadline(ms)?;
  Ok(ms)
}

/// `processorBypassAfter` and `processorBudgetMs` as a caller wrote them (None: the
/// default), validated: one rule for native processors and for those run in JavaScript.
pub fn processor_limits(bypass_after: Option<f64>, budget_ms: Option<f64>) -> Result<(u32, Option<Duration>)> {
  let bypass_after = match bypass_after {
    Some(v) => whole("processorBypassAfter", v)?,
    None => DEFAULT_BYPASS_AFTER,
  };
  // Checked here, not only when a chain is built: a source without processors refuses a
  // value out of range too.
  check_bypass_after(bypass_after)?;
  let budget = match budget_ms {
    Some(v) if !v.is_finite() || v < 0.0 => {
      return Err(CoreError::InvalidOption(format!(
        "processorBudgetMs must be >= 0, got {v}"
      )))
    }
    Some(v) => (v > 0.0).then(|| Duration::from_secs_f64(v / 1000.0)),
    None => Some(Duration::from_millis(DEFAULT_PROCESSOR_BUDGET_MS)),
  };
  Ok((bypass_after, budget))
}

impl SourceOptions {
  pub fn from_raw(r: RawOptions) -> Result<Self> {
    let channels = whole("channels", r.channels)?;
    let mut o = SourceOptions::new(
      whole("sampleRate", r.sample_rate)?,
      channels.min(u16::MAX as u32) as u16,
    )?;
    if let Some(v) = r.queue_ms {
      o.queue_ms = whole("queueMs", v)?;
    }
    if let Some(v) = r.overflow {
      o.overflow = Overflow::parse(&v).ok_or_else(|| {
        CoreError::InvalidOption(format!(
          "overflow must be 'wait', 'drop-oldest', 'drop-newest' or 'reject', got '{v}'"
        ))
      })?;
    }
    if let Some(v) = r.deadline_ms {
      o.deadline_ms = deadline_ms(v)?;
    }
    if let Some(v) = r.stall_after_ms {
      o.stall_after_ms = whole("stallAfterMs", v)?;
    }
    if let Some(v) = r.consumer {
      o.consumer = Consumer::parse(&v).ok_or_else(|| {
        CoreError::InvalidOption(format!("consumer must be 'realtime', 'pull' or 'unpaced', got '{v}'"))
      })?;
    }
    if let Some(v) = r.fill_silence {
      o.fill_silence = v;
    }
    if let Some(v) = r.preroll_ms {
      o.preroll_ms = whole("prerollMs", v)?;
    }
    if let Some(v) = r.reader_buffer_ms {
      let ms = whole("readerBufferMs", v)?;
      if ms % CHUNK_MS != 0 {
        return Err(CoreError::InvalidOption(format!(
          "readerBufferMs must be a multiple of {CHUNK_MS}, got {ms}"
        )));
      }
      o.reader_chunks = (ms / CHUNK_MS) as usize;
    }
    o.processors = r.processors.iter().map(RawProcessor::spec).collect::<Result<_>>()?;
    (o.processor_bypass_after, o.processor_budget) = processor_limits(r.processor_bypass_after, r.processor_budget_ms)?;
    o.validate()?;
    Ok(o)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn raw() -> RawOptions {
    RawOptions {
      sample_rate: 48_000.0,
      channels: 1.0,
      ..Default::default()
    }
  }

  #[test]
  fn a_calls_deadline_has_the_options_range() {
    assert_eq!(deadline_ms(0.0).unwrap(), 0);
    assert_eq!(deadline_ms(MAX_DEADLINE_MS as f64).unwrap(), MAX_DEADLINE_MS);
    for bad in [MAX_DEADLINE_MS as f64 + 1.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
      assert!(matches!(deadline_ms(bad), Err(CoreError::InvalidOption(_))), "{bad}");
      let r = RawOptions {
        deadline_ms: Some(bad),
        ..raw()
      };
      assert!(
        matches!(SourceOptions::from_raw(r), Err(CoreError::InvalidOption(_))),
        "{bad}"
      );
    }
  }

  #[test]
  fn bypass_after_out_of_range_is_refused_without_processors_too() {
    for bad in [0.0, MAX_BYPASS_AFTER_F + 1.0] {
      let r = RawOptions {
        processor_bypass_after: Some(bad),
        ..raw()
      };
      assert!(
        matches!(SourceOptions::from_raw(r), Err(CoreError::InvalidOption(_))),
        "{bad}"
      );
    }
    let r = RawOptions {
      processor_bypass_after: Some(1.0),
      ..raw()
    };
    assert_eq!(SourceOptions::from_raw(r).unwrap().processor_bypass_after, 1);
  }

  const MAX_BYPASS_AFTER_F: f64 = crate::process::MAX_BYPASS_AFTER as f64;
}
