//! Sample-rate conversion with rubato's synchronous FFT resampler, sized so that one
//! 10 ms chunk in is exactly one 10 ms chunk out.
//!
//! Both rates are multiples of 100 Hz, so their GCD is too, and a 10 ms chunk on each side
//! is a whole number of rubato's minimum blocks: with `FixedSync::Both` and the input chunk
//! as the block size, every call consumes `from/100` frames and yields `to/100` frames, with
//! no FIFO and no rounding drift. The price is a constant delay of half an output block
//! (5 ms): the first 5 ms out are the filter's zero history, after which a steady tone comes
//! out at the same frequency and level.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::processor::{round_i16_f32, Processor};
use crate::error::{CoreError, Result};
use crate::format::{Format, CHUNKS_PER_SECOND};

/// A fixed-ratio FFT resampler over interleaved f32, exactly one 10 ms chunk per call.
/// Shared with the denoiser, which runs RNNoise at 48 kHz whatever the stream's rate.
pub(crate) struct FftStage {
  fft: Fft<f32>,
  channels: usize,
  in_frames: usize,
  out_frames: usize,
  to_rate: u32,
}

impl FftStage {
  pub(crate) fn new(from_rate: u32, to_rate: u32, channels: u16) -> Result<Self> {
    let in_frames = (from_rate / CHUNKS_PER_SECOND) as usize;
    let out_frames = (to_rate / CHUNKS_PER_SECOND) as usize;
    let fft = Fft::<f32>::new(
      from_rate as usize,
      to_rate as usize,
      in_frames,
      channels as usize,
      FixedSync::Both,
    )
    .map_err(|e| CoreError::InvalidOption(format!("cannot resample {from_rate} Hz to {to_rate} Hz: {e}")))?;
    // Guaranteed by the arithmetic in the module doc; checked so a rubato change that broke
    // it fails at construction, not as a wrong-length chunk on an engine thread.
    if fft.input_frames_next() != in_frames || fft.output_frames_next() != out_frames {
      return Err(CoreError::InvalidOption(format!(
        "cannot resample {from_rate} Hz to {to_rate} Hz in 10 ms blocks ({} -> {} frames)",
        fft.input_frames_next(),
        fft.output_frames_next()
      )));
    }
    Ok(FftStage {
      fft,
      channels: channels as usize,
      in_frames,
      out_frames,
      to_rate,
    })
  }

  /// `input` holds one interleaved input chunk, `output` receives one output chunk.
  pub(crate) fn run(&mut self, input: &[f32], output: &mut [f32]) -> std::result::Result<(), String> {
    let src = InterleavedSlice::new(input, self.channels, self.in_frames).map_err(|e| e.to_string())?;
    let mut dst = InterleavedSlice::new_mut(output, self.channels, self.out_frames).map_err(|e| e.to_string())?;
    let (read, written) = self
      .fft
      .process_into_buffer(&src, &mut dst, None)
      .map_err(|e| e.to_string())?;
    if read != self.in_frames || written != self.out_frames {
      return Err(format!(
        "resampler moved {read} -> {written} frames, expected {} -> {}",
        self.in_frames, self.out_frames
      ));
    }
    Ok(())
  }

  pub(crate) fn out_len(&self) -> usize {
    self.out_frames * self.channels
  }

  pub(crate) fn delay_ms(&self) -> f64 {
    self.fft.output_delay() as f64 * 1000.0 / self.to_rate as f64
  }

  pub(crate) fn reset(&mut self) {
    self.fft.reset();
  }
}

pub struct Resample {
  from: Format,
  to: Format,
  /// `None` when the rates are equal: a copy, not an FFT round trip.
  stage: Option<FftStage>,
  inbuf: Vec<f32>,
  outbuf: Vec<f32>,
}

impl Resample {
  /// Converts `from` to `to_rate` Hz, same channels; `to_rate` obeys the same rules as a
  /// source's rate (8000..=192000, a multiple of 100).
  pub fn new(from: Format, to_rate: u32) -> Result<Self> {
    let to = Format::new(to_rate, from.channels)
      .map_err(|e| CoreError::InvalidOption(format!("resample toRate: {}", e.message())))?;
    let stage = if to_rate == from.sample_rate {
      None
    } else {
      Some(FftStage::new(from.sample_rate, to_rate, from.channels)?)
    };
    Ok(Resample {
      from,
      to,
      inbuf: vec![0.0; from.chunk_len()],
      outbuf: vec![0.0; to.chunk_len()],
      stage,
    })
  }
}

impl Processor for Resample {
  fn name(&self) -> &str {
    "resample"
  }

  fn input_format(&self) -> Option<Format> {
    Some(self.from)
  }

  fn output_format(&self, _input: Format) -> Format {
    self.to
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String> {
    let Some(stage) = self.stage.as_mut() else {
      out.extend_from_slice(input);
      return Ok(());
    };
    if input.len() != self.inbuf.len() {
      return Err(format!("expected {} samples, got {}", self.inbuf.len(), input.len()));
    }
    // i16 scale kept as is: the resampler is linear, so no normalisation is needed.
    for (d, s) in self.inbuf.iter_mut().zip(input) {
      *d = *s as f32;
    }
    stage.run(&self.inbuf, &mut self.outbuf)?;
    out.extend(self.outbuf[..stage.out_len()].iter().map(|&x| round_i16_f32(x)));
    Ok(())
  }

  fn reset(&mut self) {
    if let Some(s) = self.stage.as_mut() {
      s.reset();
    }
  }

  fn delay_ms(&self) -> f64 {
    self.stage.as_ref().map_or(0.0, FftStage::delay_ms)
  }
}
