//! The `juju-local` command line: subcommands mirroring the Juju CLI (deploy, config,
//! attach-resource, relate, scale, remove, run-hook, resolved, run-action, status, debug-log,
//! destroy) plus `wait`, `address`, `events` and `k8s` for scripts and tests, and the hidden `kubelet`
//! (the model's kubelet daemon). Every command that runs hooks holds the model lock, so hooks from
//! concurrent invocations never interleave; the kubelet daemon never takes it. Failures print one
//! `ERROR …` line and exit non-zero.

use crate::lifecycle::{self, ConfigChange};
use crate::model::Settings;
use crate::model::{Model, Paths, parse_unit_name};
use crate::util::{FileLock, split_kv};
use crate::workload::Cluster;
use crate::{charm_meta, hook_runner, kubelet, status};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "juju-local", version, about = "A local Juju controller, unit agent and kubelet for podspec charms")]
struct Cli {
    /// The model directory (default ./.juju-local).
    #[arg(long, global = true, env = "JUJU_LOCAL_MODEL_DIR")]
    model_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Deploy a local .charm.
    Deploy {
        charm: PathBuf,
        /// Application name (default: the charm name).
        application: Option<String>,
        /// name=IMAGE or name=<file with registrypath/username/password>.
        #[arg(long = "resource")]
        resources: Vec<String>,
        /// key=value config settings.
        #[arg(long = "config")]
        config: Vec<String>,
        #[arg(short = 'n', long = "num-units", default_value_t = 1)]
        num_units: u32,
        /// The Juju version the model behaves as (JUJU_VERSION; the StatefulSet update rules).
        /// Default 2.9.31. Fixed when the model is created.
        #[arg(long)]
        juju_version: Option<String>,
        /// The kubelet's sync period: how long ConfigMap/Secret changes take to reach running pods.
        /// Default 5. Fixed when the model is created.
        #[arg(long, env = "JUJU_LOCAL_KUBELET_SYNC_SECONDS")]
        kubelet_sync_seconds: Option<u64>,
    },
    /// Show or change application config.
    Config {
        application: String,
        /// key=value settings, or one key to show.
        settings: Vec<String>,
        /// Reset keys to their defaults (comma-separated).
        #[arg(long)]
        reset: Vec<String>,
    },
    /// Change an oci-image resource: upgrade-charm + config-changed on every unit.
    AttachResource { application: String, resource: String },
    /// Relate two deployed applications (`relate new:source old:db`, as `juju integrate`), or an
    /// application endpoint to a stand-in application with no charm (`relate redis-k8s client`: the
    /// second name is no deployed application and has no `:endpoint`).
    #[command(alias = "integrate", alias = "add-relation")]
    Relate { application: String, remote: String },
    /// Remove a relation: `remove-relation app1[:ep] app2[:ep]` or `remove-relation <relation-id>`;
    /// both sides run departed/broken.
    RemoveRelation {
        #[arg(num_args = 1..=2, required = true)]
        names: Vec<String>,
    },
    /// Show a relation as the stand-in client sees it (`db:0` or `0`), with both client families' views.
    ShowRelation { relation: String },
    /// Set the number of units.
    #[command(alias = "scale-application")]
    Scale { application: String, scale: u32 },
    /// Remove one unit (departed/broken/stop/remove); a new leader is elected if it led.
    RemoveUnit { unit: String },
    /// Remove an application and its pods.
    #[command(alias = "remove-application")]
    Remove { application: String },
    /// Run a hook on a unit by hand (also retries a failed hook).
    RunHook {
        unit: String,
        hook: String,
        /// Relation id (`db:0` or `0`) for relation hooks.
        #[arg(short = 'r', long = "relation")]
        relation: Option<String>,
        #[arg(long)]
        remote_unit: Option<String>,
    },
    /// Retry the failed hook of a unit (or skip it with --no-retry).
    Resolved {
        unit: String,
        #[arg(long)]
        no_retry: bool,
    },
    /// Run an action in the unit's workload pod and print its results.
    #[command(alias = "run")]
    RunAction {
        unit: String,
        action: String,
        params: Vec<String>,
        /// How long the action may stay pending while the workload container is not running.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Show the model status.
    Status {
        #[arg(long, default_value = "tabular")]
        format: String,
    },
    /// Print the units' logs (hook output and juju-log).
    DebugLog {
        #[arg(long)]
        unit: Option<String>,
    },
    /// Wait until every unit of the application is active and idle, and its rollout is complete
    /// (every pod on the current template, Running and Ready, like `kubectl rollout status`).
    Wait {
        application: String,
        #[arg(long, default_value_t = 20)]
        timeout: u64,
    },
    /// Print a unit's pod address.
    Address { unit: String },
    /// Stop every process, namespace and bridge of the model and delete it.
    Destroy,
    /// Print the kubelet's events (pod creation, deletion, readiness, restarts, file refreshes).
    Events {
        /// Only the pods of this application.
        #[arg(long)]
        app: Option<String>,
        #[arg(long, default_value = "tabular")]
        format: String,
    },
    /// Print the Kubernetes objects of an application (workload, ConfigMaps, Secrets, Services, pods).
    K8s {
        application: String,
        #[arg(long, default_value = "yaml")]
        format: String,
    },
    /// The model's kubelet daemon (started by the other commands).
    #[command(hide = true)]
    Kubelet,
    /// The Pebble stand-in (`pebble run`), the service manager of a sidecar workload container.
    Pebble {
        #[command(subcommand)]
        command: PebbleCmd,
    },
}

#[derive(Subcommand, Debug)]
enum PebbleCmd {
    /// Serve Pebble's API on a unix socket until SIGTERM, like `pebble run`.
    Run {
        /// The unix socket to serve on ($PEBBLE_SOCKET in Pebble).
        #[arg(long)]
        socket: PathBuf,
        /// Pebble's directory ($PEBBLE): the layers are read from its layers/ subdirectory.
        #[arg(long)]
        state_dir: PathBuf,
        /// Do not start the default (`startup: enabled`) services; wait for a replan.
        #[arg(long)]
        hold: bool,
        /// Create the state directory if it does not exist.
        #[arg(long)]
        create_dirs: bool,
        /// Copy the services' output to stdout.
        #[arg(long)]
        verbose: bool,
    },
}

/// Prints a Juju-style warning on stderr.
pub fn warn(msg: &str) {
    eprintln!("WARNING {msg}");
}

fn print_warnings(w: &[String]) {
    for m in w {
        warn(m);
    }
}

fn pairs(items: &[String]) -> Result<Vec<(String, String)>> {
    items.iter().map(|s| split_kv(s).map_err(anyhow::Error::msg)).collect()
}

fn lock(paths: &Paths) -> Result<Option<FileLock>> {
    if !paths.root.exists() {
        return Ok(None);
    }
    FileLock::acquire(&paths.lock_file()).map(Some)
}

/// Parses arguments and runs the command. Returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return 0;
            }
            // clap's message is its first paragraph (before the usage line), on one line.
            let text = e.to_string();
            let para: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("ERROR {}", para.join(" ").trim_start_matches("error: "));
            return 2;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR {}", format!("{e:#}").replace('\n', " "));
            1
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    // The Pebble stand-in belongs to no model.
    if let Cmd::Pebble { command: PebbleCmd::Run { socket, state_dir, hold, create_dirs, verbose } } = cli.command {
        let opts = crate::pebble::RunOptions { socket, state_dir, hold, create_dirs, verbose };
        return crate::pebble::run(&opts);
    }
    let root = cli.model_dir.clone().unwrap_or_else(|| PathBuf::from(".juju-local"));
    let paths = Paths::new(&root)?;
    match cli.command {
        Cmd::Deploy { charm, application, resources, config, num_units, juju_version, kubelet_sync_seconds } => {
            if !charm.is_file() {
                bail!("charm or bundle at {:?} not found", charm.display().to_string());
            }
            let settings = if juju_version.is_some() || kubelet_sync_seconds.is_some() {
                let d = Settings::default();
                let v = juju_version.unwrap_or(d.juju_version);
                crate::model::Version::parse(&v)?;
                Some(Settings {
                    juju_version: v,
                    kubelet_sync_seconds: kubelet_sync_seconds.unwrap_or(d.kubelet_sync_seconds),
                })
            } else {
                None
            };
            let created = !paths.root.exists();
            std::fs::create_dir_all(&paths.root).with_context(|| format!("cannot create {}", paths.root.display()))?;
            let _l = lock(&paths)?;
            let (resources, config) = (pairs(&resources)?, pairs(&config)?);
            let result = lifecycle::deploy(
                &paths,
                &charm,
                application.as_deref(),
                &resources,
                &config,
                num_units,
                settings.as_ref(),
            );
            if result.is_err() && created && !paths.model_file().exists() {
                let _ = std::fs::remove_dir_all(&paths.root);
            }
            let (model, warnings) = result?;
            print_warnings(&warnings);
            let name = application.unwrap_or_else(|| model.apps.keys().last().cloned().unwrap_or_default());
            println!("Deployed {name:?} from local charm {:?} ({} unit(s))", charm.display().to_string(), num_units);
            Ok(0)
        }
        Cmd::Config { application, settings, reset } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            let resets: Vec<String> =
                reset.iter().flat_map(|r| r.split(',')).filter(|s| !s.is_empty()).map(str::to_string).collect();
            if settings.iter().all(|s| !s.contains('=')) && resets.is_empty() {
                if settings.len() > 1 {
                    bail!("can only retrieve a single value, or all values");
                }
                return show_config(&paths, &model, &application, settings.first().map(String::as_str));
            }
            if settings.iter().any(|s| !s.contains('=')) {
                bail!("cannot set and retrieve values simultaneously");
            }
            match lifecycle::set_config(&paths, &mut model, &application, &pairs(&settings)?, &resets)? {
                ConfigChange::Unchanged(w) => print_warnings(&w),
                ConfigChange::Changed => print_warnings(&lifecycle::drain(&paths, &mut model)?),
            }
            Ok(0)
        }
        Cmd::AttachResource { application, resource } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            let (name, value) = split_kv(&resource).map_err(anyhow::Error::msg)?;
            lifecycle::attach_resource(&mut model, &application, &name, &value, &paths)?;
            print_warnings(&lifecycle::drain(&paths, &mut model)?);
            Ok(0)
        }
        Cmd::Relate { application, remote } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            if lifecycle::names_deployed_app(&model, &remote) {
                // As `juju integrate`, which prints nothing on success.
                lifecycle::relate_apps(&paths, &mut model, &application, &remote)?;
                print_warnings(&lifecycle::drain(&paths, &mut model)?);
                return Ok(0);
            }
            let id = lifecycle::relate(&paths, &mut model, &application, &remote)?;
            print_warnings(&lifecycle::drain(&paths, &mut model)?);
            print!("{}", serde_yaml::to_string(&lifecycle::client_view(&model, id))?);
            Ok(0)
        }
        Cmd::RemoveRelation { names } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            let id = lifecycle::find_relation(&model, &names)?;
            print_warnings(&lifecycle::remove_relation(&paths, &mut model, id)?);
            Ok(0)
        }
        Cmd::ShowRelation { relation } => {
            let _l = lock(&paths)?;
            let model = Model::load(&paths)?;
            let id: u32 = relation
                .rsplit(':')
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("invalid relation id {relation:?}"))?;
            if !model.relations.contains_key(&id) {
                anyhow::bail!("relation {relation:?} not found");
            }
            print!("{}", serde_yaml::to_string(&lifecycle::client_view(&model, id))?);
            Ok(0)
        }
        Cmd::Scale { application, scale } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            print_warnings(&lifecycle::scale(&paths, &mut model, &application, scale)?);
            println!("{application} scaled to {scale} unit(s)");
            Ok(0)
        }
        Cmd::Remove { application } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            print_warnings(&lifecycle::remove_app(&paths, &mut model, &application)?);
            println!("removed application {application}");
            Ok(0)
        }
        Cmd::RemoveUnit { unit } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            let (app, n) = parse_unit_name(&unit)?;
            if model.unit(&app, n)?.ordinal.is_some() {
                // A StatefulSet only ever drops its highest ordinal; Juju on k8s scales instead.
                anyhow::bail!(
                    "cannot remove {unit} by name: {app} is a StatefulSet, whose pods are ordinals 0..N-1; \
                     scale it down instead (juju-local scale {app} N, as juju scale-application)"
                );
            }
            let mut warnings = Vec::new();
            lifecycle::remove_unit(&paths, &mut model, &app, n, &mut warnings)?;
            warnings.extend(lifecycle::drain(&paths, &mut model)?);
            print_warnings(&warnings);
            println!("removed unit {unit}");
            Ok(0)
        }
        Cmd::RunHook { unit, hook, relation, remote_unit } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            let (app, n) = parse_unit_name(&unit)?;
            model.unit(&app, n)?;
            let spec = lifecycle::hook_for(&model, &app, n, &hook, relation.as_deref(), remote_unit.as_deref())?;
            let was_failed = model.unit(&app, n)?.failed_hook.clone();
            let outcome = lifecycle::run_one(&paths, &mut model, &app, n, &spec)?;
            if !outcome.ok {
                bail!("hook failed: {hook:?} on unit {unit:?}: {}", outcome.error.unwrap_or_default());
            }
            if was_failed.is_some_and(|f| f.name == hook) {
                println!("hook {hook:?} succeeded; unit {unit} resolved");
            }
            print_warnings(&lifecycle::drain(&paths, &mut model)?);
            Ok(0)
        }
        Cmd::Resolved { unit, no_retry } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            let (app, n) = parse_unit_name(&unit)?;
            let Some(failed) = model.unit(&app, n)?.failed_hook.clone() else {
                bail!("unit {unit:?} is not in an error state");
            };
            if no_retry {
                let u = model.unit_mut(&app, n)?;
                u.failed_hook = None;
                u.agent = crate::model::StatusInfo::new("idle", "");
                model.save(&paths)?;
            } else {
                let outcome = lifecycle::run_one(&paths, &mut model, &app, n, &failed)?;
                if !outcome.ok {
                    bail!("hook failed: {:?} on unit {unit:?}", failed.name);
                }
            }
            print_warnings(&lifecycle::drain(&paths, &mut model)?);
            Ok(0)
        }
        Cmd::RunAction { unit, action, params, wait } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            kubelet::ensure_running(&paths)?;
            let (app, n) = parse_unit_name(&unit)?;
            model.unit(&app, n)?;
            let actions = charm_meta::Actions::load(&paths.charm_dir(&app, n))?;
            let Some(defaults) = actions.actions.get(&action) else {
                bail!("action {action:?} not defined on unit {unit:?}");
            };
            let mut p = serde_json::Map::new();
            for (k, v) in defaults {
                p.insert(k.clone(), v.clone());
            }
            for (k, v) in pairs(&params)? {
                let value: Value = serde_yaml::from_str(&v).unwrap_or(Value::String(v.clone()));
                insert_dotted(&mut p, &k, value);
            }
            let (out, committed) = hook_runner::run_action(
                &paths,
                &mut model,
                &app,
                n,
                &action,
                Value::Object(p),
                Duration::from_secs(wait),
            )?;
            lifecycle::after_commit(&paths, &mut model, &app, n, &committed)?;
            model.save(&paths)?;
            let warnings = lifecycle::drain(&paths, &mut model)?;
            let mut results: BTreeMap<String, Value> =
                out.results.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            if !out.stdout.is_empty() {
                results.insert("Stdout".into(), Value::String(out.stdout));
            }
            if !out.stderr.is_empty() {
                results.insert("Stderr".into(), Value::String(out.stderr));
            }
            if out.code != 0 {
                results.insert("Code".into(), Value::String(out.code.to_string()));
            }
            let mut doc = serde_json::json!({"UnitId": unit, "status": out.status});
            if !results.is_empty() {
                doc["results"] = serde_json::to_value(results)?;
            }
            if let Some(m) = out.message {
                doc["message"] = Value::String(m);
            }
            let tag = format!("unit-{app}-{n}");
            print!("{}", serde_yaml::to_string(&serde_json::json!({ tag: doc }))?);
            print_warnings(&warnings);
            Ok(0)
        }
        Cmd::Status { format } => {
            let model = Model::load(&paths)?;
            kubelet::ensure_running(&paths)?;
            let pods = kubelet::load_pods(&paths);
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string(&status::to_json(&model, &pods))?),
                "yaml" => print!("{}", serde_yaml::to_string(&status::to_json(&model, &pods))?),
                "tabular" => print!("{}", status::to_table(&model, &pods)),
                other => bail!("unknown format {other:?}"),
            }
            Ok(0)
        }
        Cmd::DebugLog { unit } => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(paths.logs_dir())
                .with_context(|| format!("no logs in {}", paths.root.display()))?
                .flatten()
                .map(|e| e.path())
                .collect();
            files.sort();
            if let Some(u) = unit {
                let (app, n) = parse_unit_name(&u)?;
                files.retain(|f| *f == paths.unit_log(&app, n));
            }
            for f in files {
                print!("{}", std::fs::read_to_string(&f).unwrap_or_default());
            }
            Ok(0)
        }
        Cmd::Wait { application, timeout } => wait(&paths, &application, timeout),
        Cmd::Address { unit } => {
            let model = Model::load(&paths)?;
            let (app, n) = parse_unit_name(&unit)?;
            println!("{}", model.unit(&app, n)?.address);
            Ok(0)
        }
        Cmd::Destroy => {
            if !paths.model_file().exists() {
                bail!("no model at {}", paths.root.display());
            }
            let _l = lock(&paths)?;
            lifecycle::destroy(&paths)?;
            println!("destroyed model at {}", paths.root.display());
            Ok(0)
        }
        Cmd::Events { app, format } => {
            Model::load(&paths)?;
            let text = std::fs::read_to_string(paths.events_log()).unwrap_or_default();
            let pods = kubelet::load_pods(&paths);
            let events: Vec<Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|e| match &app {
                    None => true,
                    Some(a) => {
                        let pod = e["pod"].as_str().unwrap_or_default();
                        pods.pods.get(pod).map(|p| &p.app == a).unwrap_or_else(|| {
                            pod.strip_prefix(a.as_str())
                                .and_then(|r| r.strip_prefix('-'))
                                .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                        })
                    }
                })
                .collect();
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string(&events)?),
                "tabular" => {
                    for e in events {
                        let obj = match e["container"].as_str() {
                            Some(c) => format!("pod/{}/{c}", e["pod"].as_str().unwrap_or_default()),
                            None => format!("pod/{}", e["pod"].as_str().unwrap_or_default()),
                        };
                        println!(
                            "{}  {:<16} {:<32} {}",
                            e["time"].as_str().unwrap_or_default(),
                            e["reason"].as_str().unwrap_or_default(),
                            obj,
                            e["message"].as_str().unwrap_or_default()
                        );
                    }
                }
                other => bail!("unknown format {other:?}"),
            }
            Ok(0)
        }
        Cmd::K8s { application, format } => {
            let model = Model::load(&paths)?;
            model.app(&application)?;
            let cluster = Cluster::load(&paths)?;
            let pods = kubelet::load_pods(&paths);
            let doc = k8s_view(&cluster, &pods, &application);
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string(&doc)?),
                "yaml" => print!("{}", serde_yaml::to_string(&doc)?),
                other => bail!("unknown format {other:?}"),
            }
            Ok(0)
        }
        Cmd::Kubelet => {
            kubelet::run_daemon(&paths)?;
            Ok(0)
        }
        Cmd::Pebble { .. } => unreachable!("handled before the model is opened"),
    }
}

fn insert_dotted(map: &mut serde_json::Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            map.insert(key.into(), value);
        }
        Some((head, rest)) => {
            let entry = map.entry(head.to_string()).or_insert_with(|| Value::Object(Default::default()));
            if !entry.is_object() {
                *entry = Value::Object(Default::default());
            }
            if let Value::Object(inner) = entry {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

fn show_config(paths: &Paths, model: &Model, app: &str, key: Option<&str>) -> Result<i32> {
    let a = model.app(app)?;
    let n = *a.units.keys().next().context("application has no units")?;
    let schema = charm_meta::ConfigSchema::load(&paths.charm_dir(app, n))?;
    if let Some(k) = key {
        let opt = schema
            .options
            .get(k)
            .with_context(|| format!("key {k:?} not found in {app:?} application config or charm settings"))?;
        let v = a.config.get(k).cloned().or_else(|| opt.default.clone()).unwrap_or(Value::Null);
        match v {
            Value::String(s) => println!("{s}"),
            Value::Null => println!(),
            other => println!("{other}"),
        }
        return Ok(0);
    }
    let mut settings = serde_json::Map::new();
    for (k, o) in &schema.options {
        let mut m = serde_json::Map::new();
        if let Some(d) = &o.default {
            m.insert("default".into(), d.clone());
        }
        m.insert("description".into(), Value::String(o.description.clone()));
        m.insert(
            "source".into(),
            Value::String(
                if a.config.contains_key(k) {
                    "user"
                } else if o.default.is_some() {
                    "default"
                } else {
                    "unset"
                }
                .into(),
            ),
        );
        m.insert("type".into(), Value::String(format!("{:?}", o.kind).to_lowercase()));
        if let Some(v) = a.config.get(k).cloned().or_else(|| o.default.clone()) {
            m.insert("value".into(), v);
        }
        settings.insert(k.clone(), Value::Object(m));
    }
    let doc = serde_json::json!({"application": app, "charm": a.charm, "settings": settings});
    print!("{}", serde_yaml::to_string(&doc)?);
    Ok(0)
}

/// What `k8s APP` prints: the application's objects as the API server holds them, and its pods.
fn k8s_view(cluster: &Cluster, pods: &kubelet::PodsFile, app: &str) -> Value {
    let objs = cluster.apps.get(app).cloned().unwrap_or_default();
    let mut services = Vec::new();
    if objs.service {
        services.push(app.to_string());
    }
    if objs.headless_service {
        services.push(format!("{app}-endpoints"));
    }
    let keys = |m: &BTreeMap<String, BTreeMap<String, String>>| -> BTreeMap<String, Vec<String>> {
        m.iter().map(|(k, v)| (k.clone(), v.keys().cloned().collect())).collect()
    };
    let pod_list: Vec<Value> = pods
        .pods
        .values()
        .filter(|p| p.app == app)
        .map(|p| {
            serde_json::json!({
                "name": p.name, "unit": format!("{app}/{}", p.unit), "address": p.address, "revision": p.revision,
                "phase": p.phase, "ready": p.ready, "terminating": p.terminating(), "restarts": p.restarts,
                "error": p.error, "grace-period-seconds": p.grace_seconds,
                "containers": p.containers.iter().map(|c| serde_json::json!({
                    "name": c.name, "pid": c.pid, "state": c.state, "reason": c.reason, "ready": c.ready,
                    "restart-count": c.restart_count,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "namespace": cluster.namespace,
        "generation": cluster.generation,
        "observed-generation": pods.observed_generation,
        "workload": objs.workload,
        "config-maps": keys(&objs.config_maps),
        "secrets": keys(&objs.secrets),
        "services": services,
        "pods": pod_list,
        "rollout": match kubelet::rollout_status(cluster, pods, app) { Ok(()) => "complete".to_string(), Err(e) => e },
    })
}

fn wait(paths: &Paths, app: &str, timeout: u64) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    kubelet::ensure_running(paths)?;
    loop {
        let last = {
            let model = Model::load(paths)?;
            let pods = kubelet::load_pods(paths);
            let cluster = Cluster::load(paths)?;
            let st = status::to_json(&model, &pods);
            let units = st["applications"][app]["units"]
                .as_object()
                .cloned()
                .with_context(|| format!("application {app:?} not found"))?;
            let ready = !units.is_empty()
                && units
                    .values()
                    .all(|u| u["workload-status"]["current"] == "active" && u["juju-status"]["current"] == "idle");
            let rollout = kubelet::rollout_status(&cluster, &pods, app);
            if ready && rollout.is_ok() {
                return Ok(0);
            }
            let mut why: Vec<String> = units
                .iter()
                .map(|(n, u)| format!("{n}: {} {}", u["workload-status"]["current"], u["workload-status"]["message"]))
                .collect();
            if let Err(e) = rollout {
                why.push(format!("rollout: {e}"));
            }
            why.join("; ")
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout}s waiting for {app:?} to be active: {last}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
