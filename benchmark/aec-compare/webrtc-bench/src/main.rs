//! The same scenario through webrtc-audio-processing 2.1.0 (bundled C++ WebRTC APM, AEC3).
//! Does not build offline here (see ../README.md): kept so it can be measured where meson,
//! ninja, libclang and abseil-cpp >= 20240722 are available.
#[path = "../../common.rs"]
mod common;
use common::*;
use webrtc_audio_processing::config::{Config, EchoCanceller};
use webrtc_audio_processing::Processor;

struct W(Processor);
impl Aec for W {
    fn render(&mut self, x: &[f32]) { let mut v = x.to_vec(); self.0.process_render_frame([v.as_mut_slice()]).unwrap(); }
    fn capture(&mut self, x: &mut [f32]) { self.0.process_capture_frame([&mut *x]).unwrap(); }
    fn erle_delay(&mut self) -> (Option<f64>, Option<i32>) { let s = self.0.get_stats(); (s.echo_return_loss_enhancement, s.delay_ms.map(|d| d as i32)) }
}

fn main() {
    let secs: f32 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(60.0);
    for fs in [16000u32, 48000] {
        let s = scenario(fs, secs);
        let p = Processor::new(fs).unwrap();
        p.set_config(Config { echo_canceller: Some(EchoCanceller::Full { stream_delay_ms: None }), ..Default::default() });
        run("webrtc-audio-processing 2.1.0 AEC3", &s, &mut W(p));
    }
}
