//! A recording fake of the pods' Redis and Sentinel servers, for testing administration logic in milliseconds.
//!
//! [`FakeCluster`] implements [`Transport`] over an in-memory model of each pod's Redis (role, link, offset,
//! settings, accepted passwords) and Sentinel (what it monitors, quorum, credentials). It answers the commands the
//! charm sends the way Redis 7 does (error replies included), records every session, and injects faults: a pod not
//! running, a timeout, a refused password or an error reply, on the n-th session or on matching ones. Handles are
//! cheap clones of one shared model, so a test keeps one to inspect what the charm did.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use super::Transport;
use crate::redis::resp::{Resp, SessionError};

/// A fake pod's Redis server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRedis {
    pub running: bool,
    /// Passwords the default user accepts; empty is `nopass`.
    pub passwords: Vec<String>,
    /// `CONFIG` parameters (lower-case names).
    pub config: BTreeMap<String, String>,
    /// `None` for a primary, else the primary it replicates (`host`, `port`).
    pub replica_of: Option<(String, u16)>,
    pub link_up: bool,
    pub offset: u64,
    /// `CLIENT PAUSE … WRITE` in force.
    pub paused: bool,
}

/// What a fake Sentinel monitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub quorum: u32,
    pub auth_pass: String,
    /// Other `SENTINEL SET` parameters.
    pub settings: BTreeMap<String, String>,
    /// Bumped by `SENTINEL RESET`.
    pub resets: u32,
    /// `failover_in_progress` shows in its flags.
    pub failing_over: bool,
}

/// A fake pod's Sentinel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSentinel {
    pub running: bool,
    pub passwords: Vec<String>,
    pub sentinel_pass: String,
    pub monitor: Option<Monitor>,
}

/// What an injected fault does to the session it hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The name does not resolve / the connection is refused.
    NotRunning,
    /// No answer in time.
    Timeout,
    /// The password is refused.
    AuthRefused,
    /// Every command of the session is answered with this error reply.
    Reply(String),
}

/// A fault: on the `nth` session (0-based, counting every session), or on every session to an address
/// containing `addr` whose first command is `command` (a verb or `VERB SUB`, upper case), `times` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub nth: Option<usize>,
    pub addr: Option<String>,
    pub command: Option<String>,
    pub kind: FaultKind,
    pub times: usize,
}

impl Fault {
    /// The `nth` session fails with `kind`.
    pub fn at(nth: usize, kind: FaultKind) -> Fault {
        Fault { nth: Some(nth), addr: None, command: None, kind, times: 1 }
    }

    /// Every session to `addr` (a substring) fails with `kind`.
    pub fn on(addr: &str, kind: FaultKind) -> Fault {
        Fault { nth: None, addr: Some(addr.to_string()), command: None, kind, times: usize::MAX }
    }
}

/// One recorded session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub addr: String,
    pub password: Option<String>,
    pub cmds: Vec<Vec<String>>,
    /// The fault injected, if any.
    pub fault: Option<FaultKind>,
}

/// The whole fake cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    pub redis: BTreeMap<String, FakeRedis>,
    pub sentinels: BTreeMap<String, FakeSentinel>,
    pub calls: Vec<Call>,
    pub faults: Vec<Fault>,
}

/// A shared handle on a [`Cluster`]; implements [`Transport`].
#[derive(Debug, Clone, Default)]
pub struct FakeCluster(pub Rc<RefCell<Cluster>>);

const SENTINEL_PORT: u16 = 26379;

fn host(app: &str, n: u32) -> String {
    format!("{app}-{n}.{app}-endpoints")
}

impl FakeCluster {
    /// `units` pods of `app`: pod 0 the primary on `port`, the others linked replicas, every Sentinel
    /// monitoring pod 0 with a majority quorum; `password` accepted everywhere (`None`: no auth).
    pub fn healthy(app: &str, units: u32, port: u16, password: Option<&str>) -> FakeCluster {
        let passwords: Vec<String> = password.map(|p| vec![p.to_string()]).unwrap_or_default();
        let mut c = Cluster::default();
        for n in 0..units.max(1) {
            let mut config = BTreeMap::new();
            for (k, v) in [
                ("maxmemory", "0"),
                ("maxmemory-policy", "noeviction"),
                ("appendonly", "yes"),
                ("appendfsync", "everysec"),
                ("save", "3600 1 300 100 60 10000"),
                ("protected-mode", if password.is_some() { "yes" } else { "no" }),
                ("masterauth", password.unwrap_or("")),
                ("replica-priority", "100"),
                ("port", &port.to_string()),
            ] {
                config.insert(k.to_string(), v.to_string());
            }
            let replica_of = (n > 0).then(|| (host(app, 0), port));
            c.redis.insert(
                format!("{}:{port}", host(app, n)),
                FakeRedis {
                    running: true,
                    passwords: passwords.clone(),
                    config,
                    replica_of,
                    link_up: n > 0,
                    offset: 100,
                    paused: false,
                },
            );
            c.sentinels.insert(
                format!("{}:{SENTINEL_PORT}", host(app, n)),
                FakeSentinel {
                    running: true,
                    passwords: passwords.clone(),
                    sentinel_pass: password.unwrap_or("").to_string(),
                    monitor: Some(Monitor {
                        name: app.to_string(),
                        host: host(app, 0),
                        port,
                        quorum: units.max(1) / 2 + 1,
                        auth_pass: password.unwrap_or("").to_string(),
                        settings: BTreeMap::new(),
                        resets: 0,
                        failing_over: false,
                    }),
                },
            );
        }
        FakeCluster(Rc::new(RefCell::new(c)))
    }

    pub fn state(&self) -> std::cell::Ref<'_, Cluster> {
        self.0.borrow()
    }

    pub fn state_mut(&self) -> std::cell::RefMut<'_, Cluster> {
        self.0.borrow_mut()
    }

    /// A deep copy with its own state (for replaying a run from the same start).
    pub fn fork(&self) -> FakeCluster {
        FakeCluster(Rc::new(RefCell::new(self.state().clone())))
    }

    pub fn inject(&self, fault: Fault) {
        self.state_mut().faults.push(fault);
    }

    /// The Redis at `addr` (panics in tests if there is none).
    pub fn redis(&self, addr: &str) -> FakeRedis {
        self.state().redis.get(addr).cloned().unwrap_or_else(|| panic!("no fake Redis at {addr}"))
    }

    pub fn sentinel(&self, addr: &str) -> FakeSentinel {
        self.state().sentinels.get(addr).cloned().unwrap_or_else(|| panic!("no fake Sentinel at {addr}"))
    }

    /// Every session so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }
}

fn verb(cmd: &[String]) -> String {
    super::command_name(cmd)
}

impl Cluster {
    fn fault_for(&mut self, addr: &str, cmds: &[Vec<String>]) -> Option<FaultKind> {
        let n = self.calls.len();
        let first = cmds.first().map(|c| verb(c)).unwrap_or_default();
        let first_word = first.split(' ').next().unwrap_or_default().to_string();
        let hit = self.faults.iter_mut().find(|f| {
            f.times > 0
                && f.nth.is_none_or(|k| k == n)
                && f.addr.as_deref().is_none_or(|a| addr.contains(a))
                && f.command.as_deref().is_none_or(|c| c == first || c == first_word)
        })?;
        hit.times -= 1;
        Some(hit.kind.clone())
    }

    fn auth(passwords: &[String], password: Option<&str>) -> Result<bool, SessionError> {
        match password {
            None => Ok(passwords.is_empty()),
            Some(_) if passwords.is_empty() => Err(SessionError::AuthRefused(
                "ERR AUTH <password> called without any password configured for the default user".into(),
            )),
            Some(p) if passwords.iter().any(|q| q == p) => Ok(true),
            Some(_) => {
                Err(SessionError::AuthRefused("WRONGPASS invalid username-password pair or user is disabled.".into()))
            }
        }
    }

    fn session(&mut self, addr: &str, password: Option<&str>, cmds: &[Vec<String>]) -> Result<Vec<Resp>, SessionError> {
        let fault = self.fault_for(addr, cmds);
        self.calls.push(Call {
            addr: addr.to_string(),
            password: password.map(str::to_string),
            cmds: cmds.to_vec(),
            fault: fault.clone(),
        });
        match fault {
            Some(FaultKind::NotRunning) => {
                return Err(SessionError::NotListening(format!("cannot connect to {addr}: Connection refused")));
            }
            Some(FaultKind::Timeout) => return Err(SessionError::Failed(format!("no reply from {addr}: timed out"))),
            Some(FaultKind::AuthRefused) => {
                return Err(SessionError::AuthRefused(format!("AUTH refused by {addr}: WRONGPASS")));
            }
            Some(FaultKind::Reply(e)) => return Ok(cmds.iter().map(|_| Resp::Error(e.clone())).collect()),
            None => {}
        }
        if let Some(r) = self.redis.get(addr) {
            if !r.running {
                return Err(SessionError::NotListening(format!("cannot connect to {addr}: Connection refused")));
            }
            let authed = Self::auth(&r.passwords, password).map_err(|e| prefix(addr, e))?;
            return Ok(cmds.iter().map(|c| self.redis_command(addr, authed, c)).collect());
        }
        if let Some(s) = self.sentinels.get(addr) {
            if !s.running {
                return Err(SessionError::NotListening(format!("cannot connect to {addr}: Connection refused")));
            }
            let authed = Self::auth(&s.passwords, password).map_err(|e| prefix(addr, e))?;
            return Ok(cmds.iter().map(|c| self.sentinel_command(addr, authed, c)).collect());
        }
        Err(SessionError::NotListening(format!("cannot resolve {addr}: no such host")))
    }

    fn redis_command(&mut self, addr: &str, authed: bool, cmd: &[String]) -> Resp {
        if !authed {
            return Resp::Error("NOAUTH Authentication required.".into());
        }
        let name = verb(cmd);
        let Some(r) = self.redis.get(addr).cloned() else { return gone() };
        match name.as_str() {
            "PING" => Resp::Simple("PONG".into()),
            "INFO" => Resp::Bulk(self.info(addr, &r).into_bytes()),
            "CONFIG GET" => {
                let mut out = Vec::new();
                for key in &cmd[2..] {
                    if let Some(v) = r.config.get(&key.to_ascii_lowercase()) {
                        out.push(Resp::Bulk(key.to_ascii_lowercase().into_bytes()));
                        out.push(Resp::Bulk(v.clone().into_bytes()));
                    }
                }
                Resp::Array(out)
            }
            "CONFIG SET" => {
                let args = &cmd[2..];
                if args.is_empty() || !args.len().is_multiple_of(2) {
                    return Resp::Error("ERR wrong number of arguments for 'config|set' command".into());
                }
                for kv in args.chunks(2) {
                    let key = kv[0].to_ascii_lowercase();
                    if !r.config.contains_key(&key) {
                        return Resp::Error(format!(
                            "ERR Unknown option or number of arguments for CONFIG SET - '{key}'"
                        ));
                    }
                    if key == "maxmemory" && parse_size(&kv[1]).is_none() {
                        return Resp::Error(format!(
                            "ERR CONFIG SET failed (possibly related to argument '{key}') - argument must be a memory value"
                        ));
                    }
                }
                let r = match self.redis.get_mut(addr) {
                    Some(r) => r,
                    None => return gone(),
                };
                for kv in args.chunks(2) {
                    let key = kv[0].to_ascii_lowercase();
                    let value =
                        if key == "maxmemory" { parse_size(&kv[1]).unwrap_or(0).to_string() } else { kv[1].clone() };
                    r.config.insert(key, value);
                }
                // A new port: the server now answers there (Redis 7.0+ rebinds at once), not at the old address.
                if let Some(port) = args.chunks(2).find(|kv| kv[0].eq_ignore_ascii_case("port")).map(|kv| kv[1].clone())
                    && let Some((host, _)) = addr.rsplit_once(':')
                    && let Some(moved) = self.redis.remove(addr)
                {
                    self.redis.insert(format!("{host}:{port}"), moved);
                }
                Resp::Simple("OK".into())
            }
            "ACL SETUSER" => match set_user(
                &cmd[2..],
                &mut match self.redis.get_mut(addr) {
                    Some(r) => r,
                    None => return gone(),
                }
                .passwords,
            ) {
                Ok(()) => Resp::Simple("OK".into()),
                Err(e) => Resp::Error(e),
            },
            "REPLICAOF" => {
                if cmd.len() == 3 && cmd[1].eq_ignore_ascii_case("no") && cmd[2].eq_ignore_ascii_case("one") {
                    let r = match self.redis.get_mut(addr) {
                        Some(r) => r,
                        None => return gone(),
                    };
                    r.replica_of = None;
                    r.link_up = false;
                } else if let (3, Ok(port)) = (cmd.len(), cmd[2].parse::<u16>()) {
                    let primary = format!("{}:{port}", cmd[1]);
                    let up = self.redis.get(&primary).is_some_and(|p| p.running && p.replica_of.is_none());
                    let r = match self.redis.get_mut(addr) {
                        Some(r) => r,
                        None => return gone(),
                    };
                    r.replica_of = Some((cmd[1].clone(), port));
                    r.link_up = up;
                } else {
                    return Resp::Error("ERR syntax error".into());
                }
                Resp::Simple("OK".into())
            }
            "CLIENT PAUSE" => {
                match self.redis.get_mut(addr) {
                    Some(r) => r,
                    None => return gone(),
                }
                .paused = true;
                Resp::Simple("OK".into())
            }
            "CLIENT UNPAUSE" => {
                match self.redis.get_mut(addr) {
                    Some(r) => r,
                    None => return gone(),
                }
                .paused = false;
                Resp::Simple("OK".into())
            }
            _ => Resp::Error(format!("ERR unknown command '{}', with args beginning with: ", cmd[0])),
        }
    }

    fn info(&self, addr: &str, r: &FakeRedis) -> String {
        let mut s = String::from("# Replication\r\n");
        match &r.replica_of {
            None => {
                let replicas: Vec<(&String, &FakeRedis)> = self
                    .redis
                    .iter()
                    .filter(|(_, x)| {
                        x.running && x.link_up && x.replica_of.as_ref().is_some_and(|(h, p)| addr == format!("{h}:{p}"))
                    })
                    .collect();
                s.push_str(&format!("role:master\r\nconnected_slaves:{}\r\n", replicas.len()));
                for (i, (a, x)) in replicas.iter().enumerate() {
                    let (h, p) = a.rsplit_once(':').unwrap_or((a, "0"));
                    s.push_str(&format!("slave{i}:ip={h},port={p},state=online,offset={},lag=0\r\n", x.offset));
                }
                s.push_str(&format!("master_repl_offset:{}\r\n", r.offset));
            }
            Some((h, p)) => {
                let up = if r.link_up { "up" } else { "down" };
                s.push_str(&format!(
                    "role:slave\r\nmaster_host:{h}\r\nmaster_port:{p}\r\nmaster_link_status:{up}\r\nslave_repl_offset:{}\r\n",
                    r.offset
                ));
            }
        }
        s
    }

    fn sentinel_command(&mut self, addr: &str, authed: bool, cmd: &[String]) -> Resp {
        if !authed {
            return Resp::Error("NOAUTH Authentication required.".into());
        }
        let name = verb(cmd);
        let arg = |i: usize| cmd.get(i).cloned().unwrap_or_default();
        let Some(s) = self.sentinels.get_mut(addr) else { return gone() };
        let no_master = || Resp::Error("ERR No such master with that name".into());
        match name.as_str() {
            "PING" => Resp::Simple("PONG".into()),
            "ACL SETUSER" => match set_user(&cmd[2..], &mut s.passwords) {
                Ok(()) => Resp::Simple("OK".into()),
                Err(e) => Resp::Error(e),
            },
            "SENTINEL GET-MASTER-ADDR-BY-NAME" => match &s.monitor {
                Some(m) if m.name == arg(2) => Resp::Array(vec![
                    Resp::Bulk(m.host.clone().into_bytes()),
                    Resp::Bulk(m.port.to_string().into_bytes()),
                ]),
                _ => Resp::Null,
            },
            "SENTINEL MASTER" => match &s.monitor {
                Some(m) if m.name == arg(2) => {
                    let mut flat = vec![
                        ("name", m.name.clone()),
                        ("ip", m.host.clone()),
                        ("port", m.port.to_string()),
                        ("flags", if m.failing_over { "master,failover_in_progress" } else { "master" }.into()),
                        ("quorum", m.quorum.to_string()),
                    ];
                    for (k, v) in &m.settings {
                        flat.push((k.as_str(), v.clone()));
                    }
                    Resp::Array(
                        flat.into_iter()
                            .flat_map(|(k, v)| [Resp::Bulk(k.as_bytes().to_vec()), Resp::Bulk(v.into_bytes())])
                            .collect(),
                    )
                }
                _ => no_master(),
            },
            "SENTINEL SET" => {
                let Some(m) = s.monitor.as_mut().filter(|m| m.name == arg(2)) else { return no_master() };
                let rest = &cmd[3..];
                if rest.is_empty() || !rest.len().is_multiple_of(2) {
                    return Resp::Error("ERR wrong number of arguments for 'sentinel|set' command".into());
                }
                for kv in rest.chunks(2) {
                    match kv[0].to_ascii_lowercase().as_str() {
                        "quorum" => match kv[1].parse::<u32>() {
                            Ok(q) if q > 0 => m.quorum = q,
                            _ => return Resp::Error("ERR Invalid argument for SENTINEL SET 'quorum'".into()),
                        },
                        "auth-pass" => m.auth_pass = kv[1].clone(),
                        other => {
                            m.settings.insert(other.to_string(), kv[1].clone());
                        }
                    }
                }
                Resp::Simple("OK".into())
            }
            "SENTINEL CONFIG" if arg(2).eq_ignore_ascii_case("set") => {
                if arg(3).eq_ignore_ascii_case("sentinel-pass") {
                    s.sentinel_pass = arg(4);
                }
                Resp::Simple("OK".into())
            }
            "SENTINEL RESET" => {
                let hit = s.monitor.as_mut().filter(|m| m.name == arg(2)).map(|m| m.resets += 1).is_some();
                Resp::Integer(i64::from(hit))
            }
            "SENTINEL REMOVE" => {
                if s.monitor.as_ref().is_some_and(|m| m.name == arg(2)) {
                    s.monitor = None;
                    Resp::Simple("OK".into())
                } else {
                    no_master()
                }
            }
            "SENTINEL MONITOR" => {
                if s.monitor.as_ref().is_some_and(|m| m.name == arg(2)) {
                    return Resp::Error("ERR Duplicated master name".into());
                }
                let (Ok(port), Ok(quorum)) = (arg(4).parse::<u16>(), arg(5).parse::<u32>()) else {
                    return Resp::Error("ERR Invalid port or quorum".into());
                };
                s.monitor = Some(Monitor {
                    name: arg(2),
                    host: arg(3),
                    port,
                    quorum,
                    auth_pass: String::new(),
                    settings: BTreeMap::new(),
                    resets: 0,
                    failing_over: false,
                });
                Resp::Simple("OK".into())
            }
            "SENTINEL SENTINELS" => {
                let Some(m) = s.monitor.clone().filter(|m| m.name == arg(2)) else { return no_master() };
                let peers = self
                    .sentinels
                    .iter()
                    .filter(|(a, x)| *a != addr && x.running && x.monitor.as_ref().is_some_and(|o| o.name == m.name))
                    .map(|(a, _)| {
                        let (h, p) = a.rsplit_once(':').unwrap_or((a, "0"));
                        Resp::Array(
                            [("ip", h), ("port", p), ("flags", "sentinel")]
                                .iter()
                                .flat_map(|(k, v)| {
                                    [Resp::Bulk(k.as_bytes().to_vec()), Resp::Bulk(v.as_bytes().to_vec())]
                                })
                                .collect(),
                        )
                    })
                    .collect();
                Resp::Array(peers)
            }
            "SENTINEL FAILOVER" => {
                let Some(m) = s.monitor.clone().filter(|m| m.name == arg(2)) else { return no_master() };
                self.failover(&m);
                Resp::Simple("OK".into())
            }
            _ => Resp::Error(format!("ERR unknown command '{}'", cmd[0])),
        }
    }

    /// Promotes the lowest-addressed linked replica of the monitored primary, repoints every other pod and
    /// every Sentinel at it.
    fn failover(&mut self, m: &Monitor) {
        let old = format!("{}:{}", m.host, m.port);
        let Some(new) = self
            .redis
            .iter()
            .find(|(a, r)| {
                r.running
                    && r.link_up
                    && r.replica_of.as_ref().is_some_and(|(h, p)| format!("{h}:{p}") == old)
                    && **a != old
            })
            .map(|(a, _)| a.clone())
        else {
            return;
        };
        let (nh, np) = new.rsplit_once(':').map(|(h, p)| (h.to_string(), p.parse().unwrap_or(0))).unwrap_or_default();
        for (a, r) in self.redis.iter_mut() {
            if *a == new {
                r.replica_of = None;
                r.link_up = false;
            } else if r.running {
                r.replica_of = Some((nh.clone(), np));
                r.link_up = true;
            }
        }
        for s in self.sentinels.values_mut() {
            if let Some(mon) = s.monitor.as_mut().filter(|x| x.name == m.name) {
                mon.host = nh.clone();
                mon.port = np;
            }
        }
    }
}

/// The answer for an address the model has no server at (sessions to it are refused before this, as `NotRunning`).
fn gone() -> Resp {
    Resp::Error("ERR gone".into())
}

fn prefix(addr: &str, e: SessionError) -> SessionError {
    match e {
        SessionError::AuthRefused(m) => SessionError::AuthRefused(format!("AUTH refused by {addr}: {m}")),
        other => other,
    }
}

/// Applies `ACL SETUSER default <rules…>` to a password list (the rules the charm uses).
fn set_user(rules: &[String], passwords: &mut Vec<String>) -> Result<(), String> {
    if rules.first().map(String::as_str) != Some("default") {
        return Err("ERR the fake knows only the default user".into());
    }
    for rule in &rules[1..] {
        match rule.as_str() {
            "on" | "~*" | "&*" | "+@all" | "allkeys" | "allchannels" | "allcommands" => {}
            "resetpass" | "nopass" => passwords.clear(),
            r if r.starts_with('>') => {
                let p = r[1..].to_string();
                if !passwords.contains(&p) {
                    passwords.push(p);
                }
            }
            r if r.starts_with('<') => {
                let p = &r[1..];
                if !passwords.iter().any(|q| q == p) {
                    return Err("ERR Error in ACL SETUSER modifier '<...>': no such password".into());
                }
                passwords.retain(|q| q != p);
            }
            other => return Err(format!("ERR Error in ACL SETUSER modifier '{other}': Syntax error")),
        }
    }
    Ok(())
}

/// Redis's memory sizes: bytes, or with k/kb/m/mb/g/gb (case-insensitive).
fn parse_size(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (digits, mult) =
        [("gb", 1u64 << 30), ("g", 1_000_000_000), ("mb", 1 << 20), ("m", 1_000_000), ("kb", 1 << 10), ("k", 1000)]
            .iter()
            .find_map(|(suffix, m)| lower.strip_suffix(suffix).map(|d| (d.to_string(), *m)))
            .unwrap_or((lower.clone(), 1));
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

impl Transport for FakeCluster {
    fn session(
        &mut self,
        addr: &str,
        password: Option<&str>,
        cmds: &[Vec<String>],
        _timeout: Duration,
    ) -> Result<Vec<Resp>, SessionError> {
        self.0.borrow_mut().session(addr, password, cmds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::admin::cmd;

    fn call(c: &FakeCluster, addr: &str, pw: Option<&str>, cmds: &[Vec<String>]) -> Result<Vec<Resp>, SessionError> {
        c.clone().session(addr, pw, cmds, Duration::from_secs(1))
    }

    #[test]
    fn answers_like_redis_and_sentinel() {
        let c = FakeCluster::healthy("r", 3, 6379, Some("pw"));
        let r = call(&c, "r-0.r-endpoints:6379", Some("pw"), &[cmd(&["INFO", "replication"])]).unwrap();
        let info = crate::redis::admin::Replication::parse(&crate::redis::admin::text(&r[0]).unwrap()).unwrap();
        assert!(info.is_primary());
        assert_eq!(info.replicas.len(), 2);
        assert!(matches!(
            call(&c, "r-0.r-endpoints:6379", Some("bad"), &[cmd(&["PING"])]),
            Err(SessionError::AuthRefused(_))
        ));
        let noauth = call(&c, "r-0.r-endpoints:6379", None, &[cmd(&["PING"])]).unwrap();
        assert_eq!(noauth[0], Resp::Error("NOAUTH Authentication required.".into()));
        call(&c, "r-1.r-endpoints:6379", Some("pw"), &[cmd(&["ACL", "SETUSER", "default", ">new"])]).unwrap();
        assert_eq!(c.redis("r-1.r-endpoints:6379").passwords, ["pw", "new"]);
        call(&c, "r-0.r-endpoints:26379", Some("pw"), &[cmd(&["SENTINEL", "FAILOVER", "r"])]).unwrap();
        assert_eq!(c.redis("r-1.r-endpoints:6379").replica_of, None, "the first linked replica is promoted");
        assert_eq!(c.sentinel("r-2.r-endpoints:26379").monitor.unwrap().host, "r-1.r-endpoints");
        assert!(matches!(
            call(&c, "r-9.r-endpoints:6379", None, &[cmd(&["PING"])]),
            Err(SessionError::NotListening(_))
        ));
    }

    #[test]
    fn faults_hit_what_they_name() {
        let c = FakeCluster::healthy("r", 2, 6379, None);
        c.inject(Fault::at(1, FaultKind::Timeout));
        c.inject(Fault { command: Some("CONFIG SET".into()), ..Fault::on("r-1", FaultKind::Reply("ERR nope".into())) });
        assert!(call(&c, "r-0.r-endpoints:6379", None, &[cmd(&["PING"])]).is_ok());
        assert!(matches!(call(&c, "r-0.r-endpoints:6379", None, &[cmd(&["PING"])]), Err(SessionError::Failed(_))));
        assert!(call(&c, "r-1.r-endpoints:6379", None, &[cmd(&["PING"])]).is_ok());
        let r = call(&c, "r-1.r-endpoints:6379", None, &[cmd(&["CONFIG", "SET", "maxmemory", "1"])]).unwrap();
        assert_eq!(r[0], Resp::Error("ERR nope".into()));
        assert_eq!(c.calls().iter().filter(|k| k.fault.is_some()).count(), 2);
        assert_eq!(parse_size("100mb"), Some(100 << 20));
        assert_eq!(parse_size("2g"), Some(2_000_000_000));
        assert_eq!(parse_size("x"), None);
    }
}
