//! The daemon's shared state (Pebble's overlord: plan manager, service manager, check manager and the change
//! state behind one lock) and the little machinery the managers share: a condition variable every waiter
//! (a change's `wait`, a task waiting for its service to start or stop) polls, and one-shot timers that act
//! on the state later (Go's `time.AfterFunc` in `internals/overlord/servstate/handlers.go`).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::change::Changes;
use super::check::CheckData;
use super::layer::Plan;
use super::service::ServiceData;

/// Why the daemon is to exit on its own, as `restart.HandleRestart` asks (`internals/daemon/daemon.go`
/// `Daemon.Stop`, `internals/cli/cmd_run.go`): the exit status once services are stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `success-shutdown` / `shutdown` after a success: exit 0.
    Success,
    /// A service's `failure-shutdown` / `shutdown` after a failure: exit 10.
    ServiceFailure,
    /// A check's `on-check-failure: shutdown`: exit 11.
    CheckFailure,
}

impl Shutdown {
    pub fn exit_code(self) -> i32 {
        match self {
            Shutdown::Success => 0,
            Shutdown::ServiceFailure => 10,
            Shutdown::CheckFailure => 11,
        }
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub plan: Plan,
    pub services: BTreeMap<String, ServiceData>,
    pub changes: Changes,
    pub checks: BTreeMap<String, CheckData>,
    /// Set once the daemon is stopping: no new timers act, check runners end.
    pub stopping: bool,
    /// A shutdown a service or check asked for.
    pub shutdown: Option<Shutdown>,
}

pub struct Daemon {
    state: Mutex<State>,
    cond: Condvar,
    /// Copy services' output to our stdout (`pebble run --verbose`).
    pub verbose: bool,
}

/// How long a waiter sleeps at most before looking again, so a missed notification costs only latency.
const POLL: Duration = Duration::from_millis(50);

impl Daemon {
    pub fn new(plan: Plan, verbose: bool) -> Arc<Daemon> {
        let state = State { plan, ..State::default() };
        Arc::new(Daemon { state: Mutex::new(state), cond: Condvar::new(), verbose })
    }

    /// The state, whoever panicked while holding it before.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every waiter to look at the state again.
    pub fn notify(&self) {
        self.cond.notify_all();
    }

    /// Waits (releasing the lock) until `done` holds or `deadline` passes; returns the guard and whether
    /// `done` held.
    pub fn wait_until<'a>(
        &'a self,
        mut guard: MutexGuard<'a, State>,
        deadline: Option<Instant>,
        mut done: impl FnMut(&mut State) -> bool,
    ) -> (MutexGuard<'a, State>, bool) {
        loop {
            if done(&mut guard) {
                return (guard, true);
            }
            let step = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return (guard, false);
                    }
                    left.min(POLL)
                }
                None => POLL,
            };
            guard = self.cond.wait_timeout(guard, step).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Runs `f` on the state after `delay` (Go's `time.AfterFunc`); `f` itself decides whether it still applies.
    pub fn after(self: &Arc<Self>, delay: Duration, f: impl FnOnce(&Arc<Daemon>, &mut State) + Send + 'static) {
        let d = Arc::clone(self);
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let mut st = d.lock();
            f(&d, &mut st);
            drop(st);
            d.notify();
        });
    }
}
