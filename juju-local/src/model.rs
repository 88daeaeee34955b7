//! The model's state on disk: one `model.json` (written atomically, by the controller side only: the
//! CLI and the hook tools) holding what a Juju controller would hold (applications, config, units,
//! statuses, leadership, relations, charm state, pod specs, model settings); plus `Paths`, the
//! directory layout shared by the CLI, the hook runner, the hook tools and the kubelet. The Kubernetes
//! side lives under `kubelet/`: `desired.json` (the API objects, written by the controller) and
//! `pods.json` (the pod records, written by the kubelet daemon only).
//!
//! Layout under the model dir:
//! ```text
//! model.json  lock  tools.lock
//! charms/<app>.charm                          the deployed archive (for new units and upgrades)
//! agents/unit-<app>-<n>/{charm,resources,state}  a unit agent's dir; agent.socket = running hook context
//! tools/unit-<app>-<n>/<tool> -> juju-local   hook tools (busybox symlinks)
//! logs/unit-<app>-<n>.log                     hook output and juju-log lines
//! kubelet/{desired.json,pods.json,events.log}  API objects; pod records; kubelet events
//! kubelet/{kubelet.pid,kubelet.lock,kubelet.log}  the kubelet daemon
//! pods/<pod>/                                 pod volumes, emptyDirs, /etc/hosts, container logs
//! storage/<app>-<n>/<name>/                   persistent storage (survives pod restarts)
//! ```

use crate::util;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A status value with its message, as `status-set` and Juju set them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    pub status: String,
    #[serde(default)]
    pub message: String,
}

impl StatusInfo {
    pub fn new(status: &str, message: &str) -> StatusInfo {
        StatusInfo { status: status.into(), message: message.into() }
    }
}

/// How pods get addresses.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// One network namespace per pod on a host bridge.
    Netns,
    /// No namespaces available: distinct loopback addresses on the host network.
    Loopback,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Network {
    pub mode: NetMode,
    /// The model's /24 inside 10.201.0.0/16 (netns) or 127.201.0.0/16 (loopback).
    pub index: u8,
    pub bridge: Option<String>,
    /// Why namespaces are not used, when they are not.
    pub note: Option<String>,
}

impl Network {
    pub fn prefix(&self) -> String {
        match self.mode {
            NetMode::Netns => format!("10.201.{}", self.index),
            NetMode::Loopback => format!("127.201.{}", self.index),
        }
    }
    /// The host side of the network (the bridge address), where stand-in clients live.
    pub fn host_address(&self) -> String {
        format!("{}.1", self.prefix())
    }
}

/// The oci-image resource content (reference §4).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ImageResource {
    pub registrypath: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// A hook to run, with its relation/storage context.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct HookSpec {
    pub name: String,
    #[serde(default)]
    pub relation_id: Option<u32>,
    #[serde(default)]
    pub remote_unit: Option<String>,
    #[serde(default)]
    pub remote_app: Option<String>,
    #[serde(default)]
    pub departing_unit: Option<String>,
    #[serde(default)]
    pub storage: Option<String>,
}

impl HookSpec {
    pub fn plain(name: &str) -> HookSpec {
        HookSpec { name: name.into(), ..Default::default() }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Unit {
    pub number: u32,
    /// The pod's ordinal when the application is a StatefulSet: the lowest one free when the unit was
    /// added, so pods are always `<app>-0` … `<app>-(N-1)` whatever the unit numbers (Juju numbers units
    /// for good, a StatefulSet reuses ordinals). `None` for a Deployment: the pod takes the unit number.
    #[serde(default)]
    pub ordinal: Option<u32>,
    /// The charm-set workload status (None until Juju or the charm sets one).
    pub workload: Option<StatusInfo>,
    pub agent: StatusInfo,
    pub installed: bool,
    pub started: bool,
    pub status_set_called: bool,
    pub storage_attached: bool,
    pub state: BTreeMap<String, String>,
    pub failed_hook: Option<HookSpec>,
    pub queue: Vec<HookSpec>,
    pub address: String,
    /// Set when the unit is going away (scale-down, remove-unit): its pod is no longer wanted, and its
    /// departure hooks run once the kubelet has marked the pod for deletion.
    #[serde(default)]
    pub dying: bool,
    /// Sidecar units: the Pebble boot the uniter last saw per workload container (see `sidecar`).
    #[serde(default)]
    pub pebble_seen: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct App {
    pub name: String,
    pub charm: String,
    pub revision: u32,
    pub config: BTreeMap<String, Value>,
    pub resources: BTreeMap<String, ImageResource>,
    pub units: BTreeMap<u32, Unit>,
    pub next_unit: u32,
    pub leader: Option<u32>,
    pub leader_settings: BTreeMap<String, String>,
    pub app_status: Option<StatusInfo>,
    pub version: String,
    /// The spec committed by the leader's last successful pod-spec-set.
    pub pod_spec: Option<String>,
    /// The spec Kubernetes accepted (pods run this one).
    pub applied_spec: Option<String>,
    /// Juju's CharmModifiedVersion: bumped by attaching a resource whose content changed (and by
    /// upgrading the charm); it is a pod template annotation from 2.8.2 on, so a bump rolls the pods.
    pub charm_modified_version: u64,
    /// Set when Kubernetes rejects the spec: shown as application status `error`.
    pub operator_error: Option<String>,
    /// A format v2 (sidecar) charm: hooks and actions run in the unit pod's charm container.
    #[serde(default)]
    pub sidecar: bool,
}

/// The stand-in for a related application that has no charm (e.g. `client`).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RemoteApp {
    pub name: String,
    pub units: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Relation {
    pub id: u32,
    pub app: String,
    pub endpoint: String,
    pub interface: String,
    pub remote_app: String,
    pub remote_endpoint: String,
    /// Application data bags, by application name.
    pub app_data: BTreeMap<String, BTreeMap<String, String>>,
    /// Unit data bags, by unit name.
    pub unit_data: BTreeMap<String, BTreeMap<String, String>>,
    /// Local unit name → the remote units it has seen join.
    pub joined: BTreeMap<String, Vec<String>>,
    /// Set by `remove-relation` (and by removing an application): the relation is Dying; its
    /// departed/broken hooks are queued and it goes once none is left (`lifecycle::remove_relation`).
    #[serde(default)]
    pub dying: bool,
}

impl Relation {
    /// Whether `app` is on either side of the relation. For a relation between two deployed
    /// applications `app`/`endpoint` is the provider and `remote_app`/`remote_endpoint` the requirer;
    /// for a stand-in relation `app` is the charm; for a peer relation both sides are the application.
    pub fn involves(&self, app: &str) -> bool {
        self.app == app || self.remote_app == app
    }

    pub fn is_peer(&self) -> bool {
        self.app == self.remote_app
    }

    /// `app`'s endpoint name in this relation (what JUJU_RELATION is for its units).
    pub fn endpoint_of(&self, app: &str) -> &str {
        if self.app == app { &self.endpoint } else { &self.remote_endpoint }
    }

    /// The application on the other side, as seen from `app` (itself for a peer relation).
    pub fn other_app(&self, app: &str) -> &str {
        if self.app == app { &self.remote_app } else { &self.app }
    }

    /// `db:3` as `app`'s units see it: JUJU_RELATION_ID and relation-ids name the local endpoint.
    pub fn key_for(&self, app: &str) -> String {
        format!("{}:{}", self.endpoint_of(app), self.id)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Model {
    pub name: String,
    pub uuid: String,
    pub network: Network,
    pub apps: BTreeMap<String, App>,
    pub remote_apps: BTreeMap<String, RemoteApp>,
    pub relations: BTreeMap<u32, Relation>,
    pub next_relation_id: u32,
    /// Kernel state juju-local created outside its pods (bridge allocation file etc.).
    #[serde(default)]
    pub index_file: Option<PathBuf>,
    #[serde(default)]
    pub settings: Settings,
}

/// Model settings, fixed when the model is created (`deploy --juju-version/--kubelet-sync-seconds`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Settings {
    /// The Juju version juju-local behaves as (JUJU_VERSION in hooks, the StatefulSet update rules).
    pub juju_version: String,
    /// The kubelet's sync period: how long a ConfigMap or Secret change takes to reach running pods.
    pub kubelet_sync_seconds: u64,
}

pub const DEFAULT_JUJU_VERSION: &str = "2.9.31";
pub const DEFAULT_SYNC_SECONDS: u64 = 5;

impl Default for Settings {
    fn default() -> Settings {
        Settings { juju_version: DEFAULT_JUJU_VERSION.into(), kubelet_sync_seconds: DEFAULT_SYNC_SECONDS }
    }
}

/// A Juju version (`2.9.31`); the rules that changed between versions compare against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `2.9.31`; juju-local knows the podspec behaviour of 2.8.0 and later.
    pub fn parse(s: &str) -> Result<Version> {
        let parts: Vec<u32> = s.split('.').map(|p| p.parse().ok()).collect::<Option<Vec<u32>>>().unwrap_or_default();
        let [a, b, c] = parts[..] else { bail!("invalid Juju version {s:?} (expected e.g. 2.9.31)") };
        let v = Version(a, b, c);
        if v < Version(2, 8, 0) {
            bail!("juju-local follows Juju 2.8.0 and later, not {s}");
        }
        Ok(v)
    }
    pub fn at_least(self, a: u32, b: u32, c: u32) -> bool {
        self >= Version(a, b, c)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Model {
    pub fn version(&self) -> Version {
        Version::parse(&self.settings.juju_version).unwrap_or(Version(2, 9, 31))
    }
}

impl Model {
    pub fn load(paths: &Paths) -> Result<Model> {
        let file = paths.model_file();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("no model at {} (deploy a charm first)", paths.root.display())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        serde_json::from_str(&text).with_context(|| format!("corrupt model state {}", file.display()))
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        let text = serde_json::to_vec_pretty(self)?;
        util::atomic_write(&paths.model_file(), &text)
    }

    pub fn app(&self, name: &str) -> Result<&App> {
        self.apps.get(name).with_context(|| format!("application {name:?} not found"))
    }

    pub fn app_mut(&mut self, name: &str) -> Result<&mut App> {
        self.apps.get_mut(name).with_context(|| format!("application {name:?} not found"))
    }

    pub fn unit(&self, app: &str, n: u32) -> Result<&Unit> {
        self.app(app)?.units.get(&n).with_context(|| format!("unit \"{app}/{n}\" not found"))
    }

    pub fn unit_mut(&mut self, app: &str, n: u32) -> Result<&mut Unit> {
        self.app_mut(app)?.units.get_mut(&n).with_context(|| format!("unit \"{app}/{n}\" not found"))
    }

    /// Relations this application takes part in.
    pub fn relations_of<'a>(&'a self, app: &'a str) -> impl Iterator<Item = &'a Relation> + 'a {
        self.relations.values().filter(move |r| r.involves(app))
    }
}

/// `app/3` → (`app`, 3).
pub fn parse_unit_name(s: &str) -> Result<(String, u32)> {
    let (app, n) = s.rsplit_once('/').with_context(|| format!("invalid unit name {s:?}"))?;
    let n: u32 = n.parse().with_context(|| format!("invalid unit name {s:?}"))?;
    if app.is_empty() {
        bail!("invalid unit name {s:?}");
    }
    Ok((app.to_string(), n))
}

pub fn unit_name(app: &str, n: u32) -> String {
    format!("{app}/{n}")
}

/// The model directory and every path inside it.
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    /// Resolves the model dir to an absolute path (hooks get absolute paths).
    pub fn new(root: &Path) -> Result<Paths> {
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir().context("cannot read the current directory")?.join(root)
        };
        Ok(Paths { root })
    }
    pub fn model_file(&self) -> PathBuf {
        self.root.join("model.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }
    pub fn tools_lock(&self) -> PathBuf {
        self.root.join("tools.lock")
    }
    pub fn charm_archive(&self, app: &str) -> PathBuf {
        self.root.join("charms").join(format!("{app}.charm"))
    }
    pub fn unit_dir(&self, app: &str, n: u32) -> PathBuf {
        self.root.join("agents").join(format!("unit-{app}-{n}"))
    }
    pub fn charm_dir(&self, app: &str, n: u32) -> PathBuf {
        self.unit_dir(app, n).join("charm")
    }
    pub fn context_file(&self, app: &str, n: u32) -> PathBuf {
        self.unit_dir(app, n).join("agent.socket")
    }
    pub fn tools_dir(&self, app: &str, n: u32) -> PathBuf {
        self.root.join("tools").join(format!("unit-{app}-{n}"))
    }
    pub fn unit_log(&self, app: &str, n: u32) -> PathBuf {
        self.root.join("logs").join(format!("unit-{app}-{n}.log"))
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// The kubelet's dir: desired.json (controller → kubelet), pods.json (kubelet only), events.log.
    pub fn kubelet_dir(&self) -> PathBuf {
        self.root.join("kubelet")
    }
    /// The API objects the controller publishes (StatefulSets, ConfigMaps, Secrets, Services).
    pub fn desired_file(&self) -> PathBuf {
        self.kubelet_dir().join("desired.json")
    }
    /// The kubelet's pod records (written by the kubelet daemon only).
    pub fn pods_file(&self) -> PathBuf {
        self.kubelet_dir().join("pods.json")
    }
    pub fn events_log(&self) -> PathBuf {
        self.kubelet_dir().join("events.log")
    }
    pub fn kubelet_lock(&self) -> PathBuf {
        self.kubelet_dir().join("kubelet.lock")
    }
    pub fn kubelet_pid(&self) -> PathBuf {
        self.kubelet_dir().join("kubelet.pid")
    }
    pub fn kubelet_log(&self) -> PathBuf {
        self.kubelet_dir().join("kubelet.log")
    }
    /// What hooks see as /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf (the operator pod's).
    pub fn operator_file(&self, name: &str) -> PathBuf {
        self.kubelet_dir().join("operator").join(name)
    }
    /// A pod's dir (volumes, emptyDirs, hosts, container logs), by pod name.
    pub fn pod_dir(&self, pod: &str) -> PathBuf {
        self.root.join("pods").join(pod)
    }
    /// A pod's persistent storage, keyed by pod name (a StatefulSet's volume claim follows the ordinal).
    pub fn storage_dir(&self, pod: &str, name: &str) -> PathBuf {
        self.root.join("storage").join(pod).join(name)
    }
}

/// The pod's name (`<app>-<ordinal>`, or `<app>-<unit number>` outside StatefulSets).
pub fn pod_name(app: &str, unit: &Unit) -> String {
    format!("{app}-{}", unit.ordinal.unwrap_or(unit.number))
}

/// Writes a log line to a unit's log in `juju debug-log` form.
pub fn log_line(paths: &Paths, app: &str, n: u32, level: &str, logger: &str, msg: &str) {
    let line = format!("unit-{app}-{n}: {} {level} {logger} {msg}", util::clock(util::now_ms()));
    util::append_line(&paths.unit_log(app, n), &line);
}
