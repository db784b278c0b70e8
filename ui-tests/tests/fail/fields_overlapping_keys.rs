ziggy::channels! { request }

#[ziggy::context("request", fields(response = 1, response.status = 200))]
fn handle() {}

fn main() {}
