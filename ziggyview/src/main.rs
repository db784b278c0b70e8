//! `ziggyview`: see `ziggyview --help`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    ziggyview::cli::main_with(ziggyview::cli::Cli::parse())
}
