ziggy::channels! { request }

#[ziggy::context("request", err)]
fn handle() -> impl std::fmt::Debug {
    1
}

fn main() {}
