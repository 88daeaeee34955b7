//! What runs in every Redis pod, and the files inside it: the charm's [`Workload`].
//!
//! The configure handler calls [`workload`] with a validated [`RedisConfig`], the oci-image resource's details
//! and the [`Deployment`], and hands the result to the unit's [`crate::workload::Runtime`] (today the pod spec
//! that `pod-spec-set` takes; [`render_pod_spec`] is that rendering). It calls [`image_version`] for
//! `application-version-set`. Nothing here knows how the workload reaches Kubernetes.
//!
//! Rendering is deterministic, so an unchanged config and deployment give the same files and the same spec bytes,
//! and Juju sees no change.
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

use anyhow::bail;

use super::config::{RedisConfig, SENTINEL_PORT, validate_password};
use super::topology::sentinel_quorum;
pub use crate::workload::ImageDetails;
use crate::workload::{Check, Container, Mount, Port, Probe, Secret, Source, Volume, Workload};

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
#[cfg(test)]
const SCRIPT_SOURCES: &[(&str, &str)] =
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

/// The deployment the spec is for: what the config alone does not say.
#[derive(Clone, PartialEq, Eq)]
pub struct Deployment {
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

/// Hides the passwords, so logging a `Deployment` never leaks them.
impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("app", &self.app)
            .field("units", &self.units)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("previous_password", &self.previous_password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Everything rendered for one deployment, checked: the config volume's files and the auth Secret's data.
struct Rendered {
    /// `(file name, content)`, in the order the file set lists them.
    files: Vec<(&'static str, String)>,
    /// The auth Secret's data: `auth.conf`, `password`, `previous-password`.
    auth: BTreeMap<&'static str, String>,
}

impl Rendered {
    fn new(cfg: &RedisConfig, topo: &Deployment, layout: &Layout<'_>) -> anyhow::Result<Rendered> {
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

/// What runs in every pod (see the module doc), for a [`crate::workload::Runtime`] to run.
///
/// # Errors
///
/// If the deployment cannot be rendered safely: `cfg.require_auth` without a valid `topo.password`, an application
/// name Kubernetes would reject, or `cfg.port` equal to Sentinel's port (which [`RedisConfig::from_juju`] already
/// refuses). Error messages never contain the password.
pub fn workload(cfg: &RedisConfig, image: Option<&ImageDetails>, topo: &Deployment) -> anyhow::Result<Workload> {
    let rendered = Rendered::new(cfg, topo, &POD)?;
    let secret_name = format!("{}-auth", topo.app);
    let script = |name: &str| vec!["sh".to_owned(), format!("{}/{name}", POD.config_dir)];
    let mount = |volume: &'static str, path: &str| Mount { volume, path: path.to_owned() };
    Ok(Workload {
        containers: vec![
            Container {
                name: REDIS_CONTAINER,
                image: image.cloned(),
                command: script(START_REDIS),
                ports: vec![Port { name: REDIS_CONTAINER, port: cfg.port }],
                mounts: vec![mount(CONFIG_VOLUME, POD.config_dir), mount(AUTH_VOLUME, POD.auth_dir)],
                // Ready once it serves what clients expect: the primary, or a replica linked to it. A rolling
                // restart then moves on only once the restarted replica has synced.
                ready: Check {
                    how: Probe::Exec(vec![
                        "sh".to_owned(),
                        format!("{}/{START_REDIS}", POD.config_dir),
                        "ready".to_owned(),
                        // The template's own port: the refreshed files may already name the next one.
                        cfg.port.to_string(),
                    ]),
                    initial_delay_s: 1,
                    period_s: 5,
                    timeout_s: QUERY_TIMEOUT_S + 2,
                    threshold: 3,
                },
                // Restart only a server that has stopped accepting connections for 30 s, after a start-up grace
                // that covers asking the peer Sentinels (3 s each).
                alive: tcp_check(cfg.port, 15, 10),
            },
            Container {
                name: SENTINEL_CONTAINER,
                image: image.cloned(),
                command: script(START_SENTINEL),
                ports: vec![Port { name: SENTINEL_CONTAINER, port: SENTINEL_PORT }],
                mounts: vec![
                    mount(CONFIG_VOLUME, POD.config_dir),
                    mount(AUTH_VOLUME, POD.auth_dir),
                    mount(SENTINEL_VOLUME, POD.sentinel_dir),
                ],
                ready: tcp_check(SENTINEL_PORT, 1, 5),
                // A longer grace: the script may also wait up to 20 s for the primary's DNS name.
                alive: tcp_check(SENTINEL_PORT, 30, 10),
            },
        ],
        volumes: vec![
            Volume { name: CONFIG_VOLUME, source: Source::Files(rendered.files) },
            Volume { name: AUTH_VOLUME, source: Source::Secret { name: secret_name.clone(), mode: SECRET_MODE } },
            Volume { name: SENTINEL_VOLUME, source: Source::Scratch },
        ],
        secrets: vec![Secret { name: secret_name, data: rendered.auth }],
    })
}

/// The version 3 pod spec `pod-spec-set` takes for this deployment: [`workload`] as the podspec flavour renders it.
pub fn render_pod_spec(cfg: &RedisConfig, image: &ImageDetails, topo: &Deployment) -> anyhow::Result<String> {
    crate::workload::podspec::render(&workload(cfg, Some(image), topo)?)
}

fn tcp_check(port: u16, initial_delay_s: u32, period_s: u32) -> Check {
    Check { how: Probe::Tcp(port), initial_delay_s, period_s, timeout_s: 2, threshold: 3 }
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
fn render_settings(cfg: &RedisConfig, topo: &Deployment, layout: &Layout<'_>) -> String {
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
mod tests;
