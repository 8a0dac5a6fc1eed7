//! Fallback capture where XDP or AF_XDP is unavailable: a raw AF_PACKET socket per
//! worker, all joined in one `PACKET_FANOUT_HASH` group so that the kernel's symmetric
//! flow hash keeps both directions of a flow on one worker. Without the XDP pre-filter
//! every packet comes up, so this path is slower, but the stages after it are the same.
//! The kernel's drop counter (`PACKET_STATISTICS`) is read at the end. Each packet
//! carries the kernel's receive time (`SO_TIMESTAMPNS`, read from the control message of
//! `recvmsg`), not the time the reader got to it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Frame, KernelDrops, LinkType, POLL_TIMEOUT_MS, PacketSource, wall_ns};
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
    /// Control-message buffer of `recvmsg` (the timestamp), 8-byte aligned.
    control: [u64; 8],
    unstamped: u64,
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
        set(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS")?;
        Ok(Self { fd, buf: vec![0; FRAME_BYTES], control: [0; 8], unstamped: 0 })
    }

    /// Receives one packet into `buf` without blocking: its length on the wire, where it
    /// came from and the kernel's receive time (if the kernel gave one).
    fn receive(&mut self) -> Option<(usize, libc::sockaddr_ll, Option<u64>)> {
        // Safety: zeroed sockaddr_ll and msghdr, then filled with pointers to our own
        // buffers and their sizes.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec { iov_base: self.buf.as_mut_ptr().cast(), iov_len: self.buf.len() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = std::ptr::from_mut(&mut from).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = self.control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&self.control);
        // Safety: `msg` points at live buffers of the sizes it states.
        let len = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
        if len < 0 {
            return None;
        }
        let mut ts = None;
        // Safety: walking the control messages the kernel wrote into `control`, within
        // `msg_controllen`; the timestamp is a `timespec` read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    ts = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
                }
                c = libc::CMSG_NXTHDR(&raw const msg, c);
            }
        }
        Some((len as usize, from, ts))
    }
}

impl PacketSource for AfPacketSocket {
    fn read_batch(&mut self, max: usize, sink: &mut dyn FnMut(&Frame<'_>)) -> Result<usize, CaptureError> {
        let mut n = 0;
        while n < max {
            let Some((wire, from, ts)) = self.receive() else {
                if n > 0 {
                    break;
                }
                let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // Safety: one valid pollfd.
                if unsafe { libc::poll(&raw mut pfd, 1, POLL_TIMEOUT_MS) } <= 0 {
                    break;
                }
                continue;
            };
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                // This host's own transmissions are not traffic from the wire.
                continue;
            }
            let ts_ns = ts.unwrap_or_else(|| {
                self.unstamped += 1;
                wall_ns()
            });
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
            KernelDrops { rx_dropped: u64::from(st[1]), unstamped: self.unstamped, ..KernelDrops::default() }
        } else {
            KernelDrops { unstamped: self.unstamped, ..KernelDrops::default() }
        }
    }
}
