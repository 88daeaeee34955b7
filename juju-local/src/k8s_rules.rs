//! The Kubernetes API server's rules that Juju leaves unchecked (reference §0.10), applied when the
//! committed spec is "applied" to the cluster. A violation is not a hook failure: it becomes the
//! application's operator status `error` with a message in the API server's wording.

use crate::podspec::PodSpec;
use std::collections::BTreeSet;

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must \
start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

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

/// Checks a spec as the API server would on create/update. `Err` is the operator error message.
/// `storage` holds the locations of the charm's filesystem storage, which Juju mounts into every
/// container after the spec's own volumes (so a volumeConfig at the same path is a duplicate mount).
pub fn check(
    app: &str,
    spec: &PodSpec,
    stateful: bool,
    service_omitted: bool,
    storage: &[String],
) -> Result<(), String> {
    let kind = if stateful { "StatefulSet.apps" } else { "Deployment.apps" };
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    let mut service_ports = 0;
    let mut unnamed = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let (group, idx) = if c.init { ("initContainers", i) } else { ("containers", i) };
        let field = format!("spec.template.spec.{group}[{idx}]");
        if !is_dns1123_label(&c.name) {
            errs.push(format!("{field}.name: Invalid value: {:?}: {LABEL_MSG}", c.name));
        } else if !names.insert(c.name.clone()) {
            errs.push(format!("{field}.name: Duplicate value: {:?}", c.name));
        }
        let mounts: Vec<&str> =
            c.volume_config.iter().map(|v| v.mount_path.as_str()).chain(storage.iter().map(String::as_str)).collect();
        for (k, m) in mounts.iter().enumerate() {
            if mounts[..k].contains(m) {
                errs.push(format!("{field}.volumeMounts[{k}].mountPath: Invalid value: {m:?}: must be unique"));
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
            if let Some(proto) = &p.protocol
                && !proto.is_empty()
                && !["TCP", "UDP", "SCTP"].contains(&proto.as_str())
            {
                errs.push(format!(
                    "{pf}.protocol: Unsupported value: {proto:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""
                ));
            }
            match p.name.as_deref() {
                Some(n) if !n.is_empty() => {
                    if let Some(problem) = port_name_problem(n) {
                        errs.push(format!("{pf}.name: Invalid value: {n:?}: {problem}"));
                    }
                }
                _ => unnamed.push(service_ports),
            }
            if p.container_port != 0 && !c.init {
                service_ports += 1;
            }
        }
    }
    if !errs.is_empty() {
        return Err(format!("{kind} {app:?} is invalid: {}", errs.join(", ")));
    }
    if !service_omitted {
        if service_ports == 0 {
            return Err(format!("ports are required for kubernetes service {app:?}"));
        }
        if service_ports > 1
            && let Some(i) = unnamed.first()
        {
            return Err(format!("Service {app:?} is invalid: spec.ports[{i}].name: Required value"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podspec;

    fn spec(ports: &str) -> PodSpec {
        podspec::parse(&format!("version: 3\ncontainers:\n- name: redis\n  image: redis\n  ports: {ports}\n")).unwrap()
    }

    #[test]
    fn protocol_must_be_upper_case() {
        let e = check("r", &spec("[{containerPort: 6379, protocol: tcp}]"), false, false, &[]).unwrap_err();
        assert!(e.starts_with("Deployment.apps \"r\" is invalid: spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"tcp\""), "{e}");
        assert!(check("r", &spec("[{containerPort: 6379, protocol: TCP}]"), false, false, &[]).is_ok());
    }

    #[test]
    fn ports_and_names() {
        assert!(
            check("r", &spec("[{containerPort: 70000}]"), false, false, &[])
                .unwrap_err()
                .contains("between 1 and 65535")
        );
        assert_eq!(
            check("r", &spec("[]"), true, false, &[]).unwrap_err(),
            "ports are required for kubernetes service \"r\""
        );
        assert!(check("r", &spec("[]"), true, true, &[]).is_ok());
        assert!(check("r", &spec("[{containerPort: 1, name: Redis}]"), false, false, &[]).is_err());
        assert!(check("r", &spec("[{containerPort: 1, name: a-very-long-port-name}]"), false, false, &[]).is_err());
        let two =
            check("r", &spec("[{containerPort: 1, name: a}, {containerPort: 2}]"), false, false, &[]).unwrap_err();
        assert_eq!(two, "Service \"r\" is invalid: spec.ports[1].name: Required value");
    }

    #[test]
    fn storage_and_volume_at_the_same_path_clash() {
        let s = podspec::parse("version: 3\ncontainers:\n- name: redis\n  image: redis\n  ports: [{containerPort: 1}]\n  volumeConfig: [{name: d, mountPath: /data, emptyDir: {}}]\n").unwrap();
        let e = check("r", &s, true, false, &["/data".into()]).unwrap_err();
        assert!(
            e.ends_with(
                "spec.template.spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique"
            ),
            "{e}"
        );
        assert!(check("r", &s, true, false, &["/var/lib/redis".into()]).is_ok());
    }
}
