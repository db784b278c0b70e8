ziggy::channels! { request { sql, memcache } }

#[ziggy::timeit(42)]
fn handle() {}

fn main() {}
