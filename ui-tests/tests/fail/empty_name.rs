ziggy::channels! { request { sql, memcache } }

#[ziggy::context("")]
fn handle() {}

fn main() {}
