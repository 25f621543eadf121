//! The publisher peer connection: str0m's `Rtc` (sans-IO ICE, DTLS, SRTP, SDP) and the
//! negotiation state around it. No I/O here: the session (`room.rs`) feeds it datagrams and
//! timeouts and sends what it outputs, so everything but the network is testable in-process.
//!
//! This client is always the offerer on the publisher connection (as every LiveKit SDK):
//! changes (a data channel to get a transport up, an audio m-line per track, a track made
//! inactive to unpublish) are queued and go out in one offer; while an offer waits for its
//! answer, further changes wait for the next one.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::error::{Error, Result};

/// The data channel every LiveKit SDK opens on the publisher connection; here it gives the
/// first offer an m-line so the transport (ICE, DTLS, SCTP) comes up before any track.
pub const RELIABLE_CHANNEL: &str = "_reliable";
/// Opus's RTP clock: 48 kHz whatever the encoder's input rate (RFC 7587).
pub const OPUS_RTP_RATE: u32 = 48_000;

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

/// What the connection asks of the session after a call.
#[derive(Debug)]
pub enum PeerOutput {
  Transmit {
    to: SocketAddr,
    from: SocketAddr,
    data: Vec<u8>,
  },
  Connected,
  Disconnected(String),
}

pub struct Publisher {
  rtc: Rtc,
  local: SocketAddr,
  queued: Vec<Change>,
  pending: Option<(SdpPendingOffer, u32, Vec<(String, Mid)>)>,
  next_id: u32,
  connected: bool,
}

impl Publisher {
  /// A connection with one host candidate: the UDP socket the session bound at `local`.
  pub fn new(local: SocketAddr, now: Instant) -> Result<Self> {
    let mut rtc = Rtc::builder()
      .clear_codecs()
      // Opus only, without RED: the track is announced with `disable_red`, so the server
      // expects plain Opus.
      .enable_opus(true, false)
      .build(now);
    let c = Candidate::host(local, "udp").map_err(|e| Error::Peer(format!("host candidate {local}: {e}")))?;
    rtc
      .add_local_candidate(c)
      .ok_or_else(|| Error::Peer(format!("str0m refused the host candidate {local}")))?;
    Ok(Publisher {
      rtc,
      local,
      queued: vec![Change::Channel],
      pending: None,
      next_id: 1,
      connected: false,
    })
  }

  pub fn local_addr(&self) -> SocketAddr {
    self.local
  }

  pub fn is_connected(&self) -> bool {
    self.connected
  }

  /// Our candidates as trickle `candidate_init` JSON (an `RTCIceCandidateInit`).
  pub fn local_candidate_inits(&self) -> Result<Vec<String>> {
    let c = Candidate::host(self.local, "udp").map_err(|e| Error::Peer(e.to_string()))?;
    Ok(vec![candidate_init_json(&c.to_sdp_string())])
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
    let mut api = self.rtc.sdp_api();
    let mut added = Vec::new();
    for ch in self.queued.drain(..) {
      match ch {
        Change::Channel => {
          api.add_channel(RELIABLE_CHANNEL.to_string());
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
    self.rtc.sdp_api().accept_answer(pending, answer)?;
    Ok(added)
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

  /// The payload type the answer gave Opus on `mid`, once negotiated.
  pub fn opus_pt(&mut self, mid: Mid) -> Option<Pt> {
    let w = self.rtc.writer(mid)?;
    let pt = w
      .payload_params()
      .find(|p| p.spec().codec == str0m::format::Codec::Opus)
      .map(|p| p.pt());
    pt
  }

  /// One Opus packet on `mid` at RTP time `rtp_ts` (48 kHz units since the track began).
  pub fn write_opus(&mut self, mid: Mid, pt: Pt, wallclock: Instant, rtp_ts: u64, data: &[u8]) -> Result<()> {
    let w = self
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

  /// A datagram that arrived on the session's socket from `from`.
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
    loop {
      match self.rtc.poll_output()? {
        Output::Timeout(t) => return Ok(t),
        Output::Transmit(t) => out.push(PeerOutput::Transmit {
          to: t.destination,
          from: t.source,
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
        Output::Event(_) => {}
      }
    }
  }

  pub fn is_alive(&self) -> bool {
    self.rtc.is_alive()
  }

  pub fn disconnect(&mut self) {
    self.rtc.disconnect();
  }
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

/// Parses an SDP offer (used by tests that play the answering side with a second `Rtc`).
pub fn parse_offer(sdp: &str) -> Result<SdpOffer> {
  SdpOffer::from_sdp_string(sdp).map_err(|e| Error::Signal(format!("unparsable offer SDP: {e}")))
}
