//! A stateful stand-in for Juju around the real binary: the lifecycle of `fake_unit` run as processes.
//!
//! [`Sim`] keeps the model in Rust ([`SimModel`]: config, leadership, committed charm state, pod spec,
//! relation data, statuses) and, before each hook, renders what each query tool prints into `model/`. Every
//! tool is a small POSIX `sh` script in the harness's `override/` dir that logs its call (with stdin) to
//! `calls.log`, as the plain fakes do, and then:
//! - runs the fault snippet `model/fault.<n>` if the test left one for this hook's `n`th call (1-based,
//!   counting every tool, in `model/n`): `echo 'ERROR …' >&2; exit 1`, garbage output, `exec sleep 30`…;
//! - otherwise answers from `model/`;
//! - when `n` is in `model/kill_at`, sends SIGKILL to its parent, the hook process, after answering: the
//!   call happened on Juju's side and the charm never saw its result.
//!
//! After the hook, [`Sim::run`] applies the calls from the log the way Juju does (§1.4): immediate ones
//! (status-set, juju-log, application-version-set) always, deferred ones (pod-spec-set, relation-set,
//! state-set/delete) only when the hook exited 0.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use redis_k8s::juju::Settings;
const FILE_NAME: &str = redis_k8s::charm::STORE.file;
const MIRROR_KEY: &str = redis_k8s::charm::STORE.mirror_key;
use serde_json::{Map, Value, json};

use super::fake_unit::{INGRESS, PEER_RID, PRIVATE_IMAGE, PUBLIC_IMAGE, REDIS_PW, Step};
use super::{Call, FAKE_TOOLS, Harness, HookRun, write_script};

/// A relation as this unit sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimRelation {
    pub units: BTreeMap<String, BTreeMap<String, String>>,
    /// What this unit published (committed).
    pub local: BTreeMap<String, String>,
    /// What this application published (committed; leader only).
    pub local_app: BTreeMap<String, String>,
}

/// Juju's side of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct SimModel {
    pub leader: bool,
    pub config: Map<String, Value>,
    pub image: String,
    /// Committed charm state (`state-set`).
    pub state: BTreeMap<String, String>,
    pub pod_spec: Option<String>,
    pub relations: BTreeMap<String, SimRelation>,
    pub statuses: Vec<(String, String)>,
    pub logs: Vec<String>,
    pub version: Option<String>,
}

impl Default for SimModel {
    fn default() -> Self {
        let mut config = Map::new();
        config.insert("port".into(), json!(6379));
        let mut peers = SimRelation::default();
        peers.local_app.insert("password".into(), REDIS_PW.into());
        SimModel {
            leader: true,
            config,
            image: PUBLIC_IMAGE.into(),
            state: BTreeMap::new(),
            pod_spec: None,
            relations: [(PEER_RID.to_string(), peers)].into(),
            statuses: Vec::new(),
            logs: Vec::new(),
            version: None,
        }
    }
}

/// What must converge (see `fake_unit::EndState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEnd {
    pub store: Option<String>,
    pub mirror: Option<String>,
    pub pod_spec: Option<String>,
    /// Relation id → (unit bag, app bag) this unit published.
    pub relations: BTreeMap<String, (Settings, Settings)>,
    pub last_status: Option<(String, String)>,
}

/// Everything between two hooks: the model and the store file.
#[derive(Debug, Clone)]
pub struct SimSnapshot {
    pub model: SimModel,
    pub store: Option<Vec<u8>>,
}

/// The real binary, fake tools with state, and the model.
pub struct Sim {
    pub h: Harness,
    pub model: SimModel,
    pub model_dir: PathBuf,
    /// Every hook's calls, in order.
    pub history: Vec<Call>,
    /// Every hook's stdout and stderr, in order.
    pub output: Vec<String>,
}

/// The script bodies; `$tmp` holds stdin, `$last` the last argument, `$rid` the `-r` value.
fn body(tool: &str) -> &'static str {
    match tool {
        "config-get" => r#"cat "$M/config.json""#,
        "is-leader" => r#"cat "$M/leader.json""#,
        "leader-get" => r#"case "$*" in *--\ *) printf '%s\n' '""' ;; *) printf '%s\n' '{}' ;; esac"#,
        "resource-get" => {
            r#"if [ "$last" = redis-image ]; then cat "$M/resource-path"; else echo "ERROR could not download resource: resource \"$last\" not found" >&2; false; fi"#
        }
        "status-get" => r#"printf '%s\n' '{"message":"","status":"maintenance","status-data":{}}'"#,
        "pod-spec-set" | "k8s-spec-set" => {
            r#"if [ "$(cat "$M/leader.json")" != true ]; then echo 'ERROR this unit is not the leader' >&2; false; fi"#
        }
        "network-get" => r#"cat "$M/network.json""#,
        "relation-ids" => r#"cat "$M/relation-ids/$last.json" 2>/dev/null || printf '%s\n' '[]'"#,
        "relation-list" => {
            r#"cat "$M/relation-list/$rid.json" 2>/dev/null || { echo "ERROR invalid value \"$rid\" for option -r: relation not found" >&2; false; }"#
        }
        "relation-get" => {
            r#"cat "$M/relation-get/$rid/$last.json" 2>/dev/null || { echo "ERROR cannot read settings for unit \"$last\" in relation \"$rid\"" >&2; false; }"#
        }
        "state-get" => {
            r#"case "$*" in *--\ *) if [ -f "$M/state-get/$last.json" ]; then cat "$M/state-get/$last.json"; else printf '%s\n' '""'; fi ;; *) cat "$M/state-get-all.json" ;; esac"#
        }
        "action-get" => r#"printf '%s\n' '{}'"#,
        _ => ":",
    }
}

fn script(tool: &str, model: &Path, log: &Path) -> String {
    format!(
        r#"#!/bin/sh
# sim hook tool {tool}
M='{model}'
read n < "$M/n"; n=$((n + 1)); echo "$n" > "$M/n"
tmp="$M/stdin.$n"
cat > "$tmp"
{{ printf 'CALL %s' '{tool}'; for a in "$@"; do printf ' %s' "$a"; done; printf '\n'
  if [ -s "$tmp" ]; then awk '{{ print "  | " $0 }}' "$tmp"; fi; }} >> '{log}'
last=""; rid=""; prev=""
for a in "$@"; do last=$a; [ "$prev" = -r ] && rid=$a; prev=$a; done
if [ -f "$M/fault.$n" ]; then . "$M/fault.$n"; fi
{body}
rc=$?
k=""; [ -f "$M/kill_at" ] && read k < "$M/kill_at"
if [ "$n" = "$k" ]; then kill -9 $PPID; fi
exit $rc
"#,
        model = model.display(),
        log = log.display(),
        body = body(tool),
    )
}

fn write_json(path: &Path, v: &Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("{v}\n")).unwrap();
}

/// A JSON map of strings from a tool's stdin (state-set and relation-set get JSON, a subset of YAML).
fn settings_from(stdin: &str) -> BTreeMap<String, String> {
    serde_json::from_str(stdin.trim()).unwrap_or_else(|e| panic!("tool stdin is not a JSON string map ({e}): {stdin}"))
}

impl Sim {
    pub fn new(label: &str) -> Sim {
        Sim::with(label, SimModel::default(), None)
    }

    /// A new sim (own temp dir) in the state `snap` captured.
    pub fn restore(label: &str, snap: &SimSnapshot) -> Sim {
        Sim::with(label, snap.model.clone(), snap.store.as_deref())
    }

    fn with(label: &str, model: SimModel, store: Option<&[u8]>) -> Sim {
        let h = Harness::new(label);
        let model_dir = h.dir.path().join("model");
        fs::create_dir_all(&model_dir).unwrap();
        // The unit agent's state dir, beside the charm dir: where the charm keeps its store.
        fs::create_dir_all(h.dir.path().join("state")).unwrap();
        for (tool, _) in FAKE_TOOLS {
            write_script(&h.overrides.join(tool), &script(tool, &model_dir, &h.log));
        }
        let sim = Sim { h, model, model_dir, history: Vec::new(), output: Vec::new() };
        if let Some(bytes) = store {
            fs::write(sim.store_path(), bytes).unwrap();
        }
        sim
    }

    pub fn snapshot(&self) -> SimSnapshot {
        SimSnapshot { model: self.model.clone(), store: self.store_bytes() }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.h.dir.path().join("state")
    }

    pub fn store_path(&self) -> PathBuf {
        self.state_dir().join(FILE_NAME)
    }

    pub fn store_bytes(&self) -> Option<Vec<u8>> {
        fs::read(self.store_path()).ok()
    }

    /// Makes the `n`th call (1-based, any tool) of the next hook run `snippet` instead of answering.
    pub fn fault_at(&self, n: usize, snippet: &str) {
        fs::write(self.model_dir.join(format!("fault.{n}")), format!("{snippet}\n")).unwrap();
    }

    /// Makes the `n`th call of the next hook kill the hook process after answering.
    pub fn kill_at(&self, n: usize) {
        fs::write(self.model_dir.join("kill_at"), n.to_string()).unwrap();
    }

    fn clear_injections(&self) {
        for e in fs::read_dir(&self.model_dir).unwrap().filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("fault.") || name == "kill_at" {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// The model change that comes before `step`'s hook (idempotent; the same as `FakeUnit::prepare`).
    pub fn prepare(&mut self, step: Step) {
        let m = &mut self.model;
        match step {
            Step::PortChange => {
                m.config.insert("port".into(), json!(7000.0));
            }
            Step::DbJoined => {
                let rel = m.relations.entry(super::fake_unit::RID.into()).or_default();
                rel.units.entry(super::fake_unit::REMOTE.into()).or_default();
            }
            Step::DbChanged => {
                let rel = m.relations.get_mut(super::fake_unit::RID).expect("joined before changed");
                rel.units.insert(super::fake_unit::REMOTE.into(), [("wants".into(), "cache".into())].into());
            }
            Step::UpgradeImage => m.image = PRIVATE_IMAGE.into(),
            Step::FollowerSettingsChanged => m.leader = false,
            _ => {}
        }
    }

    fn render(&self) {
        let d = &self.model_dir;
        for sub in ["relation-ids", "relation-list", "relation-get", "state-get"] {
            let _ = fs::remove_dir_all(d.join(sub));
        }
        for e in fs::read_dir(d).unwrap().filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with("stdin.") {
                let _ = fs::remove_file(e.path());
            }
        }
        fs::write(d.join("n"), "0\n").unwrap();
        let m = &self.model;
        write_json(&d.join("config.json"), &Value::Object(m.config.clone()));
        write_json(&d.join("leader.json"), &Value::Bool(m.leader));
        write_json(&d.join("network.json"), &json!(INGRESS));
        fs::write(&self.h.resource, &m.image).unwrap();
        fs::write(d.join("resource-path"), self.h.resource.to_string_lossy().as_bytes()).unwrap();
        let mut by_endpoint: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
        for rid in m.relations.keys() {
            by_endpoint.entry(rid.split(':').next().unwrap()).or_default().push(rid);
        }
        for (ep, rids) in by_endpoint {
            write_json(&d.join("relation-ids").join(format!("{ep}.json")), &json!(rids));
        }
        for (rid, rel) in &m.relations {
            write_json(
                &d.join("relation-list").join(format!("{rid}.json")),
                &json!(rel.units.keys().collect::<Vec<_>>()),
            );
            for (unit, data) in &rel.units {
                write_json(&d.join("relation-get").join(rid).join(format!("{unit}.json")), &json!(data));
            }
            write_json(&d.join("relation-get").join(rid).join("redis-k8s/0.json"), &json!(rel.local));
            write_json(&d.join("relation-get").join(rid).join("redis-k8s.json"), &json!(rel.local_app));
        }
        write_json(&d.join("state-get-all.json"), &json!(m.state));
        for (k, v) in &m.state {
            write_json(&d.join("state-get").join(format!("{k}.json")), &json!(v));
        }
    }

    /// Runs `hook` through `dispatch` with `extra` env, then applies its calls as Juju would.
    pub fn run(&mut self, hook: &str, relation: Option<(&str, &str)>, extra: &[(&str, &str)]) -> HookRun {
        self.render();
        let mut env = self.h.hook_env(hook);
        env.push(("JUJU_DISPATCH_PATH".into(), format!("hooks/{hook}")));
        if let Some((rid, unit)) = relation {
            env.push(("JUJU_RELATION".into(), rid.split(':').next().unwrap().into()));
            env.push(("JUJU_RELATION_ID".into(), rid.into()));
            env.push(("JUJU_REMOTE_UNIT".into(), unit.into()));
            env.push(("JUJU_REMOTE_APP".into(), unit.split('/').next().unwrap().into()));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let run = self.h.run(hook, &self.h.charm.join("dispatch"), env);
        self.clear_injections();
        self.apply(&run.calls, run.code == Some(0));
        self.history.extend(run.calls.iter().cloned());
        self.output.push(format!("{}{}", run.stdout, run.stderr));
        run
    }

    /// Runs the action `name` through `dispatch` (its calls applied as a hook's are).
    pub fn action(&mut self, name: &str) -> HookRun {
        self.render();
        let mut env = self.h.hook_env("");
        env.retain(|(k, _)| k != "JUJU_HOOK_NAME");
        env.push(("JUJU_DISPATCH_PATH".into(), format!("actions/{name}")));
        env.push(("JUJU_ACTION_NAME".into(), name.into()));
        env.push(("JUJU_ACTION_UUID".into(), "00000000-0000-4000-8000-000000000001".into()));
        let run = self.h.run(name, &self.h.charm.join("dispatch"), env);
        self.clear_injections();
        self.apply(&run.calls, run.code == Some(0));
        self.history.extend(run.calls.iter().cloned());
        self.output.push(format!("{}{}", run.stdout, run.stderr));
        run
    }

    /// Prepares and runs `step`.
    pub fn step(&mut self, step: Step, extra: &[(&str, &str)]) -> HookRun {
        self.prepare(step);
        self.run(step.hook(), step.relation(), extra)
    }

    fn apply(&mut self, calls: &[Call], success: bool) {
        let m = &mut self.model;
        for c in calls {
            let rest: Vec<&str> = c.args.iter().skip_while(|a| *a != "--").skip(1).map(String::as_str).collect();
            match c.tool.as_str() {
                "status-set" if !c.args.iter().any(|a| a == "--application") => {
                    let status = rest.first().copied().unwrap_or_default().to_string();
                    m.statuses.push((status, rest.get(1..).unwrap_or_default().join(" ")));
                }
                "juju-log" => m.logs.push(rest.join(" ")),
                "application-version-set" => m.version = Some(rest.join(" ")),
                "pod-spec-set" | "k8s-spec-set" if success => m.pod_spec = Some(c.stdin.clone()),
                "relation-set" if success => {
                    let rid = c.args.iter().skip_while(|a| *a != "-r").nth(1).expect("relation-set -r").clone();
                    let rel = m.relations.entry(rid).or_default();
                    let bag = if c.args.iter().any(|a| a == "--app") { &mut rel.local_app } else { &mut rel.local };
                    for (k, v) in settings_from(&c.stdin) {
                        if v.is_empty() {
                            bag.remove(&k);
                        } else {
                            bag.insert(k, v);
                        }
                    }
                }
                "state-set" if success => m.state.extend(settings_from(&c.stdin)),
                "state-delete" if success => {
                    for k in rest {
                        m.state.remove(k);
                    }
                }
                _ => {}
            }
        }
    }

    pub fn end_state(&self) -> SimEnd {
        SimEnd {
            store: self.store_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()),
            mirror: self.model.state.get(MIRROR_KEY).cloned(),
            pod_spec: self.model.pod_spec.clone(),
            relations: self
                .model
                .relations
                .iter()
                .map(|(k, r)| (k.clone(), (r.local.clone(), r.local_app.clone())))
                .collect(),
            last_status: self.model.statuses.last().cloned(),
        }
    }
}

/// The lifecycle run once through the real binary, cleanly: snapshots before each step (after its
/// `prepare`), the calls each step made, the end state after each step.
pub struct SimCleanRun {
    pub before: Vec<SimSnapshot>,
    pub calls: Vec<Vec<Call>>,
    pub after: Vec<SimEnd>,
    /// Whether each step wrote the store file (so its store crash points are reachable).
    pub wrote_store: Vec<bool>,
}

pub fn sim_clean_run(label: &str) -> SimCleanRun {
    let mut sim = Sim::new(label);
    let mut out = SimCleanRun { before: Vec::new(), calls: Vec::new(), after: Vec::new(), wrote_store: Vec::new() };
    for step in Step::LIFECYCLE {
        sim.prepare(step);
        out.before.push(sim.snapshot());
        let before = sim.store_bytes();
        let run = sim.run(step.hook(), step.relation(), &[]);
        assert_eq!(run.code, Some(0), "clean {}:\n{}", step.label(), run.describe());
        out.wrote_store.push(sim.store_bytes() != before);
        out.calls.push(run.calls);
        out.after.push(sim.end_state());
    }
    out
}

impl Sim {
    /// Takes `tool` off PATH (both the sim's script and the harness's plain fake).
    pub fn remove_tool(&self, tool: &str) {
        self.h.remove_tool(tool);
    }

    /// Puts `tool`'s sim script back on PATH.
    pub fn restore_tool(&self, tool: &str) {
        write_script(&self.h.overrides.join(tool), &script(tool, &self.model_dir, &self.h.log));
    }
}

/// The fields of two end states that differ.
pub fn diff_end(want: &SimEnd, got: &SimEnd) -> String {
    let mut out = Vec::new();
    if want.store != got.store {
        out.push(format!("store: {}", super::fake_unit::diff_store(want.store.as_deref(), got.store.as_deref())));
    }
    if want.mirror != got.mirror {
        out.push(format!("mirror: {}", super::fake_unit::diff_store(want.mirror.as_deref(), got.mirror.as_deref())));
    }
    if want.pod_spec != got.pod_spec {
        let first =
            |s: &Option<String>| s.as_deref().unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>();
        let (a, b) = (first(&want.pod_spec), first(&got.pod_spec));
        let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        out.push(format!("pod spec differs at line {at}: clean {:?}, got {:?}", a.get(at), b.get(at)));
    }
    if want.relations != got.relations {
        out.push(format!("relation data: clean {:?}, got {:?}", want.relations, got.relations));
    }
    if want.last_status != got.last_status {
        out.push(format!("last status: clean {:?}, got {:?}", want.last_status, got.last_status));
    }
    out.join("\n")
}
