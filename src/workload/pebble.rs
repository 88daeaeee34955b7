//! The Pebble flavour of the workload seam: the same [`Workload`] run by each workload container's Pebble.
//!
//! In a sidecar charm (Juju 3.1-4.0) every workload container runs Pebble as its PID 1 and nothing starts until
//! the charm adds a layer and replans (reference `juju-kubernetes-day2.md` §5-6). This module translates a
//! [`Workload`] into what those Pebbles take, purely, and [`PebbleRuntime`] sends it:
//!
//! - [`layer`] / [`container_layer`]: the Pebble layer YAML, one service per container (its command, started
//!   with the plan, restarted when its `alive` check fails) and two checks per container, `<name>-ready` and
//!   `<name>-alive`. Each container's Pebble gets only its own service and checks ([`container_layer`]): a
//!   service in another container's layer would start there too.
//! - [`files`]: the files every container must see at its mounts: the file volumes' files and the Secrets' keys,
//!   pushed with `POST /v1/files`. A Secret's values go into files only, never into the layer: Pebble shows every
//!   layer to anyone who can read `GET /v1/plan`.
//!
//! What a pod spec says that a layer does not: the image (the charm's `containers.<name>.resource` in
//! metadata.yaml), the ports (the application's Kubernetes service, `open-port`) and scratch volumes (storage
//! mounts in metadata.yaml). They are not this module's to send; a scratch volume gets no files, so nothing here
//! creates its directory (Pebble's `make-dirs` creates a mount's directory only when a file is pushed into it).
//!
//! Only what changed is sent: a hash of each file and of each container's layer is kept in the unit's kv (see
//! [`forget`] for a container whose Pebble lost them).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::Serialize;

use super::{Applied, Check, Container, Probe, Runtime, Source, Workload};
use crate::layers::{Ctx, status};
use crate::pebble::Pebble;

/// The label the charm's layer is added under, in every container.
pub const LAYER_LABEL: &str = "redis-k8s";

/// How long [`PebbleRuntime::apply`] waits for a replan to finish (services started, or restarted).
pub const REPLAN_WAIT: Duration = Duration::from_secs(60);

/// Permissions of a file from a [`Source::Files`] volume.
const FILE_PERMISSIONS: &str = "644";

/// Where the kv hashes of one container live: `workload.pebble.<container>.…` (container names are DNS labels,
/// without dots, so no container's prefix is another's).
fn kv_prefix(container: &str) -> String {
    format!("workload.pebble.{container}.")
}

/// The kv id of the hash of the file at `path` in `container`, as last pushed.
pub fn file_key(container: &str, path: &str) -> String {
    format!("{}file:{path}", kv_prefix(container))
}

/// The kv id of the hash of `container`'s layer, as last added and replanned.
pub fn layer_key(container: &str) -> String {
    format!("{}layer", kv_prefix(container))
}

// ---- The layer ----------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct LayerDoc {
    summary: String,
    services: BTreeMap<String, ServiceDoc>,
    checks: BTreeMap<String, CheckDoc>,
}

#[derive(Serialize)]
struct ServiceDoc {
    #[serde(rename = "override")]
    override_: &'static str,
    summary: String,
    command: String,
    startup: &'static str,
    #[serde(rename = "on-check-failure")]
    on_check_failure: BTreeMap<String, &'static str>,
}

#[derive(Serialize)]
struct CheckDoc {
    #[serde(rename = "override")]
    override_: &'static str,
    level: &'static str,
    period: String,
    timeout: String,
    threshold: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<ExecDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpDoc>,
}

#[derive(Serialize)]
struct ExecDoc {
    command: String,
}

#[derive(Serialize)]
struct TcpDoc {
    port: u16,
}

/// The name of a container's readiness check.
pub fn ready_check(container: &str) -> String {
    format!("{container}-ready")
}

/// The name of a container's liveness check.
pub fn alive_check(container: &str) -> String {
    format!("{container}-alive")
}

/// The Pebble layer running every container of `workload` (one Pebble's view of the whole workload: what a review
/// or a single-container deployment reads). [`PebbleRuntime`] sends each container [`container_layer`] instead.
///
/// # Errors
///
/// A command or check Pebble could not run as given (see [`join_command`]), or a check with a zero period,
/// timeout or threshold.
pub fn layer(workload: &Workload) -> Result<String> {
    render(&workload.containers.iter().collect::<Vec<_>>())
}

/// The Pebble layer for one container of `workload`: its service and its two checks.
///
/// # Errors
///
/// As [`layer`], and a container the workload does not have.
pub fn container_layer(workload: &Workload, container: &str) -> Result<String> {
    let Some(c) = workload.containers.iter().find(|c| c.name == container) else {
        bail!("pebble ({container}): the workload has no such container");
    };
    render(&[c])
}

fn render(containers: &[&Container]) -> Result<String> {
    let mut doc = LayerDoc {
        summary: "redis-k8s workload (written by the charm)".to_owned(),
        services: BTreeMap::new(),
        checks: BTreeMap::new(),
    };
    for c in containers {
        let command = join_command(&c.command).map_err(|e| anyhow!("pebble ({}): command: {e}", c.name))?;
        let alive = alive_check(c.name);
        doc.services.insert(
            c.name.to_owned(),
            ServiceDoc {
                override_: "replace",
                summary: format!("the {} container's workload", c.name),
                command,
                startup: "enabled",
                on_check_failure: BTreeMap::from([(alive.clone(), "restart")]),
            },
        );
        doc.checks.insert(ready_check(c.name), check_doc(c.name, "ready", &c.ready)?);
        doc.checks.insert(alive, check_doc(c.name, "alive", &c.alive)?);
    }
    Ok(serde_yaml::to_string(&doc)?)
}

/// A [`Check`] as a Pebble check. Pebble has no initial delay: a check runs from the start, every `period`, and
/// counts only after `threshold` failures in a row, so the grace a container gets at start is `period × threshold`
/// (`initial_delay_s` is dropped).
fn check_doc(container: &str, level: &'static str, check: &Check) -> Result<CheckDoc> {
    if check.period_s == 0 || check.timeout_s == 0 || check.threshold == 0 {
        bail!("pebble ({container}): the {level} check needs a period, a timeout and a threshold above zero");
    }
    let (exec, tcp) = match &check.how {
        Probe::Exec(argv) => {
            let command = join_command(argv).map_err(|e| anyhow!("pebble ({container}): {level} check: {e}"))?;
            (Some(ExecDoc { command }), None)
        }
        Probe::Tcp(port) => (None, Some(TcpDoc { port: *port })),
    };
    Ok(CheckDoc {
        override_: "replace",
        level,
        period: format!("{}s", check.period_s),
        timeout: format!("{}s", check.timeout_s),
        threshold: check.threshold,
        exec,
        tcp,
    })
}

/// Characters an argument may hold and still go into a command bare.
fn is_bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c)
}

/// `argv` as one Pebble command string, which Pebble splits back with shell-like quoting (canonical/x-go
/// `strutil/shlex`): a bare word, `'…'` (nothing escaped inside), `"…"` and `\x`, joined within a word, a `#`
/// starting a word starts a comment. Each argument that is not all [`is_bare`] characters is single-quoted, a
/// `'` in it written `'\''`, so it splits back to exactly `argv`.
///
/// # Errors
///
/// An empty command, or an argument that is exactly `[` or `]`: Pebble reads those, quoted or not, as its
/// `[ default arguments ]` group.
pub fn join_command(argv: &[String]) -> Result<String> {
    if argv.is_empty() {
        bail!("an empty command");
    }
    let mut words = Vec::with_capacity(argv.len());
    for arg in argv {
        if arg == "[" || arg == "]" {
            bail!("an argument {arg:?}, which Pebble reads as its [ … ] group");
        }
        if !arg.is_empty() && arg.chars().all(is_bare) {
            words.push(arg.clone());
        } else {
            words.push(format!("'{}'", arg.replace('\'', r"'\''")));
        }
    }
    Ok(words.join(" "))
}

// ---- The files ----------------------------------------------------------------------------------------------

/// A file a container must see, at its absolute path. Its `Debug` shows the length, never the bytes: it may be a
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct PushedFile {
    pub container: &'static str,
    pub path: String,
    pub bytes: Vec<u8>,
    /// Octal, as Pebble takes it (`"644"`, `"400"`).
    pub permissions: String,
}

impl std::fmt::Debug for PushedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushedFile")
            .field("container", &self.container)
            .field("path", &self.path)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// Every file of every container's mounts, container by container in the workload's order, each mount's files in
/// its volume's order (a Secret's in key order): a [`Source::Files`] file as `644`, a Secret's key as a file of
/// the volume's mode, at `<mount path>/<name>`. A [`Source::Scratch`] volume has no files.
///
/// # Errors
///
/// A mount of a volume the workload does not define, or a Secret volume naming a Secret it does not define.
pub fn files(workload: &Workload) -> Result<Vec<PushedFile>> {
    let mut out = Vec::new();
    for c in &workload.containers {
        for mount in &c.mounts {
            let Some(volume) = workload.volumes.iter().find(|v| v.name == mount.volume) else {
                bail!("pebble ({}): mounts volume {:?}, which the workload does not define", c.name, mount.volume);
            };
            let dir = mount.path.trim_end_matches('/');
            let file = |name: &str, content: &str, permissions: String| PushedFile {
                container: c.name,
                path: format!("{dir}/{name}"),
                bytes: content.as_bytes().to_vec(),
                permissions,
            };
            match &volume.source {
                Source::Files(list) => {
                    out.extend(list.iter().map(|(name, content)| file(name, content, FILE_PERMISSIONS.to_owned())));
                }
                Source::Secret { name, mode } => {
                    let Some(secret) = workload.secrets.iter().find(|s| &s.name == name) else {
                        bail!(
                            "pebble ({}): volume {:?} is Secret {name:?}, which the workload does not define",
                            c.name,
                            volume.name
                        );
                    };
                    let permissions = format!("{:o}", mode & 0o7777);
                    out.extend(secret.data.iter().map(|(key, value)| file(key, value, permissions.clone())));
                }
                // A directory the container's storage provides; nothing to push.
                Source::Scratch => {}
            }
        }
    }
    Ok(out)
}

// ---- The runtime --------------------------------------------------------------------------------------------

/// The sidecar flavour: each container's Pebble, keyed by container name, given what changed since the last apply.
///
/// For each container, in the workload's order: its files whose content or permissions changed are pushed
/// (creating their directories), then, if its layer changed, the layer is added under [`LAYER_LABEL`] (combined
/// over the previous one) and the plan replanned, waiting up to [`REPLAN_WAIT`] for the change: Pebble then
/// restarts exactly the services whose definition changed. Files go first, so a service (re)started by the replan
/// reads the new ones.
///
/// **A changed file restarts nothing.** The settings in the config files that can change at run time the charm
/// applies live through Redis's and Sentinel's admin commands ([`crate::redis::live`]); the start scripts and the
/// rest are read when a service starts, which is what they are for (the podspec flavour updates them in place the
/// same way, without restarting pods). A future file that must restart its service would say so in the workload.
///
/// Each hash is recorded in the unit's kv only once what it stands for succeeded (a file once pushed, a layer once
/// its replan finished), so after a failure the next apply resends exactly what did not get through; and the kv is
/// only saved if the hook succeeds, so a failed hook resends everything. Every unit runs its own pod's Pebbles:
/// unlike the podspec flavour's, this apply is not for the leader only.
pub struct PebbleRuntime {
    pebbles: BTreeMap<String, Pebble>,
}

impl PebbleRuntime {
    /// A runtime over these Pebbles, each for the container it names ([`Pebble::container`]).
    pub fn new(pebbles: impl IntoIterator<Item = Pebble>) -> PebbleRuntime {
        PebbleRuntime { pebbles: pebbles.into_iter().map(|p| (p.container().to_owned(), p)).collect() }
    }

    /// A runtime over the real Pebble of each of `workload`'s containers, through its socket.
    pub fn real(workload: &Workload) -> PebbleRuntime {
        PebbleRuntime::new(workload.containers.iter().map(|c| Pebble::real(c.name)))
    }

    /// The Pebble of `container` (its call log, in tests).
    pub fn pebble(&self, container: &str) -> Option<&Pebble> {
        self.pebbles.get(container)
    }

    /// Every call made, as `<container>: METHOD /v1/path`, counted like hook tool calls.
    pub fn calls(&self) -> Vec<String> {
        self.pebbles.iter().flat_map(|(c, p)| p.calls().iter().map(move |call| format!("{c}: {call}"))).collect()
    }

    /// Why a container of `workload` is not ready, from its Pebble's readiness check (`GET /v1/checks`, one call
    /// per container): the sidecar flavour's counterpart of the pod readiness Juju shows for a podspec charm.
    pub fn not_ready(&mut self, workload: &Workload) -> Result<Option<String>> {
        for c in &workload.containers {
            let Some(pebble) = self.pebbles.get_mut(c.name) else { continue };
            let name = ready_check(c.name);
            if let Some(check) = pebble.checks()?.into_iter().find(|k| k.name == name && k.status == "down") {
                return Ok(Some(format!(
                    "container {:?} not ready: check {name} failing ({} failures)",
                    c.name, check.failures
                )));
            }
        }
        Ok(None)
    }
}

/// Set once every workload container's Pebble has said it is up (`<container>-pebble-ready`): the sidecar flavour's
/// counterpart of the podspec flavour's "image resource available", which the Redis handlers wait for.
pub const READY: &str = "workload.pebble.ready";

/// Set by `<container>-pebble-ready`; cleared when that Pebble stops answering.
pub fn ready_flag(container: &str) -> String {
    format!("workload.pebble.ready.{container}")
}

/// Registers the handler of the `<container>-pebble-ready` hooks (a Pebble that (re)started has an empty plan and
/// none of the files, so what was sent to it is forgotten ([`forget`]) and sent again by the next apply), and the
/// status while a container's Pebble has not said it is up.
pub fn register(reg: &mut crate::reactive::Registry<crate::layers::State>, containers: &[String]) {
    let hooks: Vec<String> = containers.iter().map(|c| format!("{c}-pebble-ready")).collect();
    let names: Vec<&str> = hooks.iter().map(String::as_str).collect();
    let waiting_for = containers.to_vec();
    let containers = containers.to_vec();
    reg.handler("workload:pebble-ready").hook(&names).run(move |ctx| {
        let Some(container) = crate::meta::pebble_ready_container(ctx.hook).map(str::to_owned) else {
            return Ok(());
        };
        forget(ctx, &container);
        ctx.flags.set(&ready_flag(&container));
        if containers.iter().all(|c| ctx.flags.is_set(&ready_flag(c))) {
            ctx.flags.set(READY);
        }
        Ok(())
    });
    // After the handler above, so a hook that makes every container ready does not also say it waits.
    reg.handler("workload:waiting-for-pebble").when_not(READY).run(move |ctx| {
        let missing: Vec<&str> =
            waiting_for.iter().filter(|c| !ctx.flags.is_set(&ready_flag(c))).map(String::as_str).collect();
        crate::layers::status::waiting(ctx, &waiting_message(&missing));
        Ok(())
    });
}

/// The status while these containers' Pebbles have not said they are up.
pub fn waiting_message(containers: &[&str]) -> String {
    match containers {
        [one] => format!("waiting for Pebble in the {one} container"),
        many => format!("waiting for Pebble in the {} containers", many.join(" and ")),
    }
}

/// After an apply found `container`'s Pebble not answering (its container restarting): not ready until its next
/// `pebble-ready`, which sends it everything again.
pub fn lost(ctx: &mut Ctx<'_>, container: &str) {
    ctx.flags.clear(&ready_flag(container));
    ctx.flags.clear(READY);
    forget(ctx, container);
}

/// Forgets what was sent to `container`, so the next apply sends it all again: for a container whose Pebble
/// started afresh (`<container>-pebble-ready`), with no files and an empty plan.
pub fn forget(ctx: &mut Ctx<'_>, container: &str) {
    let prefix = crate::reactive::data_changed_key(&kv_prefix(container));
    let keys: Vec<String> = ctx.kv.as_map().keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
    for key in keys {
        ctx.kv.unset(&key);
    }
}

/// What a file's kv hash covers: its content and its permissions.
fn file_fingerprint(file: &PushedFile) -> (&str, &[u8]) {
    (&file.permissions, &file.bytes)
}

impl Runtime for PebbleRuntime {
    fn apply(&mut self, ctx: &mut Ctx<'_>, workload: &Workload) -> Result<Applied> {
        let all_files = files(workload)?;
        let mut plans = Vec::with_capacity(workload.containers.len());
        for c in &workload.containers {
            if !self.pebbles.contains_key(c.name) {
                bail!("pebble ({}): no Pebble for this container", c.name);
            }
            plans.push((c.name, container_layer(workload, c.name)?));
        }
        let mut applied = Applied::Unchanged;
        for (container, layer_yaml) in plans {
            let Some(pebble) = self.pebbles.get_mut(container) else {
                bail!("pebble ({container}): no Pebble for this container");
            };
            for file in all_files.iter().filter(|f| f.container == container) {
                let key = file_key(container, &file.path);
                if !ctx.kv.is_data_changed(&key, &file_fingerprint(file)) {
                    continue;
                }
                starting(ctx, &mut applied)?;
                pebble.push_file(&file.path, &file.bytes, &file.permissions, true)?;
                ctx.kv.data_changed(&key, &file_fingerprint(file));
            }
            let key = layer_key(container);
            if ctx.kv.is_data_changed(&key, &layer_yaml) {
                starting(ctx, &mut applied)?;
                pebble.add_layer(LAYER_LABEL, &layer_yaml, true)?;
                let change = pebble.replan()?;
                pebble.wait_change(&change, REPLAN_WAIT)?;
                ctx.kv.data_changed(&key, &layer_yaml);
            }
        }
        Ok(applied)
    }
}

/// Before the first change of an apply: says so (`maintenance "configuring container"`), once.
fn starting(ctx: &mut Ctx<'_>, applied: &mut Applied) -> Result<()> {
    if *applied == Applied::Unchanged {
        status::maintenance(ctx, "configuring container")?;
        *applied = Applied::Changed;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
