ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request.sql", sample = ("request.memcache", 0.5))]
fn query() {}

fn main() {}
