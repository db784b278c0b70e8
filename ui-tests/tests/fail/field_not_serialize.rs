ziggy::channels! { request }

struct Opaque {
    _n: u8,
}

#[ziggy::context("request", fields(n = 1, opaque = Opaque { _n: 1 }))]
fn handle() {}

fn main() {}
