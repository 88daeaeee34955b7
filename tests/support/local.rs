//! Where the end-to-end suites find what they drive: the built `.charm` and the juju-local binary.

use std::path::{Path, PathBuf};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The built charm: `REDIS_K8S_CHARM`, else `<repo>/redis-k8s.charm`; fails clearly when missing.
pub fn charm() -> PathBuf {
    let p = std::env::var_os("REDIS_K8S_CHARM")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join("redis-k8s.charm"));
    assert!(p.is_file(), "{} is missing: build it with `make charm`", p.display());
    p
}

/// The juju-local binary: `JUJU_LOCAL_BIN`, else the workspace's debug or release build.
pub fn juju_local() -> PathBuf {
    if let Some(p) = std::env::var_os("JUJU_LOCAL_BIN") {
        return PathBuf::from(p);
    }
    for profile in ["debug", "release"] {
        let p = Path::new(REPO).join("target").join(profile).join("juju-local");
        if p.is_file() {
            return p;
        }
    }
    panic!("juju-local is not built: run `cargo build -p juju-local` (make test does)");
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
