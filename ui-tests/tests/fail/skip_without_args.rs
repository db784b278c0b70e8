ziggy::channels! { request }

#[ziggy::context("request", skip(password))]
fn login(user: &str, password: &str) -> bool {
    user != password
}

fn main() {}
