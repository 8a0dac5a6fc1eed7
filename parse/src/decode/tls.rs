//! TLS over TCP: a streaming record scanner and handshake parser.
//!
//! Takes the in-order bytes of one direction of a TCP stream (from
//! [`crate::reassembly`]) and yields, without decrypting anything:
//! - the metadata of every record (content type, length) for the record sequence;
//! - the parsed ClientHello, ServerHello, Certificate chain (through `x509-parser`),
//!   ClientKeyExchange and ServerKeyExchange, using `tls-parser`.
//!
//! Handshake messages may span records and TCP segments; their bytes are collected in a
//! buffer bounded by `handshake_bytes` per direction. A message larger than that is
//! skipped (and counted), except a Certificate message whose leading certificates are
//! still parsed. Records after ChangeCipherSpec, and TLS 1.3 handshake records (which
//! travel as encrypted application data), are scanned for length only.

use tls_parser::{
    TlsClientKeyExchangeContents, TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_message_handshake,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Record content type of a handshake record (RFC 8446 5.1).
pub const CONTENT_HANDSHAKE: u8 = 22;
/// Record content type of ChangeCipherSpec.
pub const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
/// Record content type of an alert.
pub const CONTENT_ALERT: u8 = 21;
/// Largest record body accepted: TLSCiphertext of TLS 1.2 may carry 2^14 + 2048 bytes
/// (RFC 5246 6.2.3); anything larger means the stream is not TLS.
pub const MAX_RECORD_BYTES: usize = (1 << 14) + 2048;
/// A ClientHello may be buffered up to this size whatever `handshake_bytes` says: real
/// ones stay under 2 KiB (8 KiB with post-quantum key shares), and padding one past the
/// handshake buffer would otherwise blind the sensor to its fingerprints. One larger than
/// `handshake_bytes` is still parsed, and flagged ([`TlsInfo::oversized_client_hello`]).
pub const MAX_CLIENT_HELLO_BYTES: usize = 64 * 1024;
/// At most this many ClientHellos are kept per flow (a HelloRetryRequest makes two).
pub const MAX_CLIENT_HELLOS: usize = 2;
/// At most this many certificates of a chain are parsed.
pub const MAX_CERTS: usize = 8;

/// The TLS 1.3 HelloRetryRequest random value (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// True for the GREASE values of RFC 8701 (0x0a0a, 0x1a1a, ..., 0xfafa).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// One TLS extension as it appeared on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionMeta {
    /// Extension type.
    pub typ: u16,
    /// Length of the extension data, bytes.
    pub len: u16,
}

/// What a ClientHello offered.
#[derive(Clone, Debug, Default)]
pub struct ClientHello {
    /// `legacy_version` of the ClientHello body.
    pub version: u16,
    /// Offered cipher suites in wire order (GREASE included).
    pub ciphers: Vec<u16>,
    /// Extensions in wire order (GREASE included).
    pub extensions: Vec<ExtensionMeta>,
    /// Server name (first host_name entry of the SNI extension).
    pub sni: Option<String>,
    /// ALPN protocol names in order, raw bytes.
    pub alpn: Vec<Vec<u8>>,
    /// supported_groups (elliptic curves) in order.
    pub groups: Vec<u16>,
    /// ec_point_formats in order.
    pub point_formats: Vec<u8>,
    /// signature_algorithms in order.
    pub sig_algs: Vec<u16>,
    /// supported_versions in order.
    pub supported_versions: Vec<u16>,
    /// Groups of the key_share entries in order.
    pub key_share_groups: Vec<u16>,
    /// Length of the first non-GREASE key_share key, bytes.
    pub key_share_len: u16,
    /// Length of the legacy session id, bytes.
    pub session_id_len: u8,
    /// Number of compression methods offered.
    pub compression_methods: u8,
}

/// What a ServerHello selected.
#[derive(Clone, Debug, Default)]
pub struct ServerHello {
    /// `legacy_version` of the ServerHello body.
    pub version: u16,
    /// Version from the supported_versions extension, when present (TLS 1.3).
    pub selected_version: Option<u16>,
    /// Selected cipher suite.
    pub cipher: u16,
    /// Extensions in wire order.
    pub extensions: Vec<ExtensionMeta>,
    /// Selected ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// This ServerHello is a HelloRetryRequest.
    pub hello_retry: bool,
}

impl ServerHello {
    /// The negotiated protocol version.
    pub fn negotiated_version(&self) -> u16 {
        self.selected_version.unwrap_or(self.version)
    }
}

/// The leaf certificate of the server's chain.
#[derive(Clone, Debug, Default)]
pub struct LeafCert {
    /// Public key algorithm: `rsa`, `ec`, `dsa`, `ed25519`, `ed448`, `other`.
    pub key_alg: &'static str,
    /// Public key size, bits.
    pub key_bits: u32,
    /// Signature algorithm short name (e.g. `sha256WithRSAEncryption`).
    pub sig_alg: String,
    /// Issuer DN equals subject DN.
    pub self_signed: bool,
    /// notBefore, seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// Subject common name.
    pub subject_cn: Option<String>,
    /// Issuer common name.
    pub issuer_cn: Option<String>,
    /// Number of subjectAltName DNS entries.
    pub san_count: u32,
    /// SHA-1 of the DER certificate, lowercase hex (the SSLBL blocklist key).
    pub sha1: String,
}

/// Everything learned from one flow's TLS handshake.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    /// ClientHellos in order (at most [`MAX_CLIENT_HELLOS`]).
    pub client_hellos: Vec<ClientHello>,
    /// ServerHellos in order (at most [`MAX_CLIENT_HELLOS`]; a HelloRetryRequest first).
    pub server_hellos: Vec<ServerHello>,
    /// A HelloRetryRequest was seen.
    pub hello_retry: bool,
    /// Number of certificates in the server's Certificate message.
    pub cert_chain_len: u32,
    /// The server's leaf certificate, when it was readable.
    pub leaf: Option<LeafCert>,
    /// Certificates could not be parsed by `x509-parser`.
    pub cert_parse_errors: u32,
    /// The certificates were encrypted (TLS 1.3): recorded, not an error.
    pub certs_encrypted: bool,
    /// Length of the client's key exchange public value, bytes (ClientKeyExchange, or
    /// the TLS 1.3 key_share).
    pub client_key_len: Option<u32>,
    /// Length of the server's ServerKeyExchange body, bytes.
    pub server_key_exchange_len: Option<u32>,
    /// Alert records seen (either direction).
    pub alerts: u32,
    /// A handshake message did not fit the buffer and was skipped.
    pub handshake_truncated: bool,
    /// A ClientHello larger than `handshake_bytes` (parsed all the same, up to
    /// [`MAX_CLIENT_HELLO_BYTES`]): an evasion signal in itself.
    pub oversized_client_hello: bool,
    /// Handshake messages that tls-parser refused.
    pub parse_errors: u32,
}

impl TlsInfo {
    /// The first ClientHello, which the fingerprints describe.
    pub fn client_hello(&self) -> Option<&ClientHello> {
        self.client_hellos.first()
    }

    /// The last ServerHello: after a HelloRetryRequest, the one that was negotiated.
    pub fn server_hello(&self) -> Option<&ServerHello> {
        self.server_hellos.last()
    }

    fn push_server_hello(&mut self, s: ServerHello) {
        if self.server_hellos.len() < MAX_CLIENT_HELLOS {
            self.server_hellos.reserve_exact(1);
            self.server_hellos.push(s);
        }
    }
}

/// Direction of a stream relative to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Client to server.
    Client,
    /// Server to client.
    Server,
}

/// What the scanner saw in one `feed`: records whose header completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Content type.
    pub content_type: u8,
    /// Body length, bytes.
    pub len: u16,
}

/// Scanner state of one direction.
#[derive(Debug)]
pub struct TlsStream {
    hdr: [u8; 5],
    hdr_len: usize,
    remaining: usize,
    content_type: u8,
    /// After ChangeCipherSpec, handshake records are encrypted.
    encrypted: bool,
    /// The stream stopped looking like TLS.
    desync: bool,
    hs: Vec<u8>,
    hs_cap: usize,
    /// Handshake bytes still to drop from a message that did not fit.
    hs_skip: usize,
}

/// Checks whether `b` starts with a plausible TLS handshake record carrying a
/// handshake message of type `msg_type` (1 = ClientHello, 2 = ServerHello).
pub fn looks_like_handshake(b: &[u8], msg_type: u8) -> bool {
    b.len() >= 6
        && b[0] == CONTENT_HANDSHAKE
        && b[1] == 3
        && b[2] <= 4
        && usize::from(u16::from_be_bytes([b[3], b[4]])) <= MAX_RECORD_BYTES
        && b[5] == msg_type
}

impl TlsStream {
    /// A scanner whose handshake buffer holds at most `hs_cap` bytes.
    pub fn new(hs_cap: usize) -> Self {
        Self {
            hdr: [0; 5],
            hdr_len: 0,
            remaining: 0,
            content_type: 0,
            encrypted: false,
            desync: false,
            hs: Vec::new(),
            hs_cap,
            hs_skip: 0,
        }
    }

    /// The stream stopped looking like TLS.
    pub fn desynced(&self) -> bool {
        self.desync
    }

    /// Consumes in-order stream bytes, reporting each record header to `on_record` and
    /// parsing handshake messages into `info`.
    pub fn feed(&mut self, side: Side, mut data: &[u8], info: &mut TlsInfo, on_record: &mut dyn FnMut(RecordMeta)) {
        while !data.is_empty() && !self.desync {
            if self.remaining == 0 {
                let take = (5 - self.hdr_len).min(data.len());
                self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&data[..take]);
                self.hdr_len += take;
                data = &data[take..];
                if self.hdr_len < 5 {
                    return;
                }
                self.hdr_len = 0;
                let [ct, major, _minor, l0, l1] = self.hdr;
                let len = usize::from(u16::from_be_bytes([l0, l1]));
                if !(20..=24).contains(&ct) || major != 3 || len > MAX_RECORD_BYTES {
                    self.desync = true;
                    return;
                }
                on_record(RecordMeta { content_type: ct, len: len as u16 });
                if ct == CONTENT_ALERT {
                    info.alerts += 1;
                }
                self.content_type = ct;
                self.remaining = len;
                if len == 0 {
                    self.record_done(info);
                }
                continue;
            }
            let take = self.remaining.min(data.len());
            let (body, rest) = data.split_at(take);
            data = rest;
            self.remaining -= take;
            if self.content_type == CONTENT_HANDSHAKE && !self.encrypted {
                self.handshake_bytes(side, body, info);
            }
            if self.remaining == 0 {
                self.record_done(info);
            }
        }
    }

    fn record_done(&mut self, info: &TlsInfo) {
        // Before TLS 1.3, handshake records after ChangeCipherSpec are encrypted. In
        // TLS 1.3 the CCS is a middlebox-compatibility no-op (RFC 8446 D.4): a second
        // ClientHello after a HelloRetryRequest follows it in plaintext, and encrypted
        // handshake messages travel in application-data records anyway.
        // Without a ServerHello in the capture, trust the client's offer.
        let tls13 = info.hello_retry
            || match info.server_hello() {
                Some(s) => s.negotiated_version() >= 0x0304,
                None => info.client_hello().is_some_and(|c| c.supported_versions.iter().any(|v| *v >= 0x0304)),
            };
        if self.content_type == CONTENT_CHANGE_CIPHER_SPEC && !tls13 {
            self.encrypted = true;
        }
    }

    fn handshake_bytes(&mut self, side: Side, mut body: &[u8], info: &mut TlsInfo) {
        if self.hs_skip > 0 {
            let n = self.hs_skip.min(body.len());
            self.hs_skip -= n;
            body = &body[n..];
        }
        if body.is_empty() {
            return;
        }
        self.hs.extend_from_slice(body);
        let mut pos = 0;
        while self.hs.len() - pos >= 4 {
            let m = &self.hs[pos..];
            let msg_len = 4 + ((usize::from(m[1]) << 16) | (usize::from(m[2]) << 8) | usize::from(m[3]));
            // A ClientHello gets a larger buffer (see MAX_CLIENT_HELLO_BYTES).
            let cap =
                if side == Side::Client && m[0] == 1 { self.hs_cap.max(MAX_CLIENT_HELLO_BYTES) } else { self.hs_cap };
            if side == Side::Client && m[0] == 1 && msg_len > self.hs_cap {
                info.oversized_client_hello = true;
            }
            if m.len() < msg_len {
                if msg_len > cap {
                    // Too large to buffer: keep what it tells, drop the rest.
                    info.handshake_truncated = true;
                    if m[0] == 11 && side == Side::Server {
                        parse_partial_certificates(&m[4..], info);
                    }
                    self.hs_skip = msg_len - m.len();
                    pos = self.hs.len();
                }
                break;
            }
            parse_handshake_message(side, &m[..msg_len], info);
            pos += msg_len;
        }
        self.hs.drain(..pos);
        // Between messages the buffer is usually empty: give the memory back, since
        // thousands of flows may sit in a handshake at once.
        if self.hs.is_empty() {
            self.hs = Vec::new();
        }
    }
}

/// Parses one complete handshake message (4-byte header included).
fn parse_handshake_message(side: Side, msg: &[u8], info: &mut TlsInfo) {
    // tls-parser parses a TLS 1.3 Certificate message (with a request context) as TLS 1.2
    // and fails; certificates are encrypted in TLS 1.3 anyway, so that path is rare.
    if side == Side::Server && msg.len() >= 40 && msg[0] == 2 && msg[4] == 0x7f {
        parse_draft_server_hello(&msg[4..], info);
        return;
    }
    let parsed = parse_tls_message_handshake(msg);
    let Ok((_, TlsMessage::Handshake(hs))) = parsed else {
        info.parse_errors += 1;
        return;
    };
    match (side, hs) {
        (Side::Client, TlsMessageHandshake::ClientHello(ch)) => {
            if info.client_hellos.len() < MAX_CLIENT_HELLOS {
                info.client_hellos.reserve_exact(1);
                info.client_hellos.push(client_hello(&ch));
            }
            if info.client_key_len.is_none() {
                let ks = info.client_hellos.last().map_or(0, |c| c.key_share_len);
                if ks > 0 {
                    info.client_key_len = Some(u32::from(ks));
                }
            }
        }
        (Side::Server, TlsMessageHandshake::ServerHello(sh)) => {
            let mut s = ServerHello {
                version: sh.version.0,
                cipher: sh.cipher.0,
                hello_retry: sh.random == HRR_RANDOM,
                ..ServerHello::default()
            };
            if let Some(ext) = sh.ext {
                server_extensions(ext, &mut s);
            }
            info.hello_retry |= s.hello_retry;
            if s.negotiated_version() >= 0x0304 && !s.hello_retry {
                info.certs_encrypted = true;
            }
            info.push_server_hello(s);
        }
        (Side::Server, TlsMessageHandshake::ServerHelloV13Draft18(sh)) => {
            let mut s = ServerHello { version: sh.version.0, cipher: sh.cipher.0, ..ServerHello::default() };
            s.selected_version = Some(sh.version.0);
            if let Some(ext) = sh.ext {
                server_extensions(ext, &mut s);
            }
            info.certs_encrypted = true;
            info.push_server_hello(s);
        }
        (Side::Server, TlsMessageHandshake::HelloRetryRequest(hrr)) => {
            info.hello_retry = true;
            let mut s = ServerHello {
                version: hrr.version.0,
                cipher: hrr.cipher.0,
                hello_retry: true,
                ..ServerHello::default()
            };
            if let Some(ext) = hrr.ext {
                server_extensions(ext, &mut s);
            }
            info.push_server_hello(s);
        }
        (Side::Server, TlsMessageHandshake::Certificate(c)) if info.cert_chain_len == 0 => {
            info.cert_chain_len = c.cert_chain.len() as u32;
            if let Some(first) = c.cert_chain.first() {
                leaf_certificate(first.data, info);
            }
        }
        (Side::Server, TlsMessageHandshake::ServerKeyExchange(ske)) => {
            info.server_key_exchange_len = Some(ske.parameters.len() as u32);
        }
        (Side::Client, TlsMessageHandshake::ClientKeyExchange(cke)) => {
            let len = match cke {
                TlsClientKeyExchangeContents::Dh(b) | TlsClientKeyExchangeContents::Unknown(b) => b.len(),
                TlsClientKeyExchangeContents::Ecdh(p) => p.point.len(),
            };
            info.client_key_len = Some(len as u32);
        }
        _ => {}
    }
}

/// A ServerHello of a TLS 1.3 draft (version 0x7fXX): version, random, cipher suite and
/// extensions, without session id or compression (draft-ietf-tls-tls13-16 4.1.3), which
/// tls-parser only knows for draft 18.
fn parse_draft_server_hello(body: &[u8], info: &mut TlsInfo) {
    let (Some(v), Some(c)) = (body.get(..2), body.get(34..36)) else {
        info.parse_errors += 1;
        return;
    };
    let version = u16::from_be_bytes([v[0], v[1]]);
    let mut s = ServerHello {
        version,
        selected_version: Some(version),
        cipher: u16::from_be_bytes([c[0], c[1]]),
        ..ServerHello::default()
    };
    if let Some(ext) = body.get(38..) {
        server_extensions(ext, &mut s);
    }
    info.certs_encrypted = true;
    info.push_server_hello(s);
}

/// Reads the certificates that are complete in a Certificate message body that was cut.
fn parse_partial_certificates(body: &[u8], info: &mut TlsInfo) {
    if info.cert_chain_len > 0 || body.len() < 3 {
        return;
    }
    let mut p = &body[3..];
    let mut n = 0;
    while p.len() >= 3 {
        let len = (usize::from(p[0]) << 16) | (usize::from(p[1]) << 8) | usize::from(p[2]);
        let Some(der) = p.get(3..3 + len) else { break };
        if n == 0 {
            leaf_certificate(der, info);
        }
        n += 1;
        p = &p[3 + len..];
    }
    // The count is a lower bound: later certificates were not buffered.
    info.cert_chain_len = n.max(1);
}

fn leaf_certificate(der: &[u8], info: &mut TlsInfo) {
    use sha1::Digest;
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        info.cert_parse_errors += 1;
        return;
    };
    let spki = cert.public_key();
    let (key_alg, key_bits) = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => ("rsa", k.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(k)) => ("ec", k.key_size()),
        Ok(x509_parser::public_key::PublicKey::DSA(y)) => ("dsa", y.len() * 8),
        _ => match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => ("ed25519", 256),
            "1.3.101.113" => ("ed448", 456),
            _ => ("other", spki.subject_public_key.data.len() * 8),
        },
    };
    let sig_alg =
        x509_parser::objects::oid2sn(&cert.signature_algorithm.algorithm, x509_parser::objects::oid_registry())
            .map_or_else(|_| cert.signature_algorithm.algorithm.to_id_string(), str::to_owned);
    let cn = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name().next().and_then(|a| a.as_str().ok()).map(str::to_owned)
    };
    let san_count =
        cert.subject_alternative_name().ok().flatten().map_or(0, |san| san.value.general_names.len() as u32);
    info.leaf = Some(LeafCert {
        key_alg,
        key_bits: key_bits as u32,
        sig_alg,
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        subject_cn: cn(cert.subject()),
        issuer_cn: cn(cert.issuer()),
        san_count,
        sha1: hex(&sha1::Sha1::digest(der)),
    });
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Walks an extensions block: (type, data) pairs in wire order. Stops at the first
/// malformed entry.
fn walk_extensions(mut ext: &[u8], mut f: impl FnMut(u16, &[u8])) {
    while ext.len() >= 4 {
        let typ = u16::from_be_bytes([ext[0], ext[1]]);
        let len = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        let Some(data) = ext.get(4..4 + len) else {
            return;
        };
        f(typ, data);
        ext = &ext[4 + len..];
    }
}

fn client_hello(ch: &tls_parser::TlsClientHelloContents<'_>) -> ClientHello {
    let mut c = ClientHello {
        version: ch.version.0,
        ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
        session_id_len: ch.session_id.map_or(0, |s| s.len() as u8),
        compression_methods: ch.comp.len() as u8,
        ..ClientHello::default()
    };
    let Some(ext) = ch.ext else { return c };
    walk_extensions(ext, |typ, data| {
        c.extensions.push(ExtensionMeta { typ, len: data.len() as u16 });
        client_extension(typ, data, &mut c);
    });
    c.extensions.shrink_to_fit();
    c.key_share_groups.shrink_to_fit();
    c
}

/// Re-frames one extension so that tls-parser can parse its body.
fn with_header(typ: u16, data: &[u8], f: impl FnOnce(&[u8])) {
    let mut buf = [0u8; 4];
    buf[..2].copy_from_slice(&typ.to_be_bytes());
    buf[2..].copy_from_slice(&(data.len() as u16).to_be_bytes());
    let mut v = Vec::with_capacity(4 + data.len());
    v.extend_from_slice(&buf);
    v.extend_from_slice(data);
    f(&v);
}

fn client_extension(typ: u16, data: &[u8], c: &mut ClientHello) {
    match typ {
        // key_share (RFC 8446 4.2.8): tls-parser leaves the body raw.
        51 => {
            let Some(mut p) = data.get(2..) else { return };
            while p.len() >= 4 {
                let group = u16::from_be_bytes([p[0], p[1]]);
                let len = u16::from_be_bytes([p[2], p[3]]);
                c.key_share_groups.push(group);
                if c.key_share_len == 0 && !is_grease(group) {
                    c.key_share_len = len;
                }
                let Some(rest) = p.get(4 + usize::from(len)..) else {
                    return;
                };
                p = rest;
            }
        }
        0 | 10 | 11 | 13 | 16 | 43 => with_header(typ, data, |raw| {
            let Ok((_, ext)) = tls_parser::parse_tls_client_hello_extension(raw) else {
                return;
            };
            match ext {
                TlsExtension::SNI(names) => {
                    c.sni = names.iter().find(|(t, _)| t.0 == 0).map(|(_, n)| String::from_utf8_lossy(n).into_owned());
                }
                TlsExtension::EllipticCurves(g) => c.groups = g.iter().map(|g| g.0).collect(),
                TlsExtension::EcPointFormats(p) => c.point_formats = p.to_vec(),
                TlsExtension::SignatureAlgorithms(s) => c.sig_algs = s,
                TlsExtension::ALPN(list) => c.alpn = list.iter().map(|p| p.to_vec()).collect(),
                TlsExtension::SupportedVersions(v) => c.supported_versions = v.iter().map(|v| v.0).collect(),
                _ => {}
            }
        }),
        _ => {}
    }
}

fn server_extensions(ext: &[u8], s: &mut ServerHello) {
    walk_extensions(ext, |typ, data| {
        s.extensions.push(ExtensionMeta { typ, len: data.len() as u16 });
        match typ {
            43 if data.len() == 2 => s.selected_version = Some(u16::from_be_bytes([data[0], data[1]])),
            16
                // ALPN list with exactly one name (RFC 7301 3.1).
                if data.len() >= 3 => {
                    let n = usize::from(data[2]);
                    if let Some(name) = data.get(3..3 + n) {
                        s.alpn = Some(name.to_vec());
                    }
                }
            _ => {}
        }
    });
}

/// Name of a protocol version as Suricata and Zeek print it.
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0200 => "SSLv2",
        0x0300 => "SSLv3",
        0x0301 => "TLSv1",
        0x0302 => "TLSv1.1",
        0x0303 => "TLSv1.2",
        0x0304 => "TLSv1.3",
        0x7e00..=0x7fff | 0xfb00..=0xfbff => "TLSv1.3-draft",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal TLS 1.2 ClientHello record: 2 ciphers, SNI "a.b", ALPN "h2".
    #[rustfmt::skip]
    pub(crate) static CLIENT_HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0x41,             // record: handshake, 65 bytes
        0x01, 0x00, 0x00, 0x3d,                   // ClientHello, 61 bytes
        0x03, 0x03,                               // legacy_version TLS 1.2
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, // random
        0x00,                                     // session id length
        0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f,       // 2 cipher suites
        0x01, 0x00,                               // compression: null
        0x00, 0x10,                               // extensions: 16 bytes
        0x00, 0x00, 0x00, 0x08, 0x00, 0x06, 0x00, 0x00, 0x03, b'a', b'.', b'b', // SNI
        0x00, 0x10, 0x00, 0x00,                   // ALPN with an empty body (malformed on purpose)
    ];

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
    }

    #[test]
    fn scans_split_client_hello() {
        let mut info = TlsInfo::default();
        let mut recs = Vec::new();
        let mut s = TlsStream::new(16384);
        // Feed one byte at a time: records and messages must still parse.
        for b in CLIENT_HELLO {
            s.feed(Side::Client, std::slice::from_ref(b), &mut info, &mut |r| recs.push(r));
        }
        assert_eq!(recs, vec![RecordMeta { content_type: 22, len: 65 }]);
        let ch = info.client_hello().expect("client hello");
        assert_eq!(ch.version, 0x0303);
        assert_eq!(ch.ciphers, vec![0x1301, 0xc02f]);
        assert_eq!(ch.sni.as_deref(), Some("a.b"));
        assert_eq!(ch.extensions, vec![ExtensionMeta { typ: 0, len: 8 }, ExtensionMeta { typ: 16, len: 0 }]);
        assert!(!s.desynced());
    }

    /// A ClientHello with SNI "a.b" and a padding extension of `pad` bytes, in records of
    /// at most 16 KiB.
    fn padded_hello(pad: usize) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0; 32]);
        body.push(0);
        body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f, 0x01, 0x00]);
        let mut ext = vec![0x00, 0x00, 0x00, 0x08, 0x00, 0x06, 0x00, 0x00, 0x03, b'a', b'.', b'b', 0x00, 0x15];
        ext.extend_from_slice(&u16::try_from(pad).expect("pad").to_be_bytes());
        ext.extend(std::iter::repeat_n(0u8, pad));
        body.extend_from_slice(&u16::try_from(ext.len()).expect("ext").to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![0x01];
        msg.extend_from_slice(&u32::try_from(body.len()).expect("len").to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        let mut out = Vec::new();
        for chunk in msg.chunks(16384) {
            out.extend_from_slice(&[0x16, 0x03, 0x01]);
            out.extend_from_slice(&u16::try_from(chunk.len()).expect("rec").to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn a_client_hello_padded_past_the_buffer_is_parsed_and_flagged() {
        // 30,000 bytes of padding: two records, past the 16 KiB handshake buffer.
        let mut info = TlsInfo::default();
        let mut s = TlsStream::new(16384);
        s.feed(Side::Client, &padded_hello(30_000), &mut info, &mut |_| {});
        let ch = info.client_hello().expect("parsed despite its size");
        assert_eq!(ch.sni.as_deref(), Some("a.b"));
        assert_eq!(ch.extensions.last().map(|e| (e.typ, e.len)), Some((21, 30_000)));
        assert!(info.oversized_client_hello && !info.handshake_truncated);
        // An ordinary one is not flagged.
        let mut info = TlsInfo::default();
        TlsStream::new(16384).feed(Side::Client, &padded_hello(100), &mut info, &mut |_| {});
        assert!(info.client_hello().is_some() && !info.oversized_client_hello);
        // Past 64 KiB it is skipped, flagged and counted as truncated, never buffered.
        let mut info = TlsInfo::default();
        let mut s = TlsStream::new(16384);
        let mut big = padded_hello(65_000);
        // Declare a 100 KiB message: more than any buffer takes.
        big[6..9].copy_from_slice(&(100u32 * 1024).to_be_bytes()[1..]);
        s.feed(Side::Client, &big, &mut info, &mut |_| {});
        assert!(info.handshake_truncated && info.oversized_client_hello && info.client_hello().is_none());
    }

    #[test]
    fn non_tls_desyncs() {
        let mut info = TlsInfo::default();
        let mut s = TlsStream::new(16384);
        s.feed(Side::Client, b"GET / HTTP/1.1\r\n", &mut info, &mut |_| {});
        assert!(s.desynced());
        assert!(info.client_hellos.is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        // Every truncation and single-byte corruption of the fixture.
        for cut in 0..CLIENT_HELLO.len() {
            let mut info = TlsInfo::default();
            let mut s = TlsStream::new(64);
            s.feed(Side::Client, &CLIENT_HELLO[..cut], &mut info, &mut |_| {});
        }
        for i in 0..CLIENT_HELLO.len() {
            for v in [0u8, 0xff, 0x7f] {
                let mut d = CLIENT_HELLO.to_vec();
                d[i] = v;
                let mut info = TlsInfo::default();
                let mut s = TlsStream::new(16384);
                s.feed(Side::Client, &d, &mut info, &mut |_| {});
                s.feed(Side::Server, &d, &mut info, &mut |_| {});
            }
        }
    }
}
