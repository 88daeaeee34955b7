//! Clients of a deployment on juju-local, as the day-2 tests and the day-2 benchmark run them: how a name the
//! charm published reaches a pod, and the two ways clients find the primary.
//!
//! - [`relation_route`]: a client of the `db` relation (interface `redis`) that reads host, port and password
//!   from the relation data, again after every failed command, as a client charm does in its relation-changed
//!   hook; [`pinned_route`] keeps the password it first read (a client that is slow to move);
//! - [`sentinel_route`]: a client that asks the Sentinels (`SENTINEL get-master-addr-by-name`) where the primary
//!   is, as Sentinel-aware client libraries do.
//!
//! Names resolve to pod addresses the way the cluster's DNS would: `<pod>.<app>-endpoints[.<ns>.svc.<domain>]`
//! is the pod of that name, from the kubelet's records (a pod being deleted has no name any more).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redis_k8s::redis::resp;
use serde_json::Value;

use super::load::{Route, Target};

fn read_json(path: &Path) -> Value {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// The address of the pod a published name stands for (`None` when no such pod is running).
pub fn resolve(model_dir: &Path, host: &str) -> Option<String> {
    let pod = host.split('.').next()?;
    let pods = read_json(&model_dir.join("kubelet/pods.json"));
    pods["pods"].as_object()?.values().find_map(|p| {
        (p["name"] == pod && p["deletion_ms"].is_null()).then(|| p["address"].as_str().map(str::to_string)).flatten()
    })
}

/// What the first unit (in name order) of relation `rid` publishes: host, port, password (decoded as the
/// reactive `interface:redis` requirer does).
pub fn relation_data(model_dir: &Path, app: &str, rid: u64) -> Option<(String, u16, Option<String>)> {
    let model = read_json(&model_dir.join("model.json"));
    let units = model["relations"][rid.to_string()]["unit_data"].as_object()?.clone();
    let mut names: Vec<&String> = units.keys().filter(|u| u.starts_with(&format!("{app}/"))).collect();
    names.sort();
    names.into_iter().find_map(|u| {
        let bag = &units[u];
        let host = bag["host"].as_str()?.to_string();
        let port = bag["port"].as_str()?.parse().ok()?;
        let password =
            bag["password"].as_str().map(|p| serde_json::from_str::<String>(p).unwrap_or_else(|_| p.to_string()));
        Some((host, port, password))
    })
}

/// A client of relation `rid` that re-reads host, port and password after every failed command.
pub fn relation_route(model_dir: &Path, app: &str, rid: u64) -> Route {
    let (dir, app) = (model_dir.to_path_buf(), app.to_string());
    Arc::new(move || {
        let (host, port, password) = relation_data(&dir, &app, rid)?;
        Some(Target { addr: format!("{}:{port}", resolve(&dir, &host)?), password })
    })
}

/// Like [`relation_route`], but keeping `password` whatever the relation says later.
pub fn pinned_route(model_dir: &Path, app: &str, rid: u64, password: &str) -> Route {
    let (dir, app, password) = (model_dir.to_path_buf(), app.to_string(), password.to_string());
    Arc::new(move || {
        let (host, port, _) = relation_data(&dir, &app, rid)?;
        Some(Target { addr: format!("{}:{port}", resolve(&dir, &host)?), password: Some(password.clone()) })
    })
}

/// A client that asks the Sentinels of pods `0..units` where the primary is, with the password `password()`
/// gives (read again on every call).
pub fn sentinel_route(
    model_dir: &Path,
    app: &str,
    units: u32,
    password: Arc<dyn Fn() -> Option<String> + Send + Sync>,
) -> Route {
    let (dir, app): (PathBuf, String) = (model_dir.to_path_buf(), app.to_string());
    Arc::new(move || {
        let pw = password();
        let sentinels: Vec<String> =
            (0..units).filter_map(|n| resolve(&dir, &format!("{app}-{n}"))).map(|a| format!("{a}:26379")).collect();
        let (host, port) =
            resp::sentinel_primary(&sentinels, &app, pw.as_deref(), std::time::Duration::from_millis(500))?;
        Some(Target { addr: format!("{}:{port}", resolve(&dir, &host)?), password: pw })
    })
}
