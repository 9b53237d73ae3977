//! Command-line interface.

mod generate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Journey's engine.
#[derive(Parser, Debug)]
#[command(
    name = "engine-core",
    version,
    about = "Journey engine: GGUF Llama runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one prompt through the model and prints the completion.
    Generate(generate::GenerateArgs),
}

/// Parses arguments and runs the chosen command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
