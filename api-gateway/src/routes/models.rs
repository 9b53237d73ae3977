//! `GET /v1/models`: the one served model.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::openai::common::unix_now;

/// `{"object": "list", "data": [...]}`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// The served models.
    pub data: Vec<ModelCard>,
}

/// One model entry.
#[derive(Debug, Serialize)]
pub struct ModelCard {
    /// The id clients pass as `model`.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Always `journey`.
    pub owned_by: &'static str,
    /// The engine's context length (vLLM's `max_model_len`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u32>,
    /// The model's architecture (`llama`, `qwen2`, `qwen3`, `gemma3`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// Lists the served model (asks the engine for its name unless `--served-model-name` was given).
pub async fn list_models(State(state): State<AppState>) -> ApiResult<Json<ModelList>> {
    let meta = state.engines.model_meta().await?;
    let card = ModelCard {
        id: meta.name,
        object: "model",
        created: unix_now(),
        owned_by: "journey",
        max_model_len: (meta.context_length > 0).then_some(meta.context_length),
        architecture: (!meta.architecture.is_empty()).then_some(meta.architecture),
    };
    Ok(Json(ModelList {
        object: "list",
        data: vec![card],
    }))
}
