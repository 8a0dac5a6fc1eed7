//! Stage 2: decode. Takes one captured frame and yields a borrowed [`Packet`] view of
//! its TCP segment (addresses, ports, flags, sequence numbers, payload), or a counted
//! [`Skip`] (not TCP, IP fragment) or [`DecodeError`] (malformed).
//!
//! Header parsing is done by `etherparse` in lax mode, so frames cut short by a
//! capture snap length still yield what they carry. Tunnels that span ports commonly
//! deliver (GRE, ERSPAN II/III, VXLAN, Geneve) are stripped, up to [`MAX_TUNNEL_DEPTH`].
//! This module must not allocate: it only borrows from the frame. Application-layer
//! parsers live in [`tls`] and [`http`].

pub mod http;
pub mod tls;

use std::net::IpAddr;

use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::capture::LinkType;

/// How many tunnel layers are stripped before a frame is given up on.
pub const MAX_TUNNEL_DEPTH: usize = 3;
/// VXLAN UDP port (RFC 7348 section 5).
const VXLAN_PORT: u16 = 4789;
/// Geneve UDP port (RFC 8926 section 3.3).
const GENEVE_PORT: u16 = 6081;
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

/// Frames that are well formed but not for the TCP pipeline. Counted, not errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// UDP datagram.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// Another IP protocol.
    OtherIp,
    /// ARP or another non-IP ethertype.
    NonIp,
    /// An IP fragment (fragments are counted, not reassembled).
    Fragment,
}

impl Skip {
    /// Every variant, for metric registration.
    pub const ALL: [Skip; 5] = [Skip::Udp, Skip::Icmp, Skip::OtherIp, Skip::NonIp, Skip::Fragment];

    /// Bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Udp => "udp",
            Skip::Icmp => "icmp",
            Skip::OtherIp => "other_ip",
            Skip::NonIp => "non_ip",
            Skip::Fragment => "ip_fragment",
        }
    }
}

/// Why a frame could not be decoded. A small `Copy` code, counted per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The frame ends inside a link-layer header.
    TruncatedLink,
    /// The frame ends inside, or has an invalid, IP header.
    BadIpHeader,
    /// The frame ends inside, or has an invalid, TCP header.
    BadTcpHeader,
    /// The link type of the capture is not supported.
    UnsupportedLinkType,
    /// Tunnel headers nest deeper than [`MAX_TUNNEL_DEPTH`] or are malformed.
    BadTunnel,
}

impl DecodeError {
    /// Every variant, for metric registration.
    pub const ALL: [DecodeError; 5] = [
        DecodeError::TruncatedLink,
        DecodeError::BadIpHeader,
        DecodeError::BadTcpHeader,
        DecodeError::UnsupportedLinkType,
        DecodeError::BadTunnel,
    ];

    /// Bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::TruncatedLink => "truncated_link",
            DecodeError::BadIpHeader => "bad_ip_header",
            DecodeError::BadTcpHeader => "bad_tcp_header",
            DecodeError::UnsupportedLinkType => "unsupported_link_type",
            DecodeError::BadTunnel => "bad_tunnel",
        }
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
        LinkType::Ethernet => match LaxSlicedPacket::from_ethernet(data) {
            Ok(s) => s,
            Err(_) => return Decoded::Error(DecodeError::TruncatedLink),
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
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[16..])
        }
        LinkType::LinuxSll2 => {
            // Linux cooked header v2: 20 bytes, protocol in the first two.
            let Some(hdr) = data.get(..20) else {
                return Decoded::Error(DecodeError::TruncatedLink);
            };
            let proto = u16::from_be_bytes([hdr[0], hdr[1]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[20..])
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
                if dp == VXLAN_PORT || dp == GENEVE_PORT {
                    decode_udp_tunnel(dp, udp.payload(), ts_ns, wire_len, depth)
                } else if sp == VXLAN_PORT || sp == GENEVE_PORT {
                    decode_udp_tunnel(sp, udp.payload(), ts_ns, wire_len, depth)
                } else {
                    Decoded::Skip(Skip::Udp)
                }
            }
            _ => Decoded::Skip(Skip::Udp),
        },
        IpNumber::GRE => decode_gre(payload.payload, ts_ns, wire_len, depth),
        IpNumber::ICMP | IpNumber::IPV6_ICMP => Decoded::Skip(Skip::Icmp),
        _ => Decoded::Skip(Skip::OtherIp),
    }
}

/// Strips a VXLAN (RFC 7348) or Geneve (RFC 8926) header and decodes the inner frame.
fn decode_udp_tunnel(port: u16, p: &[u8], ts_ns: u64, wire_len: u32, depth: usize) -> Decoded<'_> {
    if depth >= MAX_TUNNEL_DEPTH || p.len() < 8 {
        return Decoded::Error(DecodeError::BadTunnel);
    }
    let (inner_off, proto) = if port == VXLAN_PORT {
        (8, GRE_PROTO_TEB)
    } else {
        let opt_len = usize::from(p[0] & 0x3f) * 4;
        (8 + opt_len, u16::from_be_bytes([p[2], p[3]]))
    };
    let Some(inner) = p.get(inner_off..) else {
        return Decoded::Error(DecodeError::BadTunnel);
    };
    decode_inner(proto, inner, ts_ns, wire_len, depth + 1)
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
        match LaxSlicedPacket::from_ethernet(inner) {
            Ok(s) => s,
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
