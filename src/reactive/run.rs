//! One hook, start to finish: load the store, set the automatic flags, dispatch, finish, commit.
//!
//! This is the engine's `main()` (charms.reactive `__init__.main`, reference §1.3). The order is fixed:
//! 1. load the flag store (file, else the `state-get` mirror, else empty);
//! 2. automatic flags (one `config-get`, one `is-leader`, endpoint membership);
//! 3. the dispatch loop;
//! 4. the charm's `finish` (the layers' end-of-hook work: one status, relation data);
//! 5. drop the one-hook flags and commit the store.
//!
//! Any error stops the hook before step 5, so nothing of it is persisted and a retry starts from the last
//! committed state, exactly as a failed charms.reactive hook does.

use anyhow::{Context as _, Result};

use super::automatic::{self, AutoSpec};
use super::bus::{self, MAX_ITERATIONS, Report};
use super::context::Ctx;
use super::flags::Flags;
use super::handler::Registry;
use super::kv::Kv;
use super::store::{Store, UnitState};
use crate::juju::{HookEnv, HookTools, LogLevel};

/// The flag set for the length of an action: `actions.<action>`.
pub fn action_flag(action: &str) -> String {
    format!("actions.{action}")
}

/// What a successful hook leaves for the caller.
pub struct Outcome<S> {
    pub report: Report,
    pub charm: S,
    /// Debug lines for stdout.
    pub trace: Vec<String>,
    /// The flags as committed.
    pub flags: Vec<String>,
}

/// The end-of-hook work of the charm's layers, run after dispatch and before the store commit.
pub type Finish<S> = fn(&mut Ctx<'_, S>) -> Result<()>;

/// A charm as the engine runs it: its handlers and triggers, what its automatic flags are computed
/// from, and the layers' end-of-hook work.
pub struct Engine<S> {
    pub registry: Registry<S>,
    pub auto: AutoSpec,
    pub finish: Finish<S>,
}

impl<S> Engine<S> {
    pub fn new(registry: Registry<S>, auto: AutoSpec, finish: Finish<S>) -> Self {
        Engine { registry, auto, finish }
    }

    /// Runs `hook` for the unit of `env`, starting the charm's per-hook state from `charm`.
    pub fn run_hook(
        &self,
        hook: &str,
        env: &HookEnv,
        tools: &mut HookTools,
        store: &Store,
        charm: S,
    ) -> Result<Outcome<S>> {
        let (registry, spec, finish) = (&self.registry, &self.auto, self.finish);
        let identity = super::store::hook_identity(hook, env);
        let loaded = store.load(tools, hook, &identity)?;
        let flags = Flags::new(loaded.state.flags.clone(), registry.triggers());
        let kv = Kv::new(loaded.state.kv.clone());
        let mut ctx = Ctx::new(hook, env, tools, flags, kv, charm);

        automatic::begin(spec, registry, &mut ctx)?;
        let report = bus::dispatch(registry, &mut ctx)?;
        if report.hit_cap {
            let msg = format!(
                "reactive dispatch stopped after {MAX_ITERATIONS} iterations with handlers still due; \
                 flags: {}",
                ctx.flags.list().join(", ")
            );
            ctx.tools.log(LogLevel::Warning, &msg)?;
        }
        if !ctx.flags.trigger_overflow.is_empty() {
            let msg = format!(
                "flag triggers nested too deeply; skipped chains from: {}",
                ctx.flags.trigger_overflow.join(", ")
            );
            ctx.tools.log(LogLevel::Warning, &msg)?;
        }
        finish(&mut ctx).context("finishing the hook")?;
        automatic::end(&mut ctx);

        let Ctx { flags, kv, charm, trace, tools, .. } = ctx;
        let committed: Vec<String> = flags.list().into_iter().map(str::to_string).collect();
        let state = UnitState { flags: flags.into_map(), kv: kv.into_map() };
        store.commit(&loaded, &state, tools, &identity)?;
        Ok(Outcome { report, charm, trace, flags: committed })
    }

    /// Runs `action` through the same handlers as a hook, with the flag `actions.<action>` set for its length.
    ///
    /// Juju runs actions in the workload pod, where the operator's state directory is not: the action starts from
    /// the unit's state as Juju's charm state holds it (`state-get`), and commits none of it, so the operator's
    /// store never falls behind a copy changed elsewhere. What an action changes for good goes through hook tools
    /// (relation data, the pod spec), which Juju commits when it exits 0.
    pub fn run_action(
        &self,
        action: &str,
        env: &HookEnv,
        tools: &mut HookTools,
        store: &Store,
        charm: S,
    ) -> Result<Outcome<S>> {
        let loaded = store.load_mirror(tools)?;
        let flags = Flags::new(loaded.flags.clone(), self.registry.triggers());
        let kv = Kv::new(loaded.kv.clone());
        let mut ctx = Ctx::new(action, env, tools, flags, kv, charm);
        ctx.is_action = true;
        automatic::begin(&self.auto, &self.registry, &mut ctx)?;
        let flag = action_flag(action);
        ctx.flags.set(&flag);
        let report = bus::dispatch(&self.registry, &mut ctx)?;
        (self.finish)(&mut ctx).context("finishing the action")?;
        ctx.flags.clear(&flag);
        automatic::end(&mut ctx);
        let Ctx { flags, charm, trace, .. } = ctx;
        let flags: Vec<String> = flags.list().into_iter().map(str::to_string).collect();
        Ok(Outcome { report, charm, trace, flags })
    }
}
