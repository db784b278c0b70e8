ziggy::channels! { request }

#[ziggy::context("request", args = true)]
fn handle(user: &str) -> usize {
    user.len()
}

fn main() {}
