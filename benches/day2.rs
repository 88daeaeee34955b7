//! The day-2 benchmark: what clients see while an operator changes a running deployment.
//!
//! On juju-local (real redis-server pods, under the kubelet's Kubernetes rules), a 3-unit deployment related to a
//! client, and two clients writing `SET` 50 times a second each:
//! - a **relation client** that reads host, port and password from the relation data, again after a failure
//!   and every 0.5 s (as a client charm reacting to its relation-changed hooks would);
//! - a **Sentinel client** that asks the Sentinels where the primary is (password from the relation).
//!
//! For each operation, each client's failed commands, its longest time without an acknowledged write (the
//! outage), and the acknowledged writes that are gone afterwards (every one is read back from the primary), and
//! how long the operation took until the deployment settled. Not a timed test: it asserts nothing, it measures.
//!
//! Run (root, needs the built charm and juju-local, as the e2e tests): `make bench-day2`, or
//! `DAY2_ROUNDS=3 cargo bench --bench day2`. It prints a table and writes `benches/DAY2.md`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_k8s::redis::resp;
use support::day2;
use support::load::{Load, Report};
use support::local::until;

const APP: &str = "redis-k8s";
const RATE: u32 = 50;

struct Model {
    dir: PathBuf,
}

impl Model {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(support::local::juju_local())
            .arg("--model-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("juju-local {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.run(&["destroy"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One measured row.
struct Row {
    operation: String,
    client: String,
    failed: u64,
    outage_ms: u128,
    acked: usize,
    lost: usize,
    settle_s: f64,
}

struct Bench {
    m: Model,
    rid: u64,
    units: u32,
    rows: Vec<Row>,
}

impl Bench {
    fn deploy() -> Bench {
        let dir = std::env::temp_dir().join(format!("redis-k8s-day2-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let m = Model { dir };
        let charm = support::local::charm();
        m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "3"]);
        m.ok(&["wait", APP, "--timeout", "120"]);
        let out = m.ok(&["relate", "redis-k8s:db", "client"]);
        let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        let rid = v["relation-id"].as_u64().unwrap();
        m.ok(&["wait", APP, "--timeout", "60"]);
        Bench { m, rid, units: 3, rows: Vec::new() }
    }

    /// The kubelet's view of every pod and the tail of each container's log, for a failure message.
    fn diagnostics(&self) -> String {
        let mut out = Vec::new();
        let pods: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.m.dir.join("kubelet/pods.json")).unwrap_or_default())
                .unwrap_or_default();
        for (name, p) in pods["pods"].as_object().into_iter().flatten() {
            out.push(format!(
                "pod {name}: unit {} ready {} phase {} deleting {}",
                p["unit"], p["ready"], p["phase"], p["deletion_ms"]
            ));
            for c in ["redis", "sentinel"] {
                let text =
                    std::fs::read_to_string(self.m.dir.join(format!("pods/{name}/logs/{c}.log"))).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                out.push(format!("--- {name} {c} ---\n{}", tail.join("\n")));
            }
        }
        out.join("\n")
    }

    fn password(&self) -> Option<String> {
        day2::relation_data(&self.m.dir, APP, self.rid).and_then(|(_, _, p)| p)
    }

    fn port(&self) -> u16 {
        day2::relation_data(&self.m.dir, APP, self.rid).map(|(_, p, _)| p).unwrap_or(6379)
    }

    /// The primary's address, found by asking every pod (`host:port`).
    fn primary(&self) -> Option<String> {
        let (pw, port) = (self.password(), self.port());
        (0..self.units).find_map(|n| {
            let addr = format!("{}:{port}", day2::resolve(&self.m.dir, &format!("{APP}-{n}"))?);
            let info = resp::info(&addr, pw.as_deref(), "replication", Duration::from_secs(2)).ok()?;
            (resp::info_field(&info, "role") == Some("master")).then_some(addr)
        })
    }

    fn loads(&self, tag: &str) -> (Load, Load) {
        let relation = Load::start_refreshing(
            "relation client",
            &format!("{tag}-rel"),
            RATE,
            day2::relation_route(&self.m.dir, APP, self.rid),
            Some(Duration::from_millis(500)),
        );
        let (dir, rid) = (self.m.dir.clone(), self.rid);
        let password = Arc::new(move || day2::relation_data(&dir, APP, rid).and_then(|(_, _, p)| p));
        let sentinel = Load::start_refreshing(
            "Sentinel client",
            &format!("{tag}-sen"),
            RATE,
            day2::sentinel_route(&self.m.dir, APP, self.units.max(3), password),
            Some(Duration::from_millis(500)),
        );
        for l in [&relation, &sentinel] {
            assert!(l.wait_for_progress(40, Duration::from_secs(30)), "{tag}: a client never started writing");
        }
        (relation, sentinel)
    }

    /// Runs `op` under both loads; `settled` waits until the deployment is back to normal.
    fn measure(&mut self, operation: &str, op: impl FnOnce(&Bench), settled: impl FnOnce(&Bench)) {
        let tag = operation.split_whitespace().next().unwrap_or("op").replace(['=', '/'], "-");
        let (relation, sentinel) = self.loads(&format!("{tag}-{}", self.rows.len()));
        let start = Instant::now();
        op(self);
        settled(self);
        if let Err(e) = self.m.run(&["wait", APP, "--timeout", "300"]) {
            panic!("{operation}: {e}\n{}", self.diagnostics());
        }
        let settle = start.elapsed();
        std::thread::sleep(Duration::from_secs(2));
        let reports: Vec<Report> = vec![relation.finish(), sentinel.finish()];
        let primary = until("a primary", 120, || self.primary());
        let pw = self.password();
        for r in reports {
            let lost = r.lost(|keys| support::load::mget(&primary, pw.as_deref(), keys)).len();
            eprintln!("day2: {operation}: {} ; lost {lost}", r.summary());
            self.rows.push(Row {
                operation: operation.to_string(),
                client: r.name.clone(),
                failed: r.failed,
                outage_ms: r.longest_outage.as_millis(),
                acked: r.acked.len(),
                lost,
                settle_s: settle.as_secs_f64(),
            });
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| operation | client | failed commands | longest outage (ms) | writes acknowledged | acknowledged writes lost | settled after (s) |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} |\n",
            r.operation, r.client, r.failed, r.outage_ms, r.acked, r.lost, r.settle_s
        ));
    }
    s
}

fn crash_loop_primary(b: &Bench) {
    let primary = until("a primary", 60, || b.primary());
    let ordinal = (0..b.units)
        .find(|n| day2::resolve(&b.m.dir, &format!("{APP}-{n}")).is_some_and(|a| primary.starts_with(&format!("{a}:"))))
        .expect("the primary's pod");
    let pw = b.password();
    // Twice: Kubernetes restarts a crashed container at once, then backs off for 10 s.
    for round in 0..2 {
        let pid = until("the primary's redis-server", 30, || redis_server_pid(&b.m.dir, ordinal));
        Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        until("the primary to be down", 30, || {
            resp::ping(&primary, pw.as_deref(), Duration::from_millis(300)).err().map(|_| ())
        });
        if round == 0 {
            until("the container to restart", 30, || {
                resp::ping(&primary, pw.as_deref(), Duration::from_millis(300)).ok()
            });
        }
    }
}

/// The redis-server (not its start script, not Sentinel) in pod `ordinal`'s network namespace.
fn redis_server_pid(model_dir: &Path, ordinal: u32) -> Option<u32> {
    let pods: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("kubelet/pods.json")).ok()?).ok()?;
    let pod = pods["pods"]
        .as_object()?
        .values()
        .find(|p| p["name"] == format!("{APP}-{ordinal}") && p["deletion_ms"].is_null())?;
    let netns = pod["netns"].as_str()?.to_string();
    let out = Command::new("ip").args(["netns", "pids", &netns]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse::<u32>().ok()).find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.starts_with("redis-server") && !c.contains("sentinel")
        })
    })
}

fn main() {
    let rounds: usize = std::env::var("DAY2_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1).max(1);
    let started = Instant::now();
    let mut all = Vec::new();
    for round in 0..rounds {
        eprintln!("day2: round {}/{rounds}: deploying 3 units", round + 1);
        let mut b = Bench::deploy();
        b.measure("config maxmemory=100mb (live)", |b| drop(b.m.ok(&["config", APP, "maxmemory=100mb"])), |_| {});
        let old = b.password();
        b.measure(
            "run-action rotate-password (then update-status)",
            |b| drop(b.m.ok(&["run-action", "redis-k8s/0", "rotate-password"])),
            move |b| {
                until("the relation to carry the new password", 120, || (b.password() != old).then_some(()));
                std::thread::sleep(Duration::from_secs(2));
                b.m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
            },
        );
        // Clients that read host and port from the relation learn where the primary is now (the roll moves it)
        // at the leader's next check: here the update-status run once the roll is done; on a real model the
        // next update-status-hook-interval (5 minutes by default). Their outage below includes that wait.
        b.measure(
            "config port=7000 (rolling restart, then update-status)",
            |b| drop(b.m.ok(&["config", APP, "port=7000"])),
            |b| {
                b.m.ok(&["wait", APP, "--timeout", "300"]);
                b.m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
            },
        );
        b.measure("primary's container crash-looping (failover, then update-status)", crash_loop_primary, |b| {
            // Sentinel fails over after its 5 s down-after; the relation names the new primary at the
            // leader's next check.
            std::thread::sleep(Duration::from_secs(15));
            b.m.ok(&["run-hook", "redis-k8s/0", "update-status"]);
        });
        b.measure("scale 3 -> 2", |b| drop(b.m.ok(&["scale", APP, "2"])), |_| {});
        b.units = 2;
        b.measure("scale 2 -> 3", |b| drop(b.m.ok(&["scale", APP, "3"])), |_| {});
        b.units = 3;
        all.append(&mut b.rows);
    }
    let text = format!(
        "# Day-2 benchmark\n\nMeasured by `benches/day2.rs` ({rounds} round(s), {:.0} s) on juju-local: 3 units, two clients \
         writing {RATE} SETs/s each (see the file's doc for what they do and what is measured).\n\n{}",
        started.elapsed().as_secs_f64(),
        table(&all)
    );
    println!("{text}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/DAY2.md");
    std::fs::write(&out, &text).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    eprintln!("day2: wrote {}", out.display());
}
