//! App-thread cost of instrumentation while ziggy is unconfigured: an annotated fn with three
//! `set`s against the same fn without annotations. Run: `cargo bench -p ziggy --bench overhead`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

ziggy::channels! { request }

#[inline(never)]
fn bare(x: u64) -> u64 {
    x.wrapping_mul(31).rotate_left(7)
}

#[inline(never)]
#[ziggy::context("request")]
fn annotated(x: u64) -> u64 {
    ziggy::set("a", x);
    ziggy::set("b.c", "text");
    ziggy::set("d", 1.5);
    x.wrapping_mul(31).rotate_left(7)
}

fn unconfigured(c: &mut Criterion) {
    assert!(!ziggy::enabled());
    let mut group = c.benchmark_group("unconfigured");
    group.bench_function("bare fn", |b| b.iter(|| bare(black_box(42))));
    group.bench_function("annotated fn, 3 sets", |b| {
        b.iter(|| annotated(black_box(42)))
    });
    group.finish();
}

criterion_group!(benches, unconfigured);
criterion_main!(benches);
