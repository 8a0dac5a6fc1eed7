//! The flow event: one JSON object per flow, the analysts' record. Field names follow
//! Suricata's EVE where one exists (`src_ip`, `dest_port`, `community_id`, `tls.sni`,
//! `http.http_user_agent` is shortened to `http.user_agent`). The schema is documented in
//! the README and is a contract: extend it, never rename.

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::decode::tls::{TlsInfo, version_name};
use crate::fingerprint::Fingerprints;
use crate::flow::{Dir, FlowRecord};
use crate::inference::Verdict;

/// Formats a packet timestamp as RFC 3339 with microseconds, UTC.
pub fn rfc3339(ts_ns: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ns / 1000 * 1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Community ID v1 (seed 0) of a TCP flow, `1:` + base64 SHA-1.
pub fn community_id(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> String {
    community_id::calculate_community_id(0, src, dst, Some(sport), Some(dport), 6, false).unwrap_or_default()
}

#[derive(Serialize)]
struct Event<'a> {
    ts: String,
    start: String,
    flow_id: u64,
    community_id: &'a str,
    src_ip: IpAddr,
    src_port: u16,
    dest_ip: IpAddr,
    dest_port: u16,
    proto: &'static str,
    app: &'static str,
    reason: &'static str,
    flow: Counters,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsEvent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpEvent<'a>>,
    seq: Sequences,
    verdict: &'a Verdict,
}

#[derive(Serialize)]
struct Counters {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    payload_bytes_toserver: u64,
    payload_bytes_toclient: u64,
    duration_ms: f64,
    syn: bool,
    syn_ack: bool,
    fin: bool,
    rst: bool,
}

#[derive(Serialize)]
struct Sequences {
    pkt_lengths: Vec<u16>,
    pkt_directions: Vec<i8>,
    pkt_iat_us: Vec<u32>,
    record_lengths: Vec<u16>,
    record_directions: Vec<i8>,
    record_types: Vec<u8>,
    record_iat_us: Vec<u32>,
}

#[derive(Serialize)]
struct CertEvent<'a> {
    subject_cn: Option<&'a str>,
    issuer_cn: Option<&'a str>,
    key_alg: &'static str,
    key_bits: u32,
    sig_alg: &'a str,
    not_before: String,
    not_after: String,
    san_count: u32,
    sha1: &'a str,
}

#[derive(Serialize)]
struct TlsEvent<'a> {
    sni: Option<&'a str>,
    version: Option<&'static str>,
    client_version: Option<&'static str>,
    ja3: Option<String>,
    ja3_string: Option<String>,
    ja3s: Option<String>,
    ja3s_string: Option<String>,
    ja4: Option<String>,
    ja4_r: Option<String>,
    cipher_suites: Vec<u16>,
    extensions: Vec<u16>,
    extension_lengths: Vec<u16>,
    supported_groups: Vec<u16>,
    signature_algorithms: Vec<u16>,
    supported_versions: Vec<u16>,
    alpn: Vec<String>,
    server_cipher: Option<u16>,
    server_extensions: Vec<u16>,
    server_alpn: Option<String>,
    hello_retry: bool,
    client_key_length: Option<u32>,
    cert_chain_len: u32,
    self_signed: Option<bool>,
    certs_encrypted: bool,
    cert: Option<CertEvent<'a>>,
    client_hellos: usize,
    /// Present (true) only when the ClientHello was larger than `handshake_bytes`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    oversized_client_hello: bool,
}

#[derive(Serialize)]
struct HttpEvent<'a> {
    method: &'a str,
    uri: &'a str,
    version: &'static str,
    host: Option<&'a str>,
    user_agent: Option<&'a str>,
    content_type: Option<&'a str>,
    content_length: Option<u64>,
    referer: Option<&'a str>,
    body_prefix: String,
    /// Present (true) only when the head did not fit and was salvaged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    head_truncated: bool,
}

fn sign(d: Dir) -> i8 {
    match d {
        Dir::ToServer => 1,
        Dir::ToClient => -1,
    }
}

fn tls_event<'a>(t: &'a TlsInfo, fp: &Fingerprints) -> TlsEvent<'a> {
    let ch = t.client_hello();
    let sh = t.server_hello();
    let (fp_ja3, fp_ja3s, fp_ja4) = (fp.ja3.clone(), fp.ja3s.clone(), fp.ja4.clone());
    let leaf = t.leaf.as_ref();
    TlsEvent {
        sni: ch.and_then(|c| c.sni.as_deref()),
        version: sh.map(|s| version_name(s.negotiated_version())),
        client_version: ch.map(|c| version_name(c.version)),
        ja3: fp_ja3.as_ref().map(|f| f.hash.clone()),
        ja3_string: fp_ja3.map(|f| f.raw),
        ja3s: fp_ja3s.as_ref().map(|f| f.hash.clone()),
        ja3s_string: fp_ja3s.map(|f| f.raw),
        ja4: fp_ja4.as_ref().map(|f| f.hash.clone()),
        ja4_r: fp_ja4.map(|f| f.raw),
        cipher_suites: ch.map(|c| c.ciphers.clone()).unwrap_or_default(),
        extensions: ch.map(|c| c.extensions.iter().map(|e| e.typ).collect()).unwrap_or_default(),
        extension_lengths: ch.map(|c| c.extensions.iter().map(|e| e.len).collect()).unwrap_or_default(),
        supported_groups: ch.map(|c| c.groups.clone()).unwrap_or_default(),
        signature_algorithms: ch.map(|c| c.sig_algs.clone()).unwrap_or_default(),
        supported_versions: ch.map(|c| c.supported_versions.clone()).unwrap_or_default(),
        alpn: ch.map(|c| c.alpn.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()).unwrap_or_default(),
        server_cipher: sh.map(|s| s.cipher),
        server_extensions: sh.map(|s| s.extensions.iter().map(|e| e.typ).collect()).unwrap_or_default(),
        server_alpn: sh.and_then(|s| s.alpn.as_ref()).map(|a| String::from_utf8_lossy(a).into_owned()),
        hello_retry: t.hello_retry,
        client_key_length: t.client_key_len,
        cert_chain_len: t.cert_chain_len,
        self_signed: leaf.map(|l| l.self_signed),
        certs_encrypted: t.certs_encrypted,
        cert: leaf.map(|l| CertEvent {
            subject_cn: l.subject_cn.as_deref(),
            issuer_cn: l.issuer_cn.as_deref(),
            key_alg: l.key_alg,
            key_bits: l.key_bits,
            sig_alg: &l.sig_alg,
            not_before: rfc3339(u64::try_from(l.not_before).unwrap_or(0) * 1_000_000_000),
            not_after: rfc3339(u64::try_from(l.not_after).unwrap_or(0) * 1_000_000_000),
            san_count: l.san_count,
            sha1: &l.sha1,
        }),
        client_hellos: t.client_hellos.len(),
        oversized_client_hello: t.oversized_client_hello,
    }
}

/// Appends one JSON event line for `rec` to `out`.
pub fn write_event(rec: &FlowRecord, community_id: &str, verdict: &Verdict, out: &mut Vec<u8>) {
    write_event_with(rec, &Fingerprints::of(rec.tls.as_deref()), community_id, verdict, out);
}

/// [`write_event`] with the flow's fingerprints already computed.
pub fn write_event_with(rec: &FlowRecord, fp: &Fingerprints, community_id: &str, verdict: &Verdict, out: &mut Vec<u8>) {
    let f = rec;
    let mut prev = 0;
    let pkt_iat_us = f
        .head
        .iter()
        .map(|p| {
            let d = p.offset_us.saturating_sub(prev);
            prev = p.offset_us;
            d
        })
        .collect();
    let mut prev = 0;
    let record_iat_us = f
        .records
        .iter()
        .map(|r| {
            let d = r.offset_us.saturating_sub(prev);
            prev = r.offset_us;
            d
        })
        .collect();
    let ev = Event {
        ts: rfc3339(f.last_ts),
        start: rfc3339(f.first_ts),
        flow_id: f.id,
        community_id,
        src_ip: f.client_ip,
        src_port: f.client_port,
        dest_ip: f.server_ip,
        dest_port: f.server_port,
        proto: "TCP",
        app: f.app.as_str(),
        reason: rec.reason.as_str(),
        flow: Counters {
            pkts_toserver: f.pkts[0],
            pkts_toclient: f.pkts[1],
            bytes_toserver: f.bytes[0],
            bytes_toclient: f.bytes[1],
            payload_bytes_toserver: f.payload_bytes[0],
            payload_bytes_toclient: f.payload_bytes[1],
            duration_ms: f.last_ts.saturating_sub(f.first_ts) as f64 / 1e6,
            syn: f.tcp.syn,
            syn_ack: f.tcp.syn_ack,
            fin: f.tcp.fin[0] || f.tcp.fin[1],
            rst: f.tcp.rst,
        },
        tls: f.tls.as_deref().map(|t| tls_event(t, fp)),
        http: f.http.as_deref().map(|h| HttpEvent {
            method: &h.method,
            uri: &h.uri,
            version: if h.version_minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" },
            host: h.host.as_deref(),
            user_agent: h.user_agent.as_deref(),
            content_type: h.content_type.as_deref(),
            content_length: h.content_length,
            referer: h.referer.as_deref(),
            body_prefix: String::from_utf8_lossy(&h.body_prefix).into_owned(),
            head_truncated: h.head_truncated,
        }),
        seq: Sequences {
            pkt_lengths: f.head.iter().map(|p| p.len).collect(),
            pkt_directions: f.head.iter().map(|p| sign(p.dir)).collect(),
            pkt_iat_us,
            record_lengths: f.records.iter().map(|r| r.len).collect(),
            record_directions: f.records.iter().map(|r| sign(r.dir)).collect(),
            record_types: f.records.iter().map(|r| r.content_type).collect(),
            record_iat_us,
        },
        verdict,
    };
    let _ = serde_json::to_writer(&mut *out, &ev);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn community_id_matches_spec_vector() {
        // From the Community ID spec's baseline (tcp, 128.232.110.120:34855 -> 66.35.250.204:80).
        let id = community_id(
            IpAddr::V4(Ipv4Addr::new(128, 232, 110, 120)),
            34855,
            IpAddr::V4(Ipv4Addr::new(66, 35, 250, 204)),
            80,
        );
        assert_eq!(id, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }

    #[test]
    fn rfc3339_has_microseconds() {
        assert_eq!(rfc3339(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456Z");
    }
}
