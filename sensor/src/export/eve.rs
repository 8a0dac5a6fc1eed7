//! Suricata EVE records (`--eve PATH`): what EVE consumers (Elastic's and Splunk's
//! Suricata integrations, EveBox, any EVE pipeline) read without a custom parser.
//!
//! - `alert`: one per flow whose verdict is `attack` or `malware`, or `unknown` from a
//!   model that ran (a flow the model could not place); never for `benign`, never for
//!   `unknown` without a model. Signature and category name Nightjar's class, app and
//!   model; the flow's `tls` / `http` objects and its `flow` counters come along, as
//!   Suricata's own alerts carry them.
//! - `tls`, `http`, `flow` (optional, `--eve-types`): one per TLS / HTTP flow, and one per
//!   flow Nightjar reports.
//!
//! Field names and formats are EVE's (`etc/schema.json` of Suricata, which the tests
//! validate every record against): timestamps `2026-12-01T15:31:50.123456+0000`, TLS
//! dates without zone, the certificate fingerprint as colon-separated SHA-1. Nightjar's
//! own facts (class, score, model, reasons) go into `alert.metadata`, which EVE leaves
//! open, as arrays of strings like Suricata's rule metadata.

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;

use crate::decode::tls::TlsInfo;
use crate::fingerprint::Fingerprints;
use crate::flow::{EndReason, FlowRecord};
use crate::inference::{Class, Verdict};

/// Which EVE record types to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EveTypes {
    /// `alert` records (non-benign verdicts).
    pub alert: bool,
    /// `tls` records.
    pub tls: bool,
    /// `http` records.
    pub http: bool,
    /// `flow` records.
    pub flow: bool,
}

impl Default for EveTypes {
    fn default() -> Self {
        Self { alert: true, tls: false, http: false, flow: false }
    }
}

impl std::str::FromStr for EveTypes {
    type Err = String;

    /// A comma-separated list of `alert`, `tls`, `http`, `flow` (or `all`).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut t = Self { alert: false, tls: false, http: false, flow: false };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "alert" => t.alert = true,
                "tls" => t.tls = true,
                "http" => t.http = true,
                "flow" => t.flow = true,
                "all" => t = Self { alert: true, tls: true, http: true, flow: true },
                other => return Err(format!("unknown EVE record type {other:?}: use alert, tls, http, flow or all")),
            }
        }
        if t == (Self { alert: false, tls: false, http: false, flow: false }) {
            return Err("no EVE record type given".into());
        }
        Ok(t)
    }
}

/// Signature ids of Nightjar's alerts: 1,990,000 (Suricata's local range starts at
/// 1,000,000) + 10 x app (1 TLS, 2 HTTP) + class (1 attack, 2 malware, 3 unknown).
pub const SID_BASE: u32 = 1_990_000;

/// `2019-01-01T00:00:00` (UTC, to the second).
fn date_time(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// EVE's timestamp: RFC 3339 with microseconds and a `+0000` offset.
pub fn eve_timestamp(ts_ns: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ns)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{}.{:06}+0000", date_time(t), t.microsecond())
}

/// A certificate date as EVE writes it (`2019-01-01T00:00:00`, UTC, no zone).
fn tls_date(secs: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(secs).ok()?;
    // EVE's pattern wants a four-digit year from 1000 to 2999.
    (1000..=2999).contains(&t.year()).then(|| date_time(t))
}

/// Suricata's names of TLS versions.
fn tls_version(v: u16) -> &'static str {
    match v {
        0x0200 => "SSLv2",
        0x0300 => "SSLv3",
        0x0301 => "TLSv1",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "UNDETERMINED",
    }
}

#[derive(Serialize)]
struct Record<'a> {
    timestamp: String,
    flow_id: u64,
    event_type: &'static str,
    src_ip: IpAddr,
    src_port: u16,
    dest_ip: IpAddr,
    dest_port: u16,
    proto: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto: Option<&'static str>,
    community_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Alert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<FlowObj>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<Tcp>,
}

#[derive(Serialize)]
struct Alert {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: String,
    category: &'static str,
    severity: u8,
    metadata: AlertMetadata,
}

#[derive(Serialize)]
struct AlertMetadata {
    signature_severity: [&'static str; 1],
    tag: [&'static str; 2],
    nightjar_class: [&'static str; 1],
    nightjar_app: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    nightjar_score: Option<[String; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nightjar_model: Option<[String; 1]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nightjar_reasons: Vec<String>,
}

#[derive(Serialize, Default)]
struct Tls<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuerdn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notbefore: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notafter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ja3: Option<Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ja3s: Option<Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ja4: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    client_alpns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    server_alpns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_handshake: Option<ClientHandshake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_handshake: Option<ServerHandshake>,
}

#[derive(Serialize)]
struct Hash {
    hash: String,
    string: String,
}

#[derive(Serialize)]
struct ClientHandshake {
    version: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ciphers: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exts: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sig_algs: Vec<u16>,
}

#[derive(Serialize)]
struct ServerHandshake {
    version: &'static str,
    cipher: u16,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exts: Vec<u16>,
}

#[derive(Serialize)]
struct HttpObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_port: Option<u16>,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_refer: Option<&'a str>,
    http_method: &'a str,
    protocol: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    http_request_body_printable: String,
}

#[derive(Serialize)]
struct FlowObj {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    age: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alerted: Option<bool>,
}

#[derive(Serialize)]
struct Tcp {
    syn: bool,
    fin: bool,
    rst: bool,
    state: &'static str,
}

fn colon_hex(hex: &str) -> String {
    let mut s = String::with_capacity(hex.len() * 3 / 2);
    for (i, c) in hex.chars().enumerate() {
        if i > 0 && i % 2 == 0 {
            s.push(':');
        }
        s.push(c);
    }
    s
}

fn tls_obj<'a>(t: &'a TlsInfo, fp: &Fingerprints) -> Tls<'a> {
    let ch = t.client_hello();
    let sh = t.server_hello();
    let leaf = t.leaf.as_ref();
    Tls {
        sni: ch.and_then(|c| c.sni.as_deref()),
        version: sh.map(|s| tls_version(s.negotiated_version())),
        subject: leaf.and_then(|l| l.subject_cn.as_deref()).map(|cn| format!("CN={cn}")),
        issuerdn: leaf.and_then(|l| l.issuer_cn.as_deref()).map(|cn| format!("CN={cn}")),
        fingerprint: leaf.filter(|l| !l.sha1.is_empty()).map(|l| colon_hex(&l.sha1)),
        notbefore: leaf.and_then(|l| tls_date(l.not_before)),
        notafter: leaf.and_then(|l| tls_date(l.not_after)),
        ja3: fp.ja3.clone().map(|f| Hash { hash: f.hash, string: f.raw }),
        ja3s: fp.ja3s.clone().map(|f| Hash { hash: f.hash, string: f.raw }),
        ja4: fp.ja4.as_ref().map(|f| f.hash.clone()),
        client_alpns: ch
            .map(|c| c.alpn.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect())
            .unwrap_or_default(),
        server_alpns: sh
            .and_then(|s| s.alpn.as_ref())
            .map(|a| vec![String::from_utf8_lossy(a).into_owned()])
            .unwrap_or_default(),
        client_handshake: ch.map(|c| ClientHandshake {
            version: tls_version(c.version),
            ciphers: c.ciphers.clone(),
            exts: c.extensions.iter().map(|e| e.typ).collect(),
            sig_algs: c.sig_algs.clone(),
        }),
        server_handshake: sh.map(|s| ServerHandshake {
            version: tls_version(s.negotiated_version()),
            cipher: s.cipher,
            exts: s.extensions.iter().map(|e| e.typ).collect(),
        }),
    }
}

/// The port of a Host header (`example.com:8080`, `[::1]:8080`), if it names one.
fn host_port(host: &str) -> Option<u16> {
    let (_, port) = host.rsplit_once(':')?;
    if !host.starts_with('[') && host.matches(':').count() > 1 {
        return None;
    }
    if host.starts_with('[') && !host[..host.len() - port.len() - 1].ends_with(']') {
        return None;
    }
    port.parse().ok()
}

fn printable(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '.' }).collect()
}

fn http_obj(f: &FlowRecord) -> Option<HttpObject<'_>> {
    let h = f.http.as_deref()?;
    Some(HttpObject {
        hostname: h.host.as_deref(),
        http_port: h.host.as_deref().and_then(host_port),
        url: &h.uri,
        http_user_agent: h.user_agent.as_deref(),
        http_content_type: h.content_type.as_deref(),
        http_refer: h.referer.as_deref(),
        http_method: &h.method,
        protocol: if h.version_minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" },
        http_request_body_printable: printable(&h.body_prefix),
    })
}

fn tcp_state(f: &FlowRecord) -> &'static str {
    if f.tcp.rst || (f.tcp.fin[0] && f.tcp.fin[1]) {
        "closed"
    } else if f.tcp.syn_ack {
        "established"
    } else {
        "new"
    }
}

fn flow_obj(rec: &FlowRecord, alerted: Option<bool>, full: bool) -> FlowObj {
    let f = rec;
    FlowObj {
        pkts_toserver: f.pkts[0],
        pkts_toclient: f.pkts[1],
        bytes_toserver: f.bytes[0],
        bytes_toclient: f.bytes[1],
        start: eve_timestamp(f.first_ts),
        end: full.then(|| eve_timestamp(f.last_ts)),
        age: full.then(|| f.last_ts.saturating_sub(f.first_ts) / 1_000_000_000),
        state: full.then(|| tcp_state(f)),
        reason: full.then_some(match rec.reason {
            EndReason::IdleTimeout | EndReason::ActiveTimeout => "timeout",
            EndReason::EndOfInput => "shutdown",
            _ => "forced",
        }),
        alerted,
    }
}

/// Whether `verdict` raises an alert.
pub fn alerts(verdict: &Verdict) -> bool {
    match verdict.class {
        Class::Attack | Class::Malware => true,
        Class::Unknown => verdict.score.is_some(),
        Class::Benign => false,
    }
}

fn alert_obj(app: &'static str, verdict: &Verdict) -> Alert {
    let score = verdict.score.unwrap_or(0.0);
    let (app_idx, app_name) = match app {
        "tls" => (1, "TLS"),
        "http" => (2, "HTTP"),
        _ => (0, "TCP"),
    };
    let (class_idx, what, category, severity) = match verdict.class {
        Class::Attack if app == "http" => (1, "attack (web attack, exploit or scan)", "Web Application Attack", 2),
        Class::Attack => (1, "attack (exploit or scan)", "Misc Attack", 2),
        Class::Malware => (2, "malware (C2 or dropper)", "A Network Trojan was detected", 2),
        _ => (3, "unknown (unlike what the model knows)", "Unknown Traffic", 3),
    };
    // Confident malware is the most severe; confident attacks rank with malware.
    let severity = if class_idx < 3 && score >= 0.8 { severity - 1 } else { severity };
    let model = verdict.model.as_deref().unwrap_or("none");
    Alert {
        action: "allowed",
        gid: 1,
        signature_id: SID_BASE + 10 * app_idx + class_idx,
        rev: 1,
        signature: format!("NIGHTJAR ML {app_name} {what}, model {model}"),
        category,
        severity,
        metadata: AlertMetadata {
            signature_severity: [match severity {
                1 => "Major",
                2 => "Minor",
                _ => "Informational",
            }],
            tag: ["nightjar", "ml"],
            nightjar_class: [verdict.class.as_str()],
            nightjar_app: [app],
            nightjar_score: verdict.score.map(|s| [format!("{s:.4}")]),
            nightjar_model: verdict.model.clone().map(|m| [m]),
            nightjar_reasons: verdict.reasons.iter().map(|r| r.label.clone()).collect(),
        },
    }
}

/// Appends the EVE records of one flow to `out`, one JSON line each.
pub fn write_eve(rec: &FlowRecord, community_id: &str, verdict: &Verdict, types: EveTypes, out: &mut Vec<u8>) {
    write_eve_with(rec, &Fingerprints::of(rec.tls.as_deref()), community_id, verdict, types, out);
}

/// [`write_eve`] with the flow's fingerprints already computed.
pub fn write_eve_with(
    rec: &FlowRecord,
    fp: &Fingerprints,
    community_id: &str,
    verdict: &Verdict,
    types: EveTypes,
    out: &mut Vec<u8>,
) {
    let f = rec;
    let app = f.app.as_str();
    let app_proto = match app {
        "tls" => Some("tls"),
        "http" => Some("http"),
        _ => None,
    };
    let alerted = alerts(verdict);
    let base = |event_type, ts| Record {
        timestamp: eve_timestamp(ts),
        flow_id: f.id,
        event_type,
        src_ip: f.client_ip,
        src_port: f.client_port,
        dest_ip: f.server_ip,
        dest_port: f.server_port,
        proto: "TCP",
        app_proto,
        community_id,
        direction: None,
        alert: None,
        tls: None,
        http: None,
        flow: None,
        tcp: None,
    };
    let mut emit = |r: &Record<'_>| {
        // Serialising plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, r);
        out.push(b'\n');
    };
    if types.alert && alerted {
        let mut r = base("alert", f.last_ts);
        r.direction = Some("to_server");
        r.alert = Some(alert_obj(app, verdict));
        r.tls = f.tls.as_deref().map(|t| tls_obj(t, fp));
        r.http = http_obj(f);
        r.flow = Some(flow_obj(rec, None, false));
        emit(&r);
    }
    if types.tls
        && let Some(t) = f.tls.as_deref()
        && app == "tls"
    {
        let mut r = base("tls", f.last_ts);
        r.tls = Some(tls_obj(t, fp));
        emit(&r);
    }
    if types.http
        && let Some(h) = http_obj(f)
    {
        let mut r = base("http", f.last_ts);
        r.http = Some(h);
        emit(&r);
    }
    if types.flow {
        let mut r = base("flow", f.last_ts);
        r.flow = Some(flow_obj(rec, Some(alerted), true));
        r.tcp = Some(Tcp {
            syn: f.tcp.syn || f.tcp.syn_ack,
            fin: f.tcp.fin[0] || f.tcp.fin[1],
            rst: f.tcp.rst,
            state: tcp_state(f),
        });
        emit(&r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_eve_shaped() {
        assert_eq!(eve_timestamp(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456+0000");
        assert_eq!(tls_date(1_546_300_800).as_deref(), Some("2019-01-01T00:00:00"));
        assert_eq!(tls_date(-62_135_596_800), None, "year 1 is outside EVE's pattern");
    }

    #[test]
    fn parses_record_types() {
        let t: EveTypes = "alert,flow".parse().expect("parse");
        assert!(t.alert && t.flow && !t.tls && !t.http);
        let all: EveTypes = "all".parse().expect("parse");
        assert!(all.alert && all.tls && all.http && all.flow);
        assert!("dns".parse::<EveTypes>().is_err());
        assert!("".parse::<EveTypes>().is_err());
    }

    #[test]
    fn fingerprint_and_host_port() {
        assert_eq!(colon_hex("a1b2c3"), "a1:b2:c3");
        assert_eq!(host_port("example.com:8080"), Some(8080));
        assert_eq!(host_port("example.com"), None);
        assert_eq!(host_port("[::1]:8443"), Some(8443));
        assert_eq!(host_port("[::1]"), None);
        assert_eq!(host_port("::1"), None);
    }

    #[test]
    fn only_model_verdicts_that_are_not_benign_alert() {
        let v = |class, score| Verdict { class, score, model: Some("m".into()), head: None, reasons: Vec::new() };
        assert!(alerts(&v(Class::Malware, Some(0.9))));
        assert!(alerts(&v(Class::Attack, Some(0.6))));
        assert!(alerts(&v(Class::Unknown, Some(0.4))));
        assert!(!alerts(&v(Class::Benign, Some(0.99))));
        assert!(!alerts(&Verdict::unknown()), "no model, no alert");
        let a = alert_obj("http", &v(Class::Attack, Some(0.95)));
        assert_eq!((a.signature_id, a.severity, a.category), (SID_BASE + 21, 1, "Web Application Attack"));
        let m = alert_obj("tls", &v(Class::Malware, Some(0.5)));
        assert_eq!((m.signature_id, m.severity), (SID_BASE + 12, 2));
    }
}
