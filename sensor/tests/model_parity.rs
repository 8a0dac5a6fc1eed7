//! Train/serve parity and refusal of bad models.
//!
//! `model/artifacts/parity.json` holds raw sensor features of flows from the held-out test
//! corpus and the probabilities ONNX Runtime computed for them in `model/` (Python
//! preprocessing + onnxruntime). Here the same flows go through the Rust preprocessing and
//! tract: classes must agree and scores must stay within the stated tolerance, for the
//! float and the int8 model.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use sha2::Digest;

use nightjar::features::FeatureVector;
use nightjar::inference::{Classifier, InferenceError, ModelBundle};

/// The shipped model, or a candidate's directory in `NIGHTJAR_MODEL_DIR` (`train-real`
/// writes one with its own fixture).
fn artifacts() -> PathBuf {
    std::env::var_os("NIGHTJAR_MODEL_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/artifacts"), PathBuf::from)
}

fn fixture() -> (Vec<FeatureVector>, serde_json::Value) {
    let text = std::fs::read_to_string(artifacts().join("parity.json")).expect("parity fixture");
    let j: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let flows = j["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .map(|f| serde_json::from_value::<FeatureVector>(f.clone()).expect("feature vector"))
        .collect();
    (flows, j)
}

#[test]
fn tract_matches_onnx_runtime_for_float_and_int8() {
    let (flows, j) = fixture();
    for variant in ["float", "int8"] {
        let bundle = ModelBundle::from_path(&artifacts().join("nightjar.json"), Some(variant)).expect("model loads");
        let tolerance = j["tolerance"][variant].as_f64().expect("tolerance") as f32;
        let expected: Vec<Vec<f32>> = serde_json::from_value(j["expected"][variant].clone()).expect("expected");
        // Batch sizes that split the fixture differently, padding included.
        for batch in [1, 7, 32] {
            let mut c = Classifier::new(std::sync::Arc::new(bundle.clone()), batch).expect("tract loads the model");
            let mut worst = 0.0f32;
            for (chunk_i, chunk) in flows.chunks(batch).enumerate() {
                let refs: Vec<&FeatureVector> = chunk.iter().collect();
                let mut probs = Vec::new();
                c.probabilities(&refs, &mut probs).expect("inference");
                for (k, p) in probs.chunks_exact(3).enumerate() {
                    let want = &expected[chunk_i * batch + k];
                    for (a, b) in p.iter().zip(want) {
                        worst = worst.max((a - b).abs());
                    }
                    let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
                    // Classes must agree unless the runner-up is within the tolerance.
                    let mut sorted = want.clone();
                    sorted.sort_by(|a, b| b.total_cmp(a));
                    if sorted[0] - sorted[1] > 2.0 * tolerance {
                        assert_eq!(argmax(p), argmax(want), "{variant}: class of flow {}", chunk_i * batch + k);
                    }
                }
            }
            assert!(worst <= tolerance, "{variant} batch {batch}: max |tract - onnxruntime| = {worst} > {tolerance}");
            eprintln!("{variant} batch {batch}: max |tract - onnxruntime| = {worst:.2e}");
        }
    }
}

/// The verdicts the sensor reaches (each app's decision rule: benign offset and
/// `unknown_below`) are the ones `model/` computed from ONNX Runtime's probabilities,
/// except where a flow sits within the tolerance of a boundary.
#[test]
fn verdicts_follow_the_per_app_decision_rule() {
    let (flows, j) = fixture();
    let Some(want) = j.get("expected_verdicts") else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIP model_parity: this fixture has no expected verdicts (a model before per-app decision rules)\n",
        );
        return;
    };
    let bundle = ModelBundle::from_path(&artifacts().join("nightjar.json"), Some("float")).expect("model loads");
    let want: Vec<String> = serde_json::from_value(want["float"].clone()).expect("verdict names");
    let mut c = Classifier::new(std::sync::Arc::new(bundle), 32).expect("tract loads the model");
    let mut got = Vec::new();
    let (mut same, mut near) = (0, 0);
    for chunk in flows.chunks(32) {
        let refs: Vec<&FeatureVector> = chunk.iter().collect();
        let mut v = Vec::new();
        c.classify(&refs, &mut v).expect("inference");
        got.extend(v);
    }
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g.class.as_str() == w {
            same += 1;
        } else {
            // Only a score at a boundary may differ (1e-4: the float tolerance).
            let score = g.score.expect("a model ran");
            let bounds: Vec<f32> = ["tls", "http"].iter().filter_map(|a| j_decision(&artifacts(), a)).collect();
            assert!(bounds.iter().any(|b| (score - b).abs() < 1e-3), "flow {i}: sensor {g:?}, model/ {w}");
            near += 1;
        }
    }
    assert!(same >= want.len() - 1, "{same} of {} verdicts agree", want.len());
    eprintln!("verdicts: {same} of {} agree ({near} at a boundary)", want.len());
}

/// The novelty distances (`ood` block: nearest class mean, Mahalanobis) the sensor computes
/// from tract's embeddings are ONNX Runtime's + numpy's, float and int8.
#[test]
fn novelty_matches_the_model() {
    let (flows, j) = fixture();
    let Some(want) = j.get("expected_novelty") else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIP model_parity: this fixture has no novelty distances (a model without an ood block)\n",
        );
        return;
    };
    for variant in ["float", "int8"] {
        let bundle = ModelBundle::from_path(&artifacts().join("nightjar.json"), Some(variant)).expect("model loads");
        let want: Vec<f32> = serde_json::from_value(want[variant].clone()).expect("distances");
        let mut c = Classifier::new(std::sync::Arc::new(bundle), 32).expect("tract loads the model");
        let mut got = Vec::new();
        for chunk in flows.chunks(32) {
            let refs: Vec<&FeatureVector> = chunk.iter().collect();
            let mut probs = Vec::new();
            c.probabilities(&refs, &mut probs).expect("inference");
            let n = c.novelty().expect("the metadata has an ood block");
            got.extend(c.embeddings.chunks_exact(c.embedding_dim).map(|e| n.distance(e)));
        }
        assert_eq!(got.len(), want.len());
        // Relative: distances run from a few units to thousands. int8 embeddings differ more.
        let tolerance = if variant == "float" { 1e-3 } else { 5e-2 };
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= tolerance * w.abs().max(1.0), "{variant} flow {i}: sensor {g}, model/ {w}");
        }
        eprintln!("{variant}: {} novelty distances agree", got.len());
    }
}

fn j_decision(dir: &Path, app: &str) -> Option<f32> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("nightjar.json")).ok()?).ok()?;
    meta["decision"][app]["unknown_below"].as_f64().map(|v| v as f32)
}

fn copy_artifacts(dir: &Path) -> PathBuf {
    for name in ["nightjar.json", "nightjar-float.onnx", "nightjar-int8.onnx", "nightjar-reference.json"] {
        std::fs::copy(artifacts().join(name), dir.join(name)).expect("copy");
    }
    dir.join("nightjar.json")
}

#[test]
fn corrupt_or_mismatched_models_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = copy_artifacts(dir.path());

    // A flipped byte in the ONNX file.
    let onnx = dir.path().join("nightjar-float.onnx");
    let mut bytes = std::fs::read(&onnx).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&onnx, &bytes).expect("write");
    let err = ModelBundle::from_path(&meta, Some("float")).expect_err("corrupt file");
    assert!(matches!(err, InferenceError::Hash { .. }), "{err}");
    assert!(err.to_string().contains("sha256"), "{err}");

    // Trained on other features.
    let text = std::fs::read_to_string(&meta).expect("read");
    let mut j: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    j["static_features"][3] = "something_else".into();
    std::fs::write(&meta, j.to_string()).expect("write");
    let err = ModelBundle::from_path(&meta, Some("int8")).expect_err("schema mismatch");
    assert!(matches!(err, InferenceError::Schema { .. }), "{err}");
    assert!(err.to_string().contains("does not match this sensor's features"), "{err}");

    j["static_features"][3] =
        serde_json::from_str::<serde_json::Value>(&text).expect("JSON")["static_features"][3].clone();
    j["schema_version"] = 999.into();
    std::fs::write(&meta, j.to_string()).expect("write");
    assert!(matches!(ModelBundle::from_path(&meta, None), Err(InferenceError::Schema { .. })));

    // A character input wider than the sensor keeps, or on a schema-1 model; a decision
    // rule that is not a number.
    j["schema_version"] = 2.into();
    j["chars"] = 100_000.into();
    std::fs::write(&meta, j.to_string()).expect("write");
    assert!(matches!(ModelBundle::from_path(&meta, None), Err(InferenceError::Schema { .. })));
    j["schema_version"] = 1.into();
    j["chars"] = 256.into();
    std::fs::write(&meta, j.to_string()).expect("write");
    assert!(matches!(ModelBundle::from_path(&meta, None), Err(InferenceError::Schema { .. })));
    j["schema_version"] = serde_json::from_str::<serde_json::Value>(&text).expect("JSON")["schema_version"].clone();
    j["chars"] =
        serde_json::from_str::<serde_json::Value>(&text).expect("JSON").get("chars").cloned().unwrap_or(0.into());
    j["decision"] = serde_json::json!({"tls": {"benign_log_offset": 1.0, "unknown_below": 7.0}});
    std::fs::write(&meta, j.to_string()).expect("write");
    let err = ModelBundle::from_path(&meta, None).expect_err("bad decision rule");
    assert!(err.to_string().contains("decision for \"tls\""), "{err}");

    // A novelty block whose matrices do not agree; one of another width than the graph's
    // embeddings (the metadata loads, the classifier refuses it).
    let meta = copy_artifacts(dir.path());
    let mut j: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    j["ood"] = serde_json::json!({"class_means": [[0.0, 0.0]], "precision": [[1.0, 0.0]], "max_distance": 1.0});
    std::fs::write(&meta, j.to_string()).expect("write");
    let err = ModelBundle::from_path(&meta, None).expect_err("bad ood block");
    assert!(err.to_string().contains("ood"), "{err}");
    j["ood"] =
        serde_json::json!({"class_means": [[0.0, 0.0]], "precision": [[1.0, 0.0], [0.0, 1.0]], "max_distance": 1.0});
    std::fs::write(&meta, j.to_string()).expect("write");
    let bundle = ModelBundle::from_path(&meta, None).expect("a well-formed block loads");
    let err = Classifier::new(std::sync::Arc::new(bundle), 4).err().expect("width differs from the embeddings");
    assert!(err.to_string().contains("ood block of width 2"), "{err}");

    // Not metadata at all, a missing variant, a missing file.
    std::fs::write(&meta, "{ not json").expect("write");
    assert!(matches!(ModelBundle::from_path(&meta, None), Err(InferenceError::Metadata { .. })));
    let meta = copy_artifacts(dir.path());
    assert!(matches!(ModelBundle::from_path(&meta, Some("fp16")), Err(InferenceError::Metadata { .. })));
    std::fs::remove_file(dir.path().join("nightjar-int8.onnx")).expect("rm");
    assert!(matches!(ModelBundle::from_path(&meta, Some("int8")), Err(InferenceError::Read { .. })));

    // A valid-looking file that is not an ONNX graph: the hash is made to match, tract refuses.
    let fake = dir.path().join("nightjar-float.onnx");
    std::fs::write(&fake, b"not a protobuf at all").expect("write");
    let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&meta).expect("read")).expect("JSON");
    let digest = sha2::Sha256::digest(b"not a protobuf at all").iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    j["files"]["float"]["sha256"] = digest.into();
    std::fs::write(&meta, j.to_string()).expect("write");
    let bundle = ModelBundle::from_path(&meta, Some("float")).expect("hash matches");
    let err = Classifier::new(std::sync::Arc::new(bundle), 8).err().expect("tract refuses");
    assert!(matches!(err, InferenceError::Load { .. }), "{err}");
}

#[test]
fn the_cli_refuses_a_bad_model_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["--model", "/nonexistent/nightjar.json", "demo"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read model file /nonexistent/nightjar.json"), "{err}");
}
