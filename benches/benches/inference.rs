//! Inference on one core: the embedded model (float and int8) through tract, per batch
//! size, on real feature vectors (the parity fixture's flows from the held-out corpus),
//! preprocessing included.
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
