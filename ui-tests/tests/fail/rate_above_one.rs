ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request", sample = ("request", 1.5))]
fn handle() {}

fn main() {}
