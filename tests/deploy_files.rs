//! The deployment files parse and refer to things that exist. No container engine runs here, so
//! this is what can be checked: YAML and TOML syntax, the expected Kubernetes objects, the image
//! file's COPY sources, and that every brevdue command the files run exists.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(path: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            <serde_yaml::Value as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .collect()
}

fn brevdue_accepts(args: &[&str]) {
    let mut full: Vec<&str> = args.to_vec();
    full.push("--help");
    let out = Command::new(env!("CARGO_BIN_EXE_brevdue"))
        .args(&full)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "brevdue {} is not a command: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn example_configuration_is_valid() {
    let config =
        brevdue::config::Config::from_file(&root().join("deploy/brevdue.toml")).expect("parses");
    config.validate().expect("validates");
    assert!(
        config.admin_listen.ip().is_loopback() || config.admin_token_file.is_some(),
        "an operator port beyond loopback must ask for a token"
    );
    assert!(matches!(
        config.store_url(),
        brevdue::config::StoreUrl::Postgres(_)
    ));
    assert!(matches!(
        config.queue_url(),
        brevdue::config::QueueUrl::Rabbit(_)
    ));
}

#[test]
fn compose_has_the_whole_setup() {
    let docs = yaml_docs("deploy/compose.yaml");
    let services = docs[0]["services"].as_mapping().expect("services");
    for name in [
        "gateway-1",
        "gateway-2",
        "postgres",
        "rabbitmq",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains_key(name), "compose lacks {name}");
    }
    // Nothing is published beyond this host's loopback, and Grafana has no default login.
    for (name, service) in services {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap_or_default();
            assert!(
                port.starts_with("127.0.0.1:"),
                "compose publishes {name:?}'s port {port} beyond loopback"
            );
        }
    }
    let grafana = &services["grafana"]["environment"];
    assert!(
        grafana["GF_SECURITY_ADMIN_PASSWORD"]
            .as_str()
            .is_some_and(|p| p.contains(":?")),
        "Grafana's admin password must be required, not defaulted"
    );
    let gateway = &docs[0]["x-gateway"]["environment"];
    assert!(
        gateway["BREVDUE_ADMIN_TOKEN_FILE"].as_str().is_some(),
        "the compose gateways must ask for an admin token"
    );
}

#[test]
fn kubernetes_manifests_have_every_object() {
    let docs = yaml_docs("deploy/k8s/brevdue.yaml");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&kind), "manifests lack a {kind}");
    }
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let probe: Vec<&str> = container["readinessProbe"]["exec"]["command"]
        .as_sequence()
        .expect("exec readiness probe")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(&probe[..2], ["brevdue", "health"]);
    brevdue_accepts(&["health"]);
    let config = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("configmap");
    let toml_text = config["data"]["brevdue.toml"].as_str().expect("toml");
    let parsed: brevdue::config::Config = toml::from_str(toml_text).expect("configmap toml parses");
    parsed.validate().expect("configmap toml validates");
    assert!(
        parsed.admin_token_file.is_some(),
        "an operator port on 0.0.0.0 must ask for a token"
    );
}

#[test]
fn image_file_copies_what_exists_and_runs_real_commands() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("Dockerfile");
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("COPY ") {
            if rest.starts_with("--from") {
                continue;
            }
            let parts: Vec<&str> = rest.split_whitespace().collect();
            for src in &parts[..parts.len() - 1] {
                assert!(
                    root().join(src).exists(),
                    "Dockerfile copies {src}, which does not exist"
                );
            }
        }
    }
    assert!(text.contains("CMD [\"serve\""));
    brevdue_accepts(&["serve"]);
    brevdue_accepts(&["health"]);
}

#[test]
fn systemd_unit_runs_serve() {
    let text =
        std::fs::read_to_string(root().join("deploy/systemd/brevdue.service")).expect("unit");
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args, ["serve"]);
    brevdue_accepts(&args);
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(text.contains(section), "unit lacks {section}");
    }
}
