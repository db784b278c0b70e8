ziggy::channels! { request }

#[ziggy::context("request", fields = 3)]
fn handle() {}

fn main() {}
