//! Cost of one 10 ms chunk through each native frame processor (48 kHz mono unless named),
//! and through a chain, to compare with the 10 ms real-time budget per source
//! (`cargo bench -p capstan-core --bench process`).

use std::hint::black_box;
use std::time::Duration;

use std::sync::Arc;

use capstan_core::process::{
  AutoGainOptions, Chain, ChainEvent, DoubleTalk, EchoCancelOptions, EchoNoiseSuppression, Processor, ReferenceTap,
  Spec, VadOptions,
};
use capstan_core::Format;
use criterion::{criterion_group, criterion_main, Criterion};

/// One second of a 440 Hz tone over light noise, so no processor sees pure silence (RNNoise
/// skips its network on silent frames, which would flatter it).
fn audio(rate: u32) -> Vec<i16> {
  let mut s = 0x2545_f491_4f6c_dd1du64;
  (0..rate as usize)
    .map(|i| {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      let noise = (s % 601) as f64 - 300.0;
      let tone = 8_000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / rate as f64).sin();
      (tone + noise) as i16
    })
    .collect()
}

fn processors(c: &mut Criterion) {
  let mut g = c.benchmark_group("process_10ms");
  g.measurement_time(Duration::from_secs(2))
    .warm_up_time(Duration::from_millis(500))
    .sample_size(20);
  let cases: [(&str, u32, Spec); 10] = [
    ("gain_48k", 48_000, Spec::Gain { db: -6.0 }),
    ("high_pass_48k", 48_000, Spec::HighPass { hz: 80.0 }),
    ("resample_48k_to_16k", 48_000, Spec::Resample { to_rate: 16_000 }),
    ("resample_44k1_to_48k", 44_100, Spec::Resample { to_rate: 48_000 }),
    ("resample_16k_to_48k", 16_000, Spec::Resample { to_rate: 48_000 }),
    ("denoise_48k", 48_000, Spec::Denoise),
    ("denoise_16k", 16_000, Spec::Denoise),
    ("vad_48k", 48_000, Spec::Vad(VadOptions::default())),
    ("auto_gain_48k", 48_000, Spec::AutoGain(AutoGainOptions::default())),
    ("auto_gain_16k", 16_000, Spec::AutoGain(AutoGainOptions::default())),
  ];
  for (name, rate, spec) in cases {
    let f = Format::new(rate, 1).unwrap();
    let input = audio(rate);
    let mut p: Box<dyn Processor> = spec.build(f).unwrap();
    let mut out = Vec::with_capacity(p.output_format(f).chunk_len());
    let mut chunks = input.chunks_exact(f.chunk_len()).cycle();
    g.bench_function(name, |b| {
      b.iter(|| {
        out.clear();
        p.process(black_box(chunks.next().unwrap()), &mut out).unwrap();
        black_box(&out);
      })
    });
  }
  // The chain's own overhead (copy, catch_unwind, two clock reads, histogram) around gain.
  let f = Format::new(48_000, 1).unwrap();
  let input = audio(48_000);
  let chains: [(&str, Vec<Spec>); 2] = [
    ("chain_gain_48k", vec![Spec::Gain { db: -6.0 }]),
    (
      "chain_hp_denoise_vad_48k",
      vec![
        Spec::HighPass { hz: 80.0 },
        Spec::Denoise,
        Spec::Vad(VadOptions::default()),
      ],
    ),
  ];
  for (name, specs) in chains {
    let mut chain = Chain::from_specs(f, &specs, 5).unwrap();
    let mut events: Vec<ChainEvent> = Vec::new();
    let mut chunks = input.chunks_exact(f.chunk_len()).cycle();
    g.bench_function(name, |b| {
      b.iter(|| {
        events.clear();
        black_box(chain.process(black_box(chunks.next().unwrap()), &mut events).unwrap());
      })
    });
  }
  g.finish();
}

/// echoCancel per 10 ms: one reference chunk into the tap (as the far end's clock does) and
/// one microphone chunk (the reference 60 ms later at half level, over the noise) through
/// AEC3's render and capture sides.
fn echo_cancel(c: &mut Criterion) {
  let mut g = c.benchmark_group("process_10ms");
  g.measurement_time(Duration::from_secs(3))
    .warm_up_time(Duration::from_secs(1))
    .sample_size(20);
  for (name, rate, double_talk) in [
    ("echo_cancel_16k", 16_000u32, DoubleTalk::Suppress),
    ("echo_cancel_48k", 48_000, DoubleTalk::Suppress),
    ("echo_cancel_preserve_16k", 16_000, DoubleTalk::Preserve),
    ("echo_cancel_preserve_48k", 48_000, DoubleTalk::Preserve),
  ] {
    let f = Format::new(rate, 1).unwrap();
    let far = audio(rate);
    let d = rate as usize * 60 / 1000;
    let mic: Vec<i16> = (0..far.len())
      .map(|i| far[(i + far.len() - d) % far.len()] / 2)
      .collect();
    let tap = Arc::new(ReferenceTap::new(f));
    let mut p: Box<dyn Processor> = Spec::EchoCancel(EchoCancelOptions {
      reference: tap.clone(),
      high_pass: false,
      noise_suppression: EchoNoiseSuppression::Off,
      double_talk,
    })
    .build(f)
    .unwrap();
    let mut out = Vec::with_capacity(f.chunk_len());
    let n = f.chunk_len();
    let mut k = 0usize;
    let chunks = far.len() / n;
    g.bench_function(name, |b| {
      b.iter(|| {
        let at = (k % chunks) * n;
        k += 1;
        tap.push(&far[at..at + n]);
        out.clear();
        p.process(black_box(&mic[at..at + n]), &mut out).unwrap();
        black_box(&out);
      })
    });
  }
  g.finish();
}

criterion_group!(benches, processors, echo_cancel);
criterion_main!(benches);
