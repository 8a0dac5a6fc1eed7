//! Fallback capture where XDP or AF_XDP is unavailable: a raw AF_PACKET socket per
//! worker, all joined in one `PACKET_FANOUT_HASH` group so that the kernel's symmetric
//! flow hash keeps both directions of a flow on one worker. Without the XDP pre-filter
//! every packet comes up, so this path is slower, but the stages after it are the same.
//! The kernel's drop counter (`PACKET_STATISTICS`) is read at the end.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Frame, KernelDrops, LinkType, POLL_TIMEOUT_MS, PacketSource};
use crate::error::{CaptureError, LiveError};

/// Receive buffer requested per socket, bytes.
const RCVBUF_BYTES: libc::c_int = 64 << 20;
/// Largest frame read (jumbo frames included).
const FRAME_BYTES: usize = 65_536;
/// `PACKET_FANOUT` (linux/if_packet.h).
const PACKET_FANOUT: libc::c_int = 18;
/// `PACKET_FANOUT_HASH` (linux/if_packet.h).
const PACKET_FANOUT_HASH: u32 = 0;
/// `PACKET_STATISTICS` (linux/if_packet.h).
const PACKET_STATISTICS: libc::c_int = 6;

/// One AF_PACKET socket bound to an interface.
pub struct AfPacketSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

fn sock_err(what: &'static str) -> LiveError {
    LiveError::Socket { what, source: io::Error::last_os_error() }
}

impl AfPacketSocket {
    /// Opens a socket on interface `ifindex` and joins fanout group `group`.
    pub fn open(ifindex: u32, group: u16) -> Result<Self, LiveError> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // Safety: plain socket(2); the fd is owned right away.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
        if raw < 0 {
            return Err(sock_err("socket(AF_PACKET)"));
        }
        // Safety: fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Safety: zeroed sockaddr_ll, then filled.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto;
        sa.sll_ifindex = ifindex as i32;
        // Safety: `sa` is a valid sockaddr_ll of the size passed.
        let r =
            unsafe { libc::bind(raw, std::ptr::from_ref(&sa).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32) };
        if r != 0 {
            return Err(sock_err("bind(AF_PACKET)"));
        }
        let set = |level, opt, v: libc::c_int, what| {
            // Safety: pointer to a live c_int and its size.
            let r = unsafe { libc::setsockopt(raw, level, opt, std::ptr::from_ref(&v).cast(), 4) };
            if r == 0 { Ok(()) } else { Err(sock_err(what)) }
        };
        // A smaller buffer than asked for is not fatal (no CAP_NET_ADMIN for FORCE).
        let _ = set(libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF_BYTES, "SO_RCVBUF");
        let fanout = (PACKET_FANOUT_HASH << 16) | u32::from(group);
        set(libc::SOL_PACKET, PACKET_FANOUT, fanout as libc::c_int, "PACKET_FANOUT")?;
        Ok(Self { fd, buf: vec![0; FRAME_BYTES] })
    }
}

impl PacketSource for AfPacketSocket {
    fn read_batch(&mut self, max: usize, sink: &mut dyn FnMut(&Frame<'_>)) -> Result<usize, CaptureError> {
        let mut n = 0;
        while n < max {
            // Safety: zeroed sockaddr_ll for the kernel to fill.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // Safety: reading into our own buffer and address of the lengths passed.
            let len = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    std::ptr::from_mut(&mut from).cast(),
                    &raw mut from_len,
                )
            };
            if len < 0 {
                if n > 0 {
                    break;
                }
                let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // Safety: one valid pollfd.
                if unsafe { libc::poll(&raw mut pfd, 1, POLL_TIMEOUT_MS) } <= 0 {
                    break;
                }
                continue;
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                // This host's own transmissions are not traffic from the wire.
                continue;
            }
            let wire = len as usize;
            let ts_ns =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            let data = &self.buf[..wire.min(self.buf.len())];
            sink(&Frame { ts_ns, link: LinkType::Ethernet, wire_len: wire as u32, data });
            n += 1;
        }
        Ok(n)
    }

    fn position(&self) -> u64 {
        0
    }

    fn kernel_drops(&self) -> KernelDrops {
        // struct tpacket_stats { tp_packets, tp_drops } (linux/if_packet.h).
        let mut st = [0u32; 2];
        let mut len = 8u32;
        // Safety: an 8-byte buffer for the two u32 counters.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        if r == 0 {
            KernelDrops { rx_dropped: u64::from(st[1]), ..KernelDrops::default() }
        } else {
            KernelDrops::default()
        }
    }
}
