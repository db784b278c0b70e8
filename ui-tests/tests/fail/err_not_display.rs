ziggy::channels! { request }

#[derive(Debug)]
struct Failure;

#[ziggy::context("request", err)]
fn handle() -> Result<u16, Failure> {
    Err(Failure)
}

fn main() {}
