//! A recording fake of a container's Pebble, for testing the charm's Pebble logic in milliseconds.
//!
//! [`FakePebble`] implements [`Transport`] over an in-memory model of one Pebble: its layers (combined by label
//! with Pebble's `override: merge|replace` rules for services and checks, `internals/plan/plan.go`
//! `CombineLayers`), its services, its changes, the files pushed to it (path → content and permissions), and its
//! checks. It answers the calls the charm makes with Pebble's own envelopes (error replies included), so the
//! envelope reading of [`super::Pebble`] is what the tests run. It records every request (`METHOD /v1/path`) and
//! injects faults: not running, a timeout, an error reply or a change that fails, on requests whose path starts
//! with a prefix. Handles are cheap clones of one shared model, so a test keeps one to inspect what the charm did.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};
use serde_yaml::{Mapping, Value as Yaml};

use super::{Body, Response, Transport, TransportError};

/// A service as the fake runs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FakeService {
    /// `active` or `inactive`.
    pub current: String,
    /// How many times it was (re)started.
    pub starts: u32,
    /// The definition it was last started with.
    pub started_with: Option<Yaml>,
}

/// A file pushed to the fake.
#[derive(Clone, PartialEq, Eq)]
pub struct FakeFile {
    pub content: Vec<u8>,
    /// Octal, as pushed (`644` when none was given).
    pub permissions: String,
}

impl std::fmt::Debug for FakeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FakeFile({} bytes, {})", self.content.len(), self.permissions)
    }
}

/// A change the fake made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeChange {
    pub id: String,
    pub kind: String,
    /// The error it finished with, if any.
    pub err: Option<String>,
}

/// What goes wrong with matching requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    NotRunning,
    Timeout,
    /// An error envelope with this status code and message.
    Reply {
        status_code: u16,
        message: String,
    },
    /// The request's change (replan, restart, …) finishes with this error.
    ChangeError(String),
}

#[derive(Debug, Default)]
struct State {
    running: bool,
    layers: Vec<(String, Mapping)>,
    services: BTreeMap<String, FakeService>,
    files: BTreeMap<String, FakeFile>,
    dirs: BTreeSet<String>,
    changes: Vec<FakeChange>,
    checks: BTreeMap<String, (String, u64)>,
    requests: Vec<String>,
    faults: Vec<(String, Fault)>,
}

/// A fake Pebble; clones share one model.
#[derive(Debug, Clone)]
pub struct FakePebble {
    state: Rc<RefCell<State>>,
}

impl Default for FakePebble {
    fn default() -> Self {
        FakePebble::new()
    }
}

impl FakePebble {
    /// A running Pebble with an empty plan, and only `/` as a directory.
    pub fn new() -> FakePebble {
        let state = State { running: true, dirs: BTreeSet::from(["/".to_string()]), ..State::default() };
        FakePebble { state: Rc::new(RefCell::new(state)) }
    }

    pub fn set_running(&self, running: bool) {
        self.state.borrow_mut().running = running;
    }

    /// The container restarted: a new Pebble, running, with an empty plan, no services, no files but `/` (the
    /// request log and the faults are kept).
    pub fn restart_afresh(&self) {
        let mut st = self.state.borrow_mut();
        st.running = true;
        st.layers.clear();
        st.services.clear();
        st.files.clear();
        st.changes.clear();
        st.checks.clear();
        st.dirs = BTreeSet::from(["/".to_string()]);
    }

    /// Requests whose path (without the query) starts with `path_prefix` meet `fault` until [`Self::clear_faults`].
    pub fn fail(&self, path_prefix: &str, fault: Fault) {
        self.state.borrow_mut().faults.push((path_prefix.to_string(), fault));
    }

    pub fn clear_faults(&self) {
        self.state.borrow_mut().faults.clear();
    }

    /// A directory that exists (for pushes without `make-dirs`).
    pub fn add_dir(&self, dir: &str) {
        self.state.borrow_mut().dirs.insert(dir.trim_end_matches('/').to_string());
    }

    /// Sets what `GET /v1/checks` reports for a check (otherwise `up`, no failures).
    pub fn set_check(&self, name: &str, status: &str, failures: u64) {
        self.state.borrow_mut().checks.insert(name.to_string(), (status.to_string(), failures));
    }

    /// Every request received: `METHOD /v1/path`.
    pub fn requests(&self) -> Vec<String> {
        self.state.borrow().requests.clone()
    }

    /// The layers, in order, by label.
    pub fn layers(&self) -> Vec<(String, Mapping)> {
        self.state.borrow().layers.clone()
    }

    /// The combined plan.
    pub fn plan(&self) -> Mapping {
        let state = self.state.borrow();
        let mut plan = Mapping::new();
        for (label, layer) in &state.layers {
            // Every stored layer was combined once already: this cannot fail.
            let _ = combine(&mut plan, layer, label);
        }
        plan
    }

    pub fn service(&self, name: &str) -> Option<FakeService> {
        self.state.borrow().services.get(name).cloned()
    }

    pub fn file(&self, path: &str) -> Option<FakeFile> {
        self.state.borrow().files.get(path).cloned()
    }

    pub fn changes(&self) -> Vec<FakeChange> {
        self.state.borrow().changes.clone()
    }
}

fn envelope(status_code: u16, status: &str, kind: &str, result: Value, change: Option<&str>) -> Response {
    let mut body = json!({"type": kind, "status-code": status_code, "status": status, "result": result});
    if let Some(id) = change {
        body["change"] = json!(id);
    }
    Response { status: status_code, body: body.to_string().into_bytes() }
}

fn sync(result: Value) -> Response {
    envelope(200, "OK", "sync", result, None)
}

fn error(status_code: u16, message: &str) -> Response {
    let status = match status_code {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "",
    };
    envelope(status_code, status, "error", json!({"message": message}), None)
}

const SECTIONS: [(&str, &str); 2] = [("services", "service"), ("checks", "check")];

/// Combines `layer` into `into` as Pebble's `CombineLayers` does for services and checks: each entry must say
/// `override: merge` (fields of the new entry win, lists append, maps merge) or `override: replace`.
fn combine(into: &mut Mapping, layer: &Mapping, label: &str) -> Result<(), String> {
    for (key, value) in layer {
        let section = SECTIONS.iter().find(|(s, _)| key.as_str() == Some(s));
        let Some((section, noun)) = section else {
            into.insert(key.clone(), value.clone());
            continue;
        };
        let Some(entries) = value.as_mapping() else { continue };
        let target = into.entry(Yaml::from(*section)).or_insert_with(|| Yaml::Mapping(Mapping::new()));
        let Some(target) = target.as_mapping_mut() else {
            return Err(format!("layer {label:?}: {section} is not a map"));
        };
        for (name, entry) in entries {
            let shown = name.as_str().unwrap_or_default();
            match entry.get("override").and_then(Yaml::as_str) {
                Some("merge") => match target.get_mut(name).and_then(Yaml::as_mapping_mut) {
                    Some(old) => merge(old, entry),
                    None => {
                        target.insert(name.clone(), entry.clone());
                    }
                },
                Some("replace") => {
                    target.insert(name.clone(), entry.clone());
                }
                None => return Err(format!("layer {label:?} must define \"override\" for {noun} {shown:?}")),
                Some(_) => return Err(format!("layer {label:?} has invalid \"override\" value for {noun} {shown:?}")),
            }
        }
    }
    Ok(())
}

/// `Service.Merge`: lists (`after`, `before`, `requires`) append, maps (`environment`, …) merge, the rest is
/// overwritten.
fn merge(old: &mut Mapping, new: &Yaml) {
    let Some(new) = new.as_mapping() else { return };
    for (key, value) in new {
        match (old.get_mut(key), value) {
            (Some(Yaml::Sequence(list)), Yaml::Sequence(more)) => list.extend(more.iter().cloned()),
            (Some(Yaml::Mapping(map)), Yaml::Mapping(more)) => {
                for (k, v) in more {
                    map.insert(k.clone(), v.clone());
                }
            }
            _ => {
                old.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The parts of a multipart body: (form name, filename, content).
fn parts(boundary: &str, bytes: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let mut data = b"\r\n".to_vec();
    data.extend_from_slice(bytes);
    let mut starts = Vec::new();
    let mut i = 0;
    while i + delimiter.len() <= data.len() {
        if data[i..].starts_with(&delimiter) {
            starts.push(i);
            i += delimiter.len();
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for pair in starts.windows(2) {
        let part = &data[pair[0] + delimiter.len()..pair[1]];
        let Some(part) = part.strip_prefix(b"\r\n") else { continue };
        let Some(split) = part.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let headers = String::from_utf8_lossy(&part[..split]);
        let param = |name: &str| {
            let key = format!("{name}=\"");
            let at = headers.find(&key)? + key.len();
            let rest = &headers[at..];
            let mut value = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => return Some(value),
                    c => value.push(c),
                }
            }
            None
        };
        let name = param(" name").unwrap_or_default();
        out.push((name, param("filename"), part[split + 4..].to_vec()));
    }
    out
}

impl State {
    fn change(&mut self, kind: &str, err: Option<String>) -> Response {
        let id = (self.changes.len() + 1).to_string();
        self.changes.push(FakeChange { id: id.clone(), kind: kind.to_string(), err });
        envelope(202, "Accepted", "async", Value::Null, Some(&id))
    }

    fn plan_services(&self) -> Mapping {
        let mut plan = Mapping::new();
        for (label, layer) in &self.layers {
            let _ = combine(&mut plan, layer, label);
        }
        plan.get("services").and_then(Yaml::as_mapping).cloned().unwrap_or_default()
    }

    fn start(&mut self, name: &str, definition: Option<Yaml>) {
        let service = self.services.entry(name.to_string()).or_default();
        service.current = "active".into();
        service.starts += 1;
        service.started_with = definition;
    }

    fn add_layer(&mut self, body: &Value) -> Response {
        let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        if text("action") != "add" {
            return error(400, &format!("invalid action {:?}", text("action")));
        }
        let label = text("label");
        if label.is_empty() {
            return error(400, "label must be set");
        }
        if text("format") != "yaml" {
            return error(400, &format!("invalid format {:?}", text("format")));
        }
        let layer = match serde_yaml::from_str::<Yaml>(&text("layer")) {
            Ok(Yaml::Mapping(layer)) => layer,
            Ok(Yaml::Null) => Mapping::new(),
            Ok(_) => return error(400, &format!("cannot parse layer YAML: cannot parse layer {label:?}: not a map")),
            Err(e) => return error(400, &format!("cannot parse layer YAML: cannot parse layer {label:?}: {e}")),
        };
        let combine_flag = body.get("combine").and_then(Value::as_bool).unwrap_or(false);
        let existing = self.layers.iter().position(|(l, _)| *l == label);
        let mut checked = Mapping::new();
        if let Err(e) = combine(&mut checked, &layer, &label) {
            return error(400, &e);
        }
        match (existing, combine_flag) {
            (Some(_), false) => return error(400, &format!("layer {label:?} already exists")),
            (Some(i), true) => {
                let mut combined = self.layers[i].1.clone();
                if let Err(e) = combine(&mut combined, &layer, &label) {
                    return error(400, &e);
                }
                self.layers[i].1 = combined;
            }
            (None, _) => self.layers.push((label, layer)),
        }
        sync(json!(true))
    }

    fn services(&mut self, body: &Value, change_err: Option<String>) -> Response {
        let action = body.get("action").and_then(Value::as_str).unwrap_or_default().to_string();
        let names: Vec<String> = body
            .get("services")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let plan = self.plan_services();
        match action.as_str() {
            "replan" if !names.is_empty() => return error(400, "replan accepts no service names"),
            "replan" => {}
            "start" | "stop" | "restart" if names.is_empty() => {
                return error(400, &format!("must specify services for {action} action"));
            }
            "start" | "stop" | "restart" => {
                if let Some(missing) = names.iter().find(|n| !plan.contains_key(n.as_str())) {
                    return error(400, &format!("cannot {action} services: service {missing:?} does not exist"));
                }
            }
            _ => return error(400, &format!("invalid action {action:?}")),
        }
        if change_err.is_none() {
            match action.as_str() {
                "replan" => {
                    for (name, definition) in &plan {
                        let Some(name) = name.as_str() else { continue };
                        if definition.get("startup").and_then(Yaml::as_str) != Some("enabled") {
                            continue;
                        }
                        let current = self.services.get(name);
                        let stale = current
                            .is_none_or(|s| s.current != "active" || s.started_with.as_ref() != Some(definition));
                        if stale {
                            self.start(name, Some(definition.clone()));
                        }
                    }
                }
                "stop" => {
                    for name in &names {
                        self.services.entry(name.clone()).or_default().current = "inactive".into();
                    }
                }
                "start" => {
                    for name in &names {
                        if self.services.get(name).is_none_or(|s| s.current != "active") {
                            self.start(name, plan.get(name.as_str()).cloned());
                        }
                    }
                }
                _ => {
                    for name in &names {
                        self.start(name, plan.get(name.as_str()).cloned());
                    }
                }
            }
        }
        self.change(&action, change_err)
    }

    fn wait(&self, id: &str) -> Response {
        match self.changes.iter().find(|c| c.id == id) {
            Some(change) => sync(json!({
                "id": change.id,
                "kind": change.kind,
                "summary": format!("{} change", change.kind),
                "status": if change.err.is_some() { "Error" } else { "Done" },
                "ready": true,
                "err": change.err.clone().unwrap_or_default(),
            })),
            None => error(404, &format!("cannot find change with id {id:?}")),
        }
    }

    fn push(&mut self, body: Option<Body>) -> Response {
        let Some(Body::Multipart { boundary, bytes }) = body else {
            return error(400, "content-type must be multipart/form-data");
        };
        let parts = parts(&boundary, &bytes);
        let Some((name, _, request)) = parts.first() else {
            return error(400, "cannot read request metadata");
        };
        if name != "request" {
            return error(400, &format!("metadata field name must be \"request\", got {name:?}"));
        }
        let Ok(request) = serde_json::from_slice::<Value>(request) else {
            return error(400, "cannot decode request metadata");
        };
        if request.get("action").and_then(Value::as_str) != Some("write") {
            return error(400, "multipart action must be \"write\"");
        }
        let items = request.get("files").and_then(Value::as_array).cloned().unwrap_or_default();
        if items.is_empty() {
            return error(400, "must specify one or more files");
        }
        let mut results = Vec::new();
        for item in &items {
            let path = item.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
            let content = parts.iter().skip(1).find(|(n, f, _)| n == "files" && f.as_deref() == Some(&path));
            let result = match content {
                None => Err((format!("no file content for path {path:?}"), "generic-file-error")),
                Some((_, _, content)) => self.write(item, &path, content),
            };
            results.push(match result {
                Ok(()) => json!({"path": path}),
                Err((message, kind)) => json!({"path": path, "error": {"message": message, "kind": kind}}),
            });
        }
        sync(Value::Array(results))
    }

    fn write(&mut self, item: &Value, path: &str, content: &[u8]) -> Result<(), (String, &'static str)> {
        if !path.starts_with('/') {
            return Err((format!("paths must be absolute, got {path:?}"), "generic-file-error"));
        }
        let permissions = item.get("permissions").and_then(Value::as_str).unwrap_or_default();
        let permissions = if permissions.is_empty() { "644" } else { permissions };
        let octal = permissions.chars().all(|c| ('0'..='7').contains(&c));
        if !octal || !(3..=4).contains(&permissions.len()) {
            let message = format!("file permissions must be a 3- or 4-digit octal string, got {permissions:?}");
            return Err((message, "generic-file-error"));
        }
        let parent = match path.rfind('/') {
            Some(0) | None => "/".to_string(),
            Some(at) => path[..at].to_string(),
        };
        if item.get("make-dirs").and_then(Value::as_bool) == Some(true) {
            let mut dir = String::new();
            for piece in parent.split('/').filter(|p| !p.is_empty()) {
                dir.push('/');
                dir.push_str(piece);
                self.dirs.insert(dir.clone());
            }
        } else if !self.dirs.contains(&parent) {
            return Err((format!("open {path}: no such file or directory"), "not-found"));
        }
        self.files
            .insert(path.to_string(), FakeFile { content: content.to_vec(), permissions: permissions.to_string() });
        Ok(())
    }

    fn checks(&self) -> Response {
        let mut plan = Mapping::new();
        for (label, layer) in &self.layers {
            let _ = combine(&mut plan, layer, label);
        }
        let mut names: BTreeSet<String> = self.checks.keys().cloned().collect();
        if let Some(checks) = plan.get("checks").and_then(Yaml::as_mapping) {
            names.extend(checks.keys().filter_map(|k| k.as_str().map(String::from)));
        }
        let list: Vec<Value> = names
            .iter()
            .map(|name| {
                let (status, failures) = self.checks.get(name).cloned().unwrap_or(("up".into(), 0));
                json!({"name": name, "startup": "enabled", "status": status, "failures": failures, "threshold": 3})
            })
            .collect();
        sync(Value::Array(list))
    }
}

impl Transport for FakePebble {
    fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let mut state = self.state.borrow_mut();
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        state.requests.push(format!("{method} {path}"));
        if !state.running {
            return Err(TransportError::NotRunning("fake pebble.socket: connection refused".into()));
        }
        let mut change_err = None;
        for (prefix, fault) in &state.faults {
            if !path.starts_with(prefix.as_str()) {
                continue;
            }
            match fault {
                Fault::NotRunning => return Err(TransportError::NotRunning("fake: connection refused".into())),
                Fault::Timeout => return Err(TransportError::Timeout(timeout)),
                Fault::Reply { status_code, message } => return Ok(error(*status_code, message)),
                Fault::ChangeError(message) => change_err = Some(message.clone()),
            }
        }
        let json_body = match &body {
            Some(Body::Json(bytes)) => match serde_json::from_slice::<Value>(bytes) {
                Ok(v) => v,
                Err(e) => return Ok(error(400, &format!("cannot decode request body: {e}"))),
            },
            _ => Value::Null,
        };
        let reply = match (method, path) {
            ("POST", "/v1/layers") => state.add_layer(&json_body),
            ("GET", "/v1/plan") if query != "format=yaml" => error(400, "invalid format"),
            ("GET", "/v1/plan") => {
                let mut plan = Mapping::new();
                for (label, layer) in &state.layers {
                    let _ = combine(&mut plan, layer, label);
                }
                sync(json!(serde_yaml::to_string(&plan).unwrap_or_default()))
            }
            ("POST", "/v1/services") => state.services(&json_body, change_err),
            ("POST", "/v1/files") => state.push(body),
            ("GET", "/v1/checks") => state.checks(),
            ("GET", p) if p.starts_with("/v1/changes/") && p.ends_with("/wait") => {
                let id = &p["/v1/changes/".len()..p.len() - "/wait".len()];
                state.wait(id)
            }
            _ => error(404, "not found"),
        };
        Ok(reply)
    }
}
