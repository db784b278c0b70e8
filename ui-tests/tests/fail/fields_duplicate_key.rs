ziggy::channels! { request }

#[ziggy::context("request", fields(status = 200, path = "/", status = 404))]
fn handle() {}

fn main() {}
