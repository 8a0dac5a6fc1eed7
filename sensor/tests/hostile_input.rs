//! A hostile-input corpus, generated here from the bundled real TLS flow (curl's
//! ClientHello and the server's hello and certificate, `tests/data/ssl-curl.pcap`) and
//! hand-written HTTP requests: what an attacker shapes to be missed and what real span
//! ports carry. Written as pcaps into a temporary directory and replayed:
//!
//! - first client segments of 1 to 5 bytes (TLS and HTTP), a method split over three;
//! - requests with 65 and 200 headers, a head past 8 KiB;
//! - overlapping segments whose second copy says something else;
//! - a ClientHello of 40 KiB over three TLS records;
//! - the same TLS flow behind QinQ VLAN tags, a Cisco SGT tag, 4in6 and 6in4 tunnels, and
//!   PROXY protocol v1 and v2 headers.
//!
//! Every flow must be recognised as TLS or HTTP with the fingerprint or request fields of
//! the plain flow, and every anomaly counted. Where tshark is on PATH, the JA3, JA3S and
//! request fields it reads from the same files must agree (it does not decode TLS after a
//! PROXY header, and its own overlap policy is not compared); without it the tshark part
//! says SKIP.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

use etherparse::{IpNumber, PacketBuilder};
use nightjar::capture::LinkType;
use nightjar::config::Config;
use nightjar::decode::{Decoded, decode_frame};
use nightjar::fingerprint::{ja3, ja3s};
use nightjar::runtime::replay_records;
use nightjar::stats::Stats;
use nightjar_benches::{OwnedFrame, write_pcap};

/// How a flow's IP packets are framed on the wire.
#[derive(Clone, Copy, Debug)]
enum Wrap {
    Plain,
    QinQ,
    Sgt,
    FourInSix,
    SixInFour,
}

/// One TCP conversation, built packet by packet (IP layer; framed by `Wrap`).
struct Conv {
    client: IpAddr,
    server: IpAddr,
    cport: u16,
    sport: u16,
    cseq: u32,
    sseq: u32,
    ts: u64,
    wrap: Wrap,
    frames: Vec<OwnedFrame>,
}

impl Conv {
    fn open(n: u16, sport: u16, wrap: Wrap, ts: u64) -> Self {
        let (client, server) = if matches!(wrap, Wrap::SixInFour) {
            (
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1)),
            )
        } else {
            (IpAddr::V4(Ipv4Addr::new(198, 18, 0, n as u8)), IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1)))
        };
        let mut c =
            Self { client, server, cport: 40_000 + n, sport, cseq: 1_000, sseq: 90_000, ts, wrap, frames: Vec::new() };
        c.packet(true, "S", c.cseq - 1, b"");
        c.packet(false, "SA", c.sseq - 1, b"");
        c.packet(true, "A", c.cseq, b"");
        c
    }

    fn packet(&mut self, from_client: bool, flags: &str, seq: u32, payload: &[u8]) {
        self.ts += 20_000;
        let (src, dst, sp, dp) = if from_client {
            (self.client, self.server, self.cport, self.sport)
        } else {
            (self.server, self.client, self.sport, self.cport)
        };
        let ack = if from_client { self.sseq } else { self.cseq };
        let ip = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
            _ => unreachable!("one family per conversation"),
        };
        let mut b = ip.tcp(sp, dp, seq, 65_535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('A') || !flags.contains('S') {
            b = b.ack(ack);
        }
        let mut pkt = Vec::new();
        b.write(&mut pkt, payload).expect("packet");
        let data = frame(self.wrap, &pkt, src.is_ipv4());
        self.frames.push(OwnedFrame { ts_ns: self.ts, link: LinkType::Ethernet, data });
    }

    /// Client bytes in segments of the given sizes (the last takes the rest).
    fn client(&mut self, bytes: &[u8], sizes: &[usize]) {
        let mut at = 0;
        for &n in sizes {
            let end = (at + n).min(bytes.len());
            if end > at {
                self.packet(true, "A", self.cseq, &bytes[at..end]);
                self.cseq = self.cseq.wrapping_add((end - at) as u32);
                at = end;
            }
        }
        for chunk in bytes[at..].chunks(1448) {
            self.packet(true, "A", self.cseq, chunk);
            self.cseq = self.cseq.wrapping_add(chunk.len() as u32);
        }
    }

    /// A client segment at `offset` from the next client byte, without advancing (an
    /// overlap or an out-of-order segment).
    fn client_at(&mut self, offset: i32, bytes: &[u8]) {
        self.packet(true, "A", self.cseq.wrapping_add_signed(offset), bytes);
    }

    fn server(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(1448) {
            self.packet(false, "A", self.sseq, chunk);
            self.sseq = self.sseq.wrapping_add(chunk.len() as u32);
        }
    }

    fn close(mut self) -> Vec<OwnedFrame> {
        self.packet(true, "FA", self.cseq, b"");
        self.cseq += 1;
        self.packet(false, "FA", self.sseq, b"");
        self.sseq += 1;
        self.packet(true, "A", self.cseq, b"");
        self.frames
    }
}

/// An Ethernet frame around an IP packet, with tags or an outer tunnel.
fn frame(wrap: Wrap, ip: &[u8], v4: bool) -> Vec<u8> {
    let ethertype: [u8; 2] = if v4 { [0x08, 0x00] } else { [0x86, 0xdd] };
    let mut f = vec![0x02, 0, 0, 0, 0, 4, 0x02, 0, 0, 0, 0, 2];
    match wrap {
        Wrap::Plain => f.extend_from_slice(&ethertype),
        Wrap::QinQ => {
            f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x07]);
            f.extend_from_slice(&ethertype);
        }
        Wrap::Sgt => {
            // Cisco MetaData: version 1, length 1, option SGT, tag 2, then the ethertype.
            f.extend_from_slice(&[0x89, 0x09, 0x01, 0x01, 0x00, 0x01, 0x00, 0x02]);
            f.extend_from_slice(&ethertype);
        }
        Wrap::FourInSix => {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 0, 4], [2, 0, 0, 0, 0, 2])
                .ipv6(
                    [0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    64,
                )
                .write(&mut out, IpNumber::IPV4, ip)
                .expect("4in6");
            return out;
        }
        Wrap::SixInFour => {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 0, 4], [2, 0, 0, 0, 0, 2])
                .ipv4([198, 18, 9, 1], [198, 18, 9, 2], 64)
                .write(&mut out, IpNumber::IPV6, ip)
                .expect("6in4");
            return out;
        }
    }
    f.extend_from_slice(ip);
    f
}

/// The client's and the server's stream bytes of the bundled curl TLS flow.
fn curl_streams() -> (Vec<u8>, Vec<u8>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ssl-curl.pcap");
    let frames = nightjar_benches::load_frames(&[path.into()]).expect("fixture");
    let (mut c, mut s) = (Vec::new(), Vec::new());
    for f in &frames {
        if let Decoded::Tcp(p) = decode_frame(f.link, f.ts_ns, f.data.len() as u32, &f.data) {
            if p.dport == 443 {
                c.extend_from_slice(p.payload);
            } else {
                s.extend_from_slice(p.payload);
            }
        }
    }
    assert_eq!(c.first(), Some(&0x16), "the fixture's client starts with a ClientHello");
    (c, s)
}

/// The first TLS record of `stream` (the ClientHello) and what follows.
fn first_record(stream: &[u8]) -> (&[u8], &[u8]) {
    let len = 5 + usize::from(u16::from_be_bytes([stream[3], stream[4]]));
    stream.split_at(len)
}

/// `hello` (one record holding a ClientHello) with a padding extension of `pad` bytes,
/// the handshake message split over records of at most 16,384 bytes.
fn padded_hello(hello: &[u8], pad: usize) -> Vec<u8> {
    let mut msg = hello[5..].to_vec();
    // Body: version 2, random 32, session id, cipher suites, compression, extensions.
    let mut at = 4 + 2 + 32;
    at += 1 + usize::from(msg[at]);
    at += 2 + usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
    at += 1 + usize::from(msg[at]);
    let ext_len = usize::from(u16::from_be_bytes([msg[at], msg[at + 1]])) + 4 + pad;
    msg[at..at + 2].copy_from_slice(&(ext_len as u16).to_be_bytes());
    msg.extend_from_slice(&[0x00, 0x15]);
    msg.extend_from_slice(&(pad as u16).to_be_bytes());
    msg.resize(msg.len() + pad, 0);
    let body = (msg.len() - 4) as u32;
    msg[1..4].copy_from_slice(&body.to_be_bytes()[1..]);
    let mut out = Vec::new();
    for part in msg.chunks(16_384) {
        out.extend_from_slice(&[0x16, hello[1], hello[2]]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn request(headers: usize, cookie: usize) -> Vec<u8> {
    let mut r = b"GET /search?q=nightjar HTTP/1.1\r\nHost: shop.example.test\r\nUser-Agent: probe/1.0\r\n".to_vec();
    for i in 0..headers.saturating_sub(2) {
        r.extend_from_slice(format!("X-Pad-{i}: {i}\r\n").as_bytes());
    }
    if cookie > 0 {
        r.extend_from_slice(b"Cookie: c=");
        r.resize(r.len() + cookie, b'a');
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// What one flow must come out as.
#[derive(Clone, Debug)]
struct Want {
    case: &'static str,
    app: &'static str,
    /// HTTP: (method, URI, Host) the sensor must parse.
    http: Option<(&'static str, &'static str, &'static str)>,
    /// TLS: the plain flow's JA3 and JA3S must be reproduced.
    tls: bool,
    /// tshark can be compared on this flow.
    tshark: bool,
}

struct Corpus {
    frames: Vec<OwnedFrame>,
    want: HashMap<u16, Want>,
}

#[expect(clippy::too_many_lines, reason = "one list of cases, read top to bottom")]
fn corpus() -> Corpus {
    let (cstream, sstream) = curl_streams();
    let (hello, client_rest) = first_record(&cstream);
    let mut frames = Vec::new();
    let mut want = HashMap::new();
    let mut n = 0u16;
    let mut next = |case: &'static str, sport: u16, wrap: Wrap| {
        n += 1;
        (Conv::open(n, sport, wrap, 1_700_000_000_000_000_000 + u64::from(n) * 1_000_000_000), case)
    };
    let tls_want = |case, tshark| Want { case, app: "tls", http: None, tls: true, tshark };
    let http_want = |case, uri: &'static str, tshark| Want {
        case,
        app: "http",
        http: Some(("GET", uri, "shop.example.test")),
        tls: false,
        tshark,
    };

    // Split first segments.
    for (k, case) in [(1, "tls first segment 1 byte"), (2, "tls 2"), (3, "tls 3"), (4, "tls 4"), (5, "tls 5")] {
        let (mut c, case) = next(case, 443, Wrap::Plain);
        c.client(hello, &[k]);
        c.server(&sstream);
        c.client(client_rest, &[]);
        want.insert(c.cport, tls_want(case, true));
        frames.extend(c.close());
    }
    for (sizes, case) in
        [(&[1usize][..], "http first segment 1 byte"), (&[2, 1][..], "http method over three segments")]
    {
        let (mut c, case) = next(case, 80, Wrap::Plain);
        c.client(&request(3, 0), sizes);
        c.server(RESPONSE);
        want.insert(c.cport, http_want(case, "/search?q=nightjar", true));
        frames.extend(c.close());
    }
    // Crowded and oversized heads.
    for (headers, cookie, case) in [(65, 0, "65 headers"), (200, 0, "200 headers"), (5, 9_000, "head past 8 KiB")] {
        let (mut c, case) = next(case, 80, Wrap::Plain);
        c.client(&request(headers, cookie), &[]);
        c.server(RESPONSE);
        want.insert(c.cport, http_want(case, "/search?q=nightjar", true));
        frames.extend(c.close());
    }
    // Overlaps: the first copy of every byte wins, in order and out of order.
    {
        // "GET /searc" delivered; then a segment reaching back 5 bytes with another copy of
        // them ("/evil") before the true next bytes: the delivered copy stays.
        let (mut c, case) = next("overlap after delivery", 80, Wrap::Plain);
        let req = request(3, 0);
        c.client(&req[..10], &[]);
        let mut second = b"/evil".to_vec();
        second.extend_from_slice(&req[10..20]);
        c.client_at(-5, &second);
        c.cseq = c.cseq.wrapping_add(10);
        c.client(&req[20..], &[]);
        c.server(RESPONSE);
        want.insert(c.cport, http_want(case, "/search?q=nightjar", false));
        frames.extend(c.close());
    }
    {
        // Out of order: "zz" at 9..11 first, then "YYYY" at 8..12 (a later copy starting
        // earlier: it only fills 8 and 11), then the whole request from 0: bytes 8..12
        // are the first copies, "YzzY".
        let (mut c, case) = next("overlap out of order", 80, Wrap::Plain);
        let req = request(3, 0);
        c.client_at(9, b"zz");
        c.client_at(8, b"YYYY");
        c.client(&req, &[]);
        c.server(RESPONSE);
        want.insert(c.cport, http_want(case, "/seaYzzYq=nightjar", false));
        frames.extend(c.close());
    }
    // A 40 KiB ClientHello over three records.
    {
        let (mut c, case) = next("ClientHello of 40 KiB", 443, Wrap::Plain);
        c.client(&padded_hello(hello, 40_000), &[]);
        c.server(&sstream);
        want.insert(c.cport, Want { case, app: "tls", http: None, tls: false, tshark: true });
        frames.extend(c.close());
    }
    // Tags and tunnels.
    for (wrap, case) in [
        (Wrap::QinQ, "QinQ VLAN"),
        (Wrap::Sgt, "Cisco SGT tag"),
        (Wrap::FourInSix, "IPv4 in IPv6"),
        (Wrap::SixInFour, "IPv6 in IPv4"),
    ] {
        let (mut c, case) = next(case, 443, wrap);
        c.client(hello, &[]);
        c.server(&sstream);
        c.client(client_rest, &[]);
        want.insert(c.cport, tls_want(case, true));
        frames.extend(c.close());
    }
    // PROXY protocol before the client's first bytes.
    {
        let (mut c, case) = next("PROXY v1 before TLS", 443, Wrap::Plain);
        let mut bytes = b"PROXY TCP4 203.0.113.7 198.19.0.1 51000 443\r\n".to_vec();
        bytes.extend_from_slice(hello);
        c.client(&bytes, &[3]);
        c.server(&sstream);
        want.insert(c.cport, tls_want(case, false));
        frames.extend(c.close());
    }
    {
        let (mut c, case) = next("PROXY v2 before HTTP", 80, Wrap::Plain);
        let mut bytes = nightjar_common::PROXY_V2.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c, 203, 0, 113, 7, 198, 19, 0, 1, 0xc7, 0x38, 0x00, 0x50]);
        bytes.extend_from_slice(&request(3, 0));
        c.client(&bytes, &[]);
        c.server(RESPONSE);
        want.insert(c.cport, http_want(case, "/search?q=nightjar", false));
        frames.extend(c.close());
    }
    frames.sort_by_key(|f| f.ts_ns);
    Corpus { frames, want }
}

/// What the sensor made of one flow, by client port.
#[derive(Debug, Default)]
struct Got {
    app: String,
    ja3: Vec<String>,
    ja3s: Vec<String>,
    http: Option<(String, String, Option<String>)>,
}

fn sensor(path: &Path) -> (HashMap<u16, Got>, Stats) {
    let mut out = HashMap::new();
    let stats = replay_records(&Config::default(), &[path.to_path_buf()], &mut |rec| {
        let f = rec;
        let g: &mut Got = out.entry(f.client_port).or_default();
        f.app.as_str().clone_into(&mut g.app);
        if let Some(t) = f.tls.as_deref() {
            g.ja3.extend(t.client_hellos.iter().map(|ch| ja3(ch).hash));
            g.ja3s.extend(t.server_hellos.iter().map(|sh| ja3s(sh).hash));
        }
        if let Some(h) = f.http.as_deref() {
            g.http = Some((h.method.clone(), h.uri.clone(), h.host.clone()));
        }
    })
    .expect("replay");
    (out, stats)
}

fn tshark_fields(path: &Path) -> Option<HashMap<u16, Vec<String>>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-T", "fields", "-E", "occurrence=f", "-e", "tcp.srcport", "-e", "tls.handshake.ja3", "-e"])
        .args(["tls.handshake.ja3s", "-e", "tcp.dstport", "-e", "http.request.method", "-e", "http.request.uri"])
        .args(["-e", "http.host"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let mut m: HashMap<u16, Vec<String>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 7 {
            continue;
        }
        let (Ok(sp), Ok(dp)) = (c[0].parse::<u16>(), c[3].parse::<u16>()) else { continue };
        let client = if sp > dp { sp } else { dp };
        let e = m.entry(client).or_insert_with(|| vec![String::new(); 5]);
        for (slot, v) in [(0, c[1]), (1, c[2]), (2, c[4]), (3, c[5]), (4, c[6])] {
            if !v.is_empty() && e[slot].is_empty() {
                v.clone_into(&mut e[slot]);
            }
        }
    }
    Some(m)
}

#[test]
fn hostile_corpus_is_recognised_fingerprinted_and_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = corpus();
    let path = dir.path().join("hostile.pcap");
    write_pcap(&path, &c.frames).expect("write pcap");
    let (got, stats) = sensor(&path);

    // The plain flow's fingerprints, from the bundled capture itself.
    let reference = sensor(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ssl-curl.pcap"))).0;
    let reference = reference.values().find(|g| !g.ja3.is_empty()).expect("curl's flow");

    let mut bad = Vec::new();
    for (port, w) in &c.want {
        let Some(g) = got.get(port) else {
            bad.push(format!("{}: no flow", w.case));
            continue;
        };
        if g.app != w.app {
            bad.push(format!("{}: app {} (want {})", w.case, g.app, w.app));
        }
        if w.tls && (g.ja3 != reference.ja3 || g.ja3s != reference.ja3s) {
            bad.push(format!(
                "{}: JA3 {:?} JA3S {:?}, plain flow {:?} {:?}",
                w.case, g.ja3, g.ja3s, reference.ja3, reference.ja3s
            ));
        }
        if let Some((m, u, h)) = w.http {
            let parsed = g.http.as_ref().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_deref()));
            if parsed != Some((m, u, Some(h))) {
                bad.push(format!("{}: request {parsed:?}, want ({m}, {u}, {h})", w.case));
            }
        }
    }
    assert_eq!(got.len(), c.want.len(), "one flow per conversation: {got:?}");
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    // Every anomaly counted.
    assert!(stats.http_too_many_headers >= 2, "65 and 200 headers: {}", stats.http_too_many_headers);
    assert!(stats.http_oversized >= 1, "head past 8 KiB: {}", stats.http_oversized);
    assert!(stats.reassembly_overlaps >= 2, "two overlaps: {}", stats.reassembly_overlaps);
    assert!(stats.tls_oversized_hello >= 1, "40 KiB hello: {}", stats.tls_oversized_hello);
    assert!(stats.proxy_headers >= 2, "PROXY v1 and v2: {}", stats.proxy_headers);
    let big = c.want.iter().find(|(_, w)| w.case == "ClientHello of 40 KiB").map(|(p, _)| got[p].ja3.len());
    assert_eq!(big, Some(1), "the 40 KiB hello is fingerprinted");

    // tshark on the same file.
    let Some(ts) = tshark_fields(&path) else {
        assert!(std::env::var_os("NIGHTJAR_REQUIRE_TOOLS").is_none(), "tshark is required but not on PATH");
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIP hostile_input tshark comparison: tshark not on PATH\n",
        );
        return;
    };
    let mut bad = Vec::new();
    let mut compared = 0;
    for (port, w) in c.want.iter().filter(|(_, w)| w.tshark) {
        compared += 1;
        let (Some(t), Some(g)) = (ts.get(port), got.get(port)) else {
            bad.push(format!("{}: tshark or nightjar has no flow", w.case));
            continue;
        };
        let first = |v: &Vec<String>| v.first().cloned().unwrap_or_default();
        if w.app == "tls" && (t[0] != first(&g.ja3) || t[1] != first(&g.ja3s)) {
            bad.push(format!("{}: tshark JA3 {} JA3S {}, nightjar {:?} {:?}", w.case, t[0], t[1], g.ja3, g.ja3s));
        }
        if let Some((m, u, h)) = &g.http
            && (t[2] != *m || t[3] != *u || t[4] != h.clone().unwrap_or_default())
        {
            bad.push(format!("{}: tshark {:?}, nightjar {:?}", w.case, &t[2..], g.http));
        }
    }
    assert!(bad.is_empty(), "disagreements with tshark:\n{}", bad.join("\n"));
    eprintln!(
        "hostile corpus: {} flows recognised; tshark agrees on {compared}; counted: {} crowded, {} oversized heads, \
         {} overlaps, {} oversized hellos, {} PROXY headers",
        c.want.len(),
        stats.http_too_many_headers,
        stats.http_oversized,
        stats.reassembly_overlaps,
        stats.tls_oversized_hello,
        stats.proxy_headers
    );
}
