//! What the charm is, from its own YAML, parsed once: [`CharmMeta`] (canonical/operator's `CharmMeta`).
//!
//! The facts Juju reads from `metadata.yaml`, `config.yaml` and `actions.yaml` (the charm's name, its endpoints
//! and their interfaces, storage, resources, actions, config options with their types and defaults) are needed
//! in code too: which hooks and actions [`crate::dispatch`] answers to, which endpoints the engine computes flags
//! for, which resources the docker-resource layer fetches, what `config.default.<opt>` compares against. They are
//! read here, from the repository's files, and nowhere else; the hook names come from them, so a new endpoint or
//! storage is answered to as soon as metadata.yaml declares it.
//!
//! **Compiled in, parsed at run time once per process.** The three files are embedded with `include_str!` and
//! parsed on first use into a process-wide [`OnceLock`] ([`CharmMeta::shipped`]). They are the very files
//! `make charm` puts into the archive beside the binary, and a charm's files never change under a running
//! binary (an upgrade replaces both), so reading the charm directory at every hook would only add a failure
//! mode; the layers have always used the embedded copies. A `build.rs` generating constants would move the
//! parse to build time, but it would add a build-time dependency tree for the host and generated code to read,
//! to save one parse of ~4 KB of YAML per process (which replaces the two to four parses per hook it took before:
//! config.yaml in every hook, metadata.yaml each time the layer listed its resources). A file that does not
//! parse is a build that a unit test fails (`shipped_files_parse`); at run time it is one error line, never a
//! panic.
//!
//! **Names the code uses.** Code that refers to one of the charm's own endpoints, resources or actions uses the
//! typed constants here ([`DB`], [`PEERS`], [`REDIS_IMAGE`], [`action`]), never a string literal; the tests below
//! fail when a constant and the YAML disagree, when `hooks/` or `actions/` in the repository differ from what
//! [`CharmMeta`] derives, and when an action in actions.yaml is not dispatched.

use std::sync::OnceLock;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_yaml::Mapping;

/// The podspec archive's `metadata.yaml`, as shipped beside the binary.
pub const METADATA_YAML: &str = include_str!("../metadata.yaml");
/// The sidecar archive's `metadata.yaml` (`make charm` ships it with `sidecar/manifest.yaml`).
pub const SIDECAR_METADATA_YAML: &str = include_str!("../sidecar/metadata.yaml");
/// The charm's `config.yaml`.
pub const CONFIG_YAML: &str = include_str!("../config.yaml");
/// The charm's `actions.yaml`.
pub const ACTIONS_YAML: &str = include_str!("../actions.yaml");

/// Juju's unit hook names (reference §2) that this code names.
pub mod hook {
    pub const INSTALL: &str = "install";
    pub const CONFIG_CHANGED: &str = "config-changed";
    pub const START: &str = "start";
    pub const STOP: &str = "stop";
    pub const UPGRADE_CHARM: &str = "upgrade-charm";
    pub const UPDATE_STATUS: &str = "update-status";
    pub const LEADER_ELECTED: &str = "leader-elected";
    pub const LEADER_DEPOSED: &str = "leader-deposed";
    pub const LEADER_SETTINGS_CHANGED: &str = "leader-settings-changed";
    pub const REMOVE: &str = "remove";
}

/// Which of the two archives the binary runs from: the same binary ships in both, with a different metadata.yaml
/// (one archive cannot be both: Juju refuses metadata that mixes the podspec keys `series`/`min-juju-version`
/// with the sidecar keys `containers`/`assumes` as "ambiguous metadata", juju/charm `meta.go`
/// `ensureUnambiguousFormat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavour {
    /// `redis-k8s.charm`: format v1 with `series: [kubernetes]`; the leader sends a pod spec (Juju 2.8-3.6).
    #[default]
    PodSpec,
    /// `redis-k8s-sidecar.charm`: format v2 with `containers`; every unit drives its pod's Pebbles (Juju 3.1-4.0).
    Sidecar,
}

impl Flavour {
    pub const ALL: [Flavour; 2] = [Flavour::PodSpec, Flavour::Sidecar];

    /// The metadata.yaml this flavour's archive ships.
    pub fn metadata_yaml(self) -> &'static str {
        match self {
            Flavour::PodSpec => METADATA_YAML,
            Flavour::Sidecar => SIDECAR_METADATA_YAML,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::PodSpec => "podspec",
            Flavour::Sidecar => "sidecar",
        }
    }

    /// The flavour of the charm in `charm_dir`, from the metadata.yaml it was shipped with: byte for byte one of
    /// the two this binary was built with. Anything else means the binary and the archive it runs from do not
    /// belong together, which is an error rather than a guess (one file read per hook; no tool call).
    pub fn of_charm_dir(charm_dir: &std::path::Path) -> Result<Flavour> {
        let path = charm_dir.join("metadata.yaml");
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Flavour::ALL.into_iter().find(|f| f.metadata_yaml().as_bytes() == text).ok_or_else(|| {
            anyhow!(
                "{} is not the metadata of either archive this binary was built for (podspec or sidecar): \
                 rebuild the charm with `make charm`",
                path.display()
            )
        })
    }
}

/// The unit hooks every podspec charm may receive (reference §2), in the order `--list-hooks` prints them. Left
/// out: `collect-metrics` and `meter-status-changed` (metered charms only: this one has no metrics.yaml) and
/// `pre-`/`post-series-upgrade` (machines only).
pub const UNIT_HOOKS: &[&str] = &[
    hook::INSTALL,
    hook::CONFIG_CHANGED,
    hook::START,
    hook::STOP,
    hook::UPGRADE_CHARM,
    hook::UPDATE_STATUS,
    hook::LEADER_ELECTED,
    hook::LEADER_DEPOSED,
    hook::LEADER_SETTINGS_CHANGED,
    hook::REMOVE,
];

/// The relation hooks Juju runs for each endpoint: `<endpoint>-relation-<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationHook {
    Created,
    Joined,
    Changed,
    Departed,
    Broken,
}

impl RelationHook {
    /// Every kind, in the order `--list-hooks` prints them.
    pub const ALL: [RelationHook; 5] = [
        RelationHook::Created,
        RelationHook::Joined,
        RelationHook::Changed,
        RelationHook::Departed,
        RelationHook::Broken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RelationHook::Created => "created",
            RelationHook::Joined => "joined",
            RelationHook::Changed => "changed",
            RelationHook::Departed => "departed",
            RelationHook::Broken => "broken",
        }
    }

    /// `<endpoint>-relation-<kind>`.
    pub fn name(self, endpoint: &str) -> String {
        format!("{endpoint}-relation-{}", self.as_str())
    }

    /// The kind of `hook` if it is a relation hook of `endpoint`.
    pub fn of(endpoint: &str, hook: &str) -> Option<RelationHook> {
        let kind = hook.strip_prefix(endpoint)?.strip_prefix("-relation-")?;
        RelationHook::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// The storage hooks Juju runs for each storage: `<storage>-storage-<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageHook {
    Attached,
    Detaching,
}

impl StorageHook {
    /// Every kind, in the order `--list-hooks` prints them.
    pub const ALL: [StorageHook; 2] = [StorageHook::Attached, StorageHook::Detaching];

    pub fn as_str(self) -> &'static str {
        match self {
            StorageHook::Attached => "attached",
            StorageHook::Detaching => "detaching",
        }
    }

    /// `<storage>-storage-<kind>`.
    pub fn name(self, storage: &str) -> String {
        format!("{storage}-storage-{}", self.as_str())
    }
}

/// Which section of metadata.yaml declares an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Provides,
    Requires,
    Peers,
}

impl Role {
    /// The metadata.yaml section, in the order endpoints are listed.
    const SECTIONS: [(Role, &'static str); 3] =
        [(Role::Provides, "provides"), (Role::Requires, "requires"), (Role::Peers, "peers")];
}

/// One of the charm's endpoints, as code names it: checked against metadata.yaml by the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub name: &'static str,
    pub role: Role,
    pub interface: &'static str,
}

impl Endpoint {
    /// `<endpoint>-relation-<kind>`.
    pub fn hook(&self, kind: RelationHook) -> String {
        kind.name(self.name)
    }

    /// The kind of `hook` if it is one of this endpoint's relation hooks.
    pub fn hook_kind(&self, hook: &str) -> Option<RelationHook> {
        RelationHook::of(self.name, hook)
    }
}

/// The endpoint clients relate to.
pub const DB: Endpoint = Endpoint { name: "db", role: Role::Provides, interface: "redis" };
/// The peer relation the units share the password and the primary through.
pub const PEERS: Endpoint = Endpoint { name: "redis-peers", role: Role::Peers, interface: "redis-peers" };
/// The sidecar archive's endpoint a new application copies a deployed podspec one's data through.
pub const SOURCE: Endpoint = Endpoint { name: "source", role: Role::Requires, interface: "redis" };
/// Every endpoint constant of the podspec archive (the tests check each against metadata.yaml, and that none
/// is missing).
pub const ENDPOINTS: [Endpoint; 2] = [DB, PEERS];
/// Every endpoint constant of the sidecar archive.
pub const SIDECAR_ENDPOINTS: [Endpoint; 3] = [DB, SOURCE, PEERS];

/// One of the charm's resources, as code names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    pub name: &'static str,
    pub kind: &'static str,
}

/// The image the pods run.
pub const REDIS_IMAGE: Resource = Resource { name: "redis-image", kind: "oci-image" };

/// The charm's actions, as code names them.
pub mod action {
    pub const GET_PASSWORD: &str = "get-password";
    pub const CHECK_SERVICE: &str = "check-service";
    pub const ROTATE_PASSWORD: &str = "rotate-password";
    pub const PROMOTE: &str = "promote";
    /// Every action constant (the tests check them against actions.yaml).
    pub const ALL: [&str; 4] = [GET_PASSWORD, CHECK_SERVICE, ROTATE_PASSWORD, PROMOTE];
}

/// An endpoint as metadata.yaml declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointMeta {
    pub name: String,
    pub role: Role,
    pub interface: String,
}

/// A storage as metadata.yaml declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageMeta {
    pub name: String,
    /// `filesystem` or `block`.
    pub kind: String,
    pub location: Option<String>,
}

/// A workload container as a sidecar charm's metadata.yaml declares it (`containers:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    pub name: String,
    /// The oci-image resource Juju runs it from.
    pub resource: Option<String>,
    /// (storage, location) for each mount.
    pub mounts: Vec<(String, String)>,
}

/// The hooks Juju 3.x runs for each workload container of a sidecar charm: `<container>-pebble-<kind>`
/// (`pebble-ready` from 2.9/3.0, `pebble-custom-notice` from 3.4, `pebble-check-failed`/`-recovered` from 3.6).
pub const PEBBLE_HOOKS: [&str; 4] =
    ["pebble-ready", "pebble-custom-notice", "pebble-check-failed", "pebble-check-recovered"];

/// The container a `<container>-pebble-ready` hook is for.
pub fn pebble_ready_container(hook: &str) -> Option<&str> {
    hook.strip_suffix("-pebble-ready").filter(|c| !c.is_empty())
}

/// A resource as metadata.yaml declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMeta {
    pub name: String,
    /// `oci-image` or `file`.
    pub kind: String,
    /// `auto-fetch: true`: the docker-resource layer fetches it without being asked.
    pub auto_fetch: bool,
}

/// The type of a config option, as config.yaml declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    String,
    Int,
    Float,
    Boolean,
}

/// A config option as config.yaml declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigOption {
    pub name: String,
    pub kind: OptionType,
    /// The default, as JSON (what `config-get` would print for it); null when there is none.
    pub default: Value,
}

/// The charm, as its metadata.yaml, config.yaml and actions.yaml describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct CharmMeta {
    pub name: String,
    /// provides, then requires, then peers; each in file order.
    pub endpoints: Vec<EndpointMeta>,
    pub storage: Vec<StorageMeta>,
    pub resources: Vec<ResourceMeta>,
    /// The workload containers (sidecar only), in file order.
    pub containers: Vec<ContainerMeta>,
    /// In actions.yaml's order.
    pub actions: Vec<String>,
    /// In config.yaml's order.
    pub options: Vec<ConfigOption>,
    /// Every hook the charm answers to, derived from the above (see [`CharmMeta::hooks`]).
    hooks: Vec<String>,
}

impl CharmMeta {
    /// The podspec charm, parsed on first use and kept for the life of the process.
    pub fn shipped() -> Result<&'static CharmMeta> {
        CharmMeta::of(Flavour::PodSpec)
    }

    /// The charm as `flavour`'s archive ships it, parsed on first use and kept for the life of the process.
    pub fn of(flavour: Flavour) -> Result<&'static CharmMeta> {
        type Parsed = OnceLock<std::result::Result<CharmMeta, String>>;
        static PODSPEC: Parsed = OnceLock::new();
        static SIDECAR: Parsed = OnceLock::new();
        let cell = match flavour {
            Flavour::PodSpec => &PODSPEC,
            Flavour::Sidecar => &SIDECAR,
        };
        cell.get_or_init(|| {
            CharmMeta::parse(flavour.metadata_yaml(), CONFIG_YAML, ACTIONS_YAML).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow!("the charm's own YAML ({}): {e}", flavour.as_str()))
    }

    /// Reads the three files' text (an empty config.yaml or actions.yaml declares nothing).
    pub fn parse(metadata_yaml: &str, config_yaml: &str, actions_yaml: &str) -> Result<CharmMeta> {
        #[derive(Deserialize)]
        struct Metadata {
            name: String,
            #[serde(default)]
            provides: Mapping,
            #[serde(default)]
            requires: Mapping,
            #[serde(default)]
            peers: Mapping,
            #[serde(default)]
            storage: Mapping,
            #[serde(default)]
            resources: Mapping,
            #[serde(default)]
            containers: Mapping,
        }
        #[derive(Deserialize)]
        struct Container {
            resource: Option<String>,
            #[serde(default)]
            mounts: Vec<ContainerMount>,
        }
        #[derive(Deserialize)]
        struct ContainerMount {
            storage: String,
            location: String,
        }
        #[derive(Deserialize)]
        struct Relation {
            interface: String,
        }
        #[derive(Deserialize)]
        struct Storage {
            #[serde(rename = "type")]
            kind: String,
            location: Option<String>,
        }
        #[derive(Deserialize)]
        struct Res {
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(rename = "auto-fetch", default)]
            auto_fetch: bool,
        }
        #[derive(Deserialize, Default)]
        struct Config {
            #[serde(default)]
            options: Mapping,
        }
        #[derive(Deserialize)]
        struct Opt {
            #[serde(rename = "type")]
            kind: OptionType,
            #[serde(default)]
            default: serde_yaml::Value,
        }

        let meta: Metadata = serde_yaml::from_str(metadata_yaml).context("metadata.yaml")?;
        let mut endpoints = Vec::new();
        for (role, section) in Role::SECTIONS {
            let map = match role {
                Role::Provides => &meta.provides,
                Role::Requires => &meta.requires,
                Role::Peers => &meta.peers,
            };
            for (name, r) in entries::<Relation>(map).with_context(|| format!("metadata.yaml {section}"))? {
                endpoints.push(EndpointMeta { name, role, interface: r.interface });
            }
        }
        let storage = entries::<Storage>(&meta.storage)
            .context("metadata.yaml storage")?
            .into_iter()
            .map(|(name, s)| StorageMeta { name, kind: s.kind, location: s.location })
            .collect();
        let resources = entries::<Res>(&meta.resources)
            .context("metadata.yaml resources")?
            .into_iter()
            .map(|(name, r)| ResourceMeta { name, kind: r.kind, auto_fetch: r.auto_fetch })
            .collect();
        let containers = entries::<Container>(&meta.containers)
            .context("metadata.yaml containers")?
            .into_iter()
            .map(|(name, c)| ContainerMeta {
                name,
                resource: c.resource,
                mounts: c.mounts.into_iter().map(|m| (m.storage, m.location)).collect(),
            })
            .collect();

        let config: Config = if config_yaml.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(config_yaml).context("config.yaml")?
        };
        let options = entries::<Opt>(&config.options)
            .context("config.yaml options")?
            .into_iter()
            .map(|(name, o)| ConfigOption {
                name,
                kind: o.kind,
                default: serde_json::to_value(o.default).unwrap_or(Value::Null),
            })
            .collect();

        let actions: Mapping = if actions_yaml.trim().is_empty() {
            Mapping::new()
        } else {
            serde_yaml::from_str(actions_yaml).context("actions.yaml")?
        };
        let actions =
            entries::<serde_yaml::Value>(&actions).context("actions.yaml")?.into_iter().map(|(n, _)| n).collect();

        let mut charm = CharmMeta {
            name: meta.name,
            endpoints,
            storage,
            resources,
            containers,
            actions,
            options,
            hooks: Vec::new(),
        };
        charm.hooks = charm.derive_hooks();
        Ok(charm)
    }

    fn derive_hooks(&self) -> Vec<String> {
        let mut hooks: Vec<String> = UNIT_HOOKS.iter().map(|h| h.to_string()).collect();
        for ep in &self.endpoints {
            hooks.extend(RelationHook::ALL.iter().map(|k| k.name(&ep.name)));
        }
        for st in &self.storage {
            hooks.extend(StorageHook::ALL.iter().map(|k| k.name(&st.name)));
        }
        for c in &self.containers {
            hooks.extend(PEBBLE_HOOKS.iter().map(|k| format!("{}-{k}", c.name)));
        }
        hooks
    }

    /// Every hook the charm answers to: Juju's unit hooks ([`UNIT_HOOKS`]), then each endpoint's relation hooks,
    /// then each storage's hooks, then each workload container's Pebble hooks ([`PEBBLE_HOOKS`]).
    pub fn hooks(&self) -> &[String] {
        &self.hooks
    }

    pub fn is_hook(&self, name: &str) -> bool {
        self.hooks.iter().any(|h| h == name)
    }

    pub fn is_action(&self, name: &str) -> bool {
        self.actions.iter().any(|a| a == name)
    }

    /// The endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointMeta> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// Every endpoint's name, in [`CharmMeta::endpoints`] order.
    pub fn endpoint_names(&self) -> Vec<&str> {
        self.endpoints.iter().map(|e| e.name.as_str()).collect()
    }

    /// The option called `name`.
    pub fn option(&self, name: &str) -> Option<&ConfigOption> {
        self.options.iter().find(|o| o.name == name)
    }

    /// The `oci-image` resources marked `auto-fetch: true`, in file order.
    pub fn auto_fetch_images(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().filter(|r| r.kind == "oci-image" && r.auto_fetch).map(|r| r.name.as_str())
    }
}

/// The entries of a YAML mapping with string keys, in file order, each value read as `T`.
fn entries<T: DeserializeOwned>(map: &Mapping) -> Result<Vec<(String, T)>> {
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let Some(name) = k.as_str() else { bail!("a key is not a string") };
        let v = serde_yaml::from_value(v.clone()).with_context(|| name.to_string())?;
        out.push((name.to_string(), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn shipped() -> &'static CharmMeta {
        CharmMeta::shipped().unwrap()
    }

    /// The names of the symlinks to `../dispatch` in one of the repository's directories.
    fn links(dir: &str) -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names = BTreeSet::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            assert_eq!(std::fs::read_link(e.path()).unwrap(), std::path::Path::new("../dispatch"), "{dir:?}/{name}");
            names.insert(name);
        }
        names
    }

    #[test]
    fn shipped_files_parse() {
        let m = shipped();
        assert_eq!(m.name, "redis-k8s");
        assert_eq!(m.endpoint_names(), ["db", "redis-peers"]);
        assert_eq!(
            m.storage,
            [StorageMeta { name: "data".into(), kind: "filesystem".into(), location: Some("/data".into()) }]
        );
        assert_eq!(
            m.resources,
            [ResourceMeta { name: "redis-image".into(), kind: "oci-image".into(), auto_fetch: true }]
        );
        assert_eq!(m.actions, ["get-password", "check-service", "rotate-password", "promote"]);
        let port = m.option("port").unwrap();
        assert_eq!((port.kind, &port.default), (OptionType::Int, &Value::from(6379)));
        assert!(std::ptr::eq(m, shipped()), "parsed once per process");
    }

    /// hooks/ in the repository (what `make charm` archives) is exactly what the charm answers to.
    #[test]
    fn hooks_dir_matches_the_derived_hooks() {
        let derived: BTreeSet<String> = shipped().hooks().iter().cloned().collect();
        assert_eq!(derived.len(), shipped().hooks().len(), "no hook twice");
        assert_eq!(links("hooks"), derived);
    }

    #[test]
    fn actions_dir_matches_actions_yaml() {
        let declared: BTreeSet<String> = shipped().actions.iter().cloned().collect();
        assert_eq!(links("actions"), declared);
    }

    /// Every endpoint constant is declared with its role and interface, and every declared endpoint has one.
    #[test]
    fn endpoint_constants_match_metadata_yaml() {
        for (flavour, constants) in [(Flavour::PodSpec, &ENDPOINTS[..]), (Flavour::Sidecar, &SIDECAR_ENDPOINTS[..])] {
            let m = CharmMeta::of(flavour).unwrap();
            for ep in constants {
                let declared = m.endpoint(ep.name).unwrap_or_else(|| panic!("{} is not in metadata.yaml", ep.name));
                assert_eq!((declared.role, declared.interface.as_str()), (ep.role, ep.interface), "{}", ep.name);
            }
            let ours: Vec<&str> = constants.iter().map(|e| e.name).collect();
            assert_eq!(m.endpoint_names(), ours, "{flavour:?}");
        }
    }

    #[test]
    fn resource_constants_match_metadata_yaml() {
        let r = shipped().resources.iter().find(|r| r.name == REDIS_IMAGE.name).unwrap();
        assert_eq!(r.kind, REDIS_IMAGE.kind);
        assert_eq!(shipped().auto_fetch_images().collect::<Vec<_>>(), [REDIS_IMAGE.name]);
    }

    /// Every action in actions.yaml has a constant, is dispatched, and has a handler that runs only for it.
    #[test]
    fn every_action_is_dispatched_and_handled() {
        for flavour in Flavour::ALL {
            let m = CharmMeta::of(flavour).unwrap();
            assert_eq!(m.actions, action::ALL);
            let engine = crate::charm::engine(flavour).unwrap();
            let watched = engine.registry.watched_flags();
            for a in &m.actions {
                let got = crate::dispatch::resolve(m, Some(&format!("actions/{a}")), "dispatch".as_ref(), true);
                assert_eq!(got, Ok(crate::dispatch::Invocation::Action(a.clone())), "{flavour:?} {a}");
                let flag = crate::reactive::action_flag(a);
                assert!(watched.contains(&flag), "{flavour:?}: no handler waits for {flag}");
            }
        }
    }

    /// The two archives' metadata say the same charm: the same name, endpoints, storage and resource; the sidecar
    /// one adds the workload containers (each run from the image resource, the data storage mounted into redis)
    /// and their Pebble hooks, and the podspec one alone fetches the resource itself.
    #[test]
    fn the_sidecar_metadata_is_the_same_charm_with_containers() {
        let (p, s) = (CharmMeta::of(Flavour::PodSpec).unwrap(), CharmMeta::of(Flavour::Sidecar).unwrap());
        assert_eq!((&p.name, &p.actions, &p.options), (&s.name, &s.actions, &s.options));
        let without_source: Vec<&EndpointMeta> = s.endpoints.iter().filter(|e| e.name != SOURCE.name).collect();
        assert_eq!(p.endpoints.iter().collect::<Vec<_>>(), without_source, "the same endpoints, and source");
        assert_eq!(
            p.storage.iter().map(|x| (&x.name, &x.kind)).collect::<Vec<_>>(),
            [(&s.storage[0].name, &s.storage[0].kind)]
        );
        assert_eq!(s.storage.len(), 1);
        assert!(p.containers.is_empty());
        let names: Vec<&str> = s.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["redis", "sentinel"]);
        for c in &s.containers {
            assert_eq!(c.resource.as_deref(), Some(REDIS_IMAGE.name), "{}", c.name);
        }
        assert_eq!(s.containers[0].mounts, [("data".to_string(), "/data".to_string())]);
        assert!(s.is_hook("redis-pebble-ready") && s.is_hook("sentinel-pebble-check-failed"));
        assert!(!p.is_hook("redis-pebble-ready"));
        assert_eq!(s.auto_fetch_images().count(), 0, "Juju pulls a sidecar charm's images itself");
        assert_eq!(pebble_ready_container("sentinel-pebble-ready"), Some("sentinel"));
        assert_eq!(pebble_ready_container("-pebble-ready"), None);
    }

    /// The flavour is the charm directory's metadata.yaml, byte for byte one of the two this binary carries;
    /// anything else is an error naming the file, not a guess.
    #[test]
    fn the_flavour_comes_from_the_charm_directory() {
        let dir = std::env::temp_dir().join(format!("redis-k8s-flavour-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = Flavour::of_charm_dir(&dir).unwrap_err().to_string();
        assert!(missing.contains("metadata.yaml"), "{missing}");
        for flavour in Flavour::ALL {
            std::fs::write(dir.join("metadata.yaml"), flavour.metadata_yaml()).unwrap();
            assert_eq!(Flavour::of_charm_dir(&dir).unwrap(), flavour);
        }
        std::fs::write(dir.join("metadata.yaml"), format!("{METADATA_YAML}\n# edited\n")).unwrap();
        let err = Flavour::of_charm_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("not the metadata of either archive"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hook_names_are_derived_from_the_yaml() {
        let m = CharmMeta::parse(
            "name: x\nrequires:\n  cache:\n    interface: redis\nstorage:\n  logs:\n    type: filesystem\n",
            "",
            "",
        )
        .unwrap();
        assert!(m.is_hook("cache-relation-departed") && m.is_hook("logs-storage-detaching") && m.is_hook("install"));
        assert!(!m.is_hook("db-relation-joined"));
        assert_eq!(m.hooks().len(), UNIT_HOOKS.len() + 5 + 2);
        assert_eq!(m.endpoints[0].role, Role::Requires);
        assert!(m.actions.is_empty() && m.options.is_empty());
    }

    #[test]
    fn relation_hook_kinds() {
        assert_eq!(DB.hook_kind("db-relation-joined"), Some(RelationHook::Joined));
        assert_eq!(DB.hook_kind("db-relation-frob"), None);
        assert_eq!(DB.hook_kind("dbx-relation-joined"), None);
        assert_eq!(PEERS.hook_kind("db-relation-joined"), None);
        assert_eq!(PEERS.hook(RelationHook::Departed), "redis-peers-relation-departed");
        assert_eq!(StorageHook::Attached.name("data"), "data-storage-attached");
    }

    #[test]
    fn bad_yaml_is_an_error_naming_the_file() {
        let e = CharmMeta::parse("name: x\nprovides:\n  db: {}\n", "", "").unwrap_err();
        assert!(format!("{e:#}").starts_with("metadata.yaml provides: db: "), "{e:#}");
        let e = CharmMeta::parse("name: x\n", "options:\n  a: {type: list}\n", "").unwrap_err();
        assert!(format!("{e:#}").starts_with("config.yaml options: a: "), "{e:#}");
    }
}
