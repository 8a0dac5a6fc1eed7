//! Where a worker's serialised lines go: straight into the sinks (one worker on the
//! calling thread), or to the one writer thread of a threaded run through a bounded
//! queue with an explicit [`Backpressure`] policy. The writer hands every emptied buffer
//! back on a free list, so the steady state allocates no output buffers.
//!
//! Takes a [`Worker`]'s output buffers; yields nothing but bytes in the sinks and a count
//! of the lines it dropped. Must not parse or re-serialise lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError, bounded};

use super::{PipelineError, Sinks, Stream, Worker};
use crate::export::lines::Lines;

/// Output bytes a worker gathers before handing them on (threaded runs).
pub const HAND_OUT_BYTES: usize = 256 * 1024;
/// How long the end-of-run flush of a [`Backpressure::Drop`] output waits for a stalled
/// writer, once per worker: past it the rest of that worker's flush is dropped (and
/// counted) at once, so shutdown never hangs on a sink that stopped reading.
pub const FINISH_WAIT: Duration = Duration::from_secs(2);

/// What a worker does when the writer is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait for the writer. Replay: nothing is lost offline, the reading slows down.
    Block,
    /// Drop the buffer and count its lines (`nightjar_output_dropped_lines_total`). Live
    /// capture: the rings keep being read whatever the sinks do.
    Drop,
}

/// A worker's way out for its serialised lines.
pub trait Output {
    /// Takes each output buffer of `w` that holds at least `threshold` bytes (every
    /// non-empty one with 1).
    fn take(&mut self, w: &mut Worker, threshold: usize) -> Result<(), PipelineError>;

    /// Takes everything left at the end of a run (or of a chunk of the final flush).
    fn finish(&mut self, w: &mut Worker) -> Result<(), PipelineError>;
}

/// Writes straight into the sinks, on the worker's own thread (inline replay).
pub struct Direct<'a> {
    /// Where the lines go.
    pub sinks: &'a mut Sinks,
}

impl Output for Direct<'_> {
    fn take(&mut self, w: &mut Worker, threshold: usize) -> Result<(), PipelineError> {
        for stream in Stream::ALL {
            let buf = w.buf_mut(stream);
            if !buf.is_empty() && buf.byte_len() >= threshold {
                self.sinks.write(stream, buf)?;
                buf.clear();
            }
        }
        Ok(())
    }

    fn finish(&mut self, w: &mut Worker) -> Result<(), PipelineError> {
        self.take(w, 1)
    }
}

/// A worker's end of the writer's queue (cloned once per worker).
#[derive(Clone)]
pub struct ToWriter {
    tx: Sender<(Stream, Lines)>,
    free: Receiver<Lines>,
    policy: Backpressure,
    dropped: Arc<AtomicU64>,
    /// The end-of-run wait for this worker has been spent (the writer stalled).
    stalled: bool,
}

impl ToWriter {
    /// Lines dropped so far (events, feature lines, EVE records), by every worker.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn count_dropped(&self, lost: &Lines) {
        self.dropped.fetch_add(lost.len() as u64, Ordering::Relaxed);
    }

    /// Sends `stream`'s buffer to the writer and gives the worker a recycled one; a buffer
    /// the policy drops is counted, emptied and handed back to the worker (so a writer
    /// that is behind costs no allocation either).
    fn send(&mut self, w: &mut Worker, stream: Stream, finishing: bool) {
        let full = std::mem::take(w.buf_mut(stream));
        let lost = match self.policy {
            // A send fails only when the writer is gone; its join reports why.
            Backpressure::Block => self.tx.send((stream, full)).err().map(|e| e.into_inner().1),
            // At the end of a live run, one wait of at most FINISH_WAIT per worker: once
            // the writer has stalled that long, the rest of the flush drops at once.
            Backpressure::Drop if finishing && !self.stalled => match self.tx.send_timeout((stream, full), FINISH_WAIT)
            {
                Ok(()) => None,
                Err(SendTimeoutError::Timeout((_, lost))) => {
                    self.stalled = true;
                    self.count_dropped(&lost);
                    Some(lost)
                }
                Err(SendTimeoutError::Disconnected((_, lost))) => Some(lost),
            },
            Backpressure::Drop => match self.tx.try_send((stream, full)) {
                Ok(()) => None,
                Err(TrySendError::Full((_, lost))) => {
                    self.count_dropped(&lost);
                    Some(lost)
                }
                Err(TrySendError::Disconnected((_, lost))) => Some(lost),
            },
        };
        *w.buf_mut(stream) = match lost {
            Some(mut back) => {
                back.clear();
                back
            }
            None => self.free.try_recv().unwrap_or_else(|_| Lines::with_capacity(HAND_OUT_BYTES)),
        };
    }
}

impl Output for ToWriter {
    fn take(&mut self, w: &mut Worker, threshold: usize) -> Result<(), PipelineError> {
        for stream in Stream::ALL {
            let buf = w.buf_mut(stream);
            if !buf.is_empty() && buf.byte_len() >= threshold {
                self.send(w, stream, false);
            }
        }
        Ok(())
    }

    fn finish(&mut self, w: &mut Worker) -> Result<(), PipelineError> {
        for stream in Stream::ALL {
            if !w.buf_mut(stream).is_empty() {
                self.send(w, stream, true);
            }
        }
        Ok(())
    }
}

/// The writer thread: writes every buffer it is handed to its sink, in the order each
/// worker handed them, and returns the emptied buffers to the free list.
pub struct Writer {
    handle: JoinHandle<Result<(), PipelineError>>,
}

impl Writer {
    /// Starts the writer with a queue of `depth` buffers. With `flush_each` every buffer
    /// is flushed to its sink as soon as it is written (live: events reach a file or a
    /// pipe within a tick); otherwise the sinks flush when the writer ends.
    pub fn spawn(
        mut sinks: Sinks,
        depth: usize,
        policy: Backpressure,
        flush_each: bool,
    ) -> Result<(Self, ToWriter), PipelineError> {
        let (tx, rx) = bounded::<(Stream, Lines)>(depth);
        let (free_tx, free) = bounded::<Lines>(depth + 2);
        let handle = std::thread::Builder::new()
            .name("nightjar-writer".into())
            .spawn(move || -> Result<(), PipelineError> {
                for (stream, mut buf) in rx {
                    sinks.write(stream, &buf)?;
                    if flush_each {
                        sinks.flush_stream(stream)?;
                    }
                    buf.clear();
                    let _ = free_tx.try_send(buf);
                }
                sinks.flush()
            })
            .map_err(|source| PipelineError::Output { what: "writer thread", source })?;
        Ok((Self { handle }, ToWriter { tx, free, policy, dropped: Arc::new(AtomicU64::new(0)), stalled: false }))
    }

    /// Waits for the writer to write everything queued (every [`ToWriter`] must have been
    /// dropped) and returns its first error.
    pub fn join(self) -> Result<(), PipelineError> {
        self.handle.join().map_err(|_| PipelineError::WorkerPanic(usize::MAX))?
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;
    use crate::config::Config;
    use crate::export::lines::WriteSink;
    use crate::runtime::Outputs;

    /// A sink that keeps what it is given, and can be made to stall.
    #[derive(Clone, Default)]
    struct Kept {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Kept {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().expect("gate");
            self.bytes.lock().expect("bytes").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn worker() -> Worker {
        Worker::new(&Config::default(), 16, Outputs { events: true, ..Outputs::default() })
    }

    #[test]
    fn block_keeps_every_line_in_order() {
        let kept = Kept::default();
        let sinks = Sinks { events: Some(Box::new(WriteSink(kept.clone()))), ..Sinks::default() };
        let (writer, mut out) = Writer::spawn(sinks, 1, Backpressure::Block, false).expect("writer");
        let mut w = worker();
        for i in 0..200 {
            w.buf_mut(Stream::Events).push_with("k", |b| writeln!(b, "{i}").expect("line"));
            out.take(&mut w, 1).expect("take");
        }
        out.finish(&mut w).expect("finish");
        assert_eq!(out.dropped_lines(), 0);
        drop(out);
        writer.join().expect("join");
        let text = String::from_utf8(kept.bytes.lock().expect("bytes").clone()).expect("utf8");
        let want: String = (0..200).map(|i| i.to_string() + "\n").collect();
        assert_eq!(text, want);
    }

    #[test]
    fn drop_counts_every_line_it_loses() {
        let kept = Kept::default();
        let sinks = Sinks { events: Some(Box::new(WriteSink(kept.clone()))), ..Sinks::default() };
        // The sink stalls: the writer holds one buffer, the queue one more, the rest drop.
        let stall = kept.gate.lock().expect("gate");
        let (writer, mut out) = Writer::spawn(sinks, 1, Backpressure::Drop, true).expect("writer");
        let mut w = worker();
        for i in 0..50 {
            w.buf_mut(Stream::Events).push_with("k", |b| writeln!(b, "a{i}\nb{i}").expect("lines"));
            out.take(&mut w, 1).expect("take");
        }
        let dropped = out.dropped_lines();
        assert!(dropped >= 2 * 47, "a stalled writer must cost dropped lines, not a stalled worker: {dropped}");
        // A dropped batch comes back to the worker emptied, its memory kept.
        let back = w.buf_mut(Stream::Events);
        assert!(back.is_empty() && back.capacity() > 0, "the dropped batch is reused");
        drop(stall);
        drop(out);
        writer.join().expect("join");
        let written = (kept.bytes.lock().expect("bytes").split(|&c| c == b'\n').count() - 1) as u64;
        assert_eq!(written + dropped, 100, "every line is written or counted as dropped");
    }

    #[test]
    fn a_stalled_writer_is_waited_for_once_at_the_end() {
        let kept = Kept::default();
        let sinks = Sinks { events: Some(Box::new(WriteSink(kept.clone()))), ..Sinks::default() };
        let stall = kept.gate.lock().expect("gate");
        let (writer, mut out) = Writer::spawn(sinks, 1, Backpressure::Drop, true).expect("writer");
        let mut w = worker();
        // Fill the writer and its queue, then end the run: the first end-of-run buffer
        // waits (and times out), every later one is dropped without waiting.
        for i in 0..3 {
            w.buf_mut(Stream::Events).push_with("k", |b| writeln!(b, "x{i}").expect("line"));
            out.take(&mut w, 1).expect("take");
            if i == 0 {
                // The writer holds the first batch (stuck in the sink) before the next comes.
                for _ in 0..5000 {
                    if out.tx.is_empty() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert!(out.tx.is_empty(), "the writer took the first batch");
            }
        }
        assert!(!out.stalled);
        for i in 0..5 {
            w.buf_mut(Stream::Events).push_with("k", |b| writeln!(b, "y{i}").expect("line"));
            out.finish(&mut w).expect("finish");
            assert!(out.stalled, "the wait is spent after the first end-of-run buffer");
        }
        drop(stall);
        let dropped = out.dropped_lines();
        drop(out);
        writer.join().expect("join");
        let written = (kept.bytes.lock().expect("bytes").split(|&c| c == b'\n').count() - 1) as u64;
        assert_eq!(written + dropped, 8, "every line is written or counted as dropped");
        assert!(dropped >= 5, "the end-of-run lines behind a stalled writer are dropped: {dropped}");
    }

    #[test]
    fn buffers_are_recycled() {
        let sinks = Sinks { events: Some(Box::new(WriteSink(std::io::sink()))), ..Sinks::default() };
        let (writer, mut out) = Writer::spawn(sinks, 4, Backpressure::Block, false).expect("writer");
        let mut w = worker();
        w.buf_mut(Stream::Events).push_with("k", |b| b.extend_from_slice(b"x\n"));
        out.take(&mut w, 1).expect("take");
        // Once the writer has emptied it, the same allocation comes back.
        let mut back = None;
        for _ in 0..1000 {
            if let Ok(b) = out.free.try_recv() {
                back = Some(b);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let back = back.expect("the writer returned the buffer");
        assert!(back.is_empty());
        drop(out);
        writer.join().expect("join");
    }
}
