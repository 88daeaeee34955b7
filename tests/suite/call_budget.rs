//! Tool-call budgets (issue #8): the real binary, run hook by hook through a deploy lifecycle against the
//! benchmark's fake hook tools (`benches/fake-tools/fake-tool`), must stay within the project's targets:
//!
//! - the first deploy sequence (install, leader-elected, config-changed, start): ≤ 20 calls in all;
//! - config-changed with nothing changed: ≤ 4 calls and no pod-spec-set;
//! - update-status: ≤ 4 calls.
//!
//! These count tool processes, not time, so they are deterministic. Each test deploys a fresh unit in
//! its own scratch directory; state persists between its hooks as Juju's would.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIRST_DEPLOY_BUDGET: usize = 20;
const UNCHANGED_CONFIG_BUDGET: usize = 4;
const UPDATE_STATUS_BUDGET: usize = 4;

/// One scratch unit: fake tools, charm dir, agent state dir, the oci-image resource.
struct Unit {
    root: PathBuf,
}

impl Unit {
    fn new(tag: &str) -> Unit {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = std::env::temp_dir().join(format!("redis-k8s-call-budget-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let tools = root.join("tools");
        fs::create_dir_all(&tools).unwrap();
        fs::copy(repo.join("benches/fake-tools/fake-tool"), tools.join("fake-tool")).unwrap();
        for t in [
            "config-get",
            "is-leader",
            "resource-get",
            "status-set",
            "status-get",
            "pod-spec-set",
            "k8s-spec-set",
            "juju-log",
            "network-get",
            "relation-ids",
            "relation-list",
            "relation-get",
            "relation-set",
            "leader-get",
            "leader-set",
            "state-get",
            "state-set",
            "state-delete",
            "application-version-set",
        ] {
            symlink("fake-tool", tools.join(t)).unwrap();
        }
        let charm = root.join("unit/charm");
        fs::create_dir_all(&charm).unwrap();
        fs::create_dir_all(root.join("unit/state")).unwrap();
        fs::create_dir_all(root.join("unit/fake-model")).unwrap();
        for f in ["metadata.yaml", "config.yaml", "layer.yaml"] {
            fs::copy(repo.join(f), charm.join(f)).unwrap();
        }
        let res = root.join("unit/resources/redis-image");
        fs::create_dir_all(&res).unwrap();
        fs::write(
            res.join("content.yaml"),
            "registrypath: registry.example.com/redis:7.0\nusername: ''\npassword: ''\n",
        )
        .unwrap();
        Unit { root }
    }

    /// Runs `hook` with `port` configured; returns the tool calls it made (name and arguments each).
    fn hook(&self, hook: &str, port: u32) -> Vec<Vec<String>> {
        let charm = self.root.join("unit/charm");
        let log = self.root.join("tools.log");
        fs::write(&log, "").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redis-k8s"));
        cmd.env_clear()
            .current_dir(&charm)
            .env("JUJU_UNIT_NAME", "redis-k8s/0")
            .env("JUJU_CHARM_DIR", &charm)
            .env("CHARM_DIR", &charm)
            .env("JUJU_HOOK_NAME", hook)
            .env("JUJU_DISPATCH_PATH", format!("hooks/{hook}"))
            .env("JUJU_MODEL_NAME", "budget")
            .env("JUJU_VERSION", "2.9.42")
            .env("LANG", "C.UTF-8")
            .env("PATH", format!("{}:/usr/bin:/bin", self.root.join("tools").display()))
            .env("FAKE_TOOL_LOG", &log)
            .env("FAKE_PORT", port.to_string())
            // No cluster here: pod names are "not found", whatever this machine's DNS says.
            .env(redis_k8s::redis::resolve::RESOLV_CONF_ENV, "/dev/null");
        if hook.starts_with("db-relation-") {
            cmd.env("JUJU_RELATION", "db")
                .env("JUJU_RELATION_ID", "db:1")
                .env("JUJU_REMOTE_UNIT", "client/0")
                .env("JUJU_REMOTE_APP", "client")
                .env("FAKE_RELATED", "1");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{hook} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        let text = fs::read_to_string(&log).unwrap();
        text.split('\u{1e}')
            .filter(|r| !r.is_empty())
            .map(|r| r.strip_suffix('\n').unwrap_or(r).split('\t').map(str::to_string).collect())
            .collect()
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn names(calls: &[Vec<String>]) -> Vec<&str> {
    calls.iter().map(|c| c[0].as_str()).collect()
}

#[test]
fn first_deploy_sequence_within_budget() {
    let unit = Unit::new("deploy");
    let mut total = 0;
    let mut seen = Vec::new();
    for hook in ["install", "leader-elected", "config-changed", "start"] {
        let calls = unit.hook(hook, 6379);
        total += calls.len();
        seen.push(format!("{hook}: {}", names(&calls).join(" ")));
    }
    assert!(
        total <= FIRST_DEPLOY_BUDGET,
        "first deploy made {total} tool calls, budget {FIRST_DEPLOY_BUDGET}:\n{}",
        seen.join("\n")
    );
}

#[test]
fn unchanged_config_changed_within_budget_and_sets_no_pod_spec() {
    let unit = Unit::new("config");
    unit.hook("install", 6379);
    unit.hook("leader-elected", 6379);
    // The first config-changed of a deploy: the config is what install already saw.
    let mut runs = vec![("config-changed after install", unit.hook("config-changed", 6379))];
    unit.hook("start", 6379);
    unit.hook("update-status", 6379);
    runs.push(("config-changed in steady state", unit.hook("config-changed", 6379)));
    for (what, calls) in runs {
        let n = names(&calls);
        assert!(
            calls.len() <= UNCHANGED_CONFIG_BUDGET,
            "{what}: {} tool calls, budget {UNCHANGED_CONFIG_BUDGET}: {}",
            calls.len(),
            n.join(" ")
        );
        assert!(!n.contains(&"pod-spec-set") && !n.contains(&"k8s-spec-set"), "{what} set a pod spec: {}", n.join(" "));
    }
}

#[test]
fn update_status_within_budget() {
    let unit = Unit::new("update");
    for hook in ["install", "leader-elected", "config-changed", "start"] {
        unit.hook(hook, 6379);
    }
    // No pod runs here: the first update-status says so (a status, and the store's record of it); after that
    // it has nothing to record.
    unit.hook("update-status", 6379);
    for round in 0..2 {
        let calls = unit.hook("update-status", 6379);
        assert!(
            calls.len() <= UPDATE_STATUS_BUDGET,
            "update-status #{round}: {} tool calls, budget {UPDATE_STATUS_BUDGET}: {}",
            calls.len(),
            names(&calls).join(" ")
        );
    }
}
