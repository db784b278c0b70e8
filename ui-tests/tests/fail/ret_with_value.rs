ziggy::channels! { request }

#[ziggy::context("request", ret = 1)]
fn handle() -> u8 {
    1
}

fn main() {}
