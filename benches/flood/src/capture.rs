//! Writes the pcap: libpcap on the client's veth (both directions), full snap length,
//! kernel timestamps, until told to stop. Kernel drops are reported in the summary.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use crate::netns;

/// Packets written and dropped.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CaptureStats {
    /// Packets written to the file.
    pub written: u64,
    /// Packets the kernel dropped (libpcap's `ps_drop`).
    pub dropped: u64,
}

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<CaptureStats>>,
}

impl Capture {
    /// Starts capturing `dev` in namespace `ns` into `path`; returns once the capture is open.
    pub fn start(ns: String, dev: &'static str, path: PathBuf) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("capture".into()).spawn(move || -> Result<CaptureStats> {
            let opened = (|| -> Result<_> {
                netns::enter(&ns)?;
                let cap = pcap::Capture::from_device(dev)?
                    .snaplen(65_535)
                    .buffer_size(256 << 20)
                    .immediate_mode(true)
                    .open()
                    .with_context(|| format!("opening a capture on {dev}"))?
                    // libpcap's TPACKET_V3 poll blocks until a block fills or retires, so an
                    // idle link would never let the loop see the stop flag: poll ourselves.
                    .setnonblock()?;
                let file = cap.savefile(&path).with_context(|| format!("creating {}", path.display()))?;
                Ok((cap, file))
            })();
            let (mut cap, mut file) = match opened {
                Ok(x) => {
                    let _ = ready_tx.send(Ok(()));
                    x
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    let _ = ready_tx.send(Err(e));
                    anyhow::bail!(msg);
                }
            };
            let mut stats = CaptureStats::default();
            loop {
                match cap.next_packet() {
                    Ok(p) => {
                        file.write(&p);
                        stats.written += 1;
                    }
                    Err(pcap::Error::TimeoutExpired) => {
                        if flag.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(e) => return Err(e).context("capturing"),
                }
            }
            file.flush()?;
            stats.dropped = cap.stats().map_or(0, |s| u64::from(s.dropped));
            Ok(stats)
        })?;
        ready_rx.recv().context("capture thread ended")??;
        Ok(Self { stop, thread })
    }

    /// Drains what is left and closes the file.
    pub fn finish(self) -> Result<CaptureStats> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow::anyhow!("capture thread panicked"))?
    }
}
