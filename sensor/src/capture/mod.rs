//! Stage 1: capture. Yields [`Frame`]s (timestamp, link type, bytes) from a
//! [`PacketSource`]: a pcap/pcapng file for offline replay, AF_XDP rings behind the XDP
//! pre-filter, the host-mode copy ring, or AF_PACKET for live capture, each frame with its
//! own capture time. Every source feeds the very same worker loop (`runtime::driver`).
//!
//! Sources hand frames to a visitor so that bytes can be borrowed from a ring or a read
//! buffer without copying. A source must not allocate per frame.

pub mod afpacket;
pub mod pcap;
pub mod xdp;
#[cfg(feature = "ebpf")]
pub mod xsk;

pub use self::pcap::PcapFileSource;

pub use nightjar_parse::link::LinkType;

use crate::error::CaptureError;

/// One captured frame, borrowed from the source's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Link-layer framing.
    pub link: LinkType,
    /// Length on the wire, bytes (may exceed `data.len()` when the capture was cut).
    pub wire_len: u32,
    /// Captured bytes.
    pub data: &'a [u8],
}

/// A source of frames: offline files and live rings implement the same trait.
pub trait PacketSource {
    /// Hands up to `max` frames to `sink` and returns how many it handed over.
    /// A file returns `Ok(0)` at its end; a live source returns `Ok(0)` when nothing
    /// arrived within its poll interval (so that the caller can tick and check for
    /// shutdown).
    fn read_batch(&mut self, max: usize, sink: &mut dyn FnMut(&Frame<'_>)) -> Result<usize, CaptureError>;

    /// Bytes of input consumed so far, for progress reporting.
    fn position(&self) -> u64;

    /// Packets the kernel dropped before this source could read them, by reason (live
    /// sources; files have none).
    fn kernel_drops(&self) -> KernelDrops {
        KernelDrops::default()
    }
}

/// How long a live source waits for packets before returning empty, ms.
pub const POLL_TIMEOUT_MS: i32 = 100;

/// Packets the kernel dropped before a live source could read them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelDrops {
    /// Dropped for other reasons than a full ring (AF_PACKET: every drop).
    pub rx_dropped: u64,
    /// Dropped because the RX ring was full (userspace too slow).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty.
    pub fill_ring_empty: u64,
    /// Invalid descriptors.
    pub rx_invalid: u64,
    /// Frames without a per-packet kernel timestamp: AF_XDP drops them (the XDP
    /// program's time prefix is missing, so the frame's framing is unknown), AF_PACKET
    /// stamps them with the reader's clock.
    pub unstamped: u64,
}

/// Converts `CLOCK_MONOTONIC` nanoseconds (what the XDP program's `bpf_ktime_get_ns`
/// gives) into Unix-epoch nanoseconds, by the offset between the two clocks read when the
/// source opened (a run's clock steps are not followed: inter-arrival times stay exact).
#[derive(Clone, Copy, Debug)]
pub struct KtimeClock {
    offset_ns: i128,
}

fn clock_ns(id: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(id, &raw mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl KtimeClock {
    /// Reads both clocks now.
    pub fn new() -> Self {
        let before = clock_ns(libc::CLOCK_MONOTONIC);
        let real = clock_ns(libc::CLOCK_REALTIME);
        let after = clock_ns(libc::CLOCK_MONOTONIC);
        Self { offset_ns: real - i128::midpoint(before, after) }
    }

    /// Unix-epoch nanoseconds of a `CLOCK_MONOTONIC` reading.
    pub fn unix_ns(&self, ktime_ns: u64) -> u64 {
        (i128::from(ktime_ns) + self.offset_ns).clamp(0, i128::from(u64::MAX)) as u64
    }
}

impl Default for KtimeClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The reader's clock, Unix-epoch nanoseconds (for frames the kernel did not stamp).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Interface index of `name`.
pub fn ifindex(name: &str) -> Result<u32, crate::error::LiveError> {
    use crate::error::LiveError;
    let c = std::ffi::CString::new(name).map_err(|_| LiveError::NoInterface(name.into()))?;
    // Safety: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 { Err(LiveError::NoInterface(name.into())) } else { Ok(idx) }
}
