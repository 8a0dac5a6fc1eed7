//! Live capture: the XDP filter on an interface, one AF_XDP socket per RX queue, and
//! one worker thread per queue pinned to its own core, each running the same loop as a
//! replay's workers ([`super::driver::run_worker`] over a [`SourceFeed`]). Each worker
//! owns its socket, its flow-table shard and its buffers; serialised events leave
//! through the one writer ([`super::output`]) with the `Drop` policy: a full queue drops
//! (and counts) output instead of blocking the worker. On shutdown the workers drain
//! their rings and flush their flows (waiting a bounded time for the writer), the
//! counters are read, and the program is detached when the filter is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nightjar_common::Counter;
#[cfg(feature = "ebpf")]
use nightjar_common::{FilterConfig, MODE_HOST, MODE_SPAN};

use super::PipelineError;
use crate::capture::PacketSource;
use crate::capture::afpacket::AfPacketSocket;
use crate::capture::xdp::{AttachMode, XdpFilter};
#[cfg(feature = "ebpf")]
use crate::capture::xsk::XskSocket;
use crate::capture::{KernelDrops, ifindex};
use crate::config::Config;
use crate::error::LiveError;
use crate::export::metrics;
use crate::runtime::driver::{Feed, Loop, SourceFeed, TICK, run_worker};
use crate::runtime::output::{Backpressure, Writer};
use crate::runtime::{Sinks, Worker};
use crate::stats::Stats;

/// Frames read per ring poll.
const RX_BATCH: usize = 256;
/// Serialised output buffers in flight to the writer.
const OUTPUT_QUEUE: usize = 64;
/// Output bytes a worker gathers before handing them on.
const OUTPUT_FLUSH_BYTES: usize = 64 * 1024;
/// Where the XDP program sends what it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Mirror port: selected packets to AF_XDP, the rest dropped.
    Span,
    /// Host that serves traffic: every packet passes.
    Host,
}

/// Which capture path to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapturePath {
    /// XDP and AF_XDP (or the ring buffer in host mode); AF_PACKET if they fail.
    Auto,
    /// XDP only: fail if it cannot be set up.
    Xdp,
    /// AF_PACKET only (no pre-filter: every packet comes up).
    AfPacket,
}

type Sources = Vec<(String, Box<dyn PacketSource + Send>)>;

/// Loads and attaches the XDP program and opens its sockets (or the copy ring).
#[cfg(feature = "ebpf")]
fn open_xdp(cfg: &Config, iface: &str, queues: &[u32], mode: Mode) -> Result<(XdpFilter, Sources), LiveError> {
    let filter_cfg = FilterConfig {
        mode: if mode == Mode::Span { MODE_SPAN } else { MODE_HOST },
        head_packets: cfg.flow.head_packets as u32,
        ..FilterConfig::default()
    };
    let mut filter = XdpFilter::load(filter_cfg)?;
    let mut sources: Sources = Vec::with_capacity(queues.len());
    if mode == Mode::Span {
        for &q in queues {
            let s = XskSocket::open(iface, q)?;
            filter.register_socket(q, &s)?;
            eprintln!(
                "Capture path: AF_XDP on {iface} queue {q} ({} mode).",
                if s.zero_copy { "zero-copy" } else { "copy" }
            );
            sources.push((format!("nightjar-q{q}"), Box::new(s)));
        }
    } else {
        // One ring buffer for all CPUs: one worker reads it. Redirecting would steal
        // packets from the kernel, so host mode copies instead.
        let ring = filter.take_copy_ring()?;
        eprintln!("Capture path: XDP copies through a BPF ring buffer on {iface} (host mode, every packet passes).");
        sources.push(("nightjar-copies".into(), Box::new(ring)));
    }
    let attach = filter.attach(iface)?;
    eprintln!("XDP program attached to {iface} ({attach:?} mode).");
    Ok((filter, sources))
}

/// Without the `ebpf` feature there is no XDP program (and no AF_XDP layer).
#[cfg(not(feature = "ebpf"))]
fn open_xdp(_cfg: &Config, _iface: &str, _queues: &[u32], _mode: Mode) -> Result<(XdpFilter, Sources), LiveError> {
    Err(LiveError::NoProgram)
}

/// One AF_PACKET socket per worker in one fanout group.
fn open_afpacket(iface: &str, idx: u32, workers: usize) -> Result<Sources, LiveError> {
    let group = (std::process::id() & 0xffff) as u16;
    let mut sources: Sources = Vec::with_capacity(workers);
    for i in 0..workers.max(1) {
        sources.push((format!("nightjar-af{i}"), Box::new(AfPacketSocket::open(idx, group)?)));
    }
    eprintln!(
        "Capture path: AF_PACKET on {iface} ({} sockets, fanout by flow hash; no XDP pre-filter).",
        sources.len()
    );
    Ok(sources)
}

/// What a live run reports at the end.
#[derive(Debug, Default)]
pub struct LiveSummary {
    /// Summed worker counters.
    pub stats: Stats,
    /// XDP decision counters, indexed by [`Counter`].
    pub xdp: [u64; Counter::COUNT as usize],
    /// Kernel AF_XDP drop counters summed over sockets.
    pub xsk: KernelDrops,
    /// Output lines (events, feature lines, EVE records) dropped because the writer
    /// queue was full.
    pub output_dropped: u64,
    /// How the program was attached.
    pub attach: Option<AttachMode>,
    /// Workers (one per socket).
    pub workers: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Pins the calling thread to `core`; failure is logged, not fatal.
fn pin_to_core(core: usize) {
    // Safety: cpu_set_t is plain data; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set) != 0 {
            eprintln!("warning: cannot pin worker to core {core}: {}.", std::io::Error::last_os_error());
        }
    }
}

/// Drops every capability once the program is attached and the sockets are bound:
/// reading rings, reading map fds and closing the BPF link need none. Threads spawned
/// afterwards (the workers) inherit the empty sets.
fn drop_capabilities() {
    for set in [caps::CapSet::Effective, caps::CapSet::Permitted, caps::CapSet::Inheritable] {
        if let Err(e) = caps::clear(None, set) {
            eprintln!("warning: cannot drop capabilities ({e}).");
            return;
        }
    }
    eprintln!("Capabilities dropped after attach.");
}

/// What to capture and how.
#[derive(Clone, Copy, Debug)]
pub struct LiveOptions<'a> {
    /// Interface.
    pub iface: &'a str,
    /// RX queues (one socket and worker each).
    pub queues: &'a [u32],
    /// Span or host mode.
    pub mode: Mode,
    /// Capture path.
    pub path: CapturePath,
}

/// Captures until `stop` is set, writing events to `sinks`; `ready` is true while
/// capture is attached and the workers run.
pub fn run(
    cfg: &Config,
    opts: LiveOptions<'_>,
    sinks: Sinks,
    stop: &Arc<AtomicBool>,
    ready: &AtomicBool,
    control: Option<&dyn super::Attach>,
) -> Result<LiveSummary, PipelineError> {
    let LiveOptions { iface, queues, mode, path } = opts;
    let start = Instant::now();
    let live = |e: LiveError| PipelineError::Live(e);
    // The model is loaded (and a bad one refused) by the caller's Control before this
    // touches the interface.
    let idx = ifindex(iface).map_err(live)?;
    let (filter, sources) = match path {
        CapturePath::Xdp => {
            let (f, s) = open_xdp(cfg, iface, queues, mode).map_err(live)?;
            (Some(f), s)
        }
        CapturePath::AfPacket => (None, open_afpacket(iface, idx, queues.len()).map_err(live)?),
        CapturePath::Auto => match open_xdp(cfg, iface, queues, mode) {
            Ok((f, s)) => (Some(f), s),
            Err(e) => {
                eprintln!("warning: XDP capture unavailable ({e}); falling back to AF_PACKET.");
                (None, open_afpacket(iface, idx, queues.len()).map_err(live)?)
            }
        },
    };
    let attach = filter.as_ref().map(|f| f.mode);
    drop_capabilities();

    let outputs = sinks.outputs();
    // Capture never waits for output: a full queue drops (and counts) lines.
    let (writer, out) = Writer::spawn(sinks, OUTPUT_QUEUE, Backpressure::Drop, true)?;

    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let capacity = cfg.flow.max_flows.div_ceil(sources.len().max(1));
    let mut handles = Vec::new();
    for (i, (name, source)) in sources.into_iter().enumerate() {
        let w = Worker::new(cfg, capacity, outputs);
        let w = match control {
            Some(c) => c.attach(w),
            None => w,
        };
        let (stop, mut out) = (Arc::clone(stop), out.clone());
        let mut w = w;
        let h = std::thread::Builder::new()
            .name(name)
            .spawn(move || -> Result<(Stats, KernelDrops), PipelineError> {
                pin_to_core(i % cores);
                let mut feed = SourceFeed::new(source, RX_BATCH);
                let opts = Loop { stop: Some(&stop), live: Some(i), hand_out_bytes: OUTPUT_FLUSH_BYTES };
                run_worker(&mut w, &mut feed, &mut out, &opts)?;
                Ok((w.stats, feed.kernel_drops()))
            })
            .map_err(|source| PipelineError::Output { what: "worker thread", source })?;
        handles.push(h);
    }

    ready.store(true, Ordering::Relaxed);
    // Publish the XDP counters while the workers run.
    while !stop.load(Ordering::Relaxed) && handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(TICK);
        if let Some(c) = control {
            c.poll();
        }
        if let Some(f) = &filter
            && let Ok(values) = f.counters()
        {
            metrics::publish_xdp(&values);
        }
    }
    ready.store(false, Ordering::Relaxed);
    let mut summary = LiveSummary { attach, workers: handles.len(), ..LiveSummary::default() };
    for (i, h) in handles.into_iter().enumerate() {
        let (stats, xsk) = h.join().map_err(|_| PipelineError::WorkerPanic(i))??;
        summary.stats.merge(&stats);
        summary.xsk.rx_dropped += xsk.rx_dropped;
        summary.xsk.rx_ring_full += xsk.rx_ring_full;
        summary.xsk.fill_ring_empty += xsk.fill_ring_empty;
        summary.xsk.rx_invalid += xsk.rx_invalid;
        summary.xsk.unstamped += xsk.unstamped;
    }
    summary.output_dropped = out.dropped_lines();
    drop(out);
    writer.join()?;
    if let Some(f) = &filter {
        summary.xdp = f.counters().map_err(live)?;
        metrics::publish_xdp(&summary.xdp);
    }
    metrics::output_dropped(summary.output_dropped);
    drop(filter);
    summary.elapsed = start.elapsed();
    Ok(summary)
}
