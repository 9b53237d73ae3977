//! Process logs of both binaries through `tracing`: what a service says about itself (start-up,
//! engines coming and going, failures), as opposed to request journeys, which are OTel spans.
//! Lines go to stderr; the start-up lines tests and scripts read stay on stdout.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// The log flags of both binaries.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct LogArgs {
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a filter in `RUST_LOG`
    /// syntax (`info,engine_core=debug`); `RUST_LOG`, when set, takes precedence.
    #[arg(long, env = "JOURNEY_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = "JOURNEY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

impl Default for LogArgs {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

/// Installs the process's log subscriber (stderr). Fails on a filter that does not parse;
/// a second call in one process keeps the first subscriber.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(&args.log_level),
    }
    .map_err(|e| anyhow::anyhow!("bad log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in collected logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `try_init` fails only when a subscriber is already set: keep that one.
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_is_refused_and_a_good_one_installs() {
        if std::env::var_os("RUST_LOG").is_none() {
            let bad = LogArgs {
                log_level: "info,=[".into(),
                ..LogArgs::default()
            };
            assert!(init(&bad).is_err());
        }
        assert!(init(&LogArgs::default()).is_ok());
    }
}
