ziggy::channels! { request }

#[ziggy::context("request", err(Foo))]
fn handle() -> Result<(), String> {
    Ok(())
}

fn main() {}
