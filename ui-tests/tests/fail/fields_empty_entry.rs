ziggy::channels! { request }

#[ziggy::context("request", fields(a = 1, , b = 2))]
fn handle() {}

fn main() {}
