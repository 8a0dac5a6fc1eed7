//! Per-verdict reasons (occlusion over input groups): every verdict of the shipped model
//! that is not benign, on the bundled real captures and the demo's generated threats,
//! carries reasons, and removing its top reason lowers the verdict's score by the stated
//! amount (the direction the reason claims).

use std::path::{Path, PathBuf};
use std::process::Command;

use nightjar::features::FeatureVector;
use nightjar::inference::{Class, Classifier, ModelBundle, Verdict};

fn captures() -> Vec<PathBuf> {
    let mut v = nightjar_benches::fixture_paths();
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/generated/demo-threats.pcap"));
    v
}

/// The sensor's own features of the captures (`replay --features`).
fn features() -> Vec<FeatureVector> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("f.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["--model", "none", "replay", "--quiet", "--no-events", "--features"])
        .arg(&out)
        .args(captures())
        .status()
        .expect("run nightjar");
    assert!(status.success());
    std::fs::read_to_string(&out)
        .expect("features")
        .lines()
        .map(|l| serde_json::from_str::<FeatureVector>(l).expect("feature line"))
        .collect()
}

#[test]
fn every_flagged_verdict_has_reasons_and_removing_the_top_one_lowers_its_score() {
    let flows = features();
    assert!(flows.len() >= 20, "{} flows", flows.len());
    let bundle = std::sync::Arc::new(ModelBundle::embedded(None).expect("shipped model"));
    let mut c = Classifier::new(bundle, 32).expect("classifier");
    let mut flagged = 0;
    for chunk in flows.chunks(c.batch_size()) {
        let refs: Vec<&FeatureVector> = chunk.iter().collect();
        let mut verdicts: Vec<Verdict> = Vec::new();
        c.classify(&refs, &mut verdicts).expect("classify");
        c.explain(&refs, &mut verdicts, None, usize::MAX).expect("explain");
        for (fv, v) in chunk.iter().zip(&verdicts) {
            if v.class == Class::Benign {
                assert!(v.reasons.is_empty(), "a benign verdict has no reasons");
                continue;
            }
            flagged += 1;
            assert!(
                !v.reasons.is_empty(),
                "{:?} verdict without reasons: {:?}",
                v.class,
                String::from_utf8_lossy(&fv.chars)
            );
            assert!(v.reasons.len() <= nightjar::inference::MAX_REASONS);
            assert!(v.reasons.windows(2).all(|w| w[0].delta >= w[1].delta), "strongest first");
            let top = &v.reasons[0];
            assert!(top.delta > 0.0 && !top.label.is_empty());
            let full = c.probabilities_without(fv, None, None).expect("run");
            let without = c.probabilities_without(fv, Some(top.group), None).expect("run");
            let (s_full, s_without) = (c.explained_score(fv, &full, v.class), c.explained_score(fv, &without, v.class));
            assert!(
                s_without < s_full,
                "removing {} ({}) must lower the score: {s_full} -> {s_without}",
                top.group,
                top.label
            );
            assert!(
                ((s_full - s_without) - top.delta).abs() < 1e-3,
                "{}: stated delta {} but measured {}",
                top.group,
                top.delta,
                s_full - s_without
            );
        }
    }
    // The demo's generated threats: most come out flagged (the shipped model's figures on
    // them are in the demo's output), so the check above ran on a good number of verdicts.
    assert!(flagged >= 8, "only {flagged} flagged verdicts to explain");
}

#[test]
fn the_row_budget_bounds_the_explanations_and_counts_the_rest() {
    let flows = features();
    let bundle = std::sync::Arc::new(ModelBundle::embedded(None).expect("shipped model"));
    let mut c = Classifier::new(bundle, 32).expect("classifier");
    let refs: Vec<&FeatureVector> = flows.iter().take(c.batch_size()).collect();
    let mut verdicts: Vec<Verdict> = Vec::new();
    c.classify(&refs, &mut verdicts).expect("classify");
    let flagged = verdicts.iter().filter(|v| v.class != Class::Benign).count();
    assert!(flagged > 4, "need flagged flows, got {flagged}");
    // One batch of rows: at most 4 flows of 8 groups; the others are counted, unexplained.
    let done = c.explain(&refs, &mut verdicts, None, c.batch_size()).expect("explain");
    assert_eq!(done.rows, c.batch_size());
    assert!(done.explained >= 1 && done.explained <= 4, "{done:?}");
    assert_eq!(done.explained + done.skipped, flagged);
    let with = verdicts.iter().filter(|v| !v.reasons.is_empty()).count();
    assert!(with <= done.explained);
    // No rows at all: nothing explained, every flagged verdict counted.
    c.classify(&refs, &mut verdicts).expect("classify");
    let none = c.explain(&refs, &mut verdicts, None, 0).expect("explain");
    assert_eq!((none.rows, none.explained, none.skipped), (0, 0, flagged));
    assert!(verdicts.iter().all(|v| v.reasons.is_empty()));
}
