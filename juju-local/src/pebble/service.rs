//! Services: real processes supervised as Pebble supervises them (canonical/pebble
//! `internals/overlord/servstate/handlers.go`, `manager.go`, `request.go`).
//!
//! - A command is split with shlex and exec'd directly, never through a shell (`Service.ParseCommand`,
//!   `startInternal`), in its own process group, with the daemon's environment plus the service's
//!   `environment`, in `working-dir` when set, stdin from `/dev/null`, stdout and stderr to a log buffer whose
//!   last lines go into a failed start task's log (`addLastLogs`).
//! - The state machine is Pebble's: initial → starting → running, a start task succeeding only once the process
//!   has run for `okayDelay` (1 s); a process exiting before then fails the task with `exited quickly with code
//!   N, will ACTION`. On exit, `on-success`/`on-failure` (default `restart`) restart it after a backoff
//!   (`backoff-delay` × `backoff-factor`ⁿ, capped at `backoff-limit`, plus up to 10 % jitter; reset after the
//!   service has run for `backoff-limit`), or `ignore`, or shut the daemon down (`shutdown`,
//!   `success-shutdown`, `failure-shutdown`).
//! - Stopping sends SIGTERM to the process group, SIGKILL after `kill-delay` (default 5 s), and gives up
//!   `failDelay` (5 s) later with `process still running after SIGTERM and SIGKILL`.
//! - A check reaching its threshold applies the service's `on-check-failure` action (`checkFailed`).
//! - Start and stop requests become changes of one task per service, in lanes (`servstate.Start`/`Stop`);
//!   a task that fails puts the rest of its lane, and the start tasks waiting on it, on Hold.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::change::{Status, rfc3339};
use super::daemon::{Daemon, Shutdown, State};
use super::golib::quote;
use super::layer::{Service, parse_command};

/// `okayDelay`: how long a started process must keep running for its start to succeed.
pub const OKAY_DELAY: Duration = Duration::from_secs(1);
/// `killDelayDefault`: SIGTERM to SIGKILL, unless the service sets `kill-delay`.
pub const KILL_DELAY_DEFAULT: Duration = Duration::from_secs(5);
/// `failDelay`: SIGKILL to giving up.
pub const FAIL_DELAY: Duration = Duration::from_secs(5);
/// `lastLogLines`: how many lines of output a failed start task's log gets.
const LAST_LOG_LINES: usize = 20;

/// `serviceState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcState {
    Initial,
    Starting,
    Running,
    Terminating,
    Killing,
    Stopped,
    Backoff,
    Exited,
}

impl SvcState {
    fn as_str(self) -> &'static str {
        match self {
            SvcState::Initial => "initial",
            SvcState::Starting => "starting",
            SvcState::Running => "running",
            SvcState::Terminating => "terminating",
            SvcState::Killing => "killing",
            SvcState::Stopped => "stopped",
            SvcState::Backoff => "backoff",
            SvcState::Exited => "exited",
        }
    }

    /// `stateToStatus`: what `GET /v1/services` shows as `current`.
    pub fn status(self) -> &'static str {
        match self {
            SvcState::Starting | SvcState::Running => "active",
            SvcState::Terminating | SvcState::Killing | SvcState::Stopped => "inactive",
            SvcState::Backoff => "backoff",
            SvcState::Initial | SvcState::Exited => "error",
        }
    }
}

/// `serviceData`: one service the daemon has started at least once.
#[derive(Debug)]
pub struct ServiceData {
    pub state: SvcState,
    /// The definition it was (last) started with; replan compares the plan's with it.
    pub config: Service,
    pub pid: Option<i32>,
    /// Counts the processes started; a timer or an exit of an older process does nothing.
    run: u64,
    /// The `started` channel: the outcome of the current start attempt.
    started: Option<Result<(), String>>,
    /// The `stopped` channel: the outcome of the current stop.
    stopped: Option<Result<(), String>>,
    backoff_num: u32,
    backoff_time: Duration,
    restarting: bool,
    current_since: SystemTime,
    logs: Arc<Mutex<VecDeque<String>>>,
}

impl ServiceData {
    fn new(config: Service) -> ServiceData {
        ServiceData {
            state: SvcState::Initial,
            config,
            pid: None,
            run: 0,
            started: None,
            stopped: None,
            backoff_num: 0,
            backoff_time: Duration::ZERO,
            restarting: false,
            current_since: SystemTime::now(),
            logs: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    fn transition(&mut self, state: SvcState) {
        self.transition_restarting(state, false);
    }

    fn transition_restarting(&mut self, state: SvcState, restarting: bool) {
        if self.state != state {
            self.current_since = SystemTime::now();
        }
        self.state = state;
        self.restarting = restarting;
    }

    fn kill_delay(&self) -> Duration {
        if self.config.kill_delay.is_set { self.config.kill_delay.value } else { KILL_DELAY_DEFAULT }
    }

    fn signal_group(&self, sig: i32) {
        if let Some(pid) = self.pid {
            // SAFETY: kill has no memory-safety preconditions; -pid is the process group we created.
            unsafe {
                libc::kill(-pid, sig);
            }
        }
    }
}

/// `getAction`: the exit's action, `restart` when unset.
fn get_action(config: &Service, success: bool) -> (String, &'static str) {
    let (action, on) = if success { (&config.on_success, "on-success") } else { (&config.on_failure, "on-failure") };
    (if action.is_empty() { "restart".to_string() } else { action.clone() }, on)
}

/// `calculateNextBackoff`.
fn next_backoff(config: &Service, current: Duration) -> Duration {
    if current.is_zero() {
        return config.backoff_delay.value;
    }
    if current >= config.backoff_limit.value {
        return config.backoff_limit.value;
    }
    current.mul_f64(config.backoff_factor.value).min(config.backoff_limit.value)
}

/// `getJitter`: 0–10 % of `d`.
fn jitter(d: Duration) -> Duration {
    let r = (crate::util::random_u63() % 1_000_000) as f64 / 1_000_000.0;
    d.mul_f64(0.1 * r)
}

/// `startInternal`: starts the process, a thread that reports its exit, and the backoff-reset timer.
fn start_internal(d: &Arc<Daemon>, st: &mut State, name: &str) -> Result<(), String> {
    let s = st.services.get_mut(name).expect("service exists");
    let (base, extra) = parse_command(&s.config)?;
    let args: Vec<String> = base.into_iter().chain(extra).collect();
    let Some(program) = args.first() else {
        return Err(format!("cannot start service: service {} has an empty command", quote(name)));
    };
    // exec.Command looks a bare name up in the daemon's PATH.
    let path = if program.contains('/') {
        std::path::PathBuf::from(program)
    } else {
        which::which(program).map_err(|_| {
            format!("cannot start service: exec: {}: executable file not found in $PATH", quote(program))
        })?
    };
    let mut cmd = Command::new(&path);
    cmd.args(&args[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    for (k, v) in s.config.environment.iter().flatten() {
        cmd.env(k, v);
    }
    if !s.config.working_dir.is_empty() {
        cmd.current_dir(&s.config.working_dir);
    }
    let mut child = cmd.spawn().map_err(|e| {
        let e = e.raw_os_error().map(|n| std::io::Error::from_raw_os_error(n).to_string()).unwrap_or(e.to_string());
        let e = e.split(" (os error").next().unwrap_or_default().to_lowercase();
        format!("cannot start service: fork/exec {}: {e}", path.display())
    })?;
    let pid = child.id() as i32;
    // The output threads each hold a sender; the exit is reported once both ended (Go's cmd.Wait copies the
    // output to the end first), or after WaitDelay (90 % of the kill delay) if a grandchild keeps a pipe open.
    let (copied_tx, copied_rx) = std::sync::mpsc::channel::<()>();
    let wait_delay = s.kill_delay().mul_f64(0.9);
    s.run += 1;
    s.pid = Some(pid);
    let run = s.run;
    for stream in [
        child.stdout.take().map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let logs = Arc::clone(&s.logs);
        let (verbose, service, done) = (d.verbose, name.to_string(), copied_tx.clone());
        std::thread::spawn(move || {
            let _done = done; // dropped when the stream ends
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if verbose {
                    println!("{} [{service}] {line}", rfc3339(SystemTime::now(), false));
                }
                let mut logs = logs.lock().unwrap_or_else(|p| p.into_inner());
                if logs.len() >= 100 {
                    logs.pop_front();
                }
                logs.push_back(line);
            }
        });
    }
    drop(copied_tx);
    let waiter = Arc::clone(d);
    let service = name.to_string();
    std::thread::spawn(move || {
        let code = match child.wait() {
            Ok(status) => status.code().unwrap_or(-1),
            Err(_) => -1,
        };
        let _ = copied_rx.recv_timeout(wait_delay);
        let mut st = waiter.lock();
        exited(&waiter, &mut st, &service, run, code);
        drop(st);
        waiter.notify();
    });
    let limit = s.config.backoff_limit.value;
    let service = name.to_string();
    d.after(limit, move |_, st| {
        // backoffResetElapsed: still running the same process, so the backoff starts over.
        if let Some(s) = st.services.get_mut(&service)
            && s.run == run
            && s.state == SvcState::Running
        {
            s.backoff_num = 0;
            s.backoff_time = Duration::ZERO;
        }
    });
    Ok(())
}

/// `serviceData.start`.
fn start(d: &Arc<Daemon>, st: &mut State, name: &str) -> Result<(), String> {
    let s = st.services.get_mut(name).expect("service exists");
    if s.state != SvcState::Initial {
        return Err(format!("cannot start service while {}", s.state.as_str()));
    }
    s.started = None;
    if let Err(e) = start_internal(d, st, name) {
        st.services.get_mut(name).expect("service exists").transition(SvcState::Stopped);
        return Err(e);
    }
    let s = st.services.get_mut(name).expect("service exists");
    s.transition(SvcState::Starting);
    let (service, run) = (name.to_string(), s.run);
    d.after(OKAY_DELAY, move |_, st| {
        // okayWaitElapsed.
        if let Some(s) = st.services.get_mut(&service)
            && s.run == run
            && s.state == SvcState::Starting
        {
            s.started = Some(Ok(()));
            s.transition(SvcState::Running);
        }
    });
    Ok(())
}

/// `serviceData.exited`: the process `run` of `name` exited with `code`.
fn exited(d: &Arc<Daemon>, st: &mut State, name: &str, run: u64, code: i32) {
    let Some(s) = st.services.get_mut(name) else { return };
    if s.run != run {
        return;
    }
    match s.state {
        SvcState::Starting | SvcState::Running => {
            let (action, on) = get_action(&s.config, code == 0);
            if s.state == SvcState::Starting {
                s.started = Some(Err(format!("exited quickly with code {code}, will {action}")));
            }
            eprintln!("Service {} stopped unexpectedly with code {code}", quote(name));
            match action.as_str() {
                "ignore" => s.transition(if code == 0 { SvcState::Stopped } else { SvcState::Exited }),
                "shutdown" => {
                    s.transition(SvcState::Exited);
                    st.shutdown.get_or_insert(if code == 0 { Shutdown::Success } else { Shutdown::ServiceFailure });
                }
                "success-shutdown" => {
                    s.transition(SvcState::Exited);
                    st.shutdown.get_or_insert(Shutdown::Success);
                }
                "failure-shutdown" => {
                    s.transition(SvcState::Exited);
                    st.shutdown.get_or_insert(Shutdown::ServiceFailure);
                }
                _ => do_backoff(d, st, name, on),
            }
        }
        SvcState::Terminating | SvcState::Killing => {
            if s.restarting {
                do_backoff(d, st, name, "on-check-failure");
            } else {
                s.stopped = Some(Ok(()));
                s.transition(SvcState::Stopped);
            }
        }
        _ => {}
    }
}

/// `doBackoff`: waits the next backoff, then starts the process again (`backoffTimeElapsed`).
fn do_backoff(d: &Arc<Daemon>, st: &mut State, name: &str, on: &str) {
    let s = st.services.get_mut(name).expect("service exists");
    s.backoff_num += 1;
    s.backoff_time = next_backoff(&s.config, s.backoff_time);
    eprintln!(
        "Service {} {on} action is \"restart\", waiting ~{} before restart (backoff {})",
        quote(name),
        super::golib::format_duration(s.backoff_time),
        s.backoff_num
    );
    s.transition(SvcState::Backoff);
    let wait = s.backoff_time + jitter(s.backoff_time);
    let (service, run) = (name.to_string(), s.run);
    d.after(wait, move |d, st| {
        let ok = st.services.get(&service).is_some_and(|s| s.run == run && s.state == SvcState::Backoff);
        if ok {
            match start_internal(d, st, &service) {
                Ok(()) => st.services.get_mut(&service).expect("service exists").transition(SvcState::Running),
                Err(e) => eprintln!("{e}"),
            }
        }
    });
}

/// `serviceData.stop`.
fn stop(d: &Arc<Daemon>, st: &mut State, name: &str) -> Result<(), String> {
    let s = st.services.get_mut(name).expect("service exists");
    s.stopped = None;
    match s.state {
        SvcState::Starting | SvcState::Running => {
            if s.state == SvcState::Starting {
                s.started = Some(Err("stopped before the 1s okay delay".into()));
            }
            s.signal_group(libc::SIGTERM);
            s.transition(SvcState::Terminating);
            arm_kill(d, s, name);
            Ok(())
        }
        SvcState::Backoff => {
            s.stopped = Some(Ok(()));
            s.transition(SvcState::Stopped);
            Ok(())
        }
        other => Err(format!("cannot stop service while {}", other.as_str())),
    }
}

/// `terminateTimeElapsed` after the kill delay, then `killTimeElapsed` after `failDelay`.
fn arm_kill(d: &Arc<Daemon>, s: &ServiceData, name: &str) {
    let (service, run) = (name.to_string(), s.run);
    d.after(s.kill_delay(), move |d, st| {
        let Some(s) = st.services.get_mut(&service) else { return };
        if s.run != run || s.state != SvcState::Terminating {
            return;
        }
        s.signal_group(libc::SIGKILL);
        let restarting = s.restarting;
        s.transition_restarting(SvcState::Killing, restarting);
        d.after(FAIL_DELAY, move |_, st| {
            let Some(s) = st.services.get_mut(&service) else { return };
            if s.run != run || s.state != SvcState::Killing {
                return;
            }
            if !s.restarting {
                s.stopped = Some(Err("process still running after SIGTERM and SIGKILL".into()));
            }
            s.transition(SvcState::Stopped);
        });
    });
}

/// `ServiceManager.CheckFailed` / `serviceData.checkFailed`: check `check` reached its threshold.
pub fn check_failed(d: &Arc<Daemon>, st: &mut State, check: &str) {
    let names: Vec<String> = st.services.keys().cloned().collect();
    for name in names {
        let s = st.services.get_mut(&name).expect("service exists");
        let Some(action) = s.config.on_check_failure.as_ref().and_then(|m| m.get(check)).cloned() else { continue };
        if !matches!(s.state, SvcState::Running | SvcState::Backoff | SvcState::Exited) {
            continue;
        }
        match action.as_str() {
            "ignore" => {}
            "shutdown" => {
                st.shutdown.get_or_insert(Shutdown::CheckFailure);
            }
            "success-shutdown" => {
                st.shutdown.get_or_insert(Shutdown::Success);
            }
            "restart" => match s.state {
                SvcState::Running => {
                    eprintln!(
                        "Service {} on-check-failure action is \"restart\", terminating process before restarting",
                        quote(&name)
                    );
                    s.signal_group(libc::SIGTERM);
                    s.transition_restarting(SvcState::Terminating, true);
                    arm_kill(d, s, &name);
                }
                SvcState::Exited => do_backoff(d, st, &name, "on-check-failure"),
                _ => {}
            },
            _ => {}
        }
    }
}

/// `doStart`: one start task.
fn do_start(d: &Arc<Daemon>, change: &str, task: &str, name: &str) -> Result<(), String> {
    let mut st = d.lock();
    let Some(config) = st.plan.services.get(name).cloned() else {
        return Err(format!("cannot find service {} in plan", quote(name)));
    };
    // serviceForStart.
    match st.services.get_mut(name) {
        None => {
            st.services.insert(name.to_string(), ServiceData::new(config));
        }
        Some(s) => {
            s.config = config;
            match s.state {
                SvcState::Initial | SvcState::Starting | SvcState::Running => {
                    st.changes.log(change, task, "INFO", &format!("Service {} already started.", quote(name)));
                    return Ok(());
                }
                SvcState::Backoff | SvcState::Stopped | SvcState::Exited => {
                    s.backoff_num = 0;
                    s.backoff_time = Duration::ZERO;
                    s.transition(SvcState::Initial);
                }
                SvcState::Terminating | SvcState::Killing => {}
            }
        }
    }
    start(d, &mut st, name)?;
    d.notify();
    let (mut st, _) = d.wait_until(st, None, |st| st.services.get(name).is_some_and(|s| s.started.is_some()));
    let s = st.services.get_mut(name).expect("service exists");
    match s.started.take().expect("waited for it") {
        Ok(()) => Ok(()),
        Err(e) => {
            let lines: Vec<String> = {
                let logs = s.logs.lock().unwrap_or_else(|p| p.into_inner());
                logs.iter().rev().take(LAST_LOG_LINES).rev().map(|l| format!("    {l}")).collect()
            };
            if !lines.is_empty() {
                let text = format!("Most recent service output:\n{}", lines.join("\n"));
                st.changes.log(change, task, "INFO", &text);
            }
            Err(format!("service start attempt: {e}"))
        }
    }
}

/// `doStop`: one stop task.
fn do_stop(d: &Arc<Daemon>, change: &str, task: &str, name: &str) -> Result<(), String> {
    let mut st = d.lock();
    // serviceForStop.
    let note = match st.services.get_mut(name) {
        None => Some(format!("Service {} has never been started.", quote(name))),
        Some(s) => match s.state {
            SvcState::Terminating | SvcState::Killing => Some(format!("Service {} already stopping.", quote(name))),
            SvcState::Stopped => Some(format!("Service {} already stopped.", quote(name))),
            SvcState::Exited => {
                s.transition(SvcState::Stopped);
                Some(format!("Service {} had already exited.", quote(name)))
            }
            _ => None,
        },
    };
    if let Some(note) = note {
        st.changes.log(change, task, "INFO", &note);
        return Ok(());
    }
    stop(d, &mut st, name)?;
    d.notify();
    let (mut st, _) = d.wait_until(st, None, |st| st.services.get(name).is_some_and(|s| s.stopped.is_some()));
    match st.services.get_mut(name).expect("service exists").stopped.take().expect("waited for it") {
        Ok(()) => Ok(()),
        Err(e) => Err(format!("cannot stop service: {e}")),
    }
}

/// Services in lanes, as `Plan::start_order` gives them.
pub type Lanes = Vec<Vec<String>>;

/// One lane of tasks: `(task id, service)`.
pub type Lane = Vec<(String, String)>;

/// Runs lanes side by side, each in order; a failed task puts the rest of its lane on Hold. True if all
/// succeeded.
fn run_lanes(d: &Arc<Daemon>, change: &str, lanes: Vec<Lane>, starting: bool) -> bool {
    let handles: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            let (d, change) = (Arc::clone(d), change.to_string());
            std::thread::spawn(move || {
                let mut ok = true;
                for (task, name) in lane {
                    if !ok {
                        d.lock().changes.set_task_status(&change, &task, Status::Hold);
                        continue;
                    }
                    d.lock().changes.set_task_status(&change, &task, Status::Doing);
                    let result =
                        if starting { do_start(&d, &change, &task, &name) } else { do_stop(&d, &change, &task, &name) };
                    let mut st = d.lock();
                    match result {
                        Ok(()) => st.changes.set_task_status(&change, &task, Status::Done),
                        Err(e) => {
                            st.changes.log(&change, &task, "ERROR", &e);
                            st.changes.set_task_status(&change, &task, Status::Error);
                            ok = false;
                        }
                    }
                    drop(st);
                    d.notify();
                }
                ok
            })
        })
        .collect();
    // Every lane is joined before the answer (no short-circuit).
    let results: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap_or(false)).collect();
    results.into_iter().all(|ok| ok)
}

/// Makes a change of stop tasks then start tasks (each start waiting for every stop), runs it in the
/// background, and returns its id. Summaries as `v1PostServices` writes them.
/// `first` and `count` are the service the summary names and how many it counts.
pub fn spawn_change(
    d: &Arc<Daemon>,
    st: &mut State,
    kind: &str,
    (first, count): (&str, usize),
    stop_lanes: Vec<Vec<String>>,
    start_lanes: Vec<Vec<String>>,
) -> String {
    let tasks: usize = stop_lanes.iter().chain(&start_lanes).map(Vec::len).sum();
    let title = {
        let mut c = kind.chars();
        c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
    };
    let mut specs = Vec::new();
    for name in stop_lanes.iter().flatten() {
        specs.push(("stop".to_string(), format!("Stop service {}", quote(name))));
    }
    for name in start_lanes.iter().flatten() {
        specs.push(("start".to_string(), format!("Start service {}", quote(name))));
    }
    if tasks == 0 {
        let (id, _) = st.changes.add(kind, &format!("{title} - no services"), &[]);
        st.changes.set_change_status(&id, Status::Done);
        return id;
    }
    let summary = if count == 1 {
        format!("{title} service {}", quote(first))
    } else {
        format!("{title} service {} and {} more", quote(first), count.saturating_sub(1))
    };
    let (id, task_ids) = st.changes.add(kind, &summary, &specs);
    let mut ids = task_ids.into_iter();
    let mut attach = |lanes: Vec<Vec<String>>| -> Vec<Lane> {
        lanes
            .into_iter()
            .map(|lane| lane.into_iter().map(|n| (ids.next().expect("one task each"), n)).collect())
            .collect()
    };
    let (stops, starts) = (attach(stop_lanes), attach(start_lanes));
    let (d2, change) = (Arc::clone(d), id.clone());
    std::thread::spawn(move || {
        let stopped = run_lanes(&d2, &change, stops, false);
        if stopped {
            run_lanes(&d2, &change, starts, true);
        } else {
            let mut st = d2.lock();
            for (task, _) in starts.iter().flatten() {
                st.changes.set_task_status(&change, task, Status::Hold);
            }
        }
        d2.notify();
    });
    id
}

/// `ServiceManager.Replan`: services whose definition differs from the one they run with are stopped and
/// started again; every `startup: enabled` service is started. Returns the stop and start lanes.
pub fn replan(st: &mut State) -> Result<(Lanes, Lanes), String> {
    let mut needs_restart = Vec::new();
    for (name, s) in st.services.iter_mut() {
        if let Some(config) = st.plan.services.get(name) {
            if *config == s.config {
                continue;
            }
            s.config = config.clone();
        }
        needs_restart.push(name.clone());
    }
    let start: Vec<String> = st
        .plan
        .services
        .iter()
        .filter(|(name, config)| needs_restart.contains(name) || config.startup == "enabled")
        .map(|(name, _)| name.clone())
        .collect();
    // As in Pebble, the stop lanes are StopOrder's: the services requiring a restarted one are stopped too.
    let stop_lanes = st.plan.stop_order(&needs_restart)?;
    let start_lanes = st.plan.start_order(&start)?;
    Ok((stop_lanes, start_lanes))
}

/// `StopRunning`: the services to stop when the daemon stops (those running or backing off).
pub fn running_services(st: &State) -> Vec<String> {
    st.services
        .iter()
        .filter(|(_, s)| matches!(s.state, SvcState::Starting | SvcState::Running | SvcState::Backoff))
        .map(|(n, _)| n.clone())
        .collect()
}

/// `v1GetServices`: every service in the plan, with its current status.
pub fn services_json(st: &State, names: &[String]) -> Value {
    let mut out = Vec::new();
    for (name, config) in &st.plan.services {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        let startup = if config.startup == "enabled" { "enabled" } else { "disabled" };
        let mut info = json!({"name": name, "startup": startup, "current": "inactive"});
        if let Some(s) = st.services.get(name) {
            info["current"] = json!(s.state.status());
            info["current-since"] = json!(rfc3339(s.current_since, true));
        }
        out.push(info);
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pebble::layer::{OptDuration, OptFloat};

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_limit() {
        let config = Service {
            backoff_delay: OptDuration { value: Duration::from_millis(500), is_set: false },
            backoff_factor: OptFloat { value: 2.0, is_set: false },
            backoff_limit: OptDuration { value: Duration::from_secs(3), is_set: false },
            ..Service::default()
        };
        let mut t = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..5 {
            t = next_backoff(&config, t);
            seen.push(t.as_millis());
        }
        assert_eq!(seen, [500, 1000, 2000, 3000, 3000]);
    }

    #[test]
    fn exit_action_defaults_to_restart() {
        assert_eq!(get_action(&Service::default(), false).0, "restart");
        let ignore = Service { on_success: "ignore".into(), ..Service::default() };
        assert_eq!(get_action(&ignore, true), ("ignore".to_string(), "on-success"));
    }
}
