ziggy::channels! { request { sql, memcache } }

#[ziggy::context("Request")]
fn handle() {}

fn main() {}
