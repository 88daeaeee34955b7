//! The charm's hooks end to end through the recording fake (no processes): what an operator sees
//! (pod spec, status, relation data) and what it costs (tool calls per hook).

use std::fs;
use std::path::PathBuf;

use redis_k8s::charm::Boundaries;
use redis_k8s::juju::fake::{FakeJuju, FakeModel, FakeRelation, Fault};
use redis_k8s::juju::{HookEnv, HookTools, ToolError};
use redis_k8s::pebble::Pebble;
use redis_k8s::pebble::fake::FakePebble;
use redis_k8s::redis::admin::Admin;
use redis_k8s::redis::admin::fake::FakeCluster;
use redis_k8s::workload::pebble::PebbleRuntime;
use serde_json::json;

struct Unit {
    dir: PathBuf,
    fake: FakeJuju,
    env: HookEnv,
    /// The pods' Redis and Sentinel servers, as the charm administers them (one healthy pod, no auth yet).
    cluster: FakeCluster,
    /// Administer real servers instead (check-service against a real redis-server).
    real_admin: std::cell::Cell<bool>,
    /// The sidecar flavour's Pebbles (`redis`, `sentinel`), when the charm dir holds the sidecar metadata.
    pebbles: Option<(FakePebble, FakePebble)>,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Unit {
    fn new(unit: &str, leader: bool) -> Unit {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("redis-k8s-charm-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("charm")).unwrap();
        // The charm dir's metadata says which archive this is: the podspec one.
        fs::write(dir.join("charm/metadata.yaml"), redis_k8s::meta::METADATA_YAML).unwrap();
        fs::create_dir_all(dir.join("state")).unwrap();
        let mut m = FakeModel::new(unit);
        m.leader = leader;
        m.config.insert("port".into(), json!(6379));
        m.ingress.insert("db".into(), "10.152.183.7".into());
        // Juju creates the peer relation with the application.
        m.relations
            .insert("redis-peers:0".into(), FakeRelation { remote_app: "redis-k8s".into(), ..Default::default() });
        let u = Unit {
            env: HookEnv {
                unit_name: unit.into(),
                charm_dir: dir.join("charm"),
                model_name: Some("test".into()),
                ..Default::default()
            },
            dir,
            fake: FakeJuju::new(m),
            cluster: FakeCluster::healthy("redis-k8s", 1, 6379, None),
            real_admin: std::cell::Cell::new(false),
            pebbles: None,
        };
        u.set_image("registrypath: redis:7.0\nusername: ''\npassword: ''\n");
        u
    }

    /// A unit of the sidecar archive: its charm dir holds the sidecar metadata, its pod's Pebbles are fakes.
    fn sidecar(unit: &str, leader: bool) -> Unit {
        let mut u = Unit::new(unit, leader);
        fs::write(u.env.charm_dir.join("metadata.yaml"), redis_k8s::meta::SIDECAR_METADATA_YAML).unwrap();
        u.pebbles = Some((FakePebble::new(), FakePebble::new()));
        u
    }

    /// A sidecar leader through its first hooks, both containers' Pebbles up.
    fn sidecar_ready(unit: &str) -> Unit {
        let u = Unit::sidecar(unit, true);
        for h in ["install", "leader-elected", "config-changed", "start", "redis-pebble-ready", "sentinel-pebble-ready"]
        {
            u.hook(h).0.unwrap_or_else(|e| panic!("{h}: {e}"));
        }
        u
    }

    /// Relates `source:9` to an old application's unit publishing `bag`; the env of its relation hooks.
    fn relate_source(&self, bag: redis_k8s::juju::Settings) -> HookEnv {
        let mut rel = FakeRelation { remote_app: "old-redis".into(), ..Default::default() };
        rel.units.insert("old-redis/0".into(), bag);
        self.model().relations.insert("source:9".into(), rel);
        HookEnv {
            relation: Some("source".into()),
            relation_id: Some("source:9".into()),
            remote_unit: Some("old-redis/0".into()),
            remote_app: Some("old-redis".into()),
            ..self.env.clone()
        }
    }

    fn pebble_runtime(&self) -> Option<PebbleRuntime> {
        self.pebbles.as_ref().map(|(redis, sentinel)| {
            PebbleRuntime::new([
                Pebble::new("redis", Box::new(redis.clone())),
                Pebble::new("sentinel", Box::new(sentinel.clone())),
            ])
        })
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

    fn admin(&self) -> Admin {
        if self.real_admin.get() { Admin::real() } else { Admin::new(Box::new(self.cluster.clone())) }
    }

    /// Runs a hook; returns the result as the one-line error text, and the tools it called.
    fn hook_env(&self, hook: &str, env: &HookEnv) -> (Result<(), String>, Vec<String>) {
        let before = self.fake.model.borrow().calls.len();
        let mut tools = HookTools::new(Box::new(self.fake.clone()));
        // SAFETY of the env var: tests in this file use the agent state dir, never the override.
        let with = Boundaries { admin: self.admin(), pebble: self.pebble_runtime() };
        let r = redis_k8s::charm::run_hook_in(hook, env, &mut tools, with).map(|_| ()).map_err(|e| format!("{e:#}"));
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
        fs::read(self.dir.join("state").join(redis_k8s::charm::STORE.file)).unwrap()
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

/// The golden files are rendered with this password (set here as the `password` option).
const GOLDEN_PASSWORD: &str = "golden-test-password-0123456789";

#[test]
fn leader_deploy_sets_the_golden_spec_version_and_active_status() {
    let u = Unit::new("redis-k8s/0", true);
    u.model().config.insert("password".into(), json!(GOLDEN_PASSWORD));
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
    // Until the leader has shared the password, a non-leader says so.
    u.hook("install").0.unwrap();
    assert_eq!(u.model().last_status(), Some(("waiting", "waiting for the leader to share the Redis password")));
    let mut peers = FakeRelation { remote_app: "redis-k8s".into(), ..Default::default() };
    peers.local_app.insert("password".into(), "shared-by-the-leader-0123456789ab".into());
    peers.units.insert("redis-k8s/0".into(), Default::default());
    u.model().relations.insert("redis-peers:0".into(), peers);
    let env = HookEnv {
        relation: Some("redis-peers".into()),
        relation_id: Some("redis-peers:0".into()),
        remote_unit: Some("redis-k8s/0".into()),
        ..u.env.clone()
    };
    u.hook_env("redis-peers-relation-joined", &env).0.unwrap();
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
    // The first update-status checks the pods (and shares the primary it finds); later ones only check.
    u.hook("update-status").0.unwrap();
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
    u.model().config.insert("password".into(), json!(GOLDEN_PASSWORD));
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
    assert_eq!(
        m.last_status(),
        Some(("active", "listening on port 7000; auth on: ops-library clients cannot connect"))
    );
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

/// Found by the soak (seed 0x18ec1c24e7b9151d): a scale-down to one unit while the config was blocked, with the
/// remaining pod's redis-server killed during the departing primary's hand-over, left it a replica of the pod
/// that was gone, and update-status (blocked on the config) did nothing: no writable primary, for good.
#[test]
fn while_the_config_is_blocked_the_leader_still_recovers_a_lost_primary_and_keeps_the_spec() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    u.hook("update-status").0.unwrap();
    let good = u.model().pod_spec.clone();
    u.model().config.insert("maxmemory-policy".into(), json!("lru"));
    u.hook("config-changed").0.unwrap();
    {
        let mut r = u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379");
        r.replica_of = Some(("redis-k8s-1.redis-k8s-endpoints".into(), 6379));
        r.link_up = false;
        u.cluster.state_mut().redis.insert("redis-k8s-0.redis-k8s-endpoints:6379".into(), r);
    }
    let (r, calls) = u.hook("update-status");
    r.unwrap();
    assert_eq!(u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379").replica_of, None, "promoted");
    assert!(!calls.contains(&"pod-spec-set".to_string()), "{calls:?}");
    assert_eq!(u.model().pod_spec, good);
    let status = u.model().last_status().map(|(s, m)| (s.to_string(), m.to_string()));
    assert_eq!(status.as_ref().map(|(s, _)| s.as_str()), Some("blocked"), "{status:?}");
    assert!(status.unwrap().1.contains("maxmemory-policy"));
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
    // Fetched again in update-status (or upgrade-charm, which attach-resource fires), and a good resource recovers.
    u.set_image("registrypath: redis:7.0\n");
    let (r, calls) = u.hook("config-changed");
    r.unwrap();
    assert!(!calls.contains(&"resource-get".to_string()), "{calls:?}");
    assert_eq!(u.model().last_status().map(|(s, _)| s), Some("blocked"));
    let (r, calls) = u.hook("update-status");
    r.unwrap();
    assert!(calls.contains(&"pod-spec-set".to_string()));
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
}

#[test]
fn an_image_path_that_is_not_a_reference_blocks_and_is_never_sent() {
    for (path, why) in [
        ("'redis:7.0$(reboot)'", "registrypath \"redis:7.0$(reboot)\" in content.yaml is not an image reference"),
        ("'--privileged'", "registrypath \"--privileged\" in content.yaml is not an image reference"),
        ("\"redis\\u200b:7.0\"", "registrypath \"redis\\u{200b}:7.0\" in content.yaml is not an image reference"),
    ] {
        let u = Unit::new("redis-k8s/0", true);
        u.set_image(&format!("registrypath: {path}\n"));
        let (r, calls) = u.hook("install");
        r.unwrap();
        assert!(
            !calls.contains(&"pod-spec-set".to_string()) && !calls.contains(&"application-version-set".to_string())
        );
        let m = u.model();
        let (s, msg) = m.last_status().unwrap();
        assert_eq!(s, "blocked");
        assert!(msg.starts_with(&format!("unable to fetch resource: redis-image: {why}: ")), "{msg}");
    }
    let u = Unit::new("redis-k8s/0", true);
    u.set_image(&format!("registrypath: redis/{}\n", "a".repeat(60_000)));
    let (r, _) = u.hook("install");
    r.unwrap();
    let m = u.model();
    let (s, msg) = m.last_status().unwrap();
    assert_eq!(s, "blocked");
    assert!(msg.len() < 200 && msg.ends_with("the repository name is longer than 255 characters"), "{msg}");
}

/// layer:docker-resource's contract: a resource that fails to download sets `.failed` and blocks; the hook
/// succeeds, and the fetch is tried again (update-status, upgrade-charm) until it heals.
#[test]
fn missing_resource_blocks_with_the_tools_error_and_heals_by_itself() {
    let u = Unit::new("redis-k8s/0", true);
    u.model().resources.insert("redis-image".into(), Err("resource#redis-k8s/redis-image not found".into()));
    let expected = "unable to fetch resource: redis-image: \
                    ERROR could not download resource: resource#redis-k8s/redis-image not found";
    for h in ["install", "leader-elected", "config-changed", "start"] {
        let (r, calls) = u.hook(h);
        r.unwrap_or_else(|e| panic!("{h}: {e}"));
        assert!(!calls.contains(&"pod-spec-set".to_string()), "{h}");
        assert_eq!(u.model().last_status(), Some(("blocked", expected)), "{h}");
    }
    assert_eq!(u.model().count("resource-get"), 1, "only install tried; the next try is update-status");
    let store = String::from_utf8(u.store_bytes()).unwrap();
    assert!(store.contains("layer.docker-resource.redis-image.failed"), "{store}");
    // Still missing in update-status: tried again, still blocked.
    let (r, calls) = u.hook("update-status");
    r.unwrap();
    assert!(calls.contains(&"resource-get".to_string()));
    assert_eq!(u.model().last_status(), Some(("blocked", expected)));
    // Attached: the next update-status heals the unit.
    u.set_image("registrypath: redis:7.0\n");
    let (r, calls) = u.hook("update-status");
    r.unwrap();
    assert!(calls.contains(&"pod-spec-set".to_string()), "{calls:?}");
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
    let store = String::from_utf8(u.store_bytes()).unwrap();
    assert!(!store.contains("layer.docker-resource.redis-image.failed"), "{store}");
}

#[test]
fn a_download_that_hangs_blocks_and_upgrade_charm_heals_it() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let n = u.model().count("resource-get");
    u.model().faults.push(Fault {
        tool: "resource-get".into(),
        nth: n,
        error: redis_k8s::juju::fake::timeout_fault("resource-get"),
    });
    let (r, _) = u.hook("upgrade-charm");
    r.unwrap();
    assert_eq!(
        u.model().last_status(),
        Some((
            "blocked",
            "unable to fetch resource: redis-image: resource-get did not finish within 300s and was killed"
        ))
    );
    let (r, calls) = u.hook("upgrade-charm");
    r.unwrap();
    assert!(calls.contains(&"resource-get".to_string()));
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
}

#[test]
fn resource_get_missing_from_path_still_fails_the_hook_and_commits_nothing() {
    let u = Unit::new("redis-k8s/0", true);
    u.model().faults.push(Fault {
        tool: "resource-get".into(),
        nth: 0,
        error: ToolError::Missing { tool: "resource-get".into() },
    });
    let (r, _) = u.hook("install");
    let err = r.unwrap_err();
    assert!(err.starts_with("handler docker-resource:fetch: resource-get not found on PATH"), "{err}");
    assert!(!err.contains('\n'));
    assert!(!u.dir.join("state").join(redis_k8s::charm::STORE.file).exists());
    assert!(u.model().state.is_empty(), "the state-set mirror was discarded with the failed hook");
}

#[test]
fn relation_joined_publishes_own_address_and_changed_does_not_repeat_it() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let env = u.relate("db:3");
    let (r, calls) = u.hook_env("db-relation-joined", &env);
    r.unwrap();
    assert_eq!(calls.iter().filter(|c| *c == "relation-set").count(), 2, "unit bag and, as leader, app bag");
    assert_eq!(u.model().relations["db:3"].local_app["leader-host"], "10.152.183.7");
    let warned = u.model().logs.iter().any(|(l, m)| l == "WARNING" && m.contains("cannot send a password"));
    assert!(warned, "joining while auth is on warns about ops-library clients");
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
    // The first update-status checks the pods (and learns the primary); the next one has nothing to record.
    u.hook("update-status").0.unwrap();
    let before = u.store_bytes();
    u.hook("update-status").0.unwrap();
    assert_eq!(u.store_bytes(), before, "a quiet hook rewrites nothing");
}

// ---- actions ---------------------------------------------------------------------------------------

fn run_action(u: &Unit, action: &str) -> Result<(), String> {
    let mut tools = HookTools::new(Box::new(u.fake.clone()));
    let env = HookEnv { action_name: Some(action.into()), ..u.env.clone() };
    let with = Boundaries { admin: u.admin(), pebble: u.pebble_runtime() };
    let r = redis_k8s::charm::run_action_in(action, &env, &mut tools, with).map(|_| ()).map_err(|e| format!("{e:#}"));
    u.fake.model.borrow_mut().end_hook(r.is_ok());
    r
}

#[test]
fn the_leader_generates_a_password_into_the_peer_bag_and_get_password_returns_it() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let pw = u.model().relations["redis-peers:0"].local_app.get("password").cloned().expect("a generated password");
    assert_eq!(pw.len(), 32);
    run_action(&u, "get-password").unwrap();
    let m = u.model();
    assert_eq!(m.action_results.get("password"), Some(&pw));
    assert_eq!(m.action_results.get("require-auth").map(String::as_str), Some("true"));
    // Generated once: later hooks keep it.
    drop(m);
    u.hook("config-changed").0.unwrap();
    u.hook("update-status").0.unwrap();
    assert_eq!(u.model().relations["redis-peers:0"].local_app["password"], pw);
    // Never on a relation-set command line: it went through stdin.
    let m = u.model();
    let leaks: Vec<_> =
        m.calls.iter().filter(|c| c.tool != "action-set" && c.args.iter().any(|a| a.contains(&pw))).collect();
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn rotate_password_refuses_on_a_non_leader_and_rotates_on_the_leader() {
    let u = Unit::new("redis-k8s/1", false);
    u.deploy();
    run_action(&u, "rotate-password").unwrap();
    assert!(u.model().action_failed.as_deref().unwrap_or_default().contains("must run on the leader"));

    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let bag = |u: &Unit, k: &str| u.model().relations["redis-peers:0"].local_app.get(k).cloned();
    let before = bag(&u, "password").unwrap();
    run_action(&u, "rotate-password").unwrap();
    assert_eq!(u.model().action_failed, None);
    assert_eq!(u.model().action_results.get("rotated").map(String::as_str), Some("true"));
    // Step 1: the new password is pending; nothing else changed and no server was told.
    let new = bag(&u, "pending-password").expect("a pending password");
    assert_ne!(new, before);
    assert_eq!(bag(&u, "password").as_deref(), Some(before.as_str()));
    let redis = "redis-k8s-0.redis-k8s-endpoints:6379";
    assert!(!u.cluster.redis(redis).passwords.contains(&new), "the action applied an uncommitted password");
    // Step 2: the leader's relation-changed (Juju runs it on the writer too) makes the server take it, then
    // shares it, with the old one still accepted; clients get the new one.
    let peer_changed = HookEnv {
        relation: Some("redis-peers".into()),
        relation_id: Some("redis-peers:0".into()),
        remote_app: Some("redis-k8s".into()),
        ..u.env.clone()
    };
    u.hook_env("redis-peers-relation-changed", &peer_changed).0.unwrap();
    assert_eq!(bag(&u, "password").as_deref(), Some(new.as_str()));
    assert_eq!(bag(&u, "previous-password").as_deref(), Some(before.as_str()));
    assert_eq!(bag(&u, "pending-password"), None);
    assert_eq!(u.cluster.redis(redis).passwords, [new.clone(), before.clone()]);
    assert!(u.model().pod_spec.as_deref().is_some_and(|s| s.contains(&new) && s.contains(&before)));
    // Step 3: the next update-status retires the old one everywhere.
    u.hook("update-status").0.unwrap();
    assert_eq!(bag(&u, "previous-password"), None);
    assert_eq!(u.cluster.redis(redis).passwords, std::slice::from_ref(&new));
    assert!(u.model().pod_spec.as_deref().is_some_and(|s| s.contains(&new) && !s.contains(&before)));
}

#[test]
fn rotate_password_is_refused_while_the_option_sets_one() {
    let u = Unit::new("redis-k8s/0", true);
    u.model().config.insert("password".into(), json!("operator-chosen-password-1234"));
    u.deploy();
    run_action(&u, "rotate-password").unwrap();
    assert!(u.model().action_failed.as_deref().unwrap_or_default().contains("password option is set"));
    run_action(&u, "get-password").unwrap();
    assert_eq!(u.model().action_results.get("password").map(String::as_str), Some("operator-chosen-password-1234"));
}

/// check-service against a real redis-server on a loopback port this test picks, with a password.
#[test]
fn check_service_reports_role_and_version_from_a_real_redis() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let pw = "check-service-test-password-0001";
    let mut child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--requirepass", pw, "--daemonize", "no", "--logfile", ""])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed (make setup)");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Kill(std::mem::replace(&mut child, std::process::Command::new("true").spawn().unwrap()))
    };
    let u = Unit::new("redis-k8s/0", true);
    u.real_admin.set(true);
    u.model().config.insert("port".into(), json!(port));
    u.model().config.insert("password".into(), json!(pw));
    // The password Redis requires is the one the peer bag holds (the leader shares the option's there).
    u.model().relations.get_mut("redis-peers:0").unwrap().local_app.insert("password".into(), pw.into());
    run_action(&u, "check-service").unwrap();
    let m = u.model();
    assert_eq!(m.action_failed, None, "{:?}", m.action_failed);
    assert_eq!(m.action_results.get("role").map(String::as_str), Some("primary"));
    assert!(m.action_results.get("version").is_some_and(|v| v.starts_with(char::is_numeric)));
    drop(m);
    // A wrong password is refused, and the action says Redis did not answer, without echoing it.
    u.model()
        .relations
        .get_mut("redis-peers:0")
        .unwrap()
        .local_app
        .insert("password".into(), "definitely-not-the-password-99".into());
    run_action(&u, "check-service").unwrap();
    let failed = u.model().action_failed.clone().unwrap_or_default();
    assert!(failed.contains("does not answer") && !failed.contains("definitely-not"), "{failed}");
}

#[test]
fn first_deploy_with_the_peer_relation_stays_within_twenty_tool_calls() {
    let u = Unit::new("redis-k8s/0", true);
    let calls = u.deploy();
    assert!(calls.len() <= 20, "first deploy sequence: {} calls: {calls:?}", calls.len());
    assert_eq!(calls.iter().filter(|c| *c == "relation-set").count(), 1, "the password is stored once");
}

// ---- what the two families of client read (issue: every client) -------------------------------------

/// Runs tests/requirers/read_relation.py, which reads the relation with the real charms.reactive
/// `JSONUnitDataView` (PyPI) and mirrors the requirer rules of interface:redis and the ops library.
fn read_as_clients(units: &[(&str, &Unit)], rid: &str) -> serde_json::Value {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-tools/bin/python");
    assert!(python.exists(), "{} is missing: run `make setup` (it installs charms.reactive)", python.display());
    let mut bags = serde_json::Map::new();
    let mut app = serde_json::Map::new();
    for (name, u) in units {
        let m = u.model();
        bags.insert(name.to_string(), json!(m.relations[rid].local));
        if m.leader {
            app = m.relations[rid].local_app.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        }
    }
    let input = json!({"units": bags, "app": app}).to_string();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/requirers/read_relation.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "read_relation.py failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn one_unit_both_families_read_host_port_and_only_reactive_gets_the_password() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    let env = u.relate("db:3");
    u.hook_env("db-relation-joined", &env).0.unwrap();
    let pw = u.model().relations["redis-peers:0"].local_app["password"].clone();

    let seen = read_as_clients(&[("redis-k8s/0", &u)], "db:3");
    assert_eq!(seen["reactive"]["available"], json!(true));
    assert_eq!(
        seen["reactive"]["first"],
        json!({"unit": "redis-k8s/0", "host": "10.152.183.7", "port": 6379, "password": pw})
    );
    assert_eq!(seen["ops"]["urls"], json!(["redis://10.152.183.7:6379"]));
    assert_eq!(seen["ops"]["ports_are_ints"], json!(true));

    // Port change: both families follow.
    u.model().config.insert("port".into(), json!(7000));
    u.hook("config-changed").0.unwrap();
    let seen = read_as_clients(&[("redis-k8s/0", &u)], "db:3");
    assert_eq!(seen["reactive"]["first"]["port"], json!(7000));
    assert_eq!(seen["ops"]["urls"], json!(["redis://10.152.183.7:7000"]));

    // Auth off (the escape hatch for ops-library clients): no password is published at all.
    u.model().config.insert("require-auth".into(), json!(false));
    u.hook("config-changed").0.unwrap();
    let seen = read_as_clients(&[("redis-k8s/0", &u)], "db:3");
    assert!(seen["reactive"]["first"].get("password").is_none(), "{seen}");
    assert!(!u.model().relations["db:3"].local.contains_key("password"));
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 7000")));
}

#[test]
fn a_client_joining_while_the_config_is_blocked_gets_the_last_good_data() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    u.model().config.insert("port".into(), json!(70000));
    u.hook("config-changed").0.unwrap();
    let env = u.relate("db:4");
    u.hook_env("db-relation-joined", &env).0.unwrap();
    let local = u.model().relations["db:4"].local.clone();
    assert_eq!(local.get("port").map(String::as_str), Some("6379"), "where Redis really listens: {local:?}");
    assert_eq!(local.get("host").map(String::as_str), Some("10.152.183.7"));
}

/// A unit that joined (here: a leader elected) while the config was already invalid never saw a good one itself:
/// it acts on the one the previous leader shared in the peer bag. Its clients learn where Redis really listens,
/// and as leader it still recovers a lost primary.
#[test]
fn a_unit_that_never_saw_a_good_config_acts_on_the_one_shared_in_the_peer_bag() {
    let u = Unit::new("redis-k8s/0", true);
    {
        let mut m = u.model();
        let peers = m.relations.get_mut("redis-peers:0").unwrap();
        peers.local_app.insert("password".into(), "shared-password-0123456789abcdef".into());
        peers.local_app.insert("password-generation".into(), "1".into());
        let good = json!({"port": 7000, "require-auth": true}).to_string();
        peers.local_app.insert("last-good-config".into(), good);
        m.config.insert("maxmemory-policy".into(), json!("lru"));
    }
    for h in ["install", "leader-elected", "config-changed", "start"] {
        u.hook(h).0.unwrap_or_else(|e| panic!("{h}: {e}"));
    }
    assert_eq!(u.model().last_status().map(|(s, _)| s.to_string()), Some("blocked".into()));
    assert_eq!(u.model().pod_spec, None, "no spec from a config this unit cannot render");
    assert_eq!(
        u.model().relations["redis-peers:0"].local_app.get("last-good-config").map(|c| c.contains("7000")),
        Some(true)
    );

    let env = u.relate("db:5");
    u.hook_env("db-relation-joined", &env).0.unwrap();
    let local = u.model().relations["db:5"].local.clone();
    assert_eq!(local.get("port").map(String::as_str), Some("7000"), "{local:?}");
}

#[test]
fn get_password_works_while_another_option_is_invalid() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    u.model().config.insert("maxmemory".into(), json!("lots"));
    u.hook("config-changed").0.unwrap();
    assert_eq!(u.model().last_status().map(|(s, _)| s.to_string()), Some("blocked".into()));
    run_action(&u, "get-password").unwrap();
    assert_eq!(u.model().action_failed, None);
    assert_eq!(u.model().action_results.get("password").map(String::len), Some(32));
}

/// A non-leader holds a copy of the peer application bag; a password the leader changes there reaches the
/// unit's clients in the unit's next update-status and peer relation hook (Juju runs no other hook on a
/// non-leader for a change of the application bag), and a hook that must not re-read it keeps its copy.
#[test]
fn a_password_changed_in_the_peer_bag_reaches_a_non_leaders_clients_in_update_status_and_peer_hooks() {
    let u = Unit::new("redis-k8s/1", false);
    let set_bag_password = |pw: &str| {
        let mut m = u.model();
        let peers = m.relations.get_mut("redis-peers:0").unwrap();
        peers.local_app.insert("password".into(), pw.into());
        peers.units.entry("redis-k8s/0".into()).or_default();
    };
    let published = |rid: &str| u.model().relations[rid].local.get("password").cloned().unwrap_or_default();
    set_bag_password("first-password-0123456789abcdef");
    u.deploy();
    let env = u.relate("db:6");
    u.hook_env("db-relation-joined", &env).0.unwrap();
    assert!(published("db:6").contains("first-password-0123456789abcdef"), "{}", published("db:6"));

    set_bag_password("second-password-0123456789abcde");
    u.hook("config-changed").0.unwrap();
    assert!(published("db:6").contains("first-password"), "config-changed keeps the copy it has");
    u.hook("update-status").0.unwrap();
    assert!(published("db:6").contains("second-password-0123456789abcde"), "{}", published("db:6"));

    set_bag_password("third-password-0123456789abcdef");
    let peer_env = HookEnv {
        relation: Some("redis-peers".into()),
        relation_id: Some("redis-peers:0".into()),
        remote_app: Some("redis-k8s".into()),
        ..u.env.clone()
    };
    u.hook_env("redis-peers-relation-changed", &peer_env).0.unwrap();
    assert!(published("db:6").contains("third-password-0123456789abcdef"), "{}", published("db:6"));
}

/// The sidecar archive over a whole lifecycle (deploy, both containers' pebble-ready, a port change, a client,
/// update-status, a password rotation): the workload reaches each container's Pebble as a layer and pushed files,
/// and no hook calls a tool Juju 4.0 removed (`pod-spec-set`, `k8s-spec-set`, `leader-get`, `leader-set`).
#[test]
fn the_sidecar_flavour_drives_pebble_and_never_calls_a_podspec_or_leadership_tool() {
    let u = Unit::sidecar("redis-k8s/0", true);
    let mut calls = Vec::new();
    let mut run = |h: &str, env: Option<HookEnv>| {
        let (r, c) = u.hook_env(h, &env.unwrap_or_else(|| u.env.clone()));
        r.unwrap_or_else(|e| panic!("{h}: {e}"));
        calls.extend(c);
    };
    for h in ["install", "leader-elected", "config-changed", "start"] {
        run(h, None);
    }
    assert_eq!(
        u.model().last_status(),
        Some(("waiting", "waiting for Pebble in the redis and sentinel containers")),
        "before Pebble is up"
    );
    let (redis, sentinel) = u.pebbles.clone().unwrap();
    assert!(redis.requests().is_empty(), "no Pebble call before pebble-ready: {:?}", redis.requests());
    run("redis-pebble-ready", None);
    assert!(redis.requests().is_empty(), "one container of two is not enough");
    assert_eq!(u.model().last_status(), Some(("waiting", "waiting for Pebble in the sentinel container")));
    run("sentinel-pebble-ready", None);
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
    for (name, p) in [("redis", &redis), ("sentinel", &sentinel)] {
        let plan = serde_yaml::to_string(&p.plan()).unwrap();
        assert!(plan.contains(&format!("{name}:")), "{name}'s plan: {plan}");
        assert_eq!(p.service(name).map(|s| s.current), Some("active".to_string()), "{name} runs");
    }
    let pw = u.model().relations["redis-peers:0"].local_app["password"].clone();
    for p in [&redis, &sentinel] {
        let plan = serde_yaml::to_string(&p.plan()).unwrap();
        assert!(!plan.contains(&pw), "the password never goes into a layer (GET /v1/plan shows it)");
    }

    u.model().config.insert("port".into(), json!(7000));
    run("config-changed", None);
    let plan = serde_yaml::to_string(&redis.plan()).unwrap();
    assert!(plan.contains("7000"), "the checks follow the port: {plan}");
    // The port is only in files and checks, so a replan restarts nothing: the running Redis was moved live.
    assert!(u.cluster.state().redis.contains_key("redis-k8s-0.redis-k8s-endpoints:7000"), "Redis moved to 7000");
    assert_eq!(redis.service("redis").map(|s| s.starts), Some(1), "and not restarted");
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 7000")));
    let env = u.relate("db:7");
    run("db-relation-joined", Some(env));
    assert_eq!(u.model().relations["db:7"].local["port"], "7000");
    run("update-status", None);
    run_action(&u, "rotate-password").unwrap();
    run("update-status", None);

    let removed = ["pod-spec-set", "k8s-spec-set", "leader-get", "leader-set"];
    let bad: Vec<&String> = calls.iter().filter(|c| removed.contains(&c.as_str())).collect();
    assert!(bad.is_empty(), "tools Juju 4.0 removed: {bad:?} (all: {calls:?})");
    assert!(!calls.iter().any(|c| c == "resource-get"), "Juju pulls a sidecar charm's image itself: {calls:?}");
}

/// A container whose Pebble stops answering (the container restarting) is waited for, not an error; its next
/// pebble-ready sends it everything again.
#[test]
fn a_sidecar_unit_waits_for_a_restarting_pebble_and_resends_everything_when_it_is_back() {
    let u = Unit::sidecar_ready("redis-k8s/0");
    let (redis, _) = u.pebbles.clone().unwrap();
    let pushed = redis.requests().len();
    redis.set_running(false);
    u.model().config.insert("maxmemory".into(), json!("100mb"));
    let (r, _) = u.hook("config-changed");
    r.unwrap();
    assert_eq!(u.model().last_status(), Some(("waiting", "waiting for Pebble in the redis container")));
    // The container comes back with an empty Pebble: everything is sent again.
    redis.restart_afresh();
    u.hook("redis-pebble-ready").0.unwrap();
    assert_eq!(redis.service("redis").map(|s| s.current), Some("active".to_string()));
    assert!(redis.requests().len() > pushed, "resent after pebble-ready");
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
}

/// Under Pebble a port change is applied live (`CONFIG SET port`); a Redis that cannot move (older than 7.0)
/// blocks the change, naming the pod, before any of it is shared or sent.
#[test]
fn a_sidecar_port_change_a_redis_cannot_apply_live_blocks_and_changes_nothing() {
    let u = Unit::sidecar_ready("redis-k8s/0");
    let (redis, _) = u.pebbles.clone().unwrap();
    let plan_before = redis.plan();
    let bag_before = u.model().relations["redis-peers:0"].local_app.clone();
    u.cluster.state_mut().redis.get_mut("redis-k8s-0.redis-k8s-endpoints:6379").unwrap().config.remove("port");
    u.model().config.insert("port".into(), json!(7000));
    u.hook("config-changed").0.unwrap();
    let status = u.model().last_status().map(|(s, m)| (s.to_string(), m.to_string())).unwrap();
    assert_eq!(status.0, "blocked", "{status:?}");
    assert!(status.1.starts_with("port 7000 cannot be applied: redis-k8s-0 refused to move from 6379"), "{status:?}");
    assert!(status.1.ends_with("set port back to 6379"), "{status:?}");
    assert_eq!(redis.plan(), plan_before, "nothing sent to Pebble");
    assert_eq!(u.model().relations["redis-peers:0"].local_app, bag_before, "nothing shared");
    u.model().config.insert("port".into(), json!(6379));
    u.hook("config-changed").0.unwrap();
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
}

/// A sidecar non-leader runs what the leader rendered and shared (so a change reaches its pod only once the
/// leader applied it to the running servers), not its own view of the config; with nothing shared it waits.
#[test]
fn a_sidecar_non_leader_follows_the_config_the_leader_shared() {
    let u = Unit::sidecar("redis-k8s/1", false);
    {
        let mut m = u.model();
        let peers = m.relations.get_mut("redis-peers:0").unwrap();
        peers.units.entry("redis-k8s/0".into()).or_default();
        peers.local_app.insert("password".into(), "shared-password-0123456789abcdef".into());
        peers.local_app.insert("password-generation".into(), "1".into());
    }
    for h in ["install", "leader-settings-changed", "config-changed", "start", "redis-pebble-ready"] {
        u.hook(h).0.unwrap_or_else(|e| panic!("{h}: {e}"));
    }
    u.hook("sentinel-pebble-ready").0.unwrap();
    assert_eq!(u.model().last_status(), Some(("waiting", "waiting for the leader to share the config")));
    let (redis, _) = u.pebbles.clone().unwrap();
    assert!(redis.layers().is_empty(), "nothing sent before the leader shared a config");

    let shared = json!({"port": 7000, "require-auth": true}).to_string();
    u.model().relations.get_mut("redis-peers:0").unwrap().local_app.insert("last-good-config".into(), shared);
    let peer_env = HookEnv {
        relation: Some("redis-peers".into()),
        relation_id: Some("redis-peers:0".into()),
        remote_app: Some("redis-k8s".into()),
        ..u.env.clone()
    };
    u.hook_env("redis-peers-relation-changed", &peer_env).0.unwrap();
    let plan = serde_yaml::to_string(&redis.plan()).unwrap();
    assert!(plan.contains("7000"), "{plan}");
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 7000")));
}

/// In the sidecar flavour Juju shows no pod readiness: the unit says it, in update-status, from its containers'
/// Pebble readiness checks.
#[test]
fn a_sidecar_unit_reports_a_failing_readiness_check_in_update_status() {
    let u = Unit::sidecar_ready("redis-k8s/0");
    let (redis, _) = u.pebbles.clone().unwrap();
    redis.set_check("redis-ready", "down", 3);
    u.hook("update-status").0.unwrap();
    assert_eq!(
        u.model().last_status(),
        Some(("waiting", "container \"redis\" not ready: check redis-ready failing (3 failures)"))
    );
    redis.set_check("redis-ready", "up", 0);
    u.hook("update-status").0.unwrap();
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
    // Juju 3.6+ says so at once: the check hooks look too.
    redis.set_check("redis-ready", "down", 3);
    u.hook("redis-pebble-check-failed").0.unwrap();
    assert_eq!(u.model().last_status().map(|(s, _)| s), Some("waiting"));
    redis.set_check("redis-ready", "up", 0);
    u.hook("redis-pebble-check-recovered").0.unwrap();
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
}

/// Pebble calls are counted like tool calls: a quiet config-changed sends Pebble nothing, and update-status
/// reads each container's checks once (`GET /v1/checks`), nothing else.
#[test]
fn quiet_sidecar_hooks_cost_no_pebble_call_but_update_status_s_checks() {
    let u = Unit::sidecar_ready("redis-k8s/0");
    // The first config-changed with the password committed applies it to the running servers (and shares the
    // primary it finds); the next one has nothing to do.
    u.hook("config-changed").0.unwrap();
    let (redis, sentinel) = u.pebbles.clone().unwrap();
    let count = || redis.requests().len() + sentinel.requests().len();
    let before = count();
    let (r, calls) = u.hook("config-changed");
    r.unwrap();
    assert_eq!(count(), before, "a quiet config-changed: {:?}", redis.requests());
    assert!(calls.len() <= 4, "{calls:?}");
    u.hook("update-status").0.unwrap();
    let (r, _) = u.hook("update-status");
    r.unwrap();
    let last: Vec<String> =
        redis.requests().into_iter().rev().take(1).chain(sentinel.requests().into_iter().rev().take(1)).collect();
    assert_eq!(last, ["GET /v1/checks", "GET /v1/checks"]);
    assert_eq!(count(), before + 4, "two update-status hooks, one checks call per container each");
}

const OLD_HOST: &str = "old-redis-0.old-redis-endpoints.test.svc.cluster.local";
const OLD_PW: &str = "old-app-password-0123456789abcdef";

/// The migration from a deployed podspec application, through the fakes: relating `source` to its `db`
/// endpoint makes this application's primary a replica of the old one (Sentinels out of the way) and the status
/// tells the progress; `promote` switches over once in sync; nothing the source publishes later is followed.
#[test]
fn a_sidecar_application_copies_a_podspec_one_through_source_and_promote_switches_over() {
    let u = Unit::sidecar_ready("redis-k8s/0");
    u.hook("config-changed").0.unwrap();
    let mut old = u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379");
    old.passwords = vec![OLD_PW.into()];
    old.offset = 5000;
    u.cluster.state_mut().redis.insert(format!("{OLD_HOST}:6379"), old);

    let mut bag = redis_k8s::juju::Settings::new();
    bag.insert("host".into(), OLD_HOST.into());
    bag.insert("port".into(), "6379".into());
    bag.insert("password".into(), format!("\"{OLD_PW}\""));
    let env = u.relate_source(bag);
    for h in ["source-relation-created", "source-relation-joined", "source-relation-changed"] {
        u.hook_env(h, &env).0.unwrap_or_else(|e| panic!("{h}: {e}"));
    }
    let primary = u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379");
    assert_eq!(primary.replica_of, Some((OLD_HOST.to_string(), 6379)), "the primary follows the source");
    assert_eq!(primary.config["masterauth"], OLD_PW);
    assert!(u.cluster.sentinel("redis-k8s-0.redis-k8s-endpoints:26379").monitor.is_none());
    let status = u.model().last_status().map(|(s, m)| (s.to_string(), m.to_string())).unwrap();
    assert_eq!(status.0, "waiting");
    assert!(status.1.starts_with(&format!("migrating from {OLD_HOST}:6379: in sync at offset")), "{status:?}");
    assert!(!u.model().statuses.iter().any(|(_, m)| m.contains(OLD_PW)), "the source's password is not echoed");
    // update-status keeps following: no pod is "promoted, as no pod was a writable primary".
    u.hook("update-status").0.unwrap();
    assert!(u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379").replica_of.is_some());

    // Behind the source: promote refuses after its pause, and nothing changes.
    u.model().action_params.insert("pause-seconds".into(), json!(1));
    run_action(&u, "promote").unwrap();
    assert!(
        u.model().action_failed.as_deref().is_some_and(|m| m.contains("did not catch up")),
        "{:?}",
        u.model().action_failed
    );
    u.model().action_failed = None;
    u.cluster.state_mut().redis.get_mut("redis-k8s-0.redis-k8s-endpoints:6379").unwrap().offset = 5000;
    run_action(&u, "promote").unwrap();
    assert_eq!(u.model().action_failed, None);
    assert_eq!(u.model().action_results.get("promoted").map(String::as_str), Some("redis-k8s-0"));
    let primary = u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379");
    assert_eq!(primary.replica_of, None);
    let m = u.cluster.sentinel("redis-k8s-0.redis-k8s-endpoints:26379").monitor.expect("monitoring again");
    assert_eq!((m.host.as_str(), m.port), ("redis-k8s-0.redis-k8s-endpoints", 6379));
    assert_eq!(u.model().relations["redis-peers:0"].local_app["migration-source"], "promoted");

    u.hook("update-status").0.unwrap();
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
    u.hook_env("source-relation-changed", &env).0.unwrap();
    assert_eq!(u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379").replica_of, None, "not followed again");
    u.hook_env("source-relation-broken", &env).0.unwrap();
    assert_eq!(u.model().relations["redis-peers:0"].local_app.get("migration-source"), None, "cleared");
}

#[test]
fn promote_is_refused_by_the_podspec_archive_and_when_not_migrating() {
    let u = Unit::new("redis-k8s/0", true);
    u.deploy();
    run_action(&u, "promote").unwrap();
    assert!(u.model().action_failed.as_deref().is_some_and(|m| m.contains("sidecar")), "{:?}", u.model().action_failed);
    let s = Unit::sidecar_ready("redis-k8s/0");
    run_action(&s, "promote").unwrap();
    assert!(
        s.model().action_failed.as_deref().is_some_and(|m| m.contains("not migrating")),
        "{:?}",
        s.model().action_failed
    );
}

/// Removing the source relation before promote abandons the copy: the primary serves what it copied, with its
/// own masterauth back, and the Sentinels monitor it again.
#[test]
fn removing_the_source_relation_before_promote_abandons_the_copy() {
    let u = Unit::sidecar_ready("redis-k8s/0");
    u.hook("config-changed").0.unwrap();
    let old = u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379");
    u.cluster.state_mut().redis.insert(format!("{OLD_HOST}:6379"), old);
    let mut bag = redis_k8s::juju::Settings::new();
    bag.insert("host".into(), OLD_HOST.into());
    bag.insert("port".into(), "6379".into());
    let env = u.relate_source(bag);
    u.hook_env("source-relation-changed", &env).0.unwrap();
    assert!(u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379").replica_of.is_some());
    u.hook_env("source-relation-broken", &env).0.unwrap();
    let primary = u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379");
    assert_eq!(primary.replica_of, None);
    assert_ne!(primary.config["masterauth"], "", "its own password back");
    u.hook("update-status").0.unwrap();
    assert!(u.cluster.sentinel("redis-k8s-0.redis-k8s-endpoints:26379").monitor.is_some(), "monitoring again");
    assert_eq!(u.model().last_status(), Some(("active", "listening on port 6379")));
}

/// Data on `source` the charm cannot use gives a blocked status naming the unit and the key, without the
/// password, in every hook until the source publishes something usable.
#[test]
fn bad_source_data_blocks_naming_it_until_it_is_fixed() {
    let u = Unit::sidecar_ready("redis-k8s/0");
    let mut bag = redis_k8s::juju::Settings::new();
    bag.insert("host".into(), OLD_HOST.into());
    bag.insert("port".into(), "6379".into());
    bag.insert("password".into(), "unquoted-secret-hunter2".into());
    let env = u.relate_source(bag);
    u.hook_env("source-relation-changed", &env).0.unwrap();
    let want = "source relation: old-redis/0 published data this charm cannot use: password is not a JSON string";
    assert_eq!(u.model().last_status(), Some(("blocked", want)));
    u.hook("update-status").0.unwrap();
    assert_eq!(u.model().last_status(), Some(("blocked", want)), "still blocked in later hooks");
    {
        let m = u.model();
        assert!(!m.statuses.iter().chain(&m.logs).any(|(_, msg)| msg.contains("hunter2")));
    }
    let old = u.cluster.redis("redis-k8s-0.redis-k8s-endpoints:6379");
    u.cluster.state_mut().redis.insert(format!("{OLD_HOST}:6379"), old);
    u.model().relations.get_mut("source:9").unwrap().units.get_mut("old-redis/0").unwrap().remove("password");
    u.hook_env("source-relation-changed", &env).0.unwrap();
    assert!(u.model().last_status().is_some_and(|(s, m)| s == "waiting" && m.starts_with("migrating from")));
}
