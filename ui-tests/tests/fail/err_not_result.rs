ziggy::channels! { request }

#[ziggy::context("request", err)]
fn handle() -> u16 {
    200
}

fn main() {}
