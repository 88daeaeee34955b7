//! Store compatibility: a unit upgraded from a build that wrote schema 1 (`tests/fixtures/store-schema-1.json`)
//! keeps working. The real binary runs `update-status` and `config-changed` on a unit whose state dir holds the
//! fixture: both succeed, and every flag the fixture had is still set afterwards.
//!
//! The unit test in `src/reactive/store.rs` proves the fixture decodes; this proves the charm can run on it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::sim::{Sim, SimModel, SimSnapshot};
use redis_k8s::reactive::store::decode;

fn fixture() -> Vec<u8> {
    std::fs::read(Path::new(crate::support::REPO).join("tests/fixtures/store-schema-1.json")).unwrap()
}

fn flags(bytes: &[u8]) -> BTreeMap<String, serde_json::Value> {
    decode(bytes).expect("the store decodes").flags
}

#[test]
fn a_unit_with_a_schema_1_store_runs_update_status_and_config_changed_and_keeps_its_flags() {
    let fixture = fixture();
    let before = flags(&fixture);
    let mut sim = Sim::restore("compat", &SimSnapshot { model: SimModel::default(), store: Some(fixture) });
    for hook in ["update-status", "config-changed"] {
        let run = sim.run(hook, None, &[]);
        assert_eq!(run.code, Some(0), "{}", run.describe());
        let after = flags(&sim.store_bytes().expect("the store is still there"));
        for flag in before.keys() {
            assert!(after.contains_key(flag), "{hook} lost the flag {flag}; flags now: {:?}", after.keys());
        }
    }
    assert_eq!(sim.model.statuses.last().map(|(s, _)| s.as_str()), Some("active"), "{:?}", sim.model.statuses);
}

/// What does hold today: the fixture loads (no corrupt-store error) and a failing hook leaves it untouched.
#[test]
fn a_schema_1_store_is_read_and_never_rewritten_by_a_failed_hook() {
    let fixture = fixture();
    let mut sim =
        Sim::restore("compat-load", &SimSnapshot { model: SimModel::default(), store: Some(fixture.clone()) });
    for hook in ["update-status", "config-changed"] {
        let run = sim.run(hook, None, &[]);
        assert!(!run.stderr.contains("corrupt") && !run.stderr.contains("schema"), "{}", run.describe());
        if run.code != Some(0) {
            assert_eq!(sim.store_bytes().as_deref(), Some(fixture.as_slice()), "a failed hook rewrote the store");
        }
    }
}
