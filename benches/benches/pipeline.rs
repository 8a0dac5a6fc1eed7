//! Whole pipeline on one core: decode → flow table → TLS/HTTP parsing → features →
//! (inference) → JSON events and feature lines, over cloned real flows held in memory
//! (no I/O).
//!
//! Run with `cargo bench -p nightjar-benches --bench pipeline`.
//! Results: see `benches/RESULTS.md`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nightjar::capture::Frame;
use nightjar::config::Config;
use nightjar::runtime::{Outputs, Worker};
use nightjar_benches::{fixture_paths, load_frames, synth, template_flows};

fn bench(c: &mut Criterion) {
    let templates = template_flows(&load_frames(&fixture_paths()).expect("fixtures"));
    let copies = 500;
    let frames = synth(&templates, copies, 100_000, 1_700_000_000_000_000_000);
    let flows = templates.len() as u64 * copies;
    let cfg = Config::default();
    let mut model_cfg = Config::default();
    model_cfg.model.batch_size = 32;
    let model = nightjar::runtime::load_model(&model_cfg).expect("embedded model");
    let run = |outputs: Outputs, with_model: bool| {
        let mut w = Worker::new(&cfg, 1 << 20, outputs);
        if with_model {
            w = w.with_model(&model_cfg, model.as_ref()).expect("classifier");
        }
        for f in &frames {
            w.handle_frame(&Frame { ts_ns: f.ts_ns, link: f.link, wire_len: f.data.len() as u32, data: &f.data });
            w.finish_records(&mut |_| {});
            w.events_buf.clear();
            w.features_buf.clear();
        }
        w.flush();
        w.finish_records(&mut |_| {});
        w.poll_batch(true);
        w.stats.events
    };
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(20);
    for (name, outputs, with_model) in [
        ("events", Outputs { events: true, ..Outputs::default() }, false),
        ("events_features", Outputs { events: true, features: true, ..Outputs::default() }, false),
        ("events_model", Outputs { events: true, ..Outputs::default() }, true),
    ] {
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(BenchmarkId::new("packets", name), |b| b.iter(|| run(outputs, with_model)));
        g.throughput(Throughput::Elements(flows));
        g.bench_function(BenchmarkId::new("flows", name), |b| b.iter(|| run(outputs, with_model)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
