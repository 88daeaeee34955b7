//! Where the end-to-end suites find what they drive: the built `.charm` and the juju-local binary; and what
//! those root-only suites (`e2e_local`, `soak`) check before they start, so that on a machine lacking
//! something they fail with one line naming it ([`require_pods`]) instead of somewhere inside juju-local.

use std::path::{Path, PathBuf};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The commands juju-local runs a pod with: bubblewrap for its mount namespace, `ip` for its network
/// namespace's links, and the machine's redis-server as the `redis` image.
pub const POD_COMMANDS: &[&str] = &["bwrap", "ip", "redis-server"];

/// Where the built charm is looked for: `REDIS_K8S_CHARM`, else `<repo>/redis-k8s.charm`.
pub fn charm_path() -> PathBuf {
    std::env::var_os("REDIS_K8S_CHARM").map(PathBuf::from).unwrap_or_else(|| Path::new(REPO).join("redis-k8s.charm"))
}

/// The built charm: `REDIS_K8S_CHARM`, else `<repo>/redis-k8s.charm`; fails clearly when missing.
pub fn charm() -> PathBuf {
    let p = charm_path();
    assert!(p.is_file(), "{} is missing: build it with `make charm`", p.display());
    p
}

/// Where the built sidecar charm is looked for: `REDIS_K8S_SIDECAR_CHARM`, else `<repo>/redis-k8s-sidecar.charm`.
#[allow(dead_code)] // e2e_local only
pub fn sidecar_charm_path() -> PathBuf {
    std::env::var_os("REDIS_K8S_SIDECAR_CHARM")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join("redis-k8s-sidecar.charm"))
}

/// The built sidecar charm; fails clearly when missing.
#[allow(dead_code)] // e2e_local only
pub fn sidecar_charm() -> PathBuf {
    let p = sidecar_charm_path();
    assert!(p.is_file(), "{} is missing: build it with `make charm` (or set REDIS_K8S_SIDECAR_CHARM)", p.display());
    p
}

/// Where the juju-local binary is: `JUJU_LOCAL_BIN` (as given), else the workspace's debug or release build;
/// `None` when neither is set or built.
pub fn juju_local_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JUJU_LOCAL_BIN") {
        return Some(PathBuf::from(p));
    }
    ["debug", "release"]
        .iter()
        .map(|profile| Path::new(REPO).join("target").join(profile).join("juju-local"))
        .find(|p| p.is_file())
}

/// The juju-local binary: `JUJU_LOCAL_BIN`, else the workspace's debug or release build.
pub fn juju_local() -> PathBuf {
    juju_local_path()
        .unwrap_or_else(|| panic!("juju-local is not built: run `cargo build -p juju-local` (make test does)"))
}

/// What a suite running real pods on juju-local needs and the machine lacks, one phrase each (empty when
/// nothing): root (`euid` 0, for network namespaces), every [`POD_COMMANDS`] entry `on_path`, the charm at
/// `charm`, the juju-local binary at `juju_local`.
pub fn missing_for_pods(
    euid: u32,
    on_path: impl Fn(&str) -> bool,
    charm: &Path,
    juju_local: Option<&Path>,
) -> Vec<String> {
    let mut missing = Vec::new();
    if euid != 0 {
        missing.push("root (network namespaces)".to_string());
    }
    let commands: Vec<&str> = POD_COMMANDS.iter().copied().filter(|c| !on_path(c)).collect();
    match commands.as_slice() {
        [] => {}
        [one] => missing.push(format!("{one} on PATH (`make setup`)")),
        [init @ .., last] => missing.push(format!("{} and {last} on PATH (`make setup`)", init.join(", "))),
    }
    if !charm.is_file() {
        missing.push(format!("the charm at {} (`make charm`, or set REDIS_K8S_CHARM)", charm.display()));
    }
    match juju_local {
        Some(p) if p.is_file() => {}
        Some(p) => missing.push(format!("juju-local at {} (JUJU_LOCAL_BIN names no file)", p.display())),
        None => missing.push("juju-local (`cargo build -p juju-local`, or set JUJU_LOCAL_BIN)".to_string()),
    }
    missing
}

/// The one line a root-only suite fails with when the machine lacks `missing` (from [`missing_for_pods`]).
pub fn needs_line(suite: &str, missing: &[String]) -> String {
    format!("{suite} needs {}: `make test` as root provides all of it", missing.join(", "))
}

/// Fails the calling test with one line naming everything `suite` needs and this machine lacks (see
/// [`missing_for_pods`]); every test of a root-only suite calls it first, through its model's constructor.
pub fn require_pods(suite: &str) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let charm = charm_path();
    let juju_local = juju_local_path();
    let missing = missing_for_pods(euid, |c| which::which(c).is_ok(), &charm, juju_local.as_deref());
    if !missing.is_empty() {
        panic!("{}", needs_line(suite, &missing));
    }
}

/// A unit's entry in `juju-local run-action` output (`unit-<app>-<n>: {status, results, …}`, as
/// `juju run-action --wait` prints it).
pub fn action_result(out: &str, unit: &str) -> serde_yaml::Value {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(out).unwrap_or_else(|e| panic!("run-action printed no YAML ({e}): {out}"));
    doc[format!("unit-{}", unit.replace('/', "-")).as_str()].clone()
}

/// juju-local's kubelet record of a unit's pod (`<model>/kubelet/pods.json`, written by the kubelet
/// daemon): `netns`, `restarts`, `error`, `containers` (`name`, `pid`), … Null when the unit has no
/// pod. A pod still terminating for the unit is used only when it has no other.
pub fn pod_record(model_dir: &Path, app: &str, unit: u32) -> serde_json::Value {
    let pods: serde_json::Value = std::fs::read_to_string(model_dir.join("kubelet/pods.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut mine: Vec<&serde_json::Value> = pods["pods"]
        .as_object()
        .map(|m| m.values().filter(|p| p["app"] == app && p["unit"] == unit).collect())
        .unwrap_or_default();
    mine.sort_by_key(|p| !p["deletion_ms"].is_null());
    mine.first().map(|p| (*p).clone()).unwrap_or_default()
}

/// Every container pid juju-local's kubelet recorded for the model.
pub fn container_pids(model_dir: &Path) -> Vec<u32> {
    let pods: serde_json::Value = std::fs::read_to_string(model_dir.join("kubelet/pods.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    pods["pods"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|p| p["containers"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["pid"].as_u64())
        .filter(|p| *p > 0)
        .map(|p| p as u32)
        .collect()
}

/// Polls `f` every 250 ms until it gives a value, for at most `secs`; then fails naming `what`.
pub fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
