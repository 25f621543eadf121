//! The consumer's audio leaves the engine: counted as delivered, kept nowhere.

use super::Sink;
use crate::format::Format;

pub struct Discard {
  format: Format,
}

impl Discard {
  pub fn new(format: Format) -> Self {
    Discard { format }
  }
}

impl Sink for Discard {
  fn format(&self) -> Format {
    self.format
  }

  fn room(&self) -> usize {
    usize::MAX
  }

  fn push(&mut self, _chunk: &[i16]) -> Result<(), String> {
    Ok(())
  }

  fn discards(&self) -> bool {
    true
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn takes_everything_and_keeps_nothing() {
    let f = Format::new(16_000, 1).unwrap();
    let mut d = Discard::new(f);
    assert_eq!(d.room(), usize::MAX);
    assert!(d.push(&[0; 160]).is_ok());
    assert!(d.underrun().is_ok());
    assert!(d.discards() && !d.fills_gaps());
    assert_eq!(d.format(), f);
  }
}
