//! Ziggy enabled, against its peers, in one run (`cargo bench -p ziggy --bench enabled`):
//! - app thread: a `#[ziggy::context]` fn with 5 `set`s of mixed types and a timer, queued to the
//!   sender (a PULL socket in this process drains it), vs the same work with tracing in its two
//!   forms (a span given every field when it opens, its cheapest; `#[instrument]` with the fields
//!   recorded as they are learnt), `tracing-subscriber`'s JSON layer (span close events) and
//!   `tracing-appender`'s non-blocking file writer. `bench/user-crate` measures the same from a
//!   separate crate, as an application builds it;
//!
//! The sender thread's capacity is measured by `benches/sender.rs`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/sink.rs"]
mod common_sink;
use common_sink::sink;

ziggy::channels! { request }

#[ziggy::context("request")]
fn with_ziggy(i: u64) -> u64 {
    let _t = ziggy::timeit("request_time");
    ziggy::set("path", "/users/42");
    ziggy::set("response.status", 200);
    ziggy::set("response.size", i);
    ziggy::set("cached", true);
    ziggy::set("ratio", 0.25);
    i
}

#[tracing::instrument(fields(path, status, size, cached, ratio, request_time))]
fn with_tracing(i: u64) -> u64 {
    let started = Instant::now();
    let span = tracing::Span::current();
    span.record("path", "/users/42");
    span.record("status", 200);
    span.record("size", i);
    span.record("cached", true);
    span.record("ratio", 0.25);
    span.record("request_time", started.elapsed().as_secs_f64());
    tracing::info!("done");
    i
}

fn with_tracing_fields(i: u64) -> u64 {
    let span = tracing::info_span!(
        "request",
        path = "/users/42",
        status = 200,
        size = i,
        cached = true,
        ratio = 0.25
    );
    let _entered = span.enter();
    i
}

fn app_thread(c: &mut Criterion) {
    let (endpoint, _count) = sink();
    ziggy::configure_with(
        &endpoint,
        ziggy::TransportConfig::default().with_queue_capacity(1 << 20),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let appender = tracing_appender::rolling::never(dir.path(), "bench.json");
    let (writer, _guard) = tracing_appender::non_blocking(appender);
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut group = c.benchmark_group("app thread, enabled");
    group.bench_function("ziggy: context + 5 sets + timer", |b| {
        b.iter(|| with_ziggy(black_box(7)));
        ziggy::flush(Duration::from_secs(10));
    });
    group.bench_function(
        "tracing: span with 5 fields at open, JSON layer, non-blocking file",
        |b| b.iter(|| with_tracing_fields(black_box(7))),
    );
    group.bench_function(
        "tracing: instrument + 6 records, JSON layer, non-blocking file",
        |b| b.iter(|| with_tracing(black_box(7))),
    );
    group.finish();
    let s = ziggy::stats();
    eprintln!("ziggy stats after the app-thread bench: {s:?}");
}

criterion_group!(benches, app_thread);
criterion_main!(benches);
