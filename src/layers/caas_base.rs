//! layer:caas-base: sending the pod spec (reference §5; Juju's side in juju-podspec-charms §3.4).
//!
//! The spec goes to `pod-spec-set` as YAML on stdin. Only the leader may set it; this layer asks the
//! hook's single `is-leader` answer first, so a non-leader never calls the tool and never errors (the
//! original left that to Juju and failed the hook on every non-leader). The spec is sent only when its
//! text differs from the last one this unit sent, so an unchanged `config-changed` or `update-status`
//! makes no `pod-spec-set` call. Juju applies it only if the hook then succeeds; so is the record of
//! what was sent, so a failed hook re-sends next time.

use anyhow::Result;

use super::Ctx;
use crate::juju::ToolError;

const SPEC_ID: &str = "caas-base.pod-spec";

/// What [`pod_spec_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The spec was handed to Juju.
    Sent,
    /// It is the spec this unit sent last: nothing to do.
    Unchanged,
    /// This unit is not the leader: only the leader sets the spec.
    NotLeader,
    /// Juju refused because the application is being removed (`not alive`): ignored, as the original did.
    AppDying,
}

/// Whether [`pod_spec_set`] would send `spec_yaml` (leader, and not the spec sent last).
pub fn would_send(ctx: &Ctx<'_>, spec_yaml: &str) -> bool {
    ctx.is_leader && ctx.kv.is_data_changed(SPEC_ID, spec_yaml)
}

/// Sends `spec_yaml` if this unit is the leader and the spec changed.
pub fn pod_spec_set(ctx: &mut Ctx<'_>, spec_yaml: &str) -> Result<Sent> {
    if !ctx.is_leader {
        return Ok(Sent::NotLeader);
    }
    if !ctx.kv.is_data_changed(SPEC_ID, spec_yaml) {
        return Ok(Sent::Unchanged);
    }
    match ctx.tools.pod_spec_set(spec_yaml) {
        Ok(()) => {
            ctx.kv.data_changed(SPEC_ID, spec_yaml);
            ctx.trace.push("pod-spec-set: spec sent".into());
            Ok(Sent::Sent)
        }
        Err(ToolError::Runtime { message, .. }) if is_not_alive(&message) => Ok(Sent::AppDying),
        Err(e) => Err(e.into()),
    }
}

/// `ERROR application <name> not alive`, which Juju gives while the application is being removed.
fn is_not_alive(message: &str) -> bool {
    let m = message.trim();
    m.starts_with("ERROR application ") && m.ends_with(" not alive") && m.split_whitespace().count() == 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_the_not_alive_error() {
        assert!(is_not_alive("ERROR application redis-k8s not alive"));
        assert!(!is_not_alive("ERROR this unit is not the leader"));
        assert!(!is_not_alive("ERROR application redis k8s not alive"));
    }
}
