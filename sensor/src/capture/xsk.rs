//! AF_XDP receive socket on one RX queue, built with the `xsk-rs` crate (libxdp's
//! `xsk` API): a UMEM of [`FRAMES`] frames, its fill ring and one RX ring.
//!
//! Receive loop: poll the RX ring, hand each frame to the sink while it still sits in the
//! UMEM (no copy), then give the same frames back to the kernel through the fill ring.
//! Each frame carries its arrival time in front (`nightjar_common::FrameMeta`, written
//! by the XDP program), so packets of one batch keep their own inter-arrival times.
//! Only the owning worker touches the rings. libxdp is told not to load its own XDP
//! program: Nightjar's filter owns the XSKMAP and the socket is registered there.
//!
//! `xsk-rs` was chosen by measurement (`nightjar-xdp-bench`, `benches/RESULTS.md`): it
//! delivered within the noise of a minimal ring loop of our own and of `xdpilone`, is
//! MIT-licensed and maintained.

use std::num::NonZeroU32;
use std::os::fd::AsRawFd;

use xsk_rs::config::{FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use nightjar_common::FrameMeta;

use super::{Frame, KernelDrops, KtimeClock, LinkType, POLL_TIMEOUT_MS, PacketSource};
use crate::error::{CaptureError, LiveError};

/// Bytes per UMEM frame (one Ethernet frame up to 2 KiB).
pub const FRAME_SIZE: u32 = 2048;
/// UMEM frames: 8 MiB in all (larger UMEMs need CAP_IPC_LOCK).
pub const FRAMES: u32 = 4096;
/// Descriptors per ring (fill and RX).
pub const RING_SIZE: u32 = 2048;
/// Frames read per poll.
const BATCH: usize = 256;

/// An AF_XDP socket bound to one RX queue, with its own UMEM.
pub struct XskSocket {
    umem: Umem,
    rx: RxQueue,
    fill: FillQueue,
    _comp: CompQueue,
    _tx: TxQueue,
    batch: Vec<FrameDesc>,
    /// The kernel chose zero-copy mode.
    pub zero_copy: bool,
    queue: u32,
    clock: KtimeClock,
    unstamped: u64,
}

fn xsk_err(what: &str, e: impl std::fmt::Display) -> LiveError {
    LiveError::Xdp { what: what.into(), source: e.to_string().into() }
}

impl XskSocket {
    /// Creates a socket with its UMEM and binds it to `queue` of interface `iface`.
    pub fn open(iface: &str, queue: u32) -> Result<Self, LiveError> {
        let ucfg = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| xsk_err("frame size", e))?)
            .fill_queue_size(QueueSize::new(RING_SIZE).map_err(|e| xsk_err("fill size", e))?)
            .comp_queue_size(QueueSize::new(RING_SIZE).map_err(|e| xsk_err("completion size", e))?)
            .build()
            .map_err(|e| xsk_err("umem config", e))?;
        let frames = NonZeroU32::new(FRAMES).ok_or_else(|| xsk_err("frames", "zero"))?;
        let (umem, mut descs) = Umem::new(ucfg, frames, false).map_err(|e| xsk_err("umem", e))?;
        let scfg = SocketConfig::builder()
            .rx_queue_size(QueueSize::new(RING_SIZE).map_err(|e| xsk_err("rx size", e))?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .build();
        let ifname: Interface = iface.parse().map_err(|e| xsk_err("interface name", e))?;
        // Safety: the UMEM is fresh and not shared, so the INHIBIT_PROG_LOAD requirement
        // of shared UMEMs does not apply (and the flag is set anyway).
        let (tx, rx, fq_cq) = unsafe { Socket::new(scfg, &umem, &ifname, queue) }
            .map_err(|e| xsk_err(&format!("AF_XDP socket on {iface} queue {queue}"), e))?;
        let (mut fill, comp) = fq_cq.ok_or_else(|| xsk_err("fill queue", "missing"))?;
        let mut batch = descs.split_off(RING_SIZE as usize);
        // Safety: these descriptors belong to this UMEM and are handed over once.
        let given = unsafe { fill.produce(&descs) };
        if given != descs.len() {
            return Err(xsk_err("fill ring", "could not hand over the first frames"));
        }
        batch.truncate(BATCH);
        let zero_copy = zero_copy(rx.fd().as_raw_fd());
        Ok(Self {
            umem,
            rx,
            fill,
            _comp: comp,
            _tx: tx,
            batch,
            zero_copy,
            queue,
            clock: KtimeClock::new(),
            unstamped: 0,
        })
    }

    /// The RX queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }
}

/// Asks the kernel whether the socket runs in zero-copy mode (`XDP_OPTIONS`).
fn zero_copy(fd: i32) -> bool {
    let mut opts = libc::xdp_options { flags: 0 };
    let mut len = std::mem::size_of::<libc::xdp_options>() as u32;
    // Safety: `opts` is large enough for the answer.
    let r = unsafe {
        libc::getsockopt(fd, libc::SOL_XDP, libc::XDP_OPTIONS, std::ptr::from_mut(&mut opts).cast(), &raw mut len)
    };
    r == 0 && opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> i32 {
        self.rx.fd().as_raw_fd()
    }
}

impl PacketSource for XskSocket {
    fn read_batch(&mut self, max: usize, sink: &mut dyn FnMut(&Frame<'_>)) -> Result<usize, CaptureError> {
        let want = max.min(self.batch.len());
        // Safety: the descriptors in `batch` belong to this UMEM; the kernel fills them.
        let n = unsafe { self.rx.poll_and_consume(&mut self.batch[..want], POLL_TIMEOUT_MS) }
            .map_err(|source| CaptureError::Live { what: "AF_XDP poll", source })?;
        if n == 0 {
            return Ok(0);
        }
        for d in &self.batch[..n] {
            // Safety: `d` was just consumed from the RX ring of this UMEM; the kernel does
            // not touch the frame until it goes back through the fill ring below.
            let data = unsafe { self.umem.data(d) };
            // Every frame starts with the XDP program's arrival time (`FrameMeta`).
            let Some((ktime_ns, bytes)) = FrameMeta::split(data.contents()) else {
                self.unstamped += 1;
                continue;
            };
            let ts_ns = self.clock.unix_ns(ktime_ns);
            sink(&Frame { ts_ns, link: LinkType::Ethernet, wire_len: bytes.len() as u32, data: bytes });
        }
        // Safety: returning exactly the frames consumed above.
        unsafe { self.fill.produce(&self.batch[..n]) };
        Ok(n)
    }

    fn position(&self) -> u64 {
        0
    }

    fn kernel_drops(&self) -> KernelDrops {
        self.rx.fd().xdp_statistics().map_or_else(
            |_| KernelDrops { unstamped: self.unstamped, ..KernelDrops::default() },
            |s| KernelDrops {
                rx_dropped: s.rx_dropped(),
                rx_ring_full: s.rx_ring_full(),
                fill_ring_empty: s.rx_fill_ring_empty_descs(),
                rx_invalid: s.rx_invalid_descs(),
                unstamped: self.unstamped,
            },
        )
    }
}
