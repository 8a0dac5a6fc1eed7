//! The unit of output: a batch of serialised lines of one stream (JSON events, feature
//! lines, EVE records), each with its message key (the flow's Community ID) kept beside
//! it, and the one trait every sink implements over such a batch ([`LineSink`]): files
//! and stdout write the bytes, Kafka sends one message per line keyed from the flow, not
//! from a search of the line.
//!
//! Workers serialise into a [`Lines`] they own and reuse; the writer hands batches to the
//! sinks. Must not parse what it carries.

use std::io::Write;

/// Serialised lines and their keys. Cleared and refilled, never shrunk: the steady state
/// allocates nothing.
#[derive(Debug, Default)]
pub struct Lines {
    bytes: Vec<u8>,
    keys: Vec<u8>,
    /// Per line: end of the line in `bytes` (after its `\n`), end of its key in `keys`.
    ends: Vec<(usize, usize)>,
}

impl Lines {
    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Self { bytes: Vec::with_capacity(bytes), keys: Vec::new(), ends: Vec::new() }
    }

    /// Appends what `write` serialises (one or more complete lines, each ending in `\n`),
    /// every line keyed by `key`. Bytes after the last `\n` are not a line: they are cut.
    pub fn push_with(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        let end = self.bytes[start..].iter().rposition(|&b| b == b'\n').map_or(start, |i| start + i + 1);
        self.bytes.truncate(end);
        let mut at = start;
        while let Some(i) = self.bytes[at..end].iter().position(|&b| b == b'\n') {
            at += i + 1;
            self.keys.extend_from_slice(key.as_bytes());
            self.ends.push((at, self.keys.len()));
        }
    }

    /// Lines held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no line is held.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes held (every line with its `\n`).
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes the batch can hold before it grows.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Every line, with its `\n`, back to back.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Each line (without its `\n`) with its key.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut from = (0, 0);
        self.ends.iter().map(move |&(line_end, key_end)| {
            let item = (&self.bytes[from.0..line_end - 1], &self.keys[from.1..key_end]);
            from = (line_end, key_end);
            item
        })
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.keys.clear();
        self.ends.clear();
    }
}

/// Where a stream's lines end up. One batch at a time, on the writer's thread.
pub trait LineSink: Send {
    /// Writes (or queues) every line of `lines`.
    fn write_lines(&mut self, lines: &Lines) -> std::io::Result<()>;

    /// Pushes what is buffered towards its destination.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// A byte stream (a file, stdout) as a sink: the lines as they are.
pub struct WriteSink<W>(pub W);

impl<W: Write + Send> LineSink for WriteSink<W> {
    fn write_lines(&mut self, lines: &Lines) -> std::io::Result<()> {
        self.0.write_all(lines.bytes())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Two sinks for one stream (events to a file and to Kafka).
pub struct Tee(pub Box<dyn LineSink>, pub Box<dyn LineSink>);

impl LineSink for Tee {
    fn write_lines(&mut self, lines: &Lines) -> std::io::Result<()> {
        self.0.write_lines(lines)?;
        self.1.write_lines(lines)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_keeps_its_key() {
        let mut l = Lines::default();
        l.push_with("1:aaa", |b| b.extend_from_slice(b"{\"x\":1}\n"));
        // One flow, two records (EVE writes an alert and a flow record).
        l.push_with("1:bb", |b| b.extend_from_slice(b"{\"y\":2}\n{\"z\":3}\n"));
        // A serialiser that wrote nothing, and one cut before its newline.
        l.push_with("1:c", |_| {});
        l.push_with("1:d", |b| b.extend_from_slice(b"{\"cut\":"));
        let got: Vec<(&[u8], &[u8])> = l.iter().collect();
        assert_eq!(got, [(&b"{\"x\":1}"[..], &b"1:aaa"[..]), (b"{\"y\":2}", b"1:bb"), (b"{\"z\":3}", b"1:bb")]);
        assert_eq!(l.len(), 3);
        assert_eq!(l.bytes(), b"{\"x\":1}\n{\"y\":2}\n{\"z\":3}\n");
        let cap = l.bytes.capacity();
        l.clear();
        assert!(l.is_empty() && l.byte_len() == 0 && l.bytes.capacity() == cap);
    }

    #[test]
    fn tee_writes_both() {
        let mut l = Lines::default();
        l.push_with("k", |b| b.extend_from_slice(b"a\n"));
        let mut t = Tee(Box::new(WriteSink(Vec::new())), Box::new(WriteSink(Vec::new())));
        t.write_lines(&l).expect("tee");
        t.flush().expect("flush");
    }
}
