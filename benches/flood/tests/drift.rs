//! The drift scenario of online learning, end to end (root: network namespaces): the
//! `drift` scenario's capture holds `c2_checkin`, a malware family the drift model
//! (`model/artifacts/drift/`, trained without it) has never seen. `nightjar replay
//! --feedback` learns from labels on 30 % of that family's flows (at most 200, in capture
//! order); on the family's flows scored after the last label, recall must reach 0.9, and
//! benign precision over the replay may not fall by more than a point.
//!
//! Skips without root unless `NIGHTJAR_REQUIRE_FLOOD=1` (CI sets it). Writes the figures to
//! `target/test-artifacts/drift.json`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{nightjar_bin, privileged, run_ok, shared_data};

type Key = (String, u16, String, u16);

const FAMILY: &str = "c2_checkin";
const LABELS: usize = 200;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Verdict class of every scored flow, in the order the sensor wrote them.
fn verdicts(path: &Path) -> Vec<(Key, String)> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["verdict"]["score"].is_null() {
            continue;
        }
        let port = |k: &str| u16::try_from(e[k].as_u64().unwrap()).unwrap();
        let key = (
            e["src_ip"].as_str().unwrap().to_owned(),
            port("src_port"),
            e["dest_ip"].as_str().unwrap().to_owned(),
            port("dest_port"),
        );
        out.push((key, e["verdict"]["class"].as_str().unwrap().to_owned()));
    }
    out
}

fn share(hits: usize, of: usize) -> f64 {
    if of == 0 { f64::NAN } else { hits as f64 / of as f64 }
}

/// Benign precision: of the flows called benign, the share that are benign.
fn benign_precision(v: &[(Key, String)], truth: &HashMap<Key, (String, String)>) -> f64 {
    let called: Vec<&str> =
        v.iter().filter(|(_, c)| c == "benign").filter_map(|(k, _)| truth.get(k)).map(|t| t.0.as_str()).collect();
    share(called.iter().filter(|c| **c == "benign").count(), called.len())
}

#[test]
fn a_new_family_is_learned_from_200_labels() {
    if !privileged() || !shared_data() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pcap, labels) = (dir.path().join("drift.pcap"), dir.path().join("drift.csv"));
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_nightjar-flood"))
            .arg("--scenario")
            .arg(repo().join("benches/flood/scenarios/drift.toml"))
            .arg("--pcap")
            .arg(&pcap)
            .arg("--labels")
            .arg(&labels)
            .arg("--quiet"),
    );

    // Labels of 30 % of the family's flows (three in ten, in capture order), at most 200.
    let mut rows: Vec<csv::StringRecord> =
        csv::Reader::from_path(&labels).unwrap().records().map(Result::unwrap).collect();
    rows.sort_by(|a, b| a[4].parse::<f64>().unwrap().total_cmp(&b[4].parse::<f64>().unwrap()));
    let key = |r: &csv::StringRecord| (r[0].to_owned(), r[1].parse().unwrap(), r[2].to_owned(), r[3].parse().unwrap());
    let truth: HashMap<Key, (String, String)> =
        rows.iter().map(|r| (key(r), (r[5].to_owned(), r[6].to_owned()))).collect();
    let fed: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|r| &r[6] == FAMILY)
        .enumerate()
        .filter(|(i, _)| i % 10 < 3)
        .map(|(_, r)| r)
        .take(LABELS)
        .collect();
    assert_eq!(fed.len(), LABELS, "the scenario has too few {FAMILY} flows");
    let feedback = dir.path().join("feedback.csv");
    let mut w = csv::Writer::from_path(&feedback).unwrap();
    w.write_record(["client_ip", "client_port", "server_ip", "server_port", "class"]).unwrap();
    for r in &fed {
        w.write_record([&r[0], &r[1], &r[2], &r[3], "malware"]).unwrap();
    }
    w.flush().unwrap();
    let fed: HashSet<Key> = fed.iter().map(|r| key(r)).collect();

    let nightjar = nightjar_bin();
    let model = repo().join("model/artifacts/drift/nightjar.json");
    let (base, learned) = (dir.path().join("base.jsonl"), dir.path().join("learned.jsonl"));
    run_ok(
        Command::new(&nightjar)
            .arg("--model")
            .arg(&model)
            .args(["replay", "--quiet", "--workers", "1", "--events"])
            .arg(&base)
            .arg(&pcap),
    );
    run_ok(
        Command::new(&nightjar)
            .arg("--model")
            .arg(&model)
            .args(["replay", "--quiet", "--feedback"])
            .arg(&feedback)
            .arg("--events")
            .arg(&learned)
            .arg(&pcap),
    );
    let (base, learned) = (verdicts(&base), verdicts(&learned));
    let is_family = |k: &Key| truth.get(k).is_some_and(|t| t.1 == FAMILY);
    let recall = |v: &[(Key, String)]| {
        let fam: Vec<&String> = v.iter().filter(|(k, _)| is_family(k)).map(|(_, c)| c).collect();
        (share(fam.iter().filter(|c| c.as_str() == "malware").count(), fam.len()), fam.len())
    };
    let last = learned.iter().rposition(|(k, _)| fed.contains(k)).expect("labelled flows in the events");
    let (recall_before, _) = recall(&base);
    let (recall_after, after_flows) = recall(&learned[last + 1..]);
    let (bp_base, bp_learned) = (benign_precision(&base, &truth), benign_precision(&learned, &truth));
    let benign_total = learned.iter().filter(|(k, _)| truth.get(k).is_some_and(|t| t.0 == "benign")).count();
    let to_malware = |v: &[(Key, String)]| {
        share(
            v.iter().filter(|(k, c)| c == "malware" && truth.get(k).is_some_and(|t| t.0 == "benign")).count(),
            benign_total,
        )
    };
    let figures = serde_json::json!({
        "family": FAMILY, "labels": LABELS,
        "family_recall_without_learning": recall_before,
        "family_recall_after_last_label": recall_after, "family_flows_after_last_label": after_flows,
        "benign_precision_without_learning": bp_base, "benign_precision_with_learning": bp_learned,
        "benign_flows_called_malware_without_learning": to_malware(&base),
        "benign_flows_called_malware_with_learning": to_malware(&learned),
    });
    let out = repo().join("target/test-artifacts");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("drift.json"), serde_json::to_string_pretty(&figures).unwrap()).unwrap();
    eprintln!("{figures:#}");
    assert!(recall_before < 0.1, "{figures}");
    assert!(after_flows >= 50, "{figures}");
    assert!(recall_after >= 0.9, "{figures}");
    assert!(bp_learned >= bp_base - 0.01, "{figures}");
}
