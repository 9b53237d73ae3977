//! Just enough of the W3C WebDriver protocol to drive Debian's headless Chromium through
//! `chromedriver` from a test: open a page, run a script, click, take a screenshot. The
//! browser and driver are installed by `scripts/test-deps.sh` (apt packages `chromium` and
//! `chromium-driver`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// Where Debian puts them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether this machine has the browser and its driver.
pub fn available() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// A headless Chromium session (the driver process dies with it).
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts `chromedriver` and a headless session with a 1400×1000 window.
    pub async fn start() -> anyhow::Result<Browser> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while b
            .http
            .get(format!("{}/status", b.base))
            .send()
            .await
            .is_err()
        {
            anyhow::ensure!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"]}
        }}});
        let session = b.call("POST", "/session", caps).await?;
        let id = session["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no session: {session}"))?;
        b.base = format!("{}/session/{id}", b.base);
        Ok(b)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = req.send().await?.json().await?;
        if let Some(err) = v["value"]["error"].as_str() {
            anyhow::bail!("webdriver {path}: {err}: {}", v["value"]["message"]);
        }
        Ok(v["value"].clone())
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", "/url", json!({"url": url}))
            .await
            .map(drop)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn script(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Waits until `script` returns something truthy (up to 20 s), and returns it.
    pub async fn wait_for(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.script(script, args.clone()).await?;
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return Ok(v);
            }
            anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {script}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let el = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("no element {css}"))?
            .to_owned();
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await
            .map(drop)
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<PathBuf> {
        let v = self.call("GET", "/screenshot", Value::Null).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().ok_or_else(|| anyhow::anyhow!("no screenshot"))?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(path.to_owned())
    }
}

impl Browser {
    /// Ends the session (the browser quits), then the driver.
    pub async fn close(self) {
        let _ = self.call("DELETE", "", Value::Null).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
