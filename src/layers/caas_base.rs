//! layer:caas-base: sending the pod spec (reference §5; Juju's side in juju-podspec-charms §3.4).
//!
//! The spec goes to `pod-spec-set` as YAML on stdin. Only the leader may set it; this layer asks the
//! hook's single `is-leader` answer first, so a non-leader never calls the tool and never errors (the
//! original left that to Juju and failed the hook on every non-leader). The spec is sent only when its
//! text differs from the last one this unit sent, so an unchanged `config-changed` or `update-status`
//! makes no `pod-spec-set` call. Juju applies it only if the hook then succeeds; so is the record of
//! what was sent, so a failed hook re-sends next time.
//!
//! Juju never refuses `pod-spec-set` at call time because the application is being removed: it checks that
//! when the hook's changes are committed, and from 2.8.7 only refuses a dead application (`state/podspec_ops.go`
//! `buildTxn`; c81cf2b384). So there is nothing to catch here: such a hook fails, and Juju handles it.

use anyhow::Result;

use super::Ctx;

const SPEC_ID: &str = "caas-base.pod-spec";

/// What [`pod_spec_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecSet {
    /// The spec was handed to Juju.
    Sent,
    /// It is the spec this unit sent last: nothing to do.
    Unchanged,
    /// This unit is not the leader: only the leader sets the spec.
    NotLeader,
}

/// Whether [`pod_spec_set`] would send `spec_yaml` (leader, and not the spec sent last).
pub fn would_send(ctx: &Ctx<'_>, spec_yaml: &str) -> bool {
    ctx.is_leader && ctx.kv.is_data_changed(SPEC_ID, spec_yaml)
}

/// Sends `spec_yaml` if this unit is the leader and the spec changed.
pub fn pod_spec_set(ctx: &mut Ctx<'_>, spec_yaml: &str) -> Result<SpecSet> {
    if !ctx.is_leader {
        return Ok(SpecSet::NotLeader);
    }
    if !ctx.kv.is_data_changed(SPEC_ID, spec_yaml) {
        return Ok(SpecSet::Unchanged);
    }
    ctx.tools.pod_spec_set(spec_yaml)?;
    ctx.kv.data_changed(SPEC_ID, spec_yaml);
    ctx.trace.push("pod-spec-set: spec sent".into());
    Ok(SpecSet::Sent)
}
