ziggy::channels! { request }

#[ziggy::context("request", err(Debug))]
async fn handle() -> Option<u16> {
    Some(200)
}

fn main() {}
