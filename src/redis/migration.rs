//! Moving a deployed podspec application's data into this (sidecar) one, live: the `source` endpoint.
//!
//! Juju refuses to refresh a format v1 charm to v2 except at scale 0, so moving from `redis-k8s.charm` to
//! `redis-k8s-sidecar.charm` means a new application. Instead of a backup and a restore, the new application
//! relates its `source` endpoint (interface `redis`, as a client) to the old one's `db` endpoint, and:
//!
//! 1. the old application publishes where its primary is and its password, as it does for any client;
//! 2. the new leader shares that in the peer bag ([`Source`]) and makes its primary a replica of the old one
//!    ([`follow`]): its Sentinels stop monitoring first (a monitored primary that reports itself a replica is
//!    failed over by Sentinel), its own replicas keep following its primary, which gets the old password as
//!    `masterauth`; the unit status tells the sync's progress;
//! 3. the `promote` action ([`promote`]) pauses the old primary's writes (`CLIENT PAUSE WRITE`, bounded), waits
//!    until this primary has every byte the old one acknowledged, and makes it a primary again (`REPLICAOF NO
//!    ONE`, its own `masterauth` back); the next pass points the Sentinels at it. Clients then relate to the new
//!    application, and the old one is removed. Writes the old primary accepts after its pause ends are not
//!    copied: the pause is the window to move the clients in.
//!
//! Nothing here runs in the podspec archive, which has no `source` endpoint.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::admin::{Admin, AdminError, Node, NodeKind, Replication, Role, cmd, text};
use super::live::{self, Desired, Mode, TIMEOUT};
use super::peers::{self, Shared};
use super::topology::{self, pod_host};
use crate::juju::Settings;
use crate::layers::{Ctx, State, status};
use crate::meta::{Flavour, RelationHook, SOURCE, action};
use crate::reactive::{Registry, action_flag};

/// This unit's kv: why the source's data cannot be used, while it cannot (the status says it in every hook).
pub const BAD_SOURCE_KEY: &str = "redis.migration.bad-source";

/// What the peer bag's migration key holds once the switch-over is done: the source is not followed again,
/// whatever it publishes until the relation is removed.
const PROMOTED: &str = "promoted";

/// The migration state the peer bag holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    /// Copying from this source.
    Following(Source),
    /// Switched over: the source is no longer followed.
    Promoted,
}

/// The migration state in the peer bag, if any.
pub fn state(shared: &Shared) -> Option<Migration> {
    match shared.source.as_deref()? {
        PROMOTED => Some(Migration::Promoted),
        text => Source::decode(text).map(Migration::Following),
    }
}

/// The source this application is copying from, while it is.
pub fn following(shared: &Shared) -> Option<Source> {
    match state(shared)? {
        Migration::Following(s) => Some(s),
        Migration::Promoted => None,
    }
}

/// The pod that follows the source and is promoted: the primary the bag names, else ordinal 0.
pub fn primary_ordinal(shared: &Shared) -> u32 {
    shared.primary.as_deref().and_then(topology::ordinal).unwrap_or(0)
}

/// Registers the `source` endpoint's handlers (sidecar only) and the `promote` action's (both archives: the
/// podspec one refuses it).
pub fn register(reg: &mut Registry<State>, flavour: Flavour) {
    if flavour == Flavour::Sidecar {
        let joined = SOURCE.hook(RelationHook::Joined);
        let changed = SOURCE.hook(RelationHook::Changed);
        reg.handler("redis:source-changed").hook(&[&joined, &changed]).run(source_changed);
        reg.handler("redis:source-broken").hook(&[&SOURCE.hook(RelationHook::Broken)]).run(source_broken);
    }
    reg.handler("redis:promote").when(&action_flag(action::PROMOTE)).run(promote_action);
}

/// Leader: the old application's unit published (or changed) where its primary is: shared in the peer bag for
/// the configure pass to follow. After the switch-over, nothing it publishes is followed again.
fn source_changed(ctx: &mut Ctx<'_>) -> Result<()> {
    let (Some(rid), Some(unit)) = (ctx.env.relation_id.clone(), ctx.env.remote_unit.clone()) else {
        return Ok(());
    };
    if !ctx.is_leader || peers::relation_id(ctx).is_none() {
        return Ok(());
    }
    let bag = ctx.tools.relation_get(&rid, &unit)?;
    let source = match Source::from_bag(&bag) {
        Ok(Some(source)) => source,
        Ok(None) => return Ok(()),
        Err(why) => {
            let message = format!("source relation: {unit} published data this charm cannot use: {why}");
            status::blocked(ctx, &message);
            ctx.kv.set_as(BAD_SOURCE_KEY, &message);
            return Ok(());
        }
    };
    ctx.kv.unset(BAD_SOURCE_KEY);
    let shared = peers::fresh(ctx)?;
    if state(&shared) == Some(Migration::Promoted) || following(&shared).as_ref() == Some(&source) {
        return Ok(());
    }
    ctx.trace.push(format!("migration: following {} (published by {unit})", source.address()));
    peers::write(ctx, &Shared { source: Some(source.encode()), ..shared })
}

/// Leader: the source relation is gone. Before the switch-over that abandons the copy: the primary stops
/// following the source and serves what it has (as `promote` would, without waiting for the rest).
fn source_broken(ctx: &mut Ctx<'_>) -> Result<()> {
    if !ctx.is_leader || peers::relation_id(ctx).is_none() {
        return Ok(());
    }
    ctx.kv.unset(BAD_SOURCE_KEY);
    let shared = peers::fresh(ctx)?;
    let Some(state) = state(&shared) else { return Ok(()) };
    if let Migration::Following(source) = state {
        let Some(desired) = desired(ctx, &shared)? else { return Ok(()) };
        let node = desired.redis(primary_ordinal(&shared));
        let own = desired.passwords.first().cloned().unwrap_or_default();
        let creds = desired.credentials();
        match ctx.charm.redis.admin.run(
            &node,
            &creds,
            &[cmd(&["REPLICAOF", "NO", "ONE"]), cmd(&["CONFIG", "SET", "masterauth", &own])],
            TIMEOUT,
        ) {
            Ok(_) | Err(AdminError::NotRunning { .. }) => {}
            Err(e) => return Err(e).context("stopping the copy from the source"),
        }
        ctx.trace.push(format!("migration from {} abandoned: {} serves what it copied", source.address(), node.pod));
    }
    peers::write(ctx, &Shared { source: None, ..shared })
}

/// What the running pods should be, from the config to act on (the current one, else the last good one).
fn desired(ctx: &mut Ctx<'_>, shared: &Shared) -> Result<Option<Desired>> {
    let Some(cfg) = super::handlers::good_config(ctx)? else { return Ok(None) };
    Ok(Some(Desired::new(ctx.env.app_name(), &cfg, &auth_base(shared), peers::units(ctx))))
}

fn auth_base(shared: &Shared) -> Shared {
    super::auth::promote(shared)
}

/// The `promote` action (leader, sidecar, while following a source): the switch-over, then the Sentinels
/// monitor the new primary at once.
fn promote_action(ctx: &mut Ctx<'_>) -> Result<()> {
    let refuse = |ctx: &mut Ctx<'_>, why: &str| ctx.tools.action_fail(why).map_err(anyhow::Error::from);
    if ctx.charm.flavour != Flavour::Sidecar {
        return refuse(
            ctx,
            "promote belongs to the sidecar archive's migration (its source endpoint): nothing to do here",
        );
    }
    if !ctx.is_leader {
        return refuse(ctx, "promote must run on the leader");
    }
    let shared = peers::fresh(ctx)?;
    let Some(source) = following(&shared) else {
        return refuse(
            ctx,
            "not migrating: relate this application's source endpoint to the old one's db endpoint first",
        );
    };
    let Some(desired) = desired(ctx, &shared)? else {
        return refuse(ctx, "no valid config to act on: fix the config first");
    };
    let params = ctx.tools.action_get()?;
    let pause = params.get("pause-seconds").and_then(serde_json::Value::as_u64).unwrap_or(30).clamp(1, 300);
    let primary = primary_ordinal(&shared);
    let admin = &mut ctx.charm.redis.admin;
    match promote(admin, &desired, primary, &source, Duration::from_secs(pause)) {
        Ok(offset) => {
            let pod = desired.redis(primary).pod;
            let health =
                live::converge(admin, &desired, Mode::Apply).context("pointing the Sentinels at the new primary")?;
            let mut results = Settings::new();
            results.insert("promoted".into(), pod.clone());
            results.insert("offset".into(), offset.to_string());
            results.insert("source-writes-paused-seconds".into(), pause.to_string());
            ctx.tools.action_set(&results)?;
            ctx.trace.push(format!("migration: {pod} promoted at offset {offset}"));
            let primary = health.primary.or(Some(pod));
            peers::write(ctx, &Shared { source: Some(PROMOTED.into()), primary, ..shared })
        }
        Err(NotPromoted::Refused(why)) => refuse(ctx, &why),
        Err(NotPromoted::Admin(e)) => Err(e).context("promote"),
    }
}

/// Where the old application's primary is, as it published it on its `db` endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub host: String,
    pub port: u16,
    /// `None`: the old application runs without auth.
    pub password: Option<String>,
}

/// Hides the password.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Source {
    /// Reads a remote unit's bag as the `redis` interface has it (`host`, `port`, and `password` as a JSON
    /// string). `Ok(None)` while it has published nothing yet; `Err` names the bad key without echoing a
    /// password.
    pub fn from_bag(bag: &Settings) -> Result<Option<Source>, String> {
        let (Some(host), Some(port)) = (bag.get("host"), bag.get("port")) else { return Ok(None) };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
        if !valid_host {
            return Err("host is not a host name or address".into());
        }
        let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or("port is not a port number (1-65535)")?;
        let password = match bag.get("password").filter(|p| !p.is_empty()) {
            None => None,
            Some(raw) => match serde_json::from_str::<String>(raw) {
                Ok(p) if !p.is_empty() && !p.chars().any(char::is_control) => Some(p),
                _ => return Err("password is not a JSON string".into()),
            },
        };
        Ok(Some(Source { host: host.clone(), port, password }))
    }

    /// As the peer bag holds it.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Option<Source> {
        serde_json::from_str(text).ok()
    }

    fn node(&self) -> Node {
        Node::new("the source", NodeKind::Redis, &format!("{}:{}", self.host, self.port))
    }

    fn credentials(&self) -> Vec<Option<&str>> {
        vec![self.password.as_deref()]
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How every migration status message starts.
pub const STATUS_PREFIX: &str = "migrating from ";

/// How far the copy has got, as the primary that follows the source reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The primary is not running (it is restarting): nothing to report yet.
    NotRunning,
    /// The link to the source is down (it cannot connect or authenticate, or the first sync is under way).
    LinkDown,
    /// In sync as of the last byte the source sent.
    Linked { offset: u64 },
}

impl Progress {
    /// The unit status message.
    pub fn message(&self, source: &Source) -> String {
        let from = source.address();
        match self {
            Progress::NotRunning => format!("{STATUS_PREFIX}{from}: waiting for this application's primary"),
            Progress::LinkDown => format!("{STATUS_PREFIX}{from}: syncing (link down or first sync under way)"),
            Progress::Linked { offset } => {
                format!("{STATUS_PREFIX}{from}: in sync at offset {offset}; run the promote action to switch over")
            }
        }
    }
}

/// Makes pod `primary` a replica of `source` and keeps it so: Sentinels stop monitoring, its `masterauth`
/// becomes the source's password, and every other pod follows it. Idempotent (a pass that finds it so changes
/// nothing but the Sentinels it still finds monitoring); returns the progress and what changed.
pub fn follow(
    admin: &mut Admin,
    desired: &Desired,
    primary: u32,
    source: &Source,
) -> Result<(Progress, Vec<String>), AdminError> {
    let mut changed = Vec::new();
    let creds = desired.credentials();
    for n in 0..desired.units {
        let node = desired.sentinel(n);
        match admin.session(&node, &creds, &[cmd(&["SENTINEL", "MASTER", &desired.app])], TIMEOUT) {
            Ok(s) if !matches!(s.replies[0], super::resp::Resp::Error(_)) => {
                admin.run(&node, &creds, &[cmd(&["SENTINEL", "REMOVE", &desired.app])], TIMEOUT)?;
                changed.push(format!("{}: stopped monitoring while the data is copied", node.label()));
            }
            Ok(_) => {}
            Err(e) if e.is_not_running() => {}
            Err(e) => return Err(e),
        }
    }
    let node = desired.redis(primary);
    let info = match admin.session(&node, &creds, &[cmd(&["INFO", "replication"])], TIMEOUT) {
        Ok(s) => text(&s.replies[0]).and_then(|t| Replication::parse(&t)),
        Err(e) if e.is_not_running() => return Ok((Progress::NotRunning, changed)),
        Err(e) => return Err(e),
    };
    let following = matches!(&info, Some(Replication { role: Role::Replica { host, port, .. }, .. })
        if *host == source.host && *port == source.port);
    if !following {
        let port = source.port.to_string();
        let auth = source.password.clone().unwrap_or_default();
        admin.run(
            &node,
            &creds,
            &[cmd(&["CONFIG", "SET", "masterauth", &auth]), cmd(&["REPLICAOF", &source.host, &port])],
            TIMEOUT,
        )?;
        changed.push(format!("{}: replica of {} (the source)", node.label(), source.address()));
    }
    let primary_host = pod_host(&desired.app, primary);
    let port = desired.port.to_string();
    for n in (0..desired.units).filter(|n| *n != primary) {
        let replica = desired.redis(n);
        let info = match admin.session(&replica, &creds, &[cmd(&["INFO", "replication"])], TIMEOUT) {
            Ok(s) => text(&s.replies[0]).and_then(|t| Replication::parse(&t)),
            Err(e) if e.is_not_running() => continue,
            Err(e) => return Err(e),
        };
        let ok = matches!(&info, Some(Replication { role: Role::Replica { host, port: p, .. }, .. })
            if *host == primary_host && *p == desired.port);
        if !ok {
            admin.run(&replica, &creds, &[cmd(&["REPLICAOF", &primary_host, &port])], TIMEOUT)?;
            changed.push(format!("{}: follows {primary_host}:{port}", replica.label()));
        }
    }
    // Already following: what it said above is the progress (no second session in a steady hook).
    if following {
        return Ok((progress_of(info), changed));
    }
    let progress = match admin.session(&node, &creds, &[cmd(&["INFO", "replication"])], TIMEOUT) {
        Ok(s) => progress_of(text(&s.replies[0]).and_then(|t| Replication::parse(&t))),
        Err(e) if e.is_not_running() => Progress::NotRunning,
        Err(e) => return Err(e),
    };
    Ok((progress, changed))
}

/// The progress a following primary's `INFO replication` shows.
fn progress_of(info: Option<Replication>) -> Progress {
    match info {
        Some(Replication { role: Role::Replica { link_up: true, .. }, offset, .. }) => Progress::Linked { offset },
        _ => Progress::LinkDown,
    }
}

/// After [`follow`] has just pointed the primary at the source: looks again (every half second, within `wait`)
/// until the first sync is done, so that the hook's status says where the copy got (a small data set takes
/// seconds; a large one is reported as syncing, and the leader's next hook looks again).
pub fn wait_linked(admin: &mut Admin, desired: &Desired, primary: u32, wait: Duration) -> Progress {
    let creds = desired.credentials();
    let node = desired.redis(primary);
    let deadline = Instant::now() + wait;
    loop {
        let progress = match admin.session(&node, &creds, &[cmd(&["INFO", "replication"])], TIMEOUT) {
            Ok(s) => progress_of(text(&s.replies[0]).and_then(|t| Replication::parse(&t))),
            Err(_) => Progress::LinkDown,
        };
        if matches!(progress, Progress::Linked { .. }) || Instant::now() >= deadline {
            return progress;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Why [`promote`] did not switch over.
#[derive(Debug)]
pub enum NotPromoted {
    /// A refusal to report to the operator (`action-fail`), nothing changed but a lifted pause.
    Refused(String),
    Admin(AdminError),
}

impl From<AdminError> for NotPromoted {
    fn from(e: AdminError) -> Self {
        NotPromoted::Admin(e)
    }
}

/// The switch-over: pauses the source primary's writes for `pause`, waits (within `pause`) until pod `primary`
/// has reached the source's offset, then makes it a primary with this application's own `masterauth`. Returns
/// the offset it was promoted at. The source stays paused until `pause` ends: that is when clients move.
pub fn promote(
    admin: &mut Admin,
    desired: &Desired,
    primary: u32,
    source: &Source,
    pause: Duration,
) -> Result<u64, NotPromoted> {
    let creds = desired.credentials();
    let node = desired.redis(primary);
    let mine = |admin: &mut Admin| -> Result<Option<(bool, u64)>, AdminError> {
        let s = admin.session(&node, &creds, &[cmd(&["INFO", "replication"])], TIMEOUT)?;
        Ok(match text(&s.replies[0]).and_then(|t| Replication::parse(&t)) {
            Some(Replication { role: Role::Replica { host, port, link_up }, offset, .. })
                if host == source.host && port == source.port =>
            {
                Some((link_up, offset))
            }
            _ => None,
        })
    };
    match mine(admin)? {
        None => return Err(NotPromoted::Refused(format!("{} is not a replica of {}", node.pod, source.address()))),
        Some((false, _)) => {
            return Err(NotPromoted::Refused(format!(
                "{}'s link to {} is down: nothing to promote from until it syncs",
                node.pod,
                source.address()
            )));
        }
        Some((true, _)) => {}
    }
    let src = source.node();
    let src_creds = source.credentials();
    let pause_ms = pause.as_millis().to_string();
    admin.run(&src, &src_creds, &[cmd(&["CLIENT", "PAUSE", &pause_ms, "WRITE"])], TIMEOUT)?;
    let deadline = Instant::now() + pause;
    let target = loop {
        let s = admin.session(&src, &src_creds, &[cmd(&["INFO", "replication"])], TIMEOUT)?;
        let theirs = text(&s.replies[0]).and_then(|t| Replication::parse(&t)).map(|r| r.offset).unwrap_or(0);
        match mine(admin)? {
            Some((true, offset)) if offset >= theirs => break offset,
            _ if Instant::now() >= deadline => {
                let _ = admin.run(&src, &src_creds, &[cmd(&["CLIENT", "UNPAUSE"])], TIMEOUT);
                return Err(NotPromoted::Refused(format!(
                    "{} did not catch up with {} within {}s: nothing changed (try a longer pause)",
                    node.pod,
                    source.address(),
                    pause.as_secs()
                )));
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let own_auth = desired.passwords.first().cloned().unwrap_or_default();
    admin.run(
        &node,
        &creds,
        &[cmd(&["REPLICAOF", "NO", "ONE"]), cmd(&["CONFIG", "SET", "masterauth", &own_auth])],
        TIMEOUT,
    )?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::admin::fake::{FakeCluster, FakeRedis};
    use crate::redis::config::RedisConfig;
    use crate::redis::peers::Shared;

    const PW: &str = "new-password-0123456789abcdef";
    const OLD_PW: &str = "old-password-0123456789abcdef";
    const OLD: &str = "redis-k8s-0.redis-k8s-endpoints.old.svc.cluster.local";

    fn desired() -> Desired {
        let shared = Shared { password: Some(PW.into()), generation: 1, ..Shared::default() };
        Desired::new("new", &RedisConfig::default(), &shared, 3)
    }

    /// A healthy new deployment and, beside it, the old primary (its own password, more data).
    fn clusters() -> FakeCluster {
        let c = FakeCluster::healthy("new", 3, 6379, Some(PW));
        let mut old = c.redis("new-0.new-endpoints:6379");
        old.replica_of = None;
        old.passwords = vec![OLD_PW.into()];
        old.offset = 5000;
        c.state_mut().redis.insert(format!("{OLD}:6379"), old);
        c
    }

    fn source() -> Source {
        Source { host: OLD.into(), port: 6379, password: Some(OLD_PW.into()) }
    }

    #[test]
    fn the_source_is_read_from_the_redis_interface_and_bad_data_is_named_not_echoed() {
        let mut bag = Settings::new();
        assert_eq!(Source::from_bag(&bag), Ok(None));
        bag.insert("host".into(), OLD.into());
        bag.insert("port".into(), "6379".into());
        bag.insert("password".into(), format!("\"{OLD_PW}\""));
        assert_eq!(Source::from_bag(&bag), Ok(Some(source())));
        assert!(!format!("{:?}", source()).contains(OLD_PW));
        let mut bad = bag.clone();
        bad.insert("password".into(), "not-json-hunter2".into());
        let err = Source::from_bag(&bad).unwrap_err();
        assert!(err.contains("password") && !err.contains("hunter2"), "{err}");
        bad = bag.clone();
        bad.insert("host".into(), "evil host;rm".into());
        assert!(Source::from_bag(&bad).unwrap_err().contains("host"));
        bad = bag.clone();
        bad.insert("port".into(), "0".into());
        assert!(Source::from_bag(&bad).unwrap_err().contains("port"));
        assert_eq!(Source::decode(&source().encode()), Some(source()));
    }

    #[test]
    fn following_stops_the_sentinels_and_makes_the_primary_a_replica_of_the_source() {
        let c = clusters();
        let mut admin = Admin::new(Box::new(c.clone()));
        let (progress, changed) = follow(&mut admin, &desired(), 0, &source()).unwrap();
        assert_eq!(progress, Progress::Linked { offset: 100 });
        assert!(changed.iter().any(|c| c.contains("replica of")), "{changed:?}");
        let p: FakeRedis = c.redis("new-0.new-endpoints:6379");
        assert_eq!(p.replica_of, Some((OLD.to_string(), 6379)));
        assert_eq!(p.config["masterauth"], OLD_PW);
        for n in 0..3 {
            assert!(c.sentinel(&format!("new-{n}.new-endpoints:26379")).monitor.is_none(), "Sentinel {n} stopped");
        }
        for n in 1..3 {
            assert_eq!(
                c.redis(&format!("new-{n}.new-endpoints:6379")).replica_of,
                Some(("new-0.new-endpoints".into(), 6379))
            );
        }
        let (_, again) = follow(&mut admin, &desired(), 0, &source()).unwrap();
        assert!(again.is_empty(), "nothing left to change: {again:?}");
        assert!(progress.message(&source()).contains("run the promote action"));
    }

    #[test]
    fn promote_waits_for_the_source_s_offset_under_a_pause_then_switches_over() {
        let c = clusters();
        let mut admin = Admin::new(Box::new(c.clone()));
        follow(&mut admin, &desired(), 0, &source()).unwrap();
        // Behind: the pause ends without catching up, and nothing changes.
        let err = promote(&mut admin, &desired(), 0, &source(), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(&err, NotPromoted::Refused(m) if m.contains("did not catch up")), "{err:?}");
        assert!(!c.redis(&format!("{OLD}:6379")).paused, "the pause is lifted");
        assert!(c.redis("new-0.new-endpoints:6379").replica_of.is_some());
        // Caught up: promoted, with its own masterauth back; the source stays paused for the clients to move.
        c.state_mut().redis.get_mut("new-0.new-endpoints:6379").unwrap().offset = 5000;
        assert_eq!(promote(&mut admin, &desired(), 0, &source(), Duration::from_secs(5)).unwrap(), 5000);
        let p = c.redis("new-0.new-endpoints:6379");
        assert_eq!((p.replica_of, p.config["masterauth"].as_str()), (None, PW));
        assert!(c.redis(&format!("{OLD}:6379")).paused);
    }

    #[test]
    fn promote_refuses_while_the_link_is_down() {
        let c = clusters();
        let mut admin = Admin::new(Box::new(c.clone()));
        follow(&mut admin, &desired(), 0, &source()).unwrap();
        c.state_mut().redis.get_mut("new-0.new-endpoints:6379").unwrap().link_up = false;
        let err = promote(&mut admin, &desired(), 0, &source(), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(&err, NotPromoted::Refused(m) if m.contains("link")), "{err:?}");
        assert!(!c.redis(&format!("{OLD}:6379")).paused, "the source was never paused");
    }
}
