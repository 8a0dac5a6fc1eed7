//! Types and names shared by the XDP program (`nightjar-ebpf`) and userspace
//! (`nightjar`). Everything here is `#[repr(C)]`, `Copy`, without `bool` or implicit
//! padding, so both sides agree on the bytes of every map key and value. Map names are
//! constants so that the program and the loader cannot drift apart.
#![cfg_attr(not(test), no_std)]

/// LRU hash map of flow state, keyed by [`FlowKey`].
pub const MAP_FLOWS: &str = "FLOWS";
/// Per-CPU array of decision counters, indexed by [`Counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// One-entry array holding the [`FilterConfig`].
pub const MAP_CONFIG: &str = "CONFIG";
/// XSKMAP of AF_XDP sockets, keyed by RX queue index.
pub const MAP_XSKS: &str = "XSKS";
/// BPF ring buffer of [`PacketCopy`] records (host mode).
pub const MAP_COPIES: &str = "COPIES";
/// Bytes of the copy ring buffer.
pub const COPY_RING_BYTES: u32 = 4 << 20;
/// Largest copy of one packet, bytes.
pub const COPY_SNAP_BYTES: usize = 2048;
/// Name of the XDP program in the object.
pub const PROGRAM_NAME: &str = "nightjar_xdp";
/// Benchmark baseline program: drop everything.
pub const BENCH_DROP_PROGRAM: &str = "nightjar_bench_drop";
/// Benchmark baseline program: redirect everything to AF_XDP.
pub const BENCH_REDIRECT_PROGRAM: &str = "nightjar_bench_redirect";
/// Entries of the flow map.
pub const FLOW_MAP_ENTRIES: u32 = 262_144;
/// Entries of the XSKMAP (largest RX queue index + 1).
pub const MAX_QUEUES: u32 = 64;

/// `FilterConfig::mode`: mirror port; selected packets go to AF_XDP, the rest is dropped.
pub const MODE_SPAN: u32 = 0;
/// `FilterConfig::mode`: a host that serves traffic; every packet passes.
pub const MODE_HOST: u32 = 1;

/// Filter settings written by userspace before attaching.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    /// [`MODE_SPAN`] or [`MODE_HOST`].
    pub mode: u32,
    /// Packets of a selected flow (both directions) sent to userspace.
    pub head_packets: u32,
    /// Host mode: bytes of each packet copied to userspace (at most [`COPY_SNAP_BYTES`]).
    pub snap_len: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self { mode: MODE_SPAN, head_packets: 32, snap_len: COPY_SNAP_BYTES as u32, reserved: 0 }
    }
}

/// One packet copied to userspace in host mode.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PacketCopy {
    /// Length of the packet, bytes.
    pub wire_len: u32,
    /// Bytes copied into `data`.
    pub cap_len: u32,
    /// When the XDP program saw the packet: `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub ktime_ns: u64,
    /// The first `cap_len` bytes of the packet.
    pub data: [u8; COPY_SNAP_BYTES],
}

/// The prefix the XDP program puts in front of every frame it redirects to AF_XDP
/// (`bpf_xdp_adjust_head`, inside the frame's headroom): the frame's arrival time, so
/// that userspace stamps each packet with the time it arrived, not the time its batch was
/// read. Userspace strips it; a frame that comes without it (`magic` wrong) is dropped
/// and counted, never decoded with 16 bytes of someone's header missing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FrameMeta {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the XDP program saw the frame.
    pub ktime_ns: u64,
    /// [`FRAME_META_MAGIC`].
    pub magic: u32,
    /// Zero.
    pub reserved: u32,
}

/// Bytes of [`FrameMeta`].
pub const FRAME_META_BYTES: usize = 16;
/// [`FrameMeta::magic`]: "NJTS".
pub const FRAME_META_MAGIC: u32 = 0x4e4a_5453;

impl FrameMeta {
    /// The arrival time in a frame's first `FRAME_META_BYTES` bytes, if the XDP program
    /// wrote them.
    pub fn read(b: &[u8; FRAME_META_BYTES]) -> Option<u64> {
        let magic = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        (magic == FRAME_META_MAGIC).then(|| u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    /// A redirected frame split into its arrival time and the frame behind the prefix;
    /// `None` when the prefix is missing.
    pub fn split(frame: &[u8]) -> Option<(u64, &[u8])> {
        let (meta, rest) = frame.split_first_chunk::<FRAME_META_BYTES>()?;
        Some((Self::read(meta)?, rest))
    }
}

/// Symmetric flow key: the lower (address, port) endpoint first. IPv4 addresses are
/// stored IPv4-mapped in 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowKey {
    /// Lower endpoint address.
    pub addr_lo: [u8; 16],
    /// Higher endpoint address.
    pub addr_hi: [u8; 16],
    /// Port of the lower endpoint.
    pub port_lo: u16,
    /// Port of the higher endpoint.
    pub port_hi: u16,
}

/// `FlowState::state`: SYN seen, the first payload bytes not yet decisive; packets are
/// sent up while undecided.
pub const FLOW_CANDIDATE: u32 = 0;
/// `FlowState::state`: a TLS handshake record, an HTTP request line or a PROXY protocol
/// header was seen.
pub const FLOW_SELECTED: u32 = 1;
/// `FlowState::state`: the first payload bytes are none of those; not for the sensor.
pub const FLOW_IGNORED: u32 = 2;

/// First payload bytes a candidate flow holds until they decide (the longest pattern of
/// [`sniff_prefix`] is 12 bytes: the PROXY v2 signature).
pub const PREFIX_BYTES: usize = 16;
/// In-order payload segments a candidate may take to decide; after that it is selected
/// and userspace decides (sending a few packets up is cheaper than missing a flow).
pub const MAX_PREFIX_SEGMENTS: u8 = 8;

/// Per-flow state in the LRU map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowState {
    /// One of `FLOW_CANDIDATE`, `FLOW_SELECTED`, `FLOW_IGNORED`.
    pub state: u32,
    /// Packets of this flow sent to userspace so far.
    pub sent: u32,
    /// Candidate: TCP sequence number of the next in-order payload byte of the sender of
    /// the first payload.
    pub next_seq: u32,
    /// Candidate: source port of the sender of the first payload (0: none yet).
    pub sender_port: u16,
    /// Candidate: bytes held in `prefix`.
    pub prefix_len: u8,
    /// Candidate: in-order payload segments taken.
    pub segments: u8,
    /// Candidate: the first payload bytes, in sequence order.
    pub prefix: [u8; PREFIX_BYTES],
}

/// HTTP/1.x request methods that start a request (RFC 9110 section 9, RFC 4918), each
/// with its space: the XDP program and the sensor's sniffer select flows by the same list.
pub const HTTP_METHODS: [&[u8]; 15] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PROPFIND ",
    b"PROPPATCH ",
    b"MKCOL ",
    b"COPY ",
    b"MOVE ",
    b"LOCK ",
];
/// PROXY protocol v1 (HAProxy) line start.
pub const PROXY_V1: &[u8] = b"PROXY ";
/// PROXY protocol v2 signature.
pub const PROXY_V2: [u8; 12] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/// What the first payload bytes of a flow say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniff {
    /// A TLS handshake record, an HTTP request line or a PROXY protocol header.
    Select,
    /// A proper prefix of one of those: more bytes decide.
    NeedMore,
    /// None of those.
    Ignore,
}

/// Decides on the first `len` bytes of `b` (the first payload bytes of a flow, in
/// sequence order, however they were segmented). Written for the BPF verifier too:
/// fixed-size input, loops over constant bounds only.
#[inline(always)]
pub fn sniff_prefix(b: &[u8; PREFIX_BYTES], len: usize) -> Sniff {
    let len = if len > PREFIX_BYTES { PREFIX_BYTES } else { len };
    // TLS record header: content type 22 (handshake), version 3.0-3.4.
    let tls = if len == 0 {
        Sniff::NeedMore
    } else if b[0] != 22 {
        Sniff::Ignore
    } else if len == 1 {
        Sniff::NeedMore
    } else if b[1] != 3 {
        Sniff::Ignore
    } else if len == 2 {
        Sniff::NeedMore
    } else if b[2] <= 4 {
        Sniff::Select
    } else {
        Sniff::Ignore
    };
    // Each pattern a literal: BPF has no relocations for pointers stored in data, so the
    // program cannot walk `HTTP_METHODS` (a table of slices). The unit tests check this
    // list against `HTTP_METHODS`.
    let mut out = tls;
    for p in [
        pattern(b, len, b"GET "),
        pattern(b, len, b"POST "),
        pattern(b, len, b"HEAD "),
        pattern(b, len, b"PUT "),
        pattern(b, len, b"DELETE "),
        pattern(b, len, b"OPTIONS "),
        pattern(b, len, b"PATCH "),
        pattern(b, len, b"CONNECT "),
        pattern(b, len, b"TRACE "),
        pattern(b, len, b"PROPFIND "),
        pattern(b, len, b"PROPPATCH "),
        pattern(b, len, b"MKCOL "),
        pattern(b, len, b"COPY "),
        pattern(b, len, b"MOVE "),
        pattern(b, len, b"LOCK "),
        pattern(b, len, PROXY_V1),
        pattern(b, len, &PROXY_V2),
    ] {
        out = either(out, p);
    }
    out
}

#[inline(always)]
fn either(a: Sniff, b: Sniff) -> Sniff {
    match (a, b) {
        (Sniff::Select, _) | (_, Sniff::Select) => Sniff::Select,
        (Sniff::NeedMore, _) | (_, Sniff::NeedMore) => Sniff::NeedMore,
        _ => Sniff::Ignore,
    }
}

#[inline(always)]
fn pattern(b: &[u8; PREFIX_BYTES], len: usize, p: &[u8]) -> Sniff {
    let mut i = 0;
    while i < p.len() && i < PREFIX_BYTES {
        if i >= len {
            return Sniff::NeedMore;
        }
        if b[i] != p[i] {
            return Sniff::Ignore;
        }
        i += 1;
    }
    Sniff::Select
}

/// Decision counters (per CPU). Every packet increments `Received` and exactly one of
/// the verdict counters `Redirected`, `Bypassed`, `Passed`, `Dropped`; the reason
/// counters (`NotTcp`, `ParseFailure`, `MapFull`, `RedirectFailed`) say why, on top.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every packet seen by the program.
    Received = 0,
    /// Sent to an AF_XDP socket (span mode) or copied to the ring buffer (host mode).
    Redirected = 1,
    /// A flow past its head, or a flow that is not TLS/HTTP: not sent to userspace.
    Bypassed = 2,
    /// Passed to the kernel stack.
    Passed = 3,
    /// Dropped (span mode: nothing on a mirror port is for the host).
    Dropped = 4,
    /// Not TCP over IPv4/IPv6 (reason, alongside the verdict).
    NotTcp = 5,
    /// Headers too short or malformed (reason).
    ParseFailure = 6,
    /// The flow map refused an insert (reason).
    MapFull = 7,
    /// `bpf_redirect_map` failed, e.g. no socket on this queue (reason).
    RedirectFailed = 8,
    /// Host mode: the copy ring buffer was full, or the copy failed (reason).
    CopyFailed = 9,
}

impl Counter {
    /// Number of counters (size of the per-CPU array).
    pub const COUNT: u32 = 10;
    /// Every counter, in index order.
    pub const ALL: [Counter; 10] = [
        Counter::Received,
        Counter::Redirected,
        Counter::Bypassed,
        Counter::Passed,
        Counter::Dropped,
        Counter::NotTcp,
        Counter::ParseFailure,
        Counter::MapFull,
        Counter::RedirectFailed,
        Counter::CopyFailed,
    ];

    /// Bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Received => "received",
            Counter::Redirected => "redirected",
            Counter::Bypassed => "bypassed",
            Counter::Passed => "passed",
            Counter::Dropped => "dropped",
            Counter::NotTcp => "not_tcp",
            Counter::ParseFailure => "parse_failure",
            Counter::MapFull => "map_full",
            Counter::RedirectFailed => "redirect_failed",
            Counter::CopyFailed => "copy_failed",
        }
    }
}

// Safety: plain-old-data, `#[repr(C)]`, no padding (checked by the layout tests).
#[cfg(feature = "user")]
unsafe impl aya::Pod for FilterConfig {}
// Safety: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for FlowKey {}
// Safety: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for FlowState {}

/// Declares a fieldless enum whose variants stand for a bounded set of labels (metric
/// label values, event field values), with `ALL` (every variant, in declaration order),
/// `COUNT` and `as_str`, from one line per variant: the list, the strings and the count
/// cannot drift apart. Derives and docs are the caller's.
///
/// ```
/// nightjar_common::label_enum! {
///     /// Why a frame was skipped.
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Skip {
///         /// UDP datagram.
///         Udp => "udp",
///         /// An IP fragment.
///         Fragment => "ip_fragment",
///     }
/// }
/// assert_eq!(Skip::ALL, [Skip::Udp, Skip::Fragment]);
/// assert_eq!(Skip::Fragment.as_str(), "ip_fragment");
/// assert_eq!(Skip::COUNT, 2);
/// ```
#[macro_export]
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// How many variants there are.
            pub const COUNT: usize = [$( $label ),+].len();

            /// Every variant, in declaration order (counters, metric registration).
            pub const ALL: [$name; Self::COUNT] = [$( $name::$variant ),+];

            /// The variant's label: a bounded metric label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(core::mem::size_of::<FlowKey>(), 36);
        // 4 + 4 + 4 + 2 + 1 + 1 + PREFIX_BYTES
        assert_eq!(core::mem::size_of::<FlowState>(), 16 + PREFIX_BYTES);
        assert_eq!(core::mem::size_of::<FilterConfig>(), 16);
        assert_eq!(core::mem::size_of::<PacketCopy>(), 16 + COPY_SNAP_BYTES);
        assert_eq!(core::mem::offset_of!(PacketCopy, ktime_ns), 8);
        assert_eq!(core::mem::size_of::<FrameMeta>(), FRAME_META_BYTES);
    }

    #[test]
    fn frame_meta_reads_only_what_the_program_wrote() {
        let m = FrameMeta { ktime_ns: 123_456_789_012, magic: FRAME_META_MAGIC, reserved: 0 };
        let mut b = [0u8; FRAME_META_BYTES];
        b[..8].copy_from_slice(&m.ktime_ns.to_ne_bytes());
        b[8..12].copy_from_slice(&m.magic.to_ne_bytes());
        assert_eq!(FrameMeta::read(&b), Some(123_456_789_012));
        b[8] ^= 1;
        assert_eq!(FrameMeta::read(&b), None, "no magic, no time");
        assert_eq!(FrameMeta::read(&[0; FRAME_META_BYTES]), None, "an Ethernet header of zeros");
        b[8] ^= 1;
        let mut frame = b.to_vec();
        frame.extend_from_slice(b"eth");
        assert_eq!(FrameMeta::split(&frame), Some((123_456_789_012, &b"eth"[..])));
        assert_eq!(FrameMeta::split(&b[..15]), None, "shorter than the prefix");
    }

    fn sniff(bytes: &[u8]) -> Sniff {
        let mut b = [0u8; PREFIX_BYTES];
        let n = bytes.len().min(PREFIX_BYTES);
        b[..n].copy_from_slice(&bytes[..n]);
        sniff_prefix(&b, bytes.len())
    }

    #[test]
    fn every_prefix_of_a_start_needs_more_until_it_selects() {
        let hello: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0x40, 0x01];
        let mut starts: Vec<&[u8]> = vec![hello, PROXY_V1, &PROXY_V2];
        starts.extend(HTTP_METHODS);
        assert_eq!(sniff(&[]), Sniff::NeedMore);
        for s in starts {
            let decisive = if s[0] == 0x16 { 3 } else { s.len() };
            for n in 1..decisive {
                assert_eq!(sniff(&s[..n]), Sniff::NeedMore, "{:?} cut at {n}", &s[..n]);
            }
            assert_eq!(sniff(&s[..decisive]), Sniff::Select, "{s:?}");
            assert_eq!(sniff(s), Sniff::Select, "{s:?}");
        }
    }

    #[test]
    fn other_protocols_are_ignored_as_soon_as_they_differ() {
        assert_eq!(sniff(b"SSH-2.0-OpenSSH_9.6\r\n"), Sniff::Ignore);
        assert_eq!(sniff(b"S"), Sniff::Ignore, "no pattern starts with S");
        assert_eq!(sniff(b"G"), Sniff::NeedMore);
        assert_eq!(sniff(b"GET/"), Sniff::Ignore, "a method needs its space");
        assert_eq!(sniff(b"PRO"), Sniff::NeedMore, "PROPFIND, PROPPATCH or PROXY");
        assert_eq!(sniff(b"PROXZ"), Sniff::Ignore);
        assert_eq!(sniff(&[0x17, 0x03, 0x03]), Sniff::Ignore, "application data mid-stream");
        assert_eq!(sniff(&[0x16, 0x03, 0x05]), Sniff::Ignore, "no TLS version 3.5");
        assert_eq!(sniff(&[0x16, 0x02]), Sniff::Ignore);
        assert_eq!(sniff(&[0, 0, 0, 0x2f]), Sniff::Ignore, "a length prefix");
        assert_eq!(sniff(b"GET / HTTP/1.1 and far more than sixteen bytes"), Sniff::Select);
    }
}
