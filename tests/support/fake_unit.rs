//! One unit driven in-process through the recording fake ([`redis_k8s::juju::fake`]), over the lifecycle the
//! reliability tests share (see [`Step`]).
//!
//! A [`FakeUnit`] owns a temp dir laid out as the unit agent's (`charm/`, `state/`, `resources/`), so the flag
//! store lands in `state/` by the charm's own rules (no process-wide env var: tests run in parallel threads).
//! Each hook starts with the fake's call log emptied (so a [`Fault`]'s `nth` counts calls of this hook only)
//! and ends with `end_hook(success)`, which commits or drops the deferred changes as Juju does. A [`Tamper`]
//! replaces the stdout of one call, for output that breaks a tool's contract. A [`Snapshot`] is everything a
//! unit has between two hooks, so a matrix can restart any step without replaying the ones before it.

use std::cell::RefMut;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use redis_k8s::juju::fake::{Call, FakeJuju, FakeModel, FakeRelation, Fault};
use redis_k8s::juju::{HookEnv, HookTools, Settings, ToolError, ToolRunner};
const FILE_NAME: &str = redis_k8s::charm::STORE.file;
const MIRROR_KEY: &str = redis_k8s::charm::STORE.mirror_key;
const WRITER_FILE: &str = redis_k8s::charm::STORE.writer_file;
use redis_k8s::redis::admin::Admin;
use redis_k8s::redis::admin::fake::{Cluster, FakeCluster};
use serde_json::json;

use super::TempDir;

/// The registry password the private image carries; it must never leak (see `tests/suite/secrets.rs`).
pub const SECRET: &str = "s3cret-registry-pw";
/// The image a unit is deployed with.
pub const PUBLIC_IMAGE: &str = "registrypath: redis:7.0\nusername: ''\npassword: ''\n";
/// The image `juju attach-resource` switches to in [`Step::UpgradeImage`].
pub const PRIVATE_IMAGE: &str =
    "registrypath: registry.example.com/redis:7.2.4\nusername: bot\npassword: s3cret-registry-pw\n";
/// The relation the lifecycle joins, and its one remote unit.
pub const RID: &str = "db:3";
pub const REMOTE: &str = "client/0";
/// This unit's ingress address on `db`.
pub const INGRESS: &str = "10.152.183.7";
/// The peer relation, there from the first hook (Juju creates peer relations with the application).
pub const PEER_RID: &str = "redis-peers:1";
/// The Redis password a previous leader shared in the peer application bag. Fixed, so every run of the
/// lifecycle is deterministic (a generated one differs per run: see `tests/suite/secrets.rs` for that path).
pub const REDIS_PW: &str = "s3cretRedisSharedPassword0123456";

/// Every secret the lifecycle carries: none may reach a log line, a status, argv or the binary's output.
pub const SECRETS: [&str; 2] = [SECRET, REDIS_PW];

/// Whether `text` holds any of [`SECRETS`].
pub fn has_secret(text: &str) -> bool {
    SECRETS.iter().any(|s| text.contains(s))
}

/// One step of the shared lifecycle: what changes in the model, then which hook Juju runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Install,
    LeaderElected,
    ConfigChanged,
    Start,
    UpdateStatus,
    /// `juju config redis-k8s port=7000`.
    PortChange,
    /// A client joins on `db:3`.
    DbJoined,
    /// The client publishes a setting.
    DbChanged,
    /// `juju attach-resource` with a private image (registry password in content.yaml).
    UpgradeImage,
    /// Leadership moved to another unit; this one hears about leader settings.
    FollowerSettingsChanged,
}

impl Step {
    /// The lifecycle, in order.
    pub const LIFECYCLE: [Step; 10] = [
        Step::Install,
        Step::LeaderElected,
        Step::ConfigChanged,
        Step::Start,
        Step::UpdateStatus,
        Step::PortChange,
        Step::DbJoined,
        Step::DbChanged,
        Step::UpgradeImage,
        Step::FollowerSettingsChanged,
    ];

    /// The hook Juju runs for this step.
    pub fn hook(self) -> &'static str {
        match self {
            Step::Install => "install",
            Step::LeaderElected => "leader-elected",
            Step::ConfigChanged | Step::PortChange => "config-changed",
            Step::Start => "start",
            Step::UpdateStatus => "update-status",
            Step::DbJoined => "db-relation-joined",
            Step::DbChanged => "db-relation-changed",
            Step::UpgradeImage => "upgrade-charm",
            Step::FollowerSettingsChanged => "leader-settings-changed",
        }
    }

    /// A name for messages: the hook, and what is special about it.
    pub fn label(self) -> String {
        match self {
            Step::PortChange => "config-changed (port 7000)".into(),
            Step::UpgradeImage => "upgrade-charm (new private image)".into(),
            Step::FollowerSettingsChanged => "leader-settings-changed (not leader)".into(),
            s => s.hook().into(),
        }
    }

    /// `(relation id, remote unit)` for relation hooks.
    pub fn relation(self) -> Option<(&'static str, &'static str)> {
        matches!(self, Step::DbJoined | Step::DbChanged).then_some((RID, REMOTE))
    }
}

/// Replace the stdout of the `nth` call (0-based, in this hook) of `tool` with `output`; the call itself
/// still reaches the fake, so it is recorded.
#[derive(Debug, Clone)]
pub struct Tamper {
    pub tool: String,
    pub nth: usize,
    pub output: Vec<u8>,
}

struct TamperRunner {
    inner: FakeJuju,
    tamper: Option<Tamper>,
    seen: BTreeMap<String, usize>,
}

impl ToolRunner for TamperRunner {
    fn run(&mut self, tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, ToolError> {
        let n = self.seen.entry(tool.to_string()).or_default();
        let nth = *n;
        *n += 1;
        let result = self.inner.run(tool, args, stdin);
        match &self.tamper {
            Some(t) if t.tool == tool && t.nth == nth => result.map(|_| t.output.clone()),
            _ => result,
        }
    }
}

/// What one hook did.
#[derive(Debug, Clone)]
pub struct HookResult {
    /// `Err` holds the error as `main` would print it (`{:#}`, the whole chain).
    pub result: Result<(), String>,
    pub calls: Vec<Call>,
    /// The trace lines the binary prints on stdout after a successful hook.
    pub trace: Vec<String>,
}

impl HookResult {
    /// `(tool, nth)` for every call, nth counting calls of that tool in this hook.
    pub fn call_sites(&self) -> Vec<(String, usize)> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        self.calls
            .iter()
            .map(|c| {
                let n = seen.entry(c.tool.as_str()).or_default();
                *n += 1;
                (c.tool.clone(), *n - 1)
            })
            .collect()
    }
}

/// Everything a unit has between hooks.
#[derive(Debug, Clone)]
pub struct Snapshot {
    model: FakeModel,
    store: Option<Vec<u8>>,
    /// The store's last-writer marker (which hook wrote it), part of the unit's local state.
    writer: Option<Vec<u8>>,
    image: Vec<u8>,
    /// The pod's Redis and Sentinel, as the charm left them.
    cluster: Cluster,
}

/// What must converge: the store, its mirror, what Juju committed, and what the operator sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndState {
    pub store: Option<String>,
    pub mirror: Option<String>,
    pub pod_spec: Option<String>,
    /// Relation id → (unit bag, app bag) this unit published.
    pub relations: BTreeMap<String, (Settings, Settings)>,
    pub last_status: Option<(String, String)>,
    pub version: Option<String>,
    /// File names in the state dir (a stray temp file shows here).
    pub state_files: Vec<String>,
}

/// A unit over the fake, in its own temp dir.
pub struct FakeUnit {
    pub dir: TempDir,
    pub fake: FakeJuju,
    pub env: HookEnv,
    /// Every call of every hook so far, in order.
    pub history: Vec<Call>,
    /// Every trace line (the binary's stdout) of every hook so far.
    pub trace: Vec<String>,
    image: Vec<u8>,
    /// The pod's Redis and Sentinel servers, as the charm administers them.
    pub cluster: FakeCluster,
}

impl FakeUnit {
    /// The leader `redis-k8s/0`, port 6379, the public image, the peer relation with [`REDIS_PW`] shared.
    pub fn new(label: &str) -> FakeUnit {
        let mut m = FakeModel::new("redis-k8s/0");
        m.leader = true;
        m.config.insert("port".into(), json!(6379));
        m.ingress.insert("db".into(), INGRESS.into());
        let mut peers = FakeRelation { remote_app: "redis-k8s".into(), ..Default::default() };
        peers.local_app.insert("password".into(), REDIS_PW.into());
        m.relations.insert(PEER_RID.into(), peers);
        let cluster = FakeCluster::healthy("redis-k8s", 1, 6379, Some(REDIS_PW)).state().clone();
        FakeUnit::with_model(label, m, None, PUBLIC_IMAGE.as_bytes(), cluster)
    }

    /// A new deployment's leader: no password shared yet, and the pod's servers running with no password (the
    /// files of the first spec, which the leader's live pass then brings to the password it generates).
    pub fn fresh(label: &str) -> FakeUnit {
        let u = FakeUnit::new(label);
        u.model().relations.get_mut(PEER_RID).unwrap().local_app.clear();
        *u.cluster.state_mut() = FakeCluster::healthy("redis-k8s", 1, 6379, None).state().clone();
        u
    }

    fn with_model(label: &str, model: FakeModel, store: Option<&[u8]>, image: &[u8], cluster: Cluster) -> FakeUnit {
        let dir = TempDir::new(label);
        fs::create_dir_all(dir.path().join("charm")).unwrap();
        // The charm dir's metadata says which archive this is: the podspec one.
        fs::write(dir.path().join("charm/metadata.yaml"), redis_k8s::meta::METADATA_YAML).unwrap();
        fs::create_dir_all(dir.path().join("state")).unwrap();
        let env = HookEnv {
            unit_name: model.unit.clone(),
            charm_dir: dir.path().join("charm"),
            juju_version: Some("2.9.31".into()),
            ..Default::default()
        };
        let mut u = FakeUnit {
            dir,
            fake: FakeJuju::new(model),
            env,
            history: Vec::new(),
            trace: Vec::new(),
            image: Vec::new(),
            cluster: FakeCluster(std::rc::Rc::new(std::cell::RefCell::new(cluster))),
        };
        if let Some(bytes) = store {
            fs::write(u.store_path(), bytes).unwrap();
        }
        u.set_image(image);
        u
    }

    /// A new unit (own temp dir) in the state `snap` captured.
    pub fn restore(label: &str, snap: &Snapshot) -> FakeUnit {
        let u =
            FakeUnit::with_model(label, snap.model.clone(), snap.store.as_deref(), &snap.image, snap.cluster.clone());
        if let Some(w) = &snap.writer {
            fs::write(u.state_dir().join(WRITER_FILE), w).unwrap();
        }
        u
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            model: self.fake.model.borrow().clone(),
            store: self.store_bytes(),
            writer: fs::read(self.state_dir().join(WRITER_FILE)).ok(),
            image: self.image.clone(),
            cluster: self.cluster.state().clone(),
        }
    }

    pub fn model(&self) -> RefMut<'_, FakeModel> {
        self.fake.model.borrow_mut()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn store_path(&self) -> PathBuf {
        self.state_dir().join(FILE_NAME)
    }

    pub fn store_bytes(&self) -> Option<Vec<u8>> {
        fs::read(self.store_path()).ok()
    }

    /// The committed `state-set` mirror of the store.
    pub fn mirror(&self) -> Option<String> {
        self.fake.model.borrow().state.get(MIRROR_KEY).cloned()
    }

    /// Writes the resource's content.yaml (any bytes) and points `resource-get redis-image` at it.
    pub fn set_image(&mut self, content: &[u8]) {
        let p = self.dir.path().join("resources").join("redis-image").join("content.yaml");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        self.image = content.to_vec();
        self.fake.model.borrow_mut().resources.insert("redis-image".into(), Ok(p));
    }

    /// The model change that comes before `step`'s hook (idempotent).
    pub fn prepare(&mut self, step: Step) {
        match step {
            Step::PortChange => {
                self.model().config.insert("port".into(), json!(7000.0));
            }
            Step::DbJoined => {
                let mut rel = FakeRelation { remote_app: "client".into(), ..Default::default() };
                rel.units.insert(REMOTE.into(), Settings::new());
                self.model().relations.entry(RID.into()).or_insert(rel);
            }
            Step::DbChanged => {
                let mut m = self.model();
                let rel = m.relations.get_mut(RID).expect("joined before changed");
                rel.units.insert(REMOTE.into(), [("wants".to_string(), "cache".to_string())].into());
            }
            Step::UpgradeImage => self.set_image(PRIVATE_IMAGE.as_bytes()),
            Step::FollowerSettingsChanged => self.model().leader = false,
            _ => {}
        }
    }

    /// The hook environment for `step`.
    pub fn env_for(&self, step: Step) -> HookEnv {
        match step.relation() {
            Some((rid, unit)) => HookEnv {
                relation: Some("db".into()),
                relation_id: Some(rid.into()),
                remote_unit: Some(unit.into()),
                remote_app: unit.split('/').next().map(str::to_string),
                ..self.env.clone()
            },
            None => self.env.clone(),
        }
    }

    /// Runs `hook` with `faults` and `tamper` in force for it alone; commits or drops deferred changes.
    pub fn run(&mut self, hook: &str, env: &HookEnv, faults: Vec<Fault>, tamper: Option<Tamper>) -> HookResult {
        {
            let mut m = self.model();
            m.calls.clear();
            m.faults = faults;
        }
        let runner = TamperRunner { inner: self.fake.clone(), tamper, seen: BTreeMap::new() };
        let mut tools = HookTools::new(Box::new(runner));
        let admin = Admin::new(Box::new(self.cluster.clone()));
        let (result, trace) = match redis_k8s::charm::run_hook_with(hook, env, &mut tools, admin) {
            Ok(outcome) => (Ok(()), outcome.trace),
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        };
        let mut m = self.model();
        m.end_hook(result.is_ok());
        m.faults.clear();
        let calls = std::mem::take(&mut m.calls);
        drop(m);
        self.history.extend(calls.iter().cloned());
        self.trace.extend(trace.iter().cloned());
        HookResult { result, calls, trace }
    }

    /// Runs action `name` (in the workload pod, from Juju's copy of the state); commits or drops its changes.
    pub fn action(&mut self, name: &str) -> HookResult {
        self.model().calls.clear();
        let mut tools = HookTools::new(Box::new(self.fake.clone()));
        let env = HookEnv { action_name: Some(name.into()), ..self.env.clone() };
        let admin = Admin::new(Box::new(self.cluster.clone()));
        let with = redis_k8s::charm::Boundaries { admin, pebble: None };
        let (result, trace) = match redis_k8s::charm::run_action_in(name, &env, &mut tools, with) {
            Ok(outcome) => (Ok(()), outcome.trace),
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        };
        let mut m = self.model();
        m.end_hook(result.is_ok());
        let calls = std::mem::take(&mut m.calls);
        drop(m);
        self.history.extend(calls.iter().cloned());
        HookResult { result, calls, trace }
    }

    /// Prepares and runs `step`.
    pub fn step(&mut self, step: Step, faults: Vec<Fault>, tamper: Option<Tamper>) -> HookResult {
        self.prepare(step);
        let env = self.env_for(step);
        self.run(step.hook(), &env, faults, tamper)
    }

    /// Runs `steps` cleanly; panics naming the step that failed.
    pub fn run_clean(&mut self, steps: &[Step]) {
        for &s in steps {
            let r = self.step(s, Vec::new(), None);
            if let Err(e) = r.result {
                panic!("clean {}: {e}", s.label());
            }
        }
    }

    pub fn end_state(&self) -> EndState {
        let m = self.fake.model.borrow();
        let mut state_files: Vec<String> = fs::read_dir(self.state_dir())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        state_files.sort();
        EndState {
            store: self.store_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()),
            mirror: m.state.get(MIRROR_KEY).cloned(),
            pod_spec: m.pod_spec.clone(),
            relations: m.relations.iter().map(|(k, r)| (k.clone(), (r.local.clone(), r.local_app.clone()))).collect(),
            last_status: m.last_status().map(|(s, msg)| (s.to_string(), msg.to_string())),
            version: m.version.clone(),
            state_files,
        }
    }
}

/// Snapshots before each step's hook (after its `prepare`) and the end state after it, from a clean run.
pub struct CleanRun {
    pub before: Vec<Snapshot>,
    pub after: Vec<EndState>,
    pub results: Vec<HookResult>,
    pub end: EndState,
}

/// Runs the whole lifecycle once, cleanly, recording what every step needs to be restarted.
pub fn clean_run(label: &str) -> CleanRun {
    let mut u = FakeUnit::new(label);
    let (mut before, mut after, mut results) = (Vec::new(), Vec::new(), Vec::new());
    for step in Step::LIFECYCLE {
        u.prepare(step);
        before.push(u.snapshot());
        let env = u.env_for(step);
        let r = u.run(step.hook(), &env, Vec::new(), None);
        if let Err(e) = &r.result {
            panic!("clean {}: {e}", step.label());
        }
        after.push(u.end_state());
        results.push(r);
    }
    let end = u.end_state();
    CleanRun { before, after, results, end }
}

/// What differs between two end states, field by field (the store by flag and kv key), for messages.
pub fn diff_end(want: &EndState, got: &EndState) -> String {
    let mut out = Vec::new();
    if want.store != got.store {
        out.push(format!("store: {}", diff_store(want.store.as_deref(), got.store.as_deref())));
    }
    if want.mirror != got.mirror {
        out.push(format!("mirror: {}", diff_store(want.mirror.as_deref(), got.mirror.as_deref())));
    }
    if want.pod_spec != got.pod_spec {
        out.push(format!("pod spec differs (clean {} bytes, got {} bytes)", len(&want.pod_spec), len(&got.pod_spec)));
    }
    if want.relations != got.relations {
        out.push(format!("relations: clean {:?}, got {:?}", want.relations, got.relations));
    }
    if want.last_status != got.last_status {
        out.push(format!("last status: clean {:?}, got {:?}", want.last_status, got.last_status));
    }
    if want.version != got.version {
        out.push(format!("version: clean {:?}, got {:?}", want.version, got.version));
    }
    if want.state_files != got.state_files {
        out.push(format!("state dir: clean {:?}, got {:?}", want.state_files, got.state_files));
    }
    out.join("; ")
}

fn len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, String::len)
}

/// The flags and kv keys whose values differ between two store texts.
pub fn diff_store(want: Option<&str>, got: Option<&str>) -> String {
    let parse = |s: Option<&str>| s.and_then(|t| redis_k8s::reactive::store::decode(t.as_bytes()).ok());
    let (Some(w), Some(g)) = (parse(want), parse(got)) else {
        return format!("clean {want:?}, got {got:?}");
    };
    let mut out = Vec::new();
    for (what, a, b) in [("flag", &w.flags, &g.flags), ("kv", &w.kv, &g.kv)] {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            if a.get(k) != b.get(k) {
                out.push(format!("{what} {k}: clean {:?}, got {:?}", a.get(k), b.get(k)));
            }
        }
    }
    out.join(", ")
}

/// `e` with the generated password `pw` replaced by a placeholder everywhere, and the store's
/// `data_changed` hashes masked (they hash data that embeds the password): what must be equal between two
/// runs that each generated their own password.
pub fn normalized(e: &EndState, pw: &str) -> EndState {
    let swap = |s: &str| s.replace(pw, "<generated-password>");
    let store = |s: &Option<String>| {
        s.as_ref().map(|t| match redis_k8s::reactive::store::decode(swap(t).as_bytes()) {
            Ok(mut st) => {
                for (k, v) in st.kv.iter_mut() {
                    if k.starts_with("reactive.data_changed.") {
                        *v = serde_json::Value::String("<hash>".into());
                    }
                }
                String::from_utf8(redis_k8s::reactive::store::encode(&st)).unwrap()
            }
            Err(_) => swap(t),
        })
    };
    let bag = |b: &Settings| b.iter().map(|(k, v)| (k.clone(), swap(v))).collect::<Settings>();
    EndState {
        store: store(&e.store),
        mirror: store(&e.mirror),
        pod_spec: e.pod_spec.as_deref().map(swap),
        relations: e.relations.iter().map(|(k, (u, a))| (k.clone(), (bag(u), bag(a)))).collect(),
        last_status: e.last_status.clone(),
        version: e.version.clone(),
        state_files: e.state_files.clone(),
    }
}
