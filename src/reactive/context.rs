//! What a handler gets: the hook, the tools, the flags, the kv store, the config and the charm's state.

use serde_json::{Map, Value};

use super::flags::Flags;
use super::kv::Kv;
use crate::juju::{HookEnv, HookTools};

/// The context handed to every handler of one hook.
pub struct Ctx<'h, S> {
    /// The hook being run, e.g. `config-changed`.
    pub hook: &'h str,
    pub env: &'h HookEnv,
    pub tools: &'h mut HookTools,
    pub flags: Flags,
    pub kv: Kv,
    /// The charm config as `config-get --all` gave it at hook start.
    pub config: Map<String, Value>,
    /// Whether this unit is the leader, from this hook's one `is-leader` call.
    pub is_leader: bool,
    /// Whether this run is an action (`hook` is then the action's name): it sees the unit's state only as Juju's
    /// charm state holds it, and commits none of it.
    pub is_action: bool,
    /// The charm's own per-hook state (queued statuses, pending relation data, ...).
    pub charm: S,
    /// Trace lines for stdout, which Juju logs at DEBUG (never a tool call per line).
    pub trace: Vec<String>,
}

impl<'h, S> Ctx<'h, S> {
    /// A context with flags and kv as loaded from the store.
    pub fn new(hook: &'h str, env: &'h HookEnv, tools: &'h mut HookTools, flags: Flags, kv: Kv, charm: S) -> Self {
        Ctx {
            hook,
            env,
            tools,
            flags,
            kv,
            config: Map::new(),
            is_leader: false,
            is_action: false,
            charm,
            trace: Vec::new(),
        }
    }

    /// A config value, `Null` when the option is unset or unknown.
    pub fn config_value(&self, option: &str) -> &Value {
        self.config.get(option).unwrap_or(&Value::Null)
    }
}
