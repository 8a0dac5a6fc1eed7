//! Golden tests: JA3/JA3S against tshark's tables and JA4 against FoxIO's reference
//! output, for every TLS-over-TCP hello in `../shared/data/tls_fingerprint_test_vectors`.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::{FlowPrints, Tuple, lookup, prints_of, shared_data};

fn vectors() -> Option<PathBuf> {
    shared_data().map(|d| d.join("tls_fingerprint_test_vectors"))
}

/// Replays each capture once.
struct Cache(HashMap<PathBuf, HashMap<Tuple, FlowPrints>>);

impl Cache {
    fn get(&mut self, p: &Path) -> &HashMap<Tuple, FlowPrints> {
        self.0.entry(p.to_path_buf()).or_insert_with(|| prints_of(p))
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad ip {s}"))
}

/// Checks one tshark CSV; returns (rows, mismatches).
fn check_tshark(csv_name: &str, column: &str, pick: fn(&FlowPrints) -> &Vec<String>) -> (usize, Vec<String>) {
    let Some(dir) = vectors() else { return (0, Vec::new()) };
    let mut rdr = csv::Reader::from_path(dir.join(csv_name)).expect("open csv");
    let headers = rdr.headers().expect("headers").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect("column");
    let (c_file, c_src, c_sport, c_dst, c_dport, c_hash) =
        (col("file"), col("src"), col("srcport"), col("dst"), col("dstport"), col(column));
    let mut cache = Cache(HashMap::new());
    let mut rows = 0;
    let mut bad = Vec::new();
    for rec in rdr.records() {
        let rec = rec.expect("row");
        rows += 1;
        let file = dir.join(&rec[c_file]);
        let (sport, dport): (u16, u16) = (rec[c_sport].parse().expect("port"), rec[c_dport].parse().expect("port"));
        let expected = &rec[c_hash];
        if expected.is_empty() {
            // tshark printed no fingerprint (SSLv2, truncated hellos): nothing to compare.
            continue;
        }
        let prints = cache.get(&file);
        // tshark leaves IPv6 addresses out of its ip.src/ip.dst columns: match on ports.
        let got: Vec<String> = if rec[c_src].is_empty() {
            prints
                .iter()
                .filter(|(t, _)| (t.1, t.3) == (sport, dport) || (t.3, t.1) == (sport, dport))
                .flat_map(|(_, p)| pick(p).clone())
                .collect()
        } else {
            let t: Tuple = (ip(&rec[c_src]), sport, ip(&rec[c_dst]), dport);
            lookup(prints, t).map(|p| pick(p).clone()).unwrap_or_default()
        };
        if !got.iter().any(|g| g == expected) {
            bad.push(format!(
                "{} {}:{sport}->{}:{dport}: expected {expected}, got {got:?}",
                &rec[c_file], &rec[c_src], &rec[c_dst]
            ));
        }
    }
    (rows, bad)
}

#[test]
fn ja3_equals_tshark() {
    let (rows, bad) = check_tshark("tshark_ja3_expected.csv", "ja3_md5", |p| &p.ja3);
    if rows == 0 {
        return;
    }
    assert!(bad.is_empty(), "{} of {rows} JA3 rows differ:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn ja3s_equals_tshark() {
    let (rows, bad) = check_tshark("tshark_ja3s_expected.csv", "ja3s_md5", |p| &p.ja3s);
    if rows == 0 {
        return;
    }
    assert!(bad.is_empty(), "{} of {rows} JA3S rows differ:\n{}", bad.len(), bad.join("\n"));
}

/// Parses FoxIO's insta snapshot: a YAML list of streams with `src`, `dst`, ports,
/// `transport` and `ja4`.
fn parse_snapshot(text: &str) -> Vec<(String, Tuple, String)> {
    let mut out = Vec::new();
    let mut cur: HashMap<String, String> = HashMap::new();
    let mut flush = |cur: &mut HashMap<String, String>| {
        if let (Some(tr), Some(src), Some(dst), Some(sp), Some(dp), Some(j)) = (
            cur.get("transport"),
            cur.get("src"),
            cur.get("dst"),
            cur.get("src_port"),
            cur.get("dst_port"),
            cur.get("ja4"),
        ) {
            out.push((tr.clone(), (ip(src), sp.parse().expect("port"), ip(dst), dp.parse().expect("port")), j.clone()));
        }
        cur.clear();
    };
    for line in text.lines() {
        let l = line.trim_start();
        let (is_new, l) = match l.strip_prefix("- ") {
            Some(rest) if line.starts_with("- ") => (true, rest),
            _ => (false, l),
        };
        if is_new {
            flush(&mut cur);
        }
        if let Some((k, v)) = l.split_once(": ") {
            if line.starts_with("  ") || is_new {
                cur.entry(k.trim().to_owned()).or_insert_with(|| v.trim().trim_matches('"').to_owned());
            }
        }
    }
    flush(&mut cur);
    out
}

#[test]
fn ja4_equals_foxio() {
    let Some(dir) = vectors() else { return };
    let snaps = dir.join("ja4_expected_rust_snapshots");
    let mut checked = 0;
    let mut bad = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&snaps).expect("snapshots").flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pcap) = name.strip_prefix("ja4__insta@").and_then(|n| n.strip_suffix(".snap")) else { continue };
        let pcap_path = dir.join("ja4_pcaps").join(pcap);
        if !pcap_path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("read snapshot");
        let expected: Vec<_> = parse_snapshot(&text).into_iter().filter(|(tr, _, _)| tr == "tcp").collect();
        if expected.is_empty() {
            continue;
        }
        let prints = prints_of(&pcap_path);
        for (_, t, ja4) in expected {
            checked += 1;
            let got = lookup(&prints, t).map(|p| p.ja4.clone()).unwrap_or_default();
            if !got.contains(&ja4) {
                bad.push(format!("{pcap} {t:?}: expected {ja4}, got {got:?}"));
            }
        }
    }
    assert!(checked > 100, "only {checked} JA4 vectors found");
    assert!(bad.is_empty(), "{} of {checked} JA4 differ:\n{}", bad.len(), bad.join("\n"));
}
