#[path = "../../../common.rs"]
mod common;
use common::*;
use sonora_aec3::block::Block;
use sonora_aec3::block_framer::BlockFramer;
use sonora_aec3::block_processor::BlockProcessor;
use sonora_aec3::config::EchoCanceller3Config;
use sonora_aec3::frame_blocker::FrameBlocker;

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
        for sf in s.chunks(80) {
            self.cb.insert_sub_frame_and_extract_block(&[vec![sf]], &mut b);
            self.bp.process_capture(false, false, Some(&mut lin), &mut b);
            if self.linear { self.lin_fr.insert_block_and_extract_sub_frame(&lin, &mut sub); } else { self.fr.insert_block_and_extract_sub_frame(&b, &mut sub); }
            if self.cb.is_block_available() {
                self.cb.extract_block(&mut b);
                self.bp.process_capture(false, false, Some(&mut lin), &mut b);
                if self.linear { self.lin_fr.insert_block(&lin); } else { self.fr.insert_block(&b); }
            }
            outv.extend_from_slice(&sub[0][0]);
        }
        for (o, v) in x.iter_mut().zip(outv) { *o = v / 32768.0; }
    }
    fn erle_delay(&mut self) -> (Option<f64>, Option<i32>) { let m = self.bp.get_metrics(); (Some(m.echo_return_loss_enhancement), Some(m.delay_ms)) }
}

fn main() {
    let secs: f32 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(20.0);
    let blocks: usize = std::env::var("BLOCKS").ok().map(|s| s.parse().unwrap()).unwrap_or(13);
    let linear = std::env::var("LINEAR").is_ok();
    let fs = 16000;
    let s = scenario(fs, secs);
    let mut cfg = EchoCanceller3Config::default();
    cfg.filter.export_linear_aec_output = true;
    cfg.filter.refined.length_blocks = blocks;
    cfg.filter.coarse.length_blocks = blocks;
    cfg.filter.refined_initial.length_blocks = blocks.min(12);
    cfg.filter.coarse_initial.length_blocks = blocks.min(12);
    let bp = BlockProcessor::new(&cfg, fs as usize, 1, 1);
    let mut l = L { bp, rb: FrameBlocker::new(1, 1), cb: FrameBlocker::new(1, 1), fr: BlockFramer::new(1, 1), lin_fr: BlockFramer::new(1, 1), linear };
    run(&format!("aec3 block processor blocks={blocks} linear={linear}"), &s, &mut l);
}
