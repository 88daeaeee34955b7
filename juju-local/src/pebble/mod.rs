//! A stand-in for Pebble, the service manager Juju runs as PID 1 of every sidecar workload container
//! (`juju-local pebble run --socket <path> --state-dir <dir> [--hold] [--create-dirs] [--verbose]`). It serves
//! Pebble's HTTP API on a unix socket, keeps Pebble's plan of layers, supervises real processes, runs health
//! checks, and writes pushed files — following canonical/pebble's rules, never more lenient: what the stand-in
//! does not support (log targets, users and groups, workloads, sub-directory layers, `exec`, `/v1/logs`,
//! reading files) is refused with a message naming juju-local, rather than accepted and ignored.
//!
//! One concept per file: [`layer`] (the layer schema and the plan), [`service`] (processes and their state
//! machine), [`check`] (health checks), [`change`] (changes and tasks), [`files`] (file pushes), [`server`]
//! (HTTP and the envelope), [`daemon`] (the shared state), [`golib`] (Go's durations and shlex).
//!
//! # The rules, with where Pebble has them (canonical/pebble, `internals/…`)
//!
//! - A layer is YAML with only `summary`, `description`, `services`, `checks` (and `log-targets`) at the top,
//!   and only the known fields in each (`plan/plan.go` `ParseLayer`, decoding with known fields); it is
//!   validated as `Layer.Validate` does (reserved label prefix `pebble-`, reserved service name `pebble`,
//!   names starting with `-`, null entries, commands shlex can't split or with a bad `[ … ]` group, actions
//!   other than `restart|shutdown|ignore` (+ `failure-shutdown` on success, `success-shutdown` on failure),
//!   `backoff-factor` below 1, check `level`/`startup` values, zero `period`/`timeout`).
//! - `POST /v1/layers` (`daemon/api_plan.go` `v1PostLayers`): `action: add`, a label, `format: yaml`. Without
//!   `combine` the label must be new (`layer "x" already exists`); with it, the layer is combined into the one
//!   with that label, or appended (`overlord/planstate/manager.go` `CombineLayer`, `AppendLayer`). Every
//!   service and check in every layer needs `override: merge|replace` — the error is `layer "L" must define
//!   "override" for service "S"` (`plan.go` `CombineLayers`). `replace` swaps the whole definition; `merge`
//!   takes the fields set in the new one, appends `after`/`before`/`requires`, merges `environment`,
//!   `on-check-failure` and check `headers`/`environment` key by key (`Service.Merge`, `Check.Merge`).
//!   The combined plan must give every service a `command`, every check exactly one of http/tcp/exec, and
//!   have no before/after loop (`Plan.Validate`). Defaults: backoff 500 ms × 2 up to 30 s, check period 10 s,
//!   timeout 3 s (at most the period), threshold 3.
//! - `GET /v1/plan?format=yaml` prints the plan as yaml.v3 does: four-space indent, Go struct field order,
//!   empty fields left out, durations as Go prints them (`api_plan.go` `v1GetPlan`).
//! - `POST /v1/services` (`daemon/api_services.go`): `replan` and `autostart` take no names, the others need
//!   some; each answers `async` with a change. `replan` stops and starts again every started service whose
//!   definition changed (Go `reflect.DeepEqual`), starts every `startup: enabled` one, and leaves the rest
//!   running (`overlord/servstate/manager.go` `Replan`); `restart` stops the named services then starts them;
//!   start and stop follow `requires`/`after`/`before` in lanes (`plan.go` `StartOrder`, `StopOrder`).
//! - A service's command is split with shlex and exec'd, never run through a shell; a start succeeds only
//!   if the process is still up 1 s later, else the change ends in Error with `service start attempt: exited
//!   quickly with code N, will restart` (`servstate/handlers.go` `okayDelay`, `doStart`, `exited`); exits
//!   follow `on-success`/`on-failure` with backoff (`doBackoff`, `calculateNextBackoff`); stop is SIGTERM to
//!   the process group, SIGKILL after `kill-delay` (default 5 s) (`stop`, `terminateTimeElapsed`).
//! - Checks (`overlord/checkstate/`): run every period, `threshold` failures in a row make the check `down`
//!   and apply `on-check-failure` (`restart` restarts the service, `shutdown` stops Pebble with exit 11).
//! - Changes (`overlord/state/change.go`, `daemon/api_changes.go`): ids count from 1; `GET
//!   /v1/changes/{id}/wait?timeout=…` answers the change once ready, or 504 `timed out waiting for change
//!   after …`; an unknown id is 404.
//! - `POST /v1/files` (`daemon/api_files.go` `writeFiles`): multipart, per-file results, `make-dirs`,
//!   3-digit octal `permissions` (default 644).
//! - `pebble run` (`internals/cli/cmd_run.go`): `--create-dirs` creates `$PEBBLE`; the layers in
//!   `$PEBBLE/layers/NNN-label.yaml` make the first plan (`plan.go` `ReadLayersDir`); without `--hold` the
//!   `startup: enabled` services start (`autostart`); with it nothing starts until a client asks. Juju runs
//!   every workload container as `pebble run --create-dirs --hold --http :38813 --verbose`
//!   (juju `caas/kubernetes/provider/application/application.go`). SIGTERM or SIGINT stop the running services
//!   (SIGTERM, then SIGKILL after their kill delay) and exit 0 (`daemon/daemon.go` `Daemon.Stop`).

mod change;
mod check;
mod daemon;
mod files;
mod golib;
mod layer;
mod server;
mod service;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// What `pebble run` was asked for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub hold: bool,
    pub create_dirs: bool,
    pub verbose: bool,
}

/// `juju-local pebble run`: serves until SIGTERM/SIGINT (or a shutdown a service or check asks for), then
/// stops the services and returns the exit status.
pub fn run(opts: &RunOptions) -> Result<i32> {
    if opts.create_dirs {
        std::fs::create_dir_all(&opts.state_dir)
            .with_context(|| format!("cannot create {}", opts.state_dir.display()))?;
    }
    if !opts.state_dir.is_dir() {
        bail!("cannot find Pebble directory {} (use --create-dirs)", opts.state_dir.display());
    }
    let plan = layer::read_layers_dir(&opts.state_dir.join("layers")).map_err(anyhow::Error::msg)?;
    // SAFETY: installing handlers that only store to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let listener = bind(&opts.socket)?;
    let d = daemon::Daemon::new(plan, opts.verbose);
    {
        let mut st = d.lock();
        check::plan_changed(&d, &mut st);
        if !opts.hold {
            autostart(&d, &mut st);
        }
    }
    eprintln!("Started daemon.");
    let shutdown = loop {
        if STOP.load(Ordering::SeqCst) {
            eprintln!("Exiting on signal.");
            break None;
        }
        if let Some(s) = d.lock().shutdown {
            break Some(s);
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let d = Arc::clone(&d);
                std::thread::spawn(move || server::serve(d, stream));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("cannot accept a connection"),
        }
    };
    stop_services(&d);
    let _ = std::fs::remove_file(&opts.socket);
    Ok(shutdown.map(daemon::Shutdown::exit_code).unwrap_or(0))
}

/// Listens on `socket`, replacing a stale socket file; non-blocking, so the loop can look at signals.
fn bind(socket: &Path) -> Result<UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).with_context(|| format!("cannot listen on {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// What `pebble run` without `--hold` does: `autostart`, the default services.
fn autostart(d: &Arc<daemon::Daemon>, st: &mut daemon::State) {
    match server::default_services(&st.plan) {
        Ok(names) if names.is_empty() => eprintln!("Cannot start default services: no default services"),
        Ok(names) => {
            let lanes = match st.plan.start_order(&names) {
                Ok(lanes) => lanes,
                Err(e) => return eprintln!("Cannot start default services: {e}"),
            };
            let id = service::spawn_change(d, st, "autostart", (&names[0], names.len()), Vec::new(), lanes);
            eprintln!("Starting default services with change {id}.");
        }
        Err(e) => eprintln!("Cannot start default services: {e}"),
    }
}

/// `Daemon.Stop`: a stop change for every running service, waited for (each is bounded by its kill delay and
/// `failDelay`).
fn stop_services(d: &Arc<daemon::Daemon>) {
    let mut st = d.lock();
    st.stopping = true;
    let running = service::running_services(&st);
    if running.is_empty() {
        return;
    }
    let lanes = match st.plan.stop_order(&running) {
        Ok(lanes) => lanes,
        Err(_) => running.iter().map(|n| vec![n.clone()]).collect(),
    };
    let id = service::spawn_change(d, &mut st, "stop", (&running[0], running.len()), lanes, Vec::new());
    let (_st, _) = d.wait_until(st, None, |st| st.changes.get(&id).is_some_and(|c| c.ready()));
}
