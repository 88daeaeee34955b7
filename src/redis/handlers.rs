//! The Redis handlers: from an available image and a valid config to a pod spec, running pods that match it, a
//! status and relation data.
//!
//! - `redis:configure` (when the `redis-image` resource is available, every hook): validate the config (bad →
//!   `blocked` naming the option; the last good spec stays in place). On the leader: settle the password
//!   ([`super::auth`]), send the pod spec when its inputs changed, apply what Redis and Sentinel can change at run
//!   time to the running pods ([`super::live`]) when it changed, and check them in update-status and peer hooks;
//!   the cluster's health becomes the leader's status. Queue `active` otherwise.
//! - `redis:publish-db` (when a `db` client has joined): publish where the primary is and the password on every
//!   `db` relation whose data changed.
//! - `redis:acknowledge`: once this unit's clients have the current password, say so in its peer unit bag.
//! - `redis:finish-rotation` (leader, update-status): when every unit has acknowledged a new password, retire the
//!   previous one (`redis:reconfigure` then renders and applies the result in the same hook).
//! - `redis:peer-departed` (leader): after a scale-down, find the primary among the pods that remain, and make
//!   their Sentinels forget the pod that went.
//!
//! The unit being removed does nothing with Redis: by the time its hooks run, Kubernetes has already stopped its pod
//! (whose own start script handed the primary over).

use anyhow::{Context as _, Result};

use super::auth;
use super::config::RedisConfig;
use super::live::{self, Desired, Health, Mode};
use super::peers::{self, Shared};
use super::pod::{Deployment, ImageDetails, image_version, workload};
use super::relation::{UNIT_KEYS, add_sentinels, app_data, unit_data, with_deletions};
use super::topology::{self, Names};
use crate::juju::LogLevel;
use crate::layers::docker_resource::{self, ResourceFlag};
use crate::layers::{Ctx, State, status};
use crate::meta::{self, Flavour, RelationHook, action, hook};
use crate::reactive::{EndpointFlag, LEADER_FLAG, Registry, action_flag, endpoint_flag, joined_units};

/// The image resource the charm runs.
pub const IMAGE: &str = meta::REDIS_IMAGE.name;
/// The relation endpoint clients use.
pub const ENDPOINT: &str = meta::DB.name;

/// The flag set in the `rotate-password` action.
fn rotate_flag() -> String {
    action_flag(action::ROTATE_PASSWORD)
}

const CONFIGURED: &str = "redis.configured";
const INVALID: &str = "redis.config.invalid";
const RECONFIGURE: &str = "redis.reconfigure";
const ADDRESS_KEY: &str = "redis.db.ingress-address";
const SPEC_INPUTS: &str = "redis.pod-spec-inputs";
const LAST_GOOD_CONFIG: &str = "redis.config.last-good";
/// The fingerprint of the desired state last applied to the running pods.
const APPLIED_KEY: &str = "redis.live.applied";
/// The leader's last view of the cluster, as a status message.
const HEALTH_KEY: &str = "redis.live.health";

/// In update-status, how many times and how far apart the leader looks before reporting degraded replication.
const VERIFY_ATTEMPTS: u32 = 6;
const VERIFY_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);
/// How long the leader waits, in the hook that starts a migration, for the first sync, so the status says where
/// it got.
const FIRST_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How many times an apply pass is run when a server does not answer in time, `VERIFY_PAUSE` apart.
const APPLY_ATTEMPTS: u32 = 3;

/// How long the leader waits, in a peer-departed hook, for the pod that went to have handed the primary over
/// (its start script's hand-over takes at most about 20 s, inside Kubernetes' 30 s grace period).
const DEPARTURE_WAIT: std::time::Duration = std::time::Duration::from_secs(35);

/// Registers the Redis handlers (after the layers' own, as the original's `reactive/redis.py` was).
pub fn register(reg: &mut Registry<State>, flavour: Flavour) {
    // What the workload needs before it can be configured: the image resource the pod spec names (podspec), or
    // every workload container's Pebble up (sidecar).
    let workload_ready = match flavour {
        Flavour::PodSpec => docker_resource::flag(IMAGE, ResourceFlag::Available),
        Flavour::Sidecar => crate::workload::pebble::READY.to_owned(),
    };
    reg.handler("redis:rotate-password-check").when(&rotate_flag()).run(rotate_password_check);
    // Before configure: what the source published is shared in time for this hook's configure to follow it.
    super::migration::register(reg, flavour);
    reg.handler("redis:configure").when(&workload_ready).run(configure);
    reg.handler("redis:publish-db").when(&endpoint_flag(ENDPOINT, EndpointFlag::Joined)).run(publish_db);
    reg.per_relation(ENDPOINT, &["redis.db.published.", "redis.db.published-app."]);
    reg.handler("redis:acknowledge").when(CONFIGURED).run(acknowledge);
    reg.handler("redis:finish-rotation").when_all(&[CONFIGURED, LEADER_FLAG]).run(finish_rotation);
    reg.handler("redis:reconfigure").when(RECONFIGURE).run(reconfigure);
    reg.handler("redis:peer-departed").hook(&[&meta::PEERS.hook(RelationHook::Departed)]).run(peer_departed);
    reg.handler("redis:rotate-password-done").when(&rotate_flag()).run(|ctx| {
        let mut results = crate::juju::Settings::new();
        results.insert("rotated".into(), "true".into());
        results.insert("generation".into(), peers::shared(ctx)?.generation.to_string());
        ctx.tools.action_set(&results)?;
        Ok(())
    });
    super::actions::register(reg);
}

/// Whether this run does the charm's ordinary work: every hook, and of the actions only `rotate-password`
/// (the others only read). The unit being removed does none.
fn works(ctx: &Ctx<'_>) -> bool {
    if ctx.is_action {
        return ctx.flags.is_set(&rotate_flag());
    }
    !departing_self(ctx)
}

fn departing_self(ctx: &Ctx<'_>) -> bool {
    ctx.env.departing_unit.as_deref() == Some(ctx.env.unit_name.as_str())
}

fn rotate_password_check(ctx: &mut Ctx<'_>) -> Result<()> {
    let refusal = if !ctx.is_leader {
        Some(format!(
            "rotate-password must run on the leader (juju status shows which unit of {} it is)",
            ctx.env.app_name()
        ))
    } else {
        match RedisConfig::from_juju(&ctx.config) {
            Err(errors) => Some(errors.to_string()),
            Ok(cfg) if cfg.password.as_deref().is_some_and(|p| !p.is_empty()) => {
                Some("the password option is set: change it with `juju config` instead".into())
            }
            Ok(_) if peers::relation_id(ctx).is_none() => {
                Some("the redis-peers relation does not exist yet: try again in a moment".into())
            }
            Ok(_) => None,
        }
    };
    if let Some(why) = refusal {
        ctx.tools.action_fail(&why)?;
        ctx.flags.clear(&rotate_flag());
    }
    Ok(())
}

fn configure(ctx: &mut Ctx<'_>) -> Result<()> {
    if !works(ctx) {
        return Ok(());
    }
    let mut cfg = match RedisConfig::from_juju(&ctx.config) {
        Ok(cfg) => {
            ctx.kv.set(LAST_GOOD_CONFIG, serde_json::Value::Object(ctx.config.clone()));
            cfg
        }
        Err(errors) => {
            status::blocked(ctx, &errors.to_string());
            ctx.flags.set(INVALID);
            if ctx.is_leader {
                hold(ctx)?;
            }
            return Ok(());
        }
    };
    if ctx.flags.is_set(INVALID) {
        ctx.flags.clear(INVALID);
    }
    let flavour = ctx.charm.flavour;
    let Some(image) = image(ctx) else { return Ok(()) };
    if peers::relation_id(ctx).is_none() {
        status::waiting(ctx, "waiting for the redis-peers relation");
        return Ok(());
    }
    if ctx.is_leader {
        lead(ctx, &cfg, image.as_ref(), Spec::Render)?;
    } else if cfg.require_auth && peers::shared(ctx)?.password.is_none() {
        status::waiting(ctx, "waiting for the leader to share the Redis password");
        return Ok(());
    } else if crate::workload::per_unit(flavour) {
        match follow(ctx)? {
            Some(applied) => cfg = applied,
            None => {
                status::waiting(ctx, "waiting for the leader to share the config");
                return Ok(());
            }
        }
    }
    if let Some(waiting) = ctx.charm.redis.workload_waiting.clone() {
        status::waiting(ctx, &waiting);
        return Ok(());
    }
    if let Some(bad) = ctx.kv.get_as::<String>(super::migration::BAD_SOURCE_KEY).filter(|_| ctx.is_leader) {
        status::blocked(ctx, &bad);
        return Ok(());
    }
    if let Some(image) = &image {
        let version = image_version(&image.image_path);
        if ctx.kv.data_changed("redis.workload-version", &version) {
            ctx.tools.application_version_set(&version)?;
        }
    }
    ctx.flags.set(CONFIGURED);
    let mut message = format!("listening on port {}", cfg.port);
    if ctx.is_leader {
        if let Some(health) = ctx.kv.get_as::<String>(HEALTH_KEY).filter(|h| !h.is_empty()) {
            status::waiting(ctx, &health);
            return Ok(());
        }
    } else if !crate::workload::per_unit(flavour) {
        message.push_str(" (pod spec set by the leader)");
    }
    if cfg.require_auth && ctx.flags.is_set(&endpoint_flag(ENDPOINT, EndpointFlag::Joined)) {
        message.push_str("; auth on: ops-library clients cannot connect");
    }
    status::active(ctx, &message);
    Ok(())
}

/// The image the workload names: the oci-image resource's details in the podspec flavour (`Some(None)` in the
/// sidecar flavour, where Juju runs each container's image itself); `None` when it must be fetched again first.
fn image(ctx: &mut Ctx<'_>) -> Option<Option<ImageDetails>> {
    if crate::workload::per_unit(ctx.charm.flavour) {
        return Some(None);
    }
    let Some(info) = docker_resource::get_info(ctx, IMAGE) else {
        // A store that says "available" without the details (older or damaged): fetch it again rather than
        // fail every hook. The fetch handler runs in the next iteration, then configure again.
        ctx.trace.push(format!("{IMAGE} is flagged available but its details are missing: fetching it again"));
        ctx.flags.clear(&docker_resource::flag(IMAGE, ResourceFlag::Available));
        docker_resource::fetch(ctx, IMAGE);
        return None;
    };
    Some(Some(ImageDetails { image_path: info.registry_path, username: info.username, password: info.password }))
}

/// A non-leader of the sidecar flavour: its own pod runs the workload rendered from what the leader shared (the
/// config it rendered from, the password, the unit count), as the leader's own pod does, so that a change reaches
/// a pod only once the leader has applied it to the running servers (a new port, above all). Returns the config
/// applied; `None` while the leader has shared none.
fn follow(ctx: &mut Ctx<'_>) -> Result<Option<RedisConfig>> {
    let shared = peers::shared(ctx)?;
    let Some(cfg) = shared_config(&shared) else { return Ok(None) };
    let topo = Deployment {
        app: ctx.env.app_name().to_string(),
        units: peers::units(ctx),
        password: shared.password.clone(),
        previous_password: shared.previous.clone(),
    };
    let wanted = workload(&cfg, None, &topo).context("describing the workload")?;
    apply(ctx, &wanted)?;
    Ok(Some(cfg))
}

/// Makes `wanted` what runs and, in update-status and when Juju (3.6+) says a Pebble check failed or recovered,
/// finds out whether this unit's pod is ready (the sidecar flavour's Pebble checks; a pod that is not is shown as
/// waiting). In the sidecar flavour, a container whose
/// Pebble does not answer (it is restarting) is waited for, not an error: its next `pebble-ready` hook sends it
/// everything.
fn apply(ctx: &mut Ctx<'_>, wanted: &crate::workload::Workload) -> Result<()> {
    let mut result = crate::workload::apply(ctx, wanted).map(|_| None);
    let checks_changed = ["-pebble-check-failed", "-pebble-check-recovered"].iter().any(|k| ctx.hook.ends_with(k));
    if result.is_ok() && (ctx.hook == hook::UPDATE_STATUS || checks_changed) {
        result = crate::workload::not_ready(ctx, wanted);
    }
    match result {
        Ok(not_ready) => {
            if not_ready.is_some() {
                ctx.charm.redis.workload_waiting = not_ready;
            }
            Ok(())
        }
        Err(e) => {
            let Some(pe) = e.downcast_ref::<crate::pebble::PebbleError>().filter(|pe| pe.is_not_running()) else {
                return Err(e);
            };
            let container = pe.call().container.clone();
            crate::workload::pebble::lost(ctx, &container);
            ctx.charm.redis.workload_waiting = Some(crate::workload::pebble::waiting_message(&[&container]));
            Ok(())
        }
    }
}

/// While the config is invalid, the pods keep running what the last good one gave them, and the leader keeps
/// looking after them with it: the live settings follow the unit count, update-status repairs the topology (a
/// primary lost while blocked, to a crash during a scale-down, is recovered), a rotation in flight completes.
/// The spec is left as it is until the config is good again. Nothing to hold before a config was ever good.
fn hold(ctx: &mut Ctx<'_>) -> Result<()> {
    if peers::relation_id(ctx).is_none() {
        return Ok(());
    }
    let Some(cfg) = last_good_config(ctx)? else { return Ok(()) };
    let Some(image) = image(ctx) else { return Ok(()) };
    lead(ctx, &cfg, image.as_ref(), Spec::Keep)
}

/// The config the leader last rendered the workload from, as shared in the peer bag.
fn shared_config(shared: &Shared) -> Option<RedisConfig> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(shared.config.as_deref()?).ok()?;
    RedisConfig::from_juju(&map).ok()
}

/// The last valid config: the one the leader last rendered from, as shared in the peer bag (so a unit that joined,
/// or a leader elected, while the config was invalid has it too), else the last this unit saw.
fn last_good_config(ctx: &mut Ctx<'_>) -> Result<Option<RedisConfig>> {
    if peers::relation_id(ctx).is_some()
        && let Some(text) = peers::shared(ctx)?.config
        && let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
        && let Ok(cfg) = RedisConfig::from_juju(&map)
    {
        return Ok(Some(cfg));
    }
    let last: Option<serde_json::Map<String, serde_json::Value>> = ctx.kv.get_as(LAST_GOOD_CONFIG);
    Ok(last.and_then(|last| RedisConfig::from_juju(&last).ok()))
}

/// Whether the leader's pass may send a new pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// Rendered and sent when its inputs changed.
    Render,
    /// Left as it is (the config is invalid: the spec Juju has is the last good one).
    Keep,
}

/// What the leader's part of configure would do in this hook, from a given view of the peer bag.
struct Plan {
    /// The bag as committed.
    committed: Shared,
    /// What the running pods are brought to, and how, from what is committed.
    live: Option<(Desired, Mode)>,
    /// The bag once the live pass succeeded (a pending password promoted).
    base: Shared,
    /// The bag to share after this hook.
    next: Shared,
    topo: Deployment,
    inputs: serde_json::Value,
    render: bool,
    /// Whether the running servers can be administered in this hook at all (not in install; with auth on, once
    /// a password is committed).
    live_possible: bool,
}

impl Plan {
    fn new(
        ctx: &Ctx<'_>,
        cfg: &RedisConfig,
        image: Option<&ImageDetails>,
        committed: Shared,
        rotate: bool,
        spec: Spec,
    ) -> Result<Plan> {
        let units = peers::units(ctx);
        let app = ctx.env.app_name().to_string();
        // Nothing reaches the servers that Juju has not committed (see auth): with auth on and no password
        // committed yet, there is nothing to apply. In install no pod of the application runs yet (the first spec
        // creates them, with the files it carries).
        let live_possible = !(ctx.hook == hook::INSTALL || (cfg.require_auth && committed.password.is_none()));
        let live = if !live_possible {
            None
        } else {
            let desired = Desired::new(&app, cfg, &committed, units);
            let mode = if ctx.kv.get_as::<String>(APPLIED_KEY).as_deref() != Some(desired.fingerprint().as_str()) {
                Some(Mode::Apply)
            } else if ctx.hook == hook::UPDATE_STATUS || meta::PEERS.hook_kind(ctx.hook).is_some() {
                Some(Mode::Verify)
            } else {
                None
            };
            mode.map(|m| (desired, m))
        };
        let base = auth::promote(&committed);
        let mut next = auth::decide(cfg, &base, rotate)?;
        if spec == Spec::Render {
            // What every unit falls back on while a later config is invalid (see last_good_config).
            next.config = Some(serde_json::Value::Object(ctx.config.clone()).to_string());
        }
        let topo = Deployment {
            app: app.clone(),
            units,
            password: next.password.clone(),
            previous_password: next.previous.clone(),
        };
        // The spec is a pure function of these inputs and of this build's code (hence upgrade-charm, which may
        // bring new code, always renders): rendering it is most of a quiet hook's own work, so it is skipped when
        // they have not changed since the spec was last sent.
        let inputs = serde_json::json!({
            "config": &ctx.config,
            "image": image.map(|i| [&i.image_path, &i.username, &i.password]),
            "app": &topo.app,
            "units": topo.units,
            "password": &topo.password,
            "previous": &topo.previous_password,
        });
        let render =
            spec == Spec::Render && (ctx.hook == hook::UPGRADE_CHARM || ctx.kv.is_data_changed(SPEC_INPUTS, &inputs));
        Ok(Plan { committed, live, base, next, topo, inputs, render, live_possible })
    }

    fn acts(&self) -> bool {
        self.live.is_some() || self.render || self.next != self.committed
    }
}

/// The leader's part of configure: the running pods, the password, the spec, and what it finds out about them.
fn lead(ctx: &mut Ctx<'_>, cfg: &RedisConfig, image: Option<&ImageDetails>, spec: Spec) -> Result<()> {
    let rotate = ctx.flags.is_set(&rotate_flag());
    let committed = peers::shared(ctx)?;
    let mut plan = Plan::new(ctx, cfg, image, committed, rotate, spec)?;
    // Acting on a stale copy of the bag could undo what an action changed: read it first.
    if plan.acts() && !peers::is_fresh(ctx) {
        let committed = peers::fresh(ctx)?;
        plan = Plan::new(ctx, cfg, image, committed, rotate, spec)?;
    }
    // While copying a deployed podspec application's data (sidecar only), the pods follow the source: the usual
    // live pass (which would point the Sentinels back at a primary and promote one) waits for the switch-over.
    let migrating =
        super::migration::following(&plan.committed).filter(|_| crate::workload::per_unit(ctx.charm.flavour));
    if migrating.is_some() {
        plan.live = None;
    } else if ctx.kv.get_as::<String>(HEALTH_KEY).is_some_and(|h| h.starts_with(super::migration::STATUS_PREFIX)) {
        // Switched over (by the promote action, which commits nothing of this unit's state) or abandoned.
        ctx.kv.set_as(HEALTH_KEY, &String::new());
    }
    // Under Pebble a new port is only in files and checks (a replan restarts nothing): the leader moves every
    // running Redis to it first. One that cannot move (Redis before 7.0) blocks the change, before anything of it
    // is shared or sent.
    let from_port = shared_config(&plan.committed).map(|c| c.port);
    if let (Some((desired, Mode::Apply)), Some(from)) = (&plan.live, from_port)
        && crate::workload::per_unit(ctx.charm.flavour)
        && from != desired.port
    {
        match live::move_port(&mut ctx.charm.redis.admin, desired, from) {
            Ok(changed) => ctx.trace.extend(changed.into_iter().map(|c| format!("live: {c}"))),
            Err(super::admin::AdminError::Rejected { node, message, .. }) => {
                status::blocked(
                    ctx,
                    &format!(
                        "port {} cannot be applied: {node} refused to move from {from} ({message}); Redis moves port \
                         without a restart from 7.0 on: set port back to {from}",
                        desired.port
                    ),
                );
                return Ok(());
            }
            Err(e) => return Err(e).context("moving Redis to the new port"),
        }
    }
    let health = match &plan.live {
        Some((desired, mode)) => {
            let admin = &mut ctx.charm.redis.admin;
            let health = match mode {
                Mode::Apply => live::apply_patiently(admin, desired, APPLY_ATTEMPTS, VERIFY_PAUSE)
                    .context("applying the config to the running pods")?,
                // In update-status, a check that finds something wrong looks again (bounded) before saying so.
                Mode::Verify if ctx.hook == hook::UPDATE_STATUS => {
                    live::verify_settled(admin, desired, VERIFY_ATTEMPTS, VERIFY_PAUSE)
                        .context("checking the running pods")?
                }
                Mode::Verify => live::converge(admin, desired, Mode::Verify).context("checking the running pods")?,
            };
            if *mode == Mode::Apply {
                let units = peers::units(ctx);
                let applied = Desired::new(ctx.env.app_name(), cfg, &plan.base, units);
                ctx.kv.set_as(APPLIED_KEY, &applied.fingerprint());
            }
            Some(health)
        }
        None => None,
    };
    if plan.committed.pending.is_some() && plan.live.is_none() {
        // A pending password is shared only once the servers take it: not in this hook.
        plan.next = Shared { pending: plan.committed.pending.clone(), ..plan.next };
    }
    if plan.committed.pending.is_some() && plan.next.pending != plan.committed.pending {
        ctx.charm.redis.promoted = true;
    }
    if plan.next != plan.committed {
        peers::write(ctx, &plan.next)?;
        if plan.next.generation != plan.committed.generation {
            ctx.trace.push(format!("password generation {} shared", plan.next.generation));
        }
    }
    if ctx.hook == hook::INSTALL {
        // The pods this spec creates start with what it gives them: that is what is applied.
        let applied = Desired::new(ctx.env.app_name(), cfg, &plan.next, peers::units(ctx));
        ctx.kv.set_as(APPLIED_KEY, &applied.fingerprint());
    }
    // Pebble runtimes send only what changed by their own account (and resend all to a Pebble that restarted):
    // asked every time; a pod spec only when its inputs changed.
    if plan.render || (spec == Spec::Render && crate::workload::per_unit(ctx.charm.flavour)) {
        if cfg.require_auth && plan.topo.password.is_none() {
            anyhow::bail!("no password to render: the leader could not make one");
        }
        let wanted = workload(cfg, image, &plan.topo).context("rendering the workload")?;
        apply(ctx, &wanted)?;
        ctx.kv.data_changed(SPEC_INPUTS, &plan.inputs);
    }
    if let Some(source) = migrating
        && plan.live_possible
    {
        let desired = Desired::new(ctx.env.app_name(), cfg, &plan.base, peers::units(ctx));
        let primary = super::migration::primary_ordinal(&plan.committed);
        let (mut progress, changed) = super::migration::follow(&mut ctx.charm.redis.admin, &desired, primary, &source)
            .context("following the source")?;
        if !changed.is_empty() && progress == super::migration::Progress::LinkDown {
            progress = super::migration::wait_linked(&mut ctx.charm.redis.admin, &desired, primary, FIRST_SYNC_WAIT);
        }
        ctx.trace.extend(changed.into_iter().map(|c| format!("migration: {c}")));
        ctx.kv.set_as(HEALTH_KEY, &progress.message(&source));
        return Ok(());
    }
    match (health, plan.live.as_ref().map(|(_, m)| *m)) {
        (Some(h), Some(mode)) => {
            note_health(ctx, &h, &plan.next, mode == Mode::Verify && ctx.hook == hook::UPDATE_STATUS)
        }
        _ => Ok(()),
    }
}

/// Traces what the leader changed, shares a new primary, and keeps the health for the status. `settled`: this is
/// update-status's check, which looked again before concluding (see live::verify_settled).
fn note_health(ctx: &mut Ctx<'_>, health: &Health, shared: &Shared, settled: bool) -> Result<()> {
    for c in &health.changed {
        ctx.trace.push(format!("live: {c}"));
    }
    if !health.not_running.is_empty() {
        ctx.trace.push(format!("not running, so left to their files: {}", health.not_running.join(", ")));
    }
    if let Some(primary) = &health.primary
        && shared.primary.as_ref() != Some(primary)
    {
        let current = peers::shared(ctx)?;
        peers::write(ctx, &Shared { primary: Some(primary.clone()), ..current })?;
        ctx.trace.push(format!("the primary is {primary}"));
    }
    // What is wrong is reported by update-status's check, after looking again: elsewhere (a change just made, a
    // unit just joined, pods restarting) things are in flux, so other passes only clear it.
    if settled {
        let message = health.degraded(true).unwrap_or_default();
        ctx.kv.set_as(HEALTH_KEY, &message);
    } else if health.degraded(true).is_none() {
        ctx.kv.set_as(HEALTH_KEY, &String::new());
    }
    Ok(())
}

/// This unit's ingress address: asked in the hooks where it can change, remembered otherwise.
fn ingress_address(ctx: &mut Ctx<'_>) -> Result<String> {
    let refresh = meta::DB.hook_kind(ctx.hook).is_some()
        || [hook::CONFIG_CHANGED, hook::UPGRADE_CHARM, hook::LEADER_ELECTED, hook::START].contains(&ctx.hook);
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

/// The config to act on: the current one when valid, else the last good one, so a client that joins while the
/// config is blocked still learns where Redis really is.
pub(crate) fn good_config(ctx: &mut Ctx<'_>) -> Result<Option<RedisConfig>> {
    match RedisConfig::from_juju(&ctx.config) {
        Ok(cfg) => Ok(Some(cfg)),
        Err(_) => last_good_config(ctx),
    }
}

/// What this unit publishes on `db`, from a view of the peer bag: the unit bag and the leader's app bag. `None`
/// while auth is on and no password is shared yet.
fn db_data(
    ctx: &mut Ctx<'_>,
    cfg: &RedisConfig,
    shared: &Shared,
) -> Result<Option<(crate::juju::Settings, crate::juju::Settings)>> {
    let password = if cfg.require_auth { shared.password.clone() } else { None };
    if cfg.require_auth && password.is_none() {
        return Ok(None);
    }
    let units = peers::units(ctx);
    let app = ctx.env.app_name().to_string();
    let names = Names::here(&app, ctx.env.model_name.as_deref().unwrap_or_default());
    let host = if units > 1 {
        // Several units: clients get the primary pod's name, fully qualified.
        let primary = shared.primary.clone().unwrap_or_else(|| topology::pod_name(&app, 0));
        names.pod_fqdn(&primary)
    } else {
        ingress_address(ctx)?
    };
    let mut data = unit_data(&host, cfg.port, password.as_deref());
    add_sentinels(&mut data, &names.sentinels(units), &app);
    Ok(Some((with_deletions(data, UNIT_KEYS), app_data(&host))))
}

fn publish_db(ctx: &mut Ctx<'_>) -> Result<()> {
    if !works(ctx) {
        return Ok(());
    }
    // A bad config keeps the last good data published (and gives it to clients that join meanwhile).
    let Some(cfg) = good_config(ctx)? else { return Ok(()) };
    let shared = peers::shared(ctx)?;
    let Some(mut published) = db_data(ctx, &cfg, &shared)? else { return Ok(()) };
    let rids: Vec<String> = joined_units(ctx, ENDPOINT).into_keys().collect();
    let changes = |ctx: &Ctx<'_>, data: &crate::juju::Settings| {
        rids.iter().any(|rid| ctx.kv.is_data_changed(&format!("redis.db.published.{rid}"), data))
    };
    if ctx.is_leader && !peers::is_fresh(ctx) && changes(ctx, &published.0) {
        // About to publish: an action may have changed the bag since this unit's copy.
        let shared = peers::fresh(ctx)?;
        let Some(again) = db_data(ctx, &cfg, &shared)? else { return Ok(()) };
        published = again;
    }
    let (data, app_data) = published;
    for rid in &rids {
        if ctx.kv.data_changed(&format!("redis.db.published.{rid}"), &data) {
            ctx.tools.relation_set(rid, &data, false)?;
        }
        if ctx.is_leader && ctx.kv.data_changed(&format!("redis.db.published-app.{rid}"), &app_data) {
            ctx.tools.relation_set(rid, &app_data, true)?;
        }
    }
    if meta::DB.hook_kind(ctx.hook) == Some(RelationHook::Joined) && cfg.require_auth {
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

/// This unit's clients have the current password (publish-db ran before, in registration order): acknowledge its
/// generation, so the leader can retire the previous password once every unit has.
fn acknowledge(ctx: &mut Ctx<'_>) -> Result<()> {
    if !works(ctx) || peers::relation_id(ctx).is_none() {
        return Ok(());
    }
    // Acknowledgements matter only while a rotation waits for them.
    let shared = peers::shared(ctx)?;
    if shared.previous.is_some() && shared.generation > peers::acknowledged(ctx) {
        peers::acknowledge(ctx, shared.generation)?;
    }
    Ok(())
}

/// Retires the previous password in the leader's first update-status after every unit has acknowledged the
/// new one: clients learn the new password from their relation-changed hooks, which run as the units publish it,
/// and get until then (at most one update-status interval, 5 minutes by default) to move.
fn finish_rotation(ctx: &mut Ctx<'_>) -> Result<()> {
    if !works(ctx) || ctx.hook != hook::UPDATE_STATUS || ctx.charm.redis.promoted || peers::relation_id(ctx).is_none() {
        return Ok(());
    }
    let shared = peers::shared(ctx)?;
    if auth::rotation_complete(ctx, &shared)? {
        auth::finish_rotation(ctx, &shared)?;
        ctx.flags.set(RECONFIGURE);
    }
    Ok(())
}

fn reconfigure(ctx: &mut Ctx<'_>) -> Result<()> {
    ctx.flags.clear(RECONFIGURE);
    configure(ctx)
}

/// Leader, after a scale-down: the pod that went may have been the primary (its start script handed the primary
/// over as it stopped; Sentinel fails over otherwise): wait, bounded, for a primary among the pods that remain,
/// then make each remaining Sentinel forget the pod that went.
fn peer_departed(ctx: &mut Ctx<'_>) -> Result<()> {
    if !ctx.is_leader || departing_self(ctx) || ctx.env.departing_unit.is_none() {
        return Ok(());
    }
    let Some(cfg) = good_config(ctx)? else { return Ok(()) };
    let shared = peers::shared(ctx)?;
    let units = peers::units(ctx);
    let app = ctx.env.app_name().to_string();
    let desired = Desired::new(&app, &cfg, &shared, units);
    let gone = topology::pod_name(&app, units);
    let admin = &mut ctx.charm.redis.admin;
    let outcome = live::after_scale_down(admin, &desired, &gone, DEPARTURE_WAIT);
    for line in outcome.trace {
        ctx.trace.push(line);
    }
    let health =
        live::converge(&mut ctx.charm.redis.admin, &desired, Mode::Verify).context("checking the pods that remain")?;
    note_health(ctx, &health, &shared, false)
}
