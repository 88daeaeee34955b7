//! The charm's entry point: hook name in, exit code out.
//!
//! Juju execs this binary as `dispatch` (2.8+) or through a `hooks/<name>` symlink. It finds the hook
//! ([`redis_k8s::dispatch`]), runs it ([`redis_k8s::charm`]) against the real hook tools, and turns any
//! failure, including a panic, into exactly one line on stderr and a non-zero exit. Outside a hook
//! context it is a small CLI that says how it is meant to be run.
//!
//! Only Juju's variables and the charm's own are decoded ([`redis_k8s::juju::env`]): anything else in the
//! environment may hold any bytes. A value the charm needs that it cannot use (not UTF-8, a tool time limit
//! out of range) fails the hook on one line naming the variable; whatever is echoed from the input is escaped
//! and cut short.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::Parser;
use redis_k8s::dispatch::{self, Invocation};
use redis_k8s::juju::env::{self, shown};
use redis_k8s::juju::{HookEnv, HookTools, LogLevel, ProcessRunner};
use redis_k8s::meta::{CharmMeta, Flavour};

/// What the one-line error names: `redis-k8s: <hook>: …`.
static CURRENT: OnceLock<String> = OnceLock::new();

#[derive(Parser)]
#[command(
    name = "redis-k8s",
    version,
    about = "The redis-k8s Juju charm (Kubernetes; podspec and sidecar archives), as one static binary.",
    long_about = "The redis-k8s Juju charm (Kubernetes; podspec and sidecar archives), as one static binary.\n\n\
Juju runs this binary for every hook: as `dispatch` with JUJU_DISPATCH_PATH=hooks/<name> (Juju 2.8+), \
or through the hooks/<name> symlinks. Which archive it runs from (redis-k8s.charm, podspec, Juju 2.8-3.6; \
redis-k8s-sidecar.charm, Pebble, Juju 3.1-4.0) it reads from the metadata.yaml in its charm directory. It acts \
only through Juju's hook tools (and, in the sidecar archive, the workload containers' Pebble), so it does \
nothing useful outside a hook context. To try it without a controller, use the local agent: \
`juju-local deploy ./redis-k8s.charm --resource redis-image=redis:7.0`."
)]
struct Cli {
    /// List the hooks and actions this charm handles, one per line.
    #[arg(long)]
    list_hooks: bool,
    /// The archive to list them for (default: the one whose metadata.yaml is beside the binary, else podspec).
    #[arg(long, value_parser = ["podspec", "sidecar"])]
    flavour: Option<String>,
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let what = CURRENT.get().map(String::as_str).unwrap_or("startup");
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("redis-k8s: {what}: internal error: {}{place}", one_line(&msg));
        std::process::exit(1);
    }));

    let argv0 = std::env::args_os().next().unwrap_or_default();
    let dispatch_path = match env::var("JUJU_DISPATCH_PATH") {
        Ok(path) => path,
        Err(e) => {
            eprintln!("redis-k8s: {e}");
            return ExitCode::from(2);
        }
    };
    let in_context = std::env::var_os("JUJU_UNIT_NAME").is_some_and(|u| !u.is_empty());
    // In a hook, the charm directory's metadata says which archive this is (an error if it is neither); outside
    // one, the directory the binary is in, else the podspec archive (the CLI only lists names).
    let dir = match charm_dir(in_context) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("redis-k8s: {e}");
            return ExitCode::from(1);
        }
    };
    let flavour = match (dir.map(|d| Flavour::of_charm_dir(&d)), in_context) {
        (Some(Ok(flavour)), _) => flavour,
        (Some(Err(e)), true) => {
            eprintln!("redis-k8s: {}", one_line(&format!("{e:#}")));
            return ExitCode::from(1);
        }
        _ => Flavour::PodSpec,
    };
    let meta = match CharmMeta::of(flavour) {
        Ok(meta) => meta,
        Err(e) => {
            eprintln!("redis-k8s: {}", one_line(&format!("{e:#}")));
            return ExitCode::from(1);
        }
    };

    match dispatch::resolve(meta, dispatch_path.as_deref(), &argv0, in_context) {
        Ok(Invocation::Cli) => cli(meta, in_context, &argv0),
        Ok(Invocation::Hook(hook)) => run_hook(&hook, flavour),
        Ok(Invocation::Action(action)) => run_action(&action, flavour),
        Err(e) => {
            eprintln!("redis-k8s: {e}");
            ExitCode::from(2)
        }
    }
}

/// The charm directory: `JUJU_CHARM_DIR` in a hook, else the directory this binary is in.
fn charm_dir(in_context: bool) -> Result<Option<PathBuf>, env::EnvError> {
    if in_context && let Some(dir) = env::var("JUJU_CHARM_DIR")?.filter(|d| !d.is_empty()) {
        return Ok(Some(PathBuf::from(dir)));
    }
    Ok(std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)))
}

fn cli(meta: &CharmMeta, in_context: bool, argv0: &OsStr) -> ExitCode {
    let cli = Cli::parse();
    let meta = match cli.flavour.as_deref() {
        Some("sidecar") => CharmMeta::of(Flavour::Sidecar).unwrap_or(meta),
        Some(_) => CharmMeta::of(Flavour::PodSpec).unwrap_or(meta),
        None => meta,
    };
    if cli.list_hooks {
        for h in meta.hooks() {
            println!("{h}");
        }
        for a in &meta.actions {
            println!("actions/{a}");
        }
        return ExitCode::SUCCESS;
    }
    let how = "Juju runs this binary as the charm's `dispatch` or `hooks/<name>`; see --help";
    if in_context {
        let base = OsStr::from_bytes(argv0.as_bytes().rsplit(|b| *b == b'/').next().unwrap_or_default());
        eprintln!(
            "redis-k8s: no hook to run: JUJU_UNIT_NAME is set, but JUJU_DISPATCH_PATH is not and the program \
             name {} is not a hook; {how}",
            shown(base)
        );
    } else {
        eprintln!("redis-k8s: not in a Juju hook context (JUJU_UNIT_NAME is not set); {how}");
    }
    ExitCode::from(2)
}

/// What every hook and action starts from: its environment and the real hook tools. `Err` is the exit code
/// after the one line saying why not has been printed.
fn context(what: &str) -> Result<(HookEnv, HookTools), ExitCode> {
    let fail = |why: String| {
        eprintln!("redis-k8s: {what}: {why}");
        ExitCode::from(1)
    };
    let env = HookEnv::from_env().map_err(|e| fail(e.to_string()))?;
    if env.unit_name.is_empty() {
        return Err(fail("not in a Juju hook context (JUJU_UNIT_NAME is not set)".into()));
    }
    let runner = ProcessRunner::from_env().map_err(|e| fail(e.to_string()))?;
    Ok((env, HookTools::new(Box::new(runner))))
}

fn run_hook(hook: &str, flavour: Flavour) -> ExitCode {
    let _ = CURRENT.set(hook.to_string());
    let (env, mut tools) = match context(hook) {
        Ok(both) => both,
        Err(code) => return code,
    };
    let result = redis_k8s::charm::run_hook(hook, &env, &mut tools, flavour);
    let code = match result {
        Ok(outcome) => {
            for line in &outcome.trace {
                println!("redis-k8s: {hook}: {line}");
            }
            let sessions = outcome.charm.redis.admin.calls();
            if !sessions.is_empty() {
                println!("redis-k8s: {hook}: {} Redis/Sentinel sessions: {}", sessions.len(), sessions.join("; "));
            }
            let pebble = outcome.charm.pebble.as_ref().map(|p| p.calls()).unwrap_or_default();
            if !pebble.is_empty() {
                println!("redis-k8s: {hook}: {} Pebble calls: {}", pebble.len(), pebble.join("; "));
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            let line = one_line(&format!("{err:#}"));
            eprintln!("redis-k8s: {hook}: {line}");
            // Best effort: the failure may be juju-log itself.
            let _ = tools.log(LogLevel::Error, &format!("{hook} failed: {line}"));
            ExitCode::from(1)
        }
    };
    // stdout is logged by Juju at DEBUG: the call count is there for whoever debugs hook cost.
    println!("redis-k8s: {hook}: {} hook tool calls: {}", tools.calls().len(), tools.calls().join(" "));
    code
}

fn run_action(action: &str, flavour: Flavour) -> ExitCode {
    let _ = CURRENT.set(format!("action {action}"));
    let (env, mut tools) = match context(&format!("action {action}")) {
        Ok(both) => both,
        Err(code) => return code,
    };
    // An action's stdout goes into its results and Juju's log: print nothing there.
    match redis_k8s::charm::run_action(action, &env, &mut tools, flavour) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("redis-k8s: action {action}: {}", one_line(&format!("{err:#}")));
            ExitCode::from(1)
        }
    }
}

/// Folds a message onto one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
