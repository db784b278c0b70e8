ziggy::channels! { request { sql, memcache } }

const RATE: f64 = 2.0;

#[ziggy::context("request", sample = ("request", RATE))]
fn handle() {}

fn main() {}
