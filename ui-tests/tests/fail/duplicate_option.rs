ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request", id = "a", id = "b")]
fn handle() {}

fn main() {}
