ziggy::channels! { request { sql, memcache } }

#[ziggy::context(request)]
fn handle() {}

fn main() {}
