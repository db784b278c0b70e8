ziggy::channels! { request }

#[ziggy::context("request", ret(Json))]
fn handle() -> u8 {
    1
}

fn main() {}
