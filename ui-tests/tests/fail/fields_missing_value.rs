ziggy::channels! { request }

// tracing declares empty fields to record later; ziggy's `set` needs no declaration.
#[ziggy::context("request", fields(user, path = "/"))]
fn handle() {}

fn main() {}
