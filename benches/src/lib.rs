//! Shared helpers of the benchmarks: load the bundled captures into memory, and build
//! large synthetic captures by cloning their real flows onto fresh addresses and ports.
//!
//! The clones keep every byte of the original payloads (real ClientHellos, certificate
//! chains, HTTP requests, application data), so parsers do the same work as on the
//! originals; only IPv4 addresses, TCP ports and timestamps change.

use std::path::{Path, PathBuf};

#[cfg(feature = "ebpf")]
pub mod own_xsk;

use nightjar::capture::{LinkType, PacketSource, PcapFileSource};

/// One captured frame held in memory.
#[derive(Clone, Debug)]
pub struct OwnedFrame {
    /// Timestamp, ns since the epoch.
    pub ts_ns: u64,
    /// Link type.
    pub link: LinkType,
    /// Frame bytes.
    pub data: Vec<u8>,
}

/// The bundled capture fixtures of the sensor crate.
pub fn fixture_paths() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sensor/tests/data");
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"));
    v.sort();
    v
}

/// Reads every frame of `paths` into memory.
pub fn load_frames(paths: &[PathBuf]) -> anyhow::Result<Vec<OwnedFrame>> {
    let mut out = Vec::new();
    for p in paths {
        let mut src = PcapFileSource::open(p)?;
        while src.read_batch(1024, &mut |f| {
            out.push(OwnedFrame { ts_ns: f.ts_ns, link: f.link, data: f.data.to_vec() });
        })? > 0
        {}
    }
    Ok(out)
}

/// One flow of a template capture: its frames, with offsets from the flow's start.
#[derive(Clone, Debug)]
pub struct TemplateFlow {
    frames: Vec<(u64, Vec<u8>)>,
    client: ([u8; 4], u16),
}

/// Splits Ethernet/IPv4/TCP frames into flows (by symmetric 4-tuple), keeping the
/// frames in capture order. Other frames are ignored.
pub fn template_flows(frames: &[OwnedFrame]) -> Vec<TemplateFlow> {
    use std::collections::HashMap;
    let mut by_key: HashMap<([u8; 4], u16, [u8; 4], u16), usize> = HashMap::new();
    let mut flows: Vec<(u64, TemplateFlow)> = Vec::new();
    for f in frames {
        if f.link != LinkType::Ethernet {
            continue;
        }
        let Some((src, sport, dst, dport)) = ipv4_tcp_endpoints(&f.data) else { continue };
        let key = if (src, sport) <= (dst, dport) { (src, sport, dst, dport) } else { (dst, dport, src, sport) };
        let idx = *by_key.entry(key).or_insert_with(|| {
            flows.push((f.ts_ns, TemplateFlow { frames: Vec::new(), client: (src, sport) }));
            flows.len() - 1
        });
        let (start, flow) = &mut flows[idx];
        flow.frames.push((f.ts_ns.saturating_sub(*start), f.data.clone()));
    }
    flows.into_iter().map(|(_, f)| f).collect()
}

impl TemplateFlow {
    /// The same flow with packet `k` sent `gaps_ns[k % gaps_ns.len()]` after packet
    /// `k - 1` (a known, uneven spacing for timing tests). An empty `gaps_ns` keeps the
    /// flow as it is.
    #[must_use]
    pub fn respaced(&self, gaps_ns: &[u64]) -> TemplateFlow {
        let mut out = self.clone();
        if gaps_ns.is_empty() {
            return out;
        }
        let mut t = 0;
        for (k, (off, _)) in out.frames.iter_mut().enumerate() {
            if k > 0 {
                t += gaps_ns[k % gaps_ns.len()];
            }
            *off = t;
        }
        out
    }

    /// The same flow with the client's first payload segment cut in two: the first `at`
    /// bytes, then the rest 1 µs later (sequence numbers and IP lengths rewritten,
    /// checksums stale as in `synth`): the evasion of a ClientHello or request line whose
    /// first segment is too short to recognise. A flow without client payload, or whose
    /// first payload is not longer than `at`, is returned unchanged.
    #[must_use]
    pub fn split_first_payload(&self, at: usize) -> TemplateFlow {
        let mut out = self.clone();
        let Some(pos) = self
            .frames
            .iter()
            .position(|(_, f)| payload_range(f).is_some_and(|(start, end)| end - start > at && self.sent_by_client(f)))
        else {
            return out;
        };
        let (off, frame) = &self.frames[pos];
        let Some((start, end)) = payload_range(frame) else { return out };
        let ihl = usize::from(frame[IP_OFF] & 0x0f) * 4;
        let tcp = IP_OFF + ihl;
        let piece = |from: usize, to: usize, seq_add: u32| {
            let mut f = frame[..start].to_vec();
            f.extend_from_slice(&frame[from..to]);
            let ip_len = (f.len() - IP_OFF) as u16;
            f[IP_OFF + 2..IP_OFF + 4].copy_from_slice(&ip_len.to_be_bytes());
            let seq = u32::from_be_bytes([f[tcp + 4], f[tcp + 5], f[tcp + 6], f[tcp + 7]]).wrapping_add(seq_add);
            f[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
            f
        };
        out.frames[pos] = (*off, piece(start, start + at, 0));
        out.frames.insert(pos + 1, (off + 1_000, piece(start + at, end, at as u32)));
        out
    }

    fn sent_by_client(&self, frame: &[u8]) -> bool {
        ipv4_tcp_endpoints(frame).is_some_and(|(src, sport, _, _)| (src, sport) == self.client)
    }
}

/// The TCP payload's byte range in an Ethernet/IPv4 frame (by the IP length).
fn payload_range(frame: &[u8]) -> Option<(usize, usize)> {
    let ihl = usize::from(*frame.get(IP_OFF)? & 0x0f) * 4;
    let ip_len = usize::from(u16::from_be_bytes([*frame.get(IP_OFF + 2)?, *frame.get(IP_OFF + 3)?]));
    let tcp = IP_OFF + ihl;
    let doff = usize::from(*frame.get(tcp + 12)? >> 4) * 4;
    let (start, end) = (tcp + doff, (IP_OFF + ip_len).min(frame.len()));
    (start < end).then_some((start, end))
}

/// Offsets of the IPv4 header in an Ethernet frame without VLAN tags.
const IP_OFF: usize = 14;

fn ipv4_tcp_endpoints(frame: &[u8]) -> Option<([u8; 4], u16, [u8; 4], u16)> {
    let p = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    if !p.link_exts.is_empty() {
        return None;
    }
    let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(tcp))) = (p.net, p.transport)
    else {
        return None;
    };
    Some((ip.header().source(), tcp.source_port(), ip.header().destination(), tcp.destination_port()))
}

/// Rewrites a template frame for clone `n`: client 198.18.x.y, server 198.19.x.y, client
/// port from `n`. Checksums are left stale (the sensor does not verify them).
fn rewrite(frame: &[u8], client: ([u8; 4], u16), n: u64) -> Vec<u8> {
    let mut f = frame.to_vec();
    let ihl = usize::from(f[IP_OFF] & 0x0f) * 4;
    let tcp = IP_OFF + ihl;
    let from_client = f[IP_OFF + 12..IP_OFF + 16] == client.0 && u16::from_be_bytes([f[tcp], f[tcp + 1]]) == client.1;
    let c_ip = [198, 18, (n >> 8) as u8, n as u8];
    let s_ip = [198, 19, (n >> 16) as u8, (n >> 24) as u8];
    let c_port = 1024 + (n % 64_000) as u16;
    let (src, dst) = if from_client { (c_ip, s_ip) } else { (s_ip, c_ip) };
    f[IP_OFF + 12..IP_OFF + 16].copy_from_slice(&src);
    f[IP_OFF + 16..IP_OFF + 20].copy_from_slice(&dst);
    let port_off = if from_client { tcp } else { tcp + 2 };
    f[port_off..port_off + 2].copy_from_slice(&c_port.to_be_bytes());
    f
}

/// Builds a synthetic capture: `copies` clones of every template flow. Clone `i` of all
/// templates starts at `i * spacing_ns`; with `spacing_ns` smaller than a flow's life,
/// many flows are open at once. Frames come out in timestamp order.
pub fn synth(templates: &[TemplateFlow], copies: u64, spacing_ns: u64, base_ts: u64) -> Vec<OwnedFrame> {
    let mut out = Vec::new();
    let mut n = 0u64;
    for i in 0..copies {
        for t in templates {
            let start = base_ts + i * spacing_ns;
            for (off, data) in &t.frames {
                out.push(OwnedFrame { ts_ns: start + off, link: LinkType::Ethernet, data: rewrite(data, t.client, n) });
            }
            n += 1;
        }
    }
    out.sort_by_key(|f| f.ts_ns);
    out
}

/// Writes frames as a legacy pcap file (nanosecond timestamps, Ethernet).
pub fn write_pcap(path: &Path, frames: &[OwnedFrame]) -> anyhow::Result<()> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header = PcapHeader { ts_resolution: pcap_file::TsResolution::NanoSecond, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(file, header)?;
    for f in frames {
        let ts = std::time::Duration::from_nanos(f.ts_ns);
        w.write_packet(&PcapPacket::new(ts, f.data.len() as u32, &f.data))?;
    }
    Ok(())
}
