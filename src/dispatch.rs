//! Hook dispatch: which hook (or action) Juju is running, from `JUJU_DISPATCH_PATH` or `argv[0]`.
//!
//! Juju 2.8+ runs `<charm>/dispatch` for every hook and sets `JUJU_DISPATCH_PATH` to `hooks/<name>` or
//! `actions/<name>` (reference §0.1-§0.2); older agents, or a user running `hooks/install` by hand, exec
//! the `hooks/<name>` symlink, so its basename names the hook. Anything else is not a hook: outside a hook
//! context the binary is a plain CLI, inside one an unknown name is a usage error listing what it knows.
//! A name that is not a hook is echoed back only as a short, escaped prefix ([`crate::juju::env::shown`]).
//!
//! Which hooks and actions the charm has is not written here: it is what [`CharmMeta`] derives from
//! metadata.yaml and actions.yaml, so the two cannot drift apart.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use crate::juju::env::shown;
use crate::meta::CharmMeta;

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
    /// The hooks the charm knows, comma-separated.
    pub hooks: String,
    /// The actions the charm knows, comma-separated (`none` when it has none).
    pub actions: String,
}

impl UnknownHook {
    fn new(meta: &CharmMeta, source: &'static str, shown: String) -> UnknownHook {
        let actions = if meta.actions.is_empty() { "none".to_string() } else { meta.actions.join(", ") };
        UnknownHook { source, shown, hooks: meta.hooks().join(", "), actions }
    }
}

impl fmt::Display for UnknownHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is not a hook this charm handles; known hooks: {}; known actions: {}",
            self.source, self.shown, self.hooks, self.actions
        )
    }
}

impl std::error::Error for UnknownHook {}

/// Names under which the binary is the charm's entry point rather than a hook.
const ENTRY_NAMES: &[&str] = &["dispatch", "redis-k8s"];

/// Decides what to run, for the charm `meta` describes. `dispatch_path` is `JUJU_DISPATCH_PATH` (if set and
/// non-empty), `argv0` is the program path as exec'd (any bytes), `in_hook_context` whether `JUJU_UNIT_NAME` is set.
pub fn resolve(
    meta: &CharmMeta,
    dispatch_path: Option<&str>,
    argv0: &OsStr,
    in_hook_context: bool,
) -> Result<Invocation, UnknownHook> {
    if let Some(path) = dispatch_path {
        return match path.split_once('/') {
            Some(("hooks", name)) if meta.is_hook(name) => Ok(Invocation::Hook(name.into())),
            Some(("actions", name)) if meta.is_action(name) => Ok(Invocation::Action(name.into())),
            _ => Err(UnknownHook::new(meta, "JUJU_DISPATCH_PATH", shown(OsStr::new(path)))),
        };
    }
    let base = OsStr::from_bytes(argv0.as_bytes().rsplit(|b| *b == b'/').next().unwrap_or_default());
    // Every name this charm answers to is ASCII: one that is not UTF-8 is simply not among them.
    if let Some(name) = base.to_str() {
        if meta.is_hook(name) {
            return Ok(Invocation::Hook(name.to_string()));
        }
        if meta.is_action(name) {
            return Ok(Invocation::Action(name.to_string()));
        }
        if ENTRY_NAMES.contains(&name) {
            return Ok(Invocation::Cli);
        }
    }
    if !in_hook_context {
        return Ok(Invocation::Cli);
    }
    Err(UnknownHook::new(meta, "the program name", shown(base)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> &'static CharmMeta {
        CharmMeta::shipped().unwrap()
    }

    fn resolve(dispatch_path: Option<&str>, argv0: &str, in_hook_context: bool) -> Result<Invocation, UnknownHook> {
        super::resolve(meta(), dispatch_path, OsStr::new(argv0), in_hook_context)
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
        let e = super::resolve(meta(), None, OsStr::from_bytes(b"/charm/hooks/inst\xffall"), true).unwrap_err();
        assert_eq!(e.shown, r#""inst\xffall""#);
        assert_eq!(super::resolve(meta(), None, OsStr::from_bytes(b"/tmp/\xff"), false), Ok(Invocation::Cli));
    }

    #[test]
    fn outside_a_hook_context_it_is_a_cli() {
        assert_eq!(resolve(None, "./target/release/redis-k8s", false), Ok(Invocation::Cli));
        assert_eq!(resolve(None, "/charm/dispatch", true), Ok(Invocation::Cli));
        assert_eq!(resolve(None, "/tmp/whatever", false), Ok(Invocation::Cli));
    }

    #[test]
    fn every_relation_hook_of_db_is_known() {
        use crate::meta::{RelationHook, StorageHook, UNIT_HOOKS};
        let m = meta();
        for k in RelationHook::ALL {
            assert_eq!(resolve(Some(&format!("hooks/db-relation-{}", k.as_str())), "dispatch", true).map(drop), Ok(()));
        }
        assert!(m.is_hook("redis-peers-relation-changed"));
        assert!(m.is_hook("data-storage-attached"));
        assert_eq!(
            m.hooks().len(),
            UNIT_HOOKS.len() + m.endpoints.len() * RelationHook::ALL.len() + m.storage.len() * StorageHook::ALL.len()
        );
    }
}
