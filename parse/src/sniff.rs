//! What a stream carries, decided from its first bytes however the sender segmented
//! them. A ClientHello whose first segment holds 1 byte, or an HTTP method split over
//! three segments, is told apart as surely as one that arrives whole: the first bytes of
//! each direction are held (at most [`SNIFF_BYTES`]) until they decide.
//!
//! A PROXY protocol header (HAProxy, v1 text or v2 binary), which load balancers put in
//! front of the client's first bytes, is skipped, once per stream, and the stream is
//! then decided from what follows.

use crate::decode::http::{Prefix, request_prefix};
use crate::decode::tls::{Side, looks_like_handshake};
// PROXY protocol v1 and v2 signatures (section 2.2): the XDP program's, shared.
use nightjar_common::{PROXY_V1, PROXY_V2};

/// Bytes held before a stream is decided: a TLS record header and handshake type (6),
/// the longest HTTP method and its space (10), a PROXY v2 header (16).
pub const SNIFF_BYTES: usize = 16;
/// Longest PROXY v1 line, CRLF included (the specification's section 2.1).
const PROXY_V1_MAX: usize = 107;
/// Largest PROXY v2 header we skip: the 16-byte header plus its address block and TLVs.
const PROXY_V2_MAX: usize = 16 + 1024;

/// What the first bytes of a stream are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A TLS handshake record.
    Tls,
    /// An HTTP request.
    Http,
    /// Anything else (probed for TLS later on, for STARTTLS and proxies).
    Text,
}

/// One step of the sniffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Every byte was taken; nothing decided yet.
    Pending,
    /// Decided: hand `held` and then `rest` to the parser of `start`.
    Decided { start: Start, held: &'a [u8], rest: &'a [u8] },
}

/// Sniffer state of one direction.
#[derive(Clone, Debug, Default)]
pub struct Sniffer {
    buf: [u8; SNIFF_BYTES],
    len: u8,
    /// Bytes of a PROXY header still to skip (v2), or the v1 line's length so far.
    skip: u16,
    in_v1_line: bool,
    proxied: bool,
}

/// Classifies held bytes; `None` while they could still be more than one thing.
fn classify(b: &[u8], side: Side, proxied: bool) -> Option<Classified> {
    if side == Side::Client && !proxied {
        if b.starts_with(PROXY_V1) {
            return Some(Classified::ProxyV1);
        }
        if b.len() < PROXY_V1.len() && PROXY_V1.starts_with(b) {
            return None;
        }
        if b.len() >= 16 && b[..12] == PROXY_V2 && b[12] >> 4 == 2 {
            let len = usize::from(u16::from_be_bytes([b[14], b[15]]));
            return Some(Classified::ProxyV2(16 + len));
        }
        if b.len() < 16 && (PROXY_V2.starts_with(b) || b.starts_with(&PROXY_V2)) {
            return None;
        }
    }
    let msg_type = if side == Side::Client { 1 } else { 2 };
    if b.len() >= 6 {
        if looks_like_handshake(b, msg_type) {
            return Some(Classified::Start(Start::Tls));
        }
    } else if tls_prefix(b) {
        return None;
    }
    if side == Side::Client {
        match request_prefix(b) {
            Prefix::Yes => return Some(Classified::Start(Start::Http)),
            Prefix::Maybe => return None,
            Prefix::No => {}
        }
    }
    Some(Classified::Start(Start::Text))
}

/// True when `b` (shorter than 6 bytes) can begin a TLS handshake record: content type
/// 22, major version 3, minor version at most 4 (the length bytes can be anything).
fn tls_prefix(b: &[u8]) -> bool {
    b.first().is_none_or(|&t| t == 22) && b.get(1).is_none_or(|&v| v == 3) && b.get(2).is_none_or(|&v| v <= 4)
}

enum Classified {
    Start(Start),
    ProxyV1,
    ProxyV2(usize),
}

/// What [`Sniffer::push`] did besides its step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notes {
    /// A PROXY protocol header was skipped.
    pub proxy_header: bool,
}

impl Sniffer {
    /// Takes the next in-order bytes of the stream.
    pub fn push<'a>(&'a mut self, mut data: &'a [u8], side: Side, notes: &mut Notes) -> Step<'a> {
        loop {
            if self.in_v1_line {
                // Inside a PROXY v1 line: skip through its LF.
                if let Some(i) = data.iter().position(|&c| c == b'\n') {
                    self.in_v1_line = false;
                    self.finish_proxy(notes);
                    data = &data[i + 1..];
                } else {
                    self.skip = self.skip.saturating_add(data.len().min(usize::from(u16::MAX)) as u16);
                    if usize::from(self.skip) > PROXY_V1_MAX {
                        // Not a PROXY line after all: text, from here on.
                        self.in_v1_line = false;
                        return Step::Decided { start: Start::Text, held: &[], rest: data };
                    }
                    return Step::Pending;
                }
            }
            if self.skip > 0 {
                let n = usize::from(self.skip).min(data.len());
                self.skip -= n as u16;
                data = &data[n..];
                if self.skip > 0 {
                    return Step::Pending;
                }
                self.finish_proxy(notes);
            }
            if data.is_empty() && self.len == 0 {
                return Step::Pending;
            }
            let have = usize::from(self.len);
            let take = (SNIFF_BYTES - have).min(data.len());
            self.buf[have..have + take].copy_from_slice(&data[..take]);
            self.len += take as u8;
            let rest = &data[take..];
            let held = usize::from(self.len);
            let decided = classify(&self.buf[..held], side, self.proxied);
            let decided = match decided {
                None if held < SNIFF_BYTES => return Step::Pending,
                None => Classified::Start(Start::Text),
                Some(c) => c,
            };
            match decided {
                Classified::Start(start) => {
                    self.len = 0;
                    return Step::Decided { start, held: &self.buf[..held], rest };
                }
                Classified::ProxyV1 => {
                    self.proxied = true;
                    let line = &self.buf[..held];
                    if let Some(i) = line.iter().position(|&c| c == b'\n') {
                        // The whole line is held: keep what follows it, then go on.
                        let after = held - (i + 1);
                        self.buf.copy_within(i + 1..held, 0);
                        self.len = after as u8;
                        self.finish_proxy(notes);
                        // The held tail stays in `buf`; the loop appends `rest` to it.
                        data = rest;
                    } else {
                        self.in_v1_line = true;
                        self.skip = held as u16;
                        self.len = 0;
                        data = rest;
                    }
                }
                Classified::ProxyV2(total) => {
                    self.proxied = true;
                    self.len = 0;
                    if total > PROXY_V2_MAX {
                        return Step::Decided { start: Start::Text, held: &[], rest };
                    }
                    // `held` is exactly the 16-byte fixed header.
                    self.skip = (total - held) as u16;
                    data = rest;
                    if self.skip == 0 {
                        self.finish_proxy(notes);
                    }
                }
            }
        }
    }

    fn finish_proxy(&mut self, notes: &mut Notes) {
        self.skip = 0;
        notes.proxy_header = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of `cut` bytes; returns the decision and every byte handed
    /// on after it.
    fn run(stream: &[u8], cut: usize, side: Side) -> (Option<Start>, Vec<u8>, bool) {
        let mut s = Sniffer::default();
        let mut notes = Notes::default();
        let mut start = None;
        let mut out = Vec::new();
        for piece in stream.chunks(cut) {
            if start.is_some() {
                out.extend_from_slice(piece);
                continue;
            }
            if let Step::Decided { start: st, held, rest } = s.push(piece, side, &mut notes) {
                start = Some(st);
                out.extend_from_slice(held);
                out.extend_from_slice(rest);
            }
        }
        (start, out, notes.proxy_header)
    }

    const HELLO: &[u8] = &[22, 3, 1, 0, 0x40, 1, 0, 0, 0x3c, 3, 3, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];

    #[test]
    fn tls_and_http_are_told_apart_at_every_segmentation() {
        for cut in 1..=HELLO.len() {
            let (start, out, _) = run(HELLO, cut, Side::Client);
            assert_eq!(start, Some(Start::Tls), "cut {cut}");
            assert_eq!(out, HELLO, "cut {cut}: every byte handed on, in order");
        }
        let req = b"PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 1..=req.len() {
            let (start, out, _) = run(req, cut, Side::Client);
            assert_eq!(start, Some(Start::Http), "cut {cut}");
            assert_eq!(out, req.as_slice());
        }
        assert_eq!(run(b"SSH-2.0-OpenSSH_9.2\r\n", 1, Side::Client).0, Some(Start::Text));
        assert_eq!(run(b"\x16\x03\x03\x00\x10\x02xxxx", 2, Side::Server).0, Some(Start::Tls));
        assert_eq!(run(b"\x16\x03\x03", 3, Side::Client).0, None, "still undecided");
    }

    #[test]
    fn proxy_headers_are_skipped_once() {
        let mut v1 = b"PROXY TCP4 198.18.0.1 198.18.0.2 40000 443\r\n".to_vec();
        v1.extend_from_slice(HELLO);
        for cut in 1..=v1.len() {
            let (start, out, proxied) = run(&v1, cut, Side::Client);
            assert_eq!(start, Some(Start::Tls), "cut {cut}");
            assert_eq!(out, HELLO, "cut {cut}");
            assert!(proxied);
        }
        let mut short = b"PROXY UNKNOWN\r\n".to_vec();
        short.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        for cut in 1..=short.len() {
            let (start, out, _) = run(&short, cut, Side::Client);
            assert_eq!(start, Some(Start::Http), "cut {cut}");
            assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n", "cut {cut}");
        }
        let mut v2 = PROXY_V2.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 12]);
        v2.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x40, 1, 0xbb]);
        v2.extend_from_slice(HELLO);
        for cut in 1..=v2.len() {
            let (start, out, proxied) = run(&v2, cut, Side::Client);
            assert_eq!(start, Some(Start::Tls), "cut {cut}");
            assert_eq!(out, HELLO, "cut {cut}");
            assert!(proxied);
        }
        // A second PROXY line is the client's own text, not a header to skip.
        let mut twice = b"PROXY UNKNOWN\r\n".to_vec();
        twice.extend_from_slice(b"PROXY UNKNOWN\r\n");
        assert_eq!(run(&twice, 64, Side::Client).0, Some(Start::Text));
        // A "PROXY " line that never ends is text once it passes the longest header.
        let endless = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(run(&endless, 7, Side::Client).0, Some(Start::Text));
    }
}
