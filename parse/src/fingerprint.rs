//! TLS client and server fingerprints over the normalised hello parameters of
//! [`crate::decode::tls`]: JA3 and JA3S (Salesforce, BSD-3-Clause) and JA4 (FoxIO,
//! BSD-3-Clause). JA4S, JA4H, JA4X and the rest of JA4+ are under the FoxIO License 1.1
//! and deliberately not implemented.
//!
//! Fingerprints are computed once per flow ([`Fingerprints::of`], when its record is
//! finished), never per packet; the event, the EVE records and the learner's intel lookup
//! all read that one computation.

use std::fmt::Write;

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::decode::tls::{ClientHello, ServerHello, TlsInfo, hex, is_grease};

/// Transport for the first JA4 character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP (`t`).
    Tcp,
    /// QUIC (`q`).
    Quic,
    /// DTLS (`d`).
    Dtls,
}

/// A fingerprint string and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// The string that was hashed (JA3 "full"; JA4 "raw" `_r` form).
    pub raw: String,
    /// The fingerprint as published (MD5 for JA3, `a_b_c` for JA4).
    pub hash: String,
}

/// A flow's fingerprints, computed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprints {
    /// JA3 of the ClientHello.
    pub ja3: Option<Fingerprint>,
    /// JA3S of the ServerHello.
    pub ja3s: Option<Fingerprint>,
    /// JA4 (TCP) of the ClientHello.
    pub ja4: Option<Fingerprint>,
}

impl Fingerprints {
    /// The fingerprints of a flow's TLS handshake (none without one).
    pub fn of(tls: Option<&TlsInfo>) -> Self {
        let ch = tls.and_then(TlsInfo::client_hello);
        let sh = tls.and_then(TlsInfo::server_hello);
        Self { ja3: ch.map(ja3), ja3s: sh.map(ja3s), ja4: ch.map(|c| ja4(c, Transport::Tcp)) }
    }
}

fn join_dec<T: Copy + Into<u32>>(out: &mut String, values: impl Iterator<Item = T>) {
    let mut first = true;
    for v in values {
        if !first {
            out.push('-');
        }
        first = false;
        let _ = write!(out, "{}", v.into());
    }
}

/// JA3: `version,ciphers,extensions,groups,point_formats`, GREASE removed, MD5.
pub fn ja3(ch: &ClientHello) -> Fingerprint {
    let mut s = String::with_capacity(256);
    let _ = write!(s, "{},", ch.version);
    join_dec(&mut s, ch.ciphers.iter().copied().filter(|c| !is_grease(*c)));
    s.push(',');
    join_dec(&mut s, ch.extensions.iter().map(|e| e.typ).filter(|t| !is_grease(*t)));
    s.push(',');
    join_dec(&mut s, ch.groups.iter().copied().filter(|g| !is_grease(*g)));
    s.push(',');
    join_dec(&mut s, ch.point_formats.iter().copied());
    let hash = hex(&Md5::digest(s.as_bytes()));
    Fingerprint { raw: s, hash }
}

/// JA3S: `version,cipher,extensions`, MD5.
pub fn ja3s(sh: &ServerHello) -> Fingerprint {
    let mut s = String::with_capacity(64);
    let _ = write!(s, "{},{},", sh.version, sh.cipher);
    join_dec(&mut s, sh.extensions.iter().map(|e| e.typ).filter(|t| !is_grease(*t)));
    let hash = hex(&Md5::digest(s.as_bytes()));
    Fingerprint { raw: s, hash }
}

fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 | 0x0200 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The two ALPN characters of JA4_a: the first and last characters of the first ALPN
/// value, each non-ASCII character replaced by `9`, or `00` without ALPN. This is what
/// FoxIO's reference implementations print (the `tls-non-ascii-alpn` vector expects
/// `99` for the bytes `ba ad`), rather than the later hex rule of the prose spec.
fn ja4_alpn(alpn: Option<&[u8]>) -> [char; 2] {
    let Some(v) = alpn.filter(|v| !v.is_empty()) else { return ['0', '0'] };
    let text = String::from_utf8_lossy(v);
    let ascii_or_9 = |c: char| if c.is_ascii() { c } else { '9' };
    let first = text.chars().next().map_or('0', ascii_or_9);
    let last = text.chars().next_back().map_or('0', ascii_or_9);
    [first, last]
}

fn sha256_12(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    hex(&d[..6])
}

fn join_hex(values: &[u16]) -> String {
    let mut s = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v:04x}");
    }
    s
}

/// JA4 (FoxIO, BSD-3-Clause): `a_b_c`, where a is transport, version, SNI, counts and
/// ALPN; b the truncated SHA-256 of the sorted ciphers; c that of the sorted extensions
/// (without SNI and ALPN) and the signature algorithms in order.
pub fn ja4(ch: &ClientHello, transport: Transport) -> Fingerprint {
    let ciphers: Vec<u16> = ch.ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
    let exts: Vec<u16> = ch.extensions.iter().map(|e| e.typ).filter(|t| !is_grease(*t)).collect();
    let version = ch.supported_versions.iter().copied().filter(|v| !is_grease(*v)).max().unwrap_or(ch.version);
    let sni = if exts.contains(&0) { 'd' } else { 'i' };
    let alpn = ja4_alpn(ch.alpn.first().map(Vec::as_slice));
    let t = match transport {
        Transport::Tcp => 't',
        Transport::Quic => 'q',
        Transport::Dtls => 'd',
    };
    let a = format!(
        "{t}{}{sni}{:02}{:02}{}{}",
        ja4_version(version),
        ciphers.len().min(99),
        exts.len().min(99),
        alpn[0],
        alpn[1]
    );

    let mut sorted_ciphers = ciphers;
    sorted_ciphers.sort_unstable();
    let b_raw = join_hex(&sorted_ciphers);

    let mut sorted_exts: Vec<u16> = exts.into_iter().filter(|t| *t != 0 && *t != 16).collect();
    sorted_exts.sort_unstable();
    let sig_algs: Vec<u16> = ch.sig_algs.iter().copied().filter(|s| !is_grease(*s)).collect();
    let mut c_raw = join_hex(&sorted_exts);
    if !sig_algs.is_empty() {
        c_raw.push('_');
        c_raw.push_str(&join_hex(&sig_algs));
    }

    let b = if sorted_ciphers.is_empty() { "000000000000".to_owned() } else { sha256_12(&b_raw) };
    let c = if sorted_exts.is_empty() { "000000000000".to_owned() } else { sha256_12(&c_raw) };
    Fingerprint { raw: format!("{a}_{b_raw}_{c_raw}"), hash: format!("{a}_{b}_{c}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tls::ExtensionMeta;

    fn hello() -> ClientHello {
        ClientHello {
            version: 0x0303,
            ciphers: vec![0x0a0a, 0x1301, 0x1302, 0xc02b],
            extensions: [0x1a1a, 0, 23, 65281, 10, 11, 16, 13, 43, 51]
                .into_iter()
                .map(|typ| ExtensionMeta { typ, len: 0 })
                .collect(),
            groups: vec![0x2a2a, 29, 23],
            point_formats: vec![0],
            sig_algs: vec![0x0403, 0x0804],
            supported_versions: vec![0x3a3a, 0x0304, 0x0303],
            alpn: vec![b"h2".to_vec()],
            ..ClientHello::default()
        }
    }

    #[test]
    fn ja3_excludes_grease() {
        let f = ja3(&hello());
        assert_eq!(f.raw, "771,4865-4866-49195,0-23-65281-10-11-16-13-43-51,29-23,0");
        assert_eq!(f.hash.len(), 32);
    }

    #[test]
    fn ja4_shape() {
        let f = ja4(&hello(), Transport::Tcp);
        assert!(f.hash.starts_with("t13d0309h2_"), "{}", f.hash);
        assert_eq!(f.raw, "t13d0309h2_1301,1302,c02b_000a,000b,000d,0017,002b,0033,ff01_0403,0804");
    }

    #[test]
    fn ja4_alpn_rules() {
        assert_eq!(ja4_alpn(None), ['0', '0']);
        assert_eq!(ja4_alpn(Some(b"http/1.1")), ['h', '1']);
        assert_eq!(ja4_alpn(Some(&[0xba, 0xad])), ['9', '9']);
        assert_eq!(ja4_alpn(Some(b"h")), ['h', 'h']);
    }
}
