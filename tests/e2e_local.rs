//! The built `redis-k8s.charm` on the local agent (`juju-local`), exactly as an operator drives Juju:
//! deploy, config, relate, attach-resource, scale, remove; and a real redis-server answering where the
//! charm said. Needs root (network namespaces), `redis-server`, `bwrap` and `ip` (`make setup`), the charm
//! (`make charm`, or `REDIS_K8S_CHARM`) and the juju-local binary (`cargo build -p juju-local`, or
//! `JUJU_LOCAL_BIN`), so it is a test target of its own: on a machine lacking any of them every test fails
//! first with one line naming what is missing (`support::local::require_pods`). Every test uses its own
//! model directory and destroys it, processes and namespaces included, even when it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::local::{charm, juju_local, until};

use redis_k8s::redis::resp;
use serde_json::Value;

struct Model {
    dir: PathBuf,
    // Declared last, so it is released after Drop has destroyed the model.
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// The e2e tests run one at a time: each starts several redis-server and Sentinel processes in their own
/// network namespaces, and on a 2-core machine running them side by side turns Sentinel's 5 s failure
/// detection and the tests' bounded waits into races.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Model {
    /// Fails the test with one line first when the machine cannot run pods (`support::local::require_pods`).
    fn new(tag: &str) -> Model {
        support::local::require_pods("e2e_local");
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("redis-k8s-e2e-{tag}-{}-{n}", std::process::id()));
        let serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = std::fs::remove_dir_all(&dir);
        Model { dir, _serial: serial }
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
        support::local::action_result(&self.ok(&["run-action", unit, action]), unit)
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
    let err = resp::query(&format!("{addr}:6379"), None, &["GET", "k"], Duration::from_secs(5))
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

/// The sidecar archive (`REDIS_K8S_SIDECAR_CHARM`, else `<repo>/redis-k8s-sidecar.charm`) on juju-local's
/// Juju 3 sidecar mode: the hooks run in the unit pod's charm container and start Redis and Sentinel through
/// each workload container's Pebble; the password comes from the action (run in the charm container), Redis
/// answers on the pod address, a port change moves it, and the status says where it listens.
#[test]
fn sidecar_deploy_password_ping_and_port_change_on_a_real_redis() {
    let m = Model::new("sidecar");
    let charm = support::local::sidecar_charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "--juju-version", "3.6.0"]);
    m.wait_active("redis-k8s");
    let addr = m.address("redis-k8s/0");
    let r = support::local::action_result(&m.ok(&["run", "redis-k8s/0", "get-password"]), "redis-k8s/0");
    let pw = r["results"]["password"].as_str().unwrap_or_else(|| panic!("get-password gave {r:?}")).to_string();
    assert_eq!(pw.len(), 32);
    ping_eventually(&format!("{addr}:6379"), Some(&pw)).unwrap();

    m.ok(&["config", "redis-k8s", "port=7000"]);
    m.wait_active("redis-k8s");
    let st = m.status();
    assert_eq!(unit_status(&st, "redis-k8s", "redis-k8s/0"), ("active".into(), "listening on port 7000".into()));
    // Once the status says so, Redis must answer there (ping_eventually allows 20 s for a restart).
    ping_eventually(&format!("{addr}:7000"), Some(&pw)).unwrap();
    assert!(
        resp::ping(&format!("{addr}:6379"), Some(&pw), Duration::from_secs(1)).is_err(),
        "nothing on 6379 any more"
    );
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

/// Pids juju-local recorded for the model's containers (its kubelet's pod records).
fn pids_of(model_dir: &Path) -> Vec<u32> {
    support::local::container_pids(model_dir)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

/// The pid of the redis-server (not the Sentinel) running in a unit's pod: the processes of the pod's
/// network namespace (`ip netns pids`) that is redis-server and not its Sentinel.
fn redis_server_pid(model_dir: &Path, app: &str, n: u32) -> Option<u32> {
    let netns = support::local::pod_record(model_dir, app, n)["netns"].as_str()?.to_string();
    let out = Command::new("ip").args(["netns", "pids", &netns]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse::<u32>().ok()).find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            // redis-server rewrites its title: `redis-server 0.0.0.0:6379` vs `… [sentinel]`.
            c.starts_with("redis-server") && !c.contains("sentinel")
        })
    })
}

/// Waits until every Sentinel knows `units - 1` replicas and `units - 1` other Sentinels: before that, a
/// Sentinel that wins the failover election may not know any replica to promote (it learns them from the
/// primary's INFO every 10 s) and aborts with `-failover-abort-no-good-slave`, then waits 60 s.
fn wait_sentinels_settled(sentinels: &[String], pw: &str, units: usize) {
    until("every Sentinel to know every replica and every other Sentinel", 60, || {
        sentinels
            .iter()
            .all(|s| {
                let count = |cmd: &[&str]| match resp::query(s, Some(pw), cmd, Duration::from_secs(2)) {
                    Ok(resp::Resp::Array(items)) => items.len(),
                    _ => usize::MAX,
                };
                count(&["SENTINEL", "REPLICAS", "redis-k8s"]) == units - 1
                    && count(&["SENTINEL", "SENTINELS", "redis-k8s"]) == units - 1
            })
            .then_some(())
    });
}

/// A 3-unit deployment related to the stand-in client: the pod addresses, the password, the relation id.
struct Cluster {
    addrs: Vec<String>,
    pw: String,
    rid: String,
}

fn deploy_three_related(m: &Model) -> Cluster {
    let charm = charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "3"]);
    m.wait_active("redis-k8s");
    let addrs = (0..3).map(|i| m.address(&format!("redis-k8s/{i}"))).collect();
    let pw = m.password("redis-k8s/0");
    let out = m.ok(&["relate", "redis-k8s:db", "client"]);
    let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
    Cluster { addrs, pw, rid: format!("db:{}", v["relation-id"].as_u64().unwrap()) }
}

/// The name clients in any namespace resolve for a pod (juju-local's model is `local`, the cluster domain the
/// default one).
fn fqdn(short: &str) -> String {
    format!("{short}.local.svc.cluster.local")
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
    let Cluster { addrs, pw, rid } = deploy_three_related(&m);
    let view = relation_view(&m, &rid);
    let uses = &view["views"]["reactive-interface-redis"]["uses"];
    assert_eq!(uses["host"], Value::String(fqdn("redis-k8s-0.redis-k8s-endpoints")), "{view}");
    assert_eq!(uses["password"], Value::String(pw.clone()));
    assert_eq!(
        view["views"]["ops-redis-k8s-library"]["urls"],
        serde_json::json!([format!("redis://{}:6379", fqdn("redis-k8s-0.redis-k8s-endpoints"))])
    );

    // Write through the primary; the replicas have it once they synced.
    let primary = format!("{}:6379", addrs[0]);
    for i in 0..20 {
        resp::query(&primary, Some(&pw), &["SET", &format!("k{i}"), &format!("v{i}")], Duration::from_secs(5))
            .and_then(|r| r.into_result())
            .unwrap();
    }
    for a in &addrs[1..] {
        until("the replica to sync", 40, || {
            let r = resp::query(&format!("{a}:6379"), Some(&pw), &["GET", "k19"], Duration::from_secs(1)).ok()?;
            (r.as_str() == Some("v19")).then_some(())
        });
    }

    // Crash the primary's redis container twice: Kubernetes restarts a container at once the first time, then
    // backs off for 10 s, longer than Sentinel's 5 s down-after: Sentinel fails over.
    let all_sentinels: Vec<String> = addrs.iter().map(|a| format!("{a}:26379")).collect();
    wait_sentinels_settled(&all_sentinels, &pw, 3);
    crash_loop_redis(&m, 0, &addrs[0], &pw);
    let sentinels: Vec<String> = addrs[1..].iter().map(|a| format!("{a}:26379")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let new_primary = loop {
        if let Some((host, _)) = resp::sentinel_primary(&sentinels, "redis-k8s", Some(&pw), Duration::from_secs(1))
            && !host.starts_with("redis-k8s-0.")
        {
            break host;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = (0..3)
                .flat_map(|i| ["sentinel", "redis"].map(|c| (i, c)))
                .map(|(i, c)| {
                    let p = m.dir.join(format!("pods/redis-k8s-{i}/logs/{c}.log"));
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect();
                    format!("--- {} ---\n{}", p.display(), tail.join("\n"))
                })
                .collect();
            panic!("timed out after 60 s waiting for Sentinel to promote a replica\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let n: usize = new_primary.split('.').next().unwrap().rsplit('-').next().unwrap().parse().unwrap();

    // The leader checks Sentinel in update-status and tells its peers; every unit republishes.
    m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
    let view = relation_view(&m, &rid);
    // Clients get the name fully qualified, so that they resolve it from any namespace.
    let published = fqdn(&new_primary);
    assert_eq!(view["views"]["reactive-interface-redis"]["uses"]["host"], Value::String(published.clone()), "{view}");
    for (unit, bag) in view["unit-data"].as_object().unwrap() {
        assert_eq!(bag["hostname"], Value::String(published.clone()), "{unit} still names the old primary");
    }
    assert_eq!(view["application-data"]["leader-host"], Value::String(published.clone()));
    // A client that speaks Sentinel gets every Sentinel and the master name, and they agree.
    let bag = &view["unit-data"]["redis-k8s/1"];
    assert_eq!(bag["sentinel-master"], "redis-k8s");
    let listed: Vec<&str> = bag["sentinel-endpoints"].as_str().unwrap().split(',').collect();
    assert_eq!(listed.len(), 3, "{bag}");
    for (i, ep) in listed.iter().enumerate() {
        assert_eq!(*ep, format!("{}:26379", fqdn(&format!("redis-k8s-{i}.redis-k8s-endpoints"))));
    }
    let (via_sentinel, _) =
        resp::sentinel_primary(&sentinels, "redis-k8s", Some(&pw), Duration::from_secs(2)).expect("a Sentinel answers");
    assert_eq!(via_sentinel, new_primary);
    assert_eq!(
        view["views"]["ops-redis-k8s-library"]["urls"],
        serde_json::json!([format!("redis://{published}:6379")])
    );

    // The data written before the failover is on the new primary, which now takes writes.
    let np = format!("{}:6379", addrs[n]);
    let r = resp::query(&np, Some(&pw), &["GET", "k7"], Duration::from_secs(5)).unwrap();
    assert_eq!(r.as_str(), Some("v7"));
    resp::query(&np, Some(&pw), &["SET", "after", "failover"], Duration::from_secs(5))
        .and_then(|r| r.into_result())
        .unwrap();
}

/// Scale-down removes the highest-numbered pod. Make that pod the primary first, then scale 3 → 2: the
/// departing unit's hooks move the primary off it (a graceful Sentinel failover, so nothing written is
/// lost), and the relation names the new primary.
#[test]
fn scaling_down_never_leaves_the_primary_on_a_removed_pod() {
    let m = Model::new("scaledown");
    let Cluster { addrs, pw, rid } = deploy_three_related(&m);
    let q = |addr: &str, cmd: &[&str]| {
        resp::query(addr, Some(&pw), cmd, Duration::from_secs(5)).and_then(|r| r.into_result())
    };
    let sentinels: Vec<String> = addrs.iter().map(|a| format!("{a}:26379")).collect();
    for a in &addrs[1..] {
        until("replicas to sync", 40, || {
            let info = resp::info(&format!("{a}:6379"), Some(&pw), "replication", Duration::from_secs(1)).ok()?;
            (resp::info_field(&info, "master_link_status") == Some("up")).then_some(())
        });
    }
    wait_sentinels_settled(&sentinels, &pw, 3);
    // Pod 2 becomes the primary: pod 1 may not be promoted, then a failover.
    q(&format!("{}:6379", addrs[1]), &["CONFIG", "SET", "replica-priority", "0"]).unwrap();
    // Ask for the failover until pod 2 is the primary: a request can be refused while another election
    // runs (-INPROG) or abort if a Sentinel has not yet seen pod 2 as a healthy replica.
    let mut last_ask = Instant::now() - Duration::from_secs(60);
    until("pod 2 to be the primary", 120, || {
        if let Some((h, _)) = resp::sentinel_primary(&sentinels, "redis-k8s", Some(&pw), Duration::from_secs(1))
            && h.starts_with("redis-k8s-2.")
        {
            return Some(());
        }
        if last_ask.elapsed() > Duration::from_secs(12) {
            last_ask = Instant::now();
            let _ = sentinels.iter().find(|s| q(s, &["SENTINEL", "FAILOVER", "redis-k8s"]).is_ok());
        }
        None
    });
    q(&format!("{}:6379", addrs[1]), &["CONFIG", "SET", "replica-priority", "100"]).unwrap();
    until("pod 2 to take writes", 20, || q(&format!("{}:6379", addrs[2]), &["SET", "before-scale", "kept"]).ok());
    until("the write to reach a replica", 20, || {
        let r = resp::query(&format!("{}:6379", addrs[0]), Some(&pw), &["GET", "before-scale"], Duration::from_secs(1))
            .ok()?;
        (r.as_str() == Some("kept")).then_some(())
    });

    // A client that asks Sentinel writes all along.
    let pwc = pw.clone();
    let load = support::load::Load::start(
        "Sentinel client",
        "scaledown",
        50,
        support::day2::sentinel_route(&m.dir, "redis-k8s", 3, std::sync::Arc::new(move || Some(pwc.clone()))),
    );
    assert!(load.wait_for_progress(20, Duration::from_secs(20)));

    // Kubernetes stops pod 2 first (its start script hands the primary over); then the units' hooks run, and the
    // leader's redis-peers-relation-departed publishes the new primary: no update-status needed.
    m.ok(&["scale", "redis-k8s", "2"]);
    let remaining = &sentinels[..2];
    let (host, _) = until("a primary among the remaining pods", 60, || {
        resp::sentinel_primary(remaining, "redis-k8s", Some(&pw), Duration::from_secs(1))
            .filter(|(h, _)| !h.starts_with("redis-k8s-2."))
    });
    let n: usize = host.split('.').next().unwrap().rsplit('-').next().unwrap().parse().unwrap();
    assert!(n < 2, "the primary is on pod {n}");
    let view = relation_view(&m, &rid);
    assert_eq!(view["views"]["reactive-interface-redis"]["uses"]["host"], Value::String(fqdn(&host)), "{view}");
    let st = m.status();
    for (unit, u) in st["applications"]["redis-k8s"]["units"].as_object().unwrap() {
        assert_ne!(u["juju-status"]["current"], "error", "{unit} failed a hook: {st}");
    }
    let r = until("the new primary to answer", 30, || {
        resp::query(&format!("{}:6379", addrs[n]), Some(&pw), &["GET", "before-scale"], Duration::from_secs(1)).ok()
    });
    assert_eq!(r.as_str(), Some("kept"), "a write made before the scale-down survives it");
    assert!(load.wait_for_progress(50, Duration::from_secs(30)), "the client writes to the new primary");
    let report = load.finish();
    let lost = report.lost(|keys| support::load::mget(&format!("{}:6379", addrs[n]), Some(&pw), keys));
    assert!(lost.is_empty(), "{} acknowledged writes lost: {}\n{}", lost.len(), report.summary(), pod_logs(&m, 40));
    eprintln!("scale-down with the primary on the departing pod: {}", report.summary());
}

/// Every process command line on the machine now (the /proc view any process in a pod would have).
fn all_argv() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit())
                && let Ok(c) = std::fs::read(e.path().join("cmdline"))
            {
                out.push(String::from_utf8_lossy(&c).replace('\0', " "));
            }
        }
    }
    out
}

/// Files under `dir` (recursively) that contain `needle` and are readable by group or others.
fn world_readable_files_containing(dir: &Path, needle: &str) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file()
                && meta.permissions().mode() & 0o077 != 0
                && std::fs::read(e.path()).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
            {
                bad.push(format!("{} (mode {:o})", e.path().display(), meta.permissions().mode() & 0o777));
            }
        }
    }
    bad
}

/// A full local run (deploy 2 units, relate, config changes good and bad, image change with a registry
/// password, rotate-password, update-status): neither the Redis password nor the registry password
/// appears in a log line (juju-log, hook stdout/stderr), a status message, a process command line
/// sampled during the run, or a file readable by anyone but its owner. The one deliberate exception is
/// get-password's own action results.
#[test]
fn no_secret_in_logs_statuses_argv_or_open_files_across_a_full_run() {
    let m = Model::new("secrets");
    let charm = charm();
    let registry_pw = "registry-s3cret-PW-0123";
    let image = m.dir.with_extension("image.yaml");
    std::fs::write(&image, format!("registrypath: redis:7.0\nusername: robot\npassword: {registry_pw}\n")).unwrap();
    let mut argv_seen: Vec<String> = Vec::new();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", &format!("redis-image={}", image.display()), "-n", "2"]);
    m.wait_active("redis-k8s");
    argv_seen.extend(all_argv());
    m.ok(&["relate", "redis-k8s:db", "client"]);
    m.ok(&["config", "redis-k8s", "port=7001"]);
    argv_seen.extend(all_argv());
    let _ = m.run(&["config", "redis-k8s", "port=99999"]);
    m.ok(&["config", "redis-k8s", "--reset", "port"]);
    let rotated = m.action("redis-k8s/0", "rotate-password");
    assert_eq!(rotated["results"]["rotated"].as_str(), Some("true"), "{rotated:?}");
    m.wait_active("redis-k8s");
    argv_seen.extend(all_argv());
    m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
    let pw = m.password("redis-k8s/0");
    let addr = m.address("redis-k8s/0");
    ping_eventually(&format!("{addr}:6379"), Some(&pw)).expect("the rotated password works");

    let mut logs = String::new();
    for e in std::fs::read_dir(m.dir.join("logs")).unwrap().flatten() {
        logs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    let pods = m.dir.join("pods");
    let mut stack = vec![pods.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "log") {
                logs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    assert!(logs.contains("hook tool calls"), "the scan read the unit logs");
    let status = m.ok(&["status", "--format", "json"]);
    for (what, secret) in [("Redis password", pw.as_str()), ("registry password", registry_pw)] {
        assert!(!logs.contains(secret), "the {what} is in a log");
        assert!(!status.contains(secret), "the {what} is in a status");
        let leaks: Vec<&String> = argv_seen.iter().filter(|a| a.contains(secret)).collect();
        assert!(leaks.is_empty(), "the {what} is on a command line: {leaks:?}");
        let open = world_readable_files_containing(&m.dir, secret);
        assert!(open.is_empty(), "the {what} is in files others can read: {open:?}");
    }
    let _ = std::fs::remove_file(&image);
}

/// Juju numbers units for good, a StatefulSet reuses pod ordinals: after 3 → 2 → 3, the new unit
/// (`redis-k8s/3`) runs pod `redis-k8s-2`, joins as a replica of the current primary, and Sentinel
/// counts it again.
#[test]
fn scaling_back_up_reuses_the_freed_pod_ordinal_and_the_new_pod_replicates() {
    let m = Model::new("rescale");
    let charm = charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "3"]);
    m.wait_active("redis-k8s");
    let pw = m.password("redis-k8s/0");
    m.ok(&["scale", "redis-k8s", "2"]);
    m.wait_active("redis-k8s");
    m.ok(&["scale", "redis-k8s", "3"]);
    m.wait_active("redis-k8s");
    let status = m.status();
    let units: Vec<String> =
        status["applications"]["redis-k8s"]["units"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(units, ["redis-k8s/0", "redis-k8s/1", "redis-k8s/3"]);
    let addr = m.address("redis-k8s/3");
    let info = until("the new pod to replicate", 60, || {
        let info = resp::info(&format!("{addr}:6379"), Some(&pw), "replication", Duration::from_secs(2)).ok()?;
        (resp::info_field(&info, "master_link_status") == Some("up")).then_some(info)
    });
    assert_eq!(resp::info_field(&info, "role"), Some("slave"));
    let out = m.run(&["remove-unit", "redis-k8s/0"]);
    assert!(!out.status.success(), "a StatefulSet's unit cannot be removed by name");
    assert!(String::from_utf8_lossy(&out.stderr).contains("scale it down instead"));
}

// ---- Day 2, under Kubernetes' rules: what restarts, what is applied live, what clients see ---------------------

/// The last `lines` lines of every pod's container logs, for failure messages.
fn pod_logs(m: &Model, lines: usize) -> String {
    let mut out = Vec::new();
    for i in 0..3 {
        for c in ["redis", "sentinel"] {
            let p = m.dir.join(format!("pods/redis-k8s-{i}/logs/{c}.log"));
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(lines).collect::<Vec<_>>().into_iter().rev().collect();
            out.push(format!("--- {} ---\n{}", p.display(), tail.join("\n")));
        }
    }
    out.join("\n")
}

/// Every pod's record in the kubelet: `(name, uid, container pids)`, sorted by name (pods being deleted left out).
fn pods(m: &Model) -> Vec<(String, String, Vec<u64>)> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(m.dir.join("kubelet/pods.json")).unwrap_or_default())
        .unwrap_or_default();
    let mut out: Vec<(String, String, Vec<u64>)> = v["pods"]
        .as_object()
        .map(|ps| {
            ps.values()
                .filter(|p| p["deletion_ms"].is_null())
                .map(|p| {
                    let pids =
                        p["containers"].as_array().map(|cs| cs.iter().filter_map(|c| c["pid"].as_u64()).collect());
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["uid"].as_str().unwrap_or_default().to_string(),
                        pids.unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn config_get(addr: &str, pw: Option<&str>, name: &str) -> Option<String> {
    match resp::query(addr, pw, &["CONFIG", "GET", name], Duration::from_secs(2)).ok()? {
        resp::Resp::Array(items) if items.len() == 2 => items[1].as_str().map(str::to_string),
        _ => None,
    }
}

/// `config maxmemory=100mb` on three units: no pod restarts (same pods, same processes) and every pod's Redis
/// has the new limit once the command (the hook) returns.
#[test]
fn a_live_option_reaches_every_running_pod_without_a_restart() {
    let m = Model::new("live");
    let Cluster { addrs, pw, .. } = deploy_three_related(&m);
    let before = pods(&m);
    assert_eq!(before.len(), 3, "{before:?}");
    m.ok(&["config", "redis-k8s", "maxmemory=100mb", "maxmemory-policy=allkeys-lru"]);
    for a in &addrs {
        let addr = format!("{a}:6379");
        assert_eq!(config_get(&addr, Some(&pw), "maxmemory").as_deref(), Some("104857600"), "{addr}");
        assert_eq!(config_get(&addr, Some(&pw), "maxmemory-policy").as_deref(), Some("allkeys-lru"), "{addr}");
    }
    m.wait_active("redis-k8s");
    assert_eq!(pods(&m), before, "a contents-only change restarted a pod");
}

/// `rotate-password` with two clients writing: one keeps the password it started with, one re-reads the relation
/// after a failure. While the rotation runs, neither sees a failed command; the new password reaches the
/// relation, `get-password` and every pod; after the leader's next update-status the old one is refused.
#[test]
fn rotate_password_refuses_no_client_during_the_window_and_the_old_password_after_it() {
    use support::day2;
    use support::load::Load;
    let m = Model::new("rotate");
    let Cluster { addrs, pw: old, rid } = deploy_three_related(&m);
    let rid_n: u64 = rid.rsplit(':').next().unwrap().parse().unwrap();
    let pinned = Load::start("old-password client", "pinned", 50, day2::pinned_route(&m.dir, "redis-k8s", rid_n, &old));
    let moving = Load::start_refreshing(
        "relation client",
        "moving",
        50,
        day2::relation_route(&m.dir, "redis-k8s", rid_n),
        Some(Duration::from_millis(500)),
    );
    assert!(
        pinned.wait_for_progress(20, Duration::from_secs(20)) && moving.wait_for_progress(20, Duration::from_secs(20))
    );
    let r = m.action("redis-k8s/0", "rotate-password");
    assert_eq!(r["status"].as_str(), Some("completed"), "{r:?}");
    // The leader's relation-changed (Juju runs it on the writer too) makes every server take the new password,
    // then shares it; the other units hand it to their clients.
    let new = until("the relation to carry the new password", 60, || {
        let (_, _, p) = day2::relation_data(&m.dir, "redis-k8s", rid_n)?;
        p.filter(|p| *p != old)
    });
    assert_eq!(m.password("redis-k8s/0"), new);
    assert!(moving.wait_for_progress(50, Duration::from_secs(20)), "the relation client moved to the new password");
    let pinned = pinned.finish();
    assert_eq!(pinned.failed, 0, "during the window the old password works: {}", pinned.summary());
    // The window closes in the leader's first update-status after every unit acknowledged.
    until("the old password to be retired", 60, || {
        m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
        let refused =
            addrs.iter().all(|a| resp::ping(&format!("{a}:6379"), Some(&old), Duration::from_secs(2)).is_err());
        refused.then_some(())
    });
    for a in &addrs {
        resp::ping(&format!("{a}:6379"), Some(&new), Duration::from_secs(2)).unwrap_or_else(|e| panic!("{a}: {e:#}"));
        let s = resp::query(&format!("{a}:26379"), Some(&new), &["PING"], Duration::from_secs(2)).unwrap();
        assert_eq!(s.as_str(), Some("PONG"), "{a}'s Sentinel takes the new password");
    }
    let moving = moving.finish();
    assert_eq!(moving.failed, 0, "{}", moving.summary());
    let primary = addrs.iter().map(|a| format!("{a}:6379")).find(|a| {
        resp::info(a, Some(&new), "replication", Duration::from_secs(2))
            .is_ok_and(|i| resp::info_field(&i, "role") == Some("master"))
    });
    let primary = primary.expect("a primary");
    let lost = moving.lost(|keys| support::load::mget(&primary, Some(&new), keys));
    assert!(lost.is_empty(), "{} acknowledged writes lost", lost.len());
    m.wait_active("redis-k8s");
}

/// `port=7000` changes the pod template: Kubernetes replaces the pods one at a time, highest ordinal first, each
/// Ready before the next goes. A client that asks Sentinel keeps writing, nothing it wrote is lost, and afterwards
/// every pod listens on 7000 with two replicas linked to the primary and every Sentinel naming it there.
#[test]
fn a_port_change_rolls_the_pods_one_at_a_time_and_keeps_replication_and_sentinel_whole() {
    use support::day2;
    use support::load::Load;
    let m = Model::new("portroll");
    let Cluster { addrs, pw, .. } = deploy_three_related(&m);
    let sentinels: Vec<String> = addrs.iter().map(|a| format!("{a}:26379")).collect();
    wait_sentinels_settled(&sentinels, &pw, 3);
    let before = pods(&m);
    let pwc = pw.clone();
    let load = Load::start(
        "Sentinel client",
        "portroll",
        50,
        day2::sentinel_route(&m.dir, "redis-k8s", 3, std::sync::Arc::new(move || Some(pwc.clone()))),
    );
    assert!(load.wait_for_progress(20, Duration::from_secs(20)));
    m.ok(&["config", "redis-k8s", "port=7000"]);
    m.ok(&["wait", "redis-k8s", "--timeout", "180"]);
    let after = pods(&m);
    for ((n0, uid0, _), (n1, uid1, _)) in before.iter().zip(&after) {
        assert_eq!(n0, n1);
        assert_ne!(uid0, uid1, "{n0} was not replaced");
    }
    // The kubelet's events: deletions highest ordinal first, each replacement Ready before the next deletion.
    let events: Value = serde_json::from_str(&m.ok(&["events", "--app", "redis-k8s", "--format", "json"])).unwrap();
    let order: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["reason"].as_str()?.to_string(), e["pod"].as_str()?.to_string())))
        .filter(|(r, _)| r == "Killing" || r == "Ready")
        .collect();
    // One entry per pod and reason in a row (a pod's containers are killed together).
    let mut steps: Vec<(String, String)> = Vec::new();
    for e in order {
        if steps.last() != Some(&e) {
            steps.push(e);
        }
    }
    let from = steps.iter().position(|(r, _)| r == "Killing").expect("pods were replaced");
    let expected: Vec<(String, String)> = ["redis-k8s-2", "redis-k8s-1", "redis-k8s-0"]
        .iter()
        .flat_map(|p| [("Killing".to_string(), p.to_string()), ("Ready".to_string(), p.to_string())])
        .collect();
    assert_eq!(steps[from..], expected[..], "one pod at a time, highest ordinal first: {steps:?}");
    assert!(load.wait_for_progress(50, Duration::from_secs(60)), "the Sentinel client writes after the roll");
    let report = load.finish();
    let primary = until("one primary on 7000 with two linked replicas", 60, || {
        let mut primary = None;
        let mut linked = 0;
        for a in &addrs {
            let info = resp::info(&format!("{a}:7000"), Some(&pw), "replication", Duration::from_secs(2)).ok()?;
            match resp::info_field(&info, "role") {
                Some("master") => primary = Some(a.clone()),
                Some("slave")
                    if resp::info_field(&info, "master_link_status") == Some("up")
                        && resp::info_field(&info, "master_port") == Some("7000") =>
                {
                    linked += 1
                }
                _ => {}
            }
        }
        primary.filter(|_| linked == 2)
    });
    let named: Vec<String> = addrs.iter().map(|a| format!("{a}:26379")).collect();
    until("every Sentinel to name the primary on 7000", 60, || {
        named
            .iter()
            .all(|s| {
                resp::sentinel_primary(std::slice::from_ref(s), "redis-k8s", Some(&pw), Duration::from_secs(1))
                    .is_some_and(|(_, p)| p == 7000)
            })
            .then_some(())
    });
    let lost = report.lost(|keys| support::load::mget(&format!("{primary}:7000"), Some(&pw), keys));
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost ({:?}…); {}\n{}",
        lost.len(),
        &lost[..lost.len().min(10)],
        report.summary(),
        pod_logs(&m, 60)
    );
    eprintln!("port change under load: {}", report.summary());
}

/// Juju before 2.9.30 never adds a volume to a running StatefulSet. The pod spec's volumes do not depend on the
/// config, so turning auth on after deploying without it works there: live, and in the files.
#[test]
fn auth_turned_on_after_deploying_without_it_on_juju_2_9_29() {
    let m = Model::new("auth2929");
    let charm = charm();
    m.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "--resource",
        "redis-image=redis:7.0",
        "--juju-version",
        "2.9.29",
        "--config",
        "require-auth=false",
    ]);
    m.wait_active("redis-k8s");
    let addr = format!("{}:6379", m.address("redis-k8s/0"));
    ping_eventually(&addr, None).unwrap();
    // (No pod is ready meanwhile: a replica whose link is down is not, and `juju status` says so.)
    m.ok(&["config", "redis-k8s", "require-auth=true"]);
    let pw = m.password("redis-k8s/0");
    let err =
        resp::query(&addr, None, &["GET", "k"], Duration::from_secs(2)).and_then(|r| r.into_result()).unwrap_err();
    assert!(format!("{err:#}").contains("NOAUTH"), "{err:#}");
    ping_eventually(&addr, Some(&pw)).unwrap();
    let st = m.status();
    assert_ne!(st["applications"]["redis-k8s"]["application-status"]["current"], "error", "{st}");
}

/// Kills pod `n`'s redis-server twice, so that its container is down for Kubernetes' crash-loop back-off
/// (10 s after the second crash; the first restart is immediate). Returns once it is down the second time.
fn crash_loop_redis(m: &Model, n: u32, addr: &str, pw: &str) {
    let redis = format!("{addr}:6379");
    for round in 0..2 {
        let pid = until("the pod's redis-server", 30, || redis_server_pid(&m.dir, "redis-k8s", n));
        Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        until("the pod to be down", 30, || resp::ping(&redis, Some(pw), Duration::from_millis(300)).err().map(|_| ()));
        if round == 0 {
            until("the container to restart", 30, || resp::ping(&redis, Some(pw), Duration::from_millis(300)).ok());
        }
    }
}

/// A pod that is not running when a live option changes is not waited for: it takes the value from its files
/// when it starts.
#[test]
fn a_pod_down_during_a_change_takes_the_value_from_its_files() {
    let m = Model::new("downpod");
    let Cluster { addrs, pw, .. } = deploy_three_related(&m);
    crash_loop_redis(&m, 2, &addrs[2], &pw);
    m.ok(&["config", "redis-k8s", "maxmemory=64mb"]);
    let addr = format!("{}:6379", addrs[2]);
    let value = until("pod 2 to come back", 60, || config_get(&addr, Some(&pw), "maxmemory"));
    assert_eq!(value, "67108864", "pod 2 read the new value from its files");
}

/// A redis-server in the host's network namespace, standing for a server an attacker controls; killed on drop.
struct Intruder {
    child: std::process::Child,
    port: u16,
}

impl Intruder {
    fn start() -> Intruder {
        let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "0.0.0.0", "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no", "--dir", &std::env::temp_dir().display().to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let intruder = Intruder { child, port };
        let addr = format!("127.0.0.1:{port}");
        until("the intruder's server", 20, || resp::ping(&addr, None, Duration::from_millis(300)).ok());
        resp::query(&addr, None, &["SET", "owned", "yes"], Duration::from_secs(2))
            .and_then(|r| r.into_result())
            .unwrap();
        intruder
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ROLE's first element at `addr`, and for a replica the host it follows and whether its link is up.
fn role(addr: &str, pw: Option<&str>) -> Option<(String, String, bool)> {
    let info = resp::info(addr, pw, "replication", Duration::from_secs(2)).ok()?;
    let field = |f: &str| resp::info_field(&info, f).unwrap_or_default().to_string();
    Some((field("role"), field("master_host"), field("master_link_status") == "up"))
}

/// Issue 14, item 1, replayed: with `require-auth=false` anyone who reaches port 26379 can make every Sentinel
/// monitor their own server. A restarted replica and a restarted primary still find each other (the start
/// scripts trust only this application's pods), turning auth on points the Sentinels back at the real primary,
/// and the deployment ends with one writable primary, the intruder's data nowhere, and a status that says so.
#[test]
fn a_poisoned_sentinel_with_auth_off_leaves_one_writable_primary_and_a_truthful_status() {
    let m = Model::new("poison");
    let charm = charm();
    let deploy = ["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "3"];
    m.ok(&[&deploy[..], &["--config", "require-auth=false"]].concat());
    m.wait_active("redis-k8s");
    let addrs: Vec<String> = (0..3).map(|i| m.address(&format!("redis-k8s/{i}"))).collect();
    let redis: Vec<String> = addrs.iter().map(|a| format!("{a}:6379")).collect();
    let sentinels: Vec<String> = addrs.iter().map(|a| format!("{a}:26379")).collect();
    until("the pods to answer without a password", 60, || {
        redis.iter().all(|r| resp::ping(r, None, Duration::from_millis(500)).is_ok()).then_some(())
    });
    for i in 0..10 {
        resp::query(&redis[0], None, &["SET", &format!("k{i}"), "ours"], Duration::from_secs(5))
            .and_then(|r| r.into_result())
            .unwrap();
    }
    until("the replicas to sync", 40, || {
        redis[1..]
            .iter()
            .all(|r| {
                resp::query(r, None, &["GET", "k9"], Duration::from_secs(1))
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .as_deref()
                    == Some("ours")
            })
            .then_some(())
    });

    // The bridge's host side (<net>.1) is where the pods reach the host's network namespace.
    let host_ip = format!("{}.1", addrs[0].rsplit_once('.').unwrap().0);
    let intruder = Intruder::start();
    for s in &sentinels {
        let _ = resp::query(s, None, &["SENTINEL", "REMOVE", "redis-k8s"], Duration::from_secs(2));
        let port = intruder.port.to_string();
        let r =
            resp::query(s, None, &["SENTINEL", "MONITOR", "redis-k8s", &host_ip, &port, "1"], Duration::from_secs(2));
        assert!(r.and_then(|r| r.into_result()).is_ok(), "the Sentinel at {s} took the intruder's address");
    }
    let named = resp::sentinel_primary(&sentinels, "redis-k8s", None, Duration::from_secs(2));
    assert_eq!(named, Some((host_ip.clone(), intruder.port)), "every Sentinel now names the intruder");

    // A replica restarts, then the primary: neither follows the address the Sentinels name.
    std::thread::sleep(Duration::from_millis(1500)); // appendfsync everysec: the writes are on disk
    for n in [1u32, 0] {
        let pid = until("the pod's redis-server", 30, || redis_server_pid(&m.dir, "redis-k8s", n));
        Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        let addr = &redis[n as usize];
        until("the pod to be down", 30, || resp::ping(addr, None, Duration::from_millis(300)).err().map(|_| ()));
        until("the pod to come back", 60, || resp::ping(addr, None, Duration::from_millis(300)).ok());
    }
    let logs = pod_logs(&m, 200);
    assert!(logs.contains("which is not one of this application's pods: ignored"), "{logs}");
    assert!(role(&redis[0], None).is_some_and(|r| r.0 == "master"), "the restarted primary took its role back");

    // Then the intruder makes every pod a replica of their server, and it goes away: nothing is writable, and
    // Sentinel, which never saw these replicas, cannot end it.
    let port = intruder.port.to_string();
    drop(intruder);
    for r in &redis {
        resp::query(r, None, &["REPLICAOF", &host_ip, &port], Duration::from_secs(2))
            .and_then(|r| r.into_result())
            .unwrap();
    }
    let refused = resp::query(&redis[0], None, &["SET", "k0", "x"], Duration::from_secs(2)).unwrap();
    assert!(matches!(&refused, resp::Resp::Error(e) if e.starts_with("READONLY")), "{refused:?}");

    // Auth on: the leader points every Sentinel back at the pod that is the primary.
    // (No pod is ready meanwhile: a replica whose link is down is not, and `juju status` says so.)
    m.ok(&["config", "redis-k8s", "require-auth=true"]);
    let pw = m.password("redis-k8s/0");
    m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
    let roles = until("one primary with two linked replicas", 60, || {
        let roles: Vec<_> = redis.iter().map(|r| role(r, Some(&pw))).collect::<Option<Vec<_>>>()?;
        let primaries: Vec<usize> = (0..3).filter(|&i| roles[i].0 == "master").collect();
        let [p] = primaries[..] else { return None };
        let host = format!("redis-k8s-{p}.");
        roles
            .iter()
            .enumerate()
            .all(|(i, r)| i == p || (r.0 == "slave" && r.1.starts_with(&host) && r.2))
            .then_some((p, roles))
    });
    let (p, _) = roles;
    until("every Sentinel to name the primary", 30, || {
        sentinels
            .iter()
            .all(|s| {
                resp::sentinel_primary(std::slice::from_ref(s), "redis-k8s", Some(&pw), Duration::from_secs(2))
                    .is_some_and(|(h, port)| h.starts_with(&format!("redis-k8s-{p}.")) && port == 6379)
            })
            .then_some(())
    });
    let primary = &redis[p];
    let get = |k: &str| resp::query(primary, Some(&pw), &["GET", k], Duration::from_secs(2)).unwrap();
    assert_eq!(get("k3").as_str(), Some("ours"));
    assert_eq!(get("owned").as_str(), None, "the intruder's data reached the deployment");
    let log = m.ok(&["debug-log"]);
    assert!(log.contains(&format!("live: redis-k8s-{p}: promoted, as no pod was a writable primary")), "{log}");
    resp::query(primary, Some(&pw), &["SET", "after", "repair"], Duration::from_secs(2))
        .and_then(|r| r.into_result())
        .unwrap();
    m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
    m.wait_active("redis-k8s");
    let st = m.status();
    for u in 0..3 {
        let (current, message) = unit_status(&st, "redis-k8s", &format!("redis-k8s/{u}"));
        assert_eq!(current, "active", "redis-k8s/{u}: {message}\n{st}");
        assert!(!message.contains("degraded"), "redis-k8s/{u}: {message}");
    }
}

/// The sidecar archive with three units (Juju 3.6, Pebble in each container): a primary that stops answering is
/// failed over by the Sentinels the charm started through Pebble, the relation follows the new primary, and the
/// data written before is there; then a password rotation reaches every server, and the old password is retired.
#[test]
fn sidecar_three_units_fail_over_and_rotate_the_password() {
    let m = Model::new("sidecar-ha");
    let charm = support::local::sidecar_charm();
    m.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "--resource",
        "redis-image=redis:7.0",
        "-n",
        "3",
        "--juju-version",
        "3.6.0",
    ]);
    m.wait_active("redis-k8s");
    let addrs: Vec<String> = (0..3).map(|i| m.address(&format!("redis-k8s/{i}"))).collect();
    let pw = m.password("redis-k8s/0");
    let out = m.ok(&["relate", "redis-k8s:db", "client"]);
    let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
    let rid = format!("db:{}", v["relation-id"].as_u64().unwrap());

    let primary = format!("{}:6379", addrs[0]);
    for i in 0..20 {
        resp::query(&primary, Some(&pw), &["SET", &format!("k{i}"), &format!("v{i}")], Duration::from_secs(5))
            .and_then(|r| r.into_result())
            .unwrap();
    }
    let sentinels: Vec<String> = addrs.iter().map(|a| format!("{a}:26379")).collect();
    wait_sentinels_settled(&sentinels, &pw, 3);

    // The primary stops answering (SIGSTOP) for longer than Sentinel's down-after: Pebble sees nothing to restart,
    // the Sentinels fail over.
    let pid = until("the primary's redis-server", 30, || redis_server_pid(&m.dir, "redis-k8s", 0));
    Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap();
    let others = &sentinels[1..];
    let new_primary = until("the Sentinels to promote a replica", 60, || {
        resp::sentinel_primary(others, "redis-k8s", Some(&pw), Duration::from_secs(1))
            .map(|(host, _)| host)
            .filter(|h| !h.starts_with("redis-k8s-0."))
    });
    Command::new("kill").args(["-CONT", &pid.to_string()]).status().unwrap();
    let n: usize = new_primary.split('.').next().unwrap().rsplit('-').next().unwrap().parse().unwrap();
    // The leader's update-status (Juju runs it every few minutes) finds the new primary once the old one, back,
    // has been turned into a replica (for a moment both say master: that is looked at again, not published).
    until("the relation to name the new primary", 90, || {
        m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
        let view = relation_view(&m, &rid);
        (view["views"]["reactive-interface-redis"]["uses"]["host"] == Value::String(fqdn(&new_primary))).then_some(())
    });
    let np = format!("{}:6379", addrs[n]);
    assert_eq!(resp::query(&np, Some(&pw), &["GET", "k7"], Duration::from_secs(5)).unwrap().as_str(), Some("v7"));
    // The old primary came back as a replica of the new one.
    until("the old primary to follow the new one", 60, || {
        let i = resp::info(&primary, Some(&pw), "replication", Duration::from_secs(2)).ok()?;
        (resp::info_field(&i, "role") == Some("slave")).then_some(())
    });

    let r = m.action("redis-k8s/0", "rotate-password");
    assert_eq!(r["status"].as_str(), Some("completed"), "{r:?}");
    let new = until("the new password to be shared", 60, || {
        m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
        Some(m.password("redis-k8s/0")).filter(|p| *p != pw)
    });
    until("every server to take the new password and refuse the old one", 90, || {
        for u in 0..3 {
            m.ok(&["run-hook", &format!("redis-k8s/{u}"), "update-status"]);
        }
        let new_ok = addrs.iter().all(|a| resp::ping(&format!("{a}:6379"), Some(&new), Duration::from_secs(2)).is_ok());
        let old_refused =
            addrs.iter().all(|a| resp::ping(&format!("{a}:6379"), Some(&pw), Duration::from_secs(2)).is_err());
        (new_ok && old_refused).then_some(())
    });
    m.wait_active("redis-k8s");
}

/// Moving a podspec deployment to the sidecar archive, live (README "Moving a podspec deployment to the sidecar
/// archive, live"): the podspec `redis-k8s` holds 10,000 keys and takes a steady stream of writes; a sidecar
/// `redis-new` is deployed beside it in the same Juju 3.6 model, its `source` endpoint related to the old `db`
/// (a charm-to-charm relation); once its status says it is in sync, `promote` pauses the old primary's writes,
/// waits for the copy to catch up and promotes the new primary; the writer then moves to it. Every seeded key and
/// every write the old primary acknowledged before promote returned must be on the new primary, which must take
/// writes, and `redis-new` must end active.
#[test]
fn a_podspec_deployment_moves_to_the_sidecar_archive_live_without_losing_an_acknowledged_write() {
    migrate_live("migrate", 1);
}

/// The same with three units on each side: the old primary is pod 0 of a replicated podspec deployment with
/// Sentinels, and the new application's primary (with its own replicas) copies it.
#[test]
fn a_three_unit_podspec_deployment_moves_to_the_sidecar_archive_live_without_losing_an_acknowledged_write() {
    migrate_live("migrate3", 3);
}

/// The writable primary among the units of `app`, as `host:6379`.
fn primary_of(m: &Model, app: &str, units: u32, pw: &str) -> Option<String> {
    (0..units)
        .map(|i| format!("{}:6379", m.address(&format!("{app}/{i}"))))
        .find(|a| role(a, Some(pw)).is_some_and(|(r, _, _)| r == "master"))
}

fn migrate_live(tag: &str, units: u32) {
    use std::sync::{Arc, Mutex};
    use support::load::{Load, Target, mget};

    let m = Model::new(tag);
    let old_charm = charm();
    let new_charm = support::local::sidecar_charm();
    let n = units.to_string();
    m.ok(&[
        "deploy",
        old_charm.to_str().unwrap(),
        "--resource",
        "redis-image=redis:7.0",
        "--juju-version",
        "3.6.0",
        "-n",
        &n,
    ]);
    until("redis-k8s to be active", 90, || {
        m.run(&["wait", "redis-k8s", "--timeout", "10"]).status.success().then_some(())
    });
    let old_pw = m.password("redis-k8s/0");
    let old = until("the old primary", 30, || primary_of(&m, "redis-k8s", units, &old_pw));
    ping_eventually(&old, Some(&old_pw)).unwrap();

    // 10,000 keys, pipelined 1,000 a session.
    const SEEDED: usize = 10_000;
    let seed_keys: Vec<String> = (0..SEEDED).map(|i| format!("seed:{i}")).collect();
    for chunk in seed_keys.chunks(1000) {
        let cmds: Vec<Vec<String>> = chunk
            .iter()
            .map(|k| vec!["SET".to_string(), k.clone(), k.trim_start_matches("seed:").to_string()])
            .collect();
        let replies = resp::session(&old, Some(&old_pw), &cmds, Duration::from_secs(30)).expect("seeding");
        assert!(replies.iter().all(|r| matches!(r, resp::Resp::Simple(s) if s == "OK")), "a SET was refused");
    }

    // A steady writer on the old primary; it re-reads where to write every 200 ms and after every failure.
    let target = Arc::new(Mutex::new(Target { addr: old.clone(), password: Some(old_pw.clone()) }));
    let route_target = target.clone();
    let load = Load::start_refreshing(
        "writer",
        "w",
        100,
        Arc::new(move || Some(route_target.lock().unwrap().clone())),
        Some(Duration::from_millis(200)),
    );
    assert!(load.wait_for_progress(50, Duration::from_secs(20)), "the writer writes to the old primary");

    m.ok(&["deploy", new_charm.to_str().unwrap(), "redis-new", "--resource", "redis-image=redis:7.0", "-n", &n]);
    until("redis-new to be active", 90, || {
        m.run(&["wait", "redis-new", "--timeout", "10"]).status.success().then_some(())
    });
    m.ok(&["relate", "redis-new:source", "redis-k8s:db"]);
    // The charm sets "syncing" when it starts the copy and says "in sync" only from a later hook: juju-local
    // has no update-status timer, so run it by hand as Juju's (every 5 minutes by default) would.
    let mut last = String::new();
    let in_sync = until("redis-new to say it is in sync", 90, || {
        m.ok(&["run-hook", "redis-new/0", "update-status"]);
        let st = m.status();
        let (cur, msg) = unit_status(&st, "redis-new", "redis-new/0");
        last = format!("{cur} {msg}");
        if cur == "waiting" && msg.contains("in sync") {
            return Some(msg);
        }
        std::thread::sleep(Duration::from_secs(1));
        None
    });
    eprintln!("redis-new: {in_sync} (before: {last})");
    assert!(in_sync.starts_with("migrating from ") && in_sync.contains(":6379: in sync at offset "), "{in_sync}");
    assert!(load.wait_for_progress(50, Duration::from_secs(20)), "the old primary still takes writes while copied");

    let started = Instant::now();
    let out = m.ok(&["run", "redis-new/0", "promote", "pause-seconds=20"]);
    let promote_took = started.elapsed();
    // Every write acknowledged so far was acknowledged by the old primary before promote returned.
    let acked_before = load.acknowledged();
    let r = support::local::action_result(&out, "redis-new/0");
    assert_eq!(r["status"].as_str(), Some("completed"), "promote: {out}");

    // The clients move: the new primary's address and password.
    let rp = support::local::action_result(&m.ok(&["run", "redis-new/0", "get-password"]), "redis-new/0");
    let new_pw = rp["results"]["password"].as_str().unwrap_or_else(|| panic!("get-password gave {rp:?}")).to_string();
    let new = primary_of(&m, "redis-new", units, &new_pw).expect("a writable primary in redis-new after promote");
    *target.lock().unwrap() = Target { addr: new.clone(), password: Some(new_pw.clone()) };
    assert!(load.wait_for_progress(50, Duration::from_secs(30)), "the writer writes to the new primary");
    let report = load.finish();

    let missing_seed: usize = seed_keys
        .chunks(1000)
        .map(|keys| match mget(&new, Some(&new_pw), keys) {
            Some(values) => values.iter().zip(keys).filter(|(v, k)| v.as_deref() != Some(&k[5..])).count(),
            None => keys.len(),
        })
        .sum();
    let lost = report.lost(|keys| mget(&new, Some(&new_pw), keys));
    let lost_before: Vec<u64> = lost.iter().copied().filter(|i| *i < acked_before).collect();
    eprintln!(
        "migration: {missing_seed} of {SEEDED} seeded keys missing on the new primary; {} of {acked_before} writes \
         acknowledged by the old primary before promote returned lost ({} of {} acknowledged in all); promote took \
         {} ms; {}; promote said {:?}",
        lost_before.len(),
        lost.len(),
        report.acked.len(),
        promote_took.as_millis(),
        report.summary(),
        r["results"]
    );
    assert_eq!(missing_seed, 0, "seeded keys missing on the new primary");
    assert!(lost_before.is_empty(), "acknowledged writes lost: {lost_before:?}");
    assert!(lost.is_empty(), "writes acknowledged after promote lost: {lost:?}");

    // The new primary takes writes, and redis-new says it is active.
    let reply = resp::query(&new, Some(&new_pw), &["SET", "after-promote", "yes"], Duration::from_secs(2)).unwrap();
    assert!(matches!(&reply, resp::Resp::Simple(s) if s == "OK"), "{reply:?}");
    until("redis-new to be active", 60, || {
        let st = m.status();
        let units = st["applications"]["redis-new"]["units"].as_object()?.clone();
        units.values().all(|u| u["workload-status"]["current"] == "active").then_some(())
    });
    // The new application's replicas follow its new primary, not the old one.
    if units > 1 {
        let new_host = new.trim_end_matches(":6379").to_string();
        until("redis-new's replicas to follow its primary", 60, || {
            let replicas: Vec<String> = (0..units)
                .map(|i| format!("{}:6379", m.address(&format!("redis-new/{i}"))))
                .filter(|a| *a != new)
                .collect();
            replicas
                .iter()
                .all(|a| {
                    role(a, Some(&new_pw)).is_some_and(|(r, host, up)| {
                        r == "slave" && up && (host == new_host || host.starts_with("redis-new-"))
                    })
                })
                .then_some(())
        });
    }
}
