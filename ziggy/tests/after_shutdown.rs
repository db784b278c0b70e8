//! After `shutdown`, ziggy is off again: writes serialise nothing, contexts emit nothing.
//! (Its own test binary: `configure` and `shutdown` are process-wide.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Counts how often it is serialised.
struct Counted;

static SERIALISED: AtomicUsize = AtomicUsize::new(0);

impl serde::Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SERIALISED.fetch_add(1, Ordering::Relaxed);
        serializer.serialize_i32(1)
    }
}

fn one_request() {
    let _ctx = ziggy::Context::new("request").enter();
    ziggy::set("value", Counted);
    ziggy::append("values", Counted);
    ziggy::add("count", 1);
}

#[test]
fn writes_after_shutdown_serialise_nothing() {
    // Nobody listens there: events queue (or drop); it does not matter for this test.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    // Short: nobody will take what is queued.
    let config =
        || ziggy::TransportConfig::default().with_shutdown_timeout(Duration::from_millis(50));
    ziggy::configure_with(&addr, config()).unwrap();
    one_request();
    assert_eq!(SERIALISED.load(Ordering::Relaxed), 2);
    assert_eq!(ziggy::stats().emitted, 1);

    ziggy::shutdown();
    assert!(!ziggy::enabled());
    for _ in 0..100 {
        one_request();
    }
    assert_eq!(SERIALISED.load(Ordering::Relaxed), 2, "no value serialised");
    assert_eq!(ziggy::stats().emitted, 1, "no event encoded");

    // And back on with `configure`.
    ziggy::configure_with(&addr, config()).unwrap();
    one_request();
    assert_eq!(SERIALISED.load(Ordering::Relaxed), 4);
    ziggy::shutdown();
}
