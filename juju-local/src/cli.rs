//! The `juju-local` command line: subcommands mirroring the Juju CLI (deploy, config,
//! attach-resource, relate, scale, remove, run-hook, resolved, run-action, status, debug-log,
//! destroy) plus `wait` and `address` for scripts. Every command runs under the model lock, so hooks
//! from concurrent invocations never interleave. Failures print one `ERROR …` line and exit non-zero.

use crate::lifecycle::{self, ConfigChange};
use crate::model::{Model, Paths, parse_unit_name};
use crate::util::{FileLock, split_kv};
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
    /// Relate an application endpoint to a stand-in application (no charm), e.g. `relate redis-k8s client`.
    #[command(alias = "integrate", alias = "add-relation")]
    Relate { application: String, remote: String },
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
    RunAction { unit: String, action: String, params: Vec<String> },
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
    /// Wait until every unit of the application is active and idle.
    Wait {
        application: String,
        #[arg(long, default_value_t = 20)]
        timeout: u64,
    },
    /// Print a unit's pod address.
    Address { unit: String },
    /// Stop every process, namespace and bridge of the model and delete it.
    Destroy,
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
    let root = cli.model_dir.clone().unwrap_or_else(|| PathBuf::from(".juju-local"));
    let paths = Paths::new(&root)?;
    match cli.command {
        Cmd::Deploy { charm, application, resources, config, num_units } => {
            if !charm.is_file() {
                bail!("charm or bundle at {:?} not found", charm.display().to_string());
            }
            let created = !paths.root.exists();
            std::fs::create_dir_all(&paths.root).with_context(|| format!("cannot create {}", paths.root.display()))?;
            let _l = lock(&paths)?;
            let (resources, config) = (pairs(&resources)?, pairs(&config)?);
            let result = lifecycle::deploy(&paths, &charm, application.as_deref(), &resources, &config, num_units);
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
            let id = lifecycle::relate(&paths, &mut model, &application, &remote)?;
            print_warnings(&lifecycle::drain(&paths, &mut model)?);
            print!("{}", serde_yaml::to_string(&lifecycle::client_view(&model, id))?);
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
        Cmd::RunAction { unit, action, params } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
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
            let out = hook_runner::run_action(&paths, &mut model, &app, n, &action, Value::Object(p))?;
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
            let mut doc = serde_json::json!({"UnitId": unit, "status": out.status, "results": results});
            if let Some(m) = out.message {
                doc["message"] = Value::String(m);
            }
            let tag = format!("unit-{app}-{n}");
            print!("{}", serde_yaml::to_string(&serde_json::json!({ tag: doc }))?);
            Ok(0)
        }
        Cmd::Status { format } => {
            let _l = lock(&paths)?;
            let mut model = Model::load(&paths)?;
            print_warnings(&kubelet::reconcile(&paths, &mut model)?);
            model.save(&paths)?;
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string(&status::to_json(&model))?),
                "yaml" => print!("{}", serde_yaml::to_string(&status::to_json(&model))?),
                "tabular" => print!("{}", status::to_table(&model)),
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

fn wait(paths: &Paths, app: &str, timeout: u64) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let last = {
            let _l = lock(paths)?;
            let mut model = Model::load(paths)?;
            kubelet::reconcile(paths, &mut model)?;
            model.save(paths)?;
            let st = status::to_json(&model);
            let units = st["applications"][app]["units"]
                .as_object()
                .cloned()
                .with_context(|| format!("application {app:?} not found"))?;
            let ready = !units.is_empty()
                && units
                    .values()
                    .all(|u| u["workload-status"]["current"] == "active" && u["juju-status"]["current"] == "idle");
            if ready {
                return Ok(0);
            }
            units
                .iter()
                .map(|(n, u)| format!("{n}: {} {}", u["workload-status"]["current"], u["workload-status"]["message"]))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout}s waiting for {app:?} to be active: {last}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
