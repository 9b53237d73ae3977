//! Shared secrets between the gateway and the engines, and the constant-time comparison both
//! sides' checks use: the engine's token travels as `authorization: Bearer <token>` in gRPC
//! metadata, the clients' API keys in the same HTTP header.

use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata (and HTTP) header carrying the secret.
pub const AUTHORIZATION: &str = "authorization";

/// The secret in `value`, an `authorization` header's value (`Bearer <secret>`).
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let rest = value.strip_prefix(b"Bearer ")?;
    Some(rest.trim_ascii())
}

/// Longest tenant name (`x-journey-tenant`) the services accept.
pub const MAX_TENANT_BYTES: usize = 128;

/// Whether `name` may be a tenant: at most [`MAX_TENANT_BYTES`] visible ASCII characters (it
/// travels in gRPC metadata and becomes a scheduling lane and a span attribute).
pub fn valid_tenant(name: &str) -> bool {
    name.len() <= MAX_TENANT_BYTES && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `presented` equals `expected`, in time independent of where they differ.
pub fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.ct_eq(expected).into()
}

/// Adds the engine token to every call (the gateway's side); no token: adds nothing.
#[derive(Clone, Debug, Default)]
pub struct SendToken(Option<MetadataValue<Ascii>>);

impl SendToken {
    /// Sends `token` on every call.
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let value = token
            .map(|t| format!("Bearer {t}").parse())
            .transpose()
            .map_err(|_| anyhow::anyhow!("the engine token must be printable ASCII"))?;
        Ok(Self(value))
    }
}

impl Interceptor for SendToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert(AUTHORIZATION, v.clone());
        }
        Ok(req)
    }
}

/// Refuses calls without the engine token (the engine's side).
#[derive(Clone, Debug)]
pub struct RequireToken(std::sync::Arc<[u8]>);

impl RequireToken {
    /// Requires `token` on every call.
    pub fn new(token: &str) -> Self {
        Self(token.as_bytes().into())
    }

    /// Whether `md` carries the token.
    pub fn allows(&self, md: &MetadataMap) -> bool {
        md.get(AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()))
            .is_some_and(|t| same_secret(t, &self.0))
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if self.allows(req.metadata()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "this engine requires its token (authorization: Bearer ...)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_whole() {
        let need = RequireToken::new("s3cret");
        let mut md = MetadataMap::new();
        assert!(!need.allows(&md));
        md.insert(AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!need.allows(&md));
        md.insert(AUTHORIZATION, "Bearer s3cret!".parse().unwrap());
        assert!(!need.allows(&md));
        md.insert(AUTHORIZATION, "s3cret".parse().unwrap());
        assert!(!need.allows(&md), "the Bearer scheme is required");
        md.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(need.allows(&md));
        let mut send = SendToken::new(Some("s3cret")).unwrap();
        let req = send.call(Request::new(())).unwrap();
        assert!(need.allows(req.metadata()));
    }
}

/// How the gateway reaches its engines: the token it sends and the CA it trusts.
#[derive(Clone, Debug, Default)]
pub struct EngineAccess {
    /// Sent on every call.
    pub token: SendToken,
    /// TLS for `https://` engine URLs.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

/// TLS for the engine's server: its certificate chain and private key (PEM files); `None`
/// when neither is given. Both or neither.
pub fn server_tls(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    use anyhow::Context;
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p).with_context(|| format!("reading {what} {}", p.display()))
    };
    let identity =
        tonic::transport::Identity::from_pem(read(cert, "--tls-cert")?, read(key, "--tls-key")?);
    Ok(Some(
        tonic::transport::ServerTlsConfig::new().identity(identity),
    ))
}

/// TLS for calls to engines, trusting the CA certificates in the PEM file `ca` (the engines'
/// names are checked against their URLs' hosts); `None` without one.
pub fn client_tls(
    ca: Option<&std::path::Path>,
) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
    use anyhow::Context;
    let Some(ca) = ca else {
        return Ok(None);
    };
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    Ok(Some(
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
    ))
}
