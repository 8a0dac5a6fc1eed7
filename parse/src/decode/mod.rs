//! Stage 2: decode. Takes one captured frame and yields a borrowed [`Packet`] view of
//! its TCP segment (addresses, ports, flags, sequence numbers, payload), or a counted
//! [`Skip`] (not TCP, IP fragment) or [`DecodeError`] (malformed).
//!
//! The link layer is walked here (Ethernet, 802.1Q/802.1ad/QinQ tags, Cisco TrustSec
//! metadata (SGT, ethertype 0x8909), MPLS label stacks); IP and TCP headers are parsed by
//! `etherparse` in lax mode, so frames cut short by a capture snap length still yield what
//! they carry. Tunnels that span ports commonly deliver (GRE, ERSPAN II/III, VXLAN,
//! Geneve, GTP-U, CAPWAP data, IPv4/IPv6 in IPv4/IPv6) are stripped, up to
//! [`MAX_TUNNEL_DEPTH`].
//! This module must not allocate: it only borrows from the frame. Application-layer
//! parsers live in [`tls`] and [`http`].

pub mod http;
pub mod tls;

use std::net::IpAddr;

use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::link::LinkType;

/// How many tunnel layers are stripped before a frame is given up on.
pub const MAX_TUNNEL_DEPTH: usize = 3;
/// VXLAN UDP port (RFC 7348 section 5).
const VXLAN_PORT: u16 = 4789;
/// Geneve UDP port (RFC 8926 section 3.3).
const GENEVE_PORT: u16 = 6081;
/// GTP-U UDP port (3GPP TS 29.281 section 4.4.2.3).
const GTPU_PORT: u16 = 2152;
/// CAPWAP data channel UDP port (RFC 5415 section 3.2).
const CAPWAP_DATA_PORT: u16 = 5247;
/// Ethertypes of 802.1Q, 802.1ad and the pre-standard QinQ tag.
const ETHER_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// Cisco TrustSec metadata (CMD) carrying a security group tag.
const ETHER_CISCO_METADATA: u16 = 0x8909;
/// MPLS unicast and multicast.
const ETHER_MPLS: [u16; 2] = [0x8847, 0x8848];
/// Link-layer headers (tags, metadata, labels) walked before giving up on a frame.
const MAX_L2_HEADERS: usize = 8;
/// GRE protocol type for transparent Ethernet bridging.
const GRE_PROTO_TEB: u16 = 0x6558;
/// GRE protocol type of ERSPAN type II.
const GRE_PROTO_ERSPAN2: u16 = 0x88be;
/// GRE protocol type of ERSPAN type III.
const GRE_PROTO_ERSPAN3: u16 = 0x22eb;

/// TCP header flags as one byte (FIN=0x01, SYN=0x02, RST=0x04, PSH=0x08, ACK=0x10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN bit.
    pub const FIN: u8 = 0x01;
    /// SYN bit.
    pub const SYN: u8 = 0x02;
    /// RST bit.
    pub const RST: u8 = 0x04;
    /// PSH bit.
    pub const PSH: u8 = 0x08;
    /// ACK bit.
    pub const ACK: u8 = 0x10;

    /// True when every bit of `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// A decoded TCP segment, borrowing its payload from the frame.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgement number.
    pub ack: u32,
    /// TCP flags.
    pub flags: TcpFlags,
    /// TCP payload as captured (may be shorter than sent when `truncated`).
    pub payload: &'a [u8],
    /// Length of the frame on the wire, bytes.
    pub wire_len: u32,
    /// The IP payload was cut short by the capture (snap length).
    pub truncated: bool,
}

nightjar_common::label_enum! {
    /// Frames that are well formed but not for the TCP pipeline. Counted, not errors.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Skip {
        /// UDP datagram.
        Udp => "udp",
        /// ICMP or ICMPv6.
        Icmp => "icmp",
        /// Another IP protocol.
        OtherIp => "other_ip",
        /// ARP or another non-IP ethertype.
        NonIp => "non_ip",
        /// An IP fragment (fragments are counted, not reassembled).
        Fragment => "ip_fragment",
    }
}

nightjar_common::label_enum! {
    /// Why a frame could not be decoded. A small `Copy` code, counted per kind.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum DecodeError {
        /// The frame ends inside a link-layer header.
        TruncatedLink => "truncated_link",
        /// The frame ends inside, or has an invalid, IP header.
        BadIpHeader => "bad_ip_header",
        /// The frame ends inside, or has an invalid, TCP header.
        BadTcpHeader => "bad_tcp_header",
        /// The link type of the capture is not supported.
        UnsupportedLinkType => "unsupported_link_type",
        /// Tunnel headers nest deeper than [`MAX_TUNNEL_DEPTH`] or are malformed.
        BadTunnel => "bad_tunnel",
    }
}

/// The result of decoding one frame.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A TCP segment for the flow table.
    Tcp(Packet<'a>),
    /// Well formed, but not TCP.
    Skip(Skip),
    /// Malformed.
    Error(DecodeError),
}

/// Decodes one frame of the given link type.
pub fn decode_frame(link: LinkType, ts_ns: u64, wire_len: u32, data: &[u8]) -> Decoded<'_> {
    let sliced = match link {
        LinkType::Ethernet => match ethernet_payload(data) {
            Ok((ether, rest)) => sliced_ether(ether, rest),
            Err(e) => return Decoded::Error(e),
        },
        LinkType::Raw => match LaxSlicedPacket::from_ip(data) {
            Ok(s) => s,
            Err(_) => return Decoded::Error(DecodeError::BadIpHeader),
        },
        LinkType::LinuxSll => {
            // Linux cooked header v1: 16 bytes, protocol in the last two.
            let Some(hdr) = data.get(..16) else {
                return Decoded::Error(DecodeError::TruncatedLink);
            };
            let proto = u16::from_be_bytes([hdr[14], hdr[15]]);
            sliced_ether(proto, &data[16..])
        }
        LinkType::LinuxSll2 => {
            // Linux cooked header v2: 20 bytes, protocol in the first two.
            let Some(hdr) = data.get(..20) else {
                return Decoded::Error(DecodeError::TruncatedLink);
            };
            let proto = u16::from_be_bytes([hdr[0], hdr[1]]);
            sliced_ether(proto, &data[20..])
        }
        LinkType::Null => {
            // BSD loopback: a 4-byte address family in the writer's byte order.
            let Some(hdr) = data.get(..4) else {
                return Decoded::Error(DecodeError::TruncatedLink);
            };
            let family = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let family = if family > 0xffff { family.swap_bytes() } else { family };
            let ether = match family {
                2 => EtherType::IPV4,
                24 | 28 | 30 => EtherType::IPV6,
                _ => return Decoded::Skip(Skip::NonIp),
            };
            LaxSlicedPacket::from_ether_type(ether, &data[4..])
        }
        LinkType::Other(_) => return Decoded::Error(DecodeError::UnsupportedLinkType),
    };
    decode_sliced(&sliced, ts_ns, wire_len, 0)
}

/// Walks an Ethernet header and the tags, metadata and label stacks after it; returns
/// the ethertype of the network layer and the bytes that follow.
fn ethernet_payload(data: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    let Some(et) = data.get(12..14) else {
        return Err(DecodeError::TruncatedLink);
    };
    let mut ether = u16::from_be_bytes([et[0], et[1]]);
    let mut rest = &data[14..];
    for _ in 0..MAX_L2_HEADERS {
        let (hdr_len, next) = if ETHER_VLAN.contains(&ether) {
            // TCI (2 bytes), then the inner ethertype.
            let Some(h) = rest.get(..4) else { return Err(DecodeError::TruncatedLink) };
            (4, u16::from_be_bytes([h[2], h[3]]))
        } else if ether == ETHER_CISCO_METADATA {
            // Version (1), length in 4-byte words of the options (1), options, ethertype.
            let Some(&words) = rest.get(1) else { return Err(DecodeError::TruncatedLink) };
            let len = 2 + usize::from(words) * 4;
            let Some(h) = rest.get(len..len + 2) else { return Err(DecodeError::TruncatedLink) };
            (len + 2, u16::from_be_bytes([h[0], h[1]]))
        } else if ETHER_MPLS.contains(&ether) {
            // Label entries until the bottom-of-stack bit, then IP told by its version.
            let mut off = 0;
            loop {
                let Some(e) = rest.get(off..off + 4) else { return Err(DecodeError::TruncatedLink) };
                off += 4;
                if e[2] & 0x01 != 0 {
                    break;
                }
                if off >= 4 * MAX_L2_HEADERS {
                    return Err(DecodeError::TruncatedLink);
                }
            }
            let next = match rest.get(off).map(|b| b >> 4) {
                Some(4) => EtherType::IPV4.0,
                Some(6) => EtherType::IPV6.0,
                _ => 0,
            };
            (off, next)
        } else {
            return Ok((ether, rest));
        };
        ether = next;
        rest = &rest[hdr_len..];
    }
    Err(DecodeError::TruncatedLink)
}

/// Slices the network layer of a frame whose link layer was already walked.
fn sliced_ether(ether: u16, rest: &[u8]) -> LaxSlicedPacket<'_> {
    LaxSlicedPacket::from_ether_type(EtherType(ether), rest)
}

fn decode_sliced<'a>(s: &LaxSlicedPacket<'a>, ts_ns: u64, wire_len: u32, depth: usize) -> Decoded<'a> {
    let Some(net) = &s.net else {
        return match s.stop_err {
            Some((_, etherparse::err::Layer::Ethernet2Header | etherparse::err::Layer::VlanHeader)) => {
                Decoded::Error(DecodeError::TruncatedLink)
            }
            Some(_) => Decoded::Error(DecodeError::BadIpHeader),
            None => Decoded::Skip(Skip::NonIp),
        };
    };
    let (src, dst, payload) = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            // A total length shorter than the header itself is malformed (counted, as
            // Suricata and tshark flag it); 0 is what segmentation offload writes and the
            // length then comes from the capture.
            let total = h.total_len();
            if total != 0 && usize::from(total) < h.slice().len() {
                return Decoded::Error(DecodeError::BadIpHeader);
            }
            (IpAddr::from(h.source_addr()), IpAddr::from(h.destination_addr()), v4.payload())
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            (IpAddr::from(h.source_addr()), IpAddr::from(h.destination_addr()), v6.payload())
        }
        LaxNetSlice::Arp(_) => return Decoded::Skip(Skip::NonIp),
    };
    if payload.fragmented {
        return Decoded::Skip(Skip::Fragment);
    }
    let truncated = payload.incomplete;
    match payload.ip_number {
        IpNumber::TCP => match &s.transport {
            Some(TransportSlice::Tcp(tcp)) => Decoded::Tcp(Packet {
                ts_ns,
                src,
                dst,
                sport: tcp.source_port(),
                dport: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags: TcpFlags(tcp.header_slice()[13] & 0x3f),
                payload: tcp.payload(),
                wire_len,
                truncated,
            }),
            _ => Decoded::Error(DecodeError::BadTcpHeader),
        },
        IpNumber::UDP => match &s.transport {
            Some(TransportSlice::Udp(udp)) => {
                // Either port marks the tunnel: some encapsulators use it as source.
                let (sp, dp) = (udp.source_port(), udp.destination_port());
                let tunnel = |p: u16| matches!(p, VXLAN_PORT | GENEVE_PORT | GTPU_PORT | CAPWAP_DATA_PORT);
                if tunnel(dp) {
                    decode_udp_tunnel(dp, udp.payload(), ts_ns, wire_len, depth)
                } else if tunnel(sp) {
                    decode_udp_tunnel(sp, udp.payload(), ts_ns, wire_len, depth)
                } else {
                    Decoded::Skip(Skip::Udp)
                }
            }
            _ => Decoded::Skip(Skip::Udp),
        },
        IpNumber::GRE => decode_gre(payload.payload, ts_ns, wire_len, depth),
        // IP in IP (RFC 2003), IPv6 in IPv4 (RFC 4213) and either in IPv6 (RFC 2473).
        IpNumber::IPV4 | IpNumber::IPV6 => {
            if depth >= MAX_TUNNEL_DEPTH {
                return Decoded::Error(DecodeError::BadTunnel);
            }
            let inner = if payload.ip_number == IpNumber::IPV4 { EtherType::IPV4 } else { EtherType::IPV6 };
            decode_inner(inner.0, payload.payload, ts_ns, wire_len, depth + 1)
        }
        IpNumber::ICMP | IpNumber::IPV6_ICMP => Decoded::Skip(Skip::Icmp),
        _ => Decoded::Skip(Skip::OtherIp),
    }
}

/// Strips a VXLAN (RFC 7348), Geneve (RFC 8926), GTP-U (3GPP TS 29.281) or CAPWAP data
/// (RFC 5415) header and decodes the inner frame.
fn decode_udp_tunnel(port: u16, p: &[u8], ts_ns: u64, wire_len: u32, depth: usize) -> Decoded<'_> {
    if depth >= MAX_TUNNEL_DEPTH || p.len() < 8 {
        return Decoded::Error(DecodeError::BadTunnel);
    }
    let (inner_off, proto) = match port {
        VXLAN_PORT => (8, GRE_PROTO_TEB),
        GENEVE_PORT => {
            let opt_len = usize::from(p[0] & 0x3f) * 4;
            (8 + opt_len, u16::from_be_bytes([p[2], p[3]]))
        }
        GTPU_PORT => match gtpu_payload(p) {
            Some(v) => v,
            None => return Decoded::Skip(Skip::Udp),
        },
        _ => match capwap_payload(p) {
            Some((off, CapwapInner::Ethernet)) => (off, GRE_PROTO_TEB),
            Some((off, CapwapInner::Wlan)) => {
                let Some((skip, ether)) = wlan_data_payload(&p[off..]) else {
                    return Decoded::Skip(Skip::NonIp);
                };
                (off + skip, ether)
            }
            None => return Decoded::Skip(Skip::Udp),
        },
    };
    let Some(inner) = p.get(inner_off..) else {
        return Decoded::Error(DecodeError::BadTunnel);
    };
    decode_inner(proto, inner, ts_ns, wire_len, depth + 1)
}

/// The offset and ethertype of the IP packet a GTP-U G-PDU carries, or `None` for
/// signalling messages and other versions (counted as UDP).
fn gtpu_payload(p: &[u8]) -> Option<(usize, u16)> {
    let flags = p[0];
    // Version 1, protocol type GTP, message type 255 (G-PDU).
    if flags >> 5 != 1 || flags & 0x10 == 0 || p[1] != 0xff {
        return None;
    }
    let mut off = 8;
    if flags & 0x07 != 0 {
        // Sequence number (2), N-PDU number (1), next extension header type (1).
        let mut next = *p.get(off + 3)?;
        off += 4;
        while next != 0 {
            // Each extension: length in 4-byte words, content, next type in its last byte.
            let words = usize::from(*p.get(off)?);
            if words == 0 {
                return None;
            }
            off += words * 4;
            next = *p.get(off - 1)?;
        }
    }
    let ether = match p.get(off)? >> 4 {
        4 => EtherType::IPV4.0,
        6 => EtherType::IPV6.0,
        _ => return None,
    };
    Some((off, ether))
}

/// What a CAPWAP data packet carries.
enum CapwapInner {
    /// An IEEE 802.3 frame (T bit clear).
    Ethernet,
    /// An IEEE 802.11 frame (T bit set, wireless binding 1).
    Wlan,
}

/// The offset of the frame a CAPWAP data packet carries (RFC 5415 section 4.3), or
/// `None` for keep-alives, fragments and other bindings.
fn capwap_payload(p: &[u8]) -> Option<(usize, CapwapInner)> {
    if p[0] != 0 {
        return None; // version 0, no DTLS (type 0)
    }
    let hlen = usize::from(p[1] >> 3) * 4;
    let wbid = (p[2] >> 1) & 0x1f;
    let t = p[2] & 0x01 != 0;
    let (f, k) = (p[3] & 0x80 != 0, p[3] & 0x08 != 0);
    if hlen < 8 || hlen > p.len() || f || k {
        return None;
    }
    match (t, wbid) {
        (false, _) => Some((hlen, CapwapInner::Ethernet)),
        (true, 1) => Some((hlen, CapwapInner::Wlan)),
        _ => None,
    }
}

/// The header length and ethertype of an IEEE 802.11 data frame with an LLC/SNAP
/// header, or `None` for management, control, protected or non-SNAP frames.
fn wlan_data_payload(p: &[u8]) -> Option<(usize, u16)> {
    let (mut fc0, mut fc1) = (*p.first()?, *p.get(1)?);
    let is_data = |b: u8| (b >> 2) & 0x03 == 2 && b.trailing_zeros() >= 2;
    if !is_data(fc0) && is_data(fc1) {
        // Cisco access points send the frame control field byte-swapped.
        (fc0, fc1) = (fc1, fc0);
    }
    let (kind, subtype) = ((fc0 >> 2) & 0x03, fc0 >> 4);
    if kind != 2 || fc1 & 0x40 != 0 || subtype & 0x04 != 0 {
        return None; // not data, protected, or a null frame
    }
    let mut len = 24;
    if fc1 & 0x03 == 0x03 {
        len += 6; // fourth address (WDS)
    }
    if subtype & 0x08 != 0 {
        len += 2; // QoS control
        if fc1 & 0x80 != 0 {
            len += 4; // HT control
        }
    }
    let snap = p.get(len..len + 8)?;
    if snap[..6] != [0xaa, 0xaa, 0x03, 0, 0, 0] {
        return None;
    }
    Some((len + 8, u16::from_be_bytes([snap[6], snap[7]])))
}

/// Strips a GRE header (RFC 2784/2890) and any ERSPAN II/III header.
fn decode_gre(p: &[u8], ts_ns: u64, wire_len: u32, depth: usize) -> Decoded<'_> {
    if depth >= MAX_TUNNEL_DEPTH || p.len() < 4 {
        return Decoded::Error(DecodeError::BadTunnel);
    }
    let flags = p[0];
    let proto = u16::from_be_bytes([p[2], p[3]]);
    let mut off = 4;
    if flags & 0x80 != 0 {
        off += 4; // checksum + reserved
    }
    if flags & 0x20 != 0 {
        off += 4; // key
    }
    if flags & 0x10 != 0 {
        off += 4; // sequence number
    }
    let Some(mut inner) = p.get(off..) else {
        return Decoded::Error(DecodeError::BadTunnel);
    };
    let proto = match proto {
        GRE_PROTO_ERSPAN2 => {
            let Some(rest) = inner.get(8..) else {
                return Decoded::Error(DecodeError::BadTunnel);
            };
            inner = rest;
            GRE_PROTO_TEB
        }
        GRE_PROTO_ERSPAN3 => {
            // 12-byte header, plus an 8-byte platform sub-header when the O bit is set.
            let Some(&b11) = inner.get(11) else {
                return Decoded::Error(DecodeError::BadTunnel);
            };
            let skip = if b11 & 0x01 != 0 { 20 } else { 12 };
            let Some(rest) = inner.get(skip..) else {
                return Decoded::Error(DecodeError::BadTunnel);
            };
            inner = rest;
            GRE_PROTO_TEB
        }
        other => other,
    };
    decode_inner(proto, inner, ts_ns, wire_len, depth + 1)
}

fn decode_inner(proto: u16, inner: &[u8], ts_ns: u64, wire_len: u32, depth: usize) -> Decoded<'_> {
    let sliced = if proto == GRE_PROTO_TEB {
        match ethernet_payload(inner) {
            Ok((ether, rest)) => sliced_ether(ether, rest),
            Err(_) => return Decoded::Error(DecodeError::BadTunnel),
        }
    } else if proto == EtherType::IPV4.0 || proto == EtherType::IPV6.0 {
        LaxSlicedPacket::from_ether_type(EtherType(proto), inner)
    } else {
        return Decoded::Skip(Skip::OtherIp);
    };
    decode_sliced(&sliced, ts_ns, wire_len, depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(10).expect("vlan id"))
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .tcp(40000, 443, 1000, 65535)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("build packet");
        out
    }

    #[test]
    fn decodes_vlan_ipv4_tcp() {
        let f = tcp_frame(b"hello");
        let Decoded::Tcp(p) = decode_frame(LinkType::Ethernet, 7, f.len() as u32, &f) else {
            panic!("expected tcp");
        };
        assert_eq!(p.sport, 40000);
        assert_eq!(p.dport, 443);
        assert_eq!(p.seq, 1000);
        assert!(p.flags.has(TcpFlags::SYN));
        assert_eq!(p.payload, b"hello");
        assert!(!p.truncated);
    }

    #[test]
    fn truncated_frames_never_panic() {
        let f = tcp_frame(b"hello world");
        for cut in 0..f.len() {
            let _ = decode_frame(LinkType::Ethernet, 0, f.len() as u32, &f[..cut]);
            let _ = decode_frame(LinkType::Raw, 0, f.len() as u32, &f[..cut]);
            let _ = decode_frame(LinkType::LinuxSll, 0, f.len() as u32, &f[..cut]);
            let _ = decode_frame(LinkType::Null, 0, f.len() as u32, &f[..cut]);
        }
        // Cut inside the TCP payload: still TCP, flagged truncated.
        match decode_frame(LinkType::Ethernet, 0, f.len() as u32, &f[..f.len() - 3]) {
            Decoded::Tcp(p) => assert!(p.truncated),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(decode_frame(LinkType::Ethernet, 0, 0, &f[..10]), Decoded::Error(DecodeError::TruncatedLink)));
    }

    #[test]
    fn udp_and_ipv6_are_classified() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv6([0x20; 16], [0x21; 16], 64).udp(5353, 53);
        let mut f = Vec::new();
        b.write(&mut f, b"q").expect("build");
        assert!(matches!(decode_frame(LinkType::Ethernet, 0, 0, &f), Decoded::Skip(Skip::Udp)));
    }

    /// An IPv4 TCP packet without a link layer.
    fn ip_tcp() -> Vec<u8> {
        let b = PacketBuilder::ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64).tcp(40000, 443, 1000, 65535);
        let mut out = Vec::new();
        b.write(&mut out, b"x").expect("build");
        out
    }

    #[test]
    fn ipv4_total_length_under_its_header_is_a_counted_error() {
        // (0 is what segmentation offload writes: the length comes from the capture, decoded.)
        for total in [1u16, 10, 19] {
            let mut ip = ip_tcp();
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            let f = eth(0x0800, &ip);
            let got = decode_frame(LinkType::Ethernet, 0, 0, &f);
            assert!(matches!(got, Decoded::Error(DecodeError::BadIpHeader)), "total length {total}: {got:?}");
            let got = decode_frame(LinkType::Raw, 0, 0, &ip);
            assert!(matches!(got, Decoded::Error(DecodeError::BadIpHeader)), "raw, total length {total}: {got:?}");
        }
    }

    fn expect_tcp(f: &[u8]) {
        match decode_frame(LinkType::Ethernet, 0, 0, f) {
            Decoded::Tcp(p) => assert_eq!((p.sport, p.dport, p.payload), (40000, 443, b"x".as_slice())),
            other => panic!("expected the inner tcp, got {other:?}"),
        }
    }

    fn eth(ether: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![2; 12];
        f.extend_from_slice(&ether.to_be_bytes());
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn span_port_tags_and_labels_are_walked() {
        // VLAN, then Cisco metadata (SGT 2), then IPv4: as a TrustSec span port sends it.
        let mut cmd = vec![0x00, 0x0a, 0x89, 0x09, 0x01, 0x01, 0x00, 0x01, 0x00, 0x02, 0x08, 0x00];
        cmd.extend_from_slice(&ip_tcp());
        expect_tcp(&eth(0x8100, &cmd));
        // Two MPLS labels, the second with bottom-of-stack.
        let mut mpls = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
        mpls.extend_from_slice(&ip_tcp());
        expect_tcp(&eth(0x8847, &mpls));
        // Cut inside a tag: a counted link error, not a panic.
        let f = eth(0x8100, &cmd);
        for cut in 0..20 {
            let _ = decode_frame(LinkType::Ethernet, 0, 0, &f[..cut]);
        }
        assert!(matches!(decode_frame(LinkType::Ethernet, 0, 0, &f[..17]), Decoded::Error(DecodeError::TruncatedLink)));
    }

    #[test]
    fn ip_in_ip_and_mobile_and_wireless_tunnels_are_stripped() {
        // IPv4 in IPv6 (4in6).
        let outer = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv6([0x20; 16], [0x21; 16], 64);
        let mut f = Vec::new();
        outer.write(&mut f, IpNumber::IPV4, &ip_tcp()).expect("build");
        expect_tcp(&f);
        // GTP-U G-PDU with a sequence number and one extension header.
        let mut gtp = vec![0x32, 0xff, 0, 0, 0, 0, 0, 1, 0, 7, 0, 0x85, 1, 0, 0, 0];
        let inner = ip_tcp();
        gtp[2..4].copy_from_slice(&((inner.len() + 8) as u16).to_be_bytes());
        gtp.extend_from_slice(&inner);
        let b =
            PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([198, 18, 0, 9], [198, 18, 0, 10], 64).udp(2152, GTPU_PORT);
        let mut f = Vec::new();
        b.write(&mut f, &gtp).expect("build");
        expect_tcp(&f);
        // CAPWAP data carrying an 802.11 QoS data frame, frame control byte-swapped.
        let mut cw = vec![0x00, 0x20, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        cw.extend_from_slice(&[0x01, 0x88, 0, 0]);
        cw.extend_from_slice(&[7; 18]);
        cw.extend_from_slice(&[0, 0, 0, 0]);
        cw.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        cw.extend_from_slice(&inner);
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([198, 18, 0, 9], [198, 18, 0, 10], 64)
            .udp(41000, CAPWAP_DATA_PORT);
        let mut f = Vec::new();
        b.write(&mut f, &cw).expect("build");
        expect_tcp(&f);
        // A GTP signalling message is UDP, not a tunnel.
        let b =
            PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([198, 18, 0, 9], [198, 18, 0, 10], 64).udp(2152, GTPU_PORT);
        let mut f = Vec::new();
        b.write(&mut f, &[0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]).expect("build");
        assert!(matches!(decode_frame(LinkType::Ethernet, 0, 0, &f), Decoded::Skip(Skip::Udp)));
    }

    #[test]
    fn vxlan_inner_tcp_is_decoded() {
        let inner = tcp_frame(b"x");
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vx.extend_from_slice(&inner);
        let b =
            PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([198, 18, 0, 9], [198, 18, 0, 10], 64).udp(50000, VXLAN_PORT);
        let mut f = Vec::new();
        b.write(&mut f, &vx).expect("build");
        let Decoded::Tcp(p) = decode_frame(LinkType::Ethernet, 0, 0, &f) else {
            panic!("expected inner tcp");
        };
        assert_eq!(p.dport, 443);
    }
}
