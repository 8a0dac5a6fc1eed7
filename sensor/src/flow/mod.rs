//! Stage 3: flows. Takes decoded [`Packet`]s and keeps per-flow state in a bounded
//! table: symmetric keys, client/server orientation, TCP flags, per-direction counters,
//! the head sequence (first N packets) and the TLS record sequence, and drives the
//! reassembly and application parsers of the flow's first bytes.
//!
//! Yields a [`FlowRecord`] once per flow: when its head (first `head_packets` packets)
//! is complete, or when it ends (FIN from both sides, RST, idle or active timeout,
//! eviction, port reuse, end of input), whichever comes first. After that the flow is
//! only counted, and its parser state is freed.
//!
//! Each worker owns one [`FlowTable`] (its shard); nothing here is shared or locked.
//! Time is packet time, so replay and live capture expire flows the same way.

pub use nightjar_parse::{reassembly, sniff};

use std::net::IpAddr;

use lru::LruCache;

use crate::config::FlowConfig;
use crate::decode::http::{HttpRequest, HttpStatus, HttpStream};
use crate::decode::tls::{RecordMeta, Side, TlsInfo, TlsStream, looks_like_handshake};
use crate::decode::{Packet, TcpFlags};
use crate::stats::Stats;
use reassembly::{Reassembler, SegmentOutcome};
use sniff::{Notes, Sniffer, Start, Step};

/// Chunks of a plaintext stream that are still probed for a TLS handshake (STARTTLS,
/// HTTP CONNECT and SOCKS proxies start TLS after a few plaintext exchanges).
const TLS_PROBE_CHUNKS: u8 = 16;
/// A packet this much older than the newest one seen starts a new timeline, ns.
pub const CLOCK_STEP_BACK_NS: u64 = 60 * 1_000_000_000;
/// Service ports that orient a flow whose SYN was not seen.
const SERVICE_PORTS: [u16; 12] = [80, 443, 8080, 8443, 8000, 8888, 25, 465, 587, 993, 995, 143];

/// Packet direction relative to the flow's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Dir {
    /// Client to server.
    ToServer = 0,
    /// Server to client.
    ToClient = 1,
}

impl Dir {
    fn side(self) -> Side {
        match self {
            Dir::ToServer => Side::Client,
            Dir::ToClient => Side::Server,
        }
    }
}

nightjar_common::label_enum! {
    /// Why a flow's record was written.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum EndReason {
        /// The first `head_packets` packets were seen; the flow goes on.
        HeadComplete => "head_complete",
        /// FIN from both sides.
        Fin => "fin",
        /// RST from either side.
        Rst => "rst",
        /// No packet for `idle_timeout_secs`.
        IdleTimeout => "idle_timeout",
        /// Older than `active_timeout_secs`.
        ActiveTimeout => "active_timeout",
        /// The table was full and this was the least recently seen flow.
        Evicted => "evicted",
        /// A new SYN reused the 5-tuple of a flow.
        PortReuse => "port_reuse",
        /// The input ended.
        EndOfInput => "end_of_input",
        /// Packet time jumped backwards by more than [`CLOCK_STEP_BACK_NS`] (the next of
        /// several captures replayed together starts earlier): every flow of the old
        /// timeline ends.
        ClockReset => "clock_reset",
    }
}

const _: () = assert!(EndReason::ALL.len() == crate::stats::END_REASONS, "stats::END_REASONS is out of date");

/// Symmetric flow key: both directions of a connection map to the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    lo: ([u8; 16], u16),
    hi: ([u8; 16], u16),
}

fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl FlowKey {
    /// The key of a packet's connection.
    pub fn of(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        let a = (ip16(src), sport);
        let b = (ip16(dst), dport);
        if a <= b { Self { lo: a, hi: b } } else { Self { lo: b, hi: a } }
    }

    /// A hash that is the same for both directions and stable across runs, used to
    /// shard flows over workers.
    pub fn shard_hash(&self) -> u64 {
        let mut buf = [0u8; 36];
        buf[..16].copy_from_slice(&self.lo.0);
        buf[16..18].copy_from_slice(&self.lo.1.to_be_bytes());
        buf[18..34].copy_from_slice(&self.hi.0);
        buf[34..36].copy_from_slice(&self.hi.1.to_be_bytes());
        xxhash_rust::xxh3::xxh3_64(&buf)
    }
}

/// One packet of the flow head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Time since the flow's first packet, microseconds (saturating).
    pub offset_us: u32,
    /// TCP payload length, bytes.
    pub len: u16,
    /// Direction.
    pub dir: Dir,
    /// TCP flags.
    pub flags: u8,
}

/// One TLS record of the flow head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Time since the flow's first packet, microseconds (saturating).
    pub offset_us: u32,
    /// Record body length, bytes.
    pub len: u16,
    /// Direction.
    pub dir: Dir,
    /// Content type (20..=24).
    pub content_type: u8,
}

/// TCP flags seen on a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSeen {
    /// Client SYN.
    pub syn: bool,
    /// Server SYN-ACK.
    pub syn_ack: bool,
    /// FIN per direction.
    pub fin: [bool; 2],
    /// RST from either side.
    pub rst: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Nothing delivered yet.
    Start,
    /// TLS records.
    Tls,
    /// An HTTP request (client side).
    Http,
    /// Plaintext that may still turn into TLS.
    Text,
    /// Nothing more to parse.
    Off,
}

/// Parser state of a flow's first bytes; freed once the record is written.
#[derive(Debug)]
struct AppState {
    reasm: [Reassembler; 2],
    mode: [Mode; 2],
    sniff: [Sniffer; 2],
    tls: [Option<TlsStream>; 2],
    http: Option<HttpStream>,
    probes: [u8; 2],
}

/// A tracked connection: the table's own state, never handed downstream (a
/// [`FlowRecord`] is).
#[derive(Debug)]
struct Flow {
    /// Client (initiator) address.
    pub client_ip: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// Server (responder) address.
    pub server_ip: IpAddr,
    /// Server port.
    pub server_port: u16,
    /// Stable flow id: hash of the oriented 5-tuple and start time, below 2^53.
    pub id: u64,
    /// First packet time, ns since the epoch.
    pub first_ts: u64,
    /// Last packet time, ns since the epoch.
    pub last_ts: u64,
    /// Packets per direction ([to server, to client]).
    pub pkts: [u64; 2],
    /// Wire bytes per direction.
    pub bytes: [u64; 2],
    /// TCP payload bytes per direction.
    pub payload_bytes: [u64; 2],
    /// TCP flags seen.
    pub tcp: TcpSeen,
    /// The first `head_packets` packets.
    pub head: Vec<PacketMeta>,
    /// The first `head_packets` TLS records.
    pub records: Vec<RecordInfo>,
    /// TLS handshake, when the flow carried one.
    pub tls: Option<Box<TlsInfo>>,
    /// First HTTP request, when the flow carried one.
    pub http: Option<Box<HttpRequest>>,
    /// Client stream started with (or switched to) a TLS handshake.
    pub saw_tls: bool,
    /// Client stream started with an HTTP request method.
    pub saw_http: bool,
    app: Option<Box<AppState>>,
    /// Initial sequence numbers from the SYNs, kept here so that parser state is only
    /// allocated once payload arrives.
    isn: [Option<u32>; 2],
    /// The record of this flow has been written.
    pub emitted: bool,
    closed: bool,
}

nightjar_common::label_enum! {
    /// What a flow carried, decided from its first bytes (`app` in events and feature lines).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum App {
        /// A TLS handshake (from the first bytes, or after STARTTLS/CONNECT/SOCKS).
        Tls => "tls",
        /// An HTTP/1.x request.
        Http => "http",
        /// Anything else.
        Other => "other",
    }
}

/// What flow yields: one connection as the table saw it up to the moment the record was
/// cut, immutable, with no table or parser state. Features, inference and export read
/// it; nothing downstream can change the table through it.
#[derive(Debug)]
pub struct FlowRecord {
    /// Client (initiator) address.
    pub client_ip: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// Server (responder) address.
    pub server_ip: IpAddr,
    /// Server port.
    pub server_port: u16,
    /// Stable flow id: hash of the oriented 5-tuple and start time, below 2^53.
    pub id: u64,
    /// First packet time, ns since the epoch.
    pub first_ts: u64,
    /// Last packet time, ns since the epoch.
    pub last_ts: u64,
    /// Packets per direction ([to server, to client]).
    pub pkts: [u64; 2],
    /// Wire bytes per direction.
    pub bytes: [u64; 2],
    /// TCP payload bytes per direction.
    pub payload_bytes: [u64; 2],
    /// TCP flags seen.
    pub tcp: TcpSeen,
    /// The first `head_packets` packets.
    pub head: Vec<PacketMeta>,
    /// The first `head_packets` TLS records.
    pub records: Vec<RecordInfo>,
    /// TLS handshake, when the flow carried one.
    pub tls: Option<Box<TlsInfo>>,
    /// First HTTP request, when the flow carried one.
    pub http: Option<Box<HttpRequest>>,
    /// What the flow carried.
    pub app: App,
    /// Why the record was cut.
    pub reason: EndReason,
}

impl FlowRecord {
    /// A record of no connection (zero addresses, nothing seen): feature names and tests.
    pub fn placeholder() -> Self {
        Flow::placeholder().into_record(EndReason::EndOfInput)
    }

    /// Total packets both ways.
    pub fn total_packets(&self) -> u64 {
        self.pkts[0] + self.pkts[1]
    }
}

impl Flow {
    fn new(pkt: &Packet<'_>) -> Self {
        let syn_only = pkt.flags.has(TcpFlags::SYN) && !pkt.flags.has(TcpFlags::ACK);
        let syn_ack = pkt.flags.has(TcpFlags::SYN | TcpFlags::ACK);
        let sender_is_server = if syn_only {
            false
        } else if syn_ack {
            true
        } else {
            SERVICE_PORTS.contains(&pkt.sport) && !SERVICE_PORTS.contains(&pkt.dport)
                || (pkt.sport < 1024 && pkt.dport >= 1024)
        };
        let (client_ip, client_port, server_ip, server_port) = if sender_is_server {
            (pkt.dst, pkt.dport, pkt.src, pkt.sport)
        } else {
            (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        };
        let mut buf = [0u8; 44];
        buf[..16].copy_from_slice(&ip16(client_ip));
        buf[16..18].copy_from_slice(&client_port.to_be_bytes());
        buf[18..34].copy_from_slice(&ip16(server_ip));
        buf[34..36].copy_from_slice(&server_port.to_be_bytes());
        buf[36..44].copy_from_slice(&pkt.ts_ns.to_be_bytes());
        let id = xxhash_rust::xxh3::xxh3_64(&buf) & ((1 << 53) - 1);
        Self {
            client_ip,
            client_port,
            server_ip,
            server_port,
            id,
            first_ts: pkt.ts_ns,
            last_ts: pkt.ts_ns,
            pkts: [0; 2],
            bytes: [0; 2],
            payload_bytes: [0; 2],
            tcp: TcpSeen::default(),
            head: Vec::new(),
            records: Vec::new(),
            tls: None,
            http: None,
            saw_tls: false,
            saw_http: false,
            app: None,
            isn: [None; 2],
            emitted: false,
            closed: false,
        }
    }

    /// An empty flow between unspecified addresses: every feature at its neutral value.
    /// Used to enumerate feature names.
    fn placeholder() -> Self {
        let any = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        Flow::new(&Packet {
            ts_ns: 0,
            src: any,
            dst: any,
            sport: 0,
            dport: 0,
            seq: 0,
            ack: 0,
            flags: TcpFlags(0),
            payload: &[],
            wire_len: 0,
            truncated: false,
        })
    }

    fn dir_of(&self, pkt: &Packet<'_>) -> Dir {
        if pkt.src == self.client_ip && pkt.sport == self.client_port { Dir::ToServer } else { Dir::ToClient }
    }

    /// Total packets both ways.
    fn total_packets(&self) -> u64 {
        self.pkts[0] + self.pkts[1]
    }

    /// What the flow carried.
    fn app(&self) -> App {
        if self.saw_tls || self.tls.as_ref().is_some_and(|t| !t.client_hellos.is_empty()) {
            App::Tls
        } else if self.saw_http || self.http.is_some() {
            App::Http
        } else {
            App::Other
        }
    }

    fn offset_us(&self, ts: u64) -> u32 {
        (ts.saturating_sub(self.first_ts) / 1000).min(u64::from(u32::MAX)) as u32
    }

    /// Moves the results out for a record, leaving a counting-only flow behind.
    fn take_record(&mut self, reason: EndReason) -> FlowRecord {
        self.emitted = true;
        self.app = None;
        FlowRecord {
            client_ip: self.client_ip,
            client_port: self.client_port,
            server_ip: self.server_ip,
            server_port: self.server_port,
            id: self.id,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            pkts: self.pkts,
            bytes: self.bytes,
            payload_bytes: self.payload_bytes,
            tcp: self.tcp,
            app: self.app(),
            head: std::mem::take(&mut self.head),
            records: std::mem::take(&mut self.records),
            tls: self.tls.take(),
            http: self.http.take(),
            reason,
        }
    }

    fn into_record(mut self, reason: EndReason) -> FlowRecord {
        self.take_record(reason)
    }
}

type Lru = LruCache<FlowKey, Flow, ahash::RandomState>;

fn new_lru() -> Lru {
    LruCache::unbounded_with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4))
}

/// The bounded flow table of one worker.
///
/// Flows live in one of two least-recently-seen lists: *unanswered* (packets seen in one
/// direction only: scans, lost replies) with a short timeout, and *answered* with a long
/// one. Each list is ordered by last packet, so expiry only ever looks at the tails, and
/// a full table evicts unanswered flows first.
pub struct FlowTable {
    answered: Lru,
    unanswered: Lru,
    capacity: usize,
    cfg: FlowConfig,
    idle_ns: u64,
    unanswered_ns: u64,
    active_ns: u64,
    linger_ns: u64,
    /// Latest packet time seen, ns.
    now: u64,
}

impl FlowTable {
    /// A table that holds at most `capacity` flows.
    pub fn new(cfg: &FlowConfig, capacity: usize) -> Self {
        const NS: u64 = 1_000_000_000;
        Self {
            answered: new_lru(),
            unanswered: new_lru(),
            capacity: capacity.max(1),
            cfg: cfg.clone(),
            idle_ns: cfg.idle_timeout_secs * NS,
            unanswered_ns: cfg.unanswered_timeout_secs * NS,
            active_ns: cfg.active_timeout_secs * NS,
            linger_ns: cfg.closed_linger_secs * NS,
            now: 0,
        }
    }

    /// Flows currently tracked.
    pub fn len(&self) -> usize {
        self.answered.len() + self.unanswered.len()
    }

    /// True when no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Processes one TCP segment; records that become ready are pushed to `out`.
    pub fn process(&mut self, pkt: &Packet<'_>, stats: &mut Stats, out: &mut Vec<FlowRecord>) {
        stats.tcp_packets += 1;
        if pkt.truncated {
            stats.truncated_payloads += 1;
        }
        if pkt.ts_ns.saturating_add(CLOCK_STEP_BACK_NS) < self.now {
            self.end_all(EndReason::ClockReset, stats, out);
            self.now = pkt.ts_ns;
        }
        self.now = self.now.max(pkt.ts_ns);
        self.expire(stats, out);
        let key = FlowKey::of(pkt.src, pkt.sport, pkt.dst, pkt.dport);
        let is_new_syn = pkt.flags.has(TcpFlags::SYN) && !pkt.flags.has(TcpFlags::ACK);

        let in_answered = self.answered.contains(&key);
        let existing = if in_answered { self.answered.get_mut(&key) } else { self.unanswered.get_mut(&key) };
        if let Some(flow) = existing {
            // A SYN starts a new connection when it carries another initial sequence
            // number than the flow's client SYN (a new attempt on the same ports), or
            // when it comes after the connection closed and the flow never saw a SYN.
            // A SYN with the flow's own ISN is a retransmission, even after an RST
            // refused the first one: the same connection attempt, as tshark counts it.
            let starts_new = is_new_syn
                && match flow.isn[Dir::ToServer as usize] {
                    Some(isn) => flow.dir_of(pkt) == Dir::ToServer && isn != pkt.seq,
                    None => flow.closed,
                };
            if !starts_new {
                if is_new_syn && flow.closed && !flow.emitted {
                    // The client tries again after an RST refused it: the attempt goes on.
                    flow.closed = false;
                }
                update(flow, pkt, &self.cfg, stats, out);
                if !flow.emitted && pkt.ts_ns.saturating_sub(flow.first_ts) > self.active_ns {
                    emit_now(flow, EndReason::ActiveTimeout, stats, out);
                }
                let answered_now = flow.pkts[0] > 0 && flow.pkts[1] > 0;
                if !in_answered
                    && answered_now
                    && let Some(f) = self.unanswered.pop(&key)
                {
                    self.answered.put(key, f);
                }
                return;
            }
            let old = if in_answered { self.answered.pop(&key) } else { self.unanswered.pop(&key) };
            if let Some(old) = old {
                finish(old, EndReason::PortReuse, stats, out);
            }
        }

        if self.len() >= self.capacity {
            let victim = match self.unanswered.pop_lru() {
                Some(v) => Some(v),
                None => self.answered.pop_lru(),
            };
            if let Some((_, old)) = victim {
                finish(old, EndReason::Evicted, stats, out);
            }
        }
        stats.flows_created += 1;
        let mut flow = Flow::new(pkt);
        update(&mut flow, pkt, &self.cfg, stats, out);
        self.unanswered.put(key, flow);
    }

    /// Ends flows whose idle or linger time passed, oldest first.
    fn expire(&mut self, stats: &mut Stats, out: &mut Vec<FlowRecord>) {
        let now = self.now;
        for (lru, open_ns) in [(&mut self.answered, self.idle_ns), (&mut self.unanswered, self.unanswered_ns)] {
            while let Some((_, f)) = lru.peek_lru() {
                let limit = if f.closed { self.linger_ns.min(open_ns) } else { open_ns };
                if now.saturating_sub(f.last_ts) <= limit {
                    break;
                }
                if let Some((_, f)) = lru.pop_lru() {
                    finish(f, EndReason::IdleTimeout, stats, out);
                }
            }
        }
    }

    /// Advances the clock without a packet (for live capture) and expires flows.
    pub fn tick(&mut self, now_ns: u64, stats: &mut Stats, out: &mut Vec<FlowRecord>) {
        self.now = self.now.max(now_ns);
        self.expire(stats, out);
    }

    /// Ends every flow (end of input).
    pub fn flush(&mut self, stats: &mut Stats, out: &mut Vec<FlowRecord>) {
        self.end_all(EndReason::EndOfInput, stats, out);
    }

    /// Ends at most `max` flows (end of input, oldest first); true when none is left.
    /// A shutdown with a million tracked flows ends them in chunks, each serialised and
    /// written before the next, so its memory stays that of one chunk.
    pub fn flush_some(&mut self, max: usize, stats: &mut Stats, out: &mut Vec<FlowRecord>) -> bool {
        for _ in 0..max {
            let Some((_, f)) = self.unanswered.pop_lru().or_else(|| self.answered.pop_lru()) else { break };
            finish(f, EndReason::EndOfInput, stats, out);
        }
        self.is_empty()
    }

    fn end_all(&mut self, reason: EndReason, stats: &mut Stats, out: &mut Vec<FlowRecord>) {
        while let Some((_, f)) = self.unanswered.pop_lru() {
            finish(f, reason, stats, out);
        }
        while let Some((_, f)) = self.answered.pop_lru() {
            finish(f, reason, stats, out);
        }
    }
}

/// Emits the record of a flow leaving the table, unless it was written already.
fn finish(f: Flow, reason: EndReason, stats: &mut Stats, out: &mut Vec<FlowRecord>) {
    // A refused attempt whose record waited for the linger time ended by its RST.
    let reason = if reason == EndReason::IdleTimeout && f.closed && f.tcp.rst { EndReason::Rst } else { reason };
    if !f.emitted {
        stats.flows_ended[reason as usize] += 1;
        count_app(&f, stats);
        out.push(f.into_record(reason));
    }
}

fn update(flow: &mut Flow, pkt: &Packet<'_>, cfg: &FlowConfig, stats: &mut Stats, out: &mut Vec<FlowRecord>) {
    let dir = flow.dir_of(pkt);
    let d = dir as usize;
    flow.last_ts = flow.last_ts.max(pkt.ts_ns);
    flow.pkts[d] += 1;
    flow.bytes[d] += u64::from(pkt.wire_len);
    flow.payload_bytes[d] += pkt.payload.len() as u64;
    let f = pkt.flags;
    if f.has(TcpFlags::SYN) {
        if f.has(TcpFlags::ACK) {
            flow.tcp.syn_ack = true;
        } else {
            flow.tcp.syn = true;
        }
    }
    if f.has(TcpFlags::FIN) {
        flow.tcp.fin[d] = true;
    }
    if f.has(TcpFlags::RST) {
        flow.tcp.rst = true;
    }
    if flow.emitted {
        return;
    }
    if flow.head.len() < cfg.head_packets {
        let m = PacketMeta {
            offset_us: flow.offset_us(pkt.ts_ns),
            len: pkt.payload.len().min(usize::from(u16::MAX)) as u16,
            dir,
            flags: f.0,
        };
        flow.head.push(m);
    }
    parse_payload(flow, pkt, dir, cfg, stats);

    let reason = if f.has(TcpFlags::RST) {
        if flow.payload_bytes == [0, 0] && !flow.tcp.syn_ack {
            // A refused attempt: the client may retransmit its SYN (same ISN), so the
            // record waits for the linger time instead of splitting one attempt in two.
            flow.closed = true;
            return;
        }
        Some(EndReason::Rst)
    } else if flow.tcp.fin[0] && flow.tcp.fin[1] {
        Some(EndReason::Fin)
    } else if flow.total_packets() >= cfg.head_packets as u64 {
        Some(EndReason::HeadComplete)
    } else {
        None
    };
    if let Some(r) = reason {
        flow.closed = matches!(r, EndReason::Rst | EndReason::Fin);
        emit_now(flow, r, stats, out);
    }
}

/// Writes the record of a flow that stays in the table (counting only from now on).
fn emit_now(flow: &mut Flow, reason: EndReason, stats: &mut Stats, out: &mut Vec<FlowRecord>) {
    stats.flows_ended[reason as usize] += 1;
    count_app(flow, stats);
    out.push(flow.take_record(reason));
}

fn count_app(flow: &Flow, stats: &mut Stats) {
    match flow.app() {
        App::Tls => stats.tls_flows += 1,
        App::Http => stats.http_flows += 1,
        App::Other => {}
    }
    if let Some(t) = &flow.tls {
        stats.tls_handshake_truncated += u64::from(t.handshake_truncated);
        stats.tls_oversized_hello += u64::from(t.oversized_client_hello);
        stats.tls_parse_errors += u64::from(t.parse_errors);
    }
}

fn parse_payload(flow: &mut Flow, pkt: &Packet<'_>, dir: Dir, cfg: &FlowConfig, stats: &mut Stats) {
    let d = dir as usize;
    if pkt.flags.has(TcpFlags::SYN) {
        flow.isn[d].get_or_insert(pkt.seq);
    }
    if pkt.payload.is_empty() {
        return;
    }
    let isn = flow.isn;
    let app = flow.app.get_or_insert_with(|| {
        let mut reasm = [Reassembler::new(cfg.reassembly_bytes), Reassembler::new(cfg.reassembly_bytes)];
        for (r, isn) in reasm.iter_mut().zip(isn) {
            if let Some(isn) = isn {
                r.syn(isn);
            }
        }
        Box::new(AppState {
            reasm,
            mode: [Mode::Start; 2],
            sniff: [Sniffer::default(), Sniffer::default()],
            tls: [None, None],
            http: None,
            probes: [0; 2],
        })
    });
    if app.mode[d] == Mode::Off {
        return;
    }
    let AppState { reasm, mode, sniff, tls, http, probes } = &mut **app;
    let peer_mode = mode[1 - d];
    let mut p = StreamParser {
        side: dir.side(),
        dir,
        offset_us: (pkt.ts_ns.saturating_sub(flow.first_ts) / 1000).min(u64::from(u32::MAX)) as u32,
        cfg,
        mode: &mut mode[d],
        probes: &mut probes[d],
        tls: &mut tls[d],
        http,
        tls_info: &mut flow.tls,
        http_req: &mut flow.http,
        records: &mut flow.records,
        saw_tls: &mut flow.saw_tls,
        saw_http: &mut flow.saw_http,
        http_oversized: false,
        http_crowded: false,
    };
    let sniffer = &mut sniff[d];
    let mut notes = Notes::default();
    let mut on_chunk = |chunk: &[u8]| {
        if *p.mode != Mode::Start {
            p.chunk(chunk);
            return;
        }
        // The server answers a ClientHello in TLS, whatever its first record is (an
        // alert may come before the ServerHello).
        if p.side == Side::Server && peer_mode == Mode::Tls {
            p.begin(Start::Tls);
            p.chunk(chunk);
            return;
        }
        if let Step::Decided { start, held, rest } = sniffer.push(chunk, p.side, &mut notes) {
            p.begin(start);
            for part in [held, rest] {
                if !part.is_empty() {
                    p.chunk(part);
                }
            }
        }
    };
    let overlaps = reasm[d].overlaps();
    let outcome = reasm[d].push(pkt.seq, pkt.payload, &mut on_chunk);
    stats.reassembly_overlaps += reasm[d].overlaps() - overlaps;
    match outcome {
        SegmentOutcome::Buffered => stats.reassembly_buffered += 1,
        SegmentOutcome::Dropped => stats.reassembly_dropped += 1,
        SegmentOutcome::Duplicate => stats.reassembly_duplicates += 1,
        SegmentOutcome::InOrder | SegmentOutcome::Empty => {}
    }
    if p.http_oversized {
        stats.http_oversized += 1;
    }
    if p.http_crowded {
        stats.http_too_many_headers += 1;
    }
    if notes.proxy_header {
        stats.proxy_headers += 1;
    }
}

/// The parsers of one direction of one flow, for one segment's in-order bytes.
struct StreamParser<'s> {
    side: Side,
    dir: Dir,
    offset_us: u32,
    cfg: &'s FlowConfig,
    mode: &'s mut Mode,
    probes: &'s mut u8,
    tls: &'s mut Option<TlsStream>,
    http: &'s mut Option<HttpStream>,
    tls_info: &'s mut Option<Box<TlsInfo>>,
    http_req: &'s mut Option<Box<HttpRequest>>,
    records: &'s mut Vec<RecordInfo>,
    saw_tls: &'s mut bool,
    saw_http: &'s mut bool,
    http_oversized: bool,
    http_crowded: bool,
}

impl StreamParser<'_> {
    /// Enters the mode the stream's first bytes decided.
    fn begin(&mut self, start: Start) {
        *self.probes += 1;
        match start {
            Start::Tls => self.start_tls(),
            Start::Http => {
                *self.saw_http = true;
                *self.http = Some(HttpStream::new(self.cfg.http_header_bytes, self.cfg.http_body_bytes));
                *self.mode = Mode::Http;
            }
            Start::Text => *self.mode = Mode::Text,
        }
    }

    fn start_tls(&mut self) {
        *self.mode = Mode::Tls;
        *self.tls = Some(TlsStream::new(self.cfg.handshake_bytes));
        if self.side == Side::Client {
            *self.saw_tls = true;
        }
    }

    /// Parses in-order bytes in the current mode.
    fn chunk(&mut self, chunk: &[u8]) {
        // Plaintext may still turn into TLS (STARTTLS, HTTP CONNECT, SOCKS).
        if matches!(*self.mode, Mode::Text | Mode::Http) && *self.probes < TLS_PROBE_CHUNKS {
            *self.probes += 1;
            let msg_type = if self.side == Side::Client { 1 } else { 2 };
            if looks_like_handshake(chunk, msg_type) {
                self.start_tls();
            }
        }
        match *self.mode {
            Mode::Tls => {
                let Some(stream) = self.tls.as_mut() else {
                    return;
                };
                let info = self.tls_info.get_or_insert_with(Box::default);
                let (records, offset_us, dir, cap) =
                    (&mut *self.records, self.offset_us, self.dir, self.cfg.head_packets);
                stream.feed(self.side, chunk, info, &mut |r: RecordMeta| {
                    if records.len() < cap {
                        records.push(RecordInfo { offset_us, len: r.len, dir, content_type: r.content_type });
                    }
                });
                if stream.desynced() {
                    *self.mode = Mode::Off;
                }
            }
            Mode::Http => {
                let Some(h) = self.http.as_mut() else { return };
                match h.feed(chunk, self.http_req) {
                    HttpStatus::Oversized => self.http_oversized = true,
                    HttpStatus::TooManyHeaders => self.http_crowded = true,
                    HttpStatus::Invalid => *self.mode = Mode::Text,
                    HttpStatus::Parsed | HttpStatus::Partial => {}
                }
            }
            Mode::Text => {
                if *self.probes >= TLS_PROBE_CHUNKS {
                    *self.mode = Mode::Off;
                }
            }
            Mode::Start | Mode::Off => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pkt(ts: u64, from_client: bool, flags: u8, seq: u32, payload: &'static [u8]) -> Packet<'static> {
        let c = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let s = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        let (src, sport, dst, dport) = if from_client { (c, 40000, s, 443) } else { (s, 443, c, 40000) };
        Packet {
            ts_ns: ts,
            src,
            dst,
            sport,
            dport,
            seq,
            ack: 0,
            flags: TcpFlags(flags),
            payload,
            wire_len: 60,
            truncated: false,
        }
    }

    #[test]
    fn orientation_counters_and_fin_close() {
        let cfg = FlowConfig::default();
        let mut t = FlowTable::new(&cfg, 16);
        let mut st = Stats::default();
        let mut out = Vec::new();
        t.process(&pkt(1_000, true, TcpFlags::SYN, 10, b""), &mut st, &mut out);
        t.process(&pkt(2_000, false, TcpFlags::SYN | TcpFlags::ACK, 50, b""), &mut st, &mut out);
        t.process(&pkt(3_000, true, TcpFlags::ACK, 11, b"GET / HTTP/1.0\r\n\r\n"), &mut st, &mut out);
        t.process(&pkt(4_000, true, TcpFlags::FIN | TcpFlags::ACK, 29, b""), &mut st, &mut out);
        assert!(out.is_empty());
        t.process(&pkt(5_000, false, TcpFlags::FIN | TcpFlags::ACK, 51, b""), &mut st, &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.reason, EndReason::Fin);
        assert_eq!(r.client_port, 40000);
        assert_eq!(r.pkts, [3, 2]);
        assert_eq!(r.app.as_str(), "http");
        assert_eq!(r.http.as_ref().expect("http").uri, "/");
        assert_eq!(r.head.len(), 5);
        assert_eq!(r.head[2].offset_us, 2);
        // The trailing ACK belongs to the closed flow, not a new one.
        t.process(&pkt(6_000, true, TcpFlags::ACK, 30, b""), &mut st, &mut out);
        assert_eq!(st.flows_created, 1);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn capacity_evicts_least_recent_and_counts() {
        let cfg = FlowConfig::default();
        let mut t = FlowTable::new(&cfg, 2);
        let mut st = Stats::default();
        let mut out = Vec::new();
        for port in 0..3u16 {
            let mut p = pkt(u64::from(port), true, TcpFlags::SYN, 1, b"");
            p.sport = 1000 + port;
            t.process(&p, &mut st, &mut out);
        }
        assert_eq!(t.len(), 2);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, EndReason::Evicted);
        assert_eq!(out[0].client_port, 1000);
        assert_eq!(st.flows_ended[EndReason::Evicted as usize], 1);
    }

    #[test]
    fn idle_timeout_and_head_complete() {
        let cfg = FlowConfig { head_packets: 3, ..FlowConfig::default() };
        let mut t = FlowTable::new(&cfg, 16);
        let mut st = Stats::default();
        let mut out = Vec::new();
        t.process(&pkt(0, true, TcpFlags::SYN, 1, b""), &mut st, &mut out);
        let mut p = pkt(240_000_000_000, true, TcpFlags::SYN, 1, b"");
        p.sport = 5;
        t.process(&p, &mut st, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, EndReason::IdleTimeout);
        for i in 0..3 {
            t.process(&pkt(240_000_000_001 + i, true, TcpFlags::ACK, 2, b""), &mut st, &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].reason, EndReason::HeadComplete);
        // Emitted once: end of input writes nothing more for it.
        t.flush(&mut st, &mut out);
        assert_eq!(out.len(), 3, "only the port-5 flow is flushed");
    }

    #[test]
    fn syn_retransmissions_are_one_attempt_and_a_new_isn_is_a_new_flow() {
        const S: u64 = 1_000_000_000;
        let cfg = FlowConfig::default();
        let mut t = FlowTable::new(&cfg, 16);
        let mut st = Stats::default();
        let mut out = Vec::new();
        // Refused three times (SYN, RST) with one ISN: one attempt, ended by its RST.
        for i in 0..3 {
            t.process(&pkt(i * S, true, TcpFlags::SYN, 77, b""), &mut st, &mut out);
            t.process(&pkt(i * S + 1, false, TcpFlags::RST | TcpFlags::ACK, 0, b""), &mut st, &mut out);
        }
        assert_eq!(st.flows_created, 1);
        assert!(out.is_empty(), "a refused attempt waits for the linger time");
        // A new ISN on the same ports is a new attempt; the old one ends.
        t.process(&pkt(10 * S, true, TcpFlags::SYN, 5_000, b""), &mut st, &mut out);
        assert_eq!(st.flows_created, 2);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, EndReason::PortReuse);
        assert_eq!(out[0].pkts, [3, 3]);
        // Refused, then accepted on a retransmitted SYN: one flow that carries the request.
        t.process(&pkt(11 * S, false, TcpFlags::RST, 0, b""), &mut st, &mut out);
        t.process(&pkt(12 * S, true, TcpFlags::SYN, 5_000, b""), &mut st, &mut out);
        t.process(&pkt(12 * S + 1, false, TcpFlags::SYN | TcpFlags::ACK, 900, b""), &mut st, &mut out);
        t.process(&pkt(12 * S + 2, true, TcpFlags::ACK, 5_001, b"GET / HTTP/1.1\r\n\r\n"), &mut st, &mut out);
        t.process(&pkt(12 * S + 3, true, TcpFlags::RST, 5_019, b""), &mut st, &mut out);
        assert_eq!(st.flows_created, 2);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].reason, EndReason::Rst);
        assert_eq!(out[1].app.as_str(), "http");
        // The linger time ends a refused attempt with its reason.
        let mut p = pkt(20 * S, true, TcpFlags::SYN, 1, b"");
        p.sport = 41000;
        t.process(&p, &mut st, &mut out);
        let mut r = pkt(20 * S + 1, false, TcpFlags::RST | TcpFlags::ACK, 0, b"");
        r.dport = 41000;
        t.process(&r, &mut st, &mut out);
        t.tick(20 * S + 1 + (cfg.closed_linger_secs + 1) * S, &mut st, &mut out);
        assert_eq!(out.last().map(|r| (r.reason, r.client_port)), Some((EndReason::Rst, 41000)));
    }

    #[test]
    fn tiny_first_segments_and_proxy_headers_are_recognised() {
        let cfg = FlowConfig::default();
        let head: &'static [u8] = b"PROXY TCP4 198.18.0.1 198.18.0.2 40000 80\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n";
        let proxy_len = 43;
        // The first segment cut anywhere in the PROXY line, the method or just after it.
        for first in (1..8).chain(proxy_len - 2..proxy_len + 6) {
            let mut t = FlowTable::new(&cfg, 16);
            let mut st = Stats::default();
            let mut out = Vec::new();
            t.process(&pkt(1, true, TcpFlags::SYN, 10, b""), &mut st, &mut out);
            t.process(&pkt(2, false, TcpFlags::SYN | TcpFlags::ACK, 50, b""), &mut st, &mut out);
            let cuts = [0, first, first + 2, head.len()];
            for (i, w) in cuts.windows(2).enumerate() {
                t.process(
                    &pkt(3 + i as u64, true, TcpFlags::ACK, 11 + w[0] as u32, &head[w[0]..w[1]]),
                    &mut st,
                    &mut out,
                );
            }
            t.flush(&mut st, &mut out);
            let f = &out[0];
            assert_eq!(f.app.as_str(), "http", "first segment {first}");
            let req = f.http.as_ref().expect("request");
            assert_eq!((req.method.as_str(), req.uri.as_str(), req.host.as_deref()), ("GET", "/x", Some("h")));
            assert_eq!(st.proxy_headers, 1);
        }
    }

    #[test]
    fn clock_going_back_starts_a_new_timeline() {
        let cfg = FlowConfig::default();
        let mut t = FlowTable::new(&cfg, 16);
        let mut st = Stats::default();
        let mut out = Vec::new();
        let later = 1_000 * 1_000_000_000;
        t.process(&pkt(later, true, TcpFlags::SYN, 1, b""), &mut st, &mut out);
        // A second capture, recorded earlier: its flows must not expire at once.
        let mut p = pkt(5, true, TcpFlags::SYN, 1, b"");
        p.sport = 7;
        t.process(&p, &mut st, &mut out);
        t.process(&pkt(6, false, TcpFlags::SYN | TcpFlags::ACK, 9, b""), &mut st, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, EndReason::ClockReset);
        assert_eq!(t.len(), 2);
    }
}
