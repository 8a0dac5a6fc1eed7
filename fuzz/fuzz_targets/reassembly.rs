//! TCP reassembly against an oracle: every segment is a window of one reference stream
//! (byte at stream offset k is `byte_at(k)`), sent in any order, overlapping, repeated,
//! from any initial sequence number (so sequence numbers wrap). Whatever arrives, the
//! bytes handed on must be that stream's bytes, in order, with no gap, and the buffer
//! must stay within its budget.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nightjar_parse::reassembly::{Reassembler, SegmentOutcome};

const BUDGET: usize = 4096;

fn byte_at(k: u64) -> u8 {
    (k.wrapping_mul(131).wrapping_add(k >> 8) & 0xff) as u8
}

fuzz_target!(|data: &[u8]| {
    let Some((isn, rest)) = data.split_first_chunk::<4>() else { return };
    let isn = u32::from_le_bytes(*isn);
    let mut r = Reassembler::new(BUDGET);
    r.syn(isn);
    let mut delivered = 0u64;
    let mut seg = [0u8; 255];
    // Each segment: stream offset (u16 little-endian) and length (u8).
    for chunk in rest.chunks_exact(3) {
        let offset = u64::from(u16::from_le_bytes([chunk[0], chunk[1]]));
        let len = usize::from(chunk[2]);
        for (i, b) in seg[..len].iter_mut().enumerate() {
            *b = byte_at(offset + i as u64);
        }
        let seq = isn.wrapping_add(1).wrapping_add(offset as u32);
        let outcome = r.push(seq, &seg[..len], &mut |bytes| {
            for &b in bytes {
                assert_eq!(b, byte_at(delivered), "wrong byte at stream offset {delivered}");
                delivered += 1;
            }
        });
        assert!(r.pending_bytes() <= BUDGET, "buffer over budget: {}", r.pending_bytes());
        if len == 0 {
            assert_eq!(outcome, SegmentOutcome::Empty);
        }
        assert_eq!(r.delivered(), delivered, "delivered counter disagrees with the bytes handed on");
    }
});
