//! `--engine` values: a fixed address, or a DNS name whose every address is an engine (what a
//! compose service with `replicas: N`, or a Kubernetes headless service, resolves to).

use std::str::FromStr;

/// Where engines are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineTarget {
    /// One engine at a URL such as `http://127.0.0.1:50051`.
    Fixed(String),
    /// Every address `host:port` resolves to, re-resolved at each health tick. Written
    /// `dns:///host:port` (gRPC's name syntax) or `dns://host:port`.
    Dns {
        /// The name to resolve.
        host: String,
        /// The engines' gRPC port.
        port: u16,
    },
}

/// Why an `--engine` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid engine address `{value}`: {why}")]
pub struct BadTarget {
    value: String,
    why: &'static str,
}

impl FromStr for EngineTarget {
    type Err = BadTarget;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadTarget {
            value: value.to_owned(),
            why,
        };
        let value = value.trim();
        if let Some(rest) = value.strip_prefix("dns:") {
            let authority = rest.trim_start_matches('/');
            let (host, port) = authority
                .rsplit_once(':')
                .ok_or_else(|| bad("a dns: target needs host:port"))?;
            let port = port.parse().map_err(|_| bad("the port is not a number"))?;
            if host.is_empty() {
                return Err(bad("the host is empty"));
            }
            return Ok(Self::Dns {
                host: host.to_owned(),
                port,
            });
        }
        let url = if value.contains("://") {
            value.to_owned()
        } else {
            format!("http://{value}")
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(bad("the scheme must be http, https or dns"));
        }
        if uri.port_u16().is_none() {
            return Err(bad("the port is missing"));
        }
        Ok(Self::Fixed(url.trim_end_matches('/').to_owned()))
    }
}

impl EngineTarget {
    /// The engine URLs this target stands for now (a DNS lookup for [`EngineTarget::Dns`]).
    pub async fn resolve(&self) -> std::io::Result<Vec<String>> {
        match self {
            Self::Fixed(url) => Ok(vec![url.clone()]),
            Self::Dns { host, port } => {
                let mut urls: Vec<String> = tokio::net::lookup_host((host.as_str(), *port))
                    .await?
                    .map(|addr| format!("http://{addr}"))
                    .collect();
                urls.sort();
                urls.dedup();
                Ok(urls)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_addresses_get_a_scheme_and_need_a_port() {
        assert_eq!(
            "127.0.0.1:50051".parse(),
            Ok(EngineTarget::Fixed("http://127.0.0.1:50051".into()))
        );
        assert_eq!(
            "http://engine:7/".parse(),
            Ok(EngineTarget::Fixed("http://engine:7".into()))
        );
        assert!("http://engine".parse::<EngineTarget>().is_err());
        assert!("ftp://engine:1".parse::<EngineTarget>().is_err());
    }

    #[test]
    fn dns_targets_take_both_spellings() {
        let want = EngineTarget::Dns {
            host: "engine-core".into(),
            port: 50051,
        };
        assert_eq!("dns:///engine-core:50051".parse(), Ok(want.clone()));
        assert_eq!("dns://engine-core:50051".parse(), Ok(want));
        assert!("dns:///engine-core".parse::<EngineTarget>().is_err());
        assert!("dns:///:50051".parse::<EngineTarget>().is_err());
    }

    #[tokio::test]
    async fn dns_targets_resolve_to_one_url_per_address() {
        let target: EngineTarget = "dns:///127.0.0.1:9".parse().unwrap();
        assert_eq!(target.resolve().await.unwrap(), vec!["http://127.0.0.1:9"]);
    }
}
