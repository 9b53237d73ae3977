//! Trace, metric and metadata names live in one place, `proto/src/conventions.rs`: no other
//! source file of the services spells one of them as a string literal.

use std::path::Path;

use journey_tests::root;

/// The quoted values of `pub const` items that are trace-specific names (dotted or prefixed
/// keys, span names, metric names, metadata keys), not plain words.
fn convention_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("pub const"))
        .filter_map(|l| {
            let start = l.find('"')? + 1;
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_owned())
        })
        .filter(|v| {
            v.contains('.')
                || v.contains(':')
                || ["llm_", "scheduler_", "x-journey"]
                    .iter()
                    .any(|p| v.starts_with(p))
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_trace_name_is_spelled_outside_the_conventions_module() {
    let root = root();
    let conventions = root.join("proto/src/conventions.rs");
    let names = convention_names(&std::fs::read_to_string(&conventions).unwrap());
    assert!(names.len() > 80, "found only {} names", names.len());
    for must in [
        "llm_request",
        "journey.QUEUED",
        "step.BATCH_SUMMARY",
        "journey:num_preemptions",
    ] {
        assert!(names.iter().any(|n| n == must), "{must} not parsed");
    }
    let mut files = Vec::new();
    for dir in ["api-gateway/src", "engine-core/src", "proto/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut offences = Vec::new();
    for file in files.iter().filter(|f| **f != conventions) {
        let text = std::fs::read_to_string(file).unwrap();
        for name in &names {
            if text.contains(&format!("\"{name}\"")) {
                offences.push(format!("{}: \"{name}\"", file.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "literals outside the conventions:\n{}",
        offences.join("\n")
    );
}

/// Every line of the Rust files under `dir` (relative to the repository root), with its file.
fn lines_under(dir: &str) -> Vec<(std::path::PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&root().join(dir), &mut files);
    files
        .into_iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            text.lines()
                .map(|l| (f.clone(), l.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_step_loop_states_events_and_holds_no_observability_code() {
    let step = root().join("engine-core/src/engine/step.rs");
    let text = std::fs::read_to_string(&step).unwrap();
    for needle in [
        "opentelemetry",
        "prometheus_client",
        "conventions",
        "attr::",
        "metric::",
        "span::",
        "journey::",
        "metrics::",
        "EngineMetrics",
        "CoreSpan",
        "StepTracer",
    ] {
        assert!(
            !text.contains(needle),
            "{} mentions {needle:?}: the step loop states lifecycle events, observers do the rest",
            step.display()
        );
    }
    assert!(
        text.contains("observers.on_request"),
        "the step loop no longer states events?"
    );
}

#[test]
fn observers_and_the_lifecycle_do_not_import_the_engine() {
    for dir in [
        "engine-core/src/metrics",
        "engine-core/src/journey",
        "engine-core/src/lifecycle",
    ] {
        let lines = lines_under(dir);
        assert!(!lines.is_empty(), "{dir} has no Rust files");
        for (file, line) in lines {
            assert!(
                !line.contains("crate::engine") && !line.contains("super::engine"),
                "{} imports the engine: {line}",
                file.display()
            );
        }
    }
}

#[test]
fn library_code_logs_through_tracing_not_eprintln() {
    for dir in [
        "engine-core/src",
        "api-gateway/src",
        "proto/src",
        "kernels/src",
    ] {
        for (file, line) in lines_under(dir) {
            let f = file.to_string_lossy();
            // The binaries' own fatal-error line, and tests, may print.
            let exempt = f.contains("/cli/")
                || f.ends_with("/main.rs")
                || f.ends_with("tests.rs")
                || f.contains("/tests/");
            assert!(
                exempt || !line.contains("eprintln!"),
                "{f}: log through `tracing`: {line}"
            );
        }
    }
}
