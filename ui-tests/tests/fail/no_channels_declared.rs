#[ziggy::context("request")]
fn handle() {}

fn main() {}
