//! Joins a room and serves the data side for an interop peer:
//!
//!   data-echo <url> <token|dev> <seconds> <room> <identity> <peer-identity>
//!
//! Answers RPC `echo` (the payload reversed) and `fail` (error 2001); echoes user packets
//! (topic `echo`) and byte streams (a new stream on topic `echo`, same name) back to their
//! sender; once the peer is in the room, calls its `js-echo` and an unregistered method, and
//! sends it a 100 000-byte stream on topic `capstan-bytes`. Prints one line per step and a
//! final `RESULT {...}`; ends when the peer sends a user packet on topic `done` or time is up.

use std::time::Duration;

use capstan_livekit::{access_token, ByteStreamOptions, Grants, ReadStream, Room, RoomEvent, RoomOptions, RpcError};
use sha2::{Digest, Sha256};

fn hex(b: &[u8]) -> String {
  Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

async fn read_all(s: &capstan_livekit::IncomingByteStream) -> Result<Vec<u8>, String> {
  let mut out = Vec::new();
  loop {
    match s.data.read(64 * 1024) {
      ReadStream::Bytes(b) => out.extend_from_slice(&b),
      ReadStream::Empty => tokio::time::sleep(Duration::from_millis(5)).await,
      ReadStream::Ended => return Ok(out),
      ReadStream::Failed(why) => return Err(why),
    }
  }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
  let args: Vec<String> = std::env::args().skip(1).collect();
  if args.len() < 6 {
    eprintln!("usage: data-echo <url> <token|dev> <seconds> <room> <identity> <peer-identity>");
    std::process::exit(2);
  }
  let (url, secs, room_name, identity, peer) = (&args[0], args[2].parse::<u64>()?, &args[3], &args[4], &args[5]);
  let token = if args[1] == "dev" {
    let key = std::env::var("LIVEKIT_API_KEY").unwrap_or_else(|_| "devkey".into());
    let secret = std::env::var("LIVEKIT_API_SECRET").unwrap_or_else(|_| "secret".into());
    access_token(&key, &secret, identity, &Grants::participant(room_name), 600)?
  } else {
    args[1].clone()
  };
  let (room, mut events) = Room::connect(url, &token, RoomOptions::default()).await?;
  let room = std::sync::Arc::new(room);
  println!(
    "joined {} as {} (server {})",
    room_name,
    identity,
    room.join_info().server_version
  );
  room.register_rpc_method("echo");
  room.register_rpc_method("fail");

  let mut result = serde_json::json!({});
  let mut calls_done = false;
  let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
  let mut peer_here = room.participants().iter().any(|p| &p.identity == peer);
  loop {
    if peer_here && !calls_done {
      calls_done = true;
      let r = room
        .perform_rpc(peer, "js-echo", "from capstan", Duration::from_secs(5))
        .await;
      println!("rpc js-echo -> {r:?}");
      result["rpc_js_echo"] = serde_json::json!(format!("{r:?}"));
      let r = room
        .perform_rpc(peer, "no-such-method", "", Duration::from_secs(5))
        .await;
      let code = r.as_ref().err().and_then(|e| e.rpc()).map(|e| e.code);
      println!("rpc no-such-method -> {r:?}");
      result["rpc_unknown_code"] = serde_json::json!(code);
      let bytes: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
      let mut w = room
        .open_byte_stream(ByteStreamOptions {
          destination_identities: vec![peer.clone()],
          topic: "capstan-bytes".into(),
          name: "from-capstan.bin".into(),
          total_length: Some(bytes.len() as u64),
          ..Default::default()
        })
        .await?;
      w.write(&bytes).await?;
      w.close("").await?;
      println!(
        "sent stream capstan-bytes: {} bytes sha256 {}",
        bytes.len(),
        hex(&bytes)
      );
      result["sent_sha256"] = serde_json::json!(hex(&bytes));
    }
    let e = match tokio::time::timeout_at(deadline, events.recv()).await {
      Ok(Some(e)) => e,
      Ok(None) => break,
      Err(_) => {
        println!("time is up");
        break;
      }
    };
    match e {
      RoomEvent::ParticipantJoined { identity, .. } if &identity == peer => peer_here = true,
      RoomEvent::Data {
        from_identity,
        topic,
        payload,
      } => {
        println!("data from {from_identity} topic {topic:?}: {} bytes", payload.len());
        if topic == "done" {
          break;
        }
        room
          .publish_data(&payload, Some("echo"), &[from_identity], true)
          .await?;
      }
      RoomEvent::RpcRequest {
        id,
        caller_identity,
        method,
        payload,
        ..
      } => {
        println!("rpc request {method} from {caller_identity}: {payload:?}");
        let answer = match method.as_str() {
          "echo" => Ok(payload.chars().rev().collect()),
          _ => Err(RpcError::new(2001, "capstan was asked to fail", "as asked")),
        };
        room.respond_rpc(&id, &caller_identity, answer).await?;
      }
      RoomEvent::ByteStream(s) => {
        let room = room.clone();
        tokio::spawn(async move {
          match read_all(&s).await {
            Ok(b) => {
              println!(
                "stream {} from {} topic {} name {}: {} bytes sha256 {} (chunks {})",
                s.id,
                s.from_identity,
                s.topic,
                s.name,
                b.len(),
                hex(&b),
                s.data.stats().chunks
              );
              let echo = async {
                let mut w = room
                  .open_byte_stream(ByteStreamOptions {
                    destination_identities: vec![s.from_identity.clone()],
                    topic: "echo".into(),
                    name: s.name.clone(),
                    total_length: Some(b.len() as u64),
                    ..Default::default()
                  })
                  .await?;
                w.write(&b).await?;
                w.close("").await
              };
              if let Err(e) = echo.await {
                println!("echo stream failed: {e}");
              }
            }
            Err(why) => println!("stream {} failed: {why}", s.id),
          }
        });
      }
      RoomEvent::Disconnected { reason } => {
        println!("disconnected: {reason}");
        break;
      }
      _ => {}
    }
  }
  let st = room.data_stats();
  result["stats"] = serde_json::json!(format!("{st:?}"));
  println!("RESULT {result}");
  room.close().await?;
  Ok(())
}
