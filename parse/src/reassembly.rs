//! In-order reassembly of one direction of a TCP stream.
//!
//! Takes segments (sequence number, payload) in capture order and hands the bytes to a
//! consumer in stream order, as soon as they are contiguous. Retransmissions and overlaps
//! keep the first copy seen of every byte: bytes already delivered, and bytes already
//! buffered ahead of a gap (a later segment only fills the holes between them, whether it
//! arrives in order or out of order, whatever its start): the policy Suricata calls
//! `first`. One policy for every target, so an evader's second copy of a byte is never
//! what Nightjar parses (target-specific policies are not modelled). Segments that arrive
//! ahead of a gap are buffered, up to a byte budget per direction; past the budget they
//! are dropped and counted. Nothing is stored once delivered: consumers keep what they
//! need (a bounded handshake or request buffer).

/// What happened to one pushed segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentOutcome {
    /// Delivered at once (possibly trimmed of an overlap).
    InOrder,
    /// Every byte had been delivered before: a retransmission.
    Duplicate,
    /// Ahead of a gap; buffered until the gap fills.
    Buffered,
    /// Ahead of a gap and over the buffer budget: dropped.
    Dropped,
    /// Empty payload: nothing to do.
    Empty,
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// Sequence number of the next byte to deliver, once known.
    next: Option<u32>,
    /// Buffered out-of-order segments, sorted by sequence number.
    pending: Vec<(u32, Vec<u8>)>,
    pending_bytes: usize,
    budget: usize,
    /// Bytes delivered so far.
    delivered: u64,
    /// Segments that brought new bytes and also covered bytes already kept (delivered or
    /// buffered): overlaps, whose second copy was discarded.
    overlaps: u64,
}

/// Signed distance from `b` to `a` in sequence space (RFC 793 modular arithmetic).
fn seq_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

impl Reassembler {
    /// A reassembler that buffers at most `budget` out-of-order bytes.
    pub fn new(budget: usize) -> Self {
        Self { budget, ..Self::default() }
    }

    /// Records the initial sequence number from a SYN (data starts at ISN + 1).
    pub fn syn(&mut self, isn: u32) {
        if self.next.is_none() {
            self.next = Some(isn.wrapping_add(1));
        }
    }

    /// Bytes delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Segments so far that partly overlapped bytes already kept (their copy of those
    /// bytes discarded): an evasion signal, counted as `reassembly_overlaps`.
    pub fn overlaps(&self) -> u64 {
        self.overlaps
    }

    /// Bytes currently buffered ahead of a gap.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Pushes one segment; contiguous bytes go to `sink` in stream order.
    pub fn push(&mut self, seq: u32, data: &[u8], sink: &mut dyn FnMut(&[u8])) -> SegmentOutcome {
        if data.is_empty() {
            return SegmentOutcome::Empty;
        }
        let next = *self.next.get_or_insert(seq);
        let d = seq_diff(seq, next);
        if d > 0 {
            return self.buffer(seq, data);
        }
        let skip = usize::try_from(-d).unwrap_or(usize::MAX);
        if skip >= data.len() {
            return SegmentOutcome::Duplicate;
        }
        let data = &data[skip..];
        let before = self.overlaps;
        // New up to the first buffered segment; beyond it the buffered first copies win
        // and this segment only fills the holes between them.
        let limit = self
            .pending
            .first()
            .map_or(usize::MAX, |(s, _)| usize::try_from(seq_diff(*s, next).max(0)).unwrap_or(usize::MAX));
        let head = data.len().min(limit);
        self.deliver(&data[..head], sink);
        if head < data.len() {
            self.fill_holes(next.wrapping_add(head as u32), &data[head..], false);
        }
        if skip > 0 && self.overlaps == before {
            self.overlaps += 1;
        }
        self.drain(sink);
        SegmentOutcome::InOrder
    }

    fn deliver(&mut self, bytes: &[u8], sink: &mut dyn FnMut(&[u8])) {
        sink(bytes);
        self.delivered += bytes.len() as u64;
        self.next = self.next.map(|n| n.wrapping_add(bytes.len() as u32));
    }

    fn buffer(&mut self, seq: u32, data: &[u8]) -> SegmentOutcome {
        self.fill_holes(seq, data, true)
    }

    /// Buffers the bytes of `data` (at `seq`, ahead of `next`) that no buffered segment
    /// holds yet: the first copy of every byte stays. With `enforce_budget`, refuses the
    /// whole segment when its new bytes do not fit (an in-order segment's tail is always
    /// kept: it is one segment, and dropping it would lose bytes already acknowledged).
    fn fill_holes(&mut self, seq: u32, data: &[u8], enforce_budget: bool) -> SegmentOutcome {
        let next = self.next.unwrap_or(seq);
        let start = seq_diff(seq, next);
        let end = start + data.len() as i64;
        // The holes of [start, end) between the buffered segments, in order.
        let mut holes: Vec<(i64, i64)> = Vec::new();
        let mut cur = start;
        for (s, seg) in &self.pending {
            let (ps, pe) = (seq_diff(*s, next), seq_diff(*s, next) + seg.len() as i64);
            if pe <= cur {
                continue;
            }
            if ps >= end {
                break;
            }
            if ps > cur {
                holes.push((cur, ps));
            }
            cur = cur.max(pe);
            if cur >= end {
                break;
            }
        }
        if cur < end {
            holes.push((cur, end));
        }
        let new_bytes: i64 = holes.iter().map(|(a, b)| b - a).sum();
        if new_bytes == 0 {
            return SegmentOutcome::Duplicate;
        }
        if enforce_budget && self.pending_bytes + new_bytes as usize > self.budget {
            return SegmentOutcome::Dropped;
        }
        if new_bytes < end - start {
            self.overlaps += 1;
        }
        for (a, b) in holes {
            let piece = &data[(a - start) as usize..(b - start) as usize];
            let at = self.pending.partition_point(|(s, _)| seq_diff(*s, next) <= a);
            self.pending.insert(at, (next.wrapping_add(a as u32), piece.to_vec()));
            self.pending_bytes += piece.len();
        }
        SegmentOutcome::Buffered
    }

    fn drain(&mut self, sink: &mut dyn FnMut(&[u8])) {
        while let Some((seq, _)) = self.pending.first() {
            let Some(next) = self.next else { return };
            let d = seq_diff(*seq, next);
            if d > 0 {
                return;
            }
            let (_, seg) = self.pending.remove(0);
            self.pending_bytes -= seg.len();
            let skip = usize::try_from(-d).unwrap_or(usize::MAX);
            if skip < seg.len() {
                self.deliver(&seg[skip..], sink);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(r: &mut Reassembler, segs: &[(u32, &[u8])]) -> (Vec<u8>, Vec<SegmentOutcome>) {
        let mut out = Vec::new();
        let mut outcomes = Vec::new();
        for (seq, d) in segs {
            outcomes.push(r.push(*seq, d, &mut |b| out.extend_from_slice(b)));
        }
        (out, outcomes)
    }

    #[test]
    fn out_of_order_overlap_and_retransmission() {
        let mut r = Reassembler::new(1024);
        r.syn(99);
        let (out, oc) =
            run(&mut r, &[(106, b"world"), (100, b"hello "), (100, b"hello "), (103, b"lo wor"), (111, b"!")]);
        assert_eq!(out, b"hello world!");
        assert_eq!(
            oc,
            vec![
                SegmentOutcome::Buffered,
                SegmentOutcome::InOrder,
                SegmentOutcome::Duplicate,
                SegmentOutcome::Duplicate,
                SegmentOutcome::InOrder
            ]
        );
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn overlaps_keep_the_first_copy_of_every_byte() {
        // Out of order: "AAAA" at 10..14 first, then "bbbbbb" at 8..14 (a later copy that
        // starts earlier), then the gap 0..8: bytes 10..14 are the first copy's.
        let mut r = Reassembler::new(1024);
        r.syn(u32::MAX);
        let (out, oc) = run(&mut r, &[(10, b"AAAA"), (8, b"bbbbbb"), (0, b"01234567")]);
        assert_eq!(out, b"01234567bbAAAA");
        assert_eq!(oc[1], SegmentOutcome::Buffered);
        assert_eq!(r.pending_bytes(), 0);
        assert_eq!(r.overlaps(), 1, "bbbbbb over AAAA");
        // In order: "AAAA" buffered at 10..14, then "cccccccc" at 8..16 arriving in order:
        // its bytes fill 8..10 and 14..16 only.
        let mut r = Reassembler::new(1024);
        r.syn(u32::MAX);
        let (out, _) = run(&mut r, &[(0, b"01234567"), (10, b"AAAA"), (8, b"cccccccc")]);
        assert_eq!(out, b"01234567ccAAAAcc");
        assert_eq!(r.overlaps(), 1);
        // A later copy wholly inside a buffered one is a duplicate; one spanning two
        // buffered segments fills only the hole between them.
        let mut r = Reassembler::new(1024);
        r.syn(u32::MAX);
        let (out, oc) = run(&mut r, &[(4, b"EE"), (8, b"GG"), (4, b"ee"), (2, b"xxxxxxxxxx"), (0, b"01")]);
        assert_eq!(oc[2], SegmentOutcome::Duplicate);
        assert_eq!(out, b"01xxEExxGGxx");
        assert_eq!(r.overlaps(), 1, "only xxxxxxxxxx overlapped and brought new bytes");
        // Delivered bytes are never replaced (retransmission with other content).
        let mut r = Reassembler::new(1024);
        r.syn(u32::MAX);
        let (out, oc) = run(&mut r, &[(0, b"GET /"), (0, b"XXXXX"), (5, b"a")]);
        assert_eq!(out, b"GET /a");
        assert_eq!(oc[1], SegmentOutcome::Duplicate);
        assert_eq!(r.overlaps(), 0, "a whole retransmission is a duplicate, not an overlap");
        // A segment reaching back into delivered bytes with new ones after them.
        let (out, _) = run(&mut r, &[(3, b"ZZZbc")]);
        assert_eq!(out, b"bc");
        assert_eq!(r.overlaps(), 1);
    }

    #[test]
    fn sequence_wraparound() {
        let mut r = Reassembler::new(1024);
        r.syn(u32::MAX - 2);
        let (out, _) = run(&mut r, &[(1, b"cd"), (u32::MAX - 1, b"ab"), (0, b"Xc")]);
        // 0xffff_fffe: a, 0xffff_ffff: b, 0..2: "Xc", then the buffered "cd" minus its overlap.
        assert_eq!(out, b"abXcd");
    }

    #[test]
    fn budget_is_enforced() {
        let mut r = Reassembler::new(4);
        r.syn(0);
        let (_, oc) = run(&mut r, &[(10, b"abc"), (20, b"def")]);
        assert_eq!(oc, vec![SegmentOutcome::Buffered, SegmentOutcome::Dropped]);
        assert_eq!(r.pending_bytes(), 3);
    }

    #[test]
    fn without_syn_first_segment_sets_base() {
        let mut r = Reassembler::new(16);
        let (out, _) = run(&mut r, &[(5000, b"ab"), (5002, b"cd")]);
        assert_eq!(out, b"abcd");
        assert_eq!(r.delivered(), 4);
    }
}
