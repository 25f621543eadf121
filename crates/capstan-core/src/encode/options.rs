//! Encoder options as callers write them (loosely typed, from JavaScript) to checked
//! [`EncodeOptions`]: one place decides defaults and what is refused, with the option named.

use super::{Application, Mp3Settings, OpusSettings, PcmSample, Settings};
use crate::error::{CoreError, Result};
use crate::queue::Overflow;
use crate::sink::encode::DEFAULT_QUEUE_BYTES;

/// Option names as callers write them; numbers arrive as f64.
#[derive(Debug, Clone, Default)]
pub struct RawEncodeOptions {
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

#[derive(Debug, Clone, PartialEq)]
pub struct EncodeOptions {
  pub settings: Settings,
  pub queue_bytes: usize,
  pub overflow: Overflow,
  pub fill_gaps: bool,
}

pub const FORMATS: [&str; 5] = ["ogg-opus", "mp3", "wav", "pcm-s16le", "pcm-f32le"];

fn whole(name: &str, v: f64, min: f64, max: f64) -> Result<f64> {
  if !v.is_finite() || v.fract() != 0.0 || v < min || v > max {
    return Err(CoreError::InvalidOption(format!(
      "{name} must be a whole number {min}..={max}, got {v}"
    )));
  }
  Ok(v)
}

impl EncodeOptions {
  pub fn from_raw(r: RawEncodeOptions) -> Result<Self> {
    let format = r
      .format
      .ok_or_else(|| CoreError::InvalidOption(format!("format is required: one of {}", FORMATS.join(", "))))?;
    // Options that belong to another format are refused rather than silently ignored.
    let only = |name: &str, set: bool, formats: &[&str]| -> Result<()> {
      if set && !formats.contains(&format.as_str()) {
        return Err(CoreError::InvalidOption(format!(
          "{name} applies to {} only, not {format}",
          formats.join(", ")
        )));
      }
      Ok(())
    };
    only("bitrate", r.bitrate.is_some(), &["ogg-opus", "mp3"])?;
    for (name, set) in [
      ("complexity", r.complexity.is_some()),
      ("application", r.application.is_some()),
      ("frameMs", r.frame_ms.is_some()),
      ("pageMs", r.page_ms.is_some()),
      ("dtx", r.dtx.is_some()),
      ("fec", r.fec.is_some()),
      ("packetLossPercent", r.packet_loss_percent.is_some()),
      ("sampleRate", r.sample_rate.is_some()),
    ] {
      only(name, set, &["ogg-opus"])?;
    }
    only("vbrQuality", r.vbr_quality.is_some(), &["mp3"])?;
    only("quality", r.quality.is_some(), &["mp3"])?;
    let settings = match format.as_str() {
      "ogg-opus" => {
        let d = OpusSettings::default();
        Settings::OggOpus(OpusSettings {
          bitrate: r
            .bitrate
            .map(|b| whole("bitrate", b, 6_000.0, 510_000.0))
            .transpose()?
            .map(|b| b as i32),
          complexity: r
            .complexity
            .map(|c| whole("complexity", c, 0.0, 10.0))
            .transpose()?
            .map(|c| c as i32),
          application: match r.application.as_deref() {
            None | Some("voip") => Application::Voip,
            Some("audio") => Application::Audio,
            Some("lowdelay") => Application::LowDelay,
            Some(a) => {
              return Err(CoreError::InvalidOption(format!(
                "application must be voip, audio or lowdelay, got {a}"
              )))
            }
          },
          frame_ms: r
            .frame_ms
            .map(|v| whole("frameMs", v, 10.0, 60.0))
            .transpose()?
            .map_or(d.frame_ms, |v| v as u32),
          page_ms: match (r.page_ms, r.frame_ms) {
            (Some(p), _) => whole("pageMs", p, 10.0, 1000.0)? as u32,
            // One frame a page unless told otherwise: the lowest latency to a reader.
            (None, Some(f)) => f.max(10.0) as u32,
            (None, None) => d.page_ms,
          },
          dtx: r.dtx.unwrap_or(false),
          fec: r.fec.unwrap_or(false),
          packet_loss_pct: r
            .packet_loss_percent
            .map(|v| whole("packetLossPercent", v, 0.0, 100.0))
            .transpose()?
            .map_or(0, |v| v as i32),
          rate: r
            .sample_rate
            .map(|v| whole("sampleRate", v, 8_000.0, 48_000.0))
            .transpose()?
            .map(|v| v as u32),
        })
      }
      "mp3" => Settings::Mp3(Mp3Settings {
        bitrate_kbps: r
          .bitrate
          .map(|b| whole("bitrate", b, 8_000.0, 320_000.0))
          .transpose()?
          .map_or(Mp3Settings::default().bitrate_kbps, |b| {
            // LAME takes kbit/s; a bitrate that is not a whole kbit/s is not a LAME step.
            if b % 1000.0 == 0.0 {
              (b / 1000.0) as u32
            } else {
              0
            }
          }),
        vbr_quality: r
          .vbr_quality
          .map(|v| whole("vbrQuality", v, 0.0, 9.0))
          .transpose()?
          .map(|v| v as u8),
        quality: r
          .quality
          .map(|v| whole("quality", v, 0.0, 9.0))
          .transpose()?
          .map(|v| v as u8),
      }),
      "wav" => Settings::Wav,
      "pcm-s16le" => Settings::Pcm(PcmSample::S16le),
      "pcm-f32le" => Settings::Pcm(PcmSample::F32le),
      f => {
        return Err(CoreError::InvalidOption(format!(
          "format must be one of {}, got {f}",
          FORMATS.join(", ")
        )))
      }
    };
    if !settings.available() {
      return Err(CoreError::InvalidOption(format!(
        "{} is not in this build (cargo feature `mp3` off)",
        settings.name()
      )));
    }
    let overflow = match r.overflow.as_deref() {
      None => Overflow::Wait,
      Some(s) => match Overflow::parse(s) {
        Some(Overflow::Reject) | None => {
          return Err(CoreError::InvalidOption(format!(
            "overflow of an encoded stream must be wait, drop-oldest or drop-newest, got {s}"
          )))
        }
        Some(o) => o,
      },
    };
    Ok(EncodeOptions {
      settings,
      queue_bytes: r
        .queue_bytes
        .map(|v| whole("queueBytes", v, 1.0, (1u64 << 32) as f64))
        .transpose()?
        .map_or(DEFAULT_QUEUE_BYTES, |v| v as usize),
      overflow,
      fill_gaps: r.fill_gaps.unwrap_or(false),
    })
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn raw(format: &str) -> RawEncodeOptions {
    RawEncodeOptions {
      format: Some(format.into()),
      ..Default::default()
    }
  }

  #[test]
  fn defaults_and_refusals_name_the_option() {
    let o = EncodeOptions::from_raw(raw("ogg-opus")).unwrap();
    assert_eq!(o.settings, Settings::OggOpus(OpusSettings::default()));
    assert_eq!(
      (o.queue_bytes, o.overflow, o.fill_gaps),
      (DEFAULT_QUEUE_BYTES, Overflow::Wait, false)
    );
    let o = EncodeOptions::from_raw(RawEncodeOptions {
      frame_ms: Some(60.0),
      ..raw("ogg-opus")
    })
    .unwrap();
    let Settings::OggOpus(s) = o.settings else { panic!() };
    assert_eq!((s.frame_ms, s.page_ms), (60, 60));
    for (r, word) in [
      (RawEncodeOptions::default(), "format is required"),
      (raw("flac"), "format must be"),
      (
        RawEncodeOptions {
          bitrate: Some(24_000.5),
          ..raw("ogg-opus")
        },
        "bitrate",
      ),
      (
        RawEncodeOptions {
          complexity: Some(3.0),
          ..raw("wav")
        },
        "complexity applies to ogg-opus only",
      ),
      (
        RawEncodeOptions {
          application: Some("music".into()),
          ..raw("ogg-opus")
        },
        "application",
      ),
      (
        RawEncodeOptions {
          overflow: Some("reject".into()),
          ..raw("wav")
        },
        "overflow",
      ),
      (
        RawEncodeOptions {
          queue_bytes: Some(0.0),
          ..raw("wav")
        },
        "queueBytes",
      ),
      (
        RawEncodeOptions {
          vbr_quality: Some(12.0),
          ..raw("mp3")
        },
        "vbrQuality",
      ),
    ] {
      let e = EncodeOptions::from_raw(r).err().expect("refused");
      assert_eq!(e.code(), "ERR_INVALID_OPTION");
      assert!(e.message().contains(word), "{e}");
    }
  }
}
