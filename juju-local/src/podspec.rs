//! The podspec v3 schema and Juju's validation of it at `pod-spec-set` time (reference §5): the YAML
//! is converted to JSON and decoded strictly (unknown keys give `json: unknown field "x"`), then the
//! structural rules of `caas/specs` are checked with Juju's messages. Kubernetes' own rules are
//! checked later, at apply time, by `k8s_rules`.

// Fields that juju-local accepts (strict decoding needs them) but does not act on are kept in the schema.
#![allow(dead_code)]

use crate::model::Version;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSpec {
    pub version: i64,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub service: Option<ServiceSpec>,
    #[serde(default)]
    pub configmaps: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub service_account: Option<ServiceAccount>,
    #[serde(default)]
    pub kubernetes_resources: Option<KubernetesResources>,
    #[serde(default)]
    pub omit_service_frontend: Option<bool>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub image_details: Option<ImageDetails>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub env_config: BTreeMap<String, Value>,
    #[serde(default)]
    pub volume_config: Vec<FileSet>,
    #[serde(default)]
    pub kubernetes: Option<ContainerKubernetes>,
}

impl Container {
    /// `image` takes precedence in the pod, as in Juju.
    pub fn image_ref(&self) -> String {
        match &self.image {
            Some(i) if !i.is_empty() => i.clone(),
            _ => self.image_details.as_ref().map(|d| d.image_path.clone()).unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageDetails {
    #[serde(default)]
    pub image_path: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub container_port: i32,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileSet {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mount_path: String,
    #[serde(default)]
    pub files: Option<Vec<File>>,
    #[serde(default)]
    pub host_path: Option<HostPath>,
    #[serde(default)]
    pub empty_dir: Option<EmptyDir>,
    #[serde(default)]
    pub config_map: Option<KeyFiles>,
    #[serde(default)]
    pub secret: Option<KeyFiles>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct File {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub mode: Option<u32>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPath {
    pub path: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmptyDir {
    #[serde(default)]
    pub medium: Option<String>,
    #[serde(default)]
    pub size_limit: Option<Value>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyFiles {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub files: Option<Vec<KeyToPath>>,
    #[serde(default)]
    pub default_mode: Option<u32>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyToPath {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub mode: Option<u32>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerKubernetes {
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    #[serde(default)]
    pub startup_probe: Option<Probe>,
    #[serde(default)]
    pub security_context: Option<Value>,
}

/// A core/v1 Probe (the handlers juju-local can evaluate, plus the timing fields).
#[derive(Deserialize, serde::Serialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default)]
    pub initial_delay_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
}

#[derive(Deserialize, serde::Serialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ExecAction {
    #[serde(default)]
    pub command: Vec<String>,
}

#[derive(Deserialize, serde::Serialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TcpSocketAction {
    pub port: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Deserialize, serde::Serialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpGetAction {
    #[serde(default)]
    pub path: Option<String>,
    pub port: Value,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub http_headers: Option<Value>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub update_strategy: Option<UpdateStrategy>,
    #[serde(default)]
    pub scale_policy: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateStrategy {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollingUpdate {
    #[serde(default)]
    pub max_unavailable: Option<Value>,
    #[serde(default)]
    pub max_surge: Option<Value>,
    #[serde(default)]
    pub partition: Option<i32>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAccount {
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
    #[serde(default)]
    pub roles: Vec<Role>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Role {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub global: bool,
    #[serde(default)]
    pub rules: Vec<Value>,
}

/// `kubernetesResources.pod` (Juju `caas/kubernetes/provider/specs/types.go` `PodSpec`, decoded strictly;
/// findings §9). Which keys a Juju version accepts is checked by `check_pod_fields`.
#[derive(Deserialize, serde::Serialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_gates: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    #[serde(default, rename = "hostPID", skip_serializing_if = "Option::is_none")]
    pub host_pid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// The Juju version from which each `kubernetesResources.pod` key is accepted (findings §9, read from
/// `specs/types.go` at each tag): restartPolicy … hostNetwork 2.8.0, hostPID 2.8.1, annotations 2.8.2,
/// priorityClassName/priority 2.8.4, labels 2.8.7. Earlier versions' strict decoder refuses the key.
const POD_FIELD_SINCE: &[(&str, Version)] = &[
    ("restartPolicy", Version(2, 8, 0)),
    ("activeDeadlineSeconds", Version(2, 8, 0)),
    ("terminationGracePeriodSeconds", Version(2, 8, 0)),
    ("securityContext", Version(2, 8, 0)),
    ("readinessGates", Version(2, 8, 0)),
    ("dnsPolicy", Version(2, 8, 0)),
    ("hostNetwork", Version(2, 8, 0)),
    ("hostPID", Version(2, 8, 1)),
    ("annotations", Version(2, 8, 2)),
    ("priorityClassName", Version(2, 8, 4)),
    ("priority", Version(2, 8, 4)),
    ("labels", Version(2, 8, 7)),
];

fn check_pod_fields(json: &Value, version: Version) -> Result<(), String> {
    let Some(pod) = json.get("kubernetesResources").and_then(|k| k.get("pod")).and_then(Value::as_object) else {
        return Ok(());
    };
    for key in pod.keys() {
        let known = POD_FIELD_SINCE.iter().find(|(k, _)| k == key);
        if known.is_none_or(|(_, since)| version < *since) {
            return Err(format!("json: unknown field {key:?}"));
        }
    }
    Ok(())
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesResources {
    #[serde(default)]
    pub pod: Option<PodResources>,
    #[serde(default)]
    pub secrets: Vec<Secret>,
    #[serde(default)]
    pub services: Option<Value>,
    #[serde(default)]
    pub custom_resource_definitions: Option<Value>,
    #[serde(default)]
    pub custom_resources: Option<Value>,
    #[serde(default)]
    pub mutating_webhook_configurations: Option<Value>,
    #[serde(default)]
    pub validating_webhook_configurations: Option<Value>,
    #[serde(default)]
    pub service_accounts: Option<Value>,
    #[serde(default)]
    pub ingress_resources: Option<Value>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Secret {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

impl PodSpec {
    /// The files of a secret, decoded (`data` is base64, `stringData` wins on conflicts).
    pub fn secret_files(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let s = self.kubernetes_resources.as_ref()?.secrets.iter().find(|s| s.name == name)?;
        let mut out = BTreeMap::new();
        for (k, v) in &s.data {
            out.insert(k.clone(), crate::util::base64_decode(v).unwrap_or_default());
        }
        for (k, v) in &s.string_data {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        Some(out)
    }
}

/// Parses a spec already accepted (no version check).
pub fn parse(text: &str) -> Result<PodSpec, String> {
    parse_for(text, None)
}

/// Parses and validates a spec exactly when `pod-spec-set` runs, as the given Juju version's strict
/// decoder does. Errors carry Juju's message.
pub fn parse_for(text: &str, juju: Option<Version>) -> Result<PodSpec, String> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| format!("yaml: {e}"))?;
    let json: Value = serde_json::to_value(&yaml).map_err(|e| format!("yaml: {e}"))?;
    let version = match json.get("version") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| format!("json: cannot unmarshal {v} into version"))?,
    };
    if version != 3 {
        if version == 0 || version == 2 {
            return Err(format!("podspec version {version} is not supported by juju-local: use version 3"));
        }
        return Err(format!("latest supported version 3, but got podspec version {version}"));
    }
    if let Some(v) = juju {
        check_pod_fields(&json, v)?;
    }
    let spec: PodSpec = serde_json::from_value(json).map_err(|e| json_error(&e.to_string()))?;
    validate(&spec)?;
    Ok(spec)
}

/// Maps serde's messages onto Go's encoding/json ones for the common cases.
fn json_error(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some(field) = rest.split('`').next()
    {
        return format!("json: unknown field {field:?}");
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some(field) = rest.split('`').next()
    {
        return format!("json: missing field {field:?}");
    }
    format!("json: {msg}")
}

fn validate(spec: &PodSpec) -> Result<(), String> {
    if spec.containers.is_empty() {
        return Err("require at least one container spec".into());
    }
    let mut files_seen: BTreeMap<String, String> = BTreeMap::new();
    for c in &spec.containers {
        if c.name.is_empty() {
            return Err("spec name is missing".into());
        }
        if c.image_ref().is_empty() {
            return Err("spec image details is missing".into());
        }
        let mut names = BTreeSet::new();
        let mut mounts = BTreeSet::new();
        for fs in &c.volume_config {
            validate_file_set(spec, fs)?;
            if !names.insert(fs.name.clone()) {
                return Err(format!("duplicated file {:?} in container {:?} not valid", fs.name, c.name));
            }
            if !mounts.insert(fs.mount_path.clone()) {
                return Err(format!("duplicated mount path {:?} in container {:?} not valid", fs.mount_path, c.name));
            }
            let fingerprint = format!(
                "{:?}{:?}{:?}{:?}{:?}",
                fs.files.as_ref().map(|f| f.len()),
                fs.host_path.as_ref().map(|h| &h.path),
                fs.empty_dir.is_some(),
                fs.config_map.as_ref().map(|m| &m.name),
                fs.secret.as_ref().map(|m| &m.name)
            );
            if let Some(prev) = files_seen.get(&fs.name)
                && *prev != fingerprint
            {
                return Err(format!("duplicated file {:?} with different volume spec not valid", fs.name));
            }
            files_seen.insert(fs.name.clone(), fingerprint);
        }
    }
    if let Some(svc) = &spec.service {
        if let Some(us) = &svc.update_strategy {
            if us.kind.is_empty() {
                return Err("type is required".into());
            }
            if let Some(ru) = &us.rolling_update
                && ru.partition.is_some()
                && (ru.max_unavailable.is_some() || ru.max_surge.is_some())
            {
                return Err("partion can not be defined with maxUnavailable or maxSurge together".into());
            }
        }
        if let Some(p) = &svc.scale_policy
            && p != "parallel"
            && p != "serial"
        {
            return Err(format!("scale policy {p:?} not supported"));
        }
    }
    if let Some(sa) = &spec.service_account {
        if sa.roles.is_empty() {
            return Err("roles is required".into());
        }
        let named = sa.roles.iter().filter(|r| !r.name.is_empty()).count();
        if named != 0 && named != sa.roles.len() {
            return Err("either all or none of the roles should have a name set".into());
        }
        let mut seen = BTreeSet::new();
        for r in &sa.roles {
            if r.rules.is_empty() {
                return Err("rules is required".into());
            }
            if !r.name.is_empty() && !seen.insert(r.name.clone()) {
                return Err(format!("duplicated role name {:?} not valid", r.name));
            }
        }
    }
    if let Some(kr) = &spec.kubernetes_resources {
        for s in &kr.secrets {
            if s.name.is_empty() {
                return Err("name is missing".into());
            }
        }
    }
    Ok(())
}

fn validate_file_set(spec: &PodSpec, fs: &FileSet) -> Result<(), String> {
    if fs.name.is_empty() {
        return Err("file set name is missing".into());
    }
    if fs.mount_path.is_empty() {
        return Err(format!("mount path is missing for file set {:?}", fs.name));
    }
    let sources = [
        fs.files.is_some(),
        fs.host_path.is_some(),
        fs.empty_dir.is_some(),
        fs.config_map.is_some(),
        fs.secret.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources == 0 {
        return Err(format!("file set {:?} requires volume source", fs.name));
    }
    if sources > 1 {
        return Err(format!("file set {:?} can only have one volume source", fs.name));
    }
    for f in fs.files.iter().flatten() {
        if f.path.is_empty() {
            return Err(format!("Path is missing for {:?}", fs.name));
        }
        if f.content.is_empty() {
            return Err(format!("Content is missing for {:?}", fs.name));
        }
    }
    if let Some(h) = &fs.host_path
        && h.path.is_empty()
    {
        return Err(format!("Path is missing for {:?}", fs.name));
    }
    for (kf, is_secret) in [(&fs.config_map, false), (&fs.secret, true)] {
        let Some(kf) = kf else { continue };
        if kf.name.is_empty() {
            return Err(format!("Name is missing for {:?}", fs.name));
        }
        for k in kf.files.iter().flatten() {
            if k.key.is_empty() {
                return Err(format!("Key is missing for {:?}", fs.name));
            }
            if k.path.is_empty() {
                return Err(format!("Path is missing for {:?}", fs.name));
            }
        }
        let defined =
            if is_secret { spec.secret_files(&kf.name).is_some() } else { spec.configmaps.contains_key(&kf.name) };
        if !defined {
            let what = if is_secret { "secret" } else { "config map" };
            return Err(format!(
                "{what} {:?} referenced by file set {:?} is not defined in the spec",
                kf.name, fs.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version: 3\ncontainers:\n- name: redis\n  imageDetails: {imagePath: 'redis:7.0', username: '', password: ''}\n  ports: [{containerPort: 6379, protocol: TCP, name: redis}]\n  command: [redis-server]\n  envConfig: {A: 1}\n  volumeConfig:\n  - name: conf\n    mountPath: /etc/redis\n    files: [{path: redis.conf, content: 'port 6379'}]\n  kubernetes:\n    readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 2}\n";

    #[test]
    fn good_spec_parses() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.containers[0].image_ref(), "redis:7.0");
        assert_eq!(s.containers[0].ports[0].container_port, 6379);
    }

    #[test]
    fn unknown_keys_are_rejected_like_go_json() {
        let bad = GOOD.replace("  command:", "  foo: 1\n  command:");
        assert_eq!(parse(&bad).unwrap_err(), "json: unknown field \"foo\"");
        let bad = format!("{GOOD}x: 1\n");
        assert_eq!(parse(&bad).unwrap_err(), "json: unknown field \"x\"");
    }

    #[test]
    fn pod_fields_follow_the_juju_version() {
        let spec =
            format!("{GOOD}kubernetesResources:\n  pod:\n    labels: {{a: b}}\n    terminationGracePeriodSeconds: 5\n");
        assert!(parse_for(&spec, Some(Version(2, 8, 7))).is_ok());
        assert_eq!(parse_for(&spec, Some(Version(2, 8, 6))).unwrap_err(), "json: unknown field \"labels\"");
        let ann = format!("{GOOD}kubernetesResources:\n  pod:\n    annotations: {{a: b}}\n");
        assert_eq!(parse_for(&ann, Some(Version(2, 8, 1))).unwrap_err(), "json: unknown field \"annotations\"");
        let bad = format!("{GOOD}kubernetesResources:\n  pod:\n    nodeSelector: {{a: b}}\n");
        assert_eq!(parse_for(&bad, Some(Version(2, 9, 31))).unwrap_err(), "json: unknown field \"nodeSelector\"");
        assert_eq!(parse(&bad).unwrap_err(), "json: unknown field \"nodeSelector\"");
        let s = parse(&spec).unwrap();
        let pod = s.kubernetes_resources.unwrap().pod.unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(5));
    }

    #[test]
    fn juju_structural_messages() {
        assert_eq!(parse("version: 3\ncontainers: []\n").unwrap_err(), "require at least one container spec");
        assert_eq!(parse("version: 3\ncontainers: [{image: a}]\n").unwrap_err(), "spec name is missing");
        assert_eq!(parse("version: 3\ncontainers: [{name: a}]\n").unwrap_err(), "spec image details is missing");
        assert_eq!(parse("version: 4\n").unwrap_err(), "latest supported version 3, but got podspec version 4");
        let no_src = "version: 3\ncontainers: [{name: a, image: b, volumeConfig: [{name: v, mountPath: /x}]}]\n";
        assert_eq!(parse(no_src).unwrap_err(), "file set \"v\" requires volume source");
    }
}
