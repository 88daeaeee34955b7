//! Hook dispatch: which hook (or action) Juju is running, from `JUJU_DISPATCH_PATH` or `argv[0]`.
//!
//! Juju 2.8+ runs `<charm>/dispatch` for every hook and sets `JUJU_DISPATCH_PATH` to `hooks/<name>` or
//! `actions/<name>` (reference §0.1-§0.2); older agents, or a user running `hooks/install` by hand, exec
//! the `hooks/<name>` symlink, so its basename names the hook. Anything else is not a hook: outside a hook
//! context the binary is a plain CLI, inside one an unknown name is a usage error listing what it knows.
//! A name that is not a hook is echoed back only as a short, escaped prefix ([`crate::juju::env::shown`]).

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use crate::juju::env::shown;

/// Unit hooks every podspec charm may receive (reference §2), in the order `hooks/` lists them.
pub const STANDARD_HOOKS: &[&str] = &[
    "install",
    "config-changed",
    "start",
    "stop",
    "upgrade-charm",
    "update-status",
    "leader-elected",
    "leader-deposed",
    "leader-settings-changed",
    "remove",
];

/// Relation endpoints declared in metadata.yaml (provides, then peers).
pub const ENDPOINTS: &[&str] = &["db", "redis-peers"];

/// Storage declared in metadata.yaml.
pub const STORAGE: &[&str] = &["data"];

/// The kinds of storage hook Juju runs for each storage.
pub const STORAGE_KINDS: &[&str] = &["attached", "detaching"];

/// The kinds of relation hook Juju runs for each endpoint.
pub const RELATION_KINDS: &[&str] = &["created", "joined", "changed", "departed", "broken"];

/// Actions declared in actions.yaml.
pub const ACTIONS: &[&str] = &["get-password", "check-service", "rotate-password"];

/// Every hook name this charm answers to.
pub fn known_hooks() -> Vec<String> {
    let mut hooks: Vec<String> = STANDARD_HOOKS.iter().map(|h| h.to_string()).collect();
    for ep in ENDPOINTS {
        hooks.extend(RELATION_KINDS.iter().map(|k| format!("{ep}-relation-{k}")));
    }
    for st in STORAGE {
        hooks.extend(STORAGE_KINDS.iter().map(|k| format!("{st}-storage-{k}")));
    }
    hooks
}

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Hook(String),
    Action(String),
    /// Not a hook: behave as a command-line program (`--help`, `--version`).
    Cli,
}

/// A name that is neither a known hook nor a known action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHook {
    /// Where the name came from: `JUJU_DISPATCH_PATH` or `the program name` (argv\[0\]'s last component).
    pub source: &'static str,
    /// The name as given, [`shown`]: quoted, escaped and cut short.
    pub shown: String,
}

impl fmt::Display for UnknownHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions = if ACTIONS.is_empty() { "none".to_string() } else { ACTIONS.join(", ") };
        write!(
            f,
            "{} {} is not a hook this charm handles; known hooks: {}; known actions: {}",
            self.source,
            self.shown,
            known_hooks().join(", "),
            actions
        )
    }
}

impl std::error::Error for UnknownHook {}

/// Names under which the binary is the charm's entry point rather than a hook.
const ENTRY_NAMES: &[&str] = &["dispatch", "redis-k8s"];

/// Decides what to run. `dispatch_path` is `JUJU_DISPATCH_PATH` (if set and non-empty), `argv0` is the
/// program path as exec'd (any bytes), `in_hook_context` whether `JUJU_UNIT_NAME` is set.
pub fn resolve(dispatch_path: Option<&str>, argv0: &OsStr, in_hook_context: bool) -> Result<Invocation, UnknownHook> {
    if let Some(path) = dispatch_path {
        return match path.split_once('/') {
            Some(("hooks", name)) if known_hooks().iter().any(|h| h == name) => Ok(Invocation::Hook(name.into())),
            Some(("actions", name)) if ACTIONS.contains(&name) => Ok(Invocation::Action(name.into())),
            _ => Err(UnknownHook { source: "JUJU_DISPATCH_PATH", shown: shown(OsStr::new(path)) }),
        };
    }
    let base = OsStr::from_bytes(argv0.as_bytes().rsplit(|b| *b == b'/').next().unwrap_or_default());
    // Every name this charm answers to is ASCII: one that is not UTF-8 is simply not among them.
    if let Some(name) = base.to_str() {
        if known_hooks().iter().any(|h| h == name) {
            return Ok(Invocation::Hook(name.to_string()));
        }
        if ACTIONS.contains(&name) {
            return Ok(Invocation::Action(name.to_string()));
        }
        if ENTRY_NAMES.contains(&name) {
            return Ok(Invocation::Cli);
        }
    }
    if !in_hook_context {
        return Ok(Invocation::Cli);
    }
    Err(UnknownHook { source: "the program name", shown: shown(base) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(dispatch_path: Option<&str>, argv0: &str, in_hook_context: bool) -> Result<Invocation, UnknownHook> {
        super::resolve(dispatch_path, OsStr::new(argv0), in_hook_context)
    }

    #[test]
    fn dispatch_path_wins_over_argv0() {
        let r = resolve(Some("hooks/config-changed"), "/charm/hooks/install", true);
        assert_eq!(r, Ok(Invocation::Hook("config-changed".into())));
    }

    #[test]
    fn argv0_basename_names_the_hook() {
        assert_eq!(
            resolve(None, "/var/lib/juju/agents/unit-r-0/charm/hooks/install", true),
            Ok(Invocation::Hook("install".into()))
        );
        assert_eq!(resolve(None, "db-relation-joined", true), Ok(Invocation::Hook("db-relation-joined".into())));
    }

    #[test]
    fn unknown_names_are_rejected_with_the_list() {
        let e = resolve(Some("hooks/frobnicate"), "dispatch", true).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("JUJU_DISPATCH_PATH \"hooks/frobnicate\" is not a hook"), "{msg}");
        assert!(msg.contains("config-changed") && msg.contains("db-relation-broken"), "{msg}");
        assert!(resolve(Some("actions/nope"), "dispatch", true).is_err());
        assert!(resolve(Some("install"), "dispatch", true).is_err(), "a dispatch path needs its hooks/ prefix");
        let e = resolve(None, "/x/hooks/frobnicate", true).unwrap_err();
        assert!(e.to_string().starts_with("the program name \"frobnicate\" is not a hook"), "{e}");
    }

    #[test]
    fn what_is_echoed_is_short_and_escaped() {
        let long = format!("hooks/{}\n", "x".repeat(120_000));
        let e = resolve(Some(&long), "dispatch", true).unwrap_err();
        assert_eq!(e.shown, format!("\"hooks/{}\"…", "x".repeat(58)));
        let e = super::resolve(None, OsStr::from_bytes(b"/charm/hooks/inst\xffall"), true).unwrap_err();
        assert_eq!(e.shown, r#""inst\xffall""#);
        assert_eq!(super::resolve(None, OsStr::from_bytes(b"/tmp/\xff"), false), Ok(Invocation::Cli));
    }

    #[test]
    fn outside_a_hook_context_it_is_a_cli() {
        assert_eq!(resolve(None, "./target/release/redis-k8s", false), Ok(Invocation::Cli));
        assert_eq!(resolve(None, "/charm/dispatch", true), Ok(Invocation::Cli));
        assert_eq!(resolve(None, "/tmp/whatever", false), Ok(Invocation::Cli));
    }

    #[test]
    fn every_relation_hook_of_db_is_known() {
        let hooks = known_hooks();
        for k in RELATION_KINDS {
            assert!(hooks.contains(&format!("db-relation-{k}")));
        }
        assert!(hooks.contains(&"redis-peers-relation-changed".to_string()));
        assert!(hooks.contains(&"data-storage-attached".to_string()));
        assert_eq!(
            hooks.len(),
            STANDARD_HOOKS.len() + ENDPOINTS.len() * RELATION_KINDS.len() + STORAGE.len() * STORAGE_KINDS.len()
        );
    }
}
