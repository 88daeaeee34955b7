//! The flag store's size budget (issue 14): whatever a related client writes, the store stays under 64 KiB, so
//! it keeps its `state-set` mirror (Juju's limit for one value) and a hook does not load and rewrite megabytes.
//!
//! A hostile client publishes 100,000 keys, rewrites them all, and a second unit of it joins with 100,000 more
//! and departs; the real charm runs every hook in-process through the recording fake. After each hook the store
//! must be under budget, not much bigger than before the client came, and mirrored byte for byte; once the
//! relation is gone, nothing in the store is named after it.

use crate::support::fake_unit::{FakeUnit, REMOTE, RID, Step};
use redis_k8s::juju::HookEnv;
use redis_k8s::juju::Settings;
use redis_k8s::juju::fake::FakeRelation;

/// The store's budget: Juju's limit for one `state-set` value.
const BUDGET: usize = 64 * 1024;
const HOSTILE_KEYS: usize = 100_000;
/// What one relation and its units may add to the store (membership, published-data hashes).
const PER_RELATION: usize = 2048;

fn hostile(tag: &str) -> Settings {
    (0..HOSTILE_KEYS).map(|i| (format!("{tag}-key-{i:06}"), format!("value-{i}"))).collect()
}

fn relation_env(u: &FakeUnit, unit: &str, departing: Option<&str>) -> HookEnv {
    HookEnv {
        relation: Some("db".into()),
        relation_id: Some(RID.into()),
        remote_unit: Some(unit.into()),
        remote_app: Some("client".into()),
        departing_unit: departing.map(str::to_string),
        ..u.env.clone()
    }
}

fn run_within_budget(u: &mut FakeUnit, hook: &str, env: &HookEnv, baseline: usize) {
    let r = u.run(hook, env, Vec::new(), None);
    assert!(r.result.is_ok(), "{hook}: {:?}", r.result);
    let store = u.store_bytes().expect("a store");
    let text = String::from_utf8(store.clone()).unwrap();
    assert!(store.len() < BUDGET, "{hook}: the store is {} bytes, over the {BUDGET}-byte budget", store.len());
    assert!(
        store.len() <= baseline + PER_RELATION,
        "{hook}: the store grew from {baseline} to {} bytes with one client",
        store.len()
    );
    assert!(!text.contains("-key-0"), "{hook}: a client's key reached the store");
    assert_eq!(u.mirror().as_deref(), Some(text.as_str()), "{hook}: the state-set mirror is not the store");
}

#[test]
fn a_client_with_100000_keys_leaves_the_store_under_budget_and_mirrored() {
    let mut u = FakeUnit::new("store-budget");
    u.run_clean(&[Step::Install, Step::LeaderElected, Step::ConfigChanged, Step::Start, Step::UpdateStatus]);
    let baseline = u.store_bytes().expect("a store").len();

    let mut rel = FakeRelation { remote_app: "client".into(), ..Default::default() };
    rel.units.insert(REMOTE.into(), hostile("a"));
    u.model().relations.insert(RID.into(), rel);
    let env = relation_env(&u, REMOTE, None);
    run_within_budget(&mut u, "db-relation-joined", &env, baseline);
    run_within_budget(&mut u, "db-relation-changed", &env, baseline);

    // It rewrites every value.
    let rewritten: Settings = hostile("a").into_iter().map(|(k, v)| (k, format!("{v}-again"))).collect();
    u.model().relations.get_mut(RID).unwrap().units.insert(REMOTE.into(), rewritten);
    run_within_budget(&mut u, "db-relation-changed", &env, baseline);

    // A second unit joins with 100,000 other keys, then departs.
    let second = "client/1";
    u.model().relations.get_mut(RID).unwrap().units.insert(second.into(), hostile("b"));
    let env = relation_env(&u, second, None);
    run_within_budget(&mut u, "db-relation-joined", &env, baseline);
    run_within_budget(&mut u, "db-relation-changed", &env, baseline);
    u.model().relations.get_mut(RID).unwrap().units.remove(second);
    let env = relation_env(&u, second, Some(second));
    run_within_budget(&mut u, "db-relation-departed", &env, baseline);

    let env = u.env.clone();
    run_within_budget(&mut u, "update-status", &env, baseline);

    // The client leaves: nothing in the store is named after its relation any more.
    u.model().relations.get_mut(RID).unwrap().units.clear();
    let env = relation_env(&u, REMOTE, Some(REMOTE));
    run_within_budget(&mut u, "db-relation-departed", &env, baseline);
    u.model().relations.remove(RID);
    let env = HookEnv { remote_unit: None, remote_app: None, ..relation_env(&u, REMOTE, None) };
    run_within_budget(&mut u, "db-relation-broken", &env, baseline);
    let st = redis_k8s::reactive::store::decode(&u.store_bytes().unwrap()).unwrap();
    let named: Vec<&String> = st.kv.keys().chain(st.flags.keys()).filter(|k| k.contains(RID)).collect();
    assert!(named.is_empty(), "the broken relation left {named:?}");
    let left = u.store_bytes().unwrap().len();
    assert!(left <= baseline + 256, "the store is {left} bytes after the client left, {baseline} before it came");
}
