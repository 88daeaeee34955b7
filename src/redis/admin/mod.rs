//! Redis and Sentinel administration: the only charm code that talks to a running Redis or Sentinel.
//!
//! Built like the hook-tool seam in [`crate::juju`]: charm logic asks [`Admin`] for a session with a named
//! [`Node`] (a pod's Redis or its Sentinel); `Admin` turns each into one call on a [`Transport`]
//! ([`RespTransport`] in production, [`fake::FakeCluster`] in tests), counts it, and classifies what went wrong
//! into an [`AdminError`] that names the pod. Neither the call log nor an error ever holds a command's arguments,
//! so a password sent with `ACL SETUSER` or `CONFIG SET masterauth` cannot leak through them.
//!
//! The distinction the day-2 logic rests on is [`AdminError::NotRunning`]: a pod whose name does not resolve or
//! that refuses the connection is not running, and is not waited for (it reads its settings from its files when
//! it starts); anything else from a running pod (a timeout, a refused password, an error reply) is a failure.

#[cfg(any(test, feature = "testing"))]
pub mod fake;
mod replication;

use std::time::Duration;

pub use replication::{Replica, Replication, Role};

use super::resp::{self, Resp, SessionError};

/// Which server of a pod a [`Node`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    Redis,
    Sentinel,
}

/// A server the charm administers: the Redis or the Sentinel of one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    /// The pod's name, `<app>-<ordinal>`, used in messages.
    pub pod: String,
    pub kind: NodeKind,
    /// `host:port` to connect to.
    pub addr: String,
}

impl Node {
    pub fn new(pod: &str, kind: NodeKind, addr: &str) -> Node {
        Node { pod: pod.to_string(), kind, addr: addr.to_string() }
    }

    /// How messages name it: `redis-k8s-1` for Redis, `redis-k8s-1 (Sentinel)` for its Sentinel.
    pub fn label(&self) -> String {
        match self.kind {
            NodeKind::Redis => self.pod.clone(),
            NodeKind::Sentinel => format!("{} (Sentinel)", self.pod),
        }
    }
}

/// Why an administration session failed. Every variant names the node; none holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// Nothing listens: the pod is gone or its container is not running. Callers skip such a pod.
    NotRunning { node: String, detail: String },
    /// The server refused every password offered.
    AuthRefused { node: String, detail: String },
    /// No answer in time, a reset, or a reply that makes no sense.
    Failed { node: String, detail: String },
    /// The server answered a command with an error reply.
    Rejected { node: String, command: String, message: String },
}

impl AdminError {
    /// The node the error is about.
    pub fn node(&self) -> &str {
        match self {
            AdminError::NotRunning { node, .. }
            | AdminError::AuthRefused { node, .. }
            | AdminError::Failed { node, .. }
            | AdminError::Rejected { node, .. } => node,
        }
    }

    pub fn is_not_running(&self) -> bool {
        matches!(self, AdminError::NotRunning { .. })
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::NotRunning { node, detail } => write!(f, "{node} is not running ({detail})"),
            AdminError::AuthRefused { node, detail } => write!(f, "{node} refused the password ({detail})"),
            AdminError::Failed { node, detail } => write!(f, "{node} did not answer ({detail})"),
            AdminError::Rejected { node, command, message } => write!(f, "{node} refused {command}: {message}"),
        }
    }
}

impl std::error::Error for AdminError {}

/// Runs one session: connect, authenticate, send commands, read one reply per command.
pub trait Transport {
    fn session(
        &mut self,
        addr: &str,
        password: Option<&str>,
        cmds: &[Vec<String>],
        timeout: Duration,
    ) -> Result<Vec<Resp>, SessionError>;
}

/// The production transport: the bounded RESP client in [`crate::redis::resp`].
#[derive(Debug, Default, Clone, Copy)]
pub struct RespTransport;

impl Transport for RespTransport {
    fn session(
        &mut self,
        addr: &str,
        password: Option<&str>,
        cmds: &[Vec<String>],
        timeout: Duration,
    ) -> Result<Vec<Resp>, SessionError> {
        resp::session(addr, password, cmds, timeout)
    }
}

/// What a successful [`Admin::session`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// One reply per command (error replies included: they are answers).
    pub replies: Vec<Resp>,
    /// Which of the offered credentials the server accepted.
    pub credential: usize,
}

/// Builds a command from string slices.
pub fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// How a command is named in the call log and in errors: its verb, and the sub-command of the verbs that have
/// one (`CONFIG SET`, `SENTINEL MASTER`, `ACL SETUSER`). Never an argument.
pub fn command_name(cmd: &[String]) -> String {
    let verb = cmd.first().map(|v| v.to_ascii_uppercase()).unwrap_or_default();
    match (verb.as_str(), cmd.get(1)) {
        ("CONFIG" | "SENTINEL" | "ACL" | "CLIENT", Some(sub)) => format!("{verb} {}", sub.to_ascii_uppercase()),
        _ => verb,
    }
}

/// The charm's handle on Redis and Sentinel administration, with a log of every session made.
pub struct Admin {
    transport: Box<dyn Transport>,
    calls: Vec<String>,
}

impl Admin {
    pub fn new(transport: Box<dyn Transport>) -> Admin {
        Admin { transport, calls: Vec::new() }
    }

    /// Administration over real connections.
    pub fn real() -> Admin {
        Admin::new(Box::new(RespTransport))
    }

    /// One entry per session: `<node>: <command names>`.
    pub fn calls(&self) -> &[String] {
        &self.calls
    }

    /// Connects to `node` and runs `cmds`, offering each of `credentials` in turn while the server refuses the
    /// password (`None` is "no password"). Every attempt is a session and is counted.
    pub fn session(
        &mut self,
        node: &Node,
        credentials: &[Option<&str>],
        cmds: &[Vec<String>],
        timeout: Duration,
    ) -> Result<Session, AdminError> {
        let names: Vec<String> = cmds.iter().map(|c| command_name(c)).collect();
        let label = node.label();
        let mut last_refusal = None;
        let offered: &[Option<&str>] = if credentials.is_empty() { &[None] } else { credentials };
        for (i, password) in offered.iter().enumerate() {
            self.calls.push(format!("{label}: {}", names.join(" + ")));
            match self.transport.session(&node.addr, *password, cmds, timeout) {
                // Without a password, a server that requires one answers every command with NOAUTH.
                Ok(replies)
                    if password.is_none()
                        && replies.iter().any(|r| matches!(r, Resp::Error(e) if e.starts_with("NOAUTH"))) =>
                {
                    last_refusal = Some(format!("{} requires a password", node.addr));
                }
                Ok(replies) => return Ok(Session { replies, credential: i }),
                Err(SessionError::AuthRefused(detail)) => last_refusal = Some(detail),
                Err(SessionError::NotListening(detail)) => return Err(AdminError::NotRunning { node: label, detail }),
                Err(SessionError::Failed(detail)) => return Err(AdminError::Failed { node: label, detail }),
            }
        }
        Err(AdminError::AuthRefused { node: label, detail: last_refusal.unwrap_or_default() })
    }

    /// [`Admin::session`], with any error reply turned into [`AdminError::Rejected`] naming the command.
    pub fn run(
        &mut self,
        node: &Node,
        credentials: &[Option<&str>],
        cmds: &[Vec<String>],
        timeout: Duration,
    ) -> Result<Session, AdminError> {
        let session = self.session(node, credentials, cmds, timeout)?;
        for (cmd, reply) in cmds.iter().zip(&session.replies) {
            if let Resp::Error(message) = reply {
                return Err(AdminError::Rejected {
                    node: node.label(),
                    command: command_name(cmd),
                    message: message.clone(),
                });
            }
        }
        Ok(session)
    }
}

/// A flat `[k1, v1, k2, v2, …]` reply (`CONFIG GET`, `SENTINEL MASTER`) as pairs; non-text items are skipped.
pub fn pairs(reply: &Resp) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    if let Resp::Array(items) = reply {
        for kv in items.chunks(2) {
            if let [k, v] = kv
                && let (Some(k), Some(v)) = (k.as_str(), v.as_str())
            {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// The text of a bulk reply (`INFO`), if it is one.
pub fn text(reply: &Resp) -> Option<String> {
    match reply {
        Resp::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Resp::Simple(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_never_carry_arguments() {
        assert_eq!(command_name(&cmd(&["config", "set", "masterauth", "s3cret"])), "CONFIG SET");
        assert_eq!(command_name(&cmd(&["ACL", "SETUSER", "default", ">s3cret"])), "ACL SETUSER");
        assert_eq!(command_name(&cmd(&["INFO", "replication"])), "INFO");
        assert_eq!(command_name(&cmd(&["sentinel", "set", "m", "auth-pass", "x"])), "SENTINEL SET");
    }

    #[test]
    fn credentials_are_tried_in_turn_and_each_try_is_counted() {
        let cluster = fake::FakeCluster::healthy("r", 1, 6379, Some("new"));
        let mut admin = Admin::new(Box::new(cluster.clone()));
        let node = Node::new("r-0", NodeKind::Redis, "r-0.r-endpoints:6379");
        let s = admin.session(&node, &[Some("old"), Some("new")], &[cmd(&["PING"])], Duration::from_secs(1)).unwrap();
        assert_eq!(s.credential, 1);
        assert_eq!(admin.calls(), ["r-0: PING", "r-0: PING"]);
        let e = admin.session(&node, &[Some("old")], &[cmd(&["PING"])], Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, AdminError::AuthRefused { .. }), "{e:?}");
        assert!(!e.to_string().contains("old"), "{e}");
        let e = admin
            .run(&node, &[Some("new")], &[cmd(&["CONFIG", "SET", "maxmemory", "lots"])], Duration::from_secs(1))
            .unwrap_err();
        assert!(matches!(&e, AdminError::Rejected { command, .. } if command == "CONFIG SET"), "{e:?}");
    }

    #[test]
    fn pairs_reads_flat_arrays() {
        let r = Resp::Array(vec![
            Resp::Bulk(b"maxmemory".to_vec()),
            Resp::Bulk(b"0".to_vec()),
            Resp::Bulk(b"save".to_vec()),
            Resp::Bulk(b"".to_vec()),
        ]);
        let p = pairs(&r);
        assert_eq!(p["maxmemory"], "0");
        assert_eq!(p["save"], "");
        assert!(pairs(&Resp::Null).is_empty());
    }
}
