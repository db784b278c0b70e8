//! `ziggyd`: see `ziggyd --help`. The command line lives here; the daemon is the library's.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::main_with(cli::Cli::parse())
}
