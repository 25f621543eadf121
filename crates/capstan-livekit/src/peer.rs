//! The peer connections: str0m's `Rtc` (sans-IO ICE, DTLS, SRTP, SDP) and the negotiation
//! state around it. No I/O here: the session (`room.rs`) feeds them datagrams and timeouts
//! and sends what they output, so everything but the network is testable in-process.
//!
//! This client is always the offerer on the publisher connection (as every LiveKit SDK):
//! changes (a data channel to get a transport up, an audio m-line per track, a track made
//! inactive to unpublish) are queued and go out in one offer; while an offer waits for its
//! answer, further changes wait for the next one.
//!
//! The subscriber connection is the server's: it offers, [`Subscriber`] answers. A
//! participant that may subscribe gets it first (`subscriber_primary`), and the server counts
//! the participant active only once that connection is up (livekit-server removes one still
//! joining after a minute), so even a client that only publishes must answer it. It carries
//! the server's data channels and the remote tracks this client subscribes to, taken in
//! str0m's RTP mode: every packet as it arrives, with its sequence number, so reordering
//! and loss are the jitter buffer's to judge (see [`crate::jitter`]), not held back by
//! str0m's frame reassembly (which waits up to a second for a missing audio packet).

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::error::{Error, Result};

/// The data channels every LiveKit SDK opens on the publisher connection. They give the first
/// offer an m-line, so the transport (ICE, DTLS, SCTP) comes up before any track, and both
/// are needed: livekit-server arms a timer when ICE connects and, if it fires 10-20 s later
/// with the transport not "fully established" (for a first offer with an application m-line:
/// `_reliable` *and* `_lossy` open), fails the transport and sends Leave (CONNECTION_TIMEOUT).
/// The connected state normally disarms it, but when the server sees "connected" before
/// "ICE connected" (a race in `pkg/rtc/transport.go`) only the channels save the session:
/// with `_reliable` alone 1-2 of 100 publish-load sessions were ended that way per run.
pub const RELIABLE_CHANNEL: &str = "_reliable";
pub const LOSSY_CHANNEL: &str = "_lossy";
/// Opus's RTP clock: 48 kHz whatever the encoder's input rate (RFC 7587).
pub const OPUS_RTP_RATE: u32 = 48_000;

/// Timeouts already due that one [`Pc::poll`] handles itself before it returns (a bound, so
/// a connection that keeps asking cannot hold the session's task).
const MAX_DUE_NOW: u32 = 8;

/// What a connection asks of the session after a call.
#[derive(Debug)]
pub enum PeerOutput {
  Transmit {
    to: SocketAddr,
    data: Vec<u8>,
  },
  Connected,
  Disconnected(String),
  /// A media frame that arrived on a connection in frame mode, with its RTP time in the
  /// codec's clock, extended to 64 bits.
  Media {
    mid: Mid,
    rtp_time: u64,
    data: Vec<u8>,
  },
  /// An RTP packet that arrived on a connection in RTP mode (the [`Subscriber`]): extended
  /// sequence number and RTP time, payload without the header; `mid` none if str0m knows
  /// no m-line for its SSRC.
  Rtp {
    mid: Option<Mid>,
    pt: Pt,
    seq: u64,
    rtp_time: u64,
    data: Vec<u8>,
  },
  /// A data channel is open (ours once the remote acked it, or one the remote opened).
  ChannelOpen {
    id: ChannelId,
    label: String,
  },
  /// One message on a data channel.
  ChannelData {
    id: ChannelId,
    data: Vec<u8>,
  },
  ChannelClose(ChannelId),
}

/// What both connections share: str0m's `Rtc` with one host candidate, and the I/O entry
/// points.
pub struct Pc {
  rtc: Rtc,
  local: SocketAddr,
  connected: bool,
}

/// The longest wait between STUN checks (str0m's default is 3 s): a connection whose checks
/// go unanswered is given up sooner, and the session's full reconnect starts sooner (the
/// stand-in test measured about 15 s from the last answer instead of about 21 s).
pub const MAX_STUN_RTO: std::time::Duration = std::time::Duration::from_millis(1000);

impl Pc {
  /// A connection whose one host candidate is the UDP socket the session bound at `local`.
  pub fn new(local: SocketAddr, now: Instant) -> Result<Self> {
    Self::with_mode(local, now, false)
  }

  /// `rtp_mode`: incoming media as [`PeerOutput::Rtp`] packets (no writing then).
  pub fn with_mode(local: SocketAddr, now: Instant, rtp_mode: bool) -> Result<Self> {
    let mut cfg = Rtc::builder()
      .clear_codecs()
      // Opus only, without RED: tracks are announced with `disable_red`, so the server
      // expects plain Opus (and a subscriber that answers without RED gets plain Opus).
      .enable_opus(true, false)
      .set_rtp_mode(rtp_mode);
    cfg.set_max_stun_rto(MAX_STUN_RTO);
    let mut rtc = cfg.build(now);
    let c = Candidate::host(local, "udp").map_err(|e| Error::Peer(format!("host candidate {local}: {e}")))?;
    rtc
      .add_local_candidate(c)
      .ok_or_else(|| Error::Peer(format!("str0m refused the host candidate {local}")))?;
    Ok(Pc {
      rtc,
      local,
      connected: false,
    })
  }

  pub fn local_addr(&self) -> SocketAddr {
    self.local
  }

  /// ICE and DTLS are up.
  pub fn is_connected(&self) -> bool {
    self.connected
  }

  /// Our candidates as trickle `candidate_init` JSON (an `RTCIceCandidateInit`).
  pub fn local_candidate_inits(&self) -> Result<Vec<String>> {
    let c = Candidate::host(self.local, "udp").map_err(|e| Error::Peer(e.to_string()))?;
    Ok(vec![candidate_init_json(&c.to_sdp_string())])
  }

  /// A trickled remote candidate (`candidate_init` JSON). The end-of-candidates marker (an
  /// empty candidate) and TCP candidates (this client speaks UDP only) are skipped.
  pub fn add_remote_candidate(&mut self, candidate_init: &str) -> Result<bool> {
    let v: serde_json::Value = serde_json::from_str(candidate_init)
      .map_err(|e| Error::Signal(format!("trickle candidate_init is not JSON: {e}")))?;
    let line = v.get("candidate").and_then(|c| c.as_str()).unwrap_or("");
    if line.trim().is_empty() {
      return Ok(false);
    }
    let c =
      Candidate::from_sdp_string(line).map_err(|e| Error::Signal(format!("bad trickle candidate {line:?}: {e}")))?;
    if c.proto() != Protocol::Udp {
      return Ok(false);
    }
    self.rtc.add_remote_candidate(c);
    Ok(true)
  }

  /// A datagram that arrived on this connection's socket from `from`.
  pub fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<()> {
    let Ok(contents) = data.try_into() else {
      return Ok(()); // not STUN/DTLS/RTP: not ours
    };
    let input = Input::Receive(
      now,
      Receive {
        proto: Protocol::Udp,
        source: from,
        destination: self.local,
        contents,
      },
    );
    if self.rtc.accepts(&input) {
      self.rtc.handle_input(input)?;
    }
    Ok(())
  }

  pub fn timeout(&mut self, now: Instant) -> Result<()> {
    self.rtc.handle_input(Input::Timeout(now))?;
    Ok(())
  }

  /// Drains str0m's output until it asks to be woken, as its run loop demands after every
  /// input. Returns that instant.
  pub fn poll(&mut self, out: &mut Vec<PeerOutput>) -> Result<Instant> {
    let mut due_now = 0;
    loop {
      match self.rtc.poll_output()? {
        // A write makes str0m ask for a timeout that is already due (packetize, then the
        // pacer): handled here, not by a trip through the session's select, it costs no
        // wakeup (each packet took three before: ~137 wakeups a second per session).
        Output::Timeout(t) if due_now < MAX_DUE_NOW && t <= Instant::now() => {
          due_now += 1;
          self.rtc.handle_input(Input::Timeout(Instant::now()))?;
        }
        Output::Timeout(t) => return Ok(t),
        Output::Transmit(t) => out.push(PeerOutput::Transmit {
          to: t.destination,
          data: t.contents.to_vec(),
        }),
        Output::Event(Event::Connected) => {
          self.connected = true;
          out.push(PeerOutput::Connected);
        }
        Output::Event(Event::IceConnectionStateChange(s)) => {
          if s == str0m::IceConnectionState::Disconnected {
            out.push(PeerOutput::Disconnected("ICE disconnected".into()));
          }
        }
        Output::Event(Event::Closed) => out.push(PeerOutput::Disconnected("peer connection closed".into())),
        Output::Event(Event::MediaData(m)) => out.push(PeerOutput::Media {
          mid: m.mid,
          rtp_time: m.time.numer(),
          data: m.data.to_vec(),
        }),
        Output::Event(Event::RtpPacket(p)) => {
          let ssrc = p.header.ssrc;
          let mid = p
            .header
            .ext_vals
            .mid
            .or_else(|| self.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid()));
          out.push(PeerOutput::Rtp {
            mid,
            pt: p.header.payload_type,
            seq: *p.seq_no,
            rtp_time: p.time.numer(),
            data: p.payload.to_vec(),
          })
        }
        Output::Event(Event::ChannelOpen(id, label)) => out.push(PeerOutput::ChannelOpen { id, label }),
        Output::Event(Event::ChannelData(d)) => out.push(PeerOutput::ChannelData { id: d.id, data: d.data }),
        Output::Event(Event::ChannelClose(id)) => out.push(PeerOutput::ChannelClose(id)),
        Output::Event(_) => {}
      }
    }
  }

  /// One binary message on an open data channel; false when the SCTP buffer has no room
  /// for it now (or the channel is gone), so the caller keeps it for later.
  pub fn channel_write(&mut self, id: ChannelId, data: &[u8]) -> Result<bool> {
    match self.rtc.channel(id) {
      Some(mut ch) => Ok(ch.write(true, data)?),
      None => Ok(false),
    }
  }

  pub fn disconnect(&mut self) {
    self.rtc.disconnect();
  }
}

/// A change waiting for the next offer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
  Channel,
  AddAudio { cid: String, stream: String },
  Inactive(Mid),
}

/// An offer to send on the signal connection (`SessionDescription { type: "offer", id }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
  pub sdp: String,
  pub id: u32,
  /// Audio tracks this offer adds, by client track id, with their m-line.
  pub added: Vec<(String, Mid)>,
}

/// The offer out: str0m's handle, its id, the m-lines it adds.
type PendingOffer = (SdpPendingOffer, u32, Vec<(String, Mid)>);

/// The connection this client offers and publishes on.
pub struct Publisher {
  pc: Pc,
  queued: Vec<Change>,
  pending: Option<PendingOffer>,
  next_id: u32,
}

impl Deref for Publisher {
  type Target = Pc;
  fn deref(&self) -> &Pc {
    &self.pc
  }
}

impl DerefMut for Publisher {
  fn deref_mut(&mut self) -> &mut Pc {
    &mut self.pc
  }
}

impl Publisher {
  /// The first offer carries the reliable data channel.
  pub fn new(local: SocketAddr, now: Instant) -> Result<Self> {
    Ok(Publisher {
      pc: Pc::new(local, now)?,
      queued: vec![Change::Channel],
      pending: None,
      next_id: 1,
    })
  }

  /// Queues an audio m-line (sendonly) whose msid track id is `cid`, the id the server
  /// matches to the pending `AddTrackRequest`.
  pub fn add_audio(&mut self, cid: &str, stream: &str) {
    self.queued.push(Change::AddAudio {
      cid: cid.to_string(),
      stream: stream.to_string(),
    });
  }

  /// Queues making `mid` inactive: the server ends the published track when the answer to
  /// the offer that says so is applied.
  pub fn deactivate(&mut self, mid: Mid) {
    self.queued.push(Change::Inactive(mid));
  }

  /// Whether an offer is out waiting for its answer.
  pub fn negotiating(&self) -> bool {
    self.pending.is_some()
  }

  /// The next offer, if changes are queued and no offer is out.
  pub fn offer(&mut self) -> Result<Option<Offer>> {
    if self.pending.is_some() || self.queued.is_empty() {
      return Ok(None);
    }
    let mut api = self.pc.rtc.sdp_api();
    let mut added = Vec::new();
    for ch in self.queued.drain(..) {
      match ch {
        Change::Channel => {
          api.add_channel(RELIABLE_CHANNEL.to_string());
          // Unordered, no retransmits: what client-sdk-js opens for lossy data.
          api.add_channel_with_config(ChannelConfig {
            label: LOSSY_CHANNEL.to_string(),
            ordered: false,
            reliability: Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
          });
        }
        Change::AddAudio { cid, stream } => {
          let mid = api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some(stream),
            Some(cid.clone()),
            None,
          );
          added.push((cid, mid));
        }
        Change::Inactive(mid) => api.set_direction(mid, Direction::Inactive),
      }
    }
    let Some((offer, pending)) = api.apply() else {
      return Ok(None);
    };
    let id = self.next_id;
    self.next_id += 1;
    self.pending = Some((pending, id, added.clone()));
    Ok(Some(Offer {
      sdp: offer.to_sdp_string(),
      id,
      added,
    }))
  }

  /// Applies the server's answer to the offer out. Returns the m-lines that offer added.
  pub fn accept_answer(&mut self, sdp: &str, id: u32) -> Result<Vec<(String, Mid)>> {
    let Some((pending, sent_id, added)) = self.pending.take() else {
      return Err(Error::Signal("an answer with no offer out".into()));
    };
    if id != 0 && id != sent_id {
      self.pending = Some((pending, sent_id, added));
      return Err(Error::Signal(format!("answer for offer {id}, offer {sent_id} is out")));
    }
    let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| Error::Signal(format!("unparsable answer SDP: {e}")))?;
    self.pc.rtc.sdp_api().accept_answer(pending, answer)?;
    Ok(added)
  }

  /// The payload type the answer gave Opus on `mid`, once negotiated.
  pub fn opus_pt(&mut self, mid: Mid) -> Option<Pt> {
    let w = self.pc.rtc.writer(mid)?;
    let pt = w
      .payload_params()
      .find(|p| p.spec().codec == str0m::format::Codec::Opus)
      .map(|p| p.pt());
    pt
  }

  /// One Opus packet on `mid` at RTP time `rtp_ts` (48 kHz units since the track began).
  pub fn write_opus(&mut self, mid: Mid, pt: Pt, wallclock: Instant, rtp_ts: u64, data: &[u8]) -> Result<()> {
    let w = self
      .pc
      .rtc
      .writer(mid)
      .ok_or_else(|| Error::Peer(format!("no writer for m-line {mid}")))?;
    w.write(
      pt,
      wallclock,
      MediaTime::new(rtp_ts, Frequency::FORTY_EIGHT_KHZ),
      data.to_vec(),
    )?;
    Ok(())
  }
}

/// The connection the server offers (see the module doc).
pub struct Subscriber {
  pc: Pc,
}

impl Deref for Subscriber {
  type Target = Pc;
  fn deref(&self) -> &Pc {
    &self.pc
  }
}

impl DerefMut for Subscriber {
  fn deref_mut(&mut self) -> &mut Pc {
    &mut self.pc
  }
}

impl Subscriber {
  /// In frame mode: what a stand-in for the server uses to receive a publisher's frames.
  pub fn new(local: SocketAddr, now: Instant) -> Result<Self> {
    Ok(Subscriber {
      pc: Pc::new(local, now)?,
    })
  }

  /// In RTP mode: the client's subscriber connection (see the module doc).
  pub fn new_rtp(local: SocketAddr, now: Instant) -> Result<Self> {
    Ok(Subscriber {
      pc: Pc::with_mode(local, now, true)?,
    })
  }

  /// Answers a server offer (the first one and every renegotiation).
  pub fn accept_offer(&mut self, sdp: &str) -> Result<String> {
    let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| Error::Signal(format!("unparsable offer SDP: {e}")))?;
    let answer = self.pc.rtc.sdp_api().accept_offer(offer)?;
    Ok(answer.to_sdp_string())
  }
}

/// The audio m-lines of an offer: mid, whether the offerer sends on it (`sendonly` or
/// `sendrecv`), and its msid track id (LiveKit's is the track sid; its stream id is
/// `participant_sid|track_sid`, taken when the track id is missing).
pub fn audio_mlines(sdp: &str) -> Vec<(String, bool, Option<String>)> {
  let mut out = Vec::new();
  let mut cur: Option<(Option<String>, bool, Option<String>)> = None;
  let flush = |c: Option<(Option<String>, bool, Option<String>)>, out: &mut Vec<_>| {
    if let Some((Some(mid), sends, track)) = c {
      out.push((mid, sends, track));
    }
  };
  for line in sdp.lines().map(str::trim) {
    if let Some(m) = line.strip_prefix("m=") {
      flush(cur.take(), &mut out);
      // The session default (sendrecv) until the m-line says otherwise.
      cur = m.starts_with("audio ").then_some((None, true, None));
    } else if let Some(c) = cur.as_mut() {
      if let Some(mid) = line.strip_prefix("a=mid:") {
        c.0 = Some(mid.to_string());
      } else if let Some(msid) = line.strip_prefix("a=msid:") {
        let mut parts = msid.split_whitespace();
        let stream = parts.next().unwrap_or("");
        c.2 = parts
          .next()
          .map(str::to_string)
          .or_else(|| stream.split_once('|').map(|(_, t)| t.to_string()));
      } else if line == "a=recvonly" || line == "a=inactive" {
        c.1 = false;
      }
    }
  }
  flush(cur, &mut out);
  out
}

/// `{"candidate": "candidate:…", "sdpMid": "0", "sdpMLineIndex": 0}`: the server applies it
/// to the transport as a whole, so the first m-line is as good as any.
pub fn candidate_init_json(candidate_line: &str) -> String {
  let line = if candidate_line.starts_with("candidate:") {
    candidate_line.to_string()
  } else {
    format!("candidate:{candidate_line}")
  };
  serde_json::json!({ "candidate": line, "sdpMid": "0", "sdpMLineIndex": 0 }).to_string()
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::time::Duration;

  /// Drives two connections against each other in memory until `done` or 5 s of
  /// simulated time: what the session does with a socket, minus the socket.
  fn pump(a: &mut Pc, b: &mut Pc, mut now: Instant, done: impl Fn(&Pc, &Pc) -> bool) -> Instant {
    let end = now + Duration::from_secs(5);
    let mut out = Vec::new();
    while now < end && !done(a, b) {
      let ta = a.poll(&mut out).unwrap();
      for o in out.drain(..) {
        if let PeerOutput::Transmit { data, .. } = o {
          b.receive(now, a.local_addr(), &data).unwrap();
        }
      }
      let tb = b.poll(&mut out).unwrap();
      for o in out.drain(..) {
        if let PeerOutput::Transmit { data, .. } = o {
          a.receive(now, b.local_addr(), &data).unwrap();
        }
      }
      now = ta
        .min(tb)
        .max(now + Duration::from_millis(1))
        .min(now + Duration::from_millis(20));
      a.timeout(now).unwrap();
      b.timeout(now).unwrap();
    }
    now
  }

  /// The publisher's offers and answers, a track added by renegotiation and written to, and
  /// an unpublish, against a second str0m playing the server's side (a Subscriber answers
  /// any offer, which is all the server's publisher side does with one).
  #[test]
  fn offer_answer_connect_renegotiate_write_and_deactivate() {
    let now = Instant::now();
    let mut publ = Publisher::new("127.0.0.1:10001".parse().unwrap(), now).unwrap();
    let mut srv = Subscriber::new("127.0.0.1:10002".parse().unwrap(), now).unwrap();
    for c in srv.local_candidate_inits().unwrap() {
      assert!(publ.add_remote_candidate(&c).unwrap());
    }
    for c in publ.local_candidate_inits().unwrap() {
      assert!(srv.add_remote_candidate(&c).unwrap());
    }
    assert!(
      !publ.add_remote_candidate(r#"{"candidate":""}"#).unwrap(),
      "end of candidates is skipped"
    );
    assert_eq!(publ.add_remote_candidate("nope").unwrap_err().code(), "ERR_SIGNAL");

    let first = publ.offer().unwrap().unwrap();
    assert!(
      first.added.is_empty() && first.sdp.contains("m=application"),
      "{}",
      first.sdp
    );
    assert!(publ.offer().unwrap().is_none(), "nothing queued");
    // A second change while the first offer is out waits for the next offer.
    publ.add_audio("cid-1", "pub|cid-1");
    assert!(publ.negotiating() && publ.offer().unwrap().is_none());
    assert_eq!(
      publ.accept_answer("v=0", first.id + 7).unwrap_err().code(),
      "ERR_SIGNAL"
    );
    let answer = srv.accept_offer(&first.sdp).unwrap();
    assert!(publ.accept_answer(&answer, first.id).unwrap().is_empty());
    let now = pump(&mut publ, &mut srv, now, |a, b| a.is_connected() && b.is_connected());
    assert!(publ.is_connected() && srv.is_connected(), "DTLS up both ways");

    let second = publ.offer().unwrap().unwrap();
    assert_eq!(second.id, first.id + 1);
    assert!(second.sdp.contains("a=msid:pub|cid-1 cid-1"), "{}", second.sdp);
    assert!(second.sdp.contains("a=sendonly") && second.sdp.contains("opus/48000/2"));
    let answer = srv.accept_offer(&second.sdp).unwrap();
    let added = publ.accept_answer(&answer, second.id).unwrap();
    assert_eq!(added.len(), 1);
    let (cid, mid) = added[0].clone();
    assert_eq!(cid, "cid-1");
    let pt = publ.opus_pt(mid).expect("opus negotiated");
    publ.write_opus(mid, pt, now, 0, &[0xf8, 0xff, 0xfe]).unwrap();
    let now = pump(&mut publ, &mut srv, now, |_, _| false);

    publ.deactivate(mid);
    let third = publ.offer().unwrap().unwrap();
    assert!(third.sdp.contains("a=inactive"), "{}", third.sdp);
    let answer = srv.accept_offer(&third.sdp).unwrap();
    assert!(publ.accept_answer(&answer, third.id).unwrap().is_empty());
    let _ = now;
  }
}
