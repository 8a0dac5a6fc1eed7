//! Inference on one core: the embedded model (float and int8) through tract, per batch
//! size, on real feature vectors (the parity fixture's flows from the held-out corpus),
//! preprocessing included; and the verdicts of a batch of 32 as the sensor gives them
//! (decision rule and novelty included) and the novelty distance of one flow.
//!
//! Run with `cargo bench -p nightjar-benches --bench inference`.
//! Results: see `benches/RESULTS.md`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nightjar::features::FeatureVector;
use nightjar::inference::{Classifier, ModelBundle};

fn flows() -> Vec<FeatureVector> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/artifacts/parity.json");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    j["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .map(|f| serde_json::from_value::<FeatureVector>(f.clone()).expect("feature vector"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let flows = flows();
    let mut g = c.benchmark_group("inference");
    for variant in ["float", "int8"] {
        let bundle = Arc::new(ModelBundle::embedded(Some(variant)).expect("embedded model"));
        for batch in [1usize, 8, 32, 64] {
            let mut clf = Classifier::new(bundle.clone(), batch).expect("tract");
            let refs: Vec<&FeatureVector> = flows.iter().cycle().take(batch).collect();
            let mut probs = Vec::new();
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(BenchmarkId::new(variant, batch), |b| {
                b.iter(|| clf.probabilities(&refs, &mut probs).expect("run"));
            });
        }
    }
    g.finish();

    // The shipped path: probabilities, then each app's decision rule and, for benign
    // verdicts, the novelty distance (`ood` block); and that distance alone, per flow.
    let mut g = c.benchmark_group("verdicts");
    let bundle = Arc::new(ModelBundle::embedded(Some("float")).expect("embedded model"));
    let mut clf = Classifier::new(bundle, 32).expect("tract");
    let refs: Vec<&FeatureVector> = flows.iter().cycle().take(32).collect();
    let mut out = Vec::new();
    g.throughput(Throughput::Elements(32));
    g.bench_function(BenchmarkId::new("float classify", 32), |b| {
        b.iter(|| clf.classify(&refs, &mut out).expect("run"));
    });
    if let Some(n) = clf.novelty().cloned() {
        let dim = clf.embedding_dim;
        let emb = clf.embeddings[..dim].to_vec();
        g.throughput(Throughput::Elements(1));
        g.bench_function("novelty distance", |b| b.iter(|| n.distance(std::hint::black_box(&emb))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
