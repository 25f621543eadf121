// Shared harness: synthetic far end, room impulse response, near-end talker, noise;
// ERLE in far-end-only stretches, SNR of the near end in double talk, CPU per 10 ms.
#![allow(dead_code)]
use std::time::Instant;

pub struct Rng(u64);
impl Rng {
    pub fn new(s: u64) -> Self { Rng(s.wrapping_mul(0x9E3779B97F4A7C15) | 1) }
    pub fn next_u64(&mut self) -> u64 { let mut x = self.0; x ^= x << 13; x ^= x >> 7; x ^= x << 17; self.0 = x; x }
    pub fn uniform(&mut self) -> f32 { (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 }
    pub fn gauss(&mut self) -> f32 { let u1 = self.uniform().max(1e-7); let u2 = self.uniform(); (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos() }
}

/// Speech-like: glottal pulse train (jittered, gliding f0) through three formant
/// resonators that move per phoneme, syllable envelopes, fricatives and pauses.
pub fn speech(fs: u32, secs: f32, seed: u64, f0_base: f32, level: f32) -> Vec<f32> {
    let n = (fs as f32 * secs) as usize;
    let mut r = Rng::new(seed);
    let mut out = vec![0f32; n];
    let fsf = fs as f32;
    let mut i = 0;
    let mut phase = 0f32;
    let mut res = [[0f32; 2]; 3];
    while i < n {
        // a word: 2..5 phonemes, then a pause
        let phonemes = 2 + (r.next_u64() % 4) as usize;
        for _ in 0..phonemes {
            let len = ((0.08 + 0.1 * r.uniform()) * fsf) as usize;
            let voiced = r.uniform() > 0.2;
            let f = [300.0 + 500.0 * r.uniform(), 900.0 + 1400.0 * r.uniform(), 2300.0 + 900.0 * r.uniform()];
            let bw = [80.0, 120.0, 180.0];
            let coef: Vec<(f32, f32)> = (0..3).map(|k| {
                let rad = (-std::f32::consts::PI * bw[k] / fsf).exp();
                (2.0 * rad * (std::f32::consts::TAU * f[k].min(fsf * 0.45) / fsf).cos(), -rad * rad)
            }).collect();
            let f0_start = f0_base * (0.85 + 0.3 * r.uniform());
            let f0_end = f0_base * (0.85 + 0.3 * r.uniform());
            for j in 0..len {
                if i >= n { break; }
                let t = j as f32 / len as f32;
                let env = (std::f32::consts::PI * t).sin().powf(0.6);
                let exc = if voiced {
                    let f0 = f0_start + (f0_end - f0_start) * t;
                    phase += f0 * (1.0 + 0.01 * r.gauss()) / fsf;
                    let mut e = 0.0;
                    if phase >= 1.0 { phase -= 1.0; e = 1.0; }
                    e + 0.02 * r.gauss()
                } else { 0.3 * r.gauss() };
                let mut y = 0.0;
                for k in 0..3 {
                    let (a1, a2) = coef[k];
                    let v = exc + a1 * res[k][0] + a2 * res[k][1];
                    res[k][1] = res[k][0];
                    res[k][0] = v;
                    y += v * [1.0, 0.6, 0.3][k];
                }
                out[i] = y * env;
                i += 1;
            }
        }
        let pause = ((0.05 + 0.25 * r.uniform()) * fsf) as usize;
        i += pause;
    }
    // normalise active RMS to `level`
    let act: Vec<f32> = out.iter().copied().filter(|v| v.abs() > 1e-4).collect();
    let rms = (act.iter().map(|v| v * v).sum::<f32>() / act.len().max(1) as f32).sqrt();
    let g = level / rms.max(1e-9);
    for v in &mut out { *v = (*v * g).clamp(-1.0, 1.0); }
    out
}

/// Room impulse response: a direct path at `delay_ms`, then a sparse, exponentially
/// decaying tail (RT60 `rt60_ms`) of 300 reflections over 200 ms.
pub fn rir(fs: u32, delay_ms: f32, rt60_ms: f32, seed: u64) -> Vec<(usize, f32)> {
    let mut r = Rng::new(seed);
    let d = (delay_ms * fs as f32 / 1000.0) as usize;
    let eg: f32 = std::env::var("ECHO").ok().map(|s| s.parse().unwrap()).unwrap_or(1.0); let mut taps = vec![(d, 0.5f32 * eg)];
    let tail = (std::env::var("TAIL").ok().map(|s| s.parse::<f32>().unwrap()).unwrap_or(0.2) * fs as f32) as usize;
    for _ in 0..300 {
        let off = 1 + (r.next_u64() as usize % tail);
        let t = off as f32 / fs as f32;
        let a = eg * 0.25 * (-6.9 * t / (rt60_ms / 1000.0)).exp() * r.gauss();
        taps.push((d + off, a));
    }
    taps
}

pub fn convolve(x: &[f32], h: &[(usize, f32)]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for &(k, a) in h { for i in k..x.len() { y[i] += a * x[i - k]; } }
    y
}

pub fn gate(x: &mut [f32], fs: u32, active: impl Fn(f32) -> bool) {
    for (i, v) in x.iter_mut().enumerate() { if !active(i as f32 / fs as f32) { *v = 0.0; } }
}

pub struct Scenario { pub fs: u32, pub far: Vec<f32>, pub echo: Vec<f32>, pub near: Vec<f32>, pub noise: Vec<f32>, pub mic: Vec<f32> }

/// 10 s cycles: [0,5) far end only, [5,8) double talk, [8,10) near end only.
pub fn far_active(t: f32) -> bool { (t % 10.0) < 8.0 }
pub fn near_active(t: f32) -> bool { (t % 10.0) >= 5.0 }

pub fn scenario(fs: u32, secs: f32) -> Scenario {
    let mut far = speech(fs, secs, 1, 120.0, 0.1);
    gate(&mut far, fs, far_active);
    let echo = convolve(&far, &rir(fs, 60.0, std::env::var("RT60").ok().map(|s| s.parse().unwrap()).unwrap_or(250.0), 7));
    let mut near = speech(fs, secs, 2, 210.0, 0.08);
    gate(&mut near, fs, near_active);
    let mut r = Rng::new(3);
    let noise: Vec<f32> = (0..far.len()).map(|_| 3e-4 * r.gauss()).collect();
    let mic = (0..far.len()).map(|i| (echo[i] + near[i] + noise[i]).clamp(-1.0, 1.0)).collect();
    Scenario { fs, far, echo, near, noise, mic }
}

pub trait Aec {
    fn render(&mut self, x: &[f32]);
    fn capture(&mut self, x: &mut [f32]);
    fn erle_delay(&mut self) -> (Option<f64>, Option<i32>);
}

pub fn db(p: f64) -> f64 { 10.0 * p.max(1e-20).log10() }

pub fn run(name: &str, s: &Scenario, aec: &mut dyn Aec) {
    let fs = s.fs;
    let n10 = fs as usize / 100;
    let mut out = vec![0f32; s.mic.len()];
    let mut times = Vec::new();
    let mut delays = Vec::new();
    let mut erles = Vec::new();
    for (c, i) in (0..s.mic.len() / n10).map(|c| (c, c * n10)) {
        let mut buf = s.mic[i..i + n10].to_vec();
        let t0 = Instant::now();
        aec.render(&s.far[i..i + n10]);
        aec.capture(&mut buf);
        times.push(t0.elapsed().as_nanos() as f64 / 1000.0);
        out[i..i + n10].copy_from_slice(&buf);
        if c % 100 == 99 { let (e, d) = aec.erle_delay(); erles.push(e); delays.push(d); }
    }
    // best lag of the output against the input (the processor's own latency), from near-only stretches
    let mut best = (0usize, f64::MIN);
    for lag in 0..(fs as usize / 50) {
        let mut acc = 0f64;
        for i in 0..s.mic.len() - lag { let t = i as f32 / fs as f32; if near_active(t) && !far_active(t) { acc += (s.near[i] * out[i + lag]) as f64; } }
        if acc > best.1 { best = (lag, acc); }
    }
    let lag = best.0;
    for lg in [0usize, 1, 2, 4, 8, 16, 32, 64, 124, 128, 200] {
        let (mut pn, mut pe) = (0f64, 0f64);
        for i in (8.2 * fs as f32) as usize..(10.0 * fs as f32) as usize { pn += (s.near[i] as f64).powi(2); pe += ((out[i + lg] - s.near[i]) as f64).powi(2); }
        print!("nearonly lag {lg}: {:.1}  ", db(pn / pe));
    }
    println!();
    let secs = s.mic.len() as f32 / fs as f32;
    let cycles = (secs / 10.0) as usize;
    let mut erle_w = Vec::new();
    let mut snr_w = Vec::new();
    let mut snr_in_w = Vec::new();
    let mut gain_w = Vec::new();
    let mut res_w = Vec::new();
    let mut erle_first = Vec::new();
    for c in 0..cycles {
        let base = c as f32 * 10.0;
        // far-end only: [0.3, 5) of the cycle (2 s .. 5 s in the first)
        let (a, b) = if c == 0 { (2.0, 5.0) } else { (base + 0.3, base + 5.0) };
        let (mut pm, mut po) = (0f64, 0f64);
        for i in (a * fs as f32) as usize..(b * fs as f32) as usize { pm += (s.mic[i] as f64).powi(2); po += (out[i + lag] as f64).powi(2); }
        erle_w.push(db(pm / po));
        // the first 2 s in 0.5 s steps (convergence)
        if c <= 2 && std::env::var_os("STEPS").is_some() || c == 0 { for k in 0..10 { let (a, b) = (base + k as f32 * 0.5, base + k as f32 * 0.5 + 0.5); let (mut pm, mut po) = (0f64, 0f64); for i in (a * fs as f32) as usize..(b * fs as f32) as usize { pm += (s.mic[i] as f64).powi(2); po += (out[i + lag] as f64).powi(2); } erle_first.push(db(pm / po)); } }
        // double talk: [5.2, 8) of the cycle
        let (a, b) = (base + 5.2, base + 8.0);
        let (mut pn, mut pe, mut pe_in) = (0f64, 0f64, 0f64);
        for i in (a * fs as f32) as usize..(b * fs as f32) as usize {
            pn += (s.near[i] as f64).powi(2);
            pe += ((out[i + lag] - s.near[i]) as f64).powi(2);
            pe_in += ((s.mic[i] - s.near[i]) as f64).powi(2);
        }
        snr_w.push(db(pn / pe));
        snr_in_w.push(db(pn / pe_in));
        // diagnosis: how much of the error is the near end's level (projection gain) vs the rest
        let (mut x, mut pr) = (0f64, 0f64);
        for i in (a * fs as f32) as usize..(b * fs as f32) as usize { x += (s.near[i] * out[i + lag]) as f64; }
        let g = x / pn;
        for i in (a * fs as f32) as usize..(b * fs as f32) as usize { pr += ((out[i + lag] - g as f32 * s.near[i]) as f64).powi(2); }
        gain_w.push(20.0 * g.abs().max(1e-9).log10());
        res_w.push(db(g * g * pn / pr));
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let p99 = times[times.len() * 99 / 100];
    let minf = |v: &[f64]| v.iter().cloned().fold(f64::MAX, f64::min);
    let meanf = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!("== {name} @ {fs} Hz, {secs} s, output lag {lag} samples");
    println!("ERLE far-end-only per cycle (dB): {:?}", erle_w.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>());
    println!("ERLE first 5 s in 0.5 s steps (dB): {:?}", erle_first.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>());
    println!("ERLE min {:.1} mean {:.1} dB", minf(&erle_w), meanf(&erle_w));
    println!("double-talk SNR vs clean near end (dB): out min {:.1} mean {:.1}; unprocessed mic mean {:.1}; per cycle {:?}", minf(&snr_w), meanf(&snr_w), meanf(&snr_in_w), snr_w.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>());
    println!("double talk: near-end gain (dB) {:?}; near end over the rest after that gain (dB) {:?}", gain_w.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>(), res_w.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>());
    println!("CPU per 10 ms (render+capture): mean {:.1} us, p99 {:.1} us", mean, p99);
    println!("reported ERLE/delay every 1 s (last 5): {:?}", erles.iter().zip(&delays).rev().take(5).collect::<Vec<_>>());
    println!("reported delay at 3 s: {:?}", delays.get(2));
    println!("reported delay every 1 s: {:?}", delays.iter().map(|d| d.map(|v| v.to_string()).unwrap_or("-".into())).collect::<Vec<_>>().join(" "));
}
