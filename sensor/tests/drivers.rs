//! One worker loop for every driver: inline replay (one worker reading the files) and
//! sharded replay (the reader decodes each frame once and hands the packets on) count
//! the same packets, skips, decode errors and flows, report the same broken files, and
//! write the same lines, whatever the worker count. The capture mixes what the reader
//! must count itself (UDP, ICMP, fragments, garbage, other link types) with TCP flows
//! spread over the shards, and the file list holds a cut file and a missing one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use etherparse::PacketBuilder;
use nightjar::config::Config;
use nightjar::export::lines::WriteSink;
use nightjar::runtime::{Sinks, Summary, replay};

/// A sink that keeps what it is given.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<u8>>>);

impl Write for Kept {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("kept").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn pcap(path: &Path, linktype: u32, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32 / 100).to_le_bytes());
        out.extend_from_slice(&((i as u32 % 100) * 1000).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("write pcap");
}

fn build(b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).expect("frame");
    v
}

/// 40 HTTP and TLS-looking flows on many client ports, between non-TCP frames of every
/// kind the reader counts.
fn mixed_frames(net: u8) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..40u16 {
        let (c, s) = ([198, 18, net, 1 + (i % 7) as u8], [198, 19, net, 2]);
        let cport = 40_000 + i * 13;
        let sport = if i % 2 == 0 { 80 } else { 443 };
        let eth = || PacketBuilder::ethernet2([2; 6], [4; 6]);
        let payload: Vec<u8> = if sport == 80 {
            format!("GET /item/{i}?q=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: t/{i}\r\n\r\n").into_bytes()
        } else {
            vec![0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]
        };
        frames.push(build(eth().ipv4(c, s, 64).tcp(cport, sport, 1000, 65535).syn(), &[]));
        frames.push(build(eth().ipv4(s, c, 64).tcp(sport, cport, 5000, 65535).syn().ack(1001), &[]));
        frames.push(build(eth().ipv4(c, s, 64).tcp(cport, sport, 1001, 65535).ack(5001).psh(), &payload));
        // Between the flows: UDP, ICMP, garbage and a cut IP header.
        let mut udp = Vec::new();
        eth().ipv4(c, s, 64).udp(5353, 5353).write(&mut udp, b"dns").expect("udp");
        frames.push(udp);
        let mut icmp = Vec::new();
        eth().ipv4(c, s, 64).icmpv4_echo_request(1, i).write(&mut icmp, b"ping").expect("icmp");
        frames.push(icmp);
        frames.push(vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 2]);
        let mut cut = build(eth().ipv4(c, s, 64).tcp(cport, sport, 2000, 65535).ack(5001), &[]);
        cut.truncate(20);
        frames.push(cut);
        frames.push(build(
            eth().ipv4(c, s, 64).tcp(cport, sport, 1001 + payload.len() as u32, 65535).fin().ack(5001),
            &[],
        ));
    }
    frames
}

fn run(files: &[PathBuf], workers: usize) -> (Summary, Vec<String>, Vec<String>) {
    let mut cfg = Config::default();
    cfg.model.enabled = false;
    cfg.runtime.workers = workers;
    let (events, features) = (Kept::default(), Kept::default());
    let sinks = Sinks {
        events: Some(Box::new(WriteSink(events.clone()))),
        features: Some(Box::new(WriteSink(features.clone()))),
        eve: None,
    };
    let summary = replay(&cfg, files, sinks, None, None, None, &mut |_, _| {}).expect("replay");
    let lines = |k: &Kept| {
        let text = String::from_utf8(k.0.lock().expect("kept").clone()).expect("utf-8");
        let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    (summary, lines(&events), lines(&features))
}

#[test]
fn every_driver_counts_and_writes_the_same() {
    let dir = tempfile::tempdir().expect("tmp");
    let mixed = dir.path().join("mixed.pcap");
    pcap(&mixed, 1, &mixed_frames(0));
    // TCP frames under a link type no decoder knows: counted by the reader.
    let unknown_link = dir.path().join("unknown-link.pcap");
    pcap(&unknown_link, 147, &mixed_frames(1)[..6]);
    // Other flows, in a file cut in the middle of a record.
    let cut = dir.path().join("cut.pcap");
    pcap(&cut, 1, &mixed_frames(2));
    let bytes = std::fs::read(&cut).expect("read");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 5]).expect("write cut");
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let files = vec![
        data.join("tls12.pcap"),
        dir.path().join("missing.pcap"),
        data.join("http1-with-cookies.pcapng"),
        data.join("ssl-curl.pcap"),
        mixed,
        unknown_link,
        cut,
    ];

    let (inline, inline_events, inline_features) = run(&files, 1);
    let s = &inline.stats;
    assert!(s.tcp_packets > 0 && s.flows_created >= 40, "{s:?}");
    assert!(s.skipped.iter().sum::<u64>() >= 80, "UDP and ICMP are counted as skipped: {s:?}");
    assert!(s.decode_errors.iter().sum::<u64>() >= 40, "garbage and cut headers are counted: {s:?}");
    assert_eq!(inline.file_errors.len(), 2, "the missing and the cut file: {:?}", inline.file_errors);
    assert_eq!(inline_events.len() as u64, s.events);
    assert!(!inline_features.is_empty());

    for workers in [2, 3] {
        let (sharded, events, features) = run(&files, workers);
        let t = &sharded.stats;
        let same = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}: 1 worker vs {workers}");
        };
        same("packets", &s.packets, &t.packets);
        same("bytes", &s.bytes, &t.bytes);
        same("tcp packets", &s.tcp_packets, &t.tcp_packets);
        same("skipped", &s.skipped, &t.skipped);
        same("decode errors", &s.decode_errors, &t.decode_errors);
        same("truncated payloads", &s.truncated_payloads, &t.truncated_payloads);
        same("flows", &s.flows_created, &t.flows_created);
        same("TLS flows", &s.tls_flows, &t.tls_flows);
        same("HTTP flows", &s.http_flows, &t.http_flows);
        same("events", &s.events, &t.events);
        same("file errors", &inline.file_errors, &sharded.file_errors);
        assert_eq!(inline_features, features, "feature lines: 1 worker vs {workers}");
        // Events name the flow by an id that depends on the shard; compare them without it.
        let strip = |v: &[String]| -> Vec<String> {
            let mut out: Vec<String> = v
                .iter()
                .map(|l| {
                    let mut j: serde_json::Value = serde_json::from_str(l).expect("JSON");
                    j.as_object_mut().expect("object").remove("flow_id");
                    j.to_string()
                })
                .collect();
            out.sort();
            out
        };
        assert_eq!(strip(&inline_events), strip(&events), "events: 1 worker vs {workers}");
    }
}
