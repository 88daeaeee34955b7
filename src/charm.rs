//! The charm as the engine runs it: its handlers, its automatic flags, its end-of-hook work.
//!
//! Registration order is invocation order: the layers' handlers first, then the Redis handlers, as the
//! original charm's layers were merged below its own `reactive/redis.py`.

use anyhow::Result;

use crate::juju::{HookEnv, HookTools};
use crate::layers::{Ctx, State, docker_resource, status};
use crate::meta::{CharmMeta, Flavour};
use crate::reactive::{AutoSpec, Engine, Outcome, Registry, Store, StoreNames};
use crate::redis::HookState;
use crate::redis::admin::Admin;
use crate::workload::pebble::PebbleRuntime;

/// This charm's flag store: its file in the unit's state directory, its mirror in Juju's charm state, the
/// variable tests point it elsewhere with, and the crash points the crash-safety tests kill it at.
pub const STORE: StoreNames = StoreNames {
    file: "redis-k8s-reactive.json",
    writer_file: ".redis-k8s-reactive.last-writer",
    mirror_key: "redis-k8s.reactive-store",
    dir_env: "REDIS_K8S_STATE_DIR",
    crash_point: crate::crash_point,
};

/// The charm's `config.yaml`, as shipped beside the binary (kept here for the tests that read it).
pub use crate::meta::CONFIG_YAML;

/// The whole charm: every handler in order, the automatic-flag spec (from [`CharmMeta`]: config.yaml's
/// defaults, metadata.yaml's endpoints), the finish step.
pub fn engine(flavour: Flavour) -> Result<Engine<State>> {
    let meta = CharmMeta::of(flavour)?;
    let mut reg = Registry::new();
    match flavour {
        Flavour::PodSpec => docker_resource::register(&mut reg),
        Flavour::Sidecar => {
            let containers: Vec<String> = meta.containers.iter().map(|c| c.name.clone()).collect();
            crate::workload::pebble::register(&mut reg, &containers);
        }
    }
    crate::redis::handlers::register(&mut reg, flavour);
    let auto = AutoSpec {
        config_defaults: meta.options.iter().map(|o| (o.name.clone(), o.default.clone())).collect(),
        endpoints: meta.endpoint_names().into_iter().map(str::to_string).collect(),
    };
    Ok(Engine::new(reg, auto, finish))
}

/// The end-of-hook work: what the leader changed in the peer bag goes out in one call, then the layers' own, in
/// the original's atexit order (status last).
fn finish(ctx: &mut Ctx<'_>) -> Result<()> {
    crate::redis::peers::flush(ctx)?;
    if ctx.charm.flavour == Flavour::PodSpec {
        docker_resource::finalize(ctx)?;
    }
    status::finalize(ctx)
}

/// Runs `hook` for the unit described by `env` as `flavour` (which the caller read from the charm dir), acting only
/// through `tools`, the real Redis administration and the real Pebbles.
pub fn run_hook(hook: &str, env: &HookEnv, tools: &mut HookTools, flavour: Flavour) -> Result<Outcome<State>> {
    engine(flavour)?.run_hook(hook, env, tools, &Store::locate(env, STORE), state(flavour, Boundaries::real()))
}

/// Runs `hook`, administering Redis and Sentinel through `admin`.
pub fn run_hook_with(hook: &str, env: &HookEnv, tools: &mut HookTools, admin: Admin) -> Result<Outcome<State>> {
    run_hook_in(hook, env, tools, Boundaries { admin, pebble: None })
}

/// What a hook reaches besides the hook tools: Redis/Sentinel administration and, in the sidecar flavour, the
/// pod's Pebbles (`None`: the real ones, through their sockets).
pub struct Boundaries {
    pub admin: Admin,
    pub pebble: Option<PebbleRuntime>,
}

impl Boundaries {
    fn real() -> Boundaries {
        Boundaries { admin: Admin::real(), pebble: None }
    }
}

/// Runs `hook` for the unit described by `env` through these boundaries. The flavour is the charm directory's
/// ([`Flavour::of_charm_dir`]).
pub fn run_hook_in(hook: &str, env: &HookEnv, tools: &mut HookTools, with: Boundaries) -> Result<Outcome<State>> {
    let flavour = Flavour::of_charm_dir(&env.charm_dir)?;
    let store = Store::locate(env, STORE);
    engine(flavour)?.run_hook(hook, env, tools, &store, state(flavour, with))
}

/// Runs `action` as `flavour` through the real boundaries (see [`Engine::run_action`]).
pub fn run_action(action: &str, env: &HookEnv, tools: &mut HookTools, flavour: Flavour) -> Result<Outcome<State>> {
    engine(flavour)?.run_action(action, env, tools, &Store::locate(env, STORE), state(flavour, Boundaries::real()))
}

/// Runs `action` through these boundaries.
pub fn run_action_in(action: &str, env: &HookEnv, tools: &mut HookTools, with: Boundaries) -> Result<Outcome<State>> {
    let flavour = Flavour::of_charm_dir(&env.charm_dir)?;
    engine(flavour)?.run_action(action, env, tools, &Store::locate(env, STORE), state(flavour, with))
}

fn state(flavour: Flavour, with: Boundaries) -> State {
    State { redis: HookState::with_admin(with.admin), flavour, pebble: with.pebble, ..State::default() }
}
