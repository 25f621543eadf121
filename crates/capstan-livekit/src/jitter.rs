//! The receive path of one remote audio track: RTP packets in (any order, any timing), exact
//! 10 ms chunks of decoded PCM out, on a clock of its own.
//!
//! **Buffer.** Packets wait in a bounded map keyed by their extended sequence number, so
//! reordering within the buffer costs nothing; a packet already buffered or already played
//! is a *duplicate*, one whose RTP time has been played out (or concealed) already is
//! *late*; both are dropped and counted. A full buffer refuses the packet (*overflow*).
//!
//! **Clock.** The first packet (after the start or a resync) fixes the playout clock: the
//! lowest-sequence packet buffered plays `delay` after that first arrival, and chunk `k`
//! is due `k × 10 ms` later, so the caller may call [`JitterBuffer::pull`] at any cadence
//! (the session does so on a 10 ms tick) and a late call catches up instead of drifting.
//!
//! **Loss.** A frame slot whose packet is not there when its RTP time is due is *lost*
//! and concealed with Opus PLC of the last frame's duration, or, when the very next
//! packet is already buffered and a packet really is missing before it (a sequence gap),
//! from that packet's in-band FEC (*fec_recovered*; libopus falls back to PLC itself
//! when the packet carries no LBRR data, as CELT-only packets do). A slot counts as
//! lost whatever the cause, so a DTX pause is lost slots too, up to the silence timeout.
//!
//! **Silence.** Concealment stops after `silence_timeout` (200 ms by default) of nothing
//! real: the track stops emitting (a *silence gap*) and waits; the next packet restarts
//! the clock from its own timestamp, `delay` after it arrives. So a muted or DTX remote
//! makes no endless PLC, and an RTP clock that jumps forward costs one gap, not a flood of
//! lost slots. Packets that keep arriving late (`LATE_RESYNC` in a row: a clock that
//! jumped back, or a sender whose clock runs slower than ours) restart it too (*resyncs*).
//!
//! **Law.** At every moment `received == played + duplicate + late + overflow + discarded
//! + buffered`, where *played* is a packet taken at its slot and handed to the decoder
//! (one libopus refused is also counted in `decode_errors`, its slot concealed) and
//! *discarded* is what [`JitterBuffer::finish`] threw away.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Opus's RTP clock and the decoder's output rate.
pub const RATE: u32 = 48_000;
/// One chunk: 10 ms at 48 kHz, per channel.
pub const CHUNK_FRAMES: usize = 480;
pub const CHUNK: Duration = Duration::from_millis(10);
pub const DEFAULT_DELAY: Duration = Duration::from_millis(60);
pub const MIN_DELAY: Duration = Duration::from_millis(20);
pub const MAX_DELAY: Duration = Duration::from_millis(1000);
pub const DEFAULT_SILENCE_TIMEOUT: Duration = Duration::from_millis(200);
/// Late packets in a row (none played between) that restart the clock.
pub const LATE_RESYNC: u32 = 5;
/// Chunks one pull may owe before it gives up catching up and restarts the clock (a host
/// that stalled this long has lost the audio's timing anyway).
const MAX_CATCH_UP: u64 = 100;
/// The longest Opus packet: 120 ms at 48 kHz.
const MAX_FRAME: usize = 5760;
/// Recently played sequence numbers kept to tell a duplicate from a late packet.
const PLAYED_MEMORY: usize = 64;

/// Packet-level counters (see the module doc for the law).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PacketCounters {
  pub received: u64,
  pub bytes: u64,
  pub played: u64,
  pub duplicate: u64,
  pub late: u64,
  pub overflow: u64,
  pub discarded: u64,
  pub buffered: u64,
  /// Frame slots concealed because no packet was there at playout.
  pub lost: u64,
  /// Of `lost`, those decoded from the next packet's in-band FEC.
  pub fec_recovered: u64,
  pub decode_errors: u64,
  pub silence_gaps: u64,
  pub resyncs: u64,
}

impl PacketCounters {
  pub fn balanced(&self) -> bool {
    self.received == self.played + self.duplicate + self.late + self.overflow + self.discarded + self.buffered
  }
}

#[derive(Debug, Clone, Copy)]
pub struct JitterOptions {
  /// From a packet's arrival (the first after a (re)start) to its playout.
  pub delay: Duration,
  pub silence_timeout: Duration,
  /// Packets buffered at most.
  pub capacity: usize,
}

impl JitterOptions {
  /// Checks `delay` (20..=1000 ms, a multiple of nothing in particular) and sizes the
  /// buffer to hold twice the delay or 500 ms, whichever is more, of 10 ms packets.
  pub fn new(delay: Duration) -> Result<Self> {
    if !(MIN_DELAY..=MAX_DELAY).contains(&delay) {
      return Err(Error::InvalidOption(format!(
        "jitterDelayMs must be {}..={}, got {}",
        MIN_DELAY.as_millis(),
        MAX_DELAY.as_millis(),
        delay.as_millis()
      )));
    }
    let span = (delay * 2).max(Duration::from_millis(500));
    Ok(JitterOptions {
      delay,
      silence_timeout: DEFAULT_SILENCE_TIMEOUT,
      capacity: (span.as_millis() / 10) as usize,
    })
  }
}

impl Default for JitterOptions {
  fn default() -> Self {
    JitterOptions::new(DEFAULT_DELAY).expect("the default delay is in range")
  }
}

struct Packet {
  ts: u64,
  arrival: Instant,
  data: Vec<u8>,
}

enum State {
  /// No clock: waiting for a packet (`anchor` none) or for the anchor to pass.
  Waiting {
    anchor: Option<Instant>,
  },
  Playing {
    start_at: Instant,
    emitted: u64,
  },
}

pub struct JitterBuffer {
  dec: opus::Decoder,
  channels: usize,
  opts: JitterOptions,
  state: State,
  buf: BTreeMap<u64, Packet>,
  /// RTP time of the next sample to decode; after a gap, the point before which packets
  /// are late.
  pos: Option<u64>,
  last_seq: Option<u64>,
  played_seqs: VecDeque<u64>,
  /// Samples per channel of the last decoded frame: the size of a concealed slot.
  frame_len: usize,
  /// Samples per channel concealed since the last real packet.
  concealed_run: usize,
  late_run: u32,
  /// Decoded audio not yet emitted, interleaved, and how much of its front is concealed.
  pcm: VecDeque<i16>,
  pcm_concealed: usize,
  scratch: Vec<i16>,
  c: PacketCounters,
}

impl JitterBuffer {
  pub fn new(channels: u16, opts: JitterOptions) -> Result<Self> {
    let ch = match channels {
      1 => opus::Channels::Mono,
      2 => opus::Channels::Stereo,
      n => return Err(Error::InvalidOption(format!("channels must be 1 or 2, got {n}"))),
    };
    let dec = opus::Decoder::new(RATE, ch).map_err(|e| Error::InvalidOption(format!("opus decoder: {e}")))?;
    Ok(JitterBuffer {
      dec,
      channels: channels as usize,
      opts,
      state: State::Waiting { anchor: None },
      buf: BTreeMap::new(),
      pos: None,
      last_seq: None,
      played_seqs: VecDeque::with_capacity(PLAYED_MEMORY),
      frame_len: 960,
      concealed_run: 0,
      late_run: 0,
      pcm: VecDeque::new(),
      pcm_concealed: 0,
      scratch: vec![0; MAX_FRAME * channels as usize],
      c: PacketCounters::default(),
    })
  }

  pub fn counters(&self) -> PacketCounters {
    self.c
  }

  /// Whether the clock is running (chunks are being emitted).
  pub fn playing(&self) -> bool {
    matches!(self.state, State::Playing { .. })
  }

  /// One RTP packet: extended sequence number and RTP time (48 kHz), its Opus payload.
  pub fn push(&mut self, now: Instant, seq: u64, ts: u64, payload: &[u8]) {
    self.c.received += 1;
    self.c.bytes += payload.len() as u64;
    if self.buf.contains_key(&seq) || self.played_seqs.contains(&seq) {
      self.c.duplicate += 1;
      return;
    }
    if self.pos.is_some_and(|p| ts < p) {
      self.c.late += 1;
      self.late_run += 1;
      if self.late_run >= LATE_RESYNC {
        self.resync();
      }
      return;
    }
    if self.buf.len() >= self.opts.capacity {
      self.c.overflow += 1;
      return;
    }
    if let State::Waiting { anchor: a @ None } = &mut self.state {
      *a = Some(now + self.opts.delay);
    }
    self.buf.insert(
      seq,
      Packet {
        ts,
        arrival: now,
        data: payload.to_vec(),
      },
    );
    self.c.buffered = self.buf.len() as u64;
  }

  /// Restarts the clock on the next packet (kept ones included); nothing buffered is lost.
  fn resync(&mut self) {
    self.c.resyncs += 1;
    self.late_run = 0;
    self.pos = None;
    self.pcm.clear();
    self.pcm_concealed = 0;
    self.concealed_run = 0;
    let anchor = self.buf.values().map(|p| p.arrival + self.opts.delay).min();
    self.state = State::Waiting { anchor };
  }

  /// Emits every chunk due by `now` (interleaved, `480 × channels` samples, and whether it
  /// is concealment rather than a packet's own audio).
  pub fn pull(&mut self, now: Instant, mut emit: impl FnMut(&[i16], bool)) {
    if let State::Waiting { anchor: Some(at) } = self.state {
      if now < at {
        return;
      }
      let Some((_, head)) = self.buf.iter().next() else {
        self.state = State::Waiting { anchor: None };
        return;
      };
      self.pos = Some(head.ts);
      self.state = State::Playing {
        start_at: at,
        emitted: 0,
      };
    }
    let State::Playing { start_at, emitted } = self.state else {
      return;
    };
    let due = (now.saturating_duration_since(start_at).as_micros() / CHUNK.as_micros()) as u64 + 1;
    if due.saturating_sub(emitted) > MAX_CATCH_UP {
      self.resync();
      return;
    }
    let mut n = emitted;
    let mut chunk = vec![0i16; CHUNK_FRAMES * self.channels];
    while n < due {
      if !self.fill() {
        // Silence timeout: the clock stops; the next packet (or one already here) restarts it.
        self.c.silence_gaps += 1;
        self.pcm.clear();
        self.pcm_concealed = 0;
        self.concealed_run = 0;
        let anchor = self.buf.values().map(|p| p.arrival + self.opts.delay).min();
        self.state = State::Waiting { anchor };
        return;
      }
      let len = chunk.len();
      for (d, s) in chunk.iter_mut().zip(self.pcm.drain(..len)) {
        *d = s;
      }
      let concealed = self.pcm_concealed > 0;
      self.pcm_concealed = self.pcm_concealed.saturating_sub(len);
      emit(&chunk, concealed);
      n += 1;
    }
    self.state = State::Playing { start_at, emitted: n };
  }

  /// Decodes until a whole chunk is ready; false when the silence timeout has passed.
  fn fill(&mut self) -> bool {
    let need = CHUNK_FRAMES * self.channels;
    while self.pcm.len() < need {
      let Some(pos) = self.pos else { return false };
      // A head whose time has passed (a misaligned timestamp) is late.
      while let Some(e) = self.buf.first_entry() {
        if e.get().ts >= pos {
          break;
        }
        e.remove();
        self.c.late += 1;
      }
      self.c.buffered = self.buf.len() as u64;
      let head = self.buf.first_key_value().map(|(s, p)| (*s, p.ts));
      match head {
        Some((seq, ts)) if ts == pos => {
          let p = self.buf.remove(&seq).expect("head is there");
          self.c.buffered = self.buf.len() as u64;
          self.c.played += 1;
          self.last_seq = Some(seq);
          if self.played_seqs.len() == PLAYED_MEMORY {
            self.played_seqs.pop_front();
          }
          self.played_seqs.push_back(seq);
          self.late_run = 0;
          match self.dec.decode(&p.data, &mut self.scratch, false) {
            Ok(n) if n > 0 => {
              self.frame_len = n;
              self.concealed_run = 0;
              self.append(n, false);
            }
            _ => {
              self.c.decode_errors += 1;
              let n = self.frame_len;
              if !self.conceal(n, None) {
                return false;
              }
            }
          }
        }
        other => {
          if self.concealed_run >= self.silence_samples() {
            return false;
          }
          let gap = other.map(|(_, ts)| (ts - pos) as usize).unwrap_or(usize::MAX);
          let len = (self.frame_len.min(gap) / CHUNK_FRAMES).max(1) * CHUNK_FRAMES;
          // FEC only for a real loss: the head follows this slot and a sequence number is missing.
          let fec = match other {
            Some((seq, ts)) if ts - pos == len as u64 && self.last_seq.is_some_and(|l| seq > l + 1) => Some(seq),
            _ => None,
          };
          self.c.lost += 1;
          if !self.conceal(len, fec) {
            return false;
          }
        }
      }
    }
    true
  }

  fn silence_samples(&self) -> usize {
    (self.opts.silence_timeout.as_millis() as usize) * (RATE as usize / 1000)
  }

  /// `len` samples per channel of PLC, or of FEC from the packet `fec`; advances the clock.
  fn conceal(&mut self, len: usize, fec: Option<u64>) -> bool {
    let out = &mut self.scratch[..len * self.channels];
    let r = match fec.and_then(|s| self.buf.get(&s)) {
      Some(p) => {
        let r = self.dec.decode(&p.data, out, true);
        if r.is_ok() {
          self.c.fec_recovered += 1;
        }
        r
      }
      None => self.dec.decode(&[], out, false),
    };
    let n = match r {
      Ok(n) if n > 0 => n,
      // PLC cannot fail for a valid size; if libopus says otherwise, silence keeps the clock.
      _ => {
        out.fill(0);
        len
      }
    };
    self.concealed_run += n;
    self.append(n, true);
    true
  }

  fn append(&mut self, frames: usize, concealed: bool) {
    let n = frames * self.channels;
    if concealed {
      // Concealed audio marks every chunk it touches: from the current end of what waits.
      self.pcm_concealed = self.pcm.len() + n;
    }
    self.pcm.extend(&self.scratch[..n]);
    if let Some(p) = self.pos.as_mut() {
      *p += frames as u64;
    }
  }

  /// The track ended: whatever is buffered is discarded (counted).
  pub fn finish(&mut self) {
    self.c.discarded += self.buf.len() as u64;
    self.buf.clear();
    self.c.buffered = 0;
    self.pcm.clear();
    self.pcm_concealed = 0;
    self.state = State::Waiting { anchor: None };
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  /// 20 ms Opus frames of a 440 Hz tone, as a WebRTC sender makes them (with in-band FEC on).
  fn frames(n: usize, channels: u16) -> Vec<Vec<u8>> {
    let ch = if channels == 1 {
      opus::Channels::Mono
    } else {
      opus::Channels::Stereo
    };
    let mut enc = opus::Encoder::new(RATE, ch, opus::Application::Voip).unwrap();
    enc.set_inband_fec(true).unwrap();
    enc.set_packet_loss_perc(20).unwrap();
    let mut out = vec![0u8; 1500];
    (0..n)
      .map(|k| {
        let pcm: Vec<i16> = (0..960)
          .flat_map(|i| {
            let t = (k * 960 + i) as f64 / RATE as f64;
            std::iter::repeat_n(
              (t * 440.0 * std::f64::consts::TAU).sin() as f32 * 12000.0,
              channels as usize,
            )
          })
          .map(|v| v as i16)
          .collect();
        let len = enc.encode(&pcm, &mut out).unwrap();
        out[..len].to_vec()
      })
      .collect()
  }

  struct Run {
    jb: JitterBuffer,
    t0: Instant,
    /// The last pull, ms: pulls step from it by 10 ms, as the session's tick does.
    last: u64,
    chunks: Vec<(Vec<i16>, bool)>,
  }

  impl Run {
    fn new(opts: JitterOptions) -> Run {
      Run {
        jb: JitterBuffer::new(1, opts).unwrap(),
        t0: Instant::now(),
        last: 0,
        chunks: Vec::new(),
      }
    }
    fn at(&self, ms: u64) -> Instant {
      self.t0 + Duration::from_millis(ms)
    }
    fn push(&mut self, ms: u64, seq: u64, ts: u64, p: &[u8]) {
      let t = self.at(ms);
      self.jb.push(t, seq, ts, p);
      assert!(self.jb.counters().balanced(), "{:?}", self.jb.counters());
    }
    fn pull(&mut self, ms: u64) {
      while self.last < ms {
        self.last = (self.last + 10).min(ms);
        let t = self.at(self.last);
        let out = &mut self.chunks;
        self.jb.pull(t, |c, concealed| out.push((c.to_vec(), concealed)));
        assert!(self.jb.counters().balanced(), "{:?}", self.jb.counters());
      }
    }
    fn concealed(&self) -> usize {
      self.chunks.iter().filter(|c| c.1).count()
    }
  }

  fn opts(delay_ms: u64) -> JitterOptions {
    JitterOptions::new(Duration::from_millis(delay_ms)).unwrap()
  }

  #[test]
  fn options_are_bounded() {
    assert!(JitterOptions::new(Duration::from_millis(19)).is_err());
    assert!(JitterOptions::new(Duration::from_millis(1001)).is_err());
    assert_eq!(JitterOptions::default().delay, DEFAULT_DELAY);
    assert!(JitterOptions::default().capacity >= 50);
  }

  /// In order, on time: 2 chunks per packet, nothing concealed, playout starts `delay`
  /// after the first arrival and not before.
  #[test]
  fn in_order_packets_play_as_exact_10ms_chunks_after_the_delay() {
    let f = frames(10, 1);
    let mut r = Run::new(opts(60));
    for (k, p) in f.iter().enumerate() {
      r.push(k as u64 * 20, 1000 + k as u64, 5000 + k as u64 * 960, p);
      if k == 2 {
        r.pull(59);
        assert!(r.chunks.is_empty(), "nothing before the delay");
      }
    }
    r.pull(60 + 199);
    assert_eq!(r.chunks.len(), 20);
    assert!(r.chunks.iter().all(|c| c.0.len() == 480 && !c.1));
    let c = r.jb.counters();
    assert_eq!((c.played, c.lost, c.late, c.buffered), (10, 0, 0, 0), "{c:?}");
    // The decoded tone is there (past the codec's start-up).
    let all: Vec<i16> = r.chunks[4..].iter().flat_map(|c| c.0.clone()).collect();
    let zc = all.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    let hz = zc as f64 / 2.0 / (all.len() as f64 / RATE as f64);
    assert!((hz - 440.0).abs() < 15.0, "{hz}");
  }

  #[test]
  fn reordered_packets_within_the_delay_all_play_and_duplicates_are_dropped() {
    let f = frames(6, 1);
    let mut r = Run::new(opts(60));
    let order = [0usize, 2, 1, 1, 3, 5, 4, 0];
    for (i, &k) in order.iter().enumerate() {
      r.push(i as u64 * 5, k as u64, k as u64 * 960, &f[k]);
    }
    let c = r.jb.counters();
    assert_eq!((c.received, c.duplicate, c.buffered), (8, 2, 6), "{c:?}");
    r.pull(60 + 119);
    assert_eq!(r.chunks.len(), 12);
    assert_eq!(r.concealed(), 0);
    // A packet already played is a duplicate, not a late one.
    r.push(200, 2, 2 * 960, &f[2]);
    let c = r.jb.counters();
    assert_eq!((c.played, c.duplicate, c.late), (6, 3, 0), "{c:?}");
  }

  /// A packet that comes after its slot was concealed is late; its slot is a lost one.
  #[test]
  fn a_packet_after_its_slot_is_late_and_the_slot_is_concealed() {
    let f = frames(4, 1);
    let mut r = Run::new(opts(40));
    r.push(0, 0, 0, &f[0]);
    r.push(20, 1, 960, &f[1]);
    r.pull(40 + 39); // 4 chunks: packets 0 and 1
    r.pull(40 + 59); // chunks 4 and 5: packet 2's slot, missing: PLC (packet 3 not here)
    assert_eq!(r.chunks.len(), 6);
    r.push(100, 2, 1920, &f[2]);
    r.push(101, 3, 2880, &f[3]);
    r.pull(40 + 79);
    let c = r.jb.counters();
    assert_eq!((c.played, c.late, c.lost, c.fec_recovered), (3, 1, 1, 0), "{c:?}");
    let flags: Vec<bool> = r.chunks.iter().map(|c| c.1).collect();
    assert_eq!(flags, [false, false, false, false, true, true, false, false]);
  }

  /// One packet missing with the next one buffered: FEC from it. Two missing: PLC for the
  /// first, FEC for the second.
  #[test]
  fn loss_is_concealed_with_fec_when_the_next_packet_is_there_else_plc() {
    let f = frames(12, 1);
    let mut r = Run::new(opts(100));
    for k in 0..12u64 {
      if [3, 7, 8].contains(&k) {
        continue;
      }
      r.push(k * 20, k, k * 960, &f[k as usize]);
    }
    r.pull(100 + 239);
    assert_eq!(r.chunks.len(), 24);
    let c = r.jb.counters();
    assert_eq!((c.played, c.lost, c.fec_recovered, c.buffered), (9, 3, 2, 0), "{c:?}");
    assert_eq!(r.concealed(), 6);
    assert!(c.balanced());
  }

  /// Nothing for longer than the silence timeout: PLC for 200 ms, then no chunks (one gap);
  /// the next packet (its RTP time far ahead) restarts the clock `delay` after it arrives.
  #[test]
  fn a_silence_gap_stops_concealment_and_the_next_packet_resyncs() {
    let f = frames(6, 1);
    let mut r = Run::new(opts(60));
    r.push(0, 0, 0, &f[0]);
    r.push(20, 1, 960, &f[1]);
    r.pull(2000);
    let c = r.jb.counters();
    // 4 chunks of audio, then 200 ms = 10 slots of 20 ms concealed, then nothing.
    assert_eq!(r.chunks.len(), 4 + 20);
    assert_eq!((c.lost, c.silence_gaps), (10, 1), "{c:?}");
    assert!(!r.jb.playing());
    r.pull(3000);
    assert_eq!(r.chunks.len(), 24, "stopped");
    // A talkspurt after a DTX pause: the sequence goes on, the RTP time jumped 3 s.
    let ts = 3 * 48_000 + 960;
    r.push(3000, 2, ts, &f[2]);
    r.push(3020, 3, ts + 960, &f[3]);
    r.pull(3059);
    assert_eq!(r.chunks.len(), 24, "not before the delay");
    r.pull(3060 + 39);
    assert_eq!(r.chunks.len(), 28);
    assert!(r.chunks[24..].iter().all(|c| !c.1));
    // A straggler from before the gap is late.
    r.push(3100, 1, 960, &f[1]);
    let c = r.jb.counters();
    assert_eq!((c.played, c.late, c.duplicate, c.silence_gaps), (4, 0, 1, 1), "{c:?}");
    r.push(3100, 9, 10, &f[4]);
    assert_eq!(r.jb.counters().late, 1);
  }

  /// An RTP clock that jumps back (a sender restart): a few late packets, then a resync,
  /// and the new stream plays.
  #[test]
  fn packets_that_keep_coming_late_resync_the_clock() {
    let f = frames(20, 1);
    let mut r = Run::new(opts(40));
    r.push(0, 100, 96_000, &f[0]);
    r.pull(40 + 19);
    for k in 0..(LATE_RESYNC as u64 + 3) {
      r.push(60 + k * 20, 200 + k, k * 960, &f[1 + k as usize]);
    }
    let c = r.jb.counters();
    assert_eq!((c.late, c.resyncs), (LATE_RESYNC as u64, 1), "{c:?}");
    assert_eq!(c.buffered, 3);
    r.pull(2000);
    assert_eq!(r.jb.counters().played, 4);
  }

  #[test]
  fn a_full_buffer_refuses_packets_and_finish_discards_what_waits() {
    let f = frames(1, 1);
    let mut o = opts(20);
    o.capacity = 4;
    let mut r = Run::new(o);
    for k in 0..6u64 {
      r.push(0, k, k * 960, &f[0]);
    }
    let c = r.jb.counters();
    assert_eq!((c.received, c.buffered, c.overflow), (6, 4, 2), "{c:?}");
    r.jb.finish();
    let c = r.jb.counters();
    assert_eq!((c.buffered, c.discarded), (0, 4));
    assert!(c.balanced());
  }

  /// Stereo packets decode to interleaved stereo chunks (960 samples).
  #[test]
  fn stereo_chunks_are_interleaved() {
    let f = frames(2, 2);
    let mut jb = JitterBuffer::new(2, opts(20)).unwrap();
    let t0 = Instant::now();
    jb.push(t0, 0, 0, &f[0]);
    jb.push(t0, 1, 960, &f[1]);
    let mut n = 0;
    jb.pull(t0 + Duration::from_millis(50), |c, _| {
      assert_eq!(c.len(), 960);
      n += 1
    });
    assert_eq!(n, 4);
  }
}
