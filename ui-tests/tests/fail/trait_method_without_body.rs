ziggy::channels! { request { sql, memcache } }

trait Handler {
    #[ziggy::context("request")]
    fn handle(&self);
}

fn main() {}
