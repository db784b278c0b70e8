//! `ziggyview`: see `ziggyview --help`.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::main_with(cli::Cli::parse())
}
