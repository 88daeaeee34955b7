//! Failing hooks and rejected specs: deferred changes are discarded when a hook fails and the unit
//! shows `error hook failed`; a retry after the fix commits; a spec with an unknown key fails the
//! hook with the tool's error; a spec Kubernetes would reject shows as application status error.

use crate::common::*;

#[test]
fn failed_hook_discards_deferred_changes_and_retry_succeeds() {
    let m = TestModel::new("fail");
    let fixed = m.work.join("fixed");
    let charm = build_charm(&m.work, &CharmOpts { fail_until: Some(fixed.clone()), ..Default::default() });
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    let st = m.status();
    let u = TestModel::unit(&st, "testredis/0");
    assert_eq!(u["juju-status"]["current"], "error");
    assert_eq!(u["juju-status"]["message"], "hook failed: \"config-changed\"");
    // The pod spec set before the failure was discarded: no pod, no address answering.
    assert!(m.model_json()["apps"]["testredis"]["pod_spec"].is_null());
    assert!(!ping(&m.address("testredis/0"), 6379));
    // status-set is immediate, so the charm's maintenance status from install stays.
    assert_eq!(u["workload-status"]["current"], "maintenance");
    // The queue stopped at the failure: start has not run.
    assert_eq!(m.hooks("testredis", 0), ["install", "cluster-relation-created", "leader-elected", "config-changed"]);
    assert!(m.status().to_string().contains("hook failed"));

    // Still failing: run-hook exits non-zero.
    let out = m.run(&["run-hook", "testredis/0", "config-changed"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("ERROR hook failed: \"config-changed\""));
    // The state-set of the failed runs never landed.
    assert_eq!(m.state_file("testredis", 0, "seen-state").as_deref(), Some("{}\n"));

    std::fs::write(&fixed, "").unwrap();
    m.ok(&["run-hook", "testredis/0", "config-changed"]);
    assert_eq!(m.state_file("testredis", 0, "seen-state").as_deref(), Some("{}\n"));
    m.wait_active("testredis");
    let hooks = m.hooks("testredis", 0);
    assert_eq!(hooks[hooks.len() - 3..], ["config-changed", "start", "update-status"].map(String::from));
    assert!(ping(&m.address("testredis/0"), 6379));
    // Now the state from the successful run is committed and visible to the next hook.
    m.ok(&["config", "testredis", "port=7001"]);
    assert_eq!(m.state_file("testredis", 0, "seen-state").as_deref(), Some("{\"counter\":\"config-changed\"}\n"));
}

#[test]
fn unknown_spec_key_fails_the_hook_with_the_tool_error() {
    let m = TestModel::new("badkey");
    let charm = build_charm(&m.work, &CharmOpts { extra_key: Some("foo".into()), ..Default::default() });
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    let st = m.status();
    assert_eq!(TestModel::unit(&st, "testredis/0")["juju-status"]["message"], "hook failed: \"config-changed\"");
    let log = m.debug_log();
    assert!(log.contains("WARNING unit.testredis/0.config-changed ERROR json: unknown field \"foo\""), "{log}");
}

#[test]
fn kubernetes_rejection_is_an_application_error_not_a_hook_failure() {
    let m = TestModel::new("badproto");
    let charm = build_charm(&m.work, &CharmOpts { protocol: Some("tcp".into()), ..Default::default() });
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    let st = m.status();
    let app = &st["applications"]["testredis"];
    assert_eq!(app["application-status"]["current"], "error");
    let msg = app["application-status"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("protocol: Unsupported value: \"tcp\""), "{msg}");
    let u = TestModel::unit(&st, "testredis/0");
    assert_eq!(u["juju-status"]["current"], "idle");
    assert_eq!(u["workload-status"]["message"], "waiting for container");
}

#[test]
fn unavailable_image_is_a_container_error() {
    let m = TestModel::new("image");
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=mariadb:10"]);
    // The kubelet creates the pod in the background.
    let u = m.wait_for("the container error", || {
        let st = m.status();
        let u = TestModel::unit(&st, "testredis/0").clone();
        (u["workload-status"]["current"] == "error").then_some(u)
    });
    assert!(u["workload-status"]["message"].as_str().unwrap_or_default().contains("image not available locally"));
    // A missing resource is refused at deploy, as Juju does for local charms.
    let out = m.run(&["deploy", charm.to_str().unwrap(), "other"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "ERROR local charm missing OCI images for: redis-image\n");
}
