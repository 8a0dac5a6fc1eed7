//! Decode stage: Ethernet/VLAN/IP/TCP header decoding of real frames.
//!
//! Run with `cargo bench -p nightjar-benches --bench decode`.
//! Results: see `benches/RESULTS.md`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nightjar::decode::decode_frame;
use nightjar_benches::{fixture_paths, load_frames};

fn bench(c: &mut Criterion) {
    let frames = load_frames(&fixture_paths()).expect("fixtures");
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("fixture_frames", |b| {
        b.iter(|| {
            for f in &frames {
                std::hint::black_box(decode_frame(f.link, f.ts_ns, f.data.len() as u32, &f.data));
            }
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
