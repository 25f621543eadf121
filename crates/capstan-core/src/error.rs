//! Programmer errors. Everything else a capture can meet is an outcome, not an error.

use std::fmt;

/// A caller mistake, with a stable code the TypeScript layer maps to `CapstanError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
  /// A frame whose rate or channel count differs from the source's.
  FormatMismatch(String),
  /// A frame that cannot be audio: empty, ragged, NaN samples.
  InvalidFrame(String),
  /// An option out of range or of the wrong kind.
  InvalidOption(String),
  /// A call could not take a source's lock within its bound (never expected: critical
  /// sections are microseconds). Nothing changed; the call may be retried.
  Busy(String),
}

impl CoreError {
  /// Every code [`CoreError::code`] returns.
  pub const CODES: [&'static str; 4] = [
    "ERR_FORMAT_MISMATCH",
    "ERR_INVALID_FRAME",
    "ERR_INVALID_OPTION",
    "ERR_BUSY",
  ];

  /// The stable code users match on.
  pub fn code(&self) -> &'static str {
    match self {
      CoreError::FormatMismatch(_) => "ERR_FORMAT_MISMATCH",
      CoreError::InvalidFrame(_) => "ERR_INVALID_FRAME",
      CoreError::InvalidOption(_) => "ERR_INVALID_OPTION",
      CoreError::Busy(_) => "ERR_BUSY",
    }
  }

  pub fn message(&self) -> &str {
    match self {
      CoreError::FormatMismatch(m) | CoreError::InvalidFrame(m) | CoreError::InvalidOption(m) | CoreError::Busy(m) => m,
    }
  }
}

impl fmt::Display for CoreError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}: {}", self.code(), self.message())
  }
}

impl std::error::Error for CoreError {}

#[cfg(test)]
mod tests {
  use super::CoreError;

  #[test]
  fn codes_lists_every_code() {
    let all = [
      CoreError::FormatMismatch(String::new()),
      CoreError::InvalidFrame(String::new()),
      CoreError::InvalidOption(String::new()),
      CoreError::Busy(String::new()),
    ];
    assert_eq!(all.map(|e| e.code()), CoreError::CODES);
  }
}

pub type Result<T> = std::result::Result<T, CoreError>;
