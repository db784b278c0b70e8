ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request", level = 3)]
fn handle() {}

fn main() {}
