//! The pod spec the leader sends to `pod-spec-set`, and the files inside it.
//!
//! The configure handler calls [`render_pod_spec`] with a validated [`RedisConfig`], the oci-image resource's
//! details and the [`Topology`], and pipes the YAML to `pod-spec-set` on stdin. It calls [`image_version`] for
//! `application-version-set`.
//!
//! The spec is podspec version 3 (reference §5). Juju decodes it strictly and rejects unknown keys, so it is built
//! from typed structs whose field names and order are the output's. Rendering is deterministic, so an unchanged
//! config and topology give the same bytes, and Juju sees no change.
//!
//! **What restarts pods, and what does not.** Juju turns each file set into a ConfigMap referenced by name and
//! updates the Secret in place; Kubernetes restarts pods only when the pod template (containers, their images,
//! commands, ports, probes and mounts, and the volumes) changes. So the template here depends on nothing but the
//! image and the `port` option: every other option, the password, the unit count and the Sentinel quorum are file
//! contents, which running pods see without a restart (the leader applies them live, see
//! [`crate::redis::live`]) and restarted pods read at start. The volume list never depends on the config either:
//! the auth Secret is always there (empty when `require-auth` is off), so turning auth on later needs no new
//! volume, which Juju before 2.9.30 could not add to a running StatefulSet.
//!
//! **What runs in each pod.** The charm declares storage, so the workload is a StatefulSet: pods `<app>-<n>`,
//! reachable as `<app>-<n>.<app>-endpoints` through the headless service Juju creates. Every pod runs two containers
//! from the same image, whose commands are shell scripts shipped in the ConfigMap (real files under
//! `src/redis/pod/`, embedded at build time, with this deployment's values in a generated `settings.sh`):
//!
//! - `redis` runs `start-redis.sh`: it finds the current primary and runs `redis-server redis.conf` as the primary or
//!   a replica, follows the primary the Sentinels name if its own is lost, and hands the primary over to a replica
//!   when the pod is stopped; `start-redis.sh ready PORT` is its readiness probe, with the template's own port;
//! - `sentinel` runs `start-sentinel.sh`, which writes the Sentinel's config to a writable emptyDir and execs
//!   Sentinel on port 26379, in every pod, even with one unit.
//!
//! **The password** is rendered into one place only: the Kubernetes Secret `<app>-auth` under
//! `kubernetesResources.secrets`, mounted read-only at `/etc/redis-auth` in both containers. redis.conf `include`s
//! `auth.conf` from it; the scripts read the `password` (and, during a rotation, `previous-password`) file and hand
//! it to `redis-cli` through `REDISCLI_AUTH` and to Sentinel through its config file, never a command line.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Serialize;

use super::config::{RedisConfig, SENTINEL_PORT, validate_password};

/// The Redis container's name, and the name of its port.
const REDIS_CONTAINER: &str = "redis";
/// The Sentinel container's name, and the name of its port.
const SENTINEL_CONTAINER: &str = "sentinel";
/// The file set (and so the ConfigMap) holding the configs and scripts.
const CONFIG_VOLUME: &str = "redis-config";
/// The file set mounting the auth Secret.
const AUTH_VOLUME: &str = "redis-auth";
/// The Sentinel's writable scratch directory.
const SENTINEL_VOLUME: &str = "sentinel-data";

/// The config volume's files. This list is part of the pod template (Juju lists each file in the volume's
/// `items`), and Juju before 2.9.30 never updates a running StatefulSet's volumes, so a file added later would
/// never reach the pods there: the list must stay these four names for good.
const REDIS_CONF: &str = "redis.conf";
const SENTINEL_CONF: &str = "sentinel.conf";
const START_REDIS: &str = "start-redis.sh";
const START_SENTINEL: &str = "start-sentinel.sh";
/// The scripts' shared functions and values, written into each script where it sources them.
const COMMON_SH: &str = "common.sh";
const HERE_LINE: &str = "HERE=\"$(dirname \"$0\")\"\n";
const SOURCE_SETTINGS: &str = ". \"$HERE/settings.sh\"\n";
const SOURCE_COMMON: &str = ". \"$HERE/common.sh\"\n";
/// The keys of the auth Secret, and so the file names under the auth mount. All three are always there.
const AUTH_CONF: &str = "auth.conf";
const PASSWORD_FILE: &str = "password";
const PREVIOUS_PASSWORD_FILE: &str = "previous-password";
/// Secret files are readable by their owner (root) only: 0400.
const SECRET_MODE: u32 = 0o400;

/// The shipped files, from `src/redis/pod/`.
const REDIS_CONF_IN: &str = include_str!("pod/redis.conf.in");
const SENTINEL_CONF_IN: &str = include_str!("pod/sentinel.conf.in");
const COMMON_SH_TEXT: &str = include_str!("pod/common.sh");
const START_REDIS_TEXT: &str = include_str!("pod/start-redis.sh");
const START_SENTINEL_TEXT: &str = include_str!("pod/start-sentinel.sh");

/// The shell sources under `src/redis/pod/`, by file name (what `make lint` runs shellcheck on).
pub const SCRIPT_SOURCES: &[(&str, &str)] =
    &[(COMMON_SH, COMMON_SH_TEXT), (START_REDIS, START_REDIS_TEXT), (START_SENTINEL, START_SENTINEL_TEXT)];

/// Sentinel timings, as in the Canonical charm (anchors §1.6).
const DOWN_AFTER_MS: u32 = 5000;
const FAILOVER_TIMEOUT_MS: u32 = 30000;
const PARALLEL_SYNCS: u32 = 1;
/// How long a script waits for one `redis-cli` answer.
const QUERY_TIMEOUT_S: u32 = 3;
/// How long the Sentinel start script waits for the primary's name to resolve before starting anyway.
const RESOLVE_WAIT_S: u32 = 20;
/// How long a stopping primary waits for a replica to catch up; its whole hand-over (catching up, a Sentinel
/// accepting the failover, the new primary named) takes at most twice this, inside Kubernetes' default 30 s
/// termination grace period.
const HANDOVER_WAIT_S: u32 = 10;
/// How long a restarting pod that the Sentinels still name as the primary on its old port waits for their
/// failover (down-after plus an election, a few seconds) before starting as the primary; inside the liveness
/// probe's 15 s delay and three 10 s periods.
const FAILOVER_WAIT_S: u32 = 20;
/// How long a starting pod keeps asking its peers while one of them is there but does not answer in time (an
/// overloaded node), before it takes ordinal 0 as the primary; inside the liveness probes' start-up grace.
const DISCOVERY_WAIT_S: u32 = 10;
/// How often a running pod checks its replica link, and how many checks in a row find it down before the pod
/// follows the primary the Sentinels name instead (longer than a Sentinel failover's reconfiguration of replicas).
const WATCH_S: u32 = 3;
const LINK_DOWN_CHECKS: u32 = 3;

/// Where things live in the pod. Tests render the same files with their own layout, to run them on this machine.
#[derive(Debug, Clone, Copy)]
struct Layout<'a> {
    config_dir: &'a str,
    auth_dir: &'a str,
    data_dir: &'a str,
    sentinel_dir: &'a str,
    /// The address redis-server and Sentinel listen on.
    bind: &'a str,
    sentinel_port: u16,
}

const POD: Layout<'static> = Layout {
    config_dir: "/etc/redis-k8s",
    auth_dir: "/etc/redis-auth",
    data_dir: "/data",
    sentinel_dir: "/sentinel",
    bind: "0.0.0.0",
    sentinel_port: SENTINEL_PORT,
};

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

/// The deployment the spec is for: what the config alone does not say.
#[derive(Clone, PartialEq, Eq)]
pub struct Topology {
    /// The Juju application name (`JUJU_UNIT_NAME` up to the `/`). Pods are `<app>-<n>`, the headless service is
    /// `<app>-endpoints`, the Sentinel master name is `<app>`.
    pub app: String,
    /// The number of units (pods), this one included. Sets the Sentinel quorum (⌊units/2⌋+1) and which peers the
    /// start scripts ask; 0 is treated as 1.
    pub units: u32,
    /// The password in force: the `password` option if set, else the one the leader generated. Required when
    /// `require_auth` is on, ignored otherwise.
    pub password: Option<String>,
    /// During a password rotation, the password being replaced: still accepted until every unit has handed the
    /// new one to its clients.
    pub previous_password: Option<String>,
}

/// Hides the passwords, so logging a `Topology` never leaks them.
impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("app", &self.app)
            .field("units", &self.units)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("previous_password", &self.previous_password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The Sentinel quorum for `units` pods: a strict majority, ⌊units/2⌋+1 (1 for 0 or 1 unit).
pub fn sentinel_quorum(units: u32) -> u32 {
    units.max(1) / 2 + 1
}

/// The stable DNS name of pod `<app>-<ordinal>` inside the model's namespace.
pub fn pod_host(app: &str, ordinal: u32) -> String {
    format!("{app}-{ordinal}.{app}-endpoints")
}

/// `host:26379` of every pod's Sentinel.
pub fn sentinel_addresses(app: &str, units: u32) -> Vec<String> {
    (0..units.max(1)).map(|n| format!("{}:{SENTINEL_PORT}", pod_host(app, n))).collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec<'a> {
    version: u32,
    containers: Vec<Container<'a>>,
    kubernetes_resources: KubernetesResources,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    name: &'a str,
    image_details: &'a ImageDetails,
    image_pull_policy: &'a str,
    command: Vec<String>,
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
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct FileSet<'a> {
    name: &'a str,
    mount_path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<File<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    empty_dir: Option<EmptyDir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<SecretVolume>,
}

#[derive(Serialize, Clone)]
struct File<'a> {
    path: &'a str,
    content: String,
}

/// `emptyDir: {}`: a node-local scratch volume with the default medium and no size limit.
#[derive(Serialize, Clone)]
struct EmptyDir {}

/// A Secret defined in this spec, mounted as files named after its keys.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct SecretVolume {
    name: String,
    default_mode: u32,
}

#[derive(Serialize)]
struct KubernetesResources {
    secrets: Vec<Secret>,
}

/// Juju's `K8sSecret`: name, type, annotations, data, stringData.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Secret {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    string_data: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubernetesSpec {
    readiness_probe: Probe,
    liveness_probe: Probe,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<ExecAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp_socket: Option<TcpSocket>,
    initial_delay_seconds: u32,
    period_seconds: u32,
    timeout_seconds: u32,
    failure_threshold: u32,
}

#[derive(Serialize)]
struct ExecAction {
    command: Vec<String>,
}

#[derive(Serialize)]
struct TcpSocket {
    port: u16,
}

/// Everything rendered for one deployment, checked: the config volume's files and the auth Secret's data.
struct Rendered {
    /// `(file name, content)`, in the order the file set lists them.
    files: Vec<(&'static str, String)>,
    /// The auth Secret's data: `auth.conf`, `password`, `previous-password`.
    auth: BTreeMap<&'static str, String>,
}

impl Rendered {
    fn new(cfg: &RedisConfig, topo: &Topology, layout: &Layout<'_>) -> anyhow::Result<Rendered> {
        check_app_name(&topo.app)?;
        if cfg.port == 0 || cfg.port == layout.sentinel_port || cfg.port == SENTINEL_PORT {
            bail!("port {} cannot be used: it is 0 or Sentinel's port", cfg.port);
        }
        let auth = if cfg.require_auth {
            let Some(password) = topo.password.as_deref() else {
                bail!("authentication is on but no password was given to render the pod spec");
            };
            validate_password(password).map_err(|problem| anyhow::anyhow!("the password {problem}"))?;
            let previous = topo.previous_password.as_deref().filter(|p| !p.is_empty() && *p != password);
            if let Some(previous) = previous {
                validate_password(previous).map_err(|problem| anyhow::anyhow!("the previous password {problem}"))?;
            }
            BTreeMap::from([
                (AUTH_CONF, auth_conf(Some(password), previous)),
                (PASSWORD_FILE, password.to_owned()),
                (PREVIOUS_PASSWORD_FILE, previous.unwrap_or_default().to_owned()),
            ])
        } else {
            BTreeMap::from([
                (AUTH_CONF, auth_conf(None, None)),
                (PASSWORD_FILE, String::new()),
                (PREVIOUS_PASSWORD_FILE, String::new()),
            ])
        };
        let settings = render_settings(cfg, topo, layout);
        let files = vec![
            (REDIS_CONF, render_redis_conf(cfg, layout)),
            (SENTINEL_CONF, render_sentinel_conf(cfg, layout)),
            (START_REDIS, inline_script(START_REDIS_TEXT, &settings)),
            (START_SENTINEL, inline_script(START_SENTINEL_TEXT, &settings)),
        ];
        Ok(Rendered { files, auth })
    }
}

/// Checks that the application name makes valid Kubernetes names (`<app>-endpoints` must be a DNS-1035 label of
/// at most 63 characters) and is safe in shell scripts and config files unquoted.
fn check_app_name(app: &str) -> anyhow::Result<()> {
    let b = app.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63 - "-endpoints".len()
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if !ok {
        bail!(
            "application name {app:?} cannot name Kubernetes objects: it must be 1-53 characters of a-z, 0-9 and -, \
             starting with a letter and not ending with -"
        );
    }
    Ok(())
}

/// Renders the version 3 pod spec for `pod-spec-set`.
///
/// # Errors
///
/// If the topology cannot be rendered safely: `cfg.require_auth` without a valid `topo.password`, an application
/// name Kubernetes would reject, or `cfg.port` equal to Sentinel's port (which [`RedisConfig::from_juju`] already
/// refuses). Error messages never contain the password.
pub fn render_pod_spec(cfg: &RedisConfig, image: &ImageDetails, topo: &Topology) -> anyhow::Result<String> {
    let rendered = Rendered::new(cfg, topo, &POD)?;
    let secret_name = format!("{}-auth", topo.app);

    let config_volume = FileSet {
        name: CONFIG_VOLUME,
        mount_path: POD.config_dir,
        files: Some(rendered.files.into_iter().map(|(path, content)| File { path, content }).collect()),
        empty_dir: None,
        secret: None,
    };
    let auth_volume = FileSet {
        name: AUTH_VOLUME,
        mount_path: POD.auth_dir,
        files: None,
        empty_dir: None,
        secret: Some(SecretVolume { name: secret_name.clone(), default_mode: SECRET_MODE }),
    };
    let sentinel_volume = FileSet {
        name: SENTINEL_VOLUME,
        mount_path: POD.sentinel_dir,
        files: None,
        empty_dir: Some(EmptyDir {}),
        secret: None,
    };
    let script = |name: &str| vec!["sh".to_owned(), format!("{}/{name}", POD.config_dir)];

    let spec = PodSpec {
        version: 3,
        containers: vec![
            Container {
                name: REDIS_CONTAINER,
                image_details: image,
                image_pull_policy: "IfNotPresent",
                command: script(START_REDIS),
                ports: vec![Port { name: REDIS_CONTAINER, container_port: cfg.port, protocol: "TCP" }],
                volume_config: vec![config_volume.clone(), auth_volume.clone()],
                kubernetes: KubernetesSpec {
                    // Ready once it serves what clients expect: the primary, or a replica linked to it. A rolling
                    // restart then moves on only once the restarted replica has synced.
                    readiness_probe: Probe {
                        exec: Some(ExecAction {
                            command: vec![
                                "sh".to_owned(),
                                format!("{}/{START_REDIS}", POD.config_dir),
                                "ready".to_owned(),
                                // The template's own port: the refreshed files may already name the next one.
                                cfg.port.to_string(),
                            ],
                        }),
                        tcp_socket: None,
                        initial_delay_seconds: 1,
                        period_seconds: 5,
                        timeout_seconds: QUERY_TIMEOUT_S + 2,
                        failure_threshold: 3,
                    },
                    // Restart only a server that has stopped accepting connections for 30 s, after a start-up grace
                    // that covers asking the peer Sentinels (3 s each).
                    liveness_probe: tcp_probe(cfg.port, 15, 10),
                },
            },
            Container {
                name: SENTINEL_CONTAINER,
                image_details: image,
                image_pull_policy: "IfNotPresent",
                command: script(START_SENTINEL),
                ports: vec![Port { name: SENTINEL_CONTAINER, container_port: SENTINEL_PORT, protocol: "TCP" }],
                volume_config: vec![config_volume, auth_volume, sentinel_volume],
                kubernetes: KubernetesSpec {
                    readiness_probe: tcp_probe(SENTINEL_PORT, 1, 5),
                    // A longer grace: the script may also wait up to 20 s for the primary's DNS name.
                    liveness_probe: tcp_probe(SENTINEL_PORT, 30, 10),
                },
            },
        ],
        kubernetes_resources: KubernetesResources {
            secrets: vec![Secret { name: secret_name, kind: "Opaque", string_data: rendered.auth }],
        },
    };
    serde_yaml::to_string(&spec).context("cannot serialise the pod spec")
}

fn tcp_probe(port: u16, initial_delay_seconds: u32, period_seconds: u32) -> Probe {
    Probe {
        exec: None,
        tcp_socket: Some(TcpSocket { port }),
        initial_delay_seconds,
        period_seconds,
        timeout_seconds: 2,
        failure_threshold: 3,
    }
}

/// The `auth.conf` in the Secret, included by redis.conf: the default user's password(s) (the current one, and
/// during a rotation the one it replaces) and the password replicas use towards the primary. Without a password
/// the default user needs none.
fn auth_conf(password: Option<&str>, previous: Option<&str>) -> String {
    match (password, previous) {
        (Some(p), Some(q)) => format!("user default on resetpass >{p} >{q} ~* &* +@all\nmasterauth {p}\n"),
        (Some(p), None) => format!("user default on resetpass >{p} ~* &* +@all\nmasterauth {p}\n"),
        (None, _) => "user default on nopass ~* &* +@all\n".to_owned(),
    }
}

/// The redis.conf redis-server runs with in the pod.
pub fn redis_conf(cfg: &RedisConfig) -> String {
    render_redis_conf(cfg, &POD)
}

fn yes_no(on: bool) -> &'static str {
    if on { "yes" } else { "no" }
}

/// Replaces each `@NAME@` in `template` with its value (the tests check that none is left unfilled).
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("@{name}@"), value);
    }
    out
}

/// The `save` directive's value: `seconds changes` pairs, or `""` for none.
pub fn save_value(cfg: &RedisConfig) -> String {
    cfg.save.iter().map(|p| format!("{} {}", p.seconds, p.changes)).collect::<Vec<_>>().join(" ")
}

fn render_redis_conf(cfg: &RedisConfig, layout: &Layout<'_>) -> String {
    let save = if cfg.save.is_empty() { "\"\"".to_owned() } else { save_value(cfg) };
    fill(
        REDIS_CONF_IN,
        &[
            ("BIND", layout.bind.to_owned()),
            ("PORT", cfg.port.to_string()),
            ("PROTECTED_MODE", yes_no(cfg.require_auth).to_owned()),
            ("DATA_DIR", layout.data_dir.to_owned()),
            ("APPENDONLY", yes_no(cfg.appendonly).to_owned()),
            ("APPENDFSYNC", cfg.appendfsync.as_str().to_owned()),
            ("SAVE", save),
            ("MAXMEMORY", cfg.maxmemory.to_string()),
            ("MAXMEMORY_POLICY", cfg.maxmemory_policy.as_str().to_owned()),
            ("AUTH_DIR", layout.auth_dir.to_owned()),
        ],
    )
}

/// The static part of sentinel.conf. start-sentinel.sh appends the rest at start-up.
fn render_sentinel_conf(cfg: &RedisConfig, layout: &Layout<'_>) -> String {
    fill(
        SENTINEL_CONF_IN,
        &[
            ("SENTINEL_DIR", layout.sentinel_dir.to_owned()),
            ("SENTINEL_PORT", layout.sentinel_port.to_string()),
            ("BIND", layout.bind.to_owned()),
            ("PROTECTED_MODE", yes_no(cfg.require_auth).to_owned()),
        ],
    )
}

/// A shipped script with `settings` and common.sh written in place of the lines that source them.
/// Each is a `{ …; }` group, so that one shellcheck directive covers the values and globals a script leaves unused.
fn inline_script(source: &str, settings: &str) -> String {
    let group = |name: &str, text: &str| {
        format!(
            "# ---- {name} ----\n# shellcheck disable=SC2034 # not every script uses every value\n{{\n{text}}}\n# ---- end of {name} ----\n"
        )
    };
    source
        .replacen(HERE_LINE, "", 1)
        .replacen(SOURCE_SETTINGS, &group("settings.sh: this deployment's values, written by the charm", settings), 1)
        .replacen(SOURCE_COMMON, &group(COMMON_SH, COMMON_SH_TEXT), 1)
}

/// `settings.sh`: this deployment's values, sourced by the scripts. Every value is a number, `yes`/`no`, an
/// absolute path or the application name (checked to be `[a-z0-9-]`), so none needs quoting.
fn render_settings(cfg: &RedisConfig, topo: &Topology, layout: &Layout<'_>) -> String {
    // The address a script reaches its own pod's servers on: loopback in the pod, where they listen on every
    // address; the one address they listen on in the tests.
    let local = if layout.bind == "0.0.0.0" { "127.0.0.1" } else { layout.bind };
    let values: [(&str, String); 20] = [
        ("APP", topo.app.clone()),
        ("PORT", cfg.port.to_string()),
        ("SENTINEL_PORT", layout.sentinel_port.to_string()),
        ("UNITS", topo.units.max(1).to_string()),
        ("QUORUM", sentinel_quorum(topo.units).to_string()),
        ("REQUIRE_AUTH", yes_no(cfg.require_auth).to_owned()),
        ("CONFIG_DIR", layout.config_dir.to_owned()),
        ("AUTH_DIR", layout.auth_dir.to_owned()),
        ("SENTINEL_DIR", layout.sentinel_dir.to_owned()),
        ("DOWN_AFTER_MS", DOWN_AFTER_MS.to_string()),
        ("FAILOVER_TIMEOUT_MS", FAILOVER_TIMEOUT_MS.to_string()),
        ("PARALLEL_SYNCS", PARALLEL_SYNCS.to_string()),
        ("QUERY_TIMEOUT_S", QUERY_TIMEOUT_S.to_string()),
        ("RESOLVE_WAIT_S", RESOLVE_WAIT_S.to_string()),
        ("HANDOVER_WAIT_S", HANDOVER_WAIT_S.to_string()),
        ("FAILOVER_WAIT_S", FAILOVER_WAIT_S.to_string()),
        ("DISCOVERY_WAIT_S", DISCOVERY_WAIT_S.to_string()),
        ("WATCH_S", WATCH_S.to_string()),
        ("LINK_DOWN_CHECKS", LINK_DOWN_CHECKS.to_string()),
        ("LOCAL_HOST", local.to_owned()),
    ];
    let mut s = String::new();
    for (k, v) in values {
        s.push_str(&format!("{k}={v}\n"));
    }
    s
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
    use crate::redis::config::{AppendFsync, MaxmemoryPolicy, SavePoint};
    use crate::redis::resp::{self, Resp};
    use serde_yaml::{Mapping, Value};
    use std::collections::BTreeSet;

    const PW: &str = "golden-test-password-0123456789";

    fn public_image(path: &str) -> ImageDetails {
        ImageDetails { image_path: path.to_owned(), username: String::new(), password: String::new() }
    }

    fn topo(units: u32) -> Topology {
        Topology { app: "redis".to_owned(), units, password: Some(PW.to_owned()), previous_password: None }
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
    /// tests (tests/charm_hooks.rs) can compare what a deployed `redis-k8s` sends against them.
    fn golden_topo(units: u32) -> Topology {
        Topology { app: "redis-k8s".to_owned(), ..topo(units) }
    }

    fn parse(yaml: &str) -> Value {
        serde_yaml::from_str(yaml).unwrap()
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

        fn check_file_set(
            &mut self,
            sat: &str,
            set: &Value,
            names: &mut BTreeSet<String>,
            paths: &mut BTreeSet<String>,
        ) {
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
                let topo = Topology { app: app.to_owned(), ..topo(3) };
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
        let files: Vec<&str> = redis["volumeConfig"][0]["files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
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
        let rotating = Topology { previous_password: Some("an-older-password-0123456789".into()), ..topo(3) };
        for cfg in all_configs().into_iter().map(|c| RedisConfig { port: 6379, ..c }) {
            for t in [topo(1), topo(3), topo(5), rotating.clone(), Topology { password: None, ..topo(2) }] {
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
                let t =
                    Topology { app: "redis".into(), units, password: Some(password.into()), previous_password: None };
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
        let t = Topology { password: None, ..topo(1) };
        assert!(render_pod_spec(&no_auth(), &public_image("redis"), &t).is_ok());
    }

    #[test]
    fn during_a_rotation_both_passwords_are_accepted_and_the_new_one_is_used() {
        let old = "the-previous-password-0123";
        let t = Topology { previous_password: Some(old.into()), ..topo(3) };
        let spec = parse(&render_pod_spec(&RedisConfig::default(), &public_image("redis:7.0"), &t).unwrap());
        let data = &spec["kubernetesResources"]["secrets"][0]["stringData"];
        assert_eq!(
            data["auth.conf"],
            format!("user default on resetpass >{PW} >{old} ~* &* +@all\nmasterauth {PW}\n").as_str()
        );
        assert_eq!(data["previous-password"], old);
        // The same password twice is no rotation.
        let same = Topology { previous_password: Some(PW.into()), ..topo(3) };
        let spec = parse(&render_pod_spec(&RedisConfig::default(), &public_image("redis:7.0"), &same).unwrap());
        assert_eq!(spec["kubernetesResources"]["secrets"][0]["stringData"]["previous-password"], "");
    }

    #[test]
    fn rendering_refuses_what_it_cannot_render_safely() {
        let image = public_image("redis:7.0");
        let err = |cfg: &RedisConfig, t: &Topology| render_pod_spec(cfg, &image, t).unwrap_err().to_string();
        let missing = Topology { password: None, ..topo(1) };
        assert!(err(&RedisConfig::default(), &missing).contains("no password"));
        let weak = Topology { password: Some("hunter2".into()), ..topo(1) };
        let text = err(&RedisConfig::default(), &weak);
        assert!(text.contains("password must be 16-512") && !text.contains("hunter2"), "{text}");
        let quoted = Topology { password: Some("has\"quote-and-more-chars".into()), ..topo(1) };
        assert!(!err(&RedisConfig::default(), &quoted).contains("quote-and"));
        let bad_previous = Topology { previous_password: Some("short".into()), ..topo(1) };
        assert!(err(&RedisConfig::default(), &bad_previous).contains("previous password"));
        assert!(err(&cfg_port(26379), &topo(1)).contains("26379"));
        assert!(err(&cfg_port(0), &topo(1)).contains("port 0"));
        for app in ["", "Redis", "1redis", "redis-", "re dis", "re_dis", "redis;rm", "ré", &"x".repeat(54)] {
            let t = Topology { app: app.to_owned(), ..topo(1) };
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
            render_pod_spec(&cfg, &public_image("redis:7.0"), &Topology { password: None, ..golden_topo(3) }).unwrap();
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
    fn pod_names_and_sentinel_addresses() {
        assert_eq!(pod_host("redis", 2), "redis-2.redis-endpoints");
        assert_eq!(
            sentinel_addresses("cache", 2),
            ["cache-0.cache-endpoints:26379".to_owned(), "cache-1.cache-endpoints:26379".to_owned()]
        );
        assert_eq!(sentinel_addresses("cache", 0).len(), 1);
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
            let on_disk =
                std::fs::read_to_string(format!("{}/src/redis/pod/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            assert_eq!(&on_disk, text);
        }
    }

    /// Writes the config volume's files for `layout` into its config dir, and the auth Secret into its auth dir.
    fn write_pod_files(cfg: &RedisConfig, t: &Topology, layout: &Layout<'_>) -> Rendered {
        let rendered = Rendered::new(cfg, t, layout).unwrap();
        for (name, text) in &rendered.files {
            std::fs::write(format!("{}/{name}", layout.config_dir), text).unwrap();
        }
        for (name, text) in &rendered.auth {
            std::fs::write(format!("{}/{name}", layout.auth_dir), text).unwrap();
        }
        rendered
    }

    /// Who the scripts think they are: the test variables, else HOSTNAME (set by the container runtime, and by
    /// juju-local), else the host name; a name without an ordinal stops the script.
    #[test]
    fn scripts_find_their_pod_name_and_ordinal() {
        let sb = Sandbox::new("names");
        let (conf, auth) = (sb.path("conf"), sb.path("auth"));
        let layout = Layout { config_dir: &conf, auth_dir: &auth, ..POD };
        let settings = render_settings(&no_auth(), &topo(3), &layout);
        let script = |body: &str| {
            inline_script(
                &format!("#!/bin/sh\nset -eu\n{HERE_LINE}{SOURCE_SETTINGS}{SOURCE_COMMON}{body}\n"),
                &settings,
            )
        };
        let probe = script("echo \"$ORDINAL $SELF\"");
        let run = |env: &[(&str, &str)]| {
            let out = std::process::Command::new("sh")
                .args(["-c", &probe])
                .env_remove("HOSTNAME")
                .env_remove("REDIS_K8S_POD_NAME")
                .env_remove("REDIS_K8S_HOST_PREFIX")
                .env_remove("REDIS_K8S_HOST_SUFFIX")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        assert_eq!(run(&[("HOSTNAME", "redis-2")]), (true, "2 redis-2.redis-endpoints".to_owned()));
        assert_eq!(
            run(&[("HOSTNAME", "redis-2"), ("REDIS_K8S_POD_NAME", "redis-1")]),
            (true, "1 redis-1.redis-endpoints".to_owned())
        );
        assert_eq!(
            run(&[
                ("REDIS_K8S_POD_NAME", "redis-0"),
                ("REDIS_K8S_HOST_PREFIX", "10.0.0.1"),
                ("REDIS_K8S_HOST_SUFFIX", "")
            ]),
            (true, "0 10.0.0.10".to_owned())
        );
        assert!(!run(&[("HOSTNAME", "not-a-pod")]).0);
        assert!(!run(&[("HOSTNAME", "redis-")]).0);
        // Only this application's pods are trusted as a primary.
        let check = script("is_pod_host \"$1\"");
        let trusted = |host: &str| {
            std::process::Command::new("sh")
                .args(["-c", &check, "sh", host])
                .env("HOSTNAME", "redis-1")
                .status()
                .unwrap()
                .success()
        };
        assert!(trusted("redis-0.redis-endpoints") && trusted("redis-12.redis-endpoints"));
        for bad in ["evil.example.com", "10.1.2.3", "redis-x.redis-endpoints", "redis-0.other-endpoints", "redis-0", ""]
        {
            assert!(!trusted(bad), "{bad:?} trusted");
        }
    }

    // ---- Running the rendered files with the real redis-server ------------------------------------------------

    /// Temp directories and processes for one test; everything is removed and killed on drop, even on failure.
    struct Sandbox {
        dir: std::path::PathBuf,
        /// `(name, child)`: each child leads its own process group, so killing the group also kills anything a
        /// start script runs.
        children: Vec<(String, std::process::Child)>,
    }

    impl Sandbox {
        fn new(name: &str) -> Sandbox {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("redis-k8s-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Sandbox { dir, children: Vec::new() }
        }

        fn path(&self, rel: &str) -> String {
            let p = self.dir.join(rel);
            std::fs::create_dir_all(&p).unwrap();
            p.to_str().unwrap().to_owned()
        }

        /// Starts `program args` with `env`, output appended to `<name>.log` in the sandbox.
        fn spawn(&mut self, name: &str, program: &str, args: &[&str], env: &[(&str, &str)]) {
            use std::os::unix::process::CommandExt;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{name}.log")))
                .unwrap();
            let child = std::process::Command::new(program)
                .args(args)
                .envs(env.iter().copied())
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {program} ({e}): these tests need sh and redis-server 7"));
            self.children.push((name.to_owned(), child));
        }

        fn kill(&mut self, name: &str) {
            if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
                let (_, mut child) = self.children.remove(i);
                kill_group(&mut child);
            }
        }

        /// What Kubernetes does to a container being stopped: SIGTERM to its first process only (not to what it
        /// started), then, after `grace`, SIGKILL to everything. Returns the exit status if it exited in time.
        fn terminate(&mut self, name: &str, grace: Duration) -> Option<std::process::ExitStatus> {
            let i = self.children.iter().position(|(n, _)| n == name)?;
            let (_, mut child) = self.children.remove(i);
            // SAFETY: kill(2) on a child of this test; no memory is touched.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = std::time::Instant::now() + grace;
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => break None,
                }
            };
            kill_group(&mut child);
            status
        }

        /// Sends `signal` to a process's whole group (SIGSTOP and SIGCONT: a node too slow to answer).
        fn signal(&self, name: &str, signal: i32) {
            let (_, child) = self.children.iter().find(|(n, _)| n == name).expect("a process this test started");
            // SAFETY: kill(2) on the process group of a child of this test; no memory is touched.
            unsafe {
                libc::kill(-(child.id() as i32), signal);
            }
        }

        fn logs(&self) -> String {
            let mut out = String::new();
            let mut entries: Vec<_> = std::fs::read_dir(&self.dir).unwrap().flatten().map(|e| e.path()).collect();
            entries.sort();
            for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "log")) {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                out += &format!("--- {}\n", path.display());
                for line in tail.into_iter().rev() {
                    out += line;
                    out.push('\n');
                }
            }
            out
        }

        /// Polls `ok` every 50 ms for up to 15 s; on timeout, fails with the processes' logs.
        fn wait_until(&self, what: &str, ok: impl FnMut() -> bool) {
            self.wait_up_to(15, what, ok);
        }

        fn wait_up_to(&self, secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
            let deadline = std::time::Instant::now() + Duration::from_secs(secs);
            while !ok() {
                if std::time::Instant::now() >= deadline {
                    panic!("gave up after {secs} s waiting for {what}\n{}", self.logs());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn kill_group(child: &mut std::process::Child) {
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on a process group this test created; no memory is touched.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    impl Drop for Sandbox {
        fn drop(&mut self) {
            for (_, child) in &mut self.children {
                kill_group(child);
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    use std::time::Duration;
    const T: Duration = Duration::from_secs(3);

    /// A port nothing listens on, on any address (so also free on the 127.x.y.z addresses the tests use).
    fn free_port() -> u16 {
        std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap().local_addr().unwrap().port()
    }

    /// Writes the auth Secret's files as Kubernetes would mount them.
    fn write_secret(dir: &str, password: &str) {
        std::fs::write(format!("{dir}/{AUTH_CONF}"), auth_conf(Some(password), None)).unwrap();
        std::fs::write(format!("{dir}/{PASSWORD_FILE}"), password).unwrap();
        std::fs::write(format!("{dir}/{PREVIOUS_PASSWORD_FILE}"), "").unwrap();
    }

    fn get(addr: &str, pw: Option<&str>, cmd: &[&str]) -> Option<Resp> {
        resp::query(addr, pw, cmd, T).ok()
    }

    fn config_get(addr: &str, pw: &str, name: &str) -> String {
        match get(addr, Some(pw), &["CONFIG", "GET", name]) {
            Some(Resp::Array(items)) if items.len() == 2 => items[1].as_str().unwrap_or_default().to_owned(),
            other => panic!("CONFIG GET {name}: {other:?}"),
        }
    }

    /// Runs the real redis-server on the rendered redis.conf (with auth on and non-default options), laid out in a
    /// temp dir instead of /etc/redis-k8s, /etc/redis-auth and /data, listening on 127.0.0.1.
    #[test]
    fn redis_server_runs_the_rendered_conf() {
        let mut sb = Sandbox::new("conf");
        let port = free_port();
        let (conf_dir, auth_dir, data_dir) = (sb.path("conf"), sb.path("auth"), sb.path("data"));
        let layout = Layout {
            config_dir: &conf_dir,
            auth_dir: &auth_dir,
            data_dir: &data_dir,
            sentinel_dir: "/nonexistent",
            bind: "127.0.0.1",
            sentinel_port: SENTINEL_PORT,
        };
        let cfg = RedisConfig {
            port,
            save: vec![SavePoint { seconds: 900, changes: 1 }, SavePoint { seconds: 60, changes: 500 }],
            maxmemory: 64 * 1024 * 1024,
            maxmemory_policy: MaxmemoryPolicy::AllkeysLfu,
            appendfsync: AppendFsync::Always,
            ..RedisConfig::default()
        };
        let conf = render_redis_conf(&cfg, &layout);
        // The pod's file differs only in the paths and the bind address.
        let pod_conf = redis_conf(&cfg);
        assert_eq!(
            conf.replace(&data_dir, "/data")
                .replace(&auth_dir, "/etc/redis-auth")
                .replace("bind 127.0.0.1", "bind 0.0.0.0"),
            pod_conf
        );
        let conf_path = format!("{conf_dir}/{REDIS_CONF}");
        std::fs::write(&conf_path, &conf).unwrap();
        write_secret(&auth_dir, PW);
        sb.spawn("redis", "redis-server", &[&conf_path], &[]);

        let addr = format!("127.0.0.1:{port}");
        sb.wait_until("redis-server to answer", || resp::ping(&addr, Some(PW), T).is_ok());
        assert!(matches!(get(&addr, None, &["PING"]), Some(Resp::Error(e)) if e.starts_with("NOAUTH")));
        assert!(resp::query(&addr, Some("wrong-password-0123456789"), &["PING"], T).is_err());
        assert_eq!(config_get(&addr, PW, "port"), port.to_string());
        assert_eq!(config_get(&addr, PW, "protected-mode"), "yes");
        assert_eq!(config_get(&addr, PW, "appendonly"), "yes");
        assert_eq!(config_get(&addr, PW, "appendfsync"), "always");
        assert_eq!(config_get(&addr, PW, "save"), "900 1 60 500");
        assert_eq!(config_get(&addr, PW, "maxmemory"), (64 * 1024 * 1024).to_string());
        assert_eq!(config_get(&addr, PW, "maxmemory-policy"), "allkeys-lfu");
        assert_eq!(config_get(&addr, PW, "replica-read-only"), "yes");
        assert_eq!(config_get(&addr, PW, "dir"), data_dir);
        assert_eq!(config_get(&addr, PW, "logfile"), "");
        assert_eq!(config_get(&addr, PW, "masterauth"), PW);
        // The append-only file is really written to the data dir.
        assert_eq!(get(&addr, Some(PW), &["SET", "k", "v"]), Some(Resp::Simple("OK".into())));
        sb.wait_until("the AOF directory", || std::path::Path::new(&data_dir).join("appendonlydir").is_dir());
        // `logfile ""` sends the log to stdout, where Kubernetes collects it.
        assert!(sb.logs().contains("Ready to accept connections"), "{}", sb.logs());
    }

    /// One pod of the three-pod test: its address, directories and processes.
    struct TestPod {
        ordinal: u32,
        host: String,
        dir: String,
        /// The ConfigMap's files, as rendered: written again before each start, since in a pod they are a read-only
        /// volume that a server's `CONFIG REWRITE` (Sentinel sends one with every REPLICAOF) cannot change, and root
        /// running these tests ignores file modes.
        files: Vec<(String, String)>,
    }

    impl TestPod {
        fn redis(&self, port: u16) -> String {
            format!("{}:{port}", self.host)
        }
    }

    fn info(addr: &str, pw: &str) -> String {
        resp::info(addr, Some(pw), "replication", T).unwrap_or_default()
    }

    fn is_replica_of(addr: &str, pw: &str, primary_host: &str) -> bool {
        let text = info(addr, pw);
        resp::info_field(&text, "role") == Some("slave")
            && resp::info_field(&text, "master_host") == Some(primary_host)
            && resp::info_field(&text, "master_link_status") == Some("up")
    }

    fn sentinel_says(addr: &str, pw: &str, app: &str) -> Option<(String, u16)> {
        resp::sentinel_primary(&[addr.to_owned()], app, Some(pw), T)
    }

    /// A flat RESP map (`[k1, v1, k2, v2, …]`) as pairs.
    fn resp_map(reply: &Resp) -> Vec<(String, String)> {
        match reply {
            Resp::Array(items) => items
                .chunks(2)
                .filter_map(|kv| Some((kv.first()?.as_str()?.to_owned(), kv.get(1)?.as_str()?.to_owned())))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A 3-pod deployment of the rendered files on this machine: each pod gets its own loopback address
    /// (127.a.b.10-12, all the same ports, as pods have their own IPs); the REDIS_K8S_* variables stand in for the
    /// pod name and the cluster DNS.
    struct ThreePods {
        app: &'static str,
        pw: &'static str,
        prefix: String,
        port: u16,
        sentinel_port: u16,
        pods: Vec<TestPod>,
    }

    impl ThreePods {
        fn new(sb: &Sandbox, pw: &'static str) -> ThreePods {
            let app = "cache";
            let pid = std::process::id();
            let salt = {
                use std::sync::atomic::{AtomicU32, Ordering};
                static K: AtomicU32 = AtomicU32::new(0);
                K.fetch_add(1, Ordering::Relaxed)
            };
            let prefix = format!("127.{}.{}.1", (pid >> 8) % 120 + 2 + 120 * (salt % 2), pid % 250 + 2);
            let port = free_port();
            let sentinel_port = free_port();
            let cfg = RedisConfig { port, save: vec![], ..RedisConfig::default() };
            let t = Topology { app: app.to_owned(), units: 3, password: Some(pw.to_owned()), previous_password: None };
            let pods: Vec<TestPod> = (0..3)
                .map(|ordinal| TestPod {
                    ordinal,
                    host: format!("{prefix}{ordinal}"),
                    dir: sb.path(&format!("pod{ordinal}")),
                    files: Vec::new(),
                })
                .collect();
            let mut pods = pods;
            for pod in &mut pods {
                let (conf, auth, data, sentinel) = (
                    sb.path(&format!("pod{}/conf", pod.ordinal)),
                    sb.path(&format!("pod{}/auth", pod.ordinal)),
                    sb.path(&format!("pod{}/data", pod.ordinal)),
                    sb.path(&format!("pod{}/sentinel", pod.ordinal)),
                );
                let layout = Layout {
                    config_dir: &conf,
                    auth_dir: &auth,
                    data_dir: &data,
                    sentinel_dir: &sentinel,
                    bind: &pod.host,
                    sentinel_port,
                };
                let files = write_pod_files(&cfg, &t, &layout);
                write_secret(&auth, pw);
                assert!(files.files.iter().all(|(_, text)| !text.contains(pw)));
                pod.files = files.files.iter().map(|(name, text)| (format!("{conf}/{name}"), text.clone())).collect();
            }
            ThreePods { app, pw, prefix, port, sentinel_port, pods }
        }

        fn start(&self, sb: &mut Sandbox, ordinal: usize, which: &str) {
            let pod = &self.pods[ordinal];
            for (path, text) in &pod.files {
                std::fs::write(path, text).unwrap();
            }
            let script = format!("{}/conf/start-{which}.sh", pod.dir);
            let pod_name = format!("{}-{}", self.app, pod.ordinal);
            let env = [
                ("REDIS_K8S_POD_NAME", pod_name.as_str()),
                ("REDIS_K8S_HOST_PREFIX", self.prefix.as_str()),
                ("REDIS_K8S_HOST_SUFFIX", ""),
            ];
            sb.spawn(&format!("pod{}-{which}", pod.ordinal), "sh", &[&script], &env);
        }

        fn sentinel(&self, ordinal: usize) -> String {
            format!("{}:{}", self.pods[ordinal].host, self.sentinel_port)
        }

        /// Starts every container at once (a fresh deployment) and waits until pod 0 is the primary, both replicas
        /// are linked and every Sentinel knows both replicas and both other Sentinels.
        fn start_all_and_settle(&self, sb: &mut Sandbox) {
            for i in 0..3 {
                self.start(sb, i, "sentinel");
                self.start(sb, i, "redis");
            }
            let (pw, port, app) = (self.pw, self.port, self.app);
            let primary = self.pods[0].redis(port);
            sb.wait_until("the primary", || resp::ping(&primary, Some(pw), T).is_ok());
            for pod in &self.pods[1..] {
                sb.wait_until(&format!("pod {} to replicate from pod 0", pod.ordinal), || {
                    is_replica_of(&pod.redis(port), pw, &self.pods[0].host)
                });
            }
            for i in 0..3 {
                let sentinel = self.sentinel(i);
                sb.wait_until("the Sentinel to know both replicas and both other Sentinels", || {
                    let count = |sub: &str| match get(&sentinel, Some(pw), &["SENTINEL", sub, app]) {
                        Some(Resp::Array(items)) => items.len(),
                        _ => 0,
                    };
                    count("REPLICAS") == 2 && count("SENTINELS") == 2
                });
            }
        }
    }

    /// Runs the rendered start scripts for a 3-pod deployment on this machine and checks that replication and
    /// Sentinel work, with a password that has every special character the config allows.
    #[test]
    fn start_scripts_run_a_replicated_three_pod_deployment() {
        let mut sb = Sandbox::new("pods");
        let pw = "Pw!#$%&()*+,-./:;<=>?@[]^_`{|}~09";
        let three = ThreePods::new(&sb, pw);
        let (app, port, sentinel_port) = (three.app, three.port, three.sentinel_port);
        let pods = &three.pods;
        let start = |sb: &mut Sandbox, pod: &TestPod, which: &str| three.start(sb, pod.ordinal as usize, which);

        // A fresh deployment: every container starts at once. No Sentinel knows a primary yet, so ordinal 0 is it.
        for pod in pods {
            start(&mut sb, pod, "sentinel");
            start(&mut sb, pod, "redis");
        }
        let primary = pods[0].redis(port);
        sb.wait_until("the primary", || resp::ping(&primary, Some(pw), T).is_ok());
        for pod in &pods[1..] {
            sb.wait_until(&format!("pod {} to replicate from pod 0", pod.ordinal), || {
                is_replica_of(&pod.redis(port), pw, &pods[0].host)
            });
        }
        assert_eq!(resp::info_field(&info(&primary, pw), "role"), Some("master"));

        // A write on the primary is readable on both replicas; replicas refuse writes; auth is required everywhere.
        assert_eq!(get(&primary, Some(pw), &["SET", "greeting", "hello"]), Some(Resp::Simple("OK".into())));
        for pod in &pods[1..] {
            let replica = pod.redis(port);
            sb.wait_until("the write to reach the replica", || {
                get(&replica, Some(pw), &["GET", "greeting"]) == Some(Resp::Bulk(b"hello".to_vec()))
            });
            assert!(
                matches!(get(&replica, Some(pw), &["SET", "x", "y"]), Some(Resp::Error(e)) if e.starts_with("READONLY"))
            );
            assert!(
                matches!(get(&replica, None, &["GET", "greeting"]), Some(Resp::Error(e)) if e.starts_with("NOAUTH"))
            );
        }

        // Every Sentinel names pod 0, knows both replicas by their announced names, and sees the two other
        // Sentinels over authenticated links.
        for pod in pods {
            let sentinel = format!("{}:{sentinel_port}", pod.host);
            sb.wait_until("the Sentinel", || sentinel_says(&sentinel, pw, app) == Some((pods[0].host.clone(), port)));
            sb.wait_until("the Sentinel to see both replicas", || {
                let reply = get(&sentinel, Some(pw), &["SENTINEL", "REPLICAS", app]);
                let mut hosts: Vec<String> = match reply {
                    Some(Resp::Array(replicas)) => replicas
                        .iter()
                        .filter_map(|r| resp_map(r).into_iter().find(|(k, _)| k == "ip").map(|(_, v)| v))
                        .collect(),
                    _ => Vec::new(),
                };
                hosts.sort();
                hosts == [pods[1].host.clone(), pods[2].host.clone()]
            });
            // Sentinels find each other through hello messages on the primary (every 2 s) and clear a peer's
            // s_down only on its next reply: on a loaded two-CPU host that has taken more than 15 s.
            sb.wait_up_to(30, "the Sentinel to see the two others, connected", || {
                match get(&sentinel, Some(pw), &["SENTINEL", "SENTINELS", app]) {
                    Some(Resp::Array(peers)) => {
                        peers.len() == 2
                            && peers.iter().all(|p| {
                                resp_map(p)
                                    .iter()
                                    .any(|(k, v)| k == "flags" && !v.contains("disconnected") && !v.contains("s_down"))
                            })
                    }
                    _ => false,
                }
            });
        }

        // Fail over to a replica, then restart pod 0's Redis: its script must ask the peer Sentinels and come back
        // as a replica of the new primary, not as a second primary.
        let sentinel1 = format!("{}:{sentinel_port}", pods[1].host);
        // Sentinel refuses (NOGOODSLAVE) until it has had INFO from the replicas themselves: retry.
        sb.wait_until("Sentinel to accept a failover", || {
            get(&sentinel1, Some(pw), &["SENTINEL", "FAILOVER", app]) == Some(Resp::Simple("OK".into()))
        });
        let mut new_primary = None;
        sb.wait_until("the failover", || {
            new_primary =
                pods[1..].iter().find(|p| resp::info_field(&info(&p.redis(port), pw), "role") == Some("master"));
            new_primary.is_some_and(|p| {
                pods.iter().all(|s| {
                    sentinel_says(&format!("{}:{sentinel_port}", s.host), pw, app) == Some((p.host.clone(), port))
                })
            })
        });
        let new_primary = new_primary.unwrap();
        sb.kill("pod0-redis");
        start(&mut sb, &pods[0], "redis");
        sb.wait_until("pod 0 to come back as a replica of the new primary", || {
            is_replica_of(&pods[0].redis(port), pw, &new_primary.host)
        });
        assert_eq!(get(&pods[0].redis(port), Some(pw), &["GET", "greeting"]), Some(Resp::Bulk(b"hello".to_vec())));
        let log = std::fs::read_to_string(sb.dir.join("pod0-redis.log")).unwrap();
        assert!(log.contains(&format!("names {}:{port} as the primary", new_primary.host)), "{log}");
        // The password never reached a log.
        assert!(!sb.logs().contains(pw));
    }

    /// A replica left following a server that is gone follows the primary the Sentinels name once its link has
    /// been down for a while. Here pod 2 is pointed at pod 0 on a port nothing listens on: what a replica does that
    /// started while no peer answered and took ordinal 0 on the next port, which a rolling port change has not
    /// reached yet. (The Sentinels would correct a replica they know only after their 30 s failover timeout, and
    /// one they do not know, like that new pod, never: the script's own watch is what relinks it here.)
    #[test]
    fn a_replica_whose_primary_is_gone_follows_the_one_the_sentinels_name() {
        let mut sb = Sandbox::new("relink");
        let three = ThreePods::new(&sb, "relink-password-0123456789");
        three.start_all_and_settle(&mut sb);
        let (pw, port) = (three.pw, three.port);
        let (primary, replica) = (&three.pods[0], three.pods[2].redis(port));
        assert_eq!(get(&primary.redis(port), Some(pw), &["SET", "before", "1"]), Some(Resp::Simple("OK".into())));
        let gone = free_port().to_string();
        assert_eq!(get(&replica, Some(pw), &["REPLICAOF", &primary.host, &gone]), Some(Resp::Simple("OK".into())));
        sb.wait_until("the link to go down", || {
            let text = info(&replica, pw);
            resp::info_field(&text, "master_port") == Some(gone.as_str())
                && resp::info_field(&text, "master_link_status") == Some("down")
        });
        assert_eq!(get(&primary.redis(port), Some(pw), &["SET", "while-away", "2"]), Some(Resp::Simple("OK".into())));
        // Three checks 3 s apart find it down, then the watch follows the primary: well inside 25 s.
        sb.wait_up_to(25, "the replica to follow pod 0 on its port again", || {
            is_replica_of(&replica, pw, &primary.host)
                && resp::info_field(&info(&replica, pw), "master_port") == Some(port.to_string().as_str())
        });
        sb.wait_until("the write made while it was away", || {
            get(&replica, Some(pw), &["GET", "while-away"]) == Some(Resp::Bulk(b"2".to_vec()))
        });
        let log = std::fs::read_to_string(sb.dir.join("pod2-redis.log")).unwrap();
        let line = format!("the Sentinels name {}:{port}: following it", primary.host);
        assert!(log.contains(&line), "{log}");
        // The primary and the other replica were left alone.
        assert!(!std::fs::read_to_string(sb.dir.join("pod1-redis.log")).unwrap().contains("following it"));
        assert_eq!(resp::info_field(&info(&primary.redis(port), pw), "role"), Some("master"));
    }

    /// A pod that starts while its peers are there but too slow to answer (an overloaded node) asks again rather
    /// than taking ordinal 0 as the primary. Here a replica was promoted, and while the third pod's Redis restarts
    /// the new primary and the two other Sentinels are stopped (SIGSTOP) for 12 s: longer than the first round of
    /// questions takes (3 s for each that goes unanswered), so it finds no primary.
    #[test]
    fn a_pod_that_starts_while_its_peers_are_too_slow_to_answer_asks_again() {
        let mut sb = Sandbox::new("stalled");
        let three = ThreePods::new(&sb, "stalled-password-0123456789");
        three.start_all_and_settle(&mut sb);
        let (pw, port, app, pods) = (three.pw, three.port, three.app, &three.pods);
        sb.wait_until("Sentinel to accept a failover", || {
            get(&three.sentinel(1), Some(pw), &["SENTINEL", "FAILOVER", app]) == Some(Resp::Simple("OK".into()))
        });
        let mut promoted = 0;
        sb.wait_until("the failover, seen by every Sentinel", || {
            promoted = (1..3)
                .find(|&i| resp::info_field(&info(&pods[i].redis(port), pw), "role") == Some("master"))
                .unwrap_or(0);
            promoted != 0
                && (0..3)
                    .all(|i| sentinel_says(&three.sentinel(i), pw, app) == Some((pods[promoted].host.clone(), port)))
        });
        let other = 3 - promoted;
        // Sentinel turns the old primary into a replica only once it has reported the wrong role for a while
        // (sentinel.c: SENTINEL_PUBLISH_PERIOD * 4, after the failover's own steps): more than 15 s on a loaded host.
        sb.wait_up_to(40, "pod 0 and the other replica to follow the new primary", || {
            [0, other].iter().all(|&i| is_replica_of(&pods[i].redis(port), pw, &pods[promoted].host))
        });
        sb.kill(&format!("pod{other}-redis"));
        let log_path = sb.dir.join(format!("pod{other}-redis.log"));
        let before = std::fs::metadata(&log_path).map(|m| m.len() as usize).unwrap_or(0);
        let stalled = [format!("pod{promoted}-redis"), format!("pod{promoted}-sentinel"), "pod0-sentinel".to_owned()];
        for name in &stalled {
            sb.signal(name, libc::SIGSTOP);
        }
        three.start(&mut sb, other, "redis");
        std::thread::sleep(Duration::from_secs(12));
        for name in &stalled {
            sb.signal(name, libc::SIGCONT);
        }
        sb.wait_up_to(40, "the restarted pod to follow the new primary", || {
            is_replica_of(&pods[other].redis(port), pw, &pods[promoted].host)
        });
        // Only what the restarted pod logged: its first start, on a fresh deployment, rightly chose ordinal 0.
        let log = std::fs::read_to_string(&log_path).unwrap().split_off(before);
        assert!(log.contains("did not answer in time: asking the peers again"), "{log}");
        assert!(!log.contains("so ordinal 0"), "{log}");
    }

    /// The readiness probe asks the port it is given (its pod template's), not the one the refreshed files name:
    /// during a rolling port change an old pod stays ready on its old port.
    #[test]
    fn the_readiness_probe_asks_the_port_of_its_template() {
        let mut sb = Sandbox::new("ready");
        let three = ThreePods::new(&sb, "ready-password-0123456789");
        three.start_all_and_settle(&mut sb);
        let pod = &three.pods[1];
        let probe = |port: &str| {
            let script = format!("{}/conf/start-redis.sh", pod.dir);
            let mut cmd = std::process::Command::new("sh");
            cmd.arg(&script).arg("ready");
            if !port.is_empty() {
                cmd.arg(port);
            }
            cmd.env("REDIS_K8S_POD_NAME", format!("{}-1", three.app))
                .env("REDIS_K8S_HOST_PREFIX", &three.prefix)
                .env("REDIS_K8S_HOST_SUFFIX", "");
            cmd.output().unwrap().status.code()
        };
        assert_eq!(probe(""), Some(0), "a linked replica is ready");
        assert_eq!(probe(&three.port.to_string()), Some(0));
        assert_eq!(probe(&free_port().to_string()), Some(1), "nothing listens there");
        assert_eq!(probe("not-a-port"), Some(1));
        drop(sb);
    }

    /// A client that writes `key:<i>` = `<i>` in a loop to whichever pod is the primary, following a failover the
    /// way a Sentinel-aware client does (on an error, it asks the Sentinels again), and records every write the
    /// server acknowledged.
    struct Writer {
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        handle: Option<std::thread::JoinHandle<(Vec<u64>, u64)>>,
    }

    impl Writer {
        fn start(three: &ThreePods) -> Writer {
            use std::sync::atomic::Ordering;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            let pw = three.pw;
            let app = three.app;
            let sentinels: Vec<String> = (0..3).map(|i| three.sentinel(i)).collect();
            let port = three.port;
            let mut primary = three.pods[0].redis(port);
            let handle = std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut errors = 0u64;
                let mut i = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    let key = format!("key:{i}");
                    let value = i.to_string();
                    match resp::query(&primary, Some(pw), &["SET", &key, &value], Duration::from_secs(2)) {
                        Ok(Resp::Simple(ok)) if ok == "OK" => {
                            acked.push(i);
                            i += 1;
                        }
                        _ => {
                            errors += 1;
                            if let Some((host, p)) =
                                resp::sentinel_primary(&sentinels, app, Some(pw), Duration::from_millis(500))
                            {
                                primary = format!("{host}:{p}");
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                (acked, errors)
            });
            Writer { stop, handle: Some(handle) }
        }

        /// Stops the client: the writes the server acknowledged, and how many commands failed.
        fn finish(mut self) -> (Vec<u64>, u64) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            self.handle.take().map(|h| h.join().unwrap()).unwrap_or_default()
        }
    }

    /// Stopping the primary's pod (SIGTERM to its start script, as Kubernetes sends it on a rolling restart or a
    /// scale-down) hands the primary over to a replica first: under a steady stream of writes, every write the old
    /// primary acknowledged is on the new one.
    #[test]
    fn a_stopping_primary_hands_over_without_losing_acknowledged_writes() {
        let mut sb = Sandbox::new("handover");
        let three = ThreePods::new(&sb, "handover-password-0123456789");
        three.start_all_and_settle(&mut sb);
        let writer = Writer::start(&three);
        let (pw, port) = (three.pw, three.port);
        sb.wait_until(
            "some writes",
            || matches!(get(&three.pods[0].redis(port), Some(pw), &["DBSIZE"]), Some(Resp::Integer(n)) if n > 200),
        );
        let status = sb.terminate("pod0-redis", Duration::from_secs(30));
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "the script exits 0 within the grace period\n{}",
            sb.logs()
        );
        let mut new_primary = None;
        sb.wait_until("a replica to be the primary", || {
            new_primary =
                three.pods[1..].iter().find(|p| resp::info_field(&info(&p.redis(port), pw), "role") == Some("master"));
            new_primary.is_some()
        });
        let new_primary = new_primary.unwrap().redis(port);
        sb.wait_until("writes on the new primary", || {
            let before = get(&new_primary, Some(pw), &["DBSIZE"]);
            std::thread::sleep(Duration::from_millis(200));
            matches!((before, get(&new_primary, Some(pw), &["DBSIZE"])), (Some(Resp::Integer(a)), Some(Resp::Integer(b))) if b > a)
        });
        let (acked, errors) = writer.finish();
        let missing: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|i| {
                get(&new_primary, Some(pw), &["GET", &format!("key:{i}")])
                    != Some(Resp::Bulk(i.to_string().into_bytes()))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes lost: {:?}\n{}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(20)],
            sb.logs()
        );
        let log = std::fs::read_to_string(sb.dir.join("pod0-redis.log")).unwrap();
        assert!(log.contains("handed the primary over to"), "{log}");
        eprintln!(
            "hand-over: {} writes acknowledged, {} commands refused or unanswered during it",
            acked.len(),
            errors
        );
    }

    /// A primary stopped just after the other pods were replaced (as a rolling restart replaces the pods before
    /// it, moving on once they are ready) still hands over: those Sentinels refuse a failover until they have heard from a replica, so the
    /// script asks again until one accepts.
    #[test]
    fn a_stopping_primary_hands_over_to_sentinels_that_have_just_started() {
        let mut sb = Sandbox::new("handover-fresh");
        let three = ThreePods::new(&sb, "handover-fresh-password-0123456789");
        three.start_all_and_settle(&mut sb);
        let (pw, port) = (three.pw, three.port);
        assert_eq!(get(&three.pods[0].redis(port), Some(pw), &["SET", "k", "v"]), Some(Resp::Simple("OK".into())));
        // Pods 1 and 2 replaced: their Sentinels ask the primary for its replicas at once, before the restarted
        // replicas have linked, and ask again only 10 s later.
        for i in 1..3 {
            sb.kill(&format!("pod{i}-redis"));
            sb.kill(&format!("pod{i}-sentinel"));
        }
        for i in 1..3 {
            three.start(&mut sb, i, "sentinel");
            three.start(&mut sb, i, "redis");
        }
        for pod in &three.pods[1..] {
            sb.wait_until("the replaced replica to link (ready)", || {
                is_replica_of(&pod.redis(port), pw, &three.pods[0].host)
            });
        }
        let status = sb.terminate("pod0-redis", Duration::from_secs(30));
        assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", sb.logs());
        let log = std::fs::read_to_string(sb.dir.join("pod0-redis.log")).unwrap();
        assert!(log.contains("handed the primary over to"), "{}", sb.logs());
        let new_primary = three.pods[1..]
            .iter()
            .find(|p| resp::info_field(&info(&p.redis(port), pw), "role") == Some("master"))
            .unwrap_or_else(|| panic!("no replica was promoted\n{}", sb.logs()));
        assert_eq!(get(&new_primary.redis(port), Some(pw), &["GET", "k"]), Some(Resp::Bulk(b"v".to_vec())));
    }

    /// The scripts as the pod receives them (settings and common.sh written in) pass shellcheck.
    #[test]
    fn rendered_scripts_pass_shellcheck() {
        let sb = Sandbox::new("shellcheck");
        let mut files = Vec::new();
        for (i, cfg) in all_configs().iter().enumerate() {
            for (name, text) in Rendered::new(cfg, &topo(3), &POD).unwrap().files {
                if name.ends_with(".sh") {
                    let path = sb.dir.join(format!("{i}-{name}"));
                    std::fs::write(&path, text).unwrap();
                    files.push(path);
                }
            }
        }
        let out = std::process::Command::new("shellcheck")
            .args(["-s", "sh"])
            .args(&files)
            .output()
            .unwrap_or_else(|e| panic!("cannot run shellcheck ({e}); `make setup` installs it"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}
