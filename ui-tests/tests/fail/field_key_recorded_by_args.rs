ziggy::channels! { request }

#[ziggy::context("request", args, fields(user = "x", path.len = path.len(), return = 0), ret)]
fn handle(user: &str, path: &str) -> usize {
    user.len() + path.len()
}

fn main() {}
