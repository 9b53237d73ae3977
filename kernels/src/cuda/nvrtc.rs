//! NVRTC through cudarc's low-level API: the safe `compile_ptx` hides the program log on
//! success (where warnings are) and gives only PTX, while the engine loads CUBIN built for the
//! device it runs on (PTX from a newer NVRTC than the driver would not load).

use std::ffi::{CString, c_char};

use cudarc::nvrtc::{result, sys};

use super::sources;

/// What NVRTC produced for one file.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// PTX text (always produced).
    pub ptx: String,
    /// The device binary, when `arch` named a real architecture (`sm_XX`).
    pub cubin: Option<Vec<u8>>,
    /// NVRTC's log: empty unless it warned.
    pub log: String,
}

/// Why a compile failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// libnvrtc could not be loaded.
    #[error(
        "NVRTC (libnvrtc.so.12 or .13) not found: install the CUDA toolkit or the \
         nvidia-cuda-nvrtc wheel and put its lib directory on LD_LIBRARY_PATH"
    )]
    NoNvrtc,
    /// No such source file.
    #[error("no CUDA source named {0}")]
    UnknownFile(String),
    /// NVRTC refused the program.
    #[error("NVRTC failed on {file} for {arch}: {error}\n{log}")]
    Failed {
        /// Source file.
        file: String,
        /// Target architecture.
        arch: String,
        /// NVRTC's status.
        error: String,
        /// NVRTC's log.
        log: String,
    },
}

/// Whether libnvrtc can be loaded (cudarc panics on first use otherwise).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library by its sonames; no other effect.
    unsafe { sys::is_culib_present() }
}

/// The NVRTC options for `arch` (`compute_XX` for PTX only, `sm_XX` for PTX and CUBIN).
pub fn options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_owned(),
        // Keep IEEE semantics: the parity tests compare against the CPU within tight bounds.
        "--fmad=true".to_owned(),
        "--ftz=false".to_owned(),
        "--prec-div=true".to_owned(),
        "--prec-sqrt=true".to_owned(),
    ]
}

fn to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles `file` (one of [`sources::FILES`]) for `arch`.
pub fn compile(file: &str, arch: &str) -> Result<Compiled, CompileError> {
    if !nvrtc_present() {
        return Err(CompileError::NoNvrtc);
    }
    let text = sources::program(file).ok_or_else(|| CompileError::UnknownFile(file.into()))?;
    let src = CString::new(text).map_err(|_| CompileError::UnknownFile(file.into()))?;
    let name = CString::new(file).map_err(|_| CompileError::UnknownFile(file.into()))?;
    let fail = |error: String, log: String| CompileError::Failed {
        file: file.into(),
        arch: arch.into(),
        error,
        log,
    };
    let prog = result::create_program(&src, Some(&name))
        .map_err(|e| fail(e.to_string(), String::new()))?;
    // SAFETY: `prog` was created above from `src` and `name`, which outlive it, and is
    // destroyed exactly once, below, after its last use.
    unsafe {
        let compiled = result::compile_program(prog, &options(arch));
        let log = result::get_program_log(prog)
            .map(|l| to_string(&l))
            .unwrap_or_default();
        let out = match compiled {
            Err(e) => Err(fail(e.to_string(), log)),
            Ok(()) => {
                let ptx = result::get_ptx(prog).map(|p| to_string(&p));
                let cubin = if arch.starts_with("sm_") {
                    cubin(prog).map(Some)
                } else {
                    Ok(None)
                };
                match (ptx, cubin) {
                    (Ok(ptx), Ok(cubin)) => Ok(Compiled { ptx, cubin, log }),
                    (Err(e), _) | (_, Err(e)) => Err(fail(e.to_string(), log)),
                }
            }
        };
        let _ = result::destroy_program(prog);
        out
    }
}

/// # Safety
/// `prog` must be a live, successfully compiled program.
unsafe fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, result::NvrtcError> {
    let mut size = 0usize;
    // SAFETY: per this function's contract; `size` is a valid out pointer.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size).result()? };
    let mut bytes = vec![0u8; size];
    // SAFETY: `bytes` holds the `size` bytes NVRTC said the CUBIN takes.
    unsafe { sys::nvrtcGetCUBIN(prog, bytes.as_mut_ptr().cast()).result()? };
    Ok(bytes)
}
