//! The application thread's cost with events really going somewhere: ziggy configured to a PULL
//! socket in this process, tracing with its JSON layer (span close events) into a non-blocking
//! file appender.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ziggy_user_bench::{drained_pull, with_tracing_fields, with_tracing_records, with_ziggy};

fn enabled(c: &mut Criterion) {
    let endpoint = drained_pull();
    let config = ziggy::TransportConfig::default().with_queue_capacity(1 << 20);
    ziggy::configure_with(&endpoint, config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let appender = tracing_appender::rolling::never(dir.path(), "bench.json");
    let (writer, _guard) = tracing_appender::non_blocking(appender);
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut group = c.benchmark_group("enabled");
    group.bench_function("ziggy: context + timer + 5 sets", |b| {
        b.iter(|| with_ziggy(black_box(7)));
        ziggy::flush(Duration::from_secs(10));
    });
    group.bench_function("tracing: span with 5 fields at open, JSON", |b| {
        b.iter(|| with_tracing_fields(black_box(7)))
    });
    group.bench_function("tracing: instrument + 6 records, JSON", |b| {
        b.iter(|| with_tracing_records(black_box(7)))
    });
    group.finish();
    eprintln!("ziggy: {:?}", ziggy::stats());
}

criterion_group!(benches, enabled);
criterion_main!(benches);
