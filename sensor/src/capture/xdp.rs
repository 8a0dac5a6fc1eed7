//! The XDP pre-filter from userspace: loads the `nightjar-ebpf` object with aya,
//! writes its configuration, attaches it to an interface (native mode, falling back to
//! generic mode with a warning), registers AF_XDP sockets in its XSKMAP and reads its
//! per-CPU decision counters. Dropping the filter detaches the program.

use std::os::fd::AsRawFd;

use aya::Ebpf;
use aya::maps::{Array, MapData, PerCpuArray, RingBuf, XskMap};
use aya::programs::{Xdp, XdpMode};
use nightjar_common::{
    Counter, FilterConfig, MAP_CONFIG, MAP_COPIES, MAP_COUNTERS, MAP_XSKS, PROGRAM_NAME, PacketCopy,
};

use super::{Frame, LinkType, PacketSource};
use crate::error::CaptureError;

use crate::error::LiveError;

/// The embedded XDP object, when built with the `ebpf` feature.
#[cfg(feature = "ebpf")]
pub static PROGRAM_OBJECT: Option<&[u8]> =
    Some(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nightjar-ebpf")));
/// The embedded XDP object, when built with the `ebpf` feature.
#[cfg(not(feature = "ebpf"))]
pub static PROGRAM_OBJECT: Option<&[u8]> = None;

/// How the program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver.
    Native,
    /// In the kernel stack (slower; used where the driver has no XDP support).
    Generic,
    /// Loaded but not attached (tests with `BPF_PROG_TEST_RUN`).
    Detached,
}

/// A loaded (and usually attached) XDP filter.
pub struct XdpFilter {
    ebpf: Ebpf,
    program: &'static str,
    /// How it is attached.
    pub mode: AttachMode,
}

fn xdp_err(what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> LiveError {
    LiveError::Xdp { what: what.into(), source: Box::new(e) }
}

impl XdpFilter {
    /// Loads the embedded program and writes `cfg`, without attaching it.
    pub fn load(cfg: FilterConfig) -> Result<Self, LiveError> {
        Self::load_program(cfg, PROGRAM_NAME)
    }

    /// Loads program `program` of the embedded object (the filter, or a benchmark
    /// baseline from `nightjar_common`) and writes `cfg`.
    pub fn load_program(cfg: FilterConfig, program: &'static str) -> Result<Self, LiveError> {
        let object = PROGRAM_OBJECT.ok_or(LiveError::NoProgram)?;
        let mut ebpf = Ebpf::load(object).map_err(|e| xdp_err("loading the object", e))?;
        let prog: &mut Xdp = ebpf
            .program_mut(program)
            .ok_or_else(|| LiveError::Xdp { what: "program missing".into(), source: program.into() })?
            .try_into()
            .map_err(|e| xdp_err("program type", e))?;
        prog.load().map_err(|e| xdp_err("verifier", e))?;
        let mut config: Array<_, FilterConfig> =
            Array::try_from(ebpf.map_mut(MAP_CONFIG).ok_or_else(|| missing(MAP_CONFIG))?)
                .map_err(|e| xdp_err("config map", e))?;
        config.set(0, cfg, 0).map_err(|e| xdp_err("writing config", e))?;
        Ok(Self { ebpf, program, mode: AttachMode::Detached })
    }

    /// Attaches to `iface`: native mode first, generic mode (with a warning) if the
    /// driver refuses.
    pub fn attach(&mut self, iface: &str) -> Result<AttachMode, LiveError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(self.program)
            .ok_or_else(|| missing(self.program))?
            .try_into()
            .map_err(|e| xdp_err("program type", e))?;
        match prog.attach(iface, XdpMode::Driver) {
            Ok(_) => self.mode = AttachMode::Native,
            Err(native) => {
                eprintln!("warning: native XDP attach to {iface} failed ({native}); using generic mode.");
                prog.attach(iface, XdpMode::Skb).map_err(|e| xdp_err(format!("attaching to {iface}"), e))?;
                self.mode = AttachMode::Generic;
            }
        }
        Ok(self.mode)
    }

    /// Registers an AF_XDP socket for RX queue `queue`.
    pub fn register_socket(&mut self, queue: u32, socket: &impl AsRawFd) -> Result<(), LiveError> {
        let mut xsks = XskMap::try_from(self.ebpf.map_mut(MAP_XSKS).ok_or_else(|| missing(MAP_XSKS))?)
            .map_err(|e| xdp_err("xsk map", e))?;
        xsks.set(queue, socket.as_raw_fd(), 0).map_err(|e| xdp_err(format!("registering queue {queue}"), e))
    }

    /// Decision counters summed over CPUs, indexed by [`Counter`].
    pub fn counters(&self) -> Result<[u64; Counter::COUNT as usize], LiveError> {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(MAP_COUNTERS).ok_or_else(|| missing(MAP_COUNTERS))?)
                .map_err(|e| xdp_err("counter map", e))?;
        let mut out = [0u64; Counter::COUNT as usize];
        for c in Counter::ALL {
            let values = map.get(&(c as u32), 0).map_err(|e| xdp_err("reading counters", e))?;
            out[c as usize] = values.iter().sum();
        }
        Ok(out)
    }

    /// Takes the host-mode copy ring buffer (once).
    pub fn take_copy_ring(&mut self) -> Result<CopyRing, LiveError> {
        let map = self.ebpf.take_map(MAP_COPIES).ok_or_else(|| missing(MAP_COPIES))?;
        let ring = RingBuf::try_from(map).map_err(|e| xdp_err("copy ring", e))?;
        Ok(CopyRing { ring, clock: super::KtimeClock::new() })
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` and returns its action.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, LiveError> {
        use aya::programs::{TestRun, TestRunOptions};
        let prog: &Xdp = self
            .ebpf
            .program(self.program)
            .ok_or_else(|| missing(self.program))?
            .try_into()
            .map_err(|e| xdp_err("program type", e))?;
        let opts = TestRunOptions { data_in: Some(frame), ..TestRunOptions::new() };
        let r = prog.test_run(opts).map_err(|e| xdp_err("BPF_PROG_TEST_RUN", e))?;
        Ok(r.return_value)
    }
}

fn missing(name: &str) -> LiveError {
    LiveError::Xdp { what: "object incomplete".into(), source: format!("{name} not found").into() }
}

/// Host mode's packet source: the copies of selected packets that the XDP program
/// writes into a BPF ring buffer (the packets themselves went on to the kernel).
pub struct CopyRing {
    ring: RingBuf<MapData>,
    clock: super::KtimeClock,
}

impl PacketSource for CopyRing {
    fn read_batch(&mut self, max: usize, sink: &mut dyn FnMut(&Frame<'_>)) -> Result<usize, CaptureError> {
        let mut n = 0;
        let mut waited = false;
        while n < max {
            let Some(item) = self.ring.next() else {
                if waited || n > 0 {
                    break;
                }
                waited = true;
                let mut pfd = libc::pollfd { fd: self.ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // Safety: one valid pollfd.
                unsafe { libc::poll(&raw mut pfd, 1, super::POLL_TIMEOUT_MS) };
                continue;
            };
            let hdr = std::mem::offset_of!(PacketCopy, data);
            if item.len() >= hdr {
                let wire_len = u32::from_ne_bytes([item[0], item[1], item[2], item[3]]);
                let cap = u32::from_ne_bytes([item[4], item[5], item[6], item[7]]) as usize;
                let ktime =
                    u64::from_ne_bytes([item[8], item[9], item[10], item[11], item[12], item[13], item[14], item[15]]);
                let ts_ns = self.clock.unix_ns(ktime);
                let end = (hdr + cap).min(item.len());
                sink(&Frame { ts_ns, link: LinkType::Ethernet, wire_len, data: &item[hdr..end] });
                n += 1;
            }
        }
        Ok(n)
    }

    fn position(&self) -> u64 {
        0
    }
}
