//! The Kubernetes API server's validation that Juju leaves unchecked (reference §0.10), applied to the
//! objects Juju sends: the application Service (built from the containers' ports) and the workload
//! (StatefulSet or Deployment) pod template. Messages are the API server's
//! (`apimachinery/pkg/util/validation/field/errors.go`: `<field>: <body>`; `errors.NewInvalid`:
//! `<Kind> "<name>" is invalid: <aggregate>`, where an aggregate of one is bare and several are
//! `[e1, e2]`). How Juju reports them (or drops them) is `workload::ensure_service`'s business.

use crate::workload::{ContainerT, PodTemplate, Workload};
use std::collections::BTreeSet;

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must \
start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Why an object was refused.
#[derive(Debug, PartialEq)]
pub enum Rejection {
    /// A Juju-side error, reported as is.
    Plain(String),
    /// The API server's Invalid error (its full text).
    Invalid(String),
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// IANA_SVC_NAME, the rule for container port names (`validation.IsValidPortName`).
fn port_name_problem(name: &str) -> Option<&'static str> {
    if name.len() > 15 {
        return Some("must be no more than 15 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Some("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if name.contains("--") {
        return Some("must not contain consecutive hyphens");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Some("must contain at least one letter (a-z)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must not begin or end with a hyphen");
    }
    None
}

fn protocol_problem(proto: &Option<String>) -> Option<String> {
    match proto {
        Some(p) if !p.is_empty() && !["TCP", "UDP", "SCTP"].contains(&p.as_str()) => {
            Some(format!("Unsupported value: {p:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""))
        }
        _ => None,
    }
}

fn aggregate(kind: &str, name: &str, errs: &[String]) -> String {
    let body = if errs.len() == 1 { errs[0].clone() } else { format!("[{}]", errs.join(", ")) };
    format!("{kind} {name:?} is invalid: {body}")
}

/// The application Service Juju builds from the containers' ports (k8s.go `ensureService`: every port
/// of every container with a containerPort; `configureService`), checked as the API server would.
pub fn check_service(app: &str, t: &PodTemplate) -> Result<(), Rejection> {
    let ports: Vec<_> = t.containers.iter().flat_map(|c| c.ports.iter()).filter(|p| p.container_port != 0).collect();
    if ports.is_empty() {
        return Err(Rejection::Plain(format!("ports are required for kubernetes service {app:?}")));
    }
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        match p.name.as_deref().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => errs.push(format!("{f}.name: Required value")),
            None => {}
            Some(n) if !is_dns1123_label(n) => errs.push(format!("{f}.name: Invalid value: {n:?}: {LABEL_MSG}")),
            Some(n) if !names.insert(n.to_string()) => errs.push(format!("{f}.name: Duplicate value: {n:?}")),
            Some(_) => {}
        }
        if !(1..=65535).contains(&p.container_port) {
            errs.push(format!("{f}.port: Invalid value: {}: must be between 1 and 65535, inclusive", p.container_port));
        }
        if let Some(problem) = protocol_problem(&p.protocol) {
            errs.push(format!("{f}.protocol: {problem}"));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(Rejection::Invalid(aggregate("Service", app, &errs))) }
}

fn check_container(field: &str, c: &ContainerT, volumes: &BTreeSet<&str>, names: &mut BTreeSet<String>) -> Vec<String> {
    let mut errs = Vec::new();
    if !is_dns1123_label(&c.name) {
        errs.push(format!("{field}.name: Invalid value: {:?}: {LABEL_MSG}", c.name));
    } else if !names.insert(c.name.clone()) {
        errs.push(format!("{field}.name: Duplicate value: {:?}", c.name));
    }
    // `ValidateVolumeMounts`: the name must be a volume of the pod (`IsMatchedVolume`), the mountPath
    // unique in the container.
    let mut paths = BTreeSet::new();
    for (k, m) in c.volume_mounts.iter().enumerate() {
        if !volumes.contains(m.name.as_str()) {
            errs.push(format!("{field}.volumeMounts[{k}].name: Not found: {:?}", m.name));
        }
        if !paths.insert(m.mount_path.clone()) {
            errs.push(format!(
                "{field}.volumeMounts[{k}].mountPath: Invalid value: {:?}: must be unique",
                m.mount_path
            ));
        }
    }
    for (j, p) in c.ports.iter().enumerate() {
        let pf = format!("{field}.ports[{j}]");
        if !(1..=65535).contains(&p.container_port) {
            errs.push(format!(
                "{pf}.containerPort: Invalid value: {}: must be between 1 and 65535, inclusive",
                p.container_port
            ));
        }
        if let Some(problem) = protocol_problem(&p.protocol) {
            errs.push(format!("{pf}.protocol: {problem}"));
        }
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty())
            && let Some(problem) = port_name_problem(n)
        {
            errs.push(format!("{pf}.name: Invalid value: {n:?}: {problem}"));
        }
    }
    errs
}

/// The workload's pod template, as `ValidatePodTemplateSpec` would check it on create or update.
/// `Err` is the API server's message (`StatefulSet.apps "x" is invalid: …`).
pub fn check_workload(app: &str, kind: &str, w: &Workload) -> Result<(), String> {
    let t = &w.template;
    let mut volumes: BTreeSet<&str> = t.volumes.iter().map(|v| v.name.as_str()).collect();
    volumes.extend(w.volume_claims.iter().map(String::as_str));
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, c) in t.init_containers.iter().enumerate() {
        errs.extend(check_container(&format!("spec.template.spec.initContainers[{i}]"), c, &volumes, &mut names));
    }
    for (i, c) in t.containers.iter().enumerate() {
        errs.extend(check_container(&format!("spec.template.spec.containers[{i}]"), c, &volumes, &mut names));
    }
    if errs.is_empty() { Ok(()) } else { Err(aggregate(&format!("{kind}.apps"), app, &errs)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Mount, PortT, Volume, VolumeSource};

    fn container(ports: Vec<PortT>) -> ContainerT {
        ContainerT { name: "redis".into(), image: "redis".into(), ports, ..Default::default() }
    }

    fn port(n: i32, proto: Option<&str>, name: Option<&str>) -> PortT {
        PortT { container_port: n, protocol: proto.map(String::from), name: name.map(String::from) }
    }

    fn workload(c: ContainerT) -> Workload {
        Workload { template: PodTemplate { containers: vec![c], ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn protocol_must_be_upper_case() {
        let t = workload(container(vec![port(6379, Some("tcp"), None)])).template;
        assert_eq!(
            check_service("r", &t).unwrap_err(),
            Rejection::Invalid(
                "Service \"r\" is invalid: spec.ports[0].protocol: Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\"".into()
            )
        );
        assert!(check_service("r", &workload(container(vec![port(6379, Some("TCP"), None)])).template).is_ok());
    }

    #[test]
    fn ports_and_names() {
        let w = workload(container(vec![port(70000, None, None)]));
        assert!(check_workload("r", "Deployment", &w).unwrap_err().contains("between 1 and 65535"));
        assert_eq!(
            check_service("r", &workload(container(vec![])).template).unwrap_err(),
            Rejection::Plain("ports are required for kubernetes service \"r\"".into())
        );
        let bad = workload(container(vec![port(1, None, Some("a-very-long-port-name"))]));
        assert!(check_workload("r", "StatefulSet", &bad).unwrap_err().contains("no more than 15 characters"));
        let two = workload(container(vec![port(1, None, Some("a")), port(2, None, None)]));
        assert_eq!(
            check_service("r", &two.template).unwrap_err(),
            Rejection::Invalid("Service \"r\" is invalid: spec.ports[1].name: Required value".into())
        );
    }

    #[test]
    fn a_mount_of_a_missing_volume_is_not_found() {
        let mut c = container(vec![port(1, None, None)]);
        c.volume_mounts = vec![
            Mount { name: "a".into(), mount_path: "/a".into(), sub_path: None },
            Mount { name: "redis-conf-config".into(), mount_path: "/b".into(), sub_path: None },
        ];
        let mut w = workload(c);
        w.template.volumes = vec![Volume { name: "a".into(), source: VolumeSource::EmptyDir { medium: None } }];
        assert_eq!(
            check_workload("redis", "StatefulSet", &w).unwrap_err(),
            "StatefulSet.apps \"redis\" is invalid: spec.template.spec.containers[0].volumeMounts[1].name: Not found: \"redis-conf-config\""
        );
    }

    #[test]
    fn storage_and_volume_at_the_same_path_clash() {
        let mut c = container(vec![port(1, None, None)]);
        c.volume_mounts = vec![
            Mount { name: "d".into(), mount_path: "/data".into(), sub_path: None },
            Mount { name: "data".into(), mount_path: "/data".into(), sub_path: None },
        ];
        let mut w = workload(c);
        w.template.volumes = vec![Volume { name: "d".into(), source: VolumeSource::EmptyDir { medium: None } }];
        w.volume_claims = vec!["data".into()];
        let e = check_workload("r", "StatefulSet", &w).unwrap_err();
        assert!(
            e.ends_with(
                "spec.template.spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique"
            ),
            "{e}"
        );
    }
}
