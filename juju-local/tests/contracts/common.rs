//! Shared helpers for juju-local's integration tests: a throw-away model (its own dir; a Drop guard
//! runs `juju-local destroy`, so every pod, namespace and bridge goes away even when a test fails),
//! builders for small POSIX-sh test charms, and bounded polling.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_juju-local");

pub struct TestModel {
    pub dir: PathBuf,
    pub work: PathBuf,
    pub env: Vec<(String, String)>,
    // Released after Drop has destroyed the model.
    _host: HostLock,
}

/// The models of this binary's tests run side by side, except those of a test that checks what a model leaves
/// behind on the host (its bridge, namespaces, index): juju-local hands a freed index to the next model at once,
/// which recreates a bridge of the same name, so such a test runs alone ([`TestModel::alone`]).
static HOST: std::sync::RwLock<()> = std::sync::RwLock::new(());

#[allow(dead_code)] // held for its Drop
enum HostLock {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
}

/// The commands juju-local runs pods with: bubblewrap, `ip` for the network namespaces, and the machine's
/// redis-server as the `redis` image.
pub const POD_COMMANDS: &[&str] = &["bwrap", "ip", "redis-server"];

/// What running pods needs and the machine lacks, one phrase each (empty when nothing): root (`euid` 0)
/// and every [`POD_COMMANDS`] entry `on_path`.
pub fn missing_for_pods(euid: u32, on_path: impl Fn(&str) -> bool) -> Vec<String> {
    let mut missing = Vec::new();
    if euid != 0 {
        missing.push("root (network namespaces, /run/juju-local)".to_string());
    }
    let commands: Vec<&str> = POD_COMMANDS.iter().copied().filter(|c| !on_path(c)).collect();
    match commands.as_slice() {
        [] => {}
        [one] => missing.push(format!("{one} on PATH (`make setup`)")),
        [init @ .., last] => missing.push(format!("{} and {last} on PATH (`make setup`)", init.join(", "))),
    }
    missing
}

/// Fails the calling test with one line naming everything missing (see [`missing_for_pods`]), instead of
/// somewhere inside juju-local; [`TestModel::new`] calls it first.
pub fn require_pods() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let missing = missing_for_pods(unsafe { libc::geteuid() }, |c| which::which(c).is_ok());
    if !missing.is_empty() {
        panic!("juju-local's tests need {}: `make test` as root provides all of it", missing.join(", "));
    }
}

impl TestModel {
    pub fn new(name: &str) -> TestModel {
        let host = HostLock::Shared(HOST.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
        Self::with(name, host)
    }

    /// A model no other test's model runs beside, for a test that checks the host after it is gone.
    pub fn alone(name: &str) -> TestModel {
        let host = HostLock::Alone(HOST.write().unwrap_or_else(|poisoned| poisoned.into_inner()));
        Self::with(name, host)
    }

    fn with(name: &str, host: HostLock) -> TestModel {
        require_pods();
        let work = std::env::temp_dir().join(format!("jl-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("create test dir");
        TestModel { dir: work.join("model"), work, env: Vec::new(), _host: host }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("--model-dir").arg(&self.dir).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run juju-local")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "juju-local {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.debug_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--format", "json"])).expect("status json")
    }

    pub fn unit<'a>(st: &'a Value, unit: &str) -> &'a Value {
        let app = unit.split('/').next().unwrap_or_default();
        &st["applications"][app]["units"][unit]
    }

    pub fn address(&self, unit: &str) -> String {
        self.ok(&["address", unit]).trim().to_string()
    }

    pub fn debug_log(&self) -> String {
        let out = Command::new(BIN).arg("--model-dir").arg(&self.dir).arg("debug-log").output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// The hooks the test charm recorded for a unit (one per line, in order).
    pub fn hooks(&self, app: &str, n: u32) -> Vec<String> {
        let f = self.dir.join(format!("agents/unit-{app}-{n}/state/hooks.log"));
        std::fs::read_to_string(f).unwrap_or_default().lines().map(str::to_string).collect()
    }

    pub fn state_file(&self, app: &str, n: u32, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(format!("agents/unit-{app}-{n}/state/{name}"))).ok()
    }

    /// juju-local's own model.json (the controller's state).
    pub fn model_json(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join("model.json")).expect("model.json");
        serde_json::from_str(&text).expect("model.json parses")
    }

    /// The kubelet's pod records (kubelet/pods.json; pids, namespaces, restarts).
    pub fn pods_json(&self) -> Value {
        std::fs::read_to_string(self.dir.join("kubelet/pods.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// The record of pod `name` (Null when there is none).
    pub fn pod(&self, name: &str) -> Value {
        self.pods_json()["pods"][name].clone()
    }

    /// PID 1 (host pid) of a pod's first container, 0 when it has none.
    pub fn pod_pid(&self, name: &str) -> i64 {
        self.pod(name)["containers"][0]["pid"].as_i64().unwrap_or(0)
    }

    /// The kubelet's events, oldest first.
    pub fn events(&self) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["events", "--format", "json"])).expect("events json")
    }

    /// The events as `<reason> <pod>[/<container>]` strings, oldest first.
    pub fn event_lines(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| match e["container"].as_str() {
                Some(c) => format!("{} {}/{c}", e["reason"].as_str().unwrap_or(""), e["pod"].as_str().unwrap_or("")),
                None => format!("{} {}", e["reason"].as_str().unwrap_or(""), e["pod"].as_str().unwrap_or("")),
            })
            .collect()
    }

    /// `k8s APP --format json`: the application's objects and pods.
    pub fn k8s(&self, app: &str) -> Value {
        serde_json::from_str(&self.ok(&["k8s", app, "--format", "json"])).expect("k8s json")
    }

    /// Runs `sh -c cmd` inside container `idx` of a pod (its mount, UTS, network and PID namespaces),
    /// as `kubectl exec` would. Returns (exit code, stdout + stderr).
    pub fn exec_in_pod(&self, pod: &str, idx: usize, cmd: &str) -> (i32, String) {
        let pid = self.pod(pod)["containers"][idx]["pid"].as_i64().unwrap_or(0);
        assert!(pid > 0, "pod {pod} container {idx} is not running: {}", self.pod(pod));
        let out = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "-u", "-n", "-p", "-r", "-w", "--", "sh", "-c", cmd])
            .output()
            .expect("nsenter");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    /// Writes the pod spec the test charm's leader sends (`CharmOpts::spec_file`) and has the leader
    /// send it (config-changed).
    pub fn set_spec(&self, spec_file: &Path, spec: &str, leader: &str) {
        std::fs::write(spec_file, spec).expect("write spec");
        self.ok(&["run-hook", leader, "config-changed"]);
    }

    /// The index of the next event (to look only at what follows).
    pub fn event_mark(&self) -> usize {
        self.events().len()
    }

    /// Events after `mark`, as `<reason> <pod>[/<container>]`.
    pub fn event_lines_since(&self, mark: usize) -> Vec<String> {
        self.event_lines().into_iter().skip(mark).collect()
    }

    /// Polls `f` until it returns Some or 30 s pass.
    pub fn wait_for<T>(&self, what: &str, f: impl FnMut() -> Option<T>) -> T {
        self.wait_for_secs(what, 30, f)
    }

    /// Polls `f` until it returns Some or `secs` pass.
    pub fn wait_for_secs<T>(&self, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\nstatus: {}\nlog:\n{}", self.status(), self.debug_log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_active(&self, app: &str) {
        let out = self.run(&["wait", app, "--timeout", "40"]);
        assert!(
            out.status.success(),
            "{} not active: {}\n{}",
            app,
            String::from_utf8_lossy(&out.stderr),
            self.debug_log()
        );
    }
}

impl Drop for TestModel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep what explains the failure: the kubelet's view, its events and the container logs.
            let keep =
                std::env::temp_dir().join(format!("jl-failed-{}", self.work.file_name().unwrap().to_string_lossy()));
            let _ = std::fs::remove_dir_all(&keep);
            let _ = std::fs::create_dir_all(&keep);
            let _ = Command::new("cp")
                .arg("-r")
                .arg(self.dir.join("kubelet"))
                .arg(self.dir.join("pods"))
                .arg(&keep)
                .output();
            let _ = std::fs::write(
                keep.join("ip-addr.txt"),
                Command::new("ip").args(["-br", "addr"]).output().map(|o| o.stdout).unwrap_or_default(),
            );
            eprintln!("kept the failed model's kubelet dir and pod logs in {}", keep.display());
        }
        if self.dir.join("model.json").exists() {
            let _ = Command::new(BIN).arg("--model-dir").arg(&self.dir).arg("destroy").output();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// True while `pid` is a live (non-zombie) process.
pub fn alive(pid: i64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()).unwrap_or("Z");
    state != "Z" && state != "X"
}

/// Sends PING to host:port; true on +PONG.
pub fn ping(host: &str, port: u16) -> bool {
    use std::io::Read;
    let Ok(addr) = format!("{host}:{port}").parse() else { return false };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

pub const METADATA: &str = "name: testredis\nsummary: test\ndescription: test\nseries: [kubernetes]\nmin-juju-version: 2.8.0\n\
resources:\n  redis-image:\n    type: oci-image\n    description: image\nprovides:\n  db:\n    interface: redis\npeers:\n  cluster:\n    interface: testpeer\n";
pub const CONFIG: &str = "options:\n  port:\n    type: int\n    default: 6379\n    description: port\n";

/// Knobs for the test charm's behaviour.
#[derive(Default, Clone)]
pub struct CharmOpts {
    /// A StatefulSet (`deployment: {type: stateful}`): pods `<app>-<ordinal>`.
    pub stateful: bool,
    /// The leader sends this file's content as its pod spec (config-changed, upgrade-charm) instead of
    /// the built-in one; `$PORT` in it is the port option, `$IMAGE` the image resource.
    pub spec_file: Option<PathBuf>,
    /// Extra `case` arms for the dispatch script (`hook) commands ;;`).
    pub extra_case: String,
    /// actions.yaml content (default: get-info when `actions`).
    pub actions_yaml: Option<String>,
    /// Protocol written in the pod spec (default TCP).
    pub protocol: Option<String>,
    /// An extra container key (to provoke strict decoding errors).
    pub extra_key: Option<String>,
    /// config-changed fails (after its deferred writes) until this file exists.
    pub fail_until: Option<PathBuf>,
    /// Extra shell run at the start of install.
    pub install_extra: String,
    pub storage: bool,
    pub actions: bool,
}

/// The dispatch script of a minimal podspec charm, POSIX sh.
pub fn dispatch_script(o: &CharmOpts) -> String {
    let proto = o.protocol.clone().unwrap_or_else(|| "TCP".into());
    let extra = o.extra_key.clone().map(|k| format!("  {k}: 1\n")).unwrap_or_default();
    let fail = match &o.fail_until {
        Some(p) => format!("[ -f '{}' ] || {{ echo 'not fixed yet' >&2; exit 1; }}\n", p.display()),
        None => String::new(),
    };
    format!(
        r#"#!/bin/sh
set -e
hook="${{JUJU_DISPATCH_PATH#*/}}"
STATE="$JUJU_CHARM_DIR/../state"
# Actions run in the workload pod, on a copy of the charm with no state/ dir beside it.
if [ -d "$STATE" ]; then echo "$hook" >> "$STATE/hooks.log"; fi
spec() {{
  PORT=$(config-get port --format json)
  IMAGE=$(sed -n 's/^registrypath: //p' "$(resource-get redis-image)" | tr -d "'\"")
  {spec_file}
  cat <<EOF
version: 3
containers:
- name: redis
  imageDetails: {{imagePath: '$IMAGE', username: '', password: ''}}
  ports: [{{containerPort: $PORT, protocol: {proto}, name: redis}}]
  command: [redis-server, --port, '$PORT', --bind, 0.0.0.0, --protected-mode, 'no', --save, '']
{extra}  volumeConfig:
  - name: conf
    mountPath: /etc/jl-test-conf
    files: [{{path: hello.txt, content: hello}}]
  kubernetes:
    readinessProbe: {{tcpSocket: {{port: $PORT}}, periodSeconds: 1}}
EOF
}}
case "$hook" in
{extra_case}
  install)
    {install}
    status-set maintenance installing ;;
  config-changed|upgrade-charm)
    if [ "$(is-leader --format json)" = "true" ]; then spec | pod-spec-set; fi
    state-get --format json > "$STATE/seen-state"
    state-set "counter=$hook"
    for r in $(relation-ids db); do relation-set -r "$r" port="$(config-get port)"; done
    {fail}    status-set active ;;
  leader-settings-changed)
    spec | pod-spec-set 2> "$STATE/nonleader-err" || true ;;
  db-relation-joined|db-relation-changed)
    relation-set host="$(network-get db --ingress-address)" port="$(config-get port)"
    if [ "$(is-leader --format json)" = "true" ]; then relation-set --app leader-host="$(network-get db --ingress-address)"; fi ;;
  data-storage-attached)
    echo "$JUJU_STORAGE_LOCATION" > "$STATE/storage-location" ;;
  get-info)
    action-set "port=$(config-get port)" "hostname=$(hostname)"
    echo in-pod-output ;;
esac
"#,
        install = o.install_extra,
        extra_case = o.extra_case,
        spec_file = match &o.spec_file {
            Some(f) => format!("sed -e \"s/\\$PORT/$PORT/g\" -e \"s|\\$IMAGE|$IMAGE|g\" '{}'; return", f.display()),
            None => String::new(),
        }
    )
}

/// Builds a .charm (zip with dispatch 0755 and hooks/* symlinks to ../dispatch).
pub fn build_charm(dir: &Path, o: &CharmOpts) -> PathBuf {
    use zip::write::SimpleFileOptions;
    let path = dir.join("testredis.charm");
    let file = std::fs::File::create(&path).expect("create charm");
    let mut zip = zip::ZipWriter::new(file);
    let opts = SimpleFileOptions::default().unix_permissions(0o644);
    let mut meta = METADATA.to_string();
    if o.stateful {
        meta.push_str("deployment:\n  type: stateful\n");
    }
    if o.storage {
        meta.push_str("storage:\n  data:\n    type: filesystem\n    location: /var/lib/jl-test-data\n");
    }
    let mut files = vec![("metadata.yaml", meta), ("config.yaml", CONFIG.to_string()), ("README.md", "test".into())];
    if let Some(a) = &o.actions_yaml {
        files.push(("actions.yaml", a.clone()));
    } else if o.actions {
        files.push(("actions.yaml", "get-info:\n  description: info\n".into()));
    }
    for (name, body) in files {
        zip.start_file(name, opts).expect("zip");
        zip.write_all(body.as_bytes()).expect("zip");
    }
    zip.start_file("dispatch", SimpleFileOptions::default().unix_permissions(0o755)).expect("zip");
    zip.write_all(dispatch_script(o).as_bytes()).expect("zip");
    for hook in [
        "install",
        "start",
        "config-changed",
        "upgrade-charm",
        "leader-elected",
        "leader-settings-changed",
        "stop",
        "remove",
    ] {
        zip.add_symlink(format!("hooks/{hook}"), "../dispatch", SimpleFileOptions::default()).expect("zip");
    }
    zip.finish().expect("zip");
    path
}
