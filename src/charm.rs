//! Runs one hook of the charm.
//!
//! This is where the hook name meets charm logic; it is the only function `main` calls for a hook.

use anyhow::Result;

use crate::juju::{HookEnv, HookTools, Status};

/// Runs `hook` for the unit described by `env`, acting only through `tools`.
pub fn run_hook(hook: &str, env: &HookEnv, tools: &mut HookTools) -> Result<()> {
    let _ = env;
    tools.status_set(Status::Maintenance, &format!("ran {hook}"))?;
    Ok(())
}
