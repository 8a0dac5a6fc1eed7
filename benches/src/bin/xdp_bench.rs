//! `nightjar-xdp-bench`: throughput of the capture path on a veth pair (root only).
//!
//! One veth end stays in the root namespace (198.18.0.2/24) with the program under test
//! attached; the other end lives in a namespace of its own (198.18.0.1/24) from which
//! `tcpreplay --topspeed` sends a synthetic capture of real TLS flows. Every scenario
//! runs on the same pair, one after the other:
//!
//! 1. `drop`: a bare XDP_DROP program (the cost floor of XDP on this machine);
//! 2. `filter`: Nightjar's filter in span mode, its AF_XDP socket read by a full
//!    Nightjar worker (decode, flows, TLS, events);
//! 3. `bare_afxdp`: a program that redirects everything, read by a minimal ring loop of
//!    our own that only counts frames (what AF_XDP delivers with no work in the kernel or
//!    in userspace);
//! 4. `filter_bare_loop`: Nightjar's filter read by the counting loop (the filter's cost
//!    on delivery, without the userspace pipeline);
//! 5. `bare_afxdp_xdpilone` and 6. `bare_afxdp_xsk_rs`: as 3, with the sockets and rings
//!    of the `xdpilone` crate and of the `xsk-rs` crate (which the sensor uses) instead of
//!    the minimal ring loop of our own (`own_xsk`): the AF_XDP implementation comparison.
//!
//! The sender shares the 2 cores with the sensor, so absolute rates are sender-bound
//! ratios on this machine, not NIC claims.
//!
//!     cargo build --release -p nightjar-benches --features ebpf --bin nightjar-xdp-bench
//!     sudo target/release/nightjar-xdp-bench --copies 2000

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use nightjar::capture::PacketSource;
use nightjar::capture::ifindex;
use nightjar::capture::xdp::XdpFilter;
use nightjar::capture::xsk::XskSocket;
use nightjar::config::Config;
use nightjar::runtime::{Outputs, Worker};
use nightjar_benches::own_xsk::XskSocket as OwnXsk;
use nightjar_benches::{fixture_paths, load_frames, synth, template_flows, write_pcap};
use nightjar_common::{BENCH_DROP_PROGRAM, BENCH_REDIRECT_PROGRAM, Counter, FilterConfig, PROGRAM_NAME};

#[derive(Parser)]
struct Args {
    /// Clones of each template flow in the capture.
    #[arg(long, default_value_t = 2000)]
    copies: u64,
    /// Times tcpreplay sends the capture per scenario (flows seen again are past their
    /// head, so more loops lower the kept share).
    #[arg(long, default_value_t = 1)]
    loops: u32,
    /// Template captures (default: the bundled fixtures).
    #[arg(long)]
    template: Vec<std::path::PathBuf>,
}

const NS: &str = "nj-bench-tx";
const IF_RX: &str = "njbench1";

/// The sender namespace and the veth pair; removed on drop.
struct Pair;

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let st = Command::new("ip").args(args).status().context("run ip")?;
    ensure!(st.success(), "ip {args:?} failed");
    Ok(())
}

impl Pair {
    fn new() -> anyhow::Result<Self> {
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
        let _ = Command::new("ip").args(["link", "del", IF_RX]).stderr(std::process::Stdio::null()).status();
        ip(&["netns", "add", NS])?;
        let pair = Pair;
        ip(&["link", "add", IF_RX, "type", "veth", "peer", "name", "veth0", "netns", NS])?;
        ip(&["addr", "add", "198.18.0.2/24", "dev", IF_RX])?;
        ip(&["-n", NS, "addr", "add", "198.18.0.1/24", "dev", "veth0"])?;
        ip(&["link", "set", IF_RX, "up"])?;
        ip(&["-n", NS, "link", "set", "veth0", "up"])?;
        Ok(pair)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
    }
}

struct Outcome {
    name: &'static str,
    sent_secs: f64,
    received: u64,
    to_userspace: u64,
    delivered: u64,
}

#[derive(Clone, Copy)]
enum Reader {
    None,
    CountOnly,
    Pipeline,
    /// A counting loop on a socket made with the `xdpilone` crate.
    Xdpilone,
    /// A counting loop on the sensor's socket (the `xsk-rs` crate).
    XskRs,
}

/// A raw fd to hand to the XSKMAP.
struct Fd(i32);
impl std::os::fd::AsRawFd for Fd {
    fn as_raw_fd(&self) -> i32 {
        self.0
    }
}

/// Counts frames through an `xdpilone` socket on queue 0 of `IF_RX` until `stop`.
/// Sends the socket fd back once bound, so that it can be put in the XSKMAP.
fn xdpilone_loop(fd_tx: &std::sync::mpsc::Sender<anyhow::Result<i32>>, stop: &AtomicBool) -> u64 {
    use std::num::NonZeroU32;
    use std::ptr::NonNull;
    use xdpilone::{IfInfo, Socket, SocketConfig, Umem, UmemConfig};
    const FRAME: u32 = 2048;
    const FRAMES: u32 = 4096;
    let len = (FRAME * FRAMES) as usize;
    let setup = || -> anyhow::Result<_> {
        let e = |e: xdpilone::Errno| anyhow::anyhow!("xdpilone: {e}");
        // Safety: anonymous mapping, page aligned, never unmapped while the socket lives
        // (the benchmark process exits after the run).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        ensure!(p != libc::MAP_FAILED, "mmap failed");
        let area = NonNull::slice_from_raw_parts(NonNull::new(p.cast::<u8>()).context("null")?, len);
        let cfg = UmemConfig { fill_size: 2048, complete_size: 2048, frame_size: FRAME, headroom: 0, flags: 0 };
        // Safety: the area is page aligned and outlives the Umem (see above).
        let umem = unsafe { Umem::new(cfg, area) }.map_err(e)?;
        let mut info = IfInfo::invalid();
        info.from_name(&std::ffi::CString::new(IF_RX)?).map_err(e)?;
        info.set_queue(0);
        let sock = Socket::with_shared(&info, &umem).map_err(e)?;
        let device = umem.fq_cq(&sock).map_err(e)?;
        let sc = SocketConfig { rx_size: NonZeroU32::new(2048), tx_size: None, bind_flags: 0 };
        let rxtx = umem.rx_tx(&sock, &sc).map_err(e)?;
        let rx = rxtx.map_rx().map_err(e)?;
        umem.bind(&rxtx).map_err(e)?;
        Ok((umem, device, rxtx, rx))
    };
    let (_umem, mut device, rxtx, mut rx) = match setup() {
        Ok(v) => v,
        Err(err) => {
            let _ = fd_tx.send(Err(err));
            return 0;
        }
    };
    {
        let mut f = device.fill(2048);
        f.insert((0..2048u64).map(|i| i * u64::from(FRAME)));
        f.commit();
    }
    let _ = fd_tx.send(Ok(rxtx.as_raw_fd()));
    let mut n = 0u64;
    let mut addrs = Vec::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        addrs.clear();
        {
            let mut r = rx.receive(256);
            while let Some(d) = r.read() {
                addrs.push(d.addr & !u64::from(FRAME - 1));
            }
            r.release();
        }
        if addrs.is_empty() {
            let mut pfd = libc::pollfd { fd: rxtx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // Safety: one valid pollfd.
            unsafe { libc::poll(&raw mut pfd, 1, 100) };
            continue;
        }
        n += addrs.len() as u64;
        let mut f = device.fill(addrs.len() as u32);
        f.insert(addrs.iter().copied());
        f.commit();
    }
    n
}

fn scenario(
    name: &'static str,
    program: &'static str,
    reader: Reader,
    pcap: &std::path::Path,
    loops: u32,
) -> anyhow::Result<Outcome> {
    let mut filter = XdpFilter::load_program(FilterConfig::default(), program)?;
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let mut handle = None;
    if matches!(reader, Reader::Xdpilone) {
        let (fd_tx, fd_rx) = std::sync::mpsc::channel();
        let (stop2, delivered2) = (Arc::clone(&stop), Arc::clone(&delivered));
        handle = Some(std::thread::spawn(move || {
            let n = xdpilone_loop(&fd_tx, &stop2);
            delivered2.store(n, Ordering::Relaxed);
        }));
        let fd = fd_rx.recv().context("xdpilone thread")??;
        filter.register_socket(0, &Fd(fd))?;
    } else if !matches!(reader, Reader::None) {
        // The sensor's socket (xsk-rs) for the pipeline and xsk-rs rows, our own minimal
        // ring loop for the bare baseline.
        let mut sock: Box<dyn PacketSource + Send> = if matches!(reader, Reader::CountOnly) {
            let s = OwnXsk::open(ifindex(IF_RX)?, 0)?;
            filter.register_socket(0, &s)?;
            Box::new(s)
        } else {
            let s = XskSocket::open(IF_RX, 0)?;
            filter.register_socket(0, &s)?;
            Box::new(s)
        };
        let (stop, delivered) = (Arc::clone(&stop), Arc::clone(&delivered));
        let pipeline = matches!(reader, Reader::Pipeline);
        handle = Some(std::thread::spawn(move || {
            let cfg = Config::default();
            let mut w = Worker::new(&cfg, 1 << 20, Outputs { events: true, ..Outputs::default() });
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let got = if pipeline {
                    sock.read_batch(256, &mut |f| w.handle_frame(f))
                } else {
                    sock.read_batch(256, &mut |f| {
                        std::hint::black_box(f.data.len());
                    })
                };
                let Ok(got) = got else { break };
                n += got as u64;
                if pipeline {
                    w.finish_records(&mut |_| {});
                    w.events_buf.clear();
                }
            }
            delivered.store(n, Ordering::Relaxed);
        }));
    }
    filter.attach(IF_RX)?;
    let t = Instant::now();
    let st = Command::new("ip")
        .args(["netns", "exec", NS, "tcpreplay", "-q", "--topspeed", "-K", "--loop"])
        .arg(loops.to_string())
        .args(["-i", "veth0"])
        .arg(pcap)
        .output()
        .context("tcpreplay")?;
    let sent_secs = t.elapsed().as_secs_f64();
    ensure!(st.status.success(), "tcpreplay failed: {}", String::from_utf8_lossy(&st.stderr));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = handle {
        let _ = h.join();
    }
    let c = filter.counters()?;
    Ok(Outcome {
        name,
        sent_secs,
        received: c[Counter::Received as usize],
        to_userspace: c[Counter::Redirected as usize],
        delivered: delivered.load(Ordering::Relaxed),
    })
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    // Safety: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "run as root (XDP, AF_XDP, namespaces)");
    let paths = if a.template.is_empty() { fixture_paths() } else { a.template.clone() };
    let mut frames = load_frames(&paths)?;
    frames.retain(|f| f.data.len() <= 1514);
    let templates = template_flows(&frames);
    let out = synth(&templates, a.copies, 1_000_000, 1_700_000_000_000_000_000);
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("bench.pcap");
    write_pcap(&pcap, &out)?;
    let _pair = Pair::new()?;
    eprintln!(
        "capture: {} frames, {} flows, sent {} times per scenario",
        out.len(),
        templates.len() as u64 * a.copies,
        a.loops
    );

    let runs = [
        ("drop", BENCH_DROP_PROGRAM, Reader::None),
        ("filter", PROGRAM_NAME, Reader::Pipeline),
        ("bare_afxdp", BENCH_REDIRECT_PROGRAM, Reader::CountOnly),
        ("filter_bare_loop", PROGRAM_NAME, Reader::CountOnly),
        ("bare_afxdp_xdpilone", BENCH_REDIRECT_PROGRAM, Reader::Xdpilone),
        ("bare_afxdp_xsk_rs", BENCH_REDIRECT_PROGRAM, Reader::XskRs),
    ];
    let mut results = Vec::new();
    for (name, program, reader) in runs {
        results.push(scenario(name, program, reader, &pcap, a.loops)?);
    }
    let base = results[0].received as f64 / results[0].sent_secs;
    println!("| scenario | XDP received pkt/s | vs drop | sent to userspace | read by userspace pkt/s | kept share |");
    println!("|---|---|---|---|---|---|");
    for r in &results {
        let pps = r.received as f64 / r.sent_secs;
        println!(
            "| {} | {:.0} | {:.2} | {} | {:.0} | {:.1} % |",
            r.name,
            pps,
            pps / base,
            r.to_userspace,
            r.delivered as f64 / r.sent_secs,
            100.0 * r.to_userspace as f64 / r.received.max(1) as f64
        );
    }
    Ok(())
}
