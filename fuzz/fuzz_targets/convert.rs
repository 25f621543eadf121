//! Float samples from any bytes: conversion never panics, refuses NaN, and clips
//! (infinities included) to the int16 range with the documented rounding; declared formats parse or fail.
#![no_main]

use capstan_core::format::{declared, f32_to_i16};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
  let floats: Vec<f32> = data
    .chunks_exact(4)
    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    .collect();
  let mut out = Vec::new();
  match f32_to_i16(&floats, &mut out) {
    Ok(()) => {
      assert_eq!(out.len(), floats.len());
      for (f, s) in floats.iter().zip(&out) {
        assert!(!f.is_nan());
        let want = (f.clamp(-1.0, 1.0) * 32767.0).round();
        assert!((*s as f32 - want).abs() <= 1.0, "{f} -> {s}, want ≈ {want}");
      }
    }
    Err(e) => {
      assert_eq!(e.code(), "ERR_INVALID_FRAME");
      assert!(floats.iter().any(|f| f.is_nan()));
    }
  }
  if let [a, b, ..] = floats[..] {
    let _ = declared(Some(a as f64), Some(b as f64));
  }
});
