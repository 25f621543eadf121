//! One error type with a kind per failure a caller handles differently (rust-sdks #497 is
//! what happens without it): the transport to the server, the signal protocol, the peer
//! connection, a bound that passed, and a session that is already gone.

use std::fmt;

/// What went wrong, by who is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
  /// The signal connection could not be made or broke: TCP, the HTTP upgrade (a bad token
  /// is a 401 here), TLS, or the WebSocket itself.
  Connect(String),
  /// The server said something this client cannot use: an undecodable message, a message
  /// out of order, a refusal (a `LeaveRequest` at join), a track it would not publish.
  Signal(String),
  /// The WebRTC side: SDP, ICE, DTLS or SRTP, or the UDP socket under it.
  Peer(String),
  /// A bounded step did not finish in time; the text names the step.
  Timeout(String),
  /// The session has ended (closed by the caller, left by the server, or failed before).
  Closed,
  /// An option or argument out of its range; the text names it.
  InvalidOption(String),
  /// An RPC failed: the callee's error or a built-in one (see [`crate::RpcError`]), code kept.
  Rpc(crate::data::RpcError),
}

impl Error {
  /// Every code [`code`](Error::code) gives, for a binding's contract.
  pub const CODES: [&'static str; 7] = [
    "ERR_CONNECT",
    "ERR_SIGNAL",
    "ERR_PEER",
    "ERR_TIMEOUT",
    "ERR_INVALID_STATE",
    "ERR_INVALID_OPTION",
    "ERR_RPC",
  ];

  /// A stable code for bindings, in the style of capstan's `ERR_*` codes (a call on a
  /// session that has ended is capstan's `ERR_INVALID_STATE`, like any closed object's).
  pub fn code(&self) -> &'static str {
    match self {
      Error::Connect(_) => "ERR_CONNECT",
      Error::Signal(_) => "ERR_SIGNAL",
      Error::Peer(_) => "ERR_PEER",
      Error::Timeout(_) => "ERR_TIMEOUT",
      Error::Closed => "ERR_INVALID_STATE",
      Error::InvalidOption(_) => "ERR_INVALID_OPTION",
      Error::Rpc(_) => "ERR_RPC",
    }
  }
}

impl fmt::Display for Error {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Error::Connect(m) => write!(f, "livekit connect: {m}"),
      Error::Signal(m) => write!(f, "livekit signal: {m}"),
      Error::Peer(m) => write!(f, "livekit peer connection: {m}"),
      Error::Timeout(m) => write!(f, "livekit timeout: {m}"),
      Error::Closed => write!(f, "livekit session closed"),
      Error::InvalidOption(m) => write!(f, "invalid option: {m}"),
      Error::Rpc(e) => write!(f, "livekit rpc: {e}"),
    }
  }
}

impl std::error::Error for Error {}

impl Error {
  /// The RPC error of an [`Error::Rpc`].
  pub fn rpc(&self) -> Option<&crate::data::RpcError> {
    match self {
      Error::Rpc(e) => Some(e),
      _ => None,
    }
  }
}

impl From<str0m::RtcError> for Error {
  fn from(e: str0m::RtcError) -> Self {
    Error::Peer(e.to_string())
  }
}

pub type Result<T> = std::result::Result<T, Error>;
