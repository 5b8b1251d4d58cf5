//! The `tea-pgcloud` command line: see `tea-pgcloud --help`.
#![forbid(unsafe_code)]

mod cli;

fn main() {
    std::process::exit(cli::run());
}
