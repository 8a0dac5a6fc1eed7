//! TLS stage: record scanning and handshake parsing (ClientHello, ServerHello,
//! Certificate with x509 parsing, key exchange) of a real TLS 1.2 handshake, and the
//! JA3/JA4 fingerprints of its ClientHello.
//!
//! Run with `cargo bench -p nightjar-benches --bench tls_parse`.
//! Results: see `benches/RESULTS.md`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nightjar::decode::tls::{Side, TlsInfo, TlsStream};
use nightjar::fingerprint::{Transport, ja3, ja4};
use nightjar_benches::fixture_paths;

/// The reassembled client and server byte streams of the curl TLS 1.2 fixture.
fn handshake_streams() -> (Vec<u8>, Vec<u8>) {
    use nightjar::decode::{Decoded, decode_frame};
    use nightjar::flow::reassembly::Reassembler;
    let path = fixture_paths().into_iter().find(|p| p.ends_with("ssl-curl.pcap")).expect("ssl-curl fixture");
    let frames = nightjar_benches::load_frames(&[path]).expect("load");
    let mut client = Vec::new();
    let mut server = Vec::new();
    let (mut rc, mut rs) = (Reassembler::new(1 << 20), Reassembler::new(1 << 20));
    for f in &frames {
        if let Decoded::Tcp(p) = decode_frame(f.link, f.ts_ns, f.data.len() as u32, &f.data) {
            let (r, buf) = if p.dport == 443 { (&mut rc, &mut client) } else { (&mut rs, &mut server) };
            if p.flags.has(nightjar::decode::TcpFlags::SYN) {
                r.syn(p.seq);
            }
            r.push(p.seq, p.payload, &mut |b| buf.extend_from_slice(b));
        }
    }
    (client, server)
}

fn bench(c: &mut Criterion) {
    let (client, server) = handshake_streams();
    let mut g = c.benchmark_group("tls_parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("handshake", |b| {
        b.iter(|| {
            let mut info = TlsInfo::default();
            let mut cs = TlsStream::new(16384);
            let mut ss = TlsStream::new(16384);
            cs.feed(Side::Client, &client, &mut info, &mut |_| {});
            ss.feed(Side::Server, &server, &mut info, &mut |_| {});
            assert!(info.leaf.is_some());
            info
        });
    });
    let mut info = TlsInfo::default();
    TlsStream::new(16384).feed(Side::Client, &client, &mut info, &mut |_| {});
    let ch = info.client_hello().expect("client hello").clone();
    g.bench_function("ja3_ja4", |b| b.iter(|| (ja3(&ch), ja4(&ch, Transport::Tcp))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
