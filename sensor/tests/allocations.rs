//! Heap allocations on the packet path, counted by a counting allocator: a worker (decode,
//! flow table, reassembly, TLS parsing, features, event serialisation) replays TLS flows
//! that differ only in how many packets each carries past its head. In the steady state
//! (the worker's buffers and table already grown by a first pass), the extra packets
//! must cost no allocation at all, and a whole flow at most `ALLOCATIONS_PER_FLOW_BOUND`
//! (the head's packet list grows at most four times up to `head_packets`, a per-flow
//! cost). The measured figures are printed for the README.
//!
//! Without a model: the classifier's allocations are tract's (its own test and benchmark).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nightjar::capture::{Frame, LinkType, PacketSource};
use nightjar::decode::{Decoded, decode_frame};
use nightjar::runtime::{Outputs, Stream, Worker};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static CALLS: AtomicUsize = AtomicUsize::new(0);

// Safety: defers to the system allocator and only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            CALLS.fetch_add(1, Ordering::Relaxed);
        }
        // Safety: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // Safety: `p` was allocated by `alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            CALLS.fetch_add(1, Ordering::Relaxed);
        }
        // Safety: same contract as GlobalAlloc::realloc.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations a TLS flow may cost from its SYN to its event (parsed ClientHello fields,
/// fingerprints, the flow's parser state, the event line), stated in the README.
const ALLOCATIONS_PER_FLOW_BOUND: usize = 100;
/// Flows per pass.
const FLOWS: u32 = 2_000;

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

/// Frames of `FLOWS` TLS flows on client network `net`: handshake, the ClientHello,
/// `acks` empty ACKs each way, then FIN from both ends (so each flow ends and writes its
/// event). Flows are interleaved, all open at once.
fn flows(net: u8, acks: u32, hello: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut ts = 1_700_000_000_000_000_000u64;
    let server = [198, 19, 0, 1];
    let rounds = 4 + 2 * acks + 2;
    for round in 0..rounds {
        for i in 0..FLOWS {
            ts += 1_000;
            let client = [198, 18, net, (i >> 8) as u8];
            let cport = 1024 + (i & 0xff) as u16;
            let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]);
            let hello_end = 1001 + hello.len() as u32;
            let (b, payload): (_, &[u8]) = match round {
                0 => (b.ipv4(client, server, 64).tcp(cport, 443, 1000, 65535).syn(), &[]),
                1 => (b.ipv4(server, client, 64).tcp(443, cport, 5000, 65535).syn().ack(1001), &[]),
                2 => (b.ipv4(client, server, 64).tcp(cport, 443, 1001, 65535).ack(5001), &[]),
                3 => (b.ipv4(client, server, 64).tcp(cport, 443, 1001, 65535).ack(5001).psh(), hello),
                r if r < rounds - 2 && r % 2 == 0 => {
                    (b.ipv4(client, server, 64).tcp(cport, 443, hello_end, 65535).ack(5001), &[])
                }
                r if r < rounds - 2 => (b.ipv4(server, client, 64).tcp(443, cport, 5001, 65535).ack(hello_end), &[]),
                r if r == rounds - 2 => {
                    (b.ipv4(client, server, 64).tcp(cport, 443, hello_end, 65535).ack(5001).fin(), &[])
                }
                _ => (b.ipv4(server, client, 64).tcp(443, cport, 5001, 65535).ack(hello_end + 1).fin(), &[]),
            };
            let mut f = Vec::new();
            b.write(&mut f, payload).expect("frame");
            out.push((ts, f));
        }
    }
    out
}

/// Runs `frames` through `w`, taking its output as a writer would (the buffer cleared,
/// its capacity kept); returns (allocation calls, packets, events written).
fn pass(w: &mut Worker, frames: &[(u64, Vec<u8>)]) -> (usize, usize, usize) {
    let mut events = 0;
    CALLS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for (k, (ts, data)) in frames.iter().enumerate() {
        let len = u32::try_from(data.len()).expect("frame length");
        w.handle_frame(&Frame { ts_ns: *ts, link: LinkType::Ethernet, wire_len: len, data });
        if k % 256 == 255 {
            w.finish_records(&mut |_| {});
            let buf = w.buf_mut(Stream::Events);
            events += newlines(buf);
            buf.clear();
        }
    }
    w.finish_records(&mut |_| {});
    COUNTING.store(false, Ordering::Relaxed);
    let buf = w.buf_mut(Stream::Events);
    events += newlines(buf);
    buf.clear();
    (CALLS.load(Ordering::Relaxed), frames.len(), events)
}

/// Lines in a batch, checked against the newlines of its bytes.
fn newlines(buf: &nightjar::export::lines::Lines) -> usize {
    let n = buf.bytes().split(|&b| b == b'\n').count() - 1;
    assert_eq!(n, buf.len(), "a batch's line index disagrees with its bytes");
    n
}

#[test]
fn packets_allocate_nothing_and_flows_stay_within_bound() {
    let hello = client_hello_payload();
    let cfg = nightjar::config::Config::default();
    let mut w = Worker::new(&cfg, 1 << 16, Outputs { events: true, features: false, eve: None });
    // The first pass grows the table, the reassembly pools and the output buffer.
    let (_, _, warm) = pass(&mut w, &flows(0, 40, &hello));
    assert_eq!(warm, FLOWS as usize, "every flow ended and wrote its event");

    // 34 packets per flow (its event written at the 32nd, the head) against 86.
    let few = flows(1, 14, &hello);
    let many = flows(2, 40, &hello);
    let (a_few, p_few, e_few) = pass(&mut w, &few);
    let (a_many, p_many, e_many) = pass(&mut w, &many);
    assert_eq!((e_few, e_many), (FLOWS as usize, FLOWS as usize), "one event per flow");
    let extra_packets = p_many - p_few;
    eprintln!(
        "{FLOWS} TLS flows: {p_few} packets -> {a_few} allocations ({:.1} per flow); \
         {p_many} packets -> {a_many} allocations: {} more for {extra_packets} more packets",
        a_few as f64 / f64::from(FLOWS),
        a_many as isize - a_few as isize
    );
    // Zero per packet: the same flows with 52 more packets each cost no more allocations
    // (the output buffer may grow once more in a pass).
    assert!(a_many <= a_few + 1, "{} allocations for {extra_packets} packets", a_many.saturating_sub(a_few));
    // Inside the head too, between the list's growth points: 22 against 30 packets
    // (both past 16, within 32) cost the same.
    let (a_22, _, _) = pass(&mut w, &flows(3, 8, &hello));
    let (a_30, _, _) = pass(&mut w, &flows(4, 12, &hello));
    eprintln!("inside the head: 22 packets per flow -> {a_22} allocations, 30 -> {a_30}");
    assert!(a_30 <= a_22 + 1, "{} allocations for 8 more head packets per flow", a_30.saturating_sub(a_22));
    assert!(
        a_few <= FLOWS as usize * ALLOCATIONS_PER_FLOW_BOUND,
        "{a_few} allocations for {FLOWS} flows (bound {ALLOCATIONS_PER_FLOW_BOUND} per flow)"
    );
}
