//! `NativeEncoded`: an encoder attached to a source and its bounded byte output. Reads
//! hand over whole pieces; segment ends and encoder errors are taken in batches after an
//! `encoded` event, so nothing crosses into JavaScript per 10 ms chunk.

use std::sync::Arc;

use capstan_core::encode::{EncodeOptions, RawEncodeOptions};
use capstan_core::sink::encode::{Read, SegmentInfo};
use capstan_core::sink::EncodedOutput;
use capstan_core::{CoreError, Source};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{js_err, JsWait, Result};
use crate::record::{check_out, deadline, slots};

#[napi(object, js_name = "EncodeOptions")]
pub struct JsEncodeOptions {
  pub format: Option<String>,
  pub bitrate: Option<f64>,
  pub complexity: Option<f64>,
  pub application: Option<String>,
  pub frame_ms: Option<f64>,
  pub page_ms: Option<f64>,
  pub dtx: Option<bool>,
  pub fec: Option<bool>,
  pub packet_loss_percent: Option<f64>,
  pub sample_rate: Option<f64>,
  pub vbr_quality: Option<f64>,
  pub quality: Option<f64>,
  pub queue_bytes: Option<f64>,
  pub overflow: Option<String>,
  pub fill_gaps: Option<bool>,
}

#[napi(object)]
pub struct JsSegment {
  pub index: u32,
  pub samples: f64,
  pub bytes: f64,
  pub header_patch: Option<Uint8Array>,
  pub last: bool,
  pub first_piece_ms: Option<f64>,
}

impl From<SegmentInfo> for JsSegment {
  fn from(s: SegmentInfo) -> Self {
    JsSegment {
      index: s.index,
      samples: s.samples as f64,
      bytes: s.bytes as f64,
      header_patch: s.header_patch.map(Uint8Array::new),
      last: s.last,
      first_piece_ms: s.first_piece_ms,
    }
  }
}

/// `state`: `bytes` (with `bytes`, and `end` when they close a segment), `empty` (an
/// `encoded` event follows when there are more) or `ended`.
#[napi(object)]
pub struct JsEncodedRead {
  pub state: String,
  pub bytes: Option<Uint8Array>,
  pub end: Option<JsSegment>,
}

#[napi(object)]
pub struct JsEncodedMetrics {
  pub produced_bytes: f64,
  pub read_bytes: f64,
  pub queued_bytes: f64,
  pub dropped_bytes: f64,
  pub cleared_bytes: f64,
  pub pieces: f64,
  pub dropped_pieces: f64,
  pub segments: f64,
  pub encoded_samples: f64,
  pub ignored_samples: f64,
  pub errors: f64,
  pub caller_encodes: f64,
  pub encode_us: JsWait,
  pub first_piece_ms: Option<f64>,
}

#[napi]
pub struct NativeEncoded {
  source: Arc<Source>,
  out: Arc<EncodedOutput>,
}

impl NativeEncoded {
  pub(crate) fn attach(source: &Arc<Source>, options: Unknown<'_>) -> Result<Self> {
    // Safety: `options` is a live value of the current call's scope.
    let o = unsafe { JsEncodeOptions::from_napi_value(options.value().env, options.raw()) }
      .map_err(|e| js_err(CoreError::InvalidOption(format!("encode options: {}", e.reason))))?;
    let opts = EncodeOptions::from_raw(RawEncodeOptions {
      format: o.format,
      bitrate: o.bitrate,
      complexity: o.complexity,
      application: o.application,
      frame_ms: o.frame_ms,
      page_ms: o.page_ms,
      dtx: o.dtx,
      fec: o.fec,
      packet_loss_percent: o.packet_loss_percent,
      sample_rate: o.sample_rate,
      vbr_quality: o.vbr_quality,
      quality: o.quality,
      queue_bytes: o.queue_bytes,
      overflow: o.overflow,
      fill_gaps: o.fill_gaps,
    })
    .map_err(js_err)?;
    let out = source
      .encode(&opts.settings, opts.queue_bytes, opts.overflow, opts.fill_gaps)
      .map_err(js_err)?;
    Ok(NativeEncoded {
      source: source.clone(),
      out,
    })
  }
}

#[napi]
impl NativeEncoded {
  /// Whole pieces, about `maxBytes` at most (at least one piece).
  #[napi(catch_unwind)]
  pub fn read(&self, max_bytes: u32) -> JsEncodedRead {
    match self.out.read(max_bytes as usize) {
      Read::Bytes { bytes, end } => JsEncodedRead {
        state: "bytes".into(),
        bytes: Some(Uint8Array::new(bytes)),
        end: end.map(Into::into),
      },
      Read::Empty => JsEncodedRead {
        state: "empty".into(),
        bytes: None,
        end: None,
      },
      Read::Ended => JsEncodedRead {
        state: "ended".into(),
        bytes: None,
        end: None,
      },
    }
  }

  /// Ends the current segment after everything captured so far (padding the carried
  /// remainder like `flush()`, whose outcome record goes to `out`); `last` ends the stream.
  #[napi(catch_unwind)]
  pub fn cut(&self, last: bool, deadline_ms: Option<f64>, mut out: Float64ArraySlice) -> Result<()> {
    let out = slots(&mut out);
    check_out(out)?;
    let r = self
      .source
      .cut_segment(&self.out, last, deadline(deadline_ms)?)
      .map_err(js_err)?;
    r.write(out);
    Ok(())
  }

  /// Discards unread bytes (counted `clearedBytes`); returns how many.
  #[napi(catch_unwind)]
  pub fn clear(&self) -> f64 {
    self.out.clear() as f64
  }

  #[napi(catch_unwind)]
  pub fn take_finished(&self) -> Vec<JsSegment> {
    self.out.take_finished().into_iter().map(Into::into).collect()
  }

  #[napi(catch_unwind)]
  pub fn take_errors(&self) -> Vec<String> {
    self.out.take_errors()
  }

  #[napi(catch_unwind)]
  pub fn metrics(&self) -> JsEncodedMetrics {
    let m = self.out.metrics();
    JsEncodedMetrics {
      produced_bytes: m.produced_bytes as f64,
      read_bytes: m.read_bytes as f64,
      queued_bytes: m.queued_bytes as f64,
      dropped_bytes: m.dropped_bytes as f64,
      cleared_bytes: m.cleared_bytes as f64,
      pieces: m.pieces as f64,
      dropped_pieces: m.dropped_pieces as f64,
      segments: m.segments as f64,
      encoded_samples: m.encoded_samples as f64,
      ignored_samples: m.ignored_samples as f64,
      errors: m.errors as f64,
      caller_encodes: m.caller_encodes as f64,
      encode_us: JsWait {
        p50: m.encode_us_p50,
        p99: m.encode_us_p99,
        max: m.encode_us_max,
      },
      first_piece_ms: m.first_piece_ms,
    }
  }

  #[napi(getter, catch_unwind)]
  pub fn ended(&self) -> bool {
    self.out.is_ended()
  }
}
