//! Why a verdict is not benign: occlusion over groups of the model's inputs. Each group
//! (the ClientHello, the certificate, the URI's characters, the URI tokens, the packet
//! sequence, ...) is replaced by its neutral value (the training mean of standardised
//! features, no URI tokens, no characters) and the model runs again on that copy of the
//! flow; the groups whose removal lowers the verdict's probability the most are its
//! reasons. Only flows whose verdict is not benign are explained, in batches of the
//! classifier's fixed shape (one row per flow and group), so the cost is one extra
//! inference row per group for flagged flows and nothing for benign ones.
//!
//! Group names are a bounded set ([`GROUPS`]); labels add the flow's own values in the
//! group (`certificate: self-signed, expired`, `URI tokens: union, select`), bounded in
//! length.

use std::ops::Range;

use crate::features::{FEATURE_NAMES, FeatureVector, PACKET_COLUMNS};

/// Smallest fall of the verdict's probability that counts as a reason.
pub const MIN_DELTA: f32 = 0.005;
/// Longest label, characters.
pub const MAX_LABEL: usize = 80;

/// Input groups: name, the apps they apply to (tls, http), the static feature name
/// prefixes they cover, and whether they cover the packet columns, the record columns,
/// the URI tokens or the characters.
pub const GROUPS: [(&str, [bool; 2], &[&str], Input); 13] = [
    (
        "tls_client_hello",
        [true, false],
        &[
            "tls_client_",
            "tls_log_n_ciphers",
            "tls_n_",
            "tls_grease",
            "tls_session_id_len",
            "tls_compression_methods",
            "tls_log_key_share_len",
            "tls_cipher_",
            "tls_ext_",
            "tls_group_",
            "tls_alpn_",
        ],
        Input::Static,
    ),
    ("tls_sni", [true, false], &["tls_sni", "tls_log_sni_len"], Input::Static),
    (
        "tls_server_hello",
        [true, false],
        &["tls_server_", "tls_hello_retry", "tls_log_client_key_len", "tls_log_server_kx_len", "tls_alerts"],
        Input::Static,
    ),
    ("tls_certificate", [true, false], &["cert_"], Input::Static),
    ("tls_records", [true, false], &[], Input::Records),
    ("tls_names", [true, false], &[], Input::Chars),
    (
        "http_request_line",
        [false, true],
        &[
            "http_request",
            "http_method_",
            "http_version_",
            "http_log_uri_len",
            "http_path_depth",
            "http_log_query_len",
            "http_n_params",
            "http_ext_",
        ],
        Input::Static,
    ),
    ("http_uri_characters", [false, true], &["http_uri_"], Input::Static),
    ("http_uri_tokens", [false, true], &[], Input::UrlTokens),
    (
        "http_headers",
        [false, true],
        &["http_header_count", "http_log_head_len", "http_has_", "http_log_ua_len", "http_ua_", "http_host_is_ip"],
        Input::Static,
    ),
    ("http_body", [false, true], &["http_log_content_length", "http_log_body_prefix_len", "http_body_"], Input::Static),
    ("http_text", [false, true], &[], Input::Chars),
    ("flow_shape", [true, true], &["flow_", "tcp_"], Input::StaticAndPackets),
];

/// Which model input a group occludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Static features (by name prefix).
    Static,
    /// Static features and the packet-sequence columns.
    StaticAndPackets,
    /// The record-sequence columns.
    Records,
    /// The URI tokens (TF-IDF input).
    UrlTokens,
    /// The character input.
    Chars,
}

/// One group, resolved against the sensor's feature names.
#[derive(Clone, Debug)]
pub struct Group {
    /// Bounded name.
    pub name: &'static str,
    /// Applies to tls, http flows.
    pub apps: [bool; 2],
    /// Static feature indices.
    pub statics: Vec<usize>,
    /// Sequence columns (packet columns 0..6, record columns 6..12).
    pub seq_cols: Range<usize>,
    /// Occludes the URI tokens.
    pub url: bool,
    /// Occludes the characters.
    pub chars: bool,
}

/// The groups, with their static feature indices.
pub fn groups() -> Vec<Group> {
    let np = PACKET_COLUMNS.len();
    GROUPS
        .iter()
        .map(|(name, apps, prefixes, input)| Group {
            name,
            apps: *apps,
            statics: FEATURE_NAMES
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    matches!(input, Input::Static | Input::StaticAndPackets)
                        && prefixes.iter().any(|p| n.starts_with(p))
                })
                .map(|(i, _)| i)
                .collect(),
            seq_cols: match input {
                Input::StaticAndPackets => 0..np,
                Input::Records => np..2 * np,
                _ => 0..0,
            },
            url: *input == Input::UrlTokens,
            chars: *input == Input::Chars,
        })
        .collect()
}

impl Group {
    /// Whether occluding this group can change anything for `fv` of app `app` (0 tls,
    /// 1 http): it applies to the app, and the flow has tokens or characters to remove.
    pub fn applies(&self, fv: &FeatureVector, app: usize) -> bool {
        if app > 1 || !self.apps[app] {
            return false;
        }
        if self.url {
            return !fv.url_tokens.is_empty();
        }
        if self.chars {
            return !fv.chars.is_empty();
        }
        true
    }
}

fn value(fv: &FeatureVector, name: &str) -> f32 {
    FEATURE_NAMES.iter().position(|n| n == name).and_then(|i| fv.static_features.get(i).copied()).unwrap_or(0.0)
}

fn on(fv: &FeatureVector, name: &str) -> bool {
    value(fv, name) > 0.5
}

/// `log1p` features back to counts.
fn count(fv: &FeatureVector, name: &str) -> u64 {
    value(fv, name).exp_m1().max(0.0).round() as u64
}

/// The printable part of `bytes`, at most `n` characters.
fn text(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '.' }).collect()
}

fn join_or(items: &[&str], none: &str) -> String {
    if items.is_empty() { none.to_owned() } else { items.join(", ") }
}

/// What the analyst reads for `group` on `fv`; `tokens` are the flow's URI tokens that
/// weigh most in the model's TF-IDF input.
pub fn label(group: &str, fv: &FeatureVector, tokens: &[&str]) -> String {
    let line = |i: usize| fv.chars.split(|&b| b == b'\n').nth(i).unwrap_or(&[]);
    let s = match group {
        "tls_client_hello" => format!(
            "ClientHello: {} ciphers, {} extensions{}",
            count(fv, "tls_log_n_ciphers"),
            value(fv, "tls_n_ext").round(),
            if on(fv, "tls_grease") { ", GREASE" } else { ", no GREASE" }
        ),
        "tls_sni" if !on(fv, "tls_sni") => "SNI: none".to_owned(),
        "tls_sni" if on(fv, "tls_sni_is_ip") => format!("SNI: an IP address ({})", text(line(0), 40)),
        "tls_sni" => format!("SNI: {}", text(line(0), 60)),
        "tls_server_hello" => {
            if on(fv, "tls_server_hello") {
                "ServerHello: version, cipher and extensions chosen".to_owned()
            } else {
                "ServerHello: none seen".to_owned()
            }
        }
        "tls_certificate" => certificate(fv),
        "tls_records" => "TLS record lengths and timing".to_owned(),
        "tls_names" => {
            let (sni, cn, issuer) = (text(line(0), 30), text(line(1), 30), text(line(2), 30));
            format!("names: SNI {sni:?}, CN {cn:?}, issuer {issuer:?}")
        }
        "http_request_line" => format!(
            "request line: {}, {} parameters, path depth {}",
            text(fv.chars.split(|&b| b == b' ').next().unwrap_or(&[]), 10),
            value(fv, "http_n_params").round(),
            value(fv, "http_path_depth").round()
        ),
        "http_uri_characters" => uri_characters(fv),
        "http_uri_tokens" => format!("URI tokens: {}", join_or(tokens, "(none in the vocabulary)")),
        "http_headers" => headers(fv),
        "http_body" => body(fv),
        "http_text" => format!("request text: {:?}", text(line(0), 50)),
        "flow_shape" => format!(
            "flow: {} packets to the server, {} back, packet sizes and timing",
            count(fv, "flow_log_pkts_to_server"),
            count(fv, "flow_log_pkts_to_client")
        ),
        other => other.to_owned(),
    };
    if s.chars().count() > MAX_LABEL { s.chars().take(MAX_LABEL - 1).collect::<String>() + "…" } else { s }
}

fn certificate(fv: &FeatureVector) -> String {
    let mut f = Vec::new();
    if on(fv, "cert_encrypted") {
        f.push("encrypted (TLS 1.3)");
    } else if !on(fv, "cert_present") {
        f.push("none seen");
    }
    for (name, what) in [
        ("cert_self_signed", "self-signed"),
        ("cert_expired", "expired"),
        ("cert_not_yet_valid", "not yet valid"),
        ("cert_sig_sha1_rsa", "SHA-1 signature"),
        ("cert_sig_md5", "MD5 signature"),
    ] {
        if on(fv, name) {
            f.push(what);
        }
    }
    if on(fv, "cert_present") && !on(fv, "cert_cn_matches_sni") {
        f.push("CN is not the SNI");
    }
    format!("certificate: {}", join_or(&f, "its key, issuer and validity"))
}

fn uri_characters(fv: &FeatureVector) -> String {
    let mut f = Vec::new();
    for (name, what) in [
        ("http_uri_quotes", "quotes"),
        ("http_uri_angle", "angle brackets"),
        ("http_uri_dotdot", "../"),
        ("http_uri_semicolon_pipe", "; or |"),
        ("http_uri_parens_braces", "parentheses or braces"),
        ("http_uri_dash_comment", "-- comment"),
    ] {
        if value(fv, name) > 0.0 {
            f.push(what);
        }
    }
    if value(fv, "http_uri_pct") > 0.0 {
        f.push("percent-encoding");
    }
    format!("URI characters: {}", join_or(&f, "none special"))
}

fn headers(fv: &FeatureVector) -> String {
    let mut f = Vec::new();
    if !on(fv, "http_has_user_agent") {
        f.push("no User-Agent");
    } else if on(fv, "http_ua_tool") {
        f.push("a tool's User-Agent");
    }
    if on(fv, "http_host_is_ip") {
        f.push("Host is an IP");
    }
    if !on(fv, "http_has_referer") {
        f.push("no Referer");
    }
    format!("headers: {} headers, {}", value(fv, "http_header_count").round(), join_or(&f, "usual ones"))
}

fn body(fv: &FeatureVector) -> String {
    let mut f = Vec::new();
    for (name, what) in
        [("http_body_quotes", "quotes"), ("http_body_angle", "angle brackets"), ("http_body_nonprint", "binary")]
    {
        if value(fv, name) > 0.0 {
            f.push(what);
        }
    }
    format!("body: {} bytes, {}", count(fv, "http_log_content_length"), join_or(&f, "plain"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_covers_inputs_and_every_static_group_has_features() {
        let gs = groups();
        assert_eq!(gs.len(), GROUPS.len());
        for g in &gs {
            let covers = !g.statics.is_empty() || !g.seq_cols.is_empty() || g.url || g.chars;
            assert!(covers, "group {} covers nothing", g.name);
        }
        // No static feature is in two groups, and the app flags are in none.
        let mut seen = vec![0; FEATURE_NAMES.len()];
        for g in &gs {
            for &i in &g.statics {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c <= 1), "a feature in two groups");
        for (i, n) in FEATURE_NAMES.iter().enumerate() {
            if n.starts_with("app_") {
                assert_eq!(seen[i], 0, "{n} must not be occluded");
            }
        }
    }

    #[test]
    fn labels_name_the_flows_own_values() {
        let mut fv = FeatureVector {
            static_features: vec![0.0; FEATURE_NAMES.len()],
            packets: Vec::new(),
            records: Vec::new(),
            url_tokens: Vec::new(),
            chars: b"GET /a?id=1 union select\n\n\n".to_vec(),
        };
        let set = |fv: &mut FeatureVector, n: &str, v: f32| {
            let i = FEATURE_NAMES.iter().position(|x| x == n).expect(n);
            fv.static_features[i] = v;
        };
        set(&mut fv, "cert_present", 1.0);
        set(&mut fv, "cert_self_signed", 1.0);
        assert_eq!(label("tls_certificate", &fv, &[]), "certificate: self-signed, CN is not the SNI");
        assert_eq!(label("http_uri_tokens", &fv, &["union", "select"]), "URI tokens: union, select");
        assert_eq!(label("tls_sni", &fv, &[]), "SNI: none");
        set(&mut fv, "http_uri_quotes", 0.7);
        assert_eq!(label("http_uri_characters", &fv, &[]), "URI characters: quotes");
        assert!(label("http_text", &fv, &[]).starts_with("request text: \"GET /a?id=1 union select\""));
        fv.chars = vec![b'a'; 300];
        assert!(label("http_text", &fv, &[]).chars().count() <= MAX_LABEL);
    }
}
