//! `engine-core`: Journey's engine binary.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
