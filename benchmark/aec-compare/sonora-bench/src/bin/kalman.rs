// capstan's Kalman echo filter (crates/capstan-core/src/process/kalman_echo.rs) on the
// common scenario. PARTS (filter blocks of 10 ms), P0 (initial misalignment).
#[path = "../../../common.rs"]
mod common;
#[path = "../../../../../crates/capstan-core/src/process/kalman_echo.rs"]
mod kalman_echo;
use common::*;

fn env<T: std::str::FromStr>(k: &str) -> Option<T> where T::Err: std::fmt::Debug { std::env::var(k).ok().map(|s| s.parse().unwrap()) }

struct K { f: kalman_echo::KalmanEcho, far: Vec<f32>, fs: u32 }
impl Aec for K {
    fn render(&mut self, x: &[f32]) { self.far = x.to_vec(); }
    fn capture(&mut self, x: &mut [f32]) { let i = x.to_vec(); self.f.process(&self.far, &i, x); }
    fn erle_delay(&mut self) -> (Option<f64>, Option<i32>) { (None, self.f.delay_frames().map(|d| (d as u64 * 1000 / self.fs as u64) as i32)) }
}

fn main() {
    let secs: f32 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(30.0);
    let rates: Vec<u32> = env::<String>("RATES").unwrap_or("16000".into()).split(',').map(|s| s.parse().unwrap()).collect();
    for fs in rates {
        let s = scenario(fs, secs);
        let clip = |x: &[f32]| x.iter().filter(|v| v.abs() >= 0.999).count();
        let peak = |x: &[f32], a: f32, b: f32| x[(a * fs as f32) as usize..(b * fs as f32) as usize].iter().fold(0f32, |m, v| m.max(v.abs()));
        println!("{fs} Hz: clipped samples far {} mic {}; peaks 22.5-23 s far {:.2} echo {:.2}, 20-22.5 s far {:.2} echo {:.2}", clip(&s.far), clip(&s.mic), peak(&s.far, 22.5, 23.0), peak(&s.echo, 22.5, 23.0), peak(&s.far, 20.0, 22.5), peak(&s.echo, 20.0, 22.5));
        let f = kalman_echo::KalmanEcho::new(fs as usize / 100, env("PARTS").unwrap_or(32));
        run("kalman", &s, &mut K { f, far: vec![], fs });
    }
}
