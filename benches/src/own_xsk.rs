//! A minimal AF_XDP receive loop of our own, the baseline that `nightjar-xdp-bench`
//! compares the crates against (the sensor itself uses `xsk-rs`): a UMEM, its fill ring
//! and one RX ring, driven directly through the kernel ABI (`libc` carries every struct
//! and constant of `linux/if_xdp.h`).
//!
//! Receive loop: wait (poll) until the RX ring has descriptors, hand each frame to the
//! sink while it still sits in the UMEM (no copy), release the RX slots, and give the
//! same frames back to the kernel through the fill ring. Only the owning worker touches
//! the rings, so producer/consumer indices need acquire/release ordering and no locks.
//! The kernel's own drop counters (RX ring full, fill ring empty) are read with
//! `XDP_STATISTICS`.

#![expect(
    clippy::cast_ptr_alignment,
    reason = "ring descriptor arrays start at kernel-given offsets that are cache-line aligned"
)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use nightjar::capture::{Frame, KernelDrops, LinkType, POLL_TIMEOUT_MS, PacketSource};
use nightjar::error::{CaptureError, LiveError};

/// Bytes per UMEM frame (a page half: one Ethernet frame up to 2 KiB).
pub const FRAME_SIZE: u32 = 2048;
/// UMEM frames. 8 MiB in all: larger UMEMs need CAP_IPC_LOCK.
pub const FRAMES: u32 = 4096;
/// Descriptors per ring (fill and RX), a power of two.
pub const RING_SIZE: u32 = 2048;

/// One mmapped ring.
struct Ring {
    map: NonNull<libc::c_void>,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
    /// Our copy of the index we advance (producer for fill, consumer for RX).
    cached: u32,
}

impl Ring {
    /// Maps a ring of `size` entries of `entry` bytes at page offset `pgoff`.
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, size: u32, entry: usize, pgoff: u64) -> Result<Self, LiveError> {
        let map_len = off.desc as usize + size as usize * entry;
        // Safety: mapping a kernel ring of the length the kernel told us; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(sock_err("mmap ring"));
        }
        let base = p.cast::<u8>();
        // Safety: the offsets come from XDP_MMAP_OFFSETS and lie inside the mapping.
        unsafe {
            Ok(Self {
                map: NonNull::new_unchecked(p),
                map_len,
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(off.flags as usize).cast(),
                desc: base.add(off.desc as usize),
                mask: size - 1,
                cached: 0,
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // Safety: points into the live mapping for the ring's lifetime.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // Safety: as above.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // Safety: as above.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Safety: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}

/// An AF_XDP socket bound to one RX queue, with its own UMEM.
pub struct XskSocket {
    fd: OwnedFd,
    umem: NonNull<u8>,
    umem_len: usize,
    fill: Ring,
    rx: Ring,
    /// Completion ring: required by the kernel for a UMEM, unused (no TX).
    _comp: Ring,
    addrs: Vec<u64>,
    /// The kernel chose zero-copy mode.
    pub zero_copy: bool,
    queue: u32,
}

// Safety: the socket, UMEM and rings are owned by one worker at a time; moving them to
// another thread is fine (no thread-local state).
unsafe impl Send for XskSocket {}

fn sock_err(what: &'static str) -> LiveError {
    LiveError::Socket { what, source: io::Error::last_os_error() }
}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, v: &T, what: &'static str) -> Result<(), LiveError> {
    // Safety: passes a pointer to a live `T` and its exact size.
    let r = unsafe {
        libc::setsockopt(fd, libc::SOL_XDP, opt, std::ptr::from_ref(v).cast(), std::mem::size_of::<T>() as u32)
    };
    if r == 0 { Ok(()) } else { Err(sock_err(what)) }
}

impl XskSocket {
    /// Creates a socket with its UMEM and binds it to `queue` of interface `ifindex`.
    pub fn open(ifindex: u32, queue: u32) -> Result<Self, LiveError> {
        // Safety: plain socket(2) call; the fd is owned right away.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(sock_err("socket(AF_XDP)"));
        }
        // Safety: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem_len = (FRAMES * FRAME_SIZE) as usize;
        // Safety: anonymous private mapping, checked below.
        let umem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                umem_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(sock_err("mmap umem"));
        }
        // Safety: mmap succeeded, so the pointer is non-null.
        let umem = unsafe { NonNull::new_unchecked(umem.cast::<u8>()) };
        let guard = UmemGuard(umem, umem_len);
        let reg = libc::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        let f = fd.as_raw_fd();
        setsockopt(f, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        setsockopt(f, libc::XDP_UMEM_FILL_RING, &RING_SIZE, "XDP_UMEM_FILL_RING")?;
        setsockopt(f, libc::XDP_UMEM_COMPLETION_RING, &RING_SIZE, "XDP_UMEM_COMPLETION_RING")?;
        setsockopt(f, libc::XDP_RX_RING, &RING_SIZE, "XDP_RX_RING")?;
        // Safety: zeroed plain-old-data struct filled by the kernel.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as u32;
        // Safety: `off` is large enough for the kernel's answer (`len` says how much).
        let r = unsafe {
            libc::getsockopt(
                f,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                std::ptr::from_mut(&mut off).cast(),
                &raw mut len,
            )
        };
        if r != 0 {
            return Err(sock_err("XDP_MMAP_OFFSETS"));
        }
        let mut fill = Ring::map(f, &off.fr, RING_SIZE, 8, libc::XDP_UMEM_PGOFF_FILL_RING)?;
        let comp = Ring::map(f, &off.cr, RING_SIZE, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?;
        let rx =
            Ring::map(f, &off.rx, RING_SIZE, std::mem::size_of::<libc::xdp_desc>(), libc::XDP_PGOFF_RX_RING as u64)?;

        // Give the kernel the first RING_SIZE frames to fill.
        for i in 0..RING_SIZE {
            // Safety: index < RING_SIZE inside the fill ring's descriptor array.
            unsafe { fill.desc.cast::<u64>().add(i as usize).write(u64::from(i * FRAME_SIZE)) };
        }
        fill.cached = RING_SIZE;
        fill.producer().store(RING_SIZE, Ordering::Release);

        let mut zero_copy = false;
        for flags in [libc::XDP_USE_NEED_WAKEUP | libc::XDP_ZEROCOPY, libc::XDP_USE_NEED_WAKEUP | libc::XDP_COPY] {
            let sa = libc::sockaddr_xdp {
                sxdp_family: libc::AF_XDP as u16,
                sxdp_flags: flags,
                sxdp_ifindex: ifindex,
                sxdp_queue_id: queue,
                sxdp_shared_umem_fd: 0,
            };
            // Safety: `sa` is a valid sockaddr_xdp of the size passed.
            let r = unsafe {
                libc::bind(f, std::ptr::from_ref(&sa).cast(), std::mem::size_of::<libc::sockaddr_xdp>() as u32)
            };
            if r == 0 {
                zero_copy = flags & libc::XDP_ZEROCOPY != 0;
                std::mem::forget(guard);
                return Ok(Self {
                    fd,
                    umem,
                    umem_len,
                    fill,
                    rx,
                    _comp: comp,
                    addrs: Vec::with_capacity(256),
                    zero_copy,
                    queue,
                });
            }
        }
        let _ = zero_copy;
        Err(sock_err("bind(AF_XDP)"))
    }

    /// The RX queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Kernel drop counters.
    pub fn stats(&self) -> Result<KernelDrops, LiveError> {
        // Safety: zeroed plain-old-data struct filled by the kernel.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as u32;
        // Safety: `s` is large enough for the answer.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                std::ptr::from_mut(&mut s).cast(),
                &raw mut len,
            )
        };
        if r != 0 {
            return Err(sock_err("XDP_STATISTICS"));
        }
        Ok(KernelDrops {
            rx_dropped: s.rx_dropped,
            rx_ring_full: s.rx_ring_full,
            fill_ring_empty: s.rx_fill_ring_empty_descs,
            rx_invalid: s.rx_invalid_descs,
            unstamped: 0,
        })
    }

    fn wait(&self) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // Safety: one valid pollfd.
        let r = unsafe { libc::poll(&raw mut pfd, 1, POLL_TIMEOUT_MS) };
        r > 0
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl PacketSource for XskSocket {
    fn read_batch(&mut self, max: usize, sink: &mut dyn FnMut(&Frame<'_>)) -> Result<usize, CaptureError> {
        let mut avail = self.rx.producer().load(Ordering::Acquire).wrapping_sub(self.rx.cached);
        if avail == 0 {
            if self.fill.needs_wakeup() {
                // Safety: zero-length recvfrom only kicks the driver.
                unsafe {
                    libc::recvfrom(
                        self.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
            }
            if !self.wait() {
                return Ok(0);
            }
            avail = self.rx.producer().load(Ordering::Acquire).wrapping_sub(self.rx.cached);
        }
        let n = avail.min(max as u32);
        let ts_ns =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        self.addrs.clear();
        for i in 0..n {
            let idx = (self.rx.cached.wrapping_add(i) & self.rx.mask) as usize;
            // Safety: idx is masked into the RX descriptor array.
            let desc = unsafe { self.rx.desc.cast::<libc::xdp_desc>().add(idx).read() };
            let (addr, len) = (desc.addr as usize, desc.len as usize);
            if addr + len <= self.umem_len {
                // Safety: the kernel wrote `len` bytes at `addr` inside our UMEM, and does
                // not touch the frame until we return it through the fill ring.
                let data = unsafe { std::slice::from_raw_parts(self.umem.as_ptr().add(addr), len) };
                // Nightjar's programs put the arrival time in front (`FrameMeta`), as the
                // sensor's socket reads it.
                let data = nightjar_common::FrameMeta::split(data).map_or(data, |(_, frame)| frame);
                sink(&Frame { ts_ns, link: LinkType::Ethernet, wire_len: data.len() as u32, data });
            }
            self.addrs.push(desc.addr & !u64::from(FRAME_SIZE - 1));
        }
        self.rx.cached = self.rx.cached.wrapping_add(n);
        self.rx.consumer().store(self.rx.cached, Ordering::Release);
        // Return the frames to the kernel (the fill ring always has room for them: it
        // holds at most RING_SIZE of the FRAMES we own).
        for (i, a) in self.addrs.iter().enumerate() {
            let idx = (self.fill.cached.wrapping_add(i as u32) & self.fill.mask) as usize;
            // Safety: idx is masked into the fill descriptor array.
            unsafe { self.fill.desc.cast::<u64>().add(idx).write(*a) };
        }
        self.fill.cached = self.fill.cached.wrapping_add(n);
        self.fill.producer().store(self.fill.cached, Ordering::Release);
        Ok(n as usize)
    }

    fn position(&self) -> u64 {
        0
    }

    fn kernel_drops(&self) -> KernelDrops {
        self.stats().unwrap_or_default()
    }
}

impl Drop for XskSocket {
    fn drop(&mut self) {
        // Rings unmap themselves; the socket closes with `fd`. Release the UMEM last.
        // Safety: unmapping the UMEM mapped in `open`.
        unsafe { libc::munmap(self.umem.as_ptr().cast(), self.umem_len) };
    }
}

/// Unmaps the UMEM if `open` fails half-way.
struct UmemGuard(NonNull<u8>, usize);

impl Drop for UmemGuard {
    fn drop(&mut self) {
        // Safety: unmapping the UMEM mapped in `open`, which did not hand it on.
        unsafe { libc::munmap(self.0.as_ptr().cast(), self.1) };
    }
}
