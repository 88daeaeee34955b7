//! The pod spec's rendering, pinned: shape, goldens, Juju's and Kubernetes' rules, where the password goes,
//! what the templates and scripts hold. The scripts run for real, with redis-server and Sentinel, in [`pods`].

use super::*;
use crate::redis::config::{AppendFsync, MaxmemoryPolicy, SavePoint};
use crate::redis::resp::{self, Resp};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;

const PW: &str = "golden-test-password-0123456789";

fn public_image(path: &str) -> ImageDetails {
    ImageDetails { image_path: path.to_owned(), username: String::new(), password: String::new() }
}

fn topo(units: u32) -> Deployment {
    Deployment { app: "redis".to_owned(), units, password: Some(PW.to_owned()), previous_password: None }
}

fn cfg_port(port: u16) -> RedisConfig {
    RedisConfig { port, ..RedisConfig::default() }
}

fn no_auth() -> RedisConfig {
    RedisConfig { require_auth: false, ..RedisConfig::default() }
}

fn render(port: u16, image: &ImageDetails) -> String {
    render_pod_spec(&cfg_port(port), image, &topo(1)).unwrap()
}

/// The golden files are rendered for the charm's default application name, so the charm's own
/// tests (tests/suite/charm_hooks.rs) can compare what a deployed `redis-k8s` sends against them.
fn golden_topo(units: u32) -> Deployment {
    Deployment { app: "redis-k8s".to_owned(), ..topo(units) }
}

fn parse(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).unwrap()
}

// ---- The rules Juju (strict v3 decoding, §5.1–5.4) and Kubernetes enforce ------------------------------

const TOP_KEYS: &[&str] =
    &["version", "containers", "service", "configmaps", "omitServiceFrontend", "serviceAccount", "kubernetesResources"];
const CONTAINER_KEYS: &[&str] = &[
    "name",
    "init",
    "imageDetails",
    "image",
    "imagePullPolicy",
    "ports",
    "command",
    "args",
    "workingDir",
    "envConfig",
    "volumeConfig",
    "kubernetes",
];
const IMAGE_KEYS: &[&str] = &["imagePath", "username", "password"];
const PORT_KEYS: &[&str] = &["containerPort", "protocol", "name"];
const FILESET_KEYS: &[&str] = &["name", "mountPath", "files", "hostPath", "emptyDir", "configMap", "secret"];
const FILESET_SOURCES: &[&str] = &["files", "hostPath", "emptyDir", "configMap", "secret"];
const FILE_KEYS: &[&str] = &["path", "content", "mode"];
const EMPTYDIR_KEYS: &[&str] = &["medium", "sizeLimit"];
const SECRET_SOURCE_KEYS: &[&str] = &["name", "files", "items", "defaultMode", "optional"];
const KUBERNETES_KEYS: &[&str] = &["livenessProbe", "readinessProbe", "startupProbe", "securityContext"];
const PROBE_KEYS: &[&str] = &[
    "exec",
    "httpGet",
    "tcpSocket",
    "grpc",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
];
const TCP_SOCKET_KEYS: &[&str] = &["port", "host"];
const K8S_RESOURCES_KEYS: &[&str] = &[
    "pod",
    "secrets",
    "services",
    "customResourceDefinitions",
    "customResources",
    "mutatingWebhookConfigurations",
    "validatingWebhookConfigurations",
    "serviceAccounts",
    "ingressResources",
];
/// Juju's `K8sSecret` (caas/kubernetes/provider/specs/secrets.go).
const SECRET_KEYS: &[&str] = &["name", "type", "annotations", "data", "stringData"];

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// Kubernetes Secret data keys: `[-._a-zA-Z0-9]+`.
fn is_config_key(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Collects every rule the spec breaks; an empty list means Juju and Kubernetes would accept it.
#[derive(Default)]
struct Checker {
    problems: Vec<String>,
    /// Secrets defined under kubernetesResources.
    secrets: BTreeSet<String>,
    /// Secrets mounted by file sets, to check each is defined.
    mounted_secrets: Vec<(String, String)>,
    container_names: BTreeSet<String>,
    port_names: BTreeSet<String>,
    /// File set name → its YAML, for Juju's "same name, same spec" rule across containers.
    file_sets: BTreeMap<String, String>,
}

impl Checker {
    fn fail(&mut self, problem: String) {
        self.problems.push(problem);
    }

    fn map<'v>(&mut self, at: &str, value: &'v Value, allowed: &[&str]) -> Option<&'v Mapping> {
        let Some(map) = value.as_mapping() else {
            self.fail(format!("{at}: not a mapping: {value:?}"));
            return None;
        };
        for key in map.keys() {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                _ => self.fail(format!("{at}: unknown key {key:?}")),
            }
        }
        Some(map)
    }

    fn seq<'v>(&mut self, at: &str, value: &'v Value) -> &'v [Value] {
        match value.as_sequence() {
            Some(s) => s,
            None => {
                self.fail(format!("{at}: not a list: {value:?}"));
                &[]
            }
        }
    }

    fn check_probe(&mut self, at: &str, probe: &Value, container_ports: &[u64]) {
        let Some(map) = self.map(at, probe, PROBE_KEYS) else { return };
        let handlers = ["exec", "httpGet", "tcpSocket", "grpc"].iter().filter(|k| map.contains_key(**k)).count();
        if handlers != 1 {
            return self.fail(format!("{at}: has {handlers} handlers, needs exactly one"));
        }
        if let Some(exec) = map.get("exec")
            && let Some(e) = self.map(&format!("{at}.exec"), exec, &["command"])
        {
            let command = self.seq(&format!("{at}.exec.command"), &e["command"]);
            if command.is_empty() || command.iter().any(|c| c.as_str().is_none()) {
                self.fail(format!("{at}.exec.command: not a non-empty list of strings"));
            }
        }
        if let Some(tcp) = map.get("tcpSocket") {
            self.map(&format!("{at}.tcpSocket"), tcp, TCP_SOCKET_KEYS);
            if !tcp["port"].as_u64().is_some_and(|p| container_ports.contains(&p)) {
                self.fail(format!(
                    "{at}: probe port {:?} is not one of the container's {container_ports:?}",
                    tcp["port"]
                ));
            }
        }
        for key in ["initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"] {
            if map.get(key).is_some_and(|v| v.as_u64().is_none()) {
                self.fail(format!("{at}.{key}: not a non-negative integer"));
            }
        }
    }

    fn check_file_set(&mut self, sat: &str, set: &Value, names: &mut BTreeSet<String>, paths: &mut BTreeSet<String>) {
        let Some(s) = self.map(sat, set, FILESET_KEYS) else { return };
        match s.get("name").and_then(Value::as_str) {
            Some(name) if is_dns1123_label(name) => {
                if !names.insert(name.to_owned()) {
                    self.fail(format!("{sat}: duplicated file set name {name}"));
                }
                let text = serde_yaml::to_string(set).unwrap_or_default();
                match self.file_sets.get(name) {
                    Some(previous) if *previous != text => {
                        self.fail(format!("{sat}: duplicated file {name:?} with different volume spec not valid"))
                    }
                    _ => {
                        self.file_sets.insert(name.to_owned(), text);
                    }
                }
            }
            other => self.fail(format!("{sat}.name: not a DNS-1123 label: {other:?}")),
        }
        match s.get("mountPath").and_then(Value::as_str) {
            Some(path) if path.starts_with('/') => {
                if !paths.insert(path.to_owned()) {
                    self.fail(format!("{sat}: duplicated mount path {path}"));
                }
            }
            other => self.fail(format!("{sat}.mountPath: not an absolute path: {other:?}")),
        }
        let sources = FILESET_SOURCES.iter().filter(|k| s.contains_key(**k)).count();
        if sources != 1 {
            self.fail(format!("{sat}: has {sources} volume sources, needs exactly one"));
        }
        if let Some(files) = s.get("files") {
            let mut file_paths = BTreeSet::new();
            for (j, file) in self.seq(&format!("{sat}.files"), files).iter().enumerate() {
                let fat = format!("{sat}.files[{j}]");
                if let Some(f) = self.map(&fat, file, FILE_KEYS) {
                    match f.get("path").and_then(Value::as_str) {
                        Some(p) if is_config_key(p) => {
                            if !file_paths.insert(p.to_owned()) {
                                self.fail(format!("{fat}: duplicated path {p}"));
                            }
                        }
                        other => self.fail(format!("{fat}: Path is missing or not a ConfigMap key: {other:?}")),
                    }
                    if f.get("content").and_then(Value::as_str).is_none() {
                        self.fail(format!("{fat}: Content is missing"));
                    }
                }
            }
        }
        if let Some(empty_dir) = s.get("emptyDir") {
            self.map(&format!("{sat}.emptyDir"), empty_dir, EMPTYDIR_KEYS);
        }
        if let Some(secret) = s.get("secret")
            && let Some(m) = self.map(&format!("{sat}.secret"), secret, SECRET_SOURCE_KEYS)
        {
            match m.get("name").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => self.mounted_secrets.push((sat.to_owned(), name.to_owned())),
                other => self.fail(format!("{sat}.secret: Name is missing: {other:?}")),
            }
            if m.get("defaultMode").is_some_and(|v| v.as_u64().is_none_or(|mode| mode > 0o777)) {
                self.fail(format!("{sat}.secret.defaultMode: not 0-511"));
            }
        }
    }

    fn check_container(&mut self, at: &str, container: &Value) {
        let Some(map) = self.map(at, container, CONTAINER_KEYS) else { return };
        match map.get("name").and_then(Value::as_str) {
            Some(name) if is_dns1123_label(name) => {
                if !self.container_names.insert(name.to_owned()) {
                    self.fail(format!("{at}.name: duplicated container name {name}"));
                }
            }
            other => self.fail(format!("{at}.name: not a DNS-1123 label: {other:?}")),
        }
        match map.get("imageDetails") {
            Some(details) => {
                if let Some(d) = self.map(&format!("{at}.imageDetails"), details, IMAGE_KEYS)
                    && d.get("imagePath").and_then(Value::as_str).is_none_or(str::is_empty)
                {
                    self.fail(format!("{at}.imageDetails: imagePath missing"));
                }
            }
            None => self.fail(format!("{at}: spec image details is missing")),
        }
        for key in ["command", "args"] {
            if let Some(list) = map.get(key) {
                for item in self.seq(&format!("{at}.{key}"), list) {
                    if item.as_str().is_none() {
                        self.fail(format!("{at}.{key}: not a string: {item:?}"));
                    }
                }
            }
        }

        let ports = self.seq(&format!("{at}.ports"), &map["ports"]);
        if ports.is_empty() {
            self.fail(format!("{at}: at least one port is required for the Service"));
        }
        let mut container_ports = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let pat = format!("{at}.ports[{i}]");
            let Some(p) = self.map(&pat, port, PORT_KEYS) else { continue };
            match p.get("name").and_then(Value::as_str) {
                Some(name) if is_port_name(name) => {
                    // Service port names must be unique across the whole pod.
                    if !self.port_names.insert(name.to_owned()) {
                        self.fail(format!("{pat}.name: duplicated port name {name}"));
                    }
                }
                other => self.fail(format!("{pat}.name: not a valid port name: {other:?}")),
            }
            if p.get("protocol").and_then(Value::as_str) != Some("TCP") {
                self.fail(format!("{pat}.protocol: not TCP: {:?}", p.get("protocol")));
            }
            match p.get("containerPort").and_then(Value::as_u64) {
                Some(n) if (1..=65535).contains(&n) => container_ports.push(n),
                other => self.fail(format!("{pat}.containerPort: not 1-65535: {other:?}")),
            }
        }

        let mut mount_paths = BTreeSet::new();
        let mut names = BTreeSet::new();
        for (i, set) in self.seq(&format!("{at}.volumeConfig"), &map["volumeConfig"]).iter().enumerate() {
            self.check_file_set(&format!("{at}.volumeConfig[{i}]"), set, &mut names, &mut mount_paths);
        }

        if let Some(k8s) = map.get("kubernetes")
            && let Some(k) = self.map(&format!("{at}.kubernetes"), k8s, KUBERNETES_KEYS)
        {
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                if let Some(p) = k.get(probe) {
                    self.check_probe(&format!("{at}.kubernetes.{probe}"), p, &container_ports);
                }
            }
        }
    }

    fn check_resources(&mut self, resources: &Value) {
        let Some(r) = self.map("kubernetesResources", resources, K8S_RESOURCES_KEYS) else { return };
        let Some(secrets) = r.get("secrets") else { return };
        for (i, secret) in self.seq("kubernetesResources.secrets", secrets).iter().enumerate() {
            let sat = format!("kubernetesResources.secrets[{i}]");
            let Some(s) = self.map(&sat, secret, SECRET_KEYS) else { continue };
            match s.get("name").and_then(Value::as_str) {
                Some(name) if is_dns1123_label(name) => {
                    if !self.secrets.insert(name.to_owned()) {
                        self.fail(format!("{sat}: duplicated secret {name}"));
                    }
                }
                other => self.fail(format!("{sat}.name: not a DNS-1123 name: {other:?}")),
            }
            if s.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
                self.fail(format!("{sat}: type is missing"));
            }
            for key in ["data", "stringData"] {
                let Some(data) = s.get(key) else { continue };
                let Some(data) = data.as_mapping() else {
                    self.fail(format!("{sat}.{key}: not a mapping"));
                    continue;
                };
                for (k, v) in data {
                    if !k.as_str().is_some_and(is_config_key) {
                        self.fail(format!("{sat}.{key}: invalid key {k:?}"));
                    }
                    if v.as_str().is_none() {
                        self.fail(format!("{sat}.{key}.{k:?}: not a string"));
                    }
                }
            }
        }
    }
}

fn spec_problems(yaml: &str) -> Vec<String> {
    let mut c = Checker::default();
    let spec: Value = match serde_yaml::from_str(yaml) {
        Ok(v) => v,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    if let Some(top) = c.map("spec", &spec, TOP_KEYS) {
        if top.get("version").and_then(Value::as_u64) != Some(3) {
            c.fail(format!("version is not 3: {:?}", top.get("version")));
        }
        if let Some(resources) = top.get("kubernetesResources") {
            c.check_resources(resources);
        }
        let containers = c.seq("containers", &spec["containers"]);
        if containers.is_empty() {
            c.fail("require at least one container spec".to_owned());
        }
        for (i, container) in containers.iter().enumerate() {
            c.check_container(&format!("containers[{i}]"), container);
        }
        for (at, name) in std::mem::take(&mut c.mounted_secrets) {
            if !c.secrets.contains(&name) {
                c.fail(format!("{at}: secret {name:?} is not defined in the spec"));
            }
        }
    }
    c.problems
}

fn all_configs() -> Vec<RedisConfig> {
    vec![
        RedisConfig::default(),
        no_auth(),
        RedisConfig {
            port: 7000,
            appendonly: false,
            appendfsync: AppendFsync::Always,
            save: vec![],
            maxmemory: 512 * 1024 * 1024,
            maxmemory_policy: MaxmemoryPolicy::AllkeysLru,
            ..RedisConfig::default()
        },
    ]
}

#[test]
fn every_rendered_spec_obeys_juju_and_kubernetes_rules() {
    let images = [
        public_image("redis:7.0"),
        ImageDetails {
            image_path: "registry.example.com:5000/library/redis@sha256:0123456789abcdef".into(),
            username: "robot".into(),
            password: "hunter2".into(),
        },
        ImageDetails { image_path: "redis".into(), username: "only-user".into(), password: String::new() },
    ];
    for port in [1, 2, 80, 1023, 6379, 7000, 16379, 26378, 26380, 65534, 65535] {
        for image in &images {
            for units in [0, 1, 2, 3, 5] {
                let yaml = render_pod_spec(&cfg_port(port), image, &topo(units)).unwrap();
                let problems = spec_problems(&yaml);
                assert!(problems.is_empty(), "port {port}, {image:?}, {units} units: {problems:#?}\n{yaml}");
                let spec = parse(&yaml);
                let c = &spec["containers"][0];
                assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port.into()));
                assert_eq!(c["kubernetes"]["readinessProbe"]["exec"]["command"][2], "ready");
                assert_eq!(c["kubernetes"]["readinessProbe"]["exec"]["command"][3], port.to_string().as_str());
                assert_eq!(c["kubernetes"]["livenessProbe"]["tcpSocket"]["port"].as_u64(), Some(port.into()));
            }
        }
    }
    for cfg in all_configs() {
        for app in ["redis", "a", "redis-k8s-2", &"x".repeat(53)] {
            let topo = Deployment { app: app.to_owned(), ..topo(3) };
            let yaml = render_pod_spec(&cfg, &images[0], &topo).unwrap();
            let problems = spec_problems(&yaml);
            assert!(problems.is_empty(), "{cfg:?}, {app}: {problems:#?}\n{yaml}");
        }
    }
}

/// The checker must catch what it claims to, or the test above proves nothing.
#[test]
fn the_rule_checker_catches_broken_specs() {
    let good = render(6379, &public_image("redis:7.0"));
    assert!(spec_problems(&good).is_empty());
    let broken = [
        ("version: 3", "version: 2"),
        ("- name: redis\n  imageDetails", "- name: Redis_1\n  imageDetails"),
        ("- name: sentinel\n  imageDetails", "- name: redis\n  imageDetails"),
        ("protocol: TCP", "protocol: tcp"),
        ("containerPort: 6379", "containerPort: 70000"),
        ("- name: redis\n    containerPort", "- name: redis-port-too-long\n    containerPort"),
        ("- name: sentinel\n    containerPort", "- name: redis\n    containerPort"),
        ("imagePullPolicy: IfNotPresent", "imagePullPolicy: IfNotPresent\n  bogusKey: 1"),
        ("mountPath: /sentinel", "mountPath: /etc/redis-k8s"),
        ("name: sentinel-data", "name: redis-config"),
        ("emptyDir: {}", "emptyDir: {}\n    hostPath: {path: /tmp}"),
        (
            "  livenessProbe:\n      tcpSocket:\n        port: 6379",
            "  livenessProbe:\n      tcpSocket:\n        port: 6380",
        ),
        ("    secret:\n      name: redis-auth", "    secret:\n      name: redis-other"),
        ("defaultMode: 256", "defaultMode: 4096"),
        ("- name: redis-auth\n    type: Opaque", "- name: redis-auth\n    labels: {a: b}\n    type: Opaque"),
        ("      password: golden", "      pass word: golden"),
        ("- path: start-redis.sh", "- path: redis.conf"),
    ];
    for (from, to) in broken {
        assert!(good.contains(from), "golden text changed; update this test: {from:?}\n{good}");
        let bad = good.replacen(from, to, 1);
        assert!(!spec_problems(&bad).is_empty(), "not caught: {from:?} -> {to:?}\n{bad}");
    }
    // A file set whose content differs between the containers.
    let bad = good.replacen("port 6379", "port 6380", 1);
    assert!(spec_problems(&bad).iter().any(|p| p.contains("different volume spec")), "{bad}");
}

#[test]
fn spec_has_the_expected_shape() {
    let spec = parse(&render_pod_spec(&cfg_port(7000), &public_image("redis:7.0"), &topo(3)).unwrap());
    let top: Vec<&str> = spec.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(top, ["version", "containers", "kubernetesResources"]);
    let redis = &spec["containers"][0];
    let sentinel = &spec["containers"][1];
    assert_eq!(spec["containers"].as_sequence().unwrap().len(), 2);
    assert_eq!(redis["name"], "redis");
    assert_eq!(sentinel["name"], "sentinel");
    assert_eq!(parse("[sh, /etc/redis-k8s/start-redis.sh]"), redis["command"]);
    assert_eq!(parse("[sh, /etc/redis-k8s/start-sentinel.sh]"), sentinel["command"]);
    assert!(redis.get("args").is_none() && redis.get("envConfig").is_none() && sentinel.get("envConfig").is_none());
    assert_eq!(parse("[{name: redis, containerPort: 7000, protocol: TCP}]"), redis["ports"]);
    assert_eq!(parse("[{name: sentinel, containerPort: 26379, protocol: TCP}]"), sentinel["ports"]);
    assert_eq!(
        parse("[sh, /etc/redis-k8s/start-redis.sh, ready, '7000']"),
        redis["kubernetes"]["readinessProbe"]["exec"]["command"]
    );
    assert_eq!(redis["kubernetes"]["livenessProbe"]["tcpSocket"]["port"], 7000);
    assert_eq!(sentinel["kubernetes"]["readinessProbe"]["tcpSocket"]["port"], 26379);
    assert_eq!(sentinel["kubernetes"]["livenessProbe"]["tcpSocket"]["port"], 26379);

    let mounts = |c: &Value| -> Vec<(String, String)> {
        c["volumeConfig"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_owned(), v["mountPath"].as_str().unwrap().to_owned()))
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(mounts(redis), [pair("redis-config", "/etc/redis-k8s"), pair("redis-auth", "/etc/redis-auth")]);
    assert_eq!(
        mounts(sentinel),
        [
            pair("redis-config", "/etc/redis-k8s"),
            pair("redis-auth", "/etc/redis-auth"),
            pair("sentinel-data", "/sentinel")
        ]
    );
    // No emptyDir at /data any more: Juju mounts the `data` storage there.
    assert!(!render(6379, &public_image("redis")).contains("mountPath: /data"));
    let files: Vec<&str> =
        redis["volumeConfig"][0]["files"].as_sequence().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    // Four files, for good: see REDIS_CONF.
    assert_eq!(files, ["redis.conf", "sentinel.conf", "start-redis.sh", "start-sentinel.sh"]);
    assert_eq!(parse("{name: redis-auth, defaultMode: 256}"), redis["volumeConfig"][1]["secret"]);

    let secret = &spec["kubernetesResources"]["secrets"][0];
    assert_eq!(secret["name"], "redis-auth");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["stringData"]["password"], PW);
    assert_eq!(secret["stringData"]["previous-password"], "");
    assert_eq!(
        secret["stringData"]["auth.conf"],
        format!("user default on resetpass >{PW} ~* &* +@all\nmasterauth {PW}\n").as_str()
    );
    // The conf is a readable block scalar, not one escaped line.
    assert!(render(6379, &public_image("redis")).contains("content: |\n"));
}

/// The pod template (what Kubernetes compares to decide whether pods restart) depends only on the image and
/// the port: every other option, auth on or off, the password and its rotation, and the unit count are file
/// contents. The volume list is the same whatever the config, so Juju before 2.9.30 (which cannot add volumes
/// to a running StatefulSet) can apply every change.
#[test]
fn the_pod_template_depends_only_on_the_image_and_the_port() {
    fn template(yaml: &str) -> Value {
        let mut spec = parse(yaml);
        spec.as_mapping_mut().unwrap().remove("kubernetesResources");
        for c in spec["containers"].as_sequence_mut().unwrap() {
            for set in c["volumeConfig"].as_sequence_mut().unwrap() {
                if let Some(files) = set.get_mut("files").and_then(Value::as_sequence_mut) {
                    for f in files {
                        f.as_mapping_mut().unwrap().remove("content");
                    }
                }
            }
        }
        spec
    }
    let image = public_image("redis:7.0");
    let base = template(&render(6379, &image));
    let rotating = Deployment { previous_password: Some("an-older-password-0123456789".into()), ..topo(3) };
    for cfg in all_configs().into_iter().map(|c| RedisConfig { port: 6379, ..c }) {
        for t in [topo(1), topo(3), topo(5), rotating.clone(), Deployment { password: None, ..topo(2) }] {
            let Ok(yaml) = render_pod_spec(&cfg, &image, &t) else { continue };
            assert_eq!(template(&yaml), base, "{cfg:?} {t:?} changes the pod template");
        }
    }
    assert_ne!(template(&render(7000, &image)), base, "a port change must roll the pods");
    assert_ne!(template(&render(6379, &public_image("redis:7.2"))), base, "an image change must roll the pods");
}

#[test]
fn rendering_is_deterministic() {
    let image = ImageDetails { image_path: "redis:7.0".into(), username: "u".into(), password: "p".into() };
    let first = render(6379, &image);
    for _ in 0..5 {
        assert_eq!(render(6379, &image), first);
    }
    assert_ne!(render(6380, &image), first);
    assert_ne!(render_pod_spec(&cfg_port(6379), &image, &topo(3)).unwrap(), first);
}

// ---- The password -----------------------------------------------------------------------------------------

#[test]
fn the_password_is_only_in_the_secret() {
    let special = "Pw!#$%&()*+,-./:;<=>?@[]^_`{|}~09";
    for password in [PW, special] {
        for units in [1, 3] {
            let t = Deployment { app: "redis".into(), units, password: Some(password.into()), previous_password: None };
            let yaml = render_pod_spec(&RedisConfig::default(), &public_image("redis:7.0"), &t).unwrap();
            let mut spec = parse(&yaml);
            let data = &spec["kubernetesResources"]["secrets"][0]["stringData"];
            assert_eq!(data["password"].as_str(), Some(password));
            assert_eq!(data["auth.conf"].as_str().unwrap().matches(password).count(), 2);
            // Without kubernetesResources, the password is nowhere: not in the commands, files, env or labels.
            spec.as_mapping_mut().unwrap().remove("kubernetesResources");
            let rest = serde_yaml::to_string(&spec).unwrap();
            assert!(!rest.contains(password), "{rest}");
            // Nor any long piece of it.
            assert!(!rest.contains(&password[..12]), "{rest}");
        }
    }
}

#[test]
fn without_auth_the_secret_holds_no_password() {
    let yaml = render_pod_spec(&no_auth(), &public_image("redis:7.0"), &topo(3)).unwrap();
    assert!(spec_problems(&yaml).is_empty());
    let spec = parse(&yaml);
    let data = &spec["kubernetesResources"]["secrets"][0]["stringData"];
    assert_eq!(data["password"], "");
    assert_eq!(data["previous-password"], "");
    assert_eq!(data["auth.conf"], "user default on nopass ~* &* +@all\n");
    assert!(!yaml.contains(PW), "{yaml}");
    assert!(yaml.contains("protected-mode no"), "{yaml}");
    assert!(yaml.contains("REQUIRE_AUTH=no"), "{yaml}");
    // The password is ignored, and not needed.
    let t = Deployment { password: None, ..topo(1) };
    assert!(render_pod_spec(&no_auth(), &public_image("redis"), &t).is_ok());
}

#[test]
fn during_a_rotation_both_passwords_are_accepted_and_the_new_one_is_used() {
    let old = "the-previous-password-0123";
    let t = Deployment { previous_password: Some(old.into()), ..topo(3) };
    let spec = parse(&render_pod_spec(&RedisConfig::default(), &public_image("redis:7.0"), &t).unwrap());
    let data = &spec["kubernetesResources"]["secrets"][0]["stringData"];
    assert_eq!(
        data["auth.conf"],
        format!("user default on resetpass >{PW} >{old} ~* &* +@all\nmasterauth {PW}\n").as_str()
    );
    assert_eq!(data["previous-password"], old);
    // The same password twice is no rotation.
    let same = Deployment { previous_password: Some(PW.into()), ..topo(3) };
    let spec = parse(&render_pod_spec(&RedisConfig::default(), &public_image("redis:7.0"), &same).unwrap());
    assert_eq!(spec["kubernetesResources"]["secrets"][0]["stringData"]["previous-password"], "");
}

#[test]
fn rendering_refuses_what_it_cannot_render_safely() {
    let image = public_image("redis:7.0");
    let err = |cfg: &RedisConfig, t: &Deployment| render_pod_spec(cfg, &image, t).unwrap_err().to_string();
    let missing = Deployment { password: None, ..topo(1) };
    assert!(err(&RedisConfig::default(), &missing).contains("no password"));
    let weak = Deployment { password: Some("hunter2".into()), ..topo(1) };
    let text = err(&RedisConfig::default(), &weak);
    assert!(text.contains("password must be 16-512") && !text.contains("hunter2"), "{text}");
    let quoted = Deployment { password: Some("has\"quote-and-more-chars".into()), ..topo(1) };
    assert!(!err(&RedisConfig::default(), &quoted).contains("quote-and"));
    let bad_previous = Deployment { previous_password: Some("short".into()), ..topo(1) };
    assert!(err(&RedisConfig::default(), &bad_previous).contains("previous password"));
    assert!(err(&cfg_port(26379), &topo(1)).contains("26379"));
    assert!(err(&cfg_port(0), &topo(1)).contains("port 0"));
    for app in ["", "Redis", "1redis", "redis-", "re dis", "re_dis", "redis;rm", "ré", &"x".repeat(54)] {
        let t = Deployment { app: app.to_owned(), ..topo(1) };
        assert!(err(&RedisConfig::default(), &t).contains("application name"), "{app:?}");
    }
}

#[test]
fn debug_output_hides_passwords() {
    let image = ImageDetails { image_path: "redis".into(), username: "u".into(), password: "hunter2".into() };
    let text = format!("{image:?}");
    assert!(!text.contains("hunter2") && text.contains("<redacted>"), "{text}");
    let text = format!("{:?}", topo(3));
    assert!(!text.contains(PW) && text.contains("<redacted>"), "{text}");
}

// ---- Image credentials ------------------------------------------------------------------------------------

#[test]
fn credentials_are_left_out_when_empty() {
    let yaml = render(6379, &public_image("redis:7.0"));
    let spec = parse(&yaml);
    for c in 0..2 {
        let details = spec["containers"][c]["imageDetails"].as_mapping().unwrap();
        assert_eq!(details.len(), 1, "{yaml}");
    }
    assert!(!yaml.contains("username:"), "{yaml}");

    let user_only = ImageDetails { username: "robot".into(), ..public_image("redis:7.0") };
    let spec = parse(&render(6379, &user_only));
    let details = spec["containers"][0]["imageDetails"].as_mapping().unwrap();
    assert_eq!(details.get("username").and_then(Value::as_str), Some("robot"));
    assert!(!details.contains_key("password"));
}

#[test]
fn credentials_appear_under_image_details_only() {
    let image = ImageDetails {
        image_path: "registry.example.com/redis:7.0".into(),
        username: "robot-user-4f1c".into(),
        password: "s3cr3t-pa55-9d2e".into(),
    };
    let yaml = render(6379, &image);
    let spec = parse(&yaml);
    let details = &spec["containers"][1]["imageDetails"];
    assert_eq!(details["username"].as_str(), Some("robot-user-4f1c"));
    assert_eq!(details["password"].as_str(), Some("s3cr3t-pa55-9d2e"));
    // Once per container: under imageDetails and nowhere else (not in the conf, scripts or Secret).
    assert_eq!(yaml.matches("robot-user-4f1c").count(), 2, "{yaml}");
    assert_eq!(yaml.matches("s3cr3t-pa55-9d2e").count(), 2, "{yaml}");
    let mut without_details = spec.clone();
    for c in 0..2 {
        without_details["containers"][c].as_mapping_mut().unwrap().remove("imageDetails");
    }
    let rest = serde_yaml::to_string(&without_details).unwrap();
    assert!(!rest.contains("robot-user-4f1c") && !rest.contains("s3cr3t-pa55-9d2e"), "{rest}");
}

#[test]
fn credentials_that_need_quoting_round_trip() {
    let image = ImageDetails {
        image_path: "redis:7.0".into(),
        username: "- not: a list".into(),
        password: "p@ss: #word\n\"quoted\" 'and' {braces}".into(),
    };
    let yaml = render(6379, &image);
    assert!(spec_problems(&yaml).is_empty(), "{yaml}");
    let spec = parse(&yaml);
    assert_eq!(spec["containers"][0]["imageDetails"]["username"].as_str(), Some(image.username.as_str()));
    assert_eq!(spec["containers"][0]["imageDetails"]["password"].as_str(), Some(image.password.as_str()));
}

// ---- Golden files -----------------------------------------------------------------------------------------

fn check_golden(name: &str, rendered: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, rendered).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}; run with UPDATE_GOLDEN=1 to create it"));
    assert!(
        golden == rendered,
        "{path} differs from the rendered spec; if the change is intended, run \
         `UPDATE_GOLDEN=1 cargo test` and review the diff.\n--- golden\n{golden}\n--- rendered\n{rendered}"
    );
}

#[test]
fn golden_default_spec() {
    let yaml = render_pod_spec(&cfg_port(6379), &public_image("redis:7.0"), &golden_topo(1)).unwrap();
    check_golden("podspec-default.yaml", &yaml);
}

#[test]
fn golden_port_7000_spec() {
    let yaml = render_pod_spec(&cfg_port(7000), &public_image("redis:7.0"), &golden_topo(1)).unwrap();
    check_golden("podspec-port-7000.yaml", &yaml);
}

#[test]
fn golden_3_units_spec() {
    let yaml = render_pod_spec(&RedisConfig::default(), &public_image("redis:7.0"), &golden_topo(3)).unwrap();
    check_golden("podspec-3-units.yaml", &yaml);
}

#[test]
fn golden_no_auth_spec() {
    let cfg = RedisConfig {
        require_auth: false,
        save: vec![],
        maxmemory: 256 * 1024 * 1024,
        maxmemory_policy: MaxmemoryPolicy::AllkeysLru,
        ..RedisConfig::default()
    };
    let yaml =
        render_pod_spec(&cfg, &public_image("redis:7.0"), &Deployment { password: None, ..golden_topo(3) }).unwrap();
    check_golden("podspec-no-auth.yaml", &yaml);
}

// ---- redis.conf and sentinel.conf -------------------------------------------------------------------------

/// The directives (comments and blank lines dropped), as `(name, value)`.
fn directives(conf: &str) -> Vec<(String, String)> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_owned(), v.trim().to_owned())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn redis_conf_has_the_directives_the_pod_needs() {
    let conf = redis_conf(&cfg_port(7000));
    assert_eq!(
        directives(&conf),
        pairs(&[
            ("bind", "0.0.0.0"),
            ("port", "7000"),
            ("protected-mode", "yes"),
            ("daemonize", "no"),
            ("logfile", "\"\""),
            ("dir", "/data"),
            ("appendonly", "yes"),
            ("appendfsync", "everysec"),
            ("save", "3600 1 300 100 60 10000"),
            ("maxmemory", "0"),
            ("maxmemory-policy", "noeviction"),
            ("replica-read-only", "yes"),
            ("include", "/etc/redis-auth/auth.conf"),
        ])
    );
    assert_eq!(conf, redis_conf(&cfg_port(7000)), "deterministic");
    assert!(conf.ends_with('\n'));

    let other = RedisConfig {
        require_auth: false,
        appendonly: false,
        appendfsync: AppendFsync::No,
        save: vec![SavePoint { seconds: 900, changes: 1 }],
        maxmemory: 1_000_000,
        maxmemory_policy: MaxmemoryPolicy::VolatileTtl,
        ..RedisConfig::default()
    };
    let d = directives(&redis_conf(&other));
    for expected in pairs(&[
        ("protected-mode", "no"),
        ("appendonly", "no"),
        ("appendfsync", "no"),
        ("save", "900 1"),
        ("maxmemory", "1000000"),
        ("maxmemory-policy", "volatile-ttl"),
        ("include", "/etc/redis-auth/auth.conf"),
    ]) {
        assert!(d.contains(&expected), "{expected:?} not in {d:?}");
    }
    let none = RedisConfig { save: vec![], ..RedisConfig::default() };
    assert!(directives(&redis_conf(&none)).contains(&("save".to_owned(), "\"\"".to_owned())));
}

/// Every `@TOKEN@` of the shipped templates is filled, for every config.
#[test]
fn templates_are_filled_completely() {
    for cfg in all_configs() {
        let files = Rendered::new(&cfg, &topo(3), &POD).unwrap().files;
        for (name, text) in files {
            let unfilled: Vec<&str> = text
                .split('@')
                .skip(1)
                .step_by(2)
                .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .collect();
            assert!(unfilled.is_empty(), "{name}: unfilled {unfilled:?}");
        }
    }
}

#[test]
fn sentinel_conf_has_the_static_directives() {
    let conf = render_sentinel_conf(&RedisConfig::default(), &POD);
    assert_eq!(
        directives(&conf),
        pairs(&[
            ("port", "26379"),
            ("bind", "0.0.0.0"),
            ("protected-mode", "yes"),
            ("daemonize", "no"),
            ("logfile", "\"\""),
            ("dir", "/sentinel"),
            ("sentinel", "resolve-hostnames yes"),
            ("sentinel", "announce-hostnames yes"),
        ])
    );
    assert!(render_sentinel_conf(&no_auth(), &POD).contains("\nprotected-mode no\n"));
}

#[test]
fn quorum_is_a_strict_majority() {
    let cases = [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4), (u32::MAX, u32::MAX / 2 + 1)];
    for (units, quorum) in cases {
        assert_eq!(sentinel_quorum(units), quorum, "{units} units");
    }
    let settings = render_settings(&RedisConfig::default(), &topo(5), &POD);
    assert!(settings.contains("\nQUORUM=3\n") && settings.contains("\nUNITS=5\n"), "{settings}");
}

#[test]
fn scripts_are_valid_sh_and_hold_no_secret() {
    for cfg in all_configs() {
        for units in [1, 3] {
            for (name, text) in Rendered::new(&cfg, &topo(units), &POD).unwrap().files {
                if name.ends_with(".sh") {
                    let out = std::process::Command::new("sh").args(["-n", "-c", &text]).output().unwrap();
                    assert!(out.status.success(), "{name}: {}\n{text}", String::from_utf8_lossy(&out.stderr));
                    assert!(!text.contains("HERE"), "{name} still sources a file the pod does not have");
                    assert!(text.contains("\nfind_primary()") && text.contains("\nQUORUM="), "{name}");
                }
                assert!(!text.contains(PW), "{name}");
            }
        }
    }
    // The embedded scripts are the files under src/redis/pod, which `make lint` runs shellcheck on.
    for (name, text) in SCRIPT_SOURCES {
        let on_disk = std::fs::read_to_string(format!("{}/src/redis/pod/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(&on_disk, text);
    }
}

mod pods;
