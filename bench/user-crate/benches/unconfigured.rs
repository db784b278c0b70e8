//! Instrumentation cost while nothing listens: ziggy unconfigured, tracing with no subscriber.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ziggy_user_bench::{bare, with_tracing_fields, with_tracing_records, with_ziggy};

fn unconfigured(c: &mut Criterion) {
    assert!(!ziggy::enabled());
    let mut group = c.benchmark_group("unconfigured");
    group.bench_function("bare fn", |b| b.iter(|| bare(black_box(42))));
    group.bench_function("ziggy: context + timer + 5 sets", |b| {
        b.iter(|| with_ziggy(black_box(42)))
    });
    group.bench_function("tracing: instrument + 6 records", |b| {
        b.iter(|| with_tracing_records(black_box(42)))
    });
    group.bench_function("tracing: span with 5 fields at open", |b| {
        b.iter(|| with_tracing_fields(black_box(42)))
    });
    group.finish();
}

criterion_group!(benches, unconfigured);
criterion_main!(benches);
