//! The mixer: inputs are ordinary pull sources, the output an ordinary realtime source whose
//! clock pass mixes first. The output (read through its reference tap: what it delivered)
//! must equal, sample for sample, the sum of the inputs times their gains, with the ducking
//! rule of `mix.rs` recomputed here independently; each input keeps its own accounting.

use std::sync::Arc;
use std::time::Instant;

use capstan_core::events::Bus;
use capstan_core::process::TapCursor;
use capstan_core::{Consumer, DuckOptions, FrameRef, Mix, MixRole, Source, SourceOptions};

const RATE: u32 = 16_000;
const N: usize = 160;

fn src(id: u64, consumer: Consumer, bus: &Arc<Bus>) -> Arc<Source> {
  let mut o = SourceOptions::new(RATE, 1).unwrap();
  o.consumer = consumer;
  o.queue_ms = 10_000;
  Source::new(id, o, bus.clone()).unwrap()
}

fn tone(len: usize, period: usize, amp: f64) -> Vec<i16> {
  (0..len)
    .map(|i| (amp * (std::f64::consts::TAU * i as f64 / period as f64).sin()).round() as i16)
    .collect()
}

fn round_half_away(x: f64) -> i16 {
  (x + 0.5f64.copysign(x)) as i16
}

fn invariant(s: &Source) {
  let m = s.metrics();
  assert_eq!(
    m.captured,
    m.delivered + m.queued + m.dropped + m.cleared,
    "source {}",
    s.id()
  );
}

#[test]
fn the_mix_is_the_sample_exact_sum_with_gains_and_ducking() {
  let bus = Bus::new();
  let voice = src(1, Consumer::Pull, &bus);
  let music = src(2, Consumer::Pull, &bus);
  let out = src(3, Consumer::Realtime, &bus);
  let duck = DuckOptions {
    duck_db: 12.0,
    threshold_dbfs: -45.0,
    attack_ms: 20.0,
    release_ms: 100.0,
  };
  let mix = Arc::new(Mix::new(out.format(), duck.clone()).unwrap());
  mix.add_input(voice.clone(), -3.0, MixRole::Speech).unwrap();
  mix.add_input(music.clone(), -6.0, MixRole::Background).unwrap();
  out.set_mix(mix.clone()).unwrap();
  let tap = out.reference_tap();
  let mut cur = TapCursor::default();
  tap.read(&mut cur, 1, |_| ());

  // Music throughout (2 s); the voice talks from 0.5 s to 1.2 s, silent (zeros) otherwise.
  let chunks = 200;
  let music_pcm = tone(chunks * N, 37, 8_000.0);
  let mut voice_pcm = tone(chunks * N, 91, 6_000.0);
  for (i, v) in voice_pcm.iter_mut().enumerate() {
    if !(8_000..19_200).contains(&i) {
      *v = 0;
    }
  }
  assert_eq!(
    voice.try_capture(FrameRef::i16(&voice_pcm)).unwrap().accepted_samples,
    (chunks * N) as u64
  );
  assert_eq!(
    music.try_capture(FrameRef::i16(&music_pcm)).unwrap().accepted_samples,
    (chunks * N) as u64
  );
  let now = Instant::now();
  let mut got = Vec::new();
  for _ in 0..chunks {
    out.tick(now, 1);
    tap.read(&mut cur, 10, |c| got.extend_from_slice(c));
  }
  assert_eq!(got.len(), chunks * N);

  // The same rule, recomputed: depth per chunk, a linear ramp of the linear gain within it.
  let (gv, gm) = (10f64.powf(-3.0 / 20.0), 10f64.powf(-6.0 / 20.0));
  let mut depth = 0.0f64;
  let mut ducked_chunks = 0;
  for c in 0..chunks {
    let v = &voice_pcm[c * N..(c + 1) * N];
    let ms = v.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum::<f64>() / N as f64;
    let talking = 10.0 * ms.max(1e-12).log10() >= duck.threshold_dbfs;
    let from = depth;
    depth = if talking {
      (depth + duck.duck_db * 10.0 / duck.attack_ms).min(duck.duck_db)
    } else {
      (depth - duck.duck_db * 10.0 / duck.release_ms).max(0.0)
    };
    if depth > 0.0 {
      ducked_chunks += 1;
    }
    let (g0, g1) = (10f64.powf(-from / 20.0), 10f64.powf(-depth / 20.0));
    for i in 0..N {
      let d = g0 + (g1 - g0) * (i + 1) as f64 / N as f64;
      let want = round_half_away(v[i] as f64 * gv + music_pcm[c * N + i] as f64 * gm * d);
      assert_eq!(got[c * N + i], want, "chunk {c} sample {i}");
    }
  }
  // The ducking happened: full depth while talking (after 20 ms), back within 100 ms.
  assert!(ducked_chunks >= 70 + 9, "{ducked_chunks} ducked chunks");
  let s = mix.stats();
  assert_eq!(s.mixed_ms, 2_000.0);
  assert_eq!(s.ducked_ms, ducked_chunks as f64 * 10.0);
  assert_eq!(s.duck_db, 0.0);
  // Accounting: each input delivered its 2 s to the mixer; the output captured and
  // delivered exactly the mix.
  for s in [&voice, &music, &out] {
    invariant(s);
    let m = s.metrics();
    assert_eq!(m.delivered, (chunks * N) as u64, "source {}", s.id());
  }
  assert_eq!(out.metrics().captured, (chunks * N) as u64);
}

#[test]
fn an_idle_input_is_silence_and_an_idle_mixer_underruns() {
  let bus = Bus::new();
  let a = src(1, Consumer::Pull, &bus);
  let b = src(2, Consumer::Pull, &bus);
  let out = src(3, Consumer::Realtime, &bus);
  let mix = Arc::new(Mix::new(out.format(), DuckOptions::default()).unwrap());
  mix.add_input(a.clone(), 0.0, MixRole::Speech).unwrap();
  mix.add_input(b.clone(), 0.0, MixRole::Background).unwrap();
  out.set_mix(mix.clone()).unwrap();
  let tap = out.reference_tap();
  let mut cur = TapCursor::default();
  tap.read(&mut cur, 1, |_| ());
  // 0 dB speech, nothing on b: the output is a, bit for bit.
  let pcm = tone(3 * N, 50, 10_000.0);
  a.try_capture(FrameRef::i16(&pcm)).unwrap();
  let now = Instant::now();
  let mut got = Vec::new();
  for _ in 0..5 {
    out.tick(now, 1);
    tap.read(&mut cur, 10, |c| got.extend_from_slice(c));
  }
  assert_eq!(&got[..3 * N], &pcm[..]);
  assert_eq!(&got[3 * N..], &vec![0i16; 2 * N][..], "then silence");
  let m = out.metrics();
  assert_eq!(
    m.captured,
    (3 * N) as u64,
    "nothing captured while every input was empty"
  );
  assert_eq!(m.underruns, 2);
  assert_eq!(b.metrics().delivered, 0);
  // A closed input leaves the mix.
  b.close();
  out.tick(now, 1);
  assert_eq!(mix.stats().inputs.len(), 1);
}

#[test]
fn mixer_shapes_are_validated() {
  let bus = Bus::new();
  let out = src(3, Consumer::Realtime, &bus);
  let f = out.format();
  for (d, name) in [
    (
      DuckOptions {
        duck_db: 61.0,
        ..Default::default()
      },
      "duckDb",
    ),
    (
      DuckOptions {
        threshold_dbfs: 1.0,
        ..Default::default()
      },
      "thresholdDbfs",
    ),
    (
      DuckOptions {
        attack_ms: 5.0,
        ..Default::default()
      },
      "attackMs",
    ),
    (
      DuckOptions {
        release_ms: f64::NAN,
        ..Default::default()
      },
      "releaseMs",
    ),
  ] {
    let e = Mix::new(f, d).err().unwrap();
    assert_eq!(e.code(), "ERR_INVALID_OPTION");
    assert!(e.message().contains(name), "{}", e.message());
  }
  let mix = Arc::new(Mix::new(f, DuckOptions::default()).unwrap());
  let realtime = src(4, Consumer::Realtime, &bus);
  assert_eq!(
    mix.add_input(realtime, 0.0, MixRole::Speech).unwrap_err().code(),
    "ERR_INVALID_OPTION"
  );
  let mut o = SourceOptions::new(48_000, 1).unwrap();
  o.consumer = Consumer::Pull;
  let other_rate = Source::new(5, o, bus.clone()).unwrap();
  assert_eq!(
    mix.add_input(other_rate, 0.0, MixRole::Speech).unwrap_err().code(),
    "ERR_FORMAT_MISMATCH"
  );
  let a = src(6, Consumer::Pull, &bus);
  assert!(mix
    .add_input(a.clone(), 25.0, MixRole::Speech)
    .unwrap_err()
    .message()
    .contains("gainDb"));
  mix.add_input(a.clone(), 0.0, MixRole::Speech).unwrap();
  assert_eq!(
    mix.add_input(a.clone(), 0.0, MixRole::Speech).unwrap_err().code(),
    "ERR_INVALID_OPTION"
  );
  mix.set_gain(a.id(), -10.0).unwrap();
  assert_eq!(mix.stats().inputs[0].gain_db, -10.0);
  assert!(MixRole::parse("music").is_err());
  let pull_out = src(7, Consumer::Pull, &bus);
  assert_eq!(pull_out.set_mix(mix.clone()).unwrap_err().code(), "ERR_INVALID_OPTION");
  out.set_mix(mix.clone()).unwrap();
  assert_eq!(out.set_mix(mix).unwrap_err().code(), "ERR_INVALID_OPTION");
}

#[test]
fn looping_and_one_shot_clips_mix_sample_exactly_and_duck() {
  let bus = Bus::new();
  let voice = src(1, Consumer::Pull, &bus);
  let out = src(3, Consumer::Realtime, &bus);
  let duck = DuckOptions {
    duck_db: 6.0,
    threshold_dbfs: -45.0,
    attack_ms: 10.0,
    release_ms: 10.0,
  };
  let mix = Arc::new(Mix::new(out.format(), duck).unwrap());
  mix.add_input(voice.clone(), 0.0, MixRole::Speech).unwrap();
  out.set_mix(mix.clone()).unwrap();
  // A 250-sample loop (not a whole number of chunks) and a 300-sample one-shot chime.
  let bed = tone(250, 25, 4_000.0);
  let chime = tone(300, 10, 3_000.0);
  let bed_id = mix.add_clip(bed.clone(), 0.0, MixRole::Background, true).unwrap();
  mix.add_clip(chime.clone(), 0.0, MixRole::Speech, false).unwrap();
  assert_eq!(
    mix
      .add_clip(Vec::new(), 0.0, MixRole::Speech, false)
      .unwrap_err()
      .code(),
    "ERR_INVALID_FRAME"
  );
  let tap = out.reference_tap();
  let mut cur = TapCursor::default();
  tap.read(&mut cur, 1, |_| ());
  // The voice talks in chunks 5..8 only (captured as it goes: silence before is no audio).
  let now = Instant::now();
  let mut got = Vec::new();
  let voice_pcm = tone(3 * N, 91, 6_000.0);
  for c in 0..12 {
    if c == 5 {
      voice.try_capture(FrameRef::i16(&voice_pcm)).unwrap();
    }
    out.tick(now, 1);
    tap.read(&mut cur, 10, |ch| got.extend_from_slice(ch));
  }
  assert_eq!(got.len(), 12 * N, "the looping bed keeps the output playing");
  // Expected: the chime (speech, 0 dB) ducks the bed in chunks 0..1, the voice in 5..7;
  // full depth (6 dB) in one chunk, back in one.
  let mut depth: f64 = 0.0;
  for c in 0..12 {
    let chime_c: Vec<i16> = (0..N).map(|i| chime.get(c * N + i).copied().unwrap_or(0)).collect();
    let voice_c: Vec<i16> = (0..N)
      .map(|i| {
        if (5..8).contains(&c) {
          voice_pcm[(c - 5) * N + i]
        } else {
          0
        }
      })
      .collect();
    let loud = |x: &[i16]| {
      10.0
        * (x.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum::<f64>() / N as f64)
          .max(1e-12)
          .log10()
        >= -45.0
    };
    let talking = (c < 2 && loud(&chime_c)) || loud(&voice_c);
    let from = depth;
    depth = if talking {
      (depth + 6.0).min(6.0)
    } else {
      (depth - 6.0).max(0.0)
    };
    let (g0, g1) = (10f64.powf(-from / 20.0), 10f64.powf(-depth / 20.0));
    for i in 0..N {
      let d = g0 + (g1 - g0) * (i + 1) as f64 / N as f64;
      let b = bed[(c * N + i) % bed.len()] as f64;
      let want = round_half_away(voice_c[i] as f64 + chime_c[i] as f64 + b * d);
      assert_eq!(got[c * N + i], want, "chunk {c} sample {i}");
    }
  }
  assert_eq!(mix.clip_count(), 1, "the one-shot left after its last chunk");
  assert!(mix.remove_clip(bed_id));
  assert!(!mix.remove_clip(bed_id));
  out.tick(now, 1);
  let mut after = 0;
  tap.read(&mut cur, 10, |ch| after += ch.iter().filter(|&&s| s != 0).count());
  assert_eq!(after, 0, "nothing left to play: the output underruns");
}
