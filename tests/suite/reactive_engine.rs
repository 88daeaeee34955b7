//! Pins the reactive engine's semantics (charms.reactive `bus.py`/`flags.py`, reference §1-§3) and the
//! flag store's commit-only-on-success rule, through the public API with the recording fake.

use std::cell::RefCell;
use std::fs;
use std::path::PathBuf;
use std::rc::Rc;

use redis_k8s::juju::fake::{FakeJuju, FakeModel, Fault};
use redis_k8s::juju::{HookEnv, HookTools, ToolError};
use redis_k8s::reactive::{AutoSpec, Ctx, Engine, Flags, Kv, Registry, Store, dispatch};
use serde_json::json;

type Log = Rc<RefCell<Vec<String>>>;

fn new_ctx<'h>(
    hook: &'h str,
    env: &'h HookEnv,
    tools: &'h mut HookTools,
    flags: &[&str],
    reg: &Registry<Log>,
    log: Log,
) -> Ctx<'h, Log> {
    let mut f = Flags::new(Default::default(), reg.triggers());
    for x in flags {
        f.set(x);
    }
    Ctx::new(hook, env, tools, f, Kv::default(), log)
}

fn tools() -> HookTools {
    HookTools::new(Box::new(FakeJuju::new(FakeModel::new("redis-k8s/0"))))
}

/// A handler that records its name, then sets and clears flags.
fn h(
    reg: &mut Registry<Log>,
    name: &'static str,
    when: &[&str],
    when_not: &[&str],
    set: &'static [&'static str],
    clear: &'static [&'static str],
) {
    let mut b = reg.handler(name);
    if !when.is_empty() {
        b = b.when_all(when);
    }
    if !when_not.is_empty() {
        b = b.when_none(when_not);
    }
    b.run(move |ctx| {
        ctx.charm.borrow_mut().push(name.to_string());
        for f in set {
            ctx.flags.set(f);
        }
        for f in clear {
            ctx.flags.clear(f);
        }
        Ok(())
    });
}

fn run(reg: &Registry<Log>, hook: &str, initial: &[&str]) -> (Vec<String>, redis_k8s::reactive::Report, Vec<String>) {
    let env = HookEnv::default();
    let mut t = tools();
    let log: Log = Default::default();
    let mut ctx = new_ctx(hook, &env, &mut t, initial, reg, log.clone());
    let report = dispatch(reg, &mut ctx).unwrap();
    let flags = ctx.flags.list().iter().map(|s| s.to_string()).collect();
    let calls = log.borrow().clone();
    (calls, report, flags)
}

#[test]
fn cascade_runs_in_iterations_foo_then_bar_then_qux() {
    // test_bus.py::test_dispatch: foo and foo2 run; then bar, bar2 and both; then qux.
    let mut reg = Registry::new();
    h(&mut reg, "bar", &["bar"], &[], &[], &[]);
    h(&mut reg, "foo", &["foo"], &[], &["bar"], &[]);
    h(&mut reg, "foo2", &["foo"], &[], &["bar2"], &[]);
    h(&mut reg, "bar2", &["bar2"], &[], &["qux"], &[]);
    h(&mut reg, "both", &["bar", "bar2"], &[], &[], &[]);
    h(&mut reg, "qux", &["qux"], &[], &[], &[]);
    let (calls, report, _) = run(&reg, "update-status", &["foo"]);
    assert_eq!(calls, ["foo", "foo2", "bar", "bar2", "both", "qux"]);
    assert_eq!(report.iterations, 3);
    assert!(!report.hit_cap);
}

#[test]
fn a_set_never_adds_to_the_current_queue() {
    // `late` comes after `foo` in registration order and watches the flag foo sets, but it was not in
    // iteration 0's queue, so it runs in iteration 1, after `other`.
    let mut reg = Registry::new();
    h(&mut reg, "foo", &["foo"], &[], &["bar"], &[]);
    h(&mut reg, "late", &["bar"], &[], &[], &[]);
    h(&mut reg, "other", &["foo"], &[], &[], &[]);
    let (calls, _, _) = run(&reg, "update-status", &["foo"]);
    assert_eq!(calls, ["foo", "other", "late"]);
}

#[test]
fn a_set_never_removes_a_queued_handler() {
    let mut reg = Registry::new();
    h(&mut reg, "setter", &["x"], &[], &["z"], &[]);
    h(&mut reg, "not_z", &[], &["z"], &[], &[]);
    let (calls, _, _) = run(&reg, "update-status", &["x"]);
    assert_eq!(calls, ["setter", "not_z"], "when_not(z) stays queued although z is now set");
}

#[test]
fn any_clear_refilters_the_rest_of_the_queue() {
    let mut reg = Registry::new();
    h(&mut reg, "setter", &["x"], &[], &["z"], &[]);
    h(&mut reg, "clear_unset", &["x"], &[], &[], &["never-set"]);
    h(&mut reg, "not_z", &[], &["z"], &[], &[]);
    let (calls, _, _) = run(&reg, "update-status", &["x"]);
    assert_eq!(calls, ["setter", "clear_unset"], "the clear of an unset flag re-tests not_z, which now fails");

    let mut reg = Registry::new();
    h(&mut reg, "a", &["x"], &[], &[], &["y"]);
    h(&mut reg, "b", &["y"], &[], &[], &[]);
    let (calls, _, flags) = run(&reg, "update-status", &["x", "y"]);
    assert_eq!(calls, ["a"]);
    assert_eq!(flags, ["x"]);
}

#[test]
fn a_handler_runs_again_in_a_later_iteration_but_never_twice_in_one() {
    // A handler that does not watch the flag that changed is not re-run.
    let mut reg = Registry::new();
    h(&mut reg, "watcher", &["a"], &[], &[], &[]);
    h(&mut reg, "setb", &["a"], &["b"], &["b"], &[]);
    let (calls, _, _) = run(&reg, "update-status", &["a"]);
    assert_eq!(calls, ["watcher", "setb"]);

    // it0: watch_ac, set_c (sets c); it1: clear_c (c changed; watch_ac now fails when_not c);
    // it2: c changed again: watch_ac runs a second time; set_c watches only a, so it does not.
    let mut reg = Registry::new();
    h(&mut reg, "watch_ac", &["a"], &["c"], &[], &[]);
    h(&mut reg, "set_c", &["a"], &[], &["c"], &[]);
    h(&mut reg, "clear_c", &["c"], &[], &[], &["c"]);
    let (calls, report, _) = run(&reg, "update-status", &["a"]);
    assert_eq!(calls, ["watch_ac", "set_c", "clear_c", "watch_ac"]);
    assert_eq!(report.iterations, 3);
}

#[test]
fn hook_handlers_run_once_in_the_hooks_phase() {
    let mut reg = Registry::new();
    reg.handler("on_upgrade").hook(&["upgrade-charm", "{config,leader-settings}-changed"]).run(
        |ctx: &mut Ctx<'_, Log>| {
            ctx.charm.borrow_mut().push("on_upgrade".into());
            ctx.flags.set("refetch");
            ctx.flags.clear("x");
            Ok(())
        },
    );
    h(&mut reg, "refetch", &["refetch"], &[], &[], &["refetch"]);
    let (calls, _, _) = run(&reg, "upgrade-charm", &[]);
    assert_eq!(calls, ["on_upgrade", "refetch"]);
    let (calls, _, _) = run(&reg, "leader-settings-changed", &[]);
    assert_eq!(calls, ["on_upgrade", "refetch"]);
    let (calls, _, _) = run(&reg, "install", &[]);
    assert!(calls.is_empty());
}

#[test]
fn the_iteration_cap_stops_a_ping_pong_and_is_reported() {
    let mut reg = Registry::new();
    h(&mut reg, "ping", &["a"], &[], &["b"], &["a"]);
    h(&mut reg, "pong", &["b"], &[], &["a"], &["b"]);
    let (calls, report, _) = run(&reg, "update-status", &["a"]);
    assert!(report.hit_cap);
    assert_eq!(report.iterations, 100);
    assert_eq!(calls.len(), 100);
}

#[test]
fn triggers_fire_synchronously_inside_set_and_clear() {
    let mut reg: Registry<Log> = Registry::new();
    reg.trigger_when("image.changed", &[], &["spec.sent"]);
    reg.trigger_when_not("leader", &["was.leader"], &[]);
    reg.handler("check").when("image.changed").run(|ctx| {
        ctx.charm.borrow_mut().push(format!("spec.sent={}", ctx.flags.is_set("spec.sent")));
        Ok(())
    });
    h(&mut reg, "change", &["go"], &[], &["image.changed"], &["leader"]);
    let (calls, _, flags) = run(&reg, "update-status", &["go", "spec.sent", "leader"]);
    assert_eq!(calls, ["change", "spec.sent=false"]);
    assert!(flags.contains(&"was.leader".to_string()));
}

// ---- run_hook: automatic flags, store, rollback ------------------------------------------------

struct Harness {
    dir: PathBuf,
    model: FakeJuju,
}

impl Harness {
    fn new(tag: &str) -> Harness {
        let dir = std::env::temp_dir().join(format!("redis-k8s-engine-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut m = FakeModel::new("redis-k8s/0");
        m.leader = true;
        m.config.insert("port".into(), json!(6379));
        Harness { dir, model: FakeJuju::new(m) }
    }

    fn store(&self) -> Store {
        Store::at(&self.dir, redis_k8s::charm::STORE)
    }

    fn hook(&self, eng: &Engine<Log>, hook: &str, env: &HookEnv) -> (anyhow::Result<Vec<String>>, Vec<String>) {
        let mut tools = HookTools::new(Box::new(self.model.clone()));
        let log: Log = Default::default();
        let r = eng.run_hook(hook, env, &mut tools, &self.store(), log.clone()).map(|o| o.flags);
        self.model.model.borrow_mut().end_hook(r.is_ok());
        let calls = log.borrow().clone();
        (r, calls)
    }
}

fn engine(reg: Registry<Log>) -> Engine<Log> {
    let spec = AutoSpec::from_config_yaml("options:\n  port:\n    type: int\n    default: 6379\n", &["db"]).unwrap();
    Engine::new(reg, spec, |_| Ok(()))
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn observer() -> Registry<Log> {
    let mut reg = Registry::new();
    for f in ["config.changed", "config.changed.port", "config.set.port", "config.default.port", "leadership.is_leader"]
    {
        reg.handler(f).when(f).run(move |ctx: &mut Ctx<'_, Log>| {
            ctx.charm.borrow_mut().push(f.to_string());
            Ok(())
        });
    }
    reg
}

#[test]
fn config_flags_across_hooks_and_never_persisted() {
    let hx = Harness::new("config");
    let reg = engine(observer());
    let env = HookEnv::default();
    let (r, seen) = hx.hook(&reg, "install", &env);
    let flags = r.unwrap();
    assert_eq!(
        seen,
        ["config.changed", "config.changed.port", "config.set.port", "config.default.port", "leadership.is_leader"]
    );
    assert!(flags.iter().all(|f| !f.starts_with("config.")), "config.* flags live for one hook: {flags:?}");

    let (_, seen) = hx.hook(&reg, "config-changed", &env);
    assert_eq!(seen, ["config.set.port", "config.default.port", "leadership.is_leader"], "nothing changed");

    hx.model.model.borrow_mut().config.insert("port".into(), json!(7000.0));
    let (_, seen) = hx.hook(&reg, "config-changed", &env);
    assert_eq!(seen, ["config.changed", "config.changed.port", "config.set.port", "leadership.is_leader"]);

    // 7000 and 7000.0 are the same value (Juju passes numbers as float64).
    hx.model.model.borrow_mut().config.insert("port".into(), json!(7000));
    let (_, seen) = hx.hook(&reg, "config-changed", &env);
    assert!(!seen.contains(&"config.changed".to_string()));
}

#[test]
fn a_failed_hook_changes_neither_the_store_nor_the_mirror_and_the_retry_reruns() {
    let hx = Harness::new("rollback");
    let env = HookEnv::default();
    hx.hook(&engine(observer()), "install", &env).0.unwrap();
    let before = fs::read(hx.store().path()).unwrap();
    let mirror_before = hx.model.model.borrow().state.clone();
    assert!(!mirror_before.is_empty(), "the first hook mirrored the store");

    let mut reg = observer();
    reg.handler("fails").when("leadership.is_leader").run(|ctx: &mut Ctx<'_, Log>| {
        ctx.flags.set("half.done");
        ctx.kv.set("x", json!(1));
        anyhow::bail!("boom")
    });
    let reg = engine(reg);
    hx.model.model.borrow_mut().config.insert("port".into(), json!(7000));
    let (r, _) = hx.hook(&reg, "config-changed", &env);
    let err = format!("{:#}", r.unwrap_err());
    assert_eq!(err, "handler fails: boom");
    assert_eq!(fs::read(hx.store().path()).unwrap(), before, "store bytes unchanged");
    assert_eq!(hx.model.model.borrow().state, mirror_before, "mirror unchanged");

    // The retry still sees the config change, because the snapshot was not committed either.
    let reg = engine(observer());
    let (r, seen) = hx.hook(&reg, "config-changed", &env);
    r.unwrap();
    assert!(seen.contains(&"config.changed.port".to_string()));
    assert_ne!(fs::read(hx.store().path()).unwrap(), before);
}

#[test]
fn a_tool_failure_during_automatic_flags_fails_the_hook_before_any_handler() {
    let hx = Harness::new("toolfail");
    let reg = engine(observer());
    hx.model.model.borrow_mut().faults.push(Fault {
        tool: "is-leader".into(),
        nth: 0,
        error: ToolError::Runtime { tool: "is-leader".into(), message: "ERROR leadership status unknown: x".into() },
    });
    let (r, seen) = hx.hook(&reg, "install", &HookEnv::default());
    assert_eq!(r.unwrap_err().to_string(), "is-leader failed: ERROR leadership status unknown: x");
    assert!(seen.is_empty());
    assert!(!hx.store().path().exists());
}

#[test]
fn hitting_the_cap_logs_a_warning() {
    let hx = Harness::new("cap");
    let mut reg = Registry::new();
    h(&mut reg, "ping", &["leadership.is_leader"], &["b"], &["b"], &[]);
    h(&mut reg, "pong", &["b"], &[], &[], &["b"]);
    let reg = engine(reg);
    hx.hook(&reg, "update-status", &HookEnv::default()).0.unwrap();
    let logs = hx.model.model.borrow().logs.clone();
    assert!(logs.iter().any(|(lvl, m)| lvl == "WARNING" && m.contains("stopped after 100 iterations")), "{logs:?}");
}

#[test]
fn endpoint_flags_follow_relation_hooks() {
    use redis_k8s::juju::fake::FakeRelation;
    let hx = Harness::new("endpoint");
    let mut reg = Registry::new();
    for f in ["endpoint.db.joined", "endpoint.db.changed", "endpoint.db.changed.foo", "endpoint.db.departed"] {
        reg.handler(f).when(f).run(move |ctx: &mut Ctx<'_, Log>| {
            ctx.charm.borrow_mut().push(f.to_string());
            Ok(())
        });
    }
    let reg = engine(reg);
    let (_, seen) = hx.hook(&reg, "install", &HookEnv::default());
    assert!(seen.is_empty());
    let mut rel = FakeRelation { remote_app: "client".into(), ..Default::default() };
    rel.units.insert("client/0".into(), [("foo".to_string(), "1".to_string())].into());
    hx.model.model.borrow_mut().relations.insert("db:1".into(), rel);
    let env = HookEnv {
        relation: Some("db".into()),
        relation_id: Some("db:1".into()),
        remote_unit: Some("client/0".into()),
        ..Default::default()
    };
    let (_, seen) = hx.hook(&reg, "db-relation-joined", &env);
    assert_eq!(seen, ["endpoint.db.joined", "endpoint.db.changed", "endpoint.db.changed.foo"]);

    // A non-relation hook uses the recorded membership: no relation-* calls.
    let before = hx.model.model.borrow().calls.len();
    let (_, seen) = hx.hook(&reg, "update-status", &HookEnv::default());
    let tools: Vec<String> = hx.model.model.borrow().calls[before..].iter().map(|c| c.tool.clone()).collect();
    assert!(tools.iter().all(|t| !t.starts_with("relation-")), "{tools:?}");
    assert_eq!(
        seen,
        ["endpoint.db.joined", "endpoint.db.changed", "endpoint.db.changed.foo"],
        ".changed is never cleared automatically"
    );

    hx.model.model.borrow_mut().relations.get_mut("db:1").unwrap().units.clear();
    let env = HookEnv { departing_unit: Some("client/0".into()), ..env };
    let (_, seen) = hx.hook(&reg, "db-relation-departed", &env);
    assert_eq!(seen, ["endpoint.db.changed", "endpoint.db.changed.foo", "endpoint.db.departed"]);
}

/// The endpoint's `.changed` flags and `data_changed` hashes in the committed store.
fn endpoint_state(hx: &Harness) -> (Vec<String>, Vec<String>) {
    let st = redis_k8s::reactive::store::decode(&fs::read(hx.store().path()).unwrap()).unwrap();
    let flags = st.flags.into_keys().filter(|f| f.starts_with("endpoint.db.changed")).collect();
    let hashes = st
        .kv
        .into_keys()
        .filter_map(|k| k.strip_prefix("reactive.data_changed.endpoint.db.").map(str::to_string))
        .collect();
    (flags, hashes)
}

fn relation_env(rid: &str, unit: &str, departing: Option<&str>) -> HookEnv {
    HookEnv {
        relation: Some("db".into()),
        relation_id: Some(rid.into()),
        remote_unit: Some(unit.into()),
        departing_unit: departing.map(str::to_string),
        ..Default::default()
    }
}

/// Issue 14: a client's keys cost the store nothing unless a handler watches them; for the watched ones the
/// semantics stay charms.reactive's; a departed unit and a broken relation leave no hash behind.
#[test]
fn only_watched_remote_keys_are_hashed_and_what_leaves_is_forgotten() {
    use redis_k8s::juju::fake::FakeRelation;
    let hx = Harness::new("watched");
    let mut reg = Registry::new();
    // As interface:redis's requires side does: react to the change, then clear the flag.
    reg.handler("port-changed").when("endpoint.db.changed.port").run(|ctx: &mut Ctx<'_, Log>| {
        ctx.charm.borrow_mut().push("port-changed".into());
        ctx.flags.clear("endpoint.db.changed.port");
        Ok(())
    });
    // Read in handler code rather than in a condition: declared.
    reg.watch("endpoint.db.changed.host");
    let reg = engine(reg);
    hx.hook(&reg, "install", &HookEnv::default()).0.unwrap();

    let mut rel = FakeRelation { remote_app: "client".into(), ..Default::default() };
    for unit in ["client/0", "client/1"] {
        let mut data: redis_k8s::juju::Settings = (0..50).map(|i| (format!("junk-{i}"), format!("{i}"))).collect();
        data.insert("port".into(), "6379".into());
        data.insert("host".into(), "h".into());
        rel.units.insert(unit.into(), data);
    }
    hx.model.model.borrow_mut().relations.insert("db:1".into(), rel);
    for unit in ["client/0", "client/1"] {
        let (r, seen) = hx.hook(&reg, "db-relation-joined", &relation_env("db:1", unit, None));
        r.unwrap();
        assert_eq!(seen, ["port-changed"], "{unit}: the first sight of a watched key is a change");
    }
    let (flags, hashes) = endpoint_state(&hx);
    assert_eq!(flags, ["endpoint.db.changed.host"], "no flag for an unwatched key, nor the unwatched aggregate");
    assert_eq!(hashes, ["db:1.client/0.host", "db:1.client/0.port", "db:1.client/1.host", "db:1.client/1.port"]);

    // Unwatched keys changing is no change; a watched one is.
    let set = |unit: &str, k: &str, v: &str| {
        let mut m = hx.model.model.borrow_mut();
        m.relations.get_mut("db:1").unwrap().units.get_mut(unit).unwrap().insert(k.into(), v.into());
    };
    set("client/0", "junk-1", "changed");
    let (_, seen) = hx.hook(&reg, "db-relation-changed", &relation_env("db:1", "client/0", None));
    assert!(seen.is_empty(), "{seen:?}");
    set("client/0", "port", "7000");
    let (_, seen) = hx.hook(&reg, "db-relation-changed", &relation_env("db:1", "client/0", None));
    assert_eq!(seen, ["port-changed"]);
    // A watched key that disappears is not a change (charms.reactive compares the keys present).
    hx.model.model.borrow_mut().relations.get_mut("db:1").unwrap().units.get_mut("client/0").unwrap().remove("port");
    let (_, seen) = hx.hook(&reg, "db-relation-changed", &relation_env("db:1", "client/0", None));
    assert!(seen.is_empty(), "{seen:?}");

    // client/1 departs: its hashes go, client/0's stay.
    hx.model.model.borrow_mut().relations.get_mut("db:1").unwrap().units.remove("client/1");
    hx.hook(&reg, "db-relation-departed", &relation_env("db:1", "client/1", Some("client/1"))).0.unwrap();
    assert_eq!(endpoint_state(&hx).1, ["db:1.client/0.host", "db:1.client/0.port"]);

    // The relation breaks: nothing of it is left but the watched flag, which only a handler clears.
    hx.model.model.borrow_mut().relations.get_mut("db:1").unwrap().units.clear();
    hx.hook(&reg, "db-relation-departed", &relation_env("db:1", "client/0", Some("client/0"))).0.unwrap();
    hx.model.model.borrow_mut().relations.remove("db:1");
    hx.hook(&reg, "db-relation-broken", &relation_env("db:1", "", None)).0.unwrap();
    let (flags, hashes) = endpoint_state(&hx);
    assert_eq!(flags, ["endpoint.db.changed.host"]);
    assert!(hashes.is_empty(), "{hashes:?}");
}

#[test]
fn an_endpoint_nobody_watches_is_not_read_and_old_stores_are_pruned() {
    use redis_k8s::juju::fake::FakeRelation;
    use redis_k8s::reactive::UnitState;
    let hx = Harness::new("unwatched");
    // A store from before the watched set: a flag and a hash per key a client ever sent.
    let mut old = UnitState::default();
    for f in ["endpoint.db.joined", "endpoint.db.changed", "endpoint.db.changed.junk", "other.flag"] {
        old.flags.insert(f.into(), serde_json::Value::Null);
    }
    for k in ["db:1.client/0.junk", "db:1.client/0.port", "db:9.gone/3.x"] {
        old.kv.insert(format!("reactive.data_changed.endpoint.db.{k}"), json!("0123456789abcdef"));
    }
    old.kv.insert("reactive.data_changed.something-else".into(), json!("0123456789abcdef"));
    fs::create_dir_all(&hx.dir).unwrap();
    fs::write(hx.store().path(), redis_k8s::reactive::store::encode(&old)).unwrap();

    let mut rel = FakeRelation { remote_app: "client".into(), ..Default::default() };
    rel.units.insert("client/0".into(), [("junk".to_string(), "1".to_string())].into());
    hx.model.model.borrow_mut().relations.insert("db:1".into(), rel);
    let reg = engine(Registry::new());
    hx.hook(&reg, "db-relation-changed", &relation_env("db:1", "client/0", None)).0.unwrap();
    let tools: Vec<String> = hx.model.model.borrow().calls.iter().map(|c| c.tool.clone()).collect();
    assert!(!tools.iter().any(|t| t == "relation-get"), "nothing watches db's data: {tools:?}");
    assert_eq!(endpoint_state(&hx), (vec![], vec![]));
    let st = redis_k8s::reactive::store::decode(&fs::read(hx.store().path()).unwrap()).unwrap();
    assert!(st.flags.contains_key("other.flag") && st.flags.contains_key("endpoint.db.joined"), "{:?}", st.flags);
    assert!(st.kv.contains_key("reactive.data_changed.something-else"));
}

#[test]
fn per_relation_keys_go_when_their_relation_breaks() {
    use redis_k8s::juju::fake::FakeRelation;
    let hx = Harness::new("per-relation");
    let mut reg = Registry::new();
    reg.per_relation("db", &["sent.", "app."]);
    reg.handler("record").when("endpoint.db.joined").run(|ctx: &mut Ctx<'_, Log>| {
        for rid in redis_k8s::reactive::joined_units(ctx, "db").into_keys() {
            ctx.kv.data_changed(&format!("sent.{rid}"), "x");
            ctx.kv.set(&format!("app.{rid}"), json!(1));
        }
        // Not relation ids of db: never touched.
        ctx.kv.set("sent.db:7.extra", json!(1));
        ctx.kv.set("sent.peer:7", json!(1));
        Ok(())
    });
    let reg = engine(reg);
    for rid in ["db:1", "db:2"] {
        let mut rel = FakeRelation { remote_app: "client".into(), ..Default::default() };
        rel.units.insert(format!("client-{rid}/0"), Default::default());
        hx.model.model.borrow_mut().relations.insert(rid.into(), rel);
    }
    hx.hook(&reg, "db-relation-joined", &relation_env("db:1", "client-db:1/0", None)).0.unwrap();
    let kv_keys = || -> Vec<String> {
        let st = redis_k8s::reactive::store::decode(&fs::read(hx.store().path()).unwrap()).unwrap();
        st.kv.into_keys().filter(|k| k.contains("sent.") || k.starts_with("app.")).collect()
    };
    assert_eq!(
        kv_keys(),
        [
            "app.db:1",
            "app.db:2",
            "reactive.data_changed.sent.db:1",
            "reactive.data_changed.sent.db:2",
            "sent.db:7.extra",
            "sent.peer:7"
        ]
    );
    hx.model.model.borrow_mut().relations.remove("db:2");
    hx.hook(&reg, "db-relation-broken", &relation_env("db:2", "", None)).0.unwrap();
    assert_eq!(kv_keys(), ["app.db:1", "reactive.data_changed.sent.db:1", "sent.db:7.extra", "sent.peer:7"]);
}

#[test]
fn the_watched_aggregate_changed_flag_uses_one_hash_per_unit() {
    use redis_k8s::juju::fake::FakeRelation;
    let hx = Harness::new("aggregate");
    let mut reg = Registry::new();
    reg.handler("changed").when("endpoint.db.changed").run(|ctx: &mut Ctx<'_, Log>| {
        ctx.charm.borrow_mut().push("changed".into());
        ctx.flags.clear("endpoint.db.changed");
        Ok(())
    });
    let reg = engine(reg);
    let mut rel = FakeRelation { remote_app: "client".into(), ..Default::default() };
    rel.units.insert("client/0".into(), (0..100).map(|i| (format!("k{i}"), "v".to_string())).collect());
    hx.model.model.borrow_mut().relations.insert("db:1".into(), rel);
    let env = relation_env("db:1", "client/0", None);
    assert_eq!(hx.hook(&reg, "db-relation-joined", &env).1, ["changed"]);
    assert_eq!(endpoint_state(&hx), (vec![], vec!["db:1.client/0".to_string()]));
    assert!(hx.hook(&reg, "db-relation-changed", &env).1.is_empty(), "same data, no change");
    // Deliberately unlike charms.reactive: a removed key is a change too.
    hx.model.model.borrow_mut().relations.get_mut("db:1").unwrap().units.get_mut("client/0").unwrap().remove("k5");
    assert_eq!(hx.hook(&reg, "db-relation-changed", &env).1, ["changed"]);
}

/// Kill -9 between the temp write and the rename: the old store survives and the next hook loads it.
/// The crash runs in a child process (this test binary re-executed on one test), since it kills itself.
#[test]
fn crash_between_temp_write_and_rename_keeps_the_old_store() {
    if std::env::var_os("ENGINE_CRASH_CHILD").is_some() {
        return;
    }
    // The child's full name in the suite binary (tests/suite/main.rs), as `--exact` wants it.
    const CHILD: &str = "reactive_engine::crash_child";
    let dir = std::env::temp_dir().join(format!("redis-k8s-engine-crash-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for point in ["store-before-rename", "store-after-rename"] {
        let _ = fs::remove_dir_all(&dir);
        // First commit, uncrashed.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD, "--nocapture", "--test-threads=1"])
            .env("ENGINE_CRASH_DIR", &dir)
            .env("ENGINE_CRASH_PORT", "6379")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let before = fs::read(dir.join(redis_k8s::charm::STORE.file)).unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD, "--nocapture", "--test-threads=1"])
            .env("ENGINE_CRASH_DIR", &dir)
            .env("ENGINE_CRASH_PORT", "7000")
            .env("REDIS_K8S_CRASH_AT", point)
            .output()
            .unwrap()
            .status;
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the child was killed at {point}");
        let after = fs::read(dir.join(redis_k8s::charm::STORE.file)).unwrap();
        let st = redis_k8s::reactive::store::decode(&after).expect("a valid store after the crash");
        if point == "store-before-rename" {
            assert_eq!(after, before, "old store byte-for-byte");
        } else {
            assert_eq!(st.kv["reactive.config.snapshot"]["port"], json!(7000));
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("ENGINE_CRASH_DIR") else { return };
    let port: u16 = std::env::var("ENGINE_CRASH_PORT").unwrap().parse().unwrap();
    let mut m = FakeModel::new("redis-k8s/0");
    m.config.insert("port".into(), json!(port));
    let fake = FakeJuju::new(m);
    let mut tools = HookTools::new(Box::new(fake));
    let spec = AutoSpec::from_config_yaml("options:\n  port:\n    default: 6379\n", &[]).unwrap();
    let eng = Engine::new(observer(), spec, |_| Ok(()));
    eng.run_hook(
        "config-changed",
        &HookEnv::default(),
        &mut tools,
        &Store::at(PathBuf::from(dir), redis_k8s::charm::STORE),
        Log::default(),
    )
    .unwrap();
}

#[test]
fn re_setting_a_set_flag_is_not_a_transition() {
    let mut reg = Registry::new();
    h(&mut reg, "setter", &["x"], &[], &["y"], &[]);
    h(&mut reg, "watcher", &["y"], &[], &[], &[]);
    let (calls, report, _) = run(&reg, "update-status", &["x", "y"]);
    assert_eq!(calls, ["setter", "watcher"], "y was already set: watcher must not run again");
    assert_eq!(report.iterations, 1);
}
