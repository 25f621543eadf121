//! The signal connection: one WebSocket to `/rtc` carrying protobuf `SignalRequest`s up and
//! `SignalResponse`s down, one binary message each (what livekit-server and client-sdk-js's
//! `SignalClient` do). This module makes the URL, frames messages and makes the connection up
//! to the `JoinResponse`; the session (`room.rs`) runs it after that.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};

/// The signal protocol version this client speaks. 16: non-error `RequestResponse`s (> 14)
/// and `RoomMoved` (> 15), but not 17's packet trailers, which it has no use for.
pub const PROTOCOL_VERSION: u32 = 16;
/// How this client names itself to the server (`sdk=`; livekit-server maps `rust` to
/// `ClientInfo.SDK.RUST`).
pub const SDK_NAME: &str = "rust";
/// A signal message larger than this is refused: a JoinResponse of a large room is some
/// tens of kB, and nothing a publisher receives comes near it.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// `ws(s)://host[:port][/prefix]/rtc?access_token=…&auto_subscribe=…&protocol=…&sdk=…&version=…`.
/// `http(s)://` is accepted and mapped to `ws(s)://` as the other SDKs do.
pub fn signal_url(url: &str, token: &str, auto_subscribe: bool) -> Result<String> {
  let base = if let Some(rest) = url.strip_prefix("http://") {
    format!("ws://{rest}")
  } else if let Some(rest) = url.strip_prefix("https://") {
    format!("wss://{rest}")
  } else if url.starts_with("ws://") || url.starts_with("wss://") {
    url.to_string()
  } else {
    return Err(Error::InvalidOption(format!(
      "url must start with ws://, wss://, http:// or https://, got {url:?}"
    )));
  };
  if base.contains('?') || base.contains('#') {
    return Err(Error::InvalidOption(format!(
      "url must have no query or fragment, got {url:?}"
    )));
  }
  if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
    // A JWT is base64url parts joined by dots: nothing to escape, and anything else is not a token.
    return Err(Error::InvalidOption("token must be a JWT (base64url and dots)".into()));
  }
  Ok(format!(
    "{}/rtc?access_token={token}&auto_subscribe={}&protocol={PROTOCOL_VERSION}&sdk={SDK_NAME}&version={}",
    base.trim_end_matches('/'),
    if auto_subscribe { 1 } else { 0 },
    env!("CARGO_PKG_VERSION"),
  ))
}

/// One request as the one binary WebSocket message it travels in.
pub fn encode_request(msg: proto::signal_request::Message) -> Message {
  Message::Binary(proto::SignalRequest { message: Some(msg) }.encode_to_vec().into())
}

/// One WebSocket message as a response: `Ok(None)` for control frames (ping/pong, which
/// tungstenite answers itself), `Err(Closed)` for a close frame, `Err(Signal)` for anything
/// that is not a protobuf `SignalResponse` with a message in it.
pub fn decode_response(msg: Message) -> Result<Option<proto::signal_response::Message>> {
  match msg {
    Message::Binary(b) => {
      if b.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Signal(format!(
          "message of {} bytes (limit {MAX_MESSAGE_BYTES})",
          b.len()
        )));
      }
      let r = proto::SignalResponse::decode(b.as_ref())
        .map_err(|e| Error::Signal(format!("undecodable SignalResponse ({} bytes): {e}", b.len())))?;
      r.message
        .map(Some)
        .ok_or_else(|| Error::Signal("SignalResponse without a message (unknown to protocol 16?)".into()))
    }
    Message::Text(t) => Err(Error::Signal(format!(
      "text message where protobuf was expected: {:?}",
      t.chars().take(120).collect::<String>()
    ))),
    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
    Message::Close(_) => Err(Error::Closed),
  }
}

/// The name of a response, for errors and logs.
pub fn response_name(m: &proto::signal_response::Message) -> &'static str {
  use proto::signal_response::Message as M;
  match m {
    M::Join(_) => "join",
    M::Answer(_) => "answer",
    M::Offer(_) => "offer",
    M::Trickle(_) => "trickle",
    M::Update(_) => "update",
    M::TrackPublished(_) => "track_published",
    M::Leave(_) => "leave",
    M::Mute(_) => "mute",
    M::TrackUnpublished(_) => "track_unpublished",
    M::Pong(_) | M::PongResp(_) => "pong",
    M::TrackSubscribed(_) => "track_subscribed",
    M::RequestResponse(_) => "request_response",
    _ => "other",
  }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> Error {
  use tokio_tungstenite::tungstenite::Error as W;
  match e {
    W::Http(resp) => {
      let body = resp
        .body()
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).trim().chars().take(200).collect::<String>())
        .unwrap_or_default();
      Error::Connect(format!("server answered HTTP {} {body}", resp.status()))
    }
    W::ConnectionClosed | W::AlreadyClosed => Error::Closed,
    other => Error::Connect(other.to_string()),
  }
}

/// Opens the signal connection and waits for the `JoinResponse`, all within `timeout`.
/// Messages before it are dropped; a `LeaveRequest` before it is a refusal.
pub async fn connect(
  url: &str,
  token: &str,
  auto_subscribe: bool,
  timeout: Duration,
) -> Result<(Ws, proto::JoinResponse)> {
  let url = signal_url(url, token, auto_subscribe)?;
  let (ws, first) = open(&url, timeout, "JoinResponse", |m| match m {
    proto::signal_response::Message::Join(j) => Some(First::Join(j)),
    _ => None,
  })
  .await?;
  match first {
    First::Join(j) => Ok((ws, j)),
    First::Reconnect(_) => Err(Error::Signal("a ReconnectResponse answered a join".into())),
  }
}

/// Resumes a session whose signal connection broke while its peer connections live on:
/// the same `/rtc` with `reconnect=1`, the participant's sid and why. The server swaps
/// the connection under the participant and answers with a `ReconnectResponse` (then
/// restarts ICE on its subscriber connection with a new offer); a `LeaveRequest` instead
/// means it no longer knows the participant (a full reconnect would be needed).
pub async fn reconnect(
  url: &str,
  token: &str,
  auto_subscribe: bool,
  participant_sid: &str,
  reason: proto::ReconnectReason,
  timeout: Duration,
) -> Result<(Ws, proto::ReconnectResponse)> {
  if participant_sid.is_empty() || !participant_sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
    return Err(Error::InvalidOption(format!(
      "participant sid {participant_sid:?} is not one the server gives"
    )));
  }
  let url = format!(
    "{}&reconnect=1&sid={participant_sid}&reconnect_reason={}",
    signal_url(url, token, auto_subscribe)?,
    reason as i32
  );
  let (ws, first) = open(&url, timeout, "ReconnectResponse", |m| match m {
    proto::signal_response::Message::Reconnect(r) => Some(First::Reconnect(r)),
    _ => None,
  })
  .await?;
  match first {
    First::Reconnect(r) => Ok((ws, r)),
    First::Join(_) => Err(Error::Signal("a JoinResponse answered a resume".into())),
  }
}

enum First {
  Join(proto::JoinResponse),
  Reconnect(proto::ReconnectResponse),
}

/// The WebSocket to `url`, and the first message `pick` takes, within `timeout`.
async fn open(
  url: &str,
  timeout: Duration,
  what: &str,
  pick: impl Fn(proto::signal_response::Message) -> Option<First>,
) -> Result<(Ws, First)> {
  let work = async {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
      .max_message_size(Some(MAX_MESSAGE_BYTES))
      .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let (mut ws, _resp) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
      .await
      .map_err(ws_error)?;
    loop {
      let Some(msg) = ws.next().await else {
        return Err(Error::Connect(format!(
          "the server closed the signal connection before its {what}"
        )));
      };
      match decode_response(msg.map_err(ws_error)?) {
        Ok(Some(proto::signal_response::Message::Leave(leave))) => {
          return Err(Error::Signal(format!(
            "the server refused (leave, reason {} {})",
            leave.reason,
            proto::DisconnectReason::try_from(leave.reason)
              .map(|r| r.as_str_name())
              .unwrap_or("?")
          )))
        }
        Ok(Some(m)) => {
          if let Some(first) = pick(m) {
            return Ok((ws, first));
          }
        }
        Ok(None) => {}
        Err(Error::Closed) => {
          return Err(Error::Connect(format!(
            "the server closed the signal connection before its {what}"
          )))
        }
        Err(e) => return Err(e),
      }
    }
  };
  match tokio::time::timeout(timeout, work).await {
    Ok(r) => r,
    Err(_) => Err(Error::Timeout(format!("no {what} within {} ms", timeout.as_millis()))),
  }
}

/// Sends one request within `timeout` (a peer that stops reading fills the socket buffer;
/// the send must not wait for it forever).
pub async fn send(
  ws: &mut futures_util::stream::SplitSink<Ws, Message>,
  msg: proto::signal_request::Message,
  timeout: Duration,
) -> Result<()> {
  match tokio::time::timeout(timeout, ws.send(encode_request(msg))).await {
    Ok(r) => r.map_err(ws_error),
    Err(_) => Err(Error::Timeout(format!(
      "signal send took over {} ms",
      timeout.as_millis()
    ))),
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use proto::signal_request::Message as Req;
  use proto::signal_response::Message as Res;
  use tokio::io::{AsyncReadExt, AsyncWriteExt};

  #[test]
  fn url_has_the_query_the_server_reads() {
    let u = signal_url("ws://127.0.0.1:7880/", "a.b-c_d", false).unwrap();
    assert_eq!(
      u,
      format!(
        "ws://127.0.0.1:7880/rtc?access_token=a.b-c_d&auto_subscribe=0&protocol=16&sdk=rust&version={}",
        env!("CARGO_PKG_VERSION")
      )
    );
    assert!(signal_url("https://x.example/base", "t", true)
      .unwrap()
      .starts_with("wss://x.example/base/rtc?access_token=t&auto_subscribe=1&"));
    assert_eq!(
      signal_url("tcp://x", "t", true).unwrap_err().code(),
      "ERR_INVALID_OPTION"
    );
    assert_eq!(
      signal_url("ws://x/?a=1", "t", true).unwrap_err().code(),
      "ERR_INVALID_OPTION"
    );
    assert_eq!(
      signal_url("ws://x", "a&b", true).unwrap_err().code(),
      "ERR_INVALID_OPTION"
    );
  }

  #[test]
  fn a_request_is_one_binary_message_that_decodes_back() {
    let m = encode_request(Req::PingReq(proto::Ping {
      timestamp: 1234,
      rtt: 5,
    }));
    let Message::Binary(b) = m else { panic!("not binary") };
    let back = proto::SignalRequest::decode(b.as_ref()).unwrap();
    assert_eq!(
      back.message,
      Some(Req::PingReq(proto::Ping {
        timestamp: 1234,
        rtt: 5
      }))
    );
  }

  #[test]
  fn responses_decode_and_garbage_is_a_signal_error() {
    let join = proto::SignalResponse {
      message: Some(Res::Join(proto::JoinResponse {
        ping_interval: 5,
        ..Default::default()
      })),
    };
    let got = decode_response(Message::Binary(join.encode_to_vec().into()))
      .unwrap()
      .unwrap();
    assert!(matches!(got, Res::Join(j) if j.ping_interval == 5));
    assert!(decode_response(Message::Ping(vec![1].into())).unwrap().is_none());
    assert_eq!(decode_response(Message::Close(None)).unwrap_err(), Error::Closed);
    let junk = decode_response(Message::Binary(vec![0xff, 0xff, 0xff, 0xff, 0x0f].into())).unwrap_err();
    assert_eq!(junk.code(), "ERR_SIGNAL");
    assert_eq!(
      decode_response(Message::Text("hello".into())).unwrap_err().code(),
      "ERR_SIGNAL"
    );
    // An empty SignalResponse (a message this version does not know) is refused, not skipped silently.
    assert_eq!(
      decode_response(Message::Binary(Vec::new().into())).unwrap_err().code(),
      "ERR_SIGNAL"
    );
  }

  /// A TCP server that answers the upgrade request with junk: a typed error, at once.
  #[tokio::test]
  async fn a_server_that_answers_garbage_is_a_connect_error_not_a_hang() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
      while let Ok((mut s, _)) = l.accept().await {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"\x00\x01garbage that is not HTTP\r\n\r\n").await;
        let _ = s.shutdown().await;
      }
    });
    let t0 = std::time::Instant::now();
    let e = connect(&format!("ws://{addr}"), "a.b.c", false, Duration::from_secs(5))
      .await
      .unwrap_err();
    assert_eq!(e.code(), "ERR_CONNECT", "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
  }

  /// HTTP 401 (what livekit-server answers a bad token) names the status.
  #[tokio::test]
  async fn an_http_refusal_is_a_connect_error_with_the_status() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
      if let Ok((mut s, _)) = l.accept().await {
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf).await;
        let body = "invalid token";
        let _ = s
          .write_all(
            format!(
              "HTTP/1.1 401 Unauthorized\r\ncontent-length: {}\r\n\r\n{body}",
              body.len()
            )
            .as_bytes(),
          )
          .await;
      }
    });
    let e = connect(&format!("ws://{addr}"), "a.b.c", false, Duration::from_secs(5))
      .await
      .unwrap_err();
    assert!(matches!(&e, Error::Connect(m) if m.contains("401")), "{e}");
  }

  /// A server that upgrades and then sends junk binary is a signal error; one that upgrades
  /// and says nothing is a timeout within the bound.
  #[tokio::test]
  async fn junk_after_the_upgrade_is_a_signal_error_and_silence_a_timeout() {
    async fn server(junk: bool) -> std::net::SocketAddr {
      let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
      let addr = l.local_addr().unwrap();
      tokio::spawn(async move {
        if let Ok((s, _)) = l.accept().await {
          let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
          if junk {
            let _ = ws.send(Message::Binary(vec![0x0a, 0xff, 0x01].into())).await;
          }
          tokio::time::sleep(Duration::from_secs(10)).await;
        }
      });
      addr
    }
    let e = connect(
      &format!("ws://{}", server(true).await),
      "a.b.c",
      false,
      Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "ERR_SIGNAL", "{e}");
    let t0 = std::time::Instant::now();
    let e = connect(
      &format!("ws://{}", server(false).await),
      "a.b.c",
      false,
      Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "ERR_TIMEOUT", "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
  }

  #[tokio::test]
  async fn nothing_listening_is_a_connect_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = connect(&format!("ws://{addr}"), "a.b.c", false, Duration::from_secs(5))
      .await
      .unwrap_err();
    assert_eq!(e.code(), "ERR_CONNECT", "{e}");
  }
}
