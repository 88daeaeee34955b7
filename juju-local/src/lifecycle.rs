//! What the controller and the uniters decide: which hooks run, in which order, on which unit
//! (reference §2). Each command queues hooks on units and `drain` runs the queues one hook at a time
//! (hooks are serialized); a failed hook stops its unit's queue until `run-hook`/`resolved` retries
//! it. A committed pod spec (and a scale or charm-modified-version change) is applied to Kubernetes by
//! `workload::ensure_service`; the kubelet daemon acts on it in the background.

use crate::charm_meta::{ConfigSchema, Metadata};
use crate::hook_runner::{self, Outcome};
use crate::model::{self, App, HookSpec, ImageResource, Model, NetMode, Paths, Relation, RemoteApp, StatusInfo, Unit};
use crate::workload::{self, Applied};
use crate::{charm_archive, kubelet, netns, util};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

/// Loads the model, creating it (and its network) when the model dir holds none. `settings` are the
/// deploy flags: they fix a new model's settings, and must agree with an existing model's.
pub fn load_or_create(paths: &Paths, settings: Option<&model::Settings>) -> Result<Model> {
    if paths.model_file().exists() {
        let m = Model::load(paths)?;
        if let Some(s) = settings
            && *s != m.settings
        {
            bail!(
                "the model already runs as Juju {} with a {}s kubelet sync period; \
                 --juju-version and --kubelet-sync-seconds apply when a model is created",
                m.settings.juju_version,
                m.settings.kubelet_sync_seconds
            );
        }
        return Ok(m);
    }
    std::fs::create_dir_all(&paths.root).with_context(|| format!("cannot create {}", paths.root.display()))?;
    let (network, index_file) = netns::setup_model(&paths.root)?;
    let model = Model {
        name: "local".into(),
        uuid: util::random_uuid(),
        network,
        apps: BTreeMap::new(),
        remote_apps: BTreeMap::new(),
        relations: BTreeMap::new(),
        next_relation_id: 0,
        index_file: Some(index_file),
        settings: settings.cloned().unwrap_or_default(),
    };
    if let Err(e) = model.save(paths) {
        netns::teardown_model(&model.network, model.index_file.as_deref());
        return Err(e);
    }
    Ok(model)
}

/// Parses a `--resource name=IMAGE` value: an image reference or a YAML/JSON file (reference §4).
pub fn parse_image(value: &str) -> Result<ImageResource> {
    let p = Path::new(value);
    if p.is_file() {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {value}"))?;
        let res: ImageResource = serde_yaml::from_str(&text)
            .with_context(|| format!("{value}: expected a YAML/JSON map with registrypath, username, password"))?;
        if res.registrypath.is_empty() {
            bail!("docker image path \"\" not valid");
        }
        return Ok(res);
    }
    if value.is_empty() || value.contains(char::is_whitespace) {
        bail!("docker image path {value:?} not valid");
    }
    Ok(ImageResource { registrypath: value.into(), username: String::new(), password: String::new() })
}

fn allocate_address(paths: &Paths, model: &Model) -> Result<String> {
    // Addresses of units, and of pods the kubelet still has (one may still be terminating).
    let pods = kubelet::load_pods(paths);
    let mut used: Vec<&str> = model.apps.values().flat_map(|a| a.units.values().map(|u| u.address.as_str())).collect();
    used.extend(pods.pods.values().map(|p| p.address.as_str()));
    let prefix = model.network.prefix();
    for octet in 10..=250u32 {
        let addr = format!("{prefix}.{octet}");
        if !used.contains(&addr.as_str()) {
            return Ok(addr);
        }
    }
    bail!("no free pod address in {prefix}.0/24")
}

fn charm_meta(paths: &Paths, app: &str) -> Result<Metadata> {
    let archive = paths.charm_archive(app);
    let text = charm_archive::read_entry(&archive, "metadata.yaml")?.context("charm has no metadata.yaml")?;
    let manifest = charm_archive::read_entry(&archive, "manifest.yaml")?;
    Metadata::parse_charm(&text, manifest.as_deref(), false)
}

/// Creates unit `app/<next>`: unpacks the charm into its agent dir and queues its deploy hooks.
pub fn add_unit(paths: &Paths, model: &mut Model, app: &str) -> Result<u32> {
    let address = allocate_address(paths, model)?;
    let a = model.app_mut(app)?;
    let n = a.next_unit;
    a.next_unit += 1;
    let unit_dir = paths.unit_dir(app, n);
    let _ = std::fs::remove_dir_all(&unit_dir);
    charm_archive::unpack(&paths.charm_archive(app), &paths.charm_dir(app, n))?;
    std::fs::create_dir_all(unit_dir.join("state"))?;
    std::fs::create_dir_all(unit_dir.join("resources"))?;
    hook_runner::ensure_tools(paths, app, n)?;
    if a.leader.is_none() {
        a.leader = Some(n);
    }
    let leader = a.leader == Some(n);
    let sidecar = a.sidecar;
    let mut queue = Vec::new();
    let mut storage_first = false;
    if sidecar {
        // A sidecar pod has its storage from creation, and the uniter runs storage hooks "before anything
        // else", then install (`worker/uniter/resolver.go` `nextOp`; `storage/resolver.go`).
        if let Ok(meta) = charm_meta(paths, app) {
            for st in meta.storage.keys() {
                queue.push(HookSpec {
                    name: format!("{st}-storage-attached"),
                    storage: Some(st.clone()),
                    ..Default::default()
                });
                storage_first = true;
            }
        }
    }
    queue.push(HookSpec::plain("install"));
    let rels: Vec<Relation> = model.relations_of(app).filter(|r| !r.dying).cloned().collect();
    for r in &rels {
        queue.push(HookSpec {
            name: format!("{}-relation-created", r.endpoint_of(app)),
            relation_id: Some(r.id),
            remote_app: Some(r.other_app(app).to_string()),
            ..Default::default()
        });
    }
    queue.push(HookSpec::plain(if leader { "leader-elected" } else { "leader-settings-changed" }));
    queue.push(HookSpec::plain("config-changed"));
    queue.push(HookSpec::plain("start"));
    let me = model::unit_name(app, n);
    // Entering scope publishes the unit's addresses at once, before any of its hooks run.
    for r in model.relations.values_mut().filter(|r| r.involves(app) && !r.dying) {
        r.unit_data.insert(me.clone(), scope_settings(&address));
    }
    let ordinal = charm_meta(paths, app).ok().filter(|m| m.stateful).map(|_| {
        let used: std::collections::BTreeSet<u32> =
            model.apps.get(app).map(|a| a.units.values().filter_map(|u| u.ordinal).collect()).unwrap_or_default();
        (0..).find(|o| !used.contains(o)).unwrap_or(0)
    });
    let unit = Unit {
        number: n,
        ordinal,
        agent: StatusInfo::new("allocating", ""),
        address,
        storage_attached: storage_first,
        ..Default::default()
    };
    model.app_mut(app)?.units.insert(n, unit);
    for r in &rels {
        queue.extend(join_hooks(model, r, app, &me));
    }
    queue.push(HookSpec::plain("update-status"));
    // Peers, and the units of a related deployed application: the existing units see the new one join
    // (`relation/resolver.go` `nextHookForRelation`: a remote member not yet known locally → joined,
    // then the ChangedPending changed).
    for r in &rels {
        let other = r.other_app(app).to_string();
        let hooks: Vec<HookSpec> = ["joined", "changed"]
            .iter()
            .map(|kind| HookSpec {
                name: format!("{}-relation-{kind}", r.endpoint_of(&other)),
                relation_id: Some(r.id),
                remote_unit: Some(me.clone()),
                remote_app: Some(app.to_string()),
                ..Default::default()
            })
            .collect();
        let Some(target) = model.apps.get_mut(&other) else { continue };
        for (m, u) in target.units.iter_mut() {
            let is_new_unit = other == app && *m == n;
            if !is_new_unit && !u.dying {
                u.queue.extend(hooks.iter().cloned());
            }
        }
    }
    model.unit_mut(app, n)?.queue = queue;
    Ok(n)
}

/// The units on the other side of a relation, as seen from `me` (peers: the other units of the app).
fn remote_units(model: &Model, r: &Relation, local_app: &str, me: &str) -> Vec<String> {
    let other = r.other_app(local_app);
    if !r.is_peer()
        && let Some(a) = model.apps.get(other)
    {
        return a.units.values().filter(|u| !u.dying).map(|u| model::unit_name(other, u.number)).collect();
    }
    if r.remote_app == r.app {
        let units: Vec<String> = model
            .apps
            .get(&r.app)
            .map(|a| a.units.keys().map(|n| model::unit_name(&r.app, *n)).collect())
            .unwrap_or_default();
        return units.into_iter().filter(|u: &String| u != me).collect();
    }
    model.remote_apps.get(&r.remote_app).map(|a| a.units.clone()).unwrap_or_default()
}

/// The settings Juju writes when a unit enters a relation's scope.
fn scope_settings(addr: &str) -> BTreeMap<String, String> {
    [
        ("private-address", addr.to_string()),
        ("ingress-address", addr.to_string()),
        ("egress-subnets", format!("{addr}/32")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// relation-joined + relation-changed for every remote unit of a relation.
fn join_hooks(model: &Model, r: &Relation, local_app: &str, me: &str) -> Vec<HookSpec> {
    let mut v = Vec::new();
    for ru in remote_units(model, r, local_app, me) {
        for kind in ["joined", "changed"] {
            v.push(HookSpec {
                name: format!("{}-relation-{kind}", r.endpoint_of(local_app)),
                relation_id: Some(r.id),
                remote_unit: Some(ru.clone()),
                remote_app: Some(r.other_app(local_app).to_string()),
                ..Default::default()
            });
        }
    }
    v
}

/// Bookkeeping around relation hooks: relation-list includes a remote unit from its joined hook on.
fn before_hook(model: &mut Model, app: &str, n: u32, hook: &HookSpec) {
    let Some(rid) = hook.relation_id else { return };
    let uname = model::unit_name(app, n);
    let Some(rel) = model.relations.get_mut(&rid) else { return };
    if hook.name.ends_with("-relation-joined")
        && let Some(ru) = &hook.remote_unit
    {
        let list = rel.joined.entry(uname.clone()).or_default();
        if !list.contains(ru) {
            list.push(ru.clone());
        }
    }
    // As in Juju, by the time -departed runs the remote unit is no longer in relation-list. (It stays
    // gone even if the hook fails: leaving the scope is not undone.)
    if hook.name.ends_with("-relation-departed")
        && let Some(ru) = &hook.remote_unit
        && let Some(list) = rel.joined.get_mut(&uname)
    {
        list.retain(|u| u != ru);
    }
}

fn after_hook(model: &mut Model, app: &str, n: u32, hook: &HookSpec) {
    if !hook.name.ends_with("-relation-departed") {
        return;
    }
    let (Some(rid), Some(ru)) = (hook.relation_id, &hook.remote_unit) else { return };
    if let Some(list) = model.relations.get_mut(&rid).and_then(|r| r.joined.get_mut(&model::unit_name(app, n))) {
        list.retain(|u| u != ru);
    }
}

/// Runs one hook with the bookkeeping around it.
pub fn run_one(paths: &Paths, model: &mut Model, app: &str, n: u32, hook: &HookSpec) -> Result<Outcome> {
    before_hook(model, app, n, hook);
    let outcome = hook_runner::run_hook(paths, model, app, n, hook)?;
    if outcome.ok {
        after_hook(model, app, n, hook);
    }
    after_commit(paths, model, app, n, &outcome)?;
    model.save(paths)?;
    Ok(outcome)
}

/// What follows a hook's or an action's commit: leader-settings-changed on the other units, relation
/// hooks for the changed bags, and the deployment worker applying a new pod spec.
pub fn after_commit(paths: &Paths, model: &mut Model, app: &str, n: u32, outcome: &Outcome) -> Result<()> {
    if outcome.leader_settings_changed {
        for (m, u) in model.app_mut(app)?.units.iter_mut() {
            if *m != n && !u.queue.iter().any(|h| h.name == "leader-settings-changed") {
                u.queue.push(HookSpec::plain("leader-settings-changed"));
            }
        }
    }
    if outcome.ok {
        queue_relation_changed(model, app, n, &outcome.changed_relations);
    }
    if outcome.spec_committed {
        workload::ensure_service(paths, model, app)?;
    }
    Ok(())
}

/// Who gets `<ep>-relation-changed` after a commit (findings §6): each unit watches the counterpart
/// application's settings (`state/watcher.go` `RelationUnit.Watch` → `counterpartApplicationSettingsKeys`),
/// and for a peer relation the counterpart is its own application, with nothing filtering out the
/// writer: an application-bag write fires the hook on EVERY unit of the other side, the writer included
/// on a peer relation (JUJU_REMOTE_UNIT empty, JUJU_REMOTE_APP = the writer's application). A unit-bag
/// write fires it only on the other units that have seen the writer join (the scope watcher ignores
/// the writer's own unit, `watchRelationScope`), with JUJU_REMOTE_UNIT = the writer. The application
/// hook comes first (`relation/resolver.go` checks ApplicationMembers before Members). Stand-in
/// applications have no charm, so nothing runs for them.
fn queue_relation_changed(model: &mut Model, app: &str, n: u32, changed: &[(u32, bool, bool)]) {
    let writer = model::unit_name(app, n);
    for &(rid, unit_changed, app_changed) in changed {
        let Some(rel) = model.relations.get(&rid) else { continue };
        if rel.dying {
            continue;
        }
        let peer = rel.app == rel.remote_app;
        let (other_app, other_ep) = if rel.app == app {
            (rel.remote_app.clone(), rel.remote_endpoint.clone())
        } else {
            (rel.app.clone(), rel.endpoint.clone())
        };
        let Some(target) = model.apps.get(&other_app) else { continue };
        let mut receivers: Vec<(u32, Option<String>)> = Vec::new();
        for m in target.units.keys().copied() {
            let me = model::unit_name(&other_app, m);
            if app_changed && (peer || me != writer) {
                receivers.push((m, None));
            }
            let has_seen = rel.joined.get(&me).is_some_and(|l| l.contains(&writer));
            if unit_changed && me != writer && has_seen {
                receivers.push((m, Some(writer.clone())));
            }
        }
        for (m, remote_unit) in receivers {
            let Ok(u) = model.unit_mut(&other_app, m) else { continue };
            if u.dying {
                continue;
            }
            let hook = HookSpec {
                name: format!("{other_ep}-relation-changed"),
                relation_id: Some(rid),
                remote_unit: remote_unit.clone(),
                remote_app: Some(app.to_string()),
                ..Default::default()
            };
            let dup = u
                .queue
                .iter()
                .any(|h| h.name == hook.name && h.relation_id == hook.relation_id && h.remote_unit == hook.remote_unit);
            if !dup {
                u.queue.push(hook);
            }
        }
    }
}

/// Queues `<storage>-storage-attached` once the unit has started and its pod is up (CAAS order).
fn queue_storage_hooks(paths: &Paths, model: &mut Model) {
    let pods = kubelet::load_pods(paths);
    let names: Vec<String> = model.apps.keys().cloned().collect();
    for app in names {
        let Ok(meta) = charm_meta(paths, &app) else { continue };
        if meta.storage.is_empty() {
            continue;
        }
        let Some(a) = model.apps.get_mut(&app) else { continue };
        for u in a.units.values_mut() {
            let pod_up = kubelet::pod_of(&pods, &app, u.number).is_some_and(|p| p.phase == "Running");
            if u.started && !u.storage_attached && pod_up && !u.dying {
                u.storage_attached = true;
                for st in meta.storage.keys().rev() {
                    u.queue.insert(
                        0,
                        HookSpec {
                            name: format!("{st}-storage-attached"),
                            storage: Some(st.clone()),
                            ..Default::default()
                        },
                    );
                }
            }
        }
    }
}

/// A started unit whose storage is not attached yet gets `-storage-attached` once its pod runs (the
/// filesystem attachment). When the kubelet is still creating such a pod, wait for it (bounded), as the
/// unit agent would wait for the attachment. True when a pod came up.
fn wait_for_storage_pods(paths: &Paths, model: &Model) -> bool {
    let cluster = workload::Cluster::load(paths).unwrap_or_default();
    let waiting: Vec<(String, u32)> = model
        .apps
        .iter()
        .filter(|(name, _)| cluster.apps.get(*name).and_then(|o| o.workload.as_ref()).is_some())
        .filter(|(name, _)| charm_meta(paths, name).is_ok_and(|m| !m.storage.is_empty()))
        .flat_map(|(name, a)| {
            a.units.values().filter(|u| u.started && !u.storage_attached && !u.dying).map(|u| (name.clone(), u.number))
        })
        .collect();
    if waiting.is_empty() {
        return false;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let pods = kubelet::load_pods(paths);
        let mut up = false;
        let mut still = false;
        for (app, n) in &waiting {
            match kubelet::pod_of(&pods, app, *n) {
                Some(p) if p.phase == "Running" => up = true,
                Some(p) if p.error.is_some() => {}
                _ => still = true,
            }
        }
        if up {
            return true;
        }
        if !still || std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Hooks whose resolvers come before the workload-event one (`worker/uniter/resolver.go` `NextOp`: created
/// relations, then leadership, then the optional resolvers); install is the pending operation until it ran.
fn precedes_workload_events(h: &HookSpec) -> bool {
    h.name == "install"
        || h.name.ends_with("-relation-created")
        || h.name == "leader-elected"
        || h.name == "leader-settings-changed"
        || h.name.ends_with("-storage-attached")
}

/// A sidecar unit's `<container>-pebble-ready` hooks (see `sidecar`): for every workload container whose
/// Pebble answers on a boot the uniter has not seen, queued before the hooks of the later resolvers.
fn queue_pebble_ready(paths: &Paths, model: &mut Model, app: &str, n: u32) {
    let Ok(a) = model.app(app) else { return };
    if !a.sidecar {
        return;
    }
    let Ok(u) = model.unit(app, n) else { return };
    if !u.installed || u.dying || u.failed_hook.is_some() {
        return;
    }
    let pos = u.queue.iter().position(|h| !precedes_workload_events(h)).unwrap_or(u.queue.len());
    let boots = crate::sidecar::new_pebble_boots(paths, app, n, &u.pebble_seen);
    if boots.is_empty() {
        return;
    }
    let Ok(u) = model.unit_mut(app, n) else { return };
    for (i, (c, boot)) in boots.into_iter().enumerate() {
        let name = format!("{c}-pebble-ready");
        u.queue.retain(|h| h.name != name);
        u.queue.insert(pos.min(u.queue.len()) + i, HookSpec::plain(&name));
        u.pebble_seen.insert(c, boot);
    }
}

/// How long a deploy or scale waits for a sidecar unit's workload containers' Pebble to answer.
const PEBBLE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits (bounded) until every installed sidecar unit's workload containers have a Pebble the uniter has
/// seen or that answers now; true when a pebble-ready was queued.
fn wait_for_pebble(paths: &Paths, model: &mut Model) -> bool {
    let units: Vec<(String, u32, usize)> = model
        .apps
        .iter()
        .filter(|(_, a)| a.sidecar)
        .flat_map(|(name, a)| {
            let containers = charm_meta(paths, name).map(|m| m.containers.len()).unwrap_or(0);
            a.units
                .values()
                .filter(|u| u.installed && !u.dying && u.failed_hook.is_none())
                .map(move |u| (name.clone(), u.number, containers))
        })
        .collect();
    let deadline = std::time::Instant::now() + PEBBLE_WAIT;
    let mut queued = false;
    loop {
        let mut waiting = false;
        for (app, n, containers) in &units {
            queue_pebble_ready(paths, model, app, *n);
            let Ok(u) = model.unit(app, *n) else { continue };
            if u.queue.iter().any(|h| h.name.ends_with("-pebble-ready")) {
                queued = true;
            } else if u.pebble_seen.len() < *containers {
                waiting = true;
            }
        }
        if queued || !waiting || std::time::Instant::now() > deadline {
            return queued;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Runs every unit's queued hooks until nothing is left to run. Returns warnings (failed hooks) for
/// the CLI to print.
pub fn drain(paths: &Paths, model: &mut Model) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    kubelet::ensure_running(paths)?;
    for _ in 0..100 {
        let mut progressed = process_dying(paths, model, &mut warnings)?;
        let units: Vec<(String, u32)> =
            model.apps.iter().flat_map(|(a, app)| app.units.keys().map(move |n| (a.clone(), *n))).collect();
        for (app, n) in units {
            loop {
                queue_pebble_ready(paths, model, &app, n);
                let Ok(unit) = model.unit_mut(&app, n) else { break };
                if unit.failed_hook.is_some() || unit.queue.is_empty() || unit.dying {
                    break;
                }
                let hook = unit.queue.remove(0);
                progressed = true;
                let outcome = run_one(paths, model, &app, n, &hook)?;
                if let Some(e) = outcome.error {
                    warnings.push(format!("unit {app}/{n}: {e}"));
                    break;
                }
                queue_storage_hooks(paths, model);
            }
        }
        queue_storage_hooks(paths, model);
        if wait_for_storage_pods(paths, model) {
            queue_storage_hooks(paths, model);
            progressed = true;
        }
        if wait_for_pebble(paths, model) {
            progressed = true;
        }
        model.save(paths)?;
        let pending = model
            .apps
            .values()
            .flat_map(|a| a.units.values())
            .any(|u| u.failed_hook.is_none() && !u.queue.is_empty() && !u.dying);
        if !progressed || !pending {
            break;
        }
    }
    reap_dying_relations(model);
    model.save(paths)?;
    Ok(warnings)
}

/// `juju deploy`.
pub fn deploy(
    paths: &Paths,
    charm: &Path,
    app_name: Option<&str>,
    resources: &[(String, String)],
    config: &[(String, String)],
    num_units: u32,
    model_settings: Option<&model::Settings>,
) -> Result<(Model, Vec<String>)> {
    let meta_text = charm_archive::read_entry(charm, "metadata.yaml")?.context("invalid charm: no metadata.yaml")?;
    let manifest = charm_archive::read_entry(charm, "manifest.yaml")?;
    let version = match model_settings {
        Some(s) => model::Version::parse(&s.juju_version)?,
        None if paths.model_file().exists() => Model::load(paths)?.version(),
        None => model::Version::parse(model::DEFAULT_JUJU_VERSION)?,
    };
    let juju4 = version.at_least(4, 0, 0);
    let meta = Metadata::parse_charm(&meta_text, manifest.as_deref(), juju4)?;
    // Juju 4.0 refuses a format v1 charm on Kubernetes (`deployer/charm.go` `checkCharmFormat`).
    if juju4 && meta.format == 1 {
        bail!("deploying format v1 charms not supported");
    }
    // The charm's `assumes` against the model's features, as the controller checks them (see `assumes`).
    let doc: serde_json::Value = serde_yaml::from_str(&meta_text).context("invalid metadata.yaml")?;
    crate::assumes::check(doc.get("assumes"), version)?;
    // juju-local models sidecar applications as Juju 3.1-4.0 do (a stand-in limit, not a Juju rule).
    if meta.format == 2 && !version.at_least(3, 1, 0) {
        bail!(
            "charm {:?} is a sidecar (format v2) charm: juju-local runs those as Juju 3.1 to 4.0 \
             (deploy --juju-version 3.1.9 … 4.0.0), not {version}",
            meta.name
        );
    }
    let schema = match charm_archive::read_entry(charm, "config.yaml")? {
        Some(t) => ConfigSchema::parse(&t)?,
        None => ConfigSchema::default(),
    };
    let has_dispatch = charm_archive::has_entry(charm, "dispatch").unwrap_or(false);
    if !has_dispatch && charm_archive::read_entry(charm, "hooks/install").ok().flatten().is_none() {
        // 2.8.1+ client check; charms built with hook symlinks only still pass through hooks/.
        crate::cli::warn("charm has no dispatch script and no hooks/install");
    }
    let name = app_name.unwrap_or(&meta.name).to_string();
    let mut images = BTreeMap::new();
    for (k, v) in resources {
        if !meta.oci_resources.contains(k) {
            bail!("unrecognized resource {k:?}");
        }
        images.insert(k.clone(), parse_image(v)?);
    }
    let missing: Vec<&str> =
        meta.oci_resources.iter().filter(|r| !images.contains_key(*r)).map(String::as_str).collect();
    if !missing.is_empty() {
        bail!("local charm missing OCI images for: {}", missing.join(", "));
    }
    let mut settings = BTreeMap::new();
    for (k, v) in config {
        settings.insert(k.clone(), schema.parse_value(k, v).map_err(anyhow::Error::msg)?);
    }
    let mut model = load_or_create(paths, model_settings)?;
    if model.apps.contains_key(&name) || model.remote_apps.contains_key(&name) {
        bail!("cannot add application {name:?}: application already exists");
    }
    let dest = paths.charm_archive(&name);
    std::fs::create_dir_all(dest.parent().context("bad model dir")?)?;
    std::fs::copy(charm, &dest).with_context(|| format!("cannot copy {}", charm.display()))?;
    model.apps.insert(
        name.clone(),
        App {
            name: name.clone(),
            charm: meta.name.clone(),
            config: settings,
            resources: images,
            sidecar: meta.format == 2,
            ..Default::default()
        },
    );
    // Juju creates the peer relations with the application.
    for ep in meta.endpoints.iter().filter(|e| e.role == "peer") {
        let id = model.next_relation_id;
        model.next_relation_id += 1;
        model.relations.insert(
            id,
            Relation {
                id,
                app: name.clone(),
                endpoint: ep.name.clone(),
                interface: ep.interface.clone(),
                remote_app: name.clone(),
                remote_endpoint: ep.name.clone(),
                ..Default::default()
            },
        );
    }
    for _ in 0..num_units {
        add_unit(paths, &mut model, &name)?;
    }
    workload::ensure_service(paths, &mut model, &name)?;
    model.save(paths)?;
    let warnings = drain(paths, &mut model)?;
    Ok((model, warnings))
}

/// Outcome of `juju config` with values.
pub enum ConfigChange {
    Changed,
    Unchanged(Vec<String>),
}

/// `juju config APP k=v … / --reset k`: type-checked like the controller; config-changed on change.
pub fn set_config(
    paths: &Paths,
    model: &mut Model,
    app: &str,
    sets: &[(String, String)],
    resets: &[String],
) -> Result<ConfigChange> {
    let schema = ConfigSchema::load(
        &paths.charm_dir(app, *model.app(app)?.units.keys().next().context("application has no units")?),
    )?;
    let current = model.app(app)?.config.clone();
    let effective = schema.effective(&current);
    let mut new = current.clone();
    let mut warnings = Vec::new();
    for (k, raw) in sets {
        let v = schema.parse_value(k, raw).map_err(anyhow::Error::msg)?;
        if effective.get(k).cloned().flatten().as_ref() == Some(&v) {
            warnings.push(format!("the configuration setting {k:?} already has the value {raw:?}"));
        }
        new.insert(k.clone(), v);
    }
    for k in resets {
        if !schema.options.contains_key(k) {
            bail!("unknown option {k:?}");
        }
        new.remove(k);
    }
    if schema.effective(&new) == effective {
        if let Ok(a) = model.app_mut(app) {
            a.config = new;
        }
        model.save(paths)?;
        return Ok(ConfigChange::Unchanged(warnings));
    }
    model.app_mut(app)?.config = new;
    for u in model.app_mut(app)?.units.values_mut() {
        u.queue.push(HookSpec::plain("config-changed"));
    }
    model.save(paths)?;
    Ok(ConfigChange::Changed)
}

/// `juju attach-resource`: new resource bytes bump the application's CharmModifiedVersion
/// (`state/resources_persistence_staged.go` ~86-97), which is a pod template annotation from 2.8.2, so
/// the deployment worker re-applies the workload and the pods roll (findings §4); then upgrade-charm
/// and config-changed run on every unit.
pub fn attach_resource(model: &mut Model, app: &str, name: &str, value: &str, paths: &Paths) -> Result<()> {
    let meta = charm_meta(paths, app)?;
    if !meta.oci_resources.iter().any(|r| r == name) {
        bail!("resource {name:?} not found");
    }
    let res = parse_image(value)?;
    let a = model.app_mut(app)?;
    let changed = a.resources.get(name) != Some(&res);
    a.resources.insert(name.into(), res);
    if changed {
        a.charm_modified_version += 1;
    }
    for u in a.units.values_mut().filter(|u| !u.dying) {
        u.queue.push(HookSpec::plain("upgrade-charm"));
        u.queue.push(HookSpec::plain("config-changed"));
    }
    if changed {
        workload::ensure_service(paths, model, app)?;
    }
    model.save(paths)
}

/// `juju relate APP[:ep] client`: a stand-in application with one unit and no charm.
pub fn relate(paths: &Paths, model: &mut Model, app_ep: &str, remote: &str) -> Result<u32> {
    let (app, ep) = match app_ep.split_once(':') {
        Some((a, e)) => (a.to_string(), Some(e.to_string())),
        None => (app_ep.to_string(), None),
    };
    model.app(&app)?;
    if model.apps.contains_key(remote) {
        bail!("juju-local relates applications only to stand-in applications; {remote:?} is a deployed charm");
    }
    let meta = charm_meta(paths, &app)?;
    let endpoint = match &ep {
        Some(e) => meta.endpoint(e).with_context(|| format!("application {app:?} has no endpoint {e:?}"))?.clone(),
        None => meta
            .endpoints
            .iter()
            .find(|e| e.role != "peer")
            .with_context(|| format!("application {app:?} has no endpoint to relate"))?
            .clone(),
    };
    if model.relations.values().any(|r| r.app == app && r.endpoint == endpoint.name && r.remote_app == remote) {
        bail!(
            "cannot add relation \"{remote}:{} {app}:{}\": relation already exists",
            endpoint.interface,
            endpoint.name
        );
    }
    let remote_unit = format!("{remote}/0");
    model
        .remote_apps
        .entry(remote.to_string())
        .or_insert_with(|| RemoteApp { name: remote.into(), units: vec![remote_unit.clone()] });
    let id = model.next_relation_id;
    model.next_relation_id += 1;
    let host = model.network.host_address();
    let mut rel = Relation {
        id,
        app: app.clone(),
        endpoint: endpoint.name.clone(),
        interface: endpoint.interface.clone(),
        remote_app: remote.into(),
        remote_endpoint: endpoint.interface.clone(),
        ..Default::default()
    };
    rel.unit_data.insert(remote_unit, scope_settings(&host));
    for (n, u) in &model.app(&app)?.units {
        rel.unit_data.insert(model::unit_name(&app, *n), scope_settings(&u.address));
    }
    rel.app_data.insert(remote.into(), BTreeMap::new());
    let created = HookSpec {
        name: format!("{}-relation-created", rel.endpoint),
        relation_id: Some(id),
        remote_app: Some(remote.into()),
        ..Default::default()
    };
    model.relations.insert(id, rel.clone());
    let joins = join_hooks(model, &rel, &app, "");
    for u in model.app_mut(&app)?.units.values_mut() {
        u.queue.push(created.clone());
        u.queue.extend(joins.iter().cloned());
    }
    model.save(paths)?;
    Ok(id)
}

/// `app[:endpoint]` → (app, endpoint).
fn split_endpoint(s: &str) -> (String, Option<String>) {
    match s.split_once(':') {
        Some((a, e)) => (a.to_string(), Some(e.to_string())),
        None => (s.to_string(), None),
    }
}

/// Juju's relation key (`state/relation.go` `relationKey`): the endpoints sorted requirer, provider,
/// peer (`roleOrder`), then by `app:endpoint`, joined by a space.
fn relation_key(eps: &[(&str, &crate::charm_meta::Endpoint)]) -> String {
    let order = |role: &str| match role {
        "requirer" => 0,
        "provider" => 1,
        _ => 2,
    };
    let mut v: Vec<(u8, String)> = eps.iter().map(|(a, e)| (order(e.role), format!("{a}:{}", e.name))).collect();
    v.sort();
    v.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(" ")
}

/// Whether `spec` names a deployed application (`app` or `app:endpoint`): `relate A B` relates two
/// charms then; otherwise B is a stand-in client.
pub fn names_deployed_app(model: &Model, spec: &str) -> bool {
    spec.contains(':') || model.apps.contains_key(spec)
}

/// `juju integrate A[:ep] B[:ep]` between two deployed applications of the model.
///
/// - The endpoints are inferred as `state/state.go` `InferEndpoints` does (3.6-rc1 2f9226cf, 3.1.9
///   05a19fb8): every non-peer endpoint pair (restricted to the named endpoints) that `CanRelateTo`
///   (`state/endpoint.go`: different applications, the same interface, counterpart roles
///   provider↔requirer); none → `no relations found`; several → `ambiguous relation: "A B" could
///   refer to "k1"; "k2"`. A named endpoint the charm lacks → `application "A" has no "ep" relation`
///   (`Application.Endpoint`).
/// - `AddRelation`: an existing relation with the same key → AlreadyExists (`relation <key>`);
///   `enforceMaxRelationLimit` for each endpoint with a `limit`: the relations already established on
///   that application endpoint (same name and interface; stand-in relations count) + 1 may not exceed
///   it, else `establishing a new relation for A:ep would exceed its maximum relation limit of N`;
///   errors annotated `cannot add relation "<key>"`.
/// - Then every unit of both sides enters scope (its address settings, as for any relation) and runs
///   `<ep>-relation-created` (`createdRelationsResolver`), then for each remote unit `-relation-joined`
///   and the pending `-relation-changed` (`relationsResolver.nextHookForRelation`, ChangedPending), with
///   JUJU_REMOTE_UNIT/JUJU_REMOTE_APP set.
///
/// The relation is stored provider first (`app`/`endpoint`), requirer second (`remote_app`/…).
pub fn relate_apps(paths: &Paths, model: &mut Model, a: &str, b: &str) -> Result<u32> {
    let names = [split_endpoint(a), split_endpoint(b)];
    let mut sides: Vec<Vec<(String, crate::charm_meta::Endpoint)>> = Vec::new();
    for (app, ep) in &names {
        model.app(app)?;
        let meta = charm_meta(paths, app)?;
        let eps: Vec<crate::charm_meta::Endpoint> = match ep {
            Some(e) => {
                vec![meta.endpoint(e).cloned().with_context(|| format!("application {app:?} has no {e:?} relation"))?]
            }
            None => meta.endpoints.clone(),
        };
        sides.push(eps.into_iter().filter(|e| e.role != "peer").map(|e| (app.clone(), e)).collect());
    }
    let counterpart = |r: &str| match r {
        "provider" => "requirer",
        "requirer" => "provider",
        _ => "",
    };
    let mut candidates = Vec::new();
    for (a1, e1) in &sides[0] {
        for (a2, e2) in &sides[1] {
            if a1 != a2 && e1.interface == e2.interface && counterpart(e1.role) == e2.role {
                candidates.push(((a1.clone(), e1.clone()), (a2.clone(), e2.clone())));
            }
        }
    }
    let ((pa, pe), (ra, re)) = match candidates.len() {
        0 => bail!("no relations found"),
        1 => {
            let (x, y) = candidates.remove(0);
            if x.1.role == "provider" { (x, y) } else { (y, x) }
        }
        _ => {
            let mut keys: Vec<String> =
                candidates.iter().map(|(x, y)| format!("{:?}", relation_key(&[(&x.0, &x.1), (&y.0, &y.1)]))).collect();
            keys.sort();
            bail!("ambiguous relation: {:?} could refer to {}", format!("{a} {b}"), keys.join("; "));
        }
    };
    let key = relation_key(&[(&pa, &pe), (&ra, &re)]);
    let exists = model
        .relations
        .values()
        .any(|r| r.app == pa && r.endpoint == pe.name && r.remote_app == ra && r.remote_endpoint == re.name);
    if exists {
        bail!("cannot add relation {key:?}: relation {key} already exists");
    }
    for (app, ep) in [(&pa, &pe), (&ra, &re)] {
        if ep.limit == 0 {
            continue;
        }
        let established = model
            .relations_of(app)
            .filter(|r| !r.is_peer() && r.endpoint_of(app) == ep.name && r.interface == ep.interface)
            .count() as u32;
        if established + 1 > ep.limit {
            bail!(
                "cannot add relation {key:?}: establishing a new relation for {app}:{} would exceed its maximum \
                 relation limit of {}",
                ep.name,
                ep.limit
            );
        }
    }
    let id = model.next_relation_id;
    model.next_relation_id += 1;
    let mut rel = Relation {
        id,
        app: pa.clone(),
        endpoint: pe.name.clone(),
        interface: pe.interface.clone(),
        remote_app: ra.clone(),
        remote_endpoint: re.name.clone(),
        ..Default::default()
    };
    for side in [&pa, &ra] {
        for (n, u) in model.app(side)?.units.iter().filter(|(_, u)| !u.dying) {
            rel.unit_data.insert(model::unit_name(side, *n), scope_settings(&u.address));
        }
    }
    model.relations.insert(id, rel.clone());
    for side in [&pa, &ra] {
        let created = HookSpec {
            name: format!("{}-relation-created", rel.endpoint_of(side)),
            relation_id: Some(id),
            remote_app: Some(rel.other_app(side).to_string()),
            ..Default::default()
        };
        let units: Vec<u32> = model.app(side)?.units.values().filter(|u| !u.dying).map(|u| u.number).collect();
        for n in units {
            let joins = join_hooks(model, &rel, side, &model::unit_name(side, n));
            let u = model.unit_mut(side, n)?;
            u.queue.push(created.clone());
            u.queue.extend(joins);
        }
    }
    model.save(paths)?;
    Ok(id)
}

/// Finds the relation `juju remove-relation` names: a relation id, or one or two `app[:endpoint]`
/// (`state.go` `InferActiveRelation`: none → `relation matching "…" not found`; several → ambiguous).
pub fn find_relation(model: &Model, names: &[String]) -> Result<u32> {
    if names.len() == 1
        && let Ok(id) = names[0].parse::<u32>()
    {
        return match model.relations.get(&id) {
            Some(r) if !r.is_peer() => Ok(id),
            _ => bail!("relation {id} not found"),
        };
    }
    if names.len() != 2 {
        bail!("a relation must involve two applications");
    }
    let wanted: Vec<(String, Option<String>)> = names.iter().map(|n| split_endpoint(n)).collect();
    let side_matches =
        |app: &str, ep: &str, w: &(String, Option<String>)| w.0 == app && w.1.as_deref().is_none_or(|e| e == ep);
    let found: Vec<&Relation> = model
        .relations
        .values()
        .filter(|r| !r.is_peer() && !r.dying)
        .filter(|r| {
            let (x, y) = (&wanted[0], &wanted[1]);
            let remote_ep = if model.apps.contains_key(&r.remote_app) { r.remote_endpoint.as_str() } else { "" };
            let y_remote = |w: &(String, Option<String>)| {
                if model.apps.contains_key(&r.remote_app) {
                    side_matches(&r.remote_app, remote_ep, w)
                } else {
                    w.0 == r.remote_app
                }
            };
            (side_matches(&r.app, &r.endpoint, x) && y_remote(y))
                || (side_matches(&r.app, &r.endpoint, y) && y_remote(x))
        })
        .collect();
    match found.as_slice() {
        [] => bail!("relation matching {:?} not found", names.join(" ")),
        [one] => Ok(one.id),
        many => bail!(
            "ambiguous relation: {:?} could refer to {}",
            names.join(" "),
            many.iter()
                .map(|r| format!("\"{}:{} {}:{}\"", r.remote_app, r.remote_endpoint, r.app, r.endpoint))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// Marks a relation Dying and queues its teardown on every unit of both charm sides
/// (`relation/resolver.go` `processRelationSnapshot`: relation Dying → remoteBroken; then
/// `nextHookForRelation`): `-relation-departed` for every remote unit the unit has seen join, then
/// `-relation-broken`. JUJU_DEPARTING_UNIT is the remote unit, unless the unit's own application is
/// dying (`dying_app`), when it is the unit itself ("if localUnitLife != Alive || localAppLife !=
/// Alive { departee = LocalUnitName }"). The relation stays readable until its hooks ran (`drain`
/// deletes it then); no relation-changed is queued for a Dying relation.
pub fn queue_relation_teardown(model: &mut Model, id: u32, dying_app: Option<&str>) -> Result<()> {
    let rel = model.relations.get_mut(&id).context("relation not found")?;
    rel.dying = true;
    let rel = rel.clone();
    for side in [rel.app.clone(), rel.remote_app.clone()] {
        let Some(a) = model.apps.get_mut(&side) else { continue };
        for u in a.units.values_mut() {
            let me = model::unit_name(&side, u.number);
            // Hooks for the relation not yet run are moot now (the remote state no longer shows it).
            u.queue.retain(|h| {
                h.relation_id != Some(id)
                    || h.name.ends_with("-relation-departed")
                    || h.name.ends_with("-relation-broken")
            });
            for ru in rel.joined.get(&me).cloned().unwrap_or_default() {
                u.queue.push(HookSpec {
                    name: format!("{}-relation-departed", rel.endpoint_of(&side)),
                    relation_id: Some(id),
                    remote_unit: Some(ru.clone()),
                    remote_app: Some(rel.other_app(&side).to_string()),
                    departing_unit: Some(if dying_app == Some(side.as_str()) { me.clone() } else { ru }),
                    ..Default::default()
                });
            }
            if !u.installed && !u.queue.iter().any(|h| h.name == "install") {
                continue;
            }
            u.queue.push(HookSpec {
                name: format!("{}-relation-broken", rel.endpoint_of(&side)),
                relation_id: Some(id),
                remote_app: Some(rel.other_app(&side).to_string()),
                ..Default::default()
            });
        }
    }
    Ok(())
}

/// Deletes Dying relations no unit still has a hook queued (or failed) for.
fn reap_dying_relations(model: &mut Model) {
    let busy: Vec<u32> = model
        .apps
        .values()
        .flat_map(|a| a.units.values())
        .flat_map(|u| u.queue.iter().chain(u.failed_hook.iter()))
        .filter_map(|h| h.relation_id)
        .collect();
    let gone: Vec<u32> = model.relations.values().filter(|r| r.dying && !busy.contains(&r.id)).map(|r| r.id).collect();
    for id in gone {
        model.relations.remove(&id);
    }
    let used: Vec<String> = model.relations.values().map(|r| r.remote_app.clone()).collect();
    model.remote_apps.retain(|name, _| used.contains(name));
}

/// `juju remove-relation`: the relation goes Dying, both sides run departed/broken, then it is gone.
pub fn remove_relation(paths: &Paths, model: &mut Model, id: u32) -> Result<Vec<String>> {
    queue_relation_teardown(model, id, None)?;
    model.save(paths)?;
    drain(paths, model)
}

/// What the stand-in client sees of a relation: the provider's application and unit bags.
pub fn client_view(model: &Model, id: u32) -> Value {
    let Some(r) = model.relations.get(&id) else { return Value::Null };
    let units: BTreeMap<&String, &BTreeMap<String, String>> =
        r.unit_data.iter().filter(|(u, _)| u.starts_with(&format!("{}/", r.app))).collect();
    let app_data = r.app_data.get(&r.app).cloned().unwrap_or_default();
    serde_json::json!({
        "relation-id": r.id,
        "endpoint": format!("{}:{}", r.remote_app, r.remote_endpoint),
        "related-endpoint": format!("{}:{}", r.app, r.endpoint),
        "application-data": app_data,
        "unit-data": units,
        "views": {
            "reactive-interface-redis": reactive_view(&units),
            "ops-redis-k8s-library": ops_view(&units, &app_data),
        },
    })
}

/// What a charms.reactive `interface:redis` requirer makes of the data: each value JSON-decoded with a
/// raw fallback; `available` once any unit has a truthy port; the lowest-sorted unit with host and port
/// is the one consumers use.
fn reactive_view(units: &BTreeMap<&String, &BTreeMap<String, String>>) -> Value {
    let decode = |v: &str| serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()));
    let truthy =
        |v: &Value| !matches!(v, Value::Null | Value::Bool(false)) && v != &Value::from(0) && v != &Value::from("");
    let available = units.values().any(|b| b.get("port").map(|p| decode(p)).is_some_and(|p| truthy(&p)));
    let first = units.iter().find_map(|(name, bag)| {
        let host = decode(bag.get("host")?);
        let port = decode(bag.get("port")?);
        (truthy(&host) && truthy(&port)).then(|| {
            let mut v = serde_json::json!({"unit": name, "host": host, "port": port});
            if let Some(pw) = bag.get("password").map(|p| decode(p)).filter(|p| truthy(p)) {
                v["password"] = pw;
            }
            v
        })
    });
    serde_json::json!({"available": available, "uses": first})
}

/// What an ops `redis_k8s` library requirer makes of it: `redis://{leader-host or hostname}:{port}` from
/// raw strings, one URL per unit bag (the library takes an arbitrary one); no credentials.
fn ops_view(units: &BTreeMap<&String, &BTreeMap<String, String>>, app: &BTreeMap<String, String>) -> Value {
    let urls: std::collections::BTreeSet<String> = units
        .values()
        .map(|b| {
            let host = app.get("leader-host").or_else(|| b.get("hostname")).map(String::as_str).unwrap_or("None");
            format!("redis://{host}:{}", b.get("port").map(String::as_str).unwrap_or("None"))
        })
        .collect();
    serde_json::json!({"urls": urls})
}

/// How long the controller waits for the kubelet to mark a departing unit's pod for deletion.
const DEPARTURE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Scale-down and unit removal, as Juju drives them for podspec applications (findings §7): the unit
/// count goes down first (`EnsureService(numUnits)` lowers the StatefulSet's replicas), Kubernetes marks
/// the surplus pods for deletion and SIGTERMs them, and only then does Juju see the unit's pod dying
/// (`DeletionTimestamp != nil`, k8s.go `Units`) and make the unit Dying (`updateUnitsFromCloud`). So
/// the units are marked dying, the workload is published, and the caller waits until the kubelet has
/// marked their pods for deletion before any of their hooks run. Returns false when Kubernetes
/// refused the update (the operator status says why): the pods and the units stay until a spec is
/// accepted (`process_dying` picks them up then).
fn begin_departure(paths: &Paths, model: &mut Model, app: &str, units: &[u32]) -> Result<bool> {
    for n in units {
        let u = model.unit_mut(app, *n)?;
        u.dying = true;
        u.queue.clear();
    }
    let applied = workload::ensure_service(paths, model, app)?;
    model.save(paths)?;
    if let Applied::Refused(_) = applied {
        return Ok(false);
    }
    await_pods_terminating(paths, app, units)?;
    Ok(true)
}

/// Waits (bounded) until the kubelet has acted on the published objects and marked the pods of
/// `units` for deletion (or removed them): the moment Juju's pod informer reports them dying.
fn await_pods_terminating(paths: &Paths, app: &str, units: &[u32]) -> Result<()> {
    kubelet::ensure_running(paths)?;
    let generation = workload::Cluster::load(paths)?.generation;
    let deadline = std::time::Instant::now() + DEPARTURE_WAIT;
    loop {
        let pods = kubelet::wait_observed(paths, generation, DEPARTURE_WAIT)?;
        let pending: Vec<u32> = units
            .iter()
            .copied()
            .filter(|n| pods.pods.values().any(|p| p.app == app && p.unit == *n && !p.terminating()))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("the kubelet did not mark the pods of units {pending:?} of {app} for deletion");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Dying units left by a scale-down Kubernetes refused: once an update is accepted (the operator
/// status is no longer an error) their pods are marked for deletion, and their departure hooks run.
fn process_dying(paths: &Paths, model: &mut Model, warnings: &mut Vec<String>) -> Result<bool> {
    let mut by_app: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (a, app) in &model.apps {
        if app.operator_error.is_some() {
            continue;
        }
        for u in app.units.values().filter(|u| u.dying) {
            by_app.entry(a.clone()).or_default().push(u.number);
        }
    }
    let mut progressed = false;
    for (app, units) in by_app {
        await_pods_terminating(paths, &app, &units)?;
        for n in units {
            depart(paths, model, &app, n, warnings)?;
            progressed = true;
        }
    }
    Ok(progressed)
}

/// A Dying unit's hooks (`uniter/resolver.go` `nextOp`, Dying; `relation/resolver.go`): for every
/// relation, peer included, `-relation-departed` once per remote unit it knows, with
/// JUJU_DEPARTING_UNIT = itself (the local unit is not alive, so it is the departee); `-relation-broken`
/// for non-peer relations only (`if remoteBroken && !isPeer`); then `stop` and `remove`. The other units
/// run `<peer>-relation-departed` with JUJU_DEPARTING_UNIT = the departing unit (`cleanupDyingUnit` →
/// `PrepareLeaveScope`). Its pod is already terminating (the kubelet finishes that on its own).
fn depart(paths: &Paths, model: &mut Model, app: &str, n: u32, warnings: &mut Vec<String>) -> Result<()> {
    let uname = model::unit_name(app, n);
    let mut hooks = VecDeque::new();
    for r in model.relations_of(app) {
        for ru in r.joined.get(&uname).cloned().unwrap_or_default() {
            hooks.push_back(HookSpec {
                name: format!("{}-relation-departed", r.endpoint_of(app)),
                relation_id: Some(r.id),
                remote_unit: Some(ru),
                remote_app: Some(r.other_app(app).to_string()),
                departing_unit: Some(uname.clone()),
                ..Default::default()
            });
        }
        if r.remote_app != r.app {
            hooks.push_back(HookSpec {
                name: format!("{}-relation-broken", r.endpoint_of(app)),
                relation_id: Some(r.id),
                remote_app: Some(r.other_app(app).to_string()),
                ..Default::default()
            });
        }
    }
    // The units of a related deployed application see this one leave the scope: `-relation-departed`
    // with JUJU_REMOTE_UNIT = JUJU_DEPARTING_UNIT = the departing unit (`relation/resolver.go`: a local
    // member gone from the remote state, the local unit alive → departee = the remote unit); only those
    // that saw it join.
    let mut remote_departs: Vec<(String, u32, HookSpec)> = Vec::new();
    for r in model.relations_of(app).filter(|r| !r.is_peer()) {
        let other = r.other_app(app);
        let Some(target) = model.apps.get(other) else { continue };
        for u in target.units.values().filter(|u| !u.dying) {
            let seen = r.joined.get(&model::unit_name(other, u.number)).is_some_and(|l| l.contains(&uname));
            if seen {
                remote_departs.push((
                    other.to_string(),
                    u.number,
                    HookSpec {
                        name: format!("{}-relation-departed", r.endpoint_of(other)),
                        relation_id: Some(r.id),
                        remote_unit: Some(uname.clone()),
                        remote_app: Some(app.to_string()),
                        departing_unit: Some(uname.clone()),
                        ..Default::default()
                    },
                ));
            }
        }
    }
    hooks.push_back(HookSpec::plain("stop"));
    hooks.push_back(HookSpec::plain("remove"));
    // Peers: the other units see this one depart.
    let peer_departs: Vec<HookSpec> = model
        .relations_of(app)
        .filter(|r| r.remote_app == r.app)
        .map(|r| HookSpec {
            name: format!("{}-relation-departed", r.endpoint),
            relation_id: Some(r.id),
            remote_unit: Some(uname.clone()),
            remote_app: Some(app.to_string()),
            departing_unit: Some(uname.clone()),
            ..Default::default()
        })
        .collect();
    {
        let u = model.unit_mut(app, n)?;
        u.queue.clear();
        u.failed_hook = None;
    }
    let installed = model.unit(app, n)?.installed;
    while let Some(h) = hooks.pop_front() {
        if !installed {
            break;
        }
        let outcome = run_one(paths, model, app, n, &h)?;
        if let Some(e) = outcome.error {
            warnings.push(format!("unit {uname}: {e} (removal continues)"));
        }
    }
    model.app_mut(app)?.units.remove(&n).context("unit vanished")?;
    for r in model.relations.values_mut() {
        r.unit_data.remove(&uname);
        r.joined.remove(&uname);
    }
    for a in model.apps.values_mut().filter(|a| a.name != app) {
        for u in a.units.values_mut() {
            u.queue.retain(|h| h.remote_unit.as_deref() != Some(uname.as_str()));
        }
    }
    for (other, m, hook) in remote_departs {
        if let Ok(u) = model.unit_mut(&other, m) {
            u.queue.push(hook);
        }
    }
    let _ = std::fs::remove_dir_all(paths.unit_dir(app, n));
    let _ = std::fs::remove_dir_all(paths.tools_dir(app, n));
    let a = model.app_mut(app)?;
    for (_, u) in a.units.iter_mut() {
        u.queue.retain(|h| h.remote_unit.as_deref() != Some(uname.as_str()));
        if !u.dying {
            u.queue.extend(peer_departs.iter().cloned());
        }
    }
    if a.leader == Some(n) {
        a.leader = a.units.values().filter(|u| !u.dying).map(|u| u.number).next();
        if let Some(new) = a.leader
            && let Some(u) = a.units.get_mut(&new)
        {
            u.queue.push(HookSpec::plain("leader-elected"));
        }
    }
    model.save(paths)
}

/// Scale-down of a sidecar application, the other way round from podspec (`worker/caasapplicationprovisioner/
/// ops.go` `ensureScale`, 3.1-3.6): while more units exist than the scale target, Juju destroys the surplus
/// units (`UnitsToRemove`: the highest ordinals) and waits; their agents, still running in their pods' charm
/// containers, run the departure hooks; only when the units are gone does `app.Scale` lower the StatefulSet's
/// replicas, and Kubernetes deletes the pods.
fn sidecar_scale_down(
    paths: &Paths,
    model: &mut Model,
    app: &str,
    doomed: &[u32],
    warnings: &mut Vec<String>,
) -> Result<()> {
    for n in doomed {
        let u = model.unit_mut(app, *n)?;
        u.dying = true;
        u.queue.clear();
    }
    model.save(paths)?;
    for n in doomed {
        depart(paths, model, app, *n, warnings)?;
    }
    workload::ensure_service(paths, model, app)?;
    model.save(paths)?;
    await_pods_terminating(paths, app, doomed)
}

/// `juju remove-unit APP/N` (Deployments): the pod is deleted first, then the unit's hooks run.
pub fn remove_unit(paths: &Paths, model: &mut Model, app: &str, n: u32, warnings: &mut Vec<String>) -> Result<()> {
    if begin_departure(paths, model, app, &[n])? {
        depart(paths, model, app, n, warnings)?;
    } else {
        warnings.push(format!(
            "{app}: Kubernetes refused the update, so unit {app}/{n} stays until a spec is accepted: {}",
            model.app(app)?.operator_error.clone().unwrap_or_default()
        ));
    }
    Ok(())
}

/// `juju scale-application`.
pub fn scale(paths: &Paths, model: &mut Model, app: &str, target: u32) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let live: Vec<&Unit> = model.app(app)?.units.values().filter(|u| !u.dying).collect();
    let current = live.len() as u32;
    if target > current {
        for _ in current..target {
            add_unit(paths, model, app)?;
        }
        workload::ensure_service(paths, model, app)?;
        model.save(paths)?;
    } else if target < current {
        // The highest pods go: a StatefulSet drops its highest ordinals, all at once (Parallel).
        let mut by_pod: Vec<(u32, u32)> = live.iter().map(|u| (u.ordinal.unwrap_or(u.number), u.number)).collect();
        by_pod.sort_unstable();
        let mut doomed: Vec<u32> = by_pod.iter().rev().take((current - target) as usize).map(|(_, n)| *n).collect();
        doomed.sort_unstable();
        if model.app(app)?.sidecar {
            sidecar_scale_down(paths, model, app, &doomed, &mut warnings)?;
        } else if begin_departure(paths, model, app, &doomed)? {
            // Units are visited in sorted order (findings §7).
            for n in doomed {
                depart(paths, model, app, n, &mut warnings)?;
            }
        } else {
            warnings.push(format!(
                "{app}: Kubernetes refused the update, so the surplus units stay until a spec is accepted: {}",
                model.app(app)?.operator_error.clone().unwrap_or_default()
            ));
        }
    }
    warnings.extend(drain(paths, model)?);
    Ok(warnings)
}

/// `juju remove-application`: every unit's departure hooks, then the application's objects go and the
/// kubelet deletes its pods gracefully; the command returns once they are gone (bounded).
pub fn remove_app(paths: &Paths, model: &mut Model, app: &str) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    model.app(app)?;
    // Its relations with other deployed applications go first (`state/application.go` `removeOps` →
    // each relation's `destroyOps`: Dying, its units leave scope): departed/broken on both sides, this
    // application's units departing as themselves.
    let charm_rels: Vec<u32> = model
        .relations_of(app)
        .filter(|r| !r.is_peer() && model.apps.contains_key(r.other_app(app)))
        .map(|r| r.id)
        .collect();
    if !charm_rels.is_empty() {
        for id in charm_rels {
            queue_relation_teardown(model, id, Some(app))?;
        }
        model.save(paths)?;
        warnings.extend(drain(paths, model)?);
    }
    model.app_mut(app)?.leader = None;
    let units: Vec<u32> = model.app(app)?.units.keys().copied().collect();
    for n in units {
        depart(paths, model, app, n, &mut warnings)?;
        model.app_mut(app)?.leader = None;
    }
    model.apps.remove(app);
    model.relations.retain(|_, r| !r.involves(app));
    let used: Vec<String> = model.relations.values().map(|r| r.remote_app.clone()).collect();
    model.remote_apps.retain(|name, _| used.contains(name));
    let _ = std::fs::remove_file(paths.charm_archive(app));
    model.save(paths)?;
    let generation = workload::delete_app(paths, model, app)?;
    kubelet::ensure_running(paths)?;
    let grace =
        kubelet::load_pods(paths).pods.values().filter(|p| p.app == app).map(|p| p.grace_seconds).max().unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(grace + 15);
    loop {
        let pods = kubelet::wait_observed(paths, generation, std::time::Duration::from_secs(30))?;
        if !pods.pods.values().any(|p| p.app == app) {
            break;
        }
        if std::time::Instant::now() > deadline {
            warnings.push(format!("pods of {app} are still terminating"));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Ok(rd) = std::fs::read_dir(paths.root.join("storage")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("{app}-")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(warnings)
}

/// Builds the context for a hook run by hand (`run-hook`).
pub fn hook_for(
    model: &Model,
    app: &str,
    n: u32,
    name: &str,
    relation: Option<&str>,
    remote_unit: Option<&str>,
) -> Result<HookSpec> {
    let mut hook = HookSpec::plain(name);
    if let Some((ep, kind)) = name.split_once("-relation-") {
        let rel = match relation {
            Some(r) => {
                let id: u32 =
                    r.rsplit(':').next().unwrap_or(r).parse().with_context(|| format!("invalid relation id {r:?}"))?;
                model
                    .relations
                    .get(&id)
                    .filter(|rel| rel.involves(app))
                    .with_context(|| format!("relation {r:?} not found"))?
            }
            None => model
                .relations_of(app)
                .find(|r| r.endpoint_of(app) == ep)
                .with_context(|| format!("unit \"{app}/{n}\" has no relation on endpoint {ep:?}"))?,
        };
        hook.relation_id = Some(rel.id);
        hook.remote_app = Some(rel.other_app(app).to_string());
        if !matches!(kind, "created" | "broken") {
            let default = rel
                .joined
                .get(&model::unit_name(app, n))
                .and_then(|j| j.first().cloned())
                .or_else(|| model.remote_apps.get(&rel.remote_app).and_then(|a| a.units.first().cloned()))
                .or_else(|| remote_units(model, rel, app, &model::unit_name(app, n)).into_iter().next());
            hook.remote_unit = remote_unit.map(str::to_string).or(default);
        }
        if kind == "departed" {
            hook.departing_unit = hook.remote_unit.clone();
        }
    } else if let Some(st) = name.strip_suffix("-storage-attached").or_else(|| name.strip_suffix("-storage-detaching"))
    {
        hook.storage = Some(st.to_string());
    }
    Ok(hook)
}

/// Stops the kubelet (which kills every pod and deletes their namespaces), makes sure nothing of the
/// model still runs (every pid the kubelet recorded, every process in a namespace of the model), then
/// removes the namespaces, the bridge and the model dir.
pub fn destroy(paths: &Paths) -> Result<()> {
    let model = Model::load(paths)?;
    kubelet::stop_daemon(paths);
    let pods = kubelet::load_pods(paths);
    for p in pods.pods.values() {
        for c in &p.containers {
            util::signal(c.pid, c.start_ticks, libc::SIGKILL);
        }
    }
    if model.network.mode == NetMode::Netns {
        for ns in netns::model_namespaces(&model.network) {
            // Anything still running in a namespace of ours was started by us: kill it.
            if let Ok(out) = std::process::Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse::<i32>().ok())
                {
                    if let Some(t) = util::process_start_ticks(pid) {
                        util::signal(pid, t, libc::SIGKILL);
                    }
                }
            }
            netns::delete_pod_net(&ns);
        }
    }
    if netns::active_models() <= 1 {
        for d in pods.pods.values().flat_map(|p| p.created_dirs.iter().rev()) {
            let _ = std::fs::remove_dir(d);
        }
    }
    netns::teardown_model(&model.network, model.index_file.as_deref());
    std::fs::remove_dir_all(&paths.root).with_context(|| format!("cannot remove {}", paths.root.display()))?;
    Ok(())
}
