ziggy::channels! { request }

#[ziggy::context("request", fields("" = 1, "a\0b" = 2, ok = 3))]
fn handle() {}

fn main() {}
