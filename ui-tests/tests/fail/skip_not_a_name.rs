ziggy::channels! { request }

#[ziggy::context("request", args, skip("password"))]
fn login(user: &str, password: &str) -> bool {
    user != password
}

fn main() {}
