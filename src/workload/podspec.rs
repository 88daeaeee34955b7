//! A [`Workload`] as the version 3 pod spec `pod-spec-set` takes (reference §5).
//!
//! Juju decodes the spec strictly and rejects unknown keys, so it is built from typed structs whose field names and
//! order are the output's. Rendering is deterministic: the same workload gives the same bytes, and Juju sees no
//! change. Each volume becomes a `volumeConfig` entry in every container that mounts it (Juju turns a file set
//! into a ConfigMap referenced by name, so its contents reach running pods without a restart); Secrets go under
//! `kubernetesResources.secrets`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::{Check, ImageDetails, Probe as CheckProbe, Source, Workload};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec<'a> {
    version: u32,
    containers: Vec<Container<'a>>,
    kubernetes_resources: KubernetesResources<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    name: &'a str,
    image_details: &'a ImageDetails,
    image_pull_policy: &'a str,
    command: &'a [String],
    ports: Vec<Port<'a>>,
    volume_config: Vec<FileSet<'a>>,
    kubernetes: KubernetesSpec<'a>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<SecretVolume<'a>>,
}

#[derive(Serialize)]
struct File<'a> {
    path: &'a str,
    content: &'a str,
}

/// `emptyDir: {}`: a node-local scratch volume with the default medium and no size limit.
#[derive(Serialize)]
struct EmptyDir {}

/// A Secret defined in this spec, mounted as files named after its keys.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretVolume<'a> {
    name: &'a str,
    default_mode: u32,
}

#[derive(Serialize)]
struct KubernetesResources<'a> {
    secrets: Vec<Secret<'a>>,
}

/// Juju's `K8sSecret`: name, type, annotations, data, stringData.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Secret<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    string_data: &'a BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubernetesSpec<'a> {
    readiness_probe: Probe<'a>,
    liveness_probe: Probe<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Probe<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<ExecAction<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp_socket: Option<TcpSocket>,
    initial_delay_seconds: u32,
    period_seconds: u32,
    timeout_seconds: u32,
    failure_threshold: u32,
}

#[derive(Serialize)]
struct ExecAction<'a> {
    command: &'a [String],
}

#[derive(Serialize)]
struct TcpSocket {
    port: u16,
}

fn probe(check: &Check) -> Probe<'_> {
    let (exec, tcp_socket) = match &check.how {
        CheckProbe::Exec(command) => (Some(ExecAction { command }), None),
        CheckProbe::Tcp(port) => (None, Some(TcpSocket { port: *port })),
    };
    Probe {
        exec,
        tcp_socket,
        initial_delay_seconds: check.initial_delay_s,
        period_seconds: check.period_s,
        timeout_seconds: check.timeout_s,
        failure_threshold: check.threshold,
    }
}

/// The pod spec's YAML for `workload`.
///
/// # Errors
///
/// A container mounting a volume the workload does not define (a bug in whoever described it), or YAML that
/// cannot be written.
pub fn render(workload: &Workload) -> Result<String> {
    let mut containers = Vec::new();
    for c in &workload.containers {
        let mut volume_config = Vec::new();
        for m in &c.mounts {
            let Some(volume) = workload.volumes.iter().find(|v| v.name == m.volume) else {
                bail!("container {} mounts volume {}, which the workload does not define", c.name, m.volume);
            };
            let (files, empty_dir, secret) = match &volume.source {
                Source::Files(files) => {
                    (Some(files.iter().map(|(path, content)| File { path, content }).collect()), None, None)
                }
                Source::Scratch => (None, Some(EmptyDir {}), None),
                Source::Secret { name, mode } => (None, None, Some(SecretVolume { name, default_mode: *mode })),
            };
            volume_config.push(FileSet { name: volume.name, mount_path: &m.path, files, empty_dir, secret });
        }
        let Some(image_details) = &c.image else {
            bail!("container {} has no image: a pod spec names the image of each container", c.name);
        };
        containers.push(Container {
            name: c.name,
            image_details,
            image_pull_policy: "IfNotPresent",
            command: &c.command,
            ports: c.ports.iter().map(|p| Port { name: p.name, container_port: p.port, protocol: "TCP" }).collect(),
            volume_config,
            kubernetes: KubernetesSpec { readiness_probe: probe(&c.ready), liveness_probe: probe(&c.alive) },
        });
    }
    let secrets =
        workload.secrets.iter().map(|s| Secret { name: &s.name, kind: "Opaque", string_data: &s.data }).collect();
    let spec = PodSpec { version: 3, containers, kubernetes_resources: KubernetesResources { secrets } };
    serde_yaml::to_string(&spec).context("cannot serialise the pod spec")
}

#[cfg(test)]
mod tests {
    use super::super::{Container, Mount, Port, Secret, Volume};
    use super::*;

    fn image() -> ImageDetails {
        ImageDetails { image_path: "redis:7.0".into(), username: String::new(), password: String::new() }
    }

    fn check(how: CheckProbe) -> Check {
        Check { how, initial_delay_s: 1, period_s: 5, timeout_s: 2, threshold: 3 }
    }

    fn workload(mount: &'static str) -> Workload {
        Workload {
            containers: vec![Container {
                name: "c",
                image: Some(image()),
                command: vec!["sh".into(), "/etc/c/run.sh".into()],
                ports: vec![Port { name: "c", port: 7000 }],
                mounts: vec![Mount { volume: mount, path: "/etc/c".into() }],
                ready: check(CheckProbe::Exec(vec!["true".into()])),
                alive: check(CheckProbe::Tcp(7000)),
            }],
            volumes: vec![
                Volume { name: "files", source: Source::Files(vec![("run.sh", "exec sleep 1\n".into())]) },
                Volume { name: "scratch", source: Source::Scratch },
            ],
            secrets: vec![Secret { name: "s".into(), data: BTreeMap::from([("k", "v".to_owned())]) }],
        }
    }

    #[test]
    fn each_mount_becomes_a_volume_config_entry_with_its_source() {
        let yaml = render(&workload("files")).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let c = &v["containers"][0];
        assert_eq!(c["volumeConfig"][0]["mountPath"], "/etc/c");
        assert_eq!(c["volumeConfig"][0]["files"][0]["path"], "run.sh");
        assert_eq!(c["kubernetes"]["readinessProbe"]["exec"]["command"][0], "true");
        assert_eq!(c["kubernetes"]["livenessProbe"]["tcpSocket"]["port"], 7000);
        assert_eq!(v["kubernetesResources"]["secrets"][0]["type"], "Opaque");
        let scratch: serde_yaml::Value = serde_yaml::from_str(&render(&workload("scratch")).unwrap()).unwrap();
        assert!(scratch["containers"][0]["volumeConfig"][0]["emptyDir"].is_mapping());
    }

    #[test]
    fn a_mount_of_a_volume_that_is_not_defined_is_refused() {
        let e = render(&workload("nowhere")).unwrap_err();
        assert_eq!(e.to_string(), "container c mounts volume nowhere, which the workload does not define");
    }

    #[test]
    fn debug_output_hides_secret_values() {
        let shown = format!("{:?}", workload("files").secrets);
        assert!(shown.contains("\"k\"") && !shown.contains("\"v\""), "{shown}");
    }
}
