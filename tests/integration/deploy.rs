//! The deployment files as an operator uses them: the Kubernetes template rendered with
//! envsubst and read by a YAML parser; the Dockerfile's promises checked by reading it.

use std::process::Command;

use serde_json::Value;

fn render() -> Vec<Value> {
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/deployment.template.yml");
    let rendered = Command::new("sh")
        .arg("-c")
        .arg(format!("envsubst < {template}"))
        .env("NAMESPACE", "telemetry")
        .env("IMAGE", "registry.example/tetcore-analytics:1.0")
        .env("REPLICAS", "3")
        .env("LB_SOURCE_RANGES", r#""203.0.113.0/24", "198.51.100.0/24""#)
        .env("ALLOWED_NODE_IPS", "203.0.113.7/32,198.51.100.0/24")
        .env("LOG_EXPIRY_H", "168")
        .output()
        .expect("envsubst (Debian package gettext-base) runs");
    assert!(rendered.status.success());
    assert!(
        !String::from_utf8_lossy(&rendered.stdout).contains("${"),
        "every variable rendered"
    );
    yaml_docs(&rendered.stdout)
}

/// The YAML documents of `text`, as JSON (PyYAML's reading).
fn yaml_docs(text: &[u8]) -> Vec<Value> {
    let mut parse = Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML runs");
    use std::io::Write;
    parse.stdin.take().unwrap().write_all(text).unwrap();
    let out = parse.wait_with_output().unwrap();
    assert!(out.status.success(), "the text is YAML");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_kubernetes_template_renders_to_the_expected_objects() {
    let docs = render();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "ServiceMonitor",
            "PrometheusRule"
        ]
    );
    // The alerting rules are those of prometheus/, which promtool tests (metrics.rs).
    let rules = yaml_docs(include_bytes!(
        "../../prometheus/tetcore-analytics.rules.yml"
    ));
    assert_eq!(
        kind(&docs, "PrometheusRule")["spec"]["groups"],
        rules[0]["groups"]
    );
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "telemetry");
    }

    let config = kind(&docs, "ConfigMap");
    assert!(
        config["data"].get("DATABASE_URL").is_none(),
        "no secret in the ConfigMap"
    );
    assert_eq!(config["data"]["LOG_EXPIRY_H"], "168");
    assert_eq!(
        config["data"]["ALLOWED_NODE_IPS"],
        "203.0.113.7/32,198.51.100.0/24"
    );
    assert!(
        config["data"].get("API_TOKEN").is_none(),
        "no token in the ConfigMap"
    );
    let shutdown: u64 = config["data"]["SHUTDOWN_TIMEOUT_S"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let deployment = kind(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 2 * shutdown);
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.example/tetcore-analytics:1.0");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let database_url = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DATABASE_URL")
        .expect("DATABASE_URL is set");
    assert!(database_url.get("value").is_none(), "never a plain value");
    assert_eq!(
        database_url["valueFrom"]["secretKeyRef"]["key"],
        "DATABASE_URL"
    );
    let token = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "API_TOKEN")
        .expect("API_TOKEN comes from a secret");
    assert_eq!(token["valueFrom"]["secretKeyRef"]["optional"], true);

    let service = kind(&docs, "Service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(
        service["spec"]["loadBalancerSourceRanges"],
        serde_json::json!(["203.0.113.0/24", "198.51.100.0/24"])
    );
    assert_eq!(service["spec"]["externalTrafficPolicy"], "Local");
    let monitor = kind(&docs, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn the_dockerfile_runs_unprivileged_on_slim_debian_with_the_dashboard_built_in() {
    let dockerfile = include_str!("../../Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "multi-stage");
    assert!(stages[1].contains("debian:") && stages[1].contains("-slim"));
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert_ne!(user.trim(), "root");
    assert_ne!(user.trim(), "0");
    // The dashboard is built into the binary: the image needs no files beside it.
    assert!(
        dockerfile.contains("COPY static ./static"),
        "built into the binary"
    );
    assert!(
        !dockerfile.contains("ASSETS_PATH"),
        "nothing to serve beside it"
    );
}
