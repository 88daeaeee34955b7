//! `juju status` for the local model (reference §7): the CAAS unit display status combines the
//! charm's status with the pod's container status (readiness probes included), the application
//! status is the leader-set one or derived from the units by severity, an operator (Kubernetes apply)
//! error overrides it, and the agent column shows `error hook failed: "<hook>"` after a failure.

use crate::kubelet::{self, PodsFile};
use crate::model::{App, Model, NetMode, StatusInfo, Unit};
use serde_json::{Value, json};

const WAITING_FOR_CONTAINER: &str = "waiting for container";

/// core/status/caas.go UnitDisplayStatus. `expect_workload` is `state.CheckApplicationExpectsWorkload`:
/// false for a sidecar (format v2) application, whose charm-set status shows before any container status.
fn unit_display(charm: &StatusInfo, container: Option<&StatusInfo>, expect_workload: bool) -> StatusInfo {
    if charm.status == "terminated" {
        return charm.clone();
    }
    let Some(c) = container else {
        if !expect_workload {
            // isStatusModified && !expectWorkload: the charm's status; unmodified: waiting, its message.
            if charm.status == "unknown" {
                return StatusInfo::new("waiting", &charm.message);
            }
            return charm.clone();
        }
        if charm.status == "active" || charm.status == "unknown" {
            return StatusInfo::new("waiting", WAITING_FOR_CONTAINER);
        }
        return charm.clone();
    };
    if !["active", "waiting", "blocked", "unknown"].contains(&charm.status.as_str()) {
        return charm.clone();
    }
    match c.status.as_str() {
        "error" | "blocked" | "allocating" => c.clone(),
        "waiting" if charm.status == "active" || charm.status == "unknown" => c.clone(),
        _ => charm.clone(),
    }
}

/// The address `status` shows for an application: its leader pod's address (the lowest unit when there
/// is no leader); juju-local models no ClusterIP.
pub fn service_address(app: &App) -> Option<String> {
    let n = app.leader.filter(|l| app.units.contains_key(l)).or_else(|| app.units.keys().next().copied())?;
    app.units.get(&n).map(|u| u.address.clone())
}

fn severity(s: &str) -> u8 {
    match s {
        "error" => 100,
        "blocked" => 90,
        "waiting" => 80,
        "maintenance" => 70,
        "active" => 60,
        "terminated" => 50,
        "unknown" => 40,
        _ => 0,
    }
}

struct UnitView {
    name: String,
    leader: bool,
    workload: StatusInfo,
    agent: StatusInfo,
    address: String,
    ports: Vec<String>,
}

fn unit_view(app: &App, n: u32, u: &Unit, pods: &PodsFile) -> UnitView {
    let charm = u.workload.clone().unwrap_or_else(|| StatusInfo::new("waiting", "agent initialising"));
    let pod = kubelet::pod_of(pods, &app.name, n);
    let container = kubelet::container_status(pod).map(|(s, m)| StatusInfo::new(&s, &m));
    let workload = unit_display(&charm, container.as_ref(), !app.sidecar);
    let ports = pod
        .map(|p| {
            p.template
                .containers
                .iter()
                .flat_map(|c| c.ports.iter())
                .map(|port| {
                    format!("{}/{}", port.container_port, port.protocol.clone().unwrap_or_else(|| "TCP".into()))
                })
                .collect()
        })
        .unwrap_or_default();
    UnitView {
        name: format!("{}/{n}", app.name),
        leader: app.leader == Some(n),
        workload,
        agent: u.agent.clone(),
        address: u.address.clone(),
        ports,
    }
}

fn app_status(app: &App, units: &[UnitView]) -> StatusInfo {
    if let Some(e) = &app.operator_error {
        return StatusInfo::new("error", e);
    }
    if let Some(s) = &app.app_status {
        return s.clone();
    }
    units
        .iter()
        .map(|u| &u.workload)
        .max_by_key(|s| severity(&s.status))
        .cloned()
        .unwrap_or_else(|| StatusInfo::new("unknown", ""))
}

fn app_version(app: &App) -> String {
    if !app.version.is_empty() {
        return app.version.clone();
    }
    app.applied_spec
        .as_deref()
        .and_then(|s| crate::podspec::parse(s).ok())
        .and_then(|s| s.containers.first().and_then(|c| c.image_details.as_ref().map(|d| d.image_path.clone())))
        .unwrap_or_default()
}

fn notes(model: &Model) -> Vec<String> {
    let mut n = Vec::new();
    match model.network.mode {
        NetMode::Netns => n.push(format!(
            "Pods have their own network namespaces on bridge {} ({}.0/24).",
            model.network.bridge.clone().unwrap_or_default(),
            model.network.prefix()
        )),
        NetMode::Loopback => n.push(format!(
            "No network namespaces ({}): pods share the host network on loopback addresses {}.x; units of one application collide on a port.",
            model.network.note.clone().unwrap_or_default(),
            model.network.prefix()
        )),
    }
    n.push("Images are not pulled: an image named \"redis\" runs the host's redis-server with the pod's files mounted over the host filesystem.".into());
    n.push("The application address is its leader pod's address; cluster DNS answers <app> with its Ready pods (no ClusterIP Service is modelled).".into());
    n
}

/// The JSON form (`status --format json`).
pub fn to_json(model: &Model, pods: &PodsFile) -> Value {
    let mut apps = serde_json::Map::new();
    for app in model.apps.values() {
        let units: Vec<UnitView> = app.units.iter().map(|(n, u)| unit_view(app, *n, u, pods)).collect();
        let st = app_status(app, &units);
        let mut uj = serde_json::Map::new();
        for u in &units {
            uj.insert(
                u.name.clone(),
                json!({
                    "workload-status": {"current": u.workload.status, "message": u.workload.message},
                    "juju-status": {"current": u.agent.status, "message": u.agent.message},
                    "leader": u.leader,
                    "address": u.address,
                    "open-ports": u.ports,
                }),
            );
        }
        apps.insert(
            app.name.clone(),
            json!({
                "charm": app.charm,
                "version": app_version(app),
                "scale": app.units.len(),
                "address": service_address(app).unwrap_or_default(),
                "application-status": {"current": st.status, "message": st.message},
                "units": uj,
            }),
        );
    }
    let remote: Vec<&String> = model.remote_apps.keys().collect();
    let relations: Vec<Value> = model
        .relations
        .values()
        .map(|r| json!({"id": r.id, "provider": format!("{}:{}", r.app, r.endpoint), "requirer": format!("{}:{}", r.remote_app, r.remote_endpoint), "interface": r.interface}))
        .collect();
    json!({
        "model": {"name": model.name, "type": "caas", "version": model.settings.juju_version, "network": format!("{:?}", model.network.mode).to_lowercase()},
        "applications": apps,
        "stand-in-applications": remote,
        "relations": relations,
        "notes": notes(model),
    })
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < r.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The tabular form, in `juju status` vocabulary.
pub fn to_table(model: &Model, pods: &PodsFile) -> String {
    let mut out = table(&[
        vec!["Model".into(), "Controller".into(), "Cloud/Region".into(), "Version".into()],
        vec![model.name.clone(), "juju-local".into(), "local/localhost".into(), model.settings.juju_version.clone()],
    ]);
    let mut app_rows =
        vec![["App", "Version", "Status", "Scale", "Charm", "Address", "Message"].map(String::from).to_vec()];
    let mut unit_rows = vec![["Unit", "Workload", "Agent", "Address", "Ports", "Message"].map(String::from).to_vec()];
    for app in model.apps.values() {
        let units: Vec<UnitView> = app.units.iter().map(|(n, u)| unit_view(app, *n, u, pods)).collect();
        let st = app_status(app, &units);
        app_rows.push(vec![
            app.name.clone(),
            app_version(app),
            st.status,
            app.units.len().to_string(),
            app.charm.clone(),
            service_address(app).unwrap_or_default(),
            st.message,
        ]);
        for u in units {
            let message = if u.agent.status == "error" { u.agent.message } else { u.workload.message };
            unit_rows.push(vec![
                format!("{}{}", u.name, if u.leader { "*" } else { "" }),
                u.workload.status,
                u.agent.status,
                u.address,
                u.ports.join(","),
                message,
            ]);
        }
    }
    for name in model.remote_apps.keys().filter(|n| !model.apps.contains_key(*n)) {
        app_rows.push(vec![
            name.clone(),
            String::new(),
            "active".into(),
            "1".into(),
            "(stand-in)".into(),
            model.network.host_address(),
            String::new(),
        ]);
    }
    out.push('\n');
    out.push_str(&table(&app_rows));
    out.push('\n');
    out.push_str(&table(&unit_rows));
    if !model.relations.is_empty() {
        let mut rows = vec![["Relation provider", "Requirer", "Interface", "Type"].map(String::from).to_vec()];
        for r in model.relations.values() {
            rows.push(vec![
                format!("{}:{}", r.app, r.endpoint),
                format!("{}:{}", r.remote_app, r.remote_endpoint),
                r.interface.clone(),
                if r.app == r.remote_app { "peer" } else { "regular" }.into(),
            ]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    out.push('\n');
    for n in notes(model) {
        out.push_str(&format!("Note: {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_only_with_a_running_container() {
        let active = StatusInfo::new("active", "");
        assert_eq!(unit_display(&active, None, true).message, WAITING_FOR_CONTAINER);
        let running = StatusInfo::new("running", "");
        assert_eq!(unit_display(&active, Some(&running), true), active);
        let waiting = StatusInfo::new("waiting", "not ready");
        assert_eq!(unit_display(&active, Some(&waiting), true), waiting);
        let err = StatusInfo::new("error", "crash");
        assert_eq!(unit_display(&StatusInfo::new("blocked", "x"), Some(&err), true), err);
        let maint = StatusInfo::new("maintenance", "busy");
        assert_eq!(unit_display(&maint, Some(&err), true), maint);
    }
}
