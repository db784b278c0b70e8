ziggy::channels! { request }

#[ziggy::context("request", args, skip_all)]
fn login(user: &str, password: &str) -> bool {
    user != password
}

fn main() {}
