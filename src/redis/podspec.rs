//! The pod spec the leader sends to `pod-spec-set`, and the redis.conf inside it.
//!
//! The config-changed handler calls [`render_pod_spec`] with a validated [`RedisConfig`] and the oci-image
//! resource's details, and pipes the YAML to `pod-spec-set` on stdin. It calls [`image_version`] for
//! `application-version-set`.
//!
//! The spec is podspec version 3 (reference §5). Juju decodes it strictly and rejects unknown keys, so it is built
//! from typed structs whose field names and order are the output's. The configured port drives everything that
//! depends on it: redis-server's own `port` (in the redis.conf mounted from the spec), the container port (and so
//! the Kubernetes Service), and both probes. Rendering is deterministic, so an unchanged config gives the same
//! bytes, and Juju sees no change.

use serde::Serialize;

use super::config::RedisConfig;

/// The container's name, and the name of its one port.
const CONTAINER_NAME: &str = "redis";
/// Where the redis.conf file set is mounted in the container.
const CONFIG_DIR: &str = "/etc/redis-k8s";
const CONFIG_FILE: &str = "redis.conf";
/// Where redis-server keeps its data (`dir`).
const DATA_DIR: &str = "/data";

/// The image to run, from the oci-image resource (`registrypath`, `username`, `password`).
///
/// Empty `username` and `password` mean a public image; they are left out of the spec.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDetails {
    pub image_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
}

/// Hides the password, so logging an `ImageDetails` never leaks it.
impl std::fmt::Debug for ImageDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let password = if self.password.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ImageDetails")
            .field("image_path", &self.image_path)
            .field("username", &self.username)
            .field("password", &password)
            .finish()
    }
}

#[derive(Serialize)]
struct PodSpec<'a> {
    version: u32,
    containers: Vec<Container<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    name: &'a str,
    image_details: &'a ImageDetails,
    image_pull_policy: &'a str,
    command: Vec<&'a str>,
    args: Vec<String>,
    ports: Vec<Port<'a>>,
    volume_config: Vec<FileSet<'a>>,
    kubernetes: KubernetesSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Port<'a> {
    name: &'a str,
    container_port: u16,
    protocol: &'a str,
}

/// A v3 volumeConfig entry. Exactly one volume source is set.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileSet<'a> {
    name: &'a str,
    mount_path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<File<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    empty_dir: Option<EmptyDir>,
}

#[derive(Serialize)]
struct File<'a> {
    path: &'a str,
    content: String,
}

/// `emptyDir: {}`: a node-local scratch volume with the default medium and no size limit.
#[derive(Serialize)]
struct EmptyDir {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubernetesSpec {
    readiness_probe: Probe,
    liveness_probe: Probe,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    tcp_socket: TcpSocket,
    initial_delay_seconds: u32,
    period_seconds: u32,
    timeout_seconds: u32,
    failure_threshold: u32,
}

#[derive(Serialize)]
struct TcpSocket {
    port: u16,
}

/// Renders the version 3 pod spec for `pod-spec-set`.
///
/// redis-server runs the redis.conf from [`redis_conf`], mounted from the spec at `/etc/redis-k8s/redis.conf`.
/// Credentials appear under `imageDetails` only, and only when non-empty.
///
/// # Errors
///
/// Only if YAML serialisation fails, which these plain structs cannot make it do. It is a `Result` so that
/// rendering never panics.
pub fn render_pod_spec(cfg: &RedisConfig, image: &ImageDetails) -> anyhow::Result<String> {
    let port = cfg.port;
    let spec = PodSpec {
        version: 3,
        containers: vec![Container {
            name: CONTAINER_NAME,
            image_details: image,
            image_pull_policy: "IfNotPresent",
            command: vec!["redis-server"],
            args: vec![format!("{CONFIG_DIR}/{CONFIG_FILE}")],
            ports: vec![Port { name: CONTAINER_NAME, container_port: port, protocol: "TCP" }],
            volume_config: vec![
                FileSet {
                    name: "redis-config",
                    mount_path: CONFIG_DIR,
                    files: Some(vec![File { path: CONFIG_FILE, content: redis_conf(cfg) }]),
                    empty_dir: None,
                },
                FileSet { name: "redis-data", mount_path: DATA_DIR, files: None, empty_dir: Some(EmptyDir {}) },
            ],
            kubernetes: KubernetesSpec {
                // Ready soon after redis-server accepts connections, so the Service routes to it quickly.
                readiness_probe: tcp_probe(port, 1, 5),
                // Restart only a server that has stopped accepting connections for 30 s, after a start-up grace.
                liveness_probe: tcp_probe(port, 15, 10),
            },
        }],
    };
    Ok(serde_yaml::to_string(&spec)?)
}

fn tcp_probe(port: u16, initial_delay_seconds: u32, period_seconds: u32) -> Probe {
    Probe {
        tcp_socket: TcpSocket { port },
        initial_delay_seconds,
        period_seconds,
        timeout_seconds: 2,
        failure_threshold: 3,
    }
}

/// The redis.conf redis-server runs with: listen on the configured port on all IPv4 interfaces, stay in the
/// foreground, log to stdout, keep data in `/data`.
pub fn redis_conf(cfg: &RedisConfig) -> String {
    format!(
        r#"# redis.conf written by the redis-k8s charm. Do not edit it in the pod: the charm
# rewrites it whenever the application's config changes.

# Listen on every IPv4 interface of the pod. Clients reach the pod through the
# Kubernetes Service, which forwards to the pod's IP on this port.
bind 0.0.0.0
port {port}

# Protected mode refuses clients from other hosts while no password is set.
# The charm does not set a password yet (authentication comes in a later
# release), so protected mode is off to let clients in the cluster connect.
protected-mode no

# redis-server is the container's main process: stay in the foreground.
daemonize no

# Log to stdout, so that `kubectl logs` and the cluster's log collection see it.
logfile ""

# Keep RDB and AOF files on the redis-data volume.
dir {DATA_DIR}
"#,
        port = cfg.port
    )
}

/// The workload version for `application-version-set`, taken from the image reference.
///
/// The tag if there is one (`redis:7.0` → `7.0`; a `:` in the registry host is not a tag), else the digest's
/// algorithm and first 12 characters (`redis@sha256:abcdef…` → `sha256:abcdef012345`), else `latest`, as the
/// container runtime would pull.
pub fn image_version(image_path: &str) -> String {
    let reference = image_path.trim();
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let last_component = name.rsplit('/').next().unwrap_or(name);
    if let Some((_, tag)) = last_component.split_once(':')
        && !tag.is_empty()
    {
        return tag.to_owned();
    }
    match digest {
        Some(digest) if !digest.is_empty() => match digest.split_once(':') {
            Some((algorithm, hex)) => format!("{algorithm}:{}", hex.chars().take(12).collect::<String>()),
            None => digest.chars().take(12).collect(),
        },
        _ => "latest".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::{Mapping, Value};
    use std::collections::BTreeSet;

    fn public_image(path: &str) -> ImageDetails {
        ImageDetails { image_path: path.to_owned(), username: String::new(), password: String::new() }
    }

    fn render(port: u16, image: &ImageDetails) -> String {
        render_pod_spec(&RedisConfig { port, ..RedisConfig::default() }, image).unwrap()
    }

    // ---- The rules Juju (strict v3 decoding, §5.1–5.4) and Kubernetes enforce ------------------------------

    const TOP_KEYS: &[&str] = &[
        "version",
        "containers",
        "service",
        "configmaps",
        "omitServiceFrontend",
        "serviceAccount",
        "kubernetesResources",
    ];
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

    /// Collects every rule the spec breaks; an empty list means Juju and Kubernetes would accept it.
    struct Checker {
        problems: Vec<String>,
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

        fn check_probe(&mut self, at: &str, probe: &Value, container_port: Option<u64>) {
            let Some(map) = self.map(at, probe, PROBE_KEYS) else { return };
            let Some(tcp) = map.get("tcpSocket") else { return self.fail(format!("{at}: no tcpSocket")) };
            self.map(&format!("{at}.tcpSocket"), tcp, TCP_SOCKET_KEYS);
            if tcp["port"].as_u64() != container_port {
                self.fail(format!("{at}: probe port {:?} != container port {container_port:?}", tcp["port"]));
            }
            for key in ["initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"] {
                if map.get(key).is_some_and(|v| v.as_u64().is_none()) {
                    self.fail(format!("{at}.{key}: not a non-negative integer"));
                }
            }
        }

        fn check_container(&mut self, at: &str, container: &Value) {
            let Some(map) = self.map(at, container, CONTAINER_KEYS) else { return };
            match map.get("name").and_then(Value::as_str) {
                Some(name) if is_dns1123_label(name) => {}
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

            let ports = self.seq(&format!("{at}.ports"), &map["ports"]);
            if ports.is_empty() {
                self.fail(format!("{at}: at least one port is required for the Service"));
            }
            let mut container_port = None;
            for (i, port) in ports.iter().enumerate() {
                let pat = format!("{at}.ports[{i}]");
                let Some(p) = self.map(&pat, port, PORT_KEYS) else { continue };
                match p.get("name").and_then(Value::as_str) {
                    Some(name) if is_port_name(name) => {}
                    other => self.fail(format!("{pat}.name: not a valid port name: {other:?}")),
                }
                if p.get("protocol").and_then(Value::as_str) != Some("TCP") {
                    self.fail(format!("{pat}.protocol: not TCP: {:?}", p.get("protocol")));
                }
                match p.get("containerPort").and_then(Value::as_u64) {
                    Some(n) if (1..=65535).contains(&n) => container_port = container_port.or(Some(n)),
                    other => self.fail(format!("{pat}.containerPort: not 1-65535: {other:?}")),
                }
            }

            let mut mount_paths = BTreeSet::new();
            let mut names = BTreeSet::new();
            for (i, set) in self.seq(&format!("{at}.volumeConfig"), &map["volumeConfig"]).iter().enumerate() {
                let sat = format!("{at}.volumeConfig[{i}]");
                let Some(s) = self.map(&sat, set, FILESET_KEYS) else { continue };
                match s.get("name").and_then(Value::as_str) {
                    Some(name) if is_dns1123_label(name) => {
                        if !names.insert(name.to_owned()) {
                            self.fail(format!("{sat}: duplicated file set name {name}"));
                        }
                    }
                    other => self.fail(format!("{sat}.name: not a DNS-1123 label: {other:?}")),
                }
                match s.get("mountPath").and_then(Value::as_str) {
                    Some(path) if path.starts_with('/') => {
                        if !mount_paths.insert(path.to_owned()) {
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
                    for (j, file) in self.seq(&format!("{sat}.files"), files).iter().enumerate() {
                        let fat = format!("{sat}.files[{j}]");
                        if let Some(f) = self.map(&fat, file, FILE_KEYS) {
                            if f.get("path").and_then(Value::as_str).is_none_or(str::is_empty) {
                                self.fail(format!("{fat}: Path is missing"));
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
            }

            if let Some(k8s) = map.get("kubernetes")
                && let Some(k) = self.map(&format!("{at}.kubernetes"), k8s, KUBERNETES_KEYS)
            {
                for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                    if let Some(p) = k.get(probe) {
                        self.check_probe(&format!("{at}.kubernetes.{probe}"), p, container_port);
                    }
                }
            }
        }
    }

    fn spec_problems(yaml: &str) -> Vec<String> {
        let mut c = Checker { problems: Vec::new() };
        let spec: Value = match serde_yaml::from_str(yaml) {
            Ok(v) => v,
            Err(e) => return vec![format!("not YAML: {e}")],
        };
        if let Some(top) = c.map("spec", &spec, TOP_KEYS) {
            if top.get("version").and_then(Value::as_u64) != Some(3) {
                c.fail(format!("version is not 3: {:?}", top.get("version")));
            }
            let containers = c.seq("containers", &spec["containers"]);
            if containers.is_empty() {
                c.fail("require at least one container spec".to_owned());
            }
            for (i, container) in containers.iter().enumerate() {
                c.check_container(&format!("containers[{i}]"), container);
            }
        }
        c.problems
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
        for port in [1, 2, 80, 1023, 6379, 7000, 16379, 26379, 65534, 65535] {
            for image in &images {
                let yaml = render(port, image);
                let problems = spec_problems(&yaml);
                assert!(problems.is_empty(), "port {port}, {image:?}: {problems:#?}\n{yaml}");
                let spec: Value = serde_yaml::from_str(&yaml).unwrap();
                let c = &spec["containers"][0];
                assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port.into()));
                assert_eq!(c["kubernetes"]["readinessProbe"]["tcpSocket"]["port"].as_u64(), Some(port.into()));
                assert_eq!(c["kubernetes"]["livenessProbe"]["tcpSocket"]["port"].as_u64(), Some(port.into()));
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
            ("protocol: TCP", "protocol: tcp"),
            ("containerPort: 6379", "containerPort: 70000"),
            ("- name: redis\n    containerPort", "- name: redis-port-too-long\n    containerPort"),
            ("imagePullPolicy: IfNotPresent", "imagePullPolicy: IfNotPresent\n  bogusKey: 1"),
            ("mountPath: /data", "mountPath: /etc/redis-k8s"),
            ("name: redis-data", "name: redis-config"),
            ("emptyDir: {}", "emptyDir: {}\n    hostPath: {path: /tmp}"),
            (
                "  livenessProbe:\n      tcpSocket:\n        port: 6379",
                "  livenessProbe:\n      tcpSocket:\n        port: 6380",
            ),
        ];
        for (from, to) in broken {
            assert!(good.contains(from), "golden text changed; update this test: {from:?}");
            let bad = good.replacen(from, to, 1);
            assert!(!spec_problems(&bad).is_empty(), "not caught: {from:?} -> {to:?}\n{bad}");
        }
    }

    #[test]
    fn spec_has_the_expected_tree() {
        let yaml = render(7000, &public_image("redis:7.0"));
        let spec: Value = serde_yaml::from_str(&yaml).unwrap();
        let expected: Value = serde_yaml::from_str(&format!(
            r#"
version: 3
containers:
- name: redis
  imageDetails:
    imagePath: redis:7.0
  imagePullPolicy: IfNotPresent
  command: [redis-server]
  args: [/etc/redis-k8s/redis.conf]
  ports:
  - {{name: redis, containerPort: 7000, protocol: TCP}}
  volumeConfig:
  - name: redis-config
    mountPath: /etc/redis-k8s
    files:
    - path: redis.conf
      content: {content}
  - name: redis-data
    mountPath: /data
    emptyDir: {{}}
  kubernetes:
    readinessProbe:
      tcpSocket: {{port: 7000}}
      initialDelaySeconds: 1
      periodSeconds: 5
      timeoutSeconds: 2
      failureThreshold: 3
    livenessProbe:
      tcpSocket: {{port: 7000}}
      initialDelaySeconds: 15
      periodSeconds: 10
      timeoutSeconds: 2
      failureThreshold: 3
"#,
            content =
                serde_json::to_string(&redis_conf(&RedisConfig { port: 7000, ..RedisConfig::default() })).unwrap()
        ))
        .unwrap();
        assert_eq!(spec, expected, "{yaml}");
        // The conf is a readable block scalar, not one escaped line.
        assert!(yaml.contains("content: |\n"), "{yaml}");
    }

    #[test]
    fn rendering_is_deterministic() {
        let image = ImageDetails { image_path: "redis:7.0".into(), username: "u".into(), password: "p".into() };
        let first = render(6379, &image);
        for _ in 0..5 {
            assert_eq!(render(6379, &image), first);
        }
        assert_ne!(render(6380, &image), first);
    }

    // ---- Credentials ------------------------------------------------------------------------------------------

    #[test]
    fn credentials_are_left_out_when_empty() {
        let yaml = render(6379, &public_image("redis:7.0"));
        let spec: Value = serde_yaml::from_str(&yaml).unwrap();
        let details = spec["containers"][0]["imageDetails"].as_mapping().unwrap();
        assert_eq!(details.len(), 1, "{yaml}");
        assert!(!yaml.contains("username:") && !yaml.contains("password:"), "{yaml}");

        let user_only = ImageDetails { username: "robot".into(), ..public_image("redis:7.0") };
        let spec: Value = serde_yaml::from_str(&render(6379, &user_only)).unwrap();
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
        let spec: Value = serde_yaml::from_str(&yaml).unwrap();
        let details = &spec["containers"][0]["imageDetails"];
        assert_eq!(details["username"].as_str(), Some("robot-user-4f1c"));
        assert_eq!(details["password"].as_str(), Some("s3cr3t-pa55-9d2e"));
        // Once each in the whole text: under imageDetails and nowhere else (not in the conf, args or env).
        assert_eq!(yaml.matches("robot-user-4f1c").count(), 1, "{yaml}");
        assert_eq!(yaml.matches("s3cr3t-pa55-9d2e").count(), 1, "{yaml}");
        let mut without_details = spec.clone();
        without_details["containers"][0].as_mapping_mut().unwrap().remove("imageDetails");
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
        let spec: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(spec["containers"][0]["imageDetails"]["username"].as_str(), Some(image.username.as_str()));
        assert_eq!(spec["containers"][0]["imageDetails"]["password"].as_str(), Some(image.password.as_str()));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let image = ImageDetails { image_path: "redis".into(), username: "u".into(), password: "hunter2".into() };
        let text = format!("{image:?}");
        assert!(!text.contains("hunter2") && text.contains("<redacted>"), "{text}");
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
        check_golden("podspec-default.yaml", &render(6379, &public_image("redis:7.0")));
    }

    #[test]
    fn golden_port_7000_spec() {
        check_golden("podspec-port-7000.yaml", &render(7000, &public_image("redis:7.0")));
    }

    // ---- redis.conf ------------------------------------------------------------------------------------------

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

    #[test]
    fn redis_conf_has_the_directives_the_pod_needs() {
        let conf = redis_conf(&RedisConfig { port: 7000, ..RedisConfig::default() });
        let d = directives(&conf);
        let expected: Vec<(String, String)> = [
            ("bind", "0.0.0.0"),
            ("port", "7000"),
            ("protected-mode", "no"),
            ("daemonize", "no"),
            ("logfile", "\"\""),
            ("dir", "/data"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(d, expected);
        assert_eq!(conf, redis_conf(&RedisConfig { port: 7000, ..RedisConfig::default() }), "deterministic");
        assert!(conf.ends_with('\n'));
    }

    /// Kills redis-server when the test ends, even if it fails.
    struct KillOnDrop(std::process::Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn free_loopback_port() -> u16 {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap().port()
    }

    /// Sends one inline command and returns the raw reply (RESP), read until it looks complete.
    fn redis_command(port: u16, command: &str) -> String {
        use std::io::{Read, Write};
        use std::time::Duration;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).unwrap();
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            let done = match text.chars().next() {
                Some('*') => text.matches("\r\n").count() >= 5, // a two-element array of bulk strings
                _ => text.ends_with("\r\n"),
            };
            if n == 0 || done {
                return text.into_owned();
            }
        }
    }

    /// Runs the real redis-server on the rendered conf.
    ///
    /// The file is used as rendered, port included, with one exception: `dir /data` is pointed at a temp dir,
    /// because `/data` exists only in the pod and redis-server refuses a missing `dir`. `--bind 127.0.0.1` on
    /// the command line (applied after the file) keeps the test server off the host's other interfaces; the
    /// file's own `bind 0.0.0.0` line is still parsed and checked.
    #[test]
    fn redis_server_runs_the_rendered_conf_on_the_configured_port() {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};

        let port = free_loopback_port();
        let conf = redis_conf(&RedisConfig { port, ..RedisConfig::default() });
        let dir = std::env::temp_dir().join(format!("redis-k8s-conf-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data_line = format!("dir {DATA_DIR}\n");
        assert_eq!(conf.matches(&data_line).count(), 1, "the conf should set dir once:\n{conf}");
        let test_conf = conf.replace(&data_line, &format!("dir {}\n", dir.display()));
        let conf_path = dir.join(CONFIG_FILE);
        std::fs::write(&conf_path, &test_conf).unwrap();

        let child = Command::new("redis-server")
            .arg(&conf_path)
            .args(["--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): this test needs redis-server 7.0 on PATH (apt-get install redis-server)")
            });
        let mut server = KillOnDrop(child);

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = server.0.try_wait().unwrap() {
                let mut out = String::new();
                let mut err = String::new();
                use std::io::Read;
                if let Some(mut s) = server.0.stdout.take() {
                    let _ = s.read_to_string(&mut out);
                }
                if let Some(mut s) = server.0.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                panic!("redis-server exited with {status} on the rendered conf:\n{out}{err}\n--- conf\n{test_conf}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not listen on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }

        assert_eq!(redis_command(port, "PING"), "+PONG\r\n");
        let config_get = |name: &str| redis_command(port, &format!("CONFIG GET {name}"));
        assert!(config_get("port").contains(&format!("\r\n{port}\r\n")), "{}", config_get("port"));
        assert!(config_get("protected-mode").ends_with("\r\nno\r\n"), "{}", config_get("protected-mode"));
        assert!(config_get("daemonize").ends_with("\r\nno\r\n"), "{}", config_get("daemonize"));
        assert!(config_get("logfile").ends_with("$0\r\n\r\n"), "logfile should be stdout: {}", config_get("logfile"));

        // `logfile ""` sends the log to stdout, where Kubernetes collects it.
        let _ = server.0.kill();
        let _ = server.0.wait();
        let mut out = String::new();
        if let Some(mut s) = server.0.stdout.take() {
            use std::io::Read;
            let _ = s.read_to_string(&mut out);
        }
        assert!(out.contains("Ready to accept connections"), "redis-server logged nothing on stdout:\n{out}");
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    // ---- image_version ---------------------------------------------------------------------------------------

    #[test]
    fn image_version_reads_the_tag_or_digest() {
        let cases = [
            ("redis:7.0", "7.0"),
            ("redis", "latest"),
            ("library/redis", "latest"),
            ("docker.io/library/redis:7.2.4-alpine", "7.2.4-alpine"),
            ("registry.example.com:5000/library/redis:7.2.4", "7.2.4"),
            ("registry.example.com:5000/library/redis", "latest"),
            ("localhost:5000/redis", "latest"),
            ("redis@sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", "sha256:abcdef012345"),
            ("registry.example.com:5000/redis@sha256:0123456789abcdef", "sha256:0123456789ab"),
            ("redis@sha256:abc", "sha256:abc"),
            ("redis:7.0@sha256:abcdef0123456789", "7.0"),
            ("  redis:7.0\n", "7.0"),
            ("redis:", "latest"),
            ("redis@", "latest"),
            ("", "latest"),
        ];
        for (path, version) in cases {
            assert_eq!(image_version(path), version, "image_version({path:?})");
        }
    }

    #[test]
    fn image_version_never_panics_on_odd_input() {
        for path in
            ["@", ":", "/", "::", "@@", "a@b@c", "/:@", "🦀:🦀🦀", "x@sha256:🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀", "a/b/c/"]
        {
            let _ = image_version(path);
        }
    }
}
