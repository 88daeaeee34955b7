//! The dispatch loop: which handlers run, in what order, how often (charms.reactive `bus.py`, reference §2.3).
//!
//! A hooks phase runs the matching hook handlers once. Then up to [`MAX_ITERATIONS`] iterations: iteration 0
//! queues every flag handler whose conditions hold; a later iteration only those watching a flag that
//! really transitioned during the previous one. Within an iteration handlers run in registration order;
//! a flag set during it never adds to the current queue, while any clear re-tests (and can only shrink)
//! the rest of it; no handler runs twice in one iteration. Hitting the cap is reported, not silent.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};

use super::context::Ctx;
use super::handler::{Handler, Registry};

/// The cap on loop iterations (charms.reactive's `range(100)`).
pub const MAX_ITERATIONS: usize = 100;

/// What a dispatch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Handler ids in the order they ran (a handler may appear once per iteration).
    pub invoked: Vec<String>,
    /// Flag-phase iterations that ran a handler.
    pub iterations: usize,
    /// The loop stopped at the cap with handlers still due.
    pub hit_cap: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hooks,
    Flags { iteration: usize },
}

fn test<S>(h: &Handler<S>, phase: Phase, changes: &BTreeSet<String>, ctx: &Ctx<'_, S>) -> bool {
    match phase {
        Phase::Hooks => h.is_hook_handler() && h.conditions_hold(ctx.hook, &ctx.flags),
        Phase::Flags { iteration } => {
            if h.is_hook_handler() {
                return false;
            }
            if !h.watched.is_empty() && iteration != 0 && h.watched.is_disjoint(changes) {
                return false;
            }
            h.conditions_hold(ctx.hook, &ctx.flags)
        }
    }
}

/// Runs the loop over `registry` for the hook in `ctx`. A handler's error stops it at once and is
/// returned with the handler's id; nothing is rolled back here (the caller simply does not commit).
pub fn dispatch<S>(registry: &Registry<S>, ctx: &mut Ctx<'_, S>) -> Result<Report> {
    let mut report = Report::default();
    // FlagWatch.reset(): transitions before dispatch (automatic flags) are not changes.
    ctx.flags.take_transitions();
    ctx.flags.take_removed();

    let none = BTreeSet::new();
    let queue = candidates(registry, Phase::Hooks, &none, ctx);
    invoke(registry, queue, Phase::Hooks, &none, ctx, &mut report)?;
    let mut changes = ctx.flags.take_transitions();

    for iteration in 0..=MAX_ITERATIONS {
        let phase = Phase::Flags { iteration };
        let queue = candidates(registry, phase, &changes, ctx);
        if queue.is_empty() {
            break;
        }
        if iteration == MAX_ITERATIONS {
            report.hit_cap = true;
            break;
        }
        report.iterations += 1;
        invoke(registry, queue, phase, &changes, ctx, &mut report)?;
        changes = ctx.flags.take_transitions();
    }
    Ok(report)
}

fn candidates<S>(registry: &Registry<S>, phase: Phase, changes: &BTreeSet<String>, ctx: &Ctx<'_, S>) -> Vec<usize> {
    (0..registry.handlers.len()).filter(|&i| test(&registry.handlers[i], phase, changes, ctx)).collect()
}

fn invoke<S>(
    registry: &Registry<S>,
    mut queue: Vec<usize>,
    phase: Phase,
    changes: &BTreeSet<String>,
    ctx: &mut Ctx<'_, S>,
    report: &mut Report,
) -> Result<()> {
    while !queue.is_empty() {
        ctx.flags.take_removed();
        let mut next = Vec::new();
        let mut rest = queue.clone();
        for &idx in &queue {
            rest.remove(0);
            let h = &registry.handlers[idx];
            ctx.trace.push(format!("invoking reactive handler: {}", h.id));
            report.invoked.push(h.id.clone());
            (h.action)(ctx).with_context(|| format!("handler {}", h.id))?;
            if ctx.flags.take_removed() {
                next = rest.iter().copied().filter(|&i| test(&registry.handlers[i], phase, changes, ctx)).collect();
                break;
            }
        }
        queue = next;
    }
    Ok(())
}
