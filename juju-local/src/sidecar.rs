//! Sidecar (format v2) applications, as Juju 3.1-4.0 runs them on Kubernetes: the StatefulSet and its pod
//! template, where hooks and actions run (the `charm` container), and when `<container>-pebble-ready` fires.
//! The kubelet runs the pods as it runs podspec pods (`kubelet`); the hook runner enters the charm container
//! (`hook_runner`); `lifecycle` queues the hooks.
//!
//! # The rules, with where Juju has them (juju/juju; 3.1.9 = 05a19fb8, 3.6-rc1 = 2f9226cf, 4.0 = ce5b95b8)
//!
//! - **Format** (`charm_meta::detect_format`, `ensure_unambiguous`): 3.x (juju/charm v11/v12
//!   `MetaFormatReasons`) v1 with any `series`, else v2 with manifest `bases`; 4.0 (`internal/charm/charm.go`)
//!   v2 with bases or `containers`. v1/v2 keys mixed → `ambiguous metadata: keys … cannot be used with …`
//!   (`meta.go` `ensureUnambiguousFormat`). 4.0 refuses a v1 charm on Kubernetes: `deploying format v1 charms
//!   not supported` (`cmd/juju/application/deployer/charm.go` `checkCharmFormat`, `NotSupportedf`).
//! - **Objects** (`caas/kubernetes/provider/application/application.go` `Ensure`): the application Service
//!   `<app>` (`configureDefaultService`), the headless Service `<app>-endpoints` (`HeadlessServiceName`), and a
//!   StatefulSet `<app>` (always: sidecar applications are DeploymentStateful) with `Parallel` pod management,
//!   created at deploy with the initial scale; pods `<app>-<ordinal>`. The StatefulSet is applied whole
//!   (`applier.Apply`), so an update replaces the template.
//! - **Pod template** (`ApplicationPodSpec`): one `charm-data` emptyDir; a `charm` container (the charm base
//!   image, working dir `/var/lib/juju`, `pebble run --http :38812 --verbose` from 3.1 on) mounting `charm-data`
//!   sub-paths `charm/bin` at `/charm/bin`, `var/lib/juju` at `/var/lib/juju`, `charm/containers` at
//!   `/charm/containers` and `containeragent/pebble` at `/var/lib/pebble/default`; then one container per
//!   metadata `containers:` entry, sorted by name, with the entry's resource image, command `pebble run
//!   --create-dirs --hold …`, env `JUJU_CONTAINER_NAME` and `PEBBLE_SOCKET=/charm/container/pebble.socket`,
//!   and `charm-data` sub-path `charm/containers/<name>` at `/charm/container` — so the charm container
//!   reaches it at `/charm/containers/<name>/pebble.socket`. Storage (`handleVolumeMount`): every
//!   filesystem is mounted in the charm container (at its default location) and in each workload container
//!   whose `mounts` names it, at that mount's `location`. Here the Pebble binary is `juju-local pebble run`
//!   (`--socket` for `PEBBLE_SOCKET`, `--state-dir` for `$PEBBLE`); the `charm-init` init container's copying
//!   of the charm and the agent binaries is done by the kubelet when it sets the pod up.
//! - **Pebble state** lives in the workload container's own filesystem (`$PEBBLE=/var/lib/pebble/default`), so
//!   a restarted container (a new container, Kubernetes) starts with no layers: the kubelet gives each start
//!   an empty directory there.
//! - **Hooks and actions** run in the charm container (the unit agent is a service of its Pebble), charm dir
//!   `/var/lib/juju/agents/unit-<app>-<n>/charm`, in the pod's network namespace.
//! - **pebble-ready** (`worker/uniter/pebblepoller.go` `poll`; `worker/uniter/container/workload.go`
//!   `NextOp`; `worker/uniter/resolver.go` `NextOp`): the uniter polls `GET /v1/system-info` on
//!   `/charm/containers/<name>/pebble.socket`; a Pebble it has not seen (a new boot) queues
//!   `<name>-pebble-ready`. The workload resolver is an optional resolver, consulted after created relations
//!   and leadership and before config-changed/start (`nextOp`), never before install (the install hook is the
//!   pending operation until it ran). The stand-in's boot id is constant, so a new boot is a new container
//!   process (a container restart) whose socket answers.
//! - **Status** (`state/application.go` `CheckApplicationExpectsWorkload`: false for a v2 charm;
//!   `core/status/caas.go` `UnitDisplayStatus` with `expectWorkload` false): a status the charm set is shown
//!   even before any container status; a running pod does not override it.
//! - **Tools** (`worker/uniter/runner/jujuc/server.go`): 3.x keeps `pod-spec-set`/`k8s-spec-set` for every
//!   charm, and the controller stores the spec (`apiserver/facades/agent/uniter/uniter.go`
//!   `setPodSpecOperation`, `state/podspec.go`) but nothing of a sidecar application reads it; 4.0 has no
//!   `leader-get`, `leader-set`, `pod-spec-*`, `k8s-spec-*`, `k8s-raw-*`, `add-metric`, `payload-*`
//!   (`internal/worker/uniter/runner/jujuc/server.go`): a hook calling one finds no such command.

use crate::charm_meta::Metadata;
use crate::model::{App, Paths};
use crate::workload::{AppObjects, ContainerT, Mount, PodTemplate, Volume, VolumeSource, Workload};
use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// `constants.ApplicationCharmContainer`.
pub const CHARM_CONTAINER: &str = "charm";
/// `constants.CharmVolumeName`.
pub const CHARM_VOLUME: &str = "charm-data";
/// The charm base image (`config.CharmBaseImagePath`): juju-local runs it as "the host, plus the charm".
pub const CHARM_IMAGE: &str = "jujusolutions/charm-base:ubuntu-22.04";
/// `constants.DefaultPebbleDir`.
pub const PEBBLE_DIR: &str = "/var/lib/pebble/default";
/// Where a workload container's Pebble socket is, in that container.
pub const CONTAINER_SOCKET: &str = "/charm/container/pebble.socket";

fn mount(volume: &str, path: &str, sub: &str) -> Mount {
    Mount { name: volume.into(), mount_path: path.into(), sub_path: Some(sub.into()) }
}

fn exe() -> String {
    std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "juju-local".into())
}

/// The pod template of a sidecar application (`ApplicationPodSpec`).
pub fn template(app: &str, meta: &Metadata, a: &App, model_uuid: &str) -> PodTemplate {
    let mut t = PodTemplate::default();
    t.labels.insert("app.kubernetes.io/name".into(), app.into());
    t.annotations.insert("controller.juju.is/id".into(), "juju-local".into());
    t.annotations.insert("model.juju.is/id".into(), model_uuid.into());
    t.annotations.insert("charm.juju.is/modified-version".into(), a.charm_modified_version.to_string());
    t.volumes.push(Volume { name: CHARM_VOLUME.into(), source: VolumeSource::EmptyDir { medium: None } });
    let names: Vec<String> = meta.containers.keys().cloned().collect();
    let mut charm = ContainerT {
        name: CHARM_CONTAINER.into(),
        image: CHARM_IMAGE.into(),
        command: vec![exe(), "pebble".into(), "run".into()],
        args: vec![
            "--socket".into(),
            format!("{PEBBLE_DIR}/.pebble.socket"),
            "--state-dir".into(),
            PEBBLE_DIR.into(),
            "--create-dirs".into(),
            "--verbose".into(),
        ],
        working_dir: Some(crate::workload::JUJU_DATA_DIR.into()),
        env: BTreeMap::from([
            ("JUJU_CONTAINER_NAMES".to_string(), Value::String(names.join(","))),
            ("HTTP_PROBE_PORT".to_string(), Value::String("3856".into())),
        ]),
        volume_mounts: vec![
            mount(CHARM_VOLUME, "/charm/bin", "charm/bin"),
            mount(CHARM_VOLUME, crate::workload::JUJU_DATA_DIR, "var/lib/juju"),
            mount(CHARM_VOLUME, "/charm/containers", "charm/containers"),
            mount(CHARM_VOLUME, PEBBLE_DIR, "containeragent/pebble"),
        ],
        ..Default::default()
    };
    for (st, location) in &meta.storage {
        charm.volume_mounts.push(Mount { name: st.clone(), mount_path: location.clone(), sub_path: None });
    }
    t.containers.push(charm);
    for (name, c) in &meta.containers {
        let image =
            c.resource.as_ref().and_then(|r| a.resources.get(r)).map(|r| r.registrypath.clone()).unwrap_or_default();
        let mut ct = ContainerT {
            name: name.clone(),
            image,
            command: vec![exe(), "pebble".into(), "run".into()],
            args: vec![
                "--create-dirs".into(),
                "--hold".into(),
                "--socket".into(),
                CONTAINER_SOCKET.into(),
                "--state-dir".into(),
                PEBBLE_DIR.into(),
                "--verbose".into(),
            ],
            env: BTreeMap::from([
                ("JUJU_CONTAINER_NAME".to_string(), Value::String(name.clone())),
                ("PEBBLE_SOCKET".to_string(), Value::String(CONTAINER_SOCKET.into())),
            ]),
            volume_mounts: vec![mount(CHARM_VOLUME, "/charm/container", &format!("charm/containers/{name}"))],
            ..Default::default()
        };
        for (st, location) in &c.mounts {
            ct.volume_mounts.push(Mount { name: st.clone(), mount_path: location.clone(), sub_path: None });
        }
        t.containers.push(ct);
    }
    t
}

/// `Ensure` for a sidecar application: both Services and the StatefulSet, applied whole.
pub fn ensure(
    objs: &mut AppObjects,
    app: &str,
    meta: &Metadata,
    a: &App,
    replicas: u32,
    model_uuid: &str,
) -> Result<()> {
    objs.service = true;
    objs.headless_service = true;
    let template = template(app, meta, a, model_uuid);
    let mut w = Workload {
        kind: "StatefulSet".into(),
        replicas,
        revision: String::new(),
        template,
        update_strategy: "RollingUpdate".into(),
        partition: 0,
        pod_management_policy: "Parallel".into(),
        volume_claims: meta.storage.keys().cloned().collect(),
        annotations: BTreeMap::new(),
    };
    w.revision = w.template.revision();
    objs.workload = Some(w);
    Ok(())
}

/// True when the pod template is a sidecar one (it has the charm-data volume).
pub fn is_sidecar_template(t: &PodTemplate) -> bool {
    t.volumes.iter().any(|v| v.name == CHARM_VOLUME)
}

/// Where the kubelet keeps a sidecar pod's `charm-data` volume.
pub fn charm_data(paths: &Paths, pod: &str) -> PathBuf {
    paths.pod_dir(pod).join("emptydir").join(CHARM_VOLUME)
}

/// The host path of a workload container's Pebble socket (the charm container's
/// `/charm/containers/<name>/pebble.socket`).
pub fn host_socket(paths: &Paths, pod: &str, container: &str) -> PathBuf {
    charm_data(paths, pod).join("charm/containers").join(container).join("pebble.socket")
}

/// `GET /v1/system-info` on a Pebble socket (the uniter's poll): true when it answers 200.
pub fn pebble_answers(socket: &std::path::Path) -> bool {
    // A model dir's socket path can be longer than sun_path's 108 bytes: connect through the directory's fd.
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else { return false };
    let Ok(d) = std::fs::File::open(dir) else { return false };
    use std::os::unix::io::AsRawFd;
    let short = format!("/proc/self/fd/{}/{}", d.as_raw_fd(), name.to_string_lossy());
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(short) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v1/system-info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200")
}

/// The workload containers of a unit whose Pebble the uniter has not seen on this boot: each with the
/// identity of the container process it answered from (the stand-in's "boot id").
pub fn new_pebble_boots(paths: &Paths, app: &str, n: u32, seen: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let pods = crate::kubelet::load_pods(paths);
    let Some(pod) = crate::kubelet::pod_of(&pods, app, n).filter(|p| !p.terminating()) else { return Vec::new() };
    let mut out = Vec::new();
    for c in pod.containers.iter().filter(|c| c.name != CHARM_CONTAINER) {
        if !c.running() {
            continue;
        }
        let boot = format!("{}-{}", c.pid, c.start_ticks);
        if seen.get(&c.name) == Some(&boot) {
            continue;
        }
        if pebble_answers(&host_socket(paths, &pod.name, &c.name)) {
            out.push((c.name.clone(), boot));
        }
    }
    out
}

/// The charm container of a unit's pod, once it runs (bounded wait): the pod and that container.
pub fn charm_container(
    paths: &Paths,
    app: &str,
    n: u32,
    wait: Duration,
) -> Result<(crate::kubelet::Pod, crate::kubelet::Ctr)> {
    crate::kubelet::ensure_running(paths)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        let pods = crate::kubelet::load_pods(paths);
        let pod = crate::kubelet::pod_of(&pods, app, n).filter(|p| !p.terminating());
        if let Some(p) = pod {
            if let Some(e) = &p.error {
                anyhow::bail!("pod {} cannot start: {e}", p.name);
            }
            if let Some(c) = p.containers.iter().find(|c| c.name == CHARM_CONTAINER && c.running()) {
                return Ok((p.clone(), c.clone()));
            }
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("the charm container of unit {app}/{n} is not running after {}s", wait.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The hook tools a unit has on this Juju version: 4.0 dropped these (`jujuc/server.go`, reference §5).
pub fn tool_exists(name: &str, juju_version: &str) -> bool {
    let v4 = crate::model::Version::parse(juju_version).is_ok_and(|v| v.at_least(4, 0, 0));
    if !v4 {
        return true;
    }
    !(name == "leader-get"
        || name == "leader-set"
        || name == "add-metric"
        || name.starts_with("pod-spec-")
        || name.starts_with("k8s-spec-")
        || name.starts_with("k8s-raw-")
        || name.starts_with("payload-"))
}
