//! Flow table, reassembly and the application parsers behind it: the input is cut into
//! TCP segments between two fixed hosts (direction, flags and sequence numbers taken
//! from the bytes), then features and events are computed for every record.
#![no_main]
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use nightjar::config::FlowConfig;
use nightjar::decode::{Packet, TcpFlags};
use nightjar::flow::FlowTable;
use nightjar::stats::Stats;

fuzz_target!(|data: &[u8]| {
    let cfg = FlowConfig { head_packets: 16, reassembly_bytes: 512, handshake_bytes: 1024, ..FlowConfig::default() };
    let mut t = FlowTable::new(&cfg, 8);
    let mut st = Stats::default();
    let mut out = Vec::new();
    let (a, b) = (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
    let mut rest = data;
    let mut ts = 0u64;
    while rest.len() >= 4 {
        let (hdr, tail) = rest.split_at(4);
        let len = usize::from(hdr[3]).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        ts += u64::from(hdr[2]) * 1_000_000;
        let from_a = hdr[0] & 1 == 0;
        let (src, dst, sport, dport) = if from_a { (a, b, 40000, 443) } else { (b, a, 443, 40000) };
        let seq = u32::from(hdr[1]) * 64;
        let pkt = Packet { ts_ns: ts, src, dst, sport, dport, seq, ack: 0, flags: TcpFlags(hdr[0] >> 1), payload, wire_len: 64, truncated: false };
        t.process(&pkt, &mut st, &mut out);
    }
    t.flush(&mut st, &mut out);
    for rec in &out {
        let fv = nightjar::features::extract(&rec);
        let mut buf = Vec::new();
        nightjar::export::event::write_event(rec, "1:x", &nightjar::inference::Verdict::unknown(), &mut buf);
        assert!(fv.static_features.iter().all(|v| v.is_finite()));
    }
});
