ziggy::channels! { request { sql, memcache } }

#[ziggy::context("request")]
const fn handle() -> u32 {
    1
}

fn main() {}
