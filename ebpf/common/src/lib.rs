//! Types and names shared by the XDP program (`nightjar-ebpf`) and userspace
//! (`nightjar`). Everything here is `#[repr(C)]`, `Copy`, without `bool` or implicit
//! padding, so both sides agree on the bytes of every map key and value. Map names are
//! constants so that the program and the loader cannot drift apart.
#![no_std]

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
    /// The first `cap_len` bytes of the packet.
    pub data: [u8; COPY_SNAP_BYTES],
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

/// `FlowState::state`: SYN seen, no payload yet; packets are sent up while undecided.
pub const FLOW_CANDIDATE: u32 = 0;
/// `FlowState::state`: a TLS handshake record or HTTP request line was seen.
pub const FLOW_SELECTED: u32 = 1;
/// `FlowState::state`: the first payload was neither; the flow is not for the sensor.
pub const FLOW_IGNORED: u32 = 2;

/// Per-flow state in the LRU map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowState {
    /// One of `FLOW_CANDIDATE`, `FLOW_SELECTED`, `FLOW_IGNORED`.
    pub state: u32,
    /// Packets of this flow sent to userspace so far.
    pub sent: u32,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(core::mem::size_of::<FlowKey>(), 36);
        assert_eq!(core::mem::size_of::<FlowState>(), 8);
        assert_eq!(core::mem::size_of::<FilterConfig>(), 16);
        assert_eq!(core::mem::size_of::<PacketCopy>(), 8 + COPY_SNAP_BYTES);
    }
}
