//! The functions the benches compare, compiled in this (user) crate: the same unit of work
//! recorded by ziggy and by tracing in its two forms.

ziggy::channels! { request }

/// The work without instrumentation.
#[inline(never)]
pub fn bare(i: u64) -> u64 {
    i.wrapping_mul(31).rotate_left(7)
}

/// Ziggy: a context, a timer and five `set`s (str, int, int, str, bool).
#[inline(never)]
#[ziggy::context("request")]
pub fn with_ziggy(i: u64) -> u64 {
    let _t = ziggy::timeit("request_time");
    ziggy::set("user_agent", "curl/8.5");
    ziggy::set("response.status", 200);
    ziggy::set("response.size", i);
    ziggy::set("path", "/users/42");
    ziggy::set("cached", true);
    i.wrapping_mul(31).rotate_left(7)
}

/// tracing's cheapest form: every field given when the span opens; the span's own busy time
/// stands for the timer (the JSON layer reports it at close).
#[inline(never)]
pub fn with_tracing_fields(i: u64) -> u64 {
    let span = tracing::info_span!(
        "request",
        user_agent = "curl/8.5",
        response.status = 200,
        response.size = i,
        path = "/users/42",
        cached = true
    );
    let _entered = span.enter();
    i.wrapping_mul(31).rotate_left(7)
}

/// tracing's `#[instrument]` with the fields recorded as the work learns them, as ziggy does.
#[inline(never)]
#[tracing::instrument(skip_all, fields(user_agent, response.status, response.size, path, cached, request_time))]
pub fn with_tracing_records(i: u64) -> u64 {
    let started = std::time::Instant::now();
    let span = tracing::Span::current();
    span.record("user_agent", "curl/8.5");
    span.record("response.status", 200);
    span.record("response.size", i);
    span.record("path", "/users/42");
    span.record("cached", true);
    span.record("request_time", started.elapsed().as_secs_f64());
    i.wrapping_mul(31).rotate_left(7)
}

/// A PULL socket on a free loopback port drained by a thread; returns its endpoint.
pub fn drained_pull() -> String {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.set_rcvhwm(100_000).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = pull.get_last_endpoint().unwrap().unwrap();
    std::thread::spawn(move || {
        let _ctx = ctx;
        while pull.recv_bytes(0).is_ok() {}
    });
    endpoint
}
