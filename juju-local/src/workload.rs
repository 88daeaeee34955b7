//! What Juju's deployment worker asks of Kubernetes for each application, and what the API server
//! keeps: the StatefulSet (or Deployment) with its pod template, the ConfigMaps and Secrets, the
//! application Service and the headless `<app>-endpoints` Service. The controller side (CLI, hooks)
//! builds them here with Juju's rules for the model's Juju version and publishes them to the kubelet
//! in `kubelet/desired.json`, which only the controller writes. The kubelet daemon reads it.
//!
//! The pod template is what a rollout compares (findings §1-§4): per container the image, command,
//! args, env, ports, probes and volume mounts (name, mountPath); the volumes (names and sources by
//! name: for a `files` set the ConfigMap name and its `items`; a Secret's name, items and
//! defaultMode; emptyDir; hostPath); the template annotations and labels; and the pod-level fields of
//! `kubernetesResources.pod`. ConfigMap and Secret *data* are separate objects, not in the template.

use crate::charm_meta::Metadata;
use crate::k8s_rules::{self, Rejection};
use crate::model::{self, Model, Network, Paths, Version};
use crate::podspec::{self, PodSpec};
use crate::util;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The Juju data dir volume: an emptyDir Juju adds to every workload pod and mounts at /var/lib/juju in
/// every container (`getJujuInitContainerAndStorageInfo`, k8s.go); the charm copy actions run from
/// lives there (findings §5a).
pub const JUJU_DATA_VOLUME: &str = "juju-data-dir";
pub const JUJU_DATA_DIR: &str = "/var/lib/juju";

/// Everything the controller publishes: the kubelet's only input.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Cluster {
    /// Bumped on every publish; the kubelet reports the generation it has acted on.
    pub generation: u64,
    /// The Kubernetes namespace: the model name (findings §11, `provider.go` `Open`).
    pub namespace: String,
    pub network: Option<Network>,
    /// The kubelet's sync period (ConfigMap/Secret refresh), seconds.
    pub sync_seconds: u64,
    /// The model's Juju version (which hook tools a pod's agent has).
    #[serde(default)]
    pub juju_version: String,
    pub apps: BTreeMap<String, AppObjects>,
}

/// The objects of one application.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct AppObjects {
    /// The live StatefulSet or Deployment; None until one was created.
    pub workload: Option<Workload>,
    /// ConfigMaps by name: data key → content.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secrets by name: data key → base64 content.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The application's ClusterIP Service `<app>` exists.
    pub service: bool,
    /// The headless Service `<app>-endpoints` exists (StatefulSets; deleted when an update is refused).
    pub headless_service: bool,
    /// Which pod runs which unit, at which address (Juju reads this back from the pods; juju-local
    /// assigns it up front).
    pub units: Vec<Assignment>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Assignment {
    pub unit: u32,
    pub pod: String,
    pub ordinal: Option<u32>,
    pub address: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Workload {
    /// `StatefulSet` or `Deployment`.
    pub kind: String,
    pub replicas: u32,
    /// The template's revision (a hash of it): pods carry the revision they were made from.
    pub revision: String,
    pub template: PodTemplate,
    /// `RollingUpdate` (the API server's default when Juju sets none) or `OnDelete`.
    pub update_strategy: String,
    pub partition: u32,
    /// `Parallel` (Juju's default) or `OrderedReady` (`service.scalePolicy: serial`).
    pub pod_management_policy: String,
    /// volumeClaimTemplates: the charm's filesystem storage (mounted in `containers[0]` only).
    pub volume_claims: Vec<String>,
    pub annotations: BTreeMap<String, String>,
}

impl Workload {
    pub fn stateful(&self) -> bool {
        self.kind == "StatefulSet"
    }

    /// The pods the workload wants, lowest first: a StatefulSet's ordinals below `replicas`; a
    /// Deployment's first `replicas` units.
    pub fn wanted<'a>(&self, objs: &'a AppObjects) -> Vec<&'a Assignment> {
        let mut wanted: Vec<&Assignment> = objs.units.iter().collect();
        if self.stateful() {
            wanted.retain(|a| a.ordinal.is_some_and(|o| o < self.replicas));
            wanted.sort_by_key(|a| a.ordinal);
        } else {
            wanted.sort_by_key(|a| a.unit);
            wanted.truncate(self.replicas as usize);
        }
        wanted
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PodTemplate {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub init_containers: Vec<ContainerT>,
    pub containers: Vec<ContainerT>,
    pub volumes: Vec<Volume>,
    /// The pod-level fields of `kubernetesResources.pod` (terminationGracePeriodSeconds, …).
    pub pod: podspec::PodResources,
}

impl PodTemplate {
    /// terminationGracePeriodSeconds, or the API server's default of 30 s (findings §1).
    pub fn grace_seconds(&self) -> u64 {
        self.pod.termination_grace_period_seconds.map(|s| s.max(0) as u64).unwrap_or(30)
    }
    pub fn revision(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        format!("{:016x}", util::fnv64(text.as_bytes()))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ContainerT {
    pub name: String,
    pub image: String,
    pub image_pull_policy: Option<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    /// envConfig as the charm gave it: plain values and references (secret, config-map, field).
    pub env: BTreeMap<String, Value>,
    pub ports: Vec<PortT>,
    pub readiness_probe: Option<Value>,
    pub liveness_probe: Option<Value>,
    pub startup_probe: Option<Value>,
    pub security_context: Option<Value>,
    pub volume_mounts: Vec<Mount>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PortT {
    pub container_port: i32,
    pub protocol: Option<String>,
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Mount {
    pub name: String,
    pub mount_path: String,
    /// `subPath`: a directory inside the volume (created by the kubelet), as Juju's sidecar pods use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum VolumeSource {
    ConfigMap { name: String, items: Option<Vec<KeyToPath>>, default_mode: Option<u32> },
    Secret { secret_name: String, items: Option<Vec<KeyToPath>>, default_mode: Option<u32> },
    EmptyDir { medium: Option<String> },
    HostPath { path: String, kind: Option<String> },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    pub mode: Option<u32>,
}

impl Cluster {
    pub fn load(paths: &Paths) -> Result<Cluster> {
        match std::fs::read_to_string(paths.desired_file()) {
            Ok(t) => serde_json::from_str(&t).with_context(|| format!("corrupt {}", paths.desired_file().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cluster::default()),
            Err(e) => Err(e).context("cannot read desired.json"),
        }
    }

    /// Publishes the objects (atomically) with a new generation.
    pub fn publish(&mut self, paths: &Paths) -> Result<u64> {
        self.generation += 1;
        util::atomic_write(&paths.desired_file(), &serde_json::to_vec_pretty(self)?)?;
        Ok(self.generation)
    }
}

/// The files ConfigMap of a `files` set: `applicationConfigMapName`, `<app>-<set>-config` (findings §2).
pub fn files_config_map(app: &str, set: &str) -> String {
    format!("{app}-{set}-config")
}

/// Annotation keys: 2.9 models use `charm.juju.is/modified-version` etc., 2.8 the legacy ones
/// (findings §4, `AnnotationCharmModifiedVersionKey`, `ResourceTagsToAnnotations`).
fn annotation_keys(v: Version) -> (&'static str, &'static str, &'static str) {
    if v.at_least(2, 9, 0) {
        ("charm.juju.is/modified-version", "controller.juju.is/id", "model.juju.is/id")
    } else {
        ("juju.io/charm-modified-version", "juju.io/controller", "juju-model")
    }
}

/// What one pass of EnsureService builds from the committed spec.
struct Built {
    template: PodTemplate,
    files_config_maps: BTreeMap<String, BTreeMap<String, String>>,
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    update_strategy: Result<(String, u32), String>,
    policy: String,
    claims: Vec<String>,
}

fn build(app: &str, spec: &PodSpec, meta: &Metadata, v: Version, cmv: u64, model_uuid: &str) -> Built {
    let (cmv_key, controller_key, model_key) = annotation_keys(v);
    let mut template = PodTemplate::default();
    let pod = spec.kubernetes_resources.as_ref().and_then(|k| k.pod.clone()).unwrap_or_default();
    // Labels: the selector, plus kubernetesResources.pod.labels (2.8.7+) (findings §4).
    let selector = if v.at_least(2, 9, 0) { "app.kubernetes.io/name" } else { "juju-app" };
    template.labels.insert(selector.into(), app.into());
    for (k, val) in pod.labels.clone().unwrap_or_default() {
        template.labels.insert(k, val);
    }
    // Annotations (`configureStatefulSet`: podAnnotations(pod.Annotations merged with the workload's)).
    let ann = &mut template.annotations;
    ann.insert("apparmor.security.beta.kubernetes.io/pod".into(), "runtime/default".into());
    ann.insert("seccomp.security.beta.kubernetes.io/pod".into(), "docker/default".into());
    ann.insert(controller_key.into(), "juju-local".into());
    ann.insert(model_key.into(), model_uuid.into());
    if v.at_least(2, 8, 2) {
        // CharmModifiedVersion is in the template from 2.8.2 (k8s.go `ensureService`).
        ann.insert(cmv_key.into(), cmv.to_string());
        for (k, val) in pod.annotations.clone().unwrap_or_default() {
            ann.insert(k, val);
        }
    }
    template.pod = podspec::PodResources { annotations: None, labels: None, ..pod };

    let mut files_config_maps = BTreeMap::new();
    let mut volumes: Vec<Volume> = Vec::new();
    let mut push_volume = |v: Volume| {
        if !volumes.iter().any(|x| x.name == v.name) {
            volumes.push(v);
        }
    };
    for c in &spec.containers {
        let mut ct = ContainerT {
            name: c.name.clone(),
            image: c.image_ref(),
            image_pull_policy: c.image_pull_policy.clone(),
            command: c.command.clone(),
            args: c.args.clone(),
            working_dir: c.working_dir.clone(),
            env: c.env_config.clone(),
            ports: c
                .ports
                .iter()
                .map(|p| PortT { container_port: p.container_port, protocol: p.protocol.clone(), name: p.name.clone() })
                .collect(),
            readiness_probe: c.kubernetes.as_ref().and_then(|k| k.readiness_probe.as_ref()).map(probe_json),
            liveness_probe: c.kubernetes.as_ref().and_then(|k| k.liveness_probe.as_ref()).map(probe_json),
            startup_probe: c.kubernetes.as_ref().and_then(|k| k.startup_probe.as_ref()).map(probe_json),
            security_context: c.kubernetes.as_ref().and_then(|k| k.security_context.clone()),
            volume_mounts: Vec::new(),
        };
        // `configurePodFiles` / `fileSetToVolume` (volume.go): each file set becomes a volume, mounted
        // only in the container that declared it, as {name, mountPath} (findings §2).
        for fs in &c.volume_config {
            let (name, source) = if let Some(files) = &fs.files {
                let cm = files_config_map(app, &fs.name);
                let data: BTreeMap<String, String> =
                    files.iter().map(|f| (f.path.clone(), f.content.clone())).collect();
                files_config_maps.insert(cm.clone(), data);
                let items = files
                    .iter()
                    .map(|f| KeyToPath { key: f.path.clone(), path: f.path.clone(), mode: f.mode })
                    .collect();
                (cm.clone(), VolumeSource::ConfigMap { name: cm, items: Some(items), default_mode: None })
            } else if let Some(kf) = &fs.secret {
                (
                    fs.name.clone(),
                    VolumeSource::Secret {
                        secret_name: kf.name.clone(),
                        items: key_items(kf),
                        default_mode: kf.default_mode,
                    },
                )
            } else if let Some(kf) = &fs.config_map {
                (
                    fs.name.clone(),
                    VolumeSource::ConfigMap {
                        name: kf.name.clone(),
                        items: key_items(kf),
                        default_mode: kf.default_mode,
                    },
                )
            } else if let Some(e) = &fs.empty_dir {
                (fs.name.clone(), VolumeSource::EmptyDir { medium: e.medium.clone() })
            } else if let Some(h) = &fs.host_path {
                (fs.name.clone(), VolumeSource::HostPath { path: h.path.clone(), kind: h.kind.clone() })
            } else {
                continue;
            };
            push_volume(Volume { name: name.clone(), source });
            ct.volume_mounts.push(Mount { name, mount_path: fs.mount_path.clone(), sub_path: None });
        }
        ct.volume_mounts.push(Mount {
            name: JUJU_DATA_VOLUME.into(),
            mount_path: JUJU_DATA_DIR.into(),
            sub_path: None,
        });
        if c.init {
            template.init_containers.push(ct);
        } else {
            template.containers.push(ct);
        }
    }
    push_volume(Volume { name: JUJU_DATA_VOLUME.into(), source: VolumeSource::EmptyDir { medium: None } });
    template.volumes = volumes;
    // Storage: one volumeClaimTemplate per filesystem, mounted only in containers[0] (`handlePVC`).
    let claims: Vec<String> = meta.storage.keys().cloned().collect();
    if let Some(first) = template.containers.first_mut() {
        for (name, location) in &meta.storage {
            first.volume_mounts.push(Mount { name: name.clone(), mount_path: location.clone(), sub_path: None });
        }
    }
    let config_maps = spec.configmaps.clone();
    let mut secrets = BTreeMap::new();
    for s in spec.kubernetes_resources.iter().flat_map(|k| k.secrets.iter()) {
        let files = spec.secret_files(&s.name).unwrap_or_default();
        secrets.insert(s.name.clone(), files.iter().map(|(k, v)| (k.clone(), util::base64_encode(v))).collect());
    }
    // updateStrategy: set only from service.updateStrategy, and only from 2.8.2 (findings §1;
    // `updateStrategyForStatefulSet`); otherwise the API server defaults to RollingUpdate, partition 0.
    let update_strategy = match spec.service.as_ref().and_then(|s| s.update_strategy.as_ref()) {
        Some(us) if v.at_least(2, 8, 2) => match us.kind.as_str() {
            "OnDelete" if us.rolling_update.is_some() => {
                Err("rolling update spec is not supported for \"OnDelete\"".to_string())
            }
            "OnDelete" => Ok(("OnDelete".to_string(), 0)),
            "RollingUpdate" => match &us.rolling_update {
                None => Ok(("RollingUpdate".to_string(), 0)),
                Some(ru) if ru.max_surge.is_some() || ru.max_unavailable.is_some() => {
                    Err("rolling update spec for statefulset not valid".to_string())
                }
                Some(ru) => match ru.partition {
                    None => Err("rolling update spec partition is missing".to_string()),
                    Some(p) => Ok(("RollingUpdate".to_string(), p.max(0) as u32)),
                },
            },
            other => Err(format!("strategy type {other:?} for statefulset not valid")),
        },
        _ => Ok(("RollingUpdate".to_string(), 0)),
    };
    // `getPodManagementPolicy`: Parallel unless service.scalePolicy is serial (findings §1).
    let serial = spec.service.as_ref().and_then(|s| s.scale_policy.as_deref()) == Some("serial");
    let policy = if serial { "OrderedReady" } else { "Parallel" }.to_string();
    Built { template, files_config_maps, config_maps, secrets, update_strategy, policy, claims }
}

fn key_items(kf: &podspec::KeyFiles) -> Option<Vec<KeyToPath>> {
    kf.files
        .as_ref()
        .map(|fs| fs.iter().map(|k| KeyToPath { key: k.key.clone(), path: k.path.clone(), mode: k.mode }).collect())
}

fn probe_json(p: &podspec::Probe) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// The units the workload runs (not dying), with their pods.
fn assignments(model: &Model, app: &str) -> Vec<Assignment> {
    let Some(a) = model.apps.get(app) else { return Vec::new() };
    a.units
        .values()
        // A dying sidecar unit keeps its pod until it is gone (`ensureScale` scales after the units go).
        .filter(|u| !u.dying || a.sidecar)
        .map(|u| Assignment {
            unit: u.number,
            pod: model::pod_name(app, u),
            ordinal: u.ordinal,
            address: u.address.clone(),
        })
        .collect()
}

/// What happened to an EnsureService pass.
#[derive(Debug, PartialEq)]
pub enum Applied {
    /// No spec committed yet: no workload.
    NoSpec,
    Accepted,
    /// Refused: the operator status message.
    Refused(String),
}

/// Juju's `EnsureService` for one application (k8s.go `ensureService`), in its order: ConfigMaps and
/// Secrets of the spec, the application Service, the headless Service, the files ConfigMaps, then the
/// StatefulSet or Deployment. A refusal sets the operator (application) status to error with Juju's
/// message; the objects updated before it stay updated. Publishes desired.json.
pub fn ensure_service(paths: &Paths, model: &mut Model, app: &str) -> Result<Applied> {
    let mut cluster = Cluster::load(paths)?;
    let result = ensure_into(paths, model, &mut cluster, app)?;
    cluster.publish(paths)?;
    Ok(result)
}

fn refresh_model_fields(cluster: &mut Cluster, model: &Model) {
    cluster.namespace = model.name.clone();
    cluster.network = Some(model.network.clone());
    cluster.sync_seconds = model.settings.kubelet_sync_seconds;
    cluster.juju_version = model.settings.juju_version.clone();
    cluster.apps.retain(|name, _| model.apps.contains_key(name));
}

fn ensure_into(paths: &Paths, model: &mut Model, cluster: &mut Cluster, app: &str) -> Result<Applied> {
    refresh_model_fields(cluster, model);
    let v = model.version();
    let units = assignments(model, app);
    let replicas = units.len() as u32;
    let a = model.app(app)?.clone();
    let objs = cluster.apps.entry(app.to_string()).or_default();
    objs.units = units;
    if let Some(n) = a.units.keys().next()
        && let Ok(meta) = Metadata::load(&paths.charm_dir(app, *n))
        && meta.format == 2
    {
        // A sidecar application: Juju's caasapplicationprovisioner owns the StatefulSet; a pod spec the
        // charm may have set is stored and ignored (see `sidecar`).
        crate::sidecar::ensure(objs, app, &meta, &a, replicas, &model.uuid)?;
        return Ok(Applied::Accepted);
    }
    let Some(spec_text) = a.pod_spec.clone() else {
        return Ok(Applied::NoSpec);
    };
    let n = *a.units.keys().next().context("application has no units")?;
    let meta = Metadata::load(&paths.charm_dir(app, n))?;
    let spec = match podspec::parse(&spec_text) {
        Ok(s) => s,
        Err(e) => return Ok(refuse(model, app, format!("parsing unit spec for {app}: {e}"))),
    };
    let built = build(app, &spec, &meta, v, a.charm_modified_version, &model.uuid);
    // ConfigMaps and Secrets of the spec first ("creating or updating configmaps/secrets").
    for (k, data) in &built.config_maps {
        objs.config_maps.insert(k.clone(), data.clone());
    }
    for (k, data) in &built.secrets {
        objs.secrets.insert(k.clone(), data.clone());
    }
    // The application Service: `ports are required …`, or the API server's own refusal.
    let has_service = !spec.omit_service_frontend.unwrap_or(false) && !meta.service_omitted;
    if has_service {
        if let Err(r) = k8s_rules::check_service(app, &built.template) {
            let msg = match r {
                Rejection::Plain(m) => m,
                Rejection::Invalid(m) => format!("creating or updating service for {app}: {m}"),
            };
            return Ok(refuse(model, app, msg));
        }
        objs.service = true;
    }
    let stateful = meta.stateful;
    let kind = if stateful { "StatefulSet" } else { "Deployment" };
    let what = if stateful { "stateful set" } else { "deployment" };
    if stateful {
        // The headless Service is (re)created here; a cleanup that deletes it on any later error of
        // this pass is registered unconditionally (k8s.go 2.9.31 ~1348-1352, findings §3).
        objs.headless_service = true;
    }
    let fail = |objs: &mut AppObjects, msg: String| {
        if stateful {
            objs.headless_service = false;
        }
        msg
    };
    let (strategy, partition) = match built.update_strategy.clone() {
        Ok(s) => s,
        Err(e) => {
            let msg = fail(objs, format!("creating or updating {kind}: {e}"));
            return Ok(refuse(model, app, msg));
        }
    };
    // The files ConfigMaps are written by `configurePodFiles`, before the workload object.
    for (k, data) in &built.files_config_maps {
        objs.config_maps.insert(k.clone(), data.clone());
    }
    let desired = Workload {
        kind: kind.into(),
        replicas,
        revision: String::new(),
        template: built.template.clone(),
        update_strategy: strategy,
        partition,
        pod_management_policy: built.policy.clone(),
        volume_claims: built.claims.clone(),
        annotations: BTreeMap::new(),
    };
    let merged = match objs.workload.clone() {
        None => {
            // Create: the whole object. Kubernetes refuses an invalid one (`createStatefulSet`: IsInvalid
            // becomes NotValid, and `ensureStatefulSet` annotates it; the Kubernetes text is dropped).
            if let Err(k8s) = k8s_rules::check_workload(app, kind, &desired) {
                let msg = if stateful {
                    format!(
                        "creating or updating StatefulSet: ensuring stateful set {app:?}: stateful set {app:?} not valid"
                    )
                } else {
                    format!("creating or updating Deployment: {k8s}")
                };
                let msg = fail(objs, msg);
                return Ok(refuse(model, app, msg));
            }
            desired
        }
        Some(live) if stateful => {
            // `ensureStatefulSet` on AlreadyExists: GET the live object, copy in only some fields
            // (findings §3 table), and Update. Everything else of the new spec is silently ignored.
            let mut m = live.clone();
            m.replicas = replicas;
            m.template.containers = desired.template.containers.clone();
            if v.at_least(2, 8, 2) {
                m.annotations = desired.annotations.clone();
                m.update_strategy = desired.update_strategy.clone();
                m.partition = desired.partition;
                m.template.annotations = desired.template.annotations.clone();
            }
            if v.at_least(2, 9, 30) {
                // 7d39368824, first in juju-2.9.30: the template volumes are copied too.
                m.template.volumes = desired.template.volumes.clone();
            }
            if v.at_least(3, 0, 0) {
                // 243c04a5d0 (3.0): init containers too.
                m.template.init_containers = desired.template.init_containers.clone();
            }
            if let Err(k8s) = k8s_rules::check_workload(app, kind, &m) {
                // `updateStatefulSet`: IsInvalid → NotValidf("stateful set %q"); the Kubernetes text is
                // dropped from the status. juju-local logs it, as the API server would have said it.
                let n0 = *a.units.keys().next().unwrap_or(&0);
                model::log_line(paths, app, n0, "WARNING", "juju.kubernetes.apiserver", &k8s);
                let msg = fail(objs, format!("creating or updating StatefulSet: {what} {app:?} not valid"));
                return Ok(refuse(model, app, msg));
            }
            m
        }
        Some(live) => {
            // `ensureDeployment` replaces the whole object; a refused update is masked and logged, and
            // the worker carries on (findings §3): the live object stays.
            if let Err(k8s) = k8s_rules::check_workload(app, kind, &desired) {
                let n0 = *a.units.keys().next().unwrap_or(&0);
                model::log_line(
                    paths,
                    app,
                    n0,
                    "ERROR",
                    "juju.worker.caasunitprovisioner",
                    &format!("updating deployment {app:?}: {k8s}"),
                );
                let mut kept = live.clone();
                kept.replicas = replicas;
                objs.workload = Some(kept);
                return Ok(Applied::Accepted);
            }
            desired
        }
    };
    let mut merged = merged;
    merged.revision = merged.template.revision();
    objs.workload = Some(merged);
    let a = model.app_mut(app)?;
    a.operator_error = None;
    a.applied_spec = Some(spec_text);
    Ok(Applied::Accepted)
}

/// The operator status `error` (EnsureService's deferred statusCallback → SetOperatorStatus).
fn refuse(model: &mut Model, app: &str, msg: String) -> Applied {
    if let Ok(a) = model.app_mut(app) {
        a.operator_error = Some(msg.clone());
    }
    Applied::Refused(msg)
}

/// Deletes an application's objects (remove-application): its pods are deleted gracefully.
pub fn delete_app(paths: &Paths, model: &Model, app: &str) -> Result<u64> {
    let mut cluster = Cluster::load(paths)?;
    refresh_model_fields(&mut cluster, model);
    cluster.apps.remove(app);
    cluster.publish(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra_container: &str, extra_top: &str) -> PodSpec {
        podspec::parse(&format!(
            "version: 3\ncontainers:\n- name: redis\n  image: redis\n  ports: [{{containerPort: 6379, name: redis}}]\n  volumeConfig:\n  - name: conf\n    mountPath: /etc/conf\n    files: [{{path: a.conf, content: x, mode: 420}}]\n{extra_container}{extra_top}"
        ))
        .unwrap()
    }

    fn meta() -> Metadata {
        Metadata::parse("name: r\nseries: [kubernetes]\nstorage: {data: {type: filesystem, location: /data}}\n")
            .unwrap()
    }

    #[test]
    fn files_become_a_config_map_volume_with_items_and_contents_stay_out_of_the_template() {
        let b = build("r", &spec("", ""), &meta(), Version(2, 9, 31), 0, "u");
        let vol = b.template.volumes.iter().find(|v| v.name == "r-conf-config").unwrap();
        assert_eq!(
            vol.source,
            VolumeSource::ConfigMap {
                name: "r-conf-config".into(),
                items: Some(vec![KeyToPath { key: "a.conf".into(), path: "a.conf".into(), mode: Some(0o644) }]),
                default_mode: None
            }
        );
        assert_eq!(b.files_config_maps["r-conf-config"]["a.conf"], "x");
        let other = build("r", &spec("", "").clone_with_content("y"), &meta(), Version(2, 9, 31), 0, "u");
        assert_eq!(b.template.revision(), other.template.revision(), "contents changed the template");
        // Storage is mounted in containers[0] only; the Juju data dir everywhere.
        let mounts: Vec<&str> = b.template.containers[0].volume_mounts.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(mounts, ["r-conf-config", JUJU_DATA_VOLUME, "data"]);
    }

    #[test]
    fn charm_modified_version_is_an_annotation_from_2_8_2() {
        let s = spec("", "");
        let new = build("r", &s, &meta(), Version(2, 9, 31), 3, "u").template;
        assert_eq!(new.annotations["charm.juju.is/modified-version"], "3");
        let old = build("r", &s, &meta(), Version(2, 8, 5), 3, "u").template;
        assert_eq!(old.annotations["juju.io/charm-modified-version"], "3");
        let oldest = build("r", &s, &meta(), Version(2, 8, 1), 3, "u").template;
        assert!(!oldest.annotations.keys().any(|k| k.contains("modified-version")));
    }

    trait WithContent {
        fn clone_with_content(&self, c: &str) -> PodSpec;
    }
    impl WithContent for PodSpec {
        fn clone_with_content(&self, c: &str) -> PodSpec {
            let mut s = self.clone();
            for f in s.containers[0].volume_config[0].files.as_mut().unwrap() {
                f.content = c.into();
            }
            s
        }
    }
}
