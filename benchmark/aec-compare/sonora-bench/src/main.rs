#[path = "../../common.rs"]
mod common;
use common::*;
use sonora::config::EchoCanceller;
use sonora::{AudioProcessing, Config, StreamConfig};

struct S(AudioProcessing, Vec<f32>);
impl Aec for S {
    fn render(&mut self, x: &[f32]) { let mut o = vec![0f32; x.len()]; self.0.process_render_f32(&[x], &mut [&mut o]).unwrap(); }
    fn capture(&mut self, x: &mut [f32]) { let i = x.to_vec(); self.0.process_capture_f32(&[&i], &mut [x]).unwrap(); }
    fn erle_delay(&mut self) -> (Option<f64>, Option<i32>) { let s = self.0.statistics(); (s.echo_return_loss_enhancement, s.delay_ms) }
}

fn main() {
    let secs: f32 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(60.0);
    for fs in [16000u32, 48000] {
        let s = scenario(fs, secs);
        let sc = StreamConfig::new(fs, 1);
        let apm = AudioProcessing::builder()
            .config(Config { echo_canceller: Some(EchoCanceller { enforce_high_pass_filtering: std::env::var("HPF").is_ok(), ..Default::default() }), ..Default::default() })
            .capture_config(sc).render_config(sc).build();
        run("sonora 0.2.0 AEC3", &s, &mut S(apm, vec![]));
    }
}
