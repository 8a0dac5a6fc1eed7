//! Memory per tracked flow, measured with a counting allocator: 1,000,000 concurrent
//! flows (each a SYN, a SYN-ACK and a real ClientHello, all open at once) stay within
//! `max_flows` × the per-flow bound, and with a smaller `max_flows` the table evicts
//! (and counts) instead of growing. The measured figures are printed for the README.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use nightjar::capture::PacketSource;
use nightjar::config::FlowConfig;
use nightjar::decode::{Decoded, Packet, TcpFlags, decode_frame};
use nightjar::flow::{EndReason, FlowTable};
use nightjar::stats::Stats;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// Safety: defers to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // Safety: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
        // Safety: `p` was allocated by `alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let now = CURRENT.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        // Safety: same contract as GlobalAlloc::realloc.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes per flow that the README states for a flow in its handshake (parser state and
/// parsed ClientHello held), with the default buffer limits.
const HANDSHAKE_FLOW_BOUND_BYTES: usize = 1600;
/// Bytes per flow that carries no payload yet (or whose event was written and whose
/// parser state was freed): key, counters, head sequence, list links.
const TRACKED_FLOW_BOUND_BYTES: usize = 450;

fn client_hello_payload() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ssl-curl.pcap");
    let mut src = nightjar::capture::PcapFileSource::open(std::path::Path::new(path)).expect("fixture");
    let mut hello = Vec::new();
    while hello.is_empty()
        && src
            .read_batch(1, &mut |f| {
                if let Decoded::Tcp(p) = decode_frame(f.link, f.ts_ns, f.wire_len, f.data)
                    && p.payload.first() == Some(&0x16)
                    && hello.is_empty()
                {
                    hello = p.payload.to_vec();
                }
            })
            .expect("read")
            > 0
    {}
    assert!(hello.len() > 100, "no ClientHello in fixture");
    hello
}

/// Measurements share one allocator counter: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(flows: u32, max_flows: usize, with_hello: bool) -> (Stats, usize, usize) {
    let _guard = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cfg = FlowConfig::default();
    let hello = client_hello_payload();
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut t = FlowTable::new(&cfg, max_flows);
    let mut st = Stats::default();
    let mut out = Vec::new();
    let server = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1));
    let client = |i: u32| IpAddr::V4(Ipv4Addr::new(198, 18, (i >> 16) as u8, (i >> 8) as u8));
    let port = |i: u32| 1024 + (i & 0xff) as u16 * 200 + (i >> 24) as u16;
    let mk = |i: u32, ts: u64, from_client: bool, flags: u8, seq: u32, payload: &'static [u8]| {
        let (src, dst, sport, dport) =
            if from_client { (client(i), server, port(i), 443) } else { (server, client(i), 443, port(i)) };
        Packet {
            ts_ns: ts,
            src,
            dst,
            sport,
            dport,
            seq,
            ack: 0,
            flags: TcpFlags(flags),
            payload,
            wire_len: 60,
            truncated: false,
        }
    };
    let hello: &'static [u8] = Box::leak(hello.into_boxed_slice());
    // Three rounds so that every flow is open while the others are: SYN, SYN-ACK, hello.
    let mut ts = 1_000_000_000u64;
    let rounds = if with_hello { 3 } else { 2 };
    for round in 0..rounds {
        for i in 0..flows {
            ts += 100;
            let p = match round {
                0 => mk(i, ts, true, TcpFlags::SYN, 1000, &[]),
                1 => mk(i, ts, false, TcpFlags::SYN | TcpFlags::ACK, 5000, &[]),
                _ => mk(i, ts, true, TcpFlags::ACK | TcpFlags::PSH, 1001, hello),
            };
            t.process(&p, &mut st, &mut out);
            out.clear();
        }
    }
    let tracked = t.len();
    let used = CURRENT.load(Ordering::Relaxed) - base;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    drop(t);
    eprintln!(
        "{flows} flows offered ({}), max_flows {max_flows}: {tracked} tracked, {} evicted, {used} B in use ({} B/flow), peak {peak} B",
        if with_hello { "SYN, SYN-ACK, ClientHello" } else { "SYN, SYN-ACK" },
        st.flows_ended[EndReason::Evicted as usize],
        used / tracked.max(1)
    );
    assert_eq!(tracked, max_flows.min(flows as usize));
    (st, used, peak)
}

#[test]
fn million_concurrent_flows_stay_within_bound() {
    let flows = std::env::var("NIGHTJAR_MEMORY_FLOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000u32);
    let n = flows as usize;
    let (st, used, peak) = run(flows, n, true);
    assert_eq!(st.flows_created, u64::from(flows));
    assert_eq!(st.flows_ended[EndReason::Evicted as usize], 0);
    assert!(used <= n * HANDSHAKE_FLOW_BOUND_BYTES, "{used} B for {flows} flows in handshake");
    assert!(peak <= n * HANDSHAKE_FLOW_BOUND_BYTES + (64 << 20), "peak {peak} B");

    // A table capped at a tenth evicts (and counts) the rest and stays at a tenth.
    let cap = n / 10;
    let (st, used, _) = run(flows, cap, true);
    assert!(st.flows_ended[EndReason::Evicted as usize] >= u64::from(flows) - cap as u64);
    assert!(used <= cap * HANDSHAKE_FLOW_BOUND_BYTES, "{used} B for {cap} tracked flows");
}

#[test]
fn flows_without_payload_are_small() {
    let flows = 100_000u32;
    let (_, used, _) = run(flows, flows as usize, false);
    assert!(used <= flows as usize * TRACKED_FLOW_BOUND_BYTES, "{used} B for {flows} flows");
}

/// Frames of `flows` flows left in their handshake: SYN, SYN-ACK, ClientHello each.
fn handshake_frames(flows: u32, hello: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::with_capacity(flows as usize * 3);
    let mut ts = 1_700_000_000_000_000_000u64;
    for round in 0..3 {
        for i in 0..flows {
            ts += 1_000;
            let client = [198, 18, (i >> 16) as u8, (i >> 8) as u8];
            let server = [198, 19, 0, 1];
            let cport = 1024 + (i & 0xff) as u16 * 200 + (i >> 24) as u16;
            let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]);
            let (b, payload): (_, &[u8]) = match round {
                0 => (b.ipv4(client, server, 64).tcp(cport, 443, 1000, 65535).syn(), &[]),
                1 => (b.ipv4(server, client, 64).tcp(443, cport, 5000, 65535).syn().ack(1001), &[]),
                _ => (b.ipv4(client, server, 64).tcp(cport, 443, 1001, 65535).ack(5001).psh(), hello),
            };
            let mut f = Vec::new();
            b.write(&mut f, payload).expect("frame");
            out.push((ts, f));
        }
    }
    out
}

/// Peak bytes allocated above the steady state while a worker holding `flows` flows in
/// their handshake ends them all and serialises their events: chunked (the shutdown
/// path) or at once (the old path). Returns (peak, events written). The caller holds
/// `SERIAL`.
fn shutdown_peak(frames: &[(u64, Vec<u8>)], flows: usize, chunked: bool) -> (usize, usize) {
    use nightjar::capture::{Frame, LinkType};
    use nightjar::runtime::{Outputs, Stream, Worker};
    let cfg = nightjar::config::Config::default();
    let mut w = Worker::new(&cfg, flows, Outputs { events: true, features: false, eve: None });
    let mut lines = 0;
    for (ts, data) in frames {
        let len = u32::try_from(data.len()).expect("frame length");
        w.handle_frame(&Frame { ts_ns: *ts, link: LinkType::Ethernet, wire_len: len, data });
    }
    w.finish_records(&mut |_| {});
    lines += newlines(w.buf_mut(Stream::Events));
    w.buf_mut(Stream::Events).clear();
    assert_eq!(w.tracked_flows(), flows, "every flow still open before the flush");
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut drain = |w: &mut Worker| {
        let buf = w.buf_mut(Stream::Events);
        lines += newlines(buf);
        buf.clear();
        Ok::<(), std::convert::Infallible>(())
    };
    let done = if chunked {
        w.flush_in_chunks(&mut |_| {}, &mut drain)
    } else {
        w.flush();
        w.finish_records(&mut |_| {});
        drain(&mut w)
    };
    done.unwrap_or_else(|e| match e {});
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (peak, lines)
}

/// Lines in a batch, checked against the newlines of its bytes.
fn newlines(buf: &nightjar::export::lines::Lines) -> usize {
    let n = buf.bytes().split(|&b| b == b'\n').count() - 1;
    assert_eq!(n, buf.len(), "a batch's line index disagrees with its bytes");
    n
}

#[test]
fn shutdown_flush_memory_stays_bounded() {
    // Everything this test allocates stays inside the lock: the other test measures the
    // same counter.
    let _guard = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let flows = std::env::var("NIGHTJAR_FLUSH_FLOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(60_000u32);
    let hello = client_hello_payload();
    let frames = handshake_frames(flows, &hello);
    let (chunked, written) = shutdown_peak(&frames, flows as usize, true);
    let (at_once, written_at_once) = shutdown_peak(&frames, flows as usize, false);
    eprintln!(
        "shutdown flush of {flows} flows in handshake: peak {chunked} B above steady state in chunks of {} flows, {at_once} B at once",
        nightjar::runtime::FLUSH_CHUNK_FLOWS
    );
    assert_eq!((written, written_at_once), (flows as usize, flows as usize), "one event per flow either way");
    // A chunk's records and events, whatever the table holds: 4,096 flows at under 8 KiB.
    assert!(chunked <= nightjar::runtime::FLUSH_CHUNK_FLOWS * 8192, "chunked flush peak {chunked} B");
    assert!(chunked * 4 < at_once, "chunked {chunked} B vs at once {at_once} B");
}
