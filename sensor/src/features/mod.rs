//! Stage 4: features. Takes a [`FlowRecord`] and yields a [`FeatureVector`]: a fixed
//! list of static features (TLS metadata, certificate, HTTP request, flow counters), the
//! per-packet and per-record sequences of the flow head, and the URL tokens of an HTTP
//! request for the TF-IDF branch of the model, and a few of the flow's strings (the HTTP
//! request, or the TLS names) for its character branch ([`http_chars`], [`tls_chars`]).
//!
//! This module is the single definition of the features. Its layout is a versioned
//! contract with `model/` ([`SCHEMA_VERSION`], [`FEATURE_NAMES`], the sequence columns):
//! `nightjar schema` writes it as `model/feature_schema.json`, and a test fails when the
//! committed file and this code disagree. If you change one, change the other and bump
//! the version.
//!
//! Values are raw but bounded (log1p of counts, lengths and times; ratios; flags). The
//! model's scaling is fitted in `model/` and stored in the schema file.
//!
//! Must not read anything but the record (no table, clock or model state): the same
//! record gives the same vector in replay, live capture and `model/`.

/// URL tokens, in the parser crate [`nightjar_parse`] (re-exported here).
pub use nightjar_parse::url;

use std::fmt::Arguments;
use std::sync::LazyLock;

use serde::Serialize;

use crate::decode::tls::{ClientHello, is_grease};
use crate::flow::{Dir, FlowRecord, TcpSeen};

/// Version of the feature layout; bump on any change to names, order or transforms.
/// Version 2 added [`FeatureVector::chars`]; the static features and sequences are
/// those of version 1, so a version-1 model (no character input) still loads.
pub const SCHEMA_VERSION: u32 = 2;
/// Bytes of a flow's strings kept for the model's character input.
pub const CHARS: usize = 256;
/// Rows of each sequence (the flow head length used for training).
pub const SEQ_LEN: usize = 32;
/// Columns of a packet-sequence row.
pub const PACKET_COLUMNS: [&str; 6] = ["len", "dir", "log_iat_ms", "syn", "fin_rst", "present"];
/// Columns of a record-sequence row.
pub const RECORD_COLUMNS: [&str; 6] = ["len", "dir", "log_iat_ms", "handshake", "app_data", "present"];

/// Cipher suites with a feature of their own (IANA values; everything else is "other").
pub const CIPHER_VOCAB: [u16; 44] = [
    0x0004, 0x0005, 0x000a, 0x002f, 0x0033, 0x0035, 0x0039, 0x003c, 0x003d, 0x0067, 0x006b, 0x009c, 0x009d, 0x009e,
    0x009f, 0x00ff, 0x1301, 0x1302, 0x1303, 0x1304, 0xc007, 0xc008, 0xc009, 0xc00a, 0xc011, 0xc012, 0xc013, 0xc014,
    0xc023, 0xc024, 0xc027, 0xc028, 0xc02b, 0xc02c, 0xc02f, 0xc030, 0xcca8, 0xcca9, 0xccaa, 0x0000, 0x0001, 0x0002,
    0x0003, 0x0018,
];
/// Extension types with features of their own.
pub const EXTENSION_VOCAB: [u16; 28] = [
    0, 5, 10, 11, 13, 15, 16, 17, 18, 21, 22, 23, 27, 28, 34, 35, 41, 42, 43, 44, 45, 49, 50, 51, 57, 17513, 65037,
    65281,
];
/// Named groups with a feature of their own.
pub const GROUP_VOCAB: [u16; 10] = [29, 23, 24, 25, 30, 256, 257, 0x11ec, 0x6399, 0x11eb];

/// Names of the static features, in order.
pub static FEATURE_NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut names = NameSink(Vec::new());
    static_features(&FlowRecord::placeholder(), &mut names);
    names.0
});

/// The features of one flow (also read back from feature lines and fixtures).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct FeatureVector {
    /// Static features, in [`FEATURE_NAMES`] order.
    pub static_features: Vec<f32>,
    /// [`SEQ_LEN`] rows of [`PACKET_COLUMNS`], zero-padded.
    pub packets: Vec<[f32; 6]>,
    /// [`SEQ_LEN`] rows of [`RECORD_COLUMNS`], zero-padded.
    pub records: Vec<[f32; 6]>,
    /// URL tokens of the first HTTP request (empty for TLS).
    pub url_tokens: Vec<String>,
    /// The flow's strings for the character input, at most [`CHARS`] bytes: the first HTTP
    /// request ([`http_chars`]) or the TLS names ([`tls_chars`]); empty for other flows.
    /// Absent in version-1 feature lines.
    #[serde(default)]
    pub chars: Vec<u8>,
}

/// The sensor-owned part of `model/feature_schema.json`: version, static feature
/// names, sequence layout and URL tokeniser. `model/` adds the fitted scaling and TF-IDF
/// vocabulary to the same file; the names and layout here are checked against it.
pub fn schema_json() -> String {
    let v = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "static_features": &*FEATURE_NAMES,
        "sequence_length": SEQ_LEN,
        "packet_columns": PACKET_COLUMNS,
        "record_columns": RECORD_COLUMNS,
        "url_tokens": {
            "max_tokens": url::MAX_TOKENS,
            "method": "percent-decode twice, lowercase, words of letters/digits/_ (digit runs over 3 become <num>), each other non-space character one token",
        },
        "chars": {
            "max_len": CHARS,
            "layout": {
                "http": "method SP uri LF body-prefix LF user-agent LF referer (raw bytes as sent)",
                "tls": "sni LF leaf subject CN LF leaf issuer CN LF ALPN protocols joined by ',' LF server port (decimal)",
                "other": "empty",
                "cut": "at max_len bytes",
            },
            "model_input": "byte + 1 per position, 0 after the end (int64, max_len columns)",
        },
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Receives features in order. Names are `fmt::Arguments` so that they are only
/// formatted when enumerating names, never per flow.
trait Sink {
    fn put(&mut self, name: Arguments<'_>, value: f32);
    fn flag(&mut self, name: Arguments<'_>, value: bool) {
        self.put(name, if value { 1.0 } else { 0.0 });
    }
    fn log(&mut self, name: Arguments<'_>, value: f64) {
        self.put(name, value.max(0.0).ln_1p() as f32);
    }
}

struct NameSink(Vec<String>);
impl Sink for NameSink {
    fn put(&mut self, name: Arguments<'_>, _: f32) {
        self.0.push(name.to_string());
    }
}

struct ValueSink(Vec<f32>);
impl Sink for ValueSink {
    fn put(&mut self, _: Arguments<'_>, value: f32) {
        self.0.push(if value.is_finite() { value } else { 0.0 });
    }
}

/// Computes the features of a flow.
pub fn extract(flow: &FlowRecord) -> FeatureVector {
    let mut v = ValueSink(Vec::with_capacity(FEATURE_NAMES.len()));
    static_features(flow, &mut v);
    debug_assert_eq!(v.0.len(), FEATURE_NAMES.len());
    FeatureVector {
        static_features: v.0,
        packets: packet_sequence(flow),
        records: record_sequence(flow),
        url_tokens: flow.http.as_ref().map(|h| url::tokens(&h.uri)).unwrap_or_default(),
        chars: match (flow.http.as_deref(), flow.tls.as_deref()) {
            (Some(h), _) => http_chars(h),
            (None, Some(t)) => tls_chars(t, flow.server_port),
            (None, None) => Vec::new(),
        },
    }
}

/// The characters of a request the model reads: method, space, request target, LF, the
/// body prefix, LF, User-Agent, LF, Referer, as raw bytes (no decoding: an encoding is a
/// signal of its own; the URL tokens are the decoded view), cut at [`CHARS`]. Where
/// an attacker's payload sits in a request, it is in one of these or in the URL tokens.
pub fn http_chars(h: &crate::decode::http::HttpRequest) -> Vec<u8> {
    cat(&[
        h.method.as_bytes(),
        b" ",
        h.uri.as_bytes(),
        b"\n",
        &h.body_prefix,
        b"\n",
        h.user_agent.as_deref().unwrap_or("").as_bytes(),
        b"\n",
        h.referer.as_deref().unwrap_or("").as_bytes(),
    ])
}

/// The names of a TLS flow the model reads: the SNI, the leaf certificate's subject and
/// issuer common names, the offered ALPN protocols and the server port, LF-separated, cut
/// at [`CHARS`]. What they say (an IP for a name, a random-looking host, a self-made
/// issuer, a name that is not the SNI, TLS on 447) is what the certificate flags cannot.
pub fn tls_chars(t: &crate::decode::tls::TlsInfo, server_port: u16) -> Vec<u8> {
    let ch = t.client_hello();
    let leaf = t.leaf.as_ref();
    let mut alpn = Vec::new();
    for (i, a) in ch.map_or(&[][..], |c| c.alpn.as_slice()).iter().enumerate() {
        if i > 0 {
            alpn.push(b',');
        }
        alpn.extend_from_slice(a);
    }
    cat(&[
        ch.and_then(|c| c.sni.as_deref()).unwrap_or("").as_bytes(),
        b"\n",
        leaf.and_then(|l| l.subject_cn.as_deref()).unwrap_or("").as_bytes(),
        b"\n",
        leaf.and_then(|l| l.issuer_cn.as_deref()).unwrap_or("").as_bytes(),
        b"\n",
        &alpn,
        b"\n",
        itoa(server_port, &mut [0; 5]),
    ])
}

/// Decimal digits of `v` in `buf`, without allocating.
fn itoa(mut v: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHARS);
    for p in parts {
        let room = CHARS - out.len();
        out.extend_from_slice(&p[..p.len().min(room)]);
    }
    out
}

fn dir_sign(d: Dir) -> f32 {
    match d {
        Dir::ToServer => 1.0,
        Dir::ToClient => -1.0,
    }
}

fn log_iat_ms(prev_us: u32, cur_us: u32) -> f32 {
    (f64::from(cur_us.saturating_sub(prev_us)) / 1000.0).ln_1p() as f32
}

fn packet_sequence(flow: &FlowRecord) -> Vec<[f32; 6]> {
    let mut rows = vec![[0.0; 6]; SEQ_LEN];
    let mut prev = 0;
    for (row, p) in rows.iter_mut().zip(&flow.head) {
        let syn = p.flags & 0x02 != 0;
        let fin_rst = p.flags & 0x05 != 0;
        *row = [
            f32::from(p.len) / 1500.0,
            dir_sign(p.dir),
            log_iat_ms(prev, p.offset_us),
            f32::from(u8::from(syn)),
            f32::from(u8::from(fin_rst)),
            1.0,
        ];
        prev = p.offset_us;
    }
    rows
}

fn record_sequence(flow: &FlowRecord) -> Vec<[f32; 6]> {
    let mut rows = vec![[0.0; 6]; SEQ_LEN];
    let mut prev = 0;
    for (row, r) in rows.iter_mut().zip(&flow.records) {
        *row = [
            f32::from(r.len) / 16384.0,
            dir_sign(r.dir),
            log_iat_ms(prev, r.offset_us),
            f32::from(u8::from(r.content_type == 22)),
            f32::from(u8::from(r.content_type == 23)),
            1.0,
        ];
        prev = r.offset_us;
    }
    rows
}

fn version_onehot(s: &mut dyn Sink, prefix: &str, v: Option<u16>) {
    let v = v.unwrap_or(0);
    for (name, x) in [("10", 0x0301), ("11", 0x0302), ("12", 0x0303), ("13", 0x0304)] {
        s.flag(format_args!("{prefix}_{name}"), v == x);
    }
    s.flag(format_args!("{prefix}_other"), v != 0 && !(0x0301..=0x0304).contains(&v));
}

fn static_features(flow: &FlowRecord, s: &mut dyn Sink) {
    let app = flow.app.as_str();
    s.flag(format_args!("app_tls"), app == "tls");
    s.flag(format_args!("app_http"), app == "http");
    s.flag(format_args!("app_other"), app == "other");
    let dur_ms = flow.last_ts.saturating_sub(flow.first_ts) as f64 / 1e6;
    s.log(format_args!("flow_log_duration_ms"), dur_ms);
    s.log(format_args!("flow_log_pkts_to_server"), flow.pkts[0] as f64);
    s.log(format_args!("flow_log_pkts_to_client"), flow.pkts[1] as f64);
    s.log(format_args!("flow_log_payload_to_server"), flow.payload_bytes[0] as f64);
    s.log(format_args!("flow_log_payload_to_client"), flow.payload_bytes[1] as f64);
    let TcpSeen { syn, syn_ack, fin, rst } = flow.tcp;
    s.flag(format_args!("tcp_syn"), syn);
    s.flag(format_args!("tcp_syn_ack"), syn_ack);
    s.flag(format_args!("tcp_fin"), fin[0] || fin[1]);
    s.flag(format_args!("tcp_rst"), rst);

    let tls = flow.tls.as_deref();
    let ch = tls.and_then(|t| t.client_hello());
    client_hello_features(ch, s);

    let sh = tls.and_then(|t| t.server_hello());
    s.flag(format_args!("tls_server_hello"), sh.is_some());
    version_onehot(s, "tls_server_version", sh.map(crate::decode::tls::ServerHello::negotiated_version));
    let cipher = sh.map(|h| h.cipher);
    for c in CIPHER_VOCAB {
        s.flag(format_args!("tls_server_cipher_{c:04x}"), cipher == Some(c));
    }
    s.flag(format_args!("tls_server_cipher_other"), cipher.is_some_and(|c| !CIPHER_VOCAB.contains(&c)));
    for e in EXTENSION_VOCAB {
        s.flag(format_args!("tls_server_ext_{e}"), sh.is_some_and(|h| h.extensions.iter().any(|x| x.typ == e)));
    }
    s.put(format_args!("tls_server_n_ext"), sh.map_or(0.0, |h| h.extensions.len() as f32));
    s.flag(format_args!("tls_hello_retry"), tls.is_some_and(|t| t.hello_retry));
    s.log(format_args!("tls_log_client_key_len"), tls.and_then(|t| t.client_key_len).map_or(0.0, f64::from));
    s.log(format_args!("tls_log_server_kx_len"), tls.and_then(|t| t.server_key_exchange_len).map_or(0.0, f64::from));
    s.put(format_args!("tls_alerts"), tls.map_or(0.0, |t| t.alerts.min(8) as f32));

    let leaf = tls.and_then(|t| t.leaf.as_ref());
    s.put(format_args!("cert_chain_len"), tls.map_or(0.0, |t| t.cert_chain_len.min(10) as f32));
    s.flag(format_args!("cert_present"), leaf.is_some());
    s.flag(format_args!("cert_encrypted"), tls.is_some_and(|t| t.certs_encrypted));
    for alg in ["rsa", "ec", "dsa", "ed25519"] {
        s.flag(format_args!("cert_key_{alg}"), leaf.is_some_and(|l| l.key_alg == alg));
    }
    s.put(format_args!("cert_key_bits_k"), leaf.map_or(0.0, |l| l.key_bits as f32 / 1024.0));
    let sig = leaf.map(|l| l.sig_alg.to_ascii_lowercase());
    let sig_is = |needle: &[&str]| sig.as_deref().is_some_and(|s| needle.iter().all(|n| s.contains(n)));
    s.flag(format_args!("cert_sig_sha1_rsa"), sig_is(&["sha1", "rsa"]));
    s.flag(format_args!("cert_sig_sha256_rsa"), sig_is(&["sha256", "rsa"]));
    s.flag(format_args!("cert_sig_sha384_512_rsa"), sig_is(&["sha384", "rsa"]) || sig_is(&["sha512", "rsa"]));
    s.flag(format_args!("cert_sig_ecdsa_sha256"), sig_is(&["ecdsa", "sha256"]));
    s.flag(format_args!("cert_sig_ecdsa_sha384"), sig_is(&["ecdsa", "sha384"]));
    s.flag(format_args!("cert_sig_md5"), sig_is(&["md5"]));
    s.flag(format_args!("cert_self_signed"), leaf.is_some_and(|l| l.self_signed));
    let now = (flow.first_ts / 1_000_000_000) as i64;
    s.flag(format_args!("cert_expired"), leaf.is_some_and(|l| l.not_after < now));
    s.flag(format_args!("cert_not_yet_valid"), leaf.is_some_and(|l| l.not_before > now));
    s.log(format_args!("cert_log_validity_days"), leaf.map_or(0.0, |l| (l.not_after - l.not_before) as f64 / 86400.0));
    s.log(format_args!("cert_log_san_count"), leaf.map_or(0.0, |l| f64::from(l.san_count)));
    let sni = ch.and_then(|c| c.sni.as_deref());
    s.flag(
        format_args!("cert_cn_matches_sni"),
        match (leaf.and_then(|l| l.subject_cn.as_deref()), sni) {
            (Some(cn), Some(sni)) => {
                cn.eq_ignore_ascii_case(sni) || cn.strip_prefix("*.").is_some_and(|d| sni.ends_with(d))
            }
            _ => false,
        },
    );

    http_features(flow, s);
}

fn client_hello_features(ch: Option<&ClientHello>, s: &mut dyn Sink) {
    s.flag(format_args!("tls_client_hello"), ch.is_some());
    version_onehot(s, "tls_client_version", ch.map(|c| c.version));
    let max_sv = ch.and_then(|c| c.supported_versions.iter().copied().filter(|v| !is_grease(*v)).max());
    version_onehot(s, "tls_client_max_supported", max_sv);
    let non_grease = |v: &[u16]| v.iter().filter(|x| !is_grease(**x)).count() as f64;
    s.log(format_args!("tls_log_n_ciphers"), ch.map_or(0.0, |c| non_grease(&c.ciphers)));
    s.put(
        format_args!("tls_n_ext"),
        ch.map_or(0.0, |c| c.extensions.iter().filter(|e| !is_grease(e.typ)).count() as f32),
    );
    s.put(format_args!("tls_n_groups"), ch.map_or(0.0, |c| non_grease(&c.groups) as f32));
    s.put(format_args!("tls_n_sig_algs"), ch.map_or(0.0, |c| non_grease(&c.sig_algs) as f32));
    s.flag(format_args!("tls_grease"), ch.is_some_and(|c| c.ciphers.iter().any(|x| is_grease(*x))));
    let sni = ch.and_then(|c| c.sni.as_deref());
    s.flag(format_args!("tls_sni"), sni.is_some());
    s.log(format_args!("tls_log_sni_len"), sni.map_or(0.0, |x| x.len() as f64));
    s.flag(format_args!("tls_sni_is_ip"), sni.is_some_and(|x| x.parse::<std::net::IpAddr>().is_ok()));
    s.put(format_args!("tls_sni_labels"), sni.map_or(0.0, |x| x.split('.').count().min(10) as f32));
    s.flag(format_args!("tls_sni_has_digits"), sni.is_some_and(|x| x.bytes().any(|b| b.is_ascii_digit())));
    let alpn0 = ch.and_then(|c| c.alpn.first()).map(Vec::as_slice);
    s.flag(format_args!("tls_alpn_h2"), alpn0 == Some(b"h2"));
    s.flag(format_args!("tls_alpn_http11"), alpn0 == Some(b"http/1.1"));
    s.flag(format_args!("tls_alpn_other"), alpn0.is_some_and(|a| a != b"h2" && a != b"http/1.1"));
    s.put(format_args!("tls_session_id_len"), ch.map_or(0.0, |c| f32::from(c.session_id_len) / 32.0));
    s.put(format_args!("tls_compression_methods"), ch.map_or(0.0, |c| f32::from(c.compression_methods)));
    s.log(format_args!("tls_log_key_share_len"), ch.map_or(0.0, |c| f64::from(c.key_share_len)));
    for c in CIPHER_VOCAB {
        s.flag(format_args!("tls_cipher_{c:04x}"), ch.is_some_and(|h| h.ciphers.contains(&c)));
    }
    s.put(
        format_args!("tls_cipher_other_count"),
        ch.map_or(0.0, |h| h.ciphers.iter().filter(|c| !is_grease(**c) && !CIPHER_VOCAB.contains(c)).count() as f32),
    );
    for e in EXTENSION_VOCAB {
        let meta = ch.and_then(|h| h.extensions.iter().find(|x| x.typ == e));
        s.flag(format_args!("tls_ext_{e}"), meta.is_some());
        s.log(format_args!("tls_ext_{e}_log_len"), meta.map_or(0.0, |m| f64::from(m.len)));
    }
    s.put(
        format_args!("tls_ext_other_count"),
        ch.map_or(0.0, |h| {
            h.extensions.iter().filter(|x| !is_grease(x.typ) && !EXTENSION_VOCAB.contains(&x.typ)).count() as f32
        }),
    );
    for g in GROUP_VOCAB {
        s.flag(format_args!("tls_group_{g:04x}"), ch.is_some_and(|h| h.groups.contains(&g)));
    }
}

fn http_features(flow: &FlowRecord, s: &mut dyn Sink) {
    let h = flow.http.as_deref();
    s.flag(format_args!("http_request"), h.is_some());
    let m = h.map(|r| r.method.as_str());
    for name in ["GET", "POST", "HEAD", "PUT"] {
        s.flag(format_args!("http_method_{}", name.to_ascii_lowercase()), m == Some(name));
    }
    s.flag(format_args!("http_method_other"), m.is_some_and(|m| !["GET", "POST", "HEAD", "PUT"].contains(&m)));
    s.flag(format_args!("http_version_10"), h.is_some_and(|r| r.version_minor == 0));
    let uri = h.map_or("", |r| r.uri.as_str());
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    s.log(format_args!("http_log_uri_len"), uri.len() as f64);
    s.put(format_args!("http_path_depth"), path.matches('/').count().min(32) as f32);
    s.log(format_args!("http_log_query_len"), query.len() as f64);
    s.put(format_args!("http_n_params"), if query.is_empty() { 0.0 } else { query.split('&').count().min(64) as f32 });
    let count = |hay: &str, needles: &[&str]| needles.iter().map(|n| hay.matches(n).count()).sum::<usize>() as f64;
    s.log(format_args!("http_uri_pct"), count(uri, &["%"]));
    s.log(format_args!("http_uri_quotes"), count(uri, &["'", "\"", "%27", "%22"]));
    s.log(format_args!("http_uri_angle"), count(uri, &["<", ">", "%3c", "%3e", "%3C", "%3E"]));
    s.log(format_args!("http_uri_dotdot"), count(uri, &["..", "%2e%2e", "%2E%2E"]));
    s.log(format_args!("http_uri_semicolon_pipe"), count(uri, &[";", "|", "`", "$(", "%3b", "%7c"]));
    s.log(format_args!("http_uri_parens_braces"), count(uri, &["(", ")", "{", "}", "${"]));
    s.log(format_args!("http_uri_dash_comment"), count(uri, &["--", "/*", "#"]));
    let ext = path.rsplit('/').next().and_then(|f| f.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
    for e in ["php", "asp", "jsp", "cgi", "js", "css", "png", "html"] {
        s.flag(format_args!("http_ext_{e}"), ext.as_deref().is_some_and(|x| x.starts_with(e)));
    }
    s.put(format_args!("http_header_count"), h.map_or(0.0, |r| r.header_count.min(64) as f32));
    s.log(format_args!("http_log_head_len"), h.map_or(0.0, |r| f64::from(r.head_len)));
    let ua = h.and_then(|r| r.user_agent.as_deref());
    s.flag(format_args!("http_has_user_agent"), ua.is_some());
    s.log(format_args!("http_log_ua_len"), ua.map_or(0.0, |u| u.len() as f64));
    let ua_l = ua.map(str::to_ascii_lowercase);
    s.flag(format_args!("http_ua_mozilla"), ua_l.as_deref().is_some_and(|u| u.starts_with("mozilla/")));
    s.flag(
        format_args!("http_ua_tool"),
        ua_l.as_deref().is_some_and(|u| {
            ["curl", "wget", "python", "go-http", "java", "libwww", "nikto", "sqlmap", "nmap", "masscan", "zgrab"]
                .iter()
                .any(|t| u.contains(t))
        }),
    );
    s.flag(format_args!("http_has_cookie"), h.is_some_and(|r| r.has_cookie));
    s.flag(format_args!("http_has_referer"), h.is_some_and(|r| r.referer.is_some()));
    s.flag(
        format_args!("http_host_is_ip"),
        h.and_then(|r| r.host.as_deref()).is_some_and(|x| {
            x.rsplit_once(':').map_or(x, |(a, _)| a).trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok()
        }),
    );
    s.log(format_args!("http_log_content_length"), h.and_then(|r| r.content_length).map_or(0.0, |c| c as f64));
    let body = h.map_or(&[][..], |r| r.body_prefix.as_slice());
    s.log(format_args!("http_log_body_prefix_len"), body.len() as f64);
    let body_text = String::from_utf8_lossy(body);
    s.log(format_args!("http_body_quotes"), count(&body_text, &["'", "\"", "%27"]));
    s.log(format_args!("http_body_angle"), count(&body_text, &["<", ">", "%3c", "%3C"]));
    s.log(
        format_args!("http_body_nonprint"),
        body.iter().filter(|b| !(b.is_ascii_graphic() || b.is_ascii_whitespace())).count() as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_stable_length() {
        let names = &*FEATURE_NAMES;
        let set: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len(), "duplicate feature name");
        let fv = extract(&FlowRecord::placeholder());
        assert_eq!(fv.static_features.len(), names.len());
        assert_eq!(fv.packets.len(), SEQ_LEN);
        assert_eq!(fv.records.len(), SEQ_LEN);
        assert!(fv.chars.is_empty());
    }

    fn request(uri: &str, body: &[u8], ua: Option<&str>) -> crate::decode::http::HttpRequest {
        crate::decode::http::HttpRequest {
            method: "POST".into(),
            uri: uri.into(),
            version_minor: 1,
            host: Some("h".into()),
            user_agent: ua.map(Into::into),
            content_type: None,
            content_length: Some(body.len() as u64),
            referer: Some("http://r/".into()),
            has_cookie: false,
            header_count: 3,
            head_len: 60,
            body_prefix: body.to_vec(),
            head_truncated: false,
        }
    }

    #[test]
    fn http_chars_layout_and_bound() {
        let r = request("/a?id=1%27", b"x=<b>", Some("curl/8"));
        assert_eq!(http_chars(&r), b"POST /a?id=1%27\nx=<b>\ncurl/8\nhttp://r/");
        let r = request("/no-ua", b"", None);
        assert_eq!(http_chars(&r), b"POST /no-ua\n\n\nhttp://r/");
        // A long target fills the input; what follows it is cut, never the method.
        let long = format!("/{}", "a".repeat(400));
        let c = http_chars(&request(&long, b"body", Some("ua")));
        assert_eq!(c.len(), CHARS);
        assert!(c.starts_with(b"POST /aaa"));
        assert!(c.iter().skip(5).all(|&b| b == b'/' || b == b'a'));
    }

    #[test]
    fn tls_chars_name_the_server_and_its_certificate() {
        use crate::decode::tls::{ClientHello, LeafCert, TlsInfo};
        let hello = ClientHello {
            sni: Some("example.org".into()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            ..ClientHello::default()
        };
        let mut t = TlsInfo { client_hellos: vec![hello], ..TlsInfo::default() };
        assert_eq!(tls_chars(&t, 443), b"example.org\n\n\nh2,http/1.1\n443");
        t.leaf = Some(LeafCert {
            key_alg: "rsa",
            key_bits: 2048,
            sig_alg: "sha256WithRSAEncryption".into(),
            self_signed: false,
            not_before: 0,
            not_after: 1,
            subject_cn: Some("*.example.org".into()),
            issuer_cn: Some("R3".into()),
            san_count: 2,
            sha1: String::new(),
        });
        assert_eq!(tls_chars(&t, 8443), b"example.org\n*.example.org\nR3\nh2,http/1.1\n8443");
        // No ClientHello (a capture that starts mid-flow): only the certificate's names.
        t.client_hellos.clear();
        assert_eq!(tls_chars(&t, 0), b"\n*.example.org\nR3\n\n0");
        assert_eq!(itoa(65535, &mut [0; 5]), b"65535");
    }
}
