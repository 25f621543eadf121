//! Echo cancellation and automatic gain on synthetic but honest audio.
//!
//! The far end is speech-like (a jittered, gliding glottal pulse train through three moving
//! formants, syllable envelopes, fricatives, pauses). It is played by a real realtime
//! `Source` ticked by hand (faster than real time, the engine's own delivery path), so the
//! reference is what the source delivered after its processors. The "room" turns what was
//! delivered into the echo: a 60 ms direct path then 300 reflections decaying with an RT60
//! of 250 ms over 200 ms. The microphone is echo + a different near-end talker + noise, and
//! it enters a pull source with `echoCancel` (the `AudioStream` model). Timeline, in 10 s
//! cycles: [0, 5) far end only, [5, 8) double talk, [8, 10) near end only.
//!
//! Measured values are printed (`cargo test -p capstan-core --test echo -- --nocapture`).

use std::sync::Arc;
use std::time::Instant;

use capstan_core::events::Bus;
use capstan_core::process::reference::{register, TapCursor};
use capstan_core::process::{
  AutoGain, AutoGainOptions, DoubleTalk, EchoCancel, EchoCancelOptions, EchoNoiseSuppression, Processor, ReferenceTap,
  Spec,
};
use capstan_core::{Consumer, Format, FrameRef, Read, Source, SourceOptions};

// ---------------------------------------------------------------- signals

struct Rng(u64);
impl Rng {
  fn new(s: u64) -> Self {
    Rng(s.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
  }
  fn next(&mut self) -> u64 {
    let mut x = self.0;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    self.0 = x;
    x
  }
  fn uniform(&mut self) -> f64 {
    (self.next() >> 11) as f64 / (1u64 << 53) as f64
  }
  fn gauss(&mut self) -> f64 {
    let u1 = self.uniform().max(1e-12);
    let u2 = self.uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
  }
}

/// Speech-like audio, active RMS `level` (full scale 1.0).
fn speech(fs: u32, secs: f64, seed: u64, f0_base: f64, level: f64) -> Vec<f64> {
  let n = (fs as f64 * secs) as usize;
  let fsf = fs as f64;
  let mut r = Rng::new(seed);
  let mut out = vec![0f64; n];
  let (mut i, mut phase) = (0usize, 0f64);
  let mut res = [[0f64; 2]; 3];
  while i < n {
    for _ in 0..2 + r.next() % 4 {
      let len = ((0.08 + 0.1 * r.uniform()) * fsf) as usize;
      let voiced = r.uniform() > 0.2;
      let f = [
        300.0 + 500.0 * r.uniform(),
        900.0 + 1400.0 * r.uniform(),
        2300.0 + 900.0 * r.uniform(),
      ];
      let bw = [80.0, 120.0, 180.0];
      let coef: Vec<(f64, f64)> = (0..3)
        .map(|k| {
          let rad = (-std::f64::consts::PI * bw[k] / fsf).exp();
          (
            2.0 * rad * (std::f64::consts::TAU * f[k].min(fsf * 0.45) / fsf).cos(),
            -rad * rad,
          )
        })
        .collect();
      let (f0a, f0b) = (
        f0_base * (0.85 + 0.3 * r.uniform()),
        f0_base * (0.85 + 0.3 * r.uniform()),
      );
      for j in 0..len {
        if i >= n {
          break;
        }
        let t = j as f64 / len as f64;
        let env = (std::f64::consts::PI * t).sin().powf(0.6);
        let exc = if voiced {
          phase += (f0a + (f0b - f0a) * t) * (1.0 + 0.01 * r.gauss()) / fsf;
          let pulse = if phase >= 1.0 {
            phase -= 1.0;
            1.0
          } else {
            0.0
          };
          pulse + 0.02 * r.gauss()
        } else {
          0.3 * r.gauss()
        };
        let mut y = 0.0;
        for k in 0..3 {
          let v = exc + coef[k].0 * res[k][0] + coef[k].1 * res[k][1];
          res[k][1] = res[k][0];
          res[k][0] = v;
          y += v * [1.0, 0.6, 0.3][k];
        }
        out[i] = y * env;
        i += 1;
      }
    }
    i += ((0.05 + 0.25 * r.uniform()) * fsf) as usize;
  }
  let active: Vec<f64> = out.iter().copied().filter(|v| v.abs() > 1e-4).collect();
  let rms = (active.iter().map(|v| v * v).sum::<f64>() / active.len().max(1) as f64).sqrt();
  out.iter().map(|v| (v * level / rms).clamp(-1.0, 1.0)).collect()
}

/// The room: a direct path at `delay_ms` (gain 0.5), then 300 reflections over 200 ms,
/// decaying exponentially (RT60 `rt60_ms`).
fn rir(fs: u32, delay_ms: f64, rt60_ms: f64) -> Vec<(usize, f64)> {
  let mut r = Rng::new(7);
  let d = (delay_ms * fs as f64 / 1000.0) as usize;
  let mut taps = vec![(d, 0.5)];
  let tail = (0.2 * fs as f64) as usize;
  for _ in 0..300 {
    let off = 1 + (r.next() as usize % tail);
    let t = off as f64 / fs as f64;
    taps.push((d + off, 0.25 * (-6.9 * t / (rt60_ms / 1000.0)).exp() * r.gauss()));
  }
  taps
}

/// A streaming convolver: feed it what the speaker played, chunk by chunk.
struct Room {
  taps: Vec<(usize, f64)>,
  hist: Vec<f64>,
}
impl Room {
  fn new(taps: Vec<(usize, f64)>) -> Self {
    let len = taps.iter().map(|t| t.0).max().unwrap() + 1;
    Room {
      taps,
      hist: vec![0.0; len],
    }
  }
  fn play(&mut self, x: &[f64]) -> Vec<f64> {
    let keep = self.hist.len();
    self.hist.extend_from_slice(x);
    let base = self.hist.len() - x.len();
    let y = (0..x.len())
      .map(|i| self.taps.iter().map(|&(k, a)| a * self.hist[base + i - k]).sum())
      .collect();
    self.hist.drain(..self.hist.len() - keep);
    y
  }
}

fn far_active(t: f64) -> bool {
  t % 10.0 < 8.0
}
fn near_active(t: f64) -> bool {
  t % 10.0 >= 5.0
}

fn to_i16(x: f64) -> i16 {
  (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

fn db(p: f64) -> f64 {
  10.0 * p.max(1e-20).log10()
}

// ---------------------------------------------------------------- the run

struct Run {
  fs: u32,
  mic: Vec<f64>,
  near: Vec<f64>,
  out: Vec<f64>,
  /// Delay estimates (ms) and ERLE (dB) the processor reported, once a second.
  delays: Vec<Option<f64>>,
  health: Vec<(&'static str, f64)>,
  us_per_chunk: Vec<f64>,
}

fn opts(rate: u32, consumer: Consumer, processors: Vec<Spec>) -> SourceOptions {
  let mut o = SourceOptions::new(rate, 1).unwrap();
  o.consumer = consumer;
  o.queue_ms = 200;
  o.processors = processors;
  o
}

/// `secs` of the scenario through the engine: a realtime far-end source (with a −3 dB gain
/// processor, so the reference is provably taken after the processors) ticked by hand, its
/// delivered chunks through the room into a pull source with `echoCancel`.
fn run_engine(fs: u32, secs: f64, double_talk: Option<&str>) -> Run {
  let bus = Bus::new();
  let far_src = Source::new(
    1,
    opts(fs, Consumer::Realtime, vec![Spec::Gain { db: -3.0 }]),
    bus.clone(),
  )
  .unwrap();
  let tap = far_src.reference_tap();
  assert!(Arc::ptr_eq(&tap, &far_src.reference_tap()), "one tap per source");
  let id = register(&tap);
  assert_eq!(register(&tap), id, "the same tap keeps its id");
  let mut raw = capstan_core::RawProcessor {
    kind: "echoCancel".into(),
    reference: Some(id as f64),
    double_talk: double_talk.map(String::from),
    ..Default::default()
  };
  let spec = capstan_core::RawOptions {
    sample_rate: fs as f64,
    channels: 1.0,
    consumer: Some("pull".into()),
    processors: vec![raw.clone()],
    ..Default::default()
  };
  let near_opts = SourceOptions::from_raw(spec).expect("echoCancel parses");
  let near_src = Source::new(2, near_opts, bus.clone()).unwrap();
  raw.reference = Some(id as f64 + 1000.0);
  let bad = capstan_core::RawOptions {
    sample_rate: fs as f64,
    channels: 1.0,
    processors: vec![raw],
    ..Default::default()
  };
  assert_eq!(SourceOptions::from_raw(bad).unwrap_err().code(), "ERR_INVALID_OPTION");

  let n10 = fs as usize / 100;
  let far = speech(fs, secs, 1, 120.0, 0.1);
  let far: Vec<f64> = far
    .iter()
    .enumerate()
    .map(|(i, &v)| if far_active(i as f64 / fs as f64) { v } else { 0.0 })
    .collect();
  let near = speech(fs, secs, 2, 210.0, 0.08);
  let near: Vec<f64> = near
    .iter()
    .enumerate()
    .map(|(i, &v)| if near_active(i as f64 / fs as f64) { v } else { 0.0 })
    .collect();
  let mut noise = Rng::new(3);
  let mut room = Room::new(rir(fs, 60.0, 250.0));
  let mut speaker = TapCursor::default();
  let (mut mic, mut out) = (Vec::new(), Vec::new());
  let (mut delays, mut us) = (Vec::new(), Vec::new());
  let chunks = far.len() / n10;
  tap.read(&mut speaker, 10, |_| ());
  for c in 0..chunks {
    let now = Instant::now();
    let far_chunk: Vec<i16> = far[c * n10..(c + 1) * n10].iter().map(|&v| to_i16(v)).collect();
    far_src.capture(FrameRef::i16(&far_chunk), None).unwrap();
    far_src.tick(now, 1);
    // The speaker plays what the source delivered (read from its tap like the canceller).
    let mut played = Vec::new();
    assert_eq!(
      tap.read(&mut speaker, 10, |ch| played
        .extend(ch.iter().map(|&s| s as f64 / 32768.0))),
      1
    );
    let echo = room.play(&played);
    let m: Vec<f64> = (0..n10)
      .map(|i| echo[i] + near[c * n10 + i] + 3e-4 * noise.gauss())
      .collect();
    let mic_chunk: Vec<i16> = m.iter().map(|&v| to_i16(v)).collect();
    mic.extend(mic_chunk.iter().map(|&s| s as f64 / 32767.0));
    near_src.capture(FrameRef::i16(&mic_chunk), None).unwrap();
    let t0 = Instant::now();
    near_src.tick(now, 1);
    us.push(t0.elapsed().as_secs_f64() * 1e6);
    match near_src.read() {
      Read::Chunk(ch) => out.extend(ch.iter().map(|&s| s as f64 / 32767.0)),
      other => panic!("chunk {c}: {other:?}"),
    }
    if c % 100 == 99 {
      let m = near_src.metrics();
      let h = &m.processors[0].health;
      delays.push(h.iter().find(|(k, _)| *k == "delayMs").map(|v| v.1));
    }
  }
  let m = near_src.metrics();
  assert_eq!(m.processors[0].name, "echoCancel");
  assert_eq!(m.processors[0].failures, 0);
  assert_eq!(m.captured, m.delivered + m.queued + m.dropped + m.cleared);
  Run {
    fs,
    mic,
    near: near.iter().map(|&v| to_i16(v) as f64 / 32767.0).collect(),
    out,
    delays,
    health: m.processors[0].health.clone(),
    us_per_chunk: us,
  }
}

/// The processor's own latency: the lag (in samples, up to 20 ms) at which the output best
/// matches the near end in near-end-only stretches.
fn output_lag(r: &Run) -> usize {
  let fs = r.fs as f64;
  (0..r.fs as usize / 50)
    .max_by(|&a, &b| {
      let score = |lag: usize| -> f64 {
        (0..r.out.len() - lag)
          .filter(|&i| {
            let t = i as f64 / fs;
            near_active(t) && !far_active(t)
          })
          .map(|i| r.near[i] * r.out[i + lag])
          .sum()
      };
      score(a).partial_cmp(&score(b)).unwrap()
    })
    .unwrap()
}

struct Figures {
  erle: Vec<f64>,
  dt_snr: Vec<f64>,
  dt_snr_mic: Vec<f64>,
  near_only_snr: Vec<f64>,
}

fn figures(r: &Run, lag: usize) -> Figures {
  let fs = r.fs as f64;
  let idx = |t: f64| (t * fs) as usize;
  let cycles = (r.out.len() as f64 / fs / 10.0) as usize;
  let mut f = Figures {
    erle: vec![],
    dt_snr: vec![],
    dt_snr_mic: vec![],
    near_only_snr: vec![],
  };
  for c in 0..cycles {
    let base = c as f64 * 10.0;
    // Far end only, after convergence (≤ 2 s) and clear of the last near-end burst's tail.
    let (a, b) = if c == 0 { (2.0, 5.0) } else { (base + 0.3, base + 5.0) };
    let (pm, po): (f64, f64) = (idx(a)..idx(b))
      .map(|i| (r.mic[i].powi(2), r.out[i + lag].powi(2)))
      .fold((0.0, 0.0), |s, v| (s.0 + v.0, s.1 + v.1));
    f.erle.push(db(pm / po));
    let snr = |a: f64, b: f64, x: &dyn Fn(usize) -> f64| {
      let (pn, pe): (f64, f64) = (idx(a)..idx(b))
        .map(|i| (r.near[i].powi(2), (x(i) - r.near[i]).powi(2)))
        .fold((0.0, 0.0), |s, v| (s.0 + v.0, s.1 + v.1));
      db(pn / pe)
    };
    f.dt_snr.push(snr(base + 5.2, base + 8.0, &|i| r.out[i + lag]));
    f.dt_snr_mic.push(snr(base + 5.2, base + 8.0, &|i| r.mic[i]));
    f.near_only_snr.push(snr(base + 8.3, base + 9.9, &|i| r.out[i + lag]));
  }
  f
}

fn round1(v: &[f64]) -> Vec<f64> {
  v.iter().map(|x| (x * 10.0).round() / 10.0).collect()
}

#[test]
fn echo_cancel_through_the_engine_for_a_minute_at_16k() {
  let r = run_engine(16_000, 60.0, None);
  let lag = output_lag(&r);
  let f = figures(&r, lag);
  let mut us = r.us_per_chunk.clone();
  us.sort_by(|a, b| a.partial_cmp(b).unwrap());
  println!("output lag {lag} samples ({} ms)", lag as f64 / 16.0);
  println!("ERLE far-end only per 10 s cycle (dB): {:?}", round1(&f.erle));
  println!(
    "double-talk SNR vs clean near end (dB): out {:?}, mic {:?}",
    round1(&f.dt_snr),
    round1(&f.dt_snr_mic)
  );
  println!("near-end-only SNR (dB): {:?}", round1(&f.near_only_snr));
  println!("delay estimates once a second (ms): {:?}", r.delays);
  println!("health: {:?}", r.health);
  println!(
    "near-source pass per 10 ms chunk (debug build): p50 {:.0} us, p99 {:.0} us",
    us[us.len() / 2],
    us[us.len() * 99 / 100]
  );

  // AEC3's frame blocker: the output is 8 ms behind the input; the processor says so.
  assert_eq!(lag, 128, "output lag");
  // ERLE ≥ 25 dB in every far-end-only stretch after 2 s, including the last (no divergence).
  for (c, e) in f.erle.iter().enumerate() {
    assert!(*e >= 25.0, "cycle {c}: ERLE {e:.1} dB");
  }
  // The near end alone passes almost untouched.
  for (c, s) in f.near_only_snr.iter().enumerate() {
    assert!(*s >= 25.0, "cycle {c}: near-end-only SNR {s:.1} dB");
  }
  // Double talk: AEC3's suppressor trades near end for echo here (the echo is 4 dB louder
  // than the near talker at the microphone). The near end comes out better than it went in
  // but far from the 15 dB the issue asks for; see docs/API.md.
  let gains: Vec<f64> = f.dt_snr.iter().zip(&f.dt_snr_mic).map(|(o, m)| o - m).collect();
  for (c, g) in gains.iter().enumerate() {
    assert!(*g >= 2.0, "cycle {c}: double talk improved by {g:.1} dB only");
  }
  assert!(
    gains.iter().sum::<f64>() / gains.len() as f64 >= 4.0,
    "double talk: {gains:?}"
  );
  // AEC3's delay estimate, from the first second on: the 60 ms path within 5 ms.
  for (s, d) in r.delays.iter().enumerate() {
    let d = d.unwrap_or_else(|| panic!("no delay estimate at {} s", s + 1));
    assert!((d - 60.0).abs() <= 5.0, "at {} s: delay estimate {d} ms", s + 1);
  }
  let h = |k: &str| r.health.iter().find(|(n, _)| *n == k).map(|v| v.1);
  // The canceller starts reading at its first chunk, after the first tick's reference.
  assert_eq!(
    h("referenceMs"),
    Some(59_990.0),
    "every later tick's reference reached the canceller"
  );
  assert_eq!(h("referenceSkippedMs"), Some(0.0));
  assert!(h("erleDb").is_some() && h("doubleTalkMs").unwrap() > 0.0);
  let removed = h("echoRemovedDb").unwrap();
  // A running figure over every chunk not judged double talk (onsets and missed double
  // talk included), so lower than the windows above.
  assert!(removed >= 15.0, "echoRemovedDb {removed:.1}");
}

/// Issue 20's double-talk figure: `doubleTalk: 'preserve'` (the Kalman canceller) keeps the
/// near end while both talk, removes the echo once converged and finds the delay.
#[test]
fn echo_cancel_preserves_the_near_end_in_double_talk_at_16k() {
  let r = run_engine(16_000, 60.0, Some("preserve"));
  let lag = output_lag(&r);
  let f = figures(&r, lag);
  println!("output lag {lag} samples ({} ms)", lag as f64 / 16.0);
  println!("ERLE far-end only per 10 s cycle (dB): {:?}", round1(&f.erle));
  println!(
    "double-talk SNR vs clean near end (dB): out {:?}, mic {:?}",
    round1(&f.dt_snr),
    round1(&f.dt_snr_mic)
  );
  println!("near-end-only SNR (dB): {:?}", round1(&f.near_only_snr));
  println!("delay estimates once a second (ms): {:?}", r.delays);
  println!("health: {:?}", r.health);

  // The postfilter's overlap-add: one chunk, as the processor says.
  assert_eq!(lag, 160, "output lag");
  // Double talk: the near end at 15 dB or better over the echo left and its own distortion,
  // in every cycle, from the first.
  for (c, s) in f.dt_snr.iter().enumerate() {
    assert!(*s >= 15.0, "cycle {c}: double-talk SNR {s:.1} dB");
  }
  // ERLE ≥ 25 dB in every far-end-only stretch, the first (2–5 s: converged within 2 s,
  // 31 dB measured) and the last included (no divergence).
  for (c, e) in f.erle.iter().enumerate() {
    assert!(*e >= 25.0, "cycle {c}: ERLE {e:.1} dB");
  }
  for (c, s) in f.near_only_snr.iter().enumerate() {
    assert!(*s >= 25.0, "cycle {c}: near-end-only SNR {s:.1} dB");
  }
  // The filter's largest tap: the 60 ms path within 5 ms, from the third second on.
  for (s, d) in r.delays.iter().enumerate().skip(2) {
    let d = d.unwrap_or_else(|| panic!("no delay estimate at {} s", s + 1));
    assert!((d - 60.0).abs() <= 5.0, "at {} s: delay estimate {d} ms", s + 1);
  }
}

/// The tap gets what the source delivered after its processors, and a chunk of silence for
/// every tick that had nothing to play.
#[test]
fn the_reference_tap_holds_delivered_audio_and_silence_for_underruns() {
  let bus = Bus::new();
  let src = Source::new(
    1,
    opts(
      8_000,
      Consumer::Realtime,
      vec![Spec::Gain {
        db: 6.020_599_913_279_624,
      }],
    ),
    bus,
  )
  .unwrap();
  let tap = src.reference_tap();
  let mut cur = TapCursor::default();
  assert_eq!(tap.read(&mut cur, 100, |_| ()), 0);
  let now = Instant::now();
  src.tick(now, 2);
  src.capture(FrameRef::i16(&[100i16; 80]), None).unwrap();
  src.tick(now, 1);
  src.tick(now, 1);
  let mut got: Vec<Vec<i16>> = Vec::new();
  tap.read(&mut cur, 100, |c| got.push(c.to_vec()));
  assert_eq!(got.len(), 4, "one chunk per tick");
  assert_eq!(got[0], vec![0; 80]);
  assert_eq!(got[1], vec![0; 80]);
  assert_eq!(got[2], vec![200; 80], "after the +6 dB gain");
  assert_eq!(got[3], vec![0; 80], "an underrun tick is silence");
}

/// 12 s of far end (6 s talking) into a near end at `near_rate`, reference at `far_rate`,
/// driving the processor directly. Returns (ERLE over 2..6 s, delay estimate).
fn direct(far_rate: u32, near_rate: u32) -> (f64, Option<f64>) {
  direct_bursts(far_rate, near_rate, 1).0
}

fn direct_bursts(far_rate: u32, near_rate: u32, burst: usize) -> ((f64, Option<f64>), Vec<Option<f64>>) {
  // Each burst once its last tick's reference is in.
  let schedule = move |t: usize| if (t + 1) % burst == 0 { t + 1 } else { t / burst * burst };
  let (r, delays, _) = direct_schedule(far_rate, near_rate, DoubleTalk::Suppress, schedule, (200, 600));
  (r, delays)
}

/// [`direct`] with the near end reaching the canceller on a schedule: after tick `t`'s
/// reference is delivered, capture chunks up to `schedule(t)` (exclusive) are processed (a
/// stream's pass takes its queued chunks together; `t + 2` is a chunk processed before its
/// reference). ERLE over the chunks in `window`. Also returns the delay estimates once a
/// second and the health at the end.
type Health = Vec<(&'static str, f64)>;
fn direct_schedule(
  far_rate: u32,
  near_rate: u32,
  double_talk: DoubleTalk,
  schedule: impl Fn(usize) -> usize,
  window: (usize, usize),
) -> ((f64, Option<f64>), Vec<Option<f64>>, Health) {
  let (ff, nf) = (Format::new(far_rate, 1).unwrap(), Format::new(near_rate, 1).unwrap());
  let tap = Arc::new(ReferenceTap::new(ff));
  let o = EchoCancelOptions {
    reference: tap.clone(),
    high_pass: false,
    noise_suppression: EchoNoiseSuppression::Off,
    double_talk,
  };
  let mut aec = EchoCancel::new(nf, o).unwrap();
  let secs = 12.0;
  // The far end and its echo are made at the higher rate and decimated to each end's.
  // (Decimation without a low-pass aliases a little; both ends get the same content.)
  let hi = far_rate.max(near_rate);
  let far_hi = speech(hi, secs, 1, 120.0, 0.1);
  let far_hi: Vec<f64> = far_hi
    .iter()
    .enumerate()
    .map(|(i, &v)| if (i as f64 / hi as f64) < 6.0 { v } else { 0.0 })
    .collect();
  let far: Vec<f64> = far_hi.iter().step_by((hi / far_rate) as usize).copied().collect();
  let echo_hi = Room::new(rir(hi, 60.0, 250.0)).play(&far_hi);
  let echo: Vec<f64> = echo_hi.iter().step_by((hi / near_rate) as usize).copied().collect();
  let (n_far, n_near) = (ff.chunk_len(), nf.chunk_len());
  let (mut pm, mut po) = (0.0, 0.0);
  let mut out = Vec::new();
  let mut delays = Vec::new();
  let total = (secs * 100.0) as usize;
  let mut done = 0;
  for t in 0..total + 8 {
    if t < total {
      tap.push(
        &far[t * n_far..(t + 1) * n_far]
          .iter()
          .map(|&v| to_i16(v))
          .collect::<Vec<_>>(),
      );
    }
    let upto = if t < total {
      schedule(t).clamp(done, total)
    } else {
      total
    };
    for c in done..upto {
      let mic: Vec<i16> = echo[c * n_near..(c + 1) * n_near].iter().map(|&v| to_i16(v)).collect();
      out.clear();
      aec.process(&mic, &mut out).unwrap();
      if (window.0..window.1).contains(&c) {
        pm += mic.iter().map(|&s| (s as f64).powi(2)).sum::<f64>();
        po += out.iter().map(|&s| (s as f64).powi(2)).sum::<f64>();
      }
      if c % 100 == 99 {
        delays.push(aec.delay_estimate_ms());
      }
    }
    done = upto;
  }
  ((db(pm / po), aec.delay_estimate_ms()), delays, aec.health())
}

/// `preserve` with the near end reaching it as a real-time feed does: in passes of 1–8
/// chunks, late by up to 6 chunks, now and then a chunk ahead of its reference (seeded).
/// Pairing by count keeps the echo path still for the filter: ERLE ≥ 25 dB once converged
/// (3–6 s), one delay estimate from the third second on, within 10 ms of the 60 ms path (a
/// chunk processed ahead of its reference reads as an echo one chunk sooner), and at most
/// the first pass's realignments.
#[test]
fn preserve_keeps_its_pairing_through_a_jittery_near_end() {
  for seed in [1u64, 7, 20261204] {
    let mut state = seed;
    let mut rand = move |n: u64| {
      state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
      (state >> 33) % n
    };
    // A precomputed schedule (Fn): how far the near end has got after each tick.
    let mut upto = Vec::new();
    let mut at = 0usize;
    for t in 0..1200usize {
      let late = rand(7) as usize;
      let ahead = usize::from(rand(10) == 0);
      if rand(3) == 0 {
        // This pass waits: the chunks queue up for a later one.
      } else {
        at = at.max((t + 1 + ahead).saturating_sub(late));
      }
      upto.push(at);
    }
    let ((erle, d), delays, health) = direct_schedule(16_000, 16_000, DoubleTalk::Preserve, |t| upto[t], (300, 600));
    let realigned = health.iter().find(|(k, _)| *k == "referenceRealigned").map(|v| v.1);
    println!("seed {seed}: ERLE {erle:.1} dB (3..6 s), delay {d:?}, realigned {realigned:?}, delays {delays:?}");
    assert!(erle >= 25.0, "seed {seed}: ERLE {erle:.1} dB");
    let steady = delays[2].unwrap_or_else(|| panic!("seed {seed}: no delay estimate at 3 s"));
    assert!((steady - 60.0).abs() <= 10.0, "seed {seed}: delay estimate {steady} ms");
    for (s, d) in delays.iter().enumerate().skip(2) {
      assert_eq!(*d, Some(steady), "seed {seed} at {} s: delay estimate moved", s + 1);
    }
    assert!(
      realigned.is_some_and(|r| r <= 3.0),
      "seed {seed}: realigned {realigned:?}"
    );
  }
}

/// A near end processed in bursts (4 and 8 chunks at a time, after the reference of those
/// ticks was delivered, as a stream's pass does with its queued chunks): the whole pending
/// reference reaches AEC3 before the burst's first chunk, and AEC3's render buffer absorbs
/// that jitter: the same delay estimate, ERLE ≥ 25 dB.
#[test]
fn a_bursty_near_end_keeps_the_delay_estimate() {
  for burst in [4, 8] {
    let ((erle, _), delays) = direct_bursts(16_000, 16_000, burst);
    println!("bursts of {burst}: ERLE {erle:.1} dB (2..6 s), delay estimates {delays:?}");
    assert!(erle >= 25.0, "burst {burst}: ERLE {erle:.1} dB");
    for (s, d) in delays.iter().enumerate().skip(1) {
      let d = d.unwrap_or_else(|| panic!("burst {burst}: no delay estimate at {} s", s + 1));
      assert!(
        (d - 60.0).abs() <= 5.0,
        "burst {burst} at {} s: delay estimate {d} ms",
        s + 1
      );
    }
  }
}

#[test]
fn echo_cancel_at_48k_and_against_a_reference_at_another_rate() {
  for (far_rate, near_rate) in [(48_000, 48_000), (16_000, 48_000), (48_000, 16_000)] {
    let (erle, d) = direct(far_rate, near_rate);
    println!("near end {near_rate} Hz, reference {far_rate} Hz: ERLE {erle:.1} dB (2..6 s), delay estimate {d:?} ms");
    assert!(erle >= 25.0, "{far_rate}/{near_rate}: ERLE {erle:.1} dB");
    assert!(d.is_some(), "{far_rate}/{near_rate}: no delay estimate");
  }
  // Shapes: unknown enum values are refused, naming the option.
  let e = EchoNoiseSuppression::parse("loud").unwrap_err();
  assert_eq!(e.code(), "ERR_INVALID_OPTION");
  assert!(e.message().contains("noiseSuppression"));
  let e = DoubleTalk::parse("keep").unwrap_err();
  assert_eq!(e.code(), "ERR_INVALID_OPTION");
  assert!(e.message().contains("doubleTalk"));
  // `preserve` runs the far end at the stream's rate: another rate is refused up front.
  let tap = Arc::new(ReferenceTap::new(Format::new(16_000, 1).unwrap()));
  let o = EchoCancelOptions {
    reference: tap,
    high_pass: false,
    noise_suppression: EchoNoiseSuppression::Off,
    double_talk: DoubleTalk::Preserve,
  };
  let e = EchoCancel::new(Format::new(48_000, 1).unwrap(), o)
    .err()
    .expect("refused");
  assert_eq!(e.code(), "ERR_INVALID_OPTION");
  assert!(e.message().contains("doubleTalk 'preserve'"), "{}", e.message());
}

// ---------------------------------------------------------------- autoGain

fn agc_run(input_dbfs: f64, secs: f64) -> (f64, f64, i16, AutoGain) {
  let fs = 16_000;
  let f = Format::new(fs, 1).unwrap();
  let mut agc = AutoGain::new(f, AutoGainOptions::default()).unwrap();
  let x = speech(fs, secs, 5, 150.0, 10f64.powf(input_dbfs / 20.0));
  let (mut p, mut n, mut peak) = (0.0, 0usize, 0i16);
  let mut out = Vec::new();
  for c in 0..x.len() / 160 {
    let chunk: Vec<i16> = x[c * 160..(c + 1) * 160].iter().map(|&v| to_i16(v)).collect();
    out.clear();
    agc.process(&chunk, &mut out).unwrap();
    peak = peak.max(out.iter().map(|s| s.saturating_abs()).max().unwrap());
    // Level of the active speech in the last 4 s (the same gate the input level used).
    if c as f64 >= (secs - 4.0) * 100.0 {
      for (i, &s) in out.iter().enumerate() {
        if x[c * 160 + i].abs() > 1e-4 {
          p += (s as f64 / 32768.0).powi(2);
          n += 1;
        }
      }
    }
  }
  (db(p / n as f64), agc.gain_db(), peak, agc)
}

#[test]
fn auto_gain_brings_quiet_and_loud_speech_to_the_target_without_clipping() {
  for input in [-40.0, -6.0] {
    let (level, gain, peak, agc) = agc_run(input, 10.0);
    let limit = (10f64.powf(-1.0 / 20.0) * 32767.0).ceil() as i16;
    println!("input {input} dBFS: output {level:.1} dBFS (target -18), gain {gain:.1} dB, peak {peak} (limit {limit}), health {:?}", agc.health());
    assert!((level + 18.0).abs() <= 3.0, "input {input}: output {level:.1} dBFS");
    assert!(peak <= limit, "input {input}: peak {peak} over the limiter ({limit})");
    assert!(peak < i16::MAX, "no clipping");
  }
  // Shapes: each option's limits, by name.
  for (o, name) in [
    (
      AutoGainOptions {
        target_dbfs: 0.5,
        ..Default::default()
      },
      "targetDbfs",
    ),
    (
      AutoGainOptions {
        max_gain_db: 61.0,
        ..Default::default()
      },
      "maxGainDb",
    ),
    (
      AutoGainOptions {
        max_gain_change_db_per_second: 0.0,
        ..Default::default()
      },
      "maxGainChangeDbPerSecond",
    ),
    (
      AutoGainOptions {
        limiter_dbfs: f64::NAN,
        ..Default::default()
      },
      "limiterDbfs",
    ),
    (
      AutoGainOptions {
        target_dbfs: -0.5 - 1.0,
        limiter_dbfs: -3.0,
        ..Default::default()
      },
      "limiterDbfs",
    ),
  ] {
    let e = AutoGain::new(Format::new(16_000, 1).unwrap(), o).err().unwrap();
    assert_eq!(e.code(), "ERR_INVALID_OPTION");
    assert!(e.message().contains(name), "{}", e.message());
  }
}

#[test]
fn auto_gain_limits_a_burst_with_no_sample_over_the_ceiling() {
  // A loud burst right after quiet speech raised the gain: the limiter catches it at once.
  let f = Format::new(16_000, 1).unwrap();
  let mut agc = AutoGain::new(f, AutoGainOptions::default()).unwrap();
  let quiet = speech(16_000, 6.0, 9, 150.0, 0.01);
  let mut out = Vec::new();
  for c in 0..600 {
    let ch: Vec<i16> = quiet[c * 160..(c + 1) * 160].iter().map(|&v| to_i16(v)).collect();
    out.clear();
    agc.process(&ch, &mut out).unwrap();
  }
  assert!(agc.gain_db() > 20.0, "gain {}", agc.gain_db());
  let burst: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { 20_000 } else { -20_000 }).collect();
  out.clear();
  agc.process(&burst, &mut out).unwrap();
  let limit = (10f64.powf(-1.0 / 20.0) * 32767.0).ceil() as i16;
  let peak = out.iter().map(|s| s.saturating_abs()).max().unwrap();
  println!(
    "burst after {:.1} dB of gain: peak {peak}, limiter {:?}",
    agc.gain_db(),
    agc.health()
  );
  assert!(peak <= limit && peak > limit - 200, "peak {peak}");
}
