//! `ziggyd`: see `ziggyd --help`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    ziggyd::cli::main_with(ziggyd::cli::Cli::parse())
}
