ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request", sample = ("request", -0.1))]
fn handle() {}

fn main() {}
