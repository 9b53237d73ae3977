//! `/journeys`: the journey viewer's page and its JSON API over the gateway's journey store.
//!
//! - `GET /journeys`: the page (one HTML file compiled into the binary: no build step, no CDN).
//! - `GET /journeys/api/requests`: kept requests, newest first; query `view`
//!   (`all`, `slowest_ttft`, `slowest_e2e`, `errors`), `status` (`ok`, `error`, `aborted`),
//!   `sort` (`time`, `status`, `ttft`, `e2e`, `queue`, `tokens`, `preemptions`), `order` (`desc`, `asc`),
//!   `limit`.
//! - `GET /journeys/api/requests/{request_id}`: one request's whole journey.
//!
//! It shows prompt sizes and timings, never prompt text.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::journey::store::{JourneyStore, Outcome, Summary, View};

const PAGE: &str = include_str!("journeys.html");

/// Query of the listing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    view: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    limit: Option<usize>,
}

fn store(state: &AppState) -> ApiResult<&JourneyStore> {
    state
        .journey
        .store()
        .ok_or_else(|| ApiError::InvalidRequest {
            message: "the journey store is off (--journey-store-requests 0)".into(),
            param: None,
        })
}

fn bad(param: &'static str, value: &str, allowed: &str) -> ApiError {
    ApiError::InvalidRequest {
        message: format!("{param} must be one of {allowed}, not {value:?}"),
        param: Some(param),
    }
}

/// `GET /journeys`.
pub async fn page(State(state): State<AppState>) -> Response {
    let link = state.trace_link_template.as_deref().unwrap_or("");
    // The template goes in as a JSON string literal, so no quote in it can break out.
    let html = PAGE.replace(
        "\"__TRACE_LINK_TEMPLATE__\"",
        &serde_json::to_string(link).unwrap_or_else(|_| "\"\"".into()),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// `GET /journeys/api/requests`.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<Summary>>> {
    let Query(q) = query.map_err(|e| ApiError::InvalidRequest {
        message: e.body_text(),
        param: None,
    })?;
    let store = store(&state)?;
    let view = match q.view.as_deref().unwrap_or("all") {
        "all" => View::All,
        "slowest_ttft" => View::SlowestTtft,
        "slowest_e2e" => View::SlowestE2e,
        "errors" => View::Errors,
        v => return Err(bad("view", v, "all, slowest_ttft, slowest_e2e, errors")),
    };
    let status = match q.status.as_deref() {
        None => None,
        Some("ok") => Some(Outcome::Ok),
        Some("error") => Some(Outcome::Error),
        Some("aborted") => Some(Outcome::Aborted),
        Some(v) => return Err(bad("status", v, "ok, error, aborted")),
    };
    let key: fn(&Summary) -> f64 = match q.sort.as_deref().unwrap_or("time") {
        "time" => |s| s.received_unix_ms,
        "ttft" => |s| s.ttft_ms.unwrap_or(-1.0),
        "e2e" => |s| s.e2e_ms,
        "queue" => |s| s.queue_ms.unwrap_or(-1.0),
        "tokens" => |s| (s.prompt_tokens + s.completion_tokens) as f64,
        "preemptions" => |s| s.num_preemptions as f64,
        "status" => |s| f64::from(s.status),
        v => {
            return Err(bad(
                "sort",
                v,
                "time, status, ttft, e2e, queue, tokens, preemptions",
            ));
        }
    };
    let descending = match q.order.as_deref().unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        v => return Err(bad("order", v, "desc, asc")),
    };
    let mut rows: Vec<Summary> = store
        .list(view)
        .into_iter()
        .filter(|s| status.is_none_or(|o| s.outcome == o))
        .collect();
    rows.sort_by(|a, b| {
        let o = key(a).total_cmp(&key(b));
        if descending { o.reverse() } else { o }
    });
    rows.truncate(q.limit.unwrap_or(usize::MAX));
    Ok(Json(rows))
}

/// `GET /journeys/api/requests/{request_id}`.
pub async fn one(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
) -> ApiResult<Response> {
    let detail = store(&state)?
        .get(&request_id)
        .ok_or_else(|| ApiError::RouteNotFound {
            method: "GET".into(),
            path: format!("/journeys/api/requests/{request_id} (no such request kept)"),
        })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], detail).into_response())
}
