// AEC3's block processor (16 kHz, one band) with a config tuned from the environment:
// the search for double-talk transparency. Knobs (unset = AEC3's default):
// BLOCKS (filter length), ERLE_L / ERLE_H (erle.max_l / max_h), NE_ENR / NE_EXIT / NE_SNR /
// NE_HOLD / NE_TRIG (dominant near-end detection), NT_LF_T / NT_LF_S / NT_HF_T / NT_HF_S
// (nearend_tuning masks), NM_LF_T / NM_LF_S / NM_HF_T / NM_HF_S (normal_tuning masks),
// EMR (emr_transparent, both tunings), DEF_LEN / NE_LEN (ep_strength reverb lengths),
// BOUNDED_ERL, HB_GAIN (high_bands max_gain_during_echo), LINEAR (output the linear filter).
#[path = "../../../common.rs"]
mod common;
use common::*;
use sonora_aec3::block::Block;
use sonora_aec3::block_framer::BlockFramer;
use sonora_aec3::block_processor::BlockProcessor;
use sonora_aec3::config::EchoCanceller3Config;
use sonora_aec3::frame_blocker::FrameBlocker;

fn env<T: std::str::FromStr>(k: &str) -> Option<T> where T::Err: std::fmt::Debug { std::env::var(k).ok().map(|s| s.parse().unwrap()) }

struct L { bp: BlockProcessor, rb: FrameBlocker, cb: FrameBlocker, fr: BlockFramer, lin_fr: BlockFramer, linear: bool }
impl Aec for L {
    fn render(&mut self, x: &[f32]) {
        let s: Vec<f32> = x.iter().map(|v| v * 32768.0).collect();
        let mut b = Block::new(1, 1);
        for sf in s.chunks(80) {
            self.rb.insert_sub_frame_and_extract_block(&[vec![sf]], &mut b);
            self.bp.buffer_render(&b);
            if self.rb.is_block_available() { self.rb.extract_block(&mut b); self.bp.buffer_render(&b); }
        }
    }
    fn capture(&mut self, x: &mut [f32]) {
        let s: Vec<f32> = x.iter().map(|v| v * 32768.0).collect();
        let mut outv = Vec::new();
        let mut b = Block::new(1, 1);
        let mut lin = Block::new(1, 1);
        let mut sub = vec![vec![vec![0f32; 80]]];
        let mut sub_l = vec![vec![vec![0f32; 80]]];
        for sf in s.chunks(80) {
            self.cb.insert_sub_frame_and_extract_block(&[vec![sf]], &mut b);
            self.bp.process_capture(false, false, Some(&mut lin), &mut b);
            self.lin_fr.insert_block_and_extract_sub_frame(&lin, &mut sub_l);
            self.fr.insert_block_and_extract_sub_frame(&b, &mut sub);
            if self.cb.is_block_available() {
                self.cb.extract_block(&mut b);
                self.bp.process_capture(false, false, Some(&mut lin), &mut b);
                self.lin_fr.insert_block(&lin); self.fr.insert_block(&b);
            }
            outv.extend_from_slice(if self.linear { &sub_l[0][0] } else { &sub[0][0] });
        }
        for (o, v) in x.iter_mut().zip(outv) { *o = v / 32768.0; }
    }
    fn erle_delay(&mut self) -> (Option<f64>, Option<i32>) { let m = self.bp.get_metrics(); (Some(m.echo_return_loss_enhancement), Some(m.delay_ms)) }
}

fn main() {
    let secs: f32 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(30.0);
    let fs = 16000;
    let s = scenario(fs, secs);
    let mut c = EchoCanceller3Config::default();
    c.filter.export_linear_aec_output = true;
    if let Some(b) = env::<usize>("BLOCKS") { c.filter.refined.length_blocks = b; c.filter.coarse.length_blocks = b; c.filter.refined_initial.length_blocks = b.min(12); c.filter.coarse_initial.length_blocks = b.min(12); }
    if let Some(v) = env("ERLE_L") { c.erle.max_l = v; }
    if let Some(v) = env("ERLE_H") { c.erle.max_h = v; }
    if let Some(v) = env("NE_ENR") { c.suppressor.dominant_nearend_detection.enr_threshold = v; }
    if let Some(v) = env("NE_EXIT") { c.suppressor.dominant_nearend_detection.enr_exit_threshold = v; }
    if let Some(v) = env("NE_SNR") { c.suppressor.dominant_nearend_detection.snr_threshold = v; }
    if let Some(v) = env("NE_HOLD") { c.suppressor.dominant_nearend_detection.hold_duration = v; }
    if let Some(v) = env("NE_TRIG") { c.suppressor.dominant_nearend_detection.trigger_threshold = v; }
    let t = &mut c.suppressor.nearend_tuning;
    if let Some(v) = env("NT_LF_T") { t.mask_lf.enr_transparent = v; }
    if let Some(v) = env("NT_LF_S") { t.mask_lf.enr_suppress = v; }
    if let Some(v) = env("NT_HF_T") { t.mask_hf.enr_transparent = v; }
    if let Some(v) = env("NT_HF_S") { t.mask_hf.enr_suppress = v; }
    if let Some(v) = env("NT_DEC") { t.max_dec_factor_lf = v; }
    let t = &mut c.suppressor.normal_tuning;
    if let Some(v) = env("NM_LF_T") { t.mask_lf.enr_transparent = v; }
    if let Some(v) = env("NM_LF_S") { t.mask_lf.enr_suppress = v; }
    if let Some(v) = env("NM_HF_T") { t.mask_hf.enr_transparent = v; }
    if let Some(v) = env("NM_HF_S") { t.mask_hf.enr_suppress = v; }
    if let Some(v) = env::<f32>("EMR") { c.suppressor.normal_tuning.mask_lf.emr_transparent = v; c.suppressor.normal_tuning.mask_hf.emr_transparent = v; c.suppressor.nearend_tuning.mask_lf.emr_transparent = v; c.suppressor.nearend_tuning.mask_hf.emr_transparent = v; }
    if let Some(v) = env("DEF_LEN") { c.ep_strength.default_len = v; }
    if let Some(v) = env("NE_LEN") { c.ep_strength.nearend_len = v; }
    if let Some(v) = env("DEF_GAIN") { c.ep_strength.default_gain = v; }
    if env::<u8>("BOUNDED_ERL").is_some() { c.ep_strength.bounded_erl = true; }
    if env::<u8>("CONS_HF").is_some() { c.suppressor.conservative_hf_suppression = true; }
    if env::<u8>("NO_DETECT_PRE").is_some() { c.delay.detect_pre_echo = false; }
    if let Some(v) = env("HB_GAIN") { c.suppressor.high_bands_suppression.max_gain_during_echo = v; }
    if let Some(v) = env("REFINED_RATE") { let _: f32 = v; }
    let linear = env::<u8>("LINEAR").is_some();
    let bp = BlockProcessor::new(&c, fs as usize, 1, 1);
    let mut l = L { bp, rb: FrameBlocker::new(1, 1), cb: FrameBlocker::new(1, 1), fr: BlockFramer::new(1, 1), lin_fr: BlockFramer::new(1, 1), linear };
    run("tune", &s, &mut l);
}
