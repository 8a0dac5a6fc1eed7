//! `--eve`: every EVE record Nightjar writes validates against Suricata's own schema
//! (`../shared/data/suricata_eve_schema/schema.json`), and every verdict that is not
//! benign has its alert record. On the bundled real captures, the demo's generated
//! threats and (when the shared data is there) real attack and malware captures.

#[expect(dead_code, reason = "the shared helpers are for the fingerprint tests")]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bundled() -> Vec<PathBuf> {
    let mut v = nightjar_benches::fixture_paths();
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/generated/demo-threats.pcap"));
    v
}

/// A few real captures of each kind: the first files (by name) of the scanner, exploit
/// and malware folders.
fn real_captures(shared: &Path) -> Vec<PathBuf> {
    let rt = shared.join("real_traffic");
    let mut out = Vec::new();
    for (dir, n) in [
        ("spiderlabs_iocs/Bots_Scanners", 2),
        ("spiderlabs_iocs/Drupal", 2),
        ("spiderlabs_iocs/Emotet", 2),
        ("spiderlabs_iocs/Cobalt_Strike", 2),
        ("anyrun_malshare_2019", 3),
    ] {
        let mut files: Vec<PathBuf> = walk(&rt.join(dir))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() < 20 << 20))
            .collect();
        files.sort();
        out.extend(files.into_iter().take(n));
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

fn schema() -> Option<jsonschema::Validator> {
    let shared = common::shared_data()?;
    let text = std::fs::read_to_string(shared.join("suricata_eve_schema/schema.json")).expect("schema");
    let s: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    Some(jsonschema::validator_for(&s).expect("schema compiles"))
}

/// Replays `files` with events and EVE (all record types); returns (events, EVE records,
/// flagged verdicts left without reasons by the explanation budget).
fn replay(files: &[PathBuf]) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ev, eve, sum) = (dir.path().join("events.jsonl"), dir.path().join("eve.json"), dir.path().join("s.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["replay", "--quiet", "--eve-types", "all", "--events"])
        .arg(&ev)
        .arg("--eve")
        .arg(&eve)
        .arg("--summary-json")
        .arg(&sum)
        .args(files)
        .output()
        .expect("run nightjar");
    assert!(out.status.code().is_some_and(|c| c == 0 || c == 2), "nightjar: {}", String::from_utf8_lossy(&out.stderr));
    let read = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .expect("output")
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    };
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sum).expect("summary")).expect("summary JSON");
    let skipped = summary["reasons"]["skipped_budget"].as_u64().expect("reasons counters");
    (read(&ev), read(&eve), skipped)
}

fn check(name: &str, files: &[PathBuf], v: &jsonschema::Validator) -> BTreeMap<String, usize> {
    let (events, eve, skipped) = replay(files);
    let mut types = BTreeMap::new();
    let mut errors = Vec::new();
    for r in &eve {
        *types.entry(r["event_type"].as_str().unwrap_or("?").to_owned()).or_insert(0) += 1;
        for e in v.iter_errors(r) {
            errors.push(format!("{} at {}: {e}", r["event_type"], e.instance_path()));
        }
    }
    assert!(errors.is_empty(), "{name}: {} schema errors, first: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    // Every verdict of the model that is not benign has an alert, and nothing else has.
    let flagged: BTreeSet<u64> = events
        .iter()
        .filter(|e| e["verdict"]["class"] != "benign" && e["verdict"]["score"].is_number())
        .filter_map(|e| e["flow_id"].as_u64())
        .collect();
    let alerted: BTreeSet<u64> =
        eve.iter().filter(|r| r["event_type"] == "alert").filter_map(|r| r["flow_id"].as_u64()).collect();
    assert_eq!(flagged, alerted, "{name}: alerts must be exactly the non-benign verdicts");
    let mut without_reasons = 0;
    for r in eve.iter().filter(|r| r["event_type"] == "alert") {
        let class = r["alert"]["metadata"]["nightjar_class"][0].as_str().expect("class");
        assert!(["attack", "malware", "unknown"].contains(&class));
        assert!(r["alert"]["signature"].as_str().is_some_and(|s| s.contains(class)), "signature names the class");
        if r["alert"]["metadata"]["nightjar_reasons"].as_array().is_none_or(Vec::is_empty) {
            without_reasons += 1;
        }
    }
    // Every alert has its reasons, but those the explanation budget left out (counted).
    assert_eq!(without_reasons, skipped, "{name}: alerts without reasons must be the counted ones");
    // One flow record per event; tls/http records for their apps.
    assert_eq!(types.get("flow").copied().unwrap_or(0), events.len(), "{name}: flow records");
    // (an `http` flow whose request could not be parsed has no `http` object to log)
    let apps = |a: &str| events.iter().filter(|e| e["app"] == a && e[a].is_object()).count();
    assert_eq!(types.get("tls").copied().unwrap_or(0), apps("tls"), "{name}: tls records");
    assert_eq!(types.get("http").copied().unwrap_or(0), apps("http"), "{name}: http records");
    eprintln!("{name}: {} EVE records valid {types:?}", eve.len());
    types
}

#[test]
fn eve_records_validate_against_suricatas_schema() {
    let Some(v) = schema() else { return };
    let types = check("bundled and generated", &bundled(), &v);
    assert_eq!(replay(&bundled()).2, 0, "the bundled captures fit in the explanation burst");
    assert!(types.get("alert").copied().unwrap_or(0) >= 8, "the generated threats raise alerts: {types:?}");
    let shared = common::shared_data().expect("shared data");
    let real = real_captures(&shared);
    assert!(real.len() >= 8, "real captures: {real:?}");
    let types = check("real attack and malware captures", &real, &v);
    assert!(types.get("alert").copied().unwrap_or(0) > 0, "{types:?}");
}

#[test]
fn the_schema_catches_a_broken_record() {
    // The validator is not vacuous: a record with a field EVE does not have fails.
    let Some(v) = schema() else { return };
    let (_, eve, _) = replay(&bundled());
    let mut r = eve.into_iter().find(|r| r["event_type"] == "alert").expect("an alert");
    assert!(v.is_valid(&r));
    r["alert"]["nightjar_score"] = serde_json::json!(0.9);
    assert!(!v.is_valid(&r), "alert.nightjar_score is not EVE");
    r["alert"].as_object_mut().expect("alert").remove("nightjar_score");
    r["timestamp"] = serde_json::json!("2026-12-01T15:31:50Z");
    assert!(!v.is_valid(&r), "EVE timestamps carry a +0000 offset");
}
