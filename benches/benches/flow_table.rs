//! Flow stage: flow table, reassembly and TLS/HTTP parsing of pre-decoded packets of
//! cloned real flows (decode excluded).
//!
//! Run with `cargo bench -p nightjar-benches --bench flow_table`.
//! Results: see `benches/RESULTS.md`.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nightjar::config::FlowConfig;
use nightjar::decode::{Decoded, decode_frame};
use nightjar::flow::FlowTable;
use nightjar::stats::Stats;
use nightjar_benches::{fixture_paths, load_frames, synth, template_flows};

fn bench(c: &mut Criterion) {
    let templates = template_flows(&load_frames(&fixture_paths()).expect("fixtures"));
    let mut g = c.benchmark_group("flow_table");
    for copies in [100u64, 1000] {
        let frames = synth(&templates, copies, 100_000, 1_700_000_000_000_000_000);
        let packets: Vec<_> = frames
            .iter()
            .filter_map(|f| match decode_frame(f.link, f.ts_ns, f.data.len() as u32, &f.data) {
                Decoded::Tcp(p) => Some(p),
                _ => None,
            })
            .collect();
        let flows = templates.len() as u64 * copies;
        g.throughput(Throughput::Elements(packets.len() as u64));
        g.bench_with_input(BenchmarkId::new("packets", flows), &packets, |b, packets| {
            b.iter_batched(
                || FlowTable::new(&FlowConfig::default(), 1 << 20),
                |mut t| {
                    let mut st = Stats::default();
                    let mut out = Vec::new();
                    for p in packets {
                        t.process(p, &mut st, &mut out);
                    }
                    t.flush(&mut st, &mut out);
                    out.len()
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
