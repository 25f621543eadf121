//! A pass-through processor that sleeps on every chunk: a stand-in for a processor slower
//! than real time, so tests can show that nothing but the clock ever waits on one. Not
//! reachable from JavaScript (no `kind` parses to it).

use std::time::Duration;

use super::processor::Processor;

pub struct Sleep {
  per_chunk: Duration,
}

impl Sleep {
  pub fn new(ms: u32) -> Self {
    Sleep {
      per_chunk: Duration::from_millis(ms as u64),
    }
  }
}

impl Processor for Sleep {
  fn name(&self) -> &str {
    "sleep"
  }

  fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> std::result::Result<(), String> {
    std::thread::sleep(self.per_chunk);
    out.extend_from_slice(input);
    Ok(())
  }

  fn reset(&mut self) {}
}
