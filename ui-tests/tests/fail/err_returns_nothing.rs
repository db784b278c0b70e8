ziggy::channels! { request }

#[ziggy::context("request", err, ret)]
fn handle() {}

fn main() {}
