#![cfg(feature = "tracing")]
//! Sampling overrides at run time, for contexts and for the tracing bridge's spans. One test: the
//! overrides are process-wide.

use tracing_subscriber::layer::SubscriberExt;

ziggy::channels! { request { cache, sql } }

#[ziggy::context("request.sql", sample = ("request", 0.5))]
fn query() {}

#[test]
fn overrides_silence_channels_and_replace_rates_everywhere() {
    ziggy::set_sample_overrides("request.cache=off,handle.db=off,request.sql=1").unwrap();
    let subscriber = tracing_subscriber::registry().with(ziggy::tracing_bridge::ZiggyLayer::new());
    let events = ziggy::testing::capture(|| {
        for _ in 0..20 {
            let _r = ziggy::Context::new("request").enter();
            let _c = ziggy::Context::new("request.cache").enter();
            query();
        }
        tracing::subscriber::with_default(subscriber, || {
            let handle = tracing::info_span!("handle");
            let _h = handle.enter();
            {
                let db = tracing::info_span!("db", table = "users");
                let _d = db.enter();
                tracing::info!("inside the silenced span");
                let _deeper = tracing::info_span!("row").entered();
            }
            let _other = tracing::info_span!("other").entered();
        });
    });
    let count = |channel: &str| events.iter().filter(|e| e.channel == channel).count();
    assert_eq!(count("request"), 20);
    assert_eq!(count("request.cache"), 0);
    // The code samples request.sql at 0.5: the override keeps all 20, at rate 1.
    assert_eq!(count("request.sql"), 20);
    assert!(
        events
            .iter()
            .filter(|e| e.channel == "request.sql")
            .all(|e| e.sample_rate == Some(1.0))
    );
    assert_eq!(count("handle"), 1);
    assert_eq!(count("handle.other"), 1);
    for silenced in ["handle.db", "handle.db.log", "handle.db.row"] {
        assert_eq!(count(silenced), 0, "{silenced}");
    }
    ziggy::set_sample_overrides("").unwrap();
    assert!(ziggy::sample_overrides().is_empty());
}
