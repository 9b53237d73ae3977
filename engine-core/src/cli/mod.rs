//! Command-line interface.

mod generate;
mod health;
mod serve;

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
    #[command(flatten)]
    log: proto::logging::LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one prompt through the model and prints the completion.
    Generate(generate::GenerateArgs),
    /// Serves the model over gRPC (journey.engine.v1, health, reflection).
    // Boxed: its flags make it several times the other variants' size.
    Serve(Box<serve::ServeArgs>),
    /// Checks a running engine's gRPC health (exit 0 when SERVING).
    Health(health::HealthArgs),
    /// Writes a seeded tiny test model (a random-weight GGUF of any supported architecture).
    WriteTinyModel(TinyArgs),
}

/// Arguments of `write-tiny-model`.
#[derive(clap::Args, Debug)]
struct TinyArgs {
    /// Output path.
    #[arg(long)]
    out: std::path::PathBuf,
    /// Weight type of the matrices (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
    /// Q4_K, Q5_K, Q6_K).
    #[arg(long, default_value = "F32")]
    weight_type: String,
    /// Context length recorded in the file.
    #[arg(long, default_value_t = 512)]
    context_length: usize,
    /// Architecture (llama, qwen2, qwen3, gemma3).
    #[arg(long, default_value = "llama")]
    arch: String,
    /// Add Llama 3.1's RoPE frequency factors (`rope_freqs.weight`; llama only).
    #[arg(long)]
    rope_freqs: bool,
}

fn write_tiny(args: TinyArgs) -> anyhow::Result<()> {
    use engine_core::model::tiny::{TinySpec, write_tiny_model};
    let ty = kernels::GgmlType::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(&args.weight_type))
        .ok_or_else(|| anyhow::anyhow!("unknown weight type {:?}", args.weight_type))?;
    let arch = engine_core::model::llama::Arch::from_name(&args.arch).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown architecture {:?} (supported: {})",
            args.arch,
            engine_core::model::llama::Arch::supported()
        )
    })?;
    anyhow::ensure!(
        !args.rope_freqs || arch == engine_core::model::llama::Arch::Llama,
        "--rope-freqs is Llama 3's; the tiny {arch} model has none"
    );
    let spec = TinySpec {
        weight_type: ty,
        context_length: args.context_length,
        rope_freqs: args.rope_freqs,
        ..TinySpec::for_arch(arch)
    };
    write_tiny_model(&args.out, &spec)?;
    Ok(())
}

/// Parses arguments and runs the chosen command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = proto::logging::init(&cli.log) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::WriteTinyModel(args) => write_tiny(args),
        Command::Serve(args) => serve::run(*args),
        Command::Health(args) => health::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
