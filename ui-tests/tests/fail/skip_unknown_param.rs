ziggy::channels! { request }

#[ziggy::context("request", args, skip(pasword, self))]
fn login(user: &str, password: &str) -> bool {
    user != password
}

fn main() {}
