ziggy::channels! { request }

#[derive(Debug)]
struct Opaque;

#[ziggy::context("request", ret(Serialize))]
fn handle() -> Opaque {
    Opaque
}

fn main() {}
