ziggy::channels! { request }

#[ziggy::context("request", feilds(path = "/"))]
fn handle() {}

fn main() {}
