ziggy::channels! { request }

struct Opaque;

#[ziggy::context("request", ret)]
fn handle() -> Result<Opaque, String> {
    Ok(Opaque)
}

fn main() {}
