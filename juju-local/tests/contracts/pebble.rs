//! The Pebble stand-in (`juju-local pebble run`), driven over its unix socket as a charm drives Pebble. Each
//! test starts its own daemon in a throw-away directory ([`Daemon`]; its Drop stops the daemon and kills every
//! process a test service recorded), bounds every wait, and pins one of canonical/pebble's rules, cited in its
//! doc comment. Needs neither root nor a network: only unix sockets and `/bin/sh`.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::BIN;

/// A running `juju-local pebble run`, stopped (and every service it recorded killed) on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

/// A test's directory: `<tmp>/jl-pebble-<name>-<pid>`, with `state/` as `$PEBBLE`.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jl-pebble-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).expect("create the test dir");
    dir
}

impl Daemon {
    /// Starts the daemon on `<dir>/pebble.socket` with `<dir>/state` as its directory.
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let socket = dir.join("pebble.socket");
        let mut cmd = Command::new(BIN);
        cmd.args(["pebble", "run", "--socket"]).arg(&socket).arg("--state-dir").arg(dir.join("state"));
        // Its log goes to <dir>/pebble.log, shown if the test fails.
        let log = std::fs::File::create(dir.join("pebble.log")).expect("create the daemon's log");
        cmd.args(extra).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().expect("start juju-local pebble run");
        let d = Daemon { child, dir: dir.to_path_buf(), socket };
        let up = until(Duration::from_secs(10), || UnixStream::connect(&d.socket).is_ok());
        assert!(up, "the Pebble stand-in did not listen on {} within 10 s", d.socket.display());
        d
    }

    /// One request; the HTTP status and the JSON envelope.
    fn request(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        let mut stream = UnixStream::connect(&self.socket).expect("connect to the socket");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read the response");
        let text = String::from_utf8_lossy(&response).into_owned();
        let status: u16 = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status line");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, "application/json", b"")
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request("POST", path, "application/json", body.to_string().as_bytes())
    }

    /// `POST /v1/layers`, as the charm's client sends it.
    fn add_layer(&self, label: &str, yaml: &str, combine: bool) -> (u16, Value) {
        self.post(
            "/v1/layers",
            json!({"action": "add", "combine": combine, "label": label, "format": "yaml", "layer": yaml}),
        )
    }

    /// `POST /v1/services`; the change id of the async answer.
    fn services(&self, action: &str, services: &[&str]) -> String {
        let (status, env) = self.post("/v1/services", json!({"action": action, "services": services}));
        assert_eq!((status, env["type"].as_str()), (202, Some("async")), "{action}: {env}");
        env["change"].as_str().expect("a change id").to_string()
    }

    /// Waits (at most 20 s) for a change; its result.
    fn wait(&self, change: &str) -> Value {
        let (status, env) = self.get(&format!("/v1/changes/{change}/wait?timeout=20s"));
        assert_eq!(status, 200, "wait for change {change}: {env}");
        env["result"].clone()
    }

    fn plan(&self) -> String {
        let (status, env) = self.get("/v1/plan?format=yaml");
        assert_eq!(status, 200, "{env}");
        env["result"].as_str().expect("the plan is a string").to_string()
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill has no memory-safety preconditions; our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() && self.terminate(Duration::from_secs(15)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Whatever a test service recorded, in case the daemon could not stop it: its process group.
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "pid")
                && let Some(pid) = read_pid(&entry.path())
                && alive(pid)
            {
                // SAFETY: kill has no memory-safety preconditions; the group a test service leads.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default();
            eprintln!("--- the Pebble stand-in's log ---\n{log}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` every 20 ms until it holds or `timeout` passes.
fn until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A process that exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// A service command recording its PID in `<dir>/<name>.pid`, then sleeping (the same process: `exec`).
fn sleeper(dir: &Path, name: &str) -> String {
    format!(r#"/bin/sh -c "echo \$\$ > {}/{name}.pid; exec sleep 300""#, dir.display())
}

/// Waits (at most 10 s) for a PID file to name a live process other than `not`; that PID.
fn pid_of(dir: &Path, name: &str, not: Option<i32>) -> i32 {
    let path = dir.join(format!("{name}.pid"));
    let mut found = None;
    let ok = until(Duration::from_secs(10), || {
        found = read_pid(&path).filter(|&p| Some(p) != not && alive(p));
        found.is_some()
    });
    assert!(ok, "no live {name} (other than {not:?}) within 10 s");
    found.expect("found")
}

fn service_status(d: &Daemon, name: &str) -> String {
    let (_, env) = d.get(&format!("/v1/services?names={name}"));
    env["result"][0]["current"].as_str().unwrap_or_default().to_string()
}

/// `internals/plan/plan.go` `CombineLayers` and `Service.Merge` (via `planstate.CombineLayer`): combining a layer
/// into the one with its label, `override: merge` keeps the fields not set, appends `after`, merges
/// `environment` key by key; `override: replace` drops everything the new definition does not set. The plan
/// reads as `yaml.Marshal(plan)` (`api_plan.go` `v1GetPlan`).
#[test]
fn layer_combine_merges_or_replaces_per_override() {
    let dir = test_dir("combine");
    let d = Daemon::start(&dir, &["--hold"]);
    let base = "services:\n  redis:\n    override: replace\n    command: redis-server --port 6379\n    startup: enabled\n    after: [a]\n    environment: {A: '1', B: '2'}\n  a:\n    override: replace\n    command: sleep 1\n  b:\n    override: replace\n    command: sleep 2\n";
    assert_eq!(d.add_layer("redis", base, false).0, 200);
    let merge = "services:\n  redis:\n    override: merge\n    after: [b]\n    environment: {B: '3'}\n";
    let (status, env) = d.add_layer("redis", merge, true);
    assert_eq!((status, &env["result"]), (200, &json!(true)), "{env}");
    assert_eq!(
        d.plan(),
        "services:\n    a:\n        override: replace\n        command: sleep 1\n    b:\n        override: replace\n        command: sleep 2\n    redis:\n        startup: enabled\n        override: replace\n        command: redis-server --port 6379\n        after:\n            - a\n            - b\n        environment:\n            A: \"1\"\n            B: \"3\"\n"
    );
    let replace = "services:\n  redis:\n    override: replace\n    command: redis-server --port 6380\n";
    assert_eq!(d.add_layer("redis", replace, true).0, 200);
    let plan = d.plan();
    assert!(
        plan.contains("    redis:\n        override: replace\n        command: redis-server --port 6380\n"),
        "{plan}"
    );
    assert!(!plan.contains("environment") && !plan.contains("startup"), "replace kept old fields: {plan}");
}

/// `internals/plan/plan.go` `CombineLayers`: a service without `override` is a `FormatError`
/// (`layer "L" must define "override" for service "S"`), answered 400 by `api_plan.go` `v1PostLayers`; an
/// unknown `override` value and an existing label without `combine` (`planstate.LabelExists`) are refused too.
#[test]
fn layer_service_without_override_is_refused() {
    let dir = test_dir("override");
    let d = Daemon::start(&dir, &["--hold"]);
    let (status, env) = d.add_layer("base", "services:\n  redis:\n    command: redis-server\n", false);
    assert_eq!(status, 400, "{env}");
    assert_eq!(env["type"], "error");
    assert_eq!(env["status-code"], 400);
    assert_eq!(env["result"]["message"], r#"layer "base" must define "override" for service "redis""#);
    let (status, env) = d.add_layer("base", "services:\n  redis:\n    override: update\n    command: x\n", false);
    assert_eq!(status, 400);
    assert_eq!(env["result"]["message"], r#"layer "base" has invalid "override" value for service "redis""#);
    assert_eq!(d.plan(), "{}\n", "a refused layer must leave the plan alone");
    assert_eq!(d.add_layer("base", "services:\n  r:\n    override: replace\n    command: x\n", false).0, 200);
    let (status, env) = d.add_layer("base", "services:\n  r:\n    override: merge\n    command: y\n", false);
    assert_eq!((status, env["result"]["message"].as_str()), (400, Some(r#"layer "base" already exists"#)));
    let (status, env) = d.add_layer("other", "services:\n  r:\n    override: merge\n    comand: y\n", false);
    assert_eq!(status, 400);
    assert!(env["result"]["message"].as_str().unwrap().starts_with("cannot parse layer YAML: "), "{env}");
}

/// `internals/cli/cmd_run.go` (`--hold`: "Do not start default services automatically") and
/// `internals/overlord/servstate/manager.go` `Replan`: with `--hold` a `startup: enabled` service from
/// `$PEBBLE/layers` stays inactive until a replan starts it; without it, `pebble run` autostarts it.
#[test]
fn hold_starts_nothing_until_replan() {
    let dir = test_dir("hold");
    let layer = |dir: &Path| {
        let yaml = format!(
            "services:\n  svc:\n    override: replace\n    startup: enabled\n    command: '{}'\n",
            sleeper(dir, "svc")
        );
        std::fs::create_dir_all(dir.join("state/layers")).unwrap();
        std::fs::write(dir.join("state/layers/001-base.yaml"), yaml).unwrap();
    };
    layer(&dir);
    let d = Daemon::start(&dir, &["--hold"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!dir.join("svc.pid").exists(), "--hold started a service");
    assert_eq!(service_status(&d, "svc"), "inactive");
    let change = d.services("replan", &[]);
    let result = d.wait(&change);
    assert_eq!(result["status"], "Done", "{result}");
    assert_eq!(result["kind"], "replan");
    let pid = pid_of(&dir, "svc", None);
    assert_eq!(service_status(&d, "svc"), "active");
    drop(d);
    assert!(!alive(pid), "the daemon's SIGTERM left the service running");

    let dir = test_dir("nohold");
    layer(&dir);
    let d = Daemon::start(&dir, &[]);
    pid_of(&dir, "svc", None);
    assert!(until(Duration::from_secs(5), || service_status(&d, "svc") == "active"));
}

/// `internals/overlord/servstate/manager.go` `Replan` (with `api_services.go` `v1PostServices`): a replan
/// stops and starts again only the services whose definition changed (`Service.Equal`: a changed
/// `environment`, a changed `command`), leaves the others running, and starts the `startup: enabled` ones.
#[test]
fn replan_restarts_only_changed_services() {
    let dir = test_dir("replan");
    let d = Daemon::start(&dir, &["--hold"]);
    let layer = format!(
        "services:\n  a:\n    override: replace\n    startup: enabled\n    command: '{}'\n  b:\n    override: replace\n    startup: enabled\n    command: '{}'\n",
        sleeper(&dir, "a"),
        sleeper(&dir, "b")
    );
    assert_eq!(d.add_layer("base", &layer, false).0, 200);
    assert_eq!(d.wait(&d.services("replan", &[]))["status"], "Done");
    let (a1, b1) = (pid_of(&dir, "a", None), pid_of(&dir, "b", None));

    // A replan with nothing changed starts nothing again.
    assert_eq!(d.wait(&d.services("replan", &[]))["status"], "Done");
    assert!(alive(a1) && alive(b1));
    assert_eq!((read_pid(&dir.join("a.pid")), read_pid(&dir.join("b.pid"))), (Some(a1), Some(b1)));

    // a's environment changes: only a restarts.
    let env = "services:\n  a:\n    override: merge\n    environment: {LEVEL: '2'}\n";
    assert_eq!(d.add_layer("base", env, true).0, 200);
    let change = d.wait(&d.services("replan", &[]));
    assert_eq!(change["status"], "Done", "{change}");
    let a2 = pid_of(&dir, "a", Some(a1));
    assert!(!alive(a1), "a's old process still runs");
    assert!(alive(b1), "b was restarted although it did not change");
    assert_eq!(read_pid(&dir.join("b.pid")), Some(b1));
    let environ = std::fs::read(format!("/proc/{a2}/environ")).unwrap();
    assert!(environ.split(|&b| b == 0).any(|v| v == b"LEVEL=2"), "a's new process lacks LEVEL=2");

    // b's command changes: only b restarts.
    let cmd = format!("services:\n  b:\n    override: merge\n    command: '{} # v2'\n", sleeper(&dir, "b"));
    assert_eq!(d.add_layer("base", &cmd, true).0, 200);
    assert_eq!(d.wait(&d.services("replan", &[]))["status"], "Done");
    pid_of(&dir, "b", Some(b1));
    assert!(!alive(b1));
    assert!(alive(a2), "a was restarted although it did not change");
}

/// `internals/daemon/api_services.go` `v1PostServices` (`restart`: stop tasks, then start tasks waiting for
/// them) and `servstate/handlers.go` `doStop`/`doStart`: the service runs again as a new process.
#[test]
fn restart_gives_a_new_process() {
    let dir = test_dir("restart");
    let d = Daemon::start(&dir, &["--hold"]);
    let layer = format!("services:\n  s:\n    override: replace\n    command: '{}'\n", sleeper(&dir, "s"));
    assert_eq!(d.add_layer("base", &layer, false).0, 200);
    assert_eq!(d.wait(&d.services("start", &["s"]))["status"], "Done");
    let first = pid_of(&dir, "s", None);
    let result = d.wait(&d.services("restart", &["s"]));
    assert_eq!(result["status"], "Done", "{result}");
    assert_eq!(result["summary"], r#"Restart service "s""#);
    let kinds: Vec<&str> = result["tasks"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["stop", "start"]);
    pid_of(&dir, "s", Some(first));
    assert!(!alive(first));
    let (status, env) = d.post("/v1/services", json!({"action": "restart", "services": []}));
    assert_eq!((status, env["result"]["message"].as_str()), (400, Some("must specify services for restart action")));
    let (status, env) = d.post("/v1/services", json!({"action": "restart", "services": ["nope"]}));
    let message = env["result"]["message"].as_str();
    assert_eq!((status, message), (400, Some(r#"cannot restart services: service "nope" does not exist"#)));
    let (status, env) = d.post("/v1/services", json!({"action": "replan", "services": ["s"]}));
    assert_eq!((status, env["result"]["message"].as_str()), (400, Some("replan accepts no service names")));
}

/// `internals/overlord/servstate/handlers.go` `okayDelay` (1 s), `doStart` and `exited`: a process that
/// exits before the okay delay fails its start task, so the change ends in Error with
/// `service start attempt: exited quickly with code N, will restart` (`state/change.go` `Change.Err`).
#[test]
fn a_service_exiting_within_a_second_fails_the_change() {
    let dir = test_dir("quick");
    let d = Daemon::start(&dir, &["--hold"]);
    let layer = "services:\n  quick:\n    override: replace\n    command: /bin/sh -c 'echo bye; exit 3'\n    on-failure: ignore\n  flaky:\n    override: replace\n    command: /bin/sh -c 'exit 4'\n";
    assert_eq!(d.add_layer("base", layer, false).0, 200);
    let result = d.wait(&d.services("start", &["quick"]));
    assert_eq!(result["status"], "Error", "{result}");
    assert_eq!(
        result["err"],
        "cannot perform the following tasks:\n- Start service \"quick\" (service start attempt: exited quickly with code 3, will ignore)"
    );
    let log = result["tasks"][0]["log"].to_string();
    assert!(log.contains("Most recent service output:") && log.contains("bye"), "{log}");
    assert_eq!(service_status(&d, "quick"), "error");

    let result = d.wait(&d.services("start", &["flaky"]));
    assert_eq!(result["status"], "Error");
    assert!(
        result["err"].as_str().unwrap().ends_with("(service start attempt: exited quickly with code 4, will restart)")
    );
    // on-failure defaults to restart: it backs off rather than staying down.
    assert!(until(Duration::from_secs(5), || service_status(&d, "flaky") == "backoff"));
    assert_eq!(d.wait(&d.services("stop", &["flaky"]))["status"], "Done");
}

/// `internals/overlord/checkstate/handlers.go` `doPerformCheck` (a failure per period; at `threshold` in a
/// row the perform-check change errors and the failure handlers run), `manager.go` `updateCheckData`
/// (`down` at the threshold), and `servstate/handlers.go` `checkFailed` (`on-check-failure: restart` sends
/// SIGTERM and restarts the service after its backoff).
#[test]
fn a_check_failing_threshold_times_restarts_its_service() {
    let dir = test_dir("check");
    let d = Daemon::start(&dir, &["--hold"]);
    let healthy = dir.join("healthy");
    std::fs::write(&healthy, "").unwrap();
    let layer = format!(
        "services:\n  s:\n    override: replace\n    startup: enabled\n    command: '{}'\n    on-check-failure:\n      alive: restart\nchecks:\n  alive:\n    override: replace\n    period: 200ms\n    threshold: 2\n    exec:\n      command: test -e {}\n",
        sleeper(&dir, "s"),
        healthy.display()
    );
    assert_eq!(d.add_layer("base", &layer, false).0, 200);
    assert_eq!(d.wait(&d.services("replan", &[]))["status"], "Done");
    let first = pid_of(&dir, "s", None);
    let (_, env) = d.get("/v1/checks");
    assert_eq!(env["result"][0]["name"], "alive");
    assert_eq!(env["result"][0]["status"], "up", "{env}");
    assert_eq!(env["result"][0]["threshold"], 2);

    std::fs::remove_file(&healthy).unwrap();
    let down = until(Duration::from_secs(5), || d.get("/v1/checks").1["result"][0]["status"] == "down");
    assert!(down, "the check did not go down: {}", d.get("/v1/checks").1);
    let (_, env) = d.get("/v1/checks");
    assert!(env["result"][0]["failures"].as_u64().unwrap() >= 2, "{env}");
    let second = pid_of(&dir, "s", Some(first));
    assert!(!alive(first), "the failing check left the old process running");
    assert!(alive(second));
    // The perform-check change ended in Error; a recover-check change is running.
    let (_, env) = d.get("/v1/changes?select=all");
    let kinds: Vec<(String, String)> = env["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect();
    assert!(kinds.contains(&("perform-check".into(), "Error".into())), "{kinds:?}");
    assert!(kinds.contains(&("recover-check".into(), "Doing".into())), "{kinds:?}");
}

/// `internals/daemon/api_files.go` `writeFiles`/`writeFile`/`parsePermissions`: a pushed file gets the
/// permissions asked (0600), `make-dirs` creates its parents (0755); without `make-dirs` a missing parent is a
/// per-file `not-found` error; permissions must be a 3-digit octal string.
#[test]
fn a_pushed_file_gets_its_permissions_and_parent_dirs() {
    let dir = test_dir("files");
    let d = Daemon::start(&dir, &["--hold"]);
    let push = |path: &Path, perms: &str, make_dirs: bool, content: &[u8]| -> (u16, Value) {
        let boundary = "0123456789abcdef0123456789abcdef-test";
        let meta = json!({"action": "write", "files": [{"path": path, "make-dirs": make_dirs, "permissions": perms}]});
        let mut body = format!(
            "--{boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{}\"\r\n\r\n",
            path.display()
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        d.request("POST", "/v1/files", &format!("multipart/form-data; boundary={boundary}"), &body)
    };
    let target = dir.join("etc/redis/secret.conf");
    let (status, env) = push(&target, "600", true, b"requirepass s3cret\n");
    assert_eq!(status, 200, "{env}");
    assert_eq!(env["result"], json!([{"path": target}]));
    assert_eq!(std::fs::read(&target).unwrap(), b"requirepass s3cret\n");
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777, 0o600);
    assert_eq!(std::fs::metadata(dir.join("etc/redis")).unwrap().permissions().mode() & 0o7777, 0o755);

    let (status, env) = push(&dir.join("missing/x.conf"), "644", false, b"x");
    assert_eq!(status, 200, "per-file errors are in the result, not the envelope: {env}");
    assert_eq!(env["result"][0]["error"]["kind"], "not-found", "{env}");
    let (_, env) = push(&dir.join("y.conf"), "6000", false, b"y");
    assert_eq!(env["result"][0]["error"]["message"], r#"permissions must be a 3-digit octal string, got "6000""#);
    let (_, env) = push(Path::new("relative.conf"), "644", false, b"z");
    assert_eq!(env["result"][0]["error"]["message"], r#"paths must be absolute, got "relative.conf""#);
}

/// `internals/daemon/api_changes.go` `v1GetChangeWait`: with a timeout the wait answers 504
/// `timed out waiting for change after …` while the change runs (a start takes the 1 s okay delay), then the
/// change once ready; an unknown change is 404 `cannot find change with id "…"`.
#[test]
fn change_wait_times_out_then_answers_when_ready() {
    let dir = test_dir("wait");
    let d = Daemon::start(&dir, &["--hold"]);
    let layer = format!("services:\n  s:\n    override: replace\n    command: '{}'\n", sleeper(&dir, "s"));
    assert_eq!(d.add_layer("base", &layer, false).0, 200);
    let change = d.services("start", &["s"]);
    let (status, env) = d.get(&format!("/v1/changes/{change}/wait?timeout=100ms"));
    assert_eq!(status, 504, "{env}");
    assert_eq!(env["result"]["message"], "timed out waiting for change after 100ms");
    let started = Instant::now();
    let result = d.wait(&change);
    assert_eq!((result["status"].as_str(), result["ready"].as_bool()), (Some("Done"), Some(true)), "{result}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (status, env) = d.get("/v1/changes/999/wait?timeout=1s");
    assert_eq!((status, env["result"]["message"].as_str()), (404, Some(r#"cannot find change with id "999""#)));
    let (status, _) = d.get(&format!("/v1/changes/{change}/wait?timeout=soon"));
    assert_eq!(status, 400);
}

/// `internals/cli/cmd_run.go` (SIGTERM ends `pebble run`) and `internals/daemon/daemon.go` `Daemon.Stop`
/// (`servstate.StopRunning`: SIGTERM to each service, SIGKILL after its `kill-delay`): the daemon exits 0
/// with none of its services left, including one that ignores SIGTERM.
#[test]
fn sigterm_stops_the_services_then_the_daemon() {
    let dir = test_dir("sigterm");
    let mut d = Daemon::start(&dir, &["--hold"]);
    let stubborn = format!(
        r#"/bin/sh -c "trap '' TERM; echo \$\$ > {}/stubborn.pid; while true; do sleep 0.1; done""#,
        dir.display()
    );
    let layer = format!(
        "services:\n  s:\n    override: replace\n    startup: enabled\n    command: '{}'\n  stubborn:\n    override: replace\n    startup: enabled\n    kill-delay: 1s\n    command: {}\n",
        sleeper(&dir, "s"),
        serde_json::to_string(&stubborn).unwrap()
    );
    let (status, env) = d.add_layer("base", &layer, false);
    assert_eq!(status, 200, "{env}");
    assert_eq!(d.wait(&d.services("replan", &[]))["status"], "Done");
    let (s, stubborn) = (pid_of(&dir, "s", None), pid_of(&dir, "stubborn", None));
    let status = d.terminate(Duration::from_secs(15)).expect("the daemon did not exit within 15 s of SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(!alive(s), "SIGTERM to the daemon left a service running");
    assert!(!alive(stubborn), "a service ignoring SIGTERM was not killed after its kill-delay");
    assert!(!d.socket.exists(), "the socket was left behind");
}

/// `internals/overlord/servstate/handlers.go` `exited` (`on-failure: shutdown` after a failure asks for a
/// `RestartServiceFailure`) and `internals/cli/cmd_run.go` (that shutdown exits with status 10): once the
/// service has started (past the okay delay) and then fails, the daemon stops the other services and exits 10.
#[test]
fn on_failure_shutdown_stops_the_daemon_with_status_10() {
    let dir = test_dir("shutdown");
    let mut d = Daemon::start(&dir, &["--hold"]);
    let layer = format!(
        "services:\n  s:\n    override: replace\n    startup: enabled\n    command: '{}'\n  dies:\n    override: replace\n    startup: enabled\n    on-failure: shutdown\n    command: /bin/sh -c 'sleep 1.5; exit 1'\n",
        sleeper(&dir, "s")
    );
    assert_eq!(d.add_layer("base", &layer, false).0, 200);
    assert_eq!(d.wait(&d.services("replan", &[]))["status"], "Done");
    let s = pid_of(&dir, "s", None);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Ok(Some(status)) = d.child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the daemon did not shut down within 15 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(10));
    assert!(!alive(s), "the shutdown left a service running");
}
