//! Every CUDA source compiles with NVRTC to PTX for sm_80 and sm_90 without a warning, the
//! sm_90 PTX assembles with `ptxas`, and every entry point the backend launches is in the
//! PTX. No GPU is needed: this is the CI's proof that the kernels build.
//!
//! Needs libnvrtc on `LD_LIBRARY_PATH` and `ptxas` at `$JOURNEY_PTXAS` (or on `PATH`);
//! `scripts/test.sh` installs both from PyPI and sets `JOURNEY_REQUIRE_NVRTC=1`, which turns
//! a missing NVRTC or ptxas into a failure instead of a skip.
#![cfg(feature = "cuda")]

use std::path::PathBuf;
use std::process::Command;

use kernels::cuda::nvrtc::{self, compile};
use kernels::cuda::plan::all_kernels;
use kernels::cuda::sources::FILES;

const ARCHES: [&str; 2] = ["sm_80", "sm_90"];

fn required() -> bool {
    std::env::var_os("JOURNEY_REQUIRE_NVRTC").is_some_and(|v| v == "1")
}

/// Whether NVRTC can run here; panics when the CI requires it.
fn nvrtc_or_skip() -> bool {
    if nvrtc::nvrtc_present() {
        return true;
    }
    assert!(
        !required(),
        "JOURNEY_REQUIRE_NVRTC=1 but libnvrtc is not on LD_LIBRARY_PATH"
    );
    eprintln!("skipped: NVRTC not found (put libnvrtc on LD_LIBRARY_PATH)");
    false
}

fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JOURNEY_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ptxas"))
        .find(|p| p.exists())
}

#[test]
fn every_source_compiles_for_sm80_and_sm90_without_warnings() {
    if !nvrtc_or_skip() {
        return;
    }
    for (file, _) in FILES {
        for arch in ARCHES {
            let out = compile(file, arch).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                out.log.trim().is_empty(),
                "NVRTC warned on {file} for {arch}:\n{}",
                out.log
            );
            let target = format!(".target {arch}");
            assert!(out.ptx.contains(&target), "{file}: PTX lacks {target}");
            assert!(
                out.cubin
                    .as_ref()
                    .is_some_and(|c| c.starts_with(b"\x7fELF")),
                "{file}: no CUBIN for {arch}"
            );
        }
    }
}

#[test]
fn every_backend_op_has_its_entry_point_in_the_ptx() {
    if !nvrtc_or_skip() {
        return;
    }
    let ptx: Vec<(&str, String)> = FILES
        .iter()
        .map(|(f, _)| {
            (
                *f,
                compile(f, "sm_90").unwrap_or_else(|e| panic!("{e}")).ptx,
            )
        })
        .collect();
    for (file, kernel) in all_kernels() {
        let text = &ptx.iter().find(|p| p.0 == file).unwrap().1;
        assert!(
            text.contains(&format!(".visible .entry {kernel}(")),
            "{kernel} is not an entry point of {file}'s PTX"
        );
    }
}

#[test]
fn the_sm90_ptx_assembles_with_ptxas() {
    if !nvrtc_or_skip() {
        return;
    }
    let Some(ptxas) = ptxas() else {
        assert!(
            !required(),
            "JOURNEY_REQUIRE_NVRTC=1 but no ptxas (set JOURNEY_PTXAS)"
        );
        eprintln!("skipped: ptxas not found (set JOURNEY_PTXAS)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("journey-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, _) in FILES {
        let ptx = compile(file, "sm_90").unwrap_or_else(|e| panic!("{e}")).ptx;
        let path = dir.join(file.replace(".cu", ".ptx"));
        std::fs::write(&path, ptx).unwrap();
        let out = Command::new(&ptxas)
            .args(["-arch=sm_90", "-v", "--warning-as-error"])
            .arg(&path)
            .args(["-o", "/dev/null"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", ptxas.display()));
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ptxas failed on {file}:\n{log}");
        assert!(
            !log.contains("spill stores") || log.contains("0 bytes spill stores"),
            "{file} spills:\n{log}"
        );
        // Registers and shared memory per kernel, for the record.
        for line in log.lines().filter(|l| l.contains("Used")) {
            eprintln!("{file}: {}", line.trim());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
