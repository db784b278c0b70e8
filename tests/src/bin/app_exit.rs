//! An application that configures ziggy, emits events and ends without calling `shutdown`: the
//! e2e tests check that what it queued still arrives.
//!
//! `app_exit ADDR COUNT return|exit|panic`: COUNT `request` events, each with a `request.sql` and a
//! `request.cache` sub-event, then returns from `main`, calls `std::process::exit(0)`, or panics.
//! `ZIGGY_JSON` and `ZIGGY_SAMPLE` in the environment apply as in any application.

ziggy::channels! { request { sql, cache } }

#[ziggy::context("request")]
fn request(n: u64) {
    ziggy::set("n", n);
    sql(n);
    cache(n);
}

#[ziggy::context("request.sql")]
fn sql(n: u64) {
    ziggy::set("query", format!("SELECT {n}"));
}

#[ziggy::context("request.cache")]
fn cache(n: u64) {
    ziggy::set("hit", n.is_multiple_of(2));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, count, ending] = args.as_slice() else {
        eprintln!("usage: app_exit ADDR COUNT return|exit|panic");
        std::process::exit(2);
    };
    let count: u64 = count.parse().expect("COUNT is a number");
    let config = ziggy::TransportConfig::default()
        .with_queue_capacity(count as usize * 3 + 10)
        .with_shutdown_timeout(std::time::Duration::from_secs(20));
    ziggy::configure_with(addr, config).expect("configure");
    for n in 0..count {
        request(n);
    }
    match ending.as_str() {
        "exit" => std::process::exit(0),
        "panic" => panic!("app_exit: ending by a panic"),
        _ => {}
    }
}
