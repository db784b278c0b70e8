ziggy::channels! { request }

struct Connection;

#[ziggy::context("request", args)]
fn handle(user: &str, conn: &Connection, f: impl Fn()) {
    let _ = (user, conn);
    f()
}

fn main() {}
