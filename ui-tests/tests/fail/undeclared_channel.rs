ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request.sqll")]
fn query() {}

fn main() {}
