//! Automatic flags, computed before any handler runs (reference §3).
//!
//! - `config.changed`, `config.changed.<opt>`: the value differs from the snapshot saved by the last
//!   successful hook (every option in the first hook); `config.set.<opt>`: the value is truthy;
//!   `config.default.<opt>`: it equals config.yaml's default. All `config.*` flags live for one hook.
//! - `leadership.is_leader`, from the hook's single `is-leader` call.
//! - `endpoint.<ep>.joined` (any remote unit on any relation of the endpoint), `.changed` and
//!   `.changed.<key>` (a remote unit's setting differs from its recorded hash; never cleared
//!   automatically), `.departed` (set in `-departed`, cleared in a later hook while units remain).
//!
//! Cost: joined units only change in relation hooks, so relation-ids/relation-list run in the endpoint's
//! relation hooks (and when nothing is recorded yet, e.g. after an operator pod restart); other hooks
//! reuse the recorded membership. `.changed` reads the one remote unit the hook is about.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use super::context::Ctx;

const CONFIG_SNAPSHOT: &str = "reactive.config.snapshot";

/// What the automatic flags are computed from: the charm's config options with their defaults, and
/// its relation endpoints.
#[derive(Debug, Clone, Default)]
pub struct AutoSpec {
    pub config_defaults: BTreeMap<String, Value>,
    pub endpoints: Vec<String>,
}

impl AutoSpec {
    /// Builds the spec from config.yaml's text (lenient: a missing default is null).
    pub fn from_config_yaml(text: &str, endpoints: &[&str]) -> Result<AutoSpec> {
        #[derive(serde::Deserialize)]
        struct ConfigYaml {
            #[serde(default)]
            options: BTreeMap<String, serde_yaml::Value>,
        }
        let parsed: ConfigYaml = serde_yaml::from_str(text).context("parsing config.yaml")?;
        let config_defaults = parsed
            .options
            .into_iter()
            .map(|(k, v)| {
                let d = v.get("default").cloned().unwrap_or(serde_yaml::Value::Null);
                (k, serde_json::to_value(d).unwrap_or(Value::Null))
            })
            .collect();
        Ok(AutoSpec { config_defaults, endpoints: endpoints.iter().map(|s| s.to_string()).collect() })
    }
}

/// Sets the automatic flags for the hook in `ctx` (the "atstart" of charms.reactive).
pub fn begin<S>(spec: &AutoSpec, ctx: &mut Ctx<'_, S>) -> Result<()> {
    let config = ctx.tools.config()?;
    let previous: Option<Map<String, Value>> = ctx.kv.get_as(CONFIG_SNAPSHOT);
    let mut options: Vec<&String> = spec.config_defaults.keys().chain(config.keys()).collect();
    options.sort();
    options.dedup();
    let mut any_changed = false;
    for opt in options {
        let current = config.get(opt).unwrap_or(&Value::Null);
        let changed = match &previous {
            None => true,
            Some(prev) => !same(prev.get(opt).unwrap_or(&Value::Null), current),
        };
        any_changed |= changed;
        ctx.flags.toggle(&format!("config.changed.{opt}"), changed);
        ctx.flags.toggle(&format!("config.set.{opt}"), truthy(current));
        let default = spec.config_defaults.get(opt).unwrap_or(&Value::Null);
        ctx.flags.toggle(&format!("config.default.{opt}"), same(current, default));
    }
    ctx.flags.toggle("config.changed", any_changed);
    ctx.kv.set(CONFIG_SNAPSHOT, Value::Object(config.clone()));
    ctx.config = config;

    ctx.is_leader = ctx.tools.is_leader()?;
    ctx.flags.toggle("leadership.is_leader", ctx.is_leader);

    for ep in &spec.endpoints {
        endpoint(ep, ctx)?;
    }
    Ok(())
}

/// Removes the one-hook flags before the store is committed (the "atexit" of charms.reactive).
pub fn end<S>(ctx: &mut Ctx<'_, S>) {
    let transient: Vec<String> =
        ctx.flags.list().into_iter().filter(|f| f.starts_with("config.")).map(str::to_string).collect();
    for f in transient {
        ctx.flags.clear(&f);
    }
}

/// Recorded membership of an endpoint: relation id → remote units.
pub fn joined_units<S>(ctx: &Ctx<'_, S>, endpoint: &str) -> BTreeMap<String, Vec<String>> {
    ctx.kv.get_as(&units_key(endpoint)).unwrap_or_default()
}

fn units_key(endpoint: &str) -> String {
    format!("reactive.endpoints.{endpoint}.units")
}

fn endpoint<S>(ep: &str, ctx: &mut Ctx<'_, S>) -> Result<()> {
    let prefix = format!("{ep}-relation-");
    // Actions refresh membership too: they start from Juju's copy of the state, which may be a hook behind.
    let relation_hook = ctx.hook.starts_with(&prefix) || ctx.is_action;
    let kind = ctx.hook.strip_prefix(&prefix).unwrap_or_default().to_string();
    let key = units_key(ep);
    let was_joined = ctx.flags.is_set(&format!("endpoint.{ep}.joined"));

    let mut units: BTreeMap<String, Vec<String>> = match ctx.kv.get_as(&key) {
        Some(u) if !relation_hook => u,
        _ => {
            let mut fresh = BTreeMap::new();
            for rid in ctx.tools.relation_ids(ep)? {
                let list = ctx.tools.relation_list(&rid)?;
                fresh.insert(rid, list);
            }
            fresh
        }
    };
    if relation_hook {
        let rid = ctx.env.relation_id.clone().unwrap_or_default();
        if kind == "broken" {
            units.remove(&rid);
        }
        if let (Some(gone), Some(list)) = (ctx.env.departing_unit.clone(), units.get_mut(&rid)) {
            list.retain(|u| *u != gone);
        }
    }
    let any = units.values().any(|l| !l.is_empty());
    ctx.kv.set_as(&key, &units);
    ctx.flags.toggle(&format!("endpoint.{ep}.joined"), any);

    // .departed: set in -departed; cleared by a later hook while units remain.
    let departed = format!("endpoint.{ep}.departed");
    if kind == "departed" {
        let mut gone: Vec<String> = ctx.kv.get_as(&format!("reactive.endpoints.departed.{ep}")).unwrap_or_default();
        if let Some(u) = ctx.env.departing_unit.clone().or(ctx.env.remote_unit.clone()) {
            gone.push(u);
        }
        ctx.kv.set_as(&format!("reactive.endpoints.departed.{ep}"), &gone);
        ctx.flags.set(&departed);
    } else if any && ctx.flags.is_set(&departed) {
        ctx.flags.clear(&departed);
        ctx.kv.unset(&format!("reactive.endpoints.departed.{ep}"));
    }

    // .changed: the remote unit this hook is about, in joined/changed hooks (or on first join).
    let about = ctx.env.remote_unit.clone().filter(|_| kind == "joined" || kind == "changed" || (!was_joined && any));
    if let (Some(unit), Some(rid)) = (about, ctx.env.relation_id.clone()) {
        let data = ctx.tools.relation_get(&rid, &unit)?;
        for (k, v) in &data {
            if ctx.kv.data_changed(&format!("endpoint.{ep}.{rid}.{unit}.{k}"), v) {
                ctx.flags.set(&format!("endpoint.{ep}.changed.{k}"));
                ctx.flags.set(&format!("endpoint.{ep}.changed"));
            }
        }
    }
    Ok(())
}

/// Python truthiness for config values.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Equality that treats `8080` and `8080.0` alike: Juju passes numbers through float64.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
