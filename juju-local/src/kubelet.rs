//! The local kubelet (and StatefulSet controller): a daemon per model (`juju-local kubelet`, started
//! detached by the first command that needs it, stopped by `destroy`, and gone by itself when its
//! model dir disappears). It reads the API objects the controller publishes (`kubelet/desired.json`,
//! see `workload`) and owns the pod records (`kubelet/pods.json`, written by it alone, atomically), so
//! it never waits on a command's lock.
//!
//! What it does, each with its source:
//! - **Pods from the workload** (StatefulSet controller `stateful_set_control.go` `updateStatefulSet`):
//!   pods `<app>-<ordinal>` for ordinals below `replicas`; surplus pods deleted all at once with the
//!   Parallel policy Juju sets (findings §1, §7), one at a time with OrderedReady; a pod is recreated
//!   only once the old one with its name is gone.
//! - **RollingUpdate** (same function; kubernetes.io "StatefulSet rolling updates", findings §12): from
//!   the highest ordinal down to `partition`, delete the first pod not on the current revision, then
//!   wait until the recreated pod is Running and Ready before the next; a pod that is not healthy
//!   stops the rollout. `OnDelete` never deletes for an update.
//! - **Containers** run their command as PID 1 of their own PID namespace (bubblewrap `--unshare-pid
//!   --as-pid-1`), in the pod's network namespace, with the pod's volumes bound in (ConfigMap and
//!   Secret volumes read-only, as kubelet mounts them whatever `readOnly` says, findings §12).
//! - **Restarts** (`kuberuntime_manager.go` `doBackOff`, client-go `flowcontrol/backoff.go`): only the
//!   container that exited (or failed its liveness/startup probe past failureThreshold) restarts, in
//!   place; the pod, its IP and its emptyDirs stay. The first restart is immediate (no back-off entry
//!   yet, `IsInBackOffSince` is false), later ones wait 10 s doubling to 5 min from the container's
//!   finish time, and the back-off resets when the container ran 10 min (2 × max, `hasExpired`).
//! - **Probes** (kubelet prober `worker.go`): readiness, liveness and startup probes on their period
//!   after initialDelaySeconds, with success/failure thresholds; exec probes run inside the container.
//! - **ConfigMap/Secret refresh** (`pkg/volume/util/atomic_writer.go`, findings §12): every sync period
//!   (`deploy --kubelet-sync-seconds`) each running pod's ConfigMap and Secret volumes are re-projected
//!   from the current objects, written the AtomicWriter way (a new `..<timestamp>` dir, `..data_tmp`
//!   renamed over `..data`, visible names are symlinks into `..data`); nothing restarts. A new pod gets
//!   the current contents when it is created. A key listed in `items` but missing from the object
//!   fails the volume (`configmap references non-existent config key`), as kubelet does.
//! - **Deletion** ("Termination of Pods", findings §12): SIGTERM to PID 1 of every container (a PID 1
//!   gets it only if it handles it), then, after `terminationGracePeriodSeconds` from the pod's
//!   template (30 s default), SIGKILL to PID 1, which kills every process of its namespace.
//! - **DNS** (see `dns`): the names of the namespace's Services and pods.

use crate::dns;
use crate::model::{Network, Paths};
use crate::probes::{self, Target};
use crate::util;
use crate::workload::{self, AppObjects, Assignment, Cluster, ContainerT, VolumeSource, Workload};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const REDIS_TOOLS: &[&str] =
    &["redis-server", "redis-sentinel", "redis-cli", "redis-benchmark", "redis-check-aof", "redis-check-rdb"];
/// How often the daemon looks at its pods (the PLEG relist is 1 s in kubelet).
const TICK: Duration = Duration::from_millis(200);
/// kubelet `backOffPeriod` and `MaxContainerBackOff` (pkg/kubelet/kubelet.go).
const BACKOFF_INITIAL_MS: u64 = 10_000;
const BACKOFF_MAX_MS: u64 = 300_000;

static STOP: AtomicBool = AtomicBool::new(false);

// ---------------------------------------------------------------------------------------------------
// Pod records (pods.json)

/// What the kubelet knows; written by the daemon only.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct PodsFile {
    /// The desired.json generation the kubelet has acted on.
    pub observed_generation: u64,
    pub pods: BTreeMap<String, Pod>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Pod {
    pub name: String,
    pub app: String,
    /// The Kubernetes namespace (the model name).
    pub namespace: String,
    pub unit: u32,
    pub ordinal: Option<u32>,
    pub uid: String,
    pub address: String,
    pub netns: Option<String>,
    /// The template revision the pod was made from, and that template (pods are immutable).
    pub revision: String,
    pub template: workload::PodTemplate,
    pub stateful: bool,
    pub volume_claims: Vec<String>,
    pub created_ms: u64,
    /// `Pending` until its containers started, then `Running`.
    pub phase: String,
    /// Why the pod cannot start (image not available, a volume that cannot be set up).
    pub error: Option<String>,
    /// Set when the pod is marked for deletion (deletionTimestamp).
    pub deletion_ms: Option<u64>,
    pub grace_seconds: u64,
    /// SIGKILL sent after the grace period.
    pub killed: bool,
    pub containers: Vec<Ctr>,
    /// Restarts of all its containers.
    pub restarts: u32,
    pub ready: bool,
    pub last_sync_ms: u64,
    /// Mount points juju-local had to create on the host; removed again when the pod goes.
    pub created_dirs: Vec<PathBuf>,
}

impl Pod {
    pub fn terminating(&self) -> bool {
        self.deletion_ms.is_some()
    }
    /// Running, Ready and not terminating (`isHealthy` in the StatefulSet controller).
    pub fn healthy(&self) -> bool {
        self.phase == "Running" && self.ready && !self.terminating()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ProbeState {
    pub successes: u32,
    pub failures: u32,
    pub next_ms: u64,
    pub last_error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Ctr {
    pub name: String,
    /// Host pid of the container's PID 1 (0 when not running).
    pub pid: i32,
    pub start_ticks: u64,
    /// bubblewrap's monitor process (the container's parent outside its PID namespace).
    pub monitor_pid: i32,
    /// `running`, `waiting` or `terminated`.
    pub state: String,
    pub reason: String,
    pub exit_code: Option<i32>,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub restart_count: u32,
    /// The container's back-off entry (flowcontrol.Backoff: backoff, lastUpdate).
    pub backoff_ms: u64,
    pub backoff_updated_ms: u64,
    pub ready: bool,
    /// The startup probe succeeded (or there is none).
    pub started: bool,
    pub readiness: ProbeState,
    pub liveness: ProbeState,
    pub startup: ProbeState,
    /// SIGTERM sent because a probe failed: SIGKILL at this time.
    pub kill_deadline_ms: Option<u64>,
    pub env: Vec<(String, String)>,
    pub ports: Vec<(u16, String, String)>,
}

impl Ctr {
    pub fn running(&self) -> bool {
        self.state == "running" && util::process_alive(self.pid, self.start_ticks)
    }
}

/// The argv prefix that runs a command inside a running container: its mount, network and PID
/// namespaces, root and working dir (what a container runtime's exec does).
pub fn exec_prefix(pid: i32) -> Vec<String> {
    ["nsenter", "-t", &pid.to_string(), "-m", "-u", "-n", "-p", "-r", "-w", "--"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

pub fn load_pods(paths: &Paths) -> PodsFile {
    fs::read_to_string(paths.pods_file()).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// The pod of a unit (by app and unit number), if the kubelet has one.
pub fn pod_of<'a>(pods: &'a PodsFile, app: &str, unit: u32) -> Option<&'a Pod> {
    pods.pods.values().filter(|p| p.app == app && p.unit == unit).min_by_key(|p| p.terminating())
}

/// The image's name: last path component, without tag or digest.
pub fn image_name(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// True when the image is emulated by the host's redis binaries.
/// The charm base image of a sidecar pod's `charm` container runs only juju-local and the charm's own files.
pub fn image_available(image: &str) -> bool {
    image_name(image) == "redis" || image_name(image) == "charm-base"
}

/// `kubectl rollout status` for an application: Ok when every pod the workload wants exists on the
/// current revision, Running and Ready, no other pod of it is left, and the kubelet has seen the latest
/// objects; otherwise what is still in progress.
pub fn rollout_status(cluster: &Cluster, pods: &PodsFile, app: &str) -> Result<(), String> {
    let Some(objs) = cluster.apps.get(app) else { return Ok(()) };
    let Some(w) = &objs.workload else { return Ok(()) };
    if pods.observed_generation < cluster.generation {
        return Err("the kubelet has not seen the latest objects".into());
    }
    let wanted = w.wanted(objs);
    // In rollout order (highest first), so the pod named is the one the rollout waits for.
    for a in wanted.iter().rev() {
        match pods.pods.get(&a.pod) {
            None => return Err(format!("pod {} is not created yet", a.pod)),
            Some(p) if p.terminating() => return Err(format!("pod {} is terminating", a.pod)),
            Some(p) if p.revision != w.revision => {
                return Err(format!("pod {} is on revision {}, not {}", a.pod, p.revision, w.revision));
            }
            Some(p) if !p.ready => return Err(format!("pod {} is not ready", a.pod)),
            Some(_) => {}
        }
    }
    if let Some(p) = pods.pods.values().find(|p| p.app == app && !wanted.iter().any(|a| a.pod == p.name)) {
        return Err(format!("pod {} is still there (terminating)", p.name));
    }
    Ok(())
}

/// The container status Kubernetes would report for a unit's pod (None: no pod yet).
pub fn container_status(pod: Option<&Pod>) -> Option<(String, String)> {
    let pod = pod?;
    if let Some(e) = &pod.error {
        return Some(("error".into(), e.clone()));
    }
    if pod.terminating() {
        return Some(("waiting".into(), "pod is terminating".into()));
    }
    if pod.containers.is_empty() {
        return None;
    }
    for c in &pod.containers {
        if c.state != "running" {
            let why = if c.reason == "CrashLoopBackOff" { "crash loop back-off" } else { c.reason.as_str() };
            return Some(("error".into(), format!("container {:?} is not running ({why})", c.name)));
        }
        if !c.ready {
            let why = c.readiness.last_error.clone().unwrap_or_else(|| "readiness probe has not passed".into());
            return Some(("waiting".into(), format!("container {:?} not ready: {why}", c.name)));
        }
    }
    Some(("running".into(), String::new()))
}

// ---------------------------------------------------------------------------------------------------
// Starting, finding and stopping the daemon (the controller side)

/// Starts the model's kubelet daemon unless one runs (its flock on kubelet.lock says so).
pub fn ensure_running(paths: &Paths) -> Result<()> {
    if !paths.model_file().exists() {
        return Ok(());
    }
    match util::try_lock(&paths.kubelet_lock())? {
        None => return Ok(()),
        Some(l) => drop(l),
    }
    let exe = std::env::current_exe().context("cannot find the juju-local binary")?;
    fs::create_dir_all(paths.kubelet_dir())?;
    let log = fs::OpenOptions::new().create(true).append(true).open(paths.kubelet_log())?;
    let mut cmd = Command::new(exe);
    cmd.arg("--model-dir").arg(&paths.root).arg("kubelet");
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).env_remove("JUJU_LOCAL_MODEL_DIR");
    // SAFETY: setsid is async-signal-safe; the daemon gets its own session, detached from the caller.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().context("cannot start the kubelet daemon")?;
    std::mem::forget(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if util::try_lock(&paths.kubelet_lock())?.is_none() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the kubelet daemon did not start (see {})", paths.kubelet_log().display())
}

/// Stops the daemon: it kills every pod at once and deletes their namespaces, then exits.
pub fn stop_daemon(paths: &Paths) {
    let pid: i32 = fs::read_to_string(paths.kubelet_pid())
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    if pid > 0 {
        // SAFETY: kill(2); the pid is the daemon's (it holds kubelet.lock while alive).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if util::try_lock(&paths.kubelet_lock()).ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if pid > 0 {
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Waits until the kubelet has acted on `generation` (bounded).
pub fn wait_observed(paths: &Paths, generation: u64, timeout: Duration) -> Result<PodsFile> {
    let deadline = Instant::now() + timeout;
    loop {
        let pods = load_pods(paths);
        if pods.observed_generation >= generation {
            return Ok(pods);
        }
        if Instant::now() > deadline {
            bail!("the kubelet has not acted on the published objects after {}s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------------
// The daemon

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct ProbeResult {
    pod_uid: String,
    container: String,
    start_ticks: u64,
    kind: &'static str,
    result: Result<(), String>,
}

struct Kubelet {
    paths: Paths,
    state: PodsFile,
    children: HashMap<i32, Child>,
    dirty: bool,
    dns: Option<dns::Server>,
    dns_addr: String,
    probes_tx: mpsc::Sender<ProbeResult>,
    probes_rx: mpsc::Receiver<ProbeResult>,
    in_flight: std::collections::HashSet<(String, String, &'static str)>,
    last_network: Option<Network>,
    exe: PathBuf,
}

/// `juju-local kubelet`: runs until stopped or until the model dir disappears.
pub fn run_daemon(paths: &Paths) -> Result<()> {
    let Some(_lock) = util::try_lock(&paths.kubelet_lock())? else {
        return Ok(()); // another daemon runs this model
    };
    fs::write(paths.kubelet_pid(), format!("{}\n", std::process::id()))?;
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let (tx, rx) = mpsc::channel();
    let mut k = Kubelet {
        paths: paths.clone(),
        state: load_pods(paths),
        children: HashMap::new(),
        dirty: true,
        dns: None,
        dns_addr: String::new(),
        probes_tx: tx,
        probes_rx: rx,
        in_flight: Default::default(),
        last_network: None,
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("juju-local")),
    };
    log(&format!("kubelet started for {} (pid {})", paths.root.display(), std::process::id()));
    loop {
        if STOP.load(Ordering::SeqCst) {
            log("stopping: killing every pod");
            k.teardown();
            k.save();
            return Ok(());
        }
        if !paths.model_file().exists() {
            log("the model dir is gone: killing every pod and removing the model's network");
            k.teardown();
            if let Some(net) = &k.last_network {
                crate::netns::teardown_model(net, Some(&crate::netns::index_file(net.index)));
            }
            return Ok(());
        }
        let cluster = match Cluster::load(paths) {
            Ok(c) => c,
            Err(e) => {
                log(&format!("cannot read desired.json: {e:#}"));
                std::thread::sleep(TICK);
                continue;
            }
        };
        k.tick(&cluster);
        std::thread::sleep(TICK);
    }
}

fn log(msg: &str) {
    eprintln!("{} kubelet: {msg}", util::clock(util::now_ms()));
}

fn rfc3339(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (y, m, d) = util::civil_date((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}T{}.{millis:03}Z", util::clock(ms))
}

impl Kubelet {
    fn event(&self, reason: &str, pod: &str, container: Option<&str>, message: &str) {
        let ms = util::now_ms();
        let line = serde_json::json!({
            "time": rfc3339(ms), "ms": ms, "reason": reason, "pod": pod,
            "container": container, "message": message,
        });
        util::append_line(&self.paths.events_log(), &line.to_string());
    }

    fn save(&mut self) {
        if let Ok(text) = serde_json::to_vec_pretty(&self.state)
            && let Err(e) = util::atomic_write(&self.paths.pods_file(), &text)
        {
            log(&format!("cannot write pods.json: {e:#}"));
        }
        self.dirty = false;
    }

    fn tick(&mut self, cluster: &Cluster) {
        if let Some(net) = &cluster.network {
            self.last_network = Some(net.clone());
            self.ensure_dns(net);
        }
        self.collect_probe_results();
        let names: Vec<String> = self.state.pods.keys().cloned().collect();
        for name in &names {
            self.update_containers(name, cluster);
        }
        self.reconcile(cluster);
        self.sync_volumes(cluster);
        self.schedule_probes();
        self.finish_deletions();
        for p in self.state.pods.values_mut() {
            let ready = p.phase == "Running"
                && !p.terminating()
                && !p.containers.is_empty()
                && p.containers.iter().all(|c| c.ready);
            if ready != p.ready {
                p.ready = ready;
                self.dirty = true;
                let (reason, name) = (if ready { "Ready" } else { "NotReady" }, p.name.clone());
                let line = serde_json::json!({
                    "time": rfc3339(util::now_ms()), "ms": util::now_ms(), "reason": reason, "pod": name,
                    "container": Value::Null, "message": format!("pod {name} is {}ready", if ready { "" } else { "not " }),
                });
                util::append_line(&self.paths.events_log(), &line.to_string());
            }
            let restarts: u32 = p.containers.iter().map(|c| c.restart_count).sum();
            if restarts != p.restarts {
                p.restarts = restarts;
                self.dirty = true;
            }
        }
        // After the readiness flags, so DNS never lags what pods.json says.
        self.update_dns(cluster);
        if self.state.observed_generation != cluster.generation {
            self.state.observed_generation = cluster.generation;
            self.dirty = true;
        }
        if self.dirty {
            self.save();
        }
    }

    // --- DNS -------------------------------------------------------------------------------------

    fn ensure_dns(&mut self, net: &Network) {
        let addr = net.host_address();
        if self.dns.is_some() && self.dns_addr == addr {
            return;
        }
        let Ok(ip) = addr.parse() else { return };
        match dns::start(ip) {
            Ok(s) => {
                self.dns = Some(s);
                self.dns_addr = addr;
            }
            Err(e) => {
                if self.dns_addr != format!("failed:{addr}") {
                    log(&format!("cannot serve DNS on {addr}:53: {e}"));
                    self.dns_addr = format!("failed:{addr}");
                }
            }
        }
    }

    fn update_dns(&mut self, cluster: &Cluster) {
        let Some(server) = &self.dns else { return };
        let ns = &cluster.namespace;
        let mut t = dns::Table::default();
        for (app, objs) in &cluster.apps {
            let pods: Vec<&Pod> = self.state.pods.values().filter(|p| &p.app == app).collect();
            let ip = |p: &Pod| p.address.parse::<std::net::Ipv4Addr>().ok();
            if objs.service {
                let ready: Vec<_> = pods.iter().filter(|p| p.healthy()).filter_map(|p| ip(p)).collect();
                t.insert(&format!("{app}.{ns}.svc.{}", dns::CLUSTER_DOMAIN), ready, true);
            }
            if objs.headless_service {
                let svc = format!("{app}-endpoints");
                let all: Vec<_> = pods.iter().filter_map(|p| ip(p)).collect();
                t.insert(&format!("{svc}.{ns}.svc.{}", dns::CLUSTER_DOMAIN), all, true);
                for p in pods.iter().filter(|p| p.stateful) {
                    if let Some(a) = ip(p) {
                        t.insert(&format!("{}.{svc}.{ns}.svc.{}", p.name, dns::CLUSTER_DOMAIN), vec![a], false);
                    }
                }
            }
        }
        let mut cur = server.table.lock().unwrap_or_else(|e| e.into_inner());
        if *cur != t {
            *cur = t;
        }
    }

    // --- Reconciling pods against the workload ----------------------------------------------------

    fn reconcile(&mut self, cluster: &Cluster) {
        // Pods of applications that are gone (remove-application) are deleted.
        let gone: Vec<String> = self
            .state
            .pods
            .values()
            .filter(|p| !p.terminating())
            .filter(|p| cluster.apps.get(&p.app).and_then(|o| o.workload.as_ref()).is_none())
            .map(|p| p.name.clone())
            .collect();
        for name in gone {
            self.delete_pod(&name);
        }
        for (app, objs) in &cluster.apps {
            if let Some(w) = &objs.workload {
                self.reconcile_app(app, objs, w, cluster);
            }
        }
    }

    fn reconcile_app(&mut self, app: &str, objs: &AppObjects, w: &Workload, cluster: &Cluster) {
        let wanted = w.wanted(objs);
        let ordered = w.pod_management_policy == "OrderedReady";
        // Condemned pods: a StatefulSet's ordinals at or above `replicas` (scale-down); a Deployment's
        // pods of units it no longer runs. A StatefulSet pod below `replicas` stays whatever the units
        // do (an update Kubernetes refused leaves `replicas` as it was). Parallel deletes them at once.
        let mut condemned: Vec<(u32, String)> = self
            .state
            .pods
            .values()
            .filter(|p| p.app == app && !p.terminating())
            .filter(|p| {
                if w.stateful() {
                    p.ordinal.is_none_or(|o| o >= w.replicas)
                } else {
                    !wanted.iter().any(|a| a.pod == p.name && a.unit == p.unit)
                }
            })
            .map(|p| (p.ordinal.unwrap_or(p.unit), p.name.clone()))
            .collect();
        condemned.sort();
        if ordered {
            let any_terminating = self.state.pods.values().any(|p| p.app == app && p.terminating());
            if !any_terminating && let Some((_, name)) = condemned.last() {
                self.delete_pod(&name.clone());
            }
        } else {
            for (_, name) in condemned {
                self.delete_pod(&name);
            }
        }
        // Missing pods are created from the current template (the update revision).
        for a in &wanted {
            if self.state.pods.contains_key(&a.pod) {
                if ordered && !self.state.pods[&a.pod].healthy() {
                    break;
                }
                continue;
            }
            self.create_pod(app, a, objs, w, cluster);
            if ordered {
                break;
            }
        }
        // RollingUpdate: highest ordinal first, one pod at a time, each Running and Ready before the next.
        if w.update_strategy != "RollingUpdate" {
            return;
        }
        for a in wanted.iter().rev() {
            if w.stateful() && a.ordinal.unwrap_or(0) < w.partition {
                break;
            }
            let Some(p) = self.state.pods.get(&a.pod) else { return };
            if p.revision != w.revision && !p.terminating() {
                let name = p.name.clone();
                self.event("RollingUpdate", &name, None, &format!("pod {name} is not on revision {}", w.revision));
                self.delete_pod(&name);
                return;
            }
            if !p.healthy() {
                return;
            }
        }
    }

    // --- Creating pods ----------------------------------------------------------------------------

    fn create_pod(&mut self, app: &str, a: &Assignment, objs: &AppObjects, w: &Workload, cluster: &Cluster) {
        let mut pod = Pod {
            name: a.pod.clone(),
            app: app.to_string(),
            namespace: cluster.namespace.clone(),
            unit: a.unit,
            ordinal: a.ordinal,
            uid: util::random_uuid(),
            address: a.address.clone(),
            revision: w.revision.clone(),
            template: w.template.clone(),
            stateful: w.stateful(),
            volume_claims: w.volume_claims.clone(),
            created_ms: util::now_ms(),
            phase: "Pending".into(),
            grace_seconds: w.template.grace_seconds(),
            ..Default::default()
        };
        self.event("SuccessfulCreate", &pod.name, None, &format!("create Pod {} (revision {})", pod.name, w.revision));
        if let Err(e) = self.setup_pod(&mut pod, objs, cluster) {
            pod.error = Some(format!("{e:#}"));
            self.event("Failed", &pod.name, None, &format!("{e:#}"));
        }
        self.state.pods.insert(pod.name.clone(), pod.clone());
        self.dirty = true;
        if pod.error.is_none() {
            self.start_pod_containers(&pod.name, objs);
        }
    }

    /// The pod sandbox: network namespace, /etc files, volumes, the Juju data dir.
    fn setup_pod(&mut self, pod: &mut Pod, objs: &AppObjects, cluster: &Cluster) -> Result<()> {
        let dir = self.paths.pod_dir(&pod.name);
        for sub in ["volumes", "emptydir", "image", "etc"] {
            let _ = fs::remove_dir_all(dir.join(sub));
        }
        fs::create_dir_all(dir.join("logs"))?;
        fs::create_dir_all(dir.join("etc"))?;
        let ns = &cluster.namespace;
        // The kubelet-managed hosts file: localhost and the pod's own names (hostname, and FQDN with the
        // StatefulSet's subdomain); other names come from cluster DNS.
        let own = if pod.stateful {
            format!(
                "{}\t{}.{}-endpoints.{ns}.svc.{}\t{}\n",
                pod.address,
                pod.name,
                pod.app,
                dns::CLUSTER_DOMAIN,
                pod.name
            )
        } else {
            format!("{}\t{}\n", pod.address, pod.name)
        };
        fs::write(dir.join("etc/hosts"), format!("{}{own}", hosts_header()))?;
        let server = cluster.network.as_ref().map(|n| n.host_address()).unwrap_or_else(|| "127.0.0.1".into());
        fs::write(dir.join("etc/resolv.conf"), dns::resolv_conf(ns, &server))?;
        fs::write(dir.join("etc/nsswitch.conf"), NSSWITCH)?;
        for c in pod.template.init_containers.iter().chain(&pod.template.containers) {
            if !image_available(&c.image) {
                bail!("image not available locally: {:?} (juju-local runs only images named \"redis\")", c.image);
            }
        }
        // The image's /usr/local/bin: links to the host's redis binaries.
        let bin = dir.join("image/usr-local-bin");
        fs::create_dir_all(&bin)?;
        let server_bin = which::which("redis-server").context("redis-server is not installed on this machine")?;
        for tool in REDIS_TOOLS {
            let target = match *tool {
                "redis-server" | "redis-sentinel" | "redis-check-aof" | "redis-check-rdb" => Some(server_bin.clone()),
                t => which::which(t).ok(),
            };
            if let Some(t) = target {
                std::os::unix::fs::symlink(&t, bin.join(tool))?;
            }
        }
        let net = cluster.network.clone().context("no network published")?;
        pod.netns = crate::netns::create_pod_net(&net, &pod.name, &pod.address)?;
        for v in &pod.template.volumes {
            let host = dir.join(match v.source {
                VolumeSource::EmptyDir { .. } => "emptydir",
                _ => "volumes",
            });
            match &v.source {
                VolumeSource::EmptyDir { .. } => fs::create_dir_all(host.join(&v.name))?,
                VolumeSource::ConfigMap { .. } | VolumeSource::Secret { .. } => {
                    let files = projection(&v.source, objs)
                        .map_err(|e| anyhow::anyhow!("MountVolume.SetUp failed for volume {:?} : {e}", v.name))?;
                    atomic_project(&host.join(&v.name), &files)?;
                }
                VolumeSource::HostPath { path, kind } => {
                    if !Path::new(path).exists() && kind.as_deref() == Some("DirectoryOrCreate") {
                        fs::create_dir_all(path)?;
                    }
                }
            }
        }
        // What `caas-unit-init` puts in the Juju data dir: the unit's charm and the hook tools. A sidecar
        // pod's `charm-init` puts them in `charm-data`, sub-path var/lib/juju (see `sidecar`).
        let data = if crate::sidecar::is_sidecar_template(&pod.template) {
            crate::sidecar::charm_data(&self.paths, &pod.name).join("var/lib/juju")
        } else {
            dir.join("emptydir").join(workload::JUJU_DATA_VOLUME)
        };
        let unit_dir = format!("unit-{}-{}", pod.app, pod.unit);
        let charm = self.paths.charm_dir(&pod.app, pod.unit);
        if charm.is_dir() {
            copy_tree(&charm, &data.join("agents").join(&unit_dir).join("charm"))?;
        }
        let tools = data.join("tools").join(&unit_dir);
        fs::create_dir_all(&tools)?;
        for name in crate::tools::TOOL_NAMES.iter().copied().chain(["jujuc"]) {
            if crate::sidecar::tool_exists(name, &cluster.juju_version) {
                let _ = std::os::unix::fs::symlink(&self.exe, tools.join(name));
            }
        }
        pod.last_sync_ms = util::now_ms();
        Ok(())
    }

    fn start_pod_containers(&mut self, name: &str, objs: &AppObjects) {
        let Some(pod) = self.state.pods.get(name).cloned() else { return };
        // Init containers run to completion first, one at a time (bounded).
        for c in &pod.template.init_containers {
            match self.spawn(&pod, c, objs) {
                Ok((ctr, child)) => {
                    let ok = wait_child(child, Duration::from_secs(60));
                    let _ = ctr;
                    if !ok {
                        let msg = format!("init container {:?} failed", c.name);
                        self.event("Failed", name, Some(&c.name), &msg);
                        if let Some(p) = self.state.pods.get_mut(name) {
                            p.error = Some(msg);
                        }
                        return;
                    }
                }
                Err(e) => {
                    if let Some(p) = self.state.pods.get_mut(name) {
                        p.error = Some(format!("{e:#}"));
                    }
                    return;
                }
            }
        }
        let mut ctrs = Vec::new();
        for c in &pod.template.containers {
            let ctr = match self.spawn(&pod, c, objs) {
                Ok((ctr, child)) => {
                    self.children.insert(ctr.monitor_pid, child);
                    self.event("Started", name, Some(&c.name), &format!("Started container {}", c.name));
                    ctr
                }
                Err(e) => {
                    self.event("Failed", name, Some(&c.name), &format!("Error: {e:#}"));
                    Ctr {
                        name: c.name.clone(),
                        state: "terminated".into(),
                        reason: "StartError".into(),
                        finished_ms: util::now_ms(),
                        ..Default::default()
                    }
                }
            };
            ctrs.push(ctr);
        }
        if let Some(p) = self.state.pods.get_mut(name) {
            p.containers = ctrs;
            p.phase = "Running".into();
        }
        self.dirty = true;
    }

    /// Starts one container: `shim --netns NS -- bwrap --unshare-pid --as-pid-1 … -- argv`.
    fn spawn(&mut self, pod: &Pod, c: &ContainerT, objs: &AppObjects) -> Result<(Ctr, Child)> {
        let dir = self.paths.pod_dir(&pod.name);
        let mut binds: Vec<(PathBuf, PathBuf, bool)> =
            vec![(dir.join("image/usr-local-bin"), "/usr/local/bin".into(), true)];
        for m in &c.volume_mounts {
            let (src, ro) = if pod.volume_claims.contains(&m.name) {
                let d = self.paths.storage_dir(&pod.name, &m.name);
                fs::create_dir_all(&d)?;
                (d, false)
            } else {
                let v = pod.template.volumes.iter().find(|v| v.name == m.name).context("volume not found")?;
                match &v.source {
                    // subPath: a directory of the volume, created if missing (kubelet `subpath`).
                    VolumeSource::EmptyDir { .. } if m.sub_path.is_some() => {
                        let d = dir.join("emptydir").join(&v.name).join(m.sub_path.as_deref().unwrap_or_default());
                        fs::create_dir_all(&d)?;
                        (d, false)
                    }
                    VolumeSource::EmptyDir { .. } => (dir.join("emptydir").join(&v.name), false),
                    VolumeSource::ConfigMap { .. } | VolumeSource::Secret { .. } => {
                        (dir.join("volumes").join(&v.name), true)
                    }
                    VolumeSource::HostPath { path, .. } => (PathBuf::from(path), false),
                }
            };
            binds.push((src, PathBuf::from(&m.mount_path), ro));
        }
        // A sidecar workload container's Pebble directory is in the container's own filesystem: a new,
        // empty one on every start (a restarted container is a new container).
        if c.env.contains_key("JUJU_CONTAINER_NAME") {
            let layer = dir.join("containers").join(&c.name).join("pebble");
            let _ = fs::remove_dir_all(&layer);
            fs::create_dir_all(&layer)?;
            binds.push((layer, PathBuf::from(crate::sidecar::PEBBLE_DIR), false));
        }
        // Parents before children, so a nested mount is not hidden.
        binds.sort_by_key(|(_, d, _)| d.components().count());
        let bwrap = which::which("bwrap").context("bwrap (bubblewrap) is not installed")?;
        let mut args: Vec<String> = vec![
            bwrap.display().to_string(),
            "--unshare-pid".into(),
            "--as-pid-1".into(),
            "--unshare-uts".into(),
            "--hostname".into(),
            pod.name.clone(),
            "--dev-bind".into(),
            "/".into(),
            "/".into(),
            "--proc".into(),
            "/proc".into(),
        ];
        let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut created = pod.created_dirs.clone();
        for (src, dst, ro) in &binds {
            ensure_mount_point(dst, src.is_file(), &done, &dir, &mut created)?;
            let flag = if *ro { "--ro-bind" } else { "--bind" };
            args.extend([flag.into(), src.display().to_string(), dst.display().to_string()]);
            done.push((src.clone(), dst.clone()));
        }
        if let Some(p) = self.state.pods.get_mut(&pod.name) {
            p.created_dirs = created;
        }
        for f in ["hosts", "resolv.conf", "nsswitch.conf"] {
            args.extend(["--ro-bind".into(), dir.join("etc").join(f).display().to_string(), format!("/etc/{f}")]);
        }
        args.extend(["--chdir".into(), c.working_dir.clone().unwrap_or_else(|| "/".into())]);
        args.extend(["--info-fd".into(), "3".into(), "--".into()]);
        args.extend(image_argv(c));
        let full: Vec<String> = crate::shim::prefix(pod.netns.as_deref(), &[]).into_iter().chain(args).collect();
        let env = container_env(c, pod, objs);
        let log_path = dir.join("logs").join(format!("{}.log", c.name));
        let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 into a valid two-int array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            bail!("pipe: {}", std::io::Error::last_os_error());
        }
        let (rfd, wfd) = (fds[0], fds[1]);
        let mut cmd = Command::new(&full[0]);
        cmd.args(&full[1..])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setsid and dup2 are async-signal-safe; fd 3 carries bwrap's --info-fd.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                if libc::dup2(wfd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        // SAFETY: closing our copy of the write end.
        unsafe {
            libc::close(wfd);
        }
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                // SAFETY: closing the read end we own.
                unsafe {
                    libc::close(rfd);
                }
                bail!("cannot start container {:?}: {e}", c.name);
            }
        };
        let pid = read_child_pid(rfd, Duration::from_secs(10));
        let monitor = child.id() as i32;
        let pid = pid.unwrap_or(0);
        let start_ticks = util::process_start_ticks(pid).unwrap_or(0);
        let now = util::now_ms();
        let ctr = Ctr {
            name: c.name.clone(),
            pid,
            start_ticks,
            monitor_pid: monitor,
            state: "running".into(),
            reason: String::new(),
            started_ms: now,
            started: c.startup_probe.is_none(),
            ready: false,
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
            ..Default::default()
        };
        Ok((ctr, child))
    }

    // --- Container lifecycle ----------------------------------------------------------------------

    fn exit_code_of(&mut self, monitor: i32) -> Option<i32> {
        let child = self.children.get_mut(&monitor)?;
        let deadline = Instant::now() + Duration::from_millis(300);
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    self.children.remove(&monitor);
                    return Some(s.code().unwrap_or(-1));
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    fn update_containers(&mut self, name: &str, cluster: &Cluster) {
        let Some(pod) = self.state.pods.get(name).cloned() else { return };
        let now = util::now_ms();
        let objs = cluster.apps.get(&pod.app).cloned().unwrap_or_default();
        for i in 0..pod.containers.len() {
            let c = pod.containers[i].clone();
            if c.state == "running" && !util::process_alive(c.pid, c.start_ticks) {
                let code = self.exit_code_of(c.monitor_pid);
                let reason = match code {
                    Some(0) => "Completed",
                    _ => "Error",
                };
                let msg =
                    format!("container {} exited ({})", c.name, code.map(|c| c.to_string()).unwrap_or("?".into()));
                self.event("Died", name, Some(&c.name), &msg);
                let p = self.state.pods.get_mut(name).expect("pod");
                let cc = &mut p.containers[i];
                cc.state = "terminated".into();
                cc.reason = reason.into();
                cc.exit_code = code;
                cc.finished_ms = now;
                cc.ready = false;
                cc.kill_deadline_ms = None;
                cc.pid = 0;
                self.dirty = true;
            }
            let p = self.state.pods.get(name).expect("pod");
            let c = p.containers[i].clone();
            if p.terminating() {
                continue;
            }
            // A probe-triggered kill past its grace: SIGKILL.
            if c.state == "running"
                && let Some(deadline) = c.kill_deadline_ms
                && now >= deadline
            {
                util::signal(c.pid, c.start_ticks, libc::SIGKILL);
            }
            if c.state != "running" {
                // restartPolicy Always: restart unless the back-off since its finish time runs.
                let in_backoff = c.backoff_ms > 0
                    && c.finished_ms.saturating_sub(c.backoff_updated_ms) <= 2 * BACKOFF_MAX_MS
                    && now.saturating_sub(c.finished_ms) < c.backoff_ms;
                if in_backoff {
                    if c.reason != "CrashLoopBackOff" {
                        let msg = format!(
                            "Back-off {}s restarting failed container={} pod={}",
                            c.backoff_ms / 1000,
                            c.name,
                            name
                        );
                        self.event("BackOff", name, Some(&c.name), &msg);
                        let p = self.state.pods.get_mut(name).expect("pod");
                        p.containers[i].state = "waiting".into();
                        p.containers[i].reason = "CrashLoopBackOff".into();
                        self.dirty = true;
                    }
                    continue;
                }
                // flowcontrol.Backoff.Next(key, finishedAt).
                let (backoff, updated) =
                    if c.backoff_ms == 0 || c.finished_ms.saturating_sub(c.backoff_updated_ms) > 2 * BACKOFF_MAX_MS {
                        (BACKOFF_INITIAL_MS, now)
                    } else {
                        ((c.backoff_ms * 2).min(BACKOFF_MAX_MS), now)
                    };
                let Some(t) = pod.template.containers.iter().find(|t| t.name == c.name).cloned() else { continue };
                let cur = self.state.pods.get(name).cloned().expect("pod");
                match self.spawn(&cur, &t, &objs) {
                    Ok((mut ctr, child)) => {
                        self.children.insert(ctr.monitor_pid, child);
                        ctr.restart_count = c.restart_count + 1;
                        ctr.backoff_ms = backoff;
                        ctr.backoff_updated_ms = updated;
                        self.event(
                            "Started",
                            name,
                            Some(&c.name),
                            &format!("Started container {} (restart {})", c.name, ctr.restart_count),
                        );
                        let p = self.state.pods.get_mut(name).expect("pod");
                        p.containers[i] = ctr;
                    }
                    Err(e) => {
                        self.event("Failed", name, Some(&c.name), &format!("Error: {e:#}"));
                        let p = self.state.pods.get_mut(name).expect("pod");
                        let cc = &mut p.containers[i];
                        cc.finished_ms = now;
                        cc.backoff_ms = backoff;
                        cc.backoff_updated_ms = updated;
                        cc.restart_count += 1;
                    }
                }
                self.dirty = true;
            }
        }
        // A pod that could not start (e.g. a volume key was missing) is retried every sync period.
        let p = self.state.pods.get(name).cloned().expect("pod");
        let retry_ms = cluster.sync_seconds.max(1) * 1000;
        if p.error.is_some()
            && !p.terminating()
            && !p.error.as_deref().unwrap_or_default().starts_with("image not available")
            && now.saturating_sub(p.last_sync_ms) >= retry_ms
        {
            let mut p2 = p.clone();
            p2.error = None;
            match self.setup_pod(&mut p2, &objs, cluster) {
                Ok(()) => {
                    self.state.pods.insert(name.to_string(), p2);
                    self.start_pod_containers(name, &objs);
                }
                Err(e) => {
                    let q = self.state.pods.get_mut(name).expect("pod");
                    q.last_sync_ms = now;
                    q.error = Some(format!("{e:#}"));
                }
            }
            self.dirty = true;
        }
    }

    /// Marks a pod for deletion: SIGTERM to PID 1 of each container now, SIGKILL after the grace period.
    fn delete_pod(&mut self, name: &str) {
        let Some(p) = self.state.pods.get_mut(name) else { return };
        if p.terminating() {
            return;
        }
        p.deletion_ms = Some(util::now_ms());
        p.ready = false;
        let grace = p.grace_seconds;
        let running: Vec<(String, i32, u64)> = p
            .containers
            .iter()
            .filter(|c| c.state == "running")
            .map(|c| (c.name.clone(), c.pid, c.start_ticks))
            .collect();
        for c in p.containers.iter_mut() {
            c.ready = false;
        }
        self.dirty = true;
        self.event(
            "Killing",
            name,
            None,
            &format!("Deleting pod {name}: SIGTERM to PID 1 of each container, grace period {grace}s"),
        );
        for (c, pid, ticks) in running {
            util::signal(pid, ticks, libc::SIGTERM);
            self.event("Killing", name, Some(&c), &format!("Stopping container {c}"));
        }
    }

    fn finish_deletions(&mut self) {
        let now = util::now_ms();
        let names: Vec<String> = self.state.pods.values().filter(|p| p.terminating()).map(|p| p.name.clone()).collect();
        for name in names {
            let p = self.state.pods.get(&name).cloned().expect("pod");
            let alive: Vec<&Ctr> =
                p.containers.iter().filter(|c| c.pid > 0 && util::process_alive(c.pid, c.start_ticks)).collect();
            let deadline = p.deletion_ms.unwrap_or(now) + p.grace_seconds * 1000;
            if !alive.is_empty() && now < deadline {
                continue;
            }
            if !alive.is_empty() && !p.killed {
                for c in &alive {
                    util::signal(c.pid, c.start_ticks, libc::SIGKILL);
                }
                self.event("Killing", &name, None, "grace period over: SIGKILL to every process of the pod");
                if let Some(q) = self.state.pods.get_mut(&name) {
                    q.killed = true;
                }
                self.dirty = true;
                continue;
            }
            if !alive.is_empty() && now < deadline + 10_000 {
                continue;
            }
            for c in &p.containers {
                let _ = self.exit_code_of(c.monitor_pid);
            }
            self.remove_pod_now(&p);
            self.state.pods.remove(&name);
            self.dirty = true;
            self.event("Deleted", &name, None, &format!("pod {name} deleted"));
        }
    }

    fn remove_pod_now(&self, p: &Pod) {
        if let Some(ns) = &p.netns {
            crate::netns::delete_pod_net(ns);
        }
        let dir = self.paths.pod_dir(&p.name);
        for sub in ["volumes", "emptydir", "image", "etc"] {
            let _ = fs::remove_dir_all(dir.join(sub));
        }
        if crate::netns::active_models() <= 1 {
            for d in p.created_dirs.iter().rev() {
                let _ = fs::remove_dir(d);
                if d.is_file() && fs::metadata(d).map(|m| m.len() == 0).unwrap_or(false) {
                    let _ = fs::remove_file(d);
                }
            }
        }
    }

    /// destroy, or the model dir is gone: SIGKILL every container (each PID namespace dies with its PID
    /// 1) and remove every pod's namespace at once.
    fn teardown(&mut self) {
        let pods: Vec<Pod> = self.state.pods.values().cloned().collect();
        for p in &pods {
            for c in &p.containers {
                util::signal(c.pid, c.start_ticks, libc::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && pods.iter().flat_map(|p| &p.containers).any(|c| util::process_alive(c.pid, c.start_ticks))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in &pods {
            for c in &p.containers {
                let _ = self.exit_code_of(c.monitor_pid);
            }
            self.remove_pod_now(p);
        }
        self.state.pods.clear();
        self.dirty = true;
    }

    // --- Volumes ----------------------------------------------------------------------------------

    fn sync_volumes(&mut self, cluster: &Cluster) {
        let now = util::now_ms();
        let period = cluster.sync_seconds.max(1) * 1000;
        let names: Vec<String> = self
            .state
            .pods
            .values()
            .filter(|p| !p.terminating() && p.error.is_none() && now.saturating_sub(p.last_sync_ms) >= period)
            .map(|p| p.name.clone())
            .collect();
        for name in names {
            let p = self.state.pods.get(&name).cloned().expect("pod");
            let Some(objs) = cluster.apps.get(&p.app) else { continue };
            let dir = self.paths.pod_dir(&name).join("volumes");
            for v in &p.template.volumes {
                if !matches!(v.source, VolumeSource::ConfigMap { .. } | VolumeSource::Secret { .. }) {
                    continue;
                }
                match projection(&v.source, objs) {
                    Ok(files) => match atomic_project(&dir.join(&v.name), &files) {
                        Ok(true) => self.event("FilesUpdated", &name, None, &format!("volume {:?} updated", v.name)),
                        Ok(false) => {}
                        Err(e) => log(&format!("pod {name}: volume {}: {e:#}", v.name)),
                    },
                    Err(e) => self.event(
                        "FailedMount",
                        &name,
                        None,
                        &format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name),
                    ),
                }
            }
            if let Some(q) = self.state.pods.get_mut(&name) {
                q.last_sync_ms = now;
            }
        }
    }

    // --- Probes -----------------------------------------------------------------------------------

    fn schedule_probes(&mut self) {
        let now = util::now_ms();
        let mut jobs: Vec<(String, String, u64, &'static str, Value, Target)> = Vec::new();
        for p in self.state.pods.values_mut() {
            if p.terminating() || p.phase != "Running" {
                continue;
            }
            let template = p.template.clone();
            for c in p.containers.iter_mut() {
                if c.state != "running" || c.kill_deadline_ms.is_some() {
                    continue;
                }
                let Some(t) = template.containers.iter().find(|t| t.name == c.name) else { continue };
                let target = Target {
                    address: p.address.clone(),
                    exec: exec_prefix(c.pid),
                    env: c.env.clone(),
                    ports: c.ports.clone(),
                    container: c.name.clone(),
                };
                let mut kinds: Vec<(&'static str, &Value)> = Vec::new();
                if !c.started {
                    if let Some(sp) = &t.startup_probe {
                        kinds.push(("startup", sp));
                    }
                } else {
                    if let Some(lp) = &t.liveness_probe {
                        kinds.push(("liveness", lp));
                    }
                    match &t.readiness_probe {
                        Some(rp) => kinds.push(("readiness", rp)),
                        None if !c.ready => {
                            c.ready = true;
                            self.dirty = true;
                        }
                        None => {}
                    }
                }
                for (kind, probe) in kinds {
                    let key = (p.uid.clone(), c.name.clone(), kind);
                    if self.in_flight.contains(&key) {
                        continue;
                    }
                    let timing = probes::timing(probe);
                    let st = match kind {
                        "startup" => &mut c.startup,
                        "liveness" => &mut c.liveness,
                        _ => &mut c.readiness,
                    };
                    if st.next_ms == 0 {
                        st.next_ms = c.started_ms + timing.initial_delay_ms;
                    }
                    if now < st.next_ms {
                        continue;
                    }
                    st.next_ms = now + timing.period_ms;
                    self.in_flight.insert(key);
                    jobs.push((p.uid.clone(), c.name.clone(), c.start_ticks, kind, probe.clone(), target.clone()));
                }
            }
        }
        for (uid, name, ticks, kind, probe, target) in jobs {
            let tx = self.probes_tx.clone();
            std::thread::spawn(move || {
                let result = probes::check(&probe, &target);
                let _ = tx.send(ProbeResult { pod_uid: uid, container: name, start_ticks: ticks, kind, result });
            });
        }
    }

    fn collect_probe_results(&mut self) {
        while let Ok(r) = self.probes_rx.try_recv() {
            self.in_flight.remove(&(r.pod_uid.clone(), r.container.clone(), r.kind));
            let Some(p) = self.state.pods.values_mut().find(|p| p.uid == r.pod_uid) else { continue };
            let pod_name = p.name.clone();
            let grace = p.grace_seconds;
            let template = p.template.clone();
            let Some(c) = p.containers.iter_mut().find(|c| c.name == r.container && c.start_ticks == r.start_ticks)
            else {
                continue;
            };
            if c.state != "running" || p.deletion_ms.is_some() {
                continue;
            }
            let Some(t) = template.containers.iter().find(|t| t.name == c.name) else { continue };
            let probe = match r.kind {
                "startup" => t.startup_probe.clone(),
                "liveness" => t.liveness_probe.clone(),
                _ => t.readiness_probe.clone(),
            }
            .unwrap_or(Value::Null);
            let timing = probes::timing(&probe);
            let st = match r.kind {
                "startup" => &mut c.startup,
                "liveness" => &mut c.liveness,
                _ => &mut c.readiness,
            };
            let mut events: Vec<(&str, String)> = Vec::new();
            match &r.result {
                Ok(()) => {
                    st.successes += 1;
                    st.failures = 0;
                    st.last_error = None;
                    if st.successes >= timing.success_threshold {
                        match r.kind {
                            "startup" => c.started = true,
                            "readiness" => c.ready = true,
                            _ => {}
                        }
                    }
                }
                Err(e) => {
                    st.failures += 1;
                    st.successes = 0;
                    st.last_error = Some(e.clone());
                    let label = match r.kind {
                        "startup" => "Startup",
                        "liveness" => "Liveness",
                        _ => "Readiness",
                    };
                    if st.failures >= timing.failure_threshold {
                        // Kubernetes aggregates repeated events (a count); log the first and every 30th.
                        if (st.failures - timing.failure_threshold).is_multiple_of(30) {
                            events.push(("Unhealthy", format!("{label} probe failed: {e}")));
                        }
                        match r.kind {
                            "readiness" => c.ready = false,
                            _ => {
                                // The kubelet kills the container (grace from the pod), then restarts it.
                                events.push((
                                    "Killing",
                                    format!("Container {} failed {} probe, will be restarted", c.name, r.kind),
                                ));
                                util::signal(c.pid, c.start_ticks, libc::SIGTERM);
                                c.kill_deadline_ms = Some(util::now_ms() + grace * 1000);
                                c.ready = false;
                            }
                        }
                    }
                }
            }
            let cname = c.name.clone();
            self.dirty = true;
            for (reason, msg) in events {
                self.event(reason, &pod_name, Some(&cname), &msg);
            }
        }
    }
}

const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n\
protocols: files\nservices: files\nethers: files\nrpc: files\n";

/// The start of a kubelet-managed hosts file (kubelet `managedHostsFileContent`).
pub fn hosts_header() -> &'static str {
    "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
}

/// The files of the operator pod hooks run in: its hosts file, resolv.conf (cluster DNS, the model's
/// namespace search list) and nsswitch.conf.
pub fn write_operator_files(paths: &Paths, namespace: &str, net: &Network) -> Result<Vec<(String, String)>> {
    let files = [
        ("hosts", hosts_header().to_string()),
        ("resolv.conf", dns::resolv_conf(namespace, &net.host_address())),
        ("nsswitch.conf", NSSWITCH.to_string()),
    ];
    let mut binds = Vec::new();
    for (name, text) in files {
        let p = paths.operator_file(name);
        if fs::read_to_string(&p).ok().as_deref() != Some(text.as_str()) {
            util::atomic_write(&p, text.as_bytes())?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644))?;
        }
        binds.push((p.display().to_string(), format!("/etc/{name}")));
    }
    Ok(binds)
}

/// Reads bubblewrap's `--info-fd` JSON (`{"child-pid": N, <namespace ids>}`) to its end. It must be
/// read whole: closing the pipe early makes bwrap's next write kill it with SIGPIPE before it lets the
/// container start, which leaves a PID 1 that never runs its command.
fn read_child_pid(fd: i32, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    loop {
        if String::from_utf8_lossy(&buf).contains('}') {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        let mut chunk = [0u8; 512];
        // SAFETY: read into a valid buffer from a file descriptor we own.
        let got = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if got <= 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..got as usize]);
    }
    // SAFETY: closing the read end we own.
    unsafe {
        libc::close(fd);
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let rest = text.split("\"child-pid\":").nth(1)?;
    rest.trim_start().chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

fn wait_child(mut child: Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// The files a ConfigMap or Secret volume projects: (path, content, mode).
fn projection(src: &VolumeSource, objs: &AppObjects) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    let (data, items, default_mode, what): (BTreeMap<String, Vec<u8>>, _, _, _) = match src {
        VolumeSource::ConfigMap { name, items, default_mode } => {
            let cm = objs.config_maps.get(name).ok_or_else(|| format!("configmap {name:?} not found"))?;
            (cm.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect(), items, default_mode, "config")
        }
        VolumeSource::Secret { secret_name, items, default_mode } => {
            let s = objs.secrets.get(secret_name).ok_or_else(|| format!("secret {secret_name:?} not found"))?;
            let data = s.iter().map(|(k, v)| (k.clone(), util::base64_decode(v).unwrap_or_default())).collect();
            (data, items, default_mode, "secret")
        }
        _ => return Ok(Vec::new()),
    };
    let mode = default_mode.unwrap_or(0o644);
    match items {
        Some(items) => items
            .iter()
            .map(|i| match data.get(&i.key) {
                Some(v) => Ok((i.path.clone(), v.clone(), i.mode.unwrap_or(mode))),
                None if what == "config" => Err(format!("configmap references non-existent config key: {}", i.key)),
                None => Err(format!("references non-existent secret key: {}", i.key)),
            })
            .collect(),
        None => Ok(data.into_iter().map(|(k, v)| (k, v, mode)).collect()),
    }
}

/// kubelet's AtomicWriter: writes `files` into `dir` as a new timestamped dir, swaps the `..data`
/// symlink to it with one rename, points each visible top-level name at `..data/<name>`, and removes
/// the old dir. Returns whether anything changed.
fn atomic_project(dir: &Path, files: &[(String, Vec<u8>, u32)]) -> Result<bool> {
    fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    let old = fs::read_link(&data_link).ok();
    if let Some(old) = &old {
        let cur = dir.join(old);
        let same = files.iter().all(|(rel, content, mode)| {
            let p = cur.join(rel.trim_start_matches('/'));
            fs::read(&p).ok().as_deref() == Some(content.as_slice())
                && fs::metadata(&p).map(|m| m.permissions().mode() & 0o7777).ok() == Some(*mode)
        }) && count_files(&cur) == files.len();
        if same {
            return Ok(false);
        }
    }
    let ms = util::now_ms();
    let ts = format!(
        "..{}.{}",
        rfc3339(ms).replace(['-', ':', 'T'], "_").trim_end_matches('Z'),
        util::random_u63() % 1_000_000_000
    );
    let new = dir.join(&ts);
    fs::create_dir_all(&new)?;
    for (rel, content, mode) in files {
        let rel = rel.trim_start_matches('/');
        if rel.split('/').any(|c| c == ".." || c.starts_with("..")) {
            bail!("file path {rel:?} leaves its volume");
        }
        let p = new.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&p, content).with_context(|| format!("cannot write {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts, &tmp)?;
    fs::rename(&tmp, &data_link)?;
    let top: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _, _)| rel.trim_start_matches('/').split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link)?;
        }
    }
    for e in fs::read_dir(dir)?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("..") {
            if n != "..data" && n != ts {
                let _ = fs::remove_dir_all(e.path());
            }
        } else if !top.contains(&n) {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(true)
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                n += count_files(&e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst)?;
    for e in fs::read_dir(src)?.flatten() {
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ty = e.file_type()?;
        if ty.is_symlink() {
            let target = fs::read_link(&from)?;
            let _ = fs::remove_file(&to);
            std::os::unix::fs::symlink(target, &to)?;
        } else if ty.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
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

/// bwrap creates a missing mount point on the host (its new root is the host's /): juju-local creates
/// it and records each level it made, to remove it when the pod goes.
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
    let model_pods = pod_dir.parent().unwrap_or(pod_dir);
    for m in missing.into_iter().rev() {
        if !m.starts_with(model_pods) && !created.contains(&m) {
            created.push(m);
        }
    }
    if is_file && !host.exists() {
        fs::write(&host, b"")?;
        created.push(host);
    }
    Ok(())
}

/// The container's environment: PATH and HOSTNAME as the runtime sets them, then envConfig resolved
/// against the Secrets and ConfigMaps as they are now (env is read once, at container start).
fn container_env(c: &ContainerT, pod: &Pod, objs: &AppObjects) -> Vec<(String, String)> {
    let mut env = vec![("PATH".to_string(), IMAGE_PATH.to_string()), ("HOSTNAME".to_string(), pod.name.clone())];
    let lookup = |kind: &str, name: &str| -> BTreeMap<String, Vec<u8>> {
        if kind == "secret" {
            objs.secrets
                .get(name)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), util::base64_decode(v).unwrap_or_default())).collect())
                .unwrap_or_default()
        } else {
            objs.config_maps
                .get(name)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect())
                .unwrap_or_default()
        }
    };
    for (k, v) in &c.env {
        let value = match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Object(m) => {
                if let Some(field) = m.get("field") {
                    match field.get("path").and_then(Value::as_str) {
                        Some("status.podIP") => Some(pod.address.clone()),
                        Some("metadata.name") => Some(pod.name.clone()),
                        Some("metadata.namespace") => Some(pod.namespace.clone()),
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
fn image_argv(c: &ContainerT) -> Vec<String> {
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
        let c = ContainerT { args: vec!["--port".into(), "7000".into()], ..Default::default() };
        assert_eq!(image_argv(&c), ["redis-server", "--port", "7000"]);
        let c = ContainerT { command: vec!["sh".into()], args: vec!["-c".into(), "x".into()], ..Default::default() };
        assert_eq!(image_argv(&c), ["sh", "-c", "x"]);
    }

    #[test]
    fn atomic_writer_swaps_data_and_keeps_names_as_symlinks() {
        let dir = std::env::temp_dir().join(format!("jl-aw-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(atomic_project(&dir, &[("a.conf".into(), b"one".to_vec(), 0o644)]).unwrap());
        assert_eq!(fs::read_link(dir.join("a.conf")).unwrap(), PathBuf::from("..data/a.conf"));
        assert_eq!(fs::read(dir.join("a.conf")).unwrap(), b"one");
        let first = fs::read_link(dir.join("..data")).unwrap();
        assert!(!atomic_project(&dir, &[("a.conf".into(), b"one".to_vec(), 0o644)]).unwrap(), "no change");
        assert!(atomic_project(&dir, &[("a.conf".into(), b"two".to_vec(), 0o400)]).unwrap());
        assert_ne!(fs::read_link(dir.join("..data")).unwrap(), first);
        assert_eq!(fs::read(dir.join("a.conf")).unwrap(), b"two");
        assert!(!dir.join(&first).exists(), "the old timestamped dir is removed");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn event_times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }
}
