//! The encode floor of a published track with the libopus capstan-livekit links (the same
//! `opus` crate and bundled libopus build as `LiveKitRoom.publish`): raw encodes at the
//! publish defaults (48 kHz mono, `Application::Audio`, 32 kbps, complexity 10, 20 ms
//! frames) on the tones `benchmark/livekit-many.mjs` feeds (track k: 300 + 10 k Hz,
//! amplitude 8000), one thread, no I/O. Prints one JSON line with the CPU per encoded second.
//! `benchmark/child-opus-floor.mjs` is the same loop on @discordjs/opus (libopus 1.3.1).
//! `interleaved` 1 encodes one frame of every encoder in turn, as N live tracks do (their
//! states then compete for the caches); 0, the default, a second of one encoder at a time.
//!   cargo run --release -p capstan-livekit --example opus-floor -- [encoders=20] [seconds=10] [complexity=10] [bitrate=32000] [interleaved=0]

use std::time::Instant;

fn cpu_seconds() -> f64 {
  // utime + stime of this process, from /proc (Linux; the benchmarks' machine kind).
  let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
  let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
  let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
  // Fields after the command: state is 0, utime 11, stime 12; USER_HZ is 100 on Linux.
  (ticks(11) + ticks(12)) / 100.0
}

fn main() {
  let a: Vec<u64> = std::env::args().skip(1).filter_map(|v| v.parse().ok()).collect();
  let encoders = *a.first().unwrap_or(&20) as usize;
  let seconds = *a.get(1).unwrap_or(&10) as usize;
  let complexity = *a.get(2).unwrap_or(&10) as i32;
  let bitrate = *a.get(3).unwrap_or(&32_000) as i32;
  let interleaved = *a.get(4).unwrap_or(&0) == 1;
  const RATE: u32 = 48_000;
  const FRAME: usize = 960;
  let mut encs: Vec<(opus::Encoder, Vec<i16>)> = (0..encoders)
    .map(|i| {
      let k = i * 500 / encoders;
      let hz = 300.0 + 10.0 * k as f64;
      let mut e = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Audio).expect("encoder");
      e.set_bitrate(opus::Bitrate::Bits(bitrate)).expect("bitrate");
      e.set_complexity(complexity).expect("complexity");
      let pcm = (0..RATE as usize)
        .map(|j| (8000.0 * (2.0 * std::f64::consts::PI * hz * j as f64 / RATE as f64).sin()).round() as i16)
        .collect();
      (e, pcm)
    })
    .collect();
  let mut out = vec![0u8; 4000];
  let mut run = |secs: usize| {
    let (mut bytes, mut packets) = (0usize, 0usize);
    for _ in 0..secs {
      if interleaved {
        for j in 0..RATE as usize / FRAME {
          for (e, pcm) in encs.iter_mut() {
            bytes += e.encode(&pcm[j * FRAME..(j + 1) * FRAME], &mut out).expect("encode");
            packets += 1;
          }
        }
      } else {
        for (e, pcm) in encs.iter_mut() {
          for f in pcm.chunks_exact(FRAME) {
            bytes += e.encode(f, &mut out).expect("encode");
            packets += 1;
          }
        }
      }
    }
    (bytes, packets)
  };
  run(1); // warm up
  let c0 = cpu_seconds();
  let t0 = Instant::now();
  let (bytes, packets) = run(seconds);
  let wall = t0.elapsed().as_secs_f64();
  let cpu = cpu_seconds() - c0;
  let encoded = (encoders * seconds) as f64;
  let v = opus::version();
  println!(
    "{{\"scenario\":\"opus-floor\",\"lib\":\"capstan-livekit opus crate\",\"libopus\":\"{v}\",\"encoders\":{encoders},\"seconds\":{seconds},\"complexity\":{complexity},\"bitrate\":{bitrate},\"interleaved\":{interleaved},\"packets\":{packets},\"bytes\":{bytes},\"wallS\":{wall:.3},\"cpuS\":{cpu:.3},\"cpuUsPerEncodedSecond\":{:.1}}}",
    cpu * 1e6 / encoded
  );
}
