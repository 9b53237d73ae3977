//! `journey`: read request journeys in a terminal, from the embedded default exporter's file
//! (`traces/journey-traces.jsonl` under `scripts/run.sh`) or from a gateway's `/journeys` API.
//!
//! - `journey show TRACE_ID` prints that request's waterfall (a unique prefix will do);
//! - `journey top --by ttft|e2e` lists the slowest;
//! - `journey export --out trace.json [TRACE_ID]` writes Chrome trace-event JSON for
//!   ui.perfetto.dev.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::{Context, bail};
use api_gateway::inspect::text::RankBy;
use api_gateway::inspect::{TraceJourney, perfetto, read_journeys, text};
use clap::{Parser, Subcommand, ValueEnum};

/// Request journeys in a terminal.
#[derive(Debug, Parser)]
#[command(version, about = "Read Journey's request journeys without a browser")]
struct Cli {
    /// The OTLP-JSON lines file the embedded default exporter writes.
    #[arg(
        long,
        global = true,
        env = "JOURNEY_TRACES_FILE",
        default_value = "traces/journey-traces.jsonl"
    )]
    file: PathBuf,
    /// Read a gateway's journey store instead (e.g. http://127.0.0.1:8000).
    #[arg(long, global = true)]
    gateway: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One request's waterfall.
    Show {
        /// Trace id (or a unique prefix); with --gateway, the OpenAI response id.
        id: String,
    },
    /// The slowest requests.
    Top {
        /// Rank by time to first token or end to end.
        #[arg(long, value_enum, default_value = "ttft")]
        by: By,
        /// How many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Chrome/Perfetto trace-event JSON of one journey, or of the whole file.
    Export {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Only this trace (or unique prefix).
        id: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum By {
    Ttft,
    E2e,
}

fn find<'a>(all: &'a [TraceJourney], id: &str) -> anyhow::Result<&'a TraceJourney> {
    let hits: Vec<&TraceJourney> = all.iter().filter(|j| j.trace_id.starts_with(id)).collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => bail!("no trace {id:?} in the file"),
        many => bail!("{id:?} matches {} traces: give more of it", many.len()),
    }
}

fn from_gateway(base: &str, command: &Command) -> anyhow::Result<String> {
    let get = |path: &str| -> anyhow::Result<serde_json::Value> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let url = format!("{}{path}", base.trim_end_matches('/'));
        rt.block_on(async {
            let r = reqwest::get(&url)
                .await
                .with_context(|| format!("GET {url}"))?;
            anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
            r.json().await.with_context(|| format!("{url}: not JSON"))
        })
    };
    match command {
        Command::Show { id } => Ok(serde_json::to_string_pretty(&get(&format!(
            "/journeys/api/requests/{id}"
        ))?)?),
        Command::Top { by, limit } => {
            let sort = match by {
                By::Ttft => "ttft",
                By::E2e => "e2e",
            };
            let rows = get(&format!("/journeys/api/requests?sort={sort}&limit={limit}"))?;
            let mut out = format!(
                "{:<42}{:>8}{:>11}{:>11}{:>9}\n",
                "request", "status", "TTFT ms", "e2e ms", "preempt"
            );
            for r in rows.as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{:<42}{:>8}{:>11}{:>11.1}{:>9}\n",
                    r["request_id"].as_str().unwrap_or("-"),
                    r["status"],
                    r["ttft_ms"]
                        .as_f64()
                        .map_or("-".into(), |t| format!("{t:.1}")),
                    r["e2e_ms"].as_f64().unwrap_or(0.0),
                    r["num_preemptions"]
                ));
            }
            Ok(out)
        }
        Command::Export { .. } => bail!("export reads the trace file, not a gateway"),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(base) = &cli.gateway {
        print!("{}", from_gateway(base, &cli.command)?);
        return Ok(());
    }
    let all = read_journeys(&cli.file)?;
    match cli.command {
        Command::Show { id } => print!("{}", text::show(find(&all, &id)?)),
        Command::Top { by, limit } => {
            let by = match by {
                By::Ttft => RankBy::Ttft,
                By::E2e => RankBy::E2e,
            };
            print!("{}", text::top(&all, by, limit));
        }
        Command::Export { out, id } => {
            let chosen: Vec<TraceJourney> = match id {
                Some(id) => vec![find(&all, &id)?.clone()],
                None => all,
            };
            let doc = perfetto::export(&chosen);
            std::fs::write(&out, serde_json::to_vec(&doc)?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{} journeys to {}", chosen.len(), out.display());
        }
    }
    Ok(())
}
