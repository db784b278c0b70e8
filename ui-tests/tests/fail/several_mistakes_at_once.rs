ziggy::channels! { request { sql } }

#[ziggy::context("Request.sql", sample = ("other", 3.0))]
fn handle() {}

fn main() {}
