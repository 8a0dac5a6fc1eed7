//! Nightjar's XDP pre-filter. For every frame it decodes Ethernet (up to two VLAN tags),
//! IPv4 or IPv6 (skipping extension headers) and TCP, keeps per-flow state in an LRU
//! hash keyed by the symmetric 5-tuple, and decides:
//!
//! - a flow is *selected* when its first payload bytes are a TLS handshake record
//!   (content type 22, version 3.x), an HTTP request line (one of the sensor's methods
//!   and a space) or a PROXY protocol header (`nightjar_common::sniff_prefix`, the list
//!   userspace sniffs by); its first `head_packets` packets in both directions go to
//!   userspace, and so do its FIN and RST, then it is bypassed;
//! - a flow that starts with a SYN is a *candidate* until those bytes decide: its packets
//!   go up (so userspace sees the flow from its start), and the in-order payload of the
//!   first sender is gathered, up to `PREFIX_BYTES` over at most `MAX_PREFIX_SEGMENTS`
//!   segments, so a ClientHello whose first segment holds 1 byte, or a method split over
//!   segments, is selected as surely as one sent whole. Bytes that match nothing mark it
//!   *ignored*; a candidate still undecided after `MAX_PREFIX_SEGMENTS` is selected;
//! - everything else is bypassed.
//!
//! `span` mode (a mirror port: nothing is for the host) redirects what goes up into the
//! AF_XDP socket of the RX queue and drops the rest. `host` mode never redirects (that
//! would steal the packet from the kernel): every packet passes.
//!
//! Every packet increments `Received` and exactly one verdict counter (`Redirected`,
//! `Bypassed`, `Passed`, `Dropped`); reason counters say why on top. On any internal
//! error the program fails open in host mode (the packet passes) and drops in span mode,
//! where no packet is for the host anyway.
#![no_std]
#![no_main]

use aya_ebpf::bindings::xdp_action;
use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_xdp_adjust_head, bpf_xdp_load_bytes};
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{Array, LruHashMap, PerCpuArray, RingBuf, XskMap};
use aya_ebpf::programs::XdpContext;
use nightjar_common::{
    COPY_RING_BYTES, COPY_SNAP_BYTES, Counter, FLOW_CANDIDATE, FLOW_IGNORED, FLOW_MAP_ENTRIES, FLOW_SELECTED,
    FRAME_META_BYTES, FRAME_META_MAGIC, FilterConfig, FlowKey, FlowState, FrameMeta, MAX_PREFIX_SEGMENTS, MAX_QUEUES,
    MODE_SPAN, PREFIX_BYTES, PacketCopy, Sniff, sniff_prefix,
};

#[map]
static FLOWS: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(FLOW_MAP_ENTRIES, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);
#[map]
static CONFIG: Array<FilterConfig> = Array::with_max_entries(1, 0);
#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);
#[map]
static COPIES: RingBuf = RingBuf::with_byte_size(COPY_RING_BYTES, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
/// IPv6 extension headers skipped before giving up (hop-by-hop, routing, destination).
const MAX_IPV6_EXT: usize = 4;

/// What the parser found.
enum Parsed {
    /// A TCP segment; its payload spans `payload_off..ip_end` (the IP length, not the
    /// frame end: Ethernet pads short frames).
    Tcp { key: FlowKey, flags: u8, payload_off: usize, ip_end: usize, sport: u16, seq: u32 },
    /// Not TCP over IP.
    NotTcp,
}

#[xdp]
pub fn nightjar_xdp(ctx: XdpContext) -> u32 {
    let cfg = CONFIG.get(0).copied().unwrap_or_default();
    let span = cfg.mode == MODE_SPAN;
    count(Counter::Received);
    match try_nightjar_xdp(&ctx, &cfg) {
        Ok(action) => action,
        Err(()) => {
            count(Counter::ParseFailure);
            other(span)
        }
    }
}

#[inline(always)]
fn count(c: Counter) {
    if let Some(v) = COUNTERS.get_ptr_mut(c as u32) {
        // Safety: per-CPU slot of this CPU; XDP programs are not preempted on it.
        unsafe { *v += 1 };
    }
}

/// Verdict for packets that are not part of a flow the sensor tracks.
#[inline(always)]
fn other(span: bool) -> u32 {
    if span {
        count(Counter::Dropped);
        xdp_action::XDP_DROP
    } else {
        count(Counter::Passed);
        xdp_action::XDP_PASS
    }
}

/// Verdict for a flow packet that does not go to userspace.
#[inline(always)]
fn bypass(span: bool) -> u32 {
    count(Counter::Bypassed);
    if span { xdp_action::XDP_DROP } else { xdp_action::XDP_PASS }
}

/// Verdict for a packet that goes to userspace.
#[inline(always)]
fn send(ctx: &XdpContext, cfg: &FilterConfig, span: bool) -> u32 {
    if !span {
        // Host mode never redirects (the packet belongs to the kernel stack): it copies
        // the packet's first bytes into the ring buffer and passes it.
        copy_to_ring(ctx, cfg);
        return xdp_action::XDP_PASS;
    }
    redirect(ctx)
}

/// Redirects into the AF_XDP socket of the packet's RX queue (span mode), the arrival
/// time in front of the frame ([`FrameMeta`]).
#[inline(always)]
fn redirect(ctx: &XdpContext) -> u32 {
    stamp(ctx);
    match XSKS.redirect(ctx.rx_queue_index(), 0) {
        Ok(action) => {
            count(Counter::Redirected);
            action
        }
        Err(_) => {
            count(Counter::RedirectFailed);
            count(Counter::Dropped);
            xdp_action::XDP_DROP
        }
    }
}

/// Prepends the [`FrameMeta`] prefix. If the headroom cannot take it the frame goes up
/// without it, and userspace drops and counts it (`unstamped`).
#[inline(always)]
fn stamp(ctx: &XdpContext) {
    // Safety: the helper only moves `data` of this context into its headroom (or fails).
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(FRAME_META_BYTES as i32)) } != 0 {
        return;
    }
    let at = ctx.data();
    if at + FRAME_META_BYTES > ctx.data_end() {
        return;
    }
    // Safety: `at .. at + FRAME_META_BYTES` lies inside the packet, just checked.
    unsafe {
        core::ptr::write_unaligned(
            at as *mut FrameMeta,
            FrameMeta { ktime_ns: bpf_ktime_get_ns(), magic: FRAME_META_MAGIC, reserved: 0 },
        );
    }
}

#[inline(always)]
fn copy_to_ring(ctx: &XdpContext, cfg: &FilterConfig) {
    let len = ctx.data_end() - ctx.data();
    let cap = len.min(cfg.snap_len as usize).min(COPY_SNAP_BYTES);
    let Some(mut entry) = COPIES.reserve::<PacketCopy>(0) else {
        count(Counter::CopyFailed);
        count(Counter::Passed);
        return;
    };
    if cap == 0 || cap > COPY_SNAP_BYTES {
        entry.discard(0);
        count(Counter::CopyFailed);
        count(Counter::Passed);
        return;
    }
    let p = entry.as_mut_ptr();
    // Safety: `p` points to a reserved PacketCopy; `cap` is in 1..=COPY_SNAP_BYTES, the
    // size of `data`, and the helper checks the packet bounds itself.
    let r = unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, (*p).data.as_mut_ptr().cast(), cap as u32) };
    if r < 0 {
        entry.discard(0);
        count(Counter::CopyFailed);
        count(Counter::Passed);
        return;
    }
    // Safety: as above; the header fields are plain integers.
    unsafe {
        (*p).wire_len = len as u32;
        (*p).cap_len = cap as u32;
        (*p).ktime_ns = bpf_ktime_get_ns();
    }
    entry.submit(0);
    count(Counter::Redirected);
}

/// A bounds-checked pointer to a `T` at `off` bytes into the packet.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Result<*const T, ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + core::mem::size_of::<T>() > end {
        return Err(());
    }
    Ok((start + off) as *const T)
}

#[inline(always)]
fn load<T: Copy>(ctx: &XdpContext, off: usize) -> Result<T, ()> {
    // Safety: `ptr_at` checked that the bytes lie inside the packet; reads are unaligned.
    Ok(unsafe { core::ptr::read_unaligned(ptr_at::<T>(ctx, off)?) })
}

#[inline(always)]
fn be16(ctx: &XdpContext, off: usize) -> Result<u16, ()> {
    Ok(u16::from_be(load::<u16>(ctx, off)?))
}

fn try_nightjar_xdp(ctx: &XdpContext, cfg: &FilterConfig) -> Result<u32, ()> {
    let span = cfg.mode == MODE_SPAN;
    let (key, flags, payload_off, ip_end, sport, seq) = match parse(ctx)? {
        Parsed::Tcp { key, flags, payload_off, ip_end, sport, seq } => (key, flags, payload_off, ip_end, sport, seq),
        Parsed::NotTcp => {
            count(Counter::NotTcp);
            return Ok(other(span));
        }
    };
    // By the IP length (Ethernet pads short frames); a frame cut shorter than that fails
    // the prefix load, and the flow is then selected for userspace to decide.
    let payload_len =
        if payload_off < ip_end && ctx.data() + payload_off < ctx.data_end() { ip_end - payload_off } else { 0 };
    let fin_rst = flags & (TCP_FIN | TCP_RST) != 0;

    if let Some(st) = FLOWS.get_ptr_mut(&key) {
        // Safety: the map value stays valid for this program run; concurrent updates
        // from another CPU can only make a counter approximate.
        let st = unsafe { &mut *st };
        return Ok(match st.state {
            FLOW_SELECTED => {
                if st.sent < cfg.head_packets || fin_rst {
                    st.sent += 1;
                    send(ctx, cfg, span)
                } else {
                    bypass(span)
                }
            }
            FLOW_CANDIDATE => {
                if payload_len > 0
                    && (st.sender_port == 0 || st.sender_port == sport)
                    && (st.prefix_len == 0 || seq == st.next_seq)
                {
                    // The next in-order bytes of the first sender.
                    st.sender_port = sport;
                    st.next_seq = seq.wrapping_add(payload_len as u32);
                    let read = take_prefix(ctx, payload_off, payload_len, st);
                    st.segments = st.segments.saturating_add(1);
                    match sniff_prefix(&st.prefix, usize::from(st.prefix_len)) {
                        Sniff::Ignore if read => {
                            st.state = FLOW_IGNORED;
                            return Ok(bypass(span));
                        }
                        Sniff::Select => st.state = FLOW_SELECTED,
                        _ if !read || st.segments >= MAX_PREFIX_SEGMENTS => st.state = FLOW_SELECTED,
                        _ => {}
                    }
                    st.sent += 1;
                    send(ctx, cfg, span)
                } else if st.sent < cfg.head_packets || fin_rst {
                    // Handshake, the other direction, retransmissions and reordering
                    // while undecided: up, within the head budget.
                    st.sent += 1;
                    send(ctx, cfg, span)
                } else {
                    bypass(span)
                }
            }
            _ => bypass(span),
        });
    }

    let mut st = FlowState { state: FLOW_CANDIDATE, sent: 1, ..FlowState::default() };
    if payload_len > 0 {
        // A flow first seen mid-stream (no SYN): its bytes decide now, or after more.
        st.sender_port = sport;
        st.next_seq = seq.wrapping_add(payload_len as u32);
        let read = take_prefix(ctx, payload_off, payload_len, &mut st);
        st.segments = 1;
        match sniff_prefix(&st.prefix, usize::from(st.prefix_len)) {
            _ if !read => st.state = FLOW_SELECTED,
            Sniff::Select => st.state = FLOW_SELECTED,
            Sniff::NeedMore => {}
            Sniff::Ignore => return Ok(bypass(span)),
        }
    } else if flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
        return Ok(bypass(span));
    }
    if FLOWS.insert(&key, &st, 0).is_err() {
        // Still send this packet: losing the flow's state only costs its later packets.
        count(Counter::MapFull);
    }
    Ok(send(ctx, cfg, span))
}

/// Appends the first payload bytes (at most what `prefix` still holds) to the candidate's
/// prefix; false when the bytes could not be read (a frame cut short).
#[inline(always)]
fn take_prefix(ctx: &XdpContext, payload_off: usize, payload_len: usize, st: &mut FlowState) -> bool {
    let have = usize::from(st.prefix_len);
    if have >= PREFIX_BYTES {
        return true;
    }
    let room = PREFIX_BYTES - have;
    let n = if payload_len < room { payload_len } else { room };
    if n == 0 || n > PREFIX_BYTES {
        return true;
    }
    let mut tmp = [0u8; PREFIX_BYTES];
    // Safety: `tmp` holds PREFIX_BYTES and `n` is in 1..=PREFIX_BYTES; the helper checks
    // the packet bounds itself.
    let r = unsafe { bpf_xdp_load_bytes(ctx.ctx, payload_off as u32, tmp.as_mut_ptr().cast(), n as u32) };
    if r < 0 {
        return false;
    }
    // Written at constant positions (the verifier cannot bound a variable index into the
    // map value), read from the stack copy at a variable one.
    for j in 0..PREFIX_BYTES {
        if j >= have && j - have < n {
            st.prefix[j] = tmp[(j - have) & (PREFIX_BYTES - 1)];
        }
    }
    st.prefix_len = (have + n) as u8;
    true
}

#[inline(always)]
fn parse(ctx: &XdpContext) -> Result<Parsed, ()> {
    let mut off = ETH_HLEN;
    let mut proto = be16(ctx, 12)?;
    // Up to two VLAN tags (802.1Q, QinQ).
    for _ in 0..2 {
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = be16(ctx, off + 2)?;
            off += 4;
        }
    }
    let mut key = FlowKey::default();
    let (l4, src_is_lo, ip_end): (usize, bool, usize);
    match proto {
        ETH_P_IP => {
            let vihl: u8 = load(ctx, off)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if ihl < 20 {
                return Err(());
            }
            ip_end = off + usize::from(be16(ctx, off + 2)?);
            let frag: u16 = be16(ctx, off + 6)?;
            let p: u8 = load(ctx, off + 9)?;
            // Fragments (offset or more-fragments set) are left to userspace's counters.
            if p != IPPROTO_TCP || frag & 0x3fff != 0 {
                return Ok(Parsed::NotTcp);
            }
            let src: [u8; 4] = load(ctx, off + 12)?;
            let dst: [u8; 4] = load(ctx, off + 16)?;
            l4 = off + (ihl & 0x3c);
            let sport = be16(ctx, l4)?;
            let dport = be16(ctx, l4 + 2)?;
            src_is_lo = (src, sport) <= (dst, dport);
            let (lo, hi) = if src_is_lo { (src, dst) } else { (dst, src) };
            key.addr_lo[10] = 0xff;
            key.addr_lo[11] = 0xff;
            key.addr_lo[12..].copy_from_slice(&lo);
            key.addr_hi[10] = 0xff;
            key.addr_hi[11] = 0xff;
            key.addr_hi[12..].copy_from_slice(&hi);
            key.port_lo = if src_is_lo { sport } else { dport };
            key.port_hi = if src_is_lo { dport } else { sport };
        }
        ETH_P_IPV6 => {
            ip_end = off + 40 + usize::from(be16(ctx, off + 4)?);
            let mut next: u8 = load(ctx, off + 6)?;
            let src: [u8; 16] = load(ctx, off + 8)?;
            let dst: [u8; 16] = load(ctx, off + 24)?;
            let mut l = off + 40;
            for _ in 0..MAX_IPV6_EXT {
                // Hop-by-hop, routing, destination options: skip; anything else stops.
                if next == 0 || next == 43 || next == 60 {
                    // One 2-byte load: a 1-byte check compiles to `ptr >= end`, which the
                    // verifier cannot turn into a range for a variable offset.
                    let [n, len]: [u8; 2] = load(ctx, l)?;
                    next = n;
                    l += (usize::from(len) + 1) * 8;
                }
            }
            if next != IPPROTO_TCP {
                return Ok(Parsed::NotTcp);
            }
            l4 = l;
            let sport = be16(ctx, l4)?;
            let dport = be16(ctx, l4 + 2)?;
            src_is_lo = (src, sport) <= (dst, dport);
            key.addr_lo = if src_is_lo { src } else { dst };
            key.addr_hi = if src_is_lo { dst } else { src };
            key.port_lo = if src_is_lo { sport } else { dport };
            key.port_hi = if src_is_lo { dport } else { sport };
        }
        _ => return Ok(Parsed::NotTcp),
    }
    let doff_flags: [u8; 2] = load(ctx, l4 + 12)?;
    let doff = usize::from(doff_flags[0] >> 4) * 4;
    if doff < 20 {
        return Err(());
    }
    let sport = be16(ctx, l4)?;
    let seq = u32::from_be(load::<u32>(ctx, l4 + 4)?);
    Ok(Parsed::Tcp { key, flags: doff_flags[1], payload_off: l4 + doff, ip_end, sport, seq })
}

/// Benchmark baseline: counts and drops every packet (the cheapest possible program).
#[xdp]
pub fn nightjar_bench_drop(_ctx: XdpContext) -> u32 {
    count(Counter::Received);
    count(Counter::Dropped);
    xdp_action::XDP_DROP
}

/// Benchmark baseline: redirects every packet into the AF_XDP socket of its queue, with
/// no parsing (what a bare AF_XDP receive loop gets).
#[xdp]
pub fn nightjar_bench_redirect(ctx: XdpContext) -> u32 {
    count(Counter::Received);
    redirect(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
