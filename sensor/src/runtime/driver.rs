//! The one worker loop, used by every way Nightjar runs: inline replay (one worker on the
//! calling thread reading the files), sharded replay (workers fed packets that the reader
//! decoded once) and live capture (one worker per socket). A [`Feed`] says where a
//! worker's packets come from, an [`Output`] where its lines go; [`run_worker`] does the
//! rest the same way for all three: read a batch, end and classify flows, hand out
//! output, tick the flow clock when live, and at the end (input over, or a stop) drain
//! the source and end every flow in bounded chunks.
//!
//! Takes frames or decoded packets; yields output buffers and counters. Must not decode a
//! frame twice, and must not allocate per packet (batches and buffers are recycled).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::output::Output;
use super::{PipelineError, Worker};
use crate::capture::{Frame, KernelDrops, PacketSource, PcapFileSource, wall_ns};
use crate::decode::Packet;
use crate::export::metrics::StatsPublisher;

/// How often a live worker advances its flow clock and publishes its counters.
pub const TICK: Duration = Duration::from_millis(500);
/// Frames a live worker reads from its ring after a stop, at most: twice an AF_XDP ring.
pub const DRAIN_MAX_FRAMES: usize = 8192;

/// What one read of a [`Feed`] gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Packets were handed to the worker.
    Data,
    /// A live source had nothing within its poll interval.
    Idle,
    /// The input is over.
    End,
}

/// Where a worker's packets come from.
pub trait Feed {
    /// Hands the next batch to `w`.
    fn feed(&mut self, w: &mut Worker) -> Read;

    /// After a stop: hands `w` what the source already holds (a live ring), then returns.
    fn drain(&mut self, _w: &mut Worker) {}

    /// Packets the kernel dropped before the source could read them (live sources).
    fn kernel_drops(&self) -> KernelDrops {
        KernelDrops::default()
    }
}

/// How [`run_worker`] runs.
#[derive(Clone, Copy, Debug)]
pub struct Loop<'a> {
    /// Set by SIGINT/SIGTERM: stop reading, then end every flow as at the end of input.
    /// Sharded replay workers get none: the reader stops, and they finish what it read.
    pub stop: Option<&'a AtomicBool>,
    /// Live: the flow clock follows the wall clock (a tick every [`TICK`] and whenever
    /// the source is idle) and the counters are published under this `queue` label.
    pub live: Option<usize>,
    /// Output bytes gathered before they are handed out (an idle source hands out all).
    pub hand_out_bytes: usize,
}

/// Runs `w` over `feed` until the input ends or `opts.stop` is set, then drains the
/// feed and ends every flow, [`super::FLUSH_CHUNK_FLOWS`] at a time, through `out`.
/// Returns whether the stop ended the reading before the input did.
pub fn run_worker(
    w: &mut Worker,
    feed: &mut dyn Feed,
    out: &mut dyn Output,
    opts: &Loop<'_>,
) -> Result<bool, PipelineError> {
    let mut publisher = opts.live.map(StatsPublisher::new);
    let mut last_tick = Instant::now();
    let mut stopped = false;
    loop {
        if opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            stopped = true;
            break;
        }
        let read = feed.feed(w);
        let idle = read == Read::Idle;
        if let Some(p) = publisher.as_mut()
            && (idle || last_tick.elapsed() >= TICK)
        {
            w.tick(wall_ns());
            p.publish(&w.stats, w.tracked_flows(), feed.kernel_drops());
            last_tick = Instant::now();
        }
        w.finish_records(&mut |_| {});
        out.take(w, if idle { 1 } else { opts.hand_out_bytes })?;
        if read == Read::End {
            break;
        }
    }
    feed.drain(w);
    w.flush_in_chunks(&mut |_| {}, |w| out.finish(w))?;
    if let Some(p) = publisher.as_mut() {
        p.publish(&w.stats, w.tracked_flows(), feed.kernel_drops());
    }
    Ok(stopped)
}

/// A live socket (AF_XDP, the host-mode copy ring, AF_PACKET) as a worker's feed.
pub struct SourceFeed {
    source: Box<dyn PacketSource + Send>,
    batch: usize,
}

impl SourceFeed {
    /// Reads `batch` frames at a time from `source`.
    pub fn new(source: Box<dyn PacketSource + Send>, batch: usize) -> Self {
        Self { source, batch }
    }
}

impl Feed for SourceFeed {
    fn feed(&mut self, w: &mut Worker) -> Read {
        match self.source.read_batch(self.batch, &mut |f| w.handle_frame(f)) {
            Ok(0) => Read::Idle,
            Ok(_) => Read::Data,
            // A read error on a live socket is not recoverable here: stop this worker.
            Err(_) => Read::End,
        }
    }

    /// Reads what the ring holds, at most [`DRAIN_MAX_FRAMES`]: on a busy port the
    /// ring refills as fast as it is read, and a stop must end.
    fn drain(&mut self, w: &mut Worker) {
        let mut left = DRAIN_MAX_FRAMES;
        while left > 0 {
            match self.source.read_batch(self.batch.min(left), &mut |f| w.handle_frame(f)) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }

    fn kernel_drops(&self) -> KernelDrops {
        self.source.kernel_drops()
    }
}

/// Size of `p` in bytes (0 when it cannot be read), for progress.
pub(super) fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Capture files read in order, as one stream of frames. A file that cannot be opened,
/// or that ends in an error, is noted in [`Self::file_errors`] (the frames before the
/// error count) and the next file is read.
pub struct FileReader<'a> {
    files: &'a [PathBuf],
    next: usize,
    current: Option<(PcapFileSource, u64)>,
    done_bytes: u64,
    /// Files that could not be opened or ended with an error, with the reason.
    pub file_errors: Vec<String>,
}

impl<'a> FileReader<'a> {
    /// A reader of `files`, in that order.
    pub fn new(files: &'a [PathBuf]) -> Self {
        Self { files, next: 0, current: None, done_bytes: 0, file_errors: Vec::new() }
    }

    /// Hands up to `max` frames to `sink`: `Some(n)` (0 when a file just ended), `None`
    /// after the last file.
    pub fn read_batch(&mut self, max: usize, sink: &mut dyn FnMut(&Frame<'_>)) -> Option<usize> {
        loop {
            let Some((src, len)) = self.current.as_mut() else {
                let path = self.files.get(self.next)?;
                self.next += 1;
                match PcapFileSource::open(path) {
                    Ok(s) => self.current = Some((s, file_len(path))),
                    Err(e) => {
                        self.file_errors.push(e.to_string());
                        self.done_bytes += file_len(path);
                    }
                }
                continue;
            };
            let res = src.read_batch(max, sink);
            let len = *len;
            return match res {
                Ok(0) => {
                    self.end_file(len);
                    Some(0)
                }
                Ok(n) => Some(n),
                Err(e) => {
                    self.file_errors.push(e.to_string());
                    self.end_file(len);
                    Some(0)
                }
            };
        }
    }

    fn end_file(&mut self, len: u64) {
        self.current = None;
        self.done_bytes += len;
    }

    /// Bytes of input consumed so far, over every file.
    pub fn position(&self) -> u64 {
        self.done_bytes + self.current.as_ref().map_or(0, |(s, _)| s.position())
    }
}

/// Inline replay's feed: the files, read on the worker's own thread; `progress` gets the
/// bytes read after every batch.
pub struct FilesFeed<'r, 'f, 'p> {
    /// The files.
    pub reader: &'r mut FileReader<'f>,
    /// Called with the bytes read so far after every batch.
    pub progress: &'p mut dyn FnMut(u64),
    /// Frames per read.
    pub batch: usize,
}

impl Feed for FilesFeed<'_, '_, '_> {
    fn feed(&mut self, w: &mut Worker) -> Read {
        let read = self.reader.read_batch(self.batch, &mut |f| w.handle_frame(f));
        (self.progress)(self.reader.position());
        match read {
            Some(_) => Read::Data,
            None => Read::End,
        }
    }
}

/// TCP packets that the sharded reader decoded, for one worker: the payloads side by
/// side in one buffer, each packet's header fields with its payload's place.
pub struct PacketBatch {
    payload: Vec<u8>,
    packets: Vec<(Packet<'static>, usize, usize)>,
}

impl PacketBatch {
    /// An empty batch with room for `packets` packets.
    pub fn with_capacity(packets: usize) -> Self {
        Self { payload: Vec::with_capacity(packets * 256), packets: Vec::with_capacity(packets) }
    }

    /// Copies `p`'s payload in and keeps its header fields.
    pub fn push(&mut self, p: &Packet<'_>) {
        let off = self.payload.len();
        self.payload.extend_from_slice(p.payload);
        // Every field but the payload, which lives in `self.payload`.
        let head = Packet {
            ts_ns: p.ts_ns,
            src: p.src,
            dst: p.dst,
            sport: p.sport,
            dport: p.dport,
            seq: p.seq,
            ack: p.ack,
            flags: p.flags,
            payload: &[],
            wire_len: p.wire_len,
            truncated: p.truncated,
        };
        self.packets.push((head, off, p.payload.len()));
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Hands every packet to `w`, in the order they were pushed, and empties the batch.
    pub fn process(&mut self, w: &mut Worker) {
        for &(head, off, len) in &self.packets {
            w.handle_packet(&Packet { payload: &self.payload[off..off + len], ..head });
        }
        self.payload.clear();
        self.packets.clear();
    }
}

/// A sharded replay worker's feed: the batches its reader sends; emptied batches go
/// back to the reader.
pub struct ShardFeed {
    /// Batches from the reader.
    pub rx: Receiver<PacketBatch>,
    /// Emptied batches, back to the reader.
    pub free: Sender<PacketBatch>,
}

impl Feed for ShardFeed {
    fn feed(&mut self, w: &mut Worker) -> Read {
        match self.rx.recv() {
            Ok(mut batch) => {
                batch.process(w);
                let _ = self.free.try_send(batch);
                Read::Data
            }
            Err(_) => Read::End,
        }
    }
}
