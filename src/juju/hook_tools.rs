//! Typed wrappers for every hook tool the charm uses: the only place that knows tool names, flags and
//! output formats.
//!
//! Like ops' `_ModelBackend`: charm code calls `tools.config()`, `tools.is_leader()`,
//! `tools.pod_spec_set(yaml)` and never sees argv or stdout. Each wrapper follows the contract in the
//! reference (§3): `--format json` wherever the tool has it, `--` before positional values that may start
//! with `-`, secrets and large values on stdin (`--file -`) rather than argv, no trailing newline from
//! `resource-get`. Every call is counted, so tests and benchmarks can hold the charm to a budget.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::ToolError;
use super::runner::ToolRunner;

/// Workload status values a charm may set (reference §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Active,
    Waiting,
    Blocked,
    Maintenance,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Maintenance => "maintenance",
            Status::Blocked => "blocked",
            Status::Waiting => "waiting",
            Status::Active => "active",
        }
    }
}

/// `juju-log` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

/// A relation's settings: Juju's relation data is string to string.
pub type Settings = BTreeMap<String, String>;

/// Typed, counted access to the hook tools through a [`ToolRunner`].
pub struct HookTools {
    runner: Box<dyn ToolRunner>,
    calls: Vec<String>,
    leader: Option<bool>,
}

impl HookTools {
    pub fn new(runner: Box<dyn ToolRunner>) -> Self {
        HookTools { runner, calls: Vec::new(), leader: None }
    }

    /// Names of the tools called so far in this hook, in order.
    pub fn calls(&self) -> &[String] {
        &self.calls
    }

    /// How many times `tool` was called so far in this hook.
    pub fn count(&self, tool: &str) -> usize {
        self.calls.iter().filter(|c| *c == tool).count()
    }

    fn run(&mut self, tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, ToolError> {
        self.calls.push(tool.to_string());
        self.runner.run(tool, args, stdin)
    }

    fn json<T: DeserializeOwned>(&mut self, tool: &str, args: &[&str]) -> Result<T, ToolError> {
        let out = self.run(tool, args, None)?;
        parse_json(tool, &out)
    }

    // ---- config -------------------------------------------------------------------------------

    /// `config-get --all --format json`: every option, null where it has no value and no default.
    pub fn config(&mut self) -> Result<Map<String, Value>, ToolError> {
        self.json("config-get", &["--all", "--format", "json"])
    }

    // ---- leadership ---------------------------------------------------------------------------

    /// `is-leader --format json`, asked once per hook and remembered: Juju guarantees the answer for
    /// 30 s, and a unit that lost a claim stays a minion for the rest of the hook context.
    pub fn is_leader(&mut self) -> Result<bool, ToolError> {
        if let Some(l) = self.leader {
            return Ok(l);
        }
        let l: bool = self.json("is-leader", &["--format", "json"])?;
        self.leader = Some(l);
        Ok(l)
    }

    /// `leader-get --format json`: the whole leader-settings map.
    pub fn leader_get(&mut self) -> Result<Settings, ToolError> {
        let v: Option<Settings> = self.json("leader-get", &["--format", "json"])?;
        Ok(v.unwrap_or_default())
    }

    /// `leader-set key=value …` (leader only; applied at once, not deferred). An empty value unsets.
    pub fn leader_set(&mut self, settings: &Settings) -> Result<(), ToolError> {
        let pairs: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = vec!["--"];
        args.extend(pairs.iter().map(String::as_str));
        self.run("leader-set", &args, None).map(drop)
    }

    // ---- resources ----------------------------------------------------------------------------

    /// `resource-get <name>`: the path of the resource file. Juju prints it with no trailing newline.
    pub fn resource_get(&mut self, name: &str) -> Result<PathBuf, ToolError> {
        let out = self.run("resource-get", &["--", name], None)?;
        let text = String::from_utf8(out).map_err(|_| bad("resource-get", "path is not UTF-8"))?;
        let path = text.strip_suffix('\n').unwrap_or(&text);
        if path.is_empty() || path.contains('\n') || !path.starts_with('/') {
            return Err(bad("resource-get", &format!("expected one absolute path, got {path:?}")));
        }
        Ok(PathBuf::from(path))
    }

    // ---- status and logging -------------------------------------------------------------------

    /// `status-set <state> <message>` for this unit.
    pub fn status_set(&mut self, status: Status, message: &str) -> Result<(), ToolError> {
        self.run("status-set", &["--", status.as_str(), message], None).map(drop)
    }

    /// `status-set --application <state> <message>` (leader only).
    pub fn application_status_set(&mut self, status: Status, message: &str) -> Result<(), ToolError> {
        self.run("status-set", &["--application", "--", status.as_str(), message], None).map(drop)
    }

    /// `status-get --include-data --format json`: this unit's (status, message).
    pub fn status_get(&mut self) -> Result<(String, String), ToolError> {
        let v: Value = self.json("status-get", &["--include-data", "--format", "json"])?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        match field("status") {
            Some(s) => Ok((s, field("message").unwrap_or_default())),
            None => Err(bad("status-get", "no \"status\" key in its JSON")),
        }
    }

    /// `juju-log -l <LEVEL> -- <message>`.
    pub fn log(&mut self, level: LogLevel, message: &str) -> Result<(), ToolError> {
        self.run("juju-log", &["-l", level.as_str(), "--", message], None).map(drop)
    }

    /// `application-version-set -- <version>` (applied at once).
    pub fn application_version_set(&mut self, version: &str) -> Result<(), ToolError> {
        self.run("application-version-set", &["--", version], None).map(drop)
    }

    // ---- pod spec -----------------------------------------------------------------------------

    /// `pod-spec-set` with the YAML spec on stdin (leader only; committed only if the hook succeeds).
    pub fn pod_spec_set(&mut self, spec_yaml: &str) -> Result<(), ToolError> {
        self.run("pod-spec-set", &[], Some(spec_yaml.as_bytes())).map(drop)
    }

    /// `k8s-spec-set`: the 2.8+ name of the same tool.
    pub fn k8s_spec_set(&mut self, spec_yaml: &str) -> Result<(), ToolError> {
        self.run("k8s-spec-set", &[], Some(spec_yaml.as_bytes())).map(drop)
    }

    // ---- network ------------------------------------------------------------------------------

    /// `network-get <binding> --ingress-address --format json`: this unit's ingress address.
    pub fn ingress_address(&mut self, binding: &str) -> Result<String, ToolError> {
        let v: Value = self.json("network-get", &[binding, "--ingress-address", "--format", "json"])?;
        match v {
            Value::String(s) if !s.is_empty() => Ok(s),
            // A list is what several selector flags would give; take the first address.
            Value::Array(a) => a
                .first()
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| bad("network-get", "empty ingress address list")),
            other => Err(bad("network-get", &format!("expected an address, got {other}"))),
        }
    }

    // ---- relations ----------------------------------------------------------------------------

    /// `relation-ids --format json <endpoint>`: ids like `db:3`, sorted by Juju. Juju names each
    /// `<endpoint>:<id>` (`state/relation.go`, the relation key of this side's endpoint); anything else is
    /// refused here, naming this tool, rather than passed on to fail the next tool that is given it.
    pub fn relation_ids(&mut self, endpoint: &str) -> Result<Vec<String>, ToolError> {
        let v: Option<Vec<String>> = self.json("relation-ids", &["--format", "json", "--", endpoint])?;
        let ids = v.unwrap_or_default();
        let well_formed = |id: &String| {
            id.strip_prefix(endpoint)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|n| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
        };
        match ids.iter().find(|id| !well_formed(id)) {
            Some(bad_id) => {
                let shown: String = bad_id.escape_debug().take(40).collect();
                Err(bad("relation-ids", &format!("\"{shown}\" is not a relation id of {endpoint}")))
            }
            None => Ok(ids),
        }
    }

    /// `relation-list --format json -r <id>`: remote unit names.
    pub fn relation_list(&mut self, relation_id: &str) -> Result<Vec<String>, ToolError> {
        let v: Option<Vec<String>> = self.json("relation-list", &["--format", "json", "-r", relation_id])?;
        Ok(v.unwrap_or_default())
    }

    /// `relation-get --format json -r <id> - <unit>`: one unit's settings.
    pub fn relation_get(&mut self, relation_id: &str, unit: &str) -> Result<Settings, ToolError> {
        let v: Option<Settings> = self.json("relation-get", &["--format", "json", "-r", relation_id, "-", unit])?;
        Ok(v.unwrap_or_default())
    }

    /// `relation-get --app --format json -r <id> - <app>`: an application bag.
    pub fn relation_get_app(&mut self, relation_id: &str, app: &str) -> Result<Settings, ToolError> {
        let v: Option<Settings> =
            self.json("relation-get", &["--app", "--format", "json", "-r", relation_id, "-", app])?;
        Ok(v.unwrap_or_default())
    }

    /// `relation-set -r <id> [--app] --file -` with the settings as YAML on stdin, so values (a password)
    /// never reach argv. An empty value deletes the key. Deferred until the hook succeeds.
    pub fn relation_set(&mut self, relation_id: &str, settings: &Settings, app: bool) -> Result<(), ToolError> {
        let body = yaml_map(settings);
        let mut args = vec!["-r", relation_id];
        if app {
            args.push("--app");
        }
        args.extend(["--file", "-"]);
        self.run("relation-set", &args, Some(body.as_bytes())).map(drop)
    }

    // ---- charm state (2.8+) -------------------------------------------------------------------

    /// `state-get --format json`: the unit's whole controller-side state map.
    pub fn state_get_all(&mut self) -> Result<Settings, ToolError> {
        let v: Option<Settings> = self.json("state-get", &["--format", "json"])?;
        Ok(v.unwrap_or_default())
    }

    /// `state-get --format json <key>`: one value, `None` when missing.
    pub fn state_get(&mut self, key: &str) -> Result<Option<String>, ToolError> {
        let v: Option<String> = self.json("state-get", &["--format", "json", "--", key])?;
        Ok(v.filter(|s| !s.is_empty()))
    }

    /// `state-set --file -` with a YAML map on stdin (values can be large and private). Deferred.
    pub fn state_set(&mut self, values: &Settings) -> Result<(), ToolError> {
        let body = yaml_map(values);
        self.run("state-set", &["--file", "-"], Some(body.as_bytes())).map(drop)
    }

    /// `state-delete -- <key>`. Deferred; deleting a missing key is a no-op.
    pub fn state_delete(&mut self, key: &str) -> Result<(), ToolError> {
        self.run("state-delete", &["--", key], None).map(drop)
    }

    // ---- actions ------------------------------------------------------------------------------

    /// `action-get --format json`: the action's parameters.
    pub fn action_get(&mut self) -> Result<Map<String, Value>, ToolError> {
        let v: Option<Map<String, Value>> = self.json("action-get", &["--format", "json"])?;
        Ok(v.unwrap_or_default())
    }

    /// `action-set key=value …`. Values reach argv: never pass a secret that must not.
    pub fn action_set(&mut self, results: &Settings) -> Result<(), ToolError> {
        let pairs: Vec<String> = results.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = vec!["--"];
        args.extend(pairs.iter().map(String::as_str));
        self.run("action-set", &args, None).map(drop)
    }

    /// `action-fail -- <message>`.
    pub fn action_fail(&mut self, message: &str) -> Result<(), ToolError> {
        self.run("action-fail", &["--", message], None).map(drop)
    }
}

fn bad(tool: &str, detail: &str) -> ToolError {
    ToolError::BadOutput { tool: tool.to_string(), detail: detail.to_string() }
}

/// Parses a tool's `--format json` output, naming the tool when it is not what the contract says.
pub fn parse_json<T: DeserializeOwned>(tool: &str, out: &[u8]) -> Result<T, ToolError> {
    let text = std::str::from_utf8(out).map_err(|_| bad(tool, "output is not UTF-8"))?;
    serde_json::from_str(text.trim_end()).map_err(|e| bad(tool, &format!("malformed JSON ({e})")))
}

/// A string map as YAML that any YAML parser reads back to the same strings: JSON is a subset of YAML,
/// and JSON string escaping keeps every value (multi-line, leading dashes, `yes`/`no`) a plain string.
fn yaml_map(values: &Settings) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_map_keeps_tricky_strings_as_strings() {
        let mut m = Settings::new();
        m.insert("a".into(), "yes".into());
        m.insert("b".into(), "-x\nmulti".into());
        m.insert("c".into(), "6379".into());
        let y = yaml_map(&m);
        let back: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(&y).unwrap();
        assert_eq!(back["a"], serde_yaml::Value::String("yes".into()));
        assert_eq!(back["b"], serde_yaml::Value::String("-x\nmulti".into()));
        assert_eq!(back["c"], serde_yaml::Value::String("6379".into()));
    }

    #[test]
    fn parse_json_names_the_tool() {
        let e = parse_json::<bool>("is-leader", b"maybe").unwrap_err();
        assert!(e.to_string().starts_with("is-leader gave unusable output: malformed JSON"));
        let e = parse_json::<bool>("is-leader", &[0xff, 0xfe]).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"));
    }
}
