//! The `smoke` scenario end to end (root: network namespaces): nightjar-flood writes a pcap
//! and labels, `nightjar replay` recovers every labelled flow by 5-tuple, and every TLS
//! flow's JA3/JA3S equals tshark's and its JA4 equals FoxIO's `ja4plus`.
//!
//! Skips without root unless `NIGHTJAR_REQUIRE_FLOOD=1`; the reference tools are required
//! when `NIGHTJAR_REQUIRE_TOOLS=1` (CI sets both).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{nightjar_bin, privileged, run_ok, shared_data};

type Key = (String, u16, String, u16);

fn tool(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(p.into());
    }
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    if path.is_empty() {
        assert!(std::env::var_os("NIGHTJAR_REQUIRE_TOOLS").is_none(), "{name} is required but not found (set {env})");
        eprintln!("{name} not found: its check is skipped");
        return None;
    }
    Some(path.into())
}

#[test]
#[expect(clippy::too_many_lines, reason = "one end-to-end check in order")]
fn smoke_scenario_is_recovered_and_fingerprints_agree() {
    if !privileged() || !shared_data() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pcap, labels, summary) =
        (dir.path().join("smoke.pcap"), dir.path().join("smoke.csv"), dir.path().join("summary.json"));
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_nightjar-flood"))
            .arg("--scenario")
            .arg(&scenario)
            .arg("--pcap")
            .arg(&pcap)
            .arg("--labels")
            .arg(&labels)
            .arg("--summary-json")
            .arg(&summary)
            .arg("--quiet"),
    );
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(summary["capture"]["dropped"], 0, "{summary}");

    // Labels: the contract's columns first, every class present.
    let mut rdr = csv::Reader::from_path(&labels).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[..7], ["client_ip", "client_port", "server_ip", "server_port", "start_ts", "class", "family"]);
    let rows: Vec<HashMap<String, String>> = rdr.deserialize().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 300);
    let classes: BTreeSet<&str> = rows.iter().map(|r| r["class"].as_str()).collect();
    assert_eq!(classes, BTreeSet::from(["attack", "benign", "malware"]));
    for r in &rows {
        // Handshakes may fail only where the family is a scanner meeting a server it cannot talk to.
        assert!(r["outcome"] == "ok" || r["family"] == "tls_scan", "{r:?}");
    }

    // Replay: every labelled flow is found by 5-tuple, as TLS or HTTP.
    let events_path = dir.path().join("events.jsonl");
    run_ok(Command::new(nightjar_bin()).args(["replay", "--quiet", "--events"]).arg(&events_path).arg(&pcap));
    let mut events: HashMap<Key, serde_json::Value> = HashMap::new();
    for line in std::fs::read_to_string(&events_path).unwrap().lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            e["src_ip"].as_str().unwrap().to_owned(),
            e["src_port"].as_u64().unwrap() as u16,
            e["dest_ip"].as_str().unwrap().to_owned(),
            e["dest_port"].as_u64().unwrap() as u16,
        );
        assert!(events.insert(key, e).is_none(), "two events for one flow");
    }
    let key = |r: &HashMap<String, String>| {
        (
            r["client_ip"].clone(),
            r["client_port"].parse().unwrap(),
            r["server_ip"].clone(),
            r["server_port"].parse().unwrap(),
        )
    };
    for r in &rows {
        let e = events.get(&key(r)).unwrap_or_else(|| panic!("labelled flow not in the events: {r:?}"));
        let want = if r["profile"].is_empty() { "http" } else { "tls" };
        assert_eq!(e["app"], want, "{r:?}");
    }
    assert_eq!(events.len(), rows.len(), "events for flows nobody labelled");

    // JA3/JA3S against tshark.
    let mut checked = 0;
    if let Some(tshark) = tool("tshark", "NIGHTJAR_TSHARK") {
        let out = run_ok(Command::new(tshark).arg("-r").arg(&pcap).args([
            "-Y",
            "tls.handshake.type == 1 || tls.handshake.type == 2",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "tls.handshake.ja3",
            "-e",
            "tls.handshake.ja3s",
        ]));
        for line in out.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let (a, ap, b, bp) = (f[0].to_owned(), f[1].parse().unwrap(), f[2].to_owned(), f[3].parse().unwrap());
            if !f[4].is_empty() {
                let e = &events[&(a.clone(), ap, b.clone(), bp)];
                assert_eq!(e["tls"]["ja3"], f[4], "JA3 of {line}");
                checked += 1;
            }
            if f.len() > 5 && !f[5].is_empty() {
                let e = &events[&(b, bp, a, ap)];
                assert_eq!(e["tls"]["ja3s"], f[5], "JA3S of {line}");
            }
        }
        let tls_flows = events.values().filter(|e| e["tls"]["ja3"].is_string()).count();
        assert_eq!(checked, tls_flows, "tshark saw a different number of ClientHellos");
    }

    // JA4 against FoxIO's ja4plus.
    if let Some(ja4plus) = tool("ja4plus", "NIGHTJAR_JA4PLUS") {
        let out = run_ok(Command::new(ja4plus).args(["--format", "csv", "--types", "ja4", "analyze"]).arg(&pcap));
        let mut rdr = csv::Reader::from_reader(out.as_bytes());
        let mut per_profile: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let profiles: HashMap<Key, &str> = rows.iter().map(|r| (key(r), r["profile"].as_str())).collect();
        let mut n = 0;
        for row in rdr.deserialize::<HashMap<String, String>>() {
            let row = row.unwrap();
            let k = (
                row["src_ip"].clone(),
                row["src_port"].parse().unwrap(),
                row["dst_ip"].clone(),
                row["dst_port"].parse().unwrap(),
            );
            assert_eq!(events[&k]["tls"]["ja4"], row["fingerprint"].as_str(), "JA4 of {k:?}");
            per_profile.entry(profiles[&k].to_owned()).or_default().insert(row["fingerprint"].clone());
            n += 1;
        }
        assert!(n > 100, "ja4plus saw only {n} ClientHellos");
        eprintln!("JA4 per client profile: {per_profile:#?}");
    }
}
