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
use super::kv::{DATA_CHANGED_PREFIX, data_changed_key};
use crate::meta::RelationHook;

const CONFIG_SNAPSHOT: &str = "reactive.config.snapshot";

/// Set while the unit is the leader.
pub const LEADER_FLAG: &str = "leadership.is_leader";

/// Which automatic flag of a config option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFlag {
    /// `config.changed.<opt>`.
    Changed,
    /// `config.set.<opt>`.
    Set,
    /// `config.default.<opt>`.
    Default,
}

/// The automatic flag `config.<which>.<opt>`.
pub fn config_flag(which: ConfigFlag, opt: &str) -> String {
    let which = match which {
        ConfigFlag::Changed => "changed",
        ConfigFlag::Set => "set",
        ConfigFlag::Default => "default",
    };
    format!("config.{which}.{opt}")
}

/// Which automatic flag of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointFlag<'a> {
    /// `endpoint.<ep>.joined`.
    Joined,
    /// `endpoint.<ep>.changed`.
    Changed,
    /// `endpoint.<ep>.changed.<key>`.
    ChangedKey(&'a str),
    /// `endpoint.<ep>.departed`.
    Departed,
}

/// The automatic flag `endpoint.<ep>.<which>`.
pub fn endpoint_flag(ep: &str, which: EndpointFlag<'_>) -> String {
    match which {
        EndpointFlag::Joined => format!("endpoint.{ep}.joined"),
        EndpointFlag::Changed => format!("endpoint.{ep}.changed"),
        EndpointFlag::ChangedKey(key) => format!("endpoint.{ep}.changed.{key}"),
        EndpointFlag::Departed => format!("endpoint.{ep}.departed"),
    }
}

/// The kv key of an endpoint's recorded membership (relation id → remote units).
fn units_key(endpoint: &str) -> String {
    format!("reactive.endpoints.{endpoint}.units")
}
/// The kv key of the units that departed an endpoint since it last had none departing.
fn departed_key(endpoint: &str) -> String {
    format!("reactive.endpoints.departed.{endpoint}")
}

/// The `data_changed` id of a remote unit's settings on one relation of an endpoint, or of one key of them
/// (the engine's namespace: see [`Watch::drop_stale_hashes`]).
fn remote_data_id(ep: &str, rid: &str, unit: &str, key: Option<&str>) -> String {
    match key {
        None => format!("{}{rid}.{unit}", remote_data_prefix(ep)),
        Some(k) => format!("{}{rid}.{unit}.{k}", remote_data_prefix(ep)),
    }
}

/// What every [`remote_data_id`] of `ep` starts with.
fn remote_data_prefix(ep: &str) -> String {
    format!("endpoint.{ep}.")
}

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
        ctx.flags.toggle(&config_flag(ConfigFlag::Changed, opt), changed);
        ctx.flags.toggle(&config_flag(ConfigFlag::Set, opt), truthy(current));
        let default = spec.config_defaults.get(opt).unwrap_or(&Value::Null);
        ctx.flags.toggle(&config_flag(ConfigFlag::Default, opt), same(current, default));
    }
    ctx.flags.toggle("config.changed", any_changed);
    ctx.kv.set(CONFIG_SNAPSHOT, Value::Object(config.clone()));
    ctx.config = config;

    ctx.is_leader = ctx.tools.is_leader()?;
    ctx.flags.toggle(LEADER_FLAG, ctx.is_leader);

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

fn endpoint<S>(ep: &str, watched: &BTreeSet<String>, ctx: &mut Ctx<'_, S>) -> Result<()> {
    let kind = RelationHook::of(ep, ctx.hook);
    // Actions refresh membership too: they start from Juju's copy of the state, which may be a hook behind.
    let relation_hook = kind.is_some() || ctx.is_action;
    let key = units_key(ep);
    let joined = endpoint_flag(ep, EndpointFlag::Joined);
    let was_joined = ctx.flags.is_set(&joined);

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
        if kind == Some(RelationHook::Broken) {
            units.remove(&rid);
        }
        if let (Some(gone), Some(list)) = (ctx.env.departing_unit.clone(), units.get_mut(&rid)) {
            list.retain(|u| *u != gone);
        }
    }
    let any = units.values().any(|l| !l.is_empty());
    ctx.kv.set_as(&key, &units);
    ctx.flags.toggle(&joined, any);

    // .departed: set in -departed; cleared by a later hook while units remain.
    let departed = endpoint_flag(ep, EndpointFlag::Departed);
    if kind == Some(RelationHook::Departed) {
        let mut gone: Vec<String> = ctx.kv.get_as(&departed_key(ep)).unwrap_or_default();
        if let Some(u) = ctx.env.departing_unit.clone().or(ctx.env.remote_unit.clone()) {
            gone.push(u);
        }
        ctx.kv.set_as(&departed_key(ep), &gone);
        ctx.flags.set(&departed);
    } else if any && ctx.flags.is_set(&departed) {
        ctx.flags.clear(&departed);
        ctx.kv.unset(&departed_key(ep));
    }

    // .changed: the remote unit this hook is about, in joined/changed hooks (or on first join), and only the
    // flags a handler watches (see the module doc).
    let watch = Watch::of(ep, watched);
    watch.forget_unwatched(ep, ctx);
    let about = ctx
        .env
        .remote_unit
        .clone()
        .filter(|_| matches!(kind, Some(RelationHook::Joined | RelationHook::Changed)) || (!was_joined && any));
    if let (Some(unit), Some(rid), false) = (about, ctx.env.relation_id.clone(), watch.is_empty()) {
        let data = ctx.tools.relation_get(&rid, &unit)?;
        let mut changed = watch.whole && ctx.kv.data_changed(&remote_data_id(ep, &rid, &unit, None), &data);
        for (k, v) in data.iter().filter(|(k, _)| watch.keys.contains(k.as_str())) {
            if ctx.kv.data_changed(&remote_data_id(ep, &rid, &unit, Some(k)), v) {
                ctx.flags.set(&endpoint_flag(ep, EndpointFlag::ChangedKey(k)));
                changed = true;
            }
        }
        if changed && watch.whole {
            ctx.flags.set(&endpoint_flag(ep, EndpointFlag::Changed));
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
            let k = k.strip_prefix(DATA_CHANGED_PREFIX).unwrap_or(k);
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
        let whole = endpoint_flag(ep, EndpointFlag::Changed);
        let prefix = endpoint_flag(ep, EndpointFlag::ChangedKey(""));
        Watch {
            whole: watched.contains(&whole),
            keys: watched.iter().filter_map(|f| f.strip_prefix(&prefix)).map(str::to_string).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        !self.whole && self.keys.is_empty()
    }

    /// Clears the `.changed` flags nobody watches (a store written before the watched set existed has one per
    /// key any client ever sent). No trigger can fire: a trigger's source is a watched flag.
    fn forget_unwatched<S>(&self, ep: &str, ctx: &mut Ctx<'_, S>) {
        let whole = endpoint_flag(ep, EndpointFlag::Changed);
        let prefix = endpoint_flag(ep, EndpointFlag::ChangedKey(""));
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
        let prefix = data_changed_key(&remote_data_prefix(ep));
        let mut keep = BTreeSet::new();
        for (rid, list) in units {
            for unit in list {
                keep.extend(self.keys.iter().map(|k| data_changed_key(&remote_data_id(ep, rid, unit, Some(k)))));
                if self.whole {
                    keep.insert(data_changed_key(&remote_data_id(ep, rid, unit, None)));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are charms.reactive's, and persisted in the store: pinned.
    #[test]
    fn key_names() {
        assert_eq!(config_flag(ConfigFlag::Changed, "port"), "config.changed.port");
        assert_eq!(config_flag(ConfigFlag::Set, "port"), "config.set.port");
        assert_eq!(config_flag(ConfigFlag::Default, "port"), "config.default.port");
        assert_eq!(endpoint_flag("db", EndpointFlag::Joined), "endpoint.db.joined");
        assert_eq!(endpoint_flag("db", EndpointFlag::Changed), "endpoint.db.changed");
        assert_eq!(endpoint_flag("db", EndpointFlag::ChangedKey("host")), "endpoint.db.changed.host");
        assert_eq!(endpoint_flag("db", EndpointFlag::ChangedKey("")), "endpoint.db.changed.");
        assert_eq!(endpoint_flag("db", EndpointFlag::Departed), "endpoint.db.departed");
        assert_eq!(units_key("db"), "reactive.endpoints.db.units");
        assert_eq!(departed_key("db"), "reactive.endpoints.departed.db");
        assert_eq!(remote_data_id("db", "db:1", "c/0", None), "endpoint.db.db:1.c/0");
        assert_eq!(remote_data_id("db", "db:1", "c/0", Some("k")), "endpoint.db.db:1.c/0.k");
        assert!(remote_data_id("db", "db:1", "c/0", None).starts_with(&remote_data_prefix("db")));
        assert_eq!(super::super::run::action_flag("get-password"), "actions.get-password");
    }
}
