//! Layers and the plan (canonical/pebble `internals/plan/plan.go`): parsing a layer's YAML with Pebble's field
//! set and validation (`ParseLayer`, `Layer.Validate`), combining layers by `override: merge|replace`
//! (`CombineLayers`, `Service.Merge`, `Check.Merge`) with Pebble's defaults, validating the combined plan
//! (`Plan.Validate`), the start and stop order in lanes (`StartOrder`, `StopOrder`, `createLanes`), reading
//! `$PEBBLE/layers` (`ReadLayersDir`), and printing the plan as `GET /v1/plan?format=yaml` shows it (yaml.v3,
//! four-space indent, fields in the Go structs' order, empty ones left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::golib::{format_duration, parse_duration, quote, shlex_split};

/// `defaultBackoffDelay`, `defaultBackoffFactor`, `defaultBackoffLimit` (plan.go).
pub const DEFAULT_BACKOFF_DELAY: Duration = Duration::from_millis(500);
pub const DEFAULT_BACKOFF_FACTOR: f64 = 2.0;
pub const DEFAULT_BACKOFF_LIMIT: Duration = Duration::from_secs(30);
/// `defaultCheckPeriod`, `defaultCheckTimeout`, `defaultCheckThreshold` (plan.go).
pub const DEFAULT_CHECK_PERIOD: Duration = Duration::from_secs(10);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_CHECK_THRESHOLD: i64 = 3;

/// `plan.OptionalDuration`: a value and whether the layer set it (only a set one is printed).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OptDuration {
    pub value: Duration,
    pub is_set: bool,
}

/// `plan.OptionalFloat`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OptFloat {
    pub value: f64,
    pub is_set: bool,
}

/// `plan.Service`. Equality is Go's `reflect.DeepEqual`, which is what replan compares (`Service.Equal`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Service {
    pub name: String,
    pub summary: String,
    pub description: String,
    pub startup: String,
    pub override_: String,
    pub command: String,
    pub after: Vec<String>,
    pub before: Vec<String>,
    pub requires: Vec<String>,
    pub workload: String,
    pub environment: Option<BTreeMap<String, String>>,
    pub user_id: Option<i64>,
    pub user: String,
    pub group_id: Option<i64>,
    pub group: String,
    pub working_dir: String,
    pub on_success: String,
    pub on_failure: String,
    pub on_check_failure: Option<BTreeMap<String, String>>,
    pub backoff_delay: OptDuration,
    pub backoff_factor: OptFloat,
    pub backoff_limit: OptDuration,
    pub kill_delay: OptDuration,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpCheck {
    pub url: String,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TcpCheck {
    pub port: i64,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecCheck {
    pub command: String,
    pub service_context: String,
    pub environment: Option<BTreeMap<String, String>>,
    pub user_id: Option<i64>,
    pub user: String,
    pub group_id: Option<i64>,
    pub group: String,
    pub working_dir: String,
}

/// `plan.Check`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Check {
    pub name: String,
    pub override_: String,
    pub level: String,
    pub startup: String,
    pub period: OptDuration,
    pub timeout: OptDuration,
    pub threshold: i64,
    pub http: Option<HttpCheck>,
    pub tcp: Option<TcpCheck>,
    pub exec: Option<ExecCheck>,
}

/// `plan.Layer`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layer {
    pub order: i64,
    pub label: String,
    pub summary: String,
    pub description: String,
    pub services: BTreeMap<String, Service>,
    pub checks: BTreeMap<String, Check>,
}

/// `plan.Plan`: the layers in order and what they combine to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub layers: Vec<Layer>,
    pub services: BTreeMap<String, Service>,
    pub checks: BTreeMap<String, Check>,
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing (ParseLayer): yaml.v3 with KnownFields, so an unknown field is an error, as in Pebble.

/// Decodes one struct's fields, refusing any field the Go struct does not have.
struct Fields<'a> {
    ty: &'static str,
    map: &'a Mapping,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, ty: &'static str) -> Result<Option<Fields<'a>>, String> {
        match value {
            Value::Null => Ok(None),
            Value::Mapping(map) => Ok(Some(Fields { ty, map })),
            other => Err(format!("yaml: unmarshal errors:\n  cannot unmarshal {} into {ty}", kind(other))),
        }
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        for key in self.map.keys() {
            let name = scalar_text(key).unwrap_or_default();
            if !known.contains(&name.as_str()) {
                return Err(format!("yaml: unmarshal errors:\n  field {name} not found in type {}", self.ty));
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<String, String> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(v) => scalar_text(v).ok_or_else(|| self.cannot(v, "string")),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(v) => Err(self.cannot(v, "int")),
        }
    }

    fn list(&self, key: &str) -> Result<Vec<String>, String> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Sequence(items)) => {
                items.iter().map(|v| scalar_text(v).ok_or_else(|| self.cannot(v, "string"))).collect()
            }
            Some(v) => Err(self.cannot(v, "[]string")),
        }
    }

    fn string_map(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Mapping(m)) => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    let k = scalar_text(k).ok_or_else(|| self.cannot(k, "string"))?;
                    let v = if v.is_null() {
                        String::new()
                    } else {
                        scalar_text(v).ok_or_else(|| self.cannot(v, "string"))?
                    };
                    out.insert(k, v);
                }
                Ok(Some(out))
            }
            Some(v) => Err(self.cannot(v, "map[string]string")),
        }
    }

    /// `OptionalDuration.UnmarshalYAML`.
    fn duration(&self, key: &str) -> Result<OptDuration, String> {
        match self.get(key) {
            None => Ok(OptDuration::default()),
            Some(v) => {
                let Some(text) = scalar_text(v) else { return Err("duration must be a YAML string".into()) };
                match parse_duration(&text) {
                    Ok(value) => Ok(OptDuration { value, is_set: true }),
                    Err(_) => Err(format!("invalid duration {}", quote(&text))),
                }
            }
        }
    }

    /// `OptionalFloat.UnmarshalYAML`.
    fn float(&self, key: &str) -> Result<OptFloat, String> {
        match self.get(key) {
            None => Ok(OptFloat::default()),
            Some(v) => {
                let Some(text) = scalar_text(v) else { return Err("value must be a YAML number".into()) };
                match text.parse::<f64>() {
                    Ok(value) => Ok(OptFloat { value, is_set: true }),
                    Err(_) => Err(format!("invalid floating-point number {}", quote(&text))),
                }
            }
        }
    }

    fn cannot(&self, v: &Value, into: &str) -> String {
        format!(
            "yaml: unmarshal errors:\n  cannot unmarshal {} into Go struct field {} of type {into}",
            kind(v),
            self.ty
        )
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "!!null",
        Value::Bool(_) => "!!bool",
        Value::Number(n) if n.is_f64() => "!!float",
        Value::Number(_) => "!!int",
        Value::String(_) => "!!str",
        Value::Sequence(_) => "!!seq",
        Value::Mapping(_) => "!!map",
        Value::Tagged(_) => "!!tagged",
    }
}

/// A scalar decoded into a Go string field: yaml.v3 takes a number's or a bool's text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_service(name: &str, value: &Value) -> Result<Option<Service>, String> {
    let Some(f) = Fields::new(value, "plan.Service")? else { return Ok(None) };
    f.check_known(&[
        "summary",
        "description",
        "startup",
        "override",
        "command",
        "after",
        "before",
        "requires",
        "workload",
        "environment",
        "user-id",
        "user",
        "group-id",
        "group",
        "working-dir",
        "on-success",
        "on-failure",
        "on-check-failure",
        "backoff-delay",
        "backoff-factor",
        "backoff-limit",
        "kill-delay",
    ])?;
    Ok(Some(Service {
        name: name.to_string(),
        summary: f.string("summary")?,
        description: f.string("description")?,
        startup: f.string("startup")?,
        override_: f.string("override")?,
        command: f.string("command")?,
        after: f.list("after")?,
        before: f.list("before")?,
        requires: f.list("requires")?,
        workload: f.string("workload")?,
        environment: f.string_map("environment")?,
        user_id: f.int("user-id")?,
        user: f.string("user")?,
        group_id: f.int("group-id")?,
        group: f.string("group")?,
        working_dir: f.string("working-dir")?,
        on_success: f.string("on-success")?,
        on_failure: f.string("on-failure")?,
        on_check_failure: f.string_map("on-check-failure")?,
        backoff_delay: f.duration("backoff-delay")?,
        backoff_factor: f.float("backoff-factor")?,
        backoff_limit: f.duration("backoff-limit")?,
        kill_delay: f.duration("kill-delay")?,
    }))
}

fn parse_check(name: &str, value: &Value) -> Result<Option<Check>, String> {
    let Some(f) = Fields::new(value, "plan.Check")? else { return Ok(None) };
    f.check_known(&["override", "level", "startup", "period", "timeout", "threshold", "http", "tcp", "exec"])?;
    let http = match f.get("http") {
        None => None,
        Some(v) => match Fields::new(v, "plan.HTTPCheck")? {
            None => None,
            Some(h) => {
                h.check_known(&["url", "headers"])?;
                Some(HttpCheck { url: h.string("url")?, headers: h.string_map("headers")? })
            }
        },
    };
    let tcp = match f.get("tcp") {
        None => None,
        Some(v) => match Fields::new(v, "plan.TCPCheck")? {
            None => None,
            Some(t) => {
                t.check_known(&["port", "host"])?;
                Some(TcpCheck { port: t.int("port")?.unwrap_or(0), host: t.string("host")? })
            }
        },
    };
    let exec = match f.get("exec") {
        None => None,
        Some(v) => match Fields::new(v, "plan.ExecCheck")? {
            None => None,
            Some(e) => {
                e.check_known(&[
                    "command",
                    "service-context",
                    "environment",
                    "user-id",
                    "user",
                    "group-id",
                    "group",
                    "working-dir",
                ])?;
                Some(ExecCheck {
                    command: e.string("command")?,
                    service_context: e.string("service-context")?,
                    environment: e.string_map("environment")?,
                    user_id: e.int("user-id")?,
                    user: e.string("user")?,
                    group_id: e.int("group-id")?,
                    group: e.string("group")?,
                    working_dir: e.string("working-dir")?,
                })
            }
        },
    };
    Ok(Some(Check {
        name: name.to_string(),
        override_: f.string("override")?,
        level: f.string("level")?,
        startup: f.string("startup")?,
        period: f.duration("period")?,
        timeout: f.duration("timeout")?,
        threshold: f.int("threshold")?.unwrap_or(0),
        http,
        tcp,
        exec,
    }))
}

fn format_error(label: &str, section: &str, e: String) -> String {
    format!("cannot parse layer {} section {}: {e}", quote(label), quote(section))
}

/// `plan.ParseLayer`: decodes and validates one layer. Every error is a `FormatError` in Pebble (400).
pub fn parse_layer(order: i64, label: &str, yaml: &str) -> Result<Layer, String> {
    let doc: Value = if yaml.trim().is_empty() {
        Value::Null
    } else {
        serde_yaml::from_str(yaml).map_err(|e| format!("cannot parse layer {}: yaml: {e}", quote(label)))?
    };
    let top = match &doc {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m.clone(),
        other => {
            return Err(format!(
                "cannot parse layer {}: yaml: unmarshal errors:\n  cannot unmarshal {} into map[string]yaml.Node",
                quote(label),
                kind(other)
            ));
        }
    };
    let mut layer = Layer { order, label: label.to_string(), ..Layer::default() };
    // Null services (`name:` with nothing) are kept as None so Validate can refuse them by name.
    let mut null_services = BTreeSet::new();
    let mut null_checks = BTreeSet::new();
    for (key, value) in &top {
        let field = scalar_text(key).unwrap_or_default();
        match field.as_str() {
            "summary" | "description" => {
                let text = match value {
                    Value::Null => String::new(),
                    v => scalar_text(v).ok_or_else(|| {
                        format_error(label, &field, format!("cannot unmarshal {} into string", kind(v)))
                    })?,
                };
                if field == "summary" {
                    layer.summary = text;
                } else {
                    layer.description = text;
                }
            }
            "services" | "checks" => {
                let entries = match value {
                    Value::Null => Mapping::new(),
                    Value::Mapping(m) => m.clone(),
                    v => {
                        return Err(format_error(
                            label,
                            &field,
                            format!("yaml: unmarshal errors:\n  cannot unmarshal {} into map", kind(v)),
                        ));
                    }
                };
                for (name, body) in &entries {
                    let name = scalar_text(name).unwrap_or_default();
                    if field == "services" {
                        match parse_service(&name, body).map_err(|e| format_error(label, &field, e))? {
                            Some(s) => {
                                layer.services.insert(name, s);
                            }
                            None => {
                                null_services.insert(name);
                            }
                        }
                    } else {
                        match parse_check(&name, body).map_err(|e| format_error(label, &field, e))? {
                            Some(c) => {
                                layer.checks.insert(name, c);
                            }
                            None => {
                                null_checks.insert(name);
                            }
                        }
                    }
                }
            }
            // The stand-in does not forward logs: refusing the section is stricter than Pebble, never kinder.
            "log-targets" => {
                return Err(format!(
                    "cannot parse layer {}: log-targets are not supported by juju-local's Pebble",
                    quote(label)
                ));
            }
            _ => return Err(format!("cannot parse layer {}: unknown section {}", quote(label), quote(&field))),
        }
    }
    validate_layer(&layer, &null_services, &null_checks)?;
    Ok(layer)
}

fn valid_action(action: &str, extra: &str) -> bool {
    matches!(action, "" | "restart" | "shutdown" | "ignore") || action == extra
}

/// `Layer.Validate`.
fn validate_layer(
    layer: &Layer,
    null_services: &BTreeSet<String>,
    null_checks: &BTreeSet<String>,
) -> Result<(), String> {
    if layer.label.starts_with("pebble-") {
        return Err(r#"cannot use reserved label prefix "pebble-""#.into());
    }
    let names: BTreeSet<&String> = layer.services.keys().chain(null_services.iter()).collect();
    for name in names {
        if name.is_empty() {
            return Err("cannot use empty string as service name".into());
        }
        if name == "pebble" {
            return Err(format!("cannot use reserved service name {}", quote(name)));
        }
        if name.starts_with('-') {
            return Err(format!(r#"cannot use service name {}: starting with "-" not allowed"#, quote(name)));
        }
        let Some(service) = layer.services.get(name) else {
            return Err(format!("service object cannot be null for service {}", quote(name)));
        };
        if let Err(e) = parse_command(service) {
            return Err(format!("plan service {} command invalid: {e}", quote(name)));
        }
        if !valid_action(&service.on_success, "failure-shutdown") {
            return Err(format!(
                "plan service {} on-success action {} invalid",
                quote(name),
                quote(&service.on_success)
            ));
        }
        if !valid_action(&service.on_failure, "success-shutdown") {
            return Err(format!(
                "plan service {} on-failure action {} invalid",
                quote(name),
                quote(&service.on_failure)
            ));
        }
        for action in service.on_check_failure.iter().flat_map(|m| m.values()) {
            if !valid_action(action, "success-shutdown") {
                return Err(format!("plan service {} on-check-failure action {} invalid", quote(name), quote(action)));
            }
        }
        if service.backoff_factor.is_set && service.backoff_factor.value < 1.0 {
            return Err(format!(
                "plan service {} backoff-factor must be 1.0 or greater, not {}",
                quote(name),
                service.backoff_factor.value
            ));
        }
        // The stand-in runs every service as itself: a user or group Pebble would switch to is refused.
        if service.user_id.is_some()
            || !service.user.is_empty()
            || service.group_id.is_some()
            || !service.group.is_empty()
        {
            return Err(format!(
                "plan service {}: user and group are not supported by juju-local's Pebble",
                quote(name)
            ));
        }
        if !service.workload.is_empty() {
            return Err(format!("plan service {}: workloads are not supported by juju-local's Pebble", quote(name)));
        }
    }
    let names: BTreeSet<&String> = layer.checks.keys().chain(null_checks.iter()).collect();
    for name in names {
        if name.is_empty() {
            return Err("cannot use empty string as check name".into());
        }
        let Some(check) = layer.checks.get(name) else {
            return Err(format!("check object cannot be null for check {}", quote(name)));
        };
        if !matches!(check.level.as_str(), "" | "alive" | "ready") {
            return Err(format!(r#"plan check {} level must be "alive" or "ready""#, quote(name)));
        }
        if !matches!(check.startup.as_str(), "" | "enabled" | "disabled") {
            return Err(format!(r#"plan check {} startup must be "enabled" or "disabled""#, quote(name)));
        }
        if check.period.is_set && check.period.value.is_zero() {
            return Err(format!("plan check {} period must not be zero", quote(name)));
        }
        if check.timeout.is_set && check.timeout.value.is_zero() {
            return Err(format!("plan check {} timeout must not be zero", quote(name)));
        }
        if let Some(exec) = &check.exec {
            if let Err(e) = shlex_split(&exec.command) {
                return Err(format!("plan check {} command invalid: {e}", quote(name)));
            }
            if exec.user_id.is_some() || !exec.user.is_empty() || exec.group_id.is_some() || !exec.group.is_empty() {
                return Err(format!(
                    "plan check {}: user and group are not supported by juju-local's Pebble",
                    quote(name)
                ));
            }
        }
    }
    Ok(())
}

/// `Service.ParseCommand`: the base command and the default arguments of a trailing `[ … ]` group.
pub fn parse_command(service: &Service) -> Result<(Vec<String>, Vec<String>), String> {
    let wrap = |e: String| format!("cannot parse service {} command: {e}", quote(&service.name));
    let args = shlex_split(&service.command).map_err(wrap)?;
    let (mut base, mut extra) = (Vec::new(), Vec::new());
    let (mut in_brackets, mut got_brackets) = (false, false);
    for (i, arg) in args.into_iter().enumerate() {
        if in_brackets {
            if arg == "[" {
                return Err(wrap("cannot nest [ ... ] groups".into()));
            }
            if arg == "]" {
                in_brackets = false;
                continue;
            }
            extra.push(arg);
            continue;
        }
        if got_brackets {
            return Err(wrap("cannot have any arguments after [ ... ] group".into()));
        }
        if arg == "[" {
            if i == 0 {
                return Err(wrap("cannot start command with [ ... ] group".into()));
            }
            in_brackets = true;
            got_brackets = true;
            continue;
        }
        if arg == "]" {
            return Err(wrap("cannot have ] outside of [ ... ] group".into()));
        }
        base.push(arg);
    }
    Ok((base, extra))
}

// ---------------------------------------------------------------------------------------------------------------
// Combining (CombineLayers, Merge) and the plan's own validation.

fn merge_map(into: &mut Option<BTreeMap<String, String>>, from: &Option<BTreeMap<String, String>>) {
    for (k, v) in from.iter().flatten() {
        into.get_or_insert_with(BTreeMap::new).insert(k.clone(), v.clone());
    }
}

fn set_if(into: &mut String, from: &str) {
    if !from.is_empty() {
        *into = from.to_string();
    }
}

/// `Service.Merge`: fields set in `other` win, `after`/`before`/`requires` append, maps merge key by key.
fn merge_service(s: &mut Service, other: &Service) {
    set_if(&mut s.summary, &other.summary);
    set_if(&mut s.description, &other.description);
    set_if(&mut s.startup, &other.startup);
    set_if(&mut s.command, &other.command);
    if other.kill_delay.is_set {
        s.kill_delay = other.kill_delay;
    }
    if other.user_id.is_some() {
        s.user_id = other.user_id;
    }
    set_if(&mut s.user, &other.user);
    if other.group_id.is_some() {
        s.group_id = other.group_id;
    }
    set_if(&mut s.group, &other.group);
    set_if(&mut s.working_dir, &other.working_dir);
    s.after.extend(other.after.iter().cloned());
    s.before.extend(other.before.iter().cloned());
    s.requires.extend(other.requires.iter().cloned());
    set_if(&mut s.workload, &other.workload);
    merge_map(&mut s.environment, &other.environment);
    set_if(&mut s.on_success, &other.on_success);
    set_if(&mut s.on_failure, &other.on_failure);
    merge_map(&mut s.on_check_failure, &other.on_check_failure);
    if other.backoff_delay.is_set {
        s.backoff_delay = other.backoff_delay;
    }
    if other.backoff_factor.is_set {
        s.backoff_factor = other.backoff_factor;
    }
    if other.backoff_limit.is_set {
        s.backoff_limit = other.backoff_limit;
    }
}

/// `Check.Merge` (with `HTTPCheck.Merge`, `TCPCheck.Merge`, `ExecCheck.Merge`).
fn merge_check(c: &mut Check, other: &Check) {
    set_if(&mut c.level, &other.level);
    set_if(&mut c.startup, &other.startup);
    if other.period.is_set {
        c.period = other.period;
    }
    if other.timeout.is_set {
        c.timeout = other.timeout;
    }
    if other.threshold != 0 {
        c.threshold = other.threshold;
    }
    if let Some(o) = &other.http {
        let h = c.http.get_or_insert_with(HttpCheck::default);
        set_if(&mut h.url, &o.url);
        merge_map(&mut h.headers, &o.headers);
    }
    if let Some(o) = &other.tcp {
        let t = c.tcp.get_or_insert_with(TcpCheck::default);
        if o.port != 0 {
            t.port = o.port;
        }
        set_if(&mut t.host, &o.host);
    }
    if let Some(o) = &other.exec {
        let e = c.exec.get_or_insert_with(ExecCheck::default);
        set_if(&mut e.command, &o.command);
        set_if(&mut e.service_context, &o.service_context);
        merge_map(&mut e.environment, &o.environment);
        if o.user_id.is_some() {
            e.user_id = o.user_id;
        }
        set_if(&mut e.user, &o.user);
        if o.group_id.is_some() {
            e.group_id = o.group_id;
        }
        set_if(&mut e.group, &o.group);
        set_if(&mut e.working_dir, &o.working_dir);
    }
}

/// One layer's services (or checks) over the combined ones, per each entry's `override`: `merge` into an
/// existing entry, `replace` it; anything else is `CombineLayers`' error for the `kind` of entry.
fn combine_entries<T: Clone>(
    combined: &mut BTreeMap<String, T>,
    entries: &BTreeMap<String, T>,
    label: &str,
    kind: &str,
    override_of: impl Fn(&T) -> &String,
    merge: impl Fn(&mut T, &T),
) -> Result<(), String> {
    for (name, entry) in entries {
        match override_of(entry).as_str() {
            "merge" => match combined.get_mut(name) {
                Some(old) => merge(old, entry),
                None => {
                    combined.insert(name.clone(), entry.clone());
                }
            },
            "replace" => {
                combined.insert(name.clone(), entry.clone());
            }
            "" => return Err(format!(r#"layer {} must define "override" for {kind} {}"#, quote(label), quote(name))),
            _ => {
                return Err(format!(
                    r#"layer {} has invalid "override" value for {kind} {}"#,
                    quote(label),
                    quote(name)
                ));
            }
        }
    }
    Ok(())
}

/// `plan.CombineLayers`: later layers override earlier ones per `override`; every service and check of every
/// layer must say `override: merge` or `override: replace`. Defaults are filled in (not marked as set).
pub fn combine_layers(layers: &[Layer]) -> Result<Layer, String> {
    let mut combined = Layer::default();
    let Some(last) = layers.last() else { return Ok(combined) };
    combined.summary = last.summary.clone();
    combined.description = last.description.clone();
    for layer in layers {
        combine_entries(
            &mut combined.services,
            &layer.services,
            &layer.label,
            "service",
            |s| &s.override_,
            merge_service,
        )?;
        combine_entries(&mut combined.checks, &layer.checks, &layer.label, "check", |c| &c.override_, merge_check)?;
    }
    for service in combined.services.values_mut() {
        if !service.backoff_delay.is_set {
            service.backoff_delay.value = DEFAULT_BACKOFF_DELAY;
        }
        if !service.backoff_factor.is_set {
            service.backoff_factor.value = DEFAULT_BACKOFF_FACTOR;
        }
        if !service.backoff_limit.is_set {
            service.backoff_limit.value = DEFAULT_BACKOFF_LIMIT;
        }
    }
    for check in combined.checks.values_mut() {
        if !check.period.is_set {
            check.period.value = DEFAULT_CHECK_PERIOD;
        }
        if !check.timeout.is_set {
            check.timeout.value = DEFAULT_CHECK_TIMEOUT;
        }
        if check.timeout.value > check.period.value {
            check.timeout.value = check.period.value;
        }
        if check.threshold == 0 {
            check.threshold = DEFAULT_CHECK_THRESHOLD;
        }
    }
    Ok(combined)
}

impl Plan {
    /// `PlanManager.updatePlanLayers`: combines `layers` and validates the result (`Plan.Validate`).
    pub fn from_layers(layers: Vec<Layer>) -> Result<Plan, String> {
        let combined = combine_layers(&layers)?;
        let plan = Plan { layers, services: combined.services, checks: combined.checks };
        plan.validate()?;
        Ok(plan)
    }

    /// `Plan.Validate`.
    fn validate(&self) -> Result<(), String> {
        for (name, service) in &self.services {
            if service.command.is_empty() {
                return Err(format!(r#"plan must define "command" for service {}"#, quote(name)));
            }
        }
        for (name, check) in &self.checks {
            let mut types = 0;
            if let Some(h) = &check.http {
                if h.url.is_empty() {
                    return Err(format!(r#"plan must set "url" for http check {}"#, quote(name)));
                }
                types += 1;
            }
            if let Some(t) = &check.tcp {
                if t.port == 0 {
                    return Err(format!(r#"plan must set "port" for tcp check {}"#, quote(name)));
                }
                types += 1;
            }
            if let Some(e) = &check.exec {
                if e.command.is_empty() {
                    return Err(format!(r#"plan must set "command" for exec check {}"#, quote(name)));
                }
                if !e.service_context.is_empty() && !self.services.contains_key(&e.service_context) {
                    return Err(format!(
                        "plan check {} service context specifies non-existent service {}",
                        quote(name),
                        quote(&e.service_context)
                    ));
                }
                types += 1;
            }
            if types != 1 {
                return Err(format!(r#"plan must specify one of "http", "tcp", or "exec" for check {}"#, quote(name)));
            }
        }
        let all: Vec<String> = self.services.keys().cloned().collect();
        self.order(&all, false).map(|_| ())
    }

    /// `PlanManager.AppendLayer`/`appendLayer` for a label without a sub-directory: the layer goes last, with
    /// the next order (`+1000`). A label already there is refused (`LabelExists`).
    pub fn append_layer(&self, mut layer: Layer) -> Result<Plan, String> {
        if self.layers.iter().any(|l| l.label == layer.label) {
            return Err(format!("layer {} already exists", quote(&layer.label)));
        }
        if layer.label.contains('/') {
            return Err("juju-local's Pebble does not support sub-directory layer labels".into());
        }
        layer.order = self.layers.last().map(|l| (l.order / 1000 + 1) * 1000).unwrap_or(1000);
        let mut layers = self.layers.clone();
        layers.push(layer);
        Plan::from_layers(layers)
    }

    /// `PlanManager.CombineLayer`: combines `layer` into the one with its label (keeping that one's order), or
    /// appends it when there is none.
    pub fn combine_layer(&self, layer: Layer) -> Result<Plan, String> {
        let Some(index) = self.layers.iter().position(|l| l.label == layer.label) else {
            return self.append_layer(layer);
        };
        let found = &self.layers[index];
        let mut combined = combine_layers(&[found.clone(), layer])?;
        combined.order = found.order;
        combined.label = found.label.clone();
        // CombineLayers filled in defaults; the stored layer keeps them unset, as Go's IsSet stays false.
        for s in combined.services.values_mut() {
            if !s.backoff_delay.is_set {
                s.backoff_delay.value = Duration::ZERO;
            }
            if !s.backoff_factor.is_set {
                s.backoff_factor.value = 0.0;
            }
            if !s.backoff_limit.is_set {
                s.backoff_limit.value = Duration::ZERO;
            }
        }
        let mut layers = self.layers.clone();
        layers[index] = combined;
        Plan::from_layers(layers)
    }

    /// `order` (plan.go): the named services and what they require (for a stop: what requires them), sorted so
    /// that `after`/`before` hold; a loop is an error.
    fn order(&self, names: &[String], stop: bool) -> Result<Vec<String>, String> {
        let missing = |name: &str| format!("service {} does not exist", quote(name));
        let mut predecessors: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        if stop {
            for (name, service) in &self.services {
                for req in &service.requires {
                    predecessors.entry(req.as_str()).or_default().push(name.as_str());
                }
            }
        }
        let mut successors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut pending: Vec<String> = names.to_vec();
        let mut i = 0;
        while i < pending.len() {
            let name = pending[i].clone();
            i += 1;
            if successors.contains_key(&name) {
                continue;
            }
            successors.insert(name.clone(), Vec::new());
            if stop {
                pending.extend(predecessors.get(name.as_str()).into_iter().flatten().map(|s| s.to_string()));
            } else {
                let service = self.services.get(&name).ok_or_else(|| missing(&name))?;
                pending.extend(service.requires.iter().cloned());
            }
        }
        let involved: Vec<String> = successors.keys().cloned().collect();
        for name in &involved {
            let service = self.services.get(name).ok_or_else(|| missing(name))?;
            let (after, before) =
                if stop { (&service.before, &service.after) } else { (&service.after, &service.before) };
            for a in after {
                if successors.contains_key(a) {
                    successors.get_mut(name).expect("present").push(a.clone());
                }
            }
            for b in before {
                if let Some(s) = successors.get_mut(b) {
                    s.push(name.clone());
                }
            }
        }
        // Depth-first, successors (what must come first) before the service itself; a back edge is a loop.
        let mut order = Vec::new();
        let mut state: BTreeMap<String, u8> = BTreeMap::new(); // 1 visiting, 2 done
        fn visit(
            name: &str,
            successors: &BTreeMap<String, Vec<String>>,
            state: &mut BTreeMap<String, u8>,
            stack: &mut Vec<String>,
            order: &mut Vec<String>,
        ) -> Result<(), String> {
            match state.get(name) {
                Some(2) => return Ok(()),
                Some(_) => {
                    let start = stack.iter().position(|s| s == name).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[start..].to_vec();
                    cycle.sort();
                    return Err(format!("services in before/after loop: {}", cycle.join(", ")));
                }
                None => {}
            }
            state.insert(name.to_string(), 1);
            stack.push(name.to_string());
            for next in successors.get(name).into_iter().flatten() {
                visit(next, successors, state, stack, order)?;
            }
            stack.pop();
            state.insert(name.to_string(), 2);
            order.push(name.to_string());
            Ok(())
        }
        for name in &involved {
            visit(name, &successors, &mut state, &mut Vec::new(), &mut order)?;
        }
        Ok(order)
    }

    /// `createLanes`: a service shares a lane with what it requires; otherwise each gets its own.
    fn lanes(&self, names: Vec<String>) -> Vec<Vec<String>> {
        let mut mapping: BTreeMap<String, usize> = BTreeMap::new();
        let mut lane: isize = -1;
        let mut max = 0usize;
        for name in &names {
            let service = &self.services[name];
            let chosen = if let Some(&l) = mapping.get(name) {
                l
            } else if let Some(l) = service.requires.iter().find_map(|r| mapping.get(r).copied()) {
                l
            } else {
                (lane + 1) as usize
            };
            mapping.insert(name.clone(), chosen);
            for r in &service.requires {
                mapping.insert(r.clone(), chosen);
            }
            lane = chosen as isize;
            max = max.max(chosen);
        }
        let mut lanes = vec![Vec::new(); if names.is_empty() { 0 } else { max + 1 }];
        for name in names {
            lanes[mapping[&name]].push(name);
        }
        lanes.retain(|l| !l.is_empty());
        lanes
    }

    /// `Plan.StartOrder`.
    pub fn start_order(&self, names: &[String]) -> Result<Vec<Vec<String>>, String> {
        let order = self.order(names, false)?;
        Ok(self.lanes(order))
    }

    /// `Plan.StopOrder`.
    pub fn stop_order(&self, names: &[String]) -> Result<Vec<Vec<String>>, String> {
        let order = self.order(names, true)?;
        Ok(self.lanes(order))
    }

    /// The plan as `GET /v1/plan?format=yaml` returns it (`yaml.Marshal(plan)`).
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        if !self.services.is_empty() {
            out.push_str("services:\n");
            for (name, s) in &self.services {
                out.push_str(&format!("{}{}:\n", indent(1), scalar(name)));
                service_yaml(&mut out, s, 2);
            }
        }
        if !self.checks.is_empty() {
            out.push_str("checks:\n");
            for (name, c) in &self.checks {
                out.push_str(&format!("{}{}:\n", indent(1), scalar(name)));
                check_yaml(&mut out, c, 2);
            }
        }
        if out.is_empty() { "{}\n".to_string() } else { out }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// YAML output in yaml.v3's layout.

fn indent(level: usize) -> String {
    "    ".repeat(level)
}

/// A scalar as yaml.v3 would print a string: plain when it reads back as the same string, else double-quoted.
fn scalar(s: &str) -> String {
    let reserved = ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ""];
    let lower = s.to_ascii_lowercase();
    let looks_numeric = s.parse::<f64>().is_ok() || s.starts_with("0x") || s.starts_with("0o");
    let special_start = s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c));
    let unsafe_inner = s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.ends_with(' ');
    let control = s.chars().any(|c| c.is_control());
    if reserved.contains(&lower.as_str()) || looks_numeric || special_start || unsafe_inner || control {
        quote(s)
    } else {
        s.to_string()
    }
}

fn kv(out: &mut String, level: usize, key: &str, value: &str) {
    out.push_str(&format!("{}{key}: {}\n", indent(level), value));
}

fn kv_str(out: &mut String, level: usize, key: &str, value: &str) {
    if !value.is_empty() {
        kv(out, level, key, &scalar(value));
    }
}

fn kv_list(out: &mut String, level: usize, key: &str, items: &[String]) {
    if !items.is_empty() {
        out.push_str(&format!("{}{key}:\n", indent(level)));
        for item in items {
            out.push_str(&format!("{}- {}\n", indent(level + 1), scalar(item)));
        }
    }
}

fn kv_map(out: &mut String, level: usize, key: &str, map: &Option<BTreeMap<String, String>>) {
    if let Some(map) = map.as_ref().filter(|m| !m.is_empty()) {
        out.push_str(&format!("{}{key}:\n", indent(level)));
        for (k, v) in map {
            out.push_str(&format!("{}{}: {}\n", indent(level + 1), scalar(k), scalar(v)));
        }
    }
}

fn kv_duration(out: &mut String, level: usize, key: &str, d: &OptDuration) {
    if d.is_set {
        kv(out, level, key, &format_duration(d.value));
    }
}

fn service_yaml(out: &mut String, s: &Service, l: usize) {
    kv_str(out, l, "summary", &s.summary);
    kv_str(out, l, "description", &s.description);
    kv_str(out, l, "startup", &s.startup);
    kv_str(out, l, "override", &s.override_);
    kv_str(out, l, "command", &s.command);
    kv_list(out, l, "after", &s.after);
    kv_list(out, l, "before", &s.before);
    kv_list(out, l, "requires", &s.requires);
    kv_str(out, l, "workload", &s.workload);
    kv_map(out, l, "environment", &s.environment);
    if let Some(id) = s.user_id {
        kv(out, l, "user-id", &id.to_string());
    }
    kv_str(out, l, "user", &s.user);
    if let Some(id) = s.group_id {
        kv(out, l, "group-id", &id.to_string());
    }
    kv_str(out, l, "group", &s.group);
    kv_str(out, l, "working-dir", &s.working_dir);
    kv_str(out, l, "on-success", &s.on_success);
    kv_str(out, l, "on-failure", &s.on_failure);
    kv_map(out, l, "on-check-failure", &s.on_check_failure);
    kv_duration(out, l, "backoff-delay", &s.backoff_delay);
    if s.backoff_factor.is_set {
        kv(out, l, "backoff-factor", &s.backoff_factor.value.to_string());
    }
    kv_duration(out, l, "backoff-limit", &s.backoff_limit);
    kv_duration(out, l, "kill-delay", &s.kill_delay);
    if out.ends_with(":\n") {
        // A service with no field set prints as `{}`.
        out.truncate(out.len() - 1);
        out.push_str(" {}\n");
    }
}

fn check_yaml(out: &mut String, c: &Check, l: usize) {
    kv_str(out, l, "override", &c.override_);
    kv_str(out, l, "level", &c.level);
    kv_str(out, l, "startup", &c.startup);
    kv_duration(out, l, "period", &c.period);
    kv_duration(out, l, "timeout", &c.timeout);
    if c.threshold != 0 {
        kv(out, l, "threshold", &c.threshold.to_string());
    }
    if let Some(h) = &c.http {
        out.push_str(&format!("{}http:\n", indent(l)));
        kv_str(out, l + 1, "url", &h.url);
        kv_map(out, l + 1, "headers", &h.headers);
    }
    if let Some(t) = &c.tcp {
        out.push_str(&format!("{}tcp:\n", indent(l)));
        if t.port != 0 {
            kv(out, l + 1, "port", &t.port.to_string());
        }
        kv_str(out, l + 1, "host", &t.host);
    }
    if let Some(e) = &c.exec {
        out.push_str(&format!("{}exec:\n", indent(l)));
        kv_str(out, l + 1, "command", &e.command);
        kv_str(out, l + 1, "service-context", &e.service_context);
        kv_map(out, l + 1, "environment", &e.environment);
        kv_str(out, l + 1, "working-dir", &e.working_dir);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// $PEBBLE/layers (ReadLayersDir, first level only).

/// `configEntryRegexp` for a file: `^([0-9]{3})-([a-z](?:-?[a-z0-9]){2,})\.yaml$`; the order and the label.
fn layer_file_name(name: &str) -> Option<(i64, String)> {
    let stem = name.strip_suffix(".yaml")?;
    let (digits, label) = stem.split_once('-')?;
    if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = label.as_bytes();
    if bytes.len() < 3 || !bytes[0].is_ascii_lowercase() || label.ends_with('-') || label.contains("--") {
        return None;
    }
    if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-') {
        return None;
    }
    if label.replace('-', "").len() < 3 {
        return None;
    }
    Some((digits.parse().ok()?, label.to_string()))
}

/// `plan.ReadDir`: the layers in `dir` (missing: none), ordered by their `NNN-` prefix, combined.
pub fn read_layers_dir(dir: &Path) -> Result<Plan, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Plan::default()),
        Err(e) => return Err(format!("cannot read layers directory: {e}")),
    };
    let mut found: Vec<(i64, String, std::path::PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            return Err(format!("juju-local's Pebble does not read layer sub-directories ({name:?})"));
        }
        if !name.ends_with(".yaml") {
            continue;
        }
        let Some((order, label)) = layer_file_name(&name) else {
            return Err(format!(r#"invalid layer filename: {} (must look like "123-some-label.yaml")"#, quote(&name)));
        };
        if let Some((o, l, _)) = found.iter().find(|(o, l, _)| *o == order || *l == label) {
            return Err(format!(
                r#"invalid layer filename: {} not unique (have "{o:03}-{l}.yaml" already)"#,
                quote(&name)
            ));
        }
        found.push((order, label, entry.path()));
    }
    found.sort();
    let mut layers = Vec::new();
    for (order, label, path) in found {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read layer file: {e}"))?;
        layers.push(parse_layer(order * 1000, &label, &text)?);
    }
    Plan::from_layers(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_appends_lists_and_merges_environment() {
        let base = parse_layer(0, "base", "services:\n  s:\n    override: replace\n    command: a\n    after: [x]\n    environment: {A: '1', B: '2'}\n").unwrap();
        let over =
            parse_layer(0, "over", "services:\n  s:\n    override: merge\n    after: [y]\n    environment: {B: '3'}\n")
                .unwrap();
        let plan = Plan::from_layers(vec![base.clone()]).unwrap().append_layer(over);
        // x and y are not services: the combined plan is still valid (after/before only order what exists).
        let plan = plan.unwrap();
        let s = &plan.services["s"];
        assert_eq!(s.after, ["x", "y"]);
        assert_eq!(s.environment.as_ref().unwrap()["B"], "3");
        assert_eq!(s.command, "a");
    }

    #[test]
    fn missing_override_is_a_format_error() {
        let layer = parse_layer(0, "l", "services:\n  s:\n    command: a\n").unwrap();
        let err = Plan::default().append_layer(layer).unwrap_err();
        assert_eq!(err, r#"layer "l" must define "override" for service "s""#);
    }

    #[test]
    fn unknown_fields_and_sections_are_refused() {
        assert!(parse_layer(0, "l", "services:\n  s:\n    override: merge\n    comand: a\n").is_err());
        assert!(parse_layer(0, "l", "servces: {}\n").unwrap_err().contains("unknown section"));
    }

    #[test]
    fn plan_yaml_is_yaml_v3_layout() {
        let layer = parse_layer(0, "l", "services:\n  s:\n    override: replace\n    command: redis-server --port 6379\n    startup: enabled\n    environment: {A: 'yes'}\n    kill-delay: 90s\n").unwrap();
        let plan = Plan::default().append_layer(layer).unwrap();
        assert_eq!(
            plan.to_yaml(),
            "services:\n    s:\n        startup: enabled\n        override: replace\n        command: redis-server --port 6379\n        environment:\n            A: \"yes\"\n        kill-delay: 1m30s\n"
        );
        assert_eq!(Plan::default().to_yaml(), "{}\n");
    }

    #[test]
    fn order_puts_requirements_first_and_finds_loops() {
        let layer = parse_layer(0, "l", "services:\n  a:\n    override: replace\n    command: a\n    requires: [b]\n    after: [b]\n  b:\n    override: replace\n    command: b\n").unwrap();
        let plan = Plan::default().append_layer(layer).unwrap();
        assert_eq!(plan.start_order(&["a".into()]).unwrap(), vec![vec!["b".to_string(), "a".to_string()]]);
        let looped = parse_layer(0, "l", "services:\n  a:\n    override: replace\n    command: a\n    after: [b]\n  b:\n    override: replace\n    command: b\n    after: [a]\n").unwrap();
        assert!(Plan::default().append_layer(looped).unwrap_err().contains("before/after loop"));
    }

    #[test]
    fn layer_file_names_follow_pebble() {
        assert_eq!(layer_file_name("001-redis.yaml"), Some((1, "redis".into())));
        assert_eq!(layer_file_name("1-redis.yaml"), None);
        assert_eq!(layer_file_name("001-ab.yaml"), None);
    }
}
