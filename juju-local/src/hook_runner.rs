//! Runs one hook (or action) the way a Juju 2.9 unit agent does (reference §1): writes the hook
//! context the tools will find through `JUJU_AGENT_SOCKET_ADDRESS`, builds the environment from
//! scratch, execs `<charm>/dispatch` (or `hooks/<name>`) with argv0 = its absolute path, cwd = the charm
//! dir and stdin = /dev/null, logs stdout at DEBUG and stderr at WARNING, then commits the hook's
//! deferred changes only if it exited 0 and sets the agent status (`error hook failed: "<hook>"`).

use crate::charm_meta::Metadata;
use crate::context::{ActionContext, HookContext};
use crate::model::{self, HookSpec, Model, Paths, StatusInfo};
use crate::{kubelet, podspec, tools, util};
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What happened when a hook ran.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: bool,
    /// Why it failed (exit status or commit error).
    pub error: Option<String>,
    pub leader_settings_changed: bool,
    pub spec_committed: bool,
    /// Relations whose data this hook changed: (relation id, unit bag changed, app bag changed).
    pub changed_relations: Vec<(u32, bool, bool)>,
}

/// Result of an action run.
#[derive(Debug, Default)]
pub struct ActionOutcome {
    pub status: String,
    pub message: Option<String>,
    pub results: std::collections::BTreeMap<String, String>,
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Makes sure the unit's tools dir holds one symlink per hook tool pointing at this binary.
pub fn ensure_tools(paths: &Paths, app: &str, n: u32) -> Result<PathBuf> {
    let dir = paths.tools_dir(app, n);
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe().context("cannot find the juju-local binary")?;
    let version = Model::load(paths).map(|m| m.settings.juju_version).unwrap_or_default();
    for name in tools::TOOL_NAMES.iter().copied().chain(["jujuc"]) {
        let link = dir.join(name);
        if !crate::sidecar::tool_exists(name, &version) {
            let _ = std::fs::remove_file(&link);
            continue;
        }
        if std::fs::read_link(&link).ok().as_deref() != Some(exe.as_path()) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&exe, &link).with_context(|| format!("cannot create {}", link.display()))?;
        }
    }
    Ok(dir)
}

fn context_id(app: &str, n: u32, name: &str) -> String {
    format!("{app}/{n}-{name}-{}", util::random_u63())
}

/// The environment of §1.1, built from scratch.
fn hook_env(paths: &Paths, model: &Model, ctx: &HookContext, hook: Option<&HookSpec>) -> Result<Vec<(String, String)>> {
    let (app, n) = (ctx.app.as_str(), ctx.unit);
    let charm_dir = paths.charm_dir(app, n).display().to_string();
    let tools_dir = ensure_tools(paths, app, n)?;
    let agent_path =
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut env: Vec<(String, String)> = vec![
        ("CHARM_DIR".into(), charm_dir.clone()),
        ("JUJU_CHARM_DIR".into(), charm_dir),
        ("JUJU_CONTEXT_ID".into(), ctx.id.clone()),
        ("JUJU_HOOK_NAME".into(), ctx.hook.clone()),
        ("JUJU_AGENT_SOCKET_ADDRESS".into(), paths.context_file(app, n).display().to_string()),
        ("JUJU_AGENT_SOCKET_NETWORK".into(), "unix".into()),
        ("JUJU_UNIT_NAME".into(), ctx.unit_name()),
        ("JUJU_MODEL_UUID".into(), model.uuid.clone()),
        ("JUJU_MODEL_NAME".into(), model.name.clone()),
        ("JUJU_API_ADDRESSES".into(), String::new()),
        ("JUJU_SLA".into(), "unsupported".into()),
        ("JUJU_MACHINE_ID".into(), String::new()),
        ("JUJU_PRINCIPAL_UNIT".into(), String::new()),
        ("JUJU_AVAILABILITY_ZONE".into(), String::new()),
        ("JUJU_VERSION".into(), model.settings.juju_version.clone()),
        ("CLOUD_API_VERSION".into(), crate::assumes::K8S_API_VERSION.to_string()),
        ("JUJU_CHARM_HTTP_PROXY".into(), String::new()),
        ("JUJU_CHARM_HTTPS_PROXY".into(), String::new()),
        ("JUJU_CHARM_FTP_PROXY".into(), String::new()),
        ("JUJU_CHARM_NO_PROXY".into(), String::new()),
    ];
    if let Some(h) = hook {
        if let Some(rid) = h.relation_id {
            let rel = model.relations.get(&rid).with_context(|| format!("relation {rid} not found"))?;
            env.push(("JUJU_RELATION".into(), rel.endpoint_of(app).to_string()));
            env.push(("JUJU_RELATION_ID".into(), rel.key_for(app)));
            env.push(("JUJU_REMOTE_UNIT".into(), h.remote_unit.clone().unwrap_or_default()));
            env.push((
                "JUJU_REMOTE_APP".into(),
                h.remote_app.clone().unwrap_or_else(|| rel.other_app(app).to_string()),
            ));
            if let Some(d) = &h.departing_unit {
                env.push(("JUJU_DEPARTING_UNIT".into(), d.clone()));
            }
        }
        if let Some(st) = &h.storage {
            let meta = Metadata::load(&paths.charm_dir(app, n))?;
            env.push(("JUJU_STORAGE_ID".into(), format!("{st}/{n}")));
            env.push(("JUJU_STORAGE_LOCATION".into(), meta.storage.get(st).cloned().unwrap_or_default()));
            env.push(("JUJU_STORAGE_KIND".into(), "filesystem".into()));
        }
    }
    if let Some(a) = &ctx.action {
        env.push(("JUJU_ACTION_NAME".into(), a.name.clone()));
        env.push(("JUJU_ACTION_UUID".into(), a.uuid.clone()));
        env.push(("JUJU_ACTION_TAG".into(), format!("action-{}", a.uuid)));
    }
    env.push(("APT_LISTCHANGES_FRONTEND".into(), "none".into()));
    env.push(("DEBIAN_FRONTEND".into(), "noninteractive".into()));
    env.push(("LANG".into(), "C.UTF-8".into()));
    env.push(("PATH".into(), format!("{}:{agent_path}", tools_dir.display())));
    env.push(("TERM".into(), "tmux-256color".into()));
    let location = if ctx.action.is_some() { "actions" } else { "hooks" };
    let name = ctx.action.as_ref().map(|a| a.name.clone()).unwrap_or_else(|| ctx.hook.clone());
    env.push(("JUJU_DISPATCH_PATH".into(), format!("{location}/{name}")));
    Ok(env)
}

/// How the hook is found (§1.3). Err(message) fails the hook; Ok(None) skips it.
fn find_handler(
    charm_dir: &Path,
    location: &str,
    name: &str,
) -> std::result::Result<Option<(PathBuf, &'static str)>, String> {
    for (path, kind) in [
        (charm_dir.join("dispatch"), "hook dispatching script: dispatch"),
        (charm_dir.join(location).join(name), "explicit, bespoke hook script"),
    ] {
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(Some((path, kind))),
            Ok(_) => return Err(format!("fork/exec {}: permission denied", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(None)
}

/// Wraps a hook's argv so that it sees the cluster the way a hook in the operator pod does: the
/// operator pod's /etc/hosts, and an /etc/resolv.conf that points at cluster DNS with the namespace's
/// search list (findings §11), in a private mount namespace made by the shim.
fn in_operator_pod(paths: &Paths, model: &Model, argv: Vec<String>) -> Result<Vec<String>> {
    let binds = kubelet::write_operator_files(paths, &model.name, &model.network)?;
    Ok(crate::shim::prefix(None, &binds).into_iter().chain(argv).collect())
}

/// A program to run: argv, environment, working dir.
type Invocation = (Vec<String>, Vec<(String, String)>, PathBuf);

/// How long a sidecar unit's hook waits for its pod's charm container (the unit agent runs there).
const CHARM_CONTAINER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A sidecar unit's hook runs in its pod's charm container (Juju 3 `caas/kubernetes/provider/application`:
/// the unit agent is a service of the charm container's Pebble): the container's mount, UTS, network and PID
/// namespaces, charm dir `/var/lib/juju/agents/unit-<app>-<n>/charm`, the tools in
/// `/var/lib/juju/tools/unit-<app>-<n>`. Returns argv, environment and working dir.
fn in_charm_container(
    paths: &Paths,
    app: &str,
    n: u32,
    host_charm: &Path,
    handler: &Path,
    mut env: Vec<(String, String)>,
) -> Result<Invocation> {
    let (_pod, ctr) = crate::sidecar::charm_container(paths, app, n, CHARM_CONTAINER_WAIT)?;
    let unit_dir = format!("unit-{app}-{n}");
    let in_pod_charm = format!("{}/agents/{unit_dir}/charm", crate::workload::JUJU_DATA_DIR);
    let rel = handler.strip_prefix(host_charm).unwrap_or(handler).display().to_string();
    let script = format!("{in_pod_charm}/{rel}");
    let container_path =
        ctr.env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_else(|| "/usr/bin:/bin".into());
    for (k, v) in env.iter_mut() {
        match k.as_str() {
            "CHARM_DIR" | "JUJU_CHARM_DIR" => *v = in_pod_charm.clone(),
            "PATH" => *v = format!("{}/tools/{unit_dir}:{container_path}", crate::workload::JUJU_DATA_DIR),
            _ => {}
        }
    }
    let mut line = format!("cd {} || exit 1; ", shell_quote(&in_pod_charm));
    for (k, v) in &env {
        line.push_str(&format!("export {k}={}; ", shell_quote(v)));
    }
    line.push_str(&format!("exec {}", shell_quote(&script)));
    let argv: Vec<String> = kubelet::exec_prefix(ctr.pid).into_iter().chain(["sh".into(), "-c".into(), line]).collect();
    Ok((argv, ctr.env.clone(), PathBuf::from("/")))
}

/// Runs a program with a Juju-like environment, sending stdout/stderr to the unit log.
fn execute(
    paths: &Paths,
    ctx: &HookContext,
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    logger: &str,
) -> Result<(i32, String, String)> {
    let (prog, args) = argv.split_first().context("empty command")?;
    let mut child = Command::new(prog)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("fork/exec {prog}"))?;
    let pump = |stream: Option<Box<dyn std::io::Read + Send>>, level: &'static str| {
        let paths = paths.clone();
        let (app, n, logger) = (ctx.app.clone(), ctx.unit, logger.to_string());
        std::thread::spawn(move || {
            let mut all = String::new();
            if let Some(s) = stream {
                for line in BufReader::new(s).lines().map_while(|l| l.ok()) {
                    model::log_line(&paths, &app, n, level, &logger, &line);
                    all.push_str(&line);
                    all.push('\n');
                }
            }
            all
        })
    };
    let out = pump(child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), "DEBUG");
    let err = pump(child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), "WARNING");
    let status = child.wait().context("cannot wait for the hook")?;
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok((status.code().unwrap_or(-1), stdout, stderr))
}

/// Runs `hook` on unit `app/n`, committing or discarding its deferred changes. Saves the model.
pub fn run_hook(paths: &Paths, model: &mut Model, app: &str, n: u32, hook: &HookSpec) -> Result<Outcome> {
    let unit_name = model::unit_name(app, n);
    {
        let unit = model.unit_mut(app, n)?;
        match hook.name.as_str() {
            "install" if unit.workload.is_none() => {
                unit.workload = Some(StatusInfo::new("maintenance", "installing charm software"))
            }
            "stop" => unit.workload = Some(StatusInfo::new("maintenance", "stopping charm software")),
            "remove" => unit.workload = Some(StatusInfo::new("maintenance", "cleaning up prior to charm deletion")),
            _ => {}
        }
        if hook.name != "update-status" {
            unit.agent = StatusInfo::new("executing", &format!("running {} hook", hook.name));
        }
    }
    model.save(paths)?;
    let ctx = HookContext {
        id: context_id(app, n, &hook.name),
        model_dir: paths.root.clone(),
        app: app.into(),
        unit: n,
        hook: hook.name.clone(),
        relation_id: hook.relation_id,
        remote_unit: hook.remote_unit.clone(),
        remote_app: hook.remote_app.clone(),
        ..Default::default()
    };
    let ctx_file = paths.context_file(app, n);
    ctx.save(&ctx_file)?;
    let charm_dir = paths.charm_dir(app, n);
    let logger = format!("unit.{unit_name}.{}", hook.name);
    let mut failure: Option<String> = None;
    let mut ran = true;
    match find_handler(&charm_dir, "hooks", &hook.name) {
        Ok(Some((path, kind))) => {
            let env = hook_env(paths, model, &ctx, Some(hook))?;
            let sidecar = model.app(app)?.sidecar;
            let run = if sidecar {
                in_charm_container(paths, app, n, &charm_dir, &path, env.clone())
            } else {
                in_operator_pod(paths, model, vec![path.display().to_string()])
                    .map(|argv| (argv, env.clone(), charm_dir.clone()))
            };
            let run = run.and_then(|(argv, env, cwd)| execute(paths, &ctx, &argv, &env, &cwd, &logger));
            match run {
                Ok((0, _, _)) => model::log_line(
                    paths,
                    app,
                    n,
                    "INFO",
                    "juju.worker.uniter.operation",
                    &format!("ran {:?} hook (via {kind})", hook.name),
                ),
                Ok((code, _, _)) => {
                    failure = Some(format!("hook {:?} (via {kind}) failed: exit status {code}", hook.name))
                }
                Err(e) => failure = Some(format!("hook {:?} (via {kind}) failed: {e:#}", hook.name)),
            }
        }
        Ok(None) => {
            ran = false;
            model::log_line(
                paths,
                app,
                n,
                "INFO",
                "juju.worker.uniter.operation",
                &format!("skipped {:?} hook (missing)", hook.name),
            );
        }
        Err(e) => failure = Some(format!("hook {:?} failed: {e}", hook.name)),
    }
    let done = HookContext::load(&ctx_file).unwrap_or(ctx);
    let _ = std::fs::remove_file(&ctx_file);
    *model = Model::load(paths)?;
    let mut outcome = Outcome { leader_settings_changed: done.leader_settings_changed, ..Default::default() };
    if failure.is_none() && ran {
        match commit(model, &done) {
            Ok((spec, changed)) => {
                outcome.spec_committed = spec;
                outcome.changed_relations = changed;
            }
            Err(e) => failure = Some(format!("hook {:?} failed at commit: {e}", hook.name)),
        }
    }
    let unit = model.unit_mut(app, n)?;
    match &failure {
        None => {
            outcome.ok = true;
            unit.agent = StatusInfo::new("idle", "");
            if unit.failed_hook.as_ref().is_some_and(|f| f.name == hook.name) {
                unit.failed_hook = None;
            }
            match hook.name.as_str() {
                "install" => unit.installed = true,
                "start" => {
                    unit.started = true;
                    if !unit.status_set_called {
                        unit.workload = Some(StatusInfo::new("unknown", ""));
                    }
                }
                "stop" if unit.workload.as_ref().is_some_and(|w| w.message == "stopping charm software") => {
                    unit.workload = Some(StatusInfo::new("maintenance", ""));
                }
                "remove" => unit.workload = Some(StatusInfo::new("terminated", "")),
                _ => {}
            }
        }
        Some(msg) => {
            model::log_line(paths, app, n, "ERROR", "juju.worker.uniter.operation", msg);
            unit.agent = StatusInfo::new("error", &format!("hook failed: {:?}", hook.name));
            unit.failed_hook = Some(hook.clone());
            outcome.error = Some(msg.clone());
        }
    }
    model.save(paths)?;
    Ok(outcome)
}

/// What a commit changed: whether a spec was set, and which relations' unit/app bags really changed.
type Committed = (bool, Vec<(u32, bool, bool)>);

/// Applies a successful hook's deferred changes (CommitHookChanges).
fn commit(model: &mut Model, ctx: &HookContext) -> std::result::Result<Committed, String> {
    let (app_name, n) = (ctx.app.as_str(), ctx.unit);
    let unit_name = ctx.unit_name();
    if !ctx.pending.ports.is_empty() {
        return Err(format!("unit {unit_name:?} is not assigned to a machine"));
    }
    let is_leader = model.apps.get(app_name).is_some_and(|a| a.leader == Some(n));
    let mut spec_set = false;
    if let Some(spec) = &ctx.pending.pod_spec {
        if !is_leader {
            return Err("this unit is not the leader".into());
        }
        podspec::parse(spec)?;
        let app = model.apps.get_mut(app_name).ok_or("application gone")?;
        // Committed; the deployment worker applies it to Kubernetes after the commit (lifecycle).
        app.pod_spec = Some(spec.clone());
        spec_set = true;
    }
    let mut changed = Vec::new();
    for (rid, changes) in &ctx.pending.relations {
        let Some(rel) = model.relations.get_mut(rid) else { continue };
        let unit_before = rel.unit_data.get(&unit_name).cloned();
        let app_before = rel.app_data.get(app_name).cloned();
        let bag = rel.unit_data.entry(unit_name.clone()).or_default();
        for (k, v) in &changes.unit {
            if v.is_empty() {
                bag.remove(k);
            } else {
                bag.insert(k.clone(), v.clone());
            }
        }
        if !changes.app.is_empty() {
            if !is_leader {
                return Err("cannot write relation settings".into());
            }
            let bag = rel.app_data.entry(app_name.to_string()).or_default();
            for (k, v) in &changes.app {
                if v.is_empty() {
                    bag.remove(k);
                } else {
                    bag.insert(k.clone(), v.clone());
                }
            }
        }
        let unit_changed =
            rel.unit_data.get(&unit_name).cloned().unwrap_or_default() != unit_before.unwrap_or_default();
        let app_changed = rel.app_data.get(app_name).cloned().unwrap_or_default() != app_before.unwrap_or_default();
        if unit_changed || app_changed {
            changed.push((*rid, unit_changed, app_changed));
        }
    }
    if let Some(unit) = model.apps.get_mut(app_name).and_then(|a| a.units.get_mut(&n)) {
        for (k, v) in &ctx.pending.state {
            match v {
                Some(v) => unit.state.insert(k.clone(), v.clone()),
                None => unit.state.remove(k),
            };
        }
    }
    Ok((spec_set, changed))
}

/// Runs an action on unit `app/n` the way Juju 2.9 runs a podspec charm's actions (findings §5): in the
/// FIRST container of the unit's pod (`exec.getValidatedPodContainer`), through the remote exec command
/// line (`exec.go` `exec`: `sh -c "cd <dir>; export K=V; …; mkdir -p /tmp; echo $$ > /tmp/<rand>.pid;
/// exec sh -c '<cmd>'"`), with `JUJU_CHARM_DIR` = `/var/lib/juju/agents/unit-<app>-<n>/charm`, the copy
/// `caas-unit-init` left on the pod's Juju data dir (there is no operator `state/` dir there).
///
/// Exit 0 commits the deferred changes (also after action-fail); a non-zero exit discards them
/// (`context.go` `Flush`). While the first container is not running the action stays pending (the
/// uniter blocks actions, `remotestate` `ActionsBlocked`); up to `wait`, after which it is reported
/// pending. A container that stops while the action runs fails it with `action terminated`.
pub fn run_action(
    paths: &Paths,
    model: &mut Model,
    app: &str,
    n: u32,
    name: &str,
    params: serde_json::Value,
    wait: std::time::Duration,
) -> Result<(ActionOutcome, Outcome)> {
    let deadline = std::time::Instant::now() + wait;
    let sidecar = model.app(app)?.sidecar;
    let (pod, ctr) = loop {
        let pods = kubelet::load_pods(paths);
        let found = kubelet::pod_of(&pods, app, n).filter(|p| !p.terminating()).and_then(|p| {
            // Podspec: the workload pod's first container; sidecar: the charm container (it is first too).
            let first = p.template.containers.first()?.name.clone();
            let c = p.containers.iter().find(|c| c.name == first)?.clone();
            c.running().then(|| (p.clone(), c))
        });
        if let Some(f) = found {
            break f;
        }
        if std::time::Instant::now() >= deadline {
            let outcome = ActionOutcome {
                status: "pending".into(),
                message: Some("the workload container is not running: the action waits (ActionsBlocked)".into()),
                ..Default::default()
            };
            return Ok((outcome, Outcome::default()));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let unit_dir = format!("unit-{app}-{n}");
    let in_pod_charm = format!("{}/agents/{unit_dir}/charm", crate::workload::JUJU_DATA_DIR);
    let data = if sidecar {
        crate::sidecar::charm_data(paths, &pod.name).join("var/lib/juju")
    } else {
        paths.pod_dir(&pod.name).join("emptydir").join(crate::workload::JUJU_DATA_VOLUME)
    };
    let host_charm = data.join("agents").join(&unit_dir).join("charm");
    let script = match find_handler(&host_charm, "actions", name) {
        Ok(Some((p, _))) => p,
        Ok(None) => anyhow::bail!("action {name:?} not defined on unit \"{app}/{n}\""),
        Err(e) => anyhow::bail!("{e}"),
    };
    let rel = script.strip_prefix(&host_charm).unwrap_or(&script).display().to_string();
    let in_pod_script = format!("{in_pod_charm}/{rel}");
    let uuid = util::random_uuid();
    let ctx = HookContext {
        id: context_id(app, n, name),
        model_dir: paths.root.clone(),
        app: app.into(),
        unit: n,
        action: Some(ActionContext { name: name.into(), uuid, params, ..Default::default() }),
        ..Default::default()
    };
    let ctx_file = paths.context_file(app, n);
    ctx.save(&ctx_file)?;
    let logger = format!("unit.{app}/{n}.juju-action");
    let container_path =
        ctr.env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_else(|| "/usr/bin:/bin".into());
    let mut env = hook_env(paths, model, &ctx, None)?;
    for (k, v) in env.iter_mut() {
        match k.as_str() {
            "CHARM_DIR" | "JUJU_CHARM_DIR" => *v = in_pod_charm.clone(),
            "PATH" => *v = format!("{}/tools/{unit_dir}:{container_path}", crate::workload::JUJU_DATA_DIR),
            _ => {}
        }
    }
    let pid_file = format!("/tmp/{}.pid", util::random_u63() % 100_000_000);
    let mut line = format!("cd {}; ", shell_quote(&in_pod_charm));
    for (k, v) in &env {
        line.push_str(&format!("export {k}={}; ", shell_quote(v)));
    }
    line.push_str(&format!("mkdir -p /tmp; echo $$ > {pid_file}; exec sh -c {}; ", shell_quote(&in_pod_script)));
    let argv: Vec<String> = kubelet::exec_prefix(ctr.pid).into_iter().chain(["sh".into(), "-c".into(), line]).collect();
    let result = execute(paths, &ctx, &argv, &ctr.env, Path::new("/"), &logger);
    let _ = std::fs::remove_file(&pid_file);
    let done = HookContext::load(&ctx_file).unwrap_or(ctx);
    let _ = std::fs::remove_file(&ctx_file);
    *model = Model::load(paths)?;
    let (code, stdout, stderr) = result?;
    let action = done.action.clone().unwrap_or_default();
    let mut outcome = Outcome { leader_settings_changed: done.leader_settings_changed, ..Default::default() };
    let still_running = kubelet::load_pods(paths)
        .pods
        .get(&pod.name)
        .and_then(|p| p.containers.iter().find(|c| c.name == ctr.name).cloned())
        .is_some_and(|c| c.pid == ctr.pid && c.running());
    let (status, message) = if !still_running {
        ("failed", Some("action terminated".to_string()))
    } else if code != 0 {
        ("failed", Some(format!("command terminated with exit code {code}")))
    } else {
        match commit(model, &done) {
            Ok((spec, changed)) => {
                outcome.ok = true;
                outcome.spec_committed = spec;
                outcome.changed_relations = changed;
            }
            Err(e) => {
                model::log_line(
                    paths,
                    app,
                    n,
                    "ERROR",
                    "juju.worker.uniter.operation",
                    &format!("cannot apply changes: {e}"),
                );
                outcome.error = Some(e);
            }
        }
        model.save(paths)?;
        match &action.failed {
            Some(m) => ("failed", Some(m.clone())),
            None => ("completed", None),
        }
    };
    let out = ActionOutcome { status: status.into(), message, results: action.results, stdout, stderr, code };
    Ok((out, outcome))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
