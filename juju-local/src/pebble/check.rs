//! Health checks (canonical/pebble `internals/overlord/checkstate/manager.go`, `handlers.go`, `checkers.go`,
//! `request.go`; `internals/daemon/api_checks.go`).
//!
//! - A check runs as a `perform-check` change: every `period` (default 10 s) it runs once, bounded by `timeout`
//!   (default 3 s, never more than the period); a success resets the failure count, a failure adds one.
//!   At `threshold` failures in a row (default 3) the change ends in Error, the services whose
//!   `on-check-failure` names the check get their action (`restart`, `shutdown`, `success-shutdown`,
//!   `ignore`), and a `recover-check` change runs the check until it passes once, then a new `perform-check`.
//! - Status is `up` below the threshold, `down` at or above it, `inactive` when not running
//!   (`updateCheckData`).
//! - Checks follow the plan, not replan: adding a layer starts new or changed checks whose `startup` is not
//!   `disabled` (`PlanChanged`); replan also starts enabled checks that are not running (`Replan`).
//! - exec checks split the command with shlex and run it with the daemon's environment plus the check's
//!   (and its `service-context` service's); tcp checks connect to `host` (default `localhost`); http checks
//!   GET the URL and want a 2xx.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::change::Status;
use super::daemon::{Daemon, State};
use super::golib::{format_duration, quote, shlex_split};
use super::layer::{Check, Plan};

/// `maxErrorLines`: how many lines of output or body a failure's details keep.
const MAX_ERROR_LINES: usize = 5;

/// `checkData`: what `GET /v1/checks` reports, and the configuration the running change uses.
#[derive(Debug, Clone)]
pub struct CheckData {
    pub level: String,
    pub startup: String,
    pub status: String,
    pub successes: u64,
    pub failures: u64,
    pub threshold: i64,
    pub change_id: String,
    pub prev_change_id: String,
    /// The merged configuration the running change was started with (None when inactive).
    config: Option<Check>,
    /// Bumped whenever the check's change is replaced, so an older runner ends.
    generation: u64,
}

/// `checkType`.
fn check_type(c: &Check) -> &'static str {
    if c.http.is_some() {
        "HTTP"
    } else if c.tcp.is_some() {
        "TCP"
    } else if c.exec.is_some() {
        "exec"
    } else {
        "<unknown>"
    }
}

/// `mergeServiceContext`: an exec check's `service-context` lends it the service's environment and directory.
fn merge_service_context(plan: &Plan, check: &Check) -> Check {
    let mut merged = check.clone();
    if let Some(exec) = merged.exec.as_mut()
        && let Some(service) = plan.services.get(&exec.service_context)
    {
        let mut env = service.environment.clone().unwrap_or_default();
        env.extend(exec.environment.clone().unwrap_or_default());
        exec.environment = if env.is_empty() { None } else { Some(env) };
        if exec.working_dir.is_empty() {
            exec.working_dir = service.working_dir.clone();
        }
    }
    merged
}

/// `updateCheckData`.
fn update(st: &mut State, config: &Check, change_id: &str, prev: &str, successes: u64, failures: u64) {
    let status = if change_id.is_empty() {
        "inactive"
    } else if failures as i64 >= config.threshold {
        "down"
    } else {
        "up"
    };
    let startup = if config.startup.is_empty() { "enabled" } else { config.startup.as_str() };
    let entry = st.checks.entry(config.name.clone()).or_insert_with(|| CheckData {
        level: String::new(),
        startup: String::new(),
        status: String::new(),
        successes: 0,
        failures: 0,
        threshold: 0,
        change_id: String::new(),
        prev_change_id: String::new(),
        config: None,
        generation: 0,
    });
    entry.level = config.level.clone();
    entry.startup = startup.to_string();
    entry.status = status.to_string();
    entry.successes = successes;
    entry.failures = failures;
    entry.threshold = config.threshold;
    entry.change_id = change_id.to_string();
    entry.prev_change_id = prev.to_string();
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Perform,
    Recover,
}

/// `performCheckChange` / `recoverCheckChange`: a change of one task, Doing, and its runner.
fn start_change(
    d: &Arc<Daemon>,
    st: &mut State,
    config: &Check,
    kind: Kind,
    prev: &str,
    successes: u64,
    failures: u64,
) {
    let (k, verb) = match kind {
        Kind::Perform => ("perform-check", "Perform"),
        Kind::Recover => ("recover-check", "Recover"),
    };
    let summary = format!("{verb} {} check {}", check_type(config), quote(&config.name));
    let (change, tasks) = st.changes.add(k, &summary, &[(k.to_string(), summary.clone())]);
    let task = tasks[0].clone();
    st.changes.set_task_status(&change, &task, Status::Doing);
    update(st, config, &change, prev, successes, failures);
    let data = st.checks.get_mut(&config.name).expect("just updated");
    data.generation += 1;
    data.config = Some(config.clone());
    let generation = data.generation;
    let (d, config) = (Arc::clone(d), config.clone());
    std::thread::spawn(move || run(&d, config, kind, change, task, generation, successes, failures));
}

/// Ends the running change of a check, if any (`Change.Abort`; the stand-in marks it Hold).
fn abort(st: &mut State, name: &str) {
    if let Some(data) = st.checks.get_mut(name) {
        data.generation += 1;
        let change = std::mem::take(&mut data.change_id);
        if let Some(c) = st.changes.list.iter().find(|c| c.id == change)
            && !c.ready()
        {
            let task = c.tasks[0].id.clone();
            st.changes.set_task_status(&change, &task, Status::Hold);
        }
    }
}

/// The runner of one check change: one check per period until it ends or is replaced.
#[allow(clippy::too_many_arguments)]
fn run(
    d: &Arc<Daemon>,
    config: Check,
    kind: Kind,
    change: String,
    task: String,
    generation: u64,
    mut successes: u64,
    mut failures: u64,
) {
    let current = |st: &State| !st.stopping && st.checks.get(&config.name).is_some_and(|c| c.generation == generation);
    loop {
        let deadline = Instant::now() + config.period.value;
        let st = d.lock();
        let (st, _) = d.wait_until(st, Some(deadline), |st| !current(st));
        if !current(&st) {
            return;
        }
        drop(st);
        let result = run_check(&config);
        let mut st = d.lock();
        if !current(&st) {
            return;
        }
        match (kind, result) {
            (Kind::Perform, Ok(())) => {
                successes += 1;
                if failures > 0 {
                    let n = failures;
                    failures = 0;
                    let text = if n == 1 { "1 failure".to_string() } else { format!("{n} failures") };
                    st.changes.log(&change, &task, "INFO", &format!("succeeded after {text}"));
                }
                let prev = st.checks[&config.name].prev_change_id.clone();
                update(&mut st, &config, &change, &prev, successes, failures);
            }
            (Kind::Perform, Err(e)) => {
                failures += 1;
                eprintln!("Check {} failure {failures}/{}: {e}", quote(&config.name), config.threshold);
                if (failures as i64) < config.threshold {
                    st.changes.log(&change, &task, "ERROR", &e);
                    let prev = st.checks[&config.name].prev_change_id.clone();
                    update(&mut st, &config, &change, &prev, successes, failures);
                    continue;
                }
                // Threshold: the change fails, the services act, and a recover-check change takes over.
                st.changes.log(&change, &task, "ERROR", &e);
                st.changes.set_task_status(&change, &task, Status::Error);
                super::service::check_failed(d, &mut st, &config.name);
                start_change(d, &mut st, &config, Kind::Recover, &change, successes, failures);
                drop(st);
                d.notify();
                return;
            }
            (Kind::Recover, Err(e)) => {
                failures += 1;
                let prev = st.checks[&config.name].prev_change_id.clone();
                update(&mut st, &config, &change, &prev, successes, failures);
                st.changes.log(&change, &task, "ERROR", &e);
            }
            (Kind::Recover, Ok(())) => {
                st.changes.set_task_status(&change, &task, Status::Done);
                start_change(d, &mut st, &config, Kind::Perform, &change, 1, 0);
                drop(st);
                d.notify();
                return;
            }
        }
        drop(st);
        d.notify();
    }
}

/// `runCheck`: one check, bounded by its timeout.
fn run_check(config: &Check) -> Result<(), String> {
    let timeout = config.timeout.value;
    let timed_out = || format!("check timed out after {}", format_duration(timeout));
    if let Some(exec) = &config.exec {
        let args = shlex_split(&exec.command).map_err(|e| format!("cannot parse command: {e}"))?;
        let Some(program) = args.first() else { return Err("cannot parse command: empty".into()) };
        let mut cmd = Command::new(program);
        cmd.args(&args[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        for (k, v) in exec.environment.iter().flatten() {
            cmd.env(k, v);
        }
        if !exec.working_dir.is_empty() {
            cmd.current_dir(&exec.working_dir);
        }
        use std::os::unix::process::CommandExt;
        let mut child = cmd.spawn().map_err(|e| format!("exec: {}: {e}", quote(program)))?;
        let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut buf);
            }
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    // SAFETY: kill has no memory-safety preconditions; the check's own process group.
                    unsafe {
                        libc::kill(-(child.id() as i32), libc::SIGKILL);
                    }
                    let _ = child.wait();
                    return Err(timed_out());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(e.to_string()),
            }
        };
        if status.success() {
            return Ok(());
        }
        let output = reader.join().unwrap_or_default();
        let text = String::from_utf8_lossy(&output);
        let lines: Vec<&str> = text.trim().lines().collect();
        let tail = lines[lines.len().saturating_sub(MAX_ERROR_LINES)..].join("\n");
        let code = status.code().map(|c| format!("exit status {c}")).unwrap_or_else(|| "signal: killed".into());
        return Err(if tail.is_empty() { code } else { format!("{code}; {tail}") });
    }
    if let Some(tcp) = &config.tcp {
        let host = if tcp.host.is_empty() { "localhost" } else { tcp.host.as_str() };
        let target = format!("{host}:{}", tcp.port);
        let addrs: Vec<_> = target.to_socket_addrs().map_err(|e| format!("dial tcp {target}: {e}"))?.collect();
        let mut last = format!("dial tcp {target}: no addresses");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(timed_out()),
                Err(e) => {
                    last = format!(
                        "dial tcp {addr}: connect: {}",
                        e.to_string().split(" (os error").next().unwrap_or_default().to_lowercase()
                    )
                }
            }
        }
        return Err(last);
    }
    if let Some(http) = &config.http {
        return http_get(&http.url, http.headers.as_ref(), timeout, &timed_out);
    }
    Err("check has no type".into())
}

/// A plain-HTTP GET wanting a 2xx (`httpChecker.check`); `https://` is refused (no TLS in the stand-in).
fn http_get(
    url: &str,
    headers: Option<&std::collections::BTreeMap<String, String>>,
    timeout: Duration,
    timed_out: &dyn Fn() -> String,
) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("juju-local's Pebble only checks http:// URLs, not {}", quote(url)));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let target = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let deadline = Instant::now() + timeout;
    let io = |e: std::io::Error| {
        if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
            timed_out()
        } else {
            format!("Get {}: {e}", quote(url))
        }
    };
    let addr = target.to_socket_addrs().map_err(io)?.next().ok_or_else(|| format!("Get {}: no address", quote(url)))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    stream.set_write_timeout(Some(left())).map_err(io)?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: Go-http-client/1.1\r\n");
    for (k, v) in headers.into_iter().flatten() {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        stream.set_read_timeout(Some(left())).map_err(io)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&chunk[..n]);
                if response.len() > 64 << 10 {
                    break;
                }
            }
            Err(e) => return Err(io(e)),
        }
    }
    let text = String::from_utf8_lossy(&response);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get {}: malformed HTTP response", quote(url)))?;
    if (200..300).contains(&code) {
        return Ok(());
    }
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let body: String = body.chars().take(512).collect();
    let lines: Vec<&str> = body.trim().lines().collect();
    let details = if lines.len() > MAX_ERROR_LINES {
        format!("{}\n(...)", lines[..MAX_ERROR_LINES].join("\n"))
    } else {
        lines.join("\n")
    };
    Err(if details.is_empty() {
        format!("non-2xx status code {code}")
    } else {
        format!("non-2xx status code {code}; {details}")
    })
}

/// `CheckManager.PlanChanged`: after a layer is added, new or changed checks start (unless `startup:
/// disabled`), changed or removed ones stop, unchanged ones keep running.
pub fn plan_changed(d: &Arc<Daemon>, st: &mut State) {
    let plan = st.plan.clone();
    let mut new_or_modified = Vec::new();
    let mut existing = Vec::new();
    let running: Vec<(String, Check)> = st
        .checks
        .iter()
        .filter(|(_, c)| !c.change_id.is_empty())
        .filter_map(|(n, c)| c.config.clone().map(|cfg| (n.clone(), cfg)))
        .collect();
    for (name, old) in running {
        existing.push(name.clone());
        if let Some(new) = plan.checks.get(&name) {
            let merged = merge_service_context(&plan, new);
            if merged == old {
                continue;
            }
            if new.startup == "disabled" && (old.startup == "enabled" || old.startup.is_empty()) {
                continue;
            }
            new_or_modified.push(name.clone());
        }
        abort(st, &name);
        st.checks.remove(&name);
    }
    for (name, config) in &plan.checks {
        if !existing.contains(name) {
            if config.startup != "disabled" {
                new_or_modified.push(name.clone());
            } else {
                update(st, config, "", "", 0, 0);
            }
        }
    }
    for name in new_or_modified {
        let merged = merge_service_context(&plan, &plan.checks[&name]);
        start_change(d, st, &merged, Kind::Perform, "", 0, 0);
    }
}

/// `CheckManager.Replan`: enabled checks that are not running start.
pub fn replan(d: &Arc<Daemon>, st: &mut State) {
    let plan = st.plan.clone();
    for (name, config) in &plan.checks {
        let Some(data) = st.checks.get(name) else { continue };
        if config.startup == "disabled" || !data.change_id.is_empty() {
            continue;
        }
        let merged = merge_service_context(&plan, config);
        start_change(d, st, &merged, Kind::Perform, "", 0, 0);
    }
}

/// `v1GetChecks`: the checks sorted by name, filtered by `level` and `names`.
pub fn checks_json(st: &State, level: &str, names: &[String]) -> Value {
    let mut out = Vec::new();
    for (name, c) in &st.checks {
        if (!level.is_empty() && c.level != level) || (!names.is_empty() && !names.contains(name)) {
            continue;
        }
        let mut info = json!({
            "name": name,
            "startup": c.startup,
            "status": c.status,
            "successes": c.successes,
            "threshold": c.threshold,
        });
        if !c.level.is_empty() {
            info["level"] = json!(c.level);
        }
        if c.failures > 0 {
            info["failures"] = json!(c.failures);
        }
        if !c.change_id.is_empty() {
            info["change-id"] = json!(c.change_id);
        }
        if !c.prev_change_id.is_empty() {
            info["prev-change-id"] = json!(c.prev_change_id);
        }
        out.push(info);
    }
    Value::Array(out)
}

/// `v1Health`: healthy unless a check (of `level`, where ready implies alive, among `names`) is down.
pub fn healthy(st: &State, level: &str, names: &[String]) -> bool {
    !st.checks.iter().any(|(name, c)| {
        let level_match = level.is_empty() || c.level == level || (level == "ready" && c.level == "alive");
        level_match && (names.is_empty() || names.contains(name)) && c.status == "down"
    })
}
