//! The charm's hooks end to end through the recording fake (no processes): what an operator sees
//! (pod spec, status, relation data) and what it costs (tool calls per hook).

use std::fs;
use std::path::PathBuf;

use redis_k8s::juju::fake::{FakeJuju, FakeModel, FakeRelation, Fault};
use redis_k8s::juju::{HookEnv, HookTools, ToolError};
use serde_json::json;

struct Unit {
    dir: PathBuf,
    fake: FakeJuju,
    env: HookEnv,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Unit {
    fn new(unit: &str, leader: bool) -> Unit {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("redis-k8s-charm-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("charm")).unwrap();
        fs::create_dir_all(dir.join("state")).unwrap();
        let mut m = FakeModel::new(unit);
        m.leader = leader;
        m.config.insert("port".into(), json!(6379));
        m.ingress.insert("db".into(), "10.152.183.7".into());
        let u = Unit {
            env: HookEnv { unit_name: unit.into(), charm_dir: dir.join("charm"), ..Default::default() },
            dir,
            fake: FakeJuju::new(m),
        };
        u.set_image("registrypath: redis:7.0\nusername: ''\npassword: ''\n");
        u
    }

    fn set_image(&self, content: &str) {
        let p = self.dir.join("resources").join("content.yaml");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        self.fake.model.borrow_mut().resources.insert("redis-image".into(), Ok(p));
    }

    fn model(&self) -> std::cell::RefMut<'_, FakeModel> {
        self.fake.model.borrow_mut()
    }

    /// Runs a hook; returns the result as the one-line error text, and the tools it called.
    fn hook_env(&self, hook: &str, env: &HookEnv) -> (Result<(), String>, Vec<String>) {
        let before = self.fake.model.borrow().calls.len();
        let mut tools = HookTools::new(Box::new(self.fake.clone()));
        // SAFETY of the env var: tests in this file use the agent state dir, never the override.
        let r = redis_k8s::charm::run_hook(hook, env, &mut tools).map(|_| ()).map_err(|e| format!("{e:#}"));
        self.fake.model.borrow_mut().end_hook(r.is_ok());
        let calls = self.fake.model.borrow().calls[before..].iter().map(|c| c.tool.clone()).collect();
        (r, calls)
    }

    fn hook(&self, hook: &str) -> (Result<(), String>, Vec<String>) {
        let env = self.env.clone();
        self.hook_env(hook, &env)
    }

    fn deploy(&self) -> Vec<String> {
        let mut all = Vec::new();
        for h in [
            "install",
            if self.model().leader { "leader-elected" } else { "leader-settings-changed" },
            "config-changed",
            "start",
        ] {
            let (r, calls) = self.hook(h);
            r.unwrap_or_else(|e| panic!("{h}: {e}"));
            all.extend(calls);
        }
        all
    }

    fn store_bytes(&self) -> Vec<u8> {
        fs::read(self.dir.join("state").join(redis_k8s::reactive::store::FILE_NAME)).unwrap()
    }

    fn relate(&self, rid: &str) -> HookEnv {
        let mut rel = FakeRelation { remote_app: "client".into(), ..Default::default() };
        rel.units.insert("client/0".into(), Default::default());
        self.model().relations.insert(rid.into(), rel);
        HookEnv {
            relation: Some("db".into()),
            relation_id: Some(rid.into()),
            remote_unit: Some("client/0".into()),
            remote_app: Some("client".into()),
            ..self.env.clone()
        }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn golden(name: &str) -> String {
    fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)).unwrap()
}

#[test]
fn leader_deploy_sets_the_golden_spec_version_and_active_status() {
    let u = Unit::new("redis-k8s/0", true);
    let calls = u.deploy();
    let m = u.model();
    assert_eq!(m.pod_spec.as_deref(), Some(golden("podspec-default.yaml").as_str()));
    assert_eq!(m.pod_spec_commits, 1, "the spec is sent once in the whole deploy sequence");
    assert_eq!(m.version.as_deref(), Some("7.0"));
    assert_eq!(m.last_status(), Some(("active", "listening on port 6379")));
    let statuses: Vec<_> = m.statuses.iter().map(|(s, msg)| format!("{s}: {msg}")).collect();
    assert_eq!(
        statuses,
        [
            "maintenance: fetching resource: redis-image",
            "maintenance: configuring container",
            "active: listening on port 6379",
        ],
        "install shows work, then active, once"
    );
    assert!(calls.len() <= 20, "first deploy sequence: {} calls: {calls:?}", calls.len());
    assert_eq!(calls.iter().filter(|c| *c == "pod-spec-set").count(), 1);
}

#[test]
fn non_leader_never_calls_pod_spec_set_and_says_it_follows_the_leader() {
    let u = Unit::new("redis-k8s/1", false);
    let calls = u.deploy();
    assert!(!calls.contains(&"pod-spec-set".to_string()));
    let m = u.model();
    assert_eq!(m.pod_spec, None);
    assert_eq!(m.last_status(), Some(("active", "listening on port 6379 (pod spec set by the leader)")));
}

#[test]
fn unchanged_config_changed_and_update_status_are_cheap() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let (r, calls) = u.hook("config-changed");
    r.unwrap();
    assert!(calls.len() <= 4, "config-changed with nothing changed: {calls:?}");
    assert!(!calls.contains(&"pod-spec-set".to_string()));
    let (r, calls) = u.hook("update-status");
    r.unwrap();
    assert!(calls.len() <= 4, "update-status: {calls:?}");
    let mut dedup = calls.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), calls.len(), "no tool called twice: {calls:?}");
}

#[test]
fn port_change_re_renders_the_spec_and_republishes() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let env = u.relate("db:3");
    u.hook_env("db-relation-joined", &env).0.unwrap();
    assert_eq!(u.model().relations["db:3"].local["port"], "6379");

    u.model().config.insert("port".into(), json!(7000.0));
    let (r, calls) = u.hook("config-changed");
    r.unwrap();
    assert!(calls.contains(&"pod-spec-set".to_string()));
    let m = u.model();
    assert_eq!(m.pod_spec.as_deref(), Some(golden("podspec-port-7000.yaml").as_str()));
    assert_eq!(m.relations["db:3"].local["port"], "7000");
    assert_eq!(m.last_status(), Some(("active", "listening on port 7000")));
}

#[test]
fn invalid_port_blocks_naming_it_and_keeps_the_last_good_spec() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let good = u.model().pod_spec.clone();
    u.model().config.insert("port".into(), json!(70000));
    let (r, calls) = u.hook("config-changed");
    r.unwrap();
    assert!(!calls.contains(&"pod-spec-set".to_string()));
    assert_eq!(u.model().pod_spec, good);
    assert_eq!(u.model().last_status(), Some(("blocked", "invalid config: port must be 1-65535, got 70000")));
    // The next hook stays blocked (without re-sending the same status), and fixing it recovers.
    let (_, calls) = u.hook("update-status");
    assert!(!calls.contains(&"status-set".to_string()));
    u.model().config.insert("port".into(), json!(6379));
    let (r, calls) = u.hook("config-changed");
    r.unwrap();
    assert!(!calls.contains(&"pod-spec-set".to_string()), "back to the spec already in place");
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
}

#[test]
fn image_change_via_upgrade_charm_resends_the_spec_once() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    u.set_image("registrypath: registry.example.com/redis:7.2.4\nusername: bot\npassword: s3cret\n");
    let (r, calls) = u.hook("upgrade-charm");
    r.unwrap();
    assert!(calls.contains(&"resource-get".to_string()));
    assert!(calls.contains(&"pod-spec-set".to_string()));
    let spec = u.model().pod_spec.clone().unwrap();
    assert!(spec.contains("imagePath: registry.example.com/redis:7.2.4"));
    assert!(spec.contains("username: bot") && spec.contains("password: s3cret"));
    assert_eq!(u.model().version.as_deref(), Some("7.2.4"));
    // The original kept `.changed` set and re-sent the spec in every later hook; this one does not.
    for h in ["config-changed", "update-status"] {
        let (r, calls) = u.hook(h);
        r.unwrap();
        assert!(
            !calls.contains(&"pod-spec-set".to_string()) && !calls.contains(&"resource-get".to_string()),
            "{h}: {calls:?}"
        );
    }
    // The registry password never reaches a status, a log line or argv.
    let m = u.model();
    assert!(m.statuses.iter().chain(m.logs.iter()).all(|(_, msg)| !msg.contains("s3cret")));
    assert!(m.calls.iter().all(|c| c.args.iter().all(|a| !a.contains("s3cret"))));
}

#[test]
fn resource_without_registrypath_blocks_naming_the_resource_and_the_problem() {
    let u = Unit::new("redis-k8s/0", true);
    u.set_image("username: bot\n");
    let (r, calls) = u.hook("install");
    r.unwrap();
    assert!(!calls.contains(&"pod-spec-set".to_string()));
    let m = u.model();
    assert_eq!(
        m.last_status(),
        Some(("blocked", "unable to fetch resource: redis-image: content.yaml has no registrypath"))
    );
    assert!(m.logs.iter().any(|(l, msg)| l == "ERROR" && msg.contains("unable to fetch docker resource redis-image")));
    drop(m);
    // Retried in the next hook, and a good resource recovers.
    u.set_image("registrypath: redis:7.0\n");
    let (r, calls) = u.hook("config-changed");
    r.unwrap();
    assert!(calls.contains(&"pod-spec-set".to_string()));
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
}

#[test]
fn missing_resource_fails_the_hook_with_one_line_and_commits_nothing() {
    let u = Unit::new("redis-k8s/0", true);
    u.model().resources.insert("redis-image".into(), Err("resource#redis-k8s/redis-image not found".into()));
    let (r, _) = u.hook("install");
    let err = r.unwrap_err();
    assert!(
        err.starts_with("handler docker-resource:fetch: resource-get failed: ERROR could not download resource"),
        "{err}"
    );
    assert!(!err.contains('\n'));
    assert!(!u.dir.join("state").join(redis_k8s::reactive::store::FILE_NAME).exists());
    assert!(u.model().state.is_empty(), "the state-set mirror was discarded with the failed hook");
}

#[test]
fn relation_joined_publishes_own_address_and_changed_does_not_repeat_it() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let env = u.relate("db:3");
    let (r, calls) = u.hook_env("db-relation-joined", &env);
    r.unwrap();
    assert_eq!(calls.iter().filter(|c| *c == "relation-set").count(), 1);
    let local = u.model().relations["db:3"].local.clone();
    assert_eq!(local["host"], "10.152.183.7", "this application's own ingress address, not the client's");
    assert_eq!(local["hostname"], "10.152.183.7");
    assert_eq!(local["port"], "6379");
    let (r, calls) = u.hook_env("db-relation-changed", &env);
    r.unwrap();
    assert!(!calls.contains(&"relation-set".to_string()), "{calls:?}");
    // Broken: nothing is published.
    u.model().relations.get_mut("db:3").unwrap().units.clear();
    let env = HookEnv { remote_unit: None, ..env };
    let (r, calls) = u.hook_env("db-relation-broken", &env);
    r.unwrap();
    assert!(!calls.contains(&"relation-set".to_string()));
}

#[test]
fn a_failing_pod_spec_set_fails_the_hook_and_the_retry_sends_it() {
    let u = Unit::new("redis-k8s/0", true);
    u.model().faults.push(Fault {
        tool: "pod-spec-set".into(),
        nth: 0,
        error: ToolError::Runtime { tool: "pod-spec-set".into(), message: "ERROR this unit is not the leader".into() },
    });
    let (r, _) = u.hook("install");
    assert_eq!(r.unwrap_err(), "handler redis:configure: pod-spec-set failed: ERROR this unit is not the leader");
    assert_eq!(u.model().pod_spec, None);
    let (r, calls) = u.hook("install");
    r.unwrap();
    assert!(calls.contains(&"pod-spec-set".to_string()));
    assert!(u.model().pod_spec.is_some());
    let before = u.store_bytes();
    u.hook("update-status").0.unwrap();
    assert_eq!(u.store_bytes(), before, "a quiet hook rewrites nothing");
}
