//! Helpers shared by engine-core's integration tests.
#![allow(dead_code)]

pub mod golden;

use std::path::PathBuf;

/// The real model: `$JOURNEY_MODEL`, else `models/SmolLM2-135M-Instruct.Q4_1.gguf` at the root.
pub fn real_model_path() -> PathBuf {
    let path = std::env::var_os("JOURNEY_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.exists(),
        "the real model is missing at {}: run scripts/fetch-model.sh (the test command does this)",
        path.display()
    );
    path
}

/// Path of a golden data file.
pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A real model under `models/` (fetched by `scripts/fetch-model.sh NAME`), or a panic saying how
/// to fetch it.
pub fn models_path(file: &str, fetch: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model.sh {fetch} (the test command does this)",
        path.display()
    );
    path
}
