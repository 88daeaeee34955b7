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
//! reuse the recorded membership. `.changed` reads the one remote unit the hook is about, and only when a
//! handler watches one of the endpoint's `.changed` flags.
//!
//! Size: a related unit chooses its keys, so nothing kept here may grow with them (issue 14: 40,000 client
//! keys once made a 5.2 MB store, too big for the `state-set` mirror). Deliberate differences from
//! charms.reactive, which hashes every key of every remote unit and never forgets any:
//! - `.changed.<key>` is kept only for the keys the charm watches ([`Registry::watched_flags`]: handler
//!   conditions, trigger sources, [`Registry::watch`]); for those the semantics are charms.reactive's (a hash
//!   per relation, unit and key, set when a present key's value differs, never cleared automatically). A
//!   `.changed.<key>` flag nobody watches is cleared, and its hashes dropped.
//! - `.changed`, when watched, comes from one hash of the unit's whole settings (plus any watched key that
//!   changed), so it is also set when a key is removed, which charms.reactive does not notice.
//! - the hashes of a unit that departed, or of a relation that broke, are removed, and so are the charm's own kv
//!   keys for a relation that broke, when declared with [`Registry::per_relation`].
//!
//! [`Registry::watched_flags`]: super::Registry::watched_flags
//! [`Registry::watch`]: super::Registry::watch
//! [`Registry::per_relation`]: super::Registry::per_relation

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use super::context::Ctx;
use super::handler::Registry;

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

/// Sets the automatic flags for the hook in `ctx` (the "atstart" of charms.reactive). `registry` says which flags
/// the charm watches and which kv keys it keeps per relation.
pub fn begin<S>(spec: &AutoSpec, registry: &Registry<S>, ctx: &mut Ctx<'_, S>) -> Result<()> {
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

    let watched = registry.watched_flags();
    for ep in &spec.endpoints {
        endpoint(ep, &watched, ctx)?;
        forget_broken_relations(ep, &registry.per_relation_prefixes(ep), ctx);
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

fn endpoint<S>(ep: &str, watched: &BTreeSet<String>, ctx: &mut Ctx<'_, S>) -> Result<()> {
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

    // .changed: the remote unit this hook is about, in joined/changed hooks (or on first join), and only the
    // flags a handler watches (see the module doc).
    let watch = Watch::of(ep, watched);
    watch.forget_unwatched(ep, ctx);
    let about = ctx.env.remote_unit.clone().filter(|_| kind == "joined" || kind == "changed" || (!was_joined && any));
    if let (Some(unit), Some(rid), false) = (about, ctx.env.relation_id.clone(), watch.is_empty()) {
        let data = ctx.tools.relation_get(&rid, &unit)?;
        let mut changed = watch.whole && ctx.kv.data_changed(&format!("endpoint.{ep}.{rid}.{unit}"), &data);
        for (k, v) in data.iter().filter(|(k, _)| watch.keys.contains(k.as_str())) {
            if ctx.kv.data_changed(&format!("endpoint.{ep}.{rid}.{unit}.{k}"), v) {
                ctx.flags.set(&format!("endpoint.{ep}.changed.{k}"));
                changed = true;
            }
        }
        if changed && watch.whole {
            ctx.flags.set(&format!("endpoint.{ep}.changed"));
        }
    }
    watch.drop_stale_hashes(ep, &units, ctx);
    Ok(())
}

/// Removes the charm's per-relation kv keys (`<prefix><rid>`, and `data_changed` ids of that form) of every
/// relation of `ep` that is no longer in its recorded membership. Only a suffix that is a relation id of `ep`
/// (`<ep>:<number>`) counts, so a prefix can never reach another key that merely starts like it.
fn forget_broken_relations<S>(ep: &str, prefixes: &[&str], ctx: &mut Ctx<'_, S>) {
    if prefixes.is_empty() {
        return;
    }
    let live = joined_units(ctx, ep);
    let is_gone_rid = |rest: &str| {
        rest.strip_prefix(ep)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            && !live.contains_key(rest)
    };
    let stale: Vec<String> = ctx
        .kv
        .as_map()
        .keys()
        .filter(|k| {
            let k = k.strip_prefix("reactive.data_changed.").unwrap_or(k);
            prefixes.iter().any(|p| k.strip_prefix(p).is_some_and(is_gone_rid))
        })
        .cloned()
        .collect();
    for k in stale {
        ctx.kv.unset(&k);
    }
}

/// Which of an endpoint's `.changed` flags the charm watches.
struct Watch {
    /// `endpoint.<ep>.changed` itself.
    whole: bool,
    /// The `<key>`s of the watched `endpoint.<ep>.changed.<key>` flags.
    keys: BTreeSet<String>,
}

impl Watch {
    fn of(ep: &str, watched: &BTreeSet<String>) -> Watch {
        let prefix = format!("endpoint.{ep}.changed.");
        Watch {
            whole: watched.contains(&format!("endpoint.{ep}.changed")),
            keys: watched.iter().filter_map(|f| f.strip_prefix(&prefix)).map(str::to_string).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        !self.whole && self.keys.is_empty()
    }

    /// Clears the `.changed` flags nobody watches (a store written before the watched set existed has one per
    /// key any client ever sent). No trigger can fire: a trigger's source is a watched flag.
    fn forget_unwatched<S>(&self, ep: &str, ctx: &mut Ctx<'_, S>) {
        let whole = format!("endpoint.{ep}.changed");
        let prefix = format!("{whole}.");
        let stale: Vec<String> = ctx
            .flags
            .list()
            .into_iter()
            .filter(|f| match f.strip_prefix(&prefix) {
                Some(key) => !self.keys.contains(key),
                None => *f == whole && !self.whole,
            })
            .map(str::to_string)
            .collect();
        for f in stale {
            ctx.flags.clear(&f);
        }
    }

    /// Removes every hash of this endpoint's remote data but those of watched keys of units still joined: a
    /// departed unit's, a broken relation's, and those of keys nobody watches. The `endpoint.<ep>.` namespace of
    /// `data_changed` ids is the engine's: charm code must not record its own hashes there.
    fn drop_stale_hashes<S>(&self, ep: &str, units: &BTreeMap<String, Vec<String>>, ctx: &mut Ctx<'_, S>) {
        let prefix = format!("reactive.data_changed.endpoint.{ep}.");
        let mut keep = BTreeSet::new();
        for (rid, list) in units {
            for unit in list {
                let base = format!("{prefix}{rid}.{unit}");
                keep.extend(self.keys.iter().map(|k| format!("{base}.{k}")));
                if self.whole {
                    keep.insert(base);
                }
            }
        }
        let stale: Vec<String> =
            ctx.kv.as_map().keys().filter(|k| k.starts_with(&prefix) && !keep.contains(*k)).cloned().collect();
        for k in stale {
            ctx.kv.unset(&k);
        }
    }
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
