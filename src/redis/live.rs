//! What the leader applies to the running pods, and what it finds out about them.
//!
//! Kubernetes does not restart pods for a changed ConfigMap or Secret, and redis-server never re-reads its config,
//! so the options Redis can change at run time reach running servers only through this module: the leader sends
//! them to every pod's Redis and Sentinel ([`converge`] in [`Mode::Apply`]), and checks them, with the replication
//! health, in update-status ([`Mode::Verify`]), which also repairs a pod that restarted with files the kubelet had
//! not refreshed yet. The same values are rendered into the pod's files, so a restart keeps them.
//!
//! | option | how it reaches a running pod |
//! |---|---|
//! | `maxmemory`, `maxmemory-policy`, `appendonly`, `appendfsync`, `save` | `CONFIG SET` on every Redis |
//! | `require-auth`, `password`, `rotate-password` | `ACL SETUSER default` on every Redis and Sentinel, `CONFIG SET masterauth`, `SENTINEL SET auth-pass`, `SENTINEL CONFIG SET sentinel-pass`, `CONFIG SET protected-mode` |
//! | unit count | `SENTINEL SET quorum` on every Sentinel (and `SENTINEL RESET` after a scale-down) |
//! | `port` | not at run time: it changes the pod template, and Kubernetes restarts the pods one at a time |
//!
//! Pods that are not running (their name does not resolve or the connection is refused) are skipped: they read
//! their files when they start (Juju's status shows a unit whose container is not running on its own). A running
//! pod that refuses a change or does not answer is an error naming the pod and what it refused, which fails the
//! hook in Apply mode (Juju retries it) and becomes a status in Verify mode.
//!
//! Everything here goes through [`Admin`], so it is tested against [`super::admin::fake::FakeCluster`].

use std::time::Duration;

use super::admin::{Admin, AdminError, Node, NodeKind, Replication, Role, cmd, pairs, text};
use super::config::{RedisConfig, SENTINEL_PORT};
use super::peers::Shared;
use super::topology::{pod_host, sentinel_quorum};

/// How long one session with a pod may take.
pub const TIMEOUT: Duration = Duration::from_millis(2000);

/// Sentinel settings the start script writes, re-applied when the leader re-points a Sentinel.
const SENTINEL_SETTINGS: [(&str, &str); 3] =
    [("down-after-milliseconds", "5000"), ("failover-timeout", "30000"), ("parallel-syncs", "1")];

/// The state the running pods should be in.
#[derive(Clone, PartialEq, Eq)]
pub struct Desired {
    pub app: String,
    pub units: u32,
    pub port: u16,
    /// `CONFIG SET` parameters and values for every Redis (`masterauth` included).
    pub settings: Vec<(&'static str, String)>,
    /// The passwords every server accepts (the current one first); empty when auth is off.
    pub passwords: Vec<String>,
    /// The passwords the servers may still require (the shared ones, even with auth now off).
    known: Vec<String>,
    /// The password generation in force (see [`super::auth`]), which stands for the passwords in the fingerprint.
    generation: u64,
}

/// Hides the passwords (they are also in `settings`, as `masterauth`).
impl std::fmt::Debug for Desired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (*k, if *k == "masterauth" && !v.is_empty() { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("Desired")
            .field("app", &self.app)
            .field("units", &self.units)
            .field("port", &self.port)
            .field("settings", &settings)
            .field("passwords", &self.passwords.len())
            .field("known", &self.known.len())
            .finish()
    }
}

impl Desired {
    /// From a valid config, the passwords the peer bag holds (committed by Juju) and the unit count. Accepted:
    /// the password and, during a rotation, the previous one; or, while a new password is pending, the pending one
    /// and the current one, with the pending one used from now on (see [`super::auth`]). With auth off no
    /// password is accepted or sent.
    pub fn new(app: &str, cfg: &RedisConfig, shared: &Shared, units: u32) -> Desired {
        let (password, previous, pending) =
            (shared.password.as_deref(), shared.previous.as_deref(), shared.pending.as_deref());
        let mut known: Vec<String> = Vec::new();
        for p in [pending, password, previous].into_iter().flatten() {
            if !known.iter().any(|k| k == p) {
                known.push(p.to_string());
            }
        }
        let accepted = match pending {
            Some(_) => known.iter().take(2).cloned().collect(),
            None => known.clone(),
        };
        let passwords = if cfg.require_auth { accepted } else { Vec::new() };
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        let settings = vec![
            ("maxmemory", cfg.maxmemory.to_string()),
            ("maxmemory-policy", cfg.maxmemory_policy.as_str().to_string()),
            ("appendonly", yes_no(cfg.appendonly)),
            ("appendfsync", cfg.appendfsync.as_str().to_string()),
            ("save", super::pod::save_value(cfg)),
            ("protected-mode", yes_no(cfg.require_auth)),
            ("masterauth", passwords.first().cloned().unwrap_or_default()),
        ];
        Desired {
            app: app.to_string(),
            units: units.max(1),
            port: cfg.port,
            settings,
            passwords,
            known,
            generation: shared.generation,
        }
    }

    /// A stable digest of everything here, to tell whether it changed since it was last applied. The passwords
    /// stand in it as their generation and how many are accepted (every change of password bumps the generation),
    /// so the digest holds nothing derived from a secret.
    pub fn fingerprint(&self) -> String {
        let settings: Vec<(&str, &str)> =
            self.settings.iter().filter(|(k, _)| *k != "masterauth").map(|(k, v)| (*k, v.as_str())).collect();
        let auth = (self.generation, self.passwords.len(), self.known.len());
        crate::reactive::hash_json(&(&self.app, self.units, self.port, settings, auth))
    }

    fn quorum(&self) -> u32 {
        sentinel_quorum(self.units)
    }

    /// The credentials to offer a server, in order: the current password, the previous one, none (a server that
    /// runs without auth). With auth off, none comes first.
    pub(crate) fn credentials(&self) -> Vec<Option<&str>> {
        let mut c: Vec<Option<&str>> = self.known.iter().map(|p| Some(p.as_str())).collect();
        if self.passwords.is_empty() {
            c.insert(0, None);
        } else {
            c.push(None);
        }
        c
    }

    /// `ACL SETUSER default …`: exactly the passwords in force, or none.
    fn acl(&self) -> Vec<String> {
        let mut c = cmd(&["ACL", "SETUSER", "default", "on"]);
        if self.passwords.is_empty() {
            c.push("nopass".into());
        } else {
            c.push("resetpass".into());
            c.extend(self.passwords.iter().map(|p| format!(">{p}")));
        }
        c.extend(["~*", "&*", "+@all"].map(String::from));
        c
    }

    pub(crate) fn outgoing(&self) -> String {
        self.passwords.first().cloned().unwrap_or_default()
    }

    pub(crate) fn redis(&self, ordinal: u32) -> Node {
        let pod = format!("{}-{ordinal}", self.app);
        Node::new(&pod, NodeKind::Redis, &format!("{}:{}", pod_host(&self.app, ordinal), self.port))
    }

    pub(crate) fn sentinel(&self, ordinal: u32) -> Node {
        let pod = format!("{}-{ordinal}", self.app);
        Node::new(&pod, NodeKind::Sentinel, &format!("{}:{SENTINEL_PORT}", pod_host(&self.app, ordinal)))
    }
}

/// Whether to change the pods or only to check them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send every setting to every running pod (the desired state changed).
    Apply,
    /// Read the pods; repair only what differs; report problems instead of failing.
    Verify,
}

/// What the leader found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The pod that answers as the only primary.
    pub primary: Option<String>,
    /// Pods whose Redis is not running (skipped).
    pub not_running: Vec<String>,
    /// Replicas linked to the primary.
    pub linked: Vec<String>,
    /// What is wrong, one phrase per problem, naming the pod.
    pub problems: Vec<String>,
    /// Replicas whose link to the primary is down: normal for a few seconds after a replica (re)starts, while
    /// it syncs; a problem when it lasts.
    pub lagging: Vec<String>,
    /// What is wrong for the moment while pods restart or a failover runs (no writable primary yet, a Sentinel
    /// naming a primary that is restarting): a problem when it lasts.
    pub settling: Vec<String>,
    /// What the leader changed (for the hook's trace), never a value.
    pub changed: Vec<String>,
    /// When no pod answers as the primary: the ordinal and replication offset of each pod that answered as a
    /// replica (what [`recover_primary`] chooses from).
    stranded: Vec<(u32, u64)>,
    /// A Sentinel reports a failover under way (`failover_in_progress` in its flags).
    failover_running: bool,
}

struct PodState {
    ordinal: u32,
    replication: Option<Replication>,
}

/// Brings every running pod to `desired` (or checks it, in Verify mode) and reports the replication health.
///
/// Order matters during a password change: first every server accepts every password in force, then servers
/// start using the current one towards each other, so no link is ever refused.
pub fn converge(admin: &mut Admin, desired: &Desired, mode: Mode) -> Result<Health, AdminError> {
    let mut health = Health::default();
    let creds = desired.credentials();
    let verify = mode == Mode::Verify;
    // Pass 1: passwords accepted by every Redis and Sentinel.
    if !verify {
        for n in 0..desired.units {
            for node in [desired.redis(n), desired.sentinel(n)] {
                match admin.run(&node, &creds, &[desired.acl()], TIMEOUT) {
                    Ok(_) => {}
                    Err(e) if e.is_not_running() => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // Pass 2: every Redis's settings, and what it says about replication.
    let mut pods = Vec::new();
    for n in 0..desired.units {
        let node = desired.redis(n);
        let state = match redis_pass(admin, desired, &node, mode, &mut health) {
            Ok(r) => r,
            Err(e) if e.is_not_running() => {
                health.not_running.push(node.pod.clone());
                None
            }
            Err(e) if verify => {
                health.unanswered(e);
                None
            }
            Err(e) => return Err(e),
        };
        pods.push(PodState { ordinal: n, replication: state });
    }
    let primaries: Vec<&PodState> =
        pods.iter().filter(|p| p.replication.as_ref().is_some_and(Replication::is_primary)).collect();
    match primaries.as_slice() {
        [p] => health.primary = Some(desired.redis(p.ordinal).pod),
        [] if pods.iter().any(|p| p.replication.is_some()) => {
            health.settling.push("no writable primary".into());
            health.stranded = pods.iter().filter_map(|p| Some((p.ordinal, p.replication.as_ref()?.offset))).collect();
        }
        [] => {}
        many => {
            // Seen for a moment in every hand-over (the replica promoted while the stopping primary, its writes
            // paused, has not yet followed it): looked at again before it is reported (found by the soak, seed
            // 0x18ec6193e259601b: an update-status during a rolling restart).
            let names: Vec<String> = many.iter().map(|p| desired.redis(p.ordinal).pod).collect();
            health.settling.push(format!("several primaries: {}", names.join(", ")));
        }
    }
    if let Some(primary) = &health.primary {
        let primary_host = pod_host(&desired.app, ordinal_of(primary));
        for p in &pods {
            let pod = desired.redis(p.ordinal).pod;
            if let Some(Replication { role: Role::Replica { host, port, link_up }, .. }) = &p.replication {
                if *link_up && *host == primary_host && *port == desired.port {
                    health.linked.push(pod);
                } else if *host != primary_host || *port != desired.port {
                    health.problems.push(format!("{pod} replicates from {host}:{port}, not the primary"));
                } else {
                    health.lagging.push(pod);
                }
            }
        }
    }
    // Pass 3: every Sentinel's quorum, credentials and primary.
    let primary = health.primary.clone();
    for n in 0..desired.units {
        let node = desired.sentinel(n);
        match sentinel_pass(admin, desired, &node, primary.as_deref(), mode, &mut health) {
            Ok(()) => {}
            Err(e) if e.is_not_running() => {}
            Err(e) if verify => health.unanswered(e),
            Err(e) => return Err(e),
        }
    }
    Ok(health)
}

fn ordinal_of(pod: &str) -> u32 {
    pod.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The settings a Redis reports, as `CONFIG GET` names them.
const SETTING_NAMES: [&str; 7] =
    ["maxmemory", "maxmemory-policy", "appendonly", "appendfsync", "save", "protected-mode", "masterauth"];

fn redis_pass(
    admin: &mut Admin,
    desired: &Desired,
    node: &Node,
    mode: Mode,
    health: &mut Health,
) -> Result<Option<Replication>, AdminError> {
    let creds = desired.credentials();
    let info = cmd(&["INFO", "replication"]);
    let (replication_reply, differing) = if mode == Mode::Apply {
        let mut set = cmd(&["CONFIG", "SET"]);
        for (k, v) in &desired.settings {
            set.push(k.to_string());
            set.push(v.clone());
        }
        let s = admin.run(node, &creds, &[set, info], TIMEOUT)?;
        health.changed.push(format!("{}: settings", node.label()));
        (s.replies[1].clone(), Vec::new())
    } else {
        let mut get = cmd(&["CONFIG", "GET"]);
        get.extend(SETTING_NAMES.iter().map(|s| s.to_string()));
        let s = admin.run(node, &creds, &[get, info], TIMEOUT)?;
        let current = pairs(&s.replies[0]);
        let mut differing: Vec<(&'static str, String)> = desired
            .settings
            .iter()
            .filter(|(k, v)| current.get(*k).map(String::as_str) != Some(v.as_str()))
            .cloned()
            .collect();
        // The server did not take the current password (or required none): its passwords need setting.
        if s.credential != 0 {
            differing.push(("password", String::new()));
        }
        (s.replies[1].clone(), differing)
    };
    if !differing.is_empty() {
        let mut cmds = Vec::new();
        if differing.iter().any(|(k, _)| *k == "password") {
            cmds.push(desired.acl());
        }
        let mut set = cmd(&["CONFIG", "SET"]);
        for (k, v) in differing.iter().filter(|(k, _)| *k != "password") {
            set.push(k.to_string());
            set.push(v.clone());
        }
        if set.len() > 2 {
            cmds.push(set);
        }
        admin.run(node, &creds, &cmds, TIMEOUT)?;
        let names: Vec<&str> = differing.iter().map(|(k, _)| *k).collect();
        health.changed.push(format!("{}: repaired {}", node.label(), names.join(", ")));
    }
    let replication = text(&replication_reply).and_then(|t| Replication::parse(&t));
    if replication.is_none() {
        return Err(AdminError::Failed { node: node.label(), detail: "INFO replication made no sense".into() });
    }
    Ok(replication)
}

fn sentinel_pass(
    admin: &mut Admin,
    desired: &Desired,
    node: &Node,
    primary: Option<&str>,
    mode: Mode,
    health: &mut Health,
) -> Result<(), AdminError> {
    let creds = desired.credentials();
    let app = desired.app.as_str();
    let quorum = desired.quorum().to_string();
    let master = cmd(&["SENTINEL", "MASTER", app]);
    let s = if mode == Mode::Apply {
        let set = cmd(&["SENTINEL", "SET", app, "quorum", &quorum, "auth-pass", &desired.outgoing()]);
        let pass = cmd(&["SENTINEL", "CONFIG", "SET", "sentinel-pass", &desired.outgoing()]);
        let s = admin.session(node, &creds, &[set, pass, master], TIMEOUT)?;
        health.changed.push(format!("{}: quorum and credentials", node.label()));
        s
    } else {
        admin.session(node, &creds, &[master], TIMEOUT)?
    };
    let reply = s.replies.last().cloned().unwrap_or(super::resp::Resp::Null);
    // "No such master" means it monitors nothing under this name (re-pointed below); any other error is a failure.
    if let super::resp::Resp::Error(e) = &reply
        && !e.contains("No such master")
    {
        return Err(AdminError::Rejected { node: node.label(), command: "SENTINEL MASTER".into(), message: e.clone() });
    }
    let monitored = pairs(&reply);
    if monitored.get("flags").is_some_and(|f| f.contains("failover_in_progress")) {
        health.failover_running = true;
    }
    // Apply mode: a refused SENTINEL SET means the Sentinel does not monitor the primary under our name (handled
    // below by re-pointing it); anything else refused is an error.
    if mode == Mode::Apply
        && let Some(super::resp::Resp::Error(e)) = s.replies.get(1)
    {
        return Err(AdminError::Rejected {
            node: node.label(),
            command: "SENTINEL CONFIG SET".into(),
            message: e.clone(),
        });
    }
    let wanted = primary.map(|p| (pod_host(app, ordinal_of(p)), desired.port));
    let current =
        monitored.get("ip").zip(monitored.get("port").and_then(|p| p.parse::<u16>().ok())).map(|(h, p)| (h.clone(), p));
    match (&wanted, &current) {
        (Some(w), Some(c)) if w == c => {
            if mode == Mode::Verify && monitored.get("quorum") != Some(&quorum) {
                admin.run(node, &creds, &[cmd(&["SENTINEL", "SET", app, "quorum", &quorum])], TIMEOUT)?;
                health.changed.push(format!("{}: repaired quorum", node.label()));
            }
            if s.credential != 0 {
                repair_sentinel_credentials(admin, desired, node, health)?;
            }
        }
        (Some((host, port)), _) => {
            // The Sentinel watches another address (a port it has not seen change, a pod it was never told about)
            // or nothing: point it at the primary the pods agree on, with the settings the start script uses.
            let mut cmds = vec![
                cmd(&["SENTINEL", "REMOVE", app]),
                cmd(&["SENTINEL", "MONITOR", app, host, &port.to_string(), &quorum]),
            ];
            let mut set = cmd(&["SENTINEL", "SET", app, "auth-pass", &desired.outgoing()]);
            for (k, v) in SENTINEL_SETTINGS {
                set.push(k.to_string());
                set.push(v.to_string());
            }
            cmds.push(set);
            let s = admin.session(node, &creds, &cmds, TIMEOUT)?;
            if let Some(super::resp::Resp::Error(e)) =
                s.replies[1..].iter().find(|r| matches!(r, super::resp::Resp::Error(_)))
            {
                return Err(AdminError::Rejected {
                    node: node.label(),
                    command: "SENTINEL MONITOR".into(),
                    message: e.clone(),
                });
            }
            let was = current.map(|(h, p)| format!("{h}:{p}")).unwrap_or_else(|| "nothing".into());
            health.changed.push(format!("{}: now monitors {host}:{port} (was {was})", node.label()));
        }
        (None, Some((h, p))) => {
            let what = format!("{} names {h}:{p}, which does not answer as the primary", node.label());
            let restarting = super::topology::pod_of(app, h).is_some_and(|pod| health.not_running.contains(&pod));
            // Without a single primary (none, or several in a hand-over) what a Sentinel names is judged once
            // the pods have settled on one.
            let unsettled =
                health.settling.iter().any(|s| s == "no writable primary" || s.starts_with("several primaries"));
            if restarting || unsettled {
                health.settling.push(what);
            } else if mode == Mode::Verify {
                health.problems.push(what);
            }
        }
        (None, None) => health.problems.push(format!("{} knows no primary", node.label())),
    }
    Ok(())
}

fn repair_sentinel_credentials(
    admin: &mut Admin,
    desired: &Desired,
    node: &Node,
    health: &mut Health,
) -> Result<(), AdminError> {
    let app = desired.app.as_str();
    let cmds = [
        desired.acl(),
        cmd(&["SENTINEL", "SET", app, "auth-pass", &desired.outgoing()]),
        cmd(&["SENTINEL", "CONFIG", "SET", "sentinel-pass", &desired.outgoing()]),
    ];
    admin.run(node, &desired.credentials(), &cmds, TIMEOUT)?;
    health.changed.push(format!("{}: repaired credentials", node.label()));
    Ok(())
}

impl Health {
    /// A node that failed to answer a check: no answer in time (a stalled or overloaded server) is worth looking
    /// at again before it is reported; a refusal is a problem at once.
    fn unanswered(&mut self, e: AdminError) {
        match e {
            AdminError::Failed { .. } => self.settling.push(e.to_string()),
            _ => self.problems.push(e.to_string()),
        }
    }

    /// The status message for what is wrong, or `None`; `lasting`: what only lasts while things settle
    /// (lagging replicas, a failover under way) counts too.
    pub fn degraded(&self, lasting: bool) -> Option<String> {
        let mut what = self.problems.clone();
        if lasting {
            what.extend(self.settling.iter().cloned());
            if !self.lagging.is_empty() {
                what.push(format!("{} not linked to the primary", self.lagging.join(", ")));
            }
        }
        (!what.is_empty()).then(|| format!("replication degraded: {}", what.join("; ")))
    }
}

/// [`converge`] in Verify mode, looking again (at most `attempts` times, `pause` apart) while what is wrong is
/// what settles by itself: a replica that restarted a moment ago is still syncing, a failover takes a few seconds.
/// A pod that is not running, or that refuses, is reported at once. When, after looking again, no pod is a
/// writable primary, one is promoted ([`recover_primary`]) and the deployment is looked at again.
pub fn verify_settled(
    admin: &mut Admin,
    desired: &Desired,
    attempts: u32,
    pause: Duration,
) -> Result<Health, AdminError> {
    let first = converge(admin, desired, Mode::Verify)?;
    let mut health = look_again(admin, desired, first, attempts, pause)?;
    if attempts > 1
        && let Some(promoted) = recover_primary(admin, desired, &health)?
    {
        let mut changed = std::mem::take(&mut health.changed);
        changed.push(format!("{promoted}: promoted, as no pod was a writable primary"));
        // The others have just been told to follow it: they sync, then they are looked at as before.
        let after = converge(admin, desired, Mode::Verify)?;
        health = look_again(admin, desired, after, attempts, pause)?;
        health.changed.splice(0..0, changed);
    }
    Ok(health)
}

/// [`converge`] in apply mode, run again (at most `attempts` in all, `pause` apart) when a server did not answer in
/// time: a Sentinel busy for a moment (resolving its peers' names, saving its config, in TILT after a stall)
/// must not fail the hook, while one that keeps not answering does. Every step is idempotent, so a pass that
/// got half way is simply run again. `changed` lists what the pass that succeeded changed.
pub fn apply_patiently(
    admin: &mut Admin,
    desired: &Desired,
    attempts: u32,
    pause: Duration,
) -> Result<Health, AdminError> {
    let mut attempt = 1;
    loop {
        match converge(admin, desired, Mode::Apply) {
            Err(AdminError::Failed { .. }) if attempt < attempts => {
                attempt += 1;
                std::thread::sleep(pause);
            }
            other => return other,
        }
    }
}

/// Converges again (at most `attempts - 1` more times, `pause` apart) while what `health` found settles by itself;
/// what each look changed is kept.
fn look_again(
    admin: &mut Admin,
    desired: &Desired,
    mut health: Health,
    attempts: u32,
    pause: Duration,
) -> Result<Health, AdminError> {
    for _ in 1..attempts.max(1) {
        let settling = !health.lagging.is_empty() || !health.settling.is_empty();
        if !settling {
            break;
        }
        std::thread::sleep(pause);
        let changed = std::mem::take(&mut health.changed);
        health = converge(admin, desired, Mode::Verify)?;
        health.changed.splice(0..0, changed);
    }
    Ok(health)
}

/// Makes a pod the primary when, after looking again, none is: every pod runs and answers as a replica (of one
/// another in a circle, of a pod that is gone, or of an address that is not one of this application's pods, as a
/// Sentinel reachable without a password can be made to name) and no Sentinel is failing over. Sentinel cannot
/// end this itself: it promotes only a replica whose link to the primary it monitors was up recently. The pod with
/// the highest replication offset (the lowest ordinal on a tie) has the most of the data: it is told `REPLICAOF NO
/// ONE`, the others follow it, and the next pass points every Sentinel at it. Returns the promoted pod.
///
/// Nothing is done while any pod is not running or did not answer: that pod may be the primary, restarting.
pub fn recover_primary(admin: &mut Admin, desired: &Desired, health: &Health) -> Result<Option<String>, AdminError> {
    if health.primary.is_some()
        || health.failover_running
        || health.stranded.is_empty()
        || health.stranded.len() != desired.units as usize
    {
        return Ok(None);
    }
    let Some(&(chosen, _)) =
        health.stranded.iter().max_by_key(|(ordinal, offset)| (*offset, std::cmp::Reverse(*ordinal)))
    else {
        return Ok(None);
    };
    let creds = desired.credentials();
    let node = desired.redis(chosen);
    admin.run(&node, &creds, &[cmd(&["REPLICAOF", "NO", "ONE"])], TIMEOUT)?;
    let host = pod_host(&desired.app, chosen);
    let port = desired.port.to_string();
    for &(ordinal, _) in health.stranded.iter().filter(|(o, _)| *o != chosen) {
        admin.run(&desired.redis(ordinal), &creds, &[cmd(&["REPLICAOF", &host, &port])], TIMEOUT)?;
    }
    Ok(Some(node.pod))
}

/// Moves every running Redis from `from_port` to `desired.port` without restarting it (`CONFIG SET port`, which
/// Redis 7.0 and later apply at once, keeping connected clients): the sidecar flavour's port change, where a new
/// port is only in files and Pebble checks, so a replan restarts nothing. In order, so that no Sentinel fails a
/// primary over while it moves:
///
/// 1. every Sentinel stops monitoring the application (`SENTINEL REMOVE`);
/// 2. every Redis still on `from_port` moves to the new port;
/// 3. every replica of a pod on `from_port` follows it on the new port (`REPLICAOF`).
///
/// The converge that follows points the Sentinels at the primary again (`SENTINEL MONITOR`). A pod that is not
/// running is left to its files, which carry the new port. Returns what changed; a Redis that refuses the move
/// (older than 7.0: "Unsupported CONFIG parameter") is an error naming it, after which the Sentinels are left
/// for the converge to restore.
pub fn move_port(admin: &mut Admin, desired: &Desired, from_port: u16) -> Result<Vec<String>, AdminError> {
    let mut changed = Vec::new();
    if from_port == desired.port {
        return Ok(changed);
    }
    let creds = desired.credentials();
    let old = Desired { port: from_port, ..desired.clone() };
    for n in 0..desired.units {
        let node = desired.sentinel(n);
        match admin.session(&node, &creds, &[cmd(&["SENTINEL", "REMOVE", &desired.app])], TIMEOUT) {
            Ok(_) => changed.push(format!("{}: stopped monitoring while the port moves", node.label())),
            Err(e) if e.is_not_running() => {}
            Err(e) => return Err(e),
        }
    }
    let new_port = desired.port.to_string();
    for n in 0..desired.units {
        let node = old.redis(n);
        match admin.run(&node, &creds, &[cmd(&["CONFIG", "SET", "port", &new_port])], TIMEOUT) {
            Ok(_) => changed.push(format!("{}: now listens on {new_port} (was {from_port})", node.label())),
            Err(e) if e.is_not_running() => {}
            Err(e) => return Err(e),
        }
    }
    for n in 0..desired.units {
        let node = desired.redis(n);
        let info = match admin.session(&node, &creds, &[cmd(&["INFO", "replication"])], TIMEOUT) {
            Ok(s) => text(&s.replies[0]).and_then(|t| Replication::parse(&t)),
            Err(e) if e.is_not_running() => None,
            Err(e) => return Err(e),
        };
        if let Some(Replication { role: Role::Replica { host, port, .. }, .. }) = info
            && port == from_port
        {
            admin.run(&node, &creds, &[cmd(&["REPLICAOF", &host, &new_port])], TIMEOUT)?;
            changed.push(format!("{}: follows {host}:{new_port}", node.label()));
        }
    }
    Ok(changed)
}

/// What [`after_scale_down`] did, for the hook's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Departure {
    pub trace: Vec<String>,
}

/// After a scale-down took pod `gone` away: waits (at most `wait` in all) until it no longer answers and a pod
/// that remains is the primary, then makes each remaining Sentinel forget it (`SENTINEL RESET`, one Sentinel at a
/// time, each given a moment to rediscover the others, so the quorum never rests on a Sentinel that is gone).
pub fn after_scale_down(admin: &mut Admin, desired: &Desired, gone: &str, wait: Duration) -> Departure {
    let mut out = Departure::default();
    let deadline = std::time::Instant::now() + wait;
    let creds = desired.credentials();
    let gone_ordinal = super::topology::ordinal(gone).unwrap_or(desired.units);
    let answers = |admin: &mut Admin, node: &Node| match admin.session(node, &creds, &[cmd(&["PING"])], TIMEOUT) {
        Err(e) => !e.is_not_running(),
        Ok(_) => true,
    };
    let gone_nodes = [desired.redis(gone_ordinal), desired.sentinel(gone_ordinal)];
    while gone_nodes.iter().any(|n| answers(admin, n)) {
        if std::time::Instant::now() >= deadline {
            out.trace.push(format!("{gone} still answers: its Sentinel entries are left to expire"));
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    loop {
        let primary = (0..desired.units).find(|n| {
            admin
                .session(&desired.redis(*n), &creds, &[cmd(&["INFO", "replication"])], TIMEOUT)
                .ok()
                .and_then(|s| text(&s.replies[0]))
                .and_then(|t| Replication::parse(&t))
                .is_some_and(|r| r.is_primary())
        });
        if let Some(n) = primary {
            out.trace.push(format!("{gone} is gone; the primary is {}", desired.redis(n).pod));
            break;
        }
        if std::time::Instant::now() >= deadline {
            out.trace.push(format!("{gone} is gone and no remaining pod is the primary yet"));
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let others = i64::from(desired.units) - 1;
    for n in 0..desired.units {
        let node = desired.sentinel(n);
        if admin.run(&node, &creds, &[cmd(&["SENTINEL", "RESET", &desired.app])], TIMEOUT).is_err() {
            out.trace.push(format!("{} could not be reset", node.label()));
            continue;
        }
        let settle = (std::time::Instant::now() + Duration::from_secs(5)).min(deadline.max(std::time::Instant::now()));
        loop {
            let known = admin
                .session(&node, &creds, &[cmd(&["SENTINEL", "SENTINELS", &desired.app])], TIMEOUT)
                .ok()
                .map(|s| match &s.replies[0] {
                    super::resp::Resp::Array(items) => items.len() as i64,
                    _ => -1,
                })
                .unwrap_or(-1);
            if known >= others || std::time::Instant::now() >= settle {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        out.trace.push(format!("{} reset", node.label()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::admin::fake::{FakeCluster, Fault, FaultKind};

    fn admin(c: &FakeCluster) -> Admin {
        Admin::new(Box::new(c.clone()))
    }

    fn cfg() -> RedisConfig {
        RedisConfig::default()
    }

    const PW: &str = "current-password-0123456789";

    fn sh(password: Option<&str>, previous: Option<&str>) -> Shared {
        Shared {
            password: password.map(str::to_string),
            previous: previous.map(str::to_string),
            pending: None,
            generation: 1 + u64::from(previous.is_some()),
            ..Shared::default()
        }
    }
    const OLD: &str = "previous-password-0123456789";

    #[test]
    fn apply_sets_every_running_pod_and_reports_a_healthy_cluster() {
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        let d = Desired::new("r", &RedisConfig { maxmemory: 100 << 20, ..cfg() }, &sh(Some(PW), None), 3);
        let h = converge(&mut admin(&c), &d, Mode::Apply).unwrap();
        assert_eq!(h.primary.as_deref(), Some("r-0"));
        assert_eq!(h.linked, ["r-1", "r-2"]);
        assert!(h.problems.is_empty(), "{h:?}");
        for n in 0..3 {
            assert_eq!(c.redis(&format!("r-{n}.r-endpoints:6379")).config["maxmemory"], (100u64 << 20).to_string());
        }
    }

    #[test]
    fn a_rotation_adds_the_new_password_everywhere_before_anything_uses_it() {
        let c = FakeCluster::healthy("r", 3, 6379, Some(OLD));
        let d = Desired::new("r", &cfg(), &sh(Some(PW), Some(OLD)), 3);
        converge(&mut admin(&c), &d, Mode::Apply).unwrap();
        let calls = c.calls();
        let first_use = calls.iter().position(|k| k.cmds.iter().any(|c| c.iter().any(|a| a == PW) && c[0] != "ACL"));
        let last_acl = calls.iter().rposition(|k| k.cmds.iter().any(|c| c[0] == "ACL"));
        assert!(last_acl < first_use, "every ACL change comes before the first use of the new password");
        for n in 0..3 {
            let r = c.redis(&format!("r-{n}.r-endpoints:6379"));
            assert_eq!(r.passwords, [PW, OLD]);
            assert_eq!(r.config["masterauth"], PW);
            let s = c.sentinel(&format!("r-{n}.r-endpoints:26379"));
            assert_eq!(s.passwords, [PW, OLD]);
            assert_eq!(s.sentinel_pass, PW);
            assert_eq!(s.monitor.unwrap().auth_pass, PW);
        }
        // Then the old one goes.
        let d = Desired::new("r", &cfg(), &sh(Some(PW), None), 3);
        converge(&mut admin(&c), &d, Mode::Apply).unwrap();
        assert_eq!(c.redis("r-2.r-endpoints:6379").passwords, [PW]);
    }

    #[test]
    fn pods_that_are_not_running_are_skipped_and_running_ones_that_fail_are_errors() {
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        c.state_mut().redis.get_mut("r-2.r-endpoints:6379").unwrap().running = false;
        let d = Desired::new("r", &RedisConfig { maxmemory: 1 << 20, ..cfg() }, &sh(Some(PW), None), 3);
        let h = converge(&mut admin(&c), &d, Mode::Apply).unwrap();
        assert_eq!(h.not_running, ["r-2"]);
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        c.inject(Fault { command: Some("CONFIG SET".into()), ..Fault::on("r-1", FaultKind::Reply("ERR nope".into())) });
        let e = converge(&mut admin(&c), &d, Mode::Apply).unwrap_err();
        assert_eq!(e.to_string(), "r-1 refused CONFIG SET: ERR nope");
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        c.inject(Fault::on("r-1.r-endpoints:6379", FaultKind::Timeout));
        let e = converge(&mut admin(&c), &d, Mode::Apply).unwrap_err();
        assert!(e.to_string().starts_with("r-1 did not answer"), "{e}");
        // Verify mode reports instead: a node that does not answer is looked at again before it counts.
        let h = converge(&mut admin(&c), &d, Mode::Verify).unwrap();
        assert!(h.settling.iter().any(|p| p.starts_with("r-1 did not answer")), "{h:?}");
        assert_eq!(h.degraded(false), None);
        assert!(h.degraded(true).is_some_and(|m| m.contains("r-1 did not answer")), "{h:?}");
        let h = verify_settled(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert!(h.degraded(true).is_some_and(|m| m.contains("r-1 did not answer")), "{h:?}");
        // Once: the next look finds it well, and nothing is reported.
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        c.inject(Fault { times: 1, ..Fault::on("r-1.r-endpoints:26379", FaultKind::Timeout) });
        let h = verify_settled(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert_eq!(h.degraded(true), None, "{h:?}");
        // A refusal is reported at once.
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        c.inject(Fault { command: Some("CONFIG GET".into()), ..Fault::on("r-1", FaultKind::Reply("ERR nope".into())) });
        let h = converge(&mut admin(&c), &d, Mode::Verify).unwrap();
        assert!(h.degraded(false).is_some_and(|m| m.contains("r-1 refused CONFIG GET")), "{h:?}");
    }

    #[test]
    fn verify_repairs_drift_and_repoints_sentinels_at_the_real_primary() {
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        let d = Desired::new("r", &cfg(), &sh(Some(PW), None), 3);
        // A pod restarted with a stale file, a Sentinel with a stale port and quorum.
        c.state_mut().redis.get_mut("r-1.r-endpoints:6379").unwrap().config.insert("maxmemory".into(), "5".into());
        if let Some(m) = c.state_mut().sentinels.get_mut("r-2.r-endpoints:26379").unwrap().monitor.as_mut() {
            m.port = 7000;
            m.quorum = 1;
        }
        let h = converge(&mut admin(&c), &d, Mode::Verify).unwrap();
        assert_eq!(c.redis("r-1.r-endpoints:6379").config["maxmemory"], "0");
        let m = c.sentinel("r-2.r-endpoints:26379").monitor.unwrap();
        assert_eq!((m.host.as_str(), m.port, m.quorum), ("r-0.r-endpoints", 6379, 2));
        assert!(h.problems.is_empty(), "{h:?}");
        assert_eq!(h.changed.len(), 2, "{h:?}");
        // Verify of a healthy cluster changes nothing and costs one session per server.
        let before = c.calls().len();
        let h = converge(&mut admin(&c), &d, Mode::Verify).unwrap();
        assert!(h.changed.is_empty(), "{h:?}");
        assert_eq!(c.calls().len() - before, 6);
    }

    /// Sets every pod of `c` to replicate from `of(ordinal)` with the link down (up for `link_up`), at `offsets`.
    fn strand(c: &FakeCluster, of: impl Fn(u32) -> (String, u16), offsets: [u64; 3], link_up: bool) {
        for n in 0..3u32 {
            let mut st = c.state_mut();
            let r = st.redis.get_mut(&format!("r-{n}.r-endpoints:6379")).unwrap();
            r.replica_of = Some(of(n));
            r.link_up = link_up;
            r.offset = offsets[n as usize];
        }
    }

    /// The sidecar flavour's port change: Sentinels stop watching, every Redis moves live, replicas follow the
    /// primary on its new port, and the converge after it points the Sentinels at the primary again.
    #[test]
    fn a_port_moves_live_with_the_sentinels_out_of_the_way() {
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        let d = Desired { port: 7000, ..Desired::new("r", &cfg(), &sh(Some(PW), None), 3) };
        let changed = move_port(&mut admin(&c), &d, 6379).unwrap();
        assert_eq!(changed.iter().filter(|c| c.contains("now listens on 7000 (was 6379)")).count(), 3, "{changed:?}");
        for n in 0..3 {
            let r = c.redis(&format!("r-{n}.r-endpoints:7000"));
            assert_eq!(r.replica_of, (n > 0).then(|| ("r-0.r-endpoints".to_string(), 7000)), "r-{n}");
            assert!(c.sentinel(&format!("r-{n}.r-endpoints:26379")).monitor.is_none(), "r-{n}'s Sentinel stopped");
        }
        let h = converge(&mut admin(&c), &d, Mode::Apply).unwrap();
        assert_eq!(h.primary.as_deref(), Some("r-0"), "{h:?}");
        for n in 0..3 {
            let m = c.sentinel(&format!("r-{n}.r-endpoints:26379")).monitor.unwrap();
            assert_eq!((m.host.as_str(), m.port), ("r-0.r-endpoints", 7000));
        }
        assert!(move_port(&mut admin(&c), &d, 7000).unwrap().is_empty(), "nothing to move");
    }

    /// A server that does not answer in time once is asked again; one that keeps not answering fails the pass.
    #[test]
    fn an_apply_pass_asks_again_a_server_that_did_not_answer_in_time() {
        use crate::redis::admin::fake::{Fault, FaultKind};
        let d = Desired::new("r", &cfg(), &sh(Some(PW), None), 3);
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        c.inject(Fault { times: 1, ..Fault::on("r-1.r-endpoints:26379", FaultKind::Timeout) });
        let h = apply_patiently(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert_eq!(h.primary.as_deref(), Some("r-0"));
        c.inject(Fault { times: 10, ..Fault::on("r-1.r-endpoints:26379", FaultKind::Timeout) });
        let e = apply_patiently(&mut admin(&c), &d, 3, Duration::ZERO).unwrap_err();
        assert!(matches!(e, AdminError::Failed { .. }), "{e:?}");
    }

    /// Two primaries are what a hand-over looks like for a moment: looked at again, and reported only if they
    /// last.
    #[test]
    fn several_primaries_are_looked_at_again_before_they_are_reported() {
        let d = Desired::new("r", &cfg(), &sh(Some(PW), None), 3);
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        c.state_mut().redis.get_mut("r-2.r-endpoints:6379").unwrap().replica_of = None;
        let h = converge(&mut admin(&c), &d, Mode::Verify).unwrap();
        assert_eq!(h.degraded(false), None, "not a problem at first sight: {h:?}");
        assert!(h.degraded(true).unwrap().contains("several primaries: r-0, r-2"), "{h:?}");
        let lasting = verify_settled(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert!(lasting.degraded(true).unwrap().contains("several primaries"), "{lasting:?}");
    }

    #[test]
    fn a_deployment_left_without_a_primary_gets_the_replica_with_the_most_data_promoted() {
        let d = Desired::new("r", &cfg(), &sh(Some(PW), None), 3);
        // In a circle (each pod restarted following another that had itself restarted as a replica).
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        strand(&c, |n| (format!("r-{}.r-endpoints", (n + 1) % 3), 6379), [100, 250, 250], false);
        let h = verify_settled(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert_eq!(h.primary.as_deref(), Some("r-1"), "{h:?}");
        assert!(h.changed.iter().any(|c| c == "r-1: promoted, as no pod was a writable primary"), "{h:?}");
        assert!(c.redis("r-1.r-endpoints:6379").replica_of.is_none());
        for n in [0, 2] {
            assert_eq!(c.redis(&format!("r-{n}.r-endpoints:6379")).replica_of, Some(("r-1.r-endpoints".into(), 6379)));
        }
        for n in 0..3 {
            let m = c.sentinel(&format!("r-{n}.r-endpoints:26379")).monitor.unwrap();
            assert_eq!((m.host.as_str(), m.port), ("r-1.r-endpoints", 6379));
        }
        assert_eq!(h.degraded(true), None, "{h:?}");
        // Every pod made a replica of a server that is not one of ours (a poisoned Sentinel, auth off), the
        // Sentinels naming it too: the pods' own data wins, and the Sentinels are pointed back.
        let c = FakeCluster::healthy("r", 3, 6379, None);
        let d = Desired::new("r", &RedisConfig { require_auth: false, ..cfg() }, &sh(None, None), 3);
        strand(&c, |_| ("10.9.9.9".into(), 6379), [100, 100, 100], true);
        for n in 0..3 {
            let mut st = c.state_mut();
            let m = st.sentinels.get_mut(&format!("r-{n}.r-endpoints:26379")).unwrap().monitor.as_mut().unwrap();
            (m.host, m.port, m.quorum) = ("10.9.9.9".into(), 6379, 1);
        }
        let h = verify_settled(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert_eq!(h.primary.as_deref(), Some("r-0"), "{h:?}");
        for n in 0..3 {
            let m = c.sentinel(&format!("r-{n}.r-endpoints:26379")).monitor.unwrap();
            assert_eq!((m.host.as_str(), m.port, m.quorum), ("r-0.r-endpoints", 6379, 2));
        }
        assert_eq!(h.degraded(true), None, "{h:?}");
    }

    #[test]
    fn no_pod_is_promoted_while_one_may_be_the_primary_restarting_or_a_sentinel_fails_over() {
        let d = Desired::new("r", &cfg(), &sh(Some(PW), None), 3);
        let circle =
            |c: &FakeCluster| strand(c, |n| (format!("r-{}.r-endpoints", (n + 1) % 3), 6379), [1, 2, 3], false);
        // A pod not running.
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        circle(&c);
        c.state_mut().redis.get_mut("r-2.r-endpoints:6379").unwrap().running = false;
        let h = verify_settled(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert!(h.primary.is_none() && h.degraded(true).is_some(), "{h:?}");
        assert!(c.calls().iter().all(|call| call.cmds.iter().all(|c| c[0] != "REPLICAOF")), "{:?}", c.calls());
        // A pod that did not answer.
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        circle(&c);
        c.inject(Fault::on("r-1.r-endpoints:6379", FaultKind::Timeout));
        let h = verify_settled(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert!(h.primary.is_none(), "{h:?}");
        // A Sentinel failing over.
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        circle(&c);
        c.state_mut().sentinels.get_mut("r-0.r-endpoints:26379").unwrap().monitor.as_mut().unwrap().failing_over = true;
        let h = verify_settled(&mut admin(&c), &d, 3, Duration::ZERO).unwrap();
        assert!(h.primary.is_none(), "{h:?}");
        // A single look (the checks of other hooks) never promotes.
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        circle(&c);
        let h = verify_settled(&mut admin(&c), &d, 1, Duration::ZERO).unwrap();
        assert!(h.primary.is_none(), "{h:?}");
        let h = converge(&mut admin(&c), &d, Mode::Verify).unwrap();
        assert!(h.primary.is_none(), "{h:?}");
    }

    #[test]
    fn broken_replication_is_reported() {
        let c = FakeCluster::healthy("r", 3, 6379, Some(PW));
        c.state_mut().redis.get_mut("r-2.r-endpoints:6379").unwrap().link_up = false;
        let d = Desired::new("r", &cfg(), &sh(Some(PW), None), 3);
        let h = converge(&mut admin(&c), &d, Mode::Verify).unwrap();
        assert!(h.problems.is_empty(), "{h:?}");
        assert_eq!(h.lagging, ["r-2"]);
        c.state_mut().redis.get_mut("r-0.r-endpoints:6379").unwrap().replica_of =
            Some(("r-1.r-endpoints".into(), 6379));
        let h = converge(&mut admin(&c), &d, Mode::Verify).unwrap();
        assert!(h.primary.is_none() && h.settling.contains(&"no writable primary".to_string()), "{h:?}");
    }

    #[test]
    fn turning_auth_on_reaches_pods_that_ran_without_it() {
        let c = FakeCluster::healthy("r", 2, 6379, None);
        let d = Desired::new("r", &cfg(), &sh(Some(PW), None), 2);
        converge(&mut admin(&c), &d, Mode::Apply).unwrap();
        assert_eq!(c.redis("r-1.r-endpoints:6379").passwords, [PW]);
        assert_eq!(c.redis("r-1.r-endpoints:6379").config["protected-mode"], "yes");
        let off = Desired::new("r", &RedisConfig { require_auth: false, ..cfg() }, &sh(Some(PW), None), 2);
        converge(&mut admin(&c), &off, Mode::Apply).unwrap();
        assert!(c.redis("r-1.r-endpoints:6379").passwords.is_empty());
        assert_eq!(c.redis("r-1.r-endpoints:6379").config["masterauth"], "");
    }

    #[test]
    fn debug_output_hides_passwords() {
        let d = Desired::new("r", &cfg(), &sh(Some(PW), Some(OLD)), 3);
        let text = format!("{d:?}");
        assert!(!text.contains(PW) && !text.contains(OLD), "{text}");
    }
}
