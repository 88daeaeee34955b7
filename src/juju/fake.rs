//! A recording, in-memory stand-in for Juju's hook tools, for testing charm logic without processes.
//!
//! Modelled on gocharm's `hooktest`: [`FakeJuju`] implements [`ToolRunner`] by answering from a
//! [`FakeModel`] (config, leadership, resources, relations, leader settings, charm state) and records
//! every call with its arguments and stdin. It keeps the reference's contracts: `--format json` output,
//! exit-1 `ERROR` lines for runtime refusals (a non-leader's `pod-spec-set`), exit-2 usage errors, no
//! newline from `resource-get`, and **deferred** changes (pod spec, relation-set, state-set/delete) that
//! only [`FakeModel::end_hook`] with success commits. Faults can be injected per call.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ToolError;
use super::hook_tools::Settings;
use super::runner::ToolRunner;

/// One recorded tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub tool: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
}

/// A relation as the local unit sees it.
#[derive(Debug, Clone, Default)]
pub struct FakeRelation {
    pub remote_app: String,
    /// Remote units and their settings.
    pub units: BTreeMap<String, Settings>,
    pub remote_app_data: Settings,
    /// What this unit has published (committed).
    pub local: Settings,
    /// What this application has published (committed).
    pub local_app: Settings,
}

/// A failure to inject: the `nth` call (0-based) of `tool` in this hook fails with `error`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub tool: String,
    pub nth: usize,
    pub error: ToolError,
}

/// The model the fake answers from, and everything the charm did to it.
#[derive(Debug, Clone, Default)]
pub struct FakeModel {
    pub unit: String,
    pub leader: bool,
    pub config: Map<String, Value>,
    /// Resource name → path of its file, or the `ERROR` message `resource-get` fails with.
    pub resources: BTreeMap<String, Result<PathBuf, String>>,
    /// Binding → ingress address.
    pub ingress: BTreeMap<String, String>,
    /// Relation id (`db:3`) → relation.
    pub relations: BTreeMap<String, FakeRelation>,
    pub leader_settings: Settings,
    /// Committed charm state (`state-*`).
    pub state: Settings,
    /// The committed pod spec (YAML text), and how many times one was committed.
    pub pod_spec: Option<String>,
    pub pod_spec_commits: usize,
    pub action_params: Map<String, Value>,
    pub action_results: Settings,
    pub action_failed: Option<String>,

    // Immediate effects.
    pub statuses: Vec<(String, String)>,
    pub app_statuses: Vec<(String, String)>,
    pub logs: Vec<(String, String)>,
    pub version: Option<String>,

    // Deferred effects of the running hook.
    pending_spec: Option<String>,
    pending_relations: BTreeMap<(String, bool), Settings>,
    pending_state: Vec<(String, Option<String>)>,

    pub calls: Vec<Call>,
    pub faults: Vec<Fault>,
}

impl FakeModel {
    /// A unit `redis-k8s/0` with no config, not leader.
    pub fn new(unit: &str) -> Self {
        FakeModel { unit: unit.to_string(), ..Default::default() }
    }

    /// The last status this unit set, if any.
    pub fn last_status(&self) -> Option<(&str, &str)> {
        self.statuses.last().map(|(s, m)| (s.as_str(), m.as_str()))
    }

    /// Names of the tools called, in order.
    pub fn tool_names(&self) -> Vec<&str> {
        self.calls.iter().map(|c| c.tool.as_str()).collect()
    }

    /// Number of calls of `tool`.
    pub fn count(&self, tool: &str) -> usize {
        self.calls.iter().filter(|c| c.tool == tool).count()
    }

    /// Whether deferred changes are waiting for the hook's end.
    pub fn has_pending(&self) -> bool {
        self.pending_spec.is_some() || !self.pending_relations.is_empty() || !self.pending_state.is_empty()
    }

    /// The end of a hook: commit deferred changes when it succeeded, drop them otherwise (reference §1.4).
    pub fn end_hook(&mut self, success: bool) {
        let spec = self.pending_spec.take();
        let rels = std::mem::take(&mut self.pending_relations);
        let state = std::mem::take(&mut self.pending_state);
        if !success {
            return;
        }
        if let Some(s) = spec {
            self.pod_spec = Some(s);
            self.pod_spec_commits += 1;
        }
        for ((rid, app), values) in rels {
            if let Some(rel) = self.relations.get_mut(&rid) {
                let bag = if app { &mut rel.local_app } else { &mut rel.local };
                for (k, v) in values {
                    if v.is_empty() {
                        bag.remove(&k);
                    } else {
                        bag.insert(k, v);
                    }
                }
            }
        }
        for (k, v) in state {
            match v {
                Some(v) => self.state.insert(k, v),
                None => self.state.remove(&k),
            };
        }
    }
}

/// The fake runner; clones share one model.
#[derive(Debug, Clone, Default)]
pub struct FakeJuju {
    pub model: Rc<RefCell<FakeModel>>,
}

impl FakeJuju {
    pub fn new(model: FakeModel) -> Self {
        FakeJuju { model: Rc::new(RefCell::new(model)) }
    }
}

/// Parsed gnuflag-style arguments: the flags our wrappers use, and positionals.
struct Args {
    flags: BTreeMap<String, String>,
    positional: Vec<String>,
}

const VALUE_FLAGS: &[&str] = &["--format", "-r", "--relation", "--file", "-l", "--log-level", "-o"];
const BOOL_FLAGS: &[&str] =
    &["--all", "-a", "--app", "--application", "--include-data", "--ingress-address", "--strict"];

fn parse_args(tool: &str, args: &[&str]) -> Result<Args, ToolError> {
    let usage = |m: String| ToolError::Usage { tool: tool.into(), message: format!("ERROR {m}") };
    let mut flags = BTreeMap::new();
    let mut positional = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while i < args.len() {
        let a = args[i];
        if ended || a == "-" || !a.starts_with('-') {
            positional.push(a.to_string());
        } else if a == "--" {
            ended = true;
        } else if let Some((k, v)) = a.split_once('=').filter(|(k, _)| k.starts_with("--")) {
            flags.insert(k.to_string(), v.to_string());
        } else if VALUE_FLAGS.contains(&a) {
            let v = args.get(i + 1).ok_or_else(|| usage(format!("flag needs an argument: {a}")))?;
            flags.insert(a.to_string(), v.to_string());
            i += 1;
        } else if BOOL_FLAGS.contains(&a) {
            flags.insert(a.to_string(), String::new());
        } else {
            return Err(usage(format!("flag provided but not defined: {a}")));
        }
        i += 1;
    }
    if let Some(f) = flags.get("--format")
        && !["json", "yaml", "smart"].contains(&f.as_str())
    {
        return Err(usage(format!("invalid value {f:?} for flag --format: unknown format {f:?}")));
    }
    Ok(Args { flags, positional })
}

impl Args {
    fn has(&self, f: &str) -> bool {
        self.flags.contains_key(f)
    }
    fn get(&self, f: &str) -> Option<&str> {
        self.flags.get(f).map(String::as_str)
    }
    fn json(&self) -> bool {
        self.get("--format") == Some("json")
    }
    fn relation(&self) -> Option<String> {
        self.get("-r").or(self.get("--relation")).map(str::to_string)
    }
}

fn runtime(tool: &str, m: &str) -> ToolError {
    ToolError::Runtime { tool: tool.into(), message: format!("ERROR {m}") }
}
fn usage(tool: &str, m: &str) -> ToolError {
    ToolError::Usage { tool: tool.into(), message: format!("ERROR {m}") }
}

/// Formats a value the way the tool's chosen `--format` would; tests use json, smart is approximated.
fn out(a: &Args, v: &Value) -> Vec<u8> {
    if a.json() {
        let mut s = serde_json::to_string(v).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    } else {
        match v {
            Value::Null => Vec::new(),
            Value::String(s) if s.is_empty() => Vec::new(),
            Value::String(s) => format!("{s}\n").into_bytes(),
            Value::Bool(b) => (if *b { "True\n" } else { "False\n" }).as_bytes().to_vec(),
            other => serde_yaml::to_string(other).unwrap_or_default().into_bytes(),
        }
    }
}

fn settings_value(s: &Settings) -> Value {
    Value::Object(s.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// Reads `--file -` (or a path) as a YAML string map, as relation-set and state-set do.
fn read_settings(tool: &str, a: &Args, stdin: Option<&[u8]>) -> Result<Settings, ToolError> {
    let mut values = Settings::new();
    if let Some(file) = a.get("--file") {
        let text = if file == "-" {
            String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned()
        } else {
            std::fs::read_to_string(file).map_err(|e| runtime(tool, &e.to_string()))?
        };
        let parsed: Option<BTreeMap<String, serde_yaml::Value>> =
            serde_yaml::from_str(&text).map_err(|e| runtime(tool, &format!("invalid YAML: {e}")))?;
        for (k, v) in parsed.unwrap_or_default() {
            let v = match v {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Null => String::new(),
                other => serde_yaml::to_string(&other).unwrap_or_default().trim_end().to_string(),
            };
            values.insert(k, v);
        }
    }
    for p in &a.positional {
        let (k, v) = p.split_once('=').ok_or_else(|| usage(tool, &format!("expected \"key=value\", got {p:?}")))?;
        values.insert(k.to_string(), v.to_string());
    }
    Ok(values)
}

impl ToolRunner for FakeJuju {
    fn run(&mut self, tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, ToolError> {
        let mut m = self.model.borrow_mut();
        let nth = m.calls.iter().filter(|c| c.tool == tool).count();
        m.calls.push(Call {
            tool: tool.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.map(|b| String::from_utf8_lossy(b).into_owned()),
        });
        if let Some(f) = m.faults.iter().find(|f| f.tool == tool && f.nth == nth) {
            return Err(f.error.clone());
        }
        let a = parse_args(tool, args)?;
        let pos = |i: usize| a.positional.get(i).map(String::as_str);
        match tool {
            "config-get" => {
                if let Some(k) = pos(0) {
                    if a.has("--all") {
                        return Err(usage(tool, &format!("cannot use argument --all together with key {k:?}")));
                    }
                    return Ok(out(&a, m.config.get(k).unwrap_or(&Value::Null)));
                }
                let map: Map<String, Value> = if a.has("--all") || a.has("-a") {
                    m.config.clone()
                } else {
                    m.config.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect()
                };
                Ok(out(&a, &Value::Object(map)))
            }
            "is-leader" => Ok(out(&a, &Value::Bool(m.leader))),
            "resource-get" => {
                let name = pos(0).ok_or_else(|| usage(tool, "missing required resource name"))?;
                match m.resources.get(name) {
                    Some(Ok(p)) => Ok(p.to_string_lossy().into_owned().into_bytes()),
                    Some(Err(e)) => Err(runtime(tool, &format!("could not download resource: {e}"))),
                    None => Err(runtime(tool, &format!("could not download resource: resource#{name} not found"))),
                }
            }
            "status-set" => {
                let (Some(state), msg) = (pos(0), pos(1).unwrap_or("")) else {
                    return Err(usage(tool, "invalid args, require <status> [message]"));
                };
                if a.positional.len() > 2 {
                    return Err(usage(tool, &format!("unrecognized args: {:?}", &a.positional[2..])));
                }
                if !["maintenance", "blocked", "waiting", "active"].contains(&state) {
                    return Err(usage(
                        tool,
                        &format!("invalid status {state:?}, expected one of [maintenance blocked waiting active]"),
                    ));
                }
                if a.has("--application") {
                    if !m.leader {
                        return Err(runtime(tool, "this unit is not the leader"));
                    }
                    m.app_statuses.push((state.into(), msg.into()));
                } else {
                    m.statuses.push((state.into(), msg.into()));
                }
                Ok(Vec::new())
            }
            "status-get" => {
                let (s, msg) = m.statuses.last().cloned().unwrap_or(("unknown".into(), String::new()));
                let v = serde_json::json!({"status": s, "message": msg, "status-data": {}});
                Ok(out(&a, &v))
            }
            "juju-log" => {
                if a.positional.is_empty() {
                    return Err(usage(tool, "no message specified"));
                }
                let level = a.get("-l").or(a.get("--log-level")).unwrap_or("INFO").to_uppercase();
                m.logs.push((level, a.positional.join(" ")));
                Ok(Vec::new())
            }
            "application-version-set" => {
                let v = pos(0).ok_or_else(|| usage(tool, "no version specified"))?;
                m.version = Some(v.to_string());
                Ok(Vec::new())
            }
            "pod-spec-set" | "k8s-spec-set" => {
                if !a.positional.is_empty() {
                    return Err(usage(tool, &format!("unrecognized args: {:?}", a.positional)));
                }
                let spec = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
                if !m.leader {
                    return Err(runtime(tool, "this unit is not the leader"));
                }
                if spec.trim().is_empty() {
                    return Err(runtime(
                        tool,
                        "no k8s spec specified: pipe k8s spec to command, or specify a file with --file",
                    ));
                }
                m.pending_spec = Some(spec);
                Ok(Vec::new())
            }
            "network-get" => {
                let b = pos(0).ok_or_else(|| usage(tool, "no arguments specified"))?;
                match m.ingress.get(b) {
                    Some(addr) => Ok(out(&a, &Value::String(addr.clone()))),
                    None => Err(runtime(tool, &format!("no network config found for binding {b:?}"))),
                }
            }
            "relation-ids" => {
                let ep = pos(0).ok_or_else(|| usage(tool, "no relation name specified"))?;
                let ids: Vec<Value> = m
                    .relations
                    .keys()
                    .filter(|id| id.split(':').next() == Some(ep))
                    .map(|id| Value::String(id.clone()))
                    .collect();
                Ok(out(&a, &Value::Array(ids)))
            }
            "relation-list" => {
                let rid = a.relation().ok_or_else(|| usage(tool, "no relation id specified"))?;
                let rel = m
                    .relations
                    .get(&rid)
                    .ok_or_else(|| usage(tool, "invalid value for flag -r: relation not found"))?;
                let units: Vec<Value> = rel.units.keys().map(|u| Value::String(u.clone())).collect();
                Ok(out(&a, &Value::Array(units)))
            }
            "relation-get" => {
                let rid = a.relation().ok_or_else(|| usage(tool, "no relation id specified"))?;
                let rel = m
                    .relations
                    .get(&rid)
                    .ok_or_else(|| usage(tool, "invalid value for flag -r: relation not found"))?;
                let target = pos(1).ok_or_else(|| usage(tool, "no unit or application specified"))?;
                let app = a.has("--app");
                let own_app = m.unit.split('/').next().unwrap_or_default().to_string();
                let bag = if target == m.unit {
                    rel.local.clone()
                } else if app && (target == own_app || target.starts_with(&format!("{own_app}/"))) {
                    rel.local_app.clone()
                } else if app {
                    rel.remote_app_data.clone()
                } else {
                    rel.units.get(target).cloned().unwrap_or_default()
                };
                match pos(0) {
                    Some("-") | None => Ok(out(&a, &settings_value(&bag))),
                    Some(k) => Ok(out(&a, &bag.get(k).map(|v| Value::String(v.clone())).unwrap_or(Value::Null))),
                }
            }
            "relation-set" => {
                let rid = a.relation().ok_or_else(|| usage(tool, "no relation id specified"))?;
                if !m.relations.contains_key(&rid) {
                    return Err(usage(tool, "invalid value for flag -r: relation not found"));
                }
                let app = a.has("--app");
                if app && !m.leader {
                    return Err(runtime(tool, "cannot write relation settings"));
                }
                let values = read_settings(tool, &a, stdin)?;
                m.pending_relations.entry((rid, app)).or_default().extend(values);
                Ok(Vec::new())
            }
            "leader-get" => match pos(0) {
                Some("-") | None => Ok(out(&a, &settings_value(&m.leader_settings))),
                Some(k) => {
                    Ok(out(&a, &m.leader_settings.get(k).map(|v| Value::String(v.clone())).unwrap_or(Value::Null)))
                }
            },
            "leader-set" => {
                if !m.leader {
                    return Err(runtime(
                        tool,
                        "cannot write leadership settings: cannot write settings: not the leader",
                    ));
                }
                for (k, v) in read_settings(tool, &a, stdin)? {
                    if v.is_empty() {
                        m.leader_settings.remove(&k);
                    } else {
                        m.leader_settings.insert(k, v);
                    }
                }
                Ok(Vec::new())
            }
            "state-get" => {
                let mut view = m.state.clone();
                for (k, v) in &m.pending_state {
                    match v {
                        Some(v) => view.insert(k.clone(), v.clone()),
                        None => view.remove(k),
                    };
                }
                match pos(0) {
                    Some("-") | None => Ok(out(&a, &settings_value(&view))),
                    Some(k) => match view.get(k) {
                        Some(v) => Ok(out(&a, &Value::String(v.clone()))),
                        None if a.has("--strict") => Err(runtime(tool, &format!("{k:?} not found"))),
                        None => Ok(out(&a, &Value::String(String::new()))),
                    },
                }
            }
            "state-set" => {
                for (k, v) in read_settings(tool, &a, stdin)? {
                    if k.len() > 256 {
                        return Err(runtime(tool, "max allowed key length (256) exceeded"));
                    }
                    if v.len() > 65536 {
                        return Err(runtime(tool, "max allowed value length (65536) exceeded"));
                    }
                    m.pending_state.push((k, Some(v)));
                }
                Ok(Vec::new())
            }
            "state-delete" => {
                if let Some(k) = pos(0) {
                    m.pending_state.push((k.to_string(), None));
                }
                Ok(Vec::new())
            }
            "action-get" => Ok(out(&a, &Value::Object(m.action_params.clone()))),
            "action-set" => {
                for p in &a.positional {
                    let (k, v) = p
                        .split_once('=')
                        .ok_or_else(|| usage(tool, &format!("argument {p:?} must be of the form key...=value")))?;
                    m.action_results.insert(k.to_string(), v.to_string());
                }
                Ok(Vec::new())
            }
            "action-fail" => {
                m.action_failed = Some(pos(0).unwrap_or("action failed without reason given").to_string());
                Ok(Vec::new())
            }
            _ => Err(ToolError::Missing { tool: tool.to_string() }),
        }
    }
}

/// Convenience for fault injection: the error a tool gives when it hangs past the runner's limit.
pub fn timeout_fault(tool: &str) -> ToolError {
    ToolError::Timeout { tool: tool.to_string(), after: Duration::from_secs(300) }
}
