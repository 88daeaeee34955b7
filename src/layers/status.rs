//! layer:status: one truthful status per hook (reference §4).
//!
//! `maintenance` is sent at once (an operator watching `juju status` sees work in progress);
//! `blocked`, `waiting` and `active` are queued, and at the end of a **successful** hook exactly one is
//! sent: the highest precedence (blocked > waiting > active), the last message queued within it. Nothing
//! queued: nothing sent. A failed hook sends nothing it queued, so Juju's `error` is what shows.
//!
//! Deliberate difference: a status identical to the one this unit last sent is not sent again (Juju
//! keeps the unit's status between hooks, and remembers that the charm has set one, so `start` does not
//! fall back to `unknown`).

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::juju::Status;

const SENT_KEY: &str = "layer.status.sent";

/// Statuses queued during one hook.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Queue {
    entries: Vec<(Status, String)>,
}

impl Queue {
    /// The status the end of the hook will send, if any.
    pub fn winner(&self) -> Option<(Status, &str)> {
        let top = self.entries.iter().map(|(s, _)| *s).max()?;
        self.entries.iter().rev().find(|(s, _)| *s == top).map(|(s, m)| (*s, m.as_str()))
    }

    fn push(&mut self, status: Status, message: &str) {
        self.entries.push((status, message.to_string()));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sent {
    status: String,
    message: String,
}

/// Sends `maintenance <message>` now.
pub fn maintenance(ctx: &mut Ctx<'_>, message: &str) -> Result<()> {
    send(ctx, Status::Maintenance, message)
}

/// Queues `blocked <message>` for the end of the hook.
pub fn blocked(ctx: &mut Ctx<'_>, message: &str) {
    ctx.charm.status.push(Status::Blocked, message);
}

/// Queues `waiting <message>` for the end of the hook.
pub fn waiting(ctx: &mut Ctx<'_>, message: &str) {
    ctx.charm.status.push(Status::Waiting, message);
}

/// Queues `active <message>` for the end of the hook.
pub fn active(ctx: &mut Ctx<'_>, message: &str) {
    ctx.charm.status.push(Status::Active, message);
}

/// End of a successful hook: sends the winning queued status.
pub fn finalize(ctx: &mut Ctx<'_>) -> Result<()> {
    let Some((status, message)) = ctx.charm.status.winner().map(|(s, m)| (s, m.to_string())) else {
        return Ok(());
    };
    let sent = Sent { status: status.as_str().to_string(), message: message.clone() };
    if ctx.kv.get_as::<Sent>(SENT_KEY).as_ref() == Some(&sent) {
        return Ok(());
    }
    send(ctx, status, &message)
}

fn send(ctx: &mut Ctx<'_>, status: Status, message: &str) -> Result<()> {
    if ctx.is_action {
        // An action's status-set would stick (it is not deferred), and the unit's own record of what it last
        // sent, in its flag store, would not know: the unit's status is the hooks' to tell.
        return Ok(());
    }
    ctx.trace.push(format!("status-set: {}: {message}", status.as_str()));
    ctx.tools.status_set(status, message)?;
    ctx.kv.set_as(SENT_KEY, &Sent { status: status.as_str().to_string(), message: message.to_string() });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_precedence_wins_and_the_last_message_within_it() {
        let mut q = Queue::default();
        assert_eq!(q.winner(), None);
        q.push(Status::Active, "a1");
        q.push(Status::Waiting, "w1");
        q.push(Status::Active, "a2");
        q.push(Status::Waiting, "w2");
        assert_eq!(q.winner(), Some((Status::Waiting, "w2")));
        q.push(Status::Blocked, "b1");
        q.push(Status::Active, "a3");
        assert_eq!(q.winner(), Some((Status::Blocked, "b1")));
    }
}
