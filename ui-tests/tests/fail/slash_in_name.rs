ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request/sql")]
fn query() {}

fn main() {}
