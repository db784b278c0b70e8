ziggy::channels! { request { sql, memcache } }

#[ziggy::context("reqest")]
fn handle() {}

fn main() {}
