//! The `log` bridge: records become `.log` sub-events of the current context, or `log` events.

use log::LevelFilter;

#[test]
fn log_records_become_sub_events() {
    ziggy::log_bridge::ZiggyLogger::new(LevelFilter::Info)
        .install()
        .unwrap();
    let events = ziggy::testing::capture(|| {
        log::warn!(target: "db", "outside any context");
        let _ctx = ziggy::Context::new("request").enter();
        ziggy::set("path", "/");
        log::info!("slow query: {} ms", 250);
        log::debug!("filtered out");
        {
            let _silenced = ziggy::Context::new("request.sql")
                .sample("request.sql", 0.0)
                .enter();
            log::error!("inside an unsampled context: silenced with it");
        }
    });
    let channels: Vec<_> = events.iter().map(|e| e.channel.as_str()).collect();
    assert_eq!(channels, ["log", "request.log", "request"]);
    let standalone = &events[0];
    assert_eq!(standalone.body.get_str("level").unwrap(), "WARN");
    assert_eq!(standalone.body.get_str("target").unwrap(), "db");
    let sub = &events[1];
    assert_eq!(sub.id, events[2].id);
    assert_eq!(sub.body.get_str("message").unwrap(), "slow query: 250 ms");
    assert!(
        sub.body
            .get_str("location")
            .unwrap()
            .contains("log_bridge.rs:")
    );
    assert_eq!(events[2].body.get_str("path").unwrap(), "/");
}
