//! The compose stack, checked without Docker: `compose.yaml`, the Dockerfile it builds, the
//! Tempo, Prometheus and Grafana files it mounts, and the dashboard, against each other and
//! against what the real services export (their `/metrics`, scraped from running processes).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::Command;

use journey_tests::{binary, root, start_engine, start_gateway, temp_dir, tiny_model};
use serde_json::{Map, Value, json};
use yaml_rust2::{Yaml, YamlLoader};

/// A YAML file as JSON, merge keys (`<<: *anchor`, as compose reads them) applied.
fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path}: one document");
    to_json(&docs[0])
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => {
            let mut map = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    other => panic!("unsupported key {other:?}"),
                };
                if key == "<<" {
                    let Value::Object(merged) = to_json(v) else {
                        panic!("a merge key needs a mapping")
                    };
                    for (mk, mv) in merged {
                        map.entry(mk).or_insert(mv);
                    }
                } else {
                    map.insert(key, to_json(v));
                }
            }
            Value::Object(map)
        }
        Yaml::Null => Value::Null,
        other => panic!("unsupported YAML node {other:?}"),
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr}"))
}

fn env<'a>(service: &'a Value, key: &str) -> &'a str {
    service["environment"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} unset in {service}"))
}

fn depends_on(service: &Value) -> Vec<(String, String)> {
    service["depends_on"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["condition"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn ports(s: &Value) -> Vec<String> {
    s["ports"]
        .as_array()
        .map(|a| a.iter().map(|p| p.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn compose_names_its_services_with_their_ports_env_and_dependencies() {
    let compose = yaml("compose.yaml");
    let services = compose["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "api-gateway",
            "engine-core",
            "grafana",
            "prometheus",
            "tempo",
            "tempo-init",
        ])
    );
    let (tempo, prom, grafana) = (
        &services["tempo"],
        &services["prometheus"],
        &services["grafana"],
    );
    let (engine, gateway) = (&services["engine-core"], &services["api-gateway"]);
    for (service, port) in [
        (tempo, "127.0.0.1:4317:4317"),
        (tempo, "127.0.0.1:3200:3200"),
        (prom, "127.0.0.1:9090:9090"),
        (grafana, "127.0.0.1:3000:3000"),
        (gateway, "8000:8000"),
    ] {
        assert!(
            ports(service).iter().any(|p| p == port),
            "{port} missing: {service}"
        );
    }
    assert!(ports(engine).is_empty(), "replicas cannot share host ports");

    // Two engine replicas, found by the gateway through the service's DNS name, on the port
    // the engines listen on.
    assert_eq!(engine["deploy"]["replicas"], 2);
    let grpc_port = port_of(env(engine, "JOURNEY_ENGINE_LISTEN"));
    let target = env(gateway, "JOURNEY_ENGINE");
    assert_eq!(target, format!("dns:///engine-core:{grpc_port}"));
    assert_eq!(port_of(env(gateway, "JOURNEY_LISTEN")), 8000);

    // Both services trace to Tempo's OTLP gRPC port.
    for s in [engine, gateway] {
        assert_eq!(env(s, "JOURNEY_TRACING"), "true");
        assert_eq!(
            env(s, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            "http://tempo:4317"
        );
    }
    let deps = |s: &Value| depends_on(s);
    assert!(deps(gateway).contains(&("engine-core".into(), "service_healthy".into())));
    assert!(deps(engine).iter().any(|(d, _)| d == "tempo"));
    let grafana_deps: HashSet<String> = deps(grafana).into_iter().map(|d| d.0).collect();
    assert_eq!(
        grafana_deps,
        HashSet::from(["tempo".into(), "prometheus".into()])
    );

    // Restart policies on every long-running service (the one-shot init must not loop);
    // health checks on the services that others wait for.
    for (name, s) in services {
        let want = if name == "tempo-init" {
            "no"
        } else {
            "unless-stopped"
        };
        assert_eq!(s["restart"], want, "{name}");
    }
    for name in ["engine-core", "api-gateway", "prometheus", "grafana"] {
        assert!(
            services[name]["healthcheck"]["test"].is_array(),
            "{name} has no healthcheck"
        );
    }
    assert_eq!(
        engine["healthcheck"]["test"],
        json!([
            "CMD",
            "engine-core",
            "health",
            "--addr",
            format!("http://127.0.0.1:{grpc_port}")
        ])
    );

    // Every named volume is declared; every bind-mounted file exists in the repository.
    let declared: HashSet<&str> = compose["volumes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(declared.contains("models"), "the model volume");
    for (name, s) in services {
        for v in s["volumes"].as_array().into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if let Some(path) = source.strip_prefix("./") {
                assert!(root().join(path).exists(), "{name} mounts missing {source}");
            } else {
                assert!(
                    declared.contains(source),
                    "{name} uses undeclared volume {source}"
                );
            }
        }
    }

    // The images come from the Dockerfile's targets, the engine's model path is the one the
    // image carries, and the runtime user is not root.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for s in [engine, gateway] {
        let stage = s["build"]["target"].as_str().unwrap();
        assert!(
            dockerfile
                .lines()
                .any(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {stage}"))),
            "no Dockerfile stage {stage}"
        );
    }
    let model = env(engine, "JOURNEY_MODEL");
    let dir = Path::new(model).parent().unwrap().to_str().unwrap();
    assert!(
        dockerfile.contains(&format!("{dir}/")),
        "the image does not carry {model}"
    );
    assert!(dockerfile.contains("USER journey"));
    assert!(
        dockerfile.matches("FROM ").count() >= 4,
        "multi-stage build"
    );
}

#[test]
fn tempo_prometheus_and_grafana_files_parse_and_agree_with_compose() {
    let compose = yaml("compose.yaml");
    let services = &compose["services"];
    let tempo = yaml("deploy/tempo.yaml");
    let otlp = &tempo["distributor"]["receivers"]["otlp"]["protocols"];
    assert_eq!(port_of(otlp["grpc"]["endpoint"].as_str().unwrap()), 4317);
    assert_eq!(tempo["storage"]["trace"]["backend"], "local");
    let tempo_http = tempo["server"]["http_listen_port"].as_u64().unwrap();
    let tempo_config = services["tempo"]["command"][0].as_str().unwrap();
    let mounted = services["tempo"]["volumes"][0].as_str().unwrap();
    assert_eq!(
        Some(tempo_config.trim_start_matches("-config.file=")),
        mounted.split(':').nth(1)
    );
    // Span metrics and the service graph (what Grafana's trace-to-metrics links and service
    // map read) go to Prometheus by remote write: the one reason its receiver is on.
    let write = tempo["metrics_generator"]["storage"]["remote_write"][0]["url"]
        .as_str()
        .unwrap();
    assert!(write.starts_with("http://prometheus:9090/"), "{write}");
    let processors = tempo["overrides"]["defaults"]["metrics_generator"]["processors"].to_string();
    assert!(
        processors.contains("span-metrics") && processors.contains("service-graphs"),
        "{processors}"
    );
    let prom_flags = services["prometheus"]["command"].to_string();
    assert!(prom_flags.contains("--web.enable-remote-write-receiver"));

    let prom = yaml("deploy/prometheus.yml");
    let jobs = prom["scrape_configs"].as_array().unwrap();
    let job = |name: &str| {
        jobs.iter()
            .find(|j| j["job_name"] == name)
            .unwrap_or_else(|| panic!("job {name}"))
    };
    assert_eq!(
        job("api-gateway")["static_configs"][0]["targets"][0],
        "api-gateway:8000"
    );
    let engines = &job("engine-core")["dns_sd_configs"][0];
    assert_eq!(
        engines["names"][0], "engine-core",
        "every replica, through DNS"
    );
    let metrics_port = port_of(
        services["engine-core"]["environment"]["JOURNEY_ENGINE_METRICS_LISTEN"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(engines["port"].as_u64(), Some(u64::from(metrics_port)));

    let sources = yaml("deploy/grafana/provisioning/datasources/datasources.yaml");
    let sources = sources["datasources"].as_array().unwrap();
    let by_uid = |uid: &str| {
        sources
            .iter()
            .find(|d| d["uid"] == uid)
            .unwrap_or_else(|| panic!("datasource {uid}"))
    };
    assert_eq!(by_uid("prometheus")["type"], "prometheus");
    assert_eq!(by_uid("prometheus")["url"], "http://prometheus:9090");
    let tempo_ds = by_uid("tempo");
    assert_eq!(tempo_ds["type"], "tempo");
    assert_eq!(tempo_ds["url"], format!("http://tempo:{tempo_http}"));
    assert_eq!(
        tempo_ds["jsonData"]["tracesToMetrics"]["datasourceUid"], "prometheus",
        "trace-to-metrics links"
    );
    assert_eq!(
        by_uid("prometheus")["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"],
        "tempo"
    );

    let providers = yaml("deploy/grafana/provisioning/dashboards/dashboards.yaml");
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let grafana_mounts = services["grafana"]["volumes"].to_string();
    assert!(
        grafana_mounts.contains(&format!("./deploy/grafana/dashboards:{path}")),
        "{grafana_mounts}"
    );
}

#[test]
fn the_observability_services_are_closed_by_default() {
    let compose = yaml("compose.yaml");
    let services = &compose["services"];

    // Tempo, Prometheus and Grafana publish on loopback only.
    for name in ["tempo", "prometheus", "grafana"] {
        let published = ports(&services[name]);
        assert!(!published.is_empty(), "{name} publishes nothing");
        for p in published {
            assert!(
                p.starts_with("127.0.0.1:"),
                "{name} publishes {p} beyond loopback"
            );
        }
    }

    // Grafana: no anonymous access; the admin password comes from .env, and compose refuses
    // to start without one (`:?`), rather than falling back to admin/admin.
    let grafana = &services["grafana"];
    assert_eq!(env(grafana, "GF_AUTH_ANONYMOUS_ENABLED"), "false");
    assert!(grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"].is_null());
    assert!(grafana["environment"]["GF_USERS_VIEWERS_CAN_EDIT"].is_null());
    let password = env(grafana, "GF_SECURITY_ADMIN_PASSWORD");
    assert!(
        password.starts_with("${GRAFANA_ADMIN_PASSWORD:?") && password.ends_with('}'),
        "{password}"
    );
    // .env.example names every variable compose reads, empty (no shared default password);
    // .env itself stays out of git and out of the image build context.
    let text = std::fs::read_to_string(root().join("compose.yaml")).unwrap();
    let example = std::fs::read_to_string(root().join(".env.example")).unwrap();
    let defined: HashSet<&str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            assert_eq!(v.trim(), "", "{k} has a value in .env.example");
            k.trim()
        })
        .collect();
    for var in text.split("${").skip(1) {
        let name = var
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap();
        assert!(defined.contains(name), "{name} missing from .env.example");
    }
    let ignored = Command::new("git")
        .args(["check-ignore", "-q", ".env"])
        .current_dir(root())
        .status()
        .expect("git");
    assert!(ignored.success(), ".env is not git-ignored");
    let dockerignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(dockerignore.lines().any(|l| l.trim() == ".env"));

    // Both Journey services share the sampling key from .env.
    for s in ["engine-core", "api-gateway"] {
        assert_eq!(
            env(&services[s], "JOURNEY_TRACE_SAMPLE_KEY"),
            "${JOURNEY_TRACE_SAMPLE_KEY:-}",
            "{s}"
        );
    }

    // Tempo runs as its image's unprivileged user; a one-shot init hands it the volume first.
    let tempo = &services["tempo"];
    let user = tempo["user"].as_str().expect("tempo sets its user");
    assert_eq!(user, "10001:10001");
    assert_eq!(
        tempo["depends_on"]["tempo-init"]["condition"],
        "service_completed_successfully"
    );
    let init = &services["tempo-init"];
    let data = tempo["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .find(|v| v.starts_with("tempo-data:"))
        .expect("tempo's data volume");
    assert_eq!(
        init["volumes"][0], data,
        "init owns the volume tempo writes"
    );
    let path = data.split(':').nth(1).unwrap();
    assert_eq!(init["command"], json!(["chown", "-R", user, path]));
    let tempo_cfg = yaml("deploy/tempo.yaml");
    for p in [
        &tempo_cfg["storage"]["trace"]["wal"]["path"],
        &tempo_cfg["storage"]["trace"]["local"]["path"],
        &tempo_cfg["metrics_generator"]["storage"]["path"],
        &tempo_cfg["metrics_generator"]["traces_storage"]["path"],
    ] {
        let p = p.as_str().unwrap();
        assert!(
            p.starts_with(&format!("{path}/")),
            "tempo writes {p} outside {path}"
        );
    }
}

/// Every `journey:` name in `expr`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("journey:") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The series names a `/metrics` text can carry: samples seen, and every name the `# TYPE`
/// lines imply (counters' `_total`, histograms' `_bucket`/`_sum`/`_count`).
fn exported_names(text: &str, into: &mut HashSet<String>) {
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut parts = decl.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for s in suffixes {
                into.insert(format!("{name}{s}"));
            }
        } else if let Some(name) = line
            .split(['{', ' '])
            .next()
            .filter(|n| !n.is_empty() && !line.starts_with('#'))
        {
            into.insert(name.to_owned());
        }
    }
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_uses_only_metrics_the_services_export() {
    let text =
        std::fs::read_to_string(root().join("deploy/grafana/dashboards/journey.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    assert_eq!(dashboard["uid"], "journey");
    assert_eq!(dashboard["title"], "Journey");

    let mut exprs = Vec::new();
    let mut traceql = Vec::new();
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let uid = target["datasource"]["uid"]
                .as_str()
                .or(panel["datasource"]["uid"].as_str());
            match uid {
                Some("prometheus") => {
                    exprs.push(target["expr"].as_str().expect("a PromQL expr").to_owned())
                }
                Some("tempo") => traceql.push(
                    target["query"]
                        .as_str()
                        .expect("a TraceQL query")
                        .to_owned(),
                ),
                other => panic!("panel {} uses datasource {other:?}", panel["title"]),
            }
        }
    }
    assert!(
        traceql
            .iter()
            .any(|q| q.contains("llm_request") && q.contains("duration")),
        "a TraceQL panel of the slowest journeys: {traceql:?}"
    );
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    for e in &exprs {
        assert!(
            !metric_names(e).is_empty(),
            "expr without a Journey metric: {e}"
        );
    }
    // What the issue asks the dashboard to show.
    for needed in [
        "journey:time_to_first_token_seconds_bucket",
        "journey:request_queue_time_seconds_bucket",
        "journey:e2e_request_latency_seconds_bucket",
        "journey:num_preemptions_total",
        "journey:kv_cache_usage_perc",
        "journey:batch_size_bucket",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }

    // Scrape the real services after one request, so labelled families have series.
    let model = tiny_model(&temp_dir("deploy"));
    let engine = start_engine(&model, &[]);
    let gateway = start_gateway(&engine.addr, &[]);
    let body = json!({"model": "journey-tiny", "prompt": "hello", "max_tokens": 4});
    let reply = reqwest::Client::new()
        .post(format!("http://{}/v1/completions", gateway.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let mut exported = HashSet::new();
    for url in [engine.metrics_url(), gateway.metrics_url()] {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        exported_names(&text, &mut exported);
    }
    let missing: Vec<&String> = used.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics no service exports: {missing:?}"
    );
}

#[test]
fn engine_health_subcommand_is_what_the_container_health_check_runs() {
    let model = tiny_model(&temp_dir("deploy-health"));
    let engine = start_engine(&model, &[]);
    let ok = Command::new(binary("engine-core"))
        .args(["health", "--addr", &format!("http://{}", engine.addr)])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("SERVING"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = Command::new(binary("engine-core"))
        .args(["health", "--addr", &addr, "--timeout", "2"])
        .output()
        .unwrap();
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.contains(&addr),
        "the error names the address: {stderr}"
    );
}
