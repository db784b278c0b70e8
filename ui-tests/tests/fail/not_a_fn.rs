ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request")]
struct Handler;

fn main() {}
