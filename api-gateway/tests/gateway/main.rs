//! Gateway tests against a scripted fake engine (see `fake_engine`): request mapping, SSE
//! framing, error mapping, fan-out order and cancellation on disconnect. The router is driven
//! with `tower::ServiceExt::oneshot`, or over a real `127.0.0.1:0` listener where a live
//! connection matters. End-to-end tests with the real engine live in the `tests` crate.

mod chat;
mod completions;
mod errors;
mod fake_engine;
mod streaming;

use api_gateway::{AppState, DEFAULT_MAX_BODY_BYTES, Engines, app};
use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use fake_engine::Observed;

/// A router in front of a fresh fake engine.
pub struct Gateway {
    /// The gateway under test.
    pub router: Router,
    /// What the fake engine saw.
    pub observed: Observed,
}

/// A gateway in front of a serving fake engine, defaults everywhere.
pub async fn gateway() -> Gateway {
    let (url, observed) = fake_engine::start(true).await;
    Gateway {
        router: router(&url, None, DEFAULT_MAX_BODY_BYTES),
        observed,
    }
}

/// A router for the engine at `url`.
pub fn router(url: &str, model_name: Option<&str>, max_body_bytes: usize) -> Router {
    let engines = Engines::connect_lazy(url, model_name.map(str::to_owned)).unwrap();
    app(AppState {
        engines,
        max_body_bytes,
        journey: api_gateway::journey::Journey::disabled(),
        trace_link_template: None,
        api_keys: None,
        admission: Default::default(),
        timeouts: Default::default(),
    })
}

/// Status and body of one response.
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// The whole body.
    pub text: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The `data:` payloads of an SSE body, `[DONE]` as a JSON string.
    pub fn events(&self) -> Vec<Value> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| {
                if d == "[DONE]" {
                    Value::from("[DONE]")
                } else {
                    serde_json::from_str(d).unwrap()
                }
            })
            .collect()
    }

    /// Asserts an OpenAI-shaped error with `status`; returns the error object.
    pub fn assert_error(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        let body = self.json();
        let error = body["error"].clone();
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(error["type"].is_string(), "{body}");
        assert!(
            error.get("param").is_some() && error.get("code").is_some(),
            "{body}"
        );
        error
    }
}

/// Sends one request through `router`.
pub async fn send(router: &Router, method: &str, path: &str, body: impl Into<Body>) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

impl Gateway {
    /// POSTs `body` as JSON to `path`.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        send(&self.router, "POST", path, body.to_string()).await
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> Reply {
        send(&self.router, "GET", path, Body::empty()).await
    }
}
