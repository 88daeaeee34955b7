//! The Redis handlers: from an available image and a valid config to a pod spec, a status and relation data.
//!
//! - `redis:configure` (when the `redis-image` resource is available, every hook): validate the config
//!   (bad → `blocked` naming the option, and the last good spec stays in place); render the pod spec;
//!   the leader sends it when it changed, showing `maintenance "configuring container"` meanwhile; set
//!   the workload version when it changed; queue `active`.
//! - `redis:publish-db` (when a `db` client has joined): publish host/port on every `db` relation whose
//!   data changed. The address is this unit's own ingress address (`network-get db`), refreshed in the
//!   hooks where it can change (config-changed fires when the Service address changes, relation hooks,
//!   upgrade-charm, leader changes) and remembered otherwise.

use anyhow::{Context as _, Result};

use super::auth;
use super::config::RedisConfig;
use super::podspec::{ImageDetails, Topology, image_version, render_pod_spec};
use super::relation::{UNIT_KEYS, add_sentinels, app_data, unit_data, with_deletions};
use super::topology;
use crate::juju::LogLevel;
use crate::layers::{Ctx, State, caas_base, docker_resource, status};
use crate::reactive::{Registry, joined_units};

/// The image resource the charm runs.
pub const IMAGE: &str = "redis-image";
/// The relation endpoint clients use.
pub const ENDPOINT: &str = "db";

const CONFIGURED: &str = "redis.configured";
const INVALID: &str = "redis.config.invalid";
const ADDRESS_KEY: &str = "redis.db.ingress-address";
const SPEC_INPUTS: &str = "redis.pod-spec-inputs";
const LAST_GOOD_CONFIG: &str = "redis.config.last-good";

/// Registers the Redis handlers (after the layers' own, as the original's `reactive/redis.py` was).
pub fn register(reg: &mut Registry<State>) {
    let available = format!("{}.available", docker_resource::prefix(IMAGE));
    reg.handler("redis:configure").when(&available).run(configure);
    reg.handler("redis:publish-db").when(&format!("endpoint.{ENDPOINT}.joined")).run(publish_db);
    reg.handler("redis:unit-departing").hook(&["redis-peers-relation-departed"]).run(unit_departing);
}

/// Scale-down: the departing unit itself (its hooks run while its pod may still be up) and the leader
/// move the primary off the departing pod. Each acts once per departing unit, in the first
/// `-departed` hook about it, when the units that remain number exactly the departing pod's ordinal
/// (a StatefulSet drops its highest ordinal; in the departing unit's own first hook, the peer list has
/// lost one other unit, which its own absence from the count makes up for).
fn unit_departing(ctx: &mut Ctx<'_>) -> Result<()> {
    let Some(departing) = ctx.env.departing_unit.clone() else { return Ok(()) };
    if !(ctx.is_leader || departing == ctx.env.unit_name) {
        return Ok(());
    }
    let handled = format!("redis.departure-handled.{departing}");
    if ctx.kv.get(&handled).is_some() {
        return Ok(());
    }
    ctx.kv.set(&handled, serde_json::Value::Bool(true));
    let Some(cfg) = good_config(ctx) else { return Ok(()) };
    let password = password(ctx, &cfg)?;
    let ordinal = topology::units(ctx);
    topology::move_primary_off(ctx, ordinal, password.as_deref(), cfg.port)
}

fn configure(ctx: &mut Ctx<'_>) -> Result<()> {
    let cfg = match RedisConfig::from_juju(&ctx.config) {
        Ok(cfg) => {
            ctx.kv.set(LAST_GOOD_CONFIG, serde_json::Value::Object(ctx.config.clone()));
            cfg
        }
        Err(errors) => {
            status::blocked(ctx, &errors.to_string());
            ctx.flags.set(INVALID);
            return Ok(());
        }
    };
    if ctx.flags.is_set(INVALID) {
        ctx.flags.clear(INVALID);
    }
    let Some(info) = docker_resource::get_info(ctx, IMAGE) else {
        // A store that says "available" without the details (older or damaged): fetch it again rather than
        // fail every hook. The fetch handler runs in the next iteration, then this one again.
        ctx.trace.push(format!("{IMAGE} is flagged available but its details are missing: fetching it again"));
        ctx.flags.clear(&format!("{}.available", docker_resource::prefix(IMAGE)));
        docker_resource::fetch(ctx, IMAGE);
        return Ok(());
    };
    let password = password(ctx, &cfg)?;
    if cfg.require_auth && password.is_none() {
        // Only a non-leader gets here: the leader makes one when there is none.
        status::waiting(ctx, "waiting for the leader to share the Redis password");
        return Ok(());
    }
    let image = ImageDetails { image_path: info.registry_path, username: info.username, password: info.password };
    if ctx.is_leader {
        let topo = Topology {
            app: ctx.env.app_name().to_string(),
            units: topology::units(ctx),
            password,
            previous_password: None,
        };
        // The spec is a pure function of these inputs and of this build's code (hence upgrade-charm, which
        // may bring new code, always renders): rendering it is most of a quiet hook's own work, so it is
        // skipped when they have not changed since the spec was last sent.
        let inputs = serde_json::json!({
            "config": &ctx.config,
            "image": [&image.image_path, &image.username, &image.password],
            "app": &topo.app,
            "units": topo.units,
            "password": &topo.password,
        });
        if ctx.hook == "upgrade-charm" || ctx.kv.is_data_changed(SPEC_INPUTS, &inputs) {
            let spec = render_pod_spec(&cfg, &image, &topo).context("rendering the pod spec")?;
            if caas_base::would_send(ctx, &spec) {
                status::maintenance(ctx, "configuring container")?;
                caas_base::pod_spec_set(ctx, &spec)?;
            }
            ctx.kv.data_changed(SPEC_INPUTS, &inputs);
        }
    }
    let version = image_version(&image.image_path);
    if ctx.kv.data_changed("redis.workload-version", &version) {
        ctx.tools.application_version_set(&version)?;
    }
    ctx.flags.set(CONFIGURED);
    let mut message = format!("listening on port {}", cfg.port);
    if !ctx.is_leader {
        message.push_str(" (pod spec set by the leader)");
    }
    if cfg.require_auth && ctx.flags.is_set(&format!("endpoint.{ENDPOINT}.joined")) {
        message.push_str("; auth on: ops-library clients cannot connect");
    }
    status::active(ctx, &message);
    Ok(())
}

/// This unit's ingress address: asked in the hooks where it can change, remembered otherwise.
fn ingress_address(ctx: &mut Ctx<'_>) -> Result<String> {
    let refresh = ctx.hook.starts_with(&format!("{ENDPOINT}-relation-"))
        || matches!(ctx.hook, "config-changed" | "upgrade-charm" | "leader-elected" | "start");
    let cached: Option<String> = ctx.kv.get_as(ADDRESS_KEY);
    match cached {
        Some(h) if !refresh => Ok(h),
        _ => {
            let h = ctx.tools.ingress_address(ENDPOINT)?;
            ctx.kv.set_as(ADDRESS_KEY, &h);
            Ok(h)
        }
    }
}

/// The password Redis requires, `None` when auth is off (or, on a non-leader, not shared yet).
fn password(ctx: &mut Ctx<'_>, cfg: &RedisConfig) -> Result<Option<String>> {
    if !cfg.require_auth {
        return Ok(None);
    }
    auth::effective_password(ctx, cfg.password.as_deref().unwrap_or(""))
}

/// The config to act on: the current one when valid (remembered as the last good one), else the last
/// good one, so a client that joins while the config is blocked still learns where Redis really is.
fn good_config(ctx: &mut Ctx<'_>) -> Option<RedisConfig> {
    match RedisConfig::from_juju(&ctx.config) {
        Ok(cfg) => {
            ctx.kv.set(LAST_GOOD_CONFIG, serde_json::Value::Object(ctx.config.clone()));
            Some(cfg)
        }
        Err(_) => {
            let last: serde_json::Map<String, serde_json::Value> = ctx.kv.get_as(LAST_GOOD_CONFIG)?;
            RedisConfig::from_juju(&last).ok()
        }
    }
}

fn publish_db(ctx: &mut Ctx<'_>) -> Result<()> {
    // A bad config keeps the last good data published (and gives it to clients that join meanwhile).
    let Some(cfg) = good_config(ctx) else { return Ok(()) };
    let password = password(ctx, &cfg)?;
    let host = if topology::units(ctx) > 1 {
        // Several units: clients get the primary pod's stable name (the leader asks Sentinel).
        topology::refresh_primary(ctx, password.as_deref())?;
        topology::pod_host(ctx.env.app_name(), &topology::primary_pod(ctx))
    } else {
        ingress_address(ctx)?
    };
    let mut data = unit_data(&host, cfg.port, password.as_deref());
    let app = ctx.env.app_name().to_string();
    add_sentinels(&mut data, &super::podspec::sentinel_addresses(&app, topology::units(ctx)), &app);
    let data = with_deletions(data, UNIT_KEYS);
    let app_data = app_data(&host);
    for rid in joined_units(ctx, ENDPOINT).keys() {
        if ctx.kv.data_changed(&format!("redis.db.published.{rid}"), &data) {
            ctx.tools.relation_set(rid, &data, false)?;
        }
        if ctx.is_leader && ctx.kv.data_changed(&format!("redis.db.published-app.{rid}"), &app_data) {
            ctx.tools.relation_set(rid, &app_data, true)?;
        }
    }
    if ctx.hook == format!("{ENDPOINT}-relation-joined") && cfg.require_auth {
        let rid = ctx.env.relation_id.clone().unwrap_or_default();
        let msg = format!(
            "a client joined {rid} while require-auth is on: clients built on the ops redis_k8s library \
             cannot send a password and will be refused (NOAUTH); reactive interface:redis clients receive it. \
             Set require-auth=false only if such a client must connect."
        );
        ctx.tools.log(LogLevel::Warning, &msg)?;
    }
    Ok(())
}
