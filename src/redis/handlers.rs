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

use anyhow::{Context as _, Result, bail};

use super::config::RedisConfig;
use super::podspec::{ImageDetails, image_version, render_pod_spec};
use super::relation::unit_data;
use crate::layers::{Ctx, State, caas_base, docker_resource, status};
use crate::reactive::{Registry, joined_units};

/// The image resource the charm runs.
pub const IMAGE: &str = "redis-image";
/// The relation endpoint clients use.
pub const ENDPOINT: &str = "db";

const CONFIGURED: &str = "redis.configured";
const INVALID: &str = "redis.config.invalid";
const ADDRESS_KEY: &str = "redis.db.ingress-address";

/// Registers the Redis handlers (after the layers' own, as the original's `reactive/redis.py` was).
pub fn register(reg: &mut Registry<State>) {
    let available = format!("{}.available", docker_resource::prefix(IMAGE));
    reg.handler("redis:configure").when(&available).run(configure);
    reg.handler("redis:publish-db").when(&format!("endpoint.{ENDPOINT}.joined")).run(publish_db);
}

fn configure(ctx: &mut Ctx<'_>) -> Result<()> {
    let cfg = match RedisConfig::from_juju(&ctx.config) {
        Ok(cfg) => cfg,
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
        bail!("{IMAGE} is flagged available but its image details are missing from the flag store");
    };
    let image = ImageDetails { image_path: info.registry_path, username: info.username, password: info.password };
    let spec = render_pod_spec(&cfg, &image).context("rendering the pod spec")?;
    if caas_base::would_send(ctx, &spec) {
        status::maintenance(ctx, "configuring container")?;
        caas_base::pod_spec_set(ctx, &spec)?;
    }
    let version = image_version(&image.image_path);
    if ctx.kv.data_changed("redis.workload-version", &version) {
        ctx.tools.application_version_set(&version)?;
    }
    ctx.flags.set(CONFIGURED);
    if ctx.is_leader {
        status::active(ctx, &format!("listening on port {}", cfg.port));
    } else {
        status::active(ctx, &format!("listening on port {} (pod spec set by the leader)", cfg.port));
    }
    Ok(())
}

fn publish_db(ctx: &mut Ctx<'_>) -> Result<()> {
    // A bad config keeps the last good data published.
    let Ok(cfg) = RedisConfig::from_juju(&ctx.config) else { return Ok(()) };
    let refresh = ctx.hook.starts_with(&format!("{ENDPOINT}-relation-"))
        || matches!(ctx.hook, "config-changed" | "upgrade-charm" | "leader-elected" | "start");
    let cached: Option<String> = ctx.kv.get_as(ADDRESS_KEY);
    let host = match cached {
        Some(h) if !refresh => h,
        _ => {
            let h = ctx.tools.ingress_address(ENDPOINT)?;
            ctx.kv.set_as(ADDRESS_KEY, &h);
            h
        }
    };
    let data = unit_data(&host, cfg.port, None);
    for rid in joined_units(ctx, ENDPOINT).keys() {
        if ctx.kv.data_changed(&format!("redis.db.published.{rid}"), &data) {
            ctx.tools.relation_set(rid, &data, false)?;
        }
    }
    Ok(())
}
