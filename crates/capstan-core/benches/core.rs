//! Engine micro-benchmarks: chunker throughput, queue push/pop, per-source capture + tick
//! cost, and the per-source health check. Short measurement times: these are for spotting
//! regressions (`cargo bench -p capstan-core`), not for publication.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_core::chunker::Chunker;
use capstan_core::events::Bus;
use capstan_core::health::{Health, HealthTimes};
use capstan_core::queue::{ChunkQueue, Overflow};
use capstan_core::{Consumer, FrameRef, Source, SourceOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const RATE: u32 = 48_000;
const CHUNK: usize = 480;
const SOURCES: usize = 1_000;

/// xorshift64: deterministic "random" frame lengths without extra dependencies.
struct Rng(u64);

impl Rng {
  fn next(&mut self) -> u64 {
    self.0 ^= self.0 << 13;
    self.0 ^= self.0 >> 7;
    self.0 ^= self.0 << 17;
    self.0
  }
}

/// Frame lengths (1..=2048 samples) covering one second of 48 kHz mono, then a tail.
fn random_frames(seed: u64) -> Vec<usize> {
  let mut rng = Rng(seed);
  let mut lens = Vec::new();
  let mut total = 0;
  while total < RATE as usize {
    let n = (1 + rng.next() % 2048) as usize;
    let n = n.min(RATE as usize - total);
    lens.push(n);
    total += n;
  }
  lens
}

fn chunker(c: &mut Criterion) {
  let mut g = c.benchmark_group("chunker");
  g.measurement_time(Duration::from_secs(2))
    .warm_up_time(Duration::from_millis(500))
    .sample_size(20);
  let audio: Vec<i16> = (0..RATE as usize).map(|i| (i as u16).wrapping_mul(31) as i16).collect();
  let lens = random_frames(0x9e37_79b9_7f4a_7c15);
  g.throughput(Throughput::Elements(RATE as u64));
  g.bench_function("48k_mono_random_frames_1s", |b| {
    let mut ch = Chunker::new(CHUNK);
    b.iter(|| {
      let mut pos = 0;
      let mut sum = 0i64;
      for &n in &lens {
        ch.feed(&audio[pos..pos + n], usize::MAX, |chunk| sum += chunk[0] as i64);
        pos += n;
      }
      ch.clear();
      black_box(sum)
    })
  });
  // The same, with every chunk copied out (what a sink does with it).
  g.bench_function("48k_mono_random_frames_1s_copy_out", |b| {
    let mut ch = Chunker::new(CHUNK);
    let mut out = vec![0i16; CHUNK];
    b.iter(|| {
      let mut pos = 0;
      for &n in &lens {
        ch.feed(&audio[pos..pos + n], usize::MAX, |chunk| out.copy_from_slice(chunk));
        pos += n;
      }
      ch.clear();
      black_box(out[0])
    })
  });
  g.finish();
}

fn queue(c: &mut Criterion) {
  let mut g = c.benchmark_group("queue");
  g.measurement_time(Duration::from_secs(2))
    .warm_up_time(Duration::from_millis(500))
    .sample_size(20);
  let chunk = vec![7i16; CHUNK];
  g.throughput(Throughput::Elements(1));
  g.bench_function("push_pop_10ms_chunk", |b| {
    let mut q = ChunkQueue::new(CHUNK, 20);
    for _ in 0..10 {
      q.push(&chunk);
    }
    let mut out = vec![0i16; CHUNK];
    b.iter(|| {
      q.push(black_box(&chunk));
      q.pop_with(|a| out.copy_from_slice(a));
      black_box(out[0])
    })
  });
  g.throughput(Throughput::Elements(20));
  g.bench_function("fill_and_drain_20_chunks", |b| {
    let mut q = ChunkQueue::new(CHUNK, 20);
    b.iter(|| {
      for _ in 0..20 {
        q.push(&chunk);
      }
      while q.pop_with(|a| {
        black_box(a[0]);
      }) {}
    })
  });
  g.finish();
}

fn sources(consumer: Consumer, overflow: Overflow) -> (Vec<Arc<Source>>, Arc<Bus>) {
  let bus = Bus::new();
  let v = (0..SOURCES)
    .map(|i| {
      let mut o = SourceOptions::new(RATE, 1).unwrap();
      o.consumer = consumer;
      o.overflow = overflow;
      o.queue_ms = 200;
      Source::new(i as u64 + 1, o, bus.clone()).unwrap()
    })
    .collect();
  (v, bus)
}

fn source(c: &mut Criterion) {
  let mut g = c.benchmark_group("source");
  g.measurement_time(Duration::from_secs(2))
    .warm_up_time(Duration::from_millis(500))
    .sample_size(20);
  let frame = vec![1i16; CHUNK];
  g.throughput(Throughput::Elements(SOURCES as u64));

  // One engine tick's worth of work for 1,000 realtime sources: each captures a 10 ms frame
  // and the clock moves one chunk out. Steady state: the queues stay level.
  g.bench_function(BenchmarkId::new("capture_and_tick", SOURCES), |b| {
    let (srcs, bus) = sources(Consumer::Realtime, Overflow::Wait);
    for s in &srcs {
      s.capture(FrameRef::i16(&frame), None).unwrap();
    }
    b.iter(|| {
      let now = Instant::now();
      for s in &srcs {
        black_box(s.try_capture(FrameRef::i16(&frame)).unwrap());
        s.tick(now, 1);
      }
    });
    black_box(bus.drain().len());
  });

  // The capture alone (try_capture, never waits) on a queue kept from filling by a read.
  g.bench_function(BenchmarkId::new("try_capture_and_read", SOURCES), |b| {
    let (srcs, _bus) = sources(Consumer::Pull, Overflow::Reject);
    b.iter(|| {
      for s in &srcs {
        black_box(s.try_capture(FrameRef::i16(&frame)).unwrap());
        black_box(s.read());
      }
    })
  });

  // A tick on an idle pull source is only deadline expiry and the health check.
  g.bench_function(BenchmarkId::new("tick_idle_pull", SOURCES), |b| {
    let (srcs, _bus) = sources(Consumer::Pull, Overflow::Wait);
    b.iter(|| {
      let now = Instant::now();
      for s in &srcs {
        s.tick(now, 1);
      }
    })
  });

  g.bench_function(BenchmarkId::new("metrics", SOURCES), |b| {
    let (srcs, _bus) = sources(Consumer::Realtime, Overflow::Wait);
    b.iter(|| {
      for s in &srcs {
        black_box(s.metrics().captured);
      }
    })
  });
  g.finish();
}

fn health(c: &mut Criterion) {
  let mut g = c.benchmark_group("health");
  g.measurement_time(Duration::from_secs(2))
    .warm_up_time(Duration::from_millis(500))
    .sample_size(20);
  g.throughput(Throughput::Elements(SOURCES as u64));
  g.bench_function(BenchmarkId::new("check", SOURCES), |b| {
    let t0 = Instant::now();
    let mut hs: Vec<Health> = (0..SOURCES)
      .map(|_| Health::new(HealthTimes::from_stall_ms(250), t0))
      .collect();
    let mut k = 0u64;
    b.iter(|| {
      k += 1;
      let now = t0 + Duration::from_millis(k);
      for (i, h) in hs.iter_mut().enumerate() {
        // Half the sources make progress, half have a backlog and drift toward stalled.
        if i % 2 == 0 {
          black_box(h.progress(now, 20.0));
        }
        black_box(h.check(now, i % 2 == 1, 20.0));
      }
    })
  });
  g.finish();
}

criterion_group!(benches, chunker, queue, source, health);
criterion_main!(benches);
