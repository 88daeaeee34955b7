//! Handlers and the registry that holds them.
//!
//! A handler is a named action with conditions, declared the way charms.reactive's decorators read:
//!
//! ```
//! # use redis_k8s::reactive::Registry;
//! let mut reg: Registry<()> = Registry::new();
//! reg.handler("redis:start")
//!     .when("image.available")
//!     .when_not("redis.started")
//!     .run(|ctx| { ctx.flags.set("redis.started"); Ok(()) });
//! ```
//!
//! Conditions are ANDed; the flags they name are the handler's *watched* flags (reference §2.2). A
//! `hook(..)` condition makes it a hook handler, which runs only in the loop's hooks phase; combining it
//! with flag conditions is rejected at registration, because in charms.reactive such a handler could
//! never run. Registration order is invocation order.

use std::collections::BTreeSet;

use anyhow::Result;

use super::context::Ctx;
use super::flags::{Flags, Trigger};

/// One condition of a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The hook name matches one of the patterns (`{a,b}` alternation, `*` and `?` globs).
    Hook(Vec<String>),
    /// All flags set (`when`, `when_all`).
    All(Vec<String>),
    /// At least one flag set (`when_any`).
    Any(Vec<String>),
    /// No flag set (`when_not`, `when_none`).
    None(Vec<String>),
    /// Not every flag set (`when_not_all`).
    NotAll(Vec<String>),
}

impl Cond {
    fn flags(&self) -> &[String] {
        match self {
            Cond::Hook(_) => &[],
            Cond::All(f) | Cond::Any(f) | Cond::None(f) | Cond::NotAll(f) => f,
        }
    }

    fn holds(&self, hook: &str, flags: &Flags) -> bool {
        fn refs(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        match self {
            Cond::Hook(patterns) => patterns.iter().any(|p| hook_matches(p, hook)),
            Cond::All(f) => flags.all_set(&refs(f)),
            Cond::Any(f) => flags.any_set(&refs(f)),
            Cond::None(f) => flags.none_set(&refs(f)),
            Cond::NotAll(f) => !flags.all_set(&refs(f)),
        }
    }
}

/// What a handler does.
pub type Action<S> = Box<dyn Fn(&mut Ctx<'_, S>) -> Result<()>>;

/// A registered handler.
pub struct Handler<S> {
    pub(crate) id: String,
    pub(crate) conds: Vec<Cond>,
    pub(crate) watched: BTreeSet<String>,
    pub(crate) action: Action<S>,
}

impl<S> Handler<S> {
    /// Whether this is a hook handler (runs only in the hooks phase).
    pub fn is_hook_handler(&self) -> bool {
        self.conds.iter().any(|c| matches!(c, Cond::Hook(_)))
    }

    /// All conditions hold for this hook and these flags (the phase is the loop's business).
    pub(crate) fn conditions_hold(&self, hook: &str, flags: &Flags) -> bool {
        self.conds.iter().all(|c| c.holds(hook, flags))
    }
}

/// The ordered set of handlers and triggers of a charm.
pub struct Registry<S> {
    pub(crate) handlers: Vec<Handler<S>>,
    pub(crate) triggers: Vec<Trigger>,
    /// Flags declared with [`Registry::watch`].
    pub(crate) declared: BTreeSet<String>,
    /// `(endpoint, prefix)` pairs declared with [`Registry::per_relation`].
    pub(crate) per_relation: Vec<(String, String)>,
}

impl<S> Default for Registry<S> {
    fn default() -> Self {
        Registry { handlers: Vec::new(), triggers: Vec::new(), declared: BTreeSet::new(), per_relation: Vec::new() }
    }
}

impl<S> Registry<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts declaring a handler; finish with [`HandlerBuilder::run`].
    pub fn handler(&mut self, id: &str) -> HandlerBuilder<'_, S> {
        HandlerBuilder { registry: self, id: id.to_string(), conds: Vec::new() }
    }

    /// When `flag` becomes set, set `set` and clear `clear` (synchronously, on real transitions only).
    pub fn trigger_when(&mut self, flag: &str, set: &[&str], clear: &[&str]) {
        self.push_trigger(flag, true, set, clear);
    }

    /// When `flag` becomes cleared, set `set` and clear `clear`.
    pub fn trigger_when_not(&mut self, flag: &str, set: &[&str], clear: &[&str]) {
        self.push_trigger(flag, false, set, clear);
    }

    fn push_trigger(&mut self, flag: &str, on_set: bool, set: &[&str], clear: &[&str]) {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        self.triggers.push(Trigger { on: flag.to_string(), on_set, set: owned(set), clear: owned(clear) });
    }

    /// Declares that handler code reads `flag` itself (`ctx.flags.is_set`) rather than through a condition.
    /// Automatic flags that cost store space per remote key (`endpoint.<ep>.changed.<key>`) are kept only when
    /// watched, so a flag read this way must be declared here or it is never set.
    pub fn watch(&mut self, flag: &str) {
        self.declared.insert(flag.to_string());
    }

    /// Declares kv keys the charm keeps per relation of `endpoint`, named `<prefix><relation id>` (or recorded
    /// with `data_changed` under such an id). Once a relation is no longer one of the endpoint's (it broke), the
    /// engine removes its keys, so relations that come and go leave nothing behind in the store.
    pub fn per_relation(&mut self, endpoint: &str, prefixes: &[&str]) {
        self.per_relation.extend(prefixes.iter().map(|p| (endpoint.to_string(), p.to_string())));
    }

    /// The prefixes declared with [`Registry::per_relation`] for `endpoint`.
    pub(crate) fn per_relation_prefixes(&self, endpoint: &str) -> Vec<&str> {
        self.per_relation.iter().filter(|(ep, _)| ep == endpoint).map(|(_, p)| p.as_str()).collect()
    }

    /// Every flag this charm reacts to: the flags its handlers' conditions name, the flags its triggers fire on,
    /// and those declared with [`Registry::watch`].
    pub fn watched_flags(&self) -> BTreeSet<String> {
        let mut all = self.declared.clone();
        all.extend(self.handlers.iter().flat_map(|h| h.watched.iter().cloned()));
        all.extend(self.triggers.iter().map(|t| t.on.clone()));
        all
    }

    /// Handler ids in invocation order.
    pub fn ids(&self) -> Vec<&str> {
        self.handlers.iter().map(|h| h.id.as_str()).collect()
    }

    /// The triggers, for the flags of a hook.
    pub fn triggers(&self) -> Vec<Trigger> {
        self.triggers.clone()
    }
}

/// Builder returned by [`Registry::handler`].
pub struct HandlerBuilder<'r, S> {
    registry: &'r mut Registry<S>,
    id: String,
    conds: Vec<Cond>,
}

fn owned(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|s| s.to_string()).collect()
}

impl<'r, S> HandlerBuilder<'r, S> {
    /// Runs in hooks whose name matches any pattern (`upgrade-charm`, `db-relation-{joined,changed}`, `*-relation-*`).
    pub fn hook(mut self, patterns: &[&str]) -> Self {
        self.conds.push(Cond::Hook(owned(patterns)));
        self
    }
    /// `flag` is set.
    pub fn when(self, flag: &str) -> Self {
        self.when_all(&[flag])
    }
    pub fn when_all(mut self, flags: &[&str]) -> Self {
        self.conds.push(Cond::All(owned(flags)));
        self
    }
    pub fn when_any(mut self, flags: &[&str]) -> Self {
        self.conds.push(Cond::Any(owned(flags)));
        self
    }
    /// `flag` is not set.
    pub fn when_not(self, flag: &str) -> Self {
        self.when_none(&[flag])
    }
    pub fn when_none(mut self, flags: &[&str]) -> Self {
        self.conds.push(Cond::None(owned(flags)));
        self
    }
    pub fn when_not_all(mut self, flags: &[&str]) -> Self {
        self.conds.push(Cond::NotAll(owned(flags)));
        self
    }

    /// Registers the handler with its action.
    ///
    /// # Panics
    /// On a declaration that could never run (a hook condition mixed with flag conditions, or no
    /// condition at all) or a duplicate id: these are programming errors in the charm, caught by its
    /// own tests, never by input from Juju.
    pub fn run(self, action: impl Fn(&mut Ctx<'_, S>) -> Result<()> + 'static) {
        let has_hook = self.conds.iter().any(|c| matches!(c, Cond::Hook(_)));
        let has_flags = self.conds.iter().any(|c| !matches!(c, Cond::Hook(_)));
        assert!(!self.conds.is_empty(), "handler {} has no condition", self.id);
        assert!(!(has_hook && has_flags), "handler {} mixes hook() with flag conditions: it could never run", self.id);
        assert!(!self.registry.handlers.iter().any(|h| h.id == self.id), "duplicate handler id {}", self.id);
        let watched = self.conds.iter().flat_map(|c| c.flags().iter().cloned()).collect();
        self.registry.handlers.push(Handler { id: self.id, conds: self.conds, watched, action: Box::new(action) });
    }
}

/// Whether `hook` matches `pattern`: `{a,b}` alternation (nestable), then `*` / `?` globbing.
pub fn hook_matches(pattern: &str, hook: &str) -> bool {
    expand_braces(pattern).iter().any(|p| glob(p.as_bytes(), hook.as_bytes()))
}

fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else { return vec![pattern.to_string()] };
    // Find the matching close brace, honouring nesting.
    let mut depth = 0;
    let mut close = None;
    let mut splits = Vec::new();
    for (i, c) in pattern.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => splits.push(i),
            _ => {}
        }
    }
    let Some(close) = close else { return vec![pattern.to_string()] };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&splits);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let alt = &pattern[w[0] + 1..w[1]];
        out.extend(expand_braces(&format!("{head}{alt}{tail}")));
    }
    out
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_patterns() {
        assert!(hook_matches("upgrade-charm", "upgrade-charm"));
        assert!(!hook_matches("upgrade-charm", "upgrade-charm2"));
        assert!(hook_matches("db-relation-{joined,changed}", "db-relation-changed"));
        assert!(!hook_matches("db-relation-{joined,changed}", "db-relation-broken"));
        assert!(hook_matches("*-relation-*", "db-relation-broken"));
        assert!(hook_matches("{install,{config,leader-settings}-changed}", "leader-settings-changed"));
        assert!(hook_matches("leader-?lected", "leader-elected"));
        assert!(!hook_matches("*-relation-*", "install"));
        assert!(hook_matches("{unclosed", "{unclosed"));
    }

    #[test]
    fn registration_order_and_watched_flags() {
        let mut r: Registry<()> = Registry::new();
        r.handler("b").when("x").when_not("y").run(|_| Ok(()));
        r.handler("a").hook(&["install"]).run(|_| Ok(()));
        assert_eq!(r.ids(), ["b", "a"]);
        assert_eq!(r.handlers[0].watched.iter().collect::<Vec<_>>(), ["x", "y"]);
        assert!(r.handlers[1].watched.is_empty());
        assert!(r.handlers[1].is_hook_handler());
    }

    #[test]
    fn watched_flags_are_conditions_trigger_sources_and_declarations() {
        let mut r: Registry<()> = Registry::new();
        r.handler("h").when_any(&["a", "b"]).when_not_all(&["c"]).run(|_| Ok(()));
        r.trigger_when("t-on", &["t-set"], &["t-clear"]);
        r.trigger_when_not("t-off", &[], &[]);
        r.watch("read-in-code");
        let w = r.watched_flags();
        assert_eq!(w.iter().collect::<Vec<_>>(), ["a", "b", "c", "read-in-code", "t-off", "t-on"]);
    }

    #[test]
    #[should_panic(expected = "could never run")]
    fn mixing_hook_and_flags_is_rejected() {
        let mut r: Registry<()> = Registry::new();
        r.handler("bad").hook(&["install"]).when("x").run(|_| Ok(()));
    }
}
