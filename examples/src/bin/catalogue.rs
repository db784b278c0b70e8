//! Prints the channel catalogue: every channel declared with `ziggy::channels!` and every function
//! instrumented with `#[ziggy::context]`, as registered at compile time.
//!
//! Run: `cargo run -p ziggy-examples --bin catalogue`

ziggy::channels! {
    request { sql, cache },
    job { step },
}

#[ziggy::context("request")]
fn handle() {}

#[ziggy::context("request.sql", sample = ("request", 0.1))]
fn query() {}

#[ziggy::context("job.step")]
async fn step() {}

fn main() {
    // Mention the functions so the example reads as a program; registration does not need calls.
    let _ = (handle as fn(), query as fn(), step);
    for channel in ziggy::channels() {
        println!("{}", channel.name);
        for f in &channel.functions {
            let sample = f
                .sample()
                .map(|(t, r)| format!("  sample ({t}, {r})"))
                .unwrap_or_default();
            println!("    {}  {}:{}{sample}", f.function(), f.file(), f.line());
        }
    }
}
