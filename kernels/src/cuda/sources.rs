//! The CUDA C sources of `kernels/cuda/`, embedded in the binary so that a deployed engine
//! compiles them with NVRTC at start-up without the source tree. Each `.cu` file includes
//! `common.cuh`; [`program`] pastes the header in place of that line, so NVRTC needs no
//! include path (and no CUDA header at all: fp16 loads use PTX `cvt`).

/// `common.cuh`.
pub const COMMON: &str = include_str!("../../cuda/common.cuh");

/// Every kernel file: name and text.
pub const FILES: [(&str, &str); 7] = [
    ("attention.cu", include_str!("../../cuda/attention.cu")),
    ("elementwise.cu", include_str!("../../cuda/elementwise.cu")),
    ("embedding.cu", include_str!("../../cuda/embedding.cu")),
    ("kv_cache.cu", include_str!("../../cuda/kv_cache.cu")),
    ("matmul.cu", include_str!("../../cuda/matmul.cu")),
    ("rms_norm.cu", include_str!("../../cuda/rms_norm.cu")),
    ("rope.cu", include_str!("../../cuda/rope.cu")),
];

const INCLUDE: &str = "#include \"common.cuh\"";

/// The text NVRTC compiles for `file`: the file with `common.cuh` pasted in.
pub fn program(file: &str) -> Option<String> {
    let (_, text) = FILES.iter().find(|(name, _)| *name == file)?;
    Some(text.replacen(INCLUDE, COMMON, 1))
}

/// The `extern "C" __global__` entry points a source defines, found textually (macros that
/// expand to entry points are followed one level: `NAME(entry, TYPE)` lines).
pub fn entry_points(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut macros = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("extern \"C\" __global__ void ") {
            let name = rest.split('(').next().unwrap_or("").trim();
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty() {
                out.push(name.to_owned());
            }
        } else if let Some(def) = line.strip_prefix("#define ") {
            // `#define MATMUL(NAME, TYPE) \` starts a macro whose body declares NAME.
            if let Some((name, _)) = def.split_once("(NAME") {
                macros.push(name.to_owned());
            }
        }
    }
    // Lines that expand such a macro declare its first argument.
    let mut expanded = Vec::new();
    for line in text.lines().map(str::trim) {
        for m in &macros {
            if let Some(args) = line.strip_prefix(&format!("{m}(")) {
                let name = args.split(',').next().unwrap_or("").trim();
                expanded.push(name.to_owned());
            }
        }
    }
    out.retain(|n| n != "NAME");
    out.extend(expanded);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::plan::{Op, all_kernels};

    #[test]
    fn every_backend_op_has_its_entry_point_in_its_source() {
        for (file, kernel) in all_kernels() {
            let text = program(file).unwrap_or_else(|| panic!("no source {file}"));
            assert!(
                entry_points(&text).contains(&kernel),
                "{file} does not define {kernel}: {:?}",
                entry_points(&text)
            );
        }
        for op in Op::ALL {
            assert!(program(op.source_file()).is_some());
        }
    }

    #[test]
    fn programs_are_self_contained() {
        for (file, _) in FILES {
            let text = program(file).unwrap();
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with("#include")),
                "{file} still includes a header"
            );
            assert!(
                text.contains("struct MatmulParams"),
                "{file} lacks common.cuh"
            );
        }
    }

    #[test]
    fn every_cuda_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cuda");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".cu"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = FILES.iter().map(|f| f.0).collect();
        assert_eq!(on_disk, embedded);
    }
}
