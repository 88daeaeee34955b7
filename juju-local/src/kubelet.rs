//! The local kubelet: turns each application's applied pod spec into running pods, one per unit.
//!
//! A pod is (re)started only when its spec hash (spec text + charm-modified version) changed, or when
//! one of its processes died (a kubelet restart; also a failed liveness probe). Each container runs
//! its `command`/`args` unmodified, with `envConfig` as its environment, inside the pod's network
//! namespace and a private mount namespace made by bubblewrap: the host filesystem with the spec's
//! volumes (files, configMap, secret, emptyDir, hostPath), the unit's persistent storage and the pod's
//! /etc/hosts bind-mounted over it. Images cannot be pulled: an image named `redis` is emulated by
//! the host's redis binaries (its /usr/local/bin is a pod-private dir linking to them); any other
//! image leaves the pod in error. Processes are detached (own session) and recorded by pid.

use crate::charm_meta::Metadata;
use crate::model::{App, ContainerProc, Model, Network, Paths, PodRecord};
use crate::podspec::{self, Container, PodSpec};
use crate::{netns, probes, util};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const REDIS_TOOLS: &[&str] =
    &["redis-server", "redis-sentinel", "redis-cli", "redis-benchmark", "redis-check-aof", "redis-check-rdb"];

/// The image's name: last path component, without tag or digest.
pub fn image_name(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// True when the image is emulated by the host's redis binaries.
pub fn image_available(image: &str) -> bool {
    image_name(image) == "redis"
}

fn spec_hash(app: &App) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    app.applied_spec.hash(&mut h);
    app.charm_modified_version.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The address the app's "service" resolves to: juju-local models no ClusterIP, so it is the
/// leader's pod address (the lowest unit when there is no leader).
pub fn service_address(app: &App) -> Option<String> {
    let n = app.leader.filter(|l| app.units.contains_key(l)).or_else(|| app.units.keys().next().copied())?;
    app.units.get(&n).map(|u| u.address.clone())
}

/// /etc/hosts for every pod of the model.
fn hosts_file(model: &Model, metas: &BTreeMap<String, Option<Metadata>>) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file (juju-local).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for app in model.apps.values() {
        let stateful = metas.get(&app.name).and_then(|m| m.as_ref()).is_some_and(|m| m.stateful);
        for u in app.units.values() {
            let pod = crate::model::pod_name(&app.name, u);
            if stateful {
                s.push_str(&format!("{}\t{pod}.{}-endpoints {pod}\n", u.address, app.name));
            } else {
                s.push_str(&format!("{}\t{pod}\n", u.address));
            }
        }
        if let Some(addr) = service_address(app) {
            s.push_str(&format!("{addr}\t{}\t# service stand-in: the leader pod\n", app.name));
        }
    }
    s
}

fn load_meta(paths: &Paths, app: &App) -> Option<Metadata> {
    let n = app.units.keys().next()?;
    Metadata::load(&paths.charm_dir(&app.name, *n)).ok()
}

/// Writes a file in place (same inode), so that bind mounts of it see the new content.
fn write_in_place(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

/// Brings every pod in line with the applied specs. Returns warnings for the caller to print.
pub fn reconcile(paths: &Paths, model: &mut Model) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let metas: BTreeMap<String, Option<Metadata>> =
        model.apps.values().map(|a| (a.name.clone(), load_meta(paths, a))).collect();
    let hosts = hosts_file(model, &metas);
    write_in_place(&paths.operator_hosts(), &hosts)?;
    let net = model.network.clone();
    for app in model.apps.values_mut() {
        let meta = metas.get(&app.name).cloned().flatten().unwrap_or_default();
        let spec = match app.applied_spec.as_deref().map(podspec::parse) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                warnings.push(format!("application {:?}: applied spec no longer parses: {e}", app.name));
                None
            }
            None => None,
        };
        let hash = spec_hash(app);
        let app_name = app.name.clone();
        for (n, unit) in app.units.iter_mut() {
            let Some(spec) = &spec else {
                if let Some(pod) = unit.pod.take() {
                    stop_pod(&pod);
                }
                continue;
            };
            let restart = match &unit.pod {
                None => true,
                Some(p) if p.spec_hash != hash => true,
                Some(p) if p.error.is_some() => false,
                Some(p) => !pod_healthy(p, &unit.address) && backoff_elapsed(p),
            };
            if !restart {
                continue;
            }
            let restarts = unit.pod.as_ref().filter(|p| p.spec_hash == hash).map(|p| p.restarts + 1).unwrap_or(0);
            let mut created = Vec::new();
            if let Some(old) = unit.pod.take() {
                stop_pod(&old);
                created = old.created_dirs;
            }
            let pod_name = crate::model::pod_name(&app_name, unit);
            let mut pod = match start_pod(
                paths,
                &net,
                &app_name,
                *n,
                &pod_name,
                &unit.address,
                spec,
                &meta,
                &hosts,
                &mut created,
            ) {
                Ok(p) => p,
                Err(e) => {
                    warnings.push(format!("pod {app_name}-{n}: {e:#}"));
                    PodRecord { error: Some(format!("{e:#}")), ..Default::default() }
                }
            };
            pod.spec_hash = hash.clone();
            pod.restarts = restarts;
            pod.created_dirs = created;
            unit.pod = Some(pod);
        }
    }
    // Every pod sees every other pod: refresh /etc/hosts in place (no restart).
    for app in model.apps.values() {
        for n in app.units.keys() {
            let f = paths.pod_dir(&app.name, *n).join("hosts");
            if f.exists() {
                let _ = write_in_place(&f, &hosts);
            }
        }
    }
    Ok(warnings)
}

/// CrashLoopBackOff: the first restart is immediate, then 10 s, doubling, capped at 5 min since the
/// last start (checked whenever a command reconciles).
fn backoff_elapsed(pod: &PodRecord) -> bool {
    if pod.restarts == 0 {
        return true;
    }
    let last = pod.containers.iter().map(|c| c.started_ms).max().unwrap_or(0);
    let wait = (10_000u64 << (pod.restarts - 1).min(5)).min(300_000);
    util::now_ms().saturating_sub(last) >= wait
}

/// All processes alive and no liveness probe failing.
fn pod_healthy(pod: &PodRecord, address: &str) -> bool {
    pod.containers.iter().all(|c| {
        util::process_alive(c.pid, c.start_ticks)
            && c.liveness.as_ref().is_none_or(|p| {
                let r = probes::check(p, address, c);
                r.is_ok() || r.as_ref().is_err_and(|e| e == "initial delay has not passed")
            })
    })
}

/// Kills every process of the pod and removes its network namespace.
pub fn stop_pod(pod: &PodRecord) {
    for c in &pod.containers {
        util::stop_group(c.pid, c.start_ticks);
    }
    if let Some(ns) = &pod.netns {
        netns::delete_pod_net(ns);
    }
}

/// Removes mount points juju-local created on the host for this pod (only if still empty). Skipped
/// while another juju-local model is active: removing a directory that is a mount point in another
/// model's pod would detach that pod's mount.
pub fn remove_created_dirs(pod: &PodRecord) {
    if netns::active_models() > 1 {
        return;
    }
    for d in pod.created_dirs.iter().rev() {
        let _ = fs::remove_dir(d);
    }
}

/// Where `dest` (a path as the container sees it) lives on the host, given earlier binds.
fn host_view(dest: &Path, binds: &[(PathBuf, PathBuf)]) -> PathBuf {
    for (src, dst) in binds.iter().rev() {
        if let Ok(rest) = dest.strip_prefix(dst) {
            return src.join(rest);
        }
    }
    dest.to_path_buf()
}

fn ensure_mount_point(
    dest: &Path,
    is_file: bool,
    binds: &[(PathBuf, PathBuf)],
    pod_dir: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    let host = host_view(dest, binds);
    if host.exists() {
        return Ok(());
    }
    let dir = if is_file { host.parent().map(Path::to_path_buf).unwrap_or_default() } else { host.clone() };
    // Record each directory level juju-local creates outside its own model dir.
    let mut missing = Vec::new();
    let mut cur = dir.as_path();
    while !cur.as_os_str().is_empty() && !cur.exists() {
        missing.push(cur.to_path_buf());
        cur = match cur.parent() {
            Some(p) => p,
            None => break,
        };
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create mount point {}", dir.display()))?;
    for m in missing.into_iter().rev() {
        if !m.starts_with(pod_dir.parent().unwrap_or(pod_dir)) && !created.contains(&m) {
            created.push(m);
        }
    }
    if is_file && !host.exists() {
        fs::write(&host, b"")?;
        created.push(host);
    }
    Ok(())
}

fn write_files(dir: &Path, files: &[(String, Vec<u8>, u32)]) -> Result<()> {
    fs::create_dir_all(dir)?;
    for (rel, content, mode) in files {
        let rel = rel.trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            bail!("file path {rel:?} leaves its volume");
        }
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&p, content).with_context(|| format!("cannot write {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}

fn key_files(kf: &podspec::KeyFiles, data: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>, u32)> {
    let mode = kf.default_mode.unwrap_or(0o644);
    match &kf.files {
        Some(sel) => sel
            .iter()
            .map(|k| (k.path.clone(), data.get(&k.key).cloned().unwrap_or_default(), k.mode.unwrap_or(mode)))
            .collect(),
        None => data.iter().map(|(k, v)| (k.clone(), v.clone(), mode)).collect(),
    }
}

/// Resolves envConfig into environment variables (plain values, secret/config-map refs, podIP).
fn container_env(spec: &PodSpec, c: &Container, pod: &str, address: &str) -> Vec<(String, String)> {
    let mut env = vec![("PATH".to_string(), IMAGE_PATH.to_string()), ("HOSTNAME".to_string(), pod.to_string())];
    let lookup = |kind: &str, name: &str| -> BTreeMap<String, Vec<u8>> {
        if kind == "secret" {
            spec.secret_files(name).unwrap_or_default()
        } else {
            spec.configmaps
                .get(name)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect())
                .unwrap_or_default()
        }
    };
    for (k, v) in &c.env_config {
        let value = match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Object(m) => {
                if let Some(field) = m.get("field") {
                    match field.get("path").and_then(Value::as_str) {
                        Some("status.podIP") => Some(address.to_string()),
                        Some("metadata.name") => Some(pod.to_string()),
                        Some("metadata.namespace") => Some("juju-local".into()),
                        _ => None,
                    }
                } else if let Some((kind, r)) =
                    m.get("secret").map(|r| ("secret", r)).or_else(|| m.get("config-map").map(|r| ("config-map", r)))
                {
                    let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
                    let data = lookup(kind, name);
                    match r.get("key").and_then(Value::as_str) {
                        Some(key) => data.get(key).map(|b| String::from_utf8_lossy(b).into_owned()),
                        None => {
                            for (dk, dv) in data {
                                env.push((dk, String::from_utf8_lossy(&dv).into_owned()));
                            }
                            None
                        }
                    }
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(value) = value {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), value));
        }
    }
    env
}

/// The redis image's entrypoint: `docker-entrypoint.sh` with CMD `redis-server`.
fn image_argv(c: &Container) -> Vec<String> {
    if !c.command.is_empty() {
        return c.command.iter().chain(c.args.iter()).cloned().collect();
    }
    match c.args.first() {
        None => vec!["redis-server".into()],
        Some(a) if a.starts_with('-') || a.ends_with(".conf") => {
            std::iter::once("redis-server".to_string()).chain(c.args.iter().cloned()).collect()
        }
        Some(_) => c.args.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
fn start_pod(
    paths: &Paths,
    net: &Network,
    app: &str,
    n: u32,
    pod_name: &str,
    address: &str,
    spec: &PodSpec,
    meta: &Metadata,
    hosts: &str,
    created: &mut Vec<PathBuf>,
) -> Result<PodRecord> {
    for c in &spec.containers {
        let image = c.image_ref();
        if !image_available(&image) {
            bail!("image not available locally: {image:?} (juju-local runs only images named \"redis\")");
        }
    }
    let pod_dir = paths.pod_dir(app, n);
    for sub in ["volumes", "emptydir", "image"] {
        let _ = fs::remove_dir_all(pod_dir.join(sub));
    }
    fs::create_dir_all(pod_dir.join("logs"))?;
    write_in_place(&pod_dir.join("hosts"), hosts)?;
    // The image's /usr/local/bin: links to the host's redis binaries.
    let bin = pod_dir.join("image/usr-local-bin");
    fs::create_dir_all(&bin)?;
    let server = which::which("redis-server").context("redis-server is not installed on this machine")?;
    for tool in REDIS_TOOLS {
        let target = match *tool {
            "redis-server" | "redis-sentinel" | "redis-check-aof" | "redis-check-rdb" => Some(server.clone()),
            t => which::which(t).ok(),
        };
        if let Some(t) = target {
            std::os::unix::fs::symlink(&t, bin.join(tool))?;
        }
    }
    let ns = netns::create_pod_net(net, app, n, address)?;
    let bwrap = which::which("bwrap").context("bwrap (bubblewrap) is not installed")?;
    let mut record = PodRecord { netns: ns.clone(), ..Default::default() };
    let ordered: Vec<&Container> =
        spec.containers.iter().filter(|c| c.init).chain(spec.containers.iter().filter(|c| !c.init)).collect();
    for c in ordered {
        let mut binds: Vec<(PathBuf, PathBuf)> = vec![(bin.clone(), PathBuf::from("/usr/local/bin"))];
        for (loc_name, location) in &meta.storage {
            let dir = paths.storage_dir(pod_name, loc_name);
            fs::create_dir_all(&dir)?;
            binds.push((dir, PathBuf::from(location)));
        }
        for fset in &c.volume_config {
            let src = if let Some(files) = &fset.files {
                let dir = pod_dir.join("volumes").join(&c.name).join(&fset.name);
                let list: Vec<_> = files
                    .iter()
                    .map(|f| (f.path.clone(), f.content.clone().into_bytes(), f.mode.unwrap_or(0o644)))
                    .collect();
                write_files(&dir, &list)?;
                dir
            } else if let Some(kf) = &fset.secret {
                let dir = pod_dir.join("volumes").join(&c.name).join(&fset.name);
                write_files(&dir, &key_files(kf, &spec.secret_files(&kf.name).unwrap_or_default()))?;
                dir
            } else if let Some(kf) = &fset.config_map {
                let dir = pod_dir.join("volumes").join(&c.name).join(&fset.name);
                let data = spec
                    .configmaps
                    .get(&kf.name)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect())
                    .unwrap_or_default();
                write_files(&dir, &key_files(kf, &data))?;
                dir
            } else if fset.empty_dir.is_some() {
                let dir = pod_dir.join("emptydir").join(&fset.name);
                fs::create_dir_all(&dir)?;
                dir
            } else if let Some(hp) = &fset.host_path {
                let p = PathBuf::from(&hp.path);
                if !p.exists() && hp.kind.as_deref() == Some("DirectoryOrCreate") {
                    fs::create_dir_all(&p)?;
                }
                p
            } else {
                continue;
            };
            binds.push((src, PathBuf::from(&fset.mount_path)));
        }
        let mut args: Vec<String> = vec![bwrap.display().to_string(), "--dev-bind".into(), "/".into(), "/".into()];
        let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
        for (src, dst) in &binds {
            ensure_mount_point(dst, src.is_file(), &done, &pod_dir, created)?;
            args.extend(["--bind".into(), src.display().to_string(), dst.display().to_string()]);
            done.push((src.clone(), dst.clone()));
        }
        args.extend(["--ro-bind".into(), pod_dir.join("hosts").display().to_string(), "/etc/hosts".into()]);
        let wd = c.working_dir.clone().unwrap_or_else(|| "/".into());
        args.extend(["--chdir".into(), wd]);
        // Through the shim: the pod's network namespace and a mount namespace without /run/netns
        // (see shim.rs for the bwrap race this avoids).
        let enter: Vec<String> = crate::shim::prefix(ns.as_deref(), &[]).into_iter().chain(args).collect();
        let env = container_env(spec, c, pod_name, address);
        let argv = image_argv(c);
        let log_path = pod_dir.join("logs").join(format!("{}.log", c.name));
        let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let log2 = log.try_clone()?;
        let full: Vec<String> = enter.iter().cloned().chain(["--".to_string()]).chain(argv).collect();
        let (prog, rest) = full.split_first().context("empty container command")?;
        let mut cmd = Command::new(prog);
        cmd.args(rest)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: setsid is async-signal-safe; the child gets its own session and process group.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("cannot start container {:?}", c.name))?;
        let pid = child.id() as i32;
        if c.init {
            let ok = wait_bounded(&mut child, Duration::from_secs(60));
            if !ok {
                bail!("init container {:?} failed (see {})", c.name, log_path.display());
            }
            continue;
        }
        // The child is reaped by init once juju-local exits; keep it detached.
        std::mem::forget(child);
        let start_ticks = util::process_start_ticks(pid).unwrap_or(0);
        let k = c.kubernetes.as_ref();
        record.containers.push(ContainerProc {
            name: c.name.clone(),
            pid,
            start_ticks,
            started_ms: util::now_ms(),
            enter,
            env,
            ports: c
                .ports
                .iter()
                .map(|p| {
                    (
                        p.container_port.clamp(0, 65535) as u16,
                        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        p.name.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            readiness: k.and_then(|k| k.readiness_probe.as_ref()).and_then(|p| serde_json::to_value(p).ok()),
            liveness: k.and_then(|k| k.liveness_probe.as_ref()).and_then(|p| serde_json::to_value(p).ok()),
        });
    }
    Ok(record)
}

fn wait_bounded(child: &mut std::process::Child, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.success(),
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// The container status Kubernetes would report for a unit's pod (None: no pod yet).
pub fn container_status(pod: Option<&PodRecord>, address: &str) -> Option<(String, String)> {
    let pod = pod?;
    if let Some(e) = &pod.error {
        return Some(("error".into(), e.clone()));
    }
    if pod.containers.is_empty() {
        return None;
    }
    for c in &pod.containers {
        if !util::process_alive(c.pid, c.start_ticks) {
            return Some(("error".into(), format!("container {:?} is not running (crash loop back-off)", c.name)));
        }
        if let Some(p) = &c.readiness
            && let Err(why) = probes::check(p, address, c)
        {
            return Some(("waiting".into(), format!("container {:?} not ready: {why}", c.name)));
        }
    }
    Some(("running".into(), String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(image_name("redis:7.0"), "redis");
        assert_eq!(image_name("docker.io/library/redis@sha256:abc"), "redis");
        assert_eq!(image_name("registry:5000/x/redis"), "redis");
        assert!(!image_available("mariadb:latest"));
    }

    #[test]
    fn redis_entrypoint_emulation() {
        let c = Container { args: vec!["--port".into(), "7000".into()], ..Default::default() };
        assert_eq!(image_argv(&c), ["redis-server", "--port", "7000"]);
        let c = Container { command: vec!["sh".into()], args: vec!["-c".into(), "x".into()], ..Default::default() };
        assert_eq!(image_argv(&c), ["sh", "-c", "x"]);
    }
}
