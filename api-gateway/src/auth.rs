//! Who may use the gateway: API keys (`--api-key`, `--api-key-file`), each belonging to a
//! tenant. With keys configured, every `/v1/*` request needs `Authorization: Bearer <key>`
//! (401 with an OpenAI error body otherwise); `/health` stays open; `/metrics` and
//! `/journeys` need a key too with `--metrics-require-key`. A request's tenant (never its key)
//! goes on its span, its metrics and its journey.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use proto::auth::{AUTHORIZATION, bearer, same_secret};

use crate::AppState;
use crate::error::ApiError;

/// The tenant a request was authenticated as (a request extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant(pub Arc<str>);

/// One key and the tenant it belongs to.
type KeyEntry = (Box<[u8]>, Arc<str>);

/// The configured keys and their tenants.
#[derive(Clone, Debug)]
pub struct ApiKeys {
    entries: Arc<[KeyEntry]>,
    protect_metrics: bool,
}

impl ApiKeys {
    /// Keys from `keys` (each its own tenant, named `key-1`, `key-2`, ...) and from the file at
    /// `file` (one key per line, optionally followed by whitespace and a tenant name; `#`
    /// starts a comment); `None` when there are none (the gateway is open).
    pub fn load(
        keys: &[String],
        file: Option<&Path>,
        protect_metrics: bool,
    ) -> anyhow::Result<Option<ApiKeys>> {
        let mut entries: Vec<KeyEntry> = Vec::new();
        for k in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
            let tenant = format!("key-{}", entries.len() + 1);
            entries.push((k.as_bytes().into(), tenant.into()));
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --api-key-file {}", path.display()))?;
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or_default().trim();
                let mut words = line.split_whitespace();
                let Some(key) = words.next() else { continue };
                let tenant = words
                    .next()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("key-{}", entries.len() + 1));
                anyhow::ensure!(
                    words.next().is_none(),
                    "--api-key-file: a line is a key and at most one tenant name"
                );
                // The name travels to the engines, which accept only such names.
                anyhow::ensure!(
                    proto::auth::valid_tenant(&tenant),
                    "--api-key-file: tenant {tenant:?} must be at most {} visible ASCII characters",
                    proto::auth::MAX_TENANT_BYTES
                );
                entries.push((key.as_bytes().into(), tenant.into()));
            }
        }
        Ok((!entries.is_empty()).then(|| ApiKeys {
            entries: entries.into(),
            protect_metrics,
        }))
    }

    /// The tenant of `presented`, comparing it with every key in constant time each.
    pub fn tenant(&self, presented: &[u8]) -> Option<Arc<str>> {
        let mut found = None;
        for (key, tenant) in self.entries.iter() {
            if same_secret(presented, key) {
                found = Some(Arc::clone(tenant));
            }
        }
        found
    }

    /// Distinct tenants (the bound of the tenant metric label).
    pub fn num_tenants(&self) -> usize {
        let mut names: Vec<&str> = self.entries.iter().map(|(_, t)| &**t).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

/// Middleware: lets through what needs no key, checks the key of the rest.
pub async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(keys) = &state.api_keys else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let open = path == "/health"
        || (!keys.protect_metrics && (path == "/metrics" || path.starts_with("/journeys")));
    if open {
        return next.run(req).await;
    }
    let tenant = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()))
        .and_then(|k| keys.tenant(k));
    match tenant {
        Some(t) => {
            req.extensions_mut().insert(Tenant(t));
            next.run(req).await
        }
        None => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_flags_and_file_map_to_tenants() {
        let dir = std::env::temp_dir().join(format!("journey-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(
            &file,
            "# keys\nsk-a  team-a\nsk-b team-a # same tenant\n\nsk-c\n",
        )
        .unwrap();
        let keys = ApiKeys::load(&["sk-flag".into()], Some(&file), false)
            .unwrap()
            .unwrap();
        assert_eq!(keys.tenant(b"sk-flag").as_deref(), Some("key-1"));
        assert_eq!(keys.tenant(b"sk-a").as_deref(), Some("team-a"));
        assert_eq!(keys.tenant(b"sk-b").as_deref(), Some("team-a"));
        assert_eq!(keys.tenant(b"sk-c").as_deref(), Some("key-4"));
        assert_eq!(keys.tenant(b"sk-"), None);
        assert_eq!(keys.tenant(b"sk-aa"), None);
        assert_eq!(keys.num_tenants(), 3);
        assert!(ApiKeys::load(&[], None, false).unwrap().is_none());
        std::fs::write(&file, "sk-x a b\n").unwrap();
        assert!(ApiKeys::load(&[], Some(&file), false).is_err());
    }
}
