//! The built `redis-k8s.charm` on the local agent (`juju-local`), exactly as an operator drives Juju:
//! deploy, config, relate, attach-resource, scale, remove; and a real redis-server answering where the
//! charm said. Needs root (network namespaces), `redis-server` and `bwrap` (`make setup`), the charm
//! (`make charm`, or `REDIS_K8S_CHARM`) and the juju-local binary (`cargo build -p juju-local`, or
//! `JUJU_LOCAL_BIN`). Every test uses its own model directory and destroys it, processes and
//! namespaces included, even when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use redis_k8s::redis::resp;
use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn charm() -> PathBuf {
    let p = std::env::var_os("REDIS_K8S_CHARM")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join("redis-k8s.charm"));
    assert!(p.is_file(), "{} is missing: build it with `make charm`", p.display());
    p
}

fn juju_local() -> PathBuf {
    if let Some(p) = std::env::var_os("JUJU_LOCAL_BIN") {
        return PathBuf::from(p);
    }
    for profile in ["debug", "release"] {
        let p = Path::new(REPO).join("target").join(profile).join("juju-local");
        if p.is_file() {
            return p;
        }
    }
    panic!("juju-local is not built: run `cargo build -p juju-local` (make test does)");
}

struct Model {
    dir: PathBuf,
}

static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Model {
    fn new(tag: &str) -> Model {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("redis-k8s-e2e-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Model { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(juju_local()).arg("--model-dir").arg(&self.dir).args(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "juju-local {args:?} failed:\n{}\n{}\n--- status ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&self.run(&["status"]).stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--format", "json"])).unwrap()
    }

    fn wait_active(&self, app: &str) {
        self.ok(&["wait", app, "--timeout", "30"]);
    }

    fn address(&self, unit: &str) -> String {
        self.ok(&["address", unit]).trim().to_string()
    }

    fn action(&self, unit: &str, action: &str) -> serde_yaml::Value {
        let out = self.ok(&["run-action", unit, action]);
        let doc: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        let tag = format!("unit-{}", unit.replace('/', "-"));
        doc[tag.as_str()].clone()
    }

    fn password(&self, unit: &str) -> String {
        let r = self.action(unit, "get-password");
        r["results"]["password"].as_str().unwrap_or_else(|| panic!("get-password gave {r:?}")).to_string()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.run(&["destroy"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PING at addr with the password; bounded retries while a pod (re)starts.
fn ping_eventually(addr: &str, password: Option<&str>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match resp::ping(addr, password, Duration::from_secs(1)) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(format!("{e:#}")),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn unit_status(status: &Value, app: &str, unit: &str) -> (String, String) {
    let u = &status["applications"][app]["units"][unit]["workload-status"];
    (u["current"].as_str().unwrap_or_default().to_string(), u["message"].as_str().unwrap_or_default().to_string())
}

#[test]
fn deploy_config_port_and_status_on_a_real_redis() {
    let m = Model::new("port");
    let charm = charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.wait_active("redis-k8s");
    let addr = m.address("redis-k8s/0");
    let pw = m.password("redis-k8s/0");
    assert_eq!(pw.len(), 32);
    ping_eventually(&format!("{addr}:6379"), Some(&pw)).unwrap();
    // Auth is on: an unauthenticated client is refused.
    let err = resp::query(&format!("{addr}:6379"), None, &["GET", "k"], Duration::from_secs(2))
        .and_then(|r| r.into_result())
        .unwrap_err();
    assert!(format!("{err:#}").contains("NOAUTH"), "{err:#}");

    m.ok(&["config", "redis-k8s", "port=7000"]);
    m.wait_active("redis-k8s");
    ping_eventually(&format!("{addr}:7000"), Some(&pw)).unwrap();
    assert!(
        resp::ping(&format!("{addr}:6379"), Some(&pw), Duration::from_secs(1)).is_err(),
        "nothing on 6379 any more"
    );
    let st = m.status();
    assert_eq!(unit_status(&st, "redis-k8s", "redis-k8s/0"), ("active".into(), "listening on port 7000".into()));

    // A bad port: blocked, naming it; the old Redis keeps answering.
    m.ok(&["config", "redis-k8s", "port=70000"]);
    let st = m.status();
    assert_eq!(
        unit_status(&st, "redis-k8s", "redis-k8s/0"),
        ("blocked".into(), "invalid config: port must be 1-65535, got 70000".into())
    );
    ping_eventually(&format!("{addr}:7000"), Some(&pw)).unwrap();

    // Not an int: refused by the "controller", nothing stored, no hook.
    let out = m.run(&["config", "redis-k8s", "port=abc"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"ERROR option "port" expected int, got "abc""#));
    assert_eq!(m.ok(&["config", "redis-k8s", "port"]).trim(), "70000");

    m.ok(&["config", "redis-k8s", "--reset", "port"]);
    m.wait_active("redis-k8s");
    ping_eventually(&format!("{addr}:6379"), Some(&pw)).unwrap();

    // check-service, run in the workload pod like Juju runs actions.
    let r = m.action("redis-k8s/0", "check-service");
    assert_eq!(r["results"]["role"].as_str(), Some("primary"), "{r:?}");
}

#[test]
fn relate_gives_the_client_host_port_and_password_and_remove_leaves_nothing() {
    let m = Model::new("relate");
    let charm = charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.wait_active("redis-k8s");
    let out = m.ok(&["relate", "redis-k8s:db", "client"]);
    let pw = m.password("redis-k8s/0");
    assert!(out.contains("port") && out.contains("6379"), "{out}");
    assert!(out.contains(&pw) || out.contains(&format!("\"{pw}\"")), "the client sees the password:\n{out}");

    // attach-resource: upgrade-charm then config-changed; the spec is re-sent with the new image.
    m.ok(&["attach-resource", "redis-k8s", "redis-image=registry.example.com/library/redis:7.2.4"]);
    m.wait_active("redis-k8s");
    let st = m.status();
    assert_eq!(st["applications"]["redis-k8s"]["version"].as_str(), Some("7.2.4"), "{st}");

    let pods_before: Vec<u32> = pids_of(&m.dir);
    assert!(!pods_before.is_empty(), "the pod runs a process");
    m.ok(&["remove", "redis-k8s"]);
    for pid in pods_before {
        assert!(!Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid), "pid {pid} survived remove");
    }
}

/// Pids juju-local recorded for the model's containers.
fn pids_of(model_dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(text) = std::fs::read_to_string(model_dir.join("model.json")) else { return out };
    fn walk(v: &Value, out: &mut Vec<u32>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "pid" {
                        if let Some(p) = v.as_u64() {
                            out.push(p as u32);
                        }
                    } else {
                        walk(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        walk(&v, &mut out);
    }
    out
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

/// The pid of the redis-server (not the Sentinel) running in a unit's pod: the processes of the pod's
/// network namespace (`ip netns pids`) that is redis-server and not its Sentinel.
fn redis_server_pid(model_dir: &Path, app: &str, n: u32) -> Option<u32> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(model_dir.join("model.json")).ok()?).ok()?;
    let netns = v["apps"][app]["units"][n.to_string()]["pod"]["netns"].as_str()?.to_string();
    let out = Command::new("ip").args(["netns", "pids", &netns]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse::<u32>().ok()).find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            // redis-server rewrites its title: `redis-server 0.0.0.0:6379` vs `… [sentinel]`.
            c.starts_with("redis-server") && !c.contains("sentinel")
        })
    })
}

fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn relation_view(m: &Model, rid: &str) -> Value {
    let text = m.ok(&["show-relation", rid]);
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap()
}

/// Three units: pod 0 is the primary; kill its redis-server and Sentinel promotes a replica, the relation
/// names the new primary on every unit (both client families), and the data written before is there.
#[test]
fn three_units_fail_over_and_the_relation_follows_the_primary() {
    let m = Model::new("ha");
    let charm = charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "3"]);
    m.wait_active("redis-k8s");
    let addrs: Vec<String> = (0..3).map(|i| m.address(&format!("redis-k8s/{i}"))).collect();
    let pw = m.password("redis-k8s/0");
    let out = m.ok(&["relate", "redis-k8s:db", "client"]);
    let rid = {
        let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        format!("db:{}", v["relation-id"].as_u64().unwrap())
    };
    let view = relation_view(&m, &rid);
    let uses = &view["views"]["reactive-interface-redis"]["uses"];
    assert_eq!(uses["host"], "redis-k8s-0.redis-k8s-endpoints", "{view}");
    assert_eq!(uses["password"], Value::String(pw.clone()));
    assert_eq!(
        view["views"]["ops-redis-k8s-library"]["urls"],
        serde_json::json!(["redis://redis-k8s-0.redis-k8s-endpoints:6379"])
    );

    // Write through the primary; the replicas have it once they synced.
    let primary = format!("{}:6379", addrs[0]);
    for i in 0..20 {
        resp::query(&primary, Some(&pw), &["SET", &format!("k{i}"), &format!("v{i}")], Duration::from_secs(2))
            .and_then(|r| r.into_result())
            .unwrap();
    }
    for a in &addrs[1..] {
        until("the replica to sync", 40, || {
            let r = resp::query(&format!("{a}:6379"), Some(&pw), &["GET", "k19"], Duration::from_secs(1)).ok()?;
            (r.as_str() == Some("v19")).then_some(())
        });
    }

    // Kill the primary's redis-server. No juju-local command until Sentinel has failed over (each
    // command reconciles pods, which would restart it at once).
    let pid = redis_server_pid(&m.dir, "redis-k8s", 0).expect("pod 0's redis-server");
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    let sentinels: Vec<String> = addrs[1..].iter().map(|a| format!("{a}:26379")).collect();
    let new_primary = until("Sentinel to promote a replica", 60, || {
        let (host, _) = resp::sentinel_primary(&sentinels, "redis-k8s", Some(&pw), Duration::from_secs(1))?;
        (!host.starts_with("redis-k8s-0.")).then_some(host)
    });
    let n: usize = new_primary.split('.').next().unwrap().rsplit('-').next().unwrap().parse().unwrap();

    // The leader checks Sentinel in update-status and tells its peers; every unit republishes.
    m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
    let view = relation_view(&m, &rid);
    assert_eq!(view["views"]["reactive-interface-redis"]["uses"]["host"], Value::String(new_primary.clone()), "{view}");
    for (unit, bag) in view["unit-data"].as_object().unwrap() {
        assert_eq!(bag["hostname"], Value::String(new_primary.clone()), "{unit} still names the old primary");
    }
    assert_eq!(view["application-data"]["leader-host"], Value::String(new_primary.clone()));
    assert_eq!(
        view["views"]["ops-redis-k8s-library"]["urls"],
        serde_json::json!([format!("redis://{new_primary}:6379")])
    );

    // The data written before the failover is on the new primary, which now takes writes.
    let np = format!("{}:6379", addrs[n]);
    let r = resp::query(&np, Some(&pw), &["GET", "k7"], Duration::from_secs(2)).unwrap();
    assert_eq!(r.as_str(), Some("v7"));
    resp::query(&np, Some(&pw), &["SET", "after", "failover"], Duration::from_secs(2))
        .and_then(|r| r.into_result())
        .unwrap();
}
