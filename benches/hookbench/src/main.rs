//! `hookbench`: runs every hook of a full redis-k8s lifecycle many times for several contenders against
//! the same fake hook tools, and reports wall time, tool calls and peak RSS per hook (issue #8).
//!
//! Contenders: (a) the redis-k8s release binary; (b) the same logic on Python `charms.reactive` +
//! `charmhelpers`; (c) the same logic on Python `ops`; (d0) a static binary that only exits 0; (d1) a
//! static binary that makes exactly (a)'s tool calls for the hook and nothing else. Every hook runs in a
//! Juju-like environment built from scratch, with the charm dir as cwd; a lifecycle run starts from an
//! empty unit state and carries state from hook to hook, as Juju would. Contenders are interleaved (the
//! order rotates every lifecycle run) and warm-up runs are discarded. `benches/run.sh` builds everything
//! and calls this; see `--help`.

mod report;
mod setup;
mod spawn;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use setup::{Contender, Kind, Workspace};
use stats::Sample;

/// One step of the lifecycle: the hook Juju runs and the model it runs in.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// What the tables call it.
    pub label: &'static str,
    /// The hook name (`JUJU_HOOK_NAME`, `hooks/<name>`).
    pub hook: &'static str,
    /// The `port` config value config-get reports.
    pub port: u32,
    /// Whether this is a db relation hook (JUJU_RELATION* and JUJU_REMOTE_* are set).
    pub relation_hook: bool,
    /// Whether the db relation exists (relation-ids lists db:1).
    pub related: bool,
}

/// The lifecycle every contender runs, in order: first deploy, steady state, a port change, a client
/// relating, an upgrade.
pub const LIFECYCLE: [Step; 9] = [
    Step { label: "install", hook: "install", port: 6379, relation_hook: false, related: false },
    Step { label: "leader-elected", hook: "leader-elected", port: 6379, relation_hook: false, related: false },
    Step { label: "config-changed", hook: "config-changed", port: 6379, relation_hook: false, related: false },
    Step { label: "start", hook: "start", port: 6379, relation_hook: false, related: false },
    Step { label: "update-status", hook: "update-status", port: 6379, relation_hook: false, related: false },
    Step {
        label: "config-changed (port 7000)",
        hook: "config-changed",
        port: 7000,
        relation_hook: false,
        related: false,
    },
    Step { label: "db-relation-joined", hook: "db-relation-joined", port: 7000, relation_hook: true, related: true },
    Step { label: "db-relation-changed", hook: "db-relation-changed", port: 7000, relation_hook: true, related: true },
    Step { label: "upgrade-charm", hook: "upgrade-charm", port: 7000, relation_hook: false, related: true },
];

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    pub repo: PathBuf,
    pub work: PathBuf,
    pub charm_bin: PathBuf,
    pub exit0_bin: PathBuf,
    pub replay_bin: PathBuf,
    pub venv: PathBuf,
    pub charm_file: Option<PathBuf>,
    pub runs: usize,
    pub py_runs: usize,
    pub warmup: usize,
    pub quick: bool,
    pub out: Option<PathBuf>,
    pub command: String,
    pub max_seconds: f64,
}

const USAGE: &str = "usage: hookbench --repo DIR --work DIR --charm-bin FILE --exit0-bin FILE --replay-bin FILE \
--venv DIR [--charm-file FILE] [--runs N] [--py-runs N] [--warmup N] [--quick] [--out FILE] [--command TEXT]

  --runs N      lifecycle runs measured for the native contenders (default 200; --quick: 10)
  --py-runs N   lifecycle runs measured for the Python contenders, spread evenly among the native
                runs (default 100; --quick: 10)
  --warmup N    lifecycle runs of every contender run first and discarded (default 2; --quick: 1)
  --max-seconds S  stop starting new lifecycle rounds after S seconds (default 540; --quick: 40);
                the report gives the runs actually measured
  --out FILE    also write the Markdown report there
  --command     the command line to name in the report";

fn parse_args() -> Result<Options, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            flag if flag.starts_with("--") => {
                let v = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
                m.insert(flag.trim_start_matches("--").to_string(), v);
            }
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    let path = |k: &str| m.get(k).map(PathBuf::from).ok_or_else(|| format!("--{k} is required\n{USAGE}"));
    let num = |k: &str, d: usize| -> Result<usize, String> {
        m.get(k).map_or(Ok(d), |v| v.parse().map_err(|_| format!("--{k}: not a number: {v}")))
    };
    let (runs_d, py_d, warm_d) = if quick { (10, 10, 1) } else { (200, 100, 2) };
    let o = Options {
        repo: path("repo")?,
        work: path("work")?,
        charm_bin: path("charm-bin")?,
        exit0_bin: path("exit0-bin")?,
        replay_bin: path("replay-bin")?,
        venv: path("venv")?,
        charm_file: m.get("charm-file").map(PathBuf::from),
        runs: num("runs", runs_d)?,
        py_runs: num("py-runs", py_d)?,
        warmup: num("warmup", warm_d)?,
        quick,
        out: m.get("out").map(PathBuf::from),
        command: m.get("command").cloned().unwrap_or_else(|| "benches/run.sh".to_string()),
        max_seconds: match m.get("max-seconds") {
            Some(v) => v.parse().map_err(|_| format!("--max-seconds: not a number: {v}"))?,
            None if quick => 40.0,
            None => 540.0,
        },
    };
    if o.runs == 0 || o.py_runs == 0 {
        return Err("--runs and --py-runs must be at least 1".to_string());
    }
    Ok(o)
}

/// Everything measured: samples per contender key and step index, and per-run lifecycle totals.
#[derive(Debug, Default)]
pub struct Measurements {
    pub samples: BTreeMap<(&'static str, usize), Vec<Sample>>,
    pub lifecycle_us: BTreeMap<&'static str, Vec<f64>>,
    pub runs: BTreeMap<&'static str, usize>,
    /// Whether the time budget stopped the rounds before the requested number of runs.
    pub cut_short: bool,
    /// /proc/loadavg at the start and at the end.
    pub load: (String, String),
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookbench: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    let ws = Workspace::create(opts)?;
    let contenders = ws.contenders();

    // Record (a)'s calls per step for the same-calls floor, from one full lifecycle.
    let charm = contenders.iter().find(|c| c.kind == Kind::Charm).ok_or("no charm contender")?;
    ws.reset(charm)?;
    for (i, step) in LIFECYCLE.iter().enumerate() {
        let s = ws.run_step(charm, i, step)?;
        std::fs::write(ws.calls_file(i), &s.log).map_err(|e| format!("writing the call record: {e}"))?;
        eprintln!("hookbench: recorded redis-k8s {:<28} {:>2} tool calls", step.label, s.sample.calls);
    }

    let total_runs = opts.runs.max(opts.py_runs);
    let mut m = Measurements { load: (loadavg(), String::new()), ..Default::default() };
    for round in 0..opts.warmup + total_runs {
        let measured = round.checked_sub(opts.warmup);
        if measured.is_some_and(|i| i > 0) && started.elapsed().as_secs_f64() > opts.max_seconds {
            m.cut_short = true;
            eprintln!("hookbench: time budget of {} s reached; reporting the runs measured so far", opts.max_seconds);
            break;
        }
        let with_python = match measured {
            None => true,
            Some(i) => (i * opts.py_runs) / total_runs != ((i + 1) * opts.py_runs) / total_runs,
        };
        let with_native = match measured {
            None => true,
            Some(i) => (i * opts.runs) / total_runs != ((i + 1) * opts.runs) / total_runs,
        };
        let n = contenders.len();
        for k in 0..n {
            let c = &contenders[(round + k) % n];
            if (c.python && !with_python) || (!c.python && !with_native) {
                continue;
            }
            ws.reset(c)?;
            let mut total = 0.0;
            let mut samples = Vec::with_capacity(LIFECYCLE.len());
            for (i, step) in LIFECYCLE.iter().enumerate() {
                let s = ws.run_step(c, i, step)?;
                total += s.sample.wall_us;
                samples.push(s.sample);
            }
            if measured.is_some() {
                for (i, s) in samples.into_iter().enumerate() {
                    m.samples.entry((c.key, i)).or_default().push(s);
                }
                m.lifecycle_us.entry(c.key).or_default().push(total);
                *m.runs.entry(c.key).or_default() += 1;
            }
        }
        if round % 10 == 9 {
            eprintln!(
                "hookbench: {} of {} lifecycle rounds, {:.0} s",
                round + 1,
                opts.warmup + total_runs,
                started.elapsed().as_secs_f64()
            );
        }
    }

    m.load.1 = loadavg();
    let text = report::render(opts, &contenders, &m, &ws, started.elapsed())?;
    println!("{text}");
    if let Some(out) = &opts.out {
        std::fs::write(out, &text).map_err(|e| format!("writing {}: {e}", out.display()))?;
        eprintln!("hookbench: wrote {}", out.display());
    }
    Ok(())
}

/// The first three fields of /proc/loadavg (1, 5 and 15 minute load averages).
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// `path` relative to `base` for display, else as given.
pub fn shown(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}

/// The contenders, for reports: key, short label, description.
pub fn contender_label(c: &Contender) -> String {
    format!("({}) {}", c.key, c.name)
}
