ziggy::channels! { request }

#[ziggy::context("request", fields())]
fn handle() {}

fn main() {}
