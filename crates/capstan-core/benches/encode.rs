//! Throughput of capstan's Ogg Opus encoder against raw libopus through the same `opus`
//! crate (same bundled libopus, same settings), over one second of 48 kHz mono speech-like
//! audio per iteration (`cargo bench -p capstan-core --bench encode`).
//!
//! - `capstan_ogg_opus`: `encode::build(OggOpus)` fed 100 chunks of 10 ms (as the clock
//!   feeds it), 20 ms frames, one Ogg page per frame; one long logical stream (headers
//!   only in the first iteration, no `finish`).
//! - `raw_libopus`: `opus::Encoder::encode` of 50 frames of 20 ms into one reused buffer,
//!   no Ogg, no copies.
//!
//! Both at libopus's default complexity and again at complexity 5. The difference is the
//! cost of capstan's framing (10 ms → 20 ms buffering, the packet copy, Ogg lacing + CRC,
//! one `Vec` per page).

use std::hint::black_box;
use std::time::Duration;

use capstan_core::encode::{build, OpusSettings, Piece, Settings};
use capstan_core::Format;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// One second of a speech-like mix (200/450/1200/2800 Hz partials, syllable-rate
/// amplitude modulation, light noise), 48 kHz mono.
fn speech_like(rate: u32) -> Vec<i16> {
  let mut s = 0x2545_f491_4f6c_dd1du64;
  let r = rate as f64;
  (0..rate as usize)
    .map(|i| {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      let t = i as f64 / r;
      let tau = std::f64::consts::TAU;
      let env = 0.55 + 0.45 * (tau * 4.0 * t).sin();
      let v = 0.45 * (tau * 200.0 * t).sin()
        + 0.25 * (tau * 450.0 * t).sin()
        + 0.15 * (tau * 1200.0 * t).sin()
        + 0.08 * (tau * 2800.0 * t).sin();
      let noise = (s % 801) as f64 - 400.0;
      (v * env * 12_000.0 + noise) as i16
    })
    .collect()
}

fn encode(c: &mut Criterion) {
  let format = Format::new(48_000, 1).unwrap();
  let audio = speech_like(48_000);
  let mut g = c.benchmark_group("encode_1s_48k_mono");
  g.throughput(Throughput::Elements(audio.len() as u64))
    .measurement_time(Duration::from_secs(4))
    .warm_up_time(Duration::from_secs(1))
    .sample_size(30);
  for complexity in [None, Some(5)] {
    let tag = match complexity {
      None => "default".to_string(),
      Some(c) => format!("c{c}"),
    };

    let settings = Settings::OggOpus(OpusSettings {
      complexity,
      ..OpusSettings::default()
    });
    let mut enc = build(&settings, format).unwrap();
    let mut pieces: Vec<Piece> = Vec::with_capacity(8);
    g.bench_function(format!("capstan_ogg_opus/{tag}"), |b| {
      b.iter(|| {
        let mut bytes = 0usize;
        for chunk in audio.chunks_exact(format.chunk_len()) {
          pieces.clear();
          enc.push(black_box(chunk), &mut pieces).unwrap();
          for p in &pieces {
            bytes += p.bytes.len();
          }
        }
        black_box(bytes)
      })
    });

    let mut raw = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    if let Some(c) = complexity {
      raw.set_complexity(c).unwrap();
    }
    let mut packet = vec![0u8; 4000];
    g.bench_function(format!("raw_libopus/{tag}"), |b| {
      b.iter(|| {
        let mut bytes = 0usize;
        for frame in audio.chunks_exact(960) {
          bytes += raw.encode(black_box(frame), &mut packet).unwrap();
        }
        black_box(bytes)
      })
    });
  }
  g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
